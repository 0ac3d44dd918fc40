//! An error from the OAuth 2.0 endpoints of a user-pool domain (RFC 6749 §5.2, RFC 7009 §2.2.1),
//! or one carried back on the authorization redirect (§4.1.2.1).

use std::fmt;

use super::service::summarize_non_json;
use super::{ErrorClass, RefreshFailure};

/// An OAuth error: `{"error": "...", "error_description": "..."}`, or the same pair on a
/// redirect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct OAuthError {
    /// The `error` value.
    pub code: OAuthErrorCode,
    /// `error_description`, or a summary of a body that is not JSON; empty when none came.
    pub description: String,
    /// The HTTP status; 0 for an error carried on the authorization redirect.
    pub status: u16,
    /// What was asked for, which decides what an `invalid_grant` means.
    pub request: OAuthRequest,
}

/// The OAuth request an [`OAuthError`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthRequest {
    /// The `/oauth2/authorize` step, answered on the redirect.
    Authorize,
    /// `grant_type=authorization_code`.
    AuthorizationCode,
    /// `grant_type=refresh_token`.
    RefreshToken,
    /// `grant_type=client_credentials`.
    ClientCredentials,
    /// `/oauth2/revoke`.
    Revoke,
}

impl OAuthRequest {
    /// A short name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthRequest::Authorize => "authorization",
            OAuthRequest::AuthorizationCode => "authorization_code grant",
            OAuthRequest::RefreshToken => "refresh_token grant",
            OAuthRequest::ClientCredentials => "client_credentials grant",
            OAuthRequest::Revoke => "revocation",
        }
    }
}

impl fmt::Display for OAuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` values of RFC 6749 and RFC 7009 that Cognito sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`: a parameter is missing, repeated or malformed.
    InvalidRequest,
    /// `invalid_client`: unknown client, or a wrong or missing client secret.
    InvalidClient,
    /// `invalid_grant`: the code or refresh token is invalid, expired, revoked or already used,
    /// or the redirect URI does not match.
    InvalidGrant,
    /// `unauthorized_client`: the client may not use this grant.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`: a scope is unknown or not allowed for the client.
    InvalidScope,
    /// `unsupported_token_type` (revocation).
    UnsupportedTokenType,
    /// `access_denied`: the person or the identity provider refused (redirect).
    AccessDenied,
    /// `unsupported_response_type` (redirect).
    UnsupportedResponseType,
    /// `server_error`.
    ServerError,
    /// `temporarily_unavailable`.
    TemporarilyUnavailable,
    /// No `error` at all: only the HTTP status is known.
    Unnamed,
    /// Any other value, as sent.
    Other(String),
}

impl OAuthErrorCode {
    /// Maps an `error` value to a code.
    pub fn from_wire(name: &str) -> OAuthErrorCode {
        match name {
            "invalid_request" => OAuthErrorCode::InvalidRequest,
            "invalid_client" => OAuthErrorCode::InvalidClient,
            "invalid_grant" => OAuthErrorCode::InvalidGrant,
            "unauthorized_client" => OAuthErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => OAuthErrorCode::UnsupportedGrantType,
            "invalid_scope" => OAuthErrorCode::InvalidScope,
            "unsupported_token_type" => OAuthErrorCode::UnsupportedTokenType,
            "access_denied" => OAuthErrorCode::AccessDenied,
            "unsupported_response_type" => OAuthErrorCode::UnsupportedResponseType,
            "server_error" => OAuthErrorCode::ServerError,
            "temporarily_unavailable" => OAuthErrorCode::TemporarilyUnavailable,
            "" => OAuthErrorCode::Unnamed,
            other => OAuthErrorCode::Other(other.to_owned()),
        }
    }

