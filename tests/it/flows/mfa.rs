//! Second factors: SMS, email and TOTP codes, wrong codes, SELECT_MFA_TYPE, TOTP enrolment
//! during sign-in (MFA_SETUP), and sessions that expire or are replayed.

use std::time::Duration;

use cognito_auth::error::{ErrorClass, ErrorCode};
use cognito_auth::flow::{AuthFlow, Challenge, ChallengeAnswer, MfaType};
use cognito_auth::secret::OneTimeCode;
use serde_json::json;

use super::{
    Harness, PASSWORD, PUBLIC_CLIENT, answer_for_challenge, answer_for_tokens, challenged,
    default_clients, internal_username, login, seed, seed_with_clients, srp_login, user,
};

const PHONE: &str = "+15555550100";
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXP";

fn sms_user(username: &str) -> String {
    user(
        username,
        &format!("mfa = \"sms\"\nphone_number = \"{PHONE}\""),
    )
}

/// A code that is certainly not `code`.
fn wrong_code(code: &OneTimeCode) -> OneTimeCode {
    let digits = code.expose_secret();
    let last = digits.chars().last().expect("a non-empty code");
    let other = if last == '0' { '1' } else { '0' };
    OneTimeCode::new(format!("{}{other}", &digits[..digits.len() - 1]))
}

