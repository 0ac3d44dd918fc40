//! The wire types: each shape the daemon writes reads back as the same type (and the same
//! bytes), challenge details by challenge, paths, and no secret in any `Debug`.

use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use super::challenge::*;
use super::*;

/// Reads `value` as `T` and writes it back: the JSON must be unchanged.
fn round_trip<T: Serialize + serde::de::DeserializeOwned>(value: &Value) -> T {
    let typed: T = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&typed).unwrap(), value);
    typed
}

#[test]
fn challenge_details_read_as_their_challenge() {
    // The shapes the broker's challenge presentation builds, one per challenge.
    let new_password = json!({
        "required_attributes": ["email"],
        "user_attributes": {"name": "Alice"}
    });
    assert!(matches!(
        round_trip::<ChallengeDetails>(&new_password),
        ChallengeDetails::NewPassword(NewPasswordDetails { ref required_attributes, .. })
            if required_attributes == &["email"]
    ));
    let setup = json!({"secret_code": "JBSWY3DPEHPK3PXP", "otpauth_uri": "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP"});
    let ChallengeDetails::MfaSetup(details) = round_trip::<ChallengeDetails>(&setup) else {
        panic!("MFA_SETUP details");
    };
    assert_eq!(details.secret_code.expose_secret(), "JBSWY3DPEHPK3PXP");
    let options = json!({"options": ["SMS_MFA", "SOFTWARE_TOKEN_MFA"]});
    assert!(matches!(
        round_trip::<ChallengeDetails>(&options),
        ChallengeDetails::Options(OptionsDetails { ref options }) if options.len() == 2
    ));
    let custom = json!({"parameters": {"question": "colour?"}});
    assert!(matches!(
        round_trip::<ChallengeDetails>(&custom),
        ChallengeDetails::Custom(_)
    ));
    for destination in [
        json!({"destination": "+*****1234"}),
        json!({"destination": null}),
    ] {
        assert!(matches!(
            round_trip::<ChallengeDetails>(&destination),
            ChallengeDetails::Destination(_)
        ));
    }
    let device = json!({"friendly_device_name": null});
    assert!(matches!(
        round_trip::<ChallengeDetails>(&device),
        ChallengeDetails::Device(DeviceDetails {
            friendly_device_name: None
        })
    ));
    // Nothing known: no details, never a wrong shape.
    assert!(matches!(
        serde_json::from_value::<ChallengeDetails>(json!({})).unwrap(),
        ChallengeDetails::Other(_)
    ));
    assert!(matches!(
        serde_json::from_value::<ChallengeDetails>(json!({"future": 1})).unwrap(),
        ChallengeDetails::Other(_)
    ));
}

#[test]
fn login_outcomes_round_trip() {
    let done = json!({
        "status": "authenticated",
        "profile": "dev",
        "expires_at": "2026-01-01T00:00:00Z",
        "username": "alice"
    });
    assert!(matches!(
        round_trip::<LoginOutcome>(&done),
        LoginOutcome::Authenticated(Authenticated { ref profile, .. }) if profile == "dev"
    ));
    let challenge = json!({
        "status": "challenge",
        "login_id": "ab12",
        "challenge": "SMS_MFA",
        "message": "enter the code sent by SMS to +*****1234",
        "fields": ["code"],
        "details": {"destination": "+*****1234"}
    });
    let LoginOutcome::Challenge(step) = round_trip::<LoginOutcome>(&challenge) else {
        panic!("a challenge");
    };
    assert_eq!(step.fields, ["code"]);
    let shown = format!("{step:?}");
    assert!(!shown.contains("ab12"), "{shown}");
}

