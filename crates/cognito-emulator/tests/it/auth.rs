//! Sign-in: error shapes, SRP verification, SECRET_HASH, statuses, sessions, lockout, email alias.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn error_shapes_match_the_service() {
    let env = start(SEED).await;
    let unknown = env.fail("ListUsers", json!({})).await;
    assert_eq!(
        (unknown.code.as_str(), unknown.status),
        ("UnknownOperationException", 400)
    );

    let response = env
        .http
        .post(env.url("/"))
        .body("{}")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["__type"], "UnknownOperationException");

    let response = env
        .http
        .post(env.url("/"))
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.InitiateAuth",
        )
        .body("{not json")
        .send()
        .await
        .expect("answered");
    assert_eq!(
        response.headers()["content-type"],
        "application/x-amz-json-1.1"
    );
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["__type"], "SerializationException");

    let missing = env
        .fail("InitiateAuth", json!({ "AuthFlow": "USER_PASSWORD_AUTH" }))
        .await;
    assert_eq!(missing.code, "InvalidParameterException");
    assert!(
        missing.message.contains("Value null at 'clientId'"),
        "{}",
        missing.message
    );

    let no_client = env
        .fail(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": "nope", "AuthParameters": {} }),
        )
        .await;
    assert_eq!(no_client.code, "ResourceNotFoundException");

    let disabled_flow = env
        .fail(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": "srp-only",
                    "AuthParameters": { "USERNAME": "alice", "PASSWORD": PASSWORD } }),
        )
        .await;
    assert_eq!(
        disabled_flow.message,
        "USER_PASSWORD_AUTH flow not enabled for this client"
    );

    let missing_param = env
        .fail("InitiateAuth", json!({ "AuthFlow": "USER_SRP_AUTH", "ClientId": PUBLIC, "AuthParameters": { "USERNAME": "alice" } }))
        .await;
    assert_eq!(missing_param.message, "Missing required parameter SRP_A");
    assert_eq!(
        env.handle
            .stats()
            .count("InitiateAuth", "InvalidParameterException"),
        3
    );
}

#[tokio::test]
async fn password_login_issues_verifiable_tokens() {
    let env = start(SEED).await;
    let answer = env
        .password_login(PUBLIC, "alice", PASSWORD)
        .await
        .expect("signed in");
    let result = tokens(&answer);
    assert_eq!(result["TokenType"], "Bearer");
    assert_eq!(result["ExpiresIn"], 600);
    assert!(
        result.get("NewDeviceMetadata").is_none(),
        "device tracking is off"
    );
    let access = result["AccessToken"].as_str().expect("access token");
    let id = result["IdToken"].as_str().expect("id token");
    assert_ne!(
        header(access)["kid"],
        header(id)["kid"],
        "access and id tokens use different keys"
    );
    let a = claims(access);
    let issuer = format!("https://cognito-idp.us-east-1.amazonaws.com/{POOL}");
    assert_eq!(a["iss"], issuer.as_str());
    assert_eq!(a["client_id"], PUBLIC);
    assert_eq!(a["token_use"], "access");
    assert_eq!(a["username"], "alice");
    assert_eq!(a["scope"], "aws.cognito.signin.user.admin");
    assert_eq!(a["version"], 2);
    assert_eq!(a["cognito:groups"], json!(["admins"]));
    assert_eq!(
        a["exp"].as_i64().expect("exp") - a["iat"].as_i64().expect("iat"),
        600
    );
    let i = claims(id);
    assert_eq!(i["aud"], PUBLIC);
    assert_eq!(i["cognito:username"], "alice");
    assert_eq!(i["email"], "alice@example.com");
    assert_eq!(i["email_verified"], true);
    assert_eq!(i["name"], "Alice");
    assert_eq!(i["origin_jti"], a["origin_jti"]);
    assert_eq!(i["sub"], a["sub"]);
    assert_eq!(env.handle.issuer(POOL).as_deref(), Some(issuer.as_str()));

    let jwks: serde_json::Value = env
        .http
        .get(env.url(&format!("/{POOL}/.well-known/jwks.json")))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(kids.contains(&header(access)["kid"].as_str().expect("kid")));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&env.handle.jwks_json(POOL)).expect("json"),
        jwks
    );
    let oidc: serde_json::Value = env
        .http
        .get(env.url(&format!("/{POOL}/.well-known/openid-configuration")))
        .send()
        .await
        .expect("oidc")
        .json()
        .await
        .expect("json");
    assert_eq!(oidc["issuer"], issuer.as_str());
    assert!(
        oidc["jwks_uri"]
            .as_str()
            .expect("uri")
            .ends_with("/.well-known/jwks.json")
    );

    let user = env.ok("GetUser", json!({ "AccessToken": access })).await;
    assert_eq!(user["Username"], "alice");

    let wrong = env
        .password_login(PUBLIC, "alice", "Wrong-passw0rd")
        .await
        .expect_err("wrong password");
    assert_eq!(
        (wrong.code.as_str(), wrong.message.as_str()),
        ("NotAuthorizedException", "Incorrect username or password.")
    );
    let unknown = env
        .password_login(PUBLIC, "nobody", PASSWORD)
        .await
        .expect_err("unknown user");
    assert_eq!(
        unknown.message, "Incorrect username or password.",
        "user existence is not revealed"
    );
    let disabled = env
        .password_login(PUBLIC, "disabled", PASSWORD)
        .await
        .expect_err("disabled");
    assert_eq!(disabled.message, "User is disabled.");
}

