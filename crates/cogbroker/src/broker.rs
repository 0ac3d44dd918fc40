//! The broker: the only owner of tokens (design.md §3, §8, §15; security-reliability.md §2.3).
//!
//! One task per profile owns that profile's session ([`profile`]); the [`Broker`] is a handle
//! to all of them. The hot path ([`Broker::token`]) reads the profile's published snapshot (one
//! `Arc` clone from a `watch`, no lock held, no IO) and only when the token is not fresh enough
//! asks the profile task to refresh, joining the single refresh in flight. Rooms:
//!
//! - [`profile`]: the task per profile and its jobs (refresh, login, logout);
//! - [`source`]: how a profile gets and renews tokens (today: the user pool);
//! - [`policy`]: refresh timing as pure functions; [`state`]: the published snapshot;
//! - [`error`]: errors in the broker's words (the server maps them to HTTP);
//! - [`challenge`]: challenges as the API shows them, answers as the flow takes them;
//! - [`aws`]: AWS credentials from an identity pool (the upstream calls, the published state,
//!   the grants of `exec --aws`); the task's side is `profile/aws.rs`;
//! - [`logins`]: which profile a login id belongs to; [`upstream`]: one HTTP client per
//!   endpoint; [`types`]: the values callers get; `metrics`: Prometheus counters.

pub mod aws;
pub mod challenge;
mod credentials;
pub mod error;
pub mod logins;
pub mod policy;
pub mod profile;
pub mod sinks;
pub mod source;
pub mod state;
mod ticket;
pub mod types;
pub mod upstream;

mod metrics;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cognito_auth::env::{Clock, Entropy};
use cognito_auth::secret::Password;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, EnvSource, Grant, ProcessEnv};
use crate::secrets::{OsKeyring, SecretResolver};
use crate::store::SecretStore;
use error::AttemptFailure;
pub use error::BrokerError;
use metrics::Metrics;
use policy::{RequestDecision, Tuning};
use profile::{Command, Mode, ProfileHandle, ProfileInfo};
use source::{BrowserSource, ClientCredentialsSource, Source, UserPoolSource};
use state::{Snapshot, rfc3339};
pub use types::{AnswerInput, BrokerEvent, IssuedToken, LoginOutcome, ProfileStatus, TokenKind};
use upstream::Upstreams;

/// The env var naming a failpoint (a test hook of debug builds, see docs/configuration.md;
/// release builds ignore it).
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
    /// The runtime the upstream jobs (refreshes, logins, revokes, AWS fetches) run on; `None`:
    /// the caller's. The daemon gives them a thread of their own, so a flood of local requests
    /// queued on the serving runtime does not delay the refresh they all wait for.
    pub upstream: Option<tokio::runtime::Handle>,
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
            upstream: None,
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

/// What every profile task shares: the store, the clock, randomness, options, events, metrics.
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SecretStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) entropy: Arc<dyn Entropy>,
    pub(crate) options: BrokerOptions,
    pub(crate) failpoint: Option<String>,
    pub(crate) events: broadcast::Sender<BrokerEvent>,
    pub(crate) metrics: Metrics,
    pub(crate) logins: logins::LoginIndex,
    pub(crate) tasks: TaskTracker,
}

