//! USER_AUTH (choice-based sign-in): SELECT_CHALLENGE answered with each first factor,
//! PREFERRED_CHALLENGE, and WEB_AUTHN refused as unsupported.

use cognito_auth::error::Error;
use cognito_auth::flow::{AuthFlow, Challenge, ChallengeAnswer, LoginRequest, PendingLogin};
use cognito_auth::secret::Password;

use super::{
    Harness, PASSWORD, answer_for_challenge, answer_for_tokens, authenticated, challenged,
    internal_username, login, seed, user,
};

fn passwordless_user() -> String {
    user("uma", "phone_number = \"+15555550199\"")
}

fn user_auth(preferred: Option<&str>, password: Option<&str>) -> LoginRequest {
    login(
        "uma",
        password,
        AuthFlow::UserAuth {
            preferred: preferred.map(str::to_owned),
        },
    )
}

/// Starts USER_AUTH without a preference and checks the offered first factors.
async fn select_challenge(
    harness: &Harness,
    auth: &cognito_auth::authenticator::Authenticator,
) -> PendingLogin {
    let pending = challenged(
        auth.start_login(user_auth(None, None))
            .await
            .expect("user auth"),
    );
    match pending.challenge() {
        Challenge::SelectChallenge { available } => {
            for expected in ["PASSWORD", "PASSWORD_SRP", "EMAIL_OTP", "SMS_OTP"] {
                assert!(
                    available.iter().any(|offered| offered == expected),
                    "{expected} missing from {available:?}"
                );
            }
        }
        other => panic!("expected SELECT_CHALLENGE, got {}", other.name()),
    }
    assert_eq!(harness.handle.calls("RespondToAuthChallenge"), 0);
    pending
}

fn select(challenge: &str, password: Option<&str>) -> ChallengeAnswer {
    ChallengeAnswer::SelectChallenge {
        challenge: challenge.to_owned(),
        password: password.map(Password::new),
    }
}

#[tokio::test]
async fn select_challenge_password() {
    let harness = Harness::start(&seed("", &passwordless_user())).await;
    let auth = harness.confidential();
    let pending = select_challenge(&harness, &auth).await;
    let success = answer_for_tokens(&auth, pending, select("PASSWORD", Some(PASSWORD))).await;
    assert_eq!(internal_username(&success), "uma");
    harness.shutdown().await;
}

#[tokio::test]
async fn select_challenge_password_srp() {
    let harness = Harness::start(&seed("", &passwordless_user())).await;
    let auth = harness.confidential();
    let pending = select_challenge(&harness, &auth).await;
    let success = answer_for_tokens(&auth, pending, select("PASSWORD_SRP", Some(PASSWORD))).await;
    assert_eq!(internal_username(&success), "uma");
    // SELECT_CHALLENGE with SRP_A, then PASSWORD_VERIFIER, both inside respond.
    assert_eq!(harness.handle.calls("RespondToAuthChallenge"), 2);
    harness.shutdown().await;
}

#[tokio::test]
async fn select_challenge_email_otp() {
    let harness = Harness::start(&seed("", &passwordless_user())).await;
    let auth = harness.public();
    let pending = select_challenge(&harness, &auth).await;
    let pending = answer_for_challenge(&auth, pending, select("EMAIL_OTP", None)).await;
    assert!(
        matches!(pending.challenge(), Challenge::EmailOtp { .. }),
        "got {}",
        pending.challenge().name()
    );
    let success = answer_for_tokens(
        &auth,
        pending,
        ChallengeAnswer::Code(harness.last_code("uma")),
    )
    .await;
    assert_eq!(internal_username(&success), "uma");
    harness.shutdown().await;
}

#[tokio::test]
async fn select_challenge_sms_otp() {
    let harness = Harness::start(&seed("", &passwordless_user())).await;
    let auth = harness.confidential();
    let pending = select_challenge(&harness, &auth).await;
    let pending = answer_for_challenge(&auth, pending, select("SMS_OTP", None)).await;
    assert!(
        matches!(pending.challenge(), Challenge::SmsOtp { .. }),
        "got {}",
        pending.challenge().name()
    );
    let sent = harness.handle.messages().pop().expect("an SMS was sent");
    assert_eq!(sent.medium, "SMS");
    let success = answer_for_tokens(
        &auth,
        pending,
        ChallengeAnswer::Code(harness.last_code("uma")),
    )
    .await;
    assert_eq!(internal_username(&success), "uma");
    harness.shutdown().await;
}

#[tokio::test]
async fn preferred_challenge_skips_the_selection() {
    let harness = Harness::start(&seed("", &passwordless_user())).await;
    let auth = harness.confidential();

    let step = auth
        .start_login(user_auth(Some("PASSWORD_SRP"), Some(PASSWORD)))
        .await
        .expect("preferred srp");
    authenticated(step);
    assert_eq!(harness.handle.calls("InitiateAuth"), 1);
    assert_eq!(
        harness.handle.calls("RespondToAuthChallenge"),
        1,
        "only PASSWORD_VERIFIER"
    );

    let step = auth
        .start_login(user_auth(Some("PASSWORD"), Some(PASSWORD)))
        .await
        .expect("preferred password");
    authenticated(step);
    assert_eq!(
        harness.handle.calls("RespondToAuthChallenge"),
        1,
        "no challenge at all"
    );

    let pending = challenged(
        auth.start_login(user_auth(Some("EMAIL_OTP"), None))
            .await
            .expect("preferred email"),
    );
    assert_eq!(pending.challenge().name(), "EMAIL_OTP");
    answer_for_tokens(
        &auth,
        pending,
        ChallengeAnswer::Code(harness.last_code("uma")),
    )
    .await;
    harness.shutdown().await;
}

#[tokio::test]
async fn web_authn_is_unsupported() {
    let harness = Harness::start(&seed("", &passwordless_user())).await;
    let auth = harness.public();

    // A passkey needs a platform authenticator: refused before anything is sent.
    let error = auth
        .start_login(user_auth(Some("WEB_AUTHN"), None))
        .await
        .expect_err("a passkey sign-in");
    assert!(
        matches!(&error, Error::Unsupported(message) if message.contains("WEB_AUTHN")),
        "{error:?}"
    );
    assert_eq!(harness.handle.calls("InitiateAuth"), 0);

    // The emulator never offers WEB_AUTHN, so choosing it is the caller's mistake; the login
    // stays pending and another factor still works.
    let pending = select_challenge(&harness, &auth).await;
    let refused = auth
        .respond(pending, select("WEB_AUTHN", None))
        .await
        .expect_err("a passkey answer");
    assert!(
        matches!(refused.error, Error::InvalidInput(_)),
        "{:?}",
        refused.error
    );
    assert_eq!(
        harness.handle.calls("RespondToAuthChallenge"),
        0,
        "nothing was sent"
    );
    let pending = *refused.pending.expect("the selection can be made again");
    let success = answer_for_tokens(&auth, pending, select("PASSWORD", Some(PASSWORD))).await;
    assert_eq!(internal_username(&success), "uma");
    harness.shutdown().await;
}
