//! The first factor: SRP and plain password, public and confidential clients, email alias,
//! wrong passwords and lockout, NEW_PASSWORD_REQUIRED, and what the emulator refuses on the wire.

use std::collections::BTreeMap;
use std::time::SystemTime;

use cognito_auth::env::OsEntropy;
use cognito_auth::error::{ErrorClass, ErrorCode};
use cognito_auth::flow::{AuthFlow, Challenge, ChallengeAnswer};
use cognito_auth::secret::{ClientSecret, Password};
use cognito_auth::srp::{
    ServerChallenge, SrpEphemeral, SrpIdentity, cognito_timestamp, password_claim, secret_hash,
};
use serde_json::json;

use super::raw::RawReply;
use super::{
    CLIENT_SECRET, Harness, PASSWORD, POOL_ID, PUBLIC_CLIENT, SECRET_CLIENT, answer_for_tokens,
    assert_service, authenticated, challenged, email_user, internal_username, login, seed,
    srp_login, user,
};

#[tokio::test]
async fn user_srp_auth_with_a_public_client() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;

    let step = harness
        .public()
        .start_login(srp_login("alice"))
        .await
        .expect("srp login");
    let success = authenticated(step);

    assert_eq!(internal_username(&success), "alice");
    assert_eq!(
        success.tokens.access_claims().client_id.as_deref(),
        Some(PUBLIC_CLIENT)
    );
    assert!(success.device.is_none());
    assert_eq!(harness.handle.calls("InitiateAuth"), 1);
    // PASSWORD_VERIFIER was answered inside start_login.
    assert_eq!(harness.handle.calls("RespondToAuthChallenge"), 1);
    harness.shutdown().await;
}

#[tokio::test]
async fn user_srp_auth_with_a_secret_client_sends_a_verified_secret_hash() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;

    let step = harness
        .confidential()
        .start_login(srp_login("alice"))
        .await
        .expect("srp login");
    let success = authenticated(step);

    assert_eq!(
        success.tokens.access_claims().client_id.as_deref(),
        Some(SECRET_CLIENT)
    );
    assert_eq!(harness.handle.calls("RespondToAuthChallenge"), 1);

    // The same login without the secret is refused: the emulator does check SECRET_HASH.
    let error = harness
        .authenticator(SECRET_CLIENT, None)
        .start_login(srp_login("alice"))
        .await
        .expect_err("a secret client without SECRET_HASH");
    assert_service(&error, ErrorCode::NotAuthorized, "SECRET_HASH");
    harness.shutdown().await;
}

#[tokio::test]
async fn user_password_auth() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;

    for auth in [harness.public(), harness.confidential()] {
        let request = login("alice", Some(PASSWORD), AuthFlow::UserPassword);
        let success = authenticated(auth.start_login(request).await.expect("password login"));
        assert_eq!(internal_username(&success), "alice");
    }
    assert_eq!(harness.handle.calls("InitiateAuth"), 2);
    assert_eq!(harness.handle.calls("RespondToAuthChallenge"), 0);
    harness.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_is_not_authorized_and_needs_the_user() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;

    for flow in [AuthFlow::UserSrp, AuthFlow::UserPassword] {
        let request = login("alice", Some("Wrong-Passw0rd!"), flow);
        let error = harness
            .confidential()
            .start_login(request)
            .await
            .expect_err("wrong password");
        assert_service(
            &error,
            ErrorCode::NotAuthorized,
            "Incorrect username or password",
        );
        assert_eq!(error.class(), ErrorClass::NeedsUser);
    }
    harness.shutdown().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_user_out() {
    let harness = Harness::start(&seed(
        "lockout_threshold = 3\nlockout_seconds = 60",
        &user("alice", ""),
    ))
    .await;
    let auth = harness.public();

    for _ in 0..3 {
        let request = login("alice", Some("Wrong-Passw0rd!"), AuthFlow::UserSrp);
        let error = auth.start_login(request).await.expect_err("wrong password");
        assert_service(
            &error,
            ErrorCode::NotAuthorized,
            "Incorrect username or password",
        );
    }
    // Locked: even the right password fails now, over either flow.
    for flow in [AuthFlow::UserSrp, AuthFlow::UserPassword] {
        let error = auth
            .start_login(login("alice", Some(PASSWORD), flow))
            .await
            .expect_err("locked out");
        assert_service(
            &error,
            ErrorCode::NotAuthorized,
            "Password attempts exceeded",
        );
        assert_eq!(error.class(), ErrorClass::NeedsUser);
    }
    // The lockout is temporary.
    harness.advance(61);
    authenticated(
        auth.start_login(srp_login("alice"))
            .await
            .expect("login after the lockout"),
    );
    harness.shutdown().await;
}

