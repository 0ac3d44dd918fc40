//! Driver tests against a scripted in-process HTTP fake: each test queues the replies, runs the
//! authenticator, then checks the calls it made (target, headers, body).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::client::ClientOptions;
use crate::error::{ErrorClass, ErrorCode, TransportKind};
use crate::flow::{AuthFlow, Challenge, ChallengeAnswer, DeviceRemembering};
use crate::pool::UserPoolId;
use crate::secret::{ClientSecret, DevicePassword, OneTimeCode, Password};

const NOW: u64 = 1_800_000_000;
const CLIENT_ID: &str = "1example23456789";
const CLIENT_SECRET: &str = "examplesecret0123456789abcdefghij";
const ALICE_HASH: &str = "G9KeEvR+U9H97SuWJGN1vnyJUI2C6h+1adTzyPHbwfA=";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    target: String,
    content_type: String,
    body: Value,
}

impl Call {
    fn operation(&self) -> &str {
        self.target
            .strip_prefix("AWSCognitoIdentityProviderService.")
            .unwrap_or(&self.target)
    }
}

struct Scripted {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

fn ok(body: Value) -> Scripted {
    Scripted {
        status: 200,
        headers: vec![("Content-Type", "application/x-amz-json-1.1")],
        body: body.to_string(),
    }
}

fn fail(status: u16, code: &'static str, message: &str) -> Scripted {
    Scripted {
        status,
        headers: vec![("x-amzn-ErrorType", code)],
        body: json!({"__type": code, "message": message}).to_string(),
    }
}

fn html(status: u16) -> Scripted {
    Scripted {
        status,
        headers: vec![("Content-Type", "text/html; charset=utf-8")],
        body: "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>".into(),
    }
}

/// A fake cognito-idp endpoint answering from a queue, one reply per connection.
struct Fake {
    endpoint: url::Url,
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
}

impl Fake {
    async fn start(script: Vec<Scripted>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint =
            url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (task_calls, task_script) = (calls.clone(), script.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (calls, script) = (task_calls.clone(), task_script.clone());
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0_u8; 4096];
                    let head_end = loop {
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end;
                        }
                        let read = stream.read(&mut chunk).await.unwrap();
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                    let mut lines = head.lines();
                    let mut request_line = lines.next().unwrap().split(' ');
                    let (method, path) = (
                        request_line.next().unwrap().to_owned(),
                        request_line.next().unwrap().to_owned(),
                    );
                    let header = |name: &str| {
                        head.lines()
                            .filter_map(|line| line.split_once(':'))
                            .find(|(key, _)| key.eq_ignore_ascii_case(name))
                            .map(|(_, value)| value.trim().to_owned())
                            .unwrap_or_default()
                    };
                    let length: usize = header("content-length").parse().unwrap_or(0);
                    let (target, content_type) = (header("x-amz-target"), header("content-type"));
                    let mut body = buffer[head_end + 4..].to_vec();
                    while body.len() < length {
                        let read = stream.read(&mut chunk).await.unwrap();
                        if read == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..read]);
                    }
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    calls.lock().unwrap().push(Call {
                        method,
                        path,
                        target,
                        content_type,
                        body,
                    });
                    let reply = script.lock().unwrap().pop_front().unwrap_or_else(|| {
                        fail(500, "NoScriptedReply", "the test queued no reply")
                    });
                    let mut response = format!(
                        "HTTP/1.1 {} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (name, value) in reply.headers {
                        response.push_str(&format!("{name}: {value}\r\n"));
                    }
                    response.push_str("\r\n");
                    response.push_str(&reply.body);
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Fake {
            endpoint,
            calls,
            script,
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn operations(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|call| call.operation().to_owned())
            .collect()
    }

    fn push(&self, reply: Scripted) {
        self.script.lock().unwrap().push_back(reply);
    }
}

struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

/// Deterministic bytes: a counter.
struct CountingEntropy(Mutex<u8>);

impl Entropy for CountingEntropy {
    fn fill(&self, dest: &mut [u8]) {
        let mut counter = self.0.lock().unwrap();
        for byte in dest {
            *counter = counter.wrapping_add(7);
            *byte = *counter;
        }
    }
}

