//! The only HTTP code: AWS JSON 1.1 calls to cognito-idp over reqwest (rustls), and the JWKS.
//!
//! Calls carry no AWS credentials: every operation here is `authtype: none`. Nothing is retried
//! here; the caller decides by [`Error::class`](crate::error::Error::class).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ServiceError, TransportKind};
use crate::pool::UserPoolId;
use crate::tokens::Jwks;
use crate::wire::{
    self, AssociateSoftwareTokenRequest, AssociateSoftwareTokenResponse, AuthResponse,
    ConfirmDeviceRequest, ConfirmDeviceResponse, Empty, ForgetDeviceRequest,
    GetTokensFromRefreshTokenRequest, GetTokensFromRefreshTokenResponse, GetUserRequest,
    GetUserResponse, GlobalSignOutRequest, InitiateAuthRequest, Operation,
    RespondToAuthChallengeRequest, RevokeTokenRequest, UpdateDeviceStatusRequest,
    VerifySoftwareTokenRequest, VerifySoftwareTokenResponse,
};

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time allowed to set up TCP and TLS.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, reply included.
    pub request_timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The proxy to reach Cognito through, when one is configured explicitly. Proxies named by
    /// the environment (`HTTPS_PROXY`, `ALL_PROXY`, ...) are never used: refresh tokens, client
    /// secrets and codes must not go wherever an inherited variable points.
    pub proxy: Option<url::Url>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            user_agent: concat!("cogbroker/", env!("CARGO_PKG_VERSION")).to_owned(),
            proxy: None,
        }
    }
}

/// A cognito-idp endpoint. Cheap to clone: clones share the connection pool and the URL (a
/// daemon keeps one clone per profile: 16 bytes, not the URL's ~140).
#[derive(Debug, Clone)]
pub struct CognitoClient {
    http: reqwest::Client,
    endpoint: Arc<url::Url>,
}

/// Error replies larger than this are cut before parsing.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;

impl CognitoClient {
    /// A client for `endpoint` (e.g. from [`regional_endpoint`](crate::pool::regional_endpoint),
    /// or an override such as an emulator's `http://127.0.0.1:PORT`).
    pub fn new(endpoint: url::Url, options: ClientOptions) -> Result<Self, Error> {
        check_endpoint(&endpoint)?;
        let http = http_client(options)?;
        Ok(CognitoClient {
            http,
            endpoint: Arc::new(endpoint),
        })
    }

    /// The endpoint every call goes to.
    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    /// `InitiateAuth`.
    pub async fn initiate_auth(
        &self,
        request: &InitiateAuthRequest,
    ) -> Result<AuthResponse, Error> {
        self.call(Operation::InitiateAuth, request).await
    }

    /// `RespondToAuthChallenge`.
    pub async fn respond_to_auth_challenge(
        &self,
        request: &RespondToAuthChallengeRequest,
    ) -> Result<AuthResponse, Error> {
        self.call(Operation::RespondToAuthChallenge, request).await
    }

    /// `GetTokensFromRefreshToken`.
    pub async fn get_tokens_from_refresh_token(
        &self,
        request: &GetTokensFromRefreshTokenRequest,
    ) -> Result<GetTokensFromRefreshTokenResponse, Error> {
        self.call(Operation::GetTokensFromRefreshToken, request)
            .await
    }

    /// `ConfirmDevice`.
    pub async fn confirm_device(
        &self,
        request: &ConfirmDeviceRequest,
    ) -> Result<ConfirmDeviceResponse, Error> {
        self.call(Operation::ConfirmDevice, request).await
    }

    /// `UpdateDeviceStatus`.
    pub async fn update_device_status(
        &self,
        request: &UpdateDeviceStatusRequest,
    ) -> Result<(), Error> {
        self.call::<_, Empty>(Operation::UpdateDeviceStatus, request)
            .await?;
        Ok(())
    }

    /// `ForgetDevice`.
    pub async fn forget_device(&self, request: &ForgetDeviceRequest) -> Result<(), Error> {
        self.call::<_, Empty>(Operation::ForgetDevice, request)
            .await?;
        Ok(())
    }

    /// `RevokeToken`.
    pub async fn revoke_token(&self, request: &RevokeTokenRequest) -> Result<(), Error> {
        self.call::<_, Empty>(Operation::RevokeToken, request)
            .await?;
        Ok(())
    }

    /// `GlobalSignOut`.
    pub async fn global_sign_out(&self, request: &GlobalSignOutRequest) -> Result<(), Error> {
        self.call::<_, Empty>(Operation::GlobalSignOut, request)
            .await?;
        Ok(())
    }

    /// `AssociateSoftwareToken`.
    pub async fn associate_software_token(
        &self,
        request: &AssociateSoftwareTokenRequest,
    ) -> Result<AssociateSoftwareTokenResponse, Error> {
        self.call(Operation::AssociateSoftwareToken, request).await
    }

    /// `VerifySoftwareToken`.
    pub async fn verify_software_token(
        &self,
        request: &VerifySoftwareTokenRequest,
    ) -> Result<VerifySoftwareTokenResponse, Error> {
        self.call(Operation::VerifySoftwareToken, request).await
    }

