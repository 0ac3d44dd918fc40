//! The authorization_code source through the broker: the task holds the PKCE verifier and
//! `state`, refuses a redirect with another `state` (the login stays pending, the code is not
//! redeemed), redeems the right one, renews with the refresh_token grant, revokes on logout,
//! and expires a browser login nobody finished.

use super::*;

const CALLBACK: &str = "http://localhost:7468/callback";

const WEB_SEED: &str = r#"
[[pools]]
id = "us-east-1_Web"

[[pools.clients]]
id = "webapp"
access_token_ttl = 60
id_token_ttl = 60
allowed_oauth_flows = ["code"]
allowed_scopes = ["openid", "email"]
callback_urls = ["http://localhost:7468/callback"]

[[pools.users]]
username = "alice"
password = "Alice-Passw0rd!"
email = "alice@example.com"
"#;

async fn start() -> (RunningEmulator, Arc<TestClock>, Broker) {
    let seed = Seed::from_toml(WEB_SEED).expect("the seed parses");
    let emulator = Emulator::start(seed, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("the emulator starts");
    let text = format!(
        "[daemon]\nstore = \"memory\"\n[profiles.web]\ngrant = \"authorization_code\"\ndomain = \"{}\"\nclient_id = \"webapp\"\nscopes = [\"email\"]\n",
        emulator.endpoint()
    );
    let config = parse(&text, Path::new("test.toml"), &test_env()).expect("the config parses");
    let clock = Arc::new(TestClock(Mutex::new(SystemTime::now())));
    let options = BrokerOptions {
        env: Arc::new(test_env()),
        tick_interval: Duration::from_millis(50),
        ..BrokerOptions::new()
    };
    let broker = Broker::with_options(
        Arc::new(config),
        memory(),
        clock.clone(),
        Arc::new(OsEntropy),
        options,
    )
    .expect("the broker builds");
    broker.restore().await;
    (emulator, clock, broker)
}

/// What the browser does: the form at `authorize_url`, the password posted, the redirect.
async fn sign_in(authorize_url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = client
        .get(authorize_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut fields: Vec<(String, String)> = html
        .split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|input| {
            let name = input.split("name=\"").nth(1)?.split('"').next()?;
            let value = input.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.replace("&amp;", "&")))
        })
        .collect();
    fields.push(("username".to_owned(), "alice".to_owned()));
    fields.push(("password".to_owned(), ALICE_PASSWORD.to_owned()));
    let url = url::Url::parse(authorize_url).unwrap();
    let answer = client
        .post(url.join("/oauth2/authorize").unwrap())
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    answer.headers()["location"].to_str().unwrap().to_owned()
}

fn redirect(url: &str) -> AnswerInput {
    AnswerInput {
        redirect_url: Some(SecretString::from(url.to_owned())),
        ..AnswerInput::default()
    }
}

async fn begin(broker: &Broker) -> (String, String) {
    match broker.login("web", None).await.unwrap() {
        LoginOutcome::Browser {
            login_id,
            authorize_url,
        } => (login_id, authorize_url),
        other => panic!("expected a browser login, got {other:?}"),
    }
}

#[tokio::test]
async fn a_browser_login_checks_state_then_redeems_renews_and_revokes() {
    let (emulator, clock, broker) = start().await;
    let (login_id, url) = begin(&broker).await;
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(
        url.contains(&format!("redirect_uri={}", urlencode(CALLBACK))),
        "{url}"
    );
    assert_eq!(broker.status("web").unwrap().state, "logging_in");
    let redirect_url = sign_in(&url).await;
    let state = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "state")
        .unwrap()
        .1
        .into_owned();

    let forged = redirect_url.replace(&state, "0123456789abcdef0123456789abcdef");
    let error = broker
        .answer(&login_id, redirect(&forged))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "bad_input");
    assert!(error.to_string().contains("state"), "{error}");
    assert_eq!(emulator.handle().calls("oauth2/token"), 0, "never redeemed");
    assert_eq!(broker.status("web").unwrap().state, "logging_in");

    let outcome = broker
        .answer(&login_id, redirect(&redirect_url))
        .await
        .unwrap();
    assert!(
        matches!(outcome, LoginOutcome::Authenticated { .. }),
        "{outcome:?}"
    );
    let id = broker.token("web", TokenKind::Id, None).await.unwrap();
    let claims = cognito_auth::tokens::decode_claims(id.expose_token()).unwrap();
    assert_eq!(claims.username.as_deref(), Some("alice"));
    let shown = format!("{outcome:?} {:?}", broker.profiles());
    assert!(!shown.contains(&redirect_url), "{shown}");

    // Renewal by the refresh_token grant once the floor is reached.
    *lock(&clock.0) += Duration::from_secs(45);
    emulator.handle().advance_clock(45);
    let renewed = broker.token("web", TokenKind::Access, None).await.unwrap();
    assert!(renewed.expires_in >= 59, "{}", renewed.expires_in);
    assert_eq!(emulator.handle().calls("oauth2/token"), 2);

    broker.logout("web", false).await.unwrap();
    assert_eq!(emulator.handle().calls("oauth2/revoke"), 1);
    let error = broker
        .token("web", TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "login_required");
}

#[tokio::test]
async fn an_unfinished_browser_login_expires() {
    let (_emulator, clock, broker) = start().await;
    let (login_id, url) = begin(&broker).await;
    let redirect_url = sign_in(&url).await;
    let error = broker.login("web", None).await.unwrap_err();
    assert_eq!(error.code(), "login_in_progress");
    *lock(&clock.0) += Duration::from_secs(11 * 60);
    let error = broker
        .answer(&login_id, redirect(&redirect_url))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "challenge_expired");
    // A new one may start.
    begin(&broker).await;
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
