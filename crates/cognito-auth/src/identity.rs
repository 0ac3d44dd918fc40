//! AWS credentials from a Cognito identity pool: the cognito-identity JSON 1.1 calls (GetId,
//! GetCredentialsForIdentity, GetOpenIdToken) and STS `AssumeRoleWithWebIdentity` for the basic
//! flow. Every call here is unsigned (`authtype: none`); the user-pool ID token in the `Logins`
//! map is the proof.
//!
//! The parsers are pure (`identity/wire.rs`, `identity/sts.rs`); [`IdentityClient`] and
//! [`StsClient`] send with the crate's one HTTP setup. Nothing is retried here.

mod sts;
mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::Serialize;
use url::Url;

pub use sts::AssumeRoleWithWebIdentity;

use crate::client::{ClientOptions, MAX_ERROR_BODY, check_endpoint, http_client, transport};
use crate::error::{Error, ServiceError};
use crate::pool::UserPoolId;
use crate::secret::{AwsAccessKeyId, AwsSecretAccessKey, AwsSessionToken, IdToken, OpenIdToken};
use wire::IdentityOperation;

/// Temporary AWS credentials. Every part prints as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    /// `AccessKeyId`.
    pub access_key_id: AwsAccessKeyId,
    /// `SecretKey` (cognito-identity) or `SecretAccessKey` (STS).
    pub secret_access_key: AwsSecretAccessKey,
    /// `SessionToken`.
    pub session_token: AwsSessionToken,
    /// When they stop working (the server's clock).
    pub expiration: SystemTime,
}

/// The `Logins` map: identity provider name → token (for a user pool, its ID token).
#[derive(Clone, Default)]
pub struct Logins {
    entries: BTreeMap<String, IdToken>,
}

impl fmt::Debug for Logins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

impl Logins {
    /// No logins (unauthenticated identities).
    pub fn new() -> Self {
        Logins::default()
    }

    /// One user-pool login: `provider` (see [`user_pool_provider`]) → the ID token.
    pub fn single(provider: impl Into<String>, id_token: IdToken) -> Self {
        let mut logins = Logins::new();
        logins.insert(provider, id_token);
        logins
    }

    /// Adds or replaces a provider's token.
    pub fn insert(&mut self, provider: impl Into<String>, token: IdToken) {
        self.entries.insert(provider.into(), token);
    }

    /// The provider names.
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    fn wire(&self) -> BTreeMap<&str, &str> {
        self.entries
            .iter()
            .map(|(provider, token)| (provider.as_str(), token.expose_secret()))
            .collect()
    }
}

/// The `Logins` key of a user pool: its issuer without `https://`, e.g.
/// `cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123`.
pub fn user_pool_provider(region: &str, pool: &UserPoolId) -> String {
    let issuer = crate::tokens::issuer(region, pool);
    issuer
        .strip_prefix("https://")
        .unwrap_or(&issuer)
        .to_owned()
}

/// A cognito-identity endpoint (e.g. from
/// [`identity_endpoint`](crate::pool::identity_endpoint), or an emulator's URL). Cheap to clone.
#[derive(Debug, Clone)]
pub struct IdentityClient {
    http: reqwest::Client,
    endpoint: Url,
}

impl IdentityClient {
    /// A client for `endpoint`.
    pub fn new(endpoint: Url, options: ClientOptions) -> Result<Self, Error> {
        check_endpoint(&endpoint)?;
        Ok(IdentityClient {
            http: http_client(options)?,
            endpoint,
        })
    }

    /// The endpoint every call goes to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// `GetId`: the identity id of the logins in the pool `identity_pool_id`
    /// (`<region>:<guid>`). Quota-limited: cache the answer.
    pub async fn get_id(&self, identity_pool_id: &str, logins: &Logins) -> Result<String, Error> {
        if identity_pool_id.trim().is_empty() {
            return Err(Error::InvalidInput("the identity pool id is empty".into()));
        }
        let request = wire::GetIdRequest {
            identity_pool_id: identity_pool_id.trim(),
            logins: logins.wire(),
        };
        let body = self.call(IdentityOperation::GetId, &request).await?;
        wire::parse_get_id(&body)
    }

    /// `GetCredentialsForIdentity` (the enhanced flow).
    pub async fn get_credentials_for_identity(
        &self,
        identity_id: &str,
        logins: &Logins,
        custom_role_arn: Option<&str>,
    ) -> Result<AwsCredentials, Error> {
        let request = wire::GetCredentialsRequest {
            identity_id: non_empty_id(identity_id)?,
            logins: logins.wire(),
            custom_role_arn: custom_role_arn.filter(|arn| !arn.trim().is_empty()),
        };
        let body = self
            .call(IdentityOperation::GetCredentialsForIdentity, &request)
            .await?;
        wire::parse_credentials(&body)
    }

