//! Device tracking: NewDeviceMetadata, ConfirmDevice, refresh bound to the device, device SRP.

use serde_json::json;

use crate::support::*;

const DEVICE_PASSWORD: &str = "bW9jay1kZXZpY2UtcGFzc3dvcmQtZm9yLXRlc3RzLW9ubHktMDEyMzQ1";

fn tracking_seed(mode: &str) -> String {
    SEED.replace(
        "mfa = \"optional\"",
        &format!("mfa = \"optional\"\ndevice_tracking = \"{mode}\""),
    )
}

#[tokio::test]
async fn remembered_device_skips_mfa_through_device_srp() {
    let env = start(&tracking_seed("user_opt_in")).await;
    // First sign-in: TOTP MFA, then a new device.
    let challenge = env
        .srp_login(PUBLIC, "totp", PASSWORD)
        .await
        .expect("challenge");
    assert_eq!(challenge["ChallengeName"], "SOFTWARE_TOKEN_MFA");
    let code = env.handle.totp_code(POOL, "totp").expect("secret");
    let answer = env
        .ok(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "SOFTWARE_TOKEN_MFA", "ClientId": PUBLIC, "Session": challenge["Session"],
                    "ChallengeResponses": { "USERNAME": "totp", "SOFTWARE_TOKEN_MFA_CODE": code } }),
        )
        .await;
    let result = tokens(&answer);
    let metadata = &result["NewDeviceMetadata"];
    let device_key = metadata["DeviceKey"]
        .as_str()
        .expect("device key")
        .to_owned();
    let group_key = metadata["DeviceGroupKey"]
        .as_str()
        .expect("group key")
        .to_owned();
    assert!(device_key.starts_with("us-east-1_"));
    let access = result["AccessToken"].as_str().expect("access").to_owned();
    let refresh = result["RefreshToken"].as_str().expect("refresh").to_owned();
    assert_eq!(claims(&access)["device_key"], device_key.as_str());

    // Refresh is bound to the device: it needs DEVICE_KEY, and a confirmed device.
    let unbound = env
        .fail(
            "GetTokensFromRefreshToken",
            json!({ "ClientId": PUBLIC, "RefreshToken": refresh }),
        )
        .await;
    assert_eq!(unbound.message, "Invalid Refresh Token");
    let unconfirmed = env
        .fail(
            "GetTokensFromRefreshToken",
            json!({ "ClientId": PUBLIC, "RefreshToken": refresh, "DeviceKey": device_key }),
        )
        .await;
    assert_eq!(unconfirmed.message, "Invalid Refresh Token");

    let bad = env
        .fail(
            "ConfirmDevice",
            json!({ "AccessToken": access, "DeviceKey": device_key,
                    "DeviceSecretVerifierConfig": { "PasswordVerifier": "gAAA", "Salt": "AQ==" } }),
        )
        .await;
    assert_eq!(
        bad.code, "InvalidParameterException",
        "an un-PADded (negative) verifier is refused"
    );
    let confirmed = env
        .ok(
            "ConfirmDevice",
            json!({ "AccessToken": access, "DeviceKey": device_key, "DeviceName": "test box",
                    "DeviceSecretVerifierConfig": device_verifier(&group_key, &device_key, DEVICE_PASSWORD) }),
        )
        .await;
    assert_eq!(confirmed["UserConfirmationNecessary"], true);
    env.ok(
        "GetTokensFromRefreshToken",
        json!({ "ClientId": PUBLIC, "RefreshToken": refresh, "DeviceKey": device_key }),
    )
    .await;
    env.ok(
        "InitiateAuth",
        json!({ "AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": PUBLIC,
                "AuthParameters": { "REFRESH_TOKEN": refresh, "DEVICE_KEY": device_key } }),
    )
    .await;

    // Confirmed but not remembered: MFA still applies.
    let devices = env.handle.devices(POOL, "totp");
    assert_eq!(devices.len(), 1);
    assert!(devices[0].confirmed && !devices[0].remembered);
    env.ok(
        "UpdateDeviceStatus",
        json!({ "AccessToken": access, "DeviceKey": device_key, "DeviceRememberedStatus": "remembered" }),
    )
    .await;
    assert!(env.handle.devices(POOL, "totp")[0].remembered);

    // Remembered: DEVICE_SRP_AUTH instead of MFA, verified with the device's own verifier.
    let srp = SrpClient::new();
    let first = env
        .ok(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": PUBLIC,
                    "AuthParameters": { "USERNAME": "totp", "PASSWORD": PASSWORD, "DEVICE_KEY": device_key } }),
        )
        .await;
    assert_eq!(first["ChallengeName"], "DEVICE_SRP_AUTH");
    let verifier_challenge = env
        .ok(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "DEVICE_SRP_AUTH", "ClientId": PUBLIC, "Session": first["Session"],
                    "ChallengeResponses": { "USERNAME": "totp", "DEVICE_KEY": device_key, "SRP_A": srp.a_hex() } }),
        )
        .await;
    assert_eq!(
        verifier_challenge["ChallengeName"],
        "DEVICE_PASSWORD_VERIFIER"
    );
    let params = &verifier_challenge["ChallengeParameters"];
    let timestamp = java_timestamp(env.now());
    let respond = |signature: String| {
        json!({ "ChallengeName": "DEVICE_PASSWORD_VERIFIER", "ClientId": PUBLIC, "ChallengeResponses": {
            "USERNAME": "totp", "DEVICE_KEY": device_key, "PASSWORD_CLAIM_SECRET_BLOCK": params["SECRET_BLOCK"],
            "PASSWORD_CLAIM_SIGNATURE": signature, "TIMESTAMP": timestamp } })
    };
    let done = env
        .ok(
            "RespondToAuthChallenge",
            respond(srp.signature(&group_key, &device_key, DEVICE_PASSWORD, params, &timestamp)),
        )
        .await;
    let result = tokens(&done);
    assert!(
        result.get("NewDeviceMetadata").is_none(),
        "a known device gets no new metadata"
    );
    assert_eq!(
        claims(result["AccessToken"].as_str().expect("access"))["device_key"],
        device_key.as_str()
    );

    // A wrong device password fails the device step.
    let srp = SrpClient::new();
    let first = env
        .ok(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": PUBLIC,
                    "AuthParameters": { "USERNAME": "totp", "PASSWORD": PASSWORD, "DEVICE_KEY": device_key } }),
        )
        .await;
    // No Session this time: the pending DEVICE_SRP_AUTH is found by the device key.
    let verifier_challenge = env
        .ok(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "DEVICE_SRP_AUTH", "ClientId": PUBLIC,
                    "ChallengeResponses": { "USERNAME": "totp", "DEVICE_KEY": device_key, "SRP_A": srp.a_hex() } }),
        )
        .await;
    assert_eq!(first["ChallengeName"], "DEVICE_SRP_AUTH");
    let params = &verifier_challenge["ChallengeParameters"];
    let signature = srp.signature(
        &group_key,
        &device_key,
        "wrong-device-password",
        params,
        &timestamp,
    );
    let failure = env
        .fail(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "DEVICE_PASSWORD_VERIFIER", "ClientId": PUBLIC, "ChallengeResponses": {
                "USERNAME": "totp", "DEVICE_KEY": device_key, "PASSWORD_CLAIM_SECRET_BLOCK": params["SECRET_BLOCK"],
                "PASSWORD_CLAIM_SIGNATURE": signature, "TIMESTAMP": timestamp } }),
        )
        .await;
    assert_eq!(failure.message, "Incorrect username or password.");

    // ForgetDevice: the key is gone and its refresh tokens with it.
    env.ok(
        "ForgetDevice",
        json!({ "AccessToken": access, "DeviceKey": device_key }),
    )
    .await;
    let gone = env
        .fail(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": PUBLIC,
                    "AuthParameters": { "USERNAME": "totp", "PASSWORD": PASSWORD, "DEVICE_KEY": device_key } }),
        )
        .await;
    assert_eq!(
        (gone.code.as_str(), gone.message.as_str()),
        ("ResourceNotFoundException", "Device does not exist.")
    );
    let refresh_gone = env
        .fail(
            "GetTokensFromRefreshToken",
            json!({ "ClientId": PUBLIC, "RefreshToken": refresh, "DeviceKey": device_key }),
        )
        .await;
    assert_eq!(refresh_gone.message, "Invalid Refresh Token");
}

