//! An error reply from Cognito, decoded from whatever body and headers it came with.

use super::{ErrorClass, ErrorCode};

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

impl ServiceError {
    /// What the caller should do about this error. Decided on the error type; the HTTP status
    /// only decides for errors that name no known type.
    pub fn class(&self) -> ErrorClass {
        match self.code {
            ErrorCode::InternalError
            | ErrorCode::ExternalService
            | ErrorCode::IdpCommunicationError => ErrorClass::Transient,
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
            | ErrorCode::UserLambdaValidation
            | ErrorCode::ExpiredToken => ErrorClass::NeedsUser,
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
            | ErrorCode::UnsupportedOperation
            | ErrorCode::InvalidIdentityPoolConfiguration
            | ErrorCode::ResourceConflict
            | ErrorCode::InvalidIdentityToken
            | ErrorCode::IdpRejectedClaim
            | ErrorCode::AccessDenied => ErrorClass::Terminal,
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
pub(super) fn summarize_non_json(body: &[u8]) -> String {
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