#[tokio::test]
async fn email_alias_login_over_srp_with_a_secret_client() {
    // With email as the username the internal username is the user's `sub`, so USER_ID_FOR_SRP
    // (and the SECRET_HASH of PASSWORD_VERIFIER) differ from what the user typed.
    let harness = Harness::start(&seed(
        r#"username_attributes = ["email"]"#,
        &email_user("carol@example.com", ""),
    ))
    .await;

    let request = srp_login("carol@example.com");
    let success = authenticated(
        harness
            .confidential()
            .start_login(request)
            .await
            .expect("alias login"),
    );

    let username = internal_username(&success);
    assert_ne!(username, "carol@example.com");
    assert_eq!(
        username,
        success.tokens.access_claims().sub,
        "internal username = sub"
    );
    assert_eq!(harness.handle.calls("RespondToAuthChallenge"), 1);
    harness.shutdown().await;
}

#[tokio::test]
async fn new_password_required_with_required_attributes_and_a_policy_retry() {
    let users = r#"
[[pools.users]]
username = "dana"
password = "Temp-Passw0rd!"
status = "FORCE_CHANGE_PASSWORD"
email = "dana@example.com"
required_attributes = ["name"]
"#;
    let harness = Harness::start(&seed("", users)).await;
    let auth = harness.confidential();

    let request = login("dana", Some("Temp-Passw0rd!"), AuthFlow::UserSrp);
    let pending = challenged(auth.start_login(request).await.expect("first factor"));
    match pending.challenge() {
        Challenge::NewPasswordRequired {
            required_attributes,
            user_attributes,
        } => {
            assert_eq!(required_attributes, &vec!["name".to_owned()]);
            assert_eq!(
                user_attributes.get("email").map(String::as_str),
                Some("dana@example.com")
            );
        }
        other => panic!("expected NEW_PASSWORD_REQUIRED, got {}", other.name()),
    }

    let attributes = BTreeMap::from([("name".to_owned(), "Dana Example".to_owned())]);
    let weak = ChallengeAnswer::NewPassword {
        password: Password::new("short"),
        attributes: attributes.clone(),
    };
    let refused = auth
        .respond(pending, weak)
        .await
        .expect_err("a password that breaks the policy");
    assert_service(
        &refused.error,
        ErrorCode::InvalidPassword,
        "Password did not conform with policy",
    );
    assert_eq!(refused.error.class(), ErrorClass::NeedsUser);
    let pending = *refused
        .pending
        .expect("InvalidPassword keeps the login pending");
    assert_eq!(pending.challenge().name(), "NEW_PASSWORD_REQUIRED");

    let strong = ChallengeAnswer::NewPassword {
        password: Password::new("Brand-New-Passw0rd!"),
        attributes,
    };
    let success = answer_for_tokens(&auth, pending, strong).await;
    assert_eq!(internal_username(&success), "dana");
    assert_eq!(
        harness.handle.user_status(POOL_ID, "dana").as_deref(),
        Some("CONFIRMED")
    );

    // The new password is now the password; the temporary one is gone.
    let again = login("dana", Some("Brand-New-Passw0rd!"), AuthFlow::UserSrp);
    authenticated(
        auth.start_login(again)
            .await
            .expect("login with the new password"),
    );
    let old = login("dana", Some("Temp-Passw0rd!"), AuthFlow::UserSrp);
    let error = auth
        .start_login(old)
        .await
        .expect_err("the temporary password");
    assert_service(
        &error,
        ErrorCode::NotAuthorized,
        "Incorrect username or password",
    );
    harness.shutdown().await;
}

#[tokio::test]
async fn a_wrong_client_secret_fails_the_secret_hash_check() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;
    let auth = harness.authenticator(SECRET_CLIENT, Some("notthesecret0123456789abcdefghij"));

    for flow in [AuthFlow::UserSrp, AuthFlow::UserPassword] {
        let error = auth
            .start_login(login("alice", Some(PASSWORD), flow))
            .await
            .expect_err("wrong secret");
        assert_service(
            &error,
            ErrorCode::NotAuthorized,
            "Unable to verify secret hash",
        );
    }

    // GetTokensFromRefreshToken carries the raw secret instead; a wrong one is refused too.
    let success = authenticated(
        harness
            .confidential()
            .start_login(srp_login("alice"))
            .await
            .expect("login with the right secret"),
    );
    let refresh = cognito_auth::authenticator::RefreshRequest {
        refresh_token: &success.refresh_token,
        device: None,
        username: Some("alice"),
    };
    let error = auth
        .refresh(refresh)
        .await
        .expect_err("refresh with a wrong secret");
    assert_service(
        &error,
        ErrorCode::NotAuthorized,
        "Unable to verify secret hash",
    );
    harness.shutdown().await;
}

