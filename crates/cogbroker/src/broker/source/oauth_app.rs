//! What the two OAuth grants share: the profile's app client at its pool domain, with the
//! HTTP client built on first use (when a confidential client's secret is resolved).

use std::sync::Arc;

use cognito_auth::env::Clock;
use cognito_auth::oauth::OAuthClient;
use cognito_auth::secret::ClientSecret;
use secrecy::ExposeSecret;

use crate::broker::BrokerError;
use crate::broker::upstream::Upstreams;
use crate::config::{OAuthSettings, ProfileConfig};
use crate::secrets::SecretResolver;

/// An app client at a user-pool domain (`client_credentials` or `authorization_code`).
pub(crate) struct OAuthApp {
    pub(crate) config: ProfileConfig,
    secrets: SecretResolver,
    upstreams: Arc<Upstreams>,
    pub(crate) clock: Arc<dyn Clock>,
    client: tokio::sync::OnceCell<OAuthClient>,
}

impl OAuthApp {
    pub(crate) fn new(
        config: ProfileConfig,
        secrets: SecretResolver,
        upstreams: Arc<Upstreams>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            config,
            secrets,
            upstreams,
            clock,
            client: tokio::sync::OnceCell::new(),
        }
    }

    pub(crate) fn settings(&self) -> Result<&OAuthSettings, BrokerError> {
        self.config.oauth.as_deref().ok_or_else(|| {
            BrokerError::Misconfigured(format!("profile {}: no domain", self.config.name))
        })
    }

    /// The OAuth client, built on first use. `secret_needed_by`: the grant that cannot work
    /// without a client secret (a public browser client has none).
    pub(crate) async fn client(
        &self,
        secret_needed_by: Option<&str>,
    ) -> Result<OAuthClient, BrokerError> {
        self.client
            .get_or_try_init(|| async {
                let config = &self.config;
                let settings = self.settings()?;
                let secret = match (&config.client_secret, secret_needed_by) {
                    (None, None) => None,
                    (None, Some(grant)) => {
                        return Err(BrokerError::Misconfigured(format!(
                            "profile {}: {grant} needs client_secret",
                            config.name
                        )));
                    }
                    (Some(source), _) => {
                        let secret = self
                            .secrets
                            .resolve(source, &config.name, "client_secret")
                            .await
                            .map_err(|error| BrokerError::Misconfigured(error.to_string()))?;
                        Some(ClientSecret::new(secret.expose_secret()))
                    }
                };
                OAuthClient::new(
                    settings.domain.clone(),
                    config.client_id.clone(),
                    secret,
                    self.upstreams.client_options(),
                    self.clock.clone(),
                )
                .map_err(|error| {
                    BrokerError::Misconfigured(format!("profile {}: {error}", config.name))
                })
            })
            .await
            .cloned()
    }
}