    /// `GetOpenIdToken` (the basic flow's first step): a token for STS, valid ten minutes.
    pub async fn get_open_id_token(
        &self,
        identity_id: &str,
        logins: &Logins,
    ) -> Result<OpenIdToken, Error> {
        let request = wire::GetOpenIdTokenRequest {
            identity_id: non_empty_id(identity_id)?,
            logins: logins.wire(),
        };
        let body = self
            .call(IdentityOperation::GetOpenIdToken, &request)
            .await?;
        wire::parse_open_id_token(&body).map(|(_, token)| token)
    }

    async fn call<Req: Serialize>(
        &self,
        operation: IdentityOperation,
        request: &Req,
    ) -> Result<Vec<u8>, Error> {
        let body = serde_json::to_vec(request).map_err(|error| {
            Error::InvalidInput(format!("cannot encode {}: {error}", operation.name()))
        })?;
        let response = self
            .http
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, wire::CONTENT_TYPE)
            .header("X-Amz-Target", operation.target())
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            let error_type = header("x-amzn-errortype");
            let error_message = header("x-amzn-errormessage");
            let bytes = response.bytes().await.map_err(transport)?;
            let error = ServiceError::from_reply(
                status,
                error_type.as_deref(),
                error_message.as_deref(),
                &bytes[..bytes.len().min(MAX_ERROR_BODY)],
            );
            tracing::debug!(op = operation.name(), status, code = %error.code, "cognito-identity error");
            return Err(error.into());
        }
        Ok(response.bytes().await.map_err(transport)?.to_vec())
    }
}

/// An STS endpoint (e.g. from [`sts_endpoint`](crate::pool::sts_endpoint), or moto's URL).
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct StsClient {
    http: reqwest::Client,
    endpoint: Url,
}

impl StsClient {
    /// A client for `endpoint`.
    pub fn new(endpoint: Url, options: ClientOptions) -> Result<Self, Error> {
        check_endpoint(&endpoint)?;
        Ok(StsClient {
            http: http_client(options)?,
            endpoint,
        })
    }

    /// The endpoint every call goes to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// `AssumeRoleWithWebIdentity` (unsigned). Errors are [`Error::Sts`].
    pub async fn assume_role_with_web_identity(
        &self,
        request: &AssumeRoleWithWebIdentity<'_>,
    ) -> Result<AwsCredentials, Error> {
        let form = request.form()?;
        let response = self
            .http
            .post(self.endpoint.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .body(form)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let error =
                sts::parse_error(status.as_u16(), &bytes[..bytes.len().min(MAX_ERROR_BODY)]);
            tracing::debug!(status = error.status, code = %error.code, "sts error");
            return Err(Error::Sts(error));
        }
        sts::parse_assume_role(&bytes)
    }
}

