//! Fault injection, counters and the `/_control/` API; the binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cognito_emulator::{Fault, FaultKind};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn injected_errors_throttling_and_html() {
    let env = start(SEED).await;
    env.handle
        .inject(Fault::error("InitiateAuth", "InternalErrorException", "boom").times(2));
    for _ in 0..2 {
        let failure = env
            .password_login(PUBLIC, "alice", PASSWORD)
            .await
            .expect_err("injected");
        assert_eq!(
            (
                failure.code.as_str(),
                failure.message.as_str(),
                failure.status
            ),
            ("InternalErrorException", "boom", 500)
        );
    }
    assert!(
        env.password_login(PUBLIC, "alice", PASSWORD).await.is_ok(),
        "the fault is used up"
    );

    env.handle.inject(Fault::throttle("GetUser"));
    env.handle
        .inject(Fault::new(None, FaultKind::HtmlError { status: 502 }));
    let html = env.raw("InitiateAuth", &json!({})).await;
    assert_eq!(html.status(), 502);
    assert!(
        html.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    assert!(html.text().await.expect("body").contains("<html>"));
    let throttled = env.fail("GetUser", json!({ "AccessToken": "x" })).await;
    assert_eq!(
        (throttled.code.as_str(), throttled.message.as_str()),
        ("TooManyRequestsException", "Rate exceeded")
    );

    let stats = env.handle.stats();
    assert_eq!(stats.count("InitiateAuth", "InternalErrorException"), 2);
    assert_eq!(stats.count("InitiateAuth", "HtmlError"), 1);
    assert_eq!(stats.count("InitiateAuth", "ok"), 1);
    assert_eq!(env.handle.calls("InitiateAuth"), 4);
    assert_eq!(stats.count("GetUser", "TooManyRequestsException"), 1);
    assert!(env.handle.pending_faults().is_empty());
}

#[tokio::test]
async fn dropped_connections_get_no_response() {
    let env = start(SEED).await;
    env.handle.inject(Fault::drop_connection("InitiateAuth"));
    let error = env
        .http
        .post(env.url("/"))
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.InitiateAuth",
        )
        .body("{}")
        .send()
        .await
        .expect_err("the connection closes without a response");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert_eq!(
        env.handle.stats().count("InitiateAuth", "DropConnection"),
        1
    );
    assert!(
        env.password_login(PUBLIC, "alice", PASSWORD).await.is_ok(),
        "later calls work"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn latency_is_injected_without_real_waiting() {
    let env = start(SEED).await;
    env.handle.inject(Fault::latency("InitiateAuth", 600_000));
    let before = tokio::time::Instant::now();
    assert!(
        env.password_login(PUBLIC, "alice", PASSWORD).await.is_ok(),
        "latency then a normal answer"
    );
    assert!(before.elapsed() >= std::time::Duration::from_secs(600));
}

/// Seconds from the host clock to an HTTP `Date` header (negative: the header is behind).
fn date_offset(response: &reqwest::Response) -> i64 {
    let text = response
        .headers()
        .get("date")
        .expect("every answer has a Date header")
        .to_str()
        .expect("ascii");
    assert!(text.ends_with(" GMT"), "IMF-fixdate: {text}");
    let date = httpdate::parse_http_date(text).expect("an RFC 7231 date");
    let host = std::time::SystemTime::now();
    match date.duration_since(host) {
        Ok(ahead) => ahead.as_secs_f64().round() as i64,
        Err(behind) => -(behind.duration().as_secs_f64().round() as i64),
    }
}

#[tokio::test]
async fn date_header_follows_the_emulator_clock() {
    let env = start(SEED).await;
    // One-second resolution, and the request takes a moment: allow a little slack.
    let near = |offset: i64, expected: i64| (offset - expected).abs() <= 2;

    let ok = env
        .raw(
            "InitiateAuth",
            &json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": PUBLIC,
                     "AuthParameters": { "USERNAME": "alice", "PASSWORD": PASSWORD } }),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert!(near(date_offset(&ok), 0), "{:?}", ok.headers().get("date"));

    env.handle.set_clock_offset(600);
    let ok = env
        .raw(
            "InitiateAuth",
            &json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": PUBLIC,
                     "AuthParameters": { "USERNAME": "alice", "PASSWORD": PASSWORD } }),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert!(
        near(date_offset(&ok), 600),
        "{:?}",
        ok.headers().get("date")
    );
    assert_eq!(
        ok.headers().get_all("date").iter().count(),
        1,
        "one Date header, not hyper's as well"
    );

    // Errors, injected faults and the other routes (doctor probes `GET /`) follow it too.
    let error = env.raw("InitiateAuth", &json!({})).await;
    assert_eq!(error.status(), 400);
    assert!(near(date_offset(&error), 600));
    env.handle.inject(Fault::throttle("GetUser"));
    let throttled = env.raw("GetUser", &json!({ "AccessToken": "x" })).await;
    assert_eq!(throttled.status(), 400);
    assert!(near(date_offset(&throttled), 600));
    env.handle.set_clock_offset(-3600);
    let probe = env.http.get(env.url("/")).send().await.expect("answered");
    assert!(near(date_offset(&probe), -3600));
    let jwks = env
        .http
        .get(env.url(&format!("/{POOL}/.well-known/jwks.json")))
        .send()
        .await
        .expect("answered");
    assert_eq!(jwks.status(), 200);
    assert!(near(date_offset(&jwks), -3600));
}

