//! AWS credentials from an identity pool, the broker against the emulator with the injected
//! clock moved together with the emulator's: both flows, caching and refresh before
//! `Expiration` (blocking and from the tick), GetId once across refreshes and a restart,
//! throttling retried, NotAuthorized and a revoked session as login_required, the ID token
//! renewed first when close to expiry, grants, and no secret in logs or Debug.

use super::*;

const AWS_POOL: &str = "us-east-1_Aws1";
const IDENTITY_POOL: &str = "us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f";
const BASIC_POOL: &str = "us-east-1:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const ROLE: &str = "arn:aws:iam::123456789012:role/CognitoAuth";
const GET_ID: &str = "GetId";
const CREDENTIALS: &str = "GetCredentialsForIdentity";
/// The AWS credentials last a minute: stale window 24–30 s, floor ≤ 30 s.
const CREDENTIALS_TTL: u64 = 60;

fn seed() -> String {
    format!(
        r#"
[[pools]]
id = "{AWS_POOL}"

[[pools.clients]]
id = "awscli"
access_token_ttl = 600
id_token_ttl = 600

[[pools.users]]
username = "alice"
password = "{ALICE_PASSWORD}"

[[identity_pools]]
id = "{IDENTITY_POOL}"
user_pool = "{AWS_POOL}"
client_id = "awscli"
credentials_ttl = {CREDENTIALS_TTL}
roles = {{ authenticated = "{ROLE}" }}

[[identity_pools]]
id = "{BASIC_POOL}"
user_pool = "{AWS_POOL}"
client_id = "awscli"
roles = {{ authenticated = "{ROLE}" }}
allow_basic_flow = true
"#
    )
}

struct AwsHarness {
    emulator: RunningEmulator,
    clock: Arc<TestClock>,
    config: Arc<Config>,
}

impl AwsHarness {
    async fn start() -> Self {
        let seed = Seed::from_toml(&seed()).expect("the seed parses");
        let emulator = Emulator::start(seed, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("the emulator starts");
        let text = format!(
            r#"
[daemon]
store = "memory"
[profiles.aws]
user_pool_id = "{AWS_POOL}"
client_id = "awscli"
username = "alice"
endpoint = "{endpoint}"
identity_pool_id = "{IDENTITY_POOL}"
[profiles.basic]
user_pool_id = "{AWS_POOL}"
client_id = "awscli"
username = "alice"
endpoint = "{endpoint}"
identity_pool_id = "{BASIC_POOL}"
identity_flow = "basic"
role_arn = "{ROLE}"
[profiles.plain]
user_pool_id = "{AWS_POOL}"
client_id = "awscli"
username = "alice"
endpoint = "{endpoint}"
"#,
            endpoint = emulator.endpoint()
        );
        let config = parse(&text, Path::new("aws.toml"), &test_env()).expect("the config parses");
        Self {
            clock: Arc::new(TestClock(Mutex::new(SystemTime::now()))),
            emulator,
            config: Arc::new(config),
        }
    }

    fn broker(&self, store: Arc<dyn SecretStore>) -> Broker {
        let options = BrokerOptions {
            env: Arc::new(test_env()),
            tick_interval: Duration::from_secs(3600),
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

    async fn logged_in(&self, store: Arc<dyn SecretStore>, profile: &str) -> Broker {
        let broker = self.broker(store);
        broker.restore().await;
        let outcome = broker
            .login(profile, Some(Password::new(ALICE_PASSWORD)))
            .await
            .expect("alice logs in");
        assert!(matches!(outcome, LoginOutcome::Authenticated { .. }));
        broker
    }

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

fn key_of(issued: &crate::broker::aws::IssuedAws) -> String {
    issued.access_key_id.expose_secret().to_owned()
}

/// Waits for the next event named `name` (bounded: a missing event fails the test).
async fn next_event(events: &mut broadcast::Receiver<BrokerEvent>, name: &str) -> BrokerEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(event) if event.name() == name => return event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("events closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {name} event"))
}

#[tokio::test]
async fn enhanced_flow_caches_then_refreshes_before_expiration_with_one_get_id() {
    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "aws").await;
    let mut events = broker.subscribe();

    let first = broker.aws_credentials("aws", None).await.unwrap();
    assert!(
        (CREDENTIALS_TTL - 1..=CREDENTIALS_TTL).contains(&first.expires_in),
        "{}",
        first.expires_in
    );
    assert!(!first.degraded);
    assert!(!first.secret_access_key.expose_secret().is_empty());
    assert!(!first.session_token.expose_secret().is_empty());
    next_event(&mut events, "aws_credentials_refreshed").await;
    let again = broker.aws_credentials("aws", None).await.unwrap();
    assert_eq!(key_of(&first), key_of(&again), "a cache hit");
    assert_eq!((harness.calls(GET_ID), harness.calls(CREDENTIALS)), (1, 1));

    // Below the floor: the caller waits for one fetch, GetId is not asked again.
    harness.advance(45);
    let second = broker.aws_credentials("aws", None).await.unwrap();
    assert_ne!(key_of(&first), key_of(&second));
    assert_eq!((harness.calls(GET_ID), harness.calls(CREDENTIALS)), (1, 2));

    // Inside the stale window (30 s left of 60) the tick fetches in the background.
    harness.advance(31);
    let mut events = broker.subscribe();
    broker.tick();
    next_event(&mut events, "aws_credentials_refreshed").await;
    assert_eq!((harness.calls(GET_ID), harness.calls(CREDENTIALS)), (1, 3));
    let third = broker.aws_credentials("aws", None).await.unwrap();
    assert_ne!(key_of(&second), key_of(&third));
    assert!(third.expires_in >= CREDENTIALS_TTL - 1);

    // The credentials the daemon holds are accepted by the emulator's STS (checked in the
    // e2e tests with real clients); here: the identity id is in the stored session.
    let stored = broker
        .inner
        .shared
        .store
        .load(&"aws".parse().unwrap())
        .unwrap()
        .unwrap();
    let identity = stored.identity.expect("the identity id is stored");
    assert_eq!(identity.pool_id, IDENTITY_POOL);
    assert_eq!(
        Some(identity.identity_id),
        harness
            .emulator
            .handle()
            .identity_id(IDENTITY_POOL, "alice")
    );
}

#[tokio::test]
async fn basic_flow_goes_through_sts() {
    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "basic").await;
    let issued = broker.aws_credentials("basic", None).await.unwrap();
    assert!(issued.expires_in > 3000, "{}", issued.expires_in);
    assert_eq!(harness.calls("GetOpenIdToken"), 1);
    assert_eq!(harness.calls("AssumeRoleWithWebIdentity"), 1);
    assert_eq!(harness.calls(CREDENTIALS), 0);
    assert_eq!(harness.calls(GET_ID), 1);