/// The token broker: a handle to every profile's task. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    profiles: BTreeMap<crate::config::ProfileName, ProfileHandle>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("profiles", &self.inner.profiles.keys().collect::<Vec<_>>())
            .field("store", &self.inner.shared.store.kind())
            .finish_non_exhaustive()
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
    /// pass a map as the environment). Starts one task per profile: call it inside a runtime.
    pub fn with_options(
        config: Arc<Config>,
        store: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        options: BrokerOptions,
    ) -> anyhow::Result<Self> {
        let mut failpoint = options.env.var(FAILPOINT_VAR).filter(|v| !v.is_empty());
        if !cfg!(debug_assertions) && failpoint.take().is_some() {
            // A crash hook has no place in a build people run: release builds ignore it.
            tracing::warn!(
                "{FAILPOINT_VAR} is set but failpoints exist only in debug builds; ignored"
            );
        }
        if let Some(failpoint) = &failpoint {
            if failpoint != FAILPOINT_AFTER_REFRESH_BEFORE_PERSIST {
                anyhow::bail!(
                    "unknown {FAILPOINT_VAR} value {failpoint:?}; the only failpoint is {FAILPOINT_AFTER_REFRESH_BEFORE_PERSIST:?} (a test hook)"
                );
            }
            tracing::warn!(failpoint = %failpoint, "test failpoint armed");
        }
        let secrets = SecretResolver::new(options.env.clone(), Arc::new(OsKeyring));
        let upstreams = Arc::new(Upstreams::new(
            options.connect_timeout,
            options.request_timeout,
        ));
        let (events, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            store,
            clock: clock.clone(),
            entropy: entropy.clone(),
            options,
            failpoint,
            events,
            metrics: Metrics::default(),
            logins: logins::LoginIndex::default(),
            tasks: TaskTracker::new(),
        });
        // Each source keeps its profile's settings for the daemon's life: moved out of the
        // config when this is its only holder (the daemon's case), so no second copy is made
        // and freed (which left 1,000 profiles' worth of holes in the heap).
        let configs = Arc::try_unwrap(config)
            .map_or_else(|shared| shared.profiles.clone(), |owned| owned.profiles);
        let mut profiles = BTreeMap::new();
        for (name, config) in configs {
            let info = ProfileInfo {
                name: name.clone(),
                username: config.username.clone(),
                auth_flow_name: config.auth_flow_name,
                grant: config.grant,
                sinks: config.sinks.clone(),
                tuning: Tuning {
                    jitter: profile::random_fraction(entropy.as_ref()),
                    refresh_before: config.refresh_before,
                },
                aws: config.aws.is_some(),
            };
            let aws = match &config.aws {
                Some(aws) => Some(
                    aws::AwsSource::new(&name, (**aws).clone(), &upstreams)
                        .map_err(|error| anyhow::anyhow!("profile {name}: {error}"))?,
                ),
                None => None,
            };
            let source = match config.grant {
                Grant::ClientCredentials => {
                    Source::ClientCredentials(Box::new(ClientCredentialsSource::new(
                        config,
                        secrets.clone(),
                        upstreams.clone(),
                        clock.clone(),
                    )))
                }
                Grant::AuthorizationCode => Source::Browser(Box::new(BrowserSource::new(
                    config,
                    secrets.clone(),
                    upstreams.clone(),
                    clock.clone(),
                ))),
                Grant::UserPool => Source::UserPool(UserPoolSource::new(
                    config,
                    secrets.clone(),
                    upstreams.clone(),
                    clock.clone(),
                    entropy.clone(),
                )),
            };
            profiles.insert(name, profile::spawn(info, source, aws, shared.clone()));
        }
        Ok(Self {
            inner: Arc::new(Inner { profiles, shared }),
        })
    }

    /// Loads every profile's stored session (no network). A profile with a session is `stale`
    /// until its first token request refreshes it; one the store cannot read reports the error.
    pub async fn restore(&self) {
        for handle in self.inner.profiles.values() {
            let _ = handle.ask(|done| Command::Restore { done }).await;
        }
    }

    /// Starts the periodic wall-clock tick (every `tick_interval`, missed ticks skipped): each
    /// tick compares wall-clock deadlines from the injected clock, so a suspend does not delay
    /// refreshes the way one long sleep would.
    pub fn spawn_ticker(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let broker = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(broker.inner.shared.options.tick_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = interval.tick() => broker.tick(),
                }
            }
        })
    }

    /// One tick for every profile: expire pending logins, retry a failed persist, start or
    /// plan background refreshes. Does not wait for them.
    pub fn tick(&self) {
        for handle in self.inner.profiles.values() {
            handle.nudge(Command::Tick);
        }
    }

    /// Every profile's status, by name.
    pub fn profiles(&self) -> Vec<ProfileStatus> {
        let now = self.inner.shared.clock.now();
        self.inner
            .profiles
            .values()
            .map(|handle| self.status_of(handle, now))
            .collect()
    }

    /// How many profiles are in each state, by state name: what `systemctl --user status`
    /// shows. Reads each profile's snapshot and builds no [`ProfileStatus`], so a daemon with
    /// many profiles can afford it after every event.
    pub fn state_counts(&self) -> BTreeMap<&'static str, usize> {
        let now = self.inner.shared.clock.now();
        let mut counts = BTreeMap::new();
        for handle in self.inner.profiles.values() {
            *counts
                .entry(state_of(handle, &handle.snapshot(), now))
                .or_default() += 1;
        }
        counts
    }

    /// One profile's status.
    pub fn status(&self, profile: &str) -> Result<ProfileStatus, BrokerError> {
        let handle = self.handle(profile)?;
        Ok(self.status_of(handle, self.inner.shared.clock.now()))
    }

    /// The store backend's kind ("keyring", "file", "memory").
    pub fn store_kind(&self) -> &'static str {
        self.inner.shared.store.kind()
    }

    /// Why this store backend is in use, as [`crate::store::open`] said (given in
    /// [`BrokerOptions::store_reason`]).
    pub fn store_reason(&self) -> Option<&str> {
        self.inner.shared.options.store_reason.as_deref()
    }

    /// A token valid for at least `min_ttl` (default: the profile's hand-out floor). Cache hits
    /// read the snapshot; otherwise the caller joins the profile's single in-flight refresh.
    /// While a valid token exists, upstream failures never reach the caller (the token comes
    /// back flagged `degraded`).
    pub async fn token(
        &self,
        profile: &str,
        kind: TokenKind,
        min_ttl: Option<Duration>,
    ) -> Result<IssuedToken, BrokerError> {
        let handle = self.handle(profile)?;
        let metrics = &self.inner.shared.metrics;
        match settle_token(handle, &self.inner.shared, min_ttl, true).await {
            Settled::Serve {
                snapshot,
                now,
                degraded,
                refreshed,
            } => {
                metrics.token_request(match (degraded, refreshed) {
                    (true, _) => "degraded",
                    (false, true) => "refreshed",
                    (false, false) => "hit",
                });
                issue(handle, &snapshot, kind, now, degraded)
            }
            Settled::Refused { error, outcome } => {
                metrics.token_request(outcome);
                Err(error)
            }
        }
    }

    /// Refreshes now, joining an in-flight refresh. Errors are reported even while a valid
    /// token exists.
    pub async fn refresh(&self, profile: &str) -> Result<ProfileStatus, BrokerError> {
        let handle = self.handle(profile)?;
        let snapshot = handle.snapshot();
        if !snapshot.has_session {
            return Err(BrokerError::login_required(profile, "not logged in"));
        }
        if let Some(reason) = &snapshot.login_required {
            return Err(BrokerError::login_required(profile, reason.clone()));
        }
        // An explicit refresh tries again after upstream refused the configuration.
        handle.tell(Command::ClearMisconfigured).await;
        // The current generation forces a new attempt unless one is in flight.
        handle
            .ask(|reply| Command::Refresh {
                mode: Mode::Blocking,
                observed: snapshot.generation,
                reply: Some(reply),
            })
            .await?
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
        self.handle(profile)?
            .ask(|reply| Command::Login { password, reply })
            .await?
    }

    /// Answers the pending challenge of `login_id`. A wrong code or a refused new password
    /// keeps the login pending (same id); other failures end it.
    pub async fn answer(
        &self,
        login_id: &str,
        input: AnswerInput,
    ) -> Result<LoginOutcome, BrokerError> {
        let handle = self.login_handle(login_id)?;
        let login_id = login_id.to_owned();
        handle
            .ask(|reply| Command::Answer {
                login_id,
                input: Box::new(input),
                reply,
            })
            .await?
    }

    /// Cancels a pending login.
    pub async fn cancel_login(&self, login_id: &str) -> Result<(), BrokerError> {
        let handle = self.login_handle(login_id)?;
        let login_id = login_id.to_owned();
        handle
            .ask(|reply| Command::Cancel { login_id, reply })
            .await?
    }

    /// Logs out: the local session is erased whatever happens upstream; RevokeToken (and
    /// ForgetDevice when asked) are best effort and their failures only logged. Fails only if
    /// the store could not erase the session.
    pub async fn logout(&self, profile: &str, forget_device: bool) -> Result<(), BrokerError> {
        self.handle(profile)?
            .ask(|reply| Command::Logout {
                forget_device,
                reply,
            })
            .await?
    }

    /// Events (token changes, logins, failures); never token values.
    pub fn subscribe(&self) -> broadcast::Receiver<BrokerEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Prometheus text exposition of the broker's metrics.
    pub fn metrics(&self) -> String {
        let now = self.inner.shared.clock.now();
        let profiles: Vec<(String, Option<f64>, &'static str, bool)> = self
            .inner
            .profiles
            .values()
            .map(|handle| {
                let snapshot = handle.snapshot();
                let expiry = snapshot.tokens.as_ref().map(|tokens| {
                    match tokens.expires_at().duration_since(now) {
                        Ok(left) => left.as_secs_f64(),
                        Err(past) => -past.duration().as_secs_f64(),
                    }
                });
                (
                    handle.info.name.to_string(),
                    expiry,
                    state_of(handle, &snapshot, now),
                    snapshot.persistence_degraded,
                )
            })
            .collect();
        self.inner.shared.metrics.render(&profiles)
    }

    /// Graceful shutdown: every profile task finishes the commands before this one, then its
    /// jobs in flight (a refresh's persist, a login's completion, a logout's revoke), and ends.
    /// Planned background refreshes are dropped. The caller bounds this with its own timeout.
    pub async fn drain(&self) {
        for handle in self.inner.profiles.values() {
            handle.tell(Command::Stop).await;
        }
        let tasks = &self.inner.shared.tasks;
        tasks.close();
        tasks.wait().await;
    }

    /// The refresh token a profile's task holds in memory.
    #[cfg(test)]
    pub(crate) async fn held_refresh_token(&self, profile: &str) -> Option<String> {
        let handle = self.handle(profile).ok()?;
        handle
            .ask(|reply| Command::HeldRefreshToken { reply })
            .await
            .ok()
            .flatten()
    }

    // -----------------------------------------------------------------------------------------

    fn handle(&self, profile: &str) -> Result<&ProfileHandle, BrokerError> {
        self.inner
            .profiles
            .get(profile)
            .ok_or_else(|| BrokerError::UnknownProfile(profile.to_owned()))
    }

    fn login_handle(&self, login_id: &str) -> Result<&ProfileHandle, BrokerError> {
        let profile = self
            .inner
            .shared
            .logins
            .profile_of(login_id)
            .ok_or(BrokerError::UnknownLogin)?;
        self.inner
            .profiles
            .get(profile.as_str())
            .ok_or(BrokerError::UnknownLogin)
    }

    fn status_of(&self, handle: &ProfileHandle, now: SystemTime) -> ProfileStatus {
        let snapshot = handle.snapshot();
        let tokens = snapshot.tokens.as_ref();
        ProfileStatus {
            name: handle.info.name.to_string(),
            state: state_of(handle, &snapshot, now),
            username: Some(handle.info.username.clone()).filter(|name| !name.is_empty()),
            expires_at: tokens.map(|t| rfc3339(t.expires_at())),
            expires_in: tokens.map(|t| {
                t.expires_at()
                    .duration_since(now)
                    .map_or(0, |d| d.as_secs())
            }),
            last_refresh: snapshot.last_refresh.map(rfc3339),
            last_error: snapshot.last_error.map(str::to_owned),
            login_required_reason: snapshot.login_required.clone(),
            store: self.inner.shared.store.kind(),
            device_remembered: snapshot.device_remembered,
            auth_flow: handle.info.auth_flow_name.to_owned(),
            persistence_degraded: snapshot.persistence_degraded,
            clock_skew_seconds: tokens.and_then(|t| t.clock_skew()),
        }
    }
}