    /// The wire value; empty for [`OAuthErrorCode::Unnamed`].
    pub fn as_str(&self) -> &str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::UnsupportedTokenType => "unsupported_token_type",
            OAuthErrorCode::AccessDenied => "access_denied",
            OAuthErrorCode::UnsupportedResponseType => "unsupported_response_type",
            OAuthErrorCode::ServerError => "server_error",
            OAuthErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthErrorCode::Unnamed => "",
            OAuthErrorCode::Other(name) => name,
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OAuthErrorCode::Unnamed => f.write_str("unnamed error"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Descriptions and body summaries are capped at this many characters.
const DESCRIPTION_LIMIT: usize = 200;

impl OAuthError {
    /// Decodes an error reply of a token or revocation request. A body that is not JSON (an
    /// HTML error page) still gives an error, never a panic.
    pub fn from_reply(status: u16, body: &[u8], request: OAuthRequest) -> OAuthError {
        let json: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(body).ok();
        let field = |name: &str| -> Option<String> {
            json.as_ref()?
                .get(name)?
                .as_str()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let code = OAuthErrorCode::from_wire(&field("error").unwrap_or_default());
        let description = match &json {
            Some(_) => field("error_description").unwrap_or_default(),
            None => summarize_non_json(body),
        };
        OAuthError {
            code,
            description: description.chars().take(DESCRIPTION_LIMIT).collect(),
            status,
            request,
        }
    }

    /// An error carried on the authorization redirect (`error`, `error_description`).
    pub fn from_redirect(error: &str, description: Option<&str>) -> OAuthError {
        OAuthError {
            code: OAuthErrorCode::from_wire(error.trim()),
            description: description
                .unwrap_or_default()
                .trim()
                .chars()
                .take(DESCRIPTION_LIMIT)
                .collect(),
            status: 0,
            request: OAuthRequest::Authorize,
        }
    }

    /// What the caller should do: `invalid_client`, `invalid_scope` and the other configuration
    /// errors are [`ErrorClass::Terminal`] (the profile is misconfigured; do not retry);
    /// `invalid_grant` and `access_denied` need a person (sign in again); `server_error`,
    /// `temporarily_unavailable` and a 5xx naming nothing are [`ErrorClass::Transient`]; HTTP 429
    /// is [`ErrorClass::Throttled`].
    pub fn class(&self) -> ErrorClass {
        if self.status == 429 {
            return ErrorClass::Throttled;
        }
        match self.code {
            OAuthErrorCode::ServerError | OAuthErrorCode::TemporarilyUnavailable => {
                ErrorClass::Transient
            }
            OAuthErrorCode::InvalidGrant | OAuthErrorCode::AccessDenied => ErrorClass::NeedsUser,
            OAuthErrorCode::InvalidRequest
            | OAuthErrorCode::InvalidClient
            | OAuthErrorCode::UnauthorizedClient
            | OAuthErrorCode::UnsupportedGrantType
            | OAuthErrorCode::InvalidScope
            | OAuthErrorCode::UnsupportedTokenType
            | OAuthErrorCode::UnsupportedResponseType => ErrorClass::Terminal,
            OAuthErrorCode::Unnamed | OAuthErrorCode::Other(_) => {
                if self.status >= 500 {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Terminal
                }
            }
        }
    }

    /// Whether the error says the client's configuration is wrong (its secret, its scopes, the
    /// grants it may use): no retry helps until the configuration changes.
    pub fn is_misconfigured(&self) -> bool {
        matches!(
            self.code,
            OAuthErrorCode::InvalidClient
                | OAuthErrorCode::InvalidScope
                | OAuthErrorCode::UnauthorizedClient
                | OAuthErrorCode::UnsupportedGrantType
        )
    }

    /// Why a refresh token was refused: `invalid_grant` on the refresh_token grant. Cognito does
    /// not say whether the token was revoked, expired or never valid; without a description
    /// saying so it is [`RefreshFailure::Invalid`].
    pub fn refresh_failure(&self) -> Option<RefreshFailure> {
        if self.request != OAuthRequest::RefreshToken || self.code != OAuthErrorCode::InvalidGrant {
            return None;
        }
        let description = self.description.to_ascii_lowercase();
        Some(if description.contains("revoked") {
            RefreshFailure::Revoked
        } else if description.contains("expired") {
            RefreshFailure::Expired
        } else {
            RefreshFailure::Invalid
        })
    }

    fn describe(&self) -> String {
        let mut text = format!(
            "the oauth endpoint refused the {}: {}",
            self.request, self.code
        );
        if !self.description.is_empty() {
            text.push_str(": ");
            text.push_str(&self.description);
        }
        if self.status != 0 {
            text.push_str(&format!(" (http {})", self.status));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_endpoint_errors_are_classified() {
        let cases = [
            (
                400,
                r#"{"error":"invalid_client"}"#,
                OAuthRequest::ClientCredentials,
                OAuthErrorCode::InvalidClient,
                ErrorClass::Terminal,
                true,
            ),
            (
                400,
                r#"{"error":"invalid_scope"}"#,
                OAuthRequest::ClientCredentials,
                OAuthErrorCode::InvalidScope,
                ErrorClass::Terminal,
                true,
            ),
            (
                400,
                r#"{"error":"unauthorized_client"}"#,
                OAuthRequest::AuthorizationCode,
                OAuthErrorCode::UnauthorizedClient,
                ErrorClass::Terminal,
                true,
            ),
            (
                400,
                r#"{"error":"invalid_grant"}"#,
                OAuthRequest::AuthorizationCode,
                OAuthErrorCode::InvalidGrant,
                ErrorClass::NeedsUser,
                false,
            ),
            (
                400,
                r#"{"error":"invalid_request","error_description":"missing code_verifier"}"#,
                OAuthRequest::AuthorizationCode,
                OAuthErrorCode::InvalidRequest,
                ErrorClass::Terminal,
                false,
            ),
            (
                503,
                r#"{"error":"temporarily_unavailable"}"#,
                OAuthRequest::RefreshToken,
                OAuthErrorCode::TemporarilyUnavailable,
                ErrorClass::Transient,
                false,
            ),
            (
                500,
                "<html><body>Internal Server Error</body></html>",
                OAuthRequest::RefreshToken,
                OAuthErrorCode::Unnamed,
                ErrorClass::Transient,
                false,
            ),
            (
                502,
                "",
                OAuthRequest::ClientCredentials,
                OAuthErrorCode::Unnamed,
                ErrorClass::Transient,
                false,
            ),
            (
                429,
                r#"{"message":"Rate exceeded"}"#,
                OAuthRequest::ClientCredentials,
                OAuthErrorCode::Unnamed,
                ErrorClass::Throttled,
                false,
            ),
            (
                400,
                r#"{"error":"slow_down"}"#,
                OAuthRequest::ClientCredentials,
                OAuthErrorCode::Other("slow_down".into()),
                ErrorClass::Terminal,
                false,
            ),
        ];
        for (status, body, request, code, class, misconfigured) in cases {
            let error = OAuthError::from_reply(status, body.as_bytes(), request);
            assert_eq!(error.code, code, "{body}");
            assert_eq!(error.class(), class, "{body}");
            assert_eq!(error.is_misconfigured(), misconfigured, "{body}");
            assert_eq!(error.status, status);
        }
        let html = OAuthError::from_reply(
            500,
            b"<html><body>Internal Server Error</body></html>",
            OAuthRequest::RefreshToken,
        );
        assert_eq!(html.description, "Internal Server Error");
        let described = OAuthError::from_reply(
            400,
            br#"{"error":"invalid_request","error_description":"missing code_verifier"}"#,
            OAuthRequest::AuthorizationCode,
        );
        assert_eq!(
            described.to_string(),
            "the oauth endpoint refused the authorization_code grant: invalid_request: missing code_verifier (http 400)"
        );
    }

    #[test]
    fn invalid_grant_is_a_refresh_failure_only_on_the_refresh_grant() {
        let refresh = OAuthError::from_reply(
            400,
            br#"{"error":"invalid_grant"}"#,
            OAuthRequest::RefreshToken,
        );
        assert_eq!(refresh.refresh_failure(), Some(RefreshFailure::Invalid));
        let revoked = OAuthError::from_reply(
            400,
            br#"{"error":"invalid_grant","error_description":"Refresh Token has been revoked"}"#,
            OAuthRequest::RefreshToken,
        );
        assert_eq!(revoked.refresh_failure(), Some(RefreshFailure::Revoked));
        let code = OAuthError::from_reply(
            400,
            br#"{"error":"invalid_grant"}"#,
            OAuthRequest::AuthorizationCode,
        );
        assert_eq!(code.refresh_failure(), None);
        let client = OAuthError::from_reply(
            401,
            br#"{"error":"invalid_client"}"#,
            OAuthRequest::RefreshToken,
        );
        assert_eq!(client.refresh_failure(), None);
    }

    #[test]
    fn redirect_errors_name_the_error() {
        let error = OAuthError::from_redirect("access_denied", Some("user cancelled"));
        assert_eq!(error.code, OAuthErrorCode::AccessDenied);
        assert_eq!(error.class(), ErrorClass::NeedsUser);
        assert_eq!(
            error.to_string(),
            "the oauth endpoint refused the authorization: access_denied: user cancelled"
        );
    }
}
