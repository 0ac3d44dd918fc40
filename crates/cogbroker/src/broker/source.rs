//! Token sources: how a profile gets and renews its tokens. The profile task owns scheduling,
//! single flight, backoff, persistence and events; a source only talks upstream. Rooms:
//!
//! - [`user_pool`]: user-pool sign-ins (SRP, USER_PASSWORD_AUTH, CUSTOM_AUTH, USER_AUTH with
//!   passwordless first factors) renewed with the refresh token;
//! - [`client_credentials`]: a machine client's `client_credentials` grant, renewed by a new
//!   grant (there is no refresh token and no session to store);
//!
//! [`Source`] is the one type the profile task is built with: an enum over these, so every
//! grant shares the task's refresh, backoff, persistence and events.

pub(crate) mod browser;
pub(crate) mod client_credentials;
mod oauth_app;
pub(crate) mod user_pool;

use crate::broker::state::HeldTokens;
use std::future::Future;
use std::sync::Arc;

use cognito_auth::env::Entropy;
use cognito_auth::secret::{AuthorizationCode, Password};
use cognito_auth::{
    BrowserLogin, ChallengeAnswer, DeviceCredentials, LoginStep, LoginSuccess, PendingLogin,
    Refreshed,
};

pub(crate) use browser::BrowserSource;
pub(crate) use client_credentials::ClientCredentialsSource;
pub(crate) use user_pool::UserPoolSource;

use super::BrokerError;
use crate::store::StoredSession;

/// A failed renewal: the source could not even be set up, or upstream said no.
#[derive(Debug)]
pub(crate) enum RenewError {
    /// The profile's configuration cannot work (a secret source failed, a bad endpoint).
    Setup(BrokerError),
    /// The upstream call failed.
    Upstream(cognito_auth::Error),
}

/// A login step that failed; `pending` comes back when the same challenge may be answered
/// again (a wrong code, a refused new password).
#[derive(Debug)]
pub(crate) struct StepFailure {
    pub(crate) error: BrokerError,
    pub(crate) pending: Option<Box<PendingLogin>>,
}

impl From<BrokerError> for StepFailure {
    fn from(error: BrokerError) -> Self {
        Self {
            error,
            pending: None,
        }
    }
}

/// How one profile gets and renews tokens. Every method is one upstream exchange (plus the
/// automatic steps it implies); none retries or touches the store.
pub(crate) trait TokenSource: Send + Sync + 'static {
    /// Whether this source has no session to keep: its tokens come from a fresh grant each time
    /// (client_credentials). The task then always "has a session", never stores one, and
    /// renews with `renew(None)`.
    fn sessionless(&self) -> bool {
        false
    }

    /// A browser login's first step (no IO): the authorize URL with a fresh PKCE pair and
    /// `state`. `None`: this source does not sign in through a browser.
    fn begin_browser(&self, _entropy: &dyn Entropy) -> Option<Result<BrowserLogin, BrokerError>> {
        None
    }

    /// Redeems a browser login's code (its `state` already checked).
    fn finish_browser(
        &self,
        _login: BrowserLogin,
        _code: AuthorizationCode,
    ) -> impl Future<Output = Result<LoginStep, StepFailure>> + Send {
        async {
            Err(BrokerError::Unsupported("this profile has no browser login".to_owned()).into())
        }
    }

    /// When `error` (from [`renew`](Self::renew)) says the profile's configuration is wrong
    /// (a refused client secret or scope): the message for the caller, naming what to fix. The
    /// task then stops calling upstream until the configuration changes or an explicit refresh.
    fn misconfiguration(&self, _error: &cognito_auth::Error) -> Option<String> {
        None
    }

    /// Renews the tokens of `session` (one attempt); `None` for a sessionless source.
    fn renew(
        &self,
        session: Option<&StoredSession>,
    ) -> impl Future<Output = Result<Refreshed, RenewError>> + Send;

    /// Starts a login. `password` is the caller's; without one the configured password source
    /// is used. `on_started` runs once the request is about to go upstream.
    fn start_login(
        &self,
        password: Option<Password>,
        device: Option<DeviceCredentials>,
        on_started: impl FnOnce() + Send,
    ) -> impl Future<Output = Result<LoginStep, StepFailure>> + Send;

    /// Answers a challenge.
    fn respond(
        &self,
        pending: PendingLogin,
        answer: ChallengeAnswer,
    ) -> impl Future<Output = Result<LoginStep, StepFailure>> + Send;

    /// Whether [`unattended_login`](Self::unattended_login) can work at all (a password source
    /// is configured for a password flow).
    fn can_log_in_unattended(&self) -> bool;

    /// Logs in without a person after the refresh token was refused. `None`: a person is needed.
    fn unattended_login(
        &self,
        device: Option<DeviceCredentials>,
    ) -> impl Future<Output = Option<LoginSuccess>> + Send;

    /// Ends the session upstream, best effort (failures are logged, never returned).
    fn end_session(
        &self,
        session: StoredSession,
        tokens: Option<Arc<HeldTokens>>,
        forget_device: bool,
    ) -> impl Future<Output = ()> + Send;
}

