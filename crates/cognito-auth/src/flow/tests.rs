//! Flow state-machine tests: recorded Cognito replies go in, the emitted requests are checked.
//!
//! The SRP steps use the `basic` and `device_srp` vectors of srp-vectors.json, with the
//! vectors' private values fed through the injected entropy, so the signatures the flow sends
//! are checked byte for byte.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::*;
use crate::env::Entropy;
use crate::error::{ErrorCode, ServiceError};
use crate::pool::{AppClient, UserPoolId};
use crate::secret::{ClientSecret, SessionToken};
use crate::srp;
use crate::wire::{
    DeviceRememberedStatus, InitiateAuthRequest, Parameters, RespondToAuthChallengeRequest,
};

const VECTORS_JSON: &str = include_str!("../../tests/data/srp-vectors.json");
/// `Tue Jan 6 03:04:05 UTC 2026`, the vectors' TIMESTAMP.
const VECTOR_TIME: u64 = 1_767_668_645;
const CLIENT_ID: &str = "1example23456789";
const CLIENT_SECRET: &str = "examplesecret0123456789abcdefghij";
/// SECRET_HASH of `alice` for the client above (cognito-protocol.md §3).
const ALICE_HASH: &str = "G9KeEvR+U9H97SuWJGN1vnyJUI2C6h+1adTzyPHbwfA=";

struct Vector {
    a: Vec<u8>,
    public_a: String,
    salt: String,
    srp_b: String,
    secret_block: String,
    signature: String,
    user_id: String,
    password: String,
    group: Option<String>,
}

fn vector(name: &str) -> Vector {
    let all: Value = serde_json::from_str(VECTORS_JSON).unwrap();
    let found = all["srp"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == name)
        .unwrap();
    let inputs = &found["inputs"];
    let text = |value: &Value| value.as_str().unwrap().to_owned();
    let a_hex = format!("{:0>256}", text(&inputs["a_hex"]));
    Vector {
        a: (0..a_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&a_hex[i..i + 2], 16).unwrap())
            .collect(),
        public_a: text(&found["expected"]["A"]),
        salt: text(&inputs["salt_hex"]),
        srp_b: text(&inputs["B_hex"]),
        secret_block: text(&inputs["secret_block_b64"]),
        signature: text(&found["expected"]["signature_b64"]),
        user_id: text(&inputs["user_id"]),
        password: text(&inputs["password"]),
        group: inputs["device_group_key"].as_str().map(str::to_owned),
    }
}

/// Hands out queued byte strings to fills of the same length, and a counter pattern otherwise.
#[derive(Default)]
struct ScriptedEntropy {
    queue: Mutex<VecDeque<Vec<u8>>>,
    counter: Mutex<u8>,
}

impl ScriptedEntropy {
    fn with(chunks: Vec<Vec<u8>>) -> Self {
        ScriptedEntropy {
            queue: Mutex::new(chunks.into()),
            counter: Mutex::new(1),
        }
    }
}

