//! The user-pool source: SRP, USER_PASSWORD_AUTH, CUSTOM_AUTH and USER_AUTH sign-ins (with
//! their challenges and remembered devices), renewed with the refresh token.

use crate::broker::state::HeldTokens;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cognito_auth::env::{Clock, Entropy};
use cognito_auth::secret::{ClientSecret, Password};
use cognito_auth::{
    AppClient, AuthFlow, Authenticator, ChallengeAnswer, DeviceCredentials, DeviceRemembering,
    LoginRequest, LoginStep, LoginSuccess, PendingLogin, RefreshRequest, Refreshed, RespondError,
    regional_endpoint,
};
use secrecy::ExposeSecret;

use super::{RenewError, StepFailure, TokenSource};
use crate::broker::BrokerError;
use crate::broker::error::{describe_error, map_login_error};
use crate::broker::upstream::Upstreams;
use crate::config::ProfileConfig;
use crate::secrets::SecretResolver;
use crate::store::StoredSession;

/// A Cognito user pool app client.
pub(crate) struct UserPoolSource {
    config: ProfileConfig,
    secrets: SecretResolver,
    upstreams: Arc<Upstreams>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    /// The client secret, resolved on first use (a command or the keyring may be asked once).
    client_secret: tokio::sync::OnceCell<Option<ClientSecret>>,
    /// The endpoint lacks GetTokensFromRefreshToken (a refresh learned it).
    refresh_fallback: AtomicBool,
}

impl UserPoolSource {
    pub(crate) fn new(
        config: ProfileConfig,
        secrets: SecretResolver,
        upstreams: Arc<Upstreams>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        Self {
            config,
            secrets,
            upstreams,
            clock,
            entropy,
            client_secret: tokio::sync::OnceCell::new(),
            refresh_fallback: AtomicBool::new(false),
        }
    }

    /// An authenticator for one operation. Built each time rather than kept: a daemon holds
    /// a source per profile for weeks and uses it about once an hour, and a kept one was ~270
    /// bytes with its copies of the pool and client ids (design.md §11: 1,000 profiles in 15
    /// MB). What must not be redone is kept: the resolved client secret, the refresh fallback.
    async fn authenticator(&self) -> Result<Authenticator, BrokerError> {
        let config = &self.config;
        let misconfigured = |error: &dyn std::fmt::Display| {
            BrokerError::Misconfigured(format!("profile {}: {error}", config.name))
        };
        let endpoint = match &config.endpoint {
            Some(url) => url.clone(),
            None => regional_endpoint(&config.region, config.endpoint_variant)
                .map_err(|error| misconfigured(&error))?,
        };
        let client = self.upstreams.client(&endpoint)?;
        let client_secret = self
            .client_secret
            .get_or_try_init(|| async {
                let Some(source) = &config.client_secret else {
                    return Ok(None);
                };
                let secret = self
                    .secrets
                    .resolve(source, &config.name, "client_secret")
                    .await
                    .map_err(|error| BrokerError::Misconfigured(error.to_string()))?;
                Ok::<_, BrokerError>(Some(ClientSecret::new(secret.expose_secret())))
            })
            .await?
            .clone();
        let user_pool_id = config
            .user_pool_id
            .clone()
            .ok_or_else(|| misconfigured(&"no user_pool_id"))?;
        Ok(Authenticator::new(
            client,
            AppClient {
                user_pool_id,
                client_id: config.client_id.clone(),
                client_secret,
            },
            self.clock.clone(),
            self.entropy.clone(),
        )
        .with_refresh_fallback(self.refresh_fallback.load(Ordering::Relaxed)))
    }

    fn login_request(
        &self,
        password: Option<Password>,
        device: Option<DeviceCredentials>,
    ) -> LoginRequest {
        let config = &self.config;
        LoginRequest {
            username: config.username.clone(),
            password,
            flow: config.auth_flow.clone(),
            device,
            remember_device: if config.remember_device {
                DeviceRemembering::Remember
            } else {
                DeviceRemembering::DoNotRemember
            },
            device_name: config.device_name.clone(),
        }
    }

    /// The flow needs a password: SRP, USER_PASSWORD_AUTH, and USER_AUTH preferring a
    /// password factor (a passwordless USER_AUTH asks for a code instead).
    fn password_flow(&self) -> bool {
        match &self.config.auth_flow {
            AuthFlow::UserSrp | AuthFlow::UserPassword => true,
            AuthFlow::UserAuth {
                preferred: Some(preferred),
            } => preferred.starts_with("PASSWORD"),
            _ => false,
        }
    }

