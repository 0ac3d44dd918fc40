//! cognito-identity's JSON 1.1 requests and replies (pure).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::AwsCredentials;
use crate::error::Error;
use crate::secret::{AwsAccessKeyId, AwsSecretAccessKey, AwsSessionToken, OpenIdToken};

/// The content type of every call.
pub(super) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The operations used, by name (as the model names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub(super) enum IdentityOperation {
    GetId,
    GetCredentialsForIdentity,
    GetOpenIdToken,
}

impl IdentityOperation {
    pub(super) fn name(self) -> &'static str {
        match self {
            IdentityOperation::GetId => "GetId",
            IdentityOperation::GetCredentialsForIdentity => "GetCredentialsForIdentity",
            IdentityOperation::GetOpenIdToken => "GetOpenIdToken",
        }
    }

    /// The `X-Amz-Target` header.
    pub(super) fn target(self) -> String {
        format!("AWSCognitoIdentityService.{}", self.name())
    }
}

/// `GetId`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetIdRequest<'a> {
    pub identity_pool_id: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub logins: BTreeMap<&'a str, &'a str>,
}

/// `GetCredentialsForIdentity`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetCredentialsRequest<'a> {
    pub identity_id: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub logins: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_role_arn: Option<&'a str>,
}

/// `GetOpenIdToken`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetOpenIdTokenRequest<'a> {
    pub identity_id: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub logins: BTreeMap<&'a str, &'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetIdReply {
    identity_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialsReply {
    credentials: Option<WireCredentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireCredentials {
    access_key_id: Option<String>,
    secret_key: Option<String>,
    session_token: Option<String>,
    expiration: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OpenIdTokenReply {
    identity_id: Option<String>,
    token: Option<String>,
}

/// The identity id of a GetId reply.
pub(super) fn parse_get_id(body: &[u8]) -> Result<String, Error> {
    let reply: GetIdReply = decode(IdentityOperation::GetId, body)?;
    non_empty(reply.identity_id, "GetId", "IdentityId")
}

/// The credentials of a GetCredentialsForIdentity reply. `Expiration` is epoch seconds, an
/// integer or (moto) a float.
pub(super) fn parse_credentials(body: &[u8]) -> Result<AwsCredentials, Error> {
    const OP: &str = "GetCredentialsForIdentity";
    let reply: CredentialsReply = decode(IdentityOperation::GetCredentialsForIdentity, body)?;
    let credentials = reply
        .credentials
        .ok_or_else(|| Error::Protocol(format!("the {OP} reply has no Credentials")))?;
    let expiration = credentials
        .expiration
        .as_ref()
        .and_then(epoch_seconds)
        .ok_or_else(|| {
            Error::Protocol(format!(
                "the {OP} reply's Expiration is not a number of epoch seconds"
            ))
        })?;
    Ok(AwsCredentials {
        access_key_id: AwsAccessKeyId::new(non_empty(
            credentials.access_key_id,
            OP,
            "AccessKeyId",
        )?),
        secret_access_key: AwsSecretAccessKey::new(non_empty(
            credentials.secret_key,
            OP,
            "SecretKey",
        )?),
        session_token: AwsSessionToken::new(non_empty(
            credentials.session_token,
            OP,
            "SessionToken",
        )?),
        expiration,
    })
}

/// The identity id and token of a GetOpenIdToken reply.
pub(super) fn parse_open_id_token(body: &[u8]) -> Result<(Option<String>, OpenIdToken), Error> {
    let reply: OpenIdTokenReply = decode(IdentityOperation::GetOpenIdToken, body)?;
    let token = non_empty(reply.token, "GetOpenIdToken", "Token")?;
    Ok((
        reply.identity_id.filter(|id| !id.is_empty()),
        OpenIdToken::new(token),
    ))
}

/// Decodes a 2xx body whatever its content type (moto labels JSON as text/html). The error
/// never quotes the body.
fn decode<T: serde::de::DeserializeOwned>(
    operation: IdentityOperation,
    body: &[u8],
) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|error| {
        let what = match error.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not json",
            serde_json::error::Category::Data => "json of the wrong shape",
            serde_json::error::Category::Io => "unreadable",
        };
        Error::Protocol(format!(
            "the {} reply is {what} (line {}, column {})",
            operation.name(),
            error.line(),
            error.column()
        ))
    })
}

fn non_empty(value: Option<String>, operation: &str, field: &str) -> Result<String, Error> {
    value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| Error::Protocol(format!("the {operation} reply has no {field}")))
}