    /// `GetUser`.
    pub async fn get_user(&self, request: &GetUserRequest) -> Result<GetUserResponse, Error> {
        self.call(Operation::GetUser, request).await
    }

    /// The pool's signing keys: `GET {endpoint}/{pool}/.well-known/jwks.json`.
    pub async fn fetch_jwks(&self, pool: &UserPoolId) -> Result<Jwks, Error> {
        let url = self
            .endpoint
            .join(&format!("{pool}/.well-known/jwks.json"))
            .map_err(|error| Error::InvalidInput(format!("cannot build the jwks url: {error}")))?;
        let response = self.http.get(url).send().await.map_err(transport)?;
        if !response.status().is_success() {
            return Err(service_error(response).await?.into());
        }
        let body = response.bytes().await.map_err(transport)?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| Error::Protocol("the jwks is not utf-8".into()))?;
        Jwks::from_json(text)
    }

    /// Sends one operation and decodes its reply.
    async fn call<Req, Resp>(&self, operation: Operation, request: &Req) -> Result<Resp, Error>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        // Serializing our own wire structs cannot fail: they are maps of strings and numbers.
        let body = serde_json::to_vec(request)
            .map_err(|error| Error::InvalidInput(format!("cannot encode {operation}: {error}")))?;
        let response = self
            .http
            .post(url::Url::clone(&self.endpoint))
            .header(reqwest::header::CONTENT_TYPE, wire::CONTENT_TYPE)
            .header("X-Amz-Target", operation.target())
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        if !response.status().is_success() {
            let error = service_error(response).await?;
            tracing::debug!(op = operation.name(), status = error.status, code = %error.code, "cognito error");
            return Err(error.into());
        }
        let bytes = response.bytes().await.map_err(transport)?;
        decode_success(operation, &bytes)
    }
}

/// Decodes a 2xx body; an empty body counts as `{}`. The error never quotes the body.
fn decode_success<Resp: DeserializeOwned>(
    operation: Operation,
    bytes: &[u8],
) -> Result<Resp, Error> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|error| {
        // serde's messages can quote values (tokens); keep only where and what kind.
        let what = match error.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not json",
            serde_json::error::Category::Data => "json of the wrong shape",
            serde_json::error::Category::Io => "unreadable",
        };
        Error::Protocol(format!(
            "the {operation} reply is {what} (line {}, column {})",
            error.line(),
            error.column()
        ))
    })
}

/// Decodes an error reply. Only the two error headers are kept (the success path reads no
/// header at all).
async fn service_error(response: reqwest::Response) -> Result<ServiceError, Error> {
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
    let body = response.bytes().await.map_err(transport)?;
    let body = &body[..body.len().min(MAX_ERROR_BODY)];
    Ok(ServiceError::from_reply(
        status,
        error_type.as_deref(),
        error_message.as_deref(),
        body,
    ))
}

/// Idle connections kept per host. A daemon's calls come a few at a time (refreshes spread
/// over their jitter window, a login's few steps); a burst of logins opened a connection
/// each, and every one stayed idle with its buffers (~27 KB) until the idle timeout.
const MAX_IDLE_PER_HOST: usize = 4;

/// The one HTTP client setup of the crate: rustls, connect and request timeouts, the user
/// agent, no redirects, and no proxy but the one configured (never the environment's).
pub(crate) fn http_client(options: ClientOptions) -> Result<reqwest::Client, Error> {
    let other = |source| Error::Transport {
        kind: TransportKind::Other,
        source,
    };
    let mut builder = reqwest::Client::builder()
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .user_agent(options.user_agent)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(proxy) = options.proxy {
        builder = builder.proxy(reqwest::Proxy::all(proxy.as_str()).map_err(other)?);
    }
    builder.build().map_err(other)
}

/// Refuses an endpoint that is not an http(s) URL.
pub(crate) fn check_endpoint(endpoint: &url::Url) -> Result<(), Error> {
    if matches!(endpoint.scheme(), "https" | "http") && endpoint.has_host() {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "endpoint {endpoint} is not an http(s) url"
        )))
    }
}

pub(crate) fn transport(source: reqwest::Error) -> Error {
    let kind = if source.is_timeout() {
        TransportKind::Timeout
    } else if source.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Other
    };
    Error::Transport { kind, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_bodies() {
        let empty: Empty = decode_success(Operation::GlobalSignOut, b"").unwrap();
        let _ = empty;
        let reply: AuthResponse = decode_success(Operation::InitiateAuth, b"{}").unwrap();
        assert!(reply.challenge_name.is_none());
        let error = decode_success::<AuthResponse>(Operation::InitiateAuth, b"<html>oops</html>")
            .unwrap_err();
        assert!(
            matches!(&error, Error::Protocol(message) if message.contains("not json")),
            "{error}"
        );
        let error = decode_success::<AuthResponse>(
            Operation::InitiateAuth,
            br#"{"AuthenticationResult":{"AccessToken":12345678}}"#,
        )
        .unwrap_err();
        assert!(!error.to_string().contains("12345678"), "{error}");
    }

    #[test]
    fn rejects_non_http_endpoints() {
        let url = url::Url::parse("file:///etc/passwd").unwrap();
        assert!(matches!(
            CognitoClient::new(url, ClientOptions::default()),
            Err(Error::InvalidInput(_))
        ));
    }
}
