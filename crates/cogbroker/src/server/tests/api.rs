//! The real router over a real broker (memory store, profiles pointing at an in-process
//! emulator on 127.0.0.1:0): every endpoint, its success shape, its error codes, and no secret
//! in any answer or log line.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::SystemTime;

use cognito_auth::env::{Clock, OsEntropy};
use cognito_emulator::{Emulator, Fault, FaultKind, RunningEmulator, Seed};

use super::*;
use crate::api::REQUEST_HEADER;
use crate::broker::BrokerOptions;
use crate::config::parse;
use crate::store::MemoryStore;

const POOL: &str = "us-east-1_Api1";
const ALICE_PASSWORD: &str = "Alice-Passw0rd!";
const TINA_PASSWORD: &str = "Tina-Passw0rd!";

const SEED: &str = r#"
[[pools]]
id = "us-east-1_Api1"
mfa = "optional"

[[pools.clients]]
id = "cli"
access_token_ttl = 600
id_token_ttl = 600

[[pools.users]]
username = "alice"
password = "Alice-Passw0rd!"

[[pools.users]]
username = "tina"
password = "Tina-Passw0rd!"
mfa = "totp"
totp_secret = "JBSWY3DPEHPK3PXP"
"#;

/// A wall clock the test moves (together with the emulator's).
struct TestClock(Mutex<SystemTime>);

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

struct Api {
    emulator: RunningEmulator,
    clock: Arc<TestClock>,
    broker: Broker,
    app: crate::server::App,
    /// `Authorization: Bearer <key>` sent by `get` and `post` when the server has a key: with
    /// one configured, every TCP request needs it.
    bearer: Option<String>,
}

impl Api {
    async fn start() -> Self {
        Self::start_with(ServerOptions::default()).await
    }

    async fn start_with(options: ServerOptions) -> Self {
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
"#,
            endpoint = emulator.endpoint()
        );
        let env: BTreeMap<String, String> = [("HOME".to_owned(), "/nonexistent".to_owned())]
            .into_iter()
            .collect();
        let config =
            parse(&text, std::path::Path::new("test.toml"), &env).expect("the config parses");
        let clock = Arc::new(TestClock(Mutex::new(SystemTime::now())));
        let broker_options = BrokerOptions {
            env: Arc::new(env),
            transient_base: Duration::from_millis(1),
            throttle_base: Duration::from_millis(1),
            blocking_cap: Duration::from_millis(5),
            ..BrokerOptions::new()
        };
        let broker = Broker::with_options(
            Arc::new(config),
            Arc::new(MemoryStore::default()),
            clock.clone(),
            Arc::new(OsEntropy),
            broker_options,
        )
        .expect("the broker builds");
        broker.restore().await;
        let app = router(broker.clone(), &options, Some(PORT));
        let bearer = options
            .api_key
            .as_ref()
            .map(|key| format!("Bearer {}", secrecy::ExposeSecret::expose_secret(key)));
        Self {
            emulator,
            clock,
            broker,
            app,
            bearer,
        }
    }

    fn advance(&self, seconds: u64) {
        *self.clock.0.lock().unwrap() += Duration::from_secs(seconds);
        self.emulator
            .handle()
            .advance_clock(i64::try_from(seconds).unwrap());
    }

    fn ours(&self, method: Method, uri: &str) -> http::request::Builder {
        let request = ours(method, uri);
        match &self.bearer {
            Some(bearer) => request.header(header::AUTHORIZATION, bearer),
            None => request,
        }
    }

    async fn get(&self, uri: &str) -> Answer {
        send(
            &self.app,
            self.ours(Method::GET, uri).body(Body::empty()).unwrap(),
        )
        .await
    }

    async fn post(&self, uri: &str, body: Value) -> Answer {
        let request = self
            .ours(Method::POST, uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        send(&self.app, request).await
    }

    async fn login_alice(&self) {
        let answer = self
            .post(
                "/v1/profiles/dev/login",
                json!({ "password": ALICE_PASSWORD }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        assert_eq!(answer.json()["status"], "authenticated");
    }
}

/// A request over TCP from our real uid with the right Host and the custom header.
fn ours(method: Method, uri: &str) -> http::request::Builder {
    HttpRequest::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, format!("localhost:{PORT}"))
        .header(REQUEST_HEADER, "1")
        .extension(tcp_peer(Some(listen::our_uid())))
}

#[tokio::test]
async fn healthz_says_ok_and_nothing_else() {
    let api = Api::start().await;
    let answer = api.get("/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    answer.assert_common_headers();
    assert_eq!(
        answer.json(),
        json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })
    );
}