#[tokio::test]
async fn srp_login_is_verified_for_both_salt_shapes() {
    let env = start(SEED).await;
    // Seeded salts alternate their top bit: alice/carol need PAD's zero byte, bob/dave do not.
    for user in ["alice", "bob", "carol", "dave"] {
        let answer = env
            .srp_login(PUBLIC, user, PASSWORD)
            .await
            .unwrap_or_else(|f| panic!("{user}: {f:?}"));
        assert_eq!(
            claims(tokens(&answer)["AccessToken"].as_str().expect("token"))["username"],
            user
        );
        let wrong = env
            .srp_login(PUBLIC, user, "Wrong-Passw0rd!")
            .await
            .expect_err("wrong password");
        assert_eq!(wrong.message, "Incorrect username or password.");
    }
    // Case-insensitive usernames; the challenge names the real one.
    assert!(env.srp_login(PUBLIC, "ALICE", PASSWORD).await.is_ok());
}

/// Starts USER_SRP_AUTH and returns the client, the challenge parameters and the user id.
async fn srp_challenge(env: &Env, client: &str, username: &str) -> (SrpClient, serde_json::Value) {
    let srp = SrpClient::new();
    let challenge = env
        .ok(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_SRP_AUTH", "ClientId": client,
                    "AuthParameters": { "USERNAME": username, "SRP_A": srp.a_hex() } }),
        )
        .await;
    assert!(
        challenge.get("Session").is_none(),
        "SRP challenges carry no Session by default"
    );
    (srp, challenge["ChallengeParameters"].clone())
}

fn verifier_answer(
    params: &serde_json::Value,
    signature: &str,
    timestamp: &str,
) -> serde_json::Value {
    json!({ "ChallengeName": "PASSWORD_VERIFIER", "ClientId": PUBLIC, "ChallengeResponses": {
        "USERNAME": params["USER_ID_FOR_SRP"], "PASSWORD_CLAIM_SECRET_BLOCK": params["SECRET_BLOCK"],
        "PASSWORD_CLAIM_SIGNATURE": signature, "TIMESTAMP": timestamp } })
}

