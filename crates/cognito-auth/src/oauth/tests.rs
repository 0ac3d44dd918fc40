//! The OAuth client against a scripted HTTP server on 127.0.0.1: the forms it sends and the
//! replies it makes sense of.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::error::{ErrorClass, OAuthErrorCode, RefreshFailure};
use crate::secret::CodeVerifier;

const NOW: u64 = 1_800_000_000;

struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }
}

/// Counts up, so the verifier and the state differ.
#[derive(Default)]
struct Counting(Mutex<u8>);

impl Entropy for Counting {
    fn fill(&self, dest: &mut [u8]) {
        let mut next = self.0.lock().unwrap();
        for byte in dest {
            *next = next.wrapping_add(1);
            *byte = *next;
        }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: BTreeMap<String, String>,
    form: BTreeMap<String, String>,
}

struct Server {
    url: Url,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Serves the scripted `(status, body)` replies in order, one per connection.
async fn server(script: Vec<(u16, String)>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let task_seen = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = Vec::new();
            let mut chunk = [0_u8; 4096];
            let head_end = loop {
                if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end;
                }
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "the client closed before the headers ended");
                buffer.extend_from_slice(&chunk[..read]);
            };
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
            let mut lines = head.lines();
            let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_owned();
            let headers: BTreeMap<String, String> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                .collect();
            let length: usize = headers
                .get("content-length")
                .map_or(0, |value| value.parse().unwrap());
            let mut body = buffer[head_end + 4..].to_vec();
            while body.len() < length {
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "the client closed before the body ended");
                body.extend_from_slice(&chunk[..read]);
            }
            let form = url::form_urlencoded::parse(&body).into_owned().collect();
            task_seen.lock().unwrap().push(Seen {
                path,
                headers,
                form,
            });
            let (status, reply) = script
                .lock()
                .unwrap()
                .pop_front()
                .expect("a scripted reply");
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
            stream.write_all(response.as_bytes()).await.unwrap();
        }
    });
    Server { url, seen }
}

fn client(server: &Server, secret: Option<&str>) -> OAuthClient {
    OAuthClient::new(
        server.url.clone(),
        "client-1",
        secret.map(ClientSecret::new),
        ClientOptions::default(),
        Arc::new(FixedClock),
    )
    .unwrap()
}

fn jwt(payload: serde_json::Value) -> String {
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

fn access() -> String {
    jwt(
        json!({"sub": "client-1", "token_use": "access", "scope": "api/read api/write",
        "iat": NOW, "exp": NOW + 3600}),
    )
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

#[tokio::test]
async fn client_credentials_sends_basic_auth_and_the_scopes() {
    let reply = json!({"access_token": access(), "expires_in": 3600, "token_type": "Bearer"});
    let server = server(vec![(200, reply.to_string())]).await;
    let tokens = client(&server, Some("s3cret"))
        .client_credentials(&["api/read".into(), "api/write".into()])
        .await
        .unwrap();
    assert!(tokens.id_token().is_none() && tokens.refresh_token().is_none());
    assert_eq!(
        tokens.expires_at(),
        UNIX_EPOCH + Duration::from_secs(NOW + 3600)
    );
    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.path, "/oauth2/token");
    assert_eq!(
        seen.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(seen.headers["authorization"], basic("client-1", "s3cret"));
    assert!(seen.headers["user-agent"].starts_with("cogbroker/"));
    assert_eq!(
        seen.form,
        form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api/read api/write"),
            ("client_id", "client-1"),
        ])
    );
}