/// Epoch seconds, integer or float, as a time; negative or non-finite values are refused.
fn epoch_seconds(value: &serde_json::Value) -> Option<SystemTime> {
    if let Some(seconds) = value.as_u64() {
        return UNIX_EPOCH.checked_add(Duration::from_secs(seconds));
    }
    let seconds = value.as_f64()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn get_id_reply() {
        let id =
            parse_get_id(br#"{"IdentityId":"us-east-1:0b0e7b30-1111-2222-3333-444455556666"}"#)
                .unwrap();
        assert_eq!(id, "us-east-1:0b0e7b30-1111-2222-3333-444455556666");
        let error = parse_get_id(b"{}").unwrap_err();
        assert!(error.to_string().contains("IdentityId"), "{error}");
    }

    #[test]
    fn credentials_with_integer_and_float_expiration() {
        let aws = br#"{"IdentityId":"us-east-1:abc","Credentials":{"AccessKeyId":"ASIAEXAMPLE",
            "SecretKey":"secret-key-value","SessionToken":"session-token-value",
            "Expiration":1800003600}}"#;
        let credentials = parse_credentials(aws).unwrap();
        assert_eq!(credentials.access_key_id.expose_secret(), "ASIAEXAMPLE");
        assert_eq!(
            credentials.secret_access_key.expose_secret(),
            "secret-key-value"
        );
        assert_eq!(
            credentials.session_token.expose_secret(),
            "session-token-value"
        );
        assert_eq!(credentials.expiration, at(1_800_003_600));
        let printed = format!("{credentials:?}");
        assert!(
            !printed.contains("secret-key-value") && !printed.contains("ASIAEXAMPLE"),
            "{printed}"
        );

        // moto: a float Expiration (served as text/html, which does not matter here).
        let moto = br#"{"Credentials": {"AccessKeyId": "TESTACCESSKEY12345", "Expiration": 1800003600.123456, "SecretKey": "TESTSECRETKEY", "SessionToken": "TESTSESSIONTOKEN"}, "IdentityId": "us-east-1:12345"}"#;
        let credentials = parse_credentials(moto).unwrap();
        assert_eq!(
            credentials
                .expiration
                .duration_since(at(1_800_003_600))
                .unwrap()
                .as_millis(),
            123
        );
    }

    #[test]
    fn malformed_credentials_are_named_without_quoting() {
        for (body, needle) in [
            (r#"{"IdentityId":"x"}"#, "Credentials"),
            (
                r#"{"Credentials":{"AccessKeyId":"A","SecretKey":"s3cr3t","SessionToken":"t"}}"#,
                "Expiration",
            ),
            (
                r#"{"Credentials":{"AccessKeyId":"A","SecretKey":"s3cr3t","SessionToken":"t","Expiration":"soon"}}"#,
                "Expiration",
            ),
            (
                r#"{"Credentials":{"AccessKeyId":"A","SessionToken":"t","Expiration":1}}"#,
                "SecretKey",
            ),
            (
                r#"{"Credentials":{"AccessKeyId":"A","SecretKey":"s3cr3t","SessionToken":"t","Expiration":-5}}"#,
                "Expiration",
            ),
            ("<html>s3cr3t</html>", "not json"),
        ] {
            let error = parse_credentials(body.as_bytes()).unwrap_err();
            let shown = error.to_string();
            assert!(shown.contains(needle), "{body}: {shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
    }

    #[test]
    fn open_id_token_reply() {
        let (id, token) =
            parse_open_id_token(br#"{"IdentityId":"us-east-1:abc","Token":"eyJ.oidc.token"}"#)
                .unwrap();
        assert_eq!(id.as_deref(), Some("us-east-1:abc"));
        assert_eq!(token.expose_secret(), "eyJ.oidc.token");
        assert!(parse_open_id_token(br#"{"IdentityId":"x"}"#).is_err());
    }

    #[test]
    fn requests_serialize_as_the_model_names_them() {
        let mut logins = BTreeMap::new();
        logins.insert(
            "cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool",
            "id.token",
        );
        let get_id = serde_json::to_value(GetIdRequest {
            identity_pool_id: "us-east-1:pool",
            logins: logins.clone(),
        })
        .unwrap();
        assert_eq!(
            get_id,
            serde_json::json!({"IdentityPoolId": "us-east-1:pool",
                "Logins": {"cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool": "id.token"}})
        );
        let credentials = serde_json::to_value(GetCredentialsRequest {
            identity_id: "us-east-1:id",
            logins: BTreeMap::new(),
            custom_role_arn: Some("arn:aws:iam::123456789012:role/r"),
        })
        .unwrap();
        assert_eq!(
            credentials,
            serde_json::json!({"IdentityId": "us-east-1:id",
                "CustomRoleArn": "arn:aws:iam::123456789012:role/r"})
        );
        assert_eq!(
            IdentityOperation::GetOpenIdToken.target(),
            "AWSCognitoIdentityService.GetOpenIdToken"
        );
    }
}