#[tokio::test]
async fn srp_timestamps_are_checked_like_the_service() {
    let env = start(SEED).await;
    let now = env.now();

    // A zero-padded day parses but is not what the service signs: the signature is wrong.
    // Move the emulator clock to Thu Dec 3 12:00:00 UTC 2026 so the day has one digit.
    env.handle.set_clock_offset(1_796_299_200 - now);
    let (srp, params) = srp_challenge(&env, PUBLIC, "alice").await;
    let padded = java_timestamp_with(env.now(), true);
    assert!(padded.starts_with("Thu Dec 03 "), "{padded}");
    let signature = srp.signature(REALM, "alice", PASSWORD, &params, &padded);
    let failure = env
        .fail(
            "RespondToAuthChallenge",
            verifier_answer(&params, &signature, &padded),
        )
        .await;
    assert_eq!(failure.message, "Incorrect username or password.");

    let (srp, params) = srp_challenge(&env, PUBLIC, "alice").await;
    let bad = "2026-11-21T20:52:17Z";
    let signature = srp.signature(REALM, "alice", PASSWORD, &params, bad);
    let failure = env
        .fail(
            "RespondToAuthChallenge",
            verifier_answer(&params, &signature, bad),
        )
        .await;
    assert_eq!(failure.code, "InvalidParameterException");
    assert_eq!(
        failure.message,
        "TIMESTAMP format should be EEE MMM d HH:mm:ss z yyyy in english."
    );

    let (srp, params) = srp_challenge(&env, PUBLIC, "alice").await;
    let stale = java_timestamp(env.now() - 301);
    let signature = srp.signature(REALM, "alice", PASSWORD, &params, &stale);
    let failure = env
        .fail(
            "RespondToAuthChallenge",
            verifier_answer(&params, &signature, &stale),
        )
        .await;
    assert_eq!(failure.code, "NotAuthorizedException");

    let (srp, params) = srp_challenge(&env, PUBLIC, "alice").await;
    let fresh = java_timestamp(env.now() - 200);
    let signature = srp.signature(REALM, "alice", PASSWORD, &params, &fresh);
    env.ok(
        "RespondToAuthChallenge",
        verifier_answer(&params, &signature, &fresh),
    )
    .await;
    let reused = env
        .fail(
            "RespondToAuthChallenge",
            verifier_answer(&params, &signature, &fresh),
        )
        .await;
    assert_eq!(
        reused.message,
        "Invalid session for the user, session can only be used once."
    );
}

#[tokio::test]
async fn srp_for_an_unknown_user_is_a_fake_challenge() {
    let env = start(SEED).await;
    let (srp, params) = srp_challenge(&env, PUBLIC, "ghost").await;
    let signature = srp.signature(
        REALM,
        "ghost",
        PASSWORD,
        &params,
        &java_timestamp(env.now()),
    );
    let mut answer = verifier_answer(&params, &signature, &java_timestamp(env.now()));
    answer["ChallengeResponses"]["USERNAME"] = json!("ghost");
    let failure = env.fail("RespondToAuthChallenge", answer).await;
    assert_eq!(failure.message, "Incorrect username or password.");

    let zero = env
        .fail(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_SRP_AUTH", "ClientId": PUBLIC, "AuthParameters": { "USERNAME": "alice", "SRP_A": "00" } }),
        )
        .await;
    assert_eq!(
        zero.code, "InvalidParameterException",
        "A mod N == 0 is refused"
    );
}

