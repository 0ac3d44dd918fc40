//! Which call refreshes a token, sans IO: GetTokensFromRefreshToken, or InitiateAuth
//! REFRESH_TOKEN_AUTH where the endpoint lacks that operation, and which verdict stands when the
//! two disagree. The driver ([`crate::Authenticator::refresh`]) makes the calls it is told to and
//! feeds back their outcomes.
//!
//! The fallback is remembered at once when the endpoint plainly does not know the operation
//! ([`Error::is_unknown_operation`]). A bare HTML/empty HTTP 500 (moto's answer for anything
//! unimplemented, but also a possible real fault) earns one fallback try, remembered only if it
//! works or judges the token itself (revoked, expired, invalid: that verdict is returned); any
//! other fallback failure returns the original error.

use crate::error::{Error, ErrorCode};

/// A call that refreshes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshCall {
    /// `GetTokensFromRefreshToken` (raw client secret, device key).
    GetTokensFromRefreshToken,
    /// `InitiateAuth` with `REFRESH_TOKEN_AUTH` (SECRET_HASH over the internal username).
    RefreshTokenAuth,
}

/// A refresh waiting for the outcome of the call it asked for.
#[derive(Debug)]
pub struct RefreshPlan {
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    /// GetTokensFromRefreshToken was asked for.
    Primary,
    /// REFRESH_TOKEN_AUTH was asked for because the endpoint is known to need it.
    Fallback,
    /// REFRESH_TOKEN_AUTH was asked for after a bare 500, which is kept in case the fallback
    /// tells nothing better.
    Trial { original: Error },
}

/// What to do after a refresh call.
#[derive(Debug)]
pub enum RefreshStep<T> {
    /// Make `call`, then feed its outcome to `plan`.
    Send {
        /// The refresh, waiting for the outcome of `call`.
        plan: RefreshPlan,
        /// The call to make.
        call: RefreshCall,
        /// From now on, start refreshes with REFRESH_TOKEN_AUTH.
        remember_fallback: bool,
    },
    /// The refresh is over: `outcome` is the answer.
    Done {
        /// The tokens, or the error to report.
        outcome: Result<T, Error>,
        /// From now on, start refreshes with REFRESH_TOKEN_AUTH.
        remember_fallback: bool,
    },
}

impl RefreshPlan {
    /// Starts a refresh: `fallback_known` is whether the endpoint was found to lack
    /// GetTokensFromRefreshToken.
    pub fn start(fallback_known: bool) -> (RefreshPlan, RefreshCall) {
        if fallback_known {
            (
                RefreshPlan {
                    stage: Stage::Fallback,
                },
                RefreshCall::RefreshTokenAuth,
            )
        } else {
            (
                RefreshPlan {
                    stage: Stage::Primary,
                },
                RefreshCall::GetTokensFromRefreshToken,
            )
        }
    }

    /// Feeds the outcome of the call this plan asked for (the whole step: a reply that holds no
    /// tokens is an error here too).
    pub fn on_outcome<T>(self, outcome: Result<T, Error>) -> RefreshStep<T> {
        match (self.stage, outcome) {
            (Stage::Primary, Err(error)) if error.is_unknown_operation() => {
                tracing::info!(
                    "the endpoint lacks GetTokensFromRefreshToken; refreshing with REFRESH_TOKEN_AUTH from now on"
                );
                RefreshStep::Send {
                    plan: RefreshPlan {
                        stage: Stage::Fallback,
                    },
                    call: RefreshCall::RefreshTokenAuth,
                    remember_fallback: true,
                }
            }
            (Stage::Primary, Err(error)) if maybe_unknown_operation(&error) => RefreshStep::Send {
                plan: RefreshPlan {
                    stage: Stage::Trial { original: error },
                },
                call: RefreshCall::RefreshTokenAuth,
                remember_fallback: false,
            },
            (Stage::Primary | Stage::Fallback, outcome) => RefreshStep::Done {
                outcome,
                remember_fallback: false,
            },
            (Stage::Trial { .. }, Ok(value)) => {
                tracing::info!(
                    "GetTokensFromRefreshToken failed with a bare 500 but REFRESH_TOKEN_AUTH works; using it from now on"
                );
                RefreshStep::Done {
                    outcome: Ok(value),
                    remember_fallback: true,
                }
            }
            // The endpoint ran REFRESH_TOKEN_AUTH and judged the token itself (revoked,
            // expired): that verdict is the answer, and the endpoint evidently speaks the
            // fallback. Reporting the bare 500 instead would make the caller retry a dead token
            // forever.
            (Stage::Trial { .. }, Err(verdict)) if verdict.refresh_failure().is_some() => {
                RefreshStep::Done {
                    outcome: Err(verdict),
                    remember_fallback: true,
                }
            }
            (Stage::Trial { original }, Err(fallback_error)) => {
                tracing::debug!(error = %fallback_error, "REFRESH_TOKEN_AUTH fallback failed too");
                RefreshStep::Done {
                    outcome: Err(original),
                    remember_fallback: false,
                }
            }
        }
    }
}

