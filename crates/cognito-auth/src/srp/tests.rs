//! Known-answer vectors (tests/data/srp-vectors.json and cognito-protocol.md §3, §4) and
//! properties checked against an independent server-side computation written here.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use num_bigint::{BigInt, BigUint, Sign};
use proptest::prelude::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::*;
use crate::env::Entropy;
use crate::secret::{ClientSecret, DevicePassword};

const VECTORS_JSON: &str = include_str!("../../tests/data/srp-vectors.json");

#[derive(Deserialize)]
struct Vectors {
    #[serde(rename = "N_hex")]
    n_hex: String,
    g: u32,
    k_hex: String,
    srp: Vec<SrpVector>,
    secret_hash: Vec<SecretHashVector>,
}

#[derive(Deserialize)]
struct SrpVector {
    name: String,
    kind: String,
    inputs: SrpInputs,
    expected: SrpExpected,
}

#[derive(Deserialize)]
struct SrpInputs {
    pool_id: String,
    pool_name: String,
    device_group_key: Option<String>,
    user_id: String,
    password: String,
    a_hex: String,
    salt_hex: String,
    #[serde(rename = "B_hex")]
    b_hex: String,
    secret_block_b64: String,
    timestamp: String,
}

#[derive(Deserialize)]
struct SrpExpected {
    #[serde(rename = "A")]
    a: String,
    u: String,
    x: String,
    #[serde(rename = "S")]
    s: String,
    hkdf_hex: String,
    signature_b64: String,
}

#[derive(Deserialize)]
struct SecretHashVector {
    name: String,
    username: String,
    client_id: String,
    client_secret: String,
    expected: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(VECTORS_JSON).expect("the committed vectors are valid JSON")
}

/// Entropy that hands out a fixed byte string, repeated as needed.
struct FixedEntropy(Vec<u8>);

