//! The async driver: sends what [`crate::flow`] asks for, answers the automatic steps itself and
//! returns only the steps a person must take; plus refresh, revocation and sign-out.
//!
//! Automatic steps: PASSWORD_VERIFIER, DEVICE_SRP_AUTH, DEVICE_PASSWORD_VERIFIER, the
//! AssociateSoftwareToken of MFA_SETUP, ConfirmDevice + UpdateDeviceStatus after a new device,
//! and one restart without DEVICE_KEY after "Device does not exist". Steps that do SRP math run
//! on a blocking thread; the rest run inline. Nothing is retried here: a call that carried a
//! Session or a code must never be sent twice, and the broker owns the retry policy for the rest.
//! Refresh makes the calls [`crate::flow::RefreshPlan`] asks for.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::client::CognitoClient;
use crate::env::{Clock, Entropy};
use crate::error::Error;
use crate::flow::{
    DeviceCredentials, FlowOptions, Login, LoginRequest, LoginStep, Next, PendingLogin,
    RefreshCall, RefreshPlan, RefreshStep, Reply, Request, RespondError, confirm_device_request,
};
use crate::pool::AppClient;
use crate::secret::{AccessToken, RefreshToken};
use crate::tokens::TokenSet;
use crate::wire::{
    AuthenticationResult, ForgetDeviceRequest, GetTokensFromRefreshTokenRequest, GetUserRequest,
    GetUserResponse, GlobalSignOutRequest, InitiateAuthRequest, Parameters, RevokeTokenRequest,
};

/// Signs users in to one app client and keeps their tokens fresh. Cheap to clone; clones share
/// the connection pool and what was learned about the endpoint.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    client: CognitoClient,
    app: AppClient,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    options: FlowOptions,
    /// The endpoint lacks GetTokensFromRefreshToken: refresh with REFRESH_TOKEN_AUTH directly.
    refresh_fallback: AtomicBool,
}

/// What a refresh needs.
#[derive(Debug, Clone, Copy)]
pub struct RefreshRequest<'a> {
    /// The refresh token.
    pub refresh_token: &'a RefreshToken,
    /// The device the refresh token is bound to, if any.
    pub device: Option<&'a DeviceCredentials>,
    /// The internal username (the access token's `username` claim): needed only for the
    /// REFRESH_TOKEN_AUTH fallback's SECRET_HASH when the client has a secret.
    pub username: Option<&'a str>,
}

/// A successful refresh.
pub struct Refreshed {
    /// The new access and ID tokens.
    pub tokens: TokenSet,
    /// A new refresh token when the client rotates them: persist it before using the tokens.
    pub rotated_refresh_token: Option<RefreshToken>,
    /// A device Cognito created (and this refresh confirmed) because the one sent was unknown.
    pub new_device: Option<DeviceCredentials>,
}

