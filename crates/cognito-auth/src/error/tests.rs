//! Error decoding and classification.

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
    assert!(!service(ErrorCode::NotAuthorized, "Device does not exist.", 400).is_unknown_device());
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