fn authenticator(fake: &Fake, with_secret: bool) -> (Authenticator, Arc<ManualClock>) {
    let client = CognitoClient::new(fake.endpoint.clone(), ClientOptions::default()).unwrap();
    let app = AppClient {
        user_pool_id: UserPoolId::parse("us-east-1_AbCdEfGhI").unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: with_secret.then(|| ClientSecret::new(CLIENT_SECRET)),
    };
    let clock = Arc::new(ManualClock(Mutex::new(
        UNIX_EPOCH + Duration::from_secs(NOW),
    )));
    let entropy = Arc::new(CountingEntropy(Mutex::new(0)));
    (
        Authenticator::new(client, app, clock.clone(), entropy),
        clock,
    )
}

fn jwt(payload: Value) -> String {
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

fn result(refresh_token: Option<&str>, device: Option<(&str, &str)>) -> Value {
    let exp = NOW + 3600;
    let mut result = json!({
        "AccessToken": jwt(json!({"sub": "s", "username": "alice", "token_use": "access", "exp": exp, "iat": NOW})),
        "IdToken": jwt(json!({"sub": "s", "cognito:username": "alice", "token_use": "id", "exp": exp, "iat": NOW})),
        "ExpiresIn": 3600,
        "TokenType": "Bearer",
    });
    if let Some(token) = refresh_token {
        result["RefreshToken"] = json!(token);
    }
    if let Some((key, group)) = device {
        result["NewDeviceMetadata"] = json!({"DeviceKey": key, "DeviceGroupKey": group});
    }
    json!({"AuthenticationResult": result})
}

fn login(username: &str, flow: AuthFlow) -> LoginRequest {
    LoginRequest {
        username: username.into(),
        password: Some(Password::new("Passw0rd!")),
        flow,
        device: None,
        remember_device: DeviceRemembering::Remember,
        device_name: "test-host".into(),
    }
}

fn device() -> DeviceCredentials {
    DeviceCredentials {
        device_key: "us-east-1_dev".into(),
        device_group_key: "-grp".into(),
        device_password: DevicePassword::new("device-password"),
    }
}

fn verifier() -> Value {
    json!({
        "ChallengeName": "PASSWORD_VERIFIER",
        "ChallengeParameters": {
            "SALT": "3c2a9f1e5b7d4c8a9e0f1a2b3c4d5e6f",
            "SRP_B": "6a842e7c83fd85ee0df1e6a17071fbe2a5e88f6e1f8ef1781dadc4a0",
            "SECRET_BLOCK": "c2VjcmV0LWJsb2Nr",
            "USER_ID_FOR_SRP": "alice",
            "USERNAME": "alice",
        },
    })
}

#[tokio::test]
async fn srp_login_with_mfa_and_a_new_remembered_device() {
    let fake = Fake::start(vec![
        ok(verifier()),
        ok(json!({"ChallengeName": "SOFTWARE_TOKEN_MFA", "Session": "session-after-verifier", "ChallengeParameters": {"USERNAME": "alice"}})),
    ])
    .await;
    let (auth, _) = authenticator(&fake, true);
    let step = auth
        .start_login(login("alice@example.com", AuthFlow::UserSrp))
        .await
        .unwrap();
    let LoginStep::Challenge(pending) = step else {
        panic!("{step:?}")
    };
    assert!(matches!(
        pending.challenge(),
        Challenge::SoftwareTokenMfa { .. }
    ));
    assert_eq!(
        fake.operations(),
        ["InitiateAuth", "RespondToAuthChallenge"]
    );

    fake.push(ok(result(
        Some("refresh-1"),
        Some(("us-east-1_newdev", "-g1")),
    )));
    fake.push(ok(json!({"UserConfirmationNecessary": true})));
    fake.push(ok(json!({})));
    let step = auth
        .respond(*pending, ChallengeAnswer::Code(OneTimeCode::new("123456")))
        .await
        .unwrap();
    let LoginStep::Authenticated(success) = step else {
        panic!("{step:?}")
    };
    assert_eq!(success.refresh_token.expose_secret(), "refresh-1");
    let new_device = success.device.as_ref().unwrap();
    assert_eq!(new_device.device_key, "us-east-1_newdev");

    let calls = fake.calls();
    assert_eq!(
        fake.operations(),
        [
            "InitiateAuth",
            "RespondToAuthChallenge",
            "RespondToAuthChallenge",
            "ConfirmDevice",
            "UpdateDeviceStatus"
        ]
    );
    for call in &calls {
        assert_eq!(call.method, "POST");
        assert_eq!(call.path, "/");
        assert_eq!(call.content_type, "application/x-amz-json-1.1");
    }
    assert_eq!(
        calls[0].body["AuthParameters"]["USERNAME"],
        "alice@example.com"
    );
    assert!(calls[0].body.get("Session").is_none());
    let verifier_answer = &calls[1].body;
    assert_eq!(verifier_answer["ChallengeName"], "PASSWORD_VERIFIER");
    assert_eq!(verifier_answer["ChallengeResponses"]["USERNAME"], "alice");
    assert_eq!(
        verifier_answer["ChallengeResponses"]["SECRET_HASH"],
        ALICE_HASH
    );
    assert_eq!(
        verifier_answer["ChallengeResponses"]["TIMESTAMP"],
        "Fri Jan 15 08:00:00 UTC 2027"
    );
    let mfa_answer = &calls[2].body;
    assert_eq!(mfa_answer["Session"], "session-after-verifier");
    assert_eq!(
        mfa_answer["ChallengeResponses"]["SOFTWARE_TOKEN_MFA_CODE"],
        "123456"
    );
    let confirm = &calls[3].body;
    assert_eq!(confirm["DeviceKey"], "us-east-1_newdev");
    assert_eq!(confirm["DeviceName"], "test-host");
    assert!(confirm["AccessToken"].as_str().unwrap().contains('.'));
    assert!(confirm["DeviceSecretVerifierConfig"]["PasswordVerifier"].is_string());
    assert_eq!(calls[4].body["DeviceRememberedStatus"], "remembered");
}

#[tokio::test]
async fn mfa_setup_runs_associate_and_verify() {
    let fake = Fake::start(vec![
        ok(json!({"ChallengeName": "MFA_SETUP", "Session": "s1", "ChallengeParameters": {"MFAS_CAN_SETUP": "[\"SOFTWARE_TOKEN_MFA\"]"}})),
        ok(json!({"SecretCode": "JBSWY3DPEHPK3PXP", "Session": "s2"})),
    ])
    .await;
    let (auth, _) = authenticator(&fake, false);
    let step = auth
        .start_login(login("alice", AuthFlow::UserPassword))
        .await
        .unwrap();
    let LoginStep::Challenge(pending) = step else {
        panic!("{step:?}")
    };
    let Challenge::MfaSetup { secret_code, .. } = pending.challenge() else {
        panic!("{pending:?}")
    };
    assert_eq!(secret_code.expose_secret(), "JBSWY3DPEHPK3PXP");
    assert_eq!(fake.calls()[1].body, json!({"Session": "s1"}));

    fake.push(ok(json!({"Status": "SUCCESS", "Session": "s3"})));
    fake.push(ok(result(Some("refresh"), None)));
    let step = auth
        .respond(*pending, ChallengeAnswer::Code(OneTimeCode::new("987654")))
        .await
        .unwrap();
    assert!(matches!(step, LoginStep::Authenticated(_)));
    let calls = fake.calls();
    assert_eq!(
        fake.operations(),
        [
            "InitiateAuth",
            "AssociateSoftwareToken",
            "VerifySoftwareToken",
            "RespondToAuthChallenge"
        ]
    );
    assert_eq!(
        calls[2].body,
        json!({"Session": "s2", "UserCode": "987654"})
    );
    assert_eq!(calls[3].body["ChallengeName"], "MFA_SETUP");
    assert_eq!(calls[3].body["Session"], "s3");
}

#[tokio::test]
async fn wrong_code_keeps_the_challenge_and_expiry_is_enforced_locally() {
    let fake = Fake::start(vec![
        ok(json!({"ChallengeName": "SMS_MFA", "Session": "s-sms", "ChallengeParameters": {"USERNAME": "alice"}})),
        fail(400, "CodeMismatchException", "Invalid code or auth state for the user."),
    ])
    .await;
    let (auth, clock) = authenticator(&fake, false);
    let LoginStep::Challenge(pending) = auth
        .start_login(login("alice", AuthFlow::UserPassword))
        .await
        .unwrap()
    else {
        panic!("expected a challenge")
    };
    let failure = auth
        .respond(*pending, ChallengeAnswer::Code(OneTimeCode::new("000000")))
        .await
        .unwrap_err();
    assert_eq!(failure.error.code(), Some(&ErrorCode::CodeMismatch));
    assert_eq!(failure.error.class(), ErrorClass::NeedsUser);
    let pending = failure.pending.expect("a wrong code may be retried");

    clock.advance(Duration::from_secs(181));
    let calls_before = fake.calls().len();
    let failure = auth
        .respond(*pending, ChallengeAnswer::Code(OneTimeCode::new("111111")))
        .await
        .unwrap_err();
    assert!(failure.error.is_challenge_expired());
    assert!(failure.pending.is_none());
    assert_eq!(
        fake.calls().len(),
        calls_before,
        "an expired challenge is not sent"
    );
}

#[tokio::test]
async fn stale_device_is_dropped_and_the_login_restarts_once() {
    let fake = Fake::start(vec![
        fail(400, "ResourceNotFoundException", "Device does not exist."),
        ok(result(Some("refresh"), None)),
    ])
    .await;
    let (auth, _) = authenticator(&fake, false);
    let mut request = login("alice", AuthFlow::UserPassword);
    request.device = Some(device());
    let LoginStep::Authenticated(success) = auth.start_login(request).await.unwrap() else {
        panic!("expected tokens")
    };
    assert!(success.device.is_none());
    let calls = fake.calls();
    assert_eq!(
        calls[0].body["AuthParameters"]["DEVICE_KEY"],
        "us-east-1_dev"
    );
    assert!(calls[1].body["AuthParameters"].get("DEVICE_KEY").is_none());
}

#[tokio::test]
async fn refresh_uses_get_tokens_with_the_raw_secret_and_device_key() {
    let fake = Fake::start(vec![ok(result(Some("rotated-refresh"), None))]).await;
    let (auth, _) = authenticator(&fake, true);
    let token = RefreshToken::new("old-refresh");
    let device = device();
    let refreshed = auth
        .refresh(RefreshRequest {
            refresh_token: &token,
            device: Some(&device),
            username: Some("alice"),
        })
        .await
        .unwrap();
    assert_eq!(
        refreshed.rotated_refresh_token.unwrap().expose_secret(),
        "rotated-refresh"
    );
    assert!(refreshed.new_device.is_none());
    assert_eq!(
        refreshed.tokens.expires_at(),
        UNIX_EPOCH + Duration::from_secs(NOW + 3600)
    );
    assert_eq!(fake.operations(), ["GetTokensFromRefreshToken"]);
    assert_eq!(
        fake.calls()[0].body,
        json!({"RefreshToken": "old-refresh", "ClientId": CLIENT_ID, "ClientSecret": CLIENT_SECRET, "DeviceKey": "us-east-1_dev"})
    );
    assert!(!auth.uses_refresh_fallback());
}

#[tokio::test]
async fn refresh_confirms_a_device_issued_on_refresh() {
    let fake = Fake::start(vec![
        ok(result(None, Some(("us-east-1_fresh", "-g2")))),
        ok(json!({"UserConfirmationNecessary": false})),
    ])
    .await;
    let (auth, _) = authenticator(&fake, false);
    let token = RefreshToken::new("rt");
    let refreshed = auth
        .refresh(RefreshRequest {
            refresh_token: &token,
            device: None,
            username: None,
        })
        .await
        .unwrap();
    assert!(refreshed.rotated_refresh_token.is_none());
    assert_eq!(refreshed.new_device.unwrap().device_key, "us-east-1_fresh");
    assert_eq!(
        fake.operations(),
        ["GetTokensFromRefreshToken", "ConfirmDevice"]
    );
}

#[tokio::test]
async fn refresh_falls_back_to_refresh_token_auth_and_remembers() {
    let fake = Fake::start(vec![
        fail(400, "UnknownOperationException", ""),
        ok(result(None, None)),
        ok(result(None, None)),
    ])
    .await;
    let (auth, _) = authenticator(&fake, true);
    let token = RefreshToken::new("rt");
    let device = device();
    let request = RefreshRequest {
        refresh_token: &token,
        device: Some(&device),
        username: Some("alice"),
    };
    let refreshed = auth.refresh(request).await.unwrap();
    assert!(refreshed.rotated_refresh_token.is_none());
    assert!(auth.uses_refresh_fallback());
    auth.refresh(request).await.unwrap();
    assert_eq!(
        fake.operations(),
        ["GetTokensFromRefreshToken", "InitiateAuth", "InitiateAuth"]
    );
    let fallback = &fake.calls()[1].body;
    assert_eq!(fallback["AuthFlow"], "REFRESH_TOKEN_AUTH");
    assert_eq!(
        fallback["AuthParameters"],
        json!({"REFRESH_TOKEN": "rt", "SECRET_HASH": ALICE_HASH, "DEVICE_KEY": "us-east-1_dev"})
    );

    // Clones share what was learned.
    let clone = auth.clone();
    assert!(clone.uses_refresh_fallback());
}

#[tokio::test]
async fn a_bare_html_500_gets_one_fallback_try_remembered_only_if_it_works() {
    // moto: HTML 500 for GetTokensFromRefreshToken, REFRESH_TOKEN_AUTH works.
    let fake = Fake::start(vec![html(500), ok(result(None, None))]).await;
    let (auth, _) = authenticator(&fake, false);
    let token = RefreshToken::new("rt");
    let request = RefreshRequest {
        refresh_token: &token,
        device: None,
        username: None,
    };
    auth.refresh(request).await.unwrap();
    assert!(auth.uses_refresh_fallback());

    // A real fault: the fallback fails too, the original (transient) error is returned and
    // nothing is remembered.
    let fake = Fake::start(vec![
        html(500),
        fail(
            400,
            "NotAuthorizedException",
            "Refresh token rotation is enabled",
        ),
    ])
    .await;
    let (auth, _) = authenticator(&fake, false);
    let error = auth
        .refresh(RefreshRequest {
            refresh_token: &token,
            device: None,
            username: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(error.service().unwrap().status, 500);
    assert!(!auth.uses_refresh_fallback());
}

#[tokio::test]
async fn a_bare_500_then_a_revoked_verdict_from_the_fallback_is_the_answer() {
    // moto after GlobalSignOut: HTML 500 for GetTokensFromRefreshToken, and REFRESH_TOKEN_AUTH
    // says the token is revoked. The caller must learn "log in again", not "try later".
    let fake = Fake::start(vec![
        html(500),
        fail(
            400,
            "NotAuthorizedException",
            "Refresh Token has been revoked",
        ),
    ])
    .await;
    let (auth, _) = authenticator(&fake, false);
    let token = RefreshToken::new("rt");
    let error = auth
        .refresh(RefreshRequest {
            refresh_token: &token,
            device: None,
            username: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::NeedsUser);
    assert_eq!(
        error.refresh_failure(),
        Some(crate::error::RefreshFailure::Revoked)
    );
    assert!(auth.uses_refresh_fallback());
}

#[tokio::test]
async fn refresh_errors_are_classified() {
    let fake = Fake::start(vec![
        fail(
            400,
            "NotAuthorizedException",
            "Refresh Token has been revoked",
        ),
        fail(
            400,
            "RefreshTokenReuseException",
            "Refresh token has been reused",
        ),
        Scripted {
            status: 400,
            headers: vec![("x-amzn-ErrorType", "TooManyRequestsException:")],
            body: r#"{"message":"Rate exceeded"}"#.into(),
        },
    ])
    .await;
    let (auth, _) = authenticator(&fake, false);
    let token = RefreshToken::new("rt");
    let request = RefreshRequest {
        refresh_token: &token,
        device: None,
        username: None,
    };
    let error = auth.refresh(request).await.unwrap_err();
    assert_eq!(
        error.refresh_failure(),
        Some(crate::error::RefreshFailure::Revoked)
    );
    let error = auth.refresh(request).await.unwrap_err();
    assert_eq!(
        error.refresh_failure(),
        Some(crate::error::RefreshFailure::Reused)
    );
    let error = auth.refresh(request).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Throttled);
    assert!(!auth.uses_refresh_fallback());
}

#[tokio::test]
async fn fallback_without_username_for_a_secret_client_is_refused() {
    let fake = Fake::start(vec![fail(400, "UnknownOperationException", "")]).await;
    let (auth, _) = authenticator(&fake, true);
    let token = RefreshToken::new("rt");
    let error = auth
        .refresh(RefreshRequest {
            refresh_token: &token,
            device: None,
            username: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidInput(_)));
    assert_eq!(fake.operations(), ["GetTokensFromRefreshToken"]);
}

#[tokio::test]
async fn sign_out_calls() {
    let fake = Fake::start(vec![
        ok(json!({})),
        ok(json!({})),
        Scripted {
            status: 200,
            headers: vec![],
            body: String::new(),
        },
    ])
    .await;
    let (auth, _) = authenticator(&fake, true);
    auth.revoke(&RefreshToken::new("rt")).await.unwrap();
    auth.global_sign_out(&AccessToken::new("at")).await.unwrap();
    auth.forget_device(&AccessToken::new("at"), "us-east-1_dev")
        .await
        .unwrap();
    assert_eq!(
        fake.operations(),
        ["RevokeToken", "GlobalSignOut", "ForgetDevice"]
    );
    let calls = fake.calls();
    assert_eq!(
        calls[0].body,
        json!({"Token": "rt", "ClientId": CLIENT_ID, "ClientSecret": CLIENT_SECRET})
    );
    assert_eq!(calls[1].body, json!({"AccessToken": "at"}));
    assert_eq!(
        calls[2].body,
        json!({"AccessToken": "at", "DeviceKey": "us-east-1_dev"})
    );
}

#[tokio::test]
async fn error_replies_over_http() {
    let fake = Fake::start(vec![
        html(500),
        Scripted {
            status: 400,
            headers: vec![(
                "x-amzn-ErrorType",
                "NotAuthorizedException:http://internal/",
            )],
            body: String::new(),
        },
        ok(json!({})),
    ])
    .await;
    let (auth, _) = authenticator(&fake, false);
    let error = auth
        .start_login(login("alice", AuthFlow::UserPassword))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::Unnamed));
    assert_eq!(error.class(), ErrorClass::Transient);
    let error = auth
        .start_login(login("alice", AuthFlow::UserPassword))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::NotAuthorized));
    let error = auth
        .start_login(login("alice", AuthFlow::UserPassword))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Protocol(_)), "{error}");
    // No error text repeats the password that was sent.
    assert!(!format!("{error} {error:?}").contains("Passw0rd"));
}