#[tokio::test]
async fn sms_mfa() {
    let harness = Harness::start(&seed(r#"mfa = "optional""#, &sms_user("sam"))).await;
    let auth = harness.confidential();

    let pending = challenged(
        auth.start_login(srp_login("sam"))
            .await
            .expect("first factor"),
    );
    match pending.challenge() {
        Challenge::SmsMfa { destination } => {
            let destination = destination.as_deref().expect("a masked destination");
            assert!(destination.ends_with("0100"), "{destination}");
        }
        other => panic!("expected SMS_MFA, got {}", other.name()),
    }
    let messages = harness.handle.messages();
    let sent = messages.last().expect("an SMS was sent");
    assert_eq!(
        (sent.medium.as_str(), sent.destination.as_str()),
        ("SMS", PHONE)
    );
    assert_eq!(sent.username, "sam");

    let code = harness.last_code("sam");
    let success = answer_for_tokens(&auth, pending, ChallengeAnswer::Code(code)).await;
    assert_eq!(internal_username(&success), "sam");
    harness.shutdown().await;
}

#[tokio::test]
async fn email_otp_mfa() {
    let harness = Harness::start(&seed(
        r#"mfa = "optional""#,
        &user("emma", r#"mfa = "email""#),
    ))
    .await;
    let auth = harness.public();

    let request = login("emma", Some(PASSWORD), AuthFlow::UserPassword);
    let pending = challenged(auth.start_login(request).await.expect("first factor"));
    assert!(
        matches!(
            pending.challenge(),
            Challenge::EmailOtp {
                destination: Some(_)
            }
        ),
        "got {}",
        pending.challenge().name()
    );
    let sent = harness.handle.messages().pop().expect("an email was sent");
    assert_eq!(
        (sent.medium.as_str(), sent.destination.as_str()),
        ("EMAIL", "emma@example.com")
    );

    let code = harness.last_code("emma");
    let success = answer_for_tokens(&auth, pending, ChallengeAnswer::Code(code)).await;
    assert_eq!(internal_username(&success), "emma");
    harness.shutdown().await;
}

#[tokio::test]
async fn software_token_mfa() {
    let totp_user = user(
        "tom",
        &format!("mfa = \"totp\"\ntotp_secret = \"{TOTP_SECRET}\""),
    );
    let harness = Harness::start(&seed(r#"mfa = "optional""#, &totp_user)).await;
    let auth = harness.confidential();

    let pending = challenged(
        auth.start_login(srp_login("tom"))
            .await
            .expect("first factor"),
    );
    assert!(
        matches!(pending.challenge(), Challenge::SoftwareTokenMfa { .. }),
        "got {}",
        pending.challenge().name()
    );

    // The code a user's authenticator app shows, computed from the seeded secret.
    let code =
        cognito_emulator::totp(TOTP_SECRET, harness.unix_now()).expect("a valid base32 secret");
    assert_eq!(code, harness.totp_code("tom").expose_secret());
    let success = answer_for_tokens(
        &auth,
        pending,
        ChallengeAnswer::Code(OneTimeCode::new(code)),
    )
    .await;
    assert_eq!(internal_username(&success), "tom");
    harness.shutdown().await;
}

#[tokio::test]
async fn a_wrong_mfa_code_is_a_code_mismatch_and_the_login_stays_pending() {
    let harness = Harness::start(&seed(r#"mfa = "optional""#, &sms_user("sam"))).await;
    let auth = harness.public();

    let pending = challenged(
        auth.start_login(srp_login("sam"))
            .await
            .expect("first factor"),
    );
    let code = harness.last_code("sam");
    let refused = auth
        .respond(pending, ChallengeAnswer::Code(wrong_code(&code)))
        .await
        .expect_err("a wrong code");
    assert_eq!(
        refused.error.code(),
        Some(&ErrorCode::CodeMismatch),
        "{:?}",
        refused.error
    );
    assert_eq!(refused.error.class(), ErrorClass::NeedsUser);
    let pending = *refused.pending.expect("a code mismatch may be retried");
    assert_eq!(pending.challenge().name(), "SMS_MFA");

    let success = answer_for_tokens(&auth, pending, ChallengeAnswer::Code(code)).await;
    assert_eq!(internal_username(&success), "sam");
    harness.shutdown().await;
}

#[tokio::test]
async fn select_mfa_type_between_several_factors() {
    let extra = format!(
        "phone_number = \"{PHONE}\"\ntotp_secret = \"{TOTP_SECRET}\"\nsms_mfa = true\nemail_mfa = true\ntotp_mfa = true"
    );
    let harness = Harness::start(&seed(r#"mfa = "optional""#, &user("max", &extra))).await;
    let auth = harness.confidential();

    let pending = challenged(
        auth.start_login(srp_login("max"))
            .await
            .expect("first factor"),
    );
    match pending.challenge() {
        Challenge::SelectMfaType { options } => {
            for expected in [MfaType::Sms, MfaType::SoftwareToken, MfaType::Email] {
                assert!(
                    options.contains(&expected),
                    "{expected:?} missing from {options:?}"
                );
            }
        }
        other => panic!("expected SELECT_MFA_TYPE, got {}", other.name()),
    }
    let pending =
        answer_for_challenge(&auth, pending, ChallengeAnswer::MfaType(MfaType::Email)).await;
    assert_eq!(pending.challenge().name(), "EMAIL_OTP");
    let success = answer_for_tokens(
        &auth,
        pending,
        ChallengeAnswer::Code(harness.last_code("max")),
    )
    .await;
    assert_eq!(internal_username(&success), "max");

    // The other choice leads to the other challenge.
    let pending = challenged(
        auth.start_login(srp_login("max"))
            .await
            .expect("first factor"),
    );
    let pending = answer_for_challenge(
        &auth,
        pending,
        ChallengeAnswer::MfaType(MfaType::SoftwareToken),
    )
    .await;
    assert_eq!(pending.challenge().name(), "SOFTWARE_TOKEN_MFA");
    answer_for_tokens(
        &auth,
        pending,
        ChallengeAnswer::Code(harness.totp_code("max")),
    )
    .await;
    harness.shutdown().await;
}

#[tokio::test]
async fn mfa_setup_enrols_totp_during_sign_in() {
    let harness = Harness::start(&seed(r#"mfa = "on""#, &user("nina", ""))).await;
    let auth = harness.confidential();

    let pending = challenged(
        auth.start_login(srp_login("nina"))
            .await
            .expect("first factor"),
    );
    let secret = match pending.challenge() {
        Challenge::MfaSetup {
            secret_code,
            otpauth_uri,
        } => {
            let secret = secret_code.expose_secret().to_owned();
            let uri = otpauth_uri.expose_secret();
            assert!(uri.starts_with("otpauth://totp/"), "{uri}");
            assert!(uri.contains(&format!("secret={secret}")), "{uri}");
            secret
        }
        other => panic!("expected MFA_SETUP, got {}", other.name()),
    };
    // The driver associated the token with the challenge's session before handing it over.
    assert_eq!(harness.handle.calls("AssociateSoftwareToken"), 1);

    let code = cognito_emulator::totp(&secret, harness.unix_now()).expect("a base32 secret");
    let success = answer_for_tokens(
        &auth,
        pending,
        ChallengeAnswer::Code(OneTimeCode::new(code)),
    )
    .await;
    assert_eq!(internal_username(&success), "nina");
    assert_eq!(harness.handle.calls("VerifySoftwareToken"), 1);

    // Enrolled: the next sign-in asks for a code from that secret.
    harness.next_totp_step();
    let pending = challenged(
        auth.start_login(srp_login("nina"))
            .await
            .expect("first factor"),
    );
    assert_eq!(pending.challenge().name(), "SOFTWARE_TOKEN_MFA");
    let code = cognito_emulator::totp(&secret, harness.unix_now()).expect("a base32 secret");
    answer_for_tokens(
        &auth,
        pending,
        ChallengeAnswer::Code(OneTimeCode::new(code)),
    )
    .await;
    harness.shutdown().await;
}

#[tokio::test]
async fn an_expired_challenge_session_fails_as_expired() {
    let clients = default_clients("session_ttl = 180");
    let harness = Harness::start(&seed_with_clients(
        r#"mfa = "optional""#,
        &clients,
        &sms_user("sam"),
    ))
    .await;
    let auth = harness.public();

    let pending = challenged(
        auth.start_login(srp_login("sam"))
            .await
            .expect("first factor"),
    );
    let lifetime = pending
        .expires_at()
        .duration_since(harness.clock_now())
        .expect("the session expires in the future");
    assert!(lifetime <= Duration::from_secs(180), "{lifetime:?}");
    let code = harness.last_code("sam");

    harness.advance(181);
    let refused = auth
        .respond(pending, ChallengeAnswer::Code(code))
        .await
        .expect_err("an expired session");
    // The client knew the session was dead and sent nothing (only PASSWORD_VERIFIER went out).
    assert_eq!(harness.handle.calls("RespondToAuthChallenge"), 1);
    assert!(
        refused.error.is_challenge_expired(),
        "expected an expiry error, got {:?}",
        refused.error
    );
    assert_eq!(refused.error.class(), ErrorClass::NeedsUser);
    assert!(
        refused.pending.is_none(),
        "an expired session cannot be retried"
    );
    harness.shutdown().await;
}

#[tokio::test]
async fn a_challenge_session_cannot_be_replayed() {
    let harness = Harness::start(&seed(r#"mfa = "optional""#, &sms_user("sam"))).await;

    let first = harness
        .raw_password_auth(PUBLIC_CLIENT, "sam", PASSWORD)
        .await;
    assert_eq!(first.body["ChallengeName"], "SMS_MFA", "{:?}", first.body);
    let answer = json!({
        "ClientId": PUBLIC_CLIENT,
        "ChallengeName": "SMS_MFA",
        "Session": first.session().expect("an MFA challenge carries a session"),
        "ChallengeResponses": { "USERNAME": "sam", "SMS_MFA_CODE": harness.last_code("sam").expose_secret() },
    });
    let accepted = harness.raw("RespondToAuthChallenge", answer.clone()).await;
    assert!(accepted.has_tokens(), "{:?}", accepted.body);

    let replayed = harness.raw("RespondToAuthChallenge", answer).await;
    assert_eq!(
        replayed.error_type(),
        "NotAuthorizedException",
        "{:?}",
        replayed.body
    );
    assert!(
        replayed.message().contains("session"),
        "{:?}",
        replayed.message()
    );
    assert!(!replayed.has_tokens());
    assert_replay_counted(&harness);
    harness.shutdown().await;
}

/// The emulator counted the replay as a NotAuthorized outcome of RespondToAuthChallenge.
fn assert_replay_counted(harness: &Harness) {
    let stats = serde_json::to_value(harness.handle.stats()).expect("stats serialize");
    assert_eq!(
        stats["RespondToAuthChallenge"]["NotAuthorizedException"], 1,
        "{stats}"
    );
    assert_eq!(stats["RespondToAuthChallenge"]["ok"], 1, "{stats}");
}

#[tokio::test]
async fn the_server_refuses_a_session_past_its_lifetime() {
    // Only the emulator's clock moves: the client believes the session is alive, sends the
    // answer, and maps "session is expired" from the server to the same expiry error.
    let clients = default_clients("session_ttl = 180");
    let harness = Harness::start(&seed_with_clients(
        r#"mfa = "optional""#,
        &clients,
        &sms_user("sam"),
    ))
    .await;
    let auth = harness.confidential();

    let pending = challenged(
        auth.start_login(srp_login("sam"))
            .await
            .expect("first factor"),
    );
    let code = harness.last_code("sam");
    harness.handle.advance_clock(181);
    let refused = auth
        .respond(pending, ChallengeAnswer::Code(code))
        .await
        .expect_err("an expired session");
    assert_eq!(
        harness.handle.calls("RespondToAuthChallenge"),
        2,
        "PASSWORD_VERIFIER and the late answer"
    );
    assert!(refused.error.is_challenge_expired(), "{:?}", refused.error);
    assert_eq!(
        refused.error.code(),
        Some(&cognito_auth::error::ErrorCode::NotAuthorized)
    );
    assert_eq!(refused.error.class(), ErrorClass::NeedsUser);
    assert!(refused.pending.is_none());
    harness.shutdown().await;
}

#[tokio::test]
async fn a_wrong_code_during_mfa_setup_can_be_retried() {
    let harness = Harness::start(&seed(r#"mfa = "on""#, &user("nina", ""))).await;
    let auth = harness.public();

    let pending = challenged(
        auth.start_login(srp_login("nina"))
            .await
            .expect("first factor"),
    );
    let secret = match pending.challenge() {
        Challenge::MfaSetup { secret_code, .. } => secret_code.expose_secret().to_owned(),
        other => panic!("expected MFA_SETUP, got {}", other.name()),
    };
    let code = OneTimeCode::new(
        cognito_emulator::totp(&secret, harness.unix_now()).expect("a base32 secret"),
    );
    let refused = auth
        .respond(pending, ChallengeAnswer::Code(wrong_code(&code)))
        .await
        .expect_err("a wrong enrolment code");
    assert_eq!(
        refused.error.code(),
        Some(&cognito_auth::error::ErrorCode::EnableSoftwareTokenMfa),
        "{:?}",
        refused.error
    );
    let pending = *refused
        .pending
        .expect("a wrong enrolment code may be retried");
    assert_eq!(pending.challenge().name(), "MFA_SETUP");

    answer_for_tokens(&auth, pending, ChallengeAnswer::Code(code)).await;
    assert_eq!(harness.handle.calls("AssociateSoftwareToken"), 1);
    assert_eq!(harness.handle.calls("VerifySoftwareToken"), 2);
    harness.shutdown().await;
}

#[tokio::test]
async fn mfa_setup_that_offers_no_totp_is_unsupported() {
    // Only email enrolment offered: the contract's MFA_SETUP is TOTP enrolment, so the client
    // must say so rather than send something the server cannot accept.
    let pool = "mfa = \"on\"\nmfa_setup = [\"EMAIL_OTP\"]";
    let harness = Harness::start(&seed(pool, &user("nina", ""))).await;

    let error = harness
        .public()
        .start_login(srp_login("nina"))
        .await
        .expect_err("email enrolment");
    assert!(
        matches!(&error, cognito_auth::error::Error::Unsupported(message) if message.contains("SOFTWARE_TOKEN_MFA")),
        "{error:?}"
    );
    assert_eq!(harness.handle.calls("AssociateSoftwareToken"), 0);
    harness.shutdown().await;
}
