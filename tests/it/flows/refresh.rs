//! Refresh: GetTokensFromRefreshToken with and without rotation (and its grace period), the
//! REFRESH_TOKEN_AUTH fallback, and refresh tokens ended by RevokeToken and GlobalSignOut.

use cognito_auth::authenticator::{Authenticator, RefreshRequest};
use cognito_auth::error::{ErrorClass, ErrorCode, RefreshFailure};
use cognito_auth::secret::RefreshToken;
use cognito_emulator::{Fault, FaultKind};

use super::{
    Harness, LoginSuccess, authenticated, default_clients, email_user, internal_username, seed,
    seed_with_clients, srp_login, user,
};

async fn sign_in(auth: &Authenticator, username: &str) -> LoginSuccess {
    authenticated(auth.start_login(srp_login(username)).await.expect("login"))
}

fn request<'a>(refresh_token: &'a RefreshToken, username: &'a str) -> RefreshRequest<'a> {
    RefreshRequest {
        refresh_token,
        device: None,
        username: Some(username),
    }
}

#[tokio::test]
async fn refresh_without_rotation_keeps_the_refresh_token() {
    let harness = Harness::start(&seed("", &user("rita", ""))).await;
    let auth = harness.confidential();
    let success = sign_in(&auth, "rita").await;
    let username = internal_username(&success);

    harness.advance(60);
    let refreshed = auth
        .refresh(request(&success.refresh_token, &username))
        .await
        .expect("refresh");
    assert!(refreshed.rotated_refresh_token.is_none());
    assert!(refreshed.new_device.is_none());
    assert_eq!(refreshed.tokens.username(), Some("rita"));
    assert!(refreshed.tokens.expires_at() > success.tokens.expires_at());
    assert_ne!(
        refreshed.tokens.access_token().expose_secret(),
        success.tokens.access_token().expose_secret()
    );
    assert_eq!(harness.handle.calls("GetTokensFromRefreshToken"), 1);

    // Unrotated, the same refresh token keeps working.
    auth.refresh(request(&success.refresh_token, &username))
        .await
        .expect("refresh again");
    harness.shutdown().await;
}

#[tokio::test]
async fn rotation_returns_a_new_refresh_token_and_the_old_one_lives_for_the_grace_period() {
    let clients = default_clients("rotation = { enabled = true, grace_seconds = 10 }");
    let harness = Harness::start(&seed_with_clients("", &clients, &user("rita", ""))).await;
    let auth = harness.confidential();
    let success = sign_in(&auth, "rita").await;
    let username = internal_username(&success);
    let original = &success.refresh_token;

    let first = auth
        .refresh(request(original, &username))
        .await
        .expect("refresh");
    let rotated = first
        .rotated_refresh_token
        .expect("rotation returns a new refresh token");
    assert_ne!(rotated.expose_secret(), original.expose_secret());

    // Within the grace period the rotated-out token still works (a retry after a lost reply).
    harness.advance(5);
    auth.refresh(request(original, &username))
        .await
        .expect("the old token within the grace period");

    // After it, presenting it again is reuse.
    harness.advance(10);
    let error = auth
        .refresh(request(original, &username))
        .await
        .expect_err("the old token after the grace period");
    assert_eq!(
        error.code(),
        Some(&ErrorCode::RefreshTokenReuse),
        "{error:?}"
    );
    assert_eq!(error.refresh_failure(), Some(RefreshFailure::Reused));
    assert_eq!(error.class(), ErrorClass::NeedsUser);

    let next = auth
        .refresh(request(&rotated, &username))
        .await
        .expect("the rotated token");
    assert!(next.rotated_refresh_token.is_some());
    harness.shutdown().await;
}

#[tokio::test]
async fn refresh_falls_back_to_refresh_token_auth_where_the_operation_is_missing() {
    // Email as username: the internal username is the sub, so the fallback's SECRET_HASH is
    // only right if it is computed over the internal username, not the email typed at login.
    let harness = Harness::start(&seed(
        r#"username_attributes = ["email"]"#,
        &email_user("fred@example.com", ""),
    ))
    .await;
    let auth = harness.confidential();
    let success = authenticated(
        auth.start_login(srp_login("fred@example.com"))
            .await
            .expect("login"),
    );
    let username = internal_username(&success);
    assert_ne!(username, "fred@example.com");
    let initiates_before = harness.handle.calls("InitiateAuth");

    harness.handle.inject(Fault {
        operation: Some("GetTokensFromRefreshToken".to_owned()),
        times: 1,
        kind: FaultKind::Error {
            code: "UnknownOperationException".to_owned(),
            message: "Unknown operation".to_owned(),
            status: 400,
        },
    });
    let refreshed = auth
        .refresh(request(&success.refresh_token, &username))
        .await
        .expect("fallback refresh");
    assert!(
        refreshed.rotated_refresh_token.is_none(),
        "REFRESH_TOKEN_AUTH does not rotate"
    );
    assert_eq!(refreshed.tokens.username(), Some(username.as_str()));

    assert_eq!(harness.handle.calls("GetTokensFromRefreshToken"), 1);
    assert_eq!(harness.handle.calls("InitiateAuth") - initiates_before, 1);
    let stats = serde_json::to_value(harness.handle.stats()).expect("stats serialize");
    assert_eq!(
        stats["GetTokensFromRefreshToken"]["UnknownOperationException"], 1,
        "{stats}"
    );
    assert_eq!(
        stats["InitiateAuth"]["ok"], 2,
        "login and the fallback refresh: {stats}"
    );

    // The endpoint plainly lacks the operation: later refreshes go straight to the fallback.
    assert!(auth.uses_refresh_fallback());
    auth.refresh(request(&success.refresh_token, &username))
        .await
        .expect("second fallback refresh");
    assert_eq!(harness.handle.calls("GetTokensFromRefreshToken"), 1);
    assert_eq!(harness.handle.calls("InitiateAuth") - initiates_before, 2);
    harness.shutdown().await;
}

