//! The broker: the only owner of tokens (design.md §3, §8; security-reliability.md §2.3, §2.4).
//!
//! Each profile has one slot. The hot path ([`Broker::token`]) reads the slot's published
//! `state::Snapshot` (one `Arc` clone, no IO, no lock across an await) and, only when the
//! token is not fresh enough, joins the profile's single in-flight refresh. Refreshes run as
//! spawned tasks (a caller going away cancels nothing); a rotated refresh token is persisted
//! durably before the new tokens are published or any waiter is answered. A periodic wall-clock
//! tick ([`Broker::spawn_ticker`]) refreshes stale profiles in the background.

pub mod policy;
pub mod state;

mod metrics;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use cognito_auth::env::{Clock, Entropy};
use cognito_auth::secret::{ClientSecret, OneTimeCode, Password};
use cognito_auth::{
    AppClient, AuthFlow, Authenticator, Challenge, ChallengeAnswer, ClientOptions, CognitoClient,
    DeviceRemembering, ErrorClass, ErrorCode, LoginRequest, LoginStep, LoginSuccess, MfaType,
    PendingLogin, RefreshRequest, Refreshed, RespondError, TokenSet, regional_endpoint,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, EnvSource, ProcessEnv, ProfileConfig, ProfileName};
use crate::store::{SecretStore, StoredSession};
use metrics::Metrics;
use policy::{Backoff, RequestDecision, Tuning};
use state::{Snapshot, rfc3339, unix_seconds};

/// The env var naming a failpoint (a test hook, see docs/configuration.md).
pub const FAILPOINT_VAR: &str = "COGBROKER_FAILPOINT";
/// The failpoint that aborts the process after a refresh reply arrived and before the rotated
/// refresh token is persisted (crash-consistency tests).
pub const FAILPOINT_AFTER_REFRESH_BEFORE_PERSIST: &str = "after-refresh-before-persist";
/// How long an expired pending login is remembered, so a late answer hears
/// `challenge_expired` instead of `unknown_login`.
pub const EXPIRED_LOGIN_GRACE: Duration = Duration::from_secs(15 * 60);

/// Tunables of the broker. [`BrokerOptions::new`] gives the production values.
#[derive(Clone)]
pub struct BrokerOptions {
    /// Where `{ env = .. }` secret sources and `COGBROKER_FAILPOINT` are read.
    pub env: Arc<dyn EnvSource>,
    /// The period of the wall-clock tick (30 s).
    pub tick_interval: Duration,
    /// Overall deadline of a caller-blocking refresh (10 s).
    pub blocking_deadline: Duration,
    /// Attempts of a caller-blocking refresh (3).
    pub blocking_attempts: u32,
    /// Backoff base after a 5xx or network failure on the blocking path (200 ms).
    pub transient_base: Duration,
    /// Backoff base after throttling on the blocking path (1 s).
    pub throttle_base: Duration,
    /// Backoff cap on the blocking path (20 s).
    pub blocking_cap: Duration,
    /// Backoff base of the background path (1 s).
    pub background_base: Duration,
    /// Backoff cap of the background path (5 min).
    pub background_cap: Duration,
    /// Minimum gap between two failed attempts' follow-ups (1 s).
    pub min_retry_gap: Duration,
    /// Connect timeout of one upstream call (3 s).
    pub connect_timeout: Duration,
    /// Whole-request timeout of one upstream call (10 s).
    pub request_timeout: Duration,
    /// Why the store backend was chosen (the reason [`crate::store::open`] returned), for
    /// status output.
    pub store_reason: Option<String>,
}

impl BrokerOptions {
    /// The production values, reading the process environment.
    pub fn new() -> Self {
        Self {
            env: Arc::new(ProcessEnv),
            tick_interval: Duration::from_secs(30),
            blocking_deadline: Duration::from_secs(10),
            blocking_attempts: 3,
            transient_base: Duration::from_millis(200),
            throttle_base: Duration::from_secs(1),
            blocking_cap: Duration::from_secs(20),
            background_base: Duration::from_secs(1),
            background_cap: Duration::from_secs(300),
            min_retry_gap: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            store_reason: None,
        }
    }
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BrokerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerOptions")
            .field("tick_interval", &self.tick_interval)
            .field("blocking_deadline", &self.blocking_deadline)
            .field("blocking_attempts", &self.blocking_attempts)
            .finish_non_exhaustive()
    }
}

/// Which token a caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// The access token (default).
    Access,
    /// The ID token.
    Id,
}

impl TokenKind {
    /// "access" or "id".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Id => "id",
        }
    }
}

impl FromStr for TokenKind {
    type Err = BrokerError;
    fn from_str(s: &str) -> Result<Self, BrokerError> {
        match s {
            "access" => Ok(Self::Access),
            "id" => Ok(Self::Id),
            _ => Err(BrokerError::BadInput {
                field: "kind",
                message: format!("unknown token kind {s:?}; use \"access\" or \"id\""),
            }),
        }
    }
}

/// A token handed to a caller. `Debug` never shows the token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The profile.
    pub profile: String,
    /// Access or ID.
    pub kind: TokenKind,
    /// The bearer token.
    pub token: SecretString,
    /// Expiry (local wall clock).
    pub expires_at: SystemTime,
    /// Seconds left, relative (robust against a caller's skewed clock).
    pub expires_in: u64,
    /// Refreshing is failing and this is the last valid token: below what was asked.
    pub degraded: bool,
}

/// One profile as `GET /v1/profiles/{p}` shows it. Never holds a token.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileStatus {
    /// The profile name.
    pub name: String,
    /// logged_out | logging_in | fresh | stale | refreshing | login_required | degraded
    pub state: &'static str,
    /// The configured username.
    pub username: Option<String>,
    /// Token expiry, RFC 3339 UTC.
    pub expires_at: Option<String>,
    /// Seconds until expiry.
    pub expires_in: Option<u64>,
    /// Last time tokens were obtained, RFC 3339 UTC.
    pub last_refresh: Option<String>,
    /// The class of the last failure (transient, throttled, login_required, terminal, store, ...).
    pub last_error: Option<String>,
    /// Why a login is required, when it is.
    pub login_required_reason: Option<String>,
    /// The store backend ("keyring", "file", "memory").
    pub store: &'static str,
    /// A device is remembered.
    pub device_remembered: bool,
    /// The auth flow ("USER_SRP_AUTH", ...).
    pub auth_flow: String,
    /// A rotated refresh token is in memory only (the store refused it); retried every tick.
    pub persistence_degraded: bool,
    /// Measured skew (token `iat` minus local receipt time), seconds.
    pub clock_skew_seconds: Option<i64>,
}

/// The result of a login step. `Debug` hides MFA_SETUP's secret (serialising shows it: the
/// person needs it once to set up their authenticator).
#[derive(Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoginOutcome {
    /// Tokens obtained and the session persisted.
    Authenticated {
        /// The profile.
        profile: String,
        /// Token expiry.
        #[serde(serialize_with = "serialize_rfc3339")]
        expires_at: SystemTime,
        /// The internal username.
        username: Option<String>,
    },
    /// A person must answer: `POST /v1/logins/{login_id}`.
    Challenge {
        /// The pending login (random, 64 hex characters).
        login_id: String,
        /// Cognito's challenge name, e.g. "SOFTWARE_TOKEN_MFA".
        challenge: &'static str,
        /// What to do, for a person.
        message: String,
        /// The answer fields expected, e.g. ["code"].
        fields: Vec<&'static str>,
        /// Challenge details: destination, options, required_attributes, secret_code +
        /// otpauth_uri for MFA_SETUP.
        details: serde_json::Value,
    },
}

impl fmt::Debug for LoginOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Authenticated {
                profile,
                expires_at,
                username,
            } => f
                .debug_struct("Authenticated")
                .field("profile", profile)
                .field("expires_at", expires_at)
                .field("username", username)
                .finish(),
            Self::Challenge {
                login_id: _,
                challenge,
                message,
                fields,
                details,
            } => {
                let mut shown = details.clone();
                if let Some(map) = shown.as_object_mut() {
                    for key in ["secret_code", "otpauth_uri"] {
                        if let Some(value) = map.get_mut(key) {
                            *value = serde_json::Value::from("[REDACTED]");
                        }
                    }
                }
                f.debug_struct("Challenge")
                    .field("login_id", &"[REDACTED]")
                    .field("challenge", challenge)
                    .field("message", message)
                    .field("fields", fields)
                    .field("details", &shown)
                    .finish()
            }
        }
    }
}

fn serialize_rfc3339<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*time))
}

fn serialize_unix<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(unix_seconds(*time))
}

/// An answer to a pending challenge; which fields are needed depends on the challenge.
#[derive(Debug, Clone, Default)]
pub struct AnswerInput {
    /// NEW_PASSWORD_REQUIRED.
    pub new_password: Option<Password>,
    /// NEW_PASSWORD_REQUIRED's required attributes.
    pub attributes: BTreeMap<String, String>,
    /// SMS_MFA, SOFTWARE_TOKEN_MFA, EMAIL_OTP, SMS_OTP, MFA_SETUP.
    pub code: Option<OneTimeCode>,
    /// SELECT_MFA_TYPE: "SMS_MFA", "SOFTWARE_TOKEN_MFA" or "EMAIL_OTP".
    pub mfa_type: Option<String>,
    /// SELECT_CHALLENGE: the chosen challenge.
    pub challenge: Option<String>,
    /// SELECT_CHALLENGE with PASSWORD or PASSWORD_SRP.
    pub password: Option<Password>,
    /// CUSTOM_CHALLENGE.
    pub answer: Option<Password>,
}

