//! Device tracking: NewDeviceMetadata → ConfirmDevice (+ remember), device SRP instead of MFA,
//! refresh tokens bound to the device, and a stale device key dropped and retried once.

use cognito_auth::authenticator::{Authenticator, RefreshRequest};
use cognito_auth::error::{ErrorCode, RefreshFailure};
use cognito_auth::flow::{
    ChallengeAnswer, DeviceCredentials, DeviceRemembering, LoginRequest, LoginSuccess,
};

use super::{
    Harness, POOL_ID, answer_for_tokens, assert_service, authenticated, challenged,
    default_clients, device_login, internal_username, seed, seed_with_clients, user,
};

const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXP";

fn device_seed() -> String {
    let dave = user(
        "dave",
        &format!("mfa = \"totp\"\ntotp_secret = \"{TOTP_SECRET}\""),
    );
    seed("device_tracking = \"always\"\nmfa = \"optional\"", &dave)
}

/// Signs in with SRP + TOTP asking to remember this device; returns the tokens and the device.
async fn first_login(harness: &Harness, auth: &Authenticator) -> (LoginSuccess, DeviceCredentials) {
    let pending = challenged(
        auth.start_login(device_login("dave", None))
            .await
            .expect("first factor"),
    );
    assert_eq!(pending.challenge().name(), "SOFTWARE_TOKEN_MFA");
    let success = answer_for_tokens(
        auth,
        pending,
        ChallengeAnswer::Code(harness.totp_code("dave")),
    )
    .await;
    let device = success
        .device
        .clone()
        .expect("NewDeviceMetadata was confirmed into a device");
    (success, device)
}

#[tokio::test]
async fn a_remembered_device_replaces_mfa_and_binds_the_refresh_token() {
    let harness = Harness::start(&device_seed()).await;
    let auth = harness.confidential();

    let (_, device) = first_login(&harness, &auth).await;
    assert!(
        device.device_key.starts_with("us-east-1_"),
        "{}",
        device.device_key
    );
    assert_eq!(harness.handle.calls("ConfirmDevice"), 1);
    let devices = harness.handle.devices(POOL_ID, "dave");
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0].device_key, device.device_key);
    assert!(devices[0].confirmed && devices[0].remembered, "{devices:?}");

    // Second sign-in with the device: DEVICE_SRP_AUTH and DEVICE_PASSWORD_VERIFIER are
    // answered inside start_login instead of asking for a TOTP code.
    let responds_before = harness.handle.calls("RespondToAuthChallenge");
    let step = auth
        .start_login(device_login("dave", Some(device.clone())))
        .await
        .expect("device login");
    let success = authenticated(step);
    assert_eq!(
        harness.handle.calls("RespondToAuthChallenge") - responds_before,
        3
    );
    let reused = success.device.as_ref().expect("the device is still valid");
    assert_eq!(reused.device_key, device.device_key);
    assert_eq!(
        harness.handle.calls("ConfirmDevice"),
        1,
        "a known device is not confirmed again"
    );
    let username = internal_username(&success);

    let with_device = RefreshRequest {
        refresh_token: &success.refresh_token,
        device: Some(&device),
        username: Some(&username),
    };
    let refreshed = auth
        .refresh(with_device)
        .await
        .expect("refresh with the device key");
    assert_eq!(refreshed.tokens.username(), Some("dave"));

    let without_device = RefreshRequest {
        refresh_token: &success.refresh_token,
        device: None,
        username: Some(&username),
    };
    let error = auth
        .refresh(without_device)
        .await
        .expect_err("refresh without the device key");
    assert_service(&error, ErrorCode::NotAuthorized, "Invalid Refresh Token");
    assert_eq!(error.refresh_failure(), Some(RefreshFailure::Invalid));
    harness.shutdown().await;
}