/// The source of one profile, by its `grant`.
#[expect(
    clippy::large_enum_variant,
    reason = "the common variant stays inline: the Source itself lives in an Arc"
)]
pub(crate) enum Source {
    UserPool(UserPoolSource),
    // Boxed: each is ~700 bytes against the user pool's ~570, and the enum is as large as its
    // largest variant in every profile (design.md §11: 1,000 profiles in 15 MB).
    ClientCredentials(Box<ClientCredentialsSource>),
    Browser(Box<BrowserSource>),
}

/// `match` over the sources, the same expression for each.
macro_rules! each {
    ($self:ident, $source:ident => $body:expr) => {
        match $self {
            Source::UserPool($source) => $body,
            Source::ClientCredentials($source) => $body,
            Source::Browser($source) => $body,
        }
    };
}

impl TokenSource for Source {
    fn sessionless(&self) -> bool {
        each!(self, source => source.sessionless())
    }

    fn begin_browser(&self, entropy: &dyn Entropy) -> Option<Result<BrowserLogin, BrokerError>> {
        each!(self, source => source.begin_browser(entropy))
    }

    async fn finish_browser(
        &self,
        login: BrowserLogin,
        code: AuthorizationCode,
    ) -> Result<LoginStep, StepFailure> {
        each!(self, source => source.finish_browser(login, code).await)
    }

    fn misconfiguration(&self, error: &cognito_auth::Error) -> Option<String> {
        each!(self, source => source.misconfiguration(error))
    }

    async fn renew(&self, session: Option<&StoredSession>) -> Result<Refreshed, RenewError> {
        each!(self, source => source.renew(session).await)
    }

    async fn start_login(
        &self,
        password: Option<Password>,
        device: Option<DeviceCredentials>,
        on_started: impl FnOnce() + Send,
    ) -> Result<LoginStep, StepFailure> {
        each!(self, source => source.start_login(password, device, on_started).await)
    }

    async fn respond(
        &self,
        pending: PendingLogin,
        answer: ChallengeAnswer,
    ) -> Result<LoginStep, StepFailure> {
        each!(self, source => source.respond(pending, answer).await)
    }

    fn can_log_in_unattended(&self) -> bool {
        each!(self, source => source.can_log_in_unattended())
    }

    async fn unattended_login(&self, device: Option<DeviceCredentials>) -> Option<LoginSuccess> {
        each!(self, source => source.unattended_login(device).await)
    }

    async fn end_session(
        &self,
        session: StoredSession,
        tokens: Option<Arc<HeldTokens>>,
        forget_device: bool,
    ) {
        each!(self, source => source.end_session(session, tokens, forget_device).await);
    }
}