/// InitiateAuth USER_SRP_AUTH over raw HTTP, then the password claim as a correct client
/// computes it for `timestamp`.
async fn raw_srp_claim(
    harness: &Harness,
    username: &str,
    timestamp: &str,
) -> (RawReply, serde_json::Value) {
    let ephemeral = SrpEphemeral::generate(&OsEntropy);
    let challenge = harness
        .raw(
            "InitiateAuth",
            json!({
                "AuthFlow": "USER_SRP_AUTH",
                "ClientId": PUBLIC_CLIENT,
                "AuthParameters": { "USERNAME": username, "SRP_A": ephemeral.public_hex() },
            }),
        )
        .await;
    assert_eq!(challenge.status, 200, "InitiateAuth: {:?}", challenge.body);
    assert_eq!(challenge.body["ChallengeName"], "PASSWORD_VERIFIER");
    let user_id = challenge.parameter("USER_ID_FOR_SRP");
    let pool_name = POOL_ID.split_once('_').expect("region_name").1;
    let claim = password_claim(
        &ephemeral,
        &SrpIdentity {
            realm: pool_name,
            user_id: &user_id,
            password: PASSWORD,
        },
        &ServerChallenge {
            salt_hex: &challenge.parameter("SALT"),
            srp_b_hex: &challenge.parameter("SRP_B"),
            secret_block_b64: &challenge.parameter("SECRET_BLOCK"),
        },
        timestamp,
    )
    .expect("the emulator's challenge is well formed");
    let mut request = json!({
        "ClientId": PUBLIC_CLIENT,
        "ChallengeName": "PASSWORD_VERIFIER",
        "ChallengeResponses": {
            "USERNAME": user_id,
            "PASSWORD_CLAIM_SECRET_BLOCK": claim.secret_block_b64,
            "PASSWORD_CLAIM_SIGNATURE": claim.signature_b64,
            "TIMESTAMP": claim.timestamp,
        },
    });
    if let Some(session) = challenge.session() {
        request["Session"] = session.into();
    }
    (challenge, request)
}

#[tokio::test]
async fn a_tampered_password_claim_signature_is_not_authorized() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;

    let (_, mut tampered) =
        raw_srp_claim(&harness, "alice", &cognito_timestamp(SystemTime::now())).await;
    let signature = tampered["ChallengeResponses"]["PASSWORD_CLAIM_SIGNATURE"]
        .as_str()
        .expect("a string")
        .to_owned();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    tampered["ChallengeResponses"]["PASSWORD_CLAIM_SIGNATURE"] =
        format!("{flipped}{}", &signature[1..]).into();
    let reply = harness.raw("RespondToAuthChallenge", tampered).await;
    assert_eq!(
        reply.error_type(),
        "NotAuthorizedException",
        "{:?}",
        reply.body
    );
    assert_eq!(reply.message(), "Incorrect username or password.");
    assert!(!reply.has_tokens());

    // The same computation, untouched, signs in: only the flipped byte was wrong.
    let (_, honest) = raw_srp_claim(&harness, "alice", &cognito_timestamp(SystemTime::now())).await;
    let reply = harness.raw("RespondToAuthChallenge", honest).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(reply.has_tokens());
    harness.shutdown().await;
}

#[tokio::test]
async fn a_malformed_timestamp_is_an_invalid_parameter() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;

    // Correctly signed, but over an ISO-8601 timestamp instead of "EEE MMM d HH:mm:ss z yyyy".
    let (_, request) = raw_srp_claim(&harness, "alice", "2026-11-21T21:40:00Z").await;
    let reply = harness.raw("RespondToAuthChallenge", request).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.error_type(),
        "InvalidParameterException",
        "{:?}",
        reply.body
    );
    assert!(
        reply.message().contains("TIMESTAMP format"),
        "{:?}",
        reply.message()
    );
    harness.shutdown().await;
}

