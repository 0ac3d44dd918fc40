//! What can go wrong, in the broker's words: [`BrokerError`] for callers (no HTTP status in
//! here: the server's error room maps these), the outcome of a refresh attempt shared with
//! every joiner, and how an upstream error is classified.

use std::time::Duration;

use cognito_auth::{ErrorClass, ErrorCode};

/// Why a broker call failed. [`code`](Self::code) is the stable API error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// No such profile in the config.
    #[error(
        "unknown profile {0:?}: the daemon's configuration has no [profiles.{0}] (`cogbroker profiles` lists the configured ones)"
    )]
    UnknownProfile(String),
    /// No such pending login (never existed, answered, cancelled or expired).
    #[error("unknown login id; start the login again")]
    UnknownLogin,
    /// A login for this profile is already pending or being answered.
    #[error("a login is already in progress for this profile; answer or cancel it first")]
    LoginInProgress,
    /// No usable session: a person must log in.
    #[error("profile {profile} needs a login ({reason}); run `cogbroker login {profile}`")]
    LoginRequired {
        /// The profile.
        profile: String,
        /// Why.
        reason: String,
    },
    /// Cognito could not be reached (or kept failing) and no valid token is left.
    #[error(
        "cognito is unavailable ({reason}); retry in {}s (`cogbroker doctor` checks the endpoint and the network)",
        retry_after.as_secs().max(1)
    )]
    UpstreamUnavailable {
        /// When to retry.
        retry_after: Duration,
        /// What failed (class and code, never a secret).
        reason: String,
    },
    /// A wrong one-time code; the login stays pending.
    #[error("wrong code: {0}")]
    CodeMismatch(String),
    /// The new password breaks the pool's policy; the login stays pending.
    #[error("the new password was refused: {0}")]
    InvalidPassword(String),
    /// The challenge session expired: start the login again.
    #[error("the login session expired; start the login again")]
    ChallengeExpired,
    /// A caller mistake, naming the field.
    #[error("{field}: {message}")]
    BadInput {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Wrong username or password (or the user may not sign in).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// Something this client cannot do (e.g. a passkey challenge).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The profile's configuration cannot work (a secret source failed, the pool or client
    /// rejects the configuration).
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// The daemon is shutting down and takes no new work.
    #[error("the daemon is shutting down; retry in a moment")]
    ShuttingDown,
    /// A bug or an unexpected local failure (the store, a task that died).
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl BrokerError {
    /// The API error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownProfile(_) => "unknown_profile",
            Self::UnknownLogin => "unknown_login",
            Self::LoginInProgress => "login_in_progress",
            Self::LoginRequired { .. } => "login_required",
            Self::UpstreamUnavailable { .. } => "upstream_unavailable",
            Self::CodeMismatch(_) => "code_mismatch",
            Self::InvalidPassword(_) => "invalid_password",
            Self::ChallengeExpired => "challenge_expired",
            Self::BadInput { .. } => "bad_input",
            Self::NotAuthorized(_) => "invalid_credentials",
            Self::Unsupported(_) => "unsupported",
            Self::Misconfigured(_) => "misconfigured",
            Self::ShuttingDown => "shutting_down",
            Self::Internal(_) => "internal",
        }
    }

    /// When to retry, for upstream failures.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::UpstreamUnavailable { retry_after, .. } => Some(*retry_after),
            Self::ShuttingDown => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    pub(crate) fn login_required(profile: &str, reason: impl Into<String>) -> Self {
        Self::LoginRequired {
            profile: profile.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What a refresh attempt ended with (shared with every joiner).
#[derive(Debug, Clone)]
pub(crate) enum AttemptFailure {
    /// No session (never logged in, logged out, or replaced while the attempt ran): the caller
    /// decides again on what is there now.
    NoSession,
    LoginRequired(String),
    Upstream {
        retry_after: Duration,
        reason: String,
    },
    Misconfigured(String),
    ShuttingDown,
    Internal(String),
}

pub(crate) type AttemptOutcome = Result<(), AttemptFailure>;

impl AttemptFailure {
    pub(crate) fn into_error(self, profile: &str) -> BrokerError {
        match self {
            Self::NoSession => BrokerError::login_required(profile, "not logged in"),
            Self::LoginRequired(reason) => BrokerError::login_required(profile, reason),
            Self::Upstream {
                retry_after,
                reason,
            } => BrokerError::UpstreamUnavailable {
                retry_after,
                reason,
            },
            Self::Misconfigured(message) => BrokerError::Misconfigured(message),
            Self::ShuttingDown => BrokerError::ShuttingDown,
            Self::Internal(message) => BrokerError::Internal(anyhow::anyhow!(message)),
        }
    }
}

/// How a refresh error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureClass {
    Transient,
    Throttled,
    LoginRequired,
    Terminal,
}

impl FailureClass {
    pub(crate) fn of(error: &cognito_auth::Error) -> Self {
        if error.refresh_failure().is_some() {
            return Self::LoginRequired;
        }
        match error.code() {
            Some(ErrorCode::NotAuthorized | ErrorCode::RefreshTokenReuse) => {
                return Self::LoginRequired;
            }
            Some(ErrorCode::LimitExceeded | ErrorCode::TooManyRequests) => return Self::Throttled,
            _ => {}
        }
        // A garbled reply (a proxy's page, a cut-off body, a broken token) is the upstream's
        // momentary fault, not a configuration error: retry with backoff instead of waiting
        // the longest after one bad answer.
        if matches!(error, cognito_auth::Error::Protocol(_)) {
            return Self::Transient;
        }
        match error.class() {
            ErrorClass::Transient => Self::Transient,
            ErrorClass::Throttled => Self::Throttled,
            ErrorClass::NeedsUser => Self::LoginRequired,
            ErrorClass::Terminal => Self::Terminal,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Throttled => "throttled",
            Self::LoginRequired => "login_required",
            Self::Terminal => "terminal",
        }
    }
}

/// A short description of an upstream error: class and code, never a body or a secret.
pub(crate) fn describe_error(error: &cognito_auth::Error) -> String {
    match error.service() {
        Some(service) if service.message.is_empty() => service.code.to_string(),
        Some(service) => format!("{}: {}", service.code, service_message(&service.message)),
        None => error.to_string(),
    }
}

/// The longest piece of an upstream's message we repeat (in API errors and logs).
const MAX_SERVICE_MESSAGE: usize = 200;

/// Cognito's message in our error style: no trailing period, no control characters, at most
/// [`MAX_SERVICE_MESSAGE`] characters. It comes from the network: a hostile or broken endpoint
/// must not fill logs or forge log lines through it.
pub(crate) fn service_message(message: &str) -> String {
    let clean: String = message
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim().trim_end_matches('.');
    match clean.char_indices().nth(MAX_SERVICE_MESSAGE) {
        Some((cut, _)) => format!("{}…", clean[..cut].trim_end()),
        None => clean.to_owned(),
    }
}

/// Maps a login-step failure to the API error. Wrong credentials are `invalid_credentials`.
pub(crate) fn map_login_error(error: &cognito_auth::Error) -> BrokerError {
    if error.is_challenge_expired() {
        return BrokerError::ChallengeExpired;
    }
    let message = error
        .service()
        .map(|s| service_message(&s.message))
        .filter(|m| !m.is_empty());
    match error.code() {
        Some(ErrorCode::CodeMismatch) => {
            return BrokerError::CodeMismatch(message.unwrap_or_else(|| "invalid code".to_owned()));
        }
        Some(ErrorCode::ExpiredCode) => return BrokerError::ChallengeExpired,
        Some(ErrorCode::InvalidPassword | ErrorCode::PasswordHistoryPolicyViolation) => {
            return BrokerError::InvalidPassword(
                message
                    .unwrap_or_else(|| "the password does not meet the pool's policy".to_owned()),
            );
        }
        Some(
            ErrorCode::NotAuthorized
            | ErrorCode::UserNotFound
            | ErrorCode::UserNotConfirmed
            | ErrorCode::PasswordResetRequired
            | ErrorCode::TooManyFailedAttempts,
        ) => {
            return BrokerError::NotAuthorized(
                message.unwrap_or_else(|| "incorrect username or password".to_owned()),
            );
        }
        Some(ErrorCode::TooManyRequests | ErrorCode::LimitExceeded) => {
            return BrokerError::UpstreamUnavailable {
                retry_after: Duration::from_secs(30),
                reason: describe_error(error),
            };
        }
        _ => {}
    }
    match error {
        cognito_auth::Error::Unsupported(what) => BrokerError::Unsupported(what.clone()),
        cognito_auth::Error::InvalidInput(what) => BrokerError::BadInput {
            field: "answer",
            message: what.clone(),
        },
        _ => match error.class() {
            ErrorClass::Transient | ErrorClass::Throttled => BrokerError::UpstreamUnavailable {
                retry_after: Duration::from_secs(5),
                reason: describe_error(error),
            },
            ErrorClass::NeedsUser => BrokerError::NotAuthorized(describe_error(error)),
            ErrorClass::Terminal => BrokerError::Misconfigured(describe_error(error)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_messages_are_bounded_and_cannot_forge_log_lines() {
        assert_eq!(
            service_message(" Incorrect username or password. "),
            "Incorrect username or password"
        );
        assert_eq!(
            service_message("bad\nlevel=ERROR fake=1\r\u{1b}[31m"),
            "bad level=ERROR fake=1  [31m"
        );
        let long = "x".repeat(10_000);
        let shown = service_message(&long);
        assert_eq!(shown.chars().count(), MAX_SERVICE_MESSAGE + 1);
        assert!(shown.ends_with('…'));
        let multibyte = "é".repeat(300);
        assert_eq!(
            service_message(&multibyte).chars().count(),
            MAX_SERVICE_MESSAGE + 1
        );
    }
}
