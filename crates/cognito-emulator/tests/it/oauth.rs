//! The OAuth endpoints: the code flow with PKCE through the login form, client credentials,
//! refresh and revoke, and everything they refuse.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cognito_emulator::Fault;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

const OAUTH_SEED: &str = r#"
[[pools]]
id = "us-east-1_Test1"

[[pools.resource_servers]]
identifier = "https://api.example.com"
scopes = ["read", "write"]

[[pools.clients]]
id = "web"
callback_urls = ["http://localhost:7468/callback", "https://app.example.com/cb"]
allowed_oauth_flows = ["code"]
allowed_scopes = ["openid", "email", "aws.cognito.signin.user.admin", "https://api.example.com/read"]

[[pools.clients]]
id = "machine"
secret = "m4ch1nes3cr3tm4ch1nes3cr3t"
allowed_oauth_flows = ["client_credentials"]
allowed_scopes = ["https://api.example.com/read", "https://api.example.com/write"]

[[pools.clients]]
id = "rotating-web"
secret = "r0t4t1ngs3cr3tr0t4t1ngs3cr3t"
callback_urls = ["http://localhost:7468/callback"]
allowed_oauth_flows = ["code"]
allowed_scopes = ["openid"]
rotation = { enabled = true, grace_seconds = 0 }

[[pools.users]]
username = "alice"
password = "Passw0rd!"
email = "alice@example.com"
"#;

const CALLBACK: &str = "http://localhost:7468/callback";
const MACHINE_SECRET: &str = "m4ch1nes3cr3tm4ch1nes3cr3t";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// An HTTP client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// An OAuth answer: status and JSON body (`null` for an empty one).
async fn post(env: &Env, path: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
    let mut request = env
        .http
        .post(env.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"))
    };
    (status, value)
}

fn query_of(location: &str) -> std::collections::BTreeMap<String, String> {
    let url = url::Url::parse(location).expect("absolute Location");
    url.query_pairs().into_owned().collect()
}

/// The authorize query for `client`, with PKCE over `verifier`.
fn authorize_query(
    client: &str,
    redirect_uri: &str,
    scope: &str,
    verifier: &str,
) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", "st4te-with-&-and-<"),
        ("nonce", "n0nce"),
        ("code_challenge", &challenge(verifier)),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// GETs the login form, submits it and returns the redirect's Location.
