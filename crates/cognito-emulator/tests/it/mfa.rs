//! MFA: TOTP with retries, SMS codes, SELECT_MFA_TYPE, MFA_SETUP through AssociateSoftwareToken.

use serde_json::json;

use crate::support::*;

fn mfa_answer(
    challenge: &serde_json::Value,
    username: &str,
    field: &str,
    code: &str,
) -> serde_json::Value {
    json!({ "ChallengeName": challenge["ChallengeName"], "ClientId": PUBLIC, "Session": challenge["Session"],
            "ChallengeResponses": { "USERNAME": username, field: code } })
}

#[tokio::test]
async fn totp_mfa_allows_a_retry_after_a_wrong_code() {
    let env = start(SEED).await;
    let challenge = env
        .srp_login(PUBLIC, "totp", PASSWORD)
        .await
        .expect("challenge");
    assert_eq!(challenge["ChallengeName"], "SOFTWARE_TOKEN_MFA");
    let code = env.handle.totp_code(POOL, "totp").expect("seeded secret");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mismatch = env
        .fail(
            "RespondToAuthChallenge",
            mfa_answer(&challenge, "totp", "SOFTWARE_TOKEN_MFA_CODE", wrong),
        )
        .await;
    assert_eq!(
        (mismatch.code.as_str(), mismatch.message.as_str()),
        (
            "CodeMismatchException",
            "Invalid code or auth state for the user."
        )
    );
    let answer = env
        .ok(
            "RespondToAuthChallenge",
            mfa_answer(&challenge, "totp", "SOFTWARE_TOKEN_MFA_CODE", &code),
        )
        .await;
    tokens(&answer);
    assert_eq!(
        cognito_emulator::totp("JBSWY3DPEHPK3PXP", env.now() as u64),
        env.handle.totp_code(POOL, "totp")
    );
}

#[tokio::test]
async fn three_wrong_codes_burn_the_session() {
    let env = start(SEED).await;
    let challenge = env
        .password_login(PUBLIC, "sms", PASSWORD)
        .await
        .expect("challenge");
    assert_eq!(challenge["ChallengeName"], "SMS_MFA");
    assert_eq!(
        challenge["ChallengeParameters"]["CODE_DELIVERY_DESTINATION"],
        "+*******0100"
    );
    let code = env.handle.last_code("sms").expect("code sent");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        let failure = env
            .fail(
                "RespondToAuthChallenge",
                mfa_answer(&challenge, "sms", "SMS_MFA_CODE", wrong),
            )
            .await;
        assert_eq!(failure.code, "CodeMismatchException");
    }
    let burnt = env
        .fail(
            "RespondToAuthChallenge",
            mfa_answer(&challenge, "sms", "SMS_MFA_CODE", &code),
        )
        .await;
    assert_eq!(
        burnt.message,
        "Invalid session for the user, session can only be used once."
    );

    let challenge = env
        .password_login(PUBLIC, "sms", PASSWORD)
        .await
        .expect("challenge");
    let code = env.handle.last_code("sms").expect("code sent");
    let messages = env.handle.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].destination, "+15555550100");
    assert_eq!(messages[1].medium, "SMS");
    tokens(
        &env.ok(
            "RespondToAuthChallenge",
            mfa_answer(&challenge, "sms", "SMS_MFA_CODE", &code),
        )
        .await,
    );
}

#[tokio::test]
async fn select_mfa_type_then_the_chosen_challenge() {
    let env = start(SEED).await;
    let select = env
        .srp_login(PUBLIC, "chooser", PASSWORD)
        .await
        .expect("challenge");
    assert_eq!(select["ChallengeName"], "SELECT_MFA_TYPE");
    assert_eq!(
        select["ChallengeParameters"]["MFAS_CAN_CHOOSE"],
        "[\"SMS_MFA\",\"SOFTWARE_TOKEN_MFA\"]"
    );
    let chosen = env
        .ok(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "SELECT_MFA_TYPE", "ClientId": PUBLIC, "Session": select["Session"],
                    "ChallengeResponses": { "USERNAME": "chooser", "ANSWER": "SOFTWARE_TOKEN_MFA" } }),
        )
        .await;
    assert_eq!(chosen["ChallengeName"], "SOFTWARE_TOKEN_MFA");
    let code = env.handle.totp_code(POOL, "chooser").expect("secret");
    tokens(
        &env.ok(
            "RespondToAuthChallenge",
            mfa_answer(&chosen, "chooser", "SOFTWARE_TOKEN_MFA_CODE", &code),
        )
        .await,
    );
}

#[tokio::test]
async fn mfa_setup_with_a_software_token() {
    let env = start(&SEED.replace("mfa = \"optional\"", "mfa = \"on\"")).await;
    let setup = env
        .password_login(PUBLIC, "alice", PASSWORD)
        .await
        .expect("challenge");
    assert_eq!(setup["ChallengeName"], "MFA_SETUP");
    assert_eq!(
        setup["ChallengeParameters"]["MFAS_CAN_SETUP"],
        "[\"SOFTWARE_TOKEN_MFA\"]"
    );
    let early = env
        .fail(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "MFA_SETUP", "ClientId": PUBLIC, "Session": setup["Session"],
                    "ChallengeResponses": { "USERNAME": "alice" } }),
        )
        .await;
    assert_eq!(early.code, "InvalidParameterException");
    let associated = env
        .ok(
            "AssociateSoftwareToken",
            json!({ "Session": setup["Session"] }),
        )
        .await;
    let secret = associated["SecretCode"].as_str().expect("secret");
    assert!(secret.len() >= 16);
    let wrong = env
        .fail(
            "VerifySoftwareToken",
            json!({ "Session": associated["Session"], "UserCode": "12345" }),
        )
        .await;
    assert_eq!(wrong.code, "InvalidParameterException");
    let code = cognito_emulator::totp(secret, env.now() as u64).expect("valid secret");
    let verified = env
        .ok(
            "VerifySoftwareToken",
            json!({ "Session": associated["Session"], "UserCode": code }),
        )
        .await;
    assert_eq!(verified["Status"], "SUCCESS");
    let done = env
        .ok(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "MFA_SETUP", "ClientId": PUBLIC, "Session": verified["Session"],
                    "ChallengeResponses": { "USERNAME": "alice" } }),
        )
        .await;
    let access = tokens(&done)["AccessToken"]
        .as_str()
        .expect("access")
        .to_owned();
    assert_eq!(env.handle.totp_code(POOL, "alice"), Some(code));
    let user = env.ok("GetUser", json!({ "AccessToken": access })).await;
    assert_eq!(user["PreferredMfaSetting"], "SOFTWARE_TOKEN_MFA");
    let next = env
        .password_login(PUBLIC, "alice", PASSWORD)
        .await
        .expect("challenge");
    assert_eq!(
        next["ChallengeName"], "SOFTWARE_TOKEN_MFA",
        "the new token is used from now on"
    );

    // A signed-in user can associate another token with the access token.
    let associated = env
        .ok("AssociateSoftwareToken", json!({ "AccessToken": access }))
        .await;
    let secret = associated["SecretCode"]
        .as_str()
        .expect("secret")
        .to_owned();
    let code = cognito_emulator::totp(&secret, env.now() as u64).expect("valid");
    let verified = env
        .ok(
            "VerifySoftwareToken",
            json!({ "AccessToken": access, "UserCode": code }),
        )
        .await;
    assert_eq!(verified["Status"], "SUCCESS");
    assert_eq!(
        env.handle.totp_code(POOL, "alice"),
        cognito_emulator::totp(&secret, env.now() as u64)
    );
}