    // Hour-long credentials are handed out with 15 minutes left at least (botocore's window).
    harness.advance(3600 - 15 * 60 - 60);
    let same = broker.aws_credentials("basic", None).await.unwrap();
    assert_eq!(key_of(&same), key_of(&issued));
    harness.advance(120);
    let fresh = broker.aws_credentials("basic", None).await.unwrap();
    assert_ne!(key_of(&fresh), key_of(&issued));
    assert!(fresh.expires_in > 3000);
    assert_eq!(harness.calls("AssumeRoleWithWebIdentity"), 2);
    assert_eq!(harness.calls(GET_ID), 1);
}

#[tokio::test]
async fn get_id_is_asked_once_across_a_restart() {
    let harness = AwsHarness::start().await;
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::default());
    let broker = harness.logged_in(store.clone(), "aws").await;
    broker.aws_credentials("aws", None).await.unwrap();
    broker.drain().await;
    drop(broker);

    let restarted = harness.broker(store.clone());
    restarted.restore().await;
    let issued = restarted.aws_credentials("aws", None).await.unwrap();
    assert!(issued.expires_in > 0);
    assert_eq!((harness.calls(GET_ID), harness.calls(CREDENTIALS)), (1, 2));

    // A new login of the same user keeps the identity too.
    restarted
        .login("aws", Some(Password::new(ALICE_PASSWORD)))
        .await
        .unwrap();
    restarted.aws_credentials("aws", None).await.unwrap();
    assert_eq!((harness.calls(GET_ID), harness.calls(CREDENTIALS)), (1, 3));
}

#[tokio::test]
async fn throttling_is_retried_within_one_caller_request() {
    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "aws").await;
    harness
        .emulator
        .handle()
        .inject(Fault::throttle(CREDENTIALS).times(2));
    let mut events = broker.subscribe();
    let issued = broker.aws_credentials("aws", None).await.unwrap();
    assert!(!issued.degraded);
    let stats = harness.emulator.handle().stats();
    assert_eq!(stats.count(CREDENTIALS, "TooManyRequestsException"), 2);
    assert_eq!(stats.count(CREDENTIALS, "ok"), 1);
    next_event(&mut events, "aws_credentials_refreshed").await;

    // Throttled past the attempts: 503 with Retry-After, and the backoff holds later callers.
    harness.advance(45);
    harness
        .emulator
        .handle()
        .inject(Fault::throttle(CREDENTIALS).times(100));
    let degraded = broker.aws_credentials("aws", None).await.unwrap();
    assert!(degraded.degraded, "still valid: served degraded");
    harness.advance(16);
    let error = broker.aws_credentials("aws", None).await.unwrap_err();
    assert_eq!(error.code(), "upstream_unavailable");
    assert!(error.retry_after().is_some());
    harness.emulator.handle().clear_faults();
}