#[tokio::test]
async fn secret_hash_is_checked_on_every_call() {
    let env = start(SEED).await;
    let login = |hash: Option<String>| {
        let mut params = json!({ "USERNAME": "alice", "PASSWORD": PASSWORD });
        if let Some(hash) = hash {
            params["SECRET_HASH"] = json!(hash);
        }
        json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": SECRET_CLIENT, "AuthParameters": params })
    };
    let missing = env.fail("InitiateAuth", login(None)).await;
    assert_eq!(
        missing.message,
        format!(
            "Client {SECRET_CLIENT} is configured with secret but SECRET_HASH was not received"
        )
    );
    let wrong = env
        .fail(
            "InitiateAuth",
            login(Some(secret_hash(SECRET, "bob", SECRET_CLIENT))),
        )
        .await;
    assert_eq!(
        wrong.message,
        format!("Unable to verify secret hash for client {SECRET_CLIENT}")
    );
    let answer = env
        .ok(
            "InitiateAuth",
            login(Some(secret_hash(SECRET, "alice", SECRET_CLIENT))),
        )
        .await;
    let refresh = tokens(&answer)["RefreshToken"]
        .as_str()
        .expect("refresh")
        .to_owned();

    // SRP: the challenge response needs a hash over the USERNAME it sends.
    let srp = SrpClient::new();
    let challenge = env
        .ok(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_SRP_AUTH", "ClientId": SECRET_CLIENT, "AuthParameters": {
                "USERNAME": "alice", "SRP_A": srp.a_hex(), "SECRET_HASH": secret_hash(SECRET, "alice", SECRET_CLIENT) } }),
        )
        .await;
    let params = &challenge["ChallengeParameters"];
    let timestamp = java_timestamp(env.now());
    let signature = srp.signature(REALM, "alice", PASSWORD, params, &timestamp);
    let mut answer = json!({ "ChallengeName": "PASSWORD_VERIFIER", "ClientId": SECRET_CLIENT, "ChallengeResponses": {
        "USERNAME": "alice", "PASSWORD_CLAIM_SECRET_BLOCK": params["SECRET_BLOCK"],
        "PASSWORD_CLAIM_SIGNATURE": signature, "TIMESTAMP": timestamp } });
    let missing = env.fail("RespondToAuthChallenge", answer.clone()).await;
    assert!(missing.message.contains("SECRET_HASH was not received"));
    answer["ChallengeResponses"]["SECRET_HASH"] =
        json!(secret_hash(SECRET, "alice", SECRET_CLIENT));
    env.ok("RespondToAuthChallenge", answer).await;

    // REFRESH_TOKEN_AUTH hashes the internal username; GetTokensFromRefreshToken takes the raw secret.
    let refresh_auth = |hash: &str| {
        json!({ "AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": SECRET_CLIENT,
                "AuthParameters": { "REFRESH_TOKEN": refresh, "SECRET_HASH": hash } })
    };
    let wrong = env
        .fail(
            "InitiateAuth",
            refresh_auth(&secret_hash(SECRET, "alice@example.com", SECRET_CLIENT)),
        )
        .await;
    assert_eq!(
        wrong.message,
        format!("Unable to verify secret hash for client {SECRET_CLIENT}")
    );
    env.ok(
        "InitiateAuth",
        refresh_auth(&secret_hash(SECRET, "alice", SECRET_CLIENT)),
    )
    .await;
    let no_secret = env
        .fail(
            "GetTokensFromRefreshToken",
            json!({ "ClientId": SECRET_CLIENT, "RefreshToken": refresh }),
        )
        .await;
    assert_eq!(no_secret.code, "NotAuthorizedException");
    env.ok(
        "GetTokensFromRefreshToken",
        json!({ "ClientId": SECRET_CLIENT, "RefreshToken": refresh, "ClientSecret": SECRET }),
    )
    .await;
}

