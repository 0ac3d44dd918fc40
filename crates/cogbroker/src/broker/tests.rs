//! The broker against the emulator (in process, on 127.0.0.1:0), with an injected wall clock
//! advanced together with the emulator's: login, refresh, single-flight, stale-while-revalidate,
//! definitive failures, rotation order, restart. No sleeps: tests wait on results and channels.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::mpsc as std_mpsc;

use cognito_auth::env::OsEntropy;
use cognito_emulator::{Emulator, Fault, RunningEmulator, Seed};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cognito_auth::secret::OneTimeCode;
use cognito_auth::{Challenge, ChallengeAnswer, MfaType};
use secrecy::{ExposeSecret, SecretString};

use super::challenge::{build_answer, describe_challenge};
use super::policy::Backoff;
use super::profile::random_fraction;
use super::state::unix_seconds;
use super::*;
use crate::config::ProfileName;
use crate::store::StoredSession;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
use crate::config::parse;
use crate::store::{FileStore, MemoryStore};

const POOL: &str = "us-east-1_Test1";
const ALICE_PASSWORD: &str = "Alice-Passw0rd!";
const TINA_PASSWORD: &str = "Tina-Passw0rd!";
const REFRESH: &str = "GetTokensFromRefreshToken";

const SEED: &str = r#"
[[pools]]
id = "us-east-1_Test1"
mfa = "optional"

[[pools.clients]]
id = "cli"
access_token_ttl = 20
id_token_ttl = 20
rotation = { enabled = true, grace_seconds = 0 }

[[pools.users]]
username = "alice"
password = "Alice-Passw0rd!"

[[pools.users]]
username = "tina"
password = "Tina-Passw0rd!"
mfa = "totp"
totp_secret = "JBSWY3DPEHPK3PXP"

[[pools.users]]
username = "newbie"
password = "Temp-Passw0rd!"
status = "FORCE_CHANGE_PASSWORD"

[[pools.clients]]
id = "short"
session_ttl = 60

[[pools.clients]]
id = "graced"
access_token_ttl = 20
id_token_ttl = 20
rotation = { enabled = true, grace_seconds = 30 }

[[pools]]
id = "us-east-1_Devices"
device_tracking = "always"

[[pools.clients]]
id = "devcli"
access_token_ttl = 20
id_token_ttl = 20

[[pools.users]]
username = "dora"
password = "Dora-Passw0rd!"

[[pools]]
id = "us-east-1_Strict"
mfa = "on"
mfa_setup = ["SOFTWARE_TOKEN_MFA"]

[[pools.clients]]
id = "strictcli"

[[pools.users]]
username = "sam"
password = "Sam-Passw0rd!"
"#;

/// A wall clock the test moves.
struct TestClock(Mutex<SystemTime>);

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *lock(&self.0)
    }
}

struct Harness {
    emulator: RunningEmulator,
    clock: Arc<TestClock>,
    config: Arc<Config>,
}

impl Harness {
    async fn start() -> Self {
        let seed = Seed::from_toml(SEED).expect("the seed parses");
        let emulator = Emulator::start(seed, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("the emulator starts");
        let text = format!(
            r#"
[daemon]
store = "memory"
[profiles.dev]
user_pool_id = "{POOL}"
client_id = "cli"
username = "alice"
endpoint = "{endpoint}"
[profiles.mfa]
user_pool_id = "{POOL}"
client_id = "cli"
username = "tina"
endpoint = "{endpoint}"
[profiles.auto]
user_pool_id = "{POOL}"
client_id = "cli"
username = "alice"
password = {{ env = "ALICE_PW" }}
endpoint = "{endpoint}"
[profiles.graced]
user_pool_id = "{POOL}"
client_id = "graced"
username = "alice"
endpoint = "{endpoint}"
[profiles.newbie]
user_pool_id = "{POOL}"
client_id = "cli"
username = "newbie"
endpoint = "{endpoint}"
[profiles.short]
user_pool_id = "{POOL}"
client_id = "short"
username = "tina"
endpoint = "{endpoint}"
[profiles.device]
user_pool_id = "us-east-1_Devices"
client_id = "devcli"
username = "dora"
endpoint = "{endpoint}"
[profiles.strict]
user_pool_id = "us-east-1_Strict"
client_id = "strictcli"
username = "sam"
endpoint = "{endpoint}"
"#,
            endpoint = emulator.endpoint()
        );
        let env = test_env();
        let config = parse(&text, Path::new("test.toml"), &env).expect("the config parses");
        Self {
            clock: Arc::new(TestClock(Mutex::new(SystemTime::now()))),
            emulator,
            config: Arc::new(config),
        }
    }

    fn broker(&self, store: Arc<dyn SecretStore>) -> Broker {
        self.broker_ticking_every(store, Duration::from_millis(50))
    }

    fn broker_ticking_every(&self, store: Arc<dyn SecretStore>, tick_interval: Duration) -> Broker {
        let options = BrokerOptions {
            env: Arc::new(test_env()),
            tick_interval,
            transient_base: Duration::from_millis(5),
            throttle_base: Duration::from_millis(5),
            ..BrokerOptions::new()
        };
        Broker::with_options(
            self.config.clone(),
            store,
            self.clock.clone(),
            Arc::new(OsEntropy),
            options,
        )
        .expect("the broker builds")
    }

    /// Moves both wall clocks.
    fn advance(&self, seconds: u64) {
        let mut now = lock(&self.clock.0);
        *now += Duration::from_secs(seconds);
        self.emulator
            .handle()
            .advance_clock(i64::try_from(seconds).expect("small"));
    }

    fn calls(&self, operation: &str) -> u64 {
        self.emulator.handle().calls(operation)
    }
}

fn test_env() -> BTreeMap<String, String> {
    [
        ("ALICE_PW".to_owned(), ALICE_PASSWORD.to_owned()),
        ("HOME".to_owned(), "/nonexistent".to_owned()),
    ]
    .into_iter()
    .collect()
}

async fn logged_in(harness: &Harness, store: Arc<dyn SecretStore>) -> Broker {
    let broker = harness.broker(store);
    broker.restore().await;
    let outcome = broker
        .login("dev", Some(Password::new(ALICE_PASSWORD)))
        .await
        .expect("alice logs in");
    assert!(
        matches!(outcome, LoginOutcome::Authenticated { .. }),
        "{outcome:?}"
    );
    broker
}

fn memory() -> Arc<dyn SecretStore> {
    Arc::new(MemoryStore::default())
}

fn token_text(token: &IssuedToken) -> String {
    token.expose_token().to_owned()
}

#[tokio::test]
async fn srp_login_then_token_from_the_cache() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    broker.restore().await;
    assert_eq!(broker.status("dev").unwrap().state, "logged_out");
    let error = broker
        .token("dev", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "login_required");

    let mut events = broker.subscribe();
    let outcome = broker
        .login("dev", Some(Password::new(ALICE_PASSWORD)))
        .await
        .unwrap();
    let LoginOutcome::Authenticated {
        profile, username, ..
    } = outcome
    else {
        panic!("expected tokens, got {outcome:?}");
    };
    assert_eq!(profile, "dev");
    assert!(username.is_some());
    let mut names = Vec::new();
    while let Ok(event) = events.try_recv() {
        names.push(event.name());
    }
    assert_eq!(
        names,
        ["login_started", "token_refreshed", "login_completed"]
    );