#[tokio::test]
async fn not_authorized_by_the_identity_pool_needs_a_login() {
    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "aws").await;
    harness.emulator.handle().inject(Fault::error(
        CREDENTIALS,
        "NotAuthorizedException",
        "Token is not from a supported provider of this identity pool",
    ));
    let error = broker.aws_credentials("aws", None).await.unwrap_err();
    assert_eq!(error.code(), "login_required");
    assert!(error.to_string().contains("cogbroker login aws"), "{error}");
    assert!(error.to_string().contains("supported provider"), "{error}");
    // Not retried: the next caller hears the same without an upstream call.
    let calls = harness.calls(CREDENTIALS);
    let again = broker.aws_credentials("aws", None).await.unwrap_err();
    assert_eq!(again.code(), "login_required");
    assert_eq!(harness.calls(CREDENTIALS), calls);
    // The user-pool tokens are untouched; a new login clears the refusal.
    broker.token("aws", TokenKind::Access, None).await.unwrap();
    broker
        .login("aws", Some(Password::new(ALICE_PASSWORD)))
        .await
        .unwrap();
    broker.aws_credentials("aws", None).await.unwrap();
}

#[tokio::test]
async fn a_revoked_session_is_login_required_for_aws_too() {
    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "aws").await;
    broker.aws_credentials("aws", None).await.unwrap();
    assert!(harness.emulator.handle().global_sign_out(AWS_POOL, "alice"));
    // The credentials and the ID token run out; the refresh token is refused.
    harness.advance(700);
    let error = broker.aws_credentials("aws", None).await.unwrap_err();
    assert_eq!(error.code(), "login_required");
    assert_eq!(broker.status("aws").unwrap().state, "login_required");
}

#[tokio::test]
async fn an_id_token_close_to_expiry_is_renewed_first() {
    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "aws").await;
    broker.aws_credentials("aws", None).await.unwrap();
    assert_eq!(harness.calls(REFRESH), 0);
    // 600 s ID token: 250 s left is under its 300 s floor; the credentials expired too.
    harness.advance(350);
    broker.aws_credentials("aws", None).await.unwrap();
    assert_eq!(harness.calls(REFRESH), 1);
    assert_eq!(harness.calls(CREDENTIALS), 2);
    // A fresh ID token is not renewed again for the next fetch.
    harness.advance(45);
    broker.aws_credentials("aws", None).await.unwrap();
    assert_eq!(harness.calls(REFRESH), 1);
    assert_eq!(harness.calls(CREDENTIALS), 3);
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "aws").await;
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let broker = broker.clone();
            tokio::spawn(async move { broker.aws_credentials("aws", None).await })
        })
        .collect();
    let mut keys = std::collections::BTreeSet::new();
    for caller in callers {
        keys.insert(key_of(&caller.await.unwrap().unwrap()));
    }
    assert_eq!(keys.len(), 1);
    assert_eq!((harness.calls(GET_ID), harness.calls(CREDENTIALS)), (1, 1));
}

/// Callers who find a fetch in flight join it through the snapshot's ticket rather than the
/// profile's mailbox, and share its outcome: one new key for everybody, one upstream call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_find_a_fetch_in_flight_share_its_outcome() {
    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "aws").await;
    let before = key_of(&broker.aws_credentials("aws", None).await.unwrap());
    // The login's fetch publishes its credentials before it ends (it stores the identity id
    // next): let it end, or the callers below would join it and get what it brought.
    let handle = broker.handle("aws").unwrap();
    handle.published(|s| !s.aws.refreshing()).await;
    let fetches = harness.calls(CREDENTIALS);
    harness.advance(45);
    harness
        .emulator
        .handle()
        .inject(Fault::latency(CREDENTIALS, 200));
    let caller = |broker: &Broker| {
        let broker = broker.clone();
        tokio::spawn(async move { broker.aws_credentials("aws", None).await })
    };
    let first = caller(&broker);
    handle.published(|s| s.aws.refreshing()).await;
    let joined: Vec<_> = (0..50).map(|_| caller(&broker)).collect();
    let mut keys = std::collections::BTreeSet::new();
    for task in std::iter::once(first).chain(joined) {
        keys.insert(key_of(&task.await.unwrap().expect("new credentials")));
    }
    assert_eq!(keys.len(), 1, "one key for everybody");
    assert!(!keys.contains(&before), "a new key");
    assert_eq!(harness.calls(CREDENTIALS), fetches + 1);
    assert!(!handle.snapshot().aws.refreshing());
}

