//! The client_credentials grant through the broker (design.md §14): scopes in the access
//! token, renewal by a new grant before expiry on the injected clock, `kind=id` unsupported,
//! and a refused secret or scope that stops all upstream calls until an explicit refresh.

use super::*;

const TOKEN: &str = "oauth2/token";
const SECRET: &str = "m2m-Secret-0123456789";

const CC_SEED: &str = r#"
[[pools]]
id = "us-east-1_M2m"

[[pools.resource_servers]]
identifier = "https://api.example.com"
scopes = ["read", "write"]

[[pools.clients]]
id = "machine"
secret = "m2m-Secret-0123456789"
access_token_ttl = 120
allowed_oauth_flows = ["client_credentials"]
allowed_scopes = ["https://api.example.com/read", "https://api.example.com/write"]
"#;

struct CcHarness {
    emulator: RunningEmulator,
    clock: Arc<TestClock>,
    config: Arc<Config>,
}

impl CcHarness {
    async fn start() -> Self {
        let seed = Seed::from_toml(CC_SEED).expect("the seed parses");
        let emulator = Emulator::start(seed, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("the emulator starts");
        let text = format!(
            r#"
[daemon]
store = "memory"
[profiles.m2m]
grant = "client_credentials"
domain = "{endpoint}"
client_id = "machine"
client_secret = {{ env = "M2M_SECRET" }}
scopes = ["https://api.example.com/read"]
[profiles.badsecret]
grant = "client_credentials"
domain = "{endpoint}"
client_id = "machine"
client_secret = {{ env = "WRONG_SECRET" }}
[profiles.badscope]
grant = "client_credentials"
domain = "{endpoint}"
client_id = "machine"
client_secret = {{ env = "M2M_SECRET" }}
scopes = ["https://api.example.com/admin"]
"#,
            endpoint = emulator.endpoint()
        );
        let config = parse(&text, Path::new("test.toml"), &cc_env()).expect("the config parses");
        Self {
            clock: Arc::new(TestClock(Mutex::new(SystemTime::now()))),
            emulator,
            config: Arc::new(config),
        }
    }

    fn broker(&self) -> Broker {
        let options = BrokerOptions {
            env: Arc::new(cc_env()),
            tick_interval: Duration::from_millis(50),
            transient_base: Duration::from_millis(5),
            throttle_base: Duration::from_millis(5),
            ..BrokerOptions::new()
        };
        Broker::with_options(
            self.config.clone(),
            memory(),
            self.clock.clone(),
            Arc::new(OsEntropy),
            options,
        )
        .expect("the broker builds")
    }

    fn advance(&self, seconds: u64) {
        *lock(&self.clock.0) += Duration::from_secs(seconds);
        self.emulator
            .handle()
            .advance_clock(i64::try_from(seconds).expect("small"));
    }

    fn calls(&self) -> u64 {
        self.emulator.handle().calls(TOKEN)
    }
}

fn cc_env() -> BTreeMap<String, String> {
    [
        ("M2M_SECRET".to_owned(), SECRET.to_owned()),
        ("WRONG_SECRET".to_owned(), "not-the-secret".to_owned()),
        ("HOME".to_owned(), "/nonexistent".to_owned()),
    ]
    .into_iter()
    .collect()
}

fn scope_of(token: &IssuedToken) -> String {
    cognito_auth::tokens::decode_claims(token.expose_token())
        .expect("a jwt")
        .scope
        .unwrap_or_default()
}

#[tokio::test]
async fn a_machine_client_gets_a_scoped_token_cached_then_renewed_by_a_new_grant() {
    let harness = CcHarness::start().await;
    let broker = harness.broker();
    broker.restore().await;
    assert_eq!(broker.status("m2m").unwrap().state, "stale");
    assert_eq!(
        harness.calls(),
        0,
        "nothing is fetched before it is asked for"
    );

    let first = broker.token("m2m", TokenKind::Access, None).await.unwrap();
    assert_eq!(scope_of(&first), "https://api.example.com/read");
    let claims = cognito_auth::tokens::decode_claims(first.expose_token()).unwrap();
    assert_eq!(claims.sub, "machine");
    assert!(
        (119..=120).contains(&first.expires_in),
        "{}",
        first.expires_in
    );
    let again = broker.token("m2m", TokenKind::Access, None).await.unwrap();
    assert_eq!(token_text(&first), token_text(&again));
    assert_eq!(harness.calls(), 1, "the second request is a cache hit");
    let status = broker.status("m2m").unwrap();
    assert_eq!(
        (status.state, status.auth_flow.as_str()),
        ("fresh", "client_credentials")
    );
    assert_eq!(status.username.as_deref(), Some("machine"));

    // Inside the floor (30 s of a 120 s token): the request waits for a new grant.
    harness.advance(95);
    let renewed = broker.token("m2m", TokenKind::Access, None).await.unwrap();
    assert_ne!(token_text(&first), token_text(&renewed));
    assert!(renewed.expires_in >= 119);
    assert_eq!(harness.calls(), 2);

    // The tick renews before expiry, without a caller.
    let mut events = broker.subscribe();
    harness.advance(75); // 45 s left: inside the stale window (48 to 60 s for 120 s tokens)
    broker.tick();
    let renewal = async {
        loop {
            match events.recv().await.expect("an event") {
                BrokerEvent::TokenRefreshed { profile, .. } if profile == "m2m" => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), renewal)
        .await
        .expect("the tick renews the token");
    assert_eq!(harness.calls(), 3);
    let background = broker.token("m2m", TokenKind::Access, None).await.unwrap();
    assert_ne!(token_text(&renewed), token_text(&background));
    assert_eq!(harness.calls(), 3);

    // Logout drops the cached token; the next request is a new grant, not a login.
    broker.logout("m2m", false).await.unwrap();
    broker.token("m2m", TokenKind::Access, None).await.unwrap();
    assert_eq!(harness.calls(), 4);
    let shown = format!("{:?} {:?}", broker.profiles(), harness.config);
    assert!(!shown.contains(SECRET), "the client secret leaked: {shown}");
}

#[tokio::test]
async fn an_id_token_is_unsupported_and_login_says_none_is_needed() {
    let harness = CcHarness::start().await;
    let broker = harness.broker();
    broker.restore().await;
    let error = broker.token("m2m", TokenKind::Id, None).await.unwrap_err();
    assert_eq!(error.code(), "unsupported");
    assert!(error.to_string().contains("access tokens only"), "{error}");
    let error = broker.login("m2m", None).await.unwrap_err();
    assert_eq!(error.code(), "unsupported");
    assert!(error.to_string().contains("needs no login"), "{error}");
}

#[tokio::test]
async fn a_refused_secret_marks_the_profile_misconfigured_without_a_retry_storm() {
    let harness = CcHarness::start().await;
    let broker = harness.broker();
    broker.restore().await;
    let error = broker
        .token("badsecret", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "misconfigured");
    let message = error.to_string();
    assert!(message.contains("client_secret"), "{message}");
    assert!(message.contains("cogbroker refresh badsecret"), "{message}");
    assert!(!message.contains("not-the-secret"), "{message}");
    assert_eq!(harness.calls(), 1, "invalid_client is never retried");

    // Many callers and many ticks later: still no upstream call.
    for _ in 0..20 {
        let error = broker
            .token("badsecret", TokenKind::Access, None)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "misconfigured");
        broker.tick();
    }
    harness.advance(3600);
    broker.tick();
    // A status read is answered by the task after the ticks it queued before.
    let status = broker.status("badsecret").unwrap();
    assert_eq!(status.state, "misconfigured");
    assert_eq!(status.last_error.as_deref(), Some("misconfigured"));
    assert_eq!(harness.calls(), 1);

    // `cogbroker refresh` tries once more.
    let error = broker.refresh("badsecret").await.unwrap_err();
    assert_eq!(error.code(), "misconfigured");
    assert_eq!(harness.calls(), 2);
}

#[tokio::test]
async fn a_refused_scope_names_the_scope() {
    let harness = CcHarness::start().await;
    let broker = harness.broker();
    broker.restore().await;
    let error = broker
        .token("badscope", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "misconfigured");
    let message = error.to_string();
    assert!(message.contains("invalid_scope"), "{message}");
    assert!(
        message.contains("https://api.example.com/admin"),
        "{message}"
    );
    assert_eq!(harness.calls(), 1);
}

/// A profile with sinks is kept fresh without a caller, and stays empty after a logout until
/// someone asks again.
#[tokio::test]
async fn sinks_are_filled_by_the_tick_and_stay_empty_after_logout() {
    let harness = CcHarness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("m2m.token");
    let text = format!(
        "[daemon]\nstore = \"memory\"\n[profiles.m2m]\ngrant = \"client_credentials\"\ndomain = \"{}\"\nclient_id = \"machine\"\nclient_secret = {{ env = \"M2M_SECRET\" }}\n[[profiles.m2m.sinks]]\npath = \"{}\"\n",
        harness.emulator.endpoint(),
        sink.display()
    );
    let config = parse(&text, Path::new("test.toml"), &cc_env()).unwrap();
    let harness = CcHarness {
        config: Arc::new(config),
        ..harness
    };
    let broker = harness.broker();
    broker.restore().await;
    let mut events = broker.subscribe();
    broker.tick();
    let filled = async {
        loop {
            if let BrokerEvent::TokenRefreshed { .. } = events.recv().await.unwrap() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), filled)
        .await
        .expect("the tick fills the sink");
    // The task writes the sink before it takes its next command: any answered command (a
    // login, refused here) orders us after the write.
    let _ = broker.login("m2m", None).await;
    let token = broker.token("m2m", TokenKind::Access, None).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&sink).unwrap(),
        format!("{}\n", token_text(&token))
    );
    assert_eq!(harness.calls(), 1);

    broker.logout("m2m", false).await.unwrap();
    assert!(!sink.exists());
    for _ in 0..5 {
        broker.tick();
    }
    // Ticks are commands: once a later command is answered, they have run.
    let _ = broker.login("m2m", None).await;
    // A refresh started by a tick would show as refreshing (or, finished, in the calls).
    assert_ne!(broker.status("m2m").unwrap().state, "refreshing");
    assert!(!sink.exists(), "a tick refilled the sink after the logout");
    assert_eq!(harness.calls(), 1);
    let again = broker.token("m2m", TokenKind::Access, None).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&sink).unwrap(),
        format!("{}\n", token_text(&again))
    );
}