    let first = broker.token("dev", TokenKind::Access, None).await.unwrap();
    let again = broker.token("dev", TokenKind::Access, None).await.unwrap();
    let id = broker.token("dev", TokenKind::Id, None).await.unwrap();
    assert_eq!(token_text(&first), token_text(&again));
    assert_ne!(token_text(&first), token_text(&id));
    assert!(
        (19..=20).contains(&first.expires_in),
        "{}",
        first.expires_in
    );
    assert!(!first.degraded);
    assert_eq!(harness.calls(REFRESH), 0);
    let status = broker.status("dev").unwrap();
    assert_eq!(status.state, "fresh");
    assert_eq!(status.store, "memory");
    assert_eq!(status.auth_flow, "USER_SRP_AUTH");
    let shown = format!("{first:?} {status:?} {:?}", broker.profiles());
    assert!(
        !shown.contains(&token_text(&first)),
        "a token leaked into Debug"
    );
    let metrics = broker.metrics();
    assert!(
        metrics.contains("cogbroker_token_seconds_to_expiry{profile=\"dev\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cogbroker_logins_total{outcome=\"authenticated\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains(&token_text(&first)));
}

#[tokio::test]
async fn expiry_leads_to_one_refresh() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    let before = broker.token("dev", TokenKind::Access, None).await.unwrap();
    harness.advance(12); // 8 s left: below the 10 s floor of a 20 s token
    let after = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert_ne!(token_text(&before), token_text(&after));
    assert_eq!(harness.calls(REFRESH), 1);
    assert!(after.expires_in >= 19);
    assert!(
        broker
            .metrics()
            .contains("cogbroker_refreshes_total{outcome=\"ok\"} 1")
    );
    // Served from the cache again.
    broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert_eq!(harness.calls(REFRESH), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_callers_on_an_expired_token_make_one_upstream_call() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    harness.advance(25);
    harness
        .emulator
        .handle()
        .inject(Fault::latency(REFRESH, 200));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let broker = broker.clone();
        tasks.push(tokio::spawn(async move {
            broker.token("dev", TokenKind::Access, None).await
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for task in tasks {
        let token = task.await.unwrap().expect("every caller gets a token");
        tokens.insert(token_text(&token));
    }
    assert_eq!(tokens.len(), 1, "all callers got the same new token");
    assert_eq!(harness.calls(REFRESH), 1);
}

#[tokio::test]
async fn upstream_down_with_a_valid_token_serves_it_degraded() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    let cached = broker.token("dev", TokenKind::Access, None).await.unwrap();
    harness.advance(12);
    harness
        .emulator
        .handle()
        .inject(Fault::drop_connection(REFRESH).times(100));
    let served = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert_eq!(token_text(&served), token_text(&cached));
    assert!(served.degraded);
    assert_eq!(harness.calls(REFRESH), 3, "three blocking attempts");
    let status = broker.status("dev").unwrap();
    assert_eq!(status.state, "degraded");
    assert_eq!(status.last_error.as_deref(), Some("transient"));
    // While backing off, callers are answered from the cache without upstream calls.
    let again = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert!(again.degraded);
    assert_eq!(harness.calls(REFRESH), 3);

    // After expiry, with the upstream still down: 503 within the deadline.
    harness.advance(20);
    let started = tokio::time::Instant::now();
    let error = broker
        .token("dev", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(error.code(), "upstream_unavailable");
    assert!(error.retry_after().is_some());

    // Recovery: the next attempt after the backoff succeeds.
    harness.emulator.handle().clear_faults();
    harness.advance(400);
    let fresh = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert!(!fresh.degraded);
    assert_eq!(broker.status("dev").unwrap().state, "fresh");
}

#[tokio::test]
async fn html_errors_count_as_transient() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    harness.advance(25);
    harness
        .emulator
        .handle()
        .inject(Fault::html_error(REFRESH, 502).times(100));
    let error = broker
        .token("dev", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "upstream_unavailable");
    assert_eq!(broker.status("dev").unwrap().state, "degraded");
}

#[tokio::test]
async fn a_revoked_refresh_token_needs_a_login_after_exactly_one_call() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    let initiate = harness.calls("InitiateAuth");
    harness.advance(25);
    harness.emulator.handle().inject(
        Fault::error(
            REFRESH,
            "NotAuthorizedException",
            "Refresh Token has been revoked",
        )
        .times(100),
    );
    let error = broker
        .token("dev", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "login_required");
    assert!(error.to_string().contains("cogbroker login dev"), "{error}");
    assert_eq!(harness.calls(REFRESH), 1);
    // No further upstream calls: not from callers, not from the tick.
    let error = broker
        .token("dev", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "login_required");
    broker.tick();
    broker.drain().await;
    assert_eq!(harness.calls(REFRESH), 1);
    assert_eq!(harness.calls("InitiateAuth"), initiate);
    assert_eq!(broker.status("dev").unwrap().state, "login_required");
}

#[tokio::test]
async fn a_revoked_refresh_token_is_replaced_by_an_unattended_login() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    broker.restore().await;
    // No password given: it comes from the profile's password source.
    let outcome = broker.login("auto", None).await.unwrap();
    assert!(matches!(outcome, LoginOutcome::Authenticated { .. }));
    harness.advance(25);
    harness.emulator.handle().inject(
        Fault::error(
            REFRESH,
            "NotAuthorizedException",
            "Refresh Token has been revoked",
        )
        .times(1),
    );
    let token = broker.token("auto", TokenKind::Access, None).await.unwrap();
    assert!(token.expires_in >= 19);
    assert_eq!(broker.status("auto").unwrap().state, "fresh");
}

/// Callers who find a refresh in flight join it through the snapshot's ticket rather than the
/// profile's mailbox, and share its outcome: here a refused refresh token, replaced by an
/// unattended login, so every caller gets the new login's token after one refresh call and
/// one login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_find_a_refresh_in_flight_share_its_outcome() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    broker.restore().await;
    broker.login("auto", None).await.unwrap();
    let logins = harness.calls("InitiateAuth");
    harness.advance(25);
    let upstream = harness.emulator.handle();
    upstream.inject(Fault::latency(REFRESH, 200));
    upstream.inject(
        Fault::error(
            REFRESH,
            "NotAuthorizedException",
            "Refresh Token has been revoked",
        )
        .times(1),
    );
    let caller = |broker: &Broker| {
        let broker = broker.clone();
        tokio::spawn(async move { broker.token("auto", TokenKind::Access, None).await })
    };
    let first = caller(&broker);
    let handle = broker.handle("auto").unwrap();
    handle.published(|s| s.refreshing()).await;
    let joined: Vec<_> = (0..100).map(|_| caller(&broker)).collect();
    let mut tokens = std::collections::HashSet::new();
    for task in std::iter::once(first).chain(joined) {
        let token = task
            .await
            .unwrap()
            .expect("every caller gets the new login's token");
        assert!(token.expires_in >= 19);
        tokens.insert(token_text(&token));
    }
    assert_eq!(tokens.len(), 1, "one token for everybody");
    assert_eq!(harness.calls(REFRESH), 1);
    assert_eq!(
        harness.calls("InitiateAuth"),
        logins + 1,
        "one unattended login"
    );
    assert!(!handle.snapshot().refreshing());
}

/// `cogbroker serve` runs the jobs on a runtime of their own: a login, a herd's one refresh and
/// a logout with its revoke all work there, answered to callers on the serving runtime.
#[tokio::test]
async fn jobs_on_their_own_runtime_log_in_refresh_and_log_out() {
    let harness = Harness::start().await;
    let upstream = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("test-upstream")
        .enable_all()
        .build()
        .unwrap();
    let options = BrokerOptions {
        env: Arc::new(test_env()),
        upstream: Some(upstream.handle().clone()),
        ..BrokerOptions::new()
    };
    let broker = Broker::with_options(
        harness.config.clone(),
        memory(),
        harness.clock.clone(),
        Arc::new(OsEntropy),
        options,
    )
    .unwrap();
    broker.restore().await;
    let outcome = broker
        .login("dev", Some(Password::new(ALICE_PASSWORD)))
        .await
        .unwrap();
    assert!(matches!(outcome, LoginOutcome::Authenticated { .. }));
    let first = broker.token("dev", TokenKind::Access, None).await.unwrap();
    harness.advance(25);
    let herd: Vec<_> = (0..50)
        .map(|_| {
            let broker = broker.clone();
            tokio::spawn(async move { broker.token("dev", TokenKind::Access, None).await })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for task in herd {
        tokens.insert(token_text(&task.await.unwrap().unwrap()));
    }
    assert_eq!(tokens.len(), 1);
    assert!(!tokens.contains(&token_text(&first)), "a new token");
    assert_eq!(harness.calls(REFRESH), 1);
    broker.logout("dev", false).await.unwrap();
    assert_eq!(harness.calls("RevokeToken"), 1);
    broker.drain().await;
    upstream.shutdown_background();
}

/// A store that records saves and can hold a save until the test releases it.
struct GatedStore {
    inner: MemoryStore,
    /// The refresh tokens of the sessions saved (logins, refresh results).
    saved: Mutex<Vec<String>>,
    /// Saves of a session marked with a refresh under way.
    marks: std::sync::atomic::AtomicUsize,
    gate: Mutex<Option<(std_mpsc::Sender<()>, std_mpsc::Receiver<()>)>>,
    fail: std::sync::atomic::AtomicBool,
}

impl GatedStore {
    fn new() -> Self {
        Self {
            inner: MemoryStore::default(),
            saved: Mutex::new(Vec::new()),
            marks: std::sync::atomic::AtomicUsize::new(0),
            gate: Mutex::new(None),
            fail: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl SecretStore for GatedStore {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn load(&self, profile: &ProfileName) -> anyhow::Result<Option<StoredSession>> {
        self.inner.load(profile)
    }
    fn save(&self, profile: &ProfileName, session: &StoredSession) -> anyhow::Result<()> {
        if session.refresh_unconfirmed {
            // The mark written before a refresh that may rotate: counted apart, never held.
            self.marks.fetch_add(1, Ordering::SeqCst);
        } else if let Some((started, release)) = lock(&self.gate).take() {
            started.send(()).unwrap();
            release.recv().unwrap();
        }
        if self.fail.load(Ordering::SeqCst) {
            anyhow::bail!("the keyring is locked");
        }
        if !session.refresh_unconfirmed {
            lock(&self.saved).push(session.refresh_token.expose_secret().to_owned());
        }
        self.inner.save(profile, session)
    }
    fn erase(&self, profile: &ProfileName) -> anyhow::Result<()> {
        self.inner.erase(profile)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_persisted_before_the_new_tokens_are_published() {
    let harness = Harness::start().await;
    let store = Arc::new(GatedStore::new());
    let broker = logged_in(&harness, store.clone()).await;
    let old = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert_eq!(
        lock(&store.saved).len(),
        1,
        "the login persisted its session"
    );

    let (started_tx, started_rx) = std_mpsc::channel();
    let (release_tx, release_rx) = std_mpsc::channel();
    *lock(&store.gate) = Some((started_tx, release_rx));
    harness.advance(25);
    let waiter = {
        let broker = broker.clone();
        tokio::spawn(async move { broker.token("dev", TokenKind::Access, None).await })
    };
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    // The refresh reply has arrived and the save is under way: nothing new is published yet.
    assert_eq!(harness.calls(REFRESH), 1);
    let status = broker.status("dev").unwrap();
    assert_eq!(status.expires_at, Some(rfc3339(old.expires_at)));
    assert!(!waiter.is_finished());
    release_tx.send(()).unwrap();
    let new = waiter.await.unwrap().unwrap();
    assert_ne!(token_text(&new), token_text(&old));
    let saved = lock(&store.saved).clone();
    assert_eq!(saved.len(), 2);
    assert_ne!(saved[0], saved[1], "the rotated refresh token was saved");
    let held = broker.held_refresh_token("dev").await;
    assert_eq!(held.as_deref(), Some(saved[1].as_str()));
}

#[tokio::test]
async fn a_failed_persist_keeps_serving_and_retries_on_the_tick() {
    let harness = Harness::start().await;
    let store = Arc::new(GatedStore::new());
    let broker = logged_in(&harness, store.clone()).await;
    store.fail.store(true, Ordering::SeqCst);
    harness.advance(25);
    let token = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert!(token.expires_in >= 19);
    let status = broker.status("dev").unwrap();
    assert!(status.persistence_degraded);
    assert_eq!(status.state, "degraded");
    // The rotated token lives in memory: the next refresh uses it successfully.
    harness.advance(25);
    broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert_eq!(harness.calls(REFRESH), 2);
    store.fail.store(false, Ordering::SeqCst);
    broker.tick();
    // Asked after the tick, answered once the tick's persist retry is done.
    let held = broker.held_refresh_token("dev").await;
    broker.drain().await;
    let status = broker.status("dev").unwrap();
    assert!(!status.persistence_degraded, "{status:?}");
    let saved = lock(&store.saved).clone();
    assert_eq!(saved.last().map(String::as_str), held.as_deref());
}

#[tokio::test]
async fn a_restart_from_the_file_store_keeps_the_session() {
    let harness = Harness::start().await;
    let state = tempfile::tempdir().unwrap();
    let first = logged_in(&harness, Arc::new(FileStore::open(state.path()).unwrap())).await;
    first.drain().await;
    drop(first);
    let logins = harness.calls("InitiateAuth");

    let second = harness.broker(Arc::new(FileStore::open(state.path()).unwrap()));
    second.restore().await;
    assert_eq!(second.status("dev").unwrap().state, "stale");
    let token = second.token("dev", TokenKind::Access, None).await.unwrap();
    assert!(token.expires_in >= 19);
    assert_eq!(harness.calls(REFRESH), 1);
    assert_eq!(harness.calls("InitiateAuth"), logins, "no new login");
}

#[tokio::test]
async fn the_tick_refreshes_stale_profiles_in_the_background() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    let mut events = broker.subscribe();
    harness.advance(11);
    broker.tick();
    loop {
        match events.recv().await.unwrap() {
            BrokerEvent::TokenRefreshed { profile, .. } if profile == "dev" => break,
            _ => {}
        }
    }
    assert_eq!(harness.calls(REFRESH), 1);
    // Nothing to do on the next tick.
    broker.tick();
    broker.drain().await;
    assert_eq!(harness.calls(REFRESH), 1);
}

#[tokio::test]
async fn a_refresh_due_before_the_next_tick_starts_at_its_own_time() {
    let harness = Harness::start().await;
    let broker = harness.broker_ticking_every(memory(), Duration::from_secs(30));
    broker.restore().await;
    broker
        .login("dev", Some(Password::new(ALICE_PASSWORD)))
        .await
        .expect("alice logs in");
    let mut events = broker.subscribe();
    // The 20-second token turns stale within the next 30-second tick interval: the tick
    // schedules the refresh for then instead of starting it (or waiting for the next tick).
    tokio::time::pause();
    broker.tick();
    tokio::task::yield_now().await;
    assert_eq!(harness.calls(REFRESH), 0, "nothing starts before it is due");
    harness.advance(11);
    tokio::time::advance(Duration::from_secs(11)).await;
    tokio::time::resume();
    loop {
        match events.recv().await.unwrap() {
            BrokerEvent::TokenRefreshed { profile, .. } if profile == "dev" => break,
            _ => {}
        }
    }
    assert_eq!(harness.calls(REFRESH), 1);
    broker.drain().await;
}

#[tokio::test]
async fn draining_cancels_a_scheduled_refresh() {
    let harness = Harness::start().await;
    let broker = harness.broker_ticking_every(memory(), Duration::from_secs(30));
    broker.restore().await;
    broker
        .login("dev", Some(Password::new(ALICE_PASSWORD)))
        .await
        .expect("alice logs in");
    broker.tick();
    // drain() waits for tracked tasks: a scheduled refresh must give up, not hold shutdown
    // for the seconds until it is due.
    tokio::time::timeout(Duration::from_secs(5), broker.drain())
        .await
        .expect("drain does not wait for a scheduled refresh");
    assert_eq!(harness.calls(REFRESH), 0);
}

#[tokio::test]
async fn the_ticker_runs_until_shutdown() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    let mut events = broker.subscribe();
    harness.advance(15);
    let shutdown = CancellationToken::new();
    let ticker = broker.spawn_ticker(shutdown.clone());
    loop {
        if let BrokerEvent::TokenRefreshed { .. } = events.recv().await.unwrap() {
            break;
        }
    }
    shutdown.cancel();
    ticker.await.unwrap();
}

#[tokio::test]
async fn a_long_min_ttl_gets_one_refresh_then_the_freshest_token() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    let hour = Some(Duration::from_secs(3600));
    // Minted just now: no refresh for an impossible min_ttl.
    broker.token("dev", TokenKind::Access, hour).await.unwrap();
    assert_eq!(harness.calls(REFRESH), 0);
    harness.advance(6);
    let token = broker.token("dev", TokenKind::Access, hour).await.unwrap();
    assert_eq!(harness.calls(REFRESH), 1);
    assert!(token.expires_in >= 19);
    for _ in 0..5 {
        broker.token("dev", TokenKind::Access, hour).await.unwrap();
    }
    assert_eq!(harness.calls(REFRESH), 1, "no refresh storm");
}

#[tokio::test]
async fn mfa_challenge_wrong_code_then_right_code() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    broker.restore().await;
    let outcome = broker
        .login("mfa", Some(Password::new(TINA_PASSWORD)))
        .await
        .unwrap();
    let LoginOutcome::Challenge {
        login_id,
        challenge,
        message,
        fields,
        ..
    } = outcome
    else {
        panic!("expected a challenge, got {outcome:?}");
    };
    assert_eq!(challenge, "SOFTWARE_TOKEN_MFA");
    assert_eq!(
        message,
        "enter the 6-digit code from your authenticator app"
    );
    assert_eq!(fields, ["code"]);
    assert_eq!(login_id.len(), 64);
    assert_eq!(broker.status("mfa").unwrap().state, "logging_in");

    let second = broker
        .login("mfa", Some(Password::new(TINA_PASSWORD)))
        .await
        .unwrap_err();
    assert_eq!(second.code(), "login_in_progress");

    let missing = broker
        .answer(&login_id, AnswerInput::default())
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "bad_input");

    let right = harness.emulator.handle().totp_code(POOL, "tina").unwrap();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let error = broker
        .answer(
            &login_id,
            AnswerInput {
                code: Some(OneTimeCode::new(wrong)),
                ..AnswerInput::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "code_mismatch");

    let right = harness.emulator.handle().totp_code(POOL, "tina").unwrap();
    let outcome = broker
        .answer(
            &login_id,
            AnswerInput {
                code: Some(OneTimeCode::new(right)),
                ..AnswerInput::default()
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, LoginOutcome::Authenticated { .. }),
        "{outcome:?}"
    );
    assert_eq!(broker.status("mfa").unwrap().state, "fresh");
    let gone = broker
        .answer(&login_id, AnswerInput::default())
        .await
        .unwrap_err();
    assert_eq!(gone.code(), "unknown_login");
}

#[tokio::test]
async fn a_pending_login_can_be_cancelled_and_expires() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    let outcome = broker
        .login("mfa", Some(Password::new(TINA_PASSWORD)))
        .await
        .unwrap();
    let LoginOutcome::Challenge { login_id, .. } = outcome else {
        panic!("{outcome:?}")
    };
    broker.cancel_login(&login_id).await.unwrap();
    assert_eq!(
        broker.cancel_login(&login_id).await.unwrap_err().code(),
        "unknown_login"
    );
    assert_eq!(broker.status("mfa").unwrap().state, "logged_out");

    let outcome = broker
        .login("mfa", Some(Password::new(TINA_PASSWORD)))
        .await
        .unwrap();
    let LoginOutcome::Challenge { login_id, .. } = outcome else {
        panic!("{outcome:?}")
    };
    harness.advance(200); // past the 3-minute challenge window
    assert_eq!(broker.status("mfa").unwrap().state, "logged_out");
    let error = broker
        .answer(
            &login_id,
            AnswerInput {
                code: Some(OneTimeCode::new("123456")),
                ..AnswerInput::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "challenge_expired");
    // A new login is possible again.
    let outcome = broker
        .login("mfa", Some(Password::new(TINA_PASSWORD)))
        .await
        .unwrap();
    assert!(matches!(outcome, LoginOutcome::Challenge { .. }));
}

#[tokio::test]
async fn wrong_password_is_invalid_credentials() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    let error = broker
        .login("dev", Some(Password::new("Wrong-Passw0rd!")))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_credentials");
    assert!(!error.to_string().contains("Wrong-Passw0rd"));
    // The failed login does not block the next one.
    broker
        .login("dev", Some(Password::new(ALICE_PASSWORD)))
        .await
        .unwrap();
    let missing = harness
        .broker(memory())
        .login("dev", None)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "bad_input");
}

#[tokio::test]
async fn logout_revokes_and_erases() {
    let harness = Harness::start().await;
    let store = Arc::new(GatedStore::new());
    let broker = logged_in(&harness, store.clone()).await;
    let name: ProfileName = "dev".parse().unwrap();
    assert!(store.load(&name).unwrap().is_some());
    broker.logout("dev", false).await.unwrap();
    assert!(store.load(&name).unwrap().is_none());
    assert_eq!(harness.calls("RevokeToken"), 1);
    assert_eq!(broker.status("dev").unwrap().state, "logged_out");
    let error = broker
        .token("dev", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "login_required");
    // Logout with the upstream down still erases locally.
    broker
        .login("dev", Some(Password::new(ALICE_PASSWORD)))
        .await
        .unwrap();
    harness
        .emulator
        .handle()
        .inject(Fault::drop_connection("RevokeToken").times(10));
    broker.logout("dev", false).await.unwrap();
    assert!(store.load(&name).unwrap().is_none());
}

#[tokio::test]
async fn states_are_counted_as_the_statuses_show_them() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    let mut from_statuses = BTreeMap::new();
    for status in broker.profiles() {
        *from_statuses.entry(status.state).or_insert(0) += 1;
    }
    assert_eq!(broker.state_counts(), from_statuses);
    assert_eq!(broker.state_counts()["fresh"], 1, "{from_statuses:?}");
    assert_eq!(broker.state_counts().values().sum::<usize>(), 8);
}

#[tokio::test]
async fn unknown_profile() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    let error = broker
        .token("nope", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "unknown_profile");
    assert_eq!(broker.status("nope").unwrap_err().code(), "unknown_profile");
    assert_eq!(broker.profiles().len(), 8);
}

