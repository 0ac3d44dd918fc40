//! The crate's one error type, Cognito's error codes, and how the broker should react to each.
//!
//! Nothing here ever holds a request body, so no `Display` or `Debug` of an error can carry a
//! password, a code or a token; the server's own `message` is kept because it is what tells
//! "Refresh Token has expired" from "Incorrect username or password".

mod code;
mod oauth;
mod service;

use std::fmt;

pub use code::ErrorCode;
pub use oauth::{OAuthError, OAuthErrorCode, OAuthRequest};
pub use service::ServiceError;

use crate::srp::SrpError;

/// Everything that can go wrong talking to Cognito or computing an answer for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Cognito answered with an error (`__type` / `x-amzn-ErrorType`).
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// No reply arrived: the connection failed, timed out or broke.
    #[error("cognito could not be reached ({kind})")]
    Transport {
        /// What kind of failure it was.
        kind: TransportKind,
        /// The HTTP client's error (it names the endpoint, never the body).
        #[source]
        source: reqwest::Error,
    },
    /// Cognito replied with something this client cannot make sense of, e.g. a 200 holding
    /// neither a challenge nor tokens.
    #[error("unexpected reply from cognito: {0}")]
    Protocol(String),
    /// The SRP computation refused the server's values.
    #[error("srp computation failed")]
    Srp(#[from] SrpError),
    /// The server asked for something this client cannot do (e.g. a WebAuthn passkey).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The caller asked for something impossible (no password for an SRP login, an answer that
    /// does not fit the challenge, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The pending challenge is older than the session lifetime: start the sign-in again.
    #[error("the sign-in session expired; start again")]
    ChallengeExpired,
    /// A token failed verification against the JWKS.
    #[error("token rejected: {0}")]
    InvalidToken(String),
    /// The async runtime shut down while a step was being computed.
    #[error("the runtime is shutting down")]
    Shutdown,
    /// An OAuth 2.0 endpoint of the user-pool domain answered with an error, or the
    /// authorization redirect carried one.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// AWS STS answered with an error (`<ErrorResponse><Error><Code>`).
    #[error("sts rejected the request: {}: {} (http {})", .0.code, .0.message, .0.status)]
    Sts(ServiceError),
    /// The authorization redirect's `state` is missing or is not the one this login sent: the
    /// redirect is not the answer to this login, and its code is never redeemed.
    #[error("the redirect's state does not match this login's; the code was not redeemed")]
    StateMismatch,
}

/// How a transport failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// The TCP or TLS connection could not be set up.
    Connect,
    /// The connect or request timeout elapsed.
    Timeout,
    /// Anything else: a broken connection, an unreadable body.
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Connect => "connect failed",
            TransportKind::Timeout => "timed out",
            TransportKind::Other => "connection error",
        })
    }
}

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry later with backoff: 5xx, `InternalErrorException`, network failures, timeouts.
    Transient,
    /// Slow down and retry: `TooManyRequestsException`, HTTP 429.
    Throttled,
    /// Retrying will not help; a person must act (sign in again, fix the password, wait out a
    /// lockout, ...).
    NeedsUser,
    /// A bug or a configuration error: retrying or re-prompting will not help.
    Terminal,
}

/// Why a refresh token stopped working, told apart by the server's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshFailure {
    /// "Refresh Token has been revoked" (RevokeToken, GlobalSignOut).
    Revoked,
    /// "Refresh Token has expired".
    Expired,
    /// `RefreshTokenReuseException`: a rotated-out token presented after the grace period.
    Reused,
    /// "Invalid Refresh Token" (also: device tracking on and the device unconfirmed or missing).
    Invalid,
}