/// A bare HTTP 500 naming no error type: moto's page for an unimplemented operation, but
/// indistinguishable from a real fault behind a proxy.
fn maybe_unknown_operation(error: &Error) -> bool {
    error
        .service()
        .is_some_and(|service| service.status == 500 && service.code == ErrorCode::Unnamed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ServiceError;

    fn service(code: ErrorCode, message: &str, status: u16) -> Error {
        Error::Service(ServiceError {
            code,
            message: message.into(),
            status,
        })
    }

    fn bare_500() -> Error {
        service(ErrorCode::Unnamed, "Internal Server Error", 500)
    }

    fn unknown_operation() -> Error {
        service(ErrorCode::UnknownOperation, "", 400)
    }

    fn revoked() -> Error {
        service(
            ErrorCode::NotAuthorized,
            "Refresh Token has been revoked",
            400,
        )
    }

    /// Runs a plan against scripted outcomes; returns the calls made, the fallback flag after
    /// the refresh, and the answer.
    fn run(
        fallback_known: bool,
        outcomes: Vec<Result<&'static str, Error>>,
    ) -> (Vec<RefreshCall>, bool, Result<&'static str, Error>) {
        let mut remembered = fallback_known;
        let (mut plan, mut call) = RefreshPlan::start(fallback_known);
        let mut calls = Vec::new();
        let mut outcomes = outcomes.into_iter();
        loop {
            calls.push(call);
            let outcome = outcomes
                .next()
                .expect("the plan asked for one call too many");
            match plan.on_outcome(outcome) {
                RefreshStep::Send {
                    plan: next_plan,
                    call: next_call,
                    remember_fallback,
                } => {
                    remembered |= remember_fallback;
                    plan = next_plan;
                    call = next_call;
                }
                RefreshStep::Done {
                    outcome,
                    remember_fallback,
                } => {
                    remembered |= remember_fallback;
                    assert!(outcomes.next().is_none(), "scripted outcomes left over");
                    return (calls, remembered, outcome);
                }
            }
        }
    }

    use RefreshCall::{GetTokensFromRefreshToken as Primary, RefreshTokenAuth as Fallback};

    #[test]
    fn primary_success_is_the_answer() {
        let (calls, remembered, outcome) = run(false, vec![Ok("tokens")]);
        assert_eq!(calls, [Primary]);
        assert!(!remembered);
        assert_eq!(outcome.unwrap(), "tokens");
    }

    #[test]
    fn a_known_fallback_goes_straight_to_refresh_token_auth() {
        let (calls, _, outcome) = run(true, vec![Err(revoked())]);
        assert_eq!(calls, [Fallback]);
        assert_eq!(
            outcome.unwrap_err().refresh_failure(),
            Some(crate::error::RefreshFailure::Revoked)
        );
    }

    #[test]
    fn an_unknown_operation_is_remembered_even_if_the_fallback_fails() {
        let (calls, remembered, outcome) =
            run(false, vec![Err(unknown_operation()), Err(bare_500())]);
        assert_eq!(calls, [Primary, Fallback]);
        assert!(remembered);
        assert_eq!(outcome.unwrap_err().service().unwrap().status, 500);
    }

    #[test]
    fn a_bare_500_earns_one_fallback_try_remembered_when_it_works() {
        let (calls, remembered, outcome) = run(false, vec![Err(bare_500()), Ok("tokens")]);
        assert_eq!(calls, [Primary, Fallback]);
        assert!(remembered);
        assert_eq!(outcome.unwrap(), "tokens");
    }

    #[test]
    fn a_bare_500_then_a_verdict_on_the_token_returns_the_verdict() {
        let (calls, remembered, outcome) = run(false, vec![Err(bare_500()), Err(revoked())]);
        assert_eq!(calls, [Primary, Fallback]);
        assert!(remembered);
        assert!(outcome.unwrap_err().refresh_failure().is_some());
    }

    #[test]
    fn a_bare_500_then_another_failure_returns_the_original_error() {
        let throttled = service(ErrorCode::TooManyRequests, "Rate exceeded", 400);
        let (calls, remembered, outcome) = run(false, vec![Err(bare_500()), Err(throttled)]);
        assert_eq!(calls, [Primary, Fallback]);
        assert!(!remembered);
        let error = outcome.unwrap_err();
        assert_eq!(error.code(), Some(&ErrorCode::Unnamed));
        assert_eq!(error.service().unwrap().status, 500);
    }

    #[test]
    fn other_primary_failures_are_the_answer() {
        for error in [
            revoked(),
            service(ErrorCode::InternalError, "", 500),
            service(ErrorCode::Unnamed, "", 502),
            Error::Protocol("the refresh reply holds no tokens".into()),
        ] {
            let shown = error.to_string();
            let (calls, remembered, outcome) = run(false, vec![Err(error)]);
            assert_eq!(calls, [Primary], "{shown}");
            assert!(!remembered, "{shown}");
            assert_eq!(outcome.unwrap_err().to_string(), shown);
        }
    }
}