#[test]
fn responses_round_trip() {
    let token = json!({
        "profile": "dev",
        "kind": "id",
        "token": "eyJ.secret.token",
        "token_type": "Bearer",
        "expires_at": "2026-01-01T00:00:00Z",
        "expires_in": 3599,
        "degraded": false
    });
    let typed = round_trip::<TokenResponse>(&token);
    assert_eq!(typed.kind, TokenKind::Id);
    assert!(!format!("{typed:?}").contains("secret"));
    let mut bad_kind = token.clone();
    bad_kind["kind"] = json!("refresh");
    assert!(serde_json::from_value::<TokenResponse>(bad_kind).is_err());

    let status = json!({
        "name": "dev", "state": "fresh", "username": "alice",
        "expires_at": "2026-01-01T00:00:00Z", "expires_in": 60, "last_refresh": null,
        "last_error": null, "login_required_reason": null, "store": "file",
        "device_remembered": false, "auth_flow": "USER_SRP_AUTH",
        "persistence_degraded": false, "clock_skew_seconds": null
    });
    round_trip::<ProfileStatus>(&status);
    round_trip::<ProfileList>(&json!({ "profiles": [status] }));
    round_trip::<Health>(&json!({"status": "ok", "version": "0.1.0"}));
    round_trip::<LoggedOut>(&json!({"status": "logged_out"}));
    round_trip::<Cancelled>(&json!({"status": "cancelled"}));
    assert_eq!(
        serde_json::to_value(LoggedOut::new()).unwrap(),
        json!({"status": "logged_out"})
    );
    assert_eq!(
        serde_json::to_value(Cancelled::new()).unwrap(),
        json!({"status": "cancelled"})
    );
}

#[test]
fn error_bodies_name_a_field_only_when_there_is_one() {
    round_trip::<ErrorBody>(&json!({"error": "not_found", "message": "no such endpoint"}));
    let bad = round_trip::<ErrorBody>(&json!({
        "error": "bad_input", "message": "password: required", "field": "password"
    }));
    assert_eq!(bad.field.as_deref(), Some("password"));
}

#[test]
fn request_bodies_carry_only_what_is_set() {
    let body = AnswerBody::code(SecretString::from("123456"));
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        json!({"code": "123456"})
    );
    assert!(!format!("{body:?}").contains("123456"));
    let body = AnswerBody::select_challenge("PASSWORD".to_owned(), Some(SecretString::from("pw")));
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        json!({"challenge": "PASSWORD", "password": "pw"})
    );
    let login = LoginRequest::default();
    assert_eq!(serde_json::to_value(&login).unwrap(), json!({}));
    assert_eq!(
        serde_json::to_value(LogoutRequest {
            forget_device: true
        })
        .unwrap(),
        json!({"forget_device": true})
    );
    assert!(serde_json::from_value::<AnswerBody>(json!({"cod": "1"})).is_err());
}

#[test]
fn events_are_tagged_by_name() {
    let event = Event::TokenRefreshed {
        profile: "dev".to_owned(),
        expires_at: 1_700_000_000,
    };
    assert_eq!(event.name(), "token_refreshed");
    assert_eq!(
        round_trip::<Event>(&serde_json::to_value(&event).unwrap()),
        event
    );
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        json!({"event": "token_refreshed", "profile": "dev", "expires_at": 1_700_000_000})
    );
}

#[test]
fn paths_encode_their_segments() {
    assert_eq!(path::segment("dev.eu-1_x"), "dev.eu-1_x");
    assert_eq!(path::segment("a/b c"), "a%2Fb%20c");
    assert_eq!(path::profile("a/b"), "/v1/profiles/a%2Fb");
    assert_eq!(path::login("dev"), "/v1/profiles/dev/login");
    assert_eq!(path::refresh("dev"), "/v1/profiles/dev/refresh");
    assert_eq!(path::logout("dev"), "/v1/profiles/dev/logout");
    assert_eq!(path::events("dev"), "/v1/profiles/dev/events");
    assert_eq!(path::pending_login("x y"), "/v1/logins/x%20y");
    assert_eq!(
        path::token(
            "dev",
            TokenKind::Access,
            Some(Duration::from_secs(2 * 86_400))
        ),
        "/v1/profiles/dev/token?kind=access&min_ttl=86400"
    );
    assert_eq!(
        path::token("dev", TokenKind::Id, None),
        "/v1/profiles/dev/token?kind=id"
    );
}
