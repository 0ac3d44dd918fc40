//! The `authorization_code` grant (design.md §14): a browser login through the pool's managed
//! login pages (or a federated IdP behind them) with PKCE S256 and a random `state`, redeemed
//! for an ID, access and refresh token, renewed with the refresh_token grant and revoked
//! through `/oauth2/revoke` on logout. No password ever reaches us.

use crate::broker::state::HeldTokens;
use std::sync::Arc;

use cognito_auth::env::{Clock, Entropy};
use cognito_auth::oauth::{AuthorizeRequest, authorize_url, new_state};
use cognito_auth::secret::{AuthorizationCode, Password};
use cognito_auth::{
    BrowserLogin, ChallengeAnswer, DeviceCredentials, LoginStep, LoginSuccess, OAuthClient,
    OAuthErrorCode, PendingLogin, Pkce, Refreshed,
};

use super::{RenewError, StepFailure, TokenSource};
use crate::broker::BrokerError;
use crate::broker::error::{describe_error, map_login_error};
use crate::broker::upstream::Upstreams;
use crate::config::{OAuthSettings, ProfileConfig};
use crate::secrets::SecretResolver;

use super::oauth_app::OAuthApp;
use crate::store::StoredSession;

/// An app client that signs people in through a browser.
pub(crate) struct BrowserSource {
    app: OAuthApp,
}

impl BrowserSource {
    pub(crate) fn new(
        config: ProfileConfig,
        secrets: SecretResolver,
        upstreams: Arc<Upstreams>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            app: OAuthApp::new(config, secrets, upstreams, clock),
        }
    }

    fn settings(&self) -> Result<&OAuthSettings, BrokerError> {
        self.app.settings()
    }

    /// The OAuth client, built on first use (a confidential client's secret is resolved then).
    async fn client(&self) -> Result<OAuthClient, BrokerError> {
        self.app.client(None).await
    }

    fn not_here(&self) -> StepFailure {
        BrokerError::Unsupported(format!(
            "profile {} signs in through a browser: `cogbroker login {} --browser` (or --no-browser)",
            self.app.config.name, self.app.config.name
        ))
        .into()
    }
}

impl TokenSource for BrowserSource {
    fn begin_browser(&self, entropy: &dyn Entropy) -> Option<Result<BrowserLogin, BrokerError>> {
        let settings = match self.settings() {
            Ok(settings) => settings,
            Err(error) => return Some(Err(error)),
        };
        let pkce = Pkce::generate(entropy);
        let state = new_state(entropy);
        let redirect_uri = settings.redirect_uri.as_str().to_owned();
        let url = authorize_url(
            &settings.domain,
            &self.app.config.client_id,
            &AuthorizeRequest {
                redirect_uri: &redirect_uri,
                scopes: &settings.scopes,
                state: &state,
                pkce: &pkce,
                identity_provider: settings.identity_provider.as_deref(),
            },
        );
        Some(
            url.map(|url| BrowserLogin {
                url,
                state,
                redirect_uri,
                pkce,
            })
            .map_err(|error| {
                BrokerError::Misconfigured(format!("profile {}: {error}", self.app.config.name))
            }),
        )
    }

    async fn finish_browser(
        &self,
        login: BrowserLogin,
        code: AuthorizationCode,
    ) -> Result<LoginStep, StepFailure> {
        let client = self.client().await?;
        let tokens =
            client
                .finish_browser_login(&login, &code)
                .await
                .map_err(|error| match self.misconfiguration(&error) {
                    Some(message) => BrokerError::Misconfigured(message),
                    None => map_login_error(&error),
                })?;
        let refresh_token = tokens.refresh_token().cloned().ok_or_else(|| {
            BrokerError::Misconfigured(format!(
                "profile {}: the token reply has no refresh token; allow the refresh token for this app client",
                self.app.config.name
            ))
        })?;
        let set = tokens
            .to_token_set()
            .map_err(|error| map_login_error(&error))?;
        Ok(LoginStep::Authenticated(Box::new(LoginSuccess {
            tokens: set,
            refresh_token,
            device: None,
        })))
    }

    async fn renew(&self, session: Option<&StoredSession>) -> Result<Refreshed, RenewError> {
        let Some(session) = session else {
            return Err(RenewError::Setup(BrokerError::Internal(anyhow::anyhow!(
                "a browser login's refresh needs a session"
            ))));
        };
        let client = self.client().await.map_err(RenewError::Setup)?;
        let tokens = client
            .refresh(&session.refresh_token)
            .await
            .map_err(RenewError::Upstream)?;
        let rotated = tokens.refresh_token().cloned();
        let set = tokens.to_token_set().map_err(RenewError::Upstream)?;
        Ok(Refreshed {
            tokens: set,
            rotated_refresh_token: rotated,
            new_device: None,
        })
    }

    async fn start_login(
        &self,
        _password: Option<Password>,
        _device: Option<DeviceCredentials>,
        _on_started: impl FnOnce() + Send,
    ) -> Result<LoginStep, StepFailure> {
        Err(self.not_here())
    }

    async fn respond(
        &self,
        _pending: PendingLogin,
        _answer: ChallengeAnswer,
    ) -> Result<LoginStep, StepFailure> {
        Err(self.not_here())
    }

    fn can_log_in_unattended(&self) -> bool {
        false
    }

    async fn unattended_login(&self, _device: Option<DeviceCredentials>) -> Option<LoginSuccess> {
        None
    }

    async fn end_session(
        &self,
        session: StoredSession,
        _tokens: Option<Arc<HeldTokens>>,
        _forget_device: bool,
    ) {
        let name = &self.app.config.name;
        let client = match self.client().await {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(profile = %name, error = %error, "cannot revoke upstream; the local session is erased anyway");
                return;
            }
        };
        if let Err(error) = client.revoke(&session.refresh_token).await {
            tracing::warn!(profile = %name, error = %describe_error(&error), "/oauth2/revoke failed; the local session is erased anyway");
        }
    }

    fn misconfiguration(&self, error: &cognito_auth::Error) -> Option<String> {
        let oauth = error.oauth().filter(|oauth| oauth.is_misconfigured())?;
        let name = &self.app.config.name;
        Some(match oauth.code {
            OAuthErrorCode::InvalidClient => format!(
                "the domain refused client {} (invalid_client): check client_id and client_secret of profile {name}",
                self.app.config.client_id
            ),
            _ => format!(
                "the domain refused client {} ({}): allow the authorization code grant and the scopes of profile {name}",
                self.app.config.client_id, oauth.code
            ),
        })
    }
}