#[tokio::test]
async fn an_unknown_user_gets_a_fake_challenge_and_is_not_authorized() {
    // With PreventUserExistenceErrors the emulator answers SRP for an unknown user with a fake
    // challenge whose SALT is random signed hex, negative about half the time (§4.5).
    let harness = Harness::start(&seed("", &user("alice", ""))).await;

    let negative_salt = {
        let mut found = None;
        for _ in 0..64 {
            let ephemeral = SrpEphemeral::generate(&OsEntropy);
            let challenge = harness
                .raw(
                    "InitiateAuth",
                    json!({
                        "AuthFlow": "USER_SRP_AUTH",
                        "ClientId": PUBLIC_CLIENT,
                        "AuthParameters": { "USERNAME": "nobody", "SRP_A": ephemeral.public_hex() },
                    }),
                )
                .await;
            if challenge.parameter("SALT").starts_with('-') {
                found = Some((ephemeral, challenge));
                break;
            }
        }
        found.expect("a negative SALT within 64 fake challenges")
    };
    // The client computes a claim over the negative salt without failing; the server refuses it.
    let (ephemeral, challenge) = negative_salt;
    let claim = password_claim(
        &ephemeral,
        &SrpIdentity {
            realm: "FlowsPool1",
            user_id: &challenge.parameter("USER_ID_FOR_SRP"),
            password: PASSWORD,
        },
        &ServerChallenge {
            salt_hex: &challenge.parameter("SALT"),
            srp_b_hex: &challenge.parameter("SRP_B"),
            secret_block_b64: &challenge.parameter("SECRET_BLOCK"),
        },
        &cognito_timestamp(SystemTime::now()),
    )
    .expect("a negative salt is legal input");
    let reply = harness
        .raw(
            "RespondToAuthChallenge",
            json!({
                "ClientId": PUBLIC_CLIENT,
                "ChallengeName": "PASSWORD_VERIFIER",
                "ChallengeResponses": {
                    "USERNAME": challenge.parameter("USER_ID_FOR_SRP"),
                    "PASSWORD_CLAIM_SECRET_BLOCK": claim.secret_block_b64,
                    "PASSWORD_CLAIM_SIGNATURE": claim.signature_b64,
                    "TIMESTAMP": claim.timestamp,
                },
            }),
        )
        .await;
    assert_eq!(
        reply.error_type(),
        "NotAuthorizedException",
        "{:?}",
        reply.body
    );

    // Through the authenticator, whatever the salt's sign: the same answer as a wrong password.
    let auth = harness.confidential();
    for _ in 0..8 {
        let error = auth
            .start_login(srp_login("nobody"))
            .await
            .expect_err("an unknown user");
        assert_service(
            &error,
            ErrorCode::NotAuthorized,
            "Incorrect username or password",
        );
    }
    harness.shutdown().await;
}

#[tokio::test]
async fn an_unknown_user_without_existence_protection_is_user_not_found() {
    let clients = super::default_clients("prevent_user_existence_errors = false");
    let harness = Harness::start(&super::seed_with_clients("", &clients, &user("alice", ""))).await;

    for flow in [AuthFlow::UserSrp, AuthFlow::UserPassword] {
        let error = harness
            .public()
            .start_login(login("nobody", Some(PASSWORD), flow))
            .await
            .expect_err("unknown");
        assert_service(&error, ErrorCode::UserNotFound, "User does not exist");
        assert_eq!(error.class(), ErrorClass::NeedsUser);
    }
    harness.shutdown().await;
}