fn non_empty_id(identity_id: &str) -> Result<&str, Error> {
    let trimmed = identity_id.trim();
    if trimmed.is_empty() {
        return Err(Error::InvalidInput("the identity id is empty".into()));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::{ErrorClass, ErrorCode};
    use crate::testing::{server, server_with_type};

    fn alice() -> Logins {
        Logins::single(
            "cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123",
            IdToken::new("alice.id.token"),
        )
    }

    #[tokio::test]
    async fn enhanced_flow_against_moto_shaped_replies() {
        // moto labels its JSON replies text/html; that must not matter.
        let server = server_with_type(
            vec![
                (200, json!({"IdentityId": "us-east-1:1234"}).to_string()),
                (
                    200,
                    json!({"IdentityId": "us-east-1:1234", "Credentials": {
                        "AccessKeyId": "TESTACCESSKEY", "SecretKey": "TESTSECRETKEY",
                        "SessionToken": "TESTSESSIONTOKEN", "Expiration": 1_800_000_000.25}})
                    .to_string(),
                ),
            ],
            "text/html; charset=utf-8",
        )
        .await;
        let client = IdentityClient::new(server.url.clone(), ClientOptions::default()).unwrap();
        let id = client.get_id(" us-east-1:pool ", &alice()).await.unwrap();
        assert_eq!(id, "us-east-1:1234");
        let credentials = client
            .get_credentials_for_identity(&id, &alice(), None)
            .await
            .unwrap();
        assert_eq!(
            credentials.secret_access_key.expose_secret(),
            "TESTSECRETKEY"
        );

        let seen = server.seen.lock().unwrap().clone();
        assert_eq!(
            seen[0].headers["x-amz-target"],
            "AWSCognitoIdentityService.GetId"
        );
        assert_eq!(
            seen[0].headers["content-type"],
            "application/x-amz-json-1.1"
        );
        let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
        assert_eq!(
            body,
            json!({"IdentityPoolId": "us-east-1:pool", "Logins": {
                "cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123": "alice.id.token"}})
        );
        assert_eq!(
            seen[1].headers["x-amz-target"],
            "AWSCognitoIdentityService.GetCredentialsForIdentity"
        );
    }

    #[tokio::test]
    async fn identity_errors_are_classified() {
        let server = server(vec![
            (
                400,
                json!({"__type": "NotAuthorizedException",
                    "message": "Invalid login token. Token expired: 1800000000 >= 1799999999"})
                .to_string(),
            ),
            (
                400,
                json!({"__type": "com.amazonaws.cognito.identity#InvalidIdentityPoolConfigurationException",
                    "message": "Invalid identity pool configuration. Check assigned IAM roles for this pool."})
                .to_string(),
            ),
            (400, json!({"__type": "TooManyRequestsException", "message": "Rate exceeded"}).to_string()),
            (400, json!({"__type": "ResourceNotFoundException", "message": "IdentityPool 'us-east-1:x' not found."}).to_string()),
            (500, json!({"__type": "ExternalServiceException", "message": "down"}).to_string()),
        ])
        .await;
        let client = IdentityClient::new(server.url.clone(), ClientOptions::default()).unwrap();
        let expected = [
            (ErrorCode::NotAuthorized, ErrorClass::NeedsUser),
            (
                ErrorCode::InvalidIdentityPoolConfiguration,
                ErrorClass::Terminal,
            ),
            (ErrorCode::TooManyRequests, ErrorClass::Throttled),
            (ErrorCode::ResourceNotFound, ErrorClass::Terminal),
            (ErrorCode::ExternalService, ErrorClass::Transient),
        ];
        for (code, class) in expected {
            let error = client.get_id("us-east-1:pool", &alice()).await.unwrap_err();
            assert_eq!(error.code(), Some(&code), "{error}");
            assert_eq!(error.class(), class, "{error}");
            assert!(!error.to_string().contains("alice.id.token"));
        }
    }

    #[tokio::test]
    async fn basic_flow_open_id_token_then_sts() {
        let identity = server(vec![(
            200,
            json!({"IdentityId": "us-east-1:1234", "Token": "open.id.token"}).to_string(),
        )])
        .await;
        let sts_reply = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><SessionToken>st</SessionToken><SecretAccessKey>sk</SecretAccessKey><Expiration>2027-01-15T08:00:00Z</Expiration><AccessKeyId>ak</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"#;
        let sts_error = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        let sts = server_with_type(
            vec![(200, sts_reply.into()), (403, sts_error.into())],
            "text/xml",
        )
        .await;
        let token = IdentityClient::new(identity.url.clone(), ClientOptions::default())
            .unwrap()
            .get_open_id_token("us-east-1:1234", &alice())
            .await
            .unwrap();
        let client = StsClient::new(sts.url.clone(), ClientOptions::default()).unwrap();
        let request = AssumeRoleWithWebIdentity {
            role_arn: "arn:aws:iam::123456789012:role/r",
            role_session_name: "cogbroker",
            web_identity_token: &token,
            duration_seconds: None,
        };
        let credentials = client
            .assume_role_with_web_identity(&request)
            .await
            .unwrap();
        assert_eq!(credentials.access_key_id.expose_secret(), "ak");
        let error = client
            .assume_role_with_web_identity(&request)
            .await
            .unwrap_err();
        assert!(matches!(&error, Error::Sts(_)), "{error}");
        assert_eq!(error.code(), Some(&ErrorCode::AccessDenied));
        assert_eq!(error.class(), ErrorClass::Terminal);
        assert!(
            error
                .to_string()
                .starts_with("sts rejected the request: AccessDenied"),
            "{error}"
        );

        let seen = sts.seen.lock().unwrap().clone();
        assert_eq!(seen[0].form["Action"], "AssumeRoleWithWebIdentity");
        assert_eq!(seen[0].form["WebIdentityToken"], "open.id.token");
        assert!(!seen[0].form.contains_key("DurationSeconds"));
    }

    #[test]
    fn the_user_pool_provider_is_the_issuer_without_a_scheme() {
        let pool = UserPoolId::parse("us-east-1_AbC123").unwrap();
        assert_eq!(
            user_pool_provider("us-east-1", &pool),
            "cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123"
        );
    }

    #[test]
    fn logins_do_not_print_tokens() {
        let logins = Logins::single("provider", IdToken::new("id-token-value"));
        let printed = format!("{logins:?}");
        assert!(printed.contains("provider") && !printed.contains("id-token-value"));
        assert_eq!(logins.providers().collect::<Vec<_>>(), ["provider"]);
    }

    #[test]
    fn endpoints_follow_the_partition_rules() {
        use crate::pool::{EndpointVariant, identity_endpoint, sts_endpoint};
        let url = |result: Result<Url, Error>| result.unwrap().to_string();
        assert_eq!(
            url(identity_endpoint("us-east-1", EndpointVariant::Standard)),
            "https://cognito-identity.us-east-1.amazonaws.com/"
        );
        assert_eq!(
            url(identity_endpoint("us-west-2", EndpointVariant::Fips)),
            "https://cognito-identity-fips.us-west-2.amazonaws.com/"
        );
        assert_eq!(
            url(identity_endpoint("cn-north-1", EndpointVariant::DualStack)),
            "https://cognito-identity.cn-north-1.api.amazonwebservices.com.cn/"
        );
        assert_eq!(
            url(sts_endpoint("eu-west-1", EndpointVariant::Standard)),
            "https://sts.eu-west-1.amazonaws.com/"
        );
        assert!(identity_endpoint("Bad Region", EndpointVariant::Standard).is_err());
    }
}
