//! What a login hands back: tokens that verify against the emulator's JWKS with the right
//! issuer and expiry, and values whose Debug output carries no secret.

use std::time::{Duration, SystemTime};

use cognito_auth::authenticator::RefreshRequest;
use cognito_auth::env::Clock;
use cognito_auth::flow::{AuthFlow, ChallengeAnswer};
use cognito_auth::secret::OneTimeCode;
use cognito_auth::tokens::{Expectation, TokenSet, TokenUse, issuer};

use super::{
    ACCESS_TTL, Harness, PASSWORD, PUBLIC_CLIENT, REGION, SECRET_CLIENT, authenticated, challenged,
    device_login, login, pool_id, seed, srp_login, user,
};

fn expectation(client_id: &str, token_use: TokenUse) -> Expectation {
    Expectation {
        issuer: issuer(REGION, &pool_id()),
        client_id: client_id.to_owned(),
        token_use,
    }
}

fn assert_expires_after_ttl(tokens: &TokenSet, now: SystemTime) {
    let expected = now + Duration::from_secs(ACCESS_TTL);
    let difference = match tokens.expires_at().duration_since(expected) {
        Ok(later) => later,
        Err(earlier) => earlier.duration(),
    };
    assert!(
        difference <= Duration::from_secs(2),
        "expires_at is {difference:?} off the configured ttl"
    );
}

#[tokio::test]
async fn every_token_verifies_against_the_jwks_and_expires_after_the_configured_ttl() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;
    let jwks = harness
        .client()
        .fetch_jwks(&pool_id())
        .await
        .expect("the pool's jwks");
    assert_eq!(
        issuer(REGION, &pool_id()),
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_FlowsPool1"
    );

    for (client_id, auth) in [
        (PUBLIC_CLIENT, harness.public()),
        (SECRET_CLIENT, harness.confidential()),
    ] {
        for flow in [AuthFlow::UserSrp, AuthFlow::UserPassword] {
            let success = authenticated(
                auth.start_login(login("alice", Some(PASSWORD), flow))
                    .await
                    .expect("login"),
            );
            let now = harness.clock.now();
            assert_expires_after_ttl(&success.tokens, now);

            let access = success.tokens.access_token().expose_secret();
            let claims = jwks
                .verify(access, &expectation(client_id, TokenUse::Access), now)
                .expect("the access token verifies");
            assert_eq!(claims.token_use.as_deref(), Some("access"));
            assert_eq!(claims.client_id.as_deref(), Some(client_id));
            assert_eq!(claims.username.as_deref(), Some("alice"));
            let id = success
                .tokens
                .id_token()
                .expect("an id token")
                .expose_secret();
            let claims = jwks
                .verify(id, &expectation(client_id, TokenUse::Id), now)
                .expect("the id token verifies");
            assert_eq!(claims.token_use.as_deref(), Some("id"));
            assert_eq!(claims.aud.as_deref(), Some(client_id));

            // And the checks bite: wrong use, wrong client, wrong issuer, after expiry.
            assert!(
                jwks.verify(access, &expectation(client_id, TokenUse::Id), now)
                    .is_err()
            );
            assert!(
                jwks.verify(id, &expectation("someotherclient", TokenUse::Id), now)
                    .is_err()
            );
            let foreign = Expectation {
                issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other".to_owned(),
                ..expectation(client_id, TokenUse::Access)
            };
            assert!(jwks.verify(access, &foreign, now).is_err());
            let later = now + Duration::from_secs(ACCESS_TTL + 120);
            assert!(
                jwks.verify(access, &expectation(client_id, TokenUse::Access), later)
                    .is_err()
            );

            // Refreshed tokens verify too.
            let username = success.tokens.username().expect("a username").to_owned();
            let refresh = RefreshRequest {
                refresh_token: &success.refresh_token,
                device: None,
                username: Some(&username),
            };
            let refreshed = auth.refresh(refresh).await.expect("refresh");
            let now = harness.clock.now();
            assert_expires_after_ttl(&refreshed.tokens, now);
            let access = refreshed.tokens.access_token().expose_secret();
            jwks.verify(access, &expectation(client_id, TokenUse::Access), now)
                .expect("the refreshed access token verifies");
            let id = refreshed
                .tokens
                .id_token()
                .expect("an id token")
                .expose_secret();
            jwks.verify(id, &expectation(client_id, TokenUse::Id), now)
                .expect("the refreshed id token verifies");
        }
    }
    harness.shutdown().await;
}

#[tokio::test]
async fn no_secret_appears_in_debug_output() {
    let totp = "mfa = \"totp\"\ntotp_secret = \"JBSWY3DPEHPK3PXP\"";
    let harness = Harness::start(&seed(
        "device_tracking = \"always\"\nmfa = \"optional\"",
        &user("dave", totp),
    ))
    .await;
    let auth = harness.confidential();
    let mut printed = Vec::new();

    let pending = challenged(
        auth.start_login(device_login("dave", None))
            .await
            .expect("first factor"),
    );
    printed.push(format!("{pending:?}"));
    let code = harness.totp_code("dave");
    let wrong = OneTimeCode::new(if code.expose_secret() == "123456" {
        "654321"
    } else {
        "123456"
    });
    let refused = auth
        .respond(pending, ChallengeAnswer::Code(wrong))
        .await
        .expect_err("a wrong code");
    printed.push(format!("{refused:?}"));
    printed.push(format!("{:?}", refused.error));
    let pending = *refused.pending.expect("a code mismatch may be retried");
    let step = auth
        .respond(pending, ChallengeAnswer::Code(code.clone()))
        .await
        .expect("the right code");
    printed.push(format!("{step:?}"));
    let success = authenticated(step);
    printed.push(format!("{success:?}"));
    let device = success.device.clone().expect("a remembered device");
    printed.push(format!("{device:?}"));

    let username = success.tokens.username().expect("a username").to_owned();
    let refresh = RefreshRequest {
        refresh_token: &success.refresh_token,
        device: Some(&device),
        username: Some(&username),
    };
    let refreshed = auth.refresh(refresh).await.expect("refresh");
    printed.push(format!("{refreshed:?}"));
    let wrong_password = login("dave", Some("Wrong-Passw0rd!"), AuthFlow::UserPassword);
    let error = auth
        .start_login(wrong_password)
        .await
        .expect_err("a wrong password");
    printed.push(format!("{error:?}"));
    let again = auth
        .start_login(srp_login("dave"))
        .await
        .expect("first factor");
    printed.push(format!("{again:?}"));

    let secrets = [
        PASSWORD,
        "Wrong-Passw0rd!",
        super::CLIENT_SECRET,
        success.tokens.access_token().expose_secret(),
        success
            .tokens
            .id_token()
            .expect("an id token")
            .expose_secret(),
        success.refresh_token.expose_secret(),
        device.device_password.expose_secret(),
        refreshed.tokens.access_token().expose_secret(),
        refreshed
            .tokens
            .id_token()
            .expect("an id token")
            .expose_secret(),
    ];
    for text in &printed {
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "a secret leaked into Debug output: {text}"
            );
        }
        // No piece of a JWT either (its header always starts like this).
        assert!(
            !text.contains("eyJ"),
            "a token fragment leaked into Debug output: {text}"
        );
    }
    harness.shutdown().await;
}
