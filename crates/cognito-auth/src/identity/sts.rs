//! STS `AssumeRoleWithWebIdentity` (the query API: a form in, XML out), pure.

use std::time::SystemTime;

use quick_xml::events::Event;
use serde::Deserialize;

use super::AwsCredentials;
use crate::error::{Error, ErrorCode, ServiceError};
use crate::secret::{AwsAccessKeyId, AwsSecretAccessKey, AwsSessionToken, OpenIdToken};

/// The STS API version of the query API.
const VERSION: &str = "2011-06-15";

/// What `AssumeRoleWithWebIdentity` needs.
#[derive(Debug, Clone, Copy)]
pub struct AssumeRoleWithWebIdentity<'a> {
    /// The role to assume, e.g. `arn:aws:iam::123456789012:role/Cognito_Auth_Role`.
    pub role_arn: &'a str,
    /// A name for the session: 2 to 64 characters of `[A-Za-z0-9+=,.@_-]`.
    pub role_session_name: &'a str,
    /// The identity pool's OpenID token (GetOpenIdToken).
    pub web_identity_token: &'a OpenIdToken,
    /// How long the credentials should last (900 to the role's maximum); the role's default
    /// when `None`.
    pub duration_seconds: Option<u32>,
}

impl AssumeRoleWithWebIdentity<'_> {
    /// The form body.
    pub(super) fn form(&self) -> Result<String, Error> {
        if self.role_arn.trim().is_empty() {
            return Err(Error::InvalidInput("the role arn is empty".into()));
        }
        let name = self.role_session_name;
        let valid_name = (2..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !valid_name {
            return Err(Error::InvalidInput(format!(
                "role session name {name:?} must be 2 to 64 characters of A-Z, a-z, 0-9 and +=,.@_-"
            )));
        }
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", VERSION)
            .append_pair("RoleArn", self.role_arn.trim())
            .append_pair("RoleSessionName", name)
            .append_pair("WebIdentityToken", self.web_identity_token.expose_secret());
        if let Some(seconds) = self.duration_seconds {
            form.append_pair("DurationSeconds", &seconds.to_string());
        }
        Ok(form.finish())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Response {
    assume_role_with_web_identity_result: Option<ResultElement>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultElement {
    credentials: Option<Credentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Credentials {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    expiration: Option<String>,
}

/// The credentials of a 2xx `AssumeRoleWithWebIdentityResponse`. The error never quotes the
/// body.
pub(super) fn parse_assume_role(body: &[u8]) -> Result<AwsCredentials, Error> {
    const OP: &str = "AssumeRoleWithWebIdentity";
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::Protocol(format!("the {OP} reply is not utf-8")))?;
    let response: Response = quick_xml::de::from_str(text)
        .map_err(|_| Error::Protocol(format!("the {OP} reply is not the expected xml")))?;
    let credentials = response
        .assume_role_with_web_identity_result
        .and_then(|result| result.credentials)
        .ok_or_else(|| Error::Protocol(format!("the {OP} reply has no Credentials")))?;
    let field = |value: Option<String>, name: &str| {
        value
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| Error::Protocol(format!("the {OP} reply has no {name}")))
    };
    let expiration = field(credentials.expiration, "Expiration")?;
    let expiration = parse_rfc3339(&expiration).ok_or_else(|| {
        Error::Protocol(format!(
            "the {OP} reply's Expiration {expiration:?} is not an RFC 3339 time"
        ))
    })?;
    Ok(AwsCredentials {
        access_key_id: AwsAccessKeyId::new(field(credentials.access_key_id, "AccessKeyId")?),
        secret_access_key: AwsSecretAccessKey::new(field(
            credentials.secret_access_key,
            "SecretAccessKey",
        )?),
        session_token: AwsSessionToken::new(field(credentials.session_token, "SessionToken")?),
        expiration,
    })
}

fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(SystemTime::from(parsed))
}

/// Decodes an STS error reply: the first `<Code>` and `<Message>` inside an `<Error>` element,
/// whether it is wrapped as `<ErrorResponse><Error>`, `<ErrorResponse><Errors><Error>` (moto) or
/// stands alone. A body that is not XML still gives an error, with only the HTTP status known.
pub(super) fn parse_error(status: u16, body: &[u8]) -> ServiceError {
    let (code, message) = error_fields(body).unwrap_or_default();
    let mut code = ErrorCode::from_type(code.trim());
    if code == ErrorCode::Unnamed && status == 429 {
        code = ErrorCode::TooManyRequests;
    }
    ServiceError {
        code,
        message: message.trim().chars().take(200).collect(),
        status,
    }
}

fn error_fields(body: &[u8]) -> Option<(String, String)> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut code = None;
    let mut message = None;
    let mut buffer = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buffer).ok()?;
        let in_error =
            |path: &[Vec<u8>]| path.len() >= 2 && path[path.len() - 2].as_slice() == b"Error";
        let mut text_of = |text: String, path: &[Vec<u8>]| {
            if !in_error(path) {
                return;
            }
            match path.last().map(Vec::as_slice) {
                Some(b"Code") if code.is_none() => code = Some(text),
                Some(b"Message") if message.is_none() => message = Some(text),
                _ => {}
            }
        };
        match event {
            Event::Start(start) => path.push(start.local_name().as_ref().to_vec()),
            Event::End(_) => {
                path.pop();
            }
            Event::Text(text) => {
                if let Ok(text) = text.decode() {
                    text_of(text.into_owned(), &path);
                }
            }
            Event::CData(data) => {
                text_of(String::from_utf8_lossy(&data).into_owned(), &path);
            }
            Event::Eof => break,
            _ => {}
        }
        buffer.clear();
    }
    code.map(|code| (code, message.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::error::ErrorClass;

    const AWS_REPLY: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>us-east-1:abc</SubjectFromWebIdentityToken>
    <Audience>us-east-1:pool</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/Cognito_Auth/app</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>session-token-value</SessionToken>
      <SecretAccessKey>secret-key-value</SecretAccessKey>
      <Expiration>2027-01-15T08:00:00Z</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
    <Provider>cognito-identity.amazonaws.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

    /// moto's shape: an XML declaration, fractional seconds.
    const MOTO_REPLY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <SessionToken>FQoGZXIvYXdzEBYaDHTESTTOKEN</SessionToken>
      <SecretAccessKey>aJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2027-01-15T08:00:00.500000Z</Expiration>
      <AccessKeyId>ASIAMOTOEXAMPLE</AccessKeyId>
    </Credentials>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn parses_the_aws_and_moto_replies() {
        let credentials = parse_assume_role(AWS_REPLY.as_bytes()).unwrap();
        assert_eq!(credentials.access_key_id.expose_secret(), "ASIAEXAMPLE");
        assert_eq!(
            credentials.secret_access_key.expose_secret(),
            "secret-key-value"
        );
        assert_eq!(
            credentials.session_token.expose_secret(),
            "session-token-value"
        );
        // 2027-01-15T08:00:00Z
        assert_eq!(credentials.expiration, at(1_800_000_000));

        let moto = parse_assume_role(MOTO_REPLY.as_bytes()).unwrap();
        assert_eq!(moto.access_key_id.expose_secret(), "ASIAMOTOEXAMPLE");
        assert_eq!(
            moto.expiration,
            at(1_800_000_000) + Duration::from_millis(500)
        );
    }

    #[test]
    fn malformed_replies_are_named_without_quoting() {
        let missing = AWS_REPLY.replace("<SecretAccessKey>secret-key-value</SecretAccessKey>", "");
        let bad_time = AWS_REPLY.replace("2027-01-15T08:00:00Z", "tomorrow");
        for (body, needle) in [
            (missing.as_str(), "SecretAccessKey"),
            (bad_time.as_str(), "RFC 3339"),
            ("<AssumeRoleWithWebIdentityResponse/>", "Credentials"),
            ("{\"json\": \"secret-key-value\"}", "xml"),
        ] {
            let error = parse_assume_role(body.as_bytes()).unwrap_err();
            let shown = error.to_string();
            assert!(shown.contains(needle), "{shown}");
            assert!(!shown.contains("secret-key-value"), "{shown}");
        }
    }

    #[test]
    fn error_replies_in_every_wrapping() {
        let aws = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>
    <Message>No OpenIDConnect provider found in your account for https://cognito-identity.amazonaws.com</Message></Error>
  <RequestId>1</RequestId></ErrorResponse>"#;
        let error = parse_error(400, aws.as_bytes());
        assert_eq!(error.code, ErrorCode::InvalidIdentityToken);
        assert!(error.message.starts_with("No OpenIDConnect provider"));
        assert_eq!(error.class(), ErrorClass::Terminal);

        let moto = r#"<?xml version="1.0" encoding="UTF-8"?>
  <ErrorResponse><Errors><Error><Code>ExpiredTokenException</Code>
    <Message><![CDATA[Token is expired]]></Message></Error></Errors>
  <RequestId>7a62c49f</RequestId></ErrorResponse>"#;
        let error = parse_error(400, moto.as_bytes());
        assert_eq!(error.code, ErrorCode::ExpiredToken);
        assert_eq!(error.message, "Token is expired");
        assert_eq!(error.class(), ErrorClass::NeedsUser);

        let bare = "<Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error>";
        assert_eq!(
            parse_error(400, bare.as_bytes()).class(),
            ErrorClass::Throttled
        );

        let html = parse_error(503, b"<html><body>Service Unavailable</body></html>");
        assert_eq!(html.code, ErrorCode::Unnamed);
        assert_eq!(html.class(), ErrorClass::Transient);
        let garbage = parse_error(429, b"\xff\xfe not xml <<<");
        assert_eq!(garbage.class(), ErrorClass::Throttled);
        let idp =
            "<ErrorResponse><Error><Code>IDPCommunicationError</Code></Error></ErrorResponse>";
        assert_eq!(
            parse_error(400, idp.as_bytes()).class(),
            ErrorClass::Transient
        );
    }

    #[test]
    fn the_form_names_the_action_and_checks_the_session_name() {
        let token = OpenIdToken::new("oidc.token.value");
        let request = AssumeRoleWithWebIdentity {
            role_arn: "arn:aws:iam::123456789012:role/Cognito_Auth",
            role_session_name: "cogbroker-alice",
            web_identity_token: &token,
            duration_seconds: Some(3600),
        };
        let form: Vec<(String, String)> =
            url::form_urlencoded::parse(request.form().unwrap().as_bytes())
                .into_owned()
                .collect();
        let expected: Vec<(String, String)> = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", "arn:aws:iam::123456789012:role/Cognito_Auth"),
            ("RoleSessionName", "cogbroker-alice"),
            ("WebIdentityToken", "oidc.token.value"),
            ("DurationSeconds", "3600"),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
        assert_eq!(form, expected);
        for bad in ["a", "has space", &"x".repeat(65)] {
            let request = AssumeRoleWithWebIdentity {
                role_session_name: bad,
                ..request
            };
            assert!(
                matches!(request.form(), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }
}