impl Error {
    /// What the caller should do about this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Service(service) | Error::Sts(service) => service.class(),
            Error::OAuth(oauth) => oauth.class(),
            Error::StateMismatch => ErrorClass::NeedsUser,
            Error::Transport { .. } | Error::Shutdown => ErrorClass::Transient,
            Error::ChallengeExpired => ErrorClass::NeedsUser,
            Error::Protocol(_)
            | Error::Srp(_)
            | Error::Unsupported(_)
            | Error::InvalidInput(_)
            | Error::InvalidToken(_) => ErrorClass::Terminal,
        }
    }

    /// The error code, when Cognito (or STS) answered with an error.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Service(service) | Error::Sts(service) => Some(&service.code),
            _ => None,
        }
    }

    /// The server's error, when Cognito answered with one.
    pub fn service(&self) -> Option<&ServiceError> {
        match self {
            Error::Service(service) => Some(service),
            _ => None,
        }
    }

    /// The OAuth endpoint's error, when it answered with one.
    pub fn oauth(&self) -> Option<&OAuthError> {
        match self {
            Error::OAuth(oauth) => Some(oauth),
            _ => None,
        }
    }

    /// Whether the error says the client's configuration is wrong (an OAuth `invalid_client`,
    /// `invalid_scope`, `unauthorized_client` or `unsupported_grant_type`): no retry helps until
    /// the configuration changes.
    pub fn is_misconfigured(&self) -> bool {
        self.oauth().is_some_and(OAuthError::is_misconfigured)
    }

    /// Why a refresh token was refused, when this error is such a refusal (including the OAuth
    /// refresh_token grant's `invalid_grant`).
    pub fn refresh_failure(&self) -> Option<RefreshFailure> {
        if let Error::OAuth(oauth) = self {
            return oauth.refresh_failure();
        }
        let service = self.service()?;
        match service.code {
            ErrorCode::RefreshTokenReuse => Some(RefreshFailure::Reused),
            ErrorCode::NotAuthorized => {
                let message = service.message.to_ascii_lowercase();
                if message.contains("has been revoked") {
                    Some(RefreshFailure::Revoked)
                } else if message.contains("has expired") {
                    Some(RefreshFailure::Expired)
                } else if message.contains("invalid refresh token") {
                    Some(RefreshFailure::Invalid)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Whether the sign-in session is gone and the sign-in must start over: the pending login
    /// outlived its window here, or Cognito said "session is expired" / "can only be used once".
    pub fn is_challenge_expired(&self) -> bool {
        match self {
            Error::ChallengeExpired => true,
            Error::Service(service) if service.code == ErrorCode::NotAuthorized => {
                let message = service.message.to_ascii_lowercase();
                message.contains("session is expired")
                    || message.contains("session can only be used once")
                    || message.starts_with("invalid session")
            }
            _ => false,
        }
    }

    /// Whether Cognito said the stored device key is unknown ("Device does not exist").
    pub fn is_unknown_device(&self) -> bool {
        self.service().is_some_and(|service| {
            service.code == ErrorCode::ResourceNotFound
                && service.message.to_ascii_lowercase().contains("device")
        })
    }

    /// Whether the endpoint does not implement the operation at all, as emulators answer for
    /// operations they lack. The explicit list:
    /// - `UnknownOperationException` / `InvalidAction` (any status);
    /// - an `Unsupported` error type (cognito-local: `CognitoLocal#Unsupported`);
    /// - HTTP 404 or 501 that names no known Cognito error;
    /// - HTTP 500 that names no known Cognito error and whose message says "not implemented",
    ///   "not yet implemented", "has not been implemented" or "unsupported".
    ///
    /// moto's bare HTML 500 says none of these; the refresh fallback treats that case apart
    /// (see `Authenticator::refresh`).
    pub fn is_unknown_operation(&self) -> bool {
        let Some(service) = self.service() else {
            return false;
        };
        let anonymous = matches!(service.code, ErrorCode::Unnamed | ErrorCode::Other(_));
        let message = service.message.to_ascii_lowercase();
        let says_missing = message.contains("not implemented")
            || message.contains("not yet implemented")
            || message.contains("not been implemented")
            || message.contains("notimplemented")
            || message.contains("unsupported");
        match &service.code {
            ErrorCode::UnknownOperation => true,
            ErrorCode::Other(name) if name == "Unsupported" || name == "NotImplemented" => true,
            _ if anonymous && matches!(service.status, 404 | 501) => true,
            _ if anonymous && service.status == 500 && says_missing => true,
            ErrorCode::InternalError if service.status == 501 => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
