//! Test support: an emulator per test, raw calls, and a tiny independent SRP client.

use std::time::UNIX_EPOCH;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cognito_emulator::{Emulator, Handle, RunningEmulator, Seed};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use num_bigint::{BigInt, BigUint};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub(crate) const POOL: &str = "us-east-1_Test1";
pub(crate) const REALM: &str = "Test1";
pub(crate) const PUBLIC: &str = "public-client";
pub(crate) const SECRET_CLIENT: &str = "secret-client";
pub(crate) const SECRET: &str = "s3cr3t0s3cr3t0s3cr3t0s3cr3t0";
pub(crate) const ROTATING: &str = "rotating-client";
pub(crate) const PASSWORD: &str = "Passw0rd!";

/// A pool with one user of each kind, used by most tests.
pub(crate) const SEED: &str = r#"
[[pools]]
id = "us-east-1_Test1"
mfa = "optional"
lockout_threshold = 3
lockout_seconds = 60

[[pools.clients]]
id = "public-client"
session_ttl = 180
access_token_ttl = 600
refresh_token_ttl = 7200

[[pools.clients]]
id = "secret-client"
secret = "s3cr3t0s3cr3t0s3cr3t0s3cr3t0"

[[pools.clients]]
id = "rotating-client"
rotation = { enabled = true, grace_seconds = 10 }

[[pools.clients]]
id = "srp-only"
flows = ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]

[[pools.users]]
username = "alice"
password = "Passw0rd!"
email = "alice@example.com"
attributes = { name = "Alice" }
groups = ["admins"]

[[pools.users]]
username = "bob"
password = "Passw0rd!"

[[pools.users]]
username = "carol"
password = "Passw0rd!"

[[pools.users]]
username = "dave"
password = "Passw0rd!"

[[pools.users]]
username = "newbie"
password = "Temp0rary!"
status = "FORCE_CHANGE_PASSWORD"
required_attributes = ["name"]

[[pools.users]]
username = "unconfirmed"
password = "Passw0rd!"
status = "UNCONFIRMED"

[[pools.users]]
username = "resetme"
password = "Passw0rd!"
status = "RESET_REQUIRED"

[[pools.users]]
username = "totp"
password = "Passw0rd!"
mfa = "totp"
totp_secret = "JBSWY3DPEHPK3PXP"

[[pools.users]]
username = "sms"
password = "Passw0rd!"
phone_number = "+15555550100"
mfa = "sms"

[[pools.users]]
username = "chooser"
password = "Passw0rd!"
email = "chooser@example.com"
phone_number = "+15555550101"
sms_mfa = true
totp_mfa = true
totp_secret = "JBSWY3DPEHPK3PXP"

[[pools.users]]
username = "custom"
password = "Passw0rd!"
custom_challenge_answer = "42"

[[pools.users]]
username = "disabled"
password = "Passw0rd!"
enabled = false
"#;

pub(crate) struct Env {
    pub(crate) emulator: RunningEmulator,
    pub(crate) handle: Handle,
    pub(crate) http: reqwest::Client,
}

/// A failed call: `__type`, message, HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) status: u16,
}

pub(crate) async fn start(seed: &str) -> Env {
    let seed = Seed::from_toml(seed).expect("test seed is valid");
    let emulator = Emulator::start_local(seed).await.expect("emulator starts");
    let handle = emulator.handle();
    Env {
        emulator,
        handle,
        http: reqwest::Client::new(),
    }
}