#[tokio::test]
async fn a_stale_device_key_is_dropped_and_the_login_retried_once() {
    let harness = Harness::start(&device_seed()).await;
    let auth = harness.confidential();

    let (success, device) = first_login(&harness, &auth).await;
    auth.forget_device(success.tokens.access_token(), &device.device_key)
        .await
        .expect("forget the device");
    assert!(
        harness
            .handle
            .devices(POOL_ID, "dave")
            .iter()
            .all(|known| known.device_key != device.device_key),
        "the device is forgotten"
    );

    // The emulator answers "Device does not exist."; the driver retries once without the key,
    // so MFA is asked again, and a new device comes out of it.
    harness.next_totp_step();
    let initiates_before = harness.handle.calls("InitiateAuth");
    let pending = challenged(
        auth.start_login(device_login("dave", Some(device.clone())))
            .await
            .expect("retried login"),
    );
    assert_eq!(pending.challenge().name(), "SOFTWARE_TOKEN_MFA");
    assert_eq!(
        harness.handle.calls("InitiateAuth") - initiates_before,
        2,
        "exactly one retry"
    );
    let stats = serde_json::to_value(harness.handle.stats()).expect("stats serialize");
    assert!(
        stats.to_string().contains("ResourceNotFoundException"),
        "{stats}"
    );

    let success = answer_for_tokens(
        &auth,
        pending,
        ChallengeAnswer::Code(harness.totp_code("dave")),
    )
    .await;
    let fresh = success.device.expect("a new device");
    assert_ne!(fresh.device_key, device.device_key);
    harness.shutdown().await;
}

#[tokio::test]
async fn user_opt_in_tracking_remembers_only_when_asked() {
    let dave = user(
        "dave",
        &format!("mfa = \"totp\"\ntotp_secret = \"{TOTP_SECRET}\""),
    );
    let harness = Harness::start(&seed(
        "device_tracking = \"user_opt_in\"\nmfa = \"optional\"",
        &dave,
    ))
    .await;
    let auth = harness.public();

    // Remember: ConfirmDevice says UserConfirmationNecessary, so the client also calls
    // UpdateDeviceStatus(remembered).
    let (_, remembered) = first_login(&harness, &auth).await;
    assert_eq!(harness.handle.calls("UpdateDeviceStatus"), 1);
    let devices = harness.handle.devices(POOL_ID, "dave");
    let known = devices
        .iter()
        .find(|d| d.device_key == remembered.device_key)
        .expect("the device is known");
    assert!(known.confirmed && known.remembered, "{devices:?}");
    authenticated(
        auth.start_login(device_login("dave", Some(remembered)))
            .await
            .expect("device login"),
    );

    // Do not remember: the device is confirmed (its refresh token needs that) but not
    // remembered, so it does not replace MFA.
    harness.next_totp_step();
    let request = LoginRequest {
        remember_device: DeviceRemembering::DoNotRemember,
        ..device_login("dave", None)
    };
    let pending = challenged(auth.start_login(request).await.expect("first factor"));
    let success = answer_for_tokens(
        &auth,
        pending,
        ChallengeAnswer::Code(harness.totp_code("dave")),
    )
    .await;
    let tracked = success.device.clone().expect("a confirmed, tracked device");
    let devices = harness.handle.devices(POOL_ID, "dave");
    let known = devices
        .iter()
        .find(|d| d.device_key == tracked.device_key)
        .expect("the device is known");
    assert!(known.confirmed && !known.remembered, "{devices:?}");
    let username = internal_username(&success);
    let refresh = RefreshRequest {
        refresh_token: &success.refresh_token,
        device: Some(&tracked),
        username: Some(&username),
    };
    auth.refresh(refresh)
        .await
        .expect("refresh with the tracked device");

    harness.next_totp_step();
    let pending = challenged(
        auth.start_login(device_login("dave", Some(tracked)))
            .await
            .expect("first factor"),
    );
    assert_eq!(
        pending.challenge().name(),
        "SOFTWARE_TOKEN_MFA",
        "a device that is not remembered skips no MFA"
    );
    harness.shutdown().await;
}

#[tokio::test]
async fn device_srp_with_sessions_on_the_verifier_challenges() {
    let dave = user(
        "dave",
        &format!("mfa = \"totp\"\ntotp_secret = \"{TOTP_SECRET}\""),
    );
    let clients = default_clients("srp_challenge_session = true");
    let harness = Harness::start(&seed_with_clients(
        "device_tracking = \"always\"\nmfa = \"optional\"",
        &clients,
        &dave,
    ))
    .await;
    let auth = harness.confidential();

    let (_, device) = first_login(&harness, &auth).await;
    let success = authenticated(
        auth.start_login(device_login("dave", Some(device.clone())))
            .await
            .expect("device login"),
    );
    assert_eq!(
        success.device.map(|d| d.device_key),
        Some(device.device_key)
    );
    harness.shutdown().await;
}