#[tokio::test]
async fn client_credentials_without_a_secret_is_refused_before_sending() {
    let server = server(vec![]).await;
    let error = client(&server, None)
        .client_credentials(&[])
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidInput(_)), "{error}");
    assert!(server.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn browser_login_round_trip_with_a_public_client() {
    let id = jwt(
        json!({"sub": "s", "cognito:username": "alice", "token_use": "id",
        "iat": NOW, "exp": NOW + 3600}),
    );
    let reply = json!({"access_token": access(), "id_token": id, "refresh_token": "opaque",
        "expires_in": 3600, "token_type": "Bearer"});
    let server = server(vec![(200, reply.to_string())]).await;
    let oauth = client(&server, None);
    let login = oauth
        .begin_browser_login(
            &Counting::default(),
            "http://localhost:7468/callback",
            &["openid".into()],
            None,
        )
        .unwrap();
    let query: BTreeMap<String, String> = login.url.query_pairs().into_owned().collect();
    assert_eq!(query["state"], login.state);
    assert_eq!(query["code_challenge"], login.pkce.challenge());
    assert!(!format!("{login:?}").contains(login.pkce.verifier().expose_secret()));

    let error = login
        .code_from_redirect("http://localhost:7468/callback?code=c0de&state=forged")
        .unwrap_err();
    assert!(matches!(error, Error::StateMismatch));
    let code = login
        .code_from_redirect(&format!(
            "http://localhost:7468/callback?code=c0de&state={}",
            login.state
        ))
        .unwrap();
    let tokens = oauth.finish_browser_login(&login, &code).await.unwrap();
    assert_eq!(tokens.to_token_set().unwrap().username(), Some("alice"));
    assert_eq!(tokens.refresh_token().unwrap().expose_secret(), "opaque");

    let seen = server.seen.lock().unwrap()[0].clone();
    assert!(!seen.headers.contains_key("authorization"));
    assert_eq!(
        seen.form,
        form(&[
            ("grant_type", "authorization_code"),
            ("code", "c0de"),
            ("redirect_uri", "http://localhost:7468/callback"),
            ("code_verifier", login.pkce.verifier().expose_secret()),
            ("client_id", "client-1"),
        ])
    );
}

#[tokio::test]
async fn refresh_and_revoke_send_their_forms_and_classify_errors() {
    let server = server(vec![
        (400, json!({"error": "invalid_grant"}).to_string()),
        (200, String::new()),
        (401, json!({"error": "invalid_client"}).to_string()),
        (500, "<html>Internal Server Error</html>".into()),
        (429, json!({"message": "Rate exceeded"}).to_string()),
    ])
    .await;
    let oauth = client(&server, Some("s3cret"));
    let refresh_token = RefreshToken::new("rt-value");

    let error = oauth.refresh(&refresh_token).await.unwrap_err();
    assert_eq!(error.refresh_failure(), Some(RefreshFailure::Invalid));
    assert_eq!(error.class(), ErrorClass::NeedsUser);
    assert!(!error.to_string().contains("rt-value"), "{error}");

    oauth.revoke(&refresh_token).await.unwrap();

    let error = oauth.client_credentials(&[]).await.unwrap_err();
    let oauth_error = error.oauth().unwrap();
    assert_eq!(oauth_error.code, OAuthErrorCode::InvalidClient);
    assert!(oauth_error.is_misconfigured());
    assert_eq!(error.class(), ErrorClass::Terminal);

    let error = oauth.refresh(&refresh_token).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient);
    assert_eq!(error.refresh_failure(), None);
    let error = oauth.refresh(&refresh_token).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Throttled);

    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0].form,
        form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt-value"),
            ("client_id", "client-1"),
        ])
    );
    assert_eq!(seen[1].path, "/oauth2/revoke");
    assert_eq!(
        seen[1].headers["authorization"],
        basic("client-1", "s3cret")
    );
    assert_eq!(
        seen[1].form,
        form(&[("token", "rt-value"), ("client_id", "client-1")])
    );
}

#[tokio::test]
async fn a_given_verifier_is_what_the_token_step_sends() {
    let reply = json!({"access_token": access(), "token_type": "Bearer"});
    let server = server(vec![(200, reply.to_string())]).await;
    let pkce = Pkce::from_verifier(CodeVerifier::new(
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    ))
    .unwrap();
    client(&server, None)
        .exchange_code(&AuthorizationCode::new("c"), "http://localhost/cb", &pkce)
        .await
        .unwrap();
    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(
        seen.form["code_verifier"],
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    );
}