async fn log_in(
    env: &Env,
    query: &[(String, String)],
    username: &str,
    password: &str,
) -> reqwest::Response {
    let browser = browser();
    let page = browser
        .get(env.url("/oauth2/authorize"))
        .query(query)
        .send()
        .await
        .expect("answered");
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let html = page.text().await.expect("html");
    assert!(html.contains("name=\"password\""), "{html}");
    assert!(
        html.contains("st4te-with-&amp;-and-&lt;"),
        "the state is escaped: {html}"
    );
    let mut fields: Vec<(String, String)> = query.to_vec();
    fields.push(("username".into(), username.into()));
    fields.push(("password".into(), password.into()));
    browser
        .post(env.url("/oauth2/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&fields)
                .finish(),
        )
        .send()
        .await
        .expect("answered")
}

async fn code_for(env: &Env, client: &str, scope: &str, verifier: &str) -> String {
    let query = authorize_query(client, CALLBACK, scope, verifier);
    let answer = log_in(env, &query, "alice", PASSWORD).await;
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(location.starts_with(CALLBACK), "{location}");
    let params = query_of(&location);
    assert_eq!(params["state"], "st4te-with-&-and-<");
    params["code"].clone()
}

fn redeem(client: &str, code: &str, verifier: &str) -> String {
    form(&[
        ("grant_type", "authorization_code"),
        ("client_id", client),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
    ])
}

#[tokio::test]
async fn code_flow_with_pkce_refresh_and_revoke() {
    let env = start(OAUTH_SEED).await;
    let code = code_for(
        &env,
        "web",
        "openid aws.cognito.signin.user.admin",
        VERIFIER,
    )
    .await;
    let (status, tokens) = post(&env, "/oauth2/token", None, &redeem("web", &code, VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_i64().expect("expires_in") > 0);
    let access = tokens["access_token"].as_str().expect("access_token");
    let id = tokens["id_token"]
        .as_str()
        .expect("openid gives an id_token");
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    let access_claims = claims(access);
    assert_eq!(
        access_claims["scope"],
        "openid aws.cognito.signin.user.admin"
    );
    assert_eq!(access_claims["client_id"], "web");
    assert_eq!(access_claims["token_use"], "access");
    assert_eq!(access_claims["username"], "alice");
    let id_claims = claims(id);
    assert_eq!(id_claims["aud"], "web");
    assert_eq!(id_claims["nonce"], "n0nce");
    assert_eq!(id_claims["email"], "alice@example.com");
    let half = &Sha256::digest(access.as_bytes())[..16];
    assert_eq!(id_claims["at_hash"], URL_SAFE_NO_PAD.encode(half));
    let jwks: Value = serde_json::from_str(&env.handle.jwks_json(POOL)).expect("jwks");
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(kids.contains(&header(access)["kid"].as_str().expect("kid")));

    // The admin scope lets the token call the user-pool API.
    let user = env.ok("GetUser", json!({ "AccessToken": access })).await;
    assert_eq!(user["Username"], "alice");

    let (status, renewed) = post(
        &env,
        "/oauth2/token",
        None,
        &form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "web"),
            ("refresh_token", refresh),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{renewed}");
    assert!(
        renewed.get("refresh_token").is_none(),
        "no rotation on this client"
    );
    assert_eq!(
        claims(renewed["access_token"].as_str().expect("access"))["scope"],
        access_claims["scope"]
    );
    assert!(renewed["id_token"].is_string());

    let (status, body) = post(
        &env,
        "/oauth2/revoke",
        None,
        &form(&[("token", refresh), ("client_id", "web")]),
    )
    .await;
    assert_eq!((status, body), (200, Value::Null));
    let (status, body) = post(
        &env,
        "/oauth2/token",
        None,
        &form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "web"),
            ("refresh_token", refresh),
        ]),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let failure = env.fail("GetUser", json!({ "AccessToken": access })).await;
    assert_eq!(failure.message, "Access Token has been revoked");

    let (status, body) = post(
        &env,
        "/oauth2/revoke",
        None,
        &form(&[("token", access), ("client_id", "web")]),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_token_type"))
    );
    assert_eq!(env.handle.stats().count("oauth2/token", "ok"), 2);
    assert_eq!(env.handle.stats().count("oauth2/token", "invalid_grant"), 1);
}

#[tokio::test]
async fn codes_are_bound_to_the_verifier_the_redirect_uri_and_one_use() {
    let env = start(OAUTH_SEED).await;

    let code = code_for(&env, "web", "openid", VERIFIER).await;
    let wrong = "a-different-verifier-that-is-long-enough-to-be-valid-0123";
    let (status, body) = post(&env, "/oauth2/token", None, &redeem("web", &code, wrong)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (status, body) = post(&env, "/oauth2/token", None, &redeem("web", &code, VERIFIER)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a failed attempt spends the code"
    );

    let code = code_for(&env, "web", "openid", VERIFIER).await;
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("client_id", "web"),
        ("code", &code),
        ("redirect_uri", "https://app.example.com/cb"),
        ("code_verifier", VERIFIER),
    ]);
    let (status, answer) = post(&env, "/oauth2/token", None, &body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant")),
        "another callback URL"
    );

    let code = code_for(&env, "web", "openid", VERIFIER).await;
    let (status, answer) = post(
        &env,
        "/oauth2/token",
        None,
        &redeem("rotating-web", &code, VERIFIER),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_client")),
        "a secret client without its secret"
    );
    let (status, answer) = post(
        &env,
        "/oauth2/token",
        Some(&basic("rotating-web", "r0t4t1ngs3cr3tr0t4t1ngs3cr3t")),
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ]),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant")),
        "another client's code"
    );

    let code = code_for(
        &env,
        "web",
        "openid aws.cognito.signin.user.admin",
        VERIFIER,
    )
    .await;
    let (status, first) = post(&env, "/oauth2/token", None, &redeem("web", &code, VERIFIER)).await;
    assert_eq!(status, 200);
    let (status, again) = post(&env, "/oauth2/token", None, &redeem("web", &code, VERIFIER)).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant")),
        "a reused code"
    );
    let failure = env
        .fail("GetUser", json!({ "AccessToken": first["access_token"] }))
        .await;
    assert_eq!(
        failure.message, "Access Token has been revoked",
        "reuse revokes what the code gave"
    );

    let code = code_for(&env, "web", "openid", VERIFIER).await;
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("client_id", "web"),
        ("code", &code),
        ("redirect_uri", CALLBACK),
    ]);
    let (status, answer) = post(&env, "/oauth2/token", None, &body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_request")),
        "no verifier"
    );

    let code = code_for(&env, "web", "openid", VERIFIER).await;
    env.handle.advance_clock(301);
    let (status, answer) = post(&env, "/oauth2/token", None, &redeem("web", &code, VERIFIER)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant")),
        "an expired code"
    );
}