#[tokio::test]
async fn user_statuses() {
    let env = start(SEED).await;
    let unconfirmed = env
        .password_login(PUBLIC, "unconfirmed", PASSWORD)
        .await
        .expect_err("unconfirmed");
    assert_eq!(unconfirmed.code, "UserNotConfirmedException");
    let reset = env
        .password_login(PUBLIC, "resetme", PASSWORD)
        .await
        .expect_err("reset");
    assert_eq!(reset.code, "PasswordResetRequiredException");
    let wrong_first = env
        .password_login(PUBLIC, "unconfirmed", "Nope-Passw0rd!")
        .await
        .expect_err("wrong");
    assert_eq!(
        wrong_first.code, "NotAuthorizedException",
        "the password is checked before the status"
    );
    assert_eq!(
        env.handle.user_status(POOL, "resetme").as_deref(),
        Some("RESET_REQUIRED")
    );
    assert!(env.handle.set_password(POOL, "resetme", "New-Passw0rd!"));
    assert!(
        env.password_login(PUBLIC, "resetme", "New-Passw0rd!")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn new_password_required_enforces_policy_and_attributes() {
    let env = start(SEED).await;
    let challenge = env
        .srp_login(PUBLIC, "newbie", "Temp0rary!")
        .await
        .expect("challenge");
    assert_eq!(challenge["ChallengeName"], "NEW_PASSWORD_REQUIRED");
    let params = &challenge["ChallengeParameters"];
    assert_eq!(params["requiredAttributes"], "[\"userAttributes.name\"]");
    let session = challenge["Session"].as_str().expect("session");
    let respond = |password: &str, name: Option<&str>| {
        let mut responses = json!({ "USERNAME": "newbie", "NEW_PASSWORD": password });
        if let Some(name) = name {
            responses["userAttributes.name"] = json!(name);
        }
        json!({ "ChallengeName": "NEW_PASSWORD_REQUIRED", "ClientId": PUBLIC, "Session": session, "ChallengeResponses": responses })
    };
    let weak = env
        .fail("RespondToAuthChallenge", respond("short", Some("N")))
        .await;
    assert_eq!(weak.code, "InvalidPasswordException");
    assert_eq!(
        weak.message,
        "Password did not conform with policy: Password not long enough"
    );
    let no_symbol = env
        .fail("RespondToAuthChallenge", respond("Longenough1", Some("N")))
        .await;
    assert_eq!(
        no_symbol.message,
        "Password did not conform with policy: Password must have symbol characters"
    );
    let no_name = env
        .fail(
            "RespondToAuthChallenge",
            respond("Brand-New-Passw0rd", None),
        )
        .await;
    assert_eq!(no_name.code, "InvalidParameterException");
    // The same session is still good after those retryable errors.
    let answer = env
        .ok(
            "RespondToAuthChallenge",
            respond("Brand-New-Passw0rd", Some("Newbie")),
        )
        .await;
    assert_eq!(
        claims(tokens(&answer)["IdToken"].as_str().expect("id"))["name"],
        "Newbie"
    );
    assert_eq!(
        env.handle.user_status(POOL, "newbie").as_deref(),
        Some("CONFIRMED")
    );
    let reused = env
        .fail(
            "RespondToAuthChallenge",
            respond("Brand-New-Passw0rd", Some("Newbie")),
        )
        .await;
    assert_eq!(
        reused.message,
        "Invalid session for the user, session can only be used once."
    );
    assert!(
        env.srp_login(PUBLIC, "newbie", "Brand-New-Passw0rd")
            .await
            .is_ok(),
        "the new verifier works"
    );
}

#[tokio::test]
async fn sessions_expire_by_the_emulator_clock() {
    let env = start(SEED).await;
    let challenge = env
        .password_login(PUBLIC, "newbie", "Temp0rary!")
        .await
        .expect("challenge");
    let session = challenge["Session"].as_str().expect("session").to_owned();
    assert!((20..=2048).contains(&session.len()));
    env.handle.advance_clock(181);
    let expired = env
        .fail(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "NEW_PASSWORD_REQUIRED", "ClientId": PUBLIC, "Session": session,
                    "ChallengeResponses": { "USERNAME": "newbie", "NEW_PASSWORD": "Brand-New-Passw0rd", "userAttributes.name": "N" } }),
        )
        .await;
    assert_eq!(
        expired.message,
        "Invalid session for the user, session is expired."
    );
    let missing = env
        .fail(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "SMS_MFA", "ClientId": PUBLIC, "ChallengeResponses": { "USERNAME": "sms", "SMS_MFA_CODE": "1" } }),
        )
        .await;
    assert_eq!(missing.message, "Missing required parameter Session");
}

