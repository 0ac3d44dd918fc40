//! The crate's one error type, Cognito's error codes, and how the broker should react to each.
//!
//! Nothing here ever holds a request body, so no `Display` or `Debug` of an error can carry a
//! password, a code or a token; the server's own `message` is kept because it is what tells
//! "Refresh Token has expired" from "Incorrect username or password".

use std::fmt;

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

/// An error reply from Cognito.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cognito rejected the request: {code}: {message} (http {status})")]
pub struct ServiceError {
    /// The error type, e.g. `NotAuthorizedException`.
    pub code: ErrorCode,
    /// The server's message, or empty when it sent none.
    pub message: String,
    /// The HTTP status. Do not classify by it: Cognito answers most errors with 400.
    pub status: u16,
}

/// Cognito's error types (the `__type` without the `Exception` suffix).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Bad credentials, disabled user, bad/expired/revoked token, bad session or secret hash.
    NotAuthorized,
    /// Unknown user (only with `PreventUserExistenceErrors` = `LEGACY`).
    UserNotFound,
    /// Sign-up not confirmed.
    UserNotConfirmed,
    /// An administrator forced a password reset.
    PasswordResetRequired,
    /// Wrong MFA, verification or reset code.
    CodeMismatch,
    /// The code expired.
    ExpiredCode,
    /// Too many wrong codes.
    TooManyFailedAttempts,
    /// Throttled.
    TooManyRequests,
    /// A per-user action limit was hit.
    LimitExceeded,
    /// Malformed request or a flow not enabled for the client.
    InvalidParameter,
    /// The new password breaks the pool's policy.
    InvalidPassword,
    /// The new password was used before.
    PasswordHistoryPolicyViolation,
    /// Unknown client or pool, or "Device does not exist".
    ResourceNotFound,
    /// The pool or client is misconfigured.
    InvalidUserPoolConfiguration,
    /// A trigger Lambda returned something invalid.
    InvalidLambdaResponse,
    /// A trigger Lambda failed.
    UnexpectedLambda,
    /// A trigger Lambda rejected the request.
    UserLambdaValidation,
    /// The pool's SMS role policy is wrong.
    InvalidSmsRoleAccessPolicy,
    /// The pool's SMS role trust relationship is wrong.
    InvalidSmsRoleTrustRelationship,
    /// The pool's email role policy is wrong.
    InvalidEmailRoleAccessPolicy,
    /// A code could not be delivered.
    CodeDeliveryFailure,
    /// The requested MFA method is not configured.
    MfaMethodNotFound,
    /// TOTP is not enabled, or no token is associated.
    SoftwareTokenMfaNotFound,
    /// VerifySoftwareToken rejected the code during TOTP setup.
    EnableSoftwareTokenMfa,
    /// An email or phone alias belongs to another user.
    AliasExists,
    /// Blocked by the pool's web ACL.
    Forbidden,
    /// The operation is not enabled here (region, replica or pool configuration).
    OperationNotEnabled,
    /// A rotated-out refresh token was presented after its grace period.
    RefreshTokenReuse,
    /// RevokeToken: invalid token or client authentication.
    Unauthorized,
    /// RevokeToken was given something that is not a refresh token.
    UnsupportedTokenType,
    /// The operation or mode is not supported (e.g. revocation disabled on the client).
    UnsupportedOperation,
    /// A service fault.
    InternalError,
    /// The endpoint does not know the operation at all (`UnknownOperationException`,
    /// `InvalidAction`): an emulator or proxy without it.
    UnknownOperation,
    /// The reply named no error type at all; only the HTTP status is known.
    Unnamed,
    /// Any other error type, as sent (namespace and `Exception` suffix kept as received).
    Other(String),
}