#[tokio::test]
async fn profiles_without_an_identity_pool_say_so() {
    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "plain").await;
    let error = broker.aws_credentials("plain", None).await.unwrap_err();
    assert_eq!(error.code(), "unsupported");
    assert!(error.to_string().contains("identity_pool_id"), "{error}");
    let error = broker.aws_grant("plain", None).await.unwrap_err();
    assert_eq!(error.code(), "unsupported");
    let error = broker.aws_credentials("aws", None).await.unwrap_err();
    assert_eq!(error.code(), "login_required", "never logged in");
}

#[tokio::test]
async fn grants_end_when_revoked_or_when_their_process_ends() {
    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "aws").await;
    let grant = broker.aws_grant("aws", None).await.unwrap();
    assert_eq!(
        (grant.id.len(), grant.token.expose_secret().len()),
        (32, 64)
    );
    let token = grant.token.expose_secret().as_bytes().to_vec();
    assert!(broker.aws_grant_matches("aws", &token));
    assert!(
        !broker.aws_grant_matches("basic", &token),
        "grants are per profile"
    );
    assert!(broker.aws_revoke("aws", &grant.id).await.unwrap());
    assert!(!broker.aws_grant_matches("aws", &token));
    assert!(!broker.aws_revoke("aws", &grant.id).await.unwrap());

    let mut child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let grant = broker.aws_grant("aws", Some(pid)).await.unwrap();
    let token = grant.token.expose_secret().as_bytes().to_vec();
    broker.tick();
    // Commands are answered in order: this one comes after the tick.
    let _ = broker.aws_revoke("aws", "00").await;
    assert!(broker.aws_grant_matches("aws", &token), "the process lives");
    child.kill().unwrap();
    child.wait().unwrap();
    broker.tick();
    let _ = broker.aws_revoke("aws", "00").await;
    assert!(
        !broker.aws_grant_matches("aws", &token),
        "the grant ended with its process"
    );
}

#[test]
fn no_aws_secret_is_logged_or_printed() {
    crate::test_child::run("broker::tests::aws::no_aws_secret_is_logged_or_printed_child");
}

/// Child half of `no_aws_secret_is_logged_or_printed`.
#[tokio::test]
async fn no_aws_secret_is_logged_or_printed_child() {
    let Some(dir) = crate::test_child::dir() else {
        return;
    };
    let capture = crate::test_child::capture_globally();

    let harness = AwsHarness::start().await;
    let broker = harness.logged_in(memory(), "aws").await;
    let mut secrets = Vec::new();
    let mut shown = String::new();
    for _ in 0..2 {
        let issued = broker.aws_credentials("aws", None).await.unwrap();
        secrets.push(issued.secret_access_key.expose_secret().to_owned());
        secrets.push(issued.session_token.expose_secret().to_owned());
        shown.push_str(&format!("{issued:?}"));
        harness.advance(45);
    }
    let basic = harness.logged_in(memory(), "basic").await;
    let issued = basic.aws_credentials("basic", None).await.unwrap();
    secrets.push(issued.secret_access_key.expose_secret().to_owned());
    secrets.push(issued.session_token.expose_secret().to_owned());
    let grant = broker.aws_grant("aws", None).await.unwrap();
    secrets.push(grant.token.expose_secret().to_owned());
    shown.push_str(&format!("{grant:?} {:?}", broker.status("aws")));
    harness
        .emulator
        .handle()
        .inject(Fault::error(CREDENTIALS, "NotAuthorizedException", "no").times(2));
    harness.advance(45);
    let error = broker.aws_credentials("aws", None).await.unwrap_err();
    shown.push_str(&format!("{error:?} {error}"));

    let logged = capture.text();
    assert!(
        logged.contains("aws credentials fetched"),
        "the capture works"
    );
    for secret in &secrets {
        assert!(
            !logged.contains(secret.as_str()),
            "an AWS secret was logged"
        );
        assert!(
            !shown.contains(secret.as_str()),
            "an AWS secret in Debug or an error"
        );
    }
    crate::test_child::done(&dir);
}