#[test]
fn error_codes() {
    let cases: Vec<(BrokerError, &str)> = vec![
        (BrokerError::UnknownProfile("x".into()), "unknown_profile"),
        (BrokerError::UnknownLogin, "unknown_login"),
        (BrokerError::LoginInProgress, "login_in_progress"),
        (
            BrokerError::LoginRequired {
                profile: "p".into(),
                reason: "r".into(),
            },
            "login_required",
        ),
        (
            BrokerError::UpstreamUnavailable {
                retry_after: Duration::from_secs(3),
                reason: "r".into(),
            },
            "upstream_unavailable",
        ),
        (BrokerError::CodeMismatch("m".into()), "code_mismatch"),
        (BrokerError::InvalidPassword("m".into()), "invalid_password"),
        (BrokerError::ChallengeExpired, "challenge_expired"),
        (
            BrokerError::BadInput {
                field: "code",
                message: "m".into(),
            },
            "bad_input",
        ),
        (
            BrokerError::NotAuthorized("m".into()),
            "invalid_credentials",
        ),
        (BrokerError::Unsupported("m".into()), "unsupported"),
        (BrokerError::Misconfigured("m".into()), "misconfigured"),
        (BrokerError::Internal(anyhow::anyhow!("m")), "internal"),
    ];
    // The HTTP status of each code is the server's business (server/errors.rs tests it).
    for (error, code) in cases {
        assert_eq!(error.code(), code, "{error}");
        let text = error.to_string();
        assert_eq!(text, text.trim_end_matches('.'), "no trailing period");
    }
}

