//! The OAuth 2.0 endpoints of a user-pool domain (`https://<prefix>.auth.<region>.amazoncognito.com`,
//! a custom domain, or an emulator's URL): the client_credentials, authorization_code (PKCE S256)
//! and refresh_token grants of `/oauth2/token`, and `/oauth2/revoke`.
//!
//! The pure parts ([`Pkce`], [`new_state`], [`authorize_url`], [`parse_redirect`],
//! [`OAuthTokens::from_reply`], [`OAuthError::from_reply`](crate::error::OAuthError::from_reply))
//! do no IO; [`OAuthClient`] sends the forms with the crate's one HTTP setup (rustls, the
//! [`ClientOptions`] timeouts and user agent). Confidential clients authenticate with HTTP Basic
//! (client_secret_basic). Nothing is retried here.

mod authorize;
mod pkce;
mod token;

use std::fmt;
use std::sync::Arc;

use url::Url;

pub use authorize::{AuthorizeRequest, authorize_url, parse_redirect};
pub use pkce::{Pkce, new_state};
pub use token::OAuthTokens;

use crate::client::{ClientOptions, MAX_ERROR_BODY, check_endpoint, http_client, transport};
use crate::env::{Clock, Entropy};
use crate::error::{Error, OAuthError, OAuthRequest};
use crate::secret::{AuthorizationCode, ClientSecret, RefreshToken};

/// A browser login in progress: the URL to open, and what checking and redeeming the redirect
/// needs. Holds the PKCE verifier; its `Debug` does not show it.
#[derive(Debug, Clone)]
pub struct BrowserLogin {
    /// The `/oauth2/authorize` URL to open in a browser.
    pub url: Url,
    /// The `state` sent, checked on the redirect.
    pub state: String,
    /// The redirect URI sent, repeated at the token step.
    pub redirect_uri: String,
    /// The PKCE pair; the verifier is sent at the token step.
    pub pkce: Pkce,
}

impl BrowserLogin {
    /// The code of the redirect URL, once its `state` is this login's (see [`parse_redirect`]).
    pub fn code_from_redirect(&self, redirect: &str) -> Result<AuthorizationCode, Error> {
        parse_redirect(redirect, &self.state)
    }
}