impl Env {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.endpoint())
    }

    /// Sends one operation; returns the raw response.
    pub(crate) async fn raw(&self, operation: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/"))
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "x-amz-target",
                format!("AWSCognitoIdentityProviderService.{operation}"),
            )
            .body(body.to_string())
            .send()
            .await
            .expect("request is answered")
    }

    pub(crate) async fn call(&self, operation: &str, body: Value) -> Result<Value, Failure> {
        let response = self.raw(operation, &body).await;
        let status = response.status().as_u16();
        let header = response
            .headers()
            .get("x-amzn-errortype")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let value: Value = response.json().await.expect("JSON body");
        if status == 200 {
            assert!(header.is_none());
            return Ok(value);
        }
        let code = value["__type"].as_str().expect("__type").to_owned();
        let header = header.expect("x-amzn-ErrorType header on errors");
        assert_eq!(header.split(':').next(), Some(code.as_str()));
        Err(Failure {
            code,
            message: value["message"].as_str().expect("message").to_owned(),
            status,
        })
    }

    pub(crate) async fn ok(&self, operation: &str, body: Value) -> Value {
        match self.call(operation, body).await {
            Ok(value) => value,
            Err(failure) => panic!("{operation} failed: {failure:?}"),
        }
    }

    pub(crate) async fn fail(&self, operation: &str, body: Value) -> Failure {
        match self.call(operation, body).await {
            Ok(value) => panic!("{operation} unexpectedly succeeded: {value}"),
            Err(failure) => failure,
        }
    }

    /// The emulator's clock in unix seconds.
    pub(crate) fn now(&self) -> i64 {
        self.handle
            .now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64
    }

    pub(crate) async fn password_login(
        &self,
        client: &str,
        username: &str,
        password: &str,
    ) -> Result<Value, Failure> {
        self.call(
            "InitiateAuth",
            json!({ "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client,
                    "AuthParameters": { "USERNAME": username, "PASSWORD": password } }),
        )
        .await
    }

    /// A full USER_SRP_AUTH login up to the answer to PASSWORD_VERIFIER.
    pub(crate) async fn srp_login(
        &self,
        client: &str,
        username: &str,
        password: &str,
    ) -> Result<Value, Failure> {
        let srp = SrpClient::new();
        let challenge = self
            .call(
                "InitiateAuth",
                json!({ "AuthFlow": "USER_SRP_AUTH", "ClientId": client,
                        "AuthParameters": { "USERNAME": username, "SRP_A": srp.a_hex() } }),
            )
            .await?;
        assert_eq!(challenge["ChallengeName"], "PASSWORD_VERIFIER");
        let params = &challenge["ChallengeParameters"];
        let user_id = params["USER_ID_FOR_SRP"].as_str().expect("USER_ID_FOR_SRP");
        let timestamp = java_timestamp(self.now());
        let signature = srp.signature(REALM, user_id, password, params, &timestamp);
        self.call(
            "RespondToAuthChallenge",
            json!({ "ChallengeName": "PASSWORD_VERIFIER", "ClientId": client,
                    "ChallengeResponses": {
                        "USERNAME": user_id,
                        "PASSWORD_CLAIM_SECRET_BLOCK": params["SECRET_BLOCK"],
                        "PASSWORD_CLAIM_SIGNATURE": signature,
                        "TIMESTAMP": timestamp } }),
        )
        .await
    }
}

pub(crate) fn tokens(answer: &Value) -> &Value {
    answer
        .get("AuthenticationResult")
        .unwrap_or_else(|| panic!("no AuthenticationResult in {answer}"))
}

/// The unverified claims of a JWT.
pub(crate) fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

pub(crate) fn header(jwt: &str) -> Value {
    let header = jwt.split('.').next().expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url"))
        .expect("JSON header")
}