#[test]
fn answers_are_built_per_challenge() {
    let totp = Challenge::SoftwareTokenMfa {
        friendly_device_name: None,
    };
    let answer = build_answer(
        &totp,
        AnswerInput {
            code: Some(OneTimeCode::new(" 123456 ")),
            ..AnswerInput::default()
        },
    )
    .unwrap();
    assert!(matches!(answer, ChallengeAnswer::Code(code) if code.expose_secret() == "123456"));
    let error = build_answer(
        &totp,
        AnswerInput {
            code: Some(OneTimeCode::new("12 34")),
            ..AnswerInput::default()
        },
    )
    .unwrap_err();
    assert_eq!(error.code(), "bad_input");

    let select = Challenge::SelectMfaType {
        options: vec![MfaType::Sms, MfaType::SoftwareToken],
    };
    let answer = build_answer(
        &select,
        AnswerInput {
            mfa_type: Some("SOFTWARE_TOKEN_MFA".into()),
            ..AnswerInput::default()
        },
    )
    .unwrap();
    assert!(matches!(
        answer,
        ChallengeAnswer::MfaType(MfaType::SoftwareToken)
    ));
    let error = build_answer(
        &select,
        AnswerInput {
            mfa_type: Some("PIGEON".into()),
            ..AnswerInput::default()
        },
    )
    .unwrap_err();
    assert!(matches!(
        error,
        BrokerError::BadInput {
            field: "mfa_type",
            ..
        }
    ));

    let new_password = Challenge::NewPasswordRequired {
        required_attributes: vec!["name".into()],
        user_attributes: BTreeMap::new(),
    };
    let error = build_answer(&new_password, AnswerInput::default()).unwrap_err();
    assert!(matches!(
        error,
        BrokerError::BadInput {
            field: "new_password",
            ..
        }
    ));
    let (name, _, fields, details) = describe_challenge(&new_password).unwrap();
    assert_eq!(name, "NEW_PASSWORD_REQUIRED");
    assert_eq!(fields, ["new_password", "attributes"]);
    let details = serde_json::to_value(&details).unwrap();
    assert_eq!(details["required_attributes"][0], "name");

    let (_, message, _, details) = describe_challenge(&Challenge::SmsMfa {
        destination: Some("+*******1234".into()),
    })
    .unwrap();
    assert_eq!(message, "enter the code sent by SMS to +*******1234");
    let details = serde_json::to_value(&details).unwrap();
    assert_eq!(details["destination"], "+*******1234");
}