/// One app client at one user-pool domain. Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    domain: Url,
    client_id: String,
    client_secret: Option<ClientSecret>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("domain", &self.domain.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// A client for the app `client_id` (with its secret, for a confidential client) at
    /// `domain`. `clock` stamps when tokens arrive.
    pub fn new(
        domain: Url,
        client_id: impl Into<String>,
        client_secret: Option<ClientSecret>,
        options: ClientOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        check_endpoint(&domain)?;
        let client_id = client_id.into();
        if client_id.trim().is_empty() {
            return Err(Error::InvalidInput("the client id is empty".into()));
        }
        Ok(OAuthClient {
            http: http_client(options)?,
            domain,
            client_id,
            client_secret: client_secret.filter(|secret| !secret.is_empty()),
            clock,
        })
    }

    /// The domain.
    pub fn domain(&self) -> &Url {
        &self.domain
    }

    /// The app client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Starts a browser login: a fresh PKCE verifier and `state` from `entropy`, and the
    /// authorize URL carrying them.
    pub fn begin_browser_login(
        &self,
        entropy: &dyn Entropy,
        redirect_uri: &str,
        scopes: &[String],
        identity_provider: Option<&str>,
    ) -> Result<BrowserLogin, Error> {
        let pkce = Pkce::generate(entropy);
        let state = new_state(entropy);
        let url = authorize_url(
            &self.domain,
            &self.client_id,
            &AuthorizeRequest {
                redirect_uri,
                scopes,
                state: &state,
                pkce: &pkce,
                identity_provider,
            },
        )?;
        Ok(BrowserLogin {
            url,
            state,
            redirect_uri: redirect_uri.to_owned(),
            pkce,
        })
    }

    /// Redeems the code of a browser login (the authorization_code grant).
    pub async fn finish_browser_login(
        &self,
        login: &BrowserLogin,
        code: &AuthorizationCode,
    ) -> Result<OAuthTokens, Error> {
        self.exchange_code(code, &login.redirect_uri, &login.pkce)
            .await
    }

    /// `grant_type=authorization_code`: `code`, `redirect_uri` (as sent to authorize),
    /// `code_verifier`, `client_id`; Basic auth when the client has a secret.
    pub async fn exchange_code(
        &self,
        code: &AuthorizationCode,
        redirect_uri: &str,
        pkce: &Pkce,
    ) -> Result<OAuthTokens, Error> {
        authorize::check_redirect_uri(redirect_uri)?;
        let form = self.form(&[
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", pkce.verifier().expose_secret()),
        ]);
        self.token(OAuthRequest::AuthorizationCode, form).await
    }

    /// `grant_type=client_credentials` with `scope` (space-separated; omitted when empty, which
    /// asks for all the client's scopes). Needs the client secret (HTTP Basic).
    pub async fn client_credentials(&self, scopes: &[String]) -> Result<OAuthTokens, Error> {
        if self.client_secret.is_none() {
            return Err(Error::InvalidInput(
                "the client_credentials grant needs the app client's secret".into(),
            ));
        }
        let scope = scopes.join(" ");
        let mut fields = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            fields.push(("scope", scope.as_str()));
        }
        let form = self.form(&fields);
        self.token(OAuthRequest::ClientCredentials, form).await
    }

    /// `grant_type=refresh_token`. `invalid_grant` comes back as an error whose
    /// [`Error::refresh_failure`] is set.
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<OAuthTokens, Error> {
        let form = self.form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ]);
        self.token(OAuthRequest::RefreshToken, form).await
    }

    /// `/oauth2/revoke`: revokes a refresh token and the tokens issued from it.
    pub async fn revoke(&self, refresh_token: &RefreshToken) -> Result<(), Error> {
        let form = self.form(&[("token", refresh_token.expose_secret())]);
        self.post(OAuthRequest::Revoke, "oauth2/revoke", form)
            .await
            .map(drop)
    }

    /// The form body: `fields`, then `client_id`.
    fn form(&self, fields: &[(&str, &str)]) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in fields {
            form.append_pair(name, value);
        }
        form.append_pair("client_id", &self.client_id);
        form.finish()
    }

    async fn token(&self, request: OAuthRequest, form: String) -> Result<OAuthTokens, Error> {
        let body = self.post(request, "oauth2/token", form).await?;
        OAuthTokens::from_reply(&body, self.clock.now())
    }

    /// POSTs a form; a non-2xx reply becomes an [`OAuthError`].
    async fn post(
        &self,
        request: OAuthRequest,
        path: &str,
        form: String,
    ) -> Result<Vec<u8>, Error> {
        let url = endpoint(&self.domain, path)?;
        let mut builder = self
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .body(form);
        if let Some(secret) = &self.client_secret {
            // RFC 6749 §2.3.1: each part form-encoded before Basic (a no-op for Cognito's ids).
            let encode = |text: &str| -> String {
                url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
            };
            builder = builder.basic_auth(
                encode(&self.client_id),
                Some(encode(secret.expose_secret())),
            );
        }
        let response = builder.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let body = &bytes[..bytes.len().min(MAX_ERROR_BODY)];
            let error = OAuthError::from_reply(status.as_u16(), body, request);
            tracing::debug!(%request, status = error.status, code = %error.code, "oauth error");
            return Err(error.into());
        }
        Ok(bytes.to_vec())
    }
}

/// `domain` joined with `path`, keeping any path the domain has (an emulator's prefix).
fn endpoint(domain: &Url, path: &str) -> Result<Url, Error> {
    let mut base = domain.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.set_query(None);
    base.set_fragment(None);
    base.join(path)
        .map_err(|error| Error::InvalidInput(format!("cannot build the {path} url: {error}")))
}

#[cfg(test)]
mod tests;