/// Why a broker call failed. `code()` and `status()` give the HTTP mapping.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// No such profile in the config.
    #[error(
        "unknown profile {0:?}: the daemon's configuration has no [profiles.{0}] (`cogbroker profiles` lists the configured ones)"
    )]
    UnknownProfile(String),
    /// No such pending login (never existed, answered, cancelled or expired).
    #[error("unknown login id; start the login again")]
    UnknownLogin,
    /// A login for this profile is already pending or being answered.
    #[error("a login is already in progress for this profile; answer or cancel it first")]
    LoginInProgress,
    /// No usable session: a person must log in.
    #[error("profile {profile} needs a login ({reason}); run `cogbroker login {profile}`")]
    LoginRequired {
        /// The profile.
        profile: String,
        /// Why.
        reason: String,
    },
    /// Cognito could not be reached (or kept failing) and no valid token is left.
    #[error(
        "cognito is unavailable ({reason}); retry in {}s (`cogbroker doctor` checks the endpoint and the network)",
        retry_after.as_secs().max(1)
    )]
    UpstreamUnavailable {
        /// When to retry.
        retry_after: Duration,
        /// What failed (class and code, never a secret).
        reason: String,
    },
    /// A wrong one-time code; the login stays pending.
    #[error("wrong code: {0}")]
    CodeMismatch(String),
    /// The new password breaks the pool's policy; the login stays pending.
    #[error("the new password was refused: {0}")]
    InvalidPassword(String),
    /// The challenge session expired: start the login again.
    #[error("the login session expired; start the login again")]
    ChallengeExpired,
    /// A caller mistake, naming the field.
    #[error("{field}: {message}")]
    BadInput {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Wrong username or password (or the user may not sign in).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// Something this client cannot do (e.g. a passkey challenge).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The profile's configuration cannot work (a secret source failed, the pool or client
    /// rejects the configuration).
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// A bug or an unexpected local failure (the store, a task that died).
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl BrokerError {
    /// The API error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownProfile(_) => "unknown_profile",
            Self::UnknownLogin => "unknown_login",
            Self::LoginInProgress => "login_in_progress",
            Self::LoginRequired { .. } => "login_required",
            Self::UpstreamUnavailable { .. } => "upstream_unavailable",
            Self::CodeMismatch(_) => "code_mismatch",
            Self::InvalidPassword(_) => "invalid_password",
            Self::ChallengeExpired => "challenge_expired",
            Self::BadInput { .. } => "bad_input",
            Self::NotAuthorized(_) => "invalid_credentials",
            Self::Unsupported(_) => "unsupported",
            Self::Misconfigured(_) => "misconfigured",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownProfile(_) | Self::UnknownLogin => 404,
            Self::LoginInProgress => 409,
            Self::LoginRequired { .. } | Self::NotAuthorized(_) => 401,
            Self::UpstreamUnavailable { .. } => 503,
            Self::CodeMismatch(_)
            | Self::InvalidPassword(_)
            | Self::ChallengeExpired
            | Self::Unsupported(_) => 422,
            Self::BadInput { .. } => 400,
            Self::Misconfigured(_) | Self::Internal(_) => 500,
        }
    }

    /// `Retry-After` for 503 answers.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::UpstreamUnavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Something that happened; never carries a token value.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BrokerEvent {
    /// New tokens were published (login or refresh).
    TokenRefreshed {
        /// The profile.
        profile: String,
        /// New expiry (unix seconds when serialised).
        #[serde(serialize_with = "serialize_unix")]
        expires_at: SystemTime,
    },
    /// A login started.
    LoginStarted {
        /// The profile.
        profile: String,
    },
    /// A login finished with tokens.
    LoginCompleted {
        /// The profile.
        profile: String,
    },
    /// A login failed.
    LoginFailed {
        /// The profile.
        profile: String,
        /// The error code (as [`BrokerError::code`]).
        error: String,
    },
    /// A refresh attempt failed.
    RefreshFailed {
        /// The profile.
        profile: String,
        /// transient | throttled | login_required | terminal | misconfigured
        class: String,
    },
    /// The profile was logged out.
    LoggedOut {
        /// The profile.
        profile: String,
    },
}

impl BrokerEvent {
    /// The profile the event is about.
    pub fn profile(&self) -> &str {
        match self {
            Self::TokenRefreshed { profile, .. }
            | Self::LoginStarted { profile }
            | Self::LoginCompleted { profile }
            | Self::LoginFailed { profile, .. }
            | Self::RefreshFailed { profile, .. }
            | Self::LoggedOut { profile } => profile,
        }
    }

    /// The event name (SSE `event:` field).
    pub fn name(&self) -> &'static str {
        match self {
            Self::TokenRefreshed { .. } => "token_refreshed",
            Self::LoginStarted { .. } => "login_started",
            Self::LoginCompleted { .. } => "login_completed",
            Self::LoginFailed { .. } => "login_failed",
            Self::RefreshFailed { .. } => "refresh_failed",
            Self::LoggedOut { .. } => "logged_out",
        }
    }
}

/// The token broker. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("profiles", &self.inner.slots.keys().collect::<Vec<_>>())
            .field("store", &self.inner.store.kind())
            .finish_non_exhaustive()
    }
}

struct Inner {
    slots: BTreeMap<String, Arc<Slot>>,
    store: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    options: BrokerOptions,
    failpoint: Option<String>,
    logins: Mutex<Logins>,
    events: broadcast::Sender<BrokerEvent>,
    metrics: Metrics,
    tasks: TaskTracker,
    /// Cancelled by `drain`: scheduled (not yet started) background refreshes give up.
    stopping: CancellationToken,
}

/// One profile: its config, published snapshot, in-memory session and single-flight slot.
struct Slot {
    name: ProfileName,
    config: ProfileConfig,
    tuning: Tuning,
    snapshot: RwLock<Arc<Snapshot>>,
    /// The authoritative in-memory session (the refresh token lives only here and in the store).
    session: Mutex<Option<StoredSession>>,
    /// The in-flight refresh, if any: joiners wait on the receiver.
    inflight: Mutex<Option<watch::Receiver<Option<AttemptOutcome>>>>,
    /// A background refresh is scheduled for later in this tick interval.
    scheduled: AtomicBool,
    /// Serialises the commit points (persist + publish) of refresh, login and logout.
    ops: tokio::sync::Mutex<()>,
    /// Bumped by login and logout: an older refresh's result is discarded.
    epoch: AtomicU64,
    authenticator: tokio::sync::OnceCell<Authenticator>,
}

#[derive(Default)]
struct Logins {
    by_id: HashMap<String, LoginEntry>,
    by_profile: HashMap<String, String>,
}

struct LoginEntry {
    profile: String,
    state: LoginState,
}

enum LoginState {
    /// start_login or respond is running.
    Busy,
    /// Waiting for the person.
    Pending(Box<PendingLogin>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A caller waits: ≤ 3 attempts within the blocking deadline.
    Blocking,
    /// The tick (or a stale hit) started it: one attempt, backoff on failure.
    Background,
}

/// What a refresh attempt ended with (shared with every joiner).
#[derive(Debug, Clone)]
enum AttemptFailure {
    NoSession,
    LoginRequired(String),
    Upstream {
        retry_after: Duration,
        reason: String,
    },
    Misconfigured(String),
    Internal(String),
}

type AttemptOutcome = Result<(), AttemptFailure>;

impl AttemptFailure {
    fn into_error(self, profile: &str) -> BrokerError {
        match self {
            Self::NoSession => BrokerError::LoginRequired {
                profile: profile.to_owned(),
                reason: "not logged in".to_owned(),
            },
            Self::LoginRequired(reason) => BrokerError::LoginRequired {
                profile: profile.to_owned(),
                reason,
            },
            Self::Upstream {
                retry_after,
                reason,
            } => BrokerError::UpstreamUnavailable {
                retry_after,
                reason,
            },
            Self::Misconfigured(message) => BrokerError::Misconfigured(message),
            Self::Internal(message) => BrokerError::Internal(anyhow::anyhow!(message)),
        }
    }
}

/// How a refresh error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureClass {
    Transient,
    Throttled,
    LoginRequired,
    Terminal,
}