#[tokio::test]
async fn new_password_required_with_a_policy_failure_stays_pending() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    let outcome = broker
        .login("newbie", Some(Password::new("Temp-Passw0rd!")))
        .await
        .unwrap();
    let LoginOutcome::Challenge {
        login_id,
        challenge,
        fields,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(challenge, "NEW_PASSWORD_REQUIRED");
    assert_eq!(fields[0], "new_password");
    let weak = AnswerInput {
        new_password: Some(Password::new("short")),
        ..AnswerInput::default()
    };
    let error = broker.answer(&login_id, weak).await.unwrap_err();
    assert_eq!(error.code(), "invalid_password");
    assert!(!error.to_string().contains("short"), "{error}");
    let strong = AnswerInput {
        new_password: Some(Password::new("Brand-New-Passw0rd!")),
        ..AnswerInput::default()
    };
    let outcome = broker.answer(&login_id, strong).await.unwrap();
    assert!(
        matches!(outcome, LoginOutcome::Authenticated { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        harness
            .emulator
            .handle()
            .user_status(POOL, "newbie")
            .as_deref(),
        Some("CONFIRMED")
    );
}

#[tokio::test]
async fn an_answer_after_the_server_session_expired_is_challenge_expired() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    let outcome = broker
        .login("short", Some(Password::new(TINA_PASSWORD)))
        .await
        .unwrap();
    let LoginOutcome::Challenge { login_id, .. } = outcome else {
        panic!("{outcome:?}")
    };
    // The client's session lasts 60 s upstream; locally the login waits up to 3 minutes.
    harness.advance(90);
    let code = harness.emulator.handle().totp_code(POOL, "tina").unwrap();
    let error = broker
        .answer(
            &login_id,
            AnswerInput {
                code: Some(OneTimeCode::new(code)),
                ..AnswerInput::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "challenge_expired");
    assert_eq!(
        broker
            .answer(&login_id, AnswerInput::default())
            .await
            .unwrap_err()
            .code(),
        "unknown_login"
    );
}

#[tokio::test]
async fn a_remembered_device_is_stored_and_used_for_refresh_and_the_next_login() {
    let harness = Harness::start().await;
    let state = tempfile::tempdir().unwrap();
    let broker = harness.broker(Arc::new(FileStore::open(state.path()).unwrap()));
    broker
        .login("device", Some(Password::new("Dora-Passw0rd!")))
        .await
        .unwrap();
    let status = broker.status("device").unwrap();
    assert!(status.device_remembered, "{status:?}");
    let devices = harness
        .emulator
        .handle()
        .devices("us-east-1_Devices", "dora");
    assert_eq!(devices.len(), 1);
    // The device's tokens refresh only with DEVICE_KEY: the broker sends it.
    harness.advance(25);
    broker
        .token("device", TokenKind::Access, None)
        .await
        .unwrap();
    assert_eq!(harness.calls(REFRESH), 1);
    // A later login (after a restart) reuses the stored device: no second device.
    broker.drain().await;
    let again = harness.broker(Arc::new(FileStore::open(state.path()).unwrap()));
    again.restore().await;
    again
        .login("device", Some(Password::new("Dora-Passw0rd!")))
        .await
        .unwrap();
    assert_eq!(
        harness
            .emulator
            .handle()
            .devices("us-east-1_Devices", "dora")
            .len(),
        1
    );
    assert!(again.status("device").unwrap().device_remembered);
    let stored = FileStore::open(state.path())
        .unwrap()
        .load(&"device".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored.device.unwrap().device_key, devices[0].device_key);
}

#[tokio::test]
async fn logout_can_forget_the_device() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    broker
        .login("device", Some(Password::new("Dora-Passw0rd!")))
        .await
        .unwrap();
    broker.logout("device", true).await.unwrap();
    assert_eq!(harness.calls("ForgetDevice"), 1);
    assert!(
        harness
            .emulator
            .handle()
            .devices("us-east-1_Devices", "dora")
            .is_empty()
    );
}

#[tokio::test]
async fn mfa_setup_shows_the_secret_and_takes_a_code() {
    let harness = Harness::start().await;
    let broker = harness.broker(memory());
    let outcome = broker
        .login("strict", Some(Password::new("Sam-Passw0rd!")))
        .await
        .unwrap();
    let LoginOutcome::Challenge {
        login_id,
        challenge,
        fields,
        details,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(challenge, "MFA_SETUP");
    assert_eq!(fields, ["code"]);
    let debug = format!("{details:?}");
    let details = serde_json::to_value(&details).unwrap();
    let secret = details["secret_code"]
        .as_str()
        .expect("the secret is shown")
        .to_owned();
    let uri = details["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&secret),
        "{uri}"
    );
    assert!(
        !debug.contains(&secret),
        "Debug shows the MFA secret: {debug}"
    );
    let now = unix_seconds(harness.emulator.handle().now());
    let code = cognito_emulator::totp(&secret, now).unwrap();
    let outcome = broker
        .answer(
            &login_id,
            AnswerInput {
                code: Some(OneTimeCode::new(code)),
                ..AnswerInput::default()
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, LoginOutcome::Authenticated { .. }),
        "{outcome:?}"
    );
}

#[test]
fn no_secret_is_ever_logged() {
    crate::test_child::run("broker::tests::no_secret_is_ever_logged_child");
}

/// Child half of `no_secret_is_ever_logged`.
#[tokio::test]
async fn no_secret_is_ever_logged_child() {
    let Some(dir) = crate::test_child::dir() else {
        return;
    };
    let capture = crate::test_child::capture_globally();

    let harness = Harness::start().await;
    let store = Arc::new(GatedStore::new());
    let broker = logged_in(&harness, store.clone()).await;
    let mut secrets = vec![ALICE_PASSWORD.to_owned()];
    let first = broker.token("dev", TokenKind::Access, None).await.unwrap();
    secrets.push(token_text(&first));
    secrets.push(token_text(
        &broker.token("dev", TokenKind::Id, None).await.unwrap(),
    ));
    harness.advance(25);
    let second = broker.token("dev", TokenKind::Access, None).await.unwrap();
    secrets.push(token_text(&second));
    harness.advance(25);
    harness
        .emulator
        .handle()
        .inject(Fault::drop_connection(REFRESH).times(100));
    let _ = broker.token("dev", TokenKind::Access, None).await;
    harness.emulator.handle().clear_faults();
    let error = broker
        .login("dev", Some(Password::new("Wrong-Passw0rd-x")))
        .await
        .unwrap_err();
    secrets.push("Wrong-Passw0rd-x".to_owned());
    let _ = format!("{error:?} {error}");
    let mfa = broker
        .login("mfa", Some(Password::new(TINA_PASSWORD)))
        .await
        .unwrap();
    secrets.push(TINA_PASSWORD.to_owned());
    if let LoginOutcome::Challenge { login_id, .. } = mfa {
        let code = harness.emulator.handle().totp_code(POOL, "tina").unwrap();
        broker
            .answer(
                &login_id,
                AnswerInput {
                    code: Some(OneTimeCode::new(code)),
                    ..AnswerInput::default()
                },
            )
            .await
            .unwrap();
        // The six-digit code itself is not checked: timestamps in the log have six-digit
        // fractions and would match by chance.
    }
    secrets.extend(lock(&store.saved).iter().cloned());
    broker.logout("dev", false).await.unwrap();

    let logged = capture.text();
    assert!(
        logged.contains("refresh failed"),
        "the capture works: {logged}"
    );
    for secret in &secrets {
        assert!(!logged.contains(secret.as_str()), "a secret was logged");
    }
    crate::test_child::done(&dir);
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_on_the_blocking_path() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    harness.advance(25);
    harness
        .emulator
        .handle()
        .inject(Fault::throttle(REFRESH).times(2));
    let token = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert!(token.expires_in >= 19);
    assert_eq!(
        harness.calls(REFRESH),
        3,
        "two throttled attempts, then success"
    );
    harness.advance(25);
    harness
        .emulator
        .handle()
        .inject(Fault::error(REFRESH, "InternalErrorException", "internal error").times(1));
    broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert_eq!(harness.calls(REFRESH), 5);
    assert_eq!(broker.status("dev").unwrap().state, "fresh");
}

#[tokio::test]
async fn a_wall_clock_jump_back_causes_no_refresh() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    *lock(&harness.clock.0) -= Duration::from_secs(7200);
    for _ in 0..10 {
        broker.token("dev", TokenKind::Access, None).await.unwrap();
    }
    broker.tick();
    broker.drain().await;
    assert_eq!(harness.calls(REFRESH), 0);
}

#[tokio::test]
async fn expiry_is_measured_on_the_local_clock_despite_server_skew() {
    let harness = Harness::start().await;
    // The server's clock runs 2 minutes ahead of ours (SRP timestamps still pass).
    harness.emulator.handle().set_clock_offset(120);
    let broker = logged_in(&harness, memory()).await;
    let token = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert!(
        token.expires_in >= 19,
        "not considered expired early: {}",
        token.expires_in
    );
    let skew = broker.status("dev").unwrap().clock_skew_seconds.unwrap();
    assert!((119..=121).contains(&skew), "{skew}");
    assert_eq!(harness.calls(REFRESH), 0);
}

/// An upstream that accepts connections and never answers.
async fn black_hole() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (format!("http://{address}"), accepted)
}

