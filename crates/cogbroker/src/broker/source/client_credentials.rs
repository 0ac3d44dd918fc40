//! The `client_credentials` grant (design.md §14): a confidential app client trades its id and
//! secret (HTTP Basic) for an access token with the configured scopes. There is no refresh
//! token and no ID token: renewing is a new grant, and nothing is stored.

use crate::broker::state::HeldTokens;
use std::sync::Arc;

use cognito_auth::env::Clock;
use cognito_auth::secret::Password;
use cognito_auth::{
    ChallengeAnswer, DeviceCredentials, LoginStep, LoginSuccess, OAuthClient, OAuthErrorCode,
    PendingLogin, Refreshed,
};

use super::{RenewError, StepFailure, TokenSource};
use crate::broker::BrokerError;
use crate::broker::upstream::Upstreams;
use crate::config::{OAuthSettings, ProfileConfig};
use crate::secrets::SecretResolver;

use super::oauth_app::OAuthApp;
use crate::store::StoredSession;

/// A machine client at a user-pool domain.
pub(crate) struct ClientCredentialsSource {
    app: OAuthApp,
}

impl ClientCredentialsSource {
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

    /// The OAuth client, built on first use (the secret is resolved then).
    async fn client(&self) -> Result<OAuthClient, BrokerError> {
        self.app.client(Some("client_credentials")).await
    }

    fn no_login(&self) -> StepFailure {
        BrokerError::Unsupported(format!(
            "profile {} uses grant = \"client_credentials\": it needs no login (tokens come from the client secret on demand; `cogbroker refresh {}` fetches one now)",
            self.app.config.name, self.app.config.name
        ))
        .into()
    }
}

impl TokenSource for ClientCredentialsSource {
    fn sessionless(&self) -> bool {
        true
    }

    async fn renew(&self, _session: Option<&StoredSession>) -> Result<Refreshed, RenewError> {
        let client = self.client().await.map_err(RenewError::Setup)?;
        let scopes = &self.settings().map_err(RenewError::Setup)?.scopes;
        let tokens = client
            .client_credentials(scopes)
            .await
            .map_err(RenewError::Upstream)?;
        let tokens = tokens.to_token_set().map_err(RenewError::Upstream)?;
        Ok(Refreshed {
            tokens,
            rotated_refresh_token: None,
            new_device: None,
        })
    }

    async fn start_login(
        &self,
        _password: Option<Password>,
        _device: Option<DeviceCredentials>,
        _on_started: impl FnOnce() + Send,
    ) -> Result<LoginStep, StepFailure> {
        Err(self.no_login())
    }

    async fn respond(
        &self,
        _pending: PendingLogin,
        _answer: ChallengeAnswer,
    ) -> Result<LoginStep, StepFailure> {
        Err(self.no_login())
    }

    fn can_log_in_unattended(&self) -> bool {
        false
    }

    async fn unattended_login(&self, _device: Option<DeviceCredentials>) -> Option<LoginSuccess> {
        None
    }

    async fn end_session(
        &self,
        _session: StoredSession,
        _tokens: Option<Arc<HeldTokens>>,
        _forget_device: bool,
    ) {
    }

    fn misconfiguration(&self, error: &cognito_auth::Error) -> Option<String> {
        let oauth = error.oauth().filter(|oauth| oauth.is_misconfigured())?;
        let name = &self.app.config.name;
        let what = match oauth.code {
            OAuthErrorCode::InvalidClient => format!(
                "the domain refused client {} with its client_secret (invalid_client): check client_secret of profile {name}",
                self.app.config.client_id
            ),
            OAuthErrorCode::InvalidScope => format!(
                "the domain refused the scopes {:?} (invalid_scope): check scopes of profile {name} against the client's allowed custom scopes",
                self.app
                    .config
                    .oauth
                    .as_ref()
                    .map(|s| s.scopes.join(" "))
                    .unwrap_or_default()
            ),
            _ => format!(
                "the domain refused client {} ({}): allow the client_credentials flow for this app client",
                self.app.config.client_id, oauth.code
            ),
        };
        Some(format!(
            "{what}; no further attempt until the configuration changes or `cogbroker refresh {name}`"
        ))
    }
}