#[tokio::test]
async fn always_tracking_remembers_on_confirm() {
    let env = start(&tracking_seed("always")).await;
    let answer = env
        .password_login(PUBLIC, "alice", PASSWORD)
        .await
        .expect("signed in");
    let result = tokens(&answer);
    let device_key = result["NewDeviceMetadata"]["DeviceKey"]
        .as_str()
        .expect("key")
        .to_owned();
    let group_key = result["NewDeviceMetadata"]["DeviceGroupKey"]
        .as_str()
        .expect("group")
        .to_owned();
    let access = result["AccessToken"].as_str().expect("access");
    let confirmed = env
        .ok(
            "ConfirmDevice",
            json!({ "AccessToken": access, "DeviceKey": device_key,
                    "DeviceSecretVerifierConfig": device_verifier(&group_key, &device_key, DEVICE_PASSWORD) }),
        )
        .await;
    assert_eq!(confirmed["UserConfirmationNecessary"], false);
    assert!(env.handle.devices(POOL, "alice")[0].remembered);
    let listed = env
        .ok("ListDevices", json!({ "AccessToken": access }))
        .await;
    assert_eq!(listed["Devices"][0]["DeviceKey"], device_key.as_str());
    let again = env
        .password_login(PUBLIC, "alice", PASSWORD)
        .await
        .expect("signed in");
    assert!(
        tokens(&again).get("NewDeviceMetadata").is_some(),
        "a login without DEVICE_KEY is a new device"
    );
}
