//! Server SRP checked against vector U1 (cognito-protocol.md §4.6) and a tiny test-only client.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use num_bigint::{BigInt, BigUint};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::*;

fn hex(s: &str) -> BigUint {
    BigUint::parse_bytes(s.as_bytes(), 16).expect("test hex")
}

fn sha(parts: &[&[u8]]) -> BigUint {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    BigUint::from_bytes_be(&h.finalize())
}

/// A deliberately naive client, written from the formulas in cognito-protocol.md §4.3.
struct TestClient {
    a: BigUint,
    big_a: BigUint,
}

impl TestClient {
    fn new(a: BigUint) -> Self {
        let g = group();
        let big_a = g.g.modpow(&a, &g.n);
        TestClient { a, big_a }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the protocol's inputs one to one"
    )]
    fn signature(
        &self,
        realm: &str,
        user_id: &str,
        password: &str,
        salt_hex: &str,
        b_hex: &str,
        block: &[u8],
        timestamp: &str,
    ) -> Vec<u8> {
        let g = group();
        let big_b = hex(b_hex);
        let salt = BigInt::parse_bytes(salt_hex.as_bytes(), 16)
            .expect("salt hex")
            .to_signed_bytes_be();
        let u = sha(&[&pad(&self.big_a), &pad(&big_b)]);
        let inner = Sha256::digest(format!("{realm}{user_id}:{password}").as_bytes());
        let x = sha(&[&salt, &inner]);
        let kgx = (&g.k * g.g.modpow(&x, &g.n)) % &g.n;
        let base = (BigInt::from(big_b) - BigInt::from(kgx))
            .modpow(&BigInt::from(&self.a + &u * &x), &BigInt::from(g.n.clone()));
        let s = base
            .to_biguint()
            .expect("modpow with a positive modulus is non-negative");
        let hk = Hkdf::<Sha256>::new(Some(&pad(&u)), &pad(&s));
        let mut key = [0u8; 16];
        hk.expand(b"Caldera Derived Key", &mut key)
            .expect("16 bytes");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(realm.as_bytes());
        mac.update(user_id.as_bytes());
        mac.update(block);
        mac.update(timestamp.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[test]
fn multiplier_k_hashes_padded_n() {
    assert_eq!(
        group().k.to_str_radix(16),
        "538282c4354742d7cbbde2359fcf67f9f5b3a6b08791e5011b43b8a5b66d9ee6"
    );
}

#[test]
fn pad_follows_java_to_byte_array() {
    for (input, expected) in [
        ("8f", "008f"),
        ("0f", "0f"),
        ("ff00", "00ff00"),
        ("1", "01"),
        ("0", "00"),
    ] {
        let got: String = pad(&hex(input))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, expected, "PAD({input})");
    }
}

/// Pins the test-only client to the published vector U1 (whose B is plain g^b, so only the client
/// side can be checked against it); the server is then checked against this client below.
#[test]
fn test_client_reproduces_published_vector_u1() {
    let g = group();
    let b = hex(&"0123456789abcdef".repeat(8));
    let big_b = g.g.modpow(&b, &g.n);
    assert!(
        big_b
            .to_str_radix(16)
            .starts_with("9e8de31743002eec6b7de108")
    );
    let a = BigUint::from_bytes_be(&[0u8, 1, 2, 3, 4, 5, 6, 7].repeat(16));
    let client = TestClient::new(a);
    assert!(
        client
            .big_a
            .to_str_radix(16)
            .starts_with("27f0e74d7714e7985b87807a")
    );
    let block: Vec<u8> = (0u8..64).collect();
    let signature = client.signature(
        "ExAmPlE1",
        "alice",
        "Correct-Horse-1",
        "9a3c2f7e6d5b4a392817161514131211",
        &big_b.to_str_radix(16),
        &block,
        "Sun Nov 1 05:04:03 UTC 2026",
    );
    assert_eq!(
        STANDARD.encode(signature),
        "w+UWvc1DsBifq0lE4bK3BVofJXqj1f11Nvzn7mPQjAg="
    );
}

#[test]
fn server_key_matches_client_key_with_a_fixed_b() {
    let salt = pad(&hex("9a3c2f7e6d5b4a392817161514131211"));
    assert_eq!(salt.len(), 17, "top bit set: PAD adds a zero byte");
    let verifier = Verifier::from_password(salt, "ExAmPlE1", "alice", "Correct-Horse-1");
    assert_eq!(verifier.salt_hex(), "9a3c2f7e6d5b4a392817161514131211");
    let handshake = Handshake::with_secret(&verifier, hex(&"0123456789abcdef".repeat(8)));
    let client = TestClient::new(BigUint::from_bytes_be(
        &[0u8, 1, 2, 3, 4, 5, 6, 7].repeat(16),
    ));
    let key = handshake.session_key(&client.big_a).expect("valid A");
    let block: Vec<u8> = (0u8..64).collect();
    let ts = "Sun Nov 1 05:04:03 UTC 2026";
    let good = client.signature(
        "ExAmPlE1",
        "alice",
        "Correct-Horse-1",
        &verifier.salt_hex(),
        &handshake.b_hex(),
        &block,
        ts,
    );
    assert!(verify_claim(&key, "ExAmPlE1", "alice", &block, ts, &good));
    assert!(!verify_claim(
        &key,
        "ExAmPlE1",
        "alice",
        &block,
        "Sun Nov 01 05:04:03 UTC 2026",
        &good
    ));
    assert!(!verify_claim(
        &key,
        "us-east-1_ExAmPlE1",
        "alice",
        &block,
        ts,
        &good
    ));
}

#[test]
fn server_and_test_client_agree_for_both_salt_shapes() {
    let mut rng = rand::thread_rng();
    // A salt is a random 128-bit integer, PAD-encoded: the high-bit shape gains a 0x00 byte, the
    // other is at most 16 bytes, fewer when its top bytes are zero (1 in 128 draws, so the stepped
    // rng below makes that case every time rather than by luck).
    let mut leading_zero = rand::rngs::mock::StepRng::new(0x0102_0304_0506_0700, 0);
    let short = user_salt(&mut leading_zero, false);
    assert_eq!(short.len(), 15, "{short:02x?}");
    let salts = [true, false, true, false]
        .into_iter()
        .map(|high_bit| (high_bit, user_salt(&mut rng, high_bit)))
        .chain([(false, short)])
        .collect::<Vec<_>>();
    for (high_bit, salt) in salts {
        if high_bit {
            assert_eq!((salt.len(), salt[0]), (17, 0), "{salt:02x?}");
            assert!(salt[1] >= 0x80, "{salt:02x?}");
        } else {
            assert!(salt.len() <= 16 && salt[0] < 0x80, "{salt:02x?}");
        }
        let verifier = Verifier::from_password(salt, "Pool1", "bob", "Pässword-1");
        assert!(verifier.matches("Pool1", "bob", "Pässword-1"));
        assert!(!verifier.matches("Pool1", "bob", "Password-1"));
        let handshake = Handshake::start(&verifier, &mut rng);
        let mut a = [0u8; 128];
        rng.fill_bytes(&mut a);
        let client = TestClient::new(BigUint::from_bytes_be(&a));
        let block = b"opaque secret block";
        let ts = "Sat Nov 21 20:52:17 UTC 2026";
        let key = handshake.session_key(&client.big_a).expect("valid A");
        let good = client.signature(
            "Pool1",
            "bob",
            "Pässword-1",
            &verifier.salt_hex(),
            &handshake.b_hex(),
            block,
            ts,
        );
        assert!(verify_claim(&key, "Pool1", "bob", block, ts, &good));
        let bad = client.signature(
            "Pool1",
            "bob",
            "wrong",
            &verifier.salt_hex(),
            &handshake.b_hex(),
            block,
            ts,
        );
        assert!(!verify_claim(&key, "Pool1", "bob", block, ts, &bad));
    }
}

#[test]
fn device_salt_round_trips_through_signed_hex() {
    // A client-chosen salt with the top bit set and no PAD byte reads as negative, and must still
    // come back to the same bytes through the client's PAD(parse(SALT)).
    for bytes in [vec![0x80u8; 16], vec![0x00, 0x80, 0x81], vec![0x12, 0x34]] {
        let verifier = Verifier::from_parts(bytes.clone(), BigUint::from(5u32));
        let back = BigInt::parse_bytes(verifier.salt_hex().as_bytes(), 16)
            .expect("hex")
            .to_signed_bytes_be();
        assert_eq!(back, bytes);
    }
}

#[test]
fn rejects_a_that_is_zero_mod_n() {
    let mut rng = rand::thread_rng();
    let verifier = Verifier::from_password(user_salt(&mut rng, true), "P", "u", "p");
    let handshake = Handshake::start(&verifier, &mut rng);
    assert_eq!(
        handshake.session_key(&BigUint::from(0u32)),
        Err(HandshakeError::ZeroA)
    );
    assert_eq!(
        handshake.session_key(&group().n.clone()),
        Err(HandshakeError::ZeroA)
    );
    assert_eq!(parse_hex(""), None);
    assert_eq!(parse_hex("xyz"), None);
    assert_eq!(parse_hex(&"f".repeat(2000)), None);
    assert!(fake_salt_hex(&mut rng).len() >= 2);
}