#[tokio::test]
async fn profiles_and_status() {
    let api = Api::start().await;
    let answer = api.get("/v1/profiles").await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.assert_common_headers();
    let names: Vec<String> = answer.json()["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|profile| profile["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["dev", "mfa"]);

    let answer = api.get("/v1/profiles/dev").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["name"], "dev");
    assert_eq!(answer.json()["state"], "logged_out");

    api.get("/v1/profiles/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "unknown_profile");
    for bad in [
        "/v1/profiles/..",
        "/v1/profiles/%2e%2e",
        "/v1/profiles/.",
        "/v1/profiles/a%2Fb",
        "/v1/profiles/a%00b",
        "/v1/profiles/a%20b",
        "/v1/profiles/%FF",
        &format!("/v1/profiles/{}", "a".repeat(65)),
        "/v1/profiles/..%2F..%2Fetc/token",
    ] {
        let answer = api.get(bad).await;
        if answer.status == StatusCode::NOT_FOUND {
            // "a/b" style paths that no longer match a route are unknown routes.
            answer.assert_error(StatusCode::NOT_FOUND, "not_found");
            continue;
        }
        answer.assert_error(StatusCode::BAD_REQUEST, "bad_input");
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap()
                .starts_with("profile:"),
            "{bad}"
        );
    }
    for endpoint in ["token", "events"] {
        let answer = api.get(&format!("/v1/profiles/nope/{endpoint}")).await;
        answer.assert_error(StatusCode::NOT_FOUND, "unknown_profile");
        api.get(&format!("/v1/profiles/%2e%2e/{endpoint}"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_input");
    }
    for endpoint in ["login", "refresh", "logout"] {
        let answer = api
            .post(&format!("/v1/profiles/nope/{endpoint}"), json!({}))
            .await;
        answer.assert_error(StatusCode::NOT_FOUND, "unknown_profile");
    }
    api.get("/v1/profiles/dev?x=1")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_input");
}

#[tokio::test]
async fn login_then_tokens_as_json_and_as_text() {
    let api = Api::start().await;
    api.get("/v1/profiles/dev/token")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "login_required");
    api.login_alice().await;

    let answer = api.get("/v1/profiles/dev/token").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.assert_common_headers();
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    let body = answer.json();
    assert_eq!(body["profile"], "dev");
    assert_eq!(body["kind"], "access");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["degraded"], false);
    let access = body["token"].as_str().unwrap().to_owned();
    assert_eq!(access.split('.').count(), 3, "a JWT");
    assert!(body["expires_in"].as_u64().unwrap() > 500);
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));

    let answer = api.get("/v1/profiles/dev/token?kind=id&min_ttl=60").await;
    assert_eq!(answer.json()["kind"], "id");
    assert_ne!(answer.json()["token"], access.as_str());

    let request = ours(Method::GET, "/v1/profiles/dev/token")
        .header(header::ACCEPT, "text/plain")
        .body(Body::empty())
        .unwrap();
    let answer = send(&api.app, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.assert_common_headers();
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(answer.text(), access);
    assert!(
        answer.headers["x-cogbroker-expires-in"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 500
    );

    for bad in ["?kind=refresh", "?access_token=x", "?min_ttl=soon"] {
        let answer = api.get(&format!("/v1/profiles/dev/token{bad}")).await;
        answer.assert_error(StatusCode::BAD_REQUEST, "bad_input");
    }

    // A percent-encoded name goes through the router, a plain one is answered before it: the
    // same answer, headers and errors either way.
    let direct = api.get("/v1/profiles/dev/token?kind=id").await;
    let routed = api.get("/v1/profiles/d%65v/token?kind=id").await;
    assert_eq!(routed.status, StatusCode::OK, "{}", routed.text());
    routed.assert_common_headers();
    assert_eq!(routed.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(routed.json()["token"], direct.json()["token"]);
    assert_eq!(routed.json()["profile"], "dev");
    for path in ["/v1/profiles/nobody/token", "/v1/profiles/n%6Fbody/token"] {
        api.get(path)
            .await
            .assert_error(StatusCode::NOT_FOUND, "unknown_profile");
    }
    for path in ["/v1/profiles/../token", "/v1/profiles/a%20b/token"] {
        api.get(path)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_input");
    }
    let answer = api.post("/v1/profiles/dev/token", json!({})).await;
    assert_eq!(
        answer.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        answer.text()
    );

    let answer = api.post("/v1/profiles/dev/refresh", json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["name"], "dev");
    assert!(answer.json()["expires_at"].is_string());
    let empty = ours(Method::POST, "/v1/profiles/dev/refresh")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&api.app, empty).await.status, StatusCode::OK);

    api.post("/v1/profiles/dev/logout", json!({ "forget_device": "yes" }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_input");
    let answer = api
        .post("/v1/profiles/dev/logout", json!({ "forget_device": false }))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json(), json!({ "status": "logged_out" }));
    api.get("/v1/profiles/dev/token")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "login_required");
}