#[tokio::test]
async fn lockout_after_repeated_wrong_passwords() {
    let env = start(SEED).await;
    for _ in 0..3 {
        let failure = env
            .password_login(PUBLIC, "bob", "Wrong-Passw0rd!")
            .await
            .expect_err("wrong");
        assert_eq!(failure.message, "Incorrect username or password.");
    }
    let locked = env
        .password_login(PUBLIC, "bob", PASSWORD)
        .await
        .expect_err("locked");
    assert_eq!(
        (locked.code.as_str(), locked.message.as_str()),
        ("NotAuthorizedException", "Password attempts exceeded")
    );
    let locked_srp = env
        .srp_login(PUBLIC, "bob", PASSWORD)
        .await
        .expect_err("locked over SRP too");
    assert_eq!(locked_srp.message, "Password attempts exceeded");
    env.handle.advance_clock(61);
    assert!(env.password_login(PUBLIC, "bob", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn email_alias_pools_use_the_sub_as_user_id_for_srp() {
    let seed = r#"
[[pools]]
id = "us-east-1_Test1"
username_attributes = ["email"]
[[pools.clients]]
id = "mail"
secret = "mailsecretmailsecretmailsecret"
[[pools.users]]
email = "ann@example.com"
password = "Passw0rd!"
sub = "5f1c2f8e-5a3b-4f1e-9b7a-0c1d2e3f4a5b"
"#;
    let env = start(seed).await;
    let sub = "5f1c2f8e-5a3b-4f1e-9b7a-0c1d2e3f4a5b";
    let srp = SrpClient::new();
    let challenge = env
        .ok(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_SRP_AUTH", "ClientId": "mail", "AuthParameters": {
                "USERNAME": "Ann@Example.com", "SRP_A": srp.a_hex(),
                "SECRET_HASH": secret_hash("mailsecretmailsecretmailsecret", "Ann@Example.com", "mail") } }),
        )
        .await;
    let params = &challenge["ChallengeParameters"];
    assert_eq!(params["USER_ID_FOR_SRP"], sub);
    let timestamp = java_timestamp(env.now());
    let signature = srp.signature(REALM, sub, PASSWORD, params, &timestamp);
    let answer = env
        .ok(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "PASSWORD_VERIFIER", "ClientId": "mail", "ChallengeResponses": {
                "USERNAME": sub, "SECRET_HASH": secret_hash("mailsecretmailsecretmailsecret", sub, "mail"),
                "PASSWORD_CLAIM_SECRET_BLOCK": params["SECRET_BLOCK"], "PASSWORD_CLAIM_SIGNATURE": signature,
                "TIMESTAMP": timestamp } }),
        )
        .await;
    let access = claims(tokens(&answer)["AccessToken"].as_str().expect("access"));
    assert_eq!(access["username"], sub);
    assert_eq!(
        env.handle
            .internal_username(POOL, "ann@example.com")
            .as_deref(),
        Some(sub)
    );
}