impl fmt::Debug for Refreshed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refreshed")
            .field("tokens", &self.tokens)
            .field(
                "rotated_refresh_token",
                &self.rotated_refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("new_device", &self.new_device)
            .finish()
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("endpoint", &self.inner.client.endpoint().as_str())
            .field("app", &self.inner.app)
            .field(
                "refresh_fallback",
                &self.inner.refresh_fallback.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `app` at `client`'s endpoint, with default [`FlowOptions`].
    pub fn new(
        client: CognitoClient,
        app: AppClient,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        Authenticator {
            inner: Arc::new(Inner {
                client,
                app,
                clock,
                entropy,
                options: FlowOptions::default(),
                refresh_fallback: AtomicBool::new(false),
            }),
        }
    }

    /// The same authenticator with other flow options (session validity, TOTP issuer).
    pub fn with_flow_options(self, options: FlowOptions) -> Self {
        let inner = &self.inner;
        Authenticator {
            inner: Arc::new(Inner {
                client: inner.client.clone(),
                app: inner.app.clone(),
                clock: inner.clock.clone(),
                entropy: inner.entropy.clone(),
                options,
                refresh_fallback: AtomicBool::new(inner.refresh_fallback.load(Ordering::Relaxed)),
            }),
        }
    }

    /// The same authenticator, refreshing with REFRESH_TOKEN_AUTH from the start when
    /// `fallback` (an earlier one for this endpoint found it lacks GetTokensFromRefreshToken:
    /// [`uses_refresh_fallback`](Self::uses_refresh_fallback)), so a caller that builds one per
    /// operation does not learn it again each time.
    pub fn with_refresh_fallback(self, fallback: bool) -> Self {
        self.inner
            .refresh_fallback
            .store(fallback, Ordering::Relaxed);
        self
    }

    /// The HTTP client.
    pub fn client(&self) -> &CognitoClient {
        &self.inner.client
    }

    /// The app client.
    pub fn app(&self) -> &AppClient {
        &self.inner.app
    }

    /// Whether refreshes go straight to REFRESH_TOKEN_AUTH because the endpoint was found to
    /// lack GetTokensFromRefreshToken.
    pub fn uses_refresh_fallback(&self) -> bool {
        self.inner.refresh_fallback.load(Ordering::Relaxed)
    }

    /// Starts a sign-in and runs it until it is done or a person must answer.
    #[tracing::instrument(skip_all, fields(flow = %request.flow))]
    pub async fn start_login(&self, request: LoginRequest) -> Result<LoginStep, Error> {
        let app = self.inner.app.clone();
        let options = self.inner.options.clone();
        let entropy = self.inner.entropy.clone();
        let srp = request.flow.starts_with_srp();
        let (login, request) =
            compute(srp, move || Login::start(app, request, options, &*entropy)).await??;
        self.drive(login, request)
            .await
            .map_err(|failure| failure.error)
    }

    /// Answers the challenge of `pending` and runs the sign-in on until it is done or a person
    /// must answer again. A pending login older than its session window fails with
    /// [`Error::ChallengeExpired`] without a call.
    #[tracing::instrument(skip_all, fields(challenge = pending.challenge().name()))]
    pub async fn respond(
        &self,
        pending: PendingLogin,
        answer: crate::flow::ChallengeAnswer,
    ) -> Result<LoginStep, RespondError> {
        let now = self.inner.clock.now();
        let entropy = self.inner.entropy.clone();
        let srp = PendingLogin::answer_needs_srp(&answer);
        let (login, request) =
            compute(srp, move || pending.answer(answer, now, &*entropy)).await??;
        self.drive(login, request).await
    }

    async fn drive(
        &self,
        mut login: Login,
        mut request: Request,
    ) -> Result<LoginStep, RespondError> {
        loop {
            let reply = self.send(&request).await;
            let now = self.inner.clock.now();
            let entropy = self.inner.entropy.clone();
            let srp = login.reply_needs_srp(&reply);
            let next = compute(srp, move || login.on_reply(reply, now, &*entropy)).await??;
            match next {
                Next::Send {
                    login: next_login,
                    request: next_request,
                } => {
                    login = *next_login;
                    request = next_request;
                }
                Next::Challenge(pending) => return Ok(LoginStep::Challenge(pending)),
                Next::Done(success) => return Ok(LoginStep::Authenticated(success)),
            }
        }
    }

    async fn send(&self, request: &Request) -> Result<Reply, Error> {
        let client = &self.inner.client;
        match request {
            Request::InitiateAuth(request) => client.initiate_auth(request).await.map(Reply::Auth),
            Request::RespondToAuthChallenge(request) => client
                .respond_to_auth_challenge(request)
                .await
                .map(Reply::Auth),
            Request::AssociateSoftwareToken(request) => client
                .associate_software_token(request)
                .await
                .map(Reply::AssociateSoftwareToken),
            Request::VerifySoftwareToken(request) => client
                .verify_software_token(request)
                .await
                .map(Reply::VerifySoftwareToken),
            Request::ConfirmDevice(request) => client
                .confirm_device(request)
                .await
                .map(Reply::ConfirmDevice),
            Request::UpdateDeviceStatus(request) => client
                .update_device_status(request)
                .await
                .map(|()| Reply::UpdateDeviceStatus),
        }
    }

    /// New tokens from a refresh token: GetTokensFromRefreshToken (raw client secret, device
    /// key), or InitiateAuth REFRESH_TOKEN_AUTH where the endpoint lacks that operation.
    ///
    /// Which call to make, when a failure earns a fallback try, when the fallback is remembered
    /// and which verdict stands are decided by [`RefreshPlan`] (see [`crate::flow`]'s refresh
    /// module); this only makes the calls.
    #[tracing::instrument(skip_all, fields(device = request.device.is_some()))]
    pub async fn refresh(&self, request: RefreshRequest<'_>) -> Result<Refreshed, Error> {
        let (mut plan, mut call) = RefreshPlan::start(self.uses_refresh_fallback());
        loop {
            let outcome = match call {
                RefreshCall::GetTokensFromRefreshToken => {
                    self.get_tokens_from_refresh_token(&request).await
                }
                RefreshCall::RefreshTokenAuth => self.refresh_token_auth(&request).await,
            };
            match plan.on_outcome(outcome) {
                RefreshStep::Send {
                    plan: next_plan,
                    call: next_call,
                    remember_fallback,
                } => {
                    self.remember_fallback(remember_fallback);
                    plan = next_plan;
                    call = next_call;
                }
                RefreshStep::Done {
                    outcome,
                    remember_fallback,
                } => {
                    self.remember_fallback(remember_fallback);
                    return outcome;
                }
            }
        }
    }

    fn remember_fallback(&self, remember: bool) {
        if remember {
            self.inner.refresh_fallback.store(true, Ordering::Relaxed);
        }
    }

    async fn get_tokens_from_refresh_token(
        &self,
        request: &RefreshRequest<'_>,
    ) -> Result<Refreshed, Error> {
        let wire = GetTokensFromRefreshTokenRequest {
            refresh_token: request.refresh_token.clone(),
            client_id: self.inner.app.client_id.clone(),
            client_secret: self.inner.app.client_secret.clone(),
            device_key: request.device.map(|device| device.device_key.clone()),
            client_metadata: None,
        };
        let response = self
            .inner
            .client
            .get_tokens_from_refresh_token(&wire)
            .await?;
        let now = self.inner.clock.now();
        let result = response
            .authentication_result
            .ok_or_else(|| Error::Protocol("the refresh reply holds no tokens".into()))?;
        self.refreshed(result, now).await
    }

    async fn refresh_token_auth(&self, request: &RefreshRequest<'_>) -> Result<Refreshed, Error> {
        let app = &self.inner.app;
        let mut parameters = Parameters::new();
        parameters.insert("REFRESH_TOKEN", request.refresh_token.expose_secret());
        if let Some(secret) = &app.client_secret {
            // Cognito hashes the internal username recorded in the refresh token, never an alias.
            let username = request
                .username
                .filter(|name| !name.is_empty())
                .ok_or_else(|| {
                    Error::InvalidInput(
                        "REFRESH_TOKEN_AUTH with a client secret needs the internal username"
                            .into(),
                    )
                })?;
            parameters.insert(
                "SECRET_HASH",
                crate::srp::secret_hash(secret, username, &app.client_id),
            );
        }
        if let Some(device) = request.device {
            parameters.insert("DEVICE_KEY", device.device_key.as_str());
        }
        let wire = InitiateAuthRequest {
            auth_flow: "REFRESH_TOKEN_AUTH".into(),
            client_id: app.client_id.clone(),
            auth_parameters: parameters,
            client_metadata: None,
            session: None,
        };
        let response = self.inner.client.initiate_auth(&wire).await?;
        let now = self.inner.clock.now();
        let Some(result) = response.authentication_result else {
            return Err(Error::Protocol(match response.challenge_name {
                Some(name) => format!("the refresh was answered with a {name} challenge"),
                None => "the refresh reply holds no tokens".into(),
            }));
        };
        self.refreshed(result, now).await
    }

    async fn refreshed(
        &self,
        result: AuthenticationResult,
        now: std::time::SystemTime,
    ) -> Result<Refreshed, Error> {
        let tokens = TokenSet::from_result(&result, now)?;
        let rotated_refresh_token = result.refresh_token.clone();
        let new_device = match result.new_device_metadata {
            Some(metadata) => self.confirm_new_device(&tokens, metadata).await,
            None => None,
        };
        Ok(Refreshed {
            tokens,
            rotated_refresh_token,
            new_device,
        })
    }

    /// Registers a device Cognito created during a refresh. A failure is logged, not returned:
    /// the refreshed tokens (and a rotated refresh token) must reach the caller regardless.
    async fn confirm_new_device(
        &self,
        tokens: &TokenSet,
        metadata: crate::wire::NewDeviceMetadata,
    ) -> Option<DeviceCredentials> {
        let entropy = self.inner.entropy.clone();
        let access_token = tokens.access_token().clone();
        let made =
            blocking(move || confirm_device_request(&access_token, &metadata, None, &*entropy))
                .await;
        let (device, request) = match made {
            Ok(made) => made,
            Err(error) => {
                tracing::warn!(error = %error, "could not build a device verifier");
                return None;
            }
        };
        match self.inner.client.confirm_device(&request).await {
            Ok(_) => Some(device),
            Err(error) => {
                tracing::warn!(error = %error, "ConfirmDevice after a refresh failed");
                None
            }
        }
    }

    /// Revokes a refresh token and the access tokens issued from it (RevokeToken).
    pub async fn revoke(&self, refresh_token: &RefreshToken) -> Result<(), Error> {
        let request = RevokeTokenRequest {
            token: refresh_token.clone(),
            client_id: self.inner.app.client_id.clone(),
            client_secret: self.inner.app.client_secret.clone(),
        };
        self.inner.client.revoke_token(&request).await
    }

    /// Forgets a remembered device (ForgetDevice).
    pub async fn forget_device(
        &self,
        access_token: &AccessToken,
        device_key: &str,
    ) -> Result<(), Error> {
        let request = ForgetDeviceRequest {
            access_token: Some(access_token.clone()),
            device_key: device_key.to_owned(),
        };
        self.inner.client.forget_device(&request).await
    }

    /// Invalidates every refresh token of the user, on every device (GlobalSignOut).
    pub async fn global_sign_out(&self, access_token: &AccessToken) -> Result<(), Error> {
        let request = GlobalSignOutRequest {
            access_token: access_token.clone(),
        };
        self.inner.client.global_sign_out(&request).await
    }

    /// The signed-in user's username and attributes (GetUser).
    pub async fn user(&self, access_token: &AccessToken) -> Result<GetUserResponse, Error> {
        let request = GetUserRequest {
            access_token: access_token.clone(),
        };
        self.inner.client.get_user(&request).await
    }
}

/// Runs a step of the state machine: on a blocking thread when it does SRP math (tens of
/// milliseconds of big-number arithmetic), inline otherwise.
async fn compute<T, F>(srp: bool, work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if srp {
        blocking(work).await
    } else {
        Ok(work())
    }
}

/// Runs CPU-bound protocol work (SRP) off the async threads. A panic inside is re-raised here.
async fn blocking<T, F>(work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(Error::Shutdown),
        },
    }
}

#[cfg(test)]
mod tests;