#[tokio::test]
async fn login_errors_never_repeat_the_password() {
    let api = Api::start().await;
    let wrong = "Wrong-Passw0rd-Value!";
    let answer = api
        .post("/v1/profiles/dev/login", json!({ "password": wrong }))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());
    assert!(!answer.text().contains(wrong));

    let malformed = format!(r#"{{"password": "{wrong}"#);
    let request = ours(Method::POST, "/v1/profiles/dev/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(malformed))
        .unwrap();
    let answer = send(&api.app, request).await;
    answer.assert_error(StatusCode::BAD_REQUEST, "bad_input");
    assert!(!answer.text().contains(wrong));
}

#[tokio::test]
async fn cross_site_simple_posts_have_no_effect() {
    let api = Api::start().await;
    let before = api.emulator.handle().calls("InitiateAuth");
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let request = ours(Method::POST, "/v1/profiles/dev/login")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(format!(r#"{{"password":"{ALICE_PASSWORD}"}}"#)))
            .unwrap();
        send(&api.app, request)
            .await
            .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    assert_eq!(api.emulator.handle().calls("InitiateAuth"), before);
    assert_eq!(
        api.get("/v1/profiles/dev").await.json()["state"],
        "logged_out"
    );
}

#[tokio::test]
async fn mfa_login_through_the_api() {
    let api = Api::start().await;
    let answer = api
        .post(
            "/v1/profiles/mfa/login",
            json!({ "password": TINA_PASSWORD }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["status"], "challenge");
    assert_eq!(body["challenge"], "SOFTWARE_TOKEN_MFA");
    assert_eq!(body["fields"], json!(["code"]));
    assert!(
        body["message"].is_string() && body["details"].is_object(),
        "{body}"
    );
    let login_id = body["login_id"].as_str().unwrap().to_owned();

    let again = api
        .post(
            "/v1/profiles/mfa/login",
            json!({ "password": TINA_PASSWORD }),
        )
        .await;
    again.assert_error(StatusCode::CONFLICT, "login_in_progress");

    let answers = format!("/v1/logins/{login_id}");
    api.post(&answers, json!({ "code": 123_456 }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_input");
    api.post(&answers, json!({ "cod": "123456" }))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_input");
    let right = api.emulator.handle().totp_code(POOL, "tina").unwrap();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let answer = api.post(&answers, json!({ "code": wrong })).await;
    answer.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "code_mismatch");
    let right = api.emulator.handle().totp_code(POOL, "tina").unwrap();
    let answer = api.post(&answers, json!({ "code": right })).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["status"], "authenticated");
    assert_eq!(answer.json()["profile"], "mfa");
    api.post(&answers, json!({ "code": "123456" }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "unknown_login");
    api.post("/v1/logins/not.an.id", json!({}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_input");
}

#[tokio::test]
async fn cancelling_a_pending_login() {
    let api = Api::start().await;
    let answer = api
        .post(
            "/v1/profiles/mfa/login",
            json!({ "password": TINA_PASSWORD }),
        )
        .await;
    let login_id = answer.json()["login_id"].as_str().unwrap().to_owned();
    let cancel = || {
        send(
            &api.app,
            ours(Method::DELETE, &format!("/v1/logins/{login_id}"))
                .body(Body::empty())
                .unwrap(),
        )
    };
    let answer = cancel().await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json(), json!({ "status": "cancelled" }));
    cancel()
        .await
        .assert_error(StatusCode::NOT_FOUND, "unknown_login");
    let answer = send(
        &api.app,
        ours(Method::PUT, &format!("/v1/logins/{login_id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    answer.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn upstream_outage_is_503_with_retry_after() {
    let api = Api::start().await;
    api.login_alice().await;
    api.emulator.handle().inject(Fault {
        operation: None,
        times: 1_000,
        kind: FaultKind::Error {
            code: "InternalErrorException".into(),
            message: "boom".into(),
            status: 500,
        },
    });
    api.advance(3_600); // the token has expired; refreshing fails every time
    let answer = api.get("/v1/profiles/dev/token").await;
    answer.assert_error(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable");
    let retry_after: u64 = answer.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
}

#[tokio::test]
async fn metrics_and_openapi() {
    let api = Api::start().await;
    api.login_alice().await;
    // Like `/v1/*`, the metrics need the request header.
    let bare = HttpRequest::builder()
        .method(Method::GET)
        .uri("/metrics")
        .header(header::HOST, format!("localhost:{PORT}"))
        .extension(tcp_peer(Some(listen::our_uid())))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&api.app, bare).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    let answer = api.get("/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.assert_common_headers();
    assert!(
        answer.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(answer.text().contains("# TYPE"), "{}", answer.text());

    let answer = api.get("/v1/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    let document = answer.json();
    assert_eq!(document["openapi"], "3.0.3");
    for (path, method) in [
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/v1/openapi.json", "get"),
        ("/v1/profiles", "get"),
        ("/v1/audit", "get"),
        ("/v1/profiles/{profile}", "get"),
        ("/v1/profiles/{profile}/token", "get"),
        ("/v1/profiles/{profile}/login", "post"),
        ("/v1/profiles/{profile}/refresh", "post"),
        ("/v1/profiles/{profile}/logout", "post"),
        ("/v1/profiles/{profile}/events", "get"),
        ("/v1/logins/{login_id}", "post"),
        ("/v1/logins/{login_id}", "delete"),
        ("/v1/profiles/{profile}/aws-credentials", "get"),
        ("/v1/profiles/{profile}/aws-grants", "post"),
        ("/v1/profiles/{profile}/aws-grants/{grant_id}", "delete"),
    ] {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
    }
    // Every $ref resolves.
    let text = OPENAPI;
    for reference in text.split("\"$ref\": \"#/").skip(1) {
        let pointer = reference.split('"').next().unwrap();
        assert!(
            document.pointer(&format!("/{pointer}")).is_some(),
            "dangling $ref {pointer}"
        );
    }
}

/// The next SSE event of `body` as (event name, data).
async fn next_event(body: &mut Body) -> (String, Value) {
    let mut text = String::new();
    loop {
        let frame = body
            .frame()
            .await
            .expect("the stream goes on")
            .expect("no body error");
        let Ok(data) = frame.into_data() else {
            continue;
        };
        text.push_str(std::str::from_utf8(&data).unwrap());
        if !text.ends_with("\n\n") {
            continue;
        }
        let mut name = None;
        let mut payload = None;
        for line in text.lines() {
            if let Some(value) = line
                .strip_prefix("event: ")
                .or_else(|| line.strip_prefix("event:"))
            {
                name = Some(value.to_owned());
            }
            if let Some(value) = line
                .strip_prefix("data: ")
                .or_else(|| line.strip_prefix("data:"))
            {
                payload = Some(serde_json::from_str(value).unwrap());
            }
        }
        match (name, payload) {
            (Some(name), Some(payload)) => return (name, payload),
            _ => text.clear(), // a keep-alive comment
        }
    }
}

#[tokio::test]
async fn events_stream_without_tokens() {
    let api = Api::start().await;
    let response = api
        .app
        .clone()
        .oneshot(
            ours(Method::GET, "/v1/profiles/dev/events")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let mut body = response.into_body();
    let (name, status) = next_event(&mut body).await;
    assert_eq!(name, "status");
    assert_eq!(status["state"], "logged_out");

    // Events of other profiles are not sent; this profile's are, without token values.
    let _ = api
        .post(
            "/v1/profiles/mfa/login",
            json!({ "password": TINA_PASSWORD }),
        )
        .await;
    api.login_alice().await;
    let token = api.get("/v1/profiles/dev/token").await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut seen = Vec::new();
    while !seen.iter().any(|name: &String| name == "login_completed") {
        let (name, data) = next_event(&mut body).await;
        assert_eq!(data["profile"], "dev", "{name}: {data}");
        assert!(!data.to_string().contains(&token));
        seen.push(name);
    }
    assert!(seen.contains(&"login_started".to_owned()), "{seen:?}");
}

#[test]
fn no_secret_reaches_the_log_at_trace() {
    crate::test_child::run("server::tests::api::no_secret_child");
}

/// Child half of `no_secret_reaches_the_log_at_trace`.
#[tokio::test]
async fn no_secret_child() {
    let Some(dir) = crate::test_child::dir() else {
        return;
    };
    let captured = crate::test_child::capture_globally();

    let api = Api::start_with(ServerOptions {
        api_key: Some(SecretString::from("api-key-Sekr1t".to_owned())),
        ..ServerOptions::default()
    })
    .await;
    api.login_alice().await;
    let token = api.get("/v1/profiles/dev/token").await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id_token = api.get("/v1/profiles/dev/token?kind=id").await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let with_key = ours(Method::GET, "/v1/profiles/dev/token")
        .header(header::AUTHORIZATION, "Bearer api-key-Sekr1t")
        .extension(tcp_peer(None))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&api.app, with_key).await.status, StatusCode::OK);
    let wrong_key = ours(Method::GET, "/v1/profiles/dev")
        .header(header::AUTHORIZATION, "Bearer api-key-Wr0ng")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&api.app, wrong_key).await.status,
        StatusCode::UNAUTHORIZED
    );
    let _ = api
        .post(
            "/v1/profiles/dev/login",
            json!({ "password": "Not-Her-Passw0rd" }),
        )
        .await;
    let _ = api.get("/v1/profiles/..%2Fsecret-profile-name/token").await;

    let logs = captured.text();
    assert!(logs.contains("request"), "the capture works: {logs}");
    let mut secrets = vec![
        ALICE_PASSWORD,
        "Not-Her-Passw0rd",
        "api-key-Sekr1t",
        "api-key-Wr0ng",
        "secret-profile-name",
    ];
    secrets.extend(token.split('.'));
    secrets.extend(id_token.split('.'));
    for secret in secrets {
        assert!(!logs.contains(secret), "{secret} appears in the log");
    }
    crate::test_child::done(&dir);
}

#[tokio::test]
async fn serve_ends_event_streams_at_shutdown_and_drains() {
    let api = Api::start().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run").join("cogbroker.sock");
    let listeners =
        listen::bind_addresses(Some("127.0.0.1:0".parse().unwrap()), Some(&socket)).unwrap();
    let tcp = listeners.tcp_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listeners,
        api.broker.clone(),
        ServerOptions::default(),
        shutdown.clone(),
    ));

    // A token over TCP and over the socket, through the whole stack.
    let login = HttpRequest::post("/v1/profiles/dev/login")
        .header(header::HOST, format!("127.0.0.1:{}", tcp.port()))
        .header(REQUEST_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(
            json!({ "password": ALICE_PASSWORD }).to_string(),
        )))
        .unwrap();
    let answer = http_over(tokio::net::TcpStream::connect(tcp).await.unwrap(), login).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let answer = http_over(
        stream,
        client_request("localhost", "/v1/profiles/dev/token"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(answer.json()["token"].is_string());

    // An open event stream ends cleanly when the daemon shuts down.
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(client_request("localhost", "/v1/profiles/dev/events"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(
        std::str::from_utf8(&first)
            .unwrap()
            .contains("event: status")
    );
    shutdown.cancel();
    while let Some(frame) = body.frame().await {
        frame.expect("the stream ends cleanly, not by a forced close");
    }
    server.await.unwrap().unwrap();
    assert!(!socket.exists());
}

#[tokio::test(start_paused = true)]
async fn event_streams_outlive_the_header_read_timeout() {
    let api = Api::start().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run").join("cogbroker.sock");
    let listeners = listen::bind_addresses(None, Some(&socket)).unwrap();
    let shutdown = CancellationToken::new();
    let options = ServerOptions {
        header_read_timeout: Duration::from_secs(10),
        ..ServerOptions::default()
    };
    let server = tokio::spawn(serve(
        listeners,
        api.broker.clone(),
        options,
        shutdown.clone(),
    ));
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(client_request("localhost", "/v1/profiles/dev/events"))
        .await
        .unwrap();
    let mut body = response.into_body();
    let started = tokio::time::Instant::now();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(
        std::str::from_utf8(&first)
            .unwrap()
            .contains("event: status")
    );
    // Well past the header timeout, the stream is still open and sends keep-alive comments.
    let mut comments = 0;
    while comments < 3 {
        let frame = body.frame().await.expect("still open").expect("no error");
        if frame.into_data().is_ok_and(|data| data.starts_with(b":")) {
            comments += 1;
        }
    }
    assert!(started.elapsed() >= Duration::from_secs(40));
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// Security test 16 on the real handlers: a body over 16 KiB to the login and the answer
/// endpoints is 413, and the refusal never repeats what was sent.
#[tokio::test]
async fn oversized_login_and_answer_bodies_get_413() {
    let api = Api::start().await;
    let big = "Sekr1t-".repeat(3 * 1024);
    let answer = api
        .post("/v1/profiles/dev/login", json!({ "password": big }))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text()
    );
    assert!(!answer.text().contains("Sekr1t"), "{}", answer.text());
    // A pending login to answer: tina has TOTP.
    let started = api
        .post(
            "/v1/profiles/mfa/login",
            json!({ "password": TINA_PASSWORD }),
        )
        .await;
    let login_id = started.json()["login_id"].as_str().map(str::to_owned);
    let login_id = login_id.unwrap_or_else(|| panic!("a challenge: {}", started.text()));
    let answer = api
        .post(&format!("/v1/logins/{login_id}"), json!({ "code": big }))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text()
    );
    assert!(!answer.text().contains("Sekr1t"), "{}", answer.text());
}

/// Security test 24, the rest: no error answer (nor `/healthz`, nor another profile's status)
/// names the user of another profile, and Cognito's own message, when an error repeats it,
/// arrives bounded and without control characters (it could otherwise forge log lines).
#[tokio::test]
async fn errors_never_name_other_users_and_bound_cognitos_message() {
    let api = Api::start().await;
    let hostile = format!("bad\ninjected-line\u{1b}[31m {}", "x".repeat(2000));
    api.emulator.handle().inject(Fault::error(
        "InitiateAuth",
        "InvalidParameterException",
        &hostile,
    ));
    let mut answers = vec![
        api.post(
            "/v1/profiles/dev/login",
            json!({ "password": ALICE_PASSWORD }),
        )
        .await,
        api.get("/v1/profiles/dev/token").await,
        api.get("/v1/profiles/nobody/token").await,
        api.post(
            "/v1/profiles/dev/login",
            json!({ "password": "Wr0ng-Passw0rd!" }),
        )
        .await,
        api.get("/healthz").await,
        api.get("/v1/profiles/dev").await,
    ];
    answers.push(api.get("/v1/logins/not-a-login").await);
    let mut saw_cognitos_message = false;
    for answer in &answers {
        let text = answer.text();
        assert!(
            !text.contains("tina"),
            "another profile's user appears: {text}"
        );
        if let Some(message) = answer.json()["message"].as_str() {
            assert!(
                !message.chars().any(char::is_control),
                "control characters reach an error: {message:?}"
            );
            assert!(
                message.chars().count() <= 400,
                "an unbounded message: {message}"
            );
            saw_cognitos_message |= message.contains("injected-line");
        }
    }
    assert!(
        saw_cognitos_message,
        "the test reaches the path that repeats Cognito's message: {}",
        answers[0].text()
    );
}