#[tokio::test]
async fn authorize_never_redirects_to_an_unknown_callback() {
    let env = start(OAUTH_SEED).await;
    let browser = browser();
    for (client, redirect_uri) in [
        ("web", "http://localhost:7468/callback/evil"),
        ("web", "http://localhost:7469/callback"),
        ("web", "https://attacker.example/cb"),
        ("nobody", CALLBACK),
    ] {
        let query = authorize_query(client, redirect_uri, "openid", VERIFIER);
        let page = browser
            .get(env.url("/oauth2/authorize"))
            .query(&query)
            .send()
            .await
            .expect("answered");
        assert_eq!(page.status(), 400, "{client} {redirect_uri}");
        assert!(page.headers().get("location").is_none());
        assert!(page.text().await.expect("html").contains("id=\"error\""));
    }

    // With a known callback, other errors go back to it, with the state.
    let query = authorize_query(
        "web",
        CALLBACK,
        "openid https://api.example.com/write",
        VERIFIER,
    );
    let answer = browser
        .get(env.url("/oauth2/authorize"))
        .query(&query)
        .send()
        .await
        .expect("answered");
    assert_eq!(answer.status(), 302);
    let params = query_of(answer.headers()["location"].to_str().expect("ascii"));
    assert_eq!(params["error"], "invalid_scope");
    assert_eq!(params["state"], "st4te-with-&-and-<");
    assert!(!params.contains_key("code"));

    let mut plain = authorize_query("web", CALLBACK, "openid", VERIFIER);
    plain.retain(|(k, _)| k != "code_challenge_method");
    plain.push(("code_challenge_method".into(), "plain".into()));
    let answer = browser
        .get(env.url("/oauth2/authorize"))
        .query(&plain)
        .send()
        .await
        .expect("answered");
    assert_eq!(
        query_of(answer.headers()["location"].to_str().expect("ascii"))["error"],
        "invalid_request"
    );

    let query = authorize_query("machine", CALLBACK, "openid", VERIFIER);
    let page = browser
        .get(env.url("/oauth2/authorize"))
        .query(&query)
        .send()
        .await
        .expect("answered");
    assert_eq!(
        page.status(),
        400,
        "the machine client has no callback URLs"
    );

    // A wrong password shows the form again, and never a code.
    let query = authorize_query("web", CALLBACK, "openid", VERIFIER);
    let answer = log_in(&env, &query, "alice", "Wrong-Passw0rd!").await;
    assert_eq!(answer.status(), 400);
    assert!(answer.headers().get("location").is_none());
    let html = answer.text().await.expect("html");
    assert!(html.contains("Incorrect username or password."), "{html}");
    assert!(
        !html.contains("Wrong-Passw0rd!"),
        "the password is not echoed"
    );
}

