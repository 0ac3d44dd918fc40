//! The OAuth client against a scripted HTTP server on 127.0.0.1: the forms it sends and the
//! replies it makes sense of.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::error::{ErrorClass, OAuthErrorCode, RefreshFailure};
use crate::secret::CodeVerifier;
use crate::testing::{Server, server};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

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
    assert!(error.is_misconfigured());
    assert_eq!(error.class(), ErrorClass::Terminal);

    let error = oauth.refresh(&refresh_token).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Transient);
    assert!(!error.is_misconfigured());
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