impl ErrorCode {
    /// Maps a cleaned error type (no namespace, nothing after ':') to a code.
    pub fn from_type(name: &str) -> ErrorCode {
        match name {
            "NotAuthorizedException" => ErrorCode::NotAuthorized,
            "UserNotFoundException" => ErrorCode::UserNotFound,
            "UserNotConfirmedException" => ErrorCode::UserNotConfirmed,
            "PasswordResetRequiredException" => ErrorCode::PasswordResetRequired,
            "CodeMismatchException" => ErrorCode::CodeMismatch,
            "ExpiredCodeException" => ErrorCode::ExpiredCode,
            "TooManyFailedAttemptsException" => ErrorCode::TooManyFailedAttempts,
            "TooManyRequestsException" | "ThrottlingException" | "Throttling" => {
                ErrorCode::TooManyRequests
            }
            "LimitExceededException" => ErrorCode::LimitExceeded,
            "InvalidParameterException" => ErrorCode::InvalidParameter,
            "InvalidPasswordException" => ErrorCode::InvalidPassword,
            "PasswordHistoryPolicyViolationException" => ErrorCode::PasswordHistoryPolicyViolation,
            "ResourceNotFoundException" => ErrorCode::ResourceNotFound,
            "InvalidUserPoolConfigurationException" => ErrorCode::InvalidUserPoolConfiguration,
            "InvalidLambdaResponseException" => ErrorCode::InvalidLambdaResponse,
            "UnexpectedLambdaException" => ErrorCode::UnexpectedLambda,
            "UserLambdaValidationException" => ErrorCode::UserLambdaValidation,
            "InvalidSmsRoleAccessPolicyException" => ErrorCode::InvalidSmsRoleAccessPolicy,
            "InvalidSmsRoleTrustRelationshipException" => {
                ErrorCode::InvalidSmsRoleTrustRelationship
            }
            "InvalidEmailRoleAccessPolicyException" => ErrorCode::InvalidEmailRoleAccessPolicy,
            "CodeDeliveryFailureException" => ErrorCode::CodeDeliveryFailure,
            "MFAMethodNotFoundException" => ErrorCode::MfaMethodNotFound,
            "SoftwareTokenMFANotFoundException" => ErrorCode::SoftwareTokenMfaNotFound,
            "EnableSoftwareTokenMFAException" => ErrorCode::EnableSoftwareTokenMfa,
            "AliasExistsException" => ErrorCode::AliasExists,
            "ForbiddenException" => ErrorCode::Forbidden,
            "OperationNotEnabledException" => ErrorCode::OperationNotEnabled,
            "RefreshTokenReuseException" => ErrorCode::RefreshTokenReuse,
            "UnauthorizedException" => ErrorCode::Unauthorized,
            "UnsupportedTokenTypeException" => ErrorCode::UnsupportedTokenType,
            "UnsupportedOperationException" => ErrorCode::UnsupportedOperation,
            "InternalErrorException" | "InternalFailure" | "ServiceUnavailable" => {
                ErrorCode::InternalError
            }
            "UnknownOperationException" | "InvalidAction" => ErrorCode::UnknownOperation,
            "" => ErrorCode::Unnamed,
            other => ErrorCode::Other(other.to_owned()),
        }
    }

