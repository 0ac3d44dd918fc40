//! Cognito-shaped service errors: the `__type`, the message and the HTTP status.

pub(crate) const INCORRECT_CREDENTIALS: &str = "Incorrect username or password.";
pub(crate) const SESSION_EXPIRED: &str = "Invalid session for the user, session is expired.";
pub(crate) const SESSION_USED: &str =
    "Invalid session for the user, session can only be used once.";
pub(crate) const CODE_MISMATCH: &str = "Invalid code or auth state for the user.";
pub(crate) const ATTEMPTS_EXCEEDED: &str = "Password attempts exceeded";
pub(crate) const USER_DISABLED: &str = "User is disabled.";
pub(crate) const USER_NOT_FOUND: &str = "User does not exist.";
pub(crate) const DEVICE_NOT_FOUND: &str = "Device does not exist.";
pub(crate) const INVALID_REFRESH: &str = "Invalid Refresh Token";
pub(crate) const REFRESH_REVOKED: &str = "Refresh Token has been revoked";
pub(crate) const REFRESH_EXPIRED: &str = "Refresh Token has expired";
pub(crate) const ACCESS_INVALID: &str = "Invalid Access Token";
pub(crate) const ACCESS_REVOKED: &str = "Access Token has been revoked";
pub(crate) const ACCESS_EXPIRED: &str = "Access Token has expired";
pub(crate) const TIMESTAMP_FORMAT: &str =
    "TIMESTAMP format should be EEE MMM d HH:mm:ss z yyyy in english.";

/// One error answer: `{"__type": code, "message": message}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) status: u16,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The HTTP status the service sends with error `code`: 500 for internal errors, else 400.
pub(crate) fn status_for(code: &str) -> u16 {
    if code == "InternalErrorException" {
        500
    } else {
        400
    }
}

impl ApiError {
    /// An error with the status the service uses on the wire ([`status_for`]).
    pub(crate) fn new(code: &str, message: impl Into<String>) -> Self {
        ApiError {
            code: code.to_owned(),
            message: message.into(),
            status: status_for(code),
        }
    }

    pub(crate) fn not_authorized(message: impl Into<String>) -> Self {
        Self::new("NotAuthorizedException", message)
    }

    pub(crate) fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }

    pub(crate) fn resource_not_found(message: impl Into<String>) -> Self {
        Self::new("ResourceNotFoundException", message)
    }

    pub(crate) fn code_mismatch() -> Self {
        Self::new("CodeMismatchException", CODE_MISMATCH)
    }

    pub(crate) fn user_not_found() -> Self {
        Self::new("UserNotFoundException", USER_NOT_FOUND)
    }

    /// "Missing required parameter X", as for absent AuthParameters or ChallengeResponses keys.
    pub(crate) fn missing(parameter: &str) -> Self {
        Self::invalid_parameter(format!("Missing required parameter {parameter}"))
    }
}