#[tokio::test]
async fn a_flow_the_client_does_not_allow_is_an_invalid_parameter() {
    let clients =
        super::default_clients(r#"flows = ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]"#);
    let harness = Harness::start(&super::seed_with_clients("", &clients, &user("alice", ""))).await;

    let request = login("alice", Some(PASSWORD), AuthFlow::UserPassword);
    let error = harness
        .public()
        .start_login(request)
        .await
        .expect_err("USER_PASSWORD_AUTH is not allowed");
    assert_service(
        &error,
        ErrorCode::InvalidParameter,
        "USER_PASSWORD_AUTH flow not enabled for this client",
    );
    assert_eq!(error.class(), ErrorClass::Terminal);
    authenticated(
        harness
            .public()
            .start_login(srp_login("alice"))
            .await
            .expect("SRP is allowed"),
    );
    harness.shutdown().await;
}

#[tokio::test]
async fn srp_challenges_that_carry_a_session_are_answered_with_it() {
    // Some pools send a Session with PASSWORD_VERIFIER; the client must send it back (§2.3).
    let clients = super::default_clients("srp_challenge_session = true");
    let harness = Harness::start(&super::seed_with_clients("", &clients, &user("alice", ""))).await;

    for auth in [harness.public(), harness.confidential()] {
        authenticated(
            auth.start_login(srp_login("alice"))
                .await
                .expect("srp login with a session"),
        );
    }
    let stats = serde_json::to_value(harness.handle.stats()).expect("stats serialize");
    assert_eq!(stats["RespondToAuthChallenge"]["ok"], 2, "{stats}");
    harness.shutdown().await;
}

/// PASSWORD_VERIFIER for an email-alias user over raw HTTP with the secret client, answering
/// with `USERNAME` = `answer_as` and SECRET_HASH over that same value.
async fn alias_password_verifier(
    harness: &Harness,
    answer_as: impl Fn(&str) -> String,
) -> RawReply {
    let secret = ClientSecret::new(CLIENT_SECRET);
    let email = "carol@example.com";
    let ephemeral = SrpEphemeral::generate(&OsEntropy);
    let challenge = harness
        .raw(
            "InitiateAuth",
            json!({
                "AuthFlow": "USER_SRP_AUTH",
                "ClientId": SECRET_CLIENT,
                "AuthParameters": {
                    "USERNAME": email,
                    "SRP_A": ephemeral.public_hex(),
                    "SECRET_HASH": secret_hash(&secret, email, SECRET_CLIENT),
                },
            }),
        )
        .await;
    let user_id = challenge.parameter("USER_ID_FOR_SRP");
    assert_ne!(user_id, email, "USER_ID_FOR_SRP is the internal username");
    let claim = password_claim(
        &ephemeral,
        &SrpIdentity {
            realm: "FlowsPool1",
            user_id: &user_id,
            password: PASSWORD,
        },
        &ServerChallenge {
            salt_hex: &challenge.parameter("SALT"),
            srp_b_hex: &challenge.parameter("SRP_B"),
            secret_block_b64: &challenge.parameter("SECRET_BLOCK"),
        },
        &cognito_timestamp(SystemTime::now()),
    )
    .expect("the emulator's challenge is well formed");
    let username = answer_as(&user_id);
    harness
        .raw(
            "RespondToAuthChallenge",
            json!({
                "ClientId": SECRET_CLIENT,
                "ChallengeName": "PASSWORD_VERIFIER",
                "ChallengeResponses": {
                    "USERNAME": username,
                    "SECRET_HASH": secret_hash(&secret, &username, SECRET_CLIENT),
                    "PASSWORD_CLAIM_SECRET_BLOCK": claim.secret_block_b64,
                    "PASSWORD_CLAIM_SIGNATURE": claim.signature_b64,
                    "TIMESTAMP": claim.timestamp,
                },
            }),
        )
        .await
}

#[tokio::test]
async fn password_verifier_answers_must_name_the_internal_username() {
    // cognito-protocol.md §3 and §2.4: after SRP, USERNAME and SECRET_HASH are over
    // USER_ID_FOR_SRP, not the alias that was typed (pitfall 1 in §9). A verifying emulator
    // must refuse the alias, or the alias test above cannot catch a client that hashes it.
    let harness = Harness::start(&seed(
        r#"username_attributes = ["email"]"#,
        &email_user("carol@example.com", ""),
    ))
    .await;

    let internal = alias_password_verifier(&harness, str::to_owned).await;
    assert!(
        internal.has_tokens(),
        "the internal username is accepted: {:?}",
        internal.body
    );

    let alias = alias_password_verifier(&harness, |_| "carol@example.com".to_owned()).await;
    let keys: Vec<&String> = alias
        .body
        .as_object()
        .map(|body| body.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        alias.error_type(),
        "NotAuthorizedException",
        "the alias must be refused; the reply had {keys:?}"
    );
    assert!(!alias.has_tokens());
    harness.shutdown().await;
}

#[tokio::test]
async fn srp_on_a_single_digit_day_of_the_month() {
    // TIMESTAMP's day is not zero-padded ("Tue Dec 1 ..."); a padded day only fails on days
    // 1-9, so move both clocks to the next such day (§4.4).
    let harness = Harness::start(&seed("", &user("alice", ""))).await;
    let days = (0..40_u64)
        .find(|days| {
            let then = SystemTime::now() + std::time::Duration::from_secs(days * 86_400);
            let timestamp = cognito_timestamp(then);
            let day = timestamp.split(' ').nth(2).expect("EEE MMM d ...");
            day.len() == 1
        })
        .expect("a day 1-9 within 40 days");
    harness.advance(i64::try_from(days * 86_400).expect("small"));
    let timestamp = cognito_timestamp(harness.clock_now());
    assert_eq!(
        timestamp.split(' ').nth(2).map(str::len),
        Some(1),
        "{timestamp}"
    );

    for auth in [harness.public(), harness.confidential()] {
        authenticated(
            auth.start_login(srp_login("alice"))
                .await
                .expect("srp login on a single-digit day"),
        );
    }
    harness.shutdown().await;
}
