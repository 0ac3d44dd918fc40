//! Cognito's error types, by name.

use std::fmt;

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
    /// Identity pools: the pool's roles or providers are misconfigured.
    InvalidIdentityPoolConfiguration,
    /// Identity pools: an external identity provider did not answer.
    ExternalService,
    /// Identity pools: the identity is linked elsewhere (`ResourceConflictException`).
    ResourceConflict,
    /// STS: the web identity token was refused (bad signature, no matching OIDC provider).
    InvalidIdentityToken,
    /// STS: the web identity token expired.
    ExpiredToken,
    /// STS: the identity provider rejected the token's claims.
    IdpRejectedClaim,
    /// STS: the identity provider could not be reached.
    IdpCommunicationError,
    /// STS: the role may not be assumed.
    AccessDenied,
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
            "InvalidIdentityPoolConfigurationException" => {
                ErrorCode::InvalidIdentityPoolConfiguration
            }
            "ExternalServiceException" => ErrorCode::ExternalService,
            "ResourceConflictException" => ErrorCode::ResourceConflict,
            "InvalidIdentityToken" => ErrorCode::InvalidIdentityToken,
            "ExpiredTokenException" | "ExpiredToken" => ErrorCode::ExpiredToken,
            "IDPRejectedClaim" => ErrorCode::IdpRejectedClaim,
            "IDPCommunicationError" => ErrorCode::IdpCommunicationError,
            "AccessDenied" | "AccessDeniedException" => ErrorCode::AccessDenied,
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
            ErrorCode::InvalidIdentityPoolConfiguration => {
                "InvalidIdentityPoolConfigurationException"
            }
            ErrorCode::ExternalService => "ExternalServiceException",
            ErrorCode::ResourceConflict => "ResourceConflictException",
            ErrorCode::InvalidIdentityToken => "InvalidIdentityToken",
            ErrorCode::ExpiredToken => "ExpiredToken",
            ErrorCode::IdpRejectedClaim => "IDPRejectedClaim",
            ErrorCode::IdpCommunicationError => "IDPCommunicationError",
            ErrorCode::AccessDenied => "AccessDenied",
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