#[tokio::test]
async fn control_api_over_http() {
    let env = start(SEED).await;
    let http = &env.http;
    let post = |path: &str, body: serde_json::Value| {
        http.post(env.url(path)).body(body.to_string()).send()
    };

    let queued = post(
        "/_control/faults",
        json!({ "operation": "InitiateAuth", "kind": { "type": "throttle" } }),
    )
    .await
    .expect("answered");
    assert_eq!(queued.status(), 200);
    let rejected = post("/_control/faults", json!({ "kind": { "type": "explode" } }))
        .await
        .expect("answered");
    assert_eq!(rejected.status(), 400);
    let pending: serde_json::Value = http
        .get(env.url("/_control/faults"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(pending.as_array().expect("array").len(), 1);
    http.delete(env.url("/_control/faults"))
        .send()
        .await
        .expect("delete");
    assert!(env.handle.pending_faults().is_empty());

    env.password_login(PUBLIC, "sms", PASSWORD)
        .await
        .expect("challenge");
    let stats: serde_json::Value = http
        .get(env.url("/_control/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats, json!({ "InitiateAuth": { "ok": 1 } }));
    let messages: serde_json::Value = http
        .get(env.url("/_control/messages"))
        .send()
        .await
        .expect("messages")
        .json()
        .await
        .expect("json");
    assert_eq!(messages[0]["medium"], "SMS");
    assert_eq!(messages[0]["username"], "sms");
    assert_eq!(messages[0]["pool_id"], POOL);

    let clock: serde_json::Value = post("/_control/clock", json!({ "offset_seconds": 3600 }))
        .await
        .expect("clock")
        .json()
        .await
        .expect("json");
    assert_eq!(clock["offset_seconds"], 3600);
    assert_eq!(env.handle.clock_offset(), 3600);
    post("/_control/clock", json!({ "advance_seconds": 10 }))
        .await
        .expect("clock");
    assert_eq!(env.handle.clock_offset(), 3610);

    let totp: serde_json::Value = http
        .get(env.url(&format!("/_control/totp?pool_id={POOL}&username=totp")))
        .send()
        .await
        .expect("totp")
        .json()
        .await
        .expect("json");
    assert_eq!(
        totp["code"].as_str(),
        env.handle.totp_code(POOL, "totp").as_deref()
    );
    let missing = http
        .get(env.url(&format!("/_control/totp?pool_id={POOL}&username=alice")))
        .send()
        .await
        .expect("totp");
    assert_eq!(missing.status(), 404);
    let user: serde_json::Value = http
        .get(env.url(&format!("/_control/user?pool_id={POOL}&username=newbie")))
        .send()
        .await
        .expect("user")
        .json()
        .await
        .expect("json");
    assert_eq!(user["status"], "FORCE_CHANGE_PASSWORD");
}

#[test]
fn binary_prints_its_endpoint_and_serves() {
    let dir = std::env::temp_dir().join(format!("cognito-emulator-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let seed = dir.join("seed.toml");
    std::fs::write(&seed, SEED).expect("write seed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cognito-emulator"))
        .args([
            "--seed",
            seed.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let endpoint = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let health: serde_json::Value = runtime.block_on(async {
        reqwest::get(format!("{endpoint}/_control/health"))
            .await
            .expect("health")
            .json()
            .await
            .expect("json")
    });
    assert_eq!(health["ok"], true);
    // SIGTERM (through kill(1): no unsafe code here) shuts it down cleanly, with exit status 0.
    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    assert!(
        child.wait().expect("wait").success(),
        "a clean shutdown exits with 0"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[pools]]\nid = \"nope\"\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_cognito-emulator"))
        .args([
            "--seed",
            bad.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("binary runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pools[0].id"));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn shutdown_closes_kept_alive_connections() {
    let env = start(SEED).await;
    assert!(env.password_login(PUBLIC, "alice", PASSWORD).await.is_ok());
    let Env { emulator, http, .. } = env;
    let endpoint = emulator.endpoint();
    emulator.shutdown().await;
    let after = http.post(format!("{endpoint}/")).body("{}").send().await;
    assert!(after.is_err(), "nothing listens after shutdown");
}

#[tokio::test]
async fn totp_code_covers_a_token_in_setup() {
    let env = start(&SEED.replace("mfa = \"optional\"", "mfa = \"on\"")).await;
    let setup = env
        .password_login(PUBLIC, "bob", PASSWORD)
        .await
        .expect("challenge");
    assert_eq!(env.handle.totp_code(POOL, "bob"), None);
    let associated = env
        .ok(
            "AssociateSoftwareToken",
            json!({ "Session": setup["Session"] }),
        )
        .await;
    let code = env
        .handle
        .totp_code(POOL, "bob")
        .expect("the secret in setup");
    assert_eq!(
        Some(code.clone()),
        cognito_emulator::totp(
            associated["SecretCode"].as_str().expect("secret"),
            env.now() as u64
        )
    );
    env.ok(
        "VerifySoftwareToken",
        json!({ "Session": associated["Session"], "UserCode": code }),
    )
    .await;
}