pub(crate) fn secret_hash(secret: &str, username: &str, client_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(username.as_bytes());
    mac.update(client_id.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `EEE MMM d HH:mm:ss UTC yyyy` from English tables (test-local, independent of the emulator).
pub(crate) fn java_timestamp(unix: i64) -> String {
    java_timestamp_with(unix, false)
}

/// The same with a zero-padded day (a classic client bug).
pub(crate) fn java_timestamp_with(unix: i64, zero_padded_day: bool) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Walk the calendar from 1970: slow, obviously correct, fine for tests.
    let (mut year, mut left) = (1970i64, days);
    loop {
        let len = if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
            366
        } else {
            365
        };
        if left < len {
            break;
        }
        left -= len;
        year += 1;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let lengths = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while left >= lengths[month] {
        left -= lengths[month];
        month += 1;
    }
    let day = left + 1;
    let day = if zero_padded_day {
        format!("{day:02}")
    } else {
        day.to_string()
    };
    format!(
        "{} {} {} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[month],
        day,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        year
    )
}

fn n() -> BigUint {
    BigUint::parse_bytes(
        concat!(
            "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
            "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
            "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
            "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
            "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
            "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
            "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
            "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
        )
        .as_bytes(),
        16,
    )
    .expect("N")
}

fn pad(x: &BigUint) -> Vec<u8> {
    BigInt::from(x.clone()).to_signed_bytes_be()
}

fn h(parts: &[&[u8]]) -> BigUint {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    BigUint::from_bytes_be(&d.finalize())
}

/// A client-side SRP computation written for these tests only (cognito-protocol.md §4.3).
pub(crate) struct SrpClient {
    a: BigUint,
    big_a: BigUint,
}

impl SrpClient {
    pub(crate) fn new() -> Self {
        let mut bytes = [0u8; 128];
        rand::thread_rng().fill_bytes(&mut bytes);
        let a = BigUint::from_bytes_be(&bytes);
        let big_a = BigUint::from(2u32).modpow(&a, &n());
        SrpClient { a, big_a }
    }

    pub(crate) fn a_hex(&self) -> String {
        self.big_a.to_str_radix(16)
    }

    /// PASSWORD_CLAIM_SIGNATURE for a (DEVICE_)PASSWORD_VERIFIER challenge.
    pub(crate) fn signature(
        &self,
        realm: &str,
        user_id: &str,
        password: &str,
        params: &Value,
        timestamp: &str,
    ) -> String {
        let n = n();
        let g = BigUint::from(2u32);
        let k = h(&[&pad(&n), &pad(&g)]);
        let big_b = BigUint::parse_bytes(params["SRP_B"].as_str().expect("SRP_B").as_bytes(), 16)
            .expect("hex");
        let salt = BigInt::parse_bytes(params["SALT"].as_str().expect("SALT").as_bytes(), 16)
            .expect("signed hex");
        let u = h(&[&pad(&self.big_a), &pad(&big_b)]);
        let inner = Sha256::digest(format!("{realm}{user_id}:{password}").as_bytes());
        let x = h(&[&salt.to_signed_bytes_be(), &inner]);
        let kgx = BigInt::from((k * g.modpow(&x, &n)) % &n);
        let n_signed = BigInt::from(n.clone());
        let base = ((BigInt::from(big_b) - kgx) % &n_signed + &n_signed) % &n_signed;
        let s = base
            .modpow(&BigInt::from(&self.a + &u * &x), &n_signed)
            .to_biguint()
            .expect("non-negative");
        let mut key = [0u8; 16];
        Hkdf::<Sha256>::new(Some(&pad(&u)), &pad(&s))
            .expand(b"Caldera Derived Key", &mut key)
            .expect("16 bytes");
        let block = STANDARD
            .decode(params["SECRET_BLOCK"].as_str().expect("SECRET_BLOCK"))
            .expect("base64");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key");
        mac.update(realm.as_bytes());
        mac.update(user_id.as_bytes());
        mac.update(&block);
        mac.update(timestamp.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }
}

/// ConfirmDevice's DeviceSecretVerifierConfig for a device password (cognito-protocol.md §4.9).
pub(crate) fn device_verifier(group_key: &str, device_key: &str, password: &str) -> Value {
    let mut raw = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut raw);
    raw[0] |= 0x80; // Exercise PAD: the salt then takes 17 bytes.
    let salt = pad(&BigUint::from_bytes_be(&raw));
    let inner = Sha256::digest(format!("{group_key}{device_key}:{password}").as_bytes());
    let x = h(&[&salt, &inner]);
    let verifier = BigUint::from(2u32).modpow(&x, &n());
    json!({ "PasswordVerifier": STANDARD.encode(pad(&verifier)), "Salt": STANDARD.encode(salt) })
}