    /// The wire name, e.g. `NotAuthorizedException`; empty for [`ErrorCode::Unnamed`].
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::NotAuthorized => "NotAuthorizedException",
            ErrorCode::UserNotFound => "UserNotFoundException",
            ErrorCode::UserNotConfirmed => "UserNotConfirmedException",
            ErrorCode::PasswordResetRequired => "PasswordResetRequiredException",
            ErrorCode::CodeMismatch => "CodeMismatchException",
            ErrorCode::ExpiredCode => "ExpiredCodeException",
            ErrorCode::TooManyFailedAttempts => "TooManyFailedAttemptsException",
            ErrorCode::TooManyRequests => "TooManyRequestsException",
            ErrorCode::LimitExceeded => "LimitExceededException",
            ErrorCode::InvalidParameter => "InvalidParameterException",
            ErrorCode::InvalidPassword => "InvalidPasswordException",
            ErrorCode::PasswordHistoryPolicyViolation => "PasswordHistoryPolicyViolationException",
            ErrorCode::ResourceNotFound => "ResourceNotFoundException",
            ErrorCode::InvalidUserPoolConfiguration => "InvalidUserPoolConfigurationException",
            ErrorCode::InvalidLambdaResponse => "InvalidLambdaResponseException",
            ErrorCode::UnexpectedLambda => "UnexpectedLambdaException",
            ErrorCode::UserLambdaValidation => "UserLambdaValidationException",
            ErrorCode::InvalidSmsRoleAccessPolicy => "InvalidSmsRoleAccessPolicyException",
            ErrorCode::InvalidSmsRoleTrustRelationship => {
                "InvalidSmsRoleTrustRelationshipException"
            }
            ErrorCode::InvalidEmailRoleAccessPolicy => "InvalidEmailRoleAccessPolicyException",
            ErrorCode::CodeDeliveryFailure => "CodeDeliveryFailureException",
            ErrorCode::MfaMethodNotFound => "MFAMethodNotFoundException",
            ErrorCode::SoftwareTokenMfaNotFound => "SoftwareTokenMFANotFoundException",
            ErrorCode::EnableSoftwareTokenMfa => "EnableSoftwareTokenMFAException",
            ErrorCode::AliasExists => "AliasExistsException",
            ErrorCode::Forbidden => "ForbiddenException",
            ErrorCode::OperationNotEnabled => "OperationNotEnabledException",
            ErrorCode::RefreshTokenReuse => "RefreshTokenReuseException",
            ErrorCode::Unauthorized => "UnauthorizedException",
            ErrorCode::UnsupportedTokenType => "UnsupportedTokenTypeException",
            ErrorCode::UnsupportedOperation => "UnsupportedOperationException",
            ErrorCode::InternalError => "InternalErrorException",
            ErrorCode::UnknownOperation => "UnknownOperationException",
            ErrorCode::Unnamed => "",
            ErrorCode::Other(name) => name,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Unnamed => f.write_str("unnamed error"),
            other => f.write_str(other.as_str()),
        }
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
            Error::Service(service) => service.class(),
            Error::Transport { .. } | Error::Shutdown => ErrorClass::Transient,
            Error::ChallengeExpired => ErrorClass::NeedsUser,
            Error::Protocol(_)
            | Error::Srp(_)
            | Error::Unsupported(_)
            | Error::InvalidInput(_)
            | Error::InvalidToken(_) => ErrorClass::Terminal,
        }
    }

    /// The Cognito error code, when Cognito answered with an error.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Service(service) => Some(&service.code),
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

    /// Why a refresh token was refused, when this error is such a refusal.
    pub fn refresh_failure(&self) -> Option<RefreshFailure> {
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

impl ServiceError {
    /// What the caller should do about this error. Decided on the error type; the HTTP status
    /// only decides for errors that name no known type.
    pub fn class(&self) -> ErrorClass {
        match self.code {
            ErrorCode::InternalError => ErrorClass::Transient,
            ErrorCode::TooManyRequests => ErrorClass::Throttled,
            ErrorCode::NotAuthorized
            | ErrorCode::UserNotFound
            | ErrorCode::UserNotConfirmed
            | ErrorCode::PasswordResetRequired
            | ErrorCode::CodeMismatch
            | ErrorCode::ExpiredCode
            | ErrorCode::TooManyFailedAttempts
            | ErrorCode::LimitExceeded
            | ErrorCode::InvalidPassword
            | ErrorCode::PasswordHistoryPolicyViolation
            | ErrorCode::RefreshTokenReuse
            | ErrorCode::EnableSoftwareTokenMfa
            | ErrorCode::UserLambdaValidation => ErrorClass::NeedsUser,
            ErrorCode::Unnamed | ErrorCode::Other(_) | ErrorCode::UnknownOperation => {
                if self.status == 429 {
                    ErrorClass::Throttled
                } else if self.status >= 500 && self.code != ErrorCode::UnknownOperation {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Terminal
                }
            }
            ErrorCode::InvalidParameter
            | ErrorCode::ResourceNotFound
            | ErrorCode::InvalidUserPoolConfiguration
            | ErrorCode::InvalidLambdaResponse
            | ErrorCode::UnexpectedLambda
            | ErrorCode::InvalidSmsRoleAccessPolicy
            | ErrorCode::InvalidSmsRoleTrustRelationship
            | ErrorCode::InvalidEmailRoleAccessPolicy
            | ErrorCode::CodeDeliveryFailure
            | ErrorCode::MfaMethodNotFound
            | ErrorCode::SoftwareTokenMfaNotFound
            | ErrorCode::AliasExists
            | ErrorCode::Forbidden
            | ErrorCode::OperationNotEnabled
            | ErrorCode::Unauthorized
            | ErrorCode::UnsupportedTokenType
            | ErrorCode::UnsupportedOperation => ErrorClass::Terminal,
        }
    }

    /// Decodes an error reply: the code from the `x-amzn-ErrorType` header, else the body's
    /// `code`, else its `__type`, cut at the first ':' or ',' and stripped of any namespace before
    /// '#'; the message from the body's `message` or `Message`, else `x-amzn-ErrorMessage`.
    /// Bodies that are empty, HTML or otherwise not JSON still give an error, never a panic.
    pub fn from_reply(
        status: u16,
        error_type_header: Option<&str>,
        error_message_header: Option<&str>,
        body: &[u8],
    ) -> ServiceError {
        let json: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(body).ok();
        let body_field = |name: &str| -> Option<String> {
            json.as_ref()?
                .get(name)?
                .as_str()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let raw_type = error_type_header
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .or_else(|| body_field("code"))
            .or_else(|| body_field("__type"))
            .unwrap_or_default();
        let cut = raw_type.split([':', ',']).next().unwrap_or_default();
        let name = cut.rsplit('#').next().unwrap_or_default().trim();

        let mut message = body_field("message")
            .or_else(|| body_field("Message"))
            .or_else(|| error_message_header.map(str::trim).map(str::to_owned))
            .unwrap_or_default();
        if json.is_none() && message.is_empty() {
            message = summarize_non_json(body);
        }

        let mut code = ErrorCode::from_type(name);
        // A throttling intermediary may send `{"message":"Rate exceeded"}` and no type at all.
        if code == ErrorCode::Unnamed
            && (status == 429 || message.to_ascii_lowercase().contains("rate exceeded"))
        {
            code = ErrorCode::TooManyRequests;
        }
        ServiceError {
            code,
            message,
            status,
        }
    }
}

/// A short, printable summary of a body that is not JSON (an HTML error page): its text with
/// the tags stripped and whitespace collapsed, capped at 200 characters. Error pages do not echo
/// request bodies; this is for a human reading a log line, nothing parses it.
fn summarize_non_json(body: &[u8]) -> String {
    const LIMIT: usize = 200;
    let text = String::from_utf8_lossy(body);
    let mut plain = String::new();
    let mut in_tag = false;
    for character in text.chars() {
        match character {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                plain.push(' ');
            }
            _ if !in_tag => plain.push(character),
            _ => {}
        }
    }
    let collapsed = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(LIMIT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, header: Option<&str>, body: &str) -> ServiceError {
        ServiceError::from_reply(status, header, None, body.as_bytes())
    }

    fn check(
        status: u16,
        header: Option<&str>,
        body: &str,
        code: ErrorCode,
        message: &str,
        class: ErrorClass,
    ) {
        let error = parse(status, header, body);
        assert_eq!(
            error.code, code,
            "status {status} header {header:?} body {body:?}"
        );
        assert_eq!(error.message, message, "body {body:?}");
        assert_eq!(error.class(), class, "body {body:?}");
    }

    #[test]
    fn error_parsing_table() {
        use ErrorClass::*;
        use ErrorCode::*;
        check(
            400,
            None,
            r#"{"__type":"NotAuthorizedException","message":"Incorrect username or password."}"#,
            NotAuthorized,
            "Incorrect username or password.",
            NeedsUser,
        );
        // The header wins, and text after ':' is cut.
        check(
            400,
            Some("NotAuthorizedException:http://internal.amazon.com/coral/"),
            r#"{"__type":"SomethingElse","message":"m"}"#,
            NotAuthorized,
            "m",
            NeedsUser,
        );
        // Namespaced forms keep the part after '#'.
        check(
            400,
            None,
            r#"{"__type":"com.amazonaws.cognito.identity.idp.model#CodeMismatchException","message":"Invalid code"}"#,
            CodeMismatch,
            "Invalid code",
            NeedsUser,
        );
        // `code` beats `__type`; `Message` works too; ',' cuts.
        check(
            400,
            None,
            r#"{"code":"ExpiredCodeException,extra","__type":"X","Message":"expired"}"#,
            ExpiredCode,
            "expired",
            NeedsUser,
        );
        // Throttling: only the header names it.
        check(
            400,
            Some("TooManyRequestsException"),
            r#"{"message":"Rate exceeded"}"#,
            TooManyRequests,
            "Rate exceeded",
            Throttled,
        );
        // ... or nothing does.
        check(
            400,
            None,
            r#"{"message":"Rate exceeded"}"#,
            TooManyRequests,
            "Rate exceeded",
            Throttled,
        );
        check(429, None, "", TooManyRequests, "", Throttled);
        // HTML 500 and empty bodies.
        check(
            500,
            None,
            "<html><head><title>500 Internal Server Error</title></head><body>boom</body></html>",
            Unnamed,
            "500 Internal Server Error boom",
            Transient,
        );
        check(503, None, "", Unnamed, "", Transient);
        check(
            400,
            Some("InvalidParameterException"),
            "",
            InvalidParameter,
            "",
            Terminal,
        );
        check(
            500,
            None,
            r#"{"__type":"InternalErrorException","message":"x"}"#,
            InternalError,
            "x",
            Transient,
        );
        check(
            400,
            None,
            r#"{"__type":"RefreshTokenReuseException","message":"reused"}"#,
            RefreshTokenReuse,
            "reused",
            NeedsUser,
        );
        check(
            404,
            None,
            r#"{"__type":"ResourceNotFoundException","message":"Device does not exist."}"#,
            ResourceNotFound,
            "Device does not exist.",
            Terminal,
        );
        check(
            400,
            None,
            r#"{"__type":"PasswordHistoryPolicyViolationException","message":"p"}"#,
            PasswordHistoryPolicyViolation,
            "p",
            NeedsUser,
        );
        check(
            400,
            None,
            r#"{"__type":"SomeNewException","message":"n"}"#,
            Other("SomeNewException".into()),
            "n",
            Terminal,
        );
        // A JSON body that is not an object, and a header with only whitespace.
        check(502, Some("  "), "[1,2]", Unnamed, "[1,2]", Transient);
    }

    #[test]
    fn message_header_is_a_fallback() {
        let error = ServiceError::from_reply(
            400,
            Some("UserNotFoundException"),
            Some("User does not exist."),
            b"",
        );
        assert_eq!(error.code, ErrorCode::UserNotFound);
        assert_eq!(error.message, "User does not exist.");
    }

    #[test]
    fn every_named_type_round_trips() {
        let names = [
            "NotAuthorizedException",
            "UserNotFoundException",
            "UserNotConfirmedException",
            "PasswordResetRequiredException",
            "CodeMismatchException",
            "ExpiredCodeException",
            "TooManyFailedAttemptsException",
            "TooManyRequestsException",
            "LimitExceededException",
            "InvalidParameterException",
            "InvalidPasswordException",
            "PasswordHistoryPolicyViolationException",
            "ResourceNotFoundException",
            "InvalidUserPoolConfigurationException",
            "InvalidLambdaResponseException",
            "UnexpectedLambdaException",
            "UserLambdaValidationException",
            "InvalidSmsRoleAccessPolicyException",
            "InvalidSmsRoleTrustRelationshipException",
            "InvalidEmailRoleAccessPolicyException",
            "CodeDeliveryFailureException",
            "MFAMethodNotFoundException",
            "SoftwareTokenMFANotFoundException",
            "EnableSoftwareTokenMFAException",
            "AliasExistsException",
            "ForbiddenException",
            "OperationNotEnabledException",
            "RefreshTokenReuseException",
            "UnauthorizedException",
            "UnsupportedTokenTypeException",
            "UnsupportedOperationException",
            "InternalErrorException",
            "UnknownOperationException",
        ];
        for name in names {
            let code = ErrorCode::from_type(name);
            assert!(!matches!(code, ErrorCode::Other(_)), "{name} is not mapped");
            assert_eq!(code.as_str(), name);
        }
    }

    fn service(code: ErrorCode, message: &str, status: u16) -> Error {
        Error::Service(ServiceError {
            code,
            message: message.into(),
            status,
        })
    }

    #[test]
    fn refresh_failures_are_told_apart_by_message() {
        let cases = [
            (
                ErrorCode::NotAuthorized,
                "Refresh Token has been revoked",
                Some(RefreshFailure::Revoked),
            ),
            (
                ErrorCode::NotAuthorized,
                "Refresh Token has expired",
                Some(RefreshFailure::Expired),
            ),
            (
                ErrorCode::NotAuthorized,
                "Invalid Refresh Token",
                Some(RefreshFailure::Invalid),
            ),
            (
                ErrorCode::RefreshTokenReuse,
                "whatever",
                Some(RefreshFailure::Reused),
            ),
            (ErrorCode::NotAuthorized, "User is disabled.", None),
            (ErrorCode::InternalError, "Refresh Token has expired", None),
        ];
        for (code, message, expected) in cases {
            assert_eq!(
                service(code, message, 400).refresh_failure(),
                expected,
                "{message}"
            );
        }
    }

    #[test]
    fn session_expiry_is_recognised() {
        assert!(Error::ChallengeExpired.is_challenge_expired());
        assert!(
            service(
                ErrorCode::NotAuthorized,
                "Invalid session for the user, session is expired.",
                400
            )
            .is_challenge_expired()
        );
        assert!(
            service(
                ErrorCode::NotAuthorized,
                "Invalid session for the user, session can only be used once.",
                400
            )
            .is_challenge_expired()
        );
        assert!(
            !service(
                ErrorCode::NotAuthorized,
                "Incorrect username or password.",
                400
            )
            .is_challenge_expired()
        );
        assert_eq!(Error::ChallengeExpired.class(), ErrorClass::NeedsUser);
    }

    #[test]
    fn unknown_operation_detection() {
        let from_reply = |status: u16, header: Option<&str>, body: &str| {
            Error::Service(ServiceError::from_reply(
                status,
                header,
                None,
                body.as_bytes(),
            ))
        };
        let missing = [
            from_reply(400, Some("UnknownOperationException"), ""),
            from_reply(400, None, r#"{"__type":"InvalidAction","message":"no"}"#),
            from_reply(
                500,
                None,
                r#"{"__type":"CognitoLocal#Unsupported","message":"Cognito Local unsupported feature: GetTokensFromRefreshToken"}"#,
            ),
            from_reply(404, None, "<html>Not Found</html>"),
            from_reply(501, None, ""),
            from_reply(
                501,
                None,
                r#"{"__type":"InternalFailure","message":"API action 'GetTokensFromRefreshToken' for service 'cognito-idp' not yet implemented"}"#,
            ),
            from_reply(
                500,
                None,
                "<!doctype html><title>500 Internal Server Error</title><p>The method GetTokensFromRefreshToken has not been implemented</p>",
            ),
            from_reply(
                500,
                None,
                "<html><body><h1>NotImplementedError</h1>get_tokens_from_refresh_token is not implemented</body></html>",
            ),
        ];
        for error in &missing {
            assert!(error.is_unknown_operation(), "{error:?}");
        }
        let present = [
            from_reply(
                400,
                None,
                r#"{"__type":"NotAuthorizedException","message":"Invalid Refresh Token"}"#,
            ),
            from_reply(
                404,
                None,
                r#"{"__type":"ResourceNotFoundException","message":"not implemented"}"#,
            ),
            from_reply(
                500,
                None,
                "<html><title>500 Internal Server Error</title></html>",
            ),
            from_reply(
                500,
                None,
                r#"{"__type":"InternalErrorException","message":"boom"}"#,
            ),
            from_reply(
                400,
                None,
                r#"{"__type":"UnsupportedOperationException","message":"x"}"#,
            ),
        ];
        for error in &present {
            assert!(!error.is_unknown_operation(), "{error:?}");
        }
        assert!(!Error::Protocol("x".into()).is_unknown_operation());
    }

    #[test]
    fn unknown_device_detection() {
        assert!(
            service(ErrorCode::ResourceNotFound, "Device does not exist.", 400).is_unknown_device()
        );
        assert!(
            !service(
                ErrorCode::ResourceNotFound,
                "User pool client x does not exist.",
                400
            )
            .is_unknown_device()
        );
        assert!(
            !service(ErrorCode::NotAuthorized, "Device does not exist.", 400).is_unknown_device()
        );
    }

    #[test]
    fn display_is_lowercase_and_has_the_server_message() {
        let error = service(
            ErrorCode::NotAuthorized,
            "Incorrect username or password.",
            400,
        );
        assert_eq!(
            error.to_string(),
            "cognito rejected the request: NotAuthorizedException: Incorrect username or password. (http 400)"
        );
        assert_eq!(
            Error::ChallengeExpired.to_string(),
            "the sign-in session expired; start again"
        );
    }
}