#[tokio::test(start_paused = true)]
async fn a_black_hole_upstream_gets_503_within_the_deadline() {
    let (endpoint, accepted) = black_hole().await;
    let text = format!(
        "[profiles.dev]\nuser_pool_id = \"{POOL}\"\nclient_id = \"cli\"\nusername = \"alice\"\nendpoint = \"{endpoint}\"\n"
    );
    let config = Arc::new(parse(&text, Path::new("t.toml"), &test_env()).unwrap());
    let store = Arc::new(MemoryStore::default());
    store
        .save(
            &"dev".parse().unwrap(),
            &StoredSession {
                refresh_token: cognito_auth::secret::RefreshToken::new("stored-refresh-token"),
                username: Some("alice".to_owned()),
                device: None,
                rotates: None,
                refresh_unconfirmed: false,
                identity: None,
            },
        )
        .unwrap();
    let broker = Broker::with_options(
        config,
        store,
        Arc::new(TestClock(Mutex::new(SystemTime::now()))),
        Arc::new(OsEntropy),
        BrokerOptions {
            env: Arc::new(test_env()),
            ..BrokerOptions::new()
        },
    )
    .unwrap();
    broker.restore().await;
    assert_eq!(broker.status("dev").unwrap().state, "stale");
    let started = tokio::time::Instant::now();
    let error = broker
        .token("dev", TokenKind::Access, None)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.code(), "upstream_unavailable");
    assert!(elapsed <= Duration::from_millis(10_100), "{elapsed:?}");
    assert!(
        elapsed >= Duration::from_secs(3),
        "the per-attempt timeout fired: {elapsed:?}"
    );
    assert!(accepted.load(Ordering::SeqCst) <= 3);
    assert_eq!(
        broker.status("dev").unwrap().last_error.as_deref(),
        Some("transient")
    );
}

// ----- Fault injection (security-reliability.md §2.6) beyond the emulator's fault kinds -----

/// An upstream that answers every request with the same raw HTTP bytes, then closes the
/// connection; counts the requests it saw.
async fn canned_upstream(reply: Vec<u8>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = requests.clone();
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let reply = reply.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                // Read the request head and its Content-Length body, then answer.
                let mut seen = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(read) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    seen.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..head_end]
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .and_then(|value| value.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if seen.len() >= head_end + 4 + length {
                        break;
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(&reply).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (format!("http://{address}"), requests)
}

/// A complete HTTP/1.1 reply with an `x-amz-json-1.1` body.
fn http_reply(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// An unsigned-looking JWT with these claims (the broker decodes claims without verifying).
fn jwt(claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        base64url(br#"{"alg":"RS256","kid":"k1"}"#),
        base64url(claims.to_string().as_bytes())
    )
}

/// A broker with one profile `dev` on `endpoint`, holding a stored refresh token (no access
/// token yet, as after a restart), with fast blocking retries.
async fn restored_broker(endpoint: &str, store: Arc<MemoryStore>) -> Broker {
    let text = format!(
        "[profiles.dev]\nuser_pool_id = \"{POOL}\"\nclient_id = \"cli\"\nusername = \"alice\"\nendpoint = \"{endpoint}\"\n"
    );
    let config = Arc::new(parse(&text, Path::new("t.toml"), &test_env()).unwrap());
    store
        .save(
            &"dev".parse().unwrap(),
            &StoredSession {
                refresh_token: cognito_auth::secret::RefreshToken::new("stored-refresh-token"),
                username: Some("alice".to_owned()),
                device: None,
                rotates: None,
                refresh_unconfirmed: false,
                identity: None,
            },
        )
        .unwrap();
    let broker = Broker::with_options(
        config,
        store,
        Arc::new(TestClock(Mutex::new(SystemTime::now()))),
        Arc::new(OsEntropy),
        BrokerOptions {
            env: Arc::new(test_env()),
            transient_base: Duration::from_millis(5),
            throttle_base: Duration::from_millis(5),
            ..BrokerOptions::new()
        },
    )
    .unwrap();
    broker.restore().await;
    broker
}

/// Fault 23: malformed 200 replies to a refresh are classified as upstream errors (503), never
/// a panic; nothing is cached, published or persisted, and the body is never echoed.
#[tokio::test]
async fn malformed_upstream_replies_are_upstream_errors_and_nothing_is_cached() {
    const MARKER: &str = "MARKER-4f1d";
    let now = unix_seconds(SystemTime::now());
    let bad_payload = format!("eyJhbGciOiJSUzI1NiJ9.{MARKER}!!not*base64.c2ln");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "invalid json",
            http_reply("200 OK", &format!("<html>{MARKER}</html>")),
        ),
        (
            "truncated json",
            http_reply(
                "200 OK",
                &format!("{{\"AuthenticationResult\":{{\"AccessToken\":\"{MARKER}"),
            ),
        ),
        (
            // The connection closes before the announced Content-Length arrived.
            "truncated body",
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 4000\r\n\r\n{{\"AuthenticationResult\":{{\"AccessToken\":\"{MARKER}"
            )
            .into_bytes(),
        ),
        (
            "jwt with bad base64",
            http_reply(
                "200 OK",
                &serde_json::json!({"AuthenticationResult": {
                    "AccessToken": bad_payload, "IdToken": bad_payload,
                    "ExpiresIn": 3600, "TokenType": "Bearer"}})
                .to_string(),
            ),
        ),
        (
            "result without tokens",
            http_reply(
                "200 OK",
                &serde_json::json!({"AuthenticationResult": {"ExpiresIn": 3600, "TokenType": MARKER}})
                    .to_string(),
            ),
        ),
    ];
    for (case, reply) in cases {
        let (endpoint, requests) = canned_upstream(reply).await;
        let store = Arc::new(MemoryStore::default());
        let broker = restored_broker(&endpoint, store.clone()).await;
        let mut events = broker.subscribe();
        let error = broker
            .token("dev", TokenKind::Access, None)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "upstream_unavailable", "{case}: {error}");
        let status = broker.status("dev").unwrap();
        assert_eq!(status.expires_in, None, "{case}: nothing published");
        assert!(status.last_refresh.is_none(), "{case}");
        // A garbled 200 or a cut-off body is a transient upstream fault: retried on the
        // blocking path (3 attempts), then backed off briefly, never for the 5-minute cap.
        assert_eq!(status.last_error.as_deref(), Some("transient"), "{case}");
        assert_eq!(requests.load(Ordering::SeqCst), 3, "{case}: three attempts");
        assert!(
            error.retry_after().unwrap() <= Duration::from_secs(2),
            "{case}: {error}"
        );
        let shown = format!(
            "{error} {error:?} {}",
            serde_json::to_string(&status).unwrap()
        );
        assert!(!shown.contains(MARKER), "{case}: the body leaked: {shown}");
        // The stored session is untouched and no token event was sent.
        let stored = store.load(&"dev".parse().unwrap()).unwrap().unwrap();
        assert_eq!(stored.refresh_token.expose_secret(), "stored-refresh-token");
        while let Ok(event) = events.try_recv() {
            assert_ne!(event.name(), "token_refreshed", "{case}");
        }
        broker.drain().await;
    }

    // A reply without ExpiresIn but with valid exp/iat is usable: expiry from the JWT.
    let access = jwt(
        &serde_json::json!({"sub": "s-1", "username": "alice", "client_id": "cli",
        "token_use": "access", "iat": now, "exp": now + 600}),
    );
    let id = jwt(
        &serde_json::json!({"sub": "s-1", "cognito:username": "alice", "aud": "cli",
        "token_use": "id", "iat": now, "exp": now + 600}),
    );
    let body = serde_json::json!({"AuthenticationResult": {
        "AccessToken": access, "IdToken": id, "TokenType": "Bearer"}});
    let (endpoint, _) = canned_upstream(http_reply("200 OK", &body.to_string())).await;
    let broker = restored_broker(&endpoint, Arc::new(MemoryStore::default())).await;
    let token = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert_eq!(token_text(&token), access);
    assert!(
        (590..=600).contains(&token.expires_in),
        "expiry from exp - iat: {}",
        token.expires_in
    );
}