#[tokio::test]
async fn connection_refused_is_a_transient_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let endpoint = url::Url::parse(&format!("http://{address}/")).unwrap();
    let client = CognitoClient::new(endpoint, ClientOptions::default()).unwrap();
    let error = client
        .global_sign_out(&GlobalSignOutRequest {
            access_token: AccessToken::new("at"),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn fetch_jwks_reads_the_pool_path() {
    let fake = Fake::start(vec![ok(json!({"keys": []}))]).await;
    let (auth, _) = authenticator(&fake, false);
    let jwks = auth
        .client()
        .fetch_jwks(&UserPoolId::parse("us-east-1_AbCdEfGhI").unwrap())
        .await
        .unwrap();
    assert_eq!(jwks.kids().count(), 0);
    let call = &fake.calls()[0];
    assert_eq!(call.method, "GET");
    assert_eq!(call.path, "/us-east-1_AbCdEfGhI/.well-known/jwks.json");
}

#[test]
fn debug_is_redacted() {
    let refreshed = Refreshed {
        tokens: TokenSet::from_result(
            &serde_json::from_value(result(None, None)["AuthenticationResult"].clone()).unwrap(),
            UNIX_EPOCH + Duration::from_secs(NOW),
        )
        .unwrap(),
        rotated_refresh_token: Some(RefreshToken::new("hunter2-rotated")),
        new_device: Some(DeviceCredentials {
            device_key: "k".into(),
            device_group_key: "g".into(),
            device_password: DevicePassword::new("hunter2-device"),
        }),
    };
    let token = RefreshToken::new("hunter2-refresh");
    let request = RefreshRequest {
        refresh_token: &token,
        device: refreshed.new_device.as_ref(),
        username: Some("alice"),
    };
    let printed = format!("{refreshed:?} {request:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn handles_and_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Authenticator>();
    send_sync::<crate::flow::PendingLogin>();
    send_sync::<LoginStep>();
    send_sync::<RespondError>();
    send_sync::<Error>();
    send_sync::<Refreshed>();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let client = CognitoClient::new(
        url::Url::parse("http://127.0.0.1:9/").unwrap(),
        ClientOptions::default(),
    )
    .unwrap();
    let app = AppClient {
        user_pool_id: UserPoolId::parse("us-east-1_AbC").unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: None,
    };
    let clock = Arc::new(ManualClock(Mutex::new(UNIX_EPOCH)));
    let auth = Authenticator::new(client, app, clock, Arc::new(CountingEntropy(Mutex::new(0))));
    let token = RefreshToken::new("rt");
    send(&auth.start_login(login("alice", AuthFlow::UserSrp)));
    send(&auth.refresh(RefreshRequest {
        refresh_token: &token,
        device: None,
        username: None,
    }));
    send(&auth.revoke(&token));
}

/// Everything logged anywhere in this test binary, as `field=value` text.
static LOGS: Mutex<String> = Mutex::new(String::new());

struct CaptureSubscriber {
    next_id: std::sync::atomic::AtomicU64,
}

struct CaptureVisitor<'a>(&'a mut String);

impl tracing::field::Visit for CaptureVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl tracing::Subscriber for CaptureSubscriber {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut line = format!("\nspan {}", span.metadata().name());
        span.record(&mut CaptureVisitor(&mut line));
        LOGS.lock().unwrap().push_str(&line);
        tracing::span::Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut line = String::from("\nrecord");
        values.record(&mut CaptureVisitor(&mut line));
        LOGS.lock().unwrap().push_str(&line);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!("\nevent {}", event.metadata().level());
        event.record(&mut CaptureVisitor(&mut line));
        LOGS.lock().unwrap().push_str(&line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn logs_never_carry_secrets() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(CaptureSubscriber {
            next_id: std::sync::atomic::AtomicU64::new(1),
        })
        .expect("no other test installs a subscriber");
    });
    let fake = Fake::start(vec![
        fail(400, "ResourceNotFoundException", "Device does not exist."),
        ok(json!({"ChallengeName": "SMS_MFA", "Session": "hunter2-session", "ChallengeParameters": {"USERNAME": "alice"}})),
        ok(result(Some("hunter2-refresh"), Some(("us-east-1_n", "-g")))),
        fail(500, "InternalErrorException", "boom"),
        fail(400, "UnknownOperationException", ""),
        ok(result(None, None)),
    ])
    .await;
    let (auth, _) = authenticator(&fake, true);
    let mut request = login("alice", AuthFlow::UserPassword);
    request.password = Some(Password::new("hunter2-password"));
    request.device = Some(DeviceCredentials {
        device_key: "us-east-1_dev".into(),
        device_group_key: "-grp".into(),
        device_password: DevicePassword::new("hunter2-device"),
    });
    let LoginStep::Challenge(pending) = auth.start_login(request).await.unwrap() else {
        panic!("expected a challenge")
    };
    let LoginStep::Authenticated(success) = auth
        .respond(
            *pending,
            ChallengeAnswer::Code(OneTimeCode::new("hunter2-code")),
        )
        .await
        .unwrap()
    else {
        panic!("expected tokens")
    };
    assert!(
        success.device.is_none(),
        "ConfirmDevice failed, so no device"
    );
    let token = RefreshToken::new("hunter2-refresh");
    auth.refresh(RefreshRequest {
        refresh_token: &token,
        device: None,
        username: Some("alice"),
    })
    .await
    .unwrap();

    let logs = LOGS.lock().unwrap().clone();
    assert!(
        logs.contains("ConfirmDevice failed"),
        "the capture works: {logs}"
    );
    assert!(logs.contains("challenge"), "{logs}");
    assert!(!logs.contains("hunter2"), "{logs}");
    assert!(!logs.contains(CLIENT_SECRET), "{logs}");
}