impl Entropy for ScriptedEntropy {
    fn fill(&self, dest: &mut [u8]) {
        let mut queue = self.queue.lock().unwrap();
        if queue.front().is_some_and(|chunk| chunk.len() == dest.len()) {
            dest.copy_from_slice(&queue.pop_front().unwrap());
            return;
        }
        let mut counter = self.counter.lock().unwrap();
        for byte in dest {
            *counter = counter.wrapping_add(1);
            *byte = *counter;
        }
    }
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn now() -> SystemTime {
    at(VECTOR_TIME)
}

fn app(with_secret: bool) -> AppClient {
    AppClient {
        user_pool_id: UserPoolId::parse("us-east-1_AbCdEfGhI").unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: with_secret.then(|| ClientSecret::new(CLIENT_SECRET)),
    }
}

fn hash(username: &str) -> String {
    srp::secret_hash(&ClientSecret::new(CLIENT_SECRET), username, CLIENT_ID)
}

fn login_for(username: &str, password: Option<&str>, flow: AuthFlow) -> LoginRequest {
    LoginRequest {
        username: username.into(),
        password: password.map(Password::new),
        flow,
        device: None,
        remember_device: DeviceRemembering::DoNotRemember,
        device_name: "laptop".into(),
    }
}

fn device_credentials() -> DeviceCredentials {
    let device = vector("device_srp");
    DeviceCredentials {
        device_key: device.user_id,
        device_group_key: device.group.unwrap(),
        device_password: DevicePassword::new(device.password),
    }
}

fn start(app: AppClient, request: LoginRequest, entropy: &dyn Entropy) -> (Login, Request) {
    Login::start(app, request, FlowOptions::default(), entropy).unwrap()
}

fn auth(reply: Value) -> Result<Reply, Error> {
    Ok(Reply::Auth(serde_json::from_value(reply).unwrap()))
}

fn service(code: &str, message: &str) -> Result<Reply, Error> {
    Err(Error::Service(ServiceError {
        code: ErrorCode::from_type(code),
        message: message.into(),
        status: 400,
    }))
}

fn jwt(payload: Value) -> String {
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

fn tokens(device: Option<(&str, &str)>) -> Value {
    let exp = VECTOR_TIME + 3600;
    let mut result = json!({
        "AccessToken": jwt(json!({"sub": "s", "username": "alice", "token_use": "access", "exp": exp, "iat": VECTOR_TIME})),
        "IdToken": jwt(json!({"sub": "s", "cognito:username": "alice", "token_use": "id", "exp": exp, "iat": VECTOR_TIME})),
        "RefreshToken": "refresh-token-value",
        "ExpiresIn": 3600,
        "TokenType": "Bearer",
    });
    if let Some((key, group)) = device {
        result["NewDeviceMetadata"] = json!({"DeviceKey": key, "DeviceGroupKey": group});
    }
    json!({"AuthenticationResult": result, "ChallengeParameters": {}})
}

fn verifier_reply(vector: &Vector, extra: Value) -> Value {
    let mut parameters = json!({
        "SALT": vector.salt,
        "SRP_B": vector.srp_b,
        "SECRET_BLOCK": vector.secret_block,
    });
    for (key, value) in extra.as_object().unwrap() {
        parameters[key] = value.clone();
    }
    parameters
}

fn initiate(request: &Request) -> &InitiateAuthRequest {
    match request {
        Request::InitiateAuth(request) => request,
        other => panic!("expected InitiateAuth, got {other:?}"),
    }
}

fn respond(request: &Request) -> &RespondToAuthChallengeRequest {
    match request {
        Request::RespondToAuthChallenge(request) => request,
        other => panic!("expected RespondToAuthChallenge, got {other:?}"),
    }
}

fn session(request: &RespondToAuthChallengeRequest) -> Option<&str> {
    request.session.as_ref().map(SessionToken::expose_secret)
}

fn keys(parameters: &Parameters) -> Vec<&str> {
    parameters.keys().collect()
}

fn send(next: Result<Next, RespondError>) -> (Login, Request) {
    match next {
        Ok(Next::Send { login, request }) => (*login, request),
        Ok(other) => panic!("expected a request, got {other:?}"),
        Err(error) => panic!("expected a request, got {error:?}"),
    }
}

fn human(next: Result<Next, RespondError>) -> PendingLogin {
    match next {
        Ok(Next::Challenge(pending)) => *pending,
        Ok(other) => panic!("expected a challenge, got {other:?}"),
        Err(error) => panic!("expected a challenge, got {error:?}"),
    }
}

fn done(next: Result<Next, RespondError>) -> LoginSuccess {
    match next {
        Ok(Next::Done(success)) => *success,
        Ok(other) => panic!("expected success, got {other:?}"),
        Err(error) => panic!("expected success, got {error:?}"),
    }
}

fn failed(next: Result<Next, RespondError>) -> RespondError {
    match next {
        Err(error) => error,
        Ok(other) => panic!("expected an error, got {other:?}"),
    }
}

fn answer(
    pending: PendingLogin,
    answer: ChallengeAnswer,
    entropy: &dyn Entropy,
) -> (Login, Request) {
    pending.answer(answer, now(), entropy).unwrap()
}

#[test]
fn srp_alias_login_signs_with_user_id_for_srp_and_hashes_the_internal_name() {
    let basic = vector("basic");
    let entropy = ScriptedEntropy::with(vec![basic.a.clone()]);
    let (login, request) = start(
        app(true),
        login_for(
            "alice@example.com",
            Some(&basic.password),
            AuthFlow::UserSrp,
        ),
        &entropy,
    );
    let sent = initiate(&request);
    assert_eq!(sent.auth_flow, "USER_SRP_AUTH");
    assert_eq!(sent.client_id, CLIENT_ID);
    assert_eq!(
        keys(&sent.auth_parameters),
        ["SECRET_HASH", "SRP_A", "USERNAME"]
    );
    assert_eq!(
        sent.auth_parameters.get("USERNAME"),
        Some("alice@example.com")
    );
    // InitiateAuth hashes exactly the USERNAME it sends, alias and all.
    assert_eq!(
        sent.auth_parameters.get("SECRET_HASH"),
        Some(hash("alice@example.com").as_str())
    );
    assert_eq!(
        sent.auth_parameters.get("SRP_A"),
        Some(basic.public_a.as_str())
    );

    let reply = auth(json!({
        "ChallengeName": "PASSWORD_VERIFIER",
        "ChallengeParameters": verifier_reply(&basic, json!({"USER_ID_FOR_SRP": "alice", "USERNAME": "alice"})),
    }));
    let (login, request) = send(login.on_reply(reply, now(), &entropy));
    let sent = respond(&request);
    assert_eq!(sent.challenge_name, "PASSWORD_VERIFIER");
    assert_eq!(
        session(sent),
        None,
        "no session was received, so none is sent"
    );
    let responses = &sent.challenge_responses;
    assert_eq!(
        keys(responses),
        [
            "PASSWORD_CLAIM_SECRET_BLOCK",
            "PASSWORD_CLAIM_SIGNATURE",
            "SECRET_HASH",
            "TIMESTAMP",
            "USERNAME"
        ]
    );
    assert_eq!(responses.get("USERNAME"), Some("alice"));
    assert_eq!(responses.get("SECRET_HASH"), Some(ALICE_HASH));
    assert_eq!(
        responses.get("TIMESTAMP"),
        Some("Tue Jan 6 03:04:05 UTC 2026")
    );
    assert_eq!(
        responses.get("PASSWORD_CLAIM_SECRET_BLOCK"),
        Some(basic.secret_block.as_str())
    );
    assert_eq!(
        responses.get("PASSWORD_CLAIM_SIGNATURE"),
        Some(basic.signature.as_str())
    );

    let success = done(login.on_reply(auth(tokens(None)), now(), &entropy));
    assert_eq!(success.refresh_token.expose_secret(), "refresh-token-value");
    assert_eq!(success.tokens.username(), Some("alice"));
    assert_eq!(success.tokens.expires_at(), at(VECTOR_TIME + 3600));
    assert!(success.device.is_none());
}

#[test]
fn password_verifier_username_prefers_the_challenge_username_then_user_id_for_srp() {
    let basic = vector("basic");
    let entropy = ScriptedEntropy::default();
    // moto: USERNAME is the name, USER_ID_FOR_SRP the sub.
    let (login, _) = start(
        app(true),
        login_for("alice", Some("pw"), AuthFlow::UserSrp),
        &entropy,
    );
    let reply = auth(json!({
        "ChallengeName": "PASSWORD_VERIFIER",
        "ChallengeParameters": verifier_reply(&basic, json!({"USER_ID_FOR_SRP": "3f1c-sub", "USERNAME": "alice"})),
    }));
    let (_, request) = send(login.on_reply(reply, now(), &entropy));
    let responses = &respond(&request).challenge_responses;
    assert_eq!(responses.get("USERNAME"), Some("alice"));
    assert_eq!(responses.get("SECRET_HASH"), Some(ALICE_HASH));

    // Only USER_ID_FOR_SRP: send and hash it.
    let (login, _) = start(
        app(true),
        login_for("a@example.com", Some("pw"), AuthFlow::UserSrp),
        &entropy,
    );
    let reply = auth(json!({
        "ChallengeName": "PASSWORD_VERIFIER",
        "ChallengeParameters": verifier_reply(&basic, json!({"USER_ID_FOR_SRP": "internal-7"})),
    }));
    let (_, request) = send(login.on_reply(reply, now(), &entropy));
    let responses = &respond(&request).challenge_responses;
    assert_eq!(responses.get("USERNAME"), Some("internal-7"));
    assert_eq!(
        responses.get("SECRET_HASH"),
        Some(hash("internal-7").as_str())
    );
}

#[test]
fn password_flow_then_totp_uses_the_latest_username_and_session() {
    let entropy = ScriptedEntropy::default();
    let (login, request) = start(
        app(true),
        login_for("alice@example.com", Some("pw"), AuthFlow::UserPassword),
        &entropy,
    );
    let sent = initiate(&request);
    assert_eq!(sent.auth_flow, "USER_PASSWORD_AUTH");
    assert_eq!(
        keys(&sent.auth_parameters),
        ["PASSWORD", "SECRET_HASH", "USERNAME"]
    );
    assert_eq!(sent.auth_parameters.get("PASSWORD"), Some("pw"));

    let reply = auth(json!({
        "ChallengeName": "SOFTWARE_TOKEN_MFA",
        "Session": "session-1-aaaaaaaaaaaaaaaaaaaa",
        "ChallengeParameters": {"USERNAME": "uuid-internal", "FRIENDLY_DEVICE_NAME": "phone"},
    }));
    let pending = human(login.on_reply(reply, now(), &entropy));
    assert!(matches!(
        pending.challenge(),
        Challenge::SoftwareTokenMfa { friendly_device_name: Some(name) } if name == "phone"
    ));
    assert_eq!(pending.challenge().name(), "SOFTWARE_TOKEN_MFA");
    assert_eq!(pending.expires_at(), now() + Duration::from_secs(180));

    let (_, request) = answer(
        pending,
        ChallengeAnswer::Code(OneTimeCode::new(" 123456 ")),
        &entropy,
    );
    let sent = respond(&request);
    assert_eq!(sent.challenge_name, "SOFTWARE_TOKEN_MFA");
    assert_eq!(session(sent), Some("session-1-aaaaaaaaaaaaaaaaaaaa"));
    assert_eq!(
        keys(&sent.challenge_responses),
        ["SECRET_HASH", "SOFTWARE_TOKEN_MFA_CODE", "USERNAME"]
    );
    assert_eq!(
        sent.challenge_responses.get("SOFTWARE_TOKEN_MFA_CODE"),
        Some("123456")
    );
    assert_eq!(
        sent.challenge_responses.get("USERNAME"),
        Some("uuid-internal")
    );
    assert_eq!(
        sent.challenge_responses.get("SECRET_HASH"),
        Some(hash("uuid-internal").as_str())
    );
}

#[test]
fn without_a_secret_no_secret_hash_is_sent() {
    let entropy = ScriptedEntropy::default();
    let (login, request) = start(
        app(false),
        login_for("bob", Some("pw"), AuthFlow::UserPassword),
        &entropy,
    );
    assert_eq!(
        keys(&initiate(&request).auth_parameters),
        ["PASSWORD", "USERNAME"]
    );
    let reply = auth(
        json!({"ChallengeName": "SMS_MFA", "Session": "s", "ChallengeParameters": {
        "CODE_DELIVERY_DELIVERY_MEDIUM": "SMS", "CODE_DELIVERY_DESTINATION": "+*******1234"}}),
    );
    let pending = human(login.on_reply(reply, now(), &entropy));
    assert!(
        matches!(pending.challenge(), Challenge::SmsMfa { destination: Some(d) } if d == "+*******1234")
    );
    let (_, request) = answer(
        pending,
        ChallengeAnswer::Code(OneTimeCode::new("654321")),
        &entropy,
    );
    assert_eq!(
        keys(&respond(&request).challenge_responses),
        ["SMS_MFA_CODE", "USERNAME"]
    );
}

#[test]
fn remembered_device_goes_through_device_srp_with_a_fresh_ephemeral() {
    let basic = vector("basic");
    let device_vector = vector("device_srp");
    let entropy = ScriptedEntropy::with(vec![basic.a.clone(), device_vector.a.clone()]);
    let device = device_credentials();
    let mut login_request = login_for("alice", Some(&basic.password), AuthFlow::UserSrp);
    login_request.device = Some(device.clone());
    let (login, request) = start(app(true), login_request, &entropy);
    assert_eq!(
        initiate(&request).auth_parameters.get("DEVICE_KEY"),
        Some(device.device_key.as_str())
    );

    let reply = auth(json!({
        "ChallengeName": "PASSWORD_VERIFIER",
        "ChallengeParameters": verifier_reply(&basic, json!({"USER_ID_FOR_SRP": "alice", "USERNAME": "alice"})),
    }));
    let (login, request) = send(login.on_reply(reply, now(), &entropy));
    let sent = respond(&request);
    assert_eq!(
        sent.challenge_responses.get("DEVICE_KEY"),
        Some(device.device_key.as_str())
    );
    assert_eq!(
        sent.challenge_responses.get("PASSWORD_CLAIM_SIGNATURE"),
        Some(basic.signature.as_str())
    );

    let reply = auth(json!({"ChallengeName": "DEVICE_SRP_AUTH", "ChallengeParameters": {}}));
    let (login, request) = send(login.on_reply(reply, now(), &entropy));
    let sent = respond(&request);
    assert_eq!(sent.challenge_name, "DEVICE_SRP_AUTH");
    assert_eq!(
        keys(&sent.challenge_responses),
        ["DEVICE_KEY", "SECRET_HASH", "SRP_A", "USERNAME"]
    );
    assert_eq!(sent.challenge_responses.get("USERNAME"), Some("alice"));
    assert_eq!(
        sent.challenge_responses.get("SECRET_HASH"),
        Some(ALICE_HASH)
    );
    let device_a = sent.challenge_responses.get("SRP_A").unwrap();
    assert_eq!(device_a, device_vector.public_a);
    assert_ne!(
        device_a, basic.public_a,
        "the device proof must use a fresh a"
    );

    let reply = auth(json!({
        "ChallengeName": "DEVICE_PASSWORD_VERIFIER",
        "ChallengeParameters": verifier_reply(&device_vector, json!({"USERNAME": "alice", "DEVICE_KEY": device.device_key})),
    }));
    let (login, request) = send(login.on_reply(reply, now(), &entropy));
    let sent = respond(&request);
    assert_eq!(sent.challenge_name, "DEVICE_PASSWORD_VERIFIER");
    assert_eq!(
        keys(&sent.challenge_responses),
        [
            "DEVICE_KEY",
            "PASSWORD_CLAIM_SECRET_BLOCK",
            "PASSWORD_CLAIM_SIGNATURE",
            "SECRET_HASH",
            "TIMESTAMP",
            "USERNAME"
        ]
    );
    assert_eq!(
        sent.challenge_responses.get("PASSWORD_CLAIM_SIGNATURE"),
        Some(device_vector.signature.as_str())
    );

    let success = done(login.on_reply(auth(tokens(None)), now(), &entropy));
    let kept = success.device.expect("the remembered device stays valid");
    assert_eq!(kept.device_key, device.device_key);
}

#[test]
fn unknown_device_restarts_once_without_device_key() {
    let entropy = ScriptedEntropy::default();
    let mut login_request = login_for("alice", Some("pw"), AuthFlow::UserPassword);
    login_request.device = Some(device_credentials());
    let (login, request) = start(app(true), login_request, &entropy);
    assert!(
        initiate(&request)
            .auth_parameters
            .contains_key("DEVICE_KEY")
    );

    let (login, request) = send(login.on_reply(
        service("ResourceNotFoundException", "Device does not exist."),
        now(),
        &entropy,
    ));
    let sent = initiate(&request);
    assert_eq!(
        keys(&sent.auth_parameters),
        ["PASSWORD", "SECRET_HASH", "USERNAME"]
    );

    // The same error again is not retried a second time.
    let failure = failed(login.on_reply(
        service("ResourceNotFoundException", "Device does not exist."),
        now(),
        &entropy,
    ));
    assert!(failure.error.is_unknown_device());
    assert!(failure.pending.is_none());

    // After the restart the dropped device is not reported back.
    let mut login_request = login_for("alice", Some("pw"), AuthFlow::UserPassword);
    login_request.device = Some(device_credentials());
    let (login, _) = start(app(true), login_request, &entropy);
    let (login, _) = send(login.on_reply(
        service("ResourceNotFoundException", "Device does not exist."),
        now(),
        &entropy,
    ));
    let success = done(login.on_reply(auth(tokens(None)), now(), &entropy));
    assert!(success.device.is_none());

    // Another ResourceNotFound is not a device problem.
    let mut login_request = login_for("alice", Some("pw"), AuthFlow::UserPassword);
    login_request.device = Some(device_credentials());
    let (login, _) = start(app(true), login_request, &entropy);
    let failure = failed(login.on_reply(
        service(
            "ResourceNotFoundException",
            "User pool client does not exist.",
        ),
        now(),
        &entropy,
    ));
    assert_eq!(failure.error.code(), Some(&ErrorCode::ResourceNotFound));
}

fn confirm_then(
    remember: DeviceRemembering,
    confirmation_necessary: bool,
) -> (LoginSuccess, Option<UpdateDeviceStatusRequest>) {
    let entropy = ScriptedEntropy::default();
    let mut login_request = login_for("alice", Some("pw"), AuthFlow::UserPassword);
    login_request.remember_device = remember;
    let (login, _) = start(app(true), login_request, &entropy);
    let (login, request) = send(login.on_reply(
        auth(tokens(Some(("us-east-1_new", "-grp")))),
        now(),
        &entropy,
    ));
    let Request::ConfirmDevice(confirm) = &request else {
        panic!("expected ConfirmDevice, got {request:?}")
    };
    assert_eq!(confirm.device_key, "us-east-1_new");
    assert_eq!(confirm.device_name.as_deref(), Some("laptop"));
    assert!(confirm.access_token.expose_secret().contains('.'));
    let body = serde_json::to_value(confirm).unwrap();
    assert!(
        !body["DeviceSecretVerifierConfig"]["PasswordVerifier"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(
        !body["DeviceSecretVerifierConfig"]["Salt"]
            .as_str()
            .unwrap()
            .is_empty()
    );

    let reply = Ok(Reply::ConfirmDevice(ConfirmDeviceResponse {
        user_confirmation_necessary: confirmation_necessary,
    }));
    match login.on_reply(reply, now(), &entropy) {
        Ok(Next::Done(success)) => (*success, None),
        Ok(Next::Send {
            login,
            request: Request::UpdateDeviceStatus(update),
        }) => {
            let success = done(login.on_reply(Ok(Reply::UpdateDeviceStatus), now(), &entropy));
            (success, Some(update))
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn new_device_is_confirmed_and_remembered_as_asked() {
    let (success, update) = confirm_then(DeviceRemembering::Remember, true);
    let update = update.expect("remembering was asked");
    assert_eq!(
        update.device_remembered_status,
        Some(DeviceRememberedStatus::Remembered)
    );
    assert_eq!(update.device_key, "us-east-1_new");
    let device = success.device.unwrap();
    assert_eq!(device.device_group_key, "-grp");
    assert_eq!(device.device_password.expose_secret().len(), 56);

    let (success, update) = confirm_then(DeviceRemembering::DoNotRemember, true);
    assert_eq!(
        update.unwrap().device_remembered_status,
        Some(DeviceRememberedStatus::NotRemembered)
    );
    assert!(success.device.is_some());

    let (success, update) = confirm_then(DeviceRemembering::DoNotRemember, false);
    assert!(update.is_none());
    assert!(success.device.is_some());

    let (_, update) = confirm_then(DeviceRemembering::Remember, false);
    assert_eq!(
        update.unwrap().device_remembered_status,
        Some(DeviceRememberedStatus::Remembered)
    );
}

#[test]
fn failed_confirm_device_still_signs_in_without_a_device() {
    let entropy = ScriptedEntropy::default();
    let (login, _) = start(
        app(true),
        login_for("alice", Some("pw"), AuthFlow::UserPassword),
        &entropy,
    );
    let (login, _) = send(login.on_reply(
        auth(tokens(Some(("us-east-1_new", "-grp")))),
        now(),
        &entropy,
    ));
    let success = done(login.on_reply(service("InternalErrorException", "boom"), now(), &entropy));
    assert!(success.device.is_none());
}

#[test]
fn new_password_required_strips_prefixes_and_sends_attributes() {
    let entropy = ScriptedEntropy::default();
    let (login, _) = start(
        app(true),
        login_for("alice", Some("temp"), AuthFlow::UserPassword),
        &entropy,
    );
    let reply = auth(json!({
        "ChallengeName": "NEW_PASSWORD_REQUIRED",
        "Session": "s-new-password",
        "ChallengeParameters": {
            "USER_ID_FOR_SRP": "alice",
            "userAttributes": "{\"email\":\"a@example.com\",\"email_verified\":true,\"phone_number\":\"\"}",
            "requiredAttributes": "[\"userAttributes.name\",\"userAttributes.phone_number\"]",
        },
    }));
    let pending = human(login.on_reply(reply, now(), &entropy));
    let Challenge::NewPasswordRequired {
        required_attributes,
        user_attributes,
    } = pending.challenge()
    else {
        panic!("{pending:?}")
    };
    assert_eq!(required_attributes, &["name", "phone_number"]);
    assert_eq!(
        user_attributes.get("email").map(String::as_str),
        Some("a@example.com")
    );
    assert_eq!(
        user_attributes.get("email_verified").map(String::as_str),
        Some("true")
    );

    // A missing required attribute is refused here, and the challenge handed back.
    let missing = pending
        .answer(
            ChallengeAnswer::NewPassword {
                password: Password::new("N3w!pass"),
                attributes: BTreeMap::from([("name".into(), "Alice".into())]),
            },
            now(),
            &entropy,
        )
        .unwrap_err();
    assert!(
        matches!(&missing.error, Error::InvalidInput(message) if message.contains("phone_number")),
        "{missing}"
    );
    let pending = *missing
        .pending
        .expect("nothing was sent, so the challenge is still open");

    let attributes = BTreeMap::from([
        ("name".to_owned(), "Alice".to_owned()),
        (
            "userAttributes.phone_number".to_owned(),
            "+15550100".to_owned(),
        ),
    ]);
    let (login, request) = answer(
        pending,
        ChallengeAnswer::NewPassword {
            password: Password::new("N3w!pass"),
            attributes: attributes.clone(),
        },
        &entropy,
    );
    let sent = respond(&request);
    assert_eq!(sent.challenge_name, "NEW_PASSWORD_REQUIRED");
    assert_eq!(session(sent), Some("s-new-password"));
    assert_eq!(
        keys(&sent.challenge_responses),
        [
            "NEW_PASSWORD",
            "SECRET_HASH",
            "USERNAME",
            "userAttributes.name",
            "userAttributes.phone_number"
        ]
    );
    assert_eq!(
        sent.challenge_responses.get("NEW_PASSWORD"),
        Some("N3w!pass")
    );
    assert_eq!(
        sent.challenge_responses.get("userAttributes.phone_number"),
        Some("+15550100")
    );

    // The policy refuses the password: the same challenge may be answered again.
    let failure = failed(login.on_reply(
        service(
            "InvalidPasswordException",
            "Password does not conform to policy",
        ),
        now(),
        &entropy,
    ));
    let pending = failure.pending.expect("a new password may be tried");
    assert_eq!(pending.challenge().name(), "NEW_PASSWORD_REQUIRED");
    let (_, request) = answer(
        *pending,
        ChallengeAnswer::NewPassword {
            password: Password::new("Better!pass1"),
            attributes,
        },
        &entropy,
    );
    assert_eq!(
        respond(&request).challenge_responses.get("NEW_PASSWORD"),
        Some("Better!pass1")
    );
}

#[test]
fn select_mfa_type_parses_the_json_string() {
    let entropy = ScriptedEntropy::default();
    let (login, _) = start(
        app(false),
        login_for("alice", Some("pw"), AuthFlow::UserPassword),
        &entropy,
    );
    let reply = auth(json!({
        "ChallengeName": "SELECT_MFA_TYPE",
        "Session": "s-select",
        "ChallengeParameters": {"MFAS_CAN_CHOOSE": "[\"SMS_MFA\",\"SOFTWARE_TOKEN_MFA\",\"EMAIL_OTP\"]", "USERNAME": "alice"},
    }));
    let pending = human(login.on_reply(reply, now(), &entropy));
    let Challenge::SelectMfaType { options } = pending.challenge() else {
        panic!("{pending:?}")
    };
    assert_eq!(
        options,
        &[MfaType::Sms, MfaType::SoftwareToken, MfaType::Email]
    );
    let (login, request) = answer(pending, ChallengeAnswer::MfaType(MfaType::Email), &entropy);
    let sent = respond(&request);
    assert_eq!(sent.challenge_name, "SELECT_MFA_TYPE");
    assert_eq!(sent.challenge_responses.get("ANSWER"), Some("EMAIL_OTP"));

    let reply = auth(
        json!({"ChallengeName": "EMAIL_OTP", "Session": "s-email", "ChallengeParameters": {
        "CODE_DELIVERY_DELIVERY_MEDIUM": "EMAIL", "CODE_DELIVERY_DESTINATION": "a***@e***"}}),
    );
    let pending = human(login.on_reply(reply, now(), &entropy));
    let (_, request) = answer(
        pending,
        ChallengeAnswer::Code(OneTimeCode::new("11223344")),
        &entropy,
    );
    assert_eq!(
        respond(&request).challenge_responses.get("EMAIL_OTP_CODE"),
        Some("11223344")
    );

    // A type that was not offered is refused locally.
    let (login, _) = start(
        app(false),
        login_for("alice", Some("pw"), AuthFlow::UserPassword),
        &entropy,
    );
    let reply = auth(
        json!({"ChallengeName": "SELECT_MFA_TYPE", "Session": "s", "ChallengeParameters": {"MFAS_CAN_CHOOSE": "[\"SMS_MFA\"]"}}),
    );
    let pending = human(login.on_reply(reply, now(), &entropy));
    let refused = pending
        .answer(
            ChallengeAnswer::MfaType(MfaType::SoftwareToken),
            now(),
            &entropy,
        )
        .unwrap_err();
    assert!(matches!(refused.error, Error::InvalidInput(_)));
    assert!(refused.pending.is_some());

    // MFAS_CAN_CHOOSE that is not a JSON list is a protocol error.
    let (login, _) = start(
        app(false),
        login_for("alice", Some("pw"), AuthFlow::UserPassword),
        &entropy,
    );
    let reply = auth(
        json!({"ChallengeName": "SELECT_MFA_TYPE", "Session": "s", "ChallengeParameters": {"MFAS_CAN_CHOOSE": "SMS_MFA"}}),
    );
    assert!(matches!(
        failed(login.on_reply(reply, now(), &entropy)).error,
        Error::Protocol(_)
    ));
}

#[test]
fn user_auth_select_challenge_answers() {
    let basic = vector("basic");
    let entropy = ScriptedEntropy::with(vec![basic.a.clone()]);
    let select = || {
        auth(json!({
            "ChallengeName": "SELECT_CHALLENGE",
            "Session": "s-select-challenge",
            "ChallengeParameters": {},
            "AvailableChallenges": ["PASSWORD", "PASSWORD_SRP", "EMAIL_OTP", "WEB_AUTHN"],
        }))
    };
    let (login, request) = start(
        app(true),
        login_for("alice", None, AuthFlow::UserAuth { preferred: None }),
        &entropy,
    );
    let sent = initiate(&request);
    assert_eq!(sent.auth_flow, "USER_AUTH");
    assert_eq!(keys(&sent.auth_parameters), ["SECRET_HASH", "USERNAME"]);
    let pending = human(login.on_reply(select(), now(), &entropy));
    let Challenge::SelectChallenge { available } = pending.challenge() else {
        panic!("{pending:?}")
    };
    assert_eq!(
        available,
        &["PASSWORD", "PASSWORD_SRP", "EMAIL_OTP", "WEB_AUTHN"]
    );

    // WEB_AUTHN is refused before anything is sent; another choice may follow.
    let refused = pending
        .answer(
            ChallengeAnswer::SelectChallenge {
                challenge: "WEB_AUTHN".into(),
                password: None,
            },
            now(),
            &entropy,
        )
        .unwrap_err();
    assert!(matches!(&refused.error, Error::Unsupported(message) if message.contains("WEB_AUTHN")));
    let pending = *refused.pending.unwrap();

    // PASSWORD_SRP without a password anywhere is refused too.
    let refused = pending
        .answer(
            ChallengeAnswer::SelectChallenge {
                challenge: "PASSWORD_SRP".into(),
                password: None,
            },
            now(),
            &entropy,
        )
        .unwrap_err();
    assert!(matches!(refused.error, Error::InvalidInput(_)));
    let pending = *refused.pending.unwrap();

    let (login, request) = answer(
        pending,
        ChallengeAnswer::SelectChallenge {
            challenge: "password_srp".into(),
            password: Some(Password::new(basic.password.clone())),
        },
        &entropy,
    );
    let sent = respond(&request);
    assert_eq!(sent.challenge_name, "SELECT_CHALLENGE");
    assert_eq!(session(sent), Some("s-select-challenge"));
    assert_eq!(
        keys(&sent.challenge_responses),
        ["ANSWER", "SECRET_HASH", "SRP_A", "USERNAME"]
    );
    assert_eq!(sent.challenge_responses.get("ANSWER"), Some("PASSWORD_SRP"));
    assert_eq!(
        sent.challenge_responses.get("SRP_A"),
        Some(basic.public_a.as_str())
    );
    let reply = auth(json!({
        "ChallengeName": "PASSWORD_VERIFIER",
        "Session": "s-verifier",
        "ChallengeParameters": verifier_reply(&basic, json!({"USER_ID_FOR_SRP": "alice", "USERNAME": "alice"})),
    }));
    let (_, request) = send(login.on_reply(reply, now(), &entropy));
    let sent = respond(&request);
    assert_eq!(session(sent), Some("s-verifier"));
    assert_eq!(
        sent.challenge_responses.get("PASSWORD_CLAIM_SIGNATURE"),
        Some(basic.signature.as_str())
    );

    // PASSWORD sends the login's password; EMAIL_OTP sends only the choice.
    let (login, _) = start(
        app(false),
        login_for("alice", Some("pw"), AuthFlow::UserAuth { preferred: None }),
        &entropy,
    );
    let pending = human(login.on_reply(select(), now(), &entropy));
    let (_, request) = answer(
        pending,
        ChallengeAnswer::SelectChallenge {
            challenge: "PASSWORD".into(),
            password: None,
        },
        &entropy,
    );
    assert_eq!(
        keys(&respond(&request).challenge_responses),
        ["ANSWER", "PASSWORD", "USERNAME"]
    );
    let (login, _) = start(
        app(false),
        login_for("alice", None, AuthFlow::UserAuth { preferred: None }),
        &entropy,
    );
    let pending = human(login.on_reply(select(), now(), &entropy));
    let (_, request) = answer(
        pending,
        ChallengeAnswer::SelectChallenge {
            challenge: "EMAIL_OTP".into(),
            password: None,
        },
        &entropy,
    );
    assert_eq!(
        keys(&respond(&request).challenge_responses),
        ["ANSWER", "USERNAME"]
    );
}

#[test]
fn user_auth_preferred_challenges() {
    let entropy = ScriptedEntropy::default();
    let preferred = |name: &str| AuthFlow::UserAuth {
        preferred: Some(name.into()),
    };
    let (_, request) = start(
        app(false),
        login_for("alice", Some("pw"), preferred("PASSWORD")),
        &entropy,
    );
    let sent = initiate(&request);
    assert_eq!(
        keys(&sent.auth_parameters),
        ["PASSWORD", "PREFERRED_CHALLENGE", "USERNAME"]
    );
    assert_eq!(
        sent.auth_parameters.get("PREFERRED_CHALLENGE"),
        Some("PASSWORD")
    );
    let (_, request) = start(
        app(false),
        login_for("alice", Some("pw"), preferred("PASSWORD_SRP")),
        &entropy,
    );
    assert_eq!(
        keys(&initiate(&request).auth_parameters),
        ["PREFERRED_CHALLENGE", "SRP_A", "USERNAME"]
    );
    let (login, request) = start(
        app(false),
        login_for("alice", None, preferred("EMAIL_OTP")),
        &entropy,
    );
    assert_eq!(
        keys(&initiate(&request).auth_parameters),
        ["PREFERRED_CHALLENGE", "USERNAME"]
    );

    // A server that offers a passkey anyway gets a clear refusal.
    let reply = auth(
        json!({"ChallengeName": "WEB_AUTHN", "Session": "s", "ChallengeParameters": {"CREDENTIAL_REQUEST_OPTIONS": "{}"}}),
    );
    assert!(matches!(
        failed(login.on_reply(reply, now(), &entropy)).error,
        Error::Unsupported(_)
    ));

    let refused = Login::start(
        app(false),
        login_for("alice", None, preferred("WEB_AUTHN")),
        FlowOptions::default(),
        &entropy,
    );
    assert!(matches!(refused, Err(Error::Unsupported(message)) if message.contains("WEB_AUTHN")));
    let refused = Login::start(
        app(false),
        login_for("alice", None, preferred("TELEPATHY")),
        FlowOptions::default(),
        &entropy,
    );
    assert!(matches!(refused, Err(Error::InvalidInput(_))));
}

#[test]
fn custom_auth_with_and_without_srp_first() {
    let entropy = ScriptedEntropy::default();
    let (login, request) = start(
        app(true),
        login_for("alice", None, AuthFlow::Custom { srp_first: false }),
        &entropy,
    );
    let sent = initiate(&request);
    assert_eq!(sent.auth_flow, "CUSTOM_AUTH");
    assert_eq!(keys(&sent.auth_parameters), ["SECRET_HASH", "USERNAME"]);
    let reply = auth(
        json!({"ChallengeName": "CUSTOM_CHALLENGE", "Session": "s-custom", "ChallengeParameters": {"USERNAME": "alice", "question": "colour?"}}),
    );
    let pending = human(login.on_reply(reply, now(), &entropy));
    let Challenge::CustomChallenge { parameters } = pending.challenge() else {
        panic!("{pending:?}")
    };
    assert_eq!(
        parameters.get("question").map(String::as_str),
        Some("colour?")
    );
    let (_, request) = answer(
        pending,
        ChallengeAnswer::CustomAnswer(Password::new("blue")),
        &entropy,
    );
    let sent = respond(&request);
    assert_eq!(sent.challenge_name, "CUSTOM_CHALLENGE");
    assert_eq!(
        keys(&sent.challenge_responses),
        ["ANSWER", "SECRET_HASH", "USERNAME"]
    );
    assert_eq!(sent.challenge_responses.get("ANSWER"), Some("blue"));

    let (_, request) = start(
        app(true),
        login_for("alice", Some("pw"), AuthFlow::Custom { srp_first: true }),
        &entropy,
    );
    let sent = initiate(&request);
    assert_eq!(
        keys(&sent.auth_parameters),
        ["CHALLENGE_NAME", "SECRET_HASH", "SRP_A", "USERNAME"]
    );
    assert_eq!(sent.auth_parameters.get("CHALLENGE_NAME"), Some("SRP_A"));
}

#[test]
fn mfa_setup_associates_then_verifies_then_responds_with_the_verify_session() {
    let entropy = ScriptedEntropy::default();
    let (login, _) = start(
        app(true),
        login_for("alice@example.com", Some("pw"), AuthFlow::UserPassword),
        &entropy,
    );
    let reply = auth(json!({
        "ChallengeName": "MFA_SETUP",
        "Session": "s1-setup",
        "ChallengeParameters": {"MFAS_CAN_SETUP": "[\"SMS_MFA\",\"SOFTWARE_TOKEN_MFA\"]", "USERNAME": "alice"},
    }));
    let (login, request) = send(login.on_reply(reply, now(), &entropy));
    let Request::AssociateSoftwareToken(associate) = &request else {
        panic!("{request:?}")
    };
    assert_eq!(
        associate.session.as_ref().map(SessionToken::expose_secret),
        Some("s1-setup")
    );
    assert!(associate.access_token.is_none());

    let reply = Ok(Reply::AssociateSoftwareToken(
        serde_json::from_value(
            json!({"SecretCode": "JBSWY3DPEHPK3PXP", "Session": "s2-associate"}),
        )
        .unwrap(),
    ));
    let pending = human(login.on_reply(reply, now(), &entropy));
    let Challenge::MfaSetup {
        secret_code,
        otpauth_uri,
    } = pending.challenge()
    else {
        panic!("{pending:?}")
    };
    assert_eq!(secret_code.expose_secret(), "JBSWY3DPEHPK3PXP");
    assert_eq!(
        otpauth_uri.expose_secret(),
        "otpauth://totp/AWSCognito:alice@example.com?secret=JBSWY3DPEHPK3PXP&issuer=AWSCognito"
    );

    let (login, request) = answer(
        pending,
        ChallengeAnswer::Code(OneTimeCode::new("000111")),
        &entropy,
    );
    let Request::VerifySoftwareToken(verify) = &request else {
        panic!("{request:?}")
    };
    assert_eq!(
        verify.session.as_ref().map(SessionToken::expose_secret),
        Some("s2-associate")
    );
    assert_eq!(verify.user_code.expose_secret(), "000111");

    // A wrong code hands the setup back for another code.
    let failure = failed(login.on_reply(
        service("EnableSoftwareTokenMFAException", "Code mismatch"),
        now(),
        &entropy,
    ));
    let pending = *failure.pending.expect("another code may be tried");
    let (login, _) = answer(
        pending,
        ChallengeAnswer::Code(OneTimeCode::new("222333")),
        &entropy,
    );

    let reply = Ok(Reply::VerifySoftwareToken(
        serde_json::from_value(json!({"Status": "SUCCESS", "Session": "s3-verified"})).unwrap(),
    ));
    let (login, request) = send(login.on_reply(reply, now(), &entropy));
    let sent = respond(&request);
    assert_eq!(sent.challenge_name, "MFA_SETUP");
    assert_eq!(session(sent), Some("s3-verified"));
    assert_eq!(keys(&sent.challenge_responses), ["SECRET_HASH", "USERNAME"]);
    assert_eq!(
        sent.challenge_responses.get("SECRET_HASH"),
        Some(ALICE_HASH)
    );
    done(login.on_reply(auth(tokens(None)), now(), &entropy));
}

#[test]
fn mfa_setup_without_totp_is_unsupported() {
    let entropy = ScriptedEntropy::default();
    let (login, _) = start(
        app(true),
        login_for("alice", Some("pw"), AuthFlow::UserPassword),
        &entropy,
    );
    let reply = auth(
        json!({"ChallengeName": "MFA_SETUP", "Session": "s", "ChallengeParameters": {"MFAS_CAN_SETUP": "[\"EMAIL_OTP\"]"}}),
    );
    assert!(matches!(
        failed(login.on_reply(reply, now(), &entropy)).error,
        Error::Unsupported(_)
    ));
}

#[test]
fn empty_success_is_a_protocol_error() {
    let entropy = ScriptedEntropy::default();
    let (login, _) = start(
        app(true),
        login_for("alice", None, AuthFlow::Custom { srp_first: false }),
        &entropy,
    );
    // moto answers CUSTOM_AUTH with `{}`.
    let failure = failed(login.on_reply(auth(json!({})), now(), &entropy));
    assert!(
        matches!(&failure.error, Error::Protocol(message) if message.contains("neither")),
        "{failure}"
    );

    // Tokens without a refresh token are a protocol error for a sign-in.
    let (login, _) = start(
        app(true),
        login_for("alice", Some("pw"), AuthFlow::UserPassword),
        &entropy,
    );
    let mut reply = tokens(None);
    reply["AuthenticationResult"]
        .as_object_mut()
        .unwrap()
        .remove("RefreshToken");
    assert!(matches!(
        failed(login.on_reply(auth(reply), now(), &entropy)).error,
        Error::Protocol(_)
    ));

    // An unknown challenge is unsupported, not a crash.
    let (login, _) = start(
        app(true),
        login_for("alice", Some("pw"), AuthFlow::UserPassword),
        &entropy,
    );
    let reply = auth(
        json!({"ChallengeName": "BRAND_NEW_THING", "Session": "s", "ChallengeParameters": {}}),
    );
    assert!(matches!(
        failed(login.on_reply(reply, now(), &entropy)).error,
        Error::Unsupported(_)
    ));
}

fn sms_pending(entropy: &dyn Entropy) -> PendingLogin {
    let (login, _) = start(
        app(true),
        login_for("alice", Some("pw"), AuthFlow::UserPassword),
        entropy,
    );
    let reply = auth(
        json!({"ChallengeName": "SMS_MFA", "Session": "s-sms", "ChallengeParameters": {"USERNAME": "alice"}}),
    );
    human(login.on_reply(reply, now(), entropy))
}

#[test]
fn pending_logins_expire_and_only_some_errors_allow_a_retry() {
    let entropy = ScriptedEntropy::default();
    let pending = sms_pending(&entropy);
    let expires_at = pending.expires_at();
    let late = pending
        .answer(
            ChallengeAnswer::Code(OneTimeCode::new("1")),
            expires_at,
            &entropy,
        )
        .unwrap_err();
    assert!(matches!(late.error, Error::ChallengeExpired));
    assert!(late.error.is_challenge_expired());
    assert!(late.pending.is_none());

    // A wrong code: retry with the same challenge.
    let (login, _) = answer(
        sms_pending(&entropy),
        ChallengeAnswer::Code(OneTimeCode::new("1")),
        &entropy,
    );
    let failure = failed(login.on_reply(
        service(
            "CodeMismatchException",
            "Invalid code or auth state for the user.",
        ),
        now(),
        &entropy,
    ));
    let pending = failure.pending.expect("a wrong code may be retried");
    assert_eq!(pending.expires_at(), expires_at);
    let (_, request) = answer(
        *pending,
        ChallengeAnswer::Code(OneTimeCode::new("2")),
        &entropy,
    );
    assert_eq!(session(respond(&request)), Some("s-sms"));

    // The session expired server-side: no retry.
    let (login, _) = answer(
        sms_pending(&entropy),
        ChallengeAnswer::Code(OneTimeCode::new("1")),
        &entropy,
    );
    let failure = failed(login.on_reply(
        service(
            "NotAuthorizedException",
            "Invalid session for the user, session is expired.",
        ),
        now(),
        &entropy,
    ));
    assert!(failure.pending.is_none());
    assert!(failure.error.is_challenge_expired());

    // An answer of the wrong kind costs nothing.
    let wrong = sms_pending(&entropy)
        .answer(ChallengeAnswer::MfaType(MfaType::Sms), now(), &entropy)
        .unwrap_err();
    assert!(matches!(wrong.error, Error::InvalidInput(_)));
    assert!(wrong.pending.is_some());
}

#[test]
fn the_newest_session_is_sent_and_a_missing_one_is_not_reused() {
    let entropy = ScriptedEntropy::default();
    let (login, _) = start(
        app(false),
        login_for("alice", None, AuthFlow::Custom { srp_first: false }),
        &entropy,
    );
    let reply = auth(
        json!({"ChallengeName": "CUSTOM_CHALLENGE", "Session": "s-first", "ChallengeParameters": {}}),
    );
    let pending = human(login.on_reply(reply, now(), &entropy));
    let (login, request) = answer(
        pending,
        ChallengeAnswer::CustomAnswer(Password::new("a")),
        &entropy,
    );
    assert_eq!(session(respond(&request)), Some("s-first"));
    let reply = auth(
        json!({"ChallengeName": "CUSTOM_CHALLENGE", "Session": "s-second", "ChallengeParameters": {}}),
    );
    let pending = human(login.on_reply(reply, now(), &entropy));
    let (login, request) = answer(
        pending,
        ChallengeAnswer::CustomAnswer(Password::new("b")),
        &entropy,
    );
    assert_eq!(session(respond(&request)), Some("s-second"));
    let reply = auth(json!({"ChallengeName": "CUSTOM_CHALLENGE", "ChallengeParameters": {}}));
    let pending = human(login.on_reply(reply, now(), &entropy));
    let (_, request) = answer(
        pending,
        ChallengeAnswer::CustomAnswer(Password::new("c")),
        &entropy,
    );
    assert_eq!(session(respond(&request)), None);
}

#[test]
fn missing_inputs_are_refused_before_sending() {
    let entropy = ScriptedEntropy::default();
    for flow in [
        AuthFlow::UserSrp,
        AuthFlow::UserPassword,
        AuthFlow::Custom { srp_first: true },
    ] {
        let refused = Login::start(
            app(false),
            login_for("alice", None, flow.clone()),
            FlowOptions::default(),
            &entropy,
        );
        assert!(matches!(refused, Err(Error::InvalidInput(_))), "{flow}");
        let empty = Login::start(
            app(false),
            login_for("alice", Some(""), flow.clone()),
            FlowOptions::default(),
            &entropy,
        );
        assert!(matches!(empty, Err(Error::InvalidInput(_))), "{flow}");
    }
    let refused = Login::start(
        app(false),
        login_for("  ", Some("pw"), AuthFlow::UserPassword),
        FlowOptions::default(),
        &entropy,
    );
    assert!(matches!(refused, Err(Error::InvalidInput(_))));
}

#[test]
fn names_parse() {
    assert_eq!(
        "USER_SRP_AUTH".parse::<AuthFlow>().unwrap(),
        AuthFlow::UserSrp
    );
    assert_eq!(
        "user_password_auth".parse::<AuthFlow>().unwrap(),
        AuthFlow::UserPassword
    );
    assert_eq!(
        "USER_AUTH".parse::<AuthFlow>().unwrap(),
        AuthFlow::UserAuth { preferred: None }
    );
    assert_eq!(
        "CUSTOM_AUTH".parse::<AuthFlow>().unwrap(),
        AuthFlow::Custom { srp_first: false }
    );
    assert!("ADMIN_NO_SRP_AUTH".parse::<AuthFlow>().is_err());
    assert_eq!(AuthFlow::UserSrp.to_string(), "USER_SRP_AUTH");
    assert_eq!(
        "SOFTWARE_TOKEN_MFA".parse::<MfaType>().unwrap(),
        MfaType::SoftwareToken
    );
    assert_eq!("EMAIL_OTP".parse::<MfaType>().unwrap(), MfaType::Email);
    assert_eq!("sms".parse::<MfaType>().unwrap(), MfaType::Sms);
    assert!("FAX".parse::<MfaType>().is_err());
    assert_eq!(MfaType::Email.as_str(), "EMAIL_OTP");
}

#[test]
fn debug_output_never_shows_secrets() {
    let entropy = ScriptedEntropy::default();
    let mut login_request = login_for("alice", Some("hunter2-password"), AuthFlow::UserPassword);
    login_request.device = Some(DeviceCredentials {
        device_key: "us-east-1_d".into(),
        device_group_key: "g".into(),
        device_password: DevicePassword::new("hunter2-device"),
    });
    let printed_request = format!("{login_request:?}");
    let (login, request) = start(app(true), login_request, &entropy);
    let printed_login = format!("{login:?} {request:?}");
    let reply = auth(
        json!({"ChallengeName": "MFA_SETUP", "Session": "hunter2-session-s1", "ChallengeParameters": {}}),
    );
    let (login, _) = send(login.on_reply(reply, now(), &entropy));
    let reply = Ok(Reply::AssociateSoftwareToken(
        serde_json::from_value(
            json!({"SecretCode": "HUNTER2TOTPSECRET", "Session": "hunter2-session-s2"}),
        )
        .unwrap(),
    ));
    let pending = human(login.on_reply(reply, now(), &entropy));
    let printed_pending = format!("{pending:?} {:?}", pending.challenge());
    let answers = format!(
        "{:?} {:?} {:?} {:?}",
        ChallengeAnswer::Code(OneTimeCode::new("hunter2-code")),
        ChallengeAnswer::CustomAnswer(Password::new("hunter2-answer")),
        ChallengeAnswer::NewPassword {
            password: Password::new("hunter2-new"),
            attributes: BTreeMap::new()
        },
        ChallengeAnswer::SelectChallenge {
            challenge: "PASSWORD".into(),
            password: Some(Password::new("hunter2-pw"))
        },
    );
    let mut device_login = request_with_device();
    device_login.remember_device = DeviceRemembering::Remember;
    let (login, _) = start(app(true), device_login, &entropy);
    let mut reply = tokens(None);
    reply["AuthenticationResult"]["RefreshToken"] = json!("hunter2-refresh");
    let success = done(login.on_reply(auth(reply), now(), &entropy));
    let printed_success = format!("{success:?}");
    for printed in [
        printed_request,
        printed_login,
        printed_pending,
        answers,
        printed_success,
    ] {
        assert!(!printed.to_lowercase().contains("hunter2"), "{printed}");
    }
}

fn request_with_device() -> LoginRequest {
    let mut login_request = login_for("alice", Some("hunter2-password"), AuthFlow::UserPassword);
    login_request.device = Some(DeviceCredentials {
        device_key: "us-east-1_d".into(),
        device_group_key: "g".into(),
        device_password: DevicePassword::new("hunter2-device"),
    });
    login_request
}

#[test]
fn only_steps_that_do_srp_math_ask_for_a_blocking_thread() {
    assert!(AuthFlow::UserSrp.starts_with_srp());
    assert!(!AuthFlow::UserPassword.starts_with_srp());
    assert!(AuthFlow::Custom { srp_first: true }.starts_with_srp());
    assert!(!AuthFlow::Custom { srp_first: false }.starts_with_srp());
    let preferred = |name: &str| AuthFlow::UserAuth {
        preferred: Some(name.into()),
    };
    assert!(preferred(" password_srp ").starts_with_srp());
    assert!(!preferred("EMAIL_OTP").starts_with_srp());
    assert!(!AuthFlow::UserAuth { preferred: None }.starts_with_srp());

    let choose = |name: &str| ChallengeAnswer::SelectChallenge {
        challenge: name.into(),
        password: None,
    };
    assert!(PendingLogin::answer_needs_srp(&choose("PASSWORD_SRP")));
    assert!(!PendingLogin::answer_needs_srp(&choose("PASSWORD")));
    assert!(!PendingLogin::answer_needs_srp(&ChallengeAnswer::Code(
        OneTimeCode::new("123456")
    )));

    let entropy = ScriptedEntropy::default();
    let (login, _) = start(
        app(false),
        login_for("alice", Some("pw"), AuthFlow::UserSrp),
        &entropy,
    );
    let challenge = |name: &str| auth(json!({"ChallengeName": name, "Session": "s"}));
    for name in [
        "PASSWORD_VERIFIER",
        "DEVICE_SRP_AUTH",
        "DEVICE_PASSWORD_VERIFIER",
        "PASSWORD_SRP",
    ] {
        assert!(login.reply_needs_srp(&challenge(name)), "{name}");
    }
    for name in [
        "SMS_MFA",
        "SOFTWARE_TOKEN_MFA",
        "NEW_PASSWORD_REQUIRED",
        "MFA_SETUP",
    ] {
        assert!(!login.reply_needs_srp(&challenge(name)), "{name}");
    }
    assert!(!login.reply_needs_srp(&auth(tokens(None))));
    assert!(login.reply_needs_srp(&auth(tokens(Some(("us-east-1_key", "group"))))));
    let unknown_device = || service("ResourceNotFoundException", "Device does not exist.");
    assert!(
        !login.reply_needs_srp(&unknown_device()),
        "no device was sent"
    );

    let mut with_device = login_for("alice", Some("pw"), AuthFlow::UserSrp);
    with_device.device = Some(device_credentials());
    let (login, _) = start(app(false), with_device, &entropy);
    assert!(
        login.reply_needs_srp(&unknown_device()),
        "the restart sends a new SRP_A"
    );
    let mut password_flow = login_for("alice", Some("pw"), AuthFlow::UserPassword);
    password_flow.device = Some(device_credentials());
    let (login, _) = start(app(false), password_flow, &entropy);
    assert!(!login.reply_needs_srp(&unknown_device()));
}