/// Security test 29 through the broker: a server answering SRP with B = 0 or B = N aborts the
/// login without tokens or a panic.
#[tokio::test]
async fn srp_with_a_degenerate_server_value_aborts_the_login() {
    let n_hex = cognito_auth::srp::N_HEX;
    for srp_b in ["0", "00", n_hex] {
        let body = serde_json::json!({
            "ChallengeName": "PASSWORD_VERIFIER",
            "ChallengeParameters": {
                "SRP_B": srp_b, "SALT": "a1b2c3", "SECRET_BLOCK": "c2VjcmV0",
                "USER_ID_FOR_SRP": "alice", "USERNAME": "alice"
            }
        });
        let (endpoint, requests) = canned_upstream(http_reply("200 OK", &body.to_string())).await;
        let store = Arc::new(MemoryStore::default());
        let broker = restored_broker(&endpoint, store.clone()).await;
        store.erase(&"dev".parse().unwrap()).unwrap();
        let error = broker
            .login("dev", Some(Password::new(ALICE_PASSWORD)))
            .await
            .unwrap_err();
        // Classified as a broken upstream (not a wrong password): the user is not blamed.
        assert_eq!(error.code(), "misconfigured", "{error:?}");
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "no answer was sent to the challenge"
        );
        assert!(!format!("{error} {error:?}").contains(ALICE_PASSWORD));
        assert!(store.load(&"dev".parse().unwrap()).unwrap().is_none());
        // The restored session from before is still the only one; no access token exists.
        assert_eq!(broker.status("dev").unwrap().expires_in, None);
    }
}

/// Fault 14: the local clock 10 minutes fast or slow against Cognito's. Tokens are timed on the
/// local clock from `exp - iat`: neither expired early nor handed out past the server's expiry.
#[tokio::test]
async fn ten_minutes_of_clock_skew_either_way() {
    for offset in [-600_i64, 600] {
        let harness = Harness::start().await;
        let broker = logged_in(&harness, memory()).await;
        // Skew from now on (SRP timestamps are checked at login only).
        harness.emulator.handle().set_clock_offset(offset);
        harness.advance(12); // below the floor: the next request refreshes
        let token = broker.token("dev", TokenKind::Access, None).await.unwrap();
        assert_eq!(harness.calls(REFRESH), 1, "offset {offset}");
        assert!(
            (19..=20).contains(&token.expires_in),
            "offset {offset}: {}",
            token.expires_in
        );
        let skew = broker.status("dev").unwrap().clock_skew_seconds.unwrap();
        assert!(
            (offset - 2..=offset + 2).contains(&skew),
            "{offset}: {skew}"
        );
        // Cognito's own view: the handed-out token is valid for as long as we say.
        let claims = cognito_auth::tokens::decode_claims(&token_text(&token)).unwrap();
        let server_now = i64::try_from(unix_seconds(SystemTime::now())).unwrap() + offset + 12;
        assert!(
            claims.exp - server_now >= i64::try_from(token.expires_in).unwrap() - 2,
            "offset {offset}: server exp {} vs server now {server_now}, expires_in {}",
            claims.exp,
            token.expires_in
        );
        // 12 s later on both clocks: refreshed again, not handed out near the server's expiry.
        harness.advance(12);
        let again = broker.token("dev", TokenKind::Access, None).await.unwrap();
        assert_eq!(harness.calls(REFRESH), 2, "offset {offset}");
        assert_ne!(token_text(&again), token_text(&token));
    }
}

/// Faults 15 and 16: the wall clock jumps 2 hours ahead (a suspend: tokio's monotonic time does
/// not move here). The next request refreshes, blocking, instead of serving the expired token;
/// and the tick alone also catches it.
#[tokio::test]
async fn a_wall_clock_jump_ahead_refreshes_before_serving() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    let before = broker.token("dev", TokenKind::Access, None).await.unwrap();
    harness.advance(2 * 3600);
    let after = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert_ne!(token_text(&before), token_text(&after));
    assert_eq!(harness.calls(REFRESH), 1);
    assert!(
        (19..=20).contains(&after.expires_in),
        "{}",
        after.expires_in
    );
    assert!(!after.degraded);

    // Resume with no request: one tick refreshes in the background; the next request is a hit.
    harness.advance(3 * 3600);
    assert_eq!(broker.status("dev").unwrap().expires_in, Some(0));
    broker.tick();
    broker.tick();
    broker.drain().await;
    assert_eq!(harness.calls(REFRESH), 2, "one background refresh");
    let hit = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert_eq!(harness.calls(REFRESH), 2, "served from the cache");
    assert!((19..=20).contains(&hit.expires_in), "{}", hit.expires_in);
}

/// Deterministic entropy (splitmix64) for reproducible jitter draws.
struct SeededEntropy(Mutex<u64>);

impl Entropy for SeededEntropy {
    fn fill(&self, dest: &mut [u8]) {
        let mut state = lock(&self.0);
        for chunk in dest.chunks_mut(8) {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Fault 3 at scale: 1000 profiles whose 60-minute tokens expire at the same instant become due
/// for a background refresh spread over [T-15 min, T-14 min], with no second holding more than a
/// few percent of them. (The pure policy with the per-profile jitter the broker draws; the
/// ticker then starts each due refresh on its next tick.)
#[test]
fn the_tick_starts_each_refresh_at_its_own_due_time() {
    // 1000 profiles with identical expiry and a 30 s tick at an arbitrary phase. Starting at
    // the first tick after the due time would bunch them into two or three bursts; starting
    // at tick time + tick_start's delay keeps the jitter's spread.
    let entropy = SeededEntropy(Mutex::new(11));
    let received_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let token = policy::TokenTimes {
        received_at,
        expires_at: received_at + Duration::from_secs(3600),
    };
    let tick = Duration::from_secs(30);
    let ticks = || (0..=120u64).map(|n| 7 + n * 30);
    let mut starts = BTreeMap::<u64, usize>::new();
    let mut at_ticks = BTreeMap::<u64, usize>::new();
    for _ in 0..1000 {
        let tuning = Tuning {
            jitter: random_fraction(&entropy),
            refresh_before: None,
        };
        let at = |second: u64| received_at + Duration::from_secs(second);
        let (tick_second, delay) = ticks()
            .find_map(|second| {
                policy::tick_start(
                    at(second),
                    Some(token),
                    &tuning,
                    &Backoff::default(),
                    true,
                    tick,
                )
                .map(|delay| (second, delay))
            })
            .expect("due before expiry");
        assert!(delay <= tick);
        *starts.entry(tick_second + delay.as_secs()).or_default() += 1;
        let first_due_tick = ticks()
            .find(|&second| {
                policy::on_tick(at(second), Some(token), &tuning, &Backoff::default(), true)
            })
            .expect("due before expiry");
        *at_ticks.entry(first_due_tick).or_default() += 1;
    }
    let peak = starts.values().copied().max().unwrap();
    assert!(starts.len() >= 55, "spread over the minute: {starts:?}");
    assert!(peak <= 35, "peak {peak} per second: {starts:?}");
    // What starting only at ticks would have done.
    assert!(at_ticks.len() <= 3, "{at_ticks:?}");
    assert!(
        at_ticks.values().copied().max().unwrap() >= 300,
        "{at_ticks:?}"
    );
}

#[test]
fn a_thousand_identical_expiries_spread_over_the_jitter_window() {
    let entropy = SeededEntropy(Mutex::new(7));
    let received_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let expires_at = received_at + Duration::from_secs(3600);
    let token = policy::TokenTimes {
        received_at,
        expires_at,
    };
    let mut per_second = BTreeMap::<u64, usize>::new();
    for _ in 0..1000 {
        let tuning = Tuning {
            jitter: random_fraction(&entropy),
            refresh_before: None,
        };
        // The first whole second at which the tick would start a background refresh.
        let due = (0..=3600u64)
            .find(|&second| {
                policy::on_tick(
                    received_at + Duration::from_secs(second),
                    Some(token),
                    &tuning,
                    &Backoff::default(),
                    true,
                )
            })
            .expect("due before expiry");
        let before_expiry = 3600 - due;
        assert!(
            (14 * 60..=15 * 60).contains(&before_expiry),
            "due {before_expiry} s before expiry"
        );
        *per_second.entry(due).or_default() += 1;
    }
    let peak = per_second.values().copied().max().unwrap();
    assert!(
        per_second.len() >= 55,
        "spread over the minute: {per_second:?}"
    );
    assert!(peak <= 35, "peak {peak} per second: {per_second:?}");
    // Each 10-second slice holds roughly a sixth.
    for slice in 0..6u64 {
        let start = 2700 + slice * 10;
        let count: usize = per_second.range(start..start + 10).map(|(_, n)| n).sum();
        assert!((110..=230).contains(&count), "slice {slice}: {count}");
    }
}

/// A small tmpfs mounted for one test (root only); unmounted on drop.
struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    /// `None` (with the reason) where mounting is not possible: not root, or no CAP_SYS_ADMIN.
    fn mount(size: &str) -> Result<Self, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not root".to_owned());
        }
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let output = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Fault 25: the disk is full when a rotated refresh token must be saved. The previous session
/// file stays intact and readable, tokens are still served, the failure shows as
/// `persistence_degraded`, and the save succeeds on a tick once there is room again.
#[tokio::test]
#[allow(
    clippy::print_stderr,
    reason = "say that the full disk was not exercised, and why"
)]
async fn a_full_disk_keeps_the_previous_file_and_serves_tokens() {
    let fs = match SmallTmpfs::mount("256k") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: a full disk needs a small tmpfs mounted as root ({why})");
            return;
        }
    };
    let harness = Harness::start().await;
    let state = fs.path().join("state");
    let store = Arc::new(FileStore::open(&state).unwrap());
    let dir = store.dir().to_path_buf();
    let broker = logged_in(&harness, store.clone()).await;
    let dev: ProfileName = "dev".parse().unwrap();
    let before = store.load(&dev).unwrap().unwrap().refresh_token;

    // Fill the file system.
    let filler = fs.path().join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        let full = loop {
            if let Err(error) = file.write_all(&block) {
                break error;
            }
        };
        assert_eq!(
            full.raw_os_error(),
            Some(rustix::io::Errno::NOSPC.raw_os_error())
        );
    }

    harness.advance(25); // expired: the next request refreshes (rotation on)
    let token = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert!(token.expires_in >= 19);
    assert_eq!(harness.calls(REFRESH), 1);
    let status = broker.status("dev").unwrap();
    assert!(status.persistence_degraded, "{status:?}");
    assert_eq!(status.last_error.as_deref(), Some("store"));
    // The previous file is complete; no temp file was left behind.
    let on_disk = store.load(&dev).unwrap().unwrap().refresh_token;
    assert_eq!(on_disk.expose_secret(), before.expose_secret());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Room again: the tick's persist retry writes the rotated token.
    std::fs::remove_file(&filler).unwrap();
    broker.tick();
    // Asked after the tick, answered once the tick's persist retry is done.
    let held = broker.held_refresh_token("dev").await;
    broker.drain().await;
    let status = broker.status("dev").unwrap();
    assert!(!status.persistence_degraded, "{status:?}");
    let saved = store.load(&dev).unwrap().unwrap().refresh_token;
    assert_ne!(saved.expose_secret(), before.expose_secret());
    assert_eq!(held.as_deref(), Some(saved.expose_secret()));
}

