//! Refresh (both APIs), rotation with grace, expiry, RevokeToken, GlobalSignOut, access-token checks.

use serde_json::json;

use crate::support::*;

async fn sign_in(env: &Env, client: &str, user: &str) -> (String, String) {
    let answer = env
        .password_login(client, user, PASSWORD)
        .await
        .expect("signed in");
    let result = tokens(&answer);
    (
        result["AccessToken"].as_str().expect("access").to_owned(),
        result["RefreshToken"].as_str().expect("refresh").to_owned(),
    )
}

fn refresh_request(client: &str, token: &str) -> serde_json::Value {
    json!({ "ClientId": client, "RefreshToken": token })
}

#[tokio::test]
async fn refresh_keeps_origin_jti_and_auth_time() {
    let env = start(SEED).await;
    let before_first = env.now();
    let (access, refresh) = sign_in(&env, PUBLIC, "alice").await;
    let after_first = env.now();
    let first = claims(&access);
    env.handle.advance_clock(100);
    let before_second = env.now();
    let answer = env
        .ok("InitiateAuth", json!({ "AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": PUBLIC, "AuthParameters": { "REFRESH_TOKEN": refresh } }))
        .await;
    let after_second = env.now();
    let result = tokens(&answer);
    assert!(
        result.get("RefreshToken").is_none(),
        "REFRESH_TOKEN_AUTH does not roll the refresh token"
    );
    let second = claims(result["AccessToken"].as_str().expect("access"));
    assert_eq!(second["origin_jti"], first["origin_jti"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
    assert_ne!(second["jti"], first["jti"]);
    // The emulator clock is host time plus the offset, so host time may tick between the calls.
    let (first_iat, second_iat) = (
        first["iat"].as_i64().expect("iat"),
        second["iat"].as_i64().expect("iat"),
    );
    assert!((before_first..=after_first).contains(&first_iat));
    assert!((before_second..=after_second).contains(&second_iat));
    assert!(
        second_iat - first_iat >= 100,
        "the advanced clock stamps the refresh"
    );

    let answer = env
        .ok(
            "GetTokensFromRefreshToken",
            refresh_request(PUBLIC, &refresh),
        )
        .await;
    assert!(
        tokens(&answer).get("RefreshToken").is_none(),
        "no rotation on this client"
    );

    let foreign = env
        .fail(
            "GetTokensFromRefreshToken",
            refresh_request("rotating-client", &refresh),
        )
        .await;
    assert_eq!(foreign.message, "Invalid Refresh Token");
    let garbage = env
        .fail(
            "GetTokensFromRefreshToken",
            refresh_request(PUBLIC, "garbage"),
        )
        .await;
    assert_eq!(garbage.message, "Invalid Refresh Token");

    env.handle.advance_clock(7200);
    let expired = env
        .fail(
            "GetTokensFromRefreshToken",
            refresh_request(PUBLIC, &refresh),
        )
        .await;
    assert_eq!(expired.message, "Refresh Token has expired");
}

#[tokio::test]
async fn rotation_with_a_grace_period() {
    let env = start(SEED).await;
    let (_, original) = sign_in(&env, ROTATING, "alice").await;
    let refused = env
        .fail(
            "InitiateAuth",
            json!({ "AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": ROTATING, "AuthParameters": { "REFRESH_TOKEN": original } }),
        )
        .await;
    assert_eq!(
        refused.code, "InvalidParameterException",
        "rotating clients cannot use REFRESH_TOKEN_AUTH"
    );

    let answer = env
        .ok(
            "GetTokensFromRefreshToken",
            refresh_request(ROTATING, &original),
        )
        .await;
    let rotated = tokens(&answer)["RefreshToken"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(rotated, original);

    env.handle.advance_clock(5);
    let retry = env
        .ok(
            "GetTokensFromRefreshToken",
            refresh_request(ROTATING, &original),
        )
        .await;
    assert_eq!(
        tokens(&retry)["RefreshToken"],
        rotated.as_str(),
        "within the grace period the old token still works"
    );

    env.handle.advance_clock(6);
    let reuse = env
        .fail(
            "GetTokensFromRefreshToken",
            refresh_request(ROTATING, &original),
        )
        .await;
    assert_eq!(reuse.code, "RefreshTokenReuseException");

    let next = env
        .ok(
            "GetTokensFromRefreshToken",
            refresh_request(ROTATING, &rotated),
        )
        .await;
    assert!(tokens(&next)["RefreshToken"].is_string());
    assert_eq!(
        env.handle.stats().count("GetTokensFromRefreshToken", "ok"),
        3
    );
    assert_eq!(env.handle.calls("GetTokensFromRefreshToken"), 4);
}

#[tokio::test]
async fn rotation_does_not_extend_the_refresh_lifetime() {
    let seed = SEED.replace(
        "rotation = { enabled = true, grace_seconds = 10 }",
        "rotation = { enabled = true, grace_seconds = 0 }\nrefresh_token_ttl = 1000",
    );
    let env = start(&seed).await;
    let (_, mut token) = sign_in(&env, ROTATING, "alice").await;
    for _ in 0..3 {
        env.handle.advance_clock(300);
        let answer = env
            .ok(
                "GetTokensFromRefreshToken",
                refresh_request(ROTATING, &token),
            )
            .await;
        let next = tokens(&answer)["RefreshToken"]
            .as_str()
            .expect("rotated")
            .to_owned();
        let reuse = env
            .fail(
                "GetTokensFromRefreshToken",
                refresh_request(ROTATING, &token),
            )
            .await;
        assert_eq!(
            reuse.code, "RefreshTokenReuseException",
            "grace 0: the old token dies at once"
        );
        token = next;
    }
    env.handle.advance_clock(100);
    let expired = env
        .fail(
            "GetTokensFromRefreshToken",
            refresh_request(ROTATING, &token),
        )
        .await;
    assert_eq!(expired.message, "Refresh Token has expired");
}

#[tokio::test]
async fn revoke_token_and_global_sign_out() {
    let env = start(SEED).await;
    let (access, refresh) = sign_in(&env, PUBLIC, "alice").await;
    let (other_access, other_refresh) = sign_in(&env, PUBLIC, "alice").await;
    env.ok(
        "RevokeToken",
        json!({ "ClientId": PUBLIC, "Token": refresh }),
    )
    .await;
    let revoked = env
        .fail(
            "GetTokensFromRefreshToken",
            refresh_request(PUBLIC, &refresh),
        )
        .await;
    assert_eq!(revoked.message, "Refresh Token has been revoked");
    let user = env.fail("GetUser", json!({ "AccessToken": access })).await;
    assert_eq!(user.message, "Access Token has been revoked");
    env.ok("GetUser", json!({ "AccessToken": other_access }))
        .await;
    let not_refresh = env
        .fail(
            "RevokeToken",
            json!({ "ClientId": PUBLIC, "Token": other_access }),
        )
        .await;
    assert_eq!(not_refresh.code, "UnsupportedTokenTypeException");
    env.ok(
        "RevokeToken",
        json!({ "ClientId": PUBLIC, "Token": "unknown-token" }),
    )
    .await;

    env.ok("GlobalSignOut", json!({ "AccessToken": other_access }))
        .await;
    let signed_out = env
        .fail(
            "GetTokensFromRefreshToken",
            refresh_request(PUBLIC, &other_refresh),
        )
        .await;
    assert_eq!(signed_out.message, "Refresh Token has been revoked");
    let again = env
        .fail("GlobalSignOut", json!({ "AccessToken": other_access }))
        .await;
    assert_eq!(again.message, "Access Token has been revoked");

    let (access, _) = sign_in(&env, PUBLIC, "bob").await;
    assert!(env.handle.global_sign_out(POOL, "bob"));
    assert_eq!(
        env.fail("GetUser", json!({ "AccessToken": access }))
            .await
            .message,
        "Access Token has been revoked"
    );
}

#[tokio::test]
async fn access_tokens_expire_and_forgeries_fail() {
    let env = start(SEED).await;
    let (access, _) = sign_in(&env, PUBLIC, "alice").await;
    let mut parts: Vec<&str> = access.split('.').collect();
    let forged_claims = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        json!({ "token_use": "access", "exp": 9_999_999_999i64 }).to_string(),
    );
    parts[1] = &forged_claims;
    let forged = env
        .fail("GetUser", json!({ "AccessToken": parts.join(".") }))
        .await;
    assert_eq!(forged.message, "Invalid Access Token");
    env.handle.advance_clock(601);
    let expired = env.fail("GetUser", json!({ "AccessToken": access })).await;
    assert_eq!(expired.message, "Access Token has expired");
}

#[tokio::test]
async fn secret_clients_revoke_with_their_secret() {
    let env = start(SEED).await;
    let answer = env
        .ok(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": SECRET_CLIENT, "AuthParameters": {
                "USERNAME": "bob", "PASSWORD": PASSWORD, "SECRET_HASH": secret_hash(SECRET, "bob", SECRET_CLIENT) } }),
        )
        .await;
    let refresh = tokens(&answer)["RefreshToken"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let unauthorized = env
        .fail(
            "RevokeToken",
            json!({ "ClientId": SECRET_CLIENT, "Token": refresh, "ClientSecret": "nope" }),
        )
        .await;
    assert_eq!(unauthorized.code, "UnauthorizedException");
    env.ok(
        "RevokeToken",
        json!({ "ClientId": SECRET_CLIENT, "Token": refresh, "ClientSecret": SECRET }),
    )
    .await;
}
