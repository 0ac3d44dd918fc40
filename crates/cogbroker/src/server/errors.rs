//! Error mapping: the one place that knows HTTP status codes. A [`BrokerError`] becomes a
//! status, an [`ErrorBody`] and, where it applies, `Retry-After`; the server's own refusals
//! (listener checks, parsing) are built here too.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{self, HeaderValue};

use crate::api::ErrorBody;
use crate::broker::BrokerError;

/// An error answer: `{"error": code, "message": ...}` with its status, and `Retry-After` or
/// `WWW-Authenticate` where they apply. Messages never carry secrets or raw request input.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) field: Option<&'static str>,
    pub(super) retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with this status, machine-readable code and human message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 400: bad input, naming the field (in the message and in the body's `field`).
    pub fn bad_input(field: &'static str, message: impl std::fmt::Display) -> Self {
        Self {
            field: Some(field),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "bad_input",
                format!("{field}: {message}"),
            )
        }
    }

    /// 400 about a field whose name came from the request (an unknown field): the message names
    /// it, the body's `field` does not (it is not one of ours).
    pub(super) fn bad_input_named(name: &str, message: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_input",
            format!("{name}: {message}"),
        )
    }

    /// 403: a listener check refused the request; the message says which.
    pub(super) fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// The HTTP status of each broker error (design.md §5, "Status codes"): the only place that
/// knows them. The code is the broker's own stable [`BrokerError::code`].
pub(crate) fn status_of(error: &BrokerError) -> StatusCode {
    match error {
        BrokerError::UnknownProfile(_) | BrokerError::UnknownLogin => StatusCode::NOT_FOUND,
        BrokerError::LoginInProgress => StatusCode::CONFLICT,
        BrokerError::LoginRequired { .. } | BrokerError::NotAuthorized(_) => {
            StatusCode::UNAUTHORIZED
        }
        BrokerError::UpstreamUnavailable { .. } | BrokerError::ShuttingDown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        BrokerError::CodeMismatch(_)
        | BrokerError::InvalidPassword(_)
        | BrokerError::ChallengeExpired
        | BrokerError::Unsupported(_) => StatusCode::UNPROCESSABLE_ENTITY,
        BrokerError::BadInput { .. } => StatusCode::BAD_REQUEST,
        BrokerError::Misconfigured(_) | BrokerError::Internal(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl From<BrokerError> for ApiError {
    fn from(error: BrokerError) -> Self {
        let (status, code) = (status_of(&error), error.code());
        if let BrokerError::Internal(_) = error {
            // Internal failures are logged in full here and answered plainly.
            tracing::error!(error = format_args!("{error:#}"), "request failed");
            return Self::new(status, code, "internal error; see the daemon's log");
        }
        if status.is_server_error() {
            tracing::warn!(code, error = %error, "request failed");
        }
        let (field, retry_after) = match &error {
            BrokerError::BadInput { field, .. } => (Some(*field), None),
            _ => (None, error.retry_after()),
        };
        Self {
            status,
            code,
            message: error.to_string(),
            field,
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
            field: self.field.map(str::to_owned),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthorized" {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// 415: a body that is not JSON.
pub(super) fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "request bodies must be JSON with `Content-Type: application/json`",
    )
}

/// 413: a body over the limit.
pub(super) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body exceeds {limit} bytes"),
    )
}

/// 431: a request head over the limit.
pub(super) fn headers_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        format!("the request's headers exceed {limit} bytes"),
    )
}

/// 401: a wrong or missing API key.
pub(super) fn unauthorized(message: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// 412: no `X-Cogbroker-Request: 1`.
pub(super) fn missing_request_header() -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "missing_request_header",
        "requests to /v1/ must carry the header `X-Cogbroker-Request: 1`",
    )
}

/// 404: no such endpoint.
pub(super) fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see GET /v1/openapi.json",
    )
}

/// 405, naming the method when it is a plain one.
pub(super) fn method_not_allowed(method: &http::Method) -> ApiError {
    let name = method.as_str();
    let label = if name.len() <= 16 && name.bytes().all(|b| b.is_ascii_uppercase()) {
        name
    } else {
        "this method"
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{label} is not allowed on this endpoint"),
    )
}

/// The field name a refusal may show: a plain one as it is, anything else as "body".
pub(super) fn shown_name(name: &str) -> &str {
    let plain = name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain { name } else { "body" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(error: BrokerError) -> (u16, &'static str, Option<&'static str>, Option<Duration>) {
        let api = ApiError::from(error);
        (api.status.as_u16(), api.code, api.field, api.retry_after)
    }

    #[test]
    fn every_broker_error_has_its_documented_status() {
        let cases = [
            (
                BrokerError::UnknownProfile("x".to_owned()),
                404,
                "unknown_profile",
            ),
            (BrokerError::UnknownLogin, 404, "unknown_login"),
            (BrokerError::LoginInProgress, 409, "login_in_progress"),
            (
                BrokerError::LoginRequired {
                    profile: "dev".to_owned(),
                    reason: "r".to_owned(),
                },
                401,
                "login_required",
            ),
            (
                BrokerError::NotAuthorized("n".to_owned()),
                401,
                "invalid_credentials",
            ),
            (
                BrokerError::CodeMismatch("c".to_owned()),
                422,
                "code_mismatch",
            ),
            (
                BrokerError::InvalidPassword("p".to_owned()),
                422,
                "invalid_password",
            ),
            (BrokerError::ChallengeExpired, 422, "challenge_expired"),
            (BrokerError::Unsupported("u".to_owned()), 422, "unsupported"),
            (
                BrokerError::Misconfigured("m".to_owned()),
                500,
                "misconfigured",
            ),
            (BrokerError::Internal(anyhow::anyhow!("i")), 500, "internal"),
        ];
        for (error, status, code) in cases {
            assert_eq!(mapped(error), (status, code, None, None), "{code}");
        }
    }

    #[test]
    fn bad_input_names_its_field_and_503_says_when() {
        let bad = BrokerError::BadInput {
            field: "password",
            message: "a password is required".to_owned(),
        };
        assert_eq!(mapped(bad), (400, "bad_input", Some("password"), None));
        let down = BrokerError::UpstreamUnavailable {
            retry_after: Duration::from_millis(1500),
            reason: "transient".to_owned(),
        };
        assert_eq!(
            mapped(down),
            (
                503,
                "upstream_unavailable",
                None,
                Some(Duration::from_millis(1500))
            )
        );
    }

    #[test]
    fn internal_errors_say_nothing_of_their_cause() {
        let api = ApiError::from(BrokerError::Internal(anyhow::anyhow!("disk on fire")));
        assert_eq!(api.message, "internal error; see the daemon's log");
    }
}