/// A TLS server on 127.0.0.1 with a fresh self-signed certificate (valid for the address, but
/// issued by nobody the client trusts). Reports how each handshake ended.
fn untrusted_tls_upstream() -> (String, std_mpsc::Receiver<String>) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, receiver) = std_mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let outcome = loop {
                if !connection.is_handshaking() {
                    break "handshake completed".to_owned();
                }
                if let Err(error) = connection.complete_io(&mut stream) {
                    break error.to_string();
                }
            };
            if sender.send(outcome).is_err() {
                return;
            }
        }
    });
    (format!("https://{address}"), receiver)
}

/// Security test 30: an endpoint override on https with a certificate nobody trusts fails the
/// TLS handshake (there is no "insecure" mode): no request, so no password proof or refresh
/// token, ever reaches it; the caller gets a 503, not a login.
#[tokio::test]
async fn an_untrusted_tls_certificate_fails_the_connection() {
    let (endpoint, handshakes) = untrusted_tls_upstream();
    let store = Arc::new(MemoryStore::default());
    let broker = restored_broker(&endpoint, store).await;
    let error = broker
        .login("dev", Some(Password::new(ALICE_PASSWORD)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "upstream_unavailable", "{error}");
    let server_side = handshakes
        .recv_timeout(Duration::from_secs(30))
        .expect("the client connected");
    assert!(
        server_side.contains("alert") && server_side.contains("UnknownCA"),
        "the client refused the certificate: {server_side}"
    );
    // The refresh path refuses it too.
    let error = broker
        .token("dev", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "upstream_unavailable", "{error}");
    assert_ne!(
        handshakes.recv_timeout(Duration::from_secs(30)).unwrap(),
        "handshake completed"
    );
    assert_eq!(broker.status("dev").unwrap().expires_in, None);
}

/// Fault 2: a herd on an expired token while the upstream fails. All callers share one refresh
/// (one upstream call per attempt, three attempts, not 100 × 3), all get the same answer, and
/// the next caller is answered from the backoff without a call. With one failure and then
/// success, everybody gets the same new token after two calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_on_a_failing_refresh_shares_one_attempt_and_its_outcome() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    let herd = |broker: &Broker| {
        (0..100)
            .map(|_| {
                let broker = broker.clone();
                tokio::spawn(async move { broker.token("dev", TokenKind::Access, None).await })
            })
            .collect::<Vec<_>>()
    };

    // Always failing.
    harness.advance(25);
    let handle = harness.emulator.handle();
    handle.inject(Fault::latency(REFRESH, 200));
    handle.inject(Fault::error(REFRESH, "InternalErrorException", "boom").times(1000));
    let mut answers = std::collections::HashSet::new();
    for task in herd(&broker) {
        let error = task.await.unwrap().expect_err("no valid token is left");
        answers.insert(error.code());
    }
    assert_eq!(
        answers.into_iter().collect::<Vec<_>>(),
        ["upstream_unavailable"]
    );
    assert_eq!(harness.calls(REFRESH), 3, "one shared blocking refresh");
    let error = broker
        .token("dev", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "upstream_unavailable");
    assert_eq!(harness.calls(REFRESH), 3, "backing off: no new call");

    // Once more after the backoff: one failure, then success.
    handle.clear_faults();
    harness.advance(400);
    handle.inject(Fault::latency(REFRESH, 200));
    handle.inject(Fault::error(REFRESH, "InternalErrorException", "boom"));
    let mut tokens = std::collections::HashSet::new();
    for task in herd(&broker) {
        tokens.insert(token_text(&task.await.unwrap().expect("a token")));
    }
    assert_eq!(tokens.len(), 1, "everybody got the same new token");
    assert_eq!(harness.calls(REFRESH), 5, "a failed attempt and a retry");
}

/// A store whose reads fail until it is unlocked (a locked keyring, no D-Bus yet).
struct LockedStore {
    inner: MemoryStore,
    locked: std::sync::atomic::AtomicBool,
}

impl SecretStore for LockedStore {
    fn kind(&self) -> &'static str {
        "keyring"
    }
    fn load(&self, profile: &ProfileName) -> anyhow::Result<Option<StoredSession>> {
        if self.locked.load(Ordering::SeqCst) {
            anyhow::bail!("the keyring is locked");
        }
        self.inner.load(profile)
    }
    fn save(&self, profile: &ProfileName, session: &StoredSession) -> anyhow::Result<()> {
        self.inner.save(profile, session)
    }
    fn erase(&self, profile: &ProfileName) -> anyhow::Result<()> {
        self.inner.erase(profile)
    }
}

/// Fault 13: the store cannot be read at start. The broker still starts; the profile reports
/// the store failure and asks for nothing it cannot give; once the store is readable a tick
/// loads the session without a restart or a new login.
#[tokio::test]
async fn a_store_locked_at_start_is_read_again_on_the_tick() {
    let harness = Harness::start().await;
    let store = Arc::new(LockedStore {
        inner: MemoryStore::default(),
        locked: std::sync::atomic::AtomicBool::new(false),
    });
    logged_in(&harness, store.clone()).await.drain().await;
    let logins = harness.calls("InitiateAuth");

    store.locked.store(true, Ordering::SeqCst);
    let broker = harness.broker(store.clone());
    broker.restore().await;
    let status = broker.status("dev").unwrap();
    assert_eq!(status.last_error.as_deref(), Some("store"), "{status:?}");
    let error = broker
        .token("dev", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "login_required", "{error}");

    store.locked.store(false, Ordering::SeqCst);
    broker.tick();
    // Asked after the tick, answered once the tick's store read is done.
    broker.held_refresh_token("dev").await;
    let status = broker.status("dev").unwrap();
    assert_eq!(status.state, "stale", "{status:?}");
    assert_eq!(status.last_error, None);
    let token = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert!(token.expires_in >= 19);
    assert_eq!(harness.calls(REFRESH), 1);
    assert_eq!(harness.calls("InitiateAuth"), logins, "no new login");
}

/// Fault 6, the other throttle: `LimitExceededException` is retried like `TooManyRequests`
/// (three attempts on the blocking path), not treated as a reason to log in again.
#[tokio::test]
async fn limit_exceeded_is_retried_like_throttling() {
    let harness = Harness::start().await;
    let broker = logged_in(&harness, memory()).await;
    harness.advance(25);
    harness
        .emulator
        .handle()
        .inject(Fault::error(REFRESH, "LimitExceededException", "Attempt limit exceeded").times(2));
    let token = broker.token("dev", TokenKind::Access, None).await.unwrap();
    assert!(token.expires_in >= 19);
    assert_eq!(
        harness.calls(REFRESH),
        3,
        "two limited attempts, then success"
    );
    assert_eq!(broker.status("dev").unwrap().state, "fresh");
}

mod aws;
mod browser;
mod client_credentials;
mod restart;