/// How a token request settled ([`settle_token`]).
pub(crate) enum Settled {
    /// Serve from `snapshot` at `now`; `degraded`: refreshing fails and this is the last valid
    /// token, below what was asked; `refreshed`: a refresh ran for this request.
    Serve {
        snapshot: Arc<Snapshot>,
        now: SystemTime,
        degraded: bool,
        refreshed: bool,
    },
    /// No token can be served: why, and the metrics outcome (`unavailable`, `login_required`,
    /// `error`).
    Refused {
        error: BrokerError,
        outcome: &'static str,
    },
}

/// The decision of every token request, for callers and for the profile's own AWS fetches:
/// decide on the snapshot (`policy::on_request`: the hand-out floor or `min_ttl`, the backoff),
/// join or start the single refresh when one is needed (and, with `background`, start one in
/// the background when the token is getting old), then decide again. A refresh runs at most
/// once; a still-valid token beats an error.
pub(crate) async fn settle_token(
    handle: &ProfileHandle,
    shared: &Shared,
    min_ttl: Option<Duration>,
    background: bool,
) -> Settled {
    let profile = handle.info.name.as_str();
    let refused = |error, outcome| Settled::Refused { error, outcome };
    let mut refreshed = false;
    // At most: decide, refresh, decide again. The second decision never asks to refresh.
    for _ in 0..3 {
        let snapshot = handle.snapshot();
        let now = shared.clock.now();
        let decision = policy::on_request(
            now,
            snapshot.token_times(),
            &handle.info.tuning,
            min_ttl,
            &snapshot.backoff,
            snapshot.can_refresh(),
            refreshed,
        );
        match decision {
            RequestDecision::Serve {
                refresh_in_background,
            } => {
                if background && refresh_in_background && !snapshot.refreshing() {
                    handle.nudge(Command::Refresh {
                        mode: Mode::Background,
                        observed: snapshot.generation,
                        reply: None,
                    });
                }
                return Settled::Serve {
                    snapshot,
                    now,
                    degraded: false,
                    refreshed,
                };
            }
            RequestDecision::ServeDegraded => {
                return Settled::Serve {
                    snapshot,
                    now,
                    degraded: true,
                    refreshed,
                };
            }
            RequestDecision::Unavailable { retry_after } => {
                let reason = snapshot.last_error.map_or_else(
                    || "refresh backing off".to_owned(),
                    |c| format!("last refresh failed: {c}"),
                );
                return refused(
                    BrokerError::UpstreamUnavailable {
                        retry_after,
                        reason,
                    },
                    "unavailable",
                );
            }
            RequestDecision::NoSession if snapshot.misconfigured.is_some() => {
                let why = snapshot.misconfigured.clone().unwrap_or_default();
                return refused(BrokerError::Misconfigured(why), "error");
            }
            RequestDecision::NoSession => {
                let why = snapshot
                    .login_required
                    .clone()
                    .unwrap_or_else(|| "not logged in".to_owned());
                return refused(BrokerError::login_required(profile, why), "login_required");
            }
            RequestDecision::Refresh => {
                let outcome = handle
                    .join_or_ask(snapshot.refresh.as_ref(), |reply| Command::Refresh {
                        mode: Mode::Blocking,
                        observed: snapshot.generation,
                        reply: Some(reply),
                    })
                    .await;
                refreshed = true;
                match outcome {
                    // The session was replaced (login) or removed (logout) meanwhile:
                    // decide again on what is there now.
                    Ok(()) | Err(AttemptFailure::NoSession) => {}
                    Err(failure) => {
                        // Stale-while-revalidate: a still-valid token beats an error.
                        let latest = handle.snapshot();
                        let now = shared.clock.now();
                        let valid = latest
                            .token_times()
                            .is_some_and(|times| !times.remaining(now).is_zero());
                        if valid {
                            return Settled::Serve {
                                snapshot: latest,
                                now,
                                degraded: true,
                                refreshed,
                            };
                        }
                        return refused(failure.into_error(profile), "error");
                    }
                }
            }
        }
    }
    refused(
        BrokerError::Internal(anyhow::anyhow!(
            "token decision did not settle for profile {profile}"
        )),
        "error",
    )
}

