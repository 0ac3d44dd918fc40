//! CUSTOM_AUTH: a custom challenge answered right and wrong, alone and after SRP.

use cognito_auth::error::ErrorCode;
use cognito_auth::flow::{AuthFlow, Challenge, ChallengeAnswer};
use cognito_auth::secret::Password;

use super::{
    Harness, PASSWORD, answer_for_challenge, answer_for_tokens, challenged, internal_username,
    login, seed, user,
};

fn right() -> ChallengeAnswer {
    ChallengeAnswer::CustomAnswer(Password::new("the-answer-is-42"))
}

fn wrong() -> ChallengeAnswer {
    ChallengeAnswer::CustomAnswer(Password::new("the-answer-is-41"))
}

fn custom_user() -> String {
    user("cara", r#"custom_challenge_answer = "the-answer-is-42""#)
}

#[tokio::test]
async fn custom_challenge_right_and_wrong_answers() {
    let harness = Harness::start(&seed("", &custom_user())).await;
    let auth = harness.confidential();
    let custom = AuthFlow::Custom { srp_first: false };

    let pending = challenged(
        auth.start_login(login("cara", None, custom.clone()))
            .await
            .expect("custom auth"),
    );
    assert!(
        matches!(pending.challenge(), Challenge::CustomChallenge { .. }),
        "got {}",
        pending.challenge().name()
    );
    // A wrong answer brings the challenge again (with a new session), the right one then
    // signs in.
    let pending = answer_for_challenge(&auth, pending, wrong()).await;
    assert_eq!(pending.challenge().name(), "CUSTOM_CHALLENGE");
    let success = answer_for_tokens(&auth, pending, right()).await;
    assert_eq!(internal_username(&success), "cara");

    // Three wrong answers end the sign-in.
    let pending = challenged(
        auth.start_login(login("cara", None, custom.clone()))
            .await
            .expect("custom auth"),
    );
    let pending = answer_for_challenge(&auth, pending, wrong()).await;
    let pending = answer_for_challenge(&auth, pending, wrong()).await;
    let refused = auth
        .respond(pending, wrong())
        .await
        .expect_err("a third wrong answer");
    super::assert_service(
        &refused.error,
        ErrorCode::NotAuthorized,
        "Incorrect username or password",
    );
    assert!(refused.pending.is_none());

    let pending = challenged(
        auth.start_login(login("cara", None, custom))
            .await
            .expect("custom auth"),
    );
    answer_for_tokens(&auth, pending, right()).await;
    harness.shutdown().await;
}

#[tokio::test]
async fn custom_auth_with_srp_first() {
    let harness = Harness::start(&seed("", &custom_user())).await;
    let auth = harness.confidential();

    let request = login("cara", Some(PASSWORD), AuthFlow::Custom { srp_first: true });
    let pending = challenged(
        auth.start_login(request)
            .await
            .expect("srp, then the custom challenge"),
    );
    assert_eq!(pending.challenge().name(), "CUSTOM_CHALLENGE");
    // PASSWORD_VERIFIER was answered inside start_login.
    assert_eq!(harness.handle.calls("RespondToAuthChallenge"), 1);

    let success = answer_for_tokens(&auth, pending, right()).await;
    assert_eq!(internal_username(&success), "cara");
    assert_eq!(harness.handle.calls("RespondToAuthChallenge"), 2);
    harness.shutdown().await;
}

#[tokio::test]
async fn custom_auth_with_srp_first_and_a_wrong_password() {
    let harness = Harness::start(&seed("", &custom_user())).await;
    let request = login(
        "cara",
        Some("Wrong-Passw0rd!"),
        AuthFlow::Custom { srp_first: true },
    );
    let error = harness
        .public()
        .start_login(request)
        .await
        .expect_err("a wrong password");
    super::assert_service(
        &error,
        ErrorCode::NotAuthorized,
        "Incorrect username or password",
    );
    harness.shutdown().await;
}