#[tokio::test]
async fn a_bare_html_500_on_refresh_tries_the_fallback_once() {
    // An HTML 500 may be an endpoint without the operation (moto) or a real fault: the
    // authenticator tries REFRESH_TOKEN_AUTH once and keeps it only because it works.
    let harness = Harness::start(&seed("", &user("rita", ""))).await;
    let auth = harness.confidential();
    let success = sign_in(&auth, "rita").await;
    let username = internal_username(&success);
    let initiates_before = harness.handle.calls("InitiateAuth");

    harness.handle.inject(Fault {
        operation: Some("GetTokensFromRefreshToken".to_owned()),
        times: 1,
        kind: FaultKind::HtmlError { status: 500 },
    });
    auth.refresh(request(&success.refresh_token, &username))
        .await
        .expect("refresh through the fallback");
    assert_eq!(harness.handle.calls("InitiateAuth") - initiates_before, 1);
    assert!(auth.uses_refresh_fallback());
    harness.shutdown().await;
}

#[tokio::test]
async fn a_rejected_refresh_token_does_not_trigger_the_fallback() {
    let harness = Harness::start(&seed("", &user("rita", ""))).await;
    let auth = harness.confidential();
    let success = sign_in(&auth, "rita").await;
    let username = internal_username(&success);
    let initiates_before = harness.handle.calls("InitiateAuth");

    let forged = RefreshToken::new("not-a-refresh-token");
    let error = auth
        .refresh(request(&forged, &username))
        .await
        .expect_err("a forged refresh token");
    assert_eq!(
        error.refresh_failure(),
        Some(RefreshFailure::Invalid),
        "{error:?}"
    );
    assert_eq!(harness.handle.calls("InitiateAuth"), initiates_before);
    assert!(!auth.uses_refresh_fallback());
    harness.shutdown().await;
}

#[tokio::test]
async fn a_revoked_refresh_token_no_longer_refreshes() {
    let harness = Harness::start(&seed("", &user("rita", ""))).await;
    let auth = harness.confidential();
    let success = sign_in(&auth, "rita").await;
    let other = sign_in(&auth, "rita").await;
    let username = internal_username(&success);

    auth.revoke(&success.refresh_token).await.expect("revoke");
    assert_eq!(harness.handle.calls("RevokeToken"), 1);
    let error = auth
        .refresh(request(&success.refresh_token, &username))
        .await
        .expect_err("a revoked token");
    assert_eq!(error.code(), Some(&ErrorCode::NotAuthorized), "{error:?}");
    assert_eq!(error.refresh_failure(), Some(RefreshFailure::Revoked));
    assert_eq!(error.class(), ErrorClass::NeedsUser);

    // Other sessions of the user are unaffected.
    auth.refresh(request(&other.refresh_token, &username))
        .await
        .expect("another session");
    harness.shutdown().await;
}

#[tokio::test]
async fn global_sign_out_ends_every_refresh_token() {
    let harness = Harness::start(&seed("", &user("rita", ""))).await;
    let auth = harness.public();
    let success = sign_in(&auth, "rita").await;
    let other = sign_in(&auth, "rita").await;
    let username = internal_username(&success);

    auth.global_sign_out(success.tokens.access_token())
        .await
        .expect("global sign-out");
    for refresh_token in [&success.refresh_token, &other.refresh_token] {
        let error = auth
            .refresh(request(refresh_token, &username))
            .await
            .expect_err("signed out");
        assert_eq!(error.code(), Some(&ErrorCode::NotAuthorized), "{error:?}");
        assert_eq!(error.refresh_failure(), Some(RefreshFailure::Revoked));
    }
    harness.shutdown().await;
}

#[tokio::test]
async fn an_expired_refresh_token_is_told_apart() {
    let clients = default_clients("refresh_token_ttl = 3600");
    let harness = Harness::start(&seed_with_clients("", &clients, &user("rita", ""))).await;
    let auth = harness.confidential();
    let success = sign_in(&auth, "rita").await;
    let username = internal_username(&success);

    harness.advance(3_601);
    let error = auth
        .refresh(request(&success.refresh_token, &username))
        .await
        .expect_err("expired");
    assert_eq!(error.code(), Some(&ErrorCode::NotAuthorized), "{error:?}");
    assert_eq!(error.refresh_failure(), Some(RefreshFailure::Expired));
    assert_eq!(error.class(), ErrorClass::NeedsUser);
    harness.shutdown().await;
}