fn issue(
    handle: &ProfileHandle,
    snapshot: &Snapshot,
    kind: TokenKind,
    now: SystemTime,
    degraded: bool,
) -> Result<IssuedToken, BrokerError> {
    let profile = handle.info.name.as_str();
    let tokens = snapshot
        .tokens
        .as_ref()
        .ok_or_else(|| BrokerError::login_required(profile, "not logged in"))?;
    IssuedToken::new(profile.to_owned(), kind, Arc::clone(tokens), now, degraded).ok_or_else(|| {
        BrokerError::Unsupported(format!(
            "profile {profile} has no id token (grant = \"{}\" issues access tokens only); ask for kind=access",
            handle.info.grant.as_str()
        ))
    })
}

fn state_of(handle: &ProfileHandle, snapshot: &Snapshot, now: SystemTime) -> &'static str {
    if snapshot.login.active(now) {
        return "logging_in";
    }
    if snapshot.refreshing() {
        return "refreshing";
    }
    if snapshot.login_required.is_some() {
        return "login_required";
    }
    if snapshot.misconfigured.is_some() {
        return "misconfigured";
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
    let windows = policy::windows(times.lifetime(), &handle.info.tuning);
    if times.remaining(now) <= windows.stale {
        "stale"
    } else {
        "fresh"
    }
}

#[cfg(test)]
mod tests;