#[tokio::test]
async fn custom_auth_and_user_auth() {
    let env = start(SEED).await;
    let challenge = env
        .ok("InitiateAuth", json!({ "AuthFlow": "CUSTOM_AUTH", "ClientId": PUBLIC, "AuthParameters": { "USERNAME": "custom" } }))
        .await;
    assert_eq!(challenge["ChallengeName"], "CUSTOM_CHALLENGE");
    let answer = |session: &serde_json::Value, value: &str| {
        json!({ "ChallengeName": "CUSTOM_CHALLENGE", "ClientId": PUBLIC, "Session": session,
                "ChallengeResponses": { "USERNAME": "custom", "ANSWER": value } })
    };
    let again = env
        .ok(
            "RespondToAuthChallenge",
            answer(&challenge["Session"], "41"),
        )
        .await;
    assert_eq!(
        again["ChallengeName"], "CUSTOM_CHALLENGE",
        "a wrong answer asks again with a new session"
    );
    let done = env
        .ok("RespondToAuthChallenge", answer(&again["Session"], "42"))
        .await;
    tokens(&done);

    // USER_AUTH without a preference: SELECT_CHALLENGE, then EMAIL_OTP with a code "sent" by email.
    let select = env
        .ok("InitiateAuth", json!({ "AuthFlow": "USER_AUTH", "ClientId": PUBLIC, "AuthParameters": { "USERNAME": "alice" } }))
        .await;
    assert_eq!(select["ChallengeName"], "SELECT_CHALLENGE");
    assert_eq!(
        select["AvailableChallenges"],
        json!(["PASSWORD", "PASSWORD_SRP", "EMAIL_OTP"])
    );
    let otp = env
        .ok(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "SELECT_CHALLENGE", "ClientId": PUBLIC, "Session": select["Session"],
                    "ChallengeResponses": { "USERNAME": "alice", "ANSWER": "EMAIL_OTP" } }),
        )
        .await;
    assert_eq!(otp["ChallengeName"], "EMAIL_OTP");
    assert_eq!(
        otp["ChallengeParameters"]["CODE_DELIVERY_DESTINATION"],
        "a***@e***"
    );
    let code = env.handle.last_code("alice").expect("a code was sent");
    let message = env.handle.messages().pop().expect("message");
    assert_eq!(
        (message.medium.as_str(), message.destination.as_str()),
        ("EMAIL", "alice@example.com")
    );
    let done = env
        .ok(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "EMAIL_OTP", "ClientId": PUBLIC, "Session": otp["Session"],
                    "ChallengeResponses": { "USERNAME": "alice", "EMAIL_OTP_CODE": code } }),
        )
        .await;
    tokens(&done);

    // USER_AUTH with PREFERRED_CHALLENGE = PASSWORD goes straight to tokens.
    let direct = env
        .ok(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_AUTH", "ClientId": PUBLIC, "AuthParameters": {
                "USERNAME": "bob", "PREFERRED_CHALLENGE": "PASSWORD", "PASSWORD": PASSWORD } }),
        )
        .await;
    tokens(&direct);
}

#[tokio::test]
async fn srp_challenges_can_carry_a_session() {
    let seed = SEED.replace(
        "id = \"srp-only\"",
        "id = \"srp-only\"\nsrp_challenge_session = true",
    );
    let env = start(&seed).await;
    let srp = SrpClient::new();
    let challenge = env
        .ok(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_SRP_AUTH", "ClientId": "srp-only",
                    "AuthParameters": { "USERNAME": "alice", "SRP_A": srp.a_hex() } }),
        )
        .await;
    let session = challenge["Session"]
        .as_str()
        .expect("a Session with PASSWORD_VERIFIER");
    let params = &challenge["ChallengeParameters"];
    let timestamp = java_timestamp(env.now());
    let answer = |session: &str| {
        json!({ "ChallengeName": "PASSWORD_VERIFIER", "ClientId": "srp-only", "Session": session,
                "ChallengeResponses": { "USERNAME": "alice", "PASSWORD_CLAIM_SECRET_BLOCK": params["SECRET_BLOCK"],
                    "PASSWORD_CLAIM_SIGNATURE": srp.signature(REALM, "alice", PASSWORD, params, &timestamp),
                    "TIMESTAMP": timestamp } })
    };
    let other = env
        .fail(
            "RespondToAuthChallenge",
            answer("a-session-from-elsewhere-0000"),
        )
        .await;
    assert_eq!(
        other.message,
        "Invalid session for the user, session is expired."
    );
    let login = env.srp_login("srp-only", "bob", PASSWORD).await;
    assert!(login.is_ok(), "omitting the Session is fine too");
    env.ok("RespondToAuthChallenge", answer(session)).await;
    let again = env.fail("RespondToAuthChallenge", answer(session)).await;
    assert_eq!(
        again.message,
        "Invalid session for the user, session can only be used once."
    );
}