#[tokio::test]
async fn client_credentials_check_the_secret_and_the_scopes() {
    let env = start(OAUTH_SEED).await;
    let grant = |scope: Option<&str>| {
        let mut pairs = vec![("grant_type", "client_credentials")];
        pairs.extend(scope.map(|s| ("scope", s)));
        form(&pairs)
    };
    let auth = basic("machine", MACHINE_SECRET);
    let (status, tokens) = post(
        &env,
        "/oauth2/token",
        Some(&auth),
        &grant(Some("https://api.example.com/read")),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens.get("refresh_token").is_none() && tokens.get("id_token").is_none());
    let access = tokens["access_token"].as_str().expect("access_token");
    let c = claims(access);
    assert_eq!(
        (c["sub"].as_str(), c["client_id"].as_str()),
        (Some("machine"), Some("machine"))
    );
    assert_eq!(c["scope"], "https://api.example.com/read");
    assert_eq!(c["token_use"], "access");
    let failure = env.fail("GetUser", json!({ "AccessToken": access })).await;
    assert_eq!(
        failure.code, "NotAuthorizedException",
        "no user behind a machine token"
    );

    let (_, all) = post(&env, "/oauth2/token", Some(&auth), &grant(None)).await;
    assert_eq!(
        claims(all["access_token"].as_str().expect("access"))["scope"],
        "https://api.example.com/read https://api.example.com/write"
    );
    let in_body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "machine"),
        ("client_secret", MACHINE_SECRET),
    ]);
    assert_eq!(
        post(&env, "/oauth2/token", None, &in_body).await.0,
        200,
        "client_secret_post"
    );

    for (auth, body, status, error) in [
        (
            Some(basic("machine", "wrong")),
            grant(None),
            401,
            "invalid_client",
        ),
        (None, grant(None), 401, "invalid_client"),
        (
            Some(basic("nobody", "x")),
            grant(None),
            401,
            "invalid_client",
        ),
        (
            Some(auth.clone()),
            grant(Some("https://api.example.com/delete")),
            400,
            "invalid_scope",
        ),
        (
            Some(auth.clone()),
            grant(Some("openid")),
            400,
            "invalid_scope",
        ),
        (
            Some(auth.clone()),
            form(&[("grant_type", "password")]),
            400,
            "unsupported_grant_type",
        ),
        (
            Some(auth.clone()),
            form(&[("scope", "x")]),
            400,
            "invalid_request",
        ),
        (
            None,
            form(&[("grant_type", "client_credentials"), ("client_id", "web")]),
            400,
            "unauthorized_client",
        ),
    ] {
        let (got, body) = post(&env, "/oauth2/token", auth.as_deref(), &body).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(error)),
            "{body}"
        );
    }

    let response = env
        .http
        .post(env.url("/oauth2/token"))
        .header("authorization", &auth)
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn faults_and_counters_cover_the_oauth_endpoints() {
    let env = start(OAUTH_SEED).await;
    let auth = basic("machine", MACHINE_SECRET);
    let grant = form(&[("grant_type", "client_credentials")]);
    env.handle.inject(Fault::throttle("oauth2/token"));
    env.handle
        .inject(Fault::error("oauth2/token", "server_error", "boom").times(1));
    let (status, body) = post(&env, "/oauth2/token", Some(&auth), &grant).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_requests"))
    );
    let (status, body) = post(&env, "/oauth2/token", Some(&auth), &grant).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("server_error"))
    );
    assert_eq!(
        post(&env, "/oauth2/token", Some(&auth), &grant).await.0,
        200
    );
    env.handle
        .inject(Fault::html_error("oauth2/authorize", 503));
    let page = browser()
        .get(env.url("/oauth2/authorize"))
        .query(&authorize_query("web", CALLBACK, "openid", VERIFIER))
        .send()
        .await
        .expect("answered");
    assert_eq!(page.status(), 503);
    let stats = env.handle.stats();
    assert_eq!(stats.calls("oauth2/token"), 3);
    assert_eq!(stats.count("oauth2/token", "ok"), 1);
    assert_eq!(stats.count("oauth2/authorize", "HtmlError"), 1);
}

#[tokio::test]
async fn rotating_clients_roll_the_refresh_token_at_the_token_endpoint() {
    let env = start(OAUTH_SEED).await;
    let code = code_for(&env, "rotating-web", "openid", VERIFIER).await;
    let auth = basic("rotating-web", "r0t4t1ngs3cr3tr0t4t1ngs3cr3t");
    let redeem = form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", VERIFIER),
    ]);
    let (status, tokens) = post(&env, "/oauth2/token", Some(&auth), &redeem).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let renew = |token: &str| form(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
    let (status, renewed) = post(&env, "/oauth2/token", Some(&auth), &renew(refresh)).await;
    assert_eq!(status, 200, "{renewed}");
    let next = renewed["refresh_token"]
        .as_str()
        .expect("a rotated refresh token");
    assert_ne!(next, refresh);
    env.handle.advance_clock(1);
    let (status, reused) = post(&env, "/oauth2/token", Some(&auth), &renew(refresh)).await;
    assert_eq!(
        (status, reused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        post(&env, "/oauth2/token", Some(&auth), &renew(next))
            .await
            .0,
        200
    );
}