impl FailureClass {
    fn of(error: &cognito_auth::Error) -> Self {
        if error.refresh_failure().is_some() {
            return Self::LoginRequired;
        }
        match error.code() {
            Some(ErrorCode::NotAuthorized | ErrorCode::RefreshTokenReuse) => {
                return Self::LoginRequired;
            }
            Some(ErrorCode::LimitExceeded | ErrorCode::TooManyRequests) => return Self::Throttled,
            _ => {}
        }
        // A garbled reply (a proxy's page, a cut-off body, a broken token) is the upstream's
        // momentary fault, not a configuration error: retry with backoff instead of waiting
        // the longest after one bad answer.
        if matches!(error, cognito_auth::Error::Protocol(_)) {
            return Self::Transient;
        }
        match error.class() {
            ErrorClass::Transient => Self::Transient,
            ErrorClass::Throttled => Self::Throttled,
            ErrorClass::NeedsUser => Self::LoginRequired,
            ErrorClass::Terminal => Self::Terminal,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Throttled => "throttled",
            Self::LoginRequired => "login_required",
            Self::Terminal => "terminal",
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a few assignments that cannot leave the data half-updated,
    // so a lock poisoned by a panic elsewhere still guards consistent data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A short description of an upstream error: class and code, never a body or a secret.
fn describe_error(error: &cognito_auth::Error) -> String {
    match error.service() {
        Some(service) if service.message.is_empty() => service.code.to_string(),
        Some(service) => format!("{}: {}", service.code, service_message(&service.message)),
        None => error.to_string(),
    }
}

/// Cognito's message in our error style: no trailing period.
fn service_message(message: &str) -> String {
    message.trim().trim_end_matches('.').to_owned()
}

impl Slot {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Publishes a modified copy of the snapshot (generation + 1).
    fn publish(&self, change: impl FnOnce(&mut Snapshot)) -> Arc<Snapshot> {
        let mut guard = self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = Snapshot::clone(&guard);
        change(&mut next);
        next.generation = guard.generation.wrapping_add(1);
        let next = Arc::new(next);
        *guard = next.clone();
        next
    }

    fn refresh_in_flight(&self) -> bool {
        lock(&self.inflight).is_some()
    }
}

impl Broker {
    /// A broker for every profile of `config`, with production options. Call
    /// [`restore`](Self::restore) next to load stored sessions.
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> anyhow::Result<Self> {
        Self::with_options(config, store, clock, entropy, BrokerOptions::new())
    }

    /// Like [`new`](Self::new) with explicit options (tests shorten the tick and backoff, and
    /// pass a map as the environment).
    pub fn with_options(
        config: Arc<Config>,
        store: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        options: BrokerOptions,
    ) -> anyhow::Result<Self> {
        let mut slots = BTreeMap::new();
        for (name, profile) in &config.profiles {
            let tuning = Tuning {
                jitter: random_fraction(entropy.as_ref()),
                refresh_before: profile.refresh_before,
            };
            slots.insert(
                name.to_string(),
                Arc::new(Slot {
                    name: name.clone(),
                    config: profile.clone(),
                    tuning,
                    snapshot: RwLock::new(Arc::new(Snapshot::default())),
                    session: Mutex::new(None),
                    inflight: Mutex::new(None),
                    scheduled: AtomicBool::new(false),
                    ops: tokio::sync::Mutex::new(()),
                    epoch: AtomicU64::new(0),
                    authenticator: tokio::sync::OnceCell::new(),
                }),
            );
        }
        let failpoint = options.env.var(FAILPOINT_VAR).filter(|v| !v.is_empty());
        if let Some(failpoint) = &failpoint {
            if failpoint != FAILPOINT_AFTER_REFRESH_BEFORE_PERSIST {
                anyhow::bail!(
                    "unknown {FAILPOINT_VAR} value {failpoint:?}; the only failpoint is {FAILPOINT_AFTER_REFRESH_BEFORE_PERSIST:?} (a test hook)"
                );
            }
            tracing::warn!(failpoint = %failpoint, "test failpoint armed");
        }
        let (events, _) = broadcast::channel(256);
        Ok(Self {
            inner: Arc::new(Inner {
                slots,
                store,
                clock,
                entropy,
                options,
                failpoint,
                logins: Mutex::new(Logins::default()),
                events,
                metrics: Metrics::default(),
                tasks: TaskTracker::new(),
                stopping: CancellationToken::new(),
            }),
        })
    }

    /// Loads every profile's stored session (no network). A profile with a session is `stale`
    /// until its first token request refreshes it; one the store cannot read reports the error.
    pub async fn restore(&self) {
        for slot in self.inner.slots.values() {
            self.restore_slot(slot).await;
        }
    }

    async fn restore_slot(&self, slot: &Arc<Slot>) {
        let store = self.inner.store.clone();
        let name = slot.name.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load(&name)).await;
        match loaded {
            Ok(Ok(Some(session))) => {
                let device = session.device.is_some();
                {
                    let mut held = lock(&slot.session);
                    if held.is_some() {
                        // A login finished meanwhile: its session is newer.
                        return;
                    }
                    *held = Some(session);
                }
                slot.publish(|s| {
                    s.has_session = true;
                    s.device_remembered = device;
                    s.store_error = None;
                    if s.last_error == Some("store") {
                        s.last_error = None;
                    }
                });
                tracing::info!(profile = %slot.name, "session restored");
            }
            Ok(Ok(None)) => {
                slot.publish(|s| {
                    s.store_error = None;
                    if s.last_error == Some("store") {
                        s.last_error = None;
                    }
                });
            }
            Ok(Err(error)) => {
                tracing::warn!(profile = %slot.name, error = %format!("{error:#}"), "cannot read the stored session; retrying every tick");
                slot.publish(|s| {
                    s.store_error = Some(format!("{error:#}"));
                    s.last_error = Some("store");
                });
            }
            Err(_) => {
                tracing::warn!(profile = %slot.name, "the store read was cancelled");
            }
        }
    }

    /// Starts the periodic wall-clock tick (every `tick_interval`, missed ticks skipped): each
    /// tick compares wall-clock deadlines from the injected clock, so a suspend does not delay
    /// refreshes the way one long sleep would.
    pub fn spawn_ticker(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let broker = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(broker.inner.options.tick_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = interval.tick() => broker.tick(),
                }
            }
        })
    }

    /// One tick: expire pending logins, retry a failed persist, start background refreshes of
    /// stale profiles. Does not wait for them.
    pub fn tick(&self) {
        let now = self.inner.clock.now();
        self.purge_expired_logins(now);
        for slot in self.inner.slots.values() {
            let snapshot = slot.snapshot();
            if snapshot.persistence_degraded {
                self.spawn_persist_retry(slot.clone());
            }
            if snapshot.store_error.is_some() && !snapshot.has_session {
                let broker = self.clone();
                let slot = slot.clone();
                self.inner
                    .tasks
                    .spawn(async move { broker.restore_slot(&slot).await });
            }
            match policy::tick_start(
                now,
                snapshot.token_times(),
                &slot.tuning,
                &snapshot.backoff,
                snapshot.can_refresh(),
                self.inner.options.tick_interval,
            ) {
                Some(delay) if delay.is_zero() => self.start_background_refresh(slot),
                Some(delay) => self.schedule_background_refresh(slot, delay),
                None => {}
            }
        }
    }

    /// Every profile's status, by name.
    pub fn profiles(&self) -> Vec<ProfileStatus> {
        self.inner
            .slots
            .values()
            .map(|slot| self.status_of(slot))
            .collect()
    }

    /// One profile's status.
    pub fn status(&self, profile: &str) -> Result<ProfileStatus, BrokerError> {
        Ok(self.status_of(self.slot(profile)?))
    }

    /// The store backend's kind ("keyring", "file", "memory").
    pub fn store_kind(&self) -> &'static str {
        self.inner.store.kind()
    }

    /// Why this store backend is in use, as [`crate::store::open`] said (given in
    /// [`BrokerOptions::store_reason`]).
    pub fn store_reason(&self) -> Option<&str> {
        self.inner.options.store_reason.as_deref()
    }

    /// A token valid for at least `min_ttl` (default: the profile's hand-out floor). Cache hits
    /// read a snapshot; otherwise the caller joins the profile's single in-flight refresh.
    /// While a valid token exists, upstream failures never reach the caller (the token comes
    /// back flagged `degraded`).
    pub async fn token(
        &self,
        profile: &str,
        kind: TokenKind,
        min_ttl: Option<Duration>,
    ) -> Result<IssuedToken, BrokerError> {
        let slot = self.slot(profile)?;
        let mut refreshed = false;
        // At most: decide, refresh, decide again. The second decision never asks to refresh.
        for _ in 0..3 {
            let snapshot = slot.snapshot();
            let now = self.inner.clock.now();
            let decision = policy::on_request(
                now,
                snapshot.token_times(),
                &slot.tuning,
                min_ttl,
                &snapshot.backoff,
                snapshot.can_refresh(),
                refreshed,
            );
            match decision {
                RequestDecision::Serve {
                    refresh_in_background,
                } => {
                    if refresh_in_background {
                        self.start_background_refresh(slot);
                    }
                    self.inner
                        .metrics
                        .token_request(if refreshed { "refreshed" } else { "hit" });
                    return self.issue(slot, &snapshot, kind, now, false);
                }
                RequestDecision::ServeDegraded => {
                    self.inner.metrics.token_request("degraded");
                    return self.issue(slot, &snapshot, kind, now, true);
                }
                RequestDecision::Unavailable { retry_after } => {
                    self.inner.metrics.token_request("unavailable");
                    return Err(BrokerError::UpstreamUnavailable {
                        retry_after,
                        reason: snapshot.last_error.map_or_else(
                            || "refresh backing off".to_owned(),
                            |c| format!("last refresh failed: {c}"),
                        ),
                    });
                }
                RequestDecision::NoSession => {
                    self.inner.metrics.token_request("login_required");
                    return Err(BrokerError::LoginRequired {
                        profile: profile.to_owned(),
                        reason: snapshot
                            .login_required
                            .clone()
                            .unwrap_or_else(|| "not logged in".to_owned()),
                    });
                }
                RequestDecision::Refresh => {
                    let outcome = self
                        .join_refresh(slot, snapshot.generation, Mode::Blocking)
                        .await;
                    refreshed = true;
                    match outcome {
                        Ok(()) => {}
                        // The session was replaced (login) or removed (logout) meanwhile:
                        // decide again on what is there now.
                        Err(AttemptFailure::NoSession) => {}
                        Err(failure) => {
                            // Stale-while-revalidate: a still-valid token beats an error.
                            let latest = slot.snapshot();
                            let now = self.inner.clock.now();
                            let valid = latest
                                .token_times()
                                .is_some_and(|times| !times.remaining(now).is_zero());
                            if valid {
                                self.inner.metrics.token_request("degraded");
                                return self.issue(slot, &latest, kind, now, true);
                            }
                            self.inner.metrics.token_request("error");
                            return Err(failure.into_error(profile));
                        }
                    }
                }
            }
        }
        Err(BrokerError::Internal(anyhow::anyhow!(
            "token decision did not settle for profile {profile}"
        )))
    }

    /// Refreshes now, joining an in-flight refresh. Errors are reported even while a valid
    /// token exists.
    pub async fn refresh(&self, profile: &str) -> Result<ProfileStatus, BrokerError> {
        let slot = self.slot(profile)?;
        let snapshot = slot.snapshot();
        if !snapshot.has_session {
            return Err(BrokerError::LoginRequired {
                profile: profile.to_owned(),
                reason: "not logged in".to_owned(),
            });
        }
        if let Some(reason) = &snapshot.login_required {
            return Err(BrokerError::LoginRequired {
                profile: profile.to_owned(),
                reason: reason.clone(),
            });
        }
        // A fresh generation number forces a new attempt unless one is in flight.
        self.join_refresh(slot, snapshot.generation, Mode::Blocking)
            .await
            .map_err(|failure| failure.into_error(profile))?;
        self.status(profile)
    }

    /// Starts a login with `password` (or the profile's password source). Returns the tokens'
    /// expiry or the first challenge a person must answer. One pending login per profile.
    pub async fn login(
        &self,
        profile: &str,
        password: Option<Password>,
    ) -> Result<LoginOutcome, BrokerError> {
        let slot = self.slot(profile)?.clone();
        let now = self.inner.clock.now();
        self.purge_expired_logins(now);
        let login_id = self.new_login_id();
        {
            let mut logins = lock(&self.inner.logins);
            if logins.by_profile.contains_key(profile) {
                return Err(BrokerError::LoginInProgress);
            }
            logins
                .by_profile
                .insert(profile.to_owned(), login_id.clone());
            logins.by_id.insert(
                login_id.clone(),
                LoginEntry {
                    profile: profile.to_owned(),
                    state: LoginState::Busy,
                },
            );
        }
        let broker = self.clone();
        let task = self.inner.tasks.spawn(async move {
            let result = broker.start_login(&slot, &login_id, password).await;
            if result.is_err() {
                broker.release_login(&login_id);
            }
            broker.login_finished(&slot, &result);
            result
        });
        task.await.map_err(|error| {
            BrokerError::Internal(anyhow::anyhow!("the login task failed: {error}"))
        })?
    }

    /// Answers the pending challenge of `login_id`. A wrong code or a refused new password
    /// keeps the login pending (same id); other failures end it.
    pub async fn answer(
        &self,
        login_id: &str,
        input: AnswerInput,
    ) -> Result<LoginOutcome, BrokerError> {
        let now = self.inner.clock.now();
        self.purge_expired_logins(now);
        let (profile, pending) = {
            let mut logins = lock(&self.inner.logins);
            let entry = logins
                .by_id
                .get_mut(login_id)
                .ok_or(BrokerError::UnknownLogin)?;
            if matches!(&entry.state, LoginState::Pending(pending) if pending.expires_at() <= now) {
                logins.by_id.remove(login_id);
                return Err(BrokerError::ChallengeExpired);
            }
            match std::mem::replace(&mut entry.state, LoginState::Busy) {
                LoginState::Busy => return Err(BrokerError::LoginInProgress),
                LoginState::Pending(pending) => (entry.profile.clone(), pending),
            }
        };
        let slot = self.slot(&profile)?.clone();
        let answer = match build_answer(pending.challenge(), input) {
            Ok(answer) => answer,
            Err(error) => {
                self.park_login(login_id, pending);
                return Err(error);
            }
        };
        let broker = self.clone();
        let login_id = login_id.to_owned();
        let task = self.inner.tasks.spawn(async move {
            let result = broker.respond(&slot, &login_id, *pending, answer).await;
            broker.login_finished(&slot, &result);
            result
        });
        task.await.map_err(|error| {
            BrokerError::Internal(anyhow::anyhow!("the login task failed: {error}"))
        })?
    }

    /// Cancels a pending login.
    pub fn cancel_login(&self, login_id: &str) -> Result<(), BrokerError> {
        let mut logins = lock(&self.inner.logins);
        match logins.by_id.get(login_id) {
            None => Err(BrokerError::UnknownLogin),
            Some(LoginEntry {
                state: LoginState::Busy,
                ..
            }) => Err(BrokerError::LoginInProgress),
            Some(entry) => {
                let profile = entry.profile.clone();
                logins.by_id.remove(login_id);
                if logins.by_profile.get(&profile).map(String::as_str) == Some(login_id) {
                    logins.by_profile.remove(&profile);
                }
                Ok(())
            }
        }
    }

    /// Logs out: the local session is erased whatever happens upstream; RevokeToken (and
    /// ForgetDevice when asked) are best effort and their failures only logged. Fails only if
    /// the store could not erase the session.
    pub async fn logout(&self, profile: &str, forget_device: bool) -> Result<(), BrokerError> {
        let slot = self.slot(profile)?.clone();
        {
            let mut logins = lock(&self.inner.logins);
            if let Some(id) = logins.by_profile.remove(profile) {
                logins.by_id.remove(&id);
            }
        }
        let broker = self.clone();
        let task = self
            .inner
            .tasks
            .spawn(async move { broker.logout_inner(&slot, forget_device).await });
        task.await.map_err(|error| {
            BrokerError::Internal(anyhow::anyhow!("the logout task failed: {error}"))
        })?
    }

    /// Events (token changes, logins, failures); never token values.
    pub fn subscribe(&self) -> broadcast::Receiver<BrokerEvent> {
        self.inner.events.subscribe()
    }

    /// Prometheus text exposition of the broker's metrics.
    pub fn metrics(&self) -> String {
        let now = self.inner.clock.now();
        let profiles: Vec<(String, Option<f64>, &'static str, bool)> = self
            .inner
            .slots
            .values()
            .map(|slot| {
                let snapshot = slot.snapshot();
                let expiry = snapshot.tokens.as_ref().map(|tokens| {
                    match tokens.expires_at().duration_since(now) {
                        Ok(left) => left.as_secs_f64(),
                        Err(past) => -past.duration().as_secs_f64(),
                    }
                });
                (
                    slot.name.to_string(),
                    expiry,
                    self.state_of(slot, &snapshot, now),
                    snapshot.persistence_degraded,
                )
            })
            .collect();
        self.inner.metrics.render(&profiles)
    }

    /// Graceful shutdown: waits for every in-flight refresh, login completion, logout and
    /// persist to finish (the caller bounds this with its own timeout).
    pub async fn drain(&self) {
        self.inner.stopping.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    // -----------------------------------------------------------------------------------------
    // Internals.

    fn slot(&self, profile: &str) -> Result<&Arc<Slot>, BrokerError> {
        self.inner
            .slots
            .get(profile)
            .ok_or_else(|| BrokerError::UnknownProfile(profile.to_owned()))
    }

    fn emit(&self, event: BrokerEvent) {
        // No subscribers is fine.
        let _ = self.inner.events.send(event);
    }

    fn new_login_id(&self) -> String {
        let mut bytes = [0u8; 32];
        self.inner.entropy.fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn random(&self) -> f64 {
        random_fraction(self.inner.entropy.as_ref())
    }

    fn issue(
        &self,
        slot: &Slot,
        snapshot: &Snapshot,
        kind: TokenKind,
        now: SystemTime,
        degraded: bool,
    ) -> Result<IssuedToken, BrokerError> {
        let tokens = snapshot
            .tokens
            .as_ref()
            .ok_or_else(|| BrokerError::LoginRequired {
                profile: slot.name.to_string(),
                reason: "not logged in".to_owned(),
            })?;
        let token = match kind {
            TokenKind::Access => tokens.access_token().expose_secret(),
            TokenKind::Id => tokens.id_token().expose_secret(),
        };
        let expires_at = tokens.expires_at();
        Ok(IssuedToken {
            profile: slot.name.to_string(),
            kind,
            token: SecretString::from(token.to_owned()),
            expires_at,
            expires_in: expires_at
                .duration_since(now)
                .map_or(0, |left| left.as_secs()),
            degraded,
        })
    }

    fn state_of(&self, slot: &Slot, snapshot: &Snapshot, now: SystemTime) -> &'static str {
        if self.login_active(slot, now) {
            return "logging_in";
        }
        if slot.refresh_in_flight() {
            return "refreshing";
        }
        if snapshot.login_required.is_some() {
            return "login_required";
        }
        let Some(times) = snapshot.token_times() else {
            return if snapshot.has_session {
                "stale"
            } else {
                "logged_out"
            };
        };
        if snapshot.degraded || snapshot.persistence_degraded {
            return "degraded";
        }
        let windows = policy::windows(times.lifetime(), &slot.tuning);
        if times.remaining(now) <= windows.stale {
            "stale"
        } else {
            "fresh"
        }
    }

    fn status_of(&self, slot: &Slot) -> ProfileStatus {
        let snapshot = slot.snapshot();
        let now = self.inner.clock.now();
        let tokens = snapshot.tokens.as_ref();
        ProfileStatus {
            name: slot.name.to_string(),
            state: self.state_of(slot, &snapshot, now),
            username: Some(slot.config.username.clone()),
            expires_at: tokens.map(|t| rfc3339(t.expires_at())),
            expires_in: tokens.map(|t| {
                t.expires_at()
                    .duration_since(now)
                    .map_or(0, |d| d.as_secs())
            }),
            last_refresh: snapshot.last_refresh.map(rfc3339),
            last_error: snapshot.last_error.map(str::to_owned),
            login_required_reason: snapshot.login_required.clone(),
            store: self.inner.store.kind(),
            device_remembered: snapshot.device_remembered,
            auth_flow: slot.config.auth_flow_name.clone(),
            persistence_degraded: snapshot.persistence_degraded,
            clock_skew_seconds: tokens.and_then(|t| t.clock_skew()),
        }
    }

    /// The profile's authenticator, built on first use (the client secret is resolved then).
    async fn authenticator(&self, slot: &Slot) -> Result<Authenticator, BrokerError> {
        let inner = &self.inner;
        slot.authenticator
            .get_or_try_init(|| async {
                let config = &slot.config;
                let endpoint = match &config.endpoint {
                    Some(url) => url.clone(),
                    None => regional_endpoint(&config.region, config.endpoint_variant).map_err(
                        |error| {
                            BrokerError::Misconfigured(format!("profile {}: {error}", slot.name))
                        },
                    )?,
                };
                let client = CognitoClient::new(
                    endpoint,
                    ClientOptions {
                        connect_timeout: inner.options.connect_timeout,
                        request_timeout: inner.options.request_timeout,
                        user_agent: format!("cogbroker/{}", env!("CARGO_PKG_VERSION")),
                    },
                )
                .map_err(|error| {
                    BrokerError::Internal(anyhow::anyhow!("cannot build the http client: {error}"))
                })?;
                let client_secret = match &config.client_secret {
                    None => None,
                    Some(source) => {
                        let secret = source
                            .resolve(&slot.name, "client_secret", inner.options.env.as_ref())
                            .await
                            .map_err(|error| BrokerError::Misconfigured(error.to_string()))?;
                        Some(ClientSecret::new(secret.expose_secret()))
                    }
                };
                Ok(Authenticator::new(
                    client,
                    AppClient {
                        user_pool_id: config.user_pool_id.clone(),
                        client_id: config.client_id.clone(),
                        client_secret,
                    },
                    inner.clock.clone(),
                    inner.entropy.clone(),
                ))
            })
            .await
            .cloned()
    }

    // ----- refresh -----

    /// Starts a background refresh `delay` from now, at the profile's own jittered due time,
    /// unless one is already scheduled or the broker is draining. When it fires it decides
    /// again: a caller may have refreshed meanwhile. A short monotonic sleep (at most one tick
    /// interval) is fine here: if a suspend stretches it, the next wall-clock tick starts the
    /// refresh anyway.
    fn schedule_background_refresh(&self, slot: &Arc<Slot>, delay: Duration) {
        if slot.scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        let broker = self.clone();
        let slot = slot.clone();
        self.inner.tasks.spawn(async move {
            tokio::select! {
                () = broker.inner.stopping.cancelled() => {}
                () = tokio::time::sleep(delay) => {
                    let snapshot = slot.snapshot();
                    // A timer may fire a hair before the wall clock agrees: allow a second.
                    let due = policy::tick_start(
                        broker.inner.clock.now(),
                        snapshot.token_times(),
                        &slot.tuning,
                        &snapshot.backoff,
                        snapshot.can_refresh(),
                        Duration::from_secs(1),
                    );
                    if due.is_some() {
                        broker.start_background_refresh(&slot);
                    }
                }
            }
            slot.scheduled.store(false, Ordering::SeqCst);
        });
    }

    fn start_background_refresh(&self, slot: &Arc<Slot>) {
        if slot.refresh_in_flight() {
            return;
        }
        let generation = slot.snapshot().generation;
        self.start_attempt(slot, generation, Mode::Background);
    }

    /// Joins the in-flight refresh or starts one. If the snapshot moved past
    /// `observed_generation` and nothing is in flight, something already happened since the
    /// caller looked: return at once so it decides again.
    async fn join_refresh(
        &self,
        slot: &Arc<Slot>,
        observed_generation: u64,
        mode: Mode,
    ) -> AttemptOutcome {
        let Some(mut receiver) = self.start_attempt(slot, observed_generation, mode) else {
            return Ok(());
        };
        let outcome = match receiver.wait_for(Option::is_some).await {
            Ok(value) => value.clone(),
            Err(_) => None,
        };
        outcome.unwrap_or_else(|| {
            Err(AttemptFailure::Internal(
                "the refresh task ended without an answer".to_owned(),
            ))
        })
    }

    fn start_attempt(
        &self,
        slot: &Arc<Slot>,
        observed_generation: u64,
        mode: Mode,
    ) -> Option<watch::Receiver<Option<AttemptOutcome>>> {
        let mut inflight = lock(&slot.inflight);
        if let Some(receiver) = inflight.as_ref() {
            return Some(receiver.clone());
        }
        if slot.snapshot().generation != observed_generation {
            return None;
        }
        let (sender, receiver) = watch::channel(None);
        *inflight = Some(receiver.clone());
        drop(inflight);
        let broker = self.clone();
        let slot = slot.clone();
        self.inner.tasks.spawn(async move {
            // Clears the in-flight slot even if the attempt panics or is dropped at runtime
            // shutdown, so later callers start a new attempt instead of joining a dead one.
            let guard = ClearInflight(slot.clone());
            let outcome = broker.run_refresh(&slot, mode).await;
            drop(guard);
            let _ = sender.send(Some(outcome));
        });
        Some(receiver)
    }

    async fn run_refresh(&self, slot: &Arc<Slot>, mode: Mode) -> AttemptOutcome {
        let epoch = slot.epoch.load(Ordering::SeqCst);
        let Some(session) = lock(&slot.session).clone() else {
            return Err(AttemptFailure::NoSession);
        };
        let authenticator = match self.authenticator(slot).await {
            Ok(authenticator) => authenticator,
            Err(error) => {
                let message = error.to_string();
                self.record_failure(slot, FailureClass::Terminal, "misconfigured");
                self.emit(BrokerEvent::RefreshFailed {
                    profile: slot.name.to_string(),
                    class: "misconfigured".to_owned(),
                });
                return Err(AttemptFailure::Misconfigured(message));
            }
        };
        let started = tokio::time::Instant::now();
        let result = self.call_refresh(&authenticator, &session, mode).await;
        let elapsed = started.elapsed();
        match result {
            Ok(refreshed) => {
                if self.inner.failpoint.as_deref() == Some(FAILPOINT_AFTER_REFRESH_BEFORE_PERSIST) {
                    tracing::error!("failpoint {FAILPOINT_AFTER_REFRESH_BEFORE_PERSIST}: aborting");
                    std::process::abort();
                }
                self.inner.metrics.refresh("ok", elapsed);
                self.commit_refresh(slot, epoch, session, refreshed).await
            }
            Err(RefreshError::Deadline) => {
                self.inner.metrics.refresh("transient", elapsed);
                self.inner.metrics.upstream_error("timeout");
                let retry_after = self.back_off(slot, FailureClass::Transient);
                self.emit(BrokerEvent::RefreshFailed {
                    profile: slot.name.to_string(),
                    class: "transient".to_owned(),
                });
                Err(AttemptFailure::Upstream {
                    retry_after,
                    reason: "refresh deadline exceeded".to_owned(),
                })
            }
            Err(RefreshError::Upstream(error)) => {
                let class = FailureClass::of(&error);
                self.inner.metrics.refresh(class.name(), elapsed);
                self.inner.metrics.upstream_error(class.name());
                let reason = describe_error(&error);
                tracing::warn!(profile = %slot.name, class = class.name(), error = %reason, "refresh failed");
                self.emit(BrokerEvent::RefreshFailed {
                    profile: slot.name.to_string(),
                    class: class.name().to_owned(),
                });
                match class {
                    FailureClass::LoginRequired => {
                        if self.unattended_login(slot).await {
                            return Ok(());
                        }
                        let _ops = slot.ops.lock().await;
                        if slot.epoch.load(Ordering::SeqCst) != epoch {
                            return Err(AttemptFailure::NoSession);
                        }
                        let reason = format!("the refresh token was refused: {reason}");
                        slot.publish(|s| {
                            s.tokens = None;
                            s.login_required = Some(reason.clone());
                            s.degraded = false;
                            s.last_error = Some("login_required");
                            s.backoff = Backoff::default();
                        });
                        Err(AttemptFailure::LoginRequired(reason))
                    }
                    FailureClass::Transient | FailureClass::Throttled | FailureClass::Terminal => {
                        let retry_after = self.back_off(slot, class);
                        Err(AttemptFailure::Upstream {
                            retry_after,
                            reason,
                        })
                    }
                }
            }
        }
    }

    /// The upstream call(s): one attempt in the background; up to `blocking_attempts` with
    /// full-jitter backoff within `blocking_deadline` when a caller waits.
    async fn call_refresh(
        &self,
        authenticator: &Authenticator,
        session: &StoredSession,
        mode: Mode,
    ) -> Result<Refreshed, RefreshError> {
        let request = || RefreshRequest {
            refresh_token: &session.refresh_token,
            device: session.device.as_ref(),
            username: session.username.as_deref(),
        };
        if mode == Mode::Background {
            return authenticator
                .refresh(request())
                .await
                .map_err(RefreshError::Upstream);
        }
        let options = &self.inner.options;
        let deadline = tokio::time::Instant::now() + options.blocking_deadline;
        let attempts = async {
            let mut attempt = 0;
            loop {
                let error = match authenticator.refresh(request()).await {
                    Ok(refreshed) => return Ok(refreshed),
                    Err(error) => error,
                };
                attempt += 1;
                let class = FailureClass::of(&error);
                let base = match class {
                    FailureClass::Transient => options.transient_base,
                    FailureClass::Throttled => options.throttle_base,
                    FailureClass::LoginRequired | FailureClass::Terminal => {
                        return Err(RefreshError::Upstream(error));
                    }
                };
                if attempt >= options.blocking_attempts {
                    return Err(RefreshError::Upstream(error));
                }
                let delay =
                    policy::backoff_delay(attempt - 1, base, options.blocking_cap, self.random());
                if tokio::time::Instant::now() + delay >= deadline {
                    return Err(RefreshError::Upstream(error));
                }
                tracing::debug!(
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    class = class.name(),
                    "refresh retry"
                );
                tokio::time::sleep(delay).await;
            }
        };
        match tokio::time::timeout_at(deadline, attempts).await {
            Ok(result) => result,
            Err(_) => Err(RefreshError::Deadline),
        }
    }

    /// Persists (if anything changed) and only then publishes the new tokens.
    async fn commit_refresh(
        &self,
        slot: &Arc<Slot>,
        epoch: u64,
        old: StoredSession,
        refreshed: Refreshed,
    ) -> AttemptOutcome {
        let Refreshed {
            tokens,
            rotated_refresh_token,
            new_device,
        } = refreshed;
        let _ops = slot.ops.lock().await;
        if slot.epoch.load(Ordering::SeqCst) != epoch {
            // A logout or a new login happened meanwhile: this session is gone.
            return Err(AttemptFailure::NoSession);
        }
        let username = tokens
            .username()
            .map(str::to_owned)
            .or_else(|| old.username.clone());
        let changed =
            rotated_refresh_token.is_some() || new_device.is_some() || username != old.username;
        let session = StoredSession {
            refresh_token: rotated_refresh_token.unwrap_or(old.refresh_token),
            username,
            device: new_device.or(old.device),
        };
        let persisted = if changed {
            self.persist(slot, session.clone()).await
        } else {
            Ok(())
        };
        let persistence_failed = persisted.is_err();
        if let Err(error) = persisted {
            tracing::error!(profile = %slot.name, error = %format!("{error:#}"), "cannot persist the rotated refresh token; keeping it in memory and retrying");
        }
        self.install_session(slot, session, tokens, persistence_failed, |s| {
            // An unchanged session was not saved: an earlier persist failure still stands.
            s.persistence_degraded = persistence_failed || (s.persistence_degraded && !changed);
        });
        tracing::info!(profile = %slot.name, rotated = changed, "tokens refreshed");
        Ok(())
    }

    /// Holds `session` in memory and publishes `tokens` as a success (failure state cleared;
    /// `last_error` "store" when the persist failed), then `adjust`; emits `TokenRefreshed`.
    /// Called by login and refresh with the `ops` lock held. Returns when the tokens expire.
    fn install_session(
        &self,
        slot: &Slot,
        session: StoredSession,
        tokens: TokenSet,
        persistence_failed: bool,
        adjust: impl FnOnce(&mut Snapshot),
    ) -> SystemTime {
        let device_remembered = session.device.is_some();
        *lock(&slot.session) = Some(session);
        let now = self.inner.clock.now();
        let expires_at = tokens.expires_at();
        log_skew(slot, &tokens);
        slot.publish(|s| {
            s.tokens = Some(Arc::new(tokens));
            s.has_session = true;
            s.login_required = None;
            s.last_refresh = Some(now);
            s.last_error = persistence_failed.then_some("store");
            s.degraded = false;
            s.backoff = Backoff::default();
            s.device_remembered = device_remembered;
            adjust(s);
        });
        self.emit(BrokerEvent::TokenRefreshed {
            profile: slot.name.to_string(),
            expires_at,
        });
        expires_at
    }

    /// Arms the backoff after a failed attempt and marks the profile degraded. Returns how long
    /// until the next attempt.
    fn back_off(&self, slot: &Slot, class: FailureClass) -> Duration {
        let options = &self.inner.options;
        let now = self.inner.clock.now();
        let random = self.random();
        let published = slot.publish(|s| {
            let token = s.token_times();
            s.backoff = if class == FailureClass::Terminal {
                // A configuration error will not fix itself quickly: wait the longest.
                Backoff {
                    failures: s.backoff.failures.saturating_add(1),
                    next_attempt_at: now.checked_add(options.background_cap),
                }
            } else {
                policy::after_failure(
                    now,
                    &s.backoff,
                    token,
                    options.background_base,
                    options.background_cap,
                    options.min_retry_gap,
                    random,
                )
            };
            s.degraded = true;
            s.last_error = Some(class.name());
        });
        published
            .backoff
            .wait_at(now)
            .unwrap_or(options.min_retry_gap)
    }

    fn record_failure(&self, slot: &Slot, class: FailureClass, label: &'static str) {
        self.back_off(slot, class);
        slot.publish(|s| s.last_error = Some(label));
    }

    /// Saves through the store on a tracked blocking task: once started it completes even if
    /// the awaiting future is dropped, and [`drain`](Self::drain) waits for it.
    async fn persist(&self, slot: &Slot, session: StoredSession) -> anyhow::Result<()> {
        let store = self.inner.store.clone();
        let name = slot.name.clone();
        self.inner
            .tasks
            .spawn_blocking(move || store.save(&name, &session))
            .await
            .map_err(|error| anyhow::anyhow!("the persist task failed: {error}"))?
    }

    fn spawn_persist_retry(&self, slot: Arc<Slot>) {
        let broker = self.clone();
        self.inner.tasks.spawn(async move {
            let _ops = slot.ops.lock().await;
            if !slot.snapshot().persistence_degraded {
                return;
            }
            let Some(session) = lock(&slot.session).clone() else {
                return;
            };
            match broker.persist(&slot, session).await {
                Ok(()) => {
                    tracing::info!(profile = %slot.name, "session persisted after an earlier failure");
                    slot.publish(|s| {
                        s.persistence_degraded = false;
                        if s.last_error == Some("store") {
                            s.last_error = None;
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(profile = %slot.name, error = %format!("{error:#}"), "persist retry failed");
                }
            }
        });
    }

    /// After the refresh token was refused: log in again with the configured password source
    /// (SRP and USER_PASSWORD flows only). A challenge means a person is needed.
    async fn unattended_login(&self, slot: &Arc<Slot>) -> bool {
        let config = &slot.config;
        let Some(source) = &config.password else {
            return false;
        };
        if !matches!(config.auth_flow, AuthFlow::UserSrp | AuthFlow::UserPassword) {
            return false;
        }
        if self.login_active(slot, self.inner.clock.now()) {
            return false;
        }
        let password = match source
            .resolve(&slot.name, "password", self.inner.options.env.as_ref())
            .await
        {
            Ok(password) => Password::new(password.expose_secret()),
            Err(error) => {
                tracing::warn!(error = %error, "unattended login impossible");
                return false;
            }
        };
        let Ok(authenticator) = self.authenticator(slot).await else {
            return false;
        };
        let request = self.login_request(slot, Some(password));
        match authenticator.start_login(request).await {
            Ok(LoginStep::Authenticated(success)) => {
                tracing::info!(profile = %slot.name, "unattended login succeeded");
                self.inner.metrics.login("unattended_ok");
                self.complete_login(slot, *success).await;
                true
            }
            Ok(LoginStep::Challenge(pending)) => {
                tracing::warn!(profile = %slot.name, challenge = pending.challenge().name(), "unattended login needs a person");
                self.inner.metrics.login("unattended_challenge");
                false
            }
            Err(error) => {
                tracing::warn!(profile = %slot.name, error = %describe_error(&error), "unattended login failed");
                self.inner.metrics.login("unattended_error");
                false
            }
        }
    }

    // ----- login -----

    fn login_request(&self, slot: &Slot, password: Option<Password>) -> LoginRequest {
        let config = &slot.config;
        LoginRequest {
            username: config.username.clone(),
            password,
            flow: config.auth_flow.clone(),
            device: lock(&slot.session).as_ref().and_then(|s| s.device.clone()),
            remember_device: if config.remember_device {
                DeviceRemembering::Remember
            } else {
                DeviceRemembering::DoNotRemember
            },
            device_name: config.device_name.clone(),
        }
    }

    async fn start_login(
        &self,
        slot: &Arc<Slot>,
        login_id: &str,
        password: Option<Password>,
    ) -> Result<LoginOutcome, BrokerError> {
        let config = &slot.config;
        let password = match password {
            Some(password) => Some(password),
            None => match &config.password {
                Some(source) => {
                    let secret = source
                        .resolve(&slot.name, "password", self.inner.options.env.as_ref())
                        .await
                        .map_err(|error| BrokerError::Misconfigured(error.to_string()))?;
                    Some(Password::new(secret.expose_secret()))
                }
                None => None,
            },
        };
        if password.is_none()
            && matches!(config.auth_flow, AuthFlow::UserSrp | AuthFlow::UserPassword)
        {
            return Err(BrokerError::BadInput {
                field: "password",
                message: format!(
                    "a password is required for {} (send one, or configure a password source for profile {})",
                    config.auth_flow_name, slot.name
                ),
            });
        }
        let authenticator = self.authenticator(slot).await?;
        self.emit(BrokerEvent::LoginStarted {
            profile: slot.name.to_string(),
        });
        let request = self.login_request(slot, password);
        let step = authenticator
            .start_login(request)
            .await
            .map_err(|error| map_login_error(&error))?;
        self.handle_step(slot, login_id, step).await
    }

    async fn respond(
        &self,
        slot: &Arc<Slot>,
        login_id: &str,
        pending: PendingLogin,
        answer: ChallengeAnswer,
    ) -> Result<LoginOutcome, BrokerError> {
        let authenticator = match self.authenticator(slot).await {
            Ok(authenticator) => authenticator,
            Err(error) => {
                self.park_login(login_id, Box::new(pending));
                return Err(error);
            }
        };
        match authenticator.respond(pending, answer).await {
            Ok(step) => self.handle_step(slot, login_id, step).await,
            Err(RespondError { error, pending }) => {
                let mapped = map_login_error(&error);
                match pending {
                    Some(pending) if !matches!(mapped, BrokerError::ChallengeExpired) => {
                        self.park_login(login_id, pending);
                    }
                    _ => self.release_login(login_id),
                }
                Err(mapped)
            }
        }
    }

    async fn handle_step(
        &self,
        slot: &Arc<Slot>,
        login_id: &str,
        step: LoginStep,
    ) -> Result<LoginOutcome, BrokerError> {
        match step {
            LoginStep::Authenticated(success) => {
                if !lock(&self.inner.logins).by_id.contains_key(login_id) {
                    // A logout ended this login while Cognito was answering: keep nothing.
                    return Err(BrokerError::LoginRequired {
                        profile: slot.name.to_string(),
                        reason: "the login was ended by a logout".to_owned(),
                    });
                }
                let username = success.tokens.username().map(str::to_owned);
                let expires_at = self.complete_login(slot, *success).await;
                self.release_login(login_id);
                Ok(LoginOutcome::Authenticated {
                    profile: slot.name.to_string(),
                    expires_at,
                    username,
                })
            }
            LoginStep::Challenge(pending) => {
                let described = describe_challenge(pending.challenge());
                self.park_login(login_id, pending);
                match described {
                    Some((challenge, message, fields, details)) => Ok(LoginOutcome::Challenge {
                        login_id: login_id.to_owned(),
                        challenge,
                        message,
                        fields,
                        details,
                    }),
                    None => {
                        self.release_login(login_id);
                        Err(BrokerError::Unsupported(
                            "this challenge is not supported".to_owned(),
                        ))
                    }
                }
            }
        }
    }

    /// Persists the new session, then publishes its tokens. A failed persist keeps the session
    /// in memory (persistence_degraded, retried every tick).
    async fn complete_login(&self, slot: &Arc<Slot>, success: LoginSuccess) -> SystemTime {
        let LoginSuccess {
            tokens,
            refresh_token,
            device,
        } = success;
        let _ops = slot.ops.lock().await;
        slot.epoch.fetch_add(1, Ordering::SeqCst);
        let session = StoredSession {
            refresh_token,
            username: tokens.username().map(str::to_owned),
            device,
        };
        let persisted = self.persist(slot, session.clone()).await;
        if let Err(error) = &persisted {
            tracing::error!(profile = %slot.name, error = %format!("{error:#}"), "cannot persist the session; keeping it in memory and retrying");
        }
        let persistence_failed = persisted.is_err();
        self.install_session(slot, session, tokens, persistence_failed, |s| {
            s.persistence_degraded = persistence_failed;
            s.store_error = None;
        })
    }

    fn login_finished(&self, slot: &Slot, result: &Result<LoginOutcome, BrokerError>) {
        let profile = slot.name.to_string();
        match result {
            Ok(LoginOutcome::Authenticated { .. }) => {
                self.inner.metrics.login("authenticated");
                tracing::info!(profile = %profile, "login completed");
                self.emit(BrokerEvent::LoginCompleted { profile });
            }
            Ok(LoginOutcome::Challenge { challenge, .. }) => {
                self.inner.metrics.login("challenge");
                tracing::info!(profile = %profile, challenge = *challenge, "login waits for a challenge answer");
            }
            Err(error) => {
                self.inner.metrics.login(error.code());
                tracing::info!(profile = %profile, error = error.code(), "login step failed");
                self.emit(BrokerEvent::LoginFailed {
                    profile,
                    error: error.code().to_owned(),
                });
            }
        }
    }

    fn park_login(&self, login_id: &str, pending: Box<PendingLogin>) {
        let mut logins = lock(&self.inner.logins);
        if let Some(entry) = logins.by_id.get_mut(login_id) {
            entry.state = LoginState::Pending(pending);
        }
    }

    fn release_login(&self, login_id: &str) {
        let mut logins = lock(&self.inner.logins);
        if let Some(entry) = logins.by_id.remove(login_id)
            && logins.by_profile.get(&entry.profile).map(String::as_str) == Some(login_id)
        {
            logins.by_profile.remove(&entry.profile);
        }
    }

    /// A login for this profile is running or waits for an unexpired answer.
    fn login_active(&self, slot: &Slot, now: SystemTime) -> bool {
        let logins = lock(&self.inner.logins);
        let Some(id) = logins.by_profile.get(slot.name.as_str()) else {
            return false;
        };
        match logins.by_id.get(id).map(|entry| &entry.state) {
            Some(LoginState::Busy) => true,
            Some(LoginState::Pending(pending)) => pending.expires_at() > now,
            None => false,
        }
    }

    /// Frees the profile of every pending login past its expiry (a new login may start), and
    /// forgets expired logins for good after [`EXPIRED_LOGIN_GRACE`] (until then answering one
    /// says `challenge_expired` rather than `unknown_login`).
    fn purge_expired_logins(&self, now: SystemTime) {
        let mut logins = lock(&self.inner.logins);
        let mut freed = Vec::new();
        let mut forgotten = Vec::new();
        for (id, entry) in &logins.by_id {
            if let LoginState::Pending(pending) = &entry.state {
                let expires_at = pending.expires_at();
                if expires_at <= now {
                    freed.push((entry.profile.clone(), id.clone()));
                }
                if expires_at
                    .checked_add(EXPIRED_LOGIN_GRACE)
                    .is_none_or(|forget_at| forget_at <= now)
                {
                    forgotten.push(id.clone());
                }
            }
        }
        for (profile, id) in freed {
            if logins.by_profile.get(&profile) == Some(&id) {
                logins.by_profile.remove(&profile);
            }
        }
        for id in forgotten {
            logins.by_id.remove(&id);
        }
    }

    // ----- logout -----

    async fn logout_inner(&self, slot: &Arc<Slot>, forget_device: bool) -> Result<(), BrokerError> {
        let _ops = slot.ops.lock().await;
        slot.epoch.fetch_add(1, Ordering::SeqCst);
        let session = lock(&slot.session).take();
        let tokens = slot.snapshot().tokens.clone();
        slot.publish(|s| {
            *s = Snapshot {
                generation: s.generation,
                ..Snapshot::default()
            };
        });
        if let Some(session) = &session {
            match self.authenticator(slot).await {
                Ok(authenticator) => {
                    let now = self.inner.clock.now();
                    if forget_device {
                        match (
                            &session.device,
                            tokens.as_ref().filter(|t| t.expires_at() > now),
                        ) {
                            (Some(device), Some(tokens)) => {
                                if let Err(error) = authenticator
                                    .forget_device(tokens.access_token(), &device.device_key)
                                    .await
                                {
                                    tracing::warn!(profile = %slot.name, error = %describe_error(&error), "ForgetDevice failed");
                                }
                            }
                            (Some(_), None) => {
                                tracing::warn!(profile = %slot.name, "cannot forget the device: no valid access token");
                            }
                            (None, _) => {}
                        }
                    }
                    if let Err(error) = authenticator.revoke(&session.refresh_token).await {
                        tracing::warn!(profile = %slot.name, error = %describe_error(&error), "RevokeToken failed; the local session is erased anyway");
                    }
                }
                Err(error) => {
                    tracing::warn!(profile = %slot.name, error = %error, "cannot revoke upstream; the local session is erased anyway");
                }
            }
        }
        let store = self.inner.store.clone();
        let name = slot.name.clone();
        let erased = self
            .inner
            .tasks
            .spawn_blocking(move || store.erase(&name))
            .await
            .map_err(|error| anyhow::anyhow!("the erase task failed: {error}"))
            .and_then(|result| result);
        tracing::info!(profile = %slot.name, "logged out");
        self.emit(BrokerEvent::LoggedOut {
            profile: slot.name.to_string(),
        });
        erased.map_err(|error| {
            BrokerError::Internal(error.context("cannot erase the stored session"))
        })
    }
}

struct ClearInflight(Arc<Slot>);

impl Drop for ClearInflight {
    fn drop(&mut self) {
        lock(&self.0.inflight).take();
    }
}

enum RefreshError {
    Upstream(cognito_auth::Error),
    Deadline,
}

fn log_skew(slot: &Slot, tokens: &TokenSet) {
    if let Some(skew) = tokens.clock_skew().filter(|skew| skew.abs() > 60) {
        tracing::warn!(profile = %slot.name, skew_seconds = skew, "the local clock and cognito's differ");
    }
}

/// A uniform fraction in `[0, 1)` from the injected entropy.
fn random_fraction(entropy: &dyn Entropy) -> f64 {
    let mut bytes = [0u8; 8];
    entropy.fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

fn mfa_type_name(mfa: &MfaType) -> &'static str {
    match mfa {
        MfaType::Sms => "SMS_MFA",
        MfaType::SoftwareToken => "SOFTWARE_TOKEN_MFA",
        MfaType::Email => "EMAIL_OTP",
    }
}

type DescribedChallenge = (&'static str, String, Vec<&'static str>, serde_json::Value);

/// The challenge as the API shows it: name, a sentence for a person, the answer fields, details.
fn describe_challenge(challenge: &Challenge) -> Option<DescribedChallenge> {
    use serde_json::json;
    let name = challenge.name();
    let to = |destination: &Option<String>| {
        destination
            .as_deref()
            .map_or_else(String::new, |d| format!(" to {d}"))
    };
    let described = match challenge {
        Challenge::NewPasswordRequired {
            required_attributes,
            user_attributes,
        } => {
            let mut fields = vec!["new_password"];
            if !required_attributes.is_empty() {
                fields.push("attributes");
            }
            (
                "choose a new password".to_owned(),
                fields,
                json!({ "required_attributes": required_attributes, "user_attributes": user_attributes }),
            )
        }
        Challenge::SmsMfa { destination } | Challenge::SmsOtp { destination } => (
            format!("enter the code sent by SMS{}", to(destination)),
            vec!["code"],
            json!({ "destination": destination }),
        ),
        Challenge::EmailOtp { destination } => (
            format!("enter the code sent by email{}", to(destination)),
            vec!["code"],
            json!({ "destination": destination }),
        ),
        Challenge::SoftwareTokenMfa {
            friendly_device_name,
        } => (
            "enter the 6-digit code from your authenticator app".to_owned(),
            vec!["code"],
            json!({ "friendly_device_name": friendly_device_name }),
        ),
        Challenge::SelectMfaType { options } => (
            "choose an MFA method".to_owned(),
            vec!["mfa_type"],
            json!({ "options": options.iter().map(mfa_type_name).collect::<Vec<_>>() }),
        ),
        Challenge::MfaSetup {
            secret_code,
            otpauth_uri,
        } => (
            "add this secret to your authenticator app, then enter the 6-digit code it shows"
                .to_owned(),
            vec!["code"],
            // The person needs the secret to set up their app: this is its one way out.
            json!({ "secret_code": secret_code.expose_secret(), "otpauth_uri": otpauth_uri.expose_secret() }),
        ),
        Challenge::SelectChallenge { available } => (
            "choose how to sign in".to_owned(),
            vec!["challenge", "password"],
            json!({ "options": available }),
        ),
        Challenge::CustomChallenge { parameters } => (
            "answer the custom challenge".to_owned(),
            vec!["answer"],
            json!({ "parameters": parameters }),
        ),
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some((name, described.0, described.1, described.2))
}

fn required<T>(value: Option<T>, field: &'static str, challenge: &str) -> Result<T, BrokerError> {
    value.ok_or_else(|| BrokerError::BadInput {
        field,
        message: format!("{challenge} needs `{field}`"),
    })
}

fn build_answer(challenge: &Challenge, input: AnswerInput) -> Result<ChallengeAnswer, BrokerError> {
    let name = challenge.name();
    match challenge {
        Challenge::NewPasswordRequired { .. } => Ok(ChallengeAnswer::NewPassword {
            password: required(input.new_password, "new_password", name)?,
            attributes: input.attributes,
        }),
        Challenge::SmsMfa { .. }
        | Challenge::SmsOtp { .. }
        | Challenge::EmailOtp { .. }
        | Challenge::SoftwareTokenMfa { .. }
        | Challenge::MfaSetup { .. } => {
            let code = required(input.code, "code", name)?;
            let trimmed = code.expose_secret().trim();
            if trimmed.is_empty()
                || trimmed.len() > 16
                || !trimmed.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(BrokerError::BadInput {
                    field: "code",
                    message: "the code must be 1 to 16 letters or digits".to_owned(),
                });
            }
            Ok(ChallengeAnswer::Code(OneTimeCode::new(trimmed)))
        }
        Challenge::SelectMfaType { .. } => {
            let choice = required(input.mfa_type, "mfa_type", name)?;
            let mfa = MfaType::from_str(&choice).map_err(|_| BrokerError::BadInput {
                field: "mfa_type",
                message: format!(
                    "unknown MFA type {choice:?}; use \"SMS_MFA\", \"SOFTWARE_TOKEN_MFA\" or \"EMAIL_OTP\""
                ),
            })?;
            Ok(ChallengeAnswer::MfaType(mfa))
        }
        Challenge::SelectChallenge { .. } => Ok(ChallengeAnswer::SelectChallenge {
            challenge: required(input.challenge, "challenge", name)?,
            password: input.password,
        }),
        Challenge::CustomChallenge { .. } => Ok(ChallengeAnswer::CustomAnswer(required(
            input.answer,
            "answer",
            name,
        )?)),
        #[allow(unreachable_patterns)]
        _ => Err(BrokerError::Unsupported(format!("{name} is not supported"))),
    }
}

/// Maps a login-step failure to the API error. Wrong credentials are `invalid_credentials` (401).
fn map_login_error(error: &cognito_auth::Error) -> BrokerError {
    if error.is_challenge_expired() {
        return BrokerError::ChallengeExpired;
    }
    let message = error
        .service()
        .map(|s| service_message(&s.message))
        .filter(|m| !m.is_empty());
    match error.code() {
        Some(ErrorCode::CodeMismatch) => {
            return BrokerError::CodeMismatch(message.unwrap_or_else(|| "invalid code".to_owned()));
        }
        Some(ErrorCode::ExpiredCode) => return BrokerError::ChallengeExpired,
        Some(ErrorCode::InvalidPassword | ErrorCode::PasswordHistoryPolicyViolation) => {
            return BrokerError::InvalidPassword(
                message
                    .unwrap_or_else(|| "the password does not meet the pool's policy".to_owned()),
            );
        }
        Some(
            ErrorCode::NotAuthorized
            | ErrorCode::UserNotFound
            | ErrorCode::UserNotConfirmed
            | ErrorCode::PasswordResetRequired
            | ErrorCode::TooManyFailedAttempts,
        ) => {
            return BrokerError::NotAuthorized(
                message.unwrap_or_else(|| "incorrect username or password".to_owned()),
            );
        }
        Some(ErrorCode::TooManyRequests | ErrorCode::LimitExceeded) => {
            return BrokerError::UpstreamUnavailable {
                retry_after: Duration::from_secs(30),
                reason: describe_error(error),
            };
        }
        _ => {}
    }
    match error {
        cognito_auth::Error::Unsupported(what) => BrokerError::Unsupported(what.clone()),
        cognito_auth::Error::InvalidInput(what) => BrokerError::BadInput {
            field: "answer",
            message: what.clone(),
        },
        _ => match error.class() {
            ErrorClass::Transient | ErrorClass::Throttled => BrokerError::UpstreamUnavailable {
                retry_after: Duration::from_secs(5),
                reason: describe_error(error),
            },
            ErrorClass::NeedsUser => BrokerError::NotAuthorized(describe_error(error)),
            ErrorClass::Terminal => BrokerError::Misconfigured(describe_error(error)),
        },
    }
}

#[cfg(test)]
mod tests;
