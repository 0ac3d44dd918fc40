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
    use super::*;

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