    async fn configured_password(&self) -> Result<Option<Password>, BrokerError> {
        let Some(source) = &self.config.password else {
            return Ok(None);
        };
        let secret = self
            .secrets
            .resolve(source, &self.config.name, "password")
            .await
            .map_err(|error| BrokerError::Misconfigured(error.to_string()))?;
        Ok(Some(Password::new(secret.expose_secret())))
    }
}

impl TokenSource for UserPoolSource {
    async fn renew(&self, session: Option<&StoredSession>) -> Result<Refreshed, RenewError> {
        let Some(session) = session else {
            return Err(RenewError::Setup(BrokerError::Internal(anyhow::anyhow!(
                "a user-pool refresh needs a session"
            ))));
        };
        let authenticator = self.authenticator().await.map_err(RenewError::Setup)?;
        let refreshed = authenticator
            .refresh(RefreshRequest {
                refresh_token: &session.refresh_token,
                device: session.device.as_ref(),
                username: session.username.as_deref(),
            })
            .await;
        self.refresh_fallback
            .store(authenticator.uses_refresh_fallback(), Ordering::Relaxed);
        refreshed.map_err(RenewError::Upstream)
    }

    async fn start_login(
        &self,
        password: Option<Password>,
        device: Option<DeviceCredentials>,
        on_started: impl FnOnce() + Send,
    ) -> Result<LoginStep, StepFailure> {
        let password = match password {
            Some(password) => Some(password),
            None => self.configured_password().await?,
        };
        if password.is_none() && self.password_flow() {
            return Err(BrokerError::BadInput {
                field: "password",
                message: format!(
                    "a password is required for {} (send one, or configure a password source for profile {})",
                    self.config.auth_flow_name, self.config.name
                ),
            }
            .into());
        }
        let authenticator = self.authenticator().await?;
        on_started();
        authenticator
            .start_login(self.login_request(password, device))
            .await
            .map_err(|error| map_login_error(&error).into())
    }

    async fn respond(
        &self,
        pending: PendingLogin,
        answer: ChallengeAnswer,
    ) -> Result<LoginStep, StepFailure> {
        let authenticator = match self.authenticator().await {
            Ok(authenticator) => authenticator,
            Err(error) => {
                return Err(StepFailure {
                    error,
                    pending: Some(Box::new(pending)),
                });
            }
        };
        authenticator
            .respond(pending, answer)
            .await
            .map_err(|RespondError { error, pending }| {
                let error = map_login_error(&error);
                let pending = pending.filter(|_| !matches!(error, BrokerError::ChallengeExpired));
                StepFailure { error, pending }
            })
    }

    fn can_log_in_unattended(&self) -> bool {
        self.config.password.is_some() && self.password_flow()
    }

    async fn unattended_login(&self, device: Option<DeviceCredentials>) -> Option<LoginSuccess> {
        let name = &self.config.name;
        let password = match self.configured_password().await {
            Ok(Some(password)) => password,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(error = %error, "unattended login impossible");
                return None;
            }
        };
        let authenticator = self.authenticator().await.ok()?;
        match authenticator
            .start_login(self.login_request(Some(password), device))
            .await
        {
            Ok(LoginStep::Authenticated(success)) => {
                tracing::info!(profile = %name, "unattended login succeeded");
                Some(*success)
            }
            Ok(LoginStep::Challenge(pending)) => {
                tracing::warn!(profile = %name, challenge = pending.challenge().name(), "unattended login needs a person");
                None
            }
            Err(error) => {
                tracing::warn!(profile = %name, error = %describe_error(&error), "unattended login failed");
                None
            }
        }
    }

    async fn end_session(
        &self,
        session: StoredSession,
        tokens: Option<Arc<HeldTokens>>,
        forget_device: bool,
    ) {
        let name = &self.config.name;
        let authenticator = match self.authenticator().await {
            Ok(authenticator) => authenticator,
            Err(error) => {
                tracing::warn!(profile = %name, error = %error, "cannot revoke upstream; the local session is erased anyway");
                return;
            }
        };
        if forget_device {
            let now = self.clock.now();
            match (
                &session.device,
                tokens.as_ref().filter(|t| t.expires_at() > now),
            ) {
                (Some(device), Some(tokens)) => {
                    if let Err(error) = authenticator
                        .forget_device(tokens.access_token(), &device.device_key)
                        .await
                    {
                        tracing::warn!(profile = %name, error = %describe_error(&error), "ForgetDevice failed");
                    }
                }
                (Some(_), None) => {
                    tracing::warn!(profile = %name, "cannot forget the device: no valid access token");
                }
                (None, _) => {}
            }
        }
        if let Err(error) = authenticator.revoke(&session.refresh_token).await {
            tracing::warn!(profile = %name, error = %describe_error(&error), "RevokeToken failed; the local session is erased anyway");
        }
    }
}