impl Entropy for FixedEntropy {
    fn fill(&self, dest: &mut [u8]) {
        for (slot, byte) in dest.iter_mut().zip(self.0.iter().cycle()) {
            *slot = *byte;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unix(seconds: i64) -> SystemTime {
    match u64::try_from(seconds) {
        Ok(after) => UNIX_EPOCH + Duration::from_secs(after),
        Err(_) => UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()),
    }
}

// ---------------------------------------------------------------------------------------------
// An independent server: its own PAD (on hex strings, the way amazon-cognito-identity-js does
// it), its own HKDF (two HMACs) and S = (A·v^u)^b mod N, sharing nothing with the client code
// but the hash and HMAC primitives.

fn server_n() -> BigUint {
    BigUint::parse_bytes(N_HEX.as_bytes(), 16).unwrap()
}

/// PAD for integers, computed from the hex string as padHex does.
fn server_pad(value: &BigInt) -> Vec<u8> {
    let magnitude = value.magnitude();
    if value.sign() != Sign::Minus {
        let mut text = format!("{magnitude:x}");
        if text.len() % 2 == 1 {
            text.insert(0, '0');
        }
        if matches!(text.as_bytes()[0], b'8'..=b'f') {
            text.insert_str(0, "00");
        }
        return hex_to_bytes(&text);
    }
    // Two's complement: the shortest L with −2^(8L−1) <= value, then 2^(8L) − |value|.
    let mut length = 1_usize;
    while BigUint::from(1_u8) << (8 * length - 1) < *magnitude {
        length += 1;
    }
    let encoded = (BigUint::from(1_u8) << (8 * length)) - magnitude;
    let text = format!("{encoded:0>width$x}", width = 2 * length);
    hex_to_bytes(&text)
}

fn server_pad_unsigned(value: &BigUint) -> Vec<u8> {
    server_pad(&BigInt::from(value.clone()))
}

fn hex_to_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
        .collect()
}

fn server_hash(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

fn server_hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn server_x(salt_bytes: &[u8], realm: &str, user_id: &str, password: &str) -> BigUint {
    let inner = server_hash(&[format!("{realm}{user_id}:{password}").as_bytes()]);
    BigUint::from_bytes_be(&server_hash(&[salt_bytes, &inner]))
}

/// What a Cognito-like server computes for one exchange.
struct ServerSide {
    b_hex: String,
    premaster_secret: BigUint,
    key: Vec<u8>,
}

fn server_side(verifier: &BigUint, client_public_hex: &str, b_private: &BigUint) -> ServerSide {
    let n = server_n();
    let g = BigUint::from(2_u8);
    let k = BigUint::from_bytes_be(&server_hash(&[
        &server_pad_unsigned(&n),
        &server_pad_unsigned(&g),
    ]));
    let b_public = (&k * verifier + g.modpow(b_private, &n)) % &n;
    let a_public = BigUint::parse_bytes(client_public_hex.as_bytes(), 16).unwrap();
    let u = BigUint::from_bytes_be(&server_hash(&[
        &server_pad_unsigned(&a_public),
        &server_pad_unsigned(&b_public),
    ]));
    let premaster_secret = (a_public * verifier.modpow(&u, &n)).modpow(b_private, &n);
    let prk = server_hmac(
        &server_pad_unsigned(&u),
        &[&server_pad_unsigned(&premaster_secret)],
    );
    let key = server_hmac(&prk, &[b"Caldera Derived Key", &[1]])[..16].to_vec();
    ServerSide {
        b_hex: format!("{b_public:x}"),
        premaster_secret,
        key,
    }
}

fn server_signature(
    key: &[u8],
    realm: &str,
    user_id: &str,
    block: &[u8],
    timestamp: &str,
) -> String {
    STANDARD.encode(server_hmac(
        key,
        &[
            realm.as_bytes(),
            user_id.as_bytes(),
            block,
            timestamp.as_bytes(),
        ],
    ))
}

// ---------------------------------------------------------------------------------------------
// Group constants.

#[test]
fn group_constants_match_the_vectors() {
    let vectors = vectors();
    assert_eq!(N_HEX, vectors.n_hex);
    assert_eq!(G, vectors.g);
    assert_eq!(format!("{:x}", GROUP.n), N_HEX);
    assert_eq!(format!("{:x}", GROUP.k), vectors.k_hex);
    assert_eq!(
        format!("{:x}", GROUP.k),
        "538282c4354742d7cbbde2359fcf67f9f5b3a6b08791e5011b43b8a5b66d9ee6"
    );
    // N's top bit is set, so PAD(N) is 385 bytes.
    assert_eq!(pad_unsigned(&GROUP.n).len(), 385);
}

// ---------------------------------------------------------------------------------------------
// The 15 SRP vectors of srp-vectors.json.

fn check_srp_vector(vector: &SrpVector) {
    let inputs = &vector.inputs;
    let realm = match vector.kind.as_str() {
        "user" => {
            assert_eq!(
                inputs.pool_id.split_once('_').map(|(_, name)| name),
                Some(inputs.pool_name.as_str()),
                "{}",
                vector.name
            );
            inputs.pool_name.as_str()
        }
        "device" => inputs
            .device_group_key
            .as_deref()
            .expect("device vectors carry a device group key"),
        other => panic!("unknown vector kind {other}"),
    };
    let id = SrpIdentity {
        realm,
        user_id: &inputs.user_id,
        password: &inputs.password,
    };
    let server = ServerChallenge {
        salt_hex: &inputs.salt_hex,
        srp_b_hex: &inputs.b_hex,
        secret_block_b64: &inputs.secret_block_b64,
    };
    let eph = SrpEphemeral::from_private_hex(&inputs.a_hex).unwrap();
    let expected = &vector.expected;
    assert_eq!(eph.public_hex(), expected.a, "{}: A", vector.name);

    let session = session_key(&eph, &id, &server).unwrap();
    assert_eq!(format!("{:x}", session.u), expected.u, "{}: u", vector.name);
    assert_eq!(
        format!("{:x}", session.x.0),
        expected.x,
        "{}: x",
        vector.name
    );
    assert_eq!(
        format!("{:x}", session.premaster_secret.0),
        expected.s,
        "{}: S",
        vector.name
    );
    assert_eq!(
        hex(&session.key[..]),
        expected.hkdf_hex,
        "{}: K",
        vector.name
    );

    let claim = password_claim(&eph, &id, &server, &inputs.timestamp).unwrap();
    assert_eq!(
        claim.signature_b64, expected.signature_b64,
        "{}: signature",
        vector.name
    );
    assert_eq!(claim.secret_block_b64, inputs.secret_block_b64);
    assert_eq!(claim.timestamp, inputs.timestamp);
}

#[test]
fn all_srp_vectors_pass() {
    let vectors = vectors();
    assert_eq!(vectors.srp.len(), 15);
    for vector in &vectors.srp {
        check_srp_vector(vector);
    }
}

#[test]
fn all_secret_hash_vectors_pass() {
    let vectors = vectors();
    assert_eq!(vectors.secret_hash.len(), 7);
    for vector in &vectors.secret_hash {
        let secret = ClientSecret::new(vector.client_secret.as_str());
        assert_eq!(
            secret_hash(&secret, &vector.username, &vector.client_id),
            vector.expected,
            "{}",
            vector.name
        );
    }
}

#[test]
fn secret_hash_matches_the_protocol_example() {
    let secret = ClientSecret::new("examplesecret0123456789abcdefghij");
    let hash = secret_hash(&secret, "alice", "1example23456789");
    assert_eq!(hash, "G9KeEvR+U9H97SuWJGN1vnyJUI2C6h+1adTzyPHbwfA=");
    assert_eq!(hash.len(), 44);
}

// ---------------------------------------------------------------------------------------------
// cognito-protocol.md §4.6: U1, D1 and V1.

/// The 128 bytes 00 01 .. 07 repeated 16 times, as hex.
fn u1_private_hex() -> String {
    hex(&[0_u8, 1, 2, 3, 4, 5, 6, 7].repeat(16))
}

#[test]
fn vector_u1() {
    let eph = SrpEphemeral::from_private_hex(&u1_private_hex()).unwrap();
    let public_hex = eph.public_hex();
    assert_eq!(public_hex.len(), 768);
    assert!(
        public_hex.starts_with("27f0e74d7714e7985b87807a"),
        "{public_hex}"
    );
    assert!(
        public_hex.ends_with("035d8ed2449cd962a8714dd7"),
        "{public_hex}"
    );

    let b_private = BigUint::parse_bytes("0123456789abcdef".repeat(8).as_bytes(), 16).unwrap();
    let b_public = format!("{:x}", GROUP.g.modpow(&b_private, &GROUP.n));
    assert_eq!(b_public.len(), 768);
    assert!(
        b_public.starts_with("9e8de31743002eec6b7de108"),
        "{b_public}"
    );

    let secret_block: Vec<u8> = (0..64).collect();
    let secret_block_b64 = STANDARD.encode(&secret_block);
    assert_eq!(
        secret_block_b64,
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
    );
    let id = SrpIdentity {
        realm: "ExAmPlE1",
        user_id: "alice",
        password: "Correct-Horse-1",
    };
    let server = ServerChallenge {
        salt_hex: "9a3c2f7e6d5b4a392817161514131211",
        srp_b_hex: &b_public,
        secret_block_b64: &secret_block_b64,
    };
    let session = session_key(&eph, &id, &server).unwrap();
    assert_eq!(
        format!("{:x}", session.u),
        "7102851b5f8c2c2071b59d9ce40be63f8fc02d8da14a5929f07fa45beb1d0673"
    );
    assert_eq!(
        format!("{:x}", session.x.0),
        "f82231da289d2ba43456f93db6dca5ba31e9c430e3d4487feb2e46fcbb0af217"
    );
    assert_eq!(hex(&session.key[..]), "e4c3419bfc7f718bba942196909a1df1");
    let claim = password_claim(&eph, &id, &server, "Sun Nov 1 05:04:03 UTC 2026").unwrap();
    assert_eq!(
        claim.signature_b64,
        "w+UWvc1DsBifq0lE4bK3BVofJXqj1f11Nvzn7mPQjAg="
    );
}

#[test]
fn vector_d1_both_cases() {
    let eph = SrpEphemeral::from_private_hex(&u1_private_hex()).unwrap();
    let id = SrpIdentity {
        realm: "mock-device-group-key",
        user_id: "mock-device-key",
        password: "password",
    };
    let secret_block = "9ae77ec7154c14dcc487b47707fee4b4920cb96d8a8c045e4c8df879a7b375524aa736acdec6c9ad4ea606774d00621b";
    let timestamp = "Mon Feb 10 18:30:12 UTC 2025";
    for (salt_and_b, expected) in [
        (
            "36ef01c6dde9fe503da333b1acc758ba",
            "eJ7lk0Z2fWLgBRkT0r2375/WcR3XywRXN0hyJo7oxfk=",
        ),
        ("36ef01c", "47qX0OjCipFsp0wJ9CR1tSU86F8/ua1Z6sxtjiGqSL8="),
    ] {
        let server = ServerChallenge {
            salt_hex: salt_and_b,
            srp_b_hex: salt_and_b,
            secret_block_b64: secret_block,
        };
        let claim = password_claim(&eph, &id, &server, timestamp).unwrap();
        assert_eq!(claim.signature_b64, expected, "SRP_B = SALT = {salt_and_b}");
    }
}

#[test]
fn vector_v1_device_verifier() {
    let password = DevicePassword::new(STANDARD.encode((0..40).collect::<Vec<u8>>()));
    assert_eq!(
        password.expose_secret(),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJw=="
    );
    let salt: [u8; 16] = std::array::from_fn(|index| 0x80 + index as u8);
    let verifier = device_verifier(
        "-wt2ha1Zd",
        "us-west-2_a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
        &password,
        salt,
    );
    assert_eq!(verifier.salt_b64, "AICBgoOEhYaHiImKi4yNjo8=");
    assert_eq!(verifier.password_verifier_b64.len(), 516);
    assert!(
        verifier
            .password_verifier_b64
            .starts_with("APAHGXdrwBVJR/7wFQnNZ4sqgfom4yjD")
    );
    let verifier_bytes = STANDARD.decode(&verifier.password_verifier_b64).unwrap();
    assert_eq!(verifier_bytes.len(), 385);
    assert_eq!(
        hex(&Sha256::digest(&verifier_bytes)),
        "cb77027ccd407c25e6230059a17bd6f4f15931dae9d0ae98eaabc5e0bea30072"
    );
}

// ---------------------------------------------------------------------------------------------
// PAD and hex parsing (§4.2, §4.5).

#[test]
fn pad_table() {
    for (input, expected) in [
        ("8f", "008f"),
        ("0f", "0f"),
        ("ff00", "00ff00"),
        ("1", "01"),
        ("0", "00"),
        ("-80", "80"),
        ("-1a2b", "e5d5"),
        ("-ec", "ff14"),
        ("-14", "ec"),
        // Redundant leading zeros are normalised by value.
        ("0000008f", "008f"),
        ("00ff", "00ff"),
        ("-0", "00"),
        ("-81", "ff7f"),
        ("-ff", "ff01"),
        ("-8000", "8000"),
        ("7f", "7f"),
        ("80", "0080"),
    ] {
        let value = parse_signed_hex(input, "SALT").unwrap();
        assert_eq!(hex(&pad(&value)), expected, "PAD({input})");
        assert_eq!(hex(&server_pad(&value)), expected, "test PAD({input})");
    }
}

#[test]
fn pad_unsigned_agrees_with_pad() {
    for input in ["0", "1", "7f", "80", "ff", "100", "8000", N_HEX] {
        let value = BigUint::parse_bytes(input.as_bytes(), 16).unwrap();
        assert_eq!(
            *pad_unsigned(&value),
            pad(&BigInt::from(value.clone())),
            "{input}"
        );
    }
}

#[test]
fn hex_parsing_accepts_odd_length_and_upper_case() {
    assert_eq!(
        parse_hex_magnitude("36ef01c", "SRP_B").unwrap(),
        BigUint::from(0x036e_f01c_u32)
    );
    assert_eq!(
        parse_hex_magnitude("ABCdef", "SRP_B").unwrap(),
        BigUint::from(0xab_cdef_u32)
    );
    assert_eq!(
        parse_signed_hex("-16e462a84f2df159eee0c14642974ee7", "SALT")
            .unwrap()
            .sign(),
        Sign::Minus
    );
}

#[test]
fn malformed_hex_is_refused() {
    for bad in [
        "", "-", "--12", "+12", "0x12", "12_34", " 12", "12 ", "1-2", "xyz", "12\n", "é1",
    ] {
        assert_eq!(
            parse_signed_hex(bad, "SALT"),
            Err(SrpError::MalformedHex { field: "SALT" }),
            "{bad:?}"
        );
    }
    // SRP_B is unsigned.
    assert_eq!(
        parse_hex_magnitude("-12", "SRP_B"),
        Err(SrpError::MalformedHex { field: "SRP_B" })
    );
}

#[test]
fn over_long_hex_is_refused_before_parsing() {
    let long = "1".repeat(MAX_HEX_DIGITS + 1);
    assert_eq!(
        parse_hex_magnitude(&long, "SRP_B"),
        Err(SrpError::HexTooLong {
            field: "SRP_B",
            digits: MAX_HEX_DIGITS + 1
        })
    );
    let negative = format!("-{}", "1".repeat(MAX_HEX_DIGITS));
    assert!(matches!(
        parse_signed_hex(&negative, "SALT"),
        Err(SrpError::HexTooLong { field: "SALT", .. })
    ));
    // Exactly at the limit is accepted (leading zeros are harmless).
    let at_limit = format!("{}1", "0".repeat(MAX_HEX_DIGITS - 1));
    assert_eq!(
        parse_hex_magnitude(&at_limit, "SRP_B").unwrap(),
        BigUint::from(1_u8)
    );
}

// ---------------------------------------------------------------------------------------------
// Checks on the server's values (§4.7).

fn u1_claim(
    salt_hex: &str,
    srp_b_hex: &str,
    secret_block_b64: &str,
) -> Result<PasswordClaim, SrpError> {
    static U1_EPHEMERAL: LazyLock<SrpEphemeral> =
        LazyLock::new(|| SrpEphemeral::from_private_hex(&u1_private_hex()).unwrap());
    let id = SrpIdentity {
        realm: "ExAmPlE1",
        user_id: "alice",
        password: "Correct-Horse-1",
    };
    let server = ServerChallenge {
        salt_hex,
        srp_b_hex,
        secret_block_b64,
    };
    password_claim(&U1_EPHEMERAL, &id, &server, "Sun Nov 1 05:04:03 UTC 2026")
}

#[test]
fn server_public_value_zero_mod_n_is_refused() {
    let two_n = format!("{:x}", &GROUP.n * 2_u8);
    for b in ["0", "000", N_HEX, two_n.as_str()] {
        assert_eq!(
            u1_claim("1234", b, "AAAA"),
            Err(SrpError::ServerPublicValueZero),
            "SRP_B = {b}"
        );
    }
}

#[test]
fn bad_server_values_are_errors() {
    let too_long = "f".repeat(MAX_HEX_DIGITS + 1);
    assert!(matches!(
        u1_claim("1234", &too_long, "AAAA"),
        Err(SrpError::HexTooLong { field: "SRP_B", .. })
    ));
    assert!(matches!(
        u1_claim(&too_long, "1234", "AAAA"),
        Err(SrpError::HexTooLong { field: "SALT", .. })
    ));
    assert_eq!(
        u1_claim("12g4", "1234", "AAAA"),
        Err(SrpError::MalformedHex { field: "SALT" })
    );
    assert_eq!(
        u1_claim("1234", "", "AAAA"),
        Err(SrpError::MalformedHex { field: "SRP_B" })
    );
    assert_eq!(
        u1_claim("1234", "1234", "not base64!"),
        Err(SrpError::MalformedSecretBlock)
    );
}

#[test]
fn zero_private_value_is_refused() {
    assert_eq!(
        SrpEphemeral::from_private_hex("000").unwrap_err(),
        SrpError::PrivateValueZero
    );
    assert_eq!(
        SrpEphemeral::from_private_hex("zz").unwrap_err(),
        SrpError::MalformedHex { field: "a" }
    );
}

#[test]
fn error_messages_are_lowercase_and_carry_no_values() {
    let long = "a".repeat(MAX_HEX_DIGITS + 1);
    let errors = [
        u1_claim("1234", &long, "AAAA").unwrap_err(),
        u1_claim("1234", "0", "AAAA").unwrap_err(),
        u1_claim("123z", "1234", "AAAA").unwrap_err(),
        u1_claim("1234", "1234", "%%%%").unwrap_err(),
    ];
    for error in errors {
        let message = error.to_string();
        assert!(!message.ends_with('.'), "{message}");
        assert!(
            !message.contains("aaaa") && !message.contains("1234"),
            "{message}"
        );
        assert!(!message.contains("%%"), "{message}");
    }
}

// ---------------------------------------------------------------------------------------------
// SECRET_BLOCK decoding.

#[test]
fn secret_block_decoding_is_strict_then_lenient() {
    let bytes: Vec<u8> = (0..=255).collect();
    for encoded in [
        STANDARD.encode(&bytes),
        URL_SAFE.encode(&bytes),
        URL_SAFE_NO_PAD.encode(&bytes),
        STANDARD.encode(&bytes).trim_end_matches('=').to_owned(),
    ] {
        assert_eq!(decode_secret_block(&encoded).unwrap(), bytes, "{encoded}");
    }
    // moto sends a dashed UUID: not standard base64, but URL-safe base64 of 27 bytes.
    assert_eq!(
        decode_secret_block("d55d798f-d5d1-43bd-b011-c931dbb39384")
            .unwrap()
            .len(),
        27
    );
    // Non-zero trailing bits are tolerated by the lenient pass.
    assert_eq!(decode_secret_block("AB").unwrap(), vec![0]);
    assert_eq!(decode_secret_block("").unwrap(), Vec::<u8>::new());
    for bad in ["!!!!", "A", "AAAAA", "AA=A", "é"] {
        assert_eq!(
            decode_secret_block(bad),
            Err(SrpError::MalformedSecretBlock),
            "{bad:?}"
        );
    }
}

#[test]
fn url_safe_secret_block_signs_the_same_bytes() {
    let vectors = vectors();
    let vector = &vectors.srp[0];
    let inputs = &vector.inputs;
    let bytes = STANDARD.decode(&inputs.secret_block_b64).unwrap();
    let url_safe = URL_SAFE_NO_PAD.encode(&bytes);
    assert_ne!(url_safe, inputs.secret_block_b64);
    let eph = SrpEphemeral::from_private_hex(&inputs.a_hex).unwrap();
    let id = SrpIdentity {
        realm: &inputs.pool_name,
        user_id: &inputs.user_id,
        password: &inputs.password,
    };
    let server = ServerChallenge {
        salt_hex: &inputs.salt_hex,
        srp_b_hex: &inputs.b_hex,
        secret_block_b64: &url_safe,
    };
    let claim = password_claim(&eph, &id, &server, &inputs.timestamp).unwrap();
    assert_eq!(claim.signature_b64, vector.expected.signature_b64);
    // The block goes back exactly as the server sent it.
    assert_eq!(claim.secret_block_b64, url_safe);
}

// ---------------------------------------------------------------------------------------------
// TIMESTAMP (§4.4).

#[test]
fn timestamps() {
    for (seconds, expected) in [
        (1_793_509_443, "Sun Nov 1 05:04:03 UTC 2026"),
        (1_795_294_337, "Sat Nov 21 20:52:17 UTC 2026"),
        (1_767_668_645, "Tue Jan 6 03:04:05 UTC 2026"),
        (1_798_329_549, "Sat Dec 26 23:59:09 UTC 2026"),
        (1_739_212_212, "Mon Feb 10 18:30:12 UTC 2025"),
        (0, "Thu Jan 1 00:00:00 UTC 1970"),
        (-1, "Wed Dec 31 23:59:59 UTC 1969"),
        // Leap days and the days after them.
        (951_825_600, "Tue Feb 29 12:00:00 UTC 2000"),
        (951_868_800, "Wed Mar 1 00:00:00 UTC 2000"),
        (1_709_194_150, "Thu Feb 29 08:09:10 UTC 2024"),
        // 1900 and 2100 are not leap years.
        (-2_208_988_800, "Mon Jan 1 00:00:00 UTC 1900"),
        (4_107_542_399, "Sun Feb 28 23:59:59 UTC 2100"),
        (4_107_542_400, "Mon Mar 1 00:00:00 UTC 2100"),
        // Year boundary.
        (1_767_225_599, "Wed Dec 31 23:59:59 UTC 2025"),
        (1_767_225_600, "Thu Jan 1 00:00:00 UTC 2026"),
        (2_147_483_648, "Tue Jan 19 03:14:08 UTC 2038"),
        (253_402_300_799, "Fri Dec 31 23:59:59 UTC 9999"),
        (-11_670_912_000, "Wed Mar 1 00:00:00 UTC 1600"),
    ] {
        assert_eq!(cognito_timestamp(unix(seconds)), expected, "{seconds}");
    }
}

#[test]
fn timestamps_round_down_fractions() {
    assert_eq!(
        cognito_timestamp(UNIX_EPOCH + Duration::from_millis(1_793_509_443_999)),
        "Sun Nov 1 05:04:03 UTC 2026"
    );
    assert_eq!(
        cognito_timestamp(UNIX_EPOCH - Duration::from_millis(500)),
        "Wed Dec 31 23:59:59 UTC 1969"
    );
}

/// A slow, obviously correct calendar: walk the years, then the months.
fn reference_timestamp(seconds: i64) -> String {
    let is_leap = |year: i64| (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let mut days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mut year = 1970;
    while days < 0 {
        year -= 1;
        days += if is_leap(year) { 366 } else { 365 };
    }
    while days >= if is_leap(year) { 366 } else { 365 } {
        days -= if is_leap(year) { 366 } else { 365 };
        year += 1;
    }
    let lengths = [
        31,
        if is_leap(year) { 29 } else { 28 },
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
    while days >= lengths[month] {
        days -= lengths[month];
        month += 1;
    }
    format!(
        "{weekday} {} {} {:02}:{:02}:{:02} UTC {year}",
        MONTHS[month],
        days + 1,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Randomness, Debug and secrets.

#[test]
fn generate_uses_the_injected_entropy() {
    let bytes: Vec<u8> = (0..128).map(|index| (index * 7 + 3) as u8).collect();
    let generated = SrpEphemeral::generate(&FixedEntropy(bytes.clone()));
    let rebuilt = SrpEphemeral::from_private_hex(&hex(&bytes)).unwrap();
    assert_eq!(generated.public_hex(), rebuilt.public_hex());
    assert_eq!(*generated.private, bytes);
}

#[test]
fn device_password_is_base64_of_40_entropy_bytes() {
    let bytes: Vec<u8> = (100..140).collect();
    let password = generate_device_password(&FixedEntropy(bytes.clone()));
    assert_eq!(password.expose_secret().len(), 56);
    assert_eq!(STANDARD.decode(password.expose_secret()).unwrap(), bytes);
}

#[test]
fn debug_output_shows_no_secret() {
    let private_hex = u1_private_hex();
    let eph = SrpEphemeral::from_private_hex(&private_hex).unwrap();
    let printed = format!("{eph:?} {eph:#?}");
    assert!(!printed.contains(&private_hex[2..40]), "{printed}");
    assert!(!printed.contains("0001020304"), "{printed}");
    let a_decimal = BigUint::parse_bytes(private_hex.as_bytes(), 16)
        .unwrap()
        .to_string();
    assert!(!printed.contains(&a_decimal[..20]), "{printed}");
    assert!(printed.contains("REDACTED"), "{printed}");

    let id = SrpIdentity {
        realm: "ExAmPlE1",
        user_id: "alice",
        password: "hunter2-secret",
    };
    assert!(!format!("{id:?}").contains("hunter2"));

    let claim = u1_claim("1234", "1234", "AAAA").unwrap();
    let printed = format!("{claim:?}");
    assert!(!printed.contains(&claim.signature_b64), "{printed}");

    let verifier = device_verifier("group", "key", &DevicePassword::new("pw"), [7; 16]);
    assert!(!format!("{verifier:?}").contains(&verifier.password_verifier_b64[..16]));

    let secret = SecretUint(BigUint::from(0xdead_beef_u32));
    assert!(!format!("{secret:?}").to_lowercase().contains("deadbeef"));
}

#[test]
fn secret_uint_wipes_values_of_any_size() {
    for value in [
        BigUint::zero(),
        BigUint::from(1_u8),
        GROUP.n.clone(),
        &GROUP.n * &GROUP.n,
    ] {
        let mut secret = SecretUint(value);
        // What `drop` does, observed before the memory is freed.
        let limbs = usize::try_from(secret.0.bits().div_ceil(64)).unwrap();
        secret.0.assign_from_slice(&vec![u32::MAX; limbs * 2]);
        assert!(secret.0.iter_u64_digits().all(|limb| limb == u64::MAX));
        drop(secret);
    }
}

#[test]
fn ephemeral_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<SrpEphemeral>();
    assert_send_sync::<PasswordClaim>();
    assert_send_sync::<DeviceVerifier>();
    assert_send_sync::<SrpError>();
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn salt_strategy() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(any::<u8>(), 1..24)).prop_map(|(negative, bytes)| {
        let magnitude = BigUint::from_bytes_be(&bytes);
        let sign = if negative { "-" } else { "" };
        format!("{sign}{magnitude:x}")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A client and an independent server agree on S, K and the signature.
    #[test]
    fn client_and_server_agree(
        realm in "[A-Za-z0-9-]{1,12}",
        user_id in "\\PC{1,24}",
        password in "\\PC{0,32}",
        salt_hex in salt_strategy(),
        a_bytes in prop::collection::vec(any::<u8>(), 128),
        b_bytes in prop::collection::vec(any::<u8>(), 32),
        secret_block in prop::collection::vec(any::<u8>(), 0..96),
        seconds in 0_i64..4_000_000_000,
    ) {
        let eph = SrpEphemeral::generate(&FixedEntropy(a_bytes));
        let salt = BigInt::parse_bytes(salt_hex.as_bytes(), 16).unwrap();
        let x = server_x(&server_pad(&salt), &realm, &user_id, &password);
        let verifier = GROUP.g.modpow(&x, &GROUP.n);
        let server = server_side(&verifier, &eph.public_hex(), &BigUint::from_bytes_be(&b_bytes));

        let secret_block_b64 = STANDARD.encode(&secret_block);
        let timestamp = cognito_timestamp(unix(seconds));
        let id = SrpIdentity { realm: &realm, user_id: &user_id, password: &password };
        let challenge = ServerChallenge {
            salt_hex: &salt_hex,
            srp_b_hex: &server.b_hex,
            secret_block_b64: &secret_block_b64,
        };
        let session = session_key(&eph, &id, &challenge).unwrap();
        prop_assert_eq!(&session.x.0, &x);
        prop_assert_eq!(&session.premaster_secret.0, &server.premaster_secret);
        prop_assert_eq!(&session.key[..], &server.key[..]);
        let claim = password_claim(&eph, &id, &challenge, &timestamp).unwrap();
        prop_assert_eq!(
            claim.signature_b64,
            server_signature(&server.key, &realm, &user_id, &secret_block, &timestamp)
        );
    }

    /// A verifier made at ConfirmDevice time lets the same device sign in later, whatever the
    /// salt bytes (leading zeros and top bits included).
    #[test]
    fn device_verifier_supports_device_sign_in(
        salt in prop_oneof![
            any::<[u8; 16]>(),
            any::<[u8; 16]>().prop_map(|mut salt| { salt[0] = 0; salt[1] &= 0x7f; salt }),
            any::<[u8; 16]>().prop_map(|mut salt| { salt[0] |= 0x80; salt }),
        ],
        password_bytes in any::<[u8; 40]>(),
        a_bytes in prop::collection::vec(any::<u8>(), 128),
        b_bytes in prop::collection::vec(any::<u8>(), 32),
    ) {
        let group_key = "-wt2ha1Zd";
        let device_key = "us-west-2_a1b2c3d4-5678-90ab-cdef-EXAMPLE11111";
        let password = generate_device_password(&FixedEntropy(password_bytes.to_vec()));
        let stored = device_verifier(group_key, device_key, &password, salt);

        // The server keeps the verifier and the salt bytes, and at sign-in sends the salt as hex.
        let salt_bytes = STANDARD.decode(&stored.salt_b64).unwrap();
        prop_assert!(salt_bytes.len() <= 17);
        prop_assert_eq!(&salt_bytes, &server_pad_unsigned(&BigUint::from_bytes_be(&salt)));
        let verifier_bytes = STANDARD.decode(&stored.password_verifier_b64).unwrap();
        let verifier = BigUint::from_bytes_be(&verifier_bytes);
        prop_assert_eq!(&verifier_bytes, &server_pad_unsigned(&verifier));
        let salt_hex = format!("{:x}", BigInt::from_signed_bytes_be(&salt_bytes));

        let eph = SrpEphemeral::generate(&FixedEntropy(a_bytes));
        let server = server_side(&verifier, &eph.public_hex(), &BigUint::from_bytes_be(&b_bytes));
        let timestamp = "Tue Jan 6 03:04:05 UTC 2026";
        let id = SrpIdentity { realm: group_key, user_id: device_key, password: password.expose_secret() };
        let challenge = ServerChallenge { salt_hex: &salt_hex, srp_b_hex: &server.b_hex, secret_block_b64: "AAEC" };
        let claim = password_claim(&eph, &id, &challenge, timestamp).unwrap();
        prop_assert_eq!(
            claim.signature_b64,
            server_signature(&server.key, group_key, device_key, &[0, 1, 2], timestamp)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// PAD is minimal two's complement and round-trips through Java's reading of it.
    #[test]
    fn pad_round_trips_signed_values(negative in any::<bool>(), bytes in prop::collection::vec(any::<u8>(), 0..48)) {
        let sign = if negative { Sign::Minus } else { Sign::Plus };
        let value = BigInt::from_bytes_be(sign, &bytes);
        let padded = pad(&value);
        prop_assert_eq!(BigInt::from_signed_bytes_be(&padded), value.clone());
        prop_assert_eq!(&padded, &server_pad(&value));
        if padded.len() > 1 {
            // No redundant sign byte.
            prop_assert!(!(padded[0] == 0x00 && padded[1] < 0x80));
            prop_assert!(!(padded[0] == 0xff && padded[1] >= 0x80));
        }
        // Java's `toString(16)` form parses back to the same value, and so to the same PAD.
        let text = format!("{value:x}");
        prop_assert_eq!(parse_signed_hex(&text, "SALT").unwrap(), value);
    }

    /// Lenient decoding reads every URL-safe, unpadded encoding.
    #[test]
    fn secret_block_reads_any_base64_flavour(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(decode_secret_block(&STANDARD.encode(&bytes)).unwrap(), bytes.clone());
        prop_assert_eq!(decode_secret_block(&URL_SAFE.encode(&bytes)).unwrap(), bytes.clone());
        prop_assert_eq!(decode_secret_block(&URL_SAFE_NO_PAD.encode(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn timestamp_matches_a_slow_calendar(seconds in -20_000_000_000_i64..300_000_000_000) {
        prop_assert_eq!(cognito_timestamp(unix(seconds)), reference_timestamp(seconds));
    }

    /// Strings the server controls never cause a panic, only values or errors.
    #[test]
    fn arbitrary_server_strings_never_panic(
        salt in "\\PC{0,40}|-?[0-9a-fA-F]{0,40}",
        srp_b in "\\PC{0,40}|[0-9a-f]{0,40}|[0f]{1099,1101}",
        block in "\\PC{0,64}|[A-Za-z0-9+/=_-]{0,64}",
    ) {
        let _ = decode_secret_block(&block);
        let _ = u1_claim(&salt, &srp_b, &block);
        if srp_b.len() <= 64 {
            let _ = SrpEphemeral::from_private_hex(&srp_b);
        }
    }
}
