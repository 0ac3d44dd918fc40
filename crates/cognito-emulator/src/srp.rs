//! Server-side SRP-6a as Cognito runs it (cognito-protocol.md §4), written from the verifier's side.
//!
//! Nothing here is shared with `cognito-auth`: only the group constants (N, g) coincide, so a bug in
//! the client cannot verify itself against this code.

use std::fmt;
use std::sync::OnceLock;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use num_bigint::{BigInt, BigUint};
use num_traits::Zero;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The 3072-bit MODP group of RFC 5054 / RFC 3526.
const N_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D",
    "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D",
    "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9",
    "DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64",
    "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B",
    "F12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31",
    "43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);

/// The longest SRP_A (in hex digits) accepted; N itself has 768.
const MAX_HEX_DIGITS: usize = 1024;

/// The group parameters and the multiplier `k = H(PAD(N) ‖ PAD(g))`.
pub(crate) struct Group {
    pub(crate) n: BigUint,
    pub(crate) g: BigUint,
    pub(crate) k: BigUint,
}

/// The process-wide group, computed once.
pub(crate) fn group() -> &'static Group {
    static GROUP: OnceLock<Group> = OnceLock::new();
    GROUP.get_or_init(|| {
        let n = BigUint::parse_bytes(N_HEX.as_bytes(), 16).expect("N_HEX is a valid hex constant");
        let g = BigUint::from(2u32);
        let k = BigUint::from_bytes_be(&sha256(&[&pad(&n), &pad(&g)]));
        Group { n, g, k }
    })
}

/// Java `BigInteger.toByteArray()` of a non-negative value: minimal big-endian bytes, with a 0x00 in
/// front when the top bit would otherwise read as a sign.
pub(crate) fn pad(x: &BigUint) -> Vec<u8> {
    let mut bytes = x.to_bytes_be();
    if bytes[0] >= 0x80 {
        bytes.insert(0, 0);
    }
    bytes
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// `x = H(salt ‖ H(realm ‖ user_id ‖ ":" ‖ password))`, read unsigned.
fn private_key(salt: &[u8], realm: &str, user_id: &str, password: &str) -> BigUint {
    let inner = sha256(&[
        realm.as_bytes(),
        user_id.as_bytes(),
        b":",
        password.as_bytes(),
    ]);
    BigUint::from_bytes_be(&sha256(&[salt, &inner]))
}

/// A stored verifier `v = g^x mod N` with the exact salt bytes that went into `x`.
#[derive(Clone)]
pub(crate) struct Verifier {
    salt: Vec<u8>,
    v: BigUint,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verifier([REDACTED])")
    }
}

impl Verifier {
    /// Computes the verifier the service stores when a password is set. `salt` is hashed as given.
    pub(crate) fn from_password(salt: Vec<u8>, realm: &str, user_id: &str, password: &str) -> Self {
        let group = group();
        let x = private_key(&salt, realm, user_id, password);
        let v = group.g.modpow(&x, &group.n);
        Verifier { salt, v }
    }

    /// A verifier received from a client (ConfirmDevice).
    pub(crate) fn from_parts(salt: Vec<u8>, v: BigUint) -> Self {
        Verifier { salt, v }
    }

    /// The SALT challenge parameter: the salt bytes read as a signed two's-complement integer
    /// (Java `new BigInteger(bytes)`), in lowercase hex without padding, so that a client's
    /// `PAD(parse(SALT))` gives back exactly the hashed bytes.
    pub(crate) fn salt_hex(&self) -> String {
        BigInt::from_signed_bytes_be(&self.salt).to_str_radix(16)
    }

    /// Whether `password` produces this verifier (plain-password flows).
    pub(crate) fn matches(&self, realm: &str, user_id: &str, password: &str) -> bool {
        Verifier::from_password(self.salt.clone(), realm, user_id, password).v == self.v
    }
}

/// A fresh user salt: 16 random bytes read as an unsigned integer, PAD-encoded. `high_bit` forces
/// the top bit on (PAD then adds a 0x00) or off (the hex may then have odd length).
pub(crate) fn user_salt(rng: &mut impl RngCore, high_bit: bool) -> Vec<u8> {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    if high_bit {
        bytes[0] |= 0x80;
    } else {
        bytes[0] &= 0x7f;
    }
    pad(&BigUint::from_bytes_be(&bytes))
}

/// The SALT of a fake challenge for an unknown user: 16 random bytes read as a *signed* integer,
/// so that about half of them start with `-`, as the service's do.
pub(crate) fn fake_salt_hex(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    BigInt::from_signed_bytes_be(&bytes).to_str_radix(16)
}

/// Parses client-sent hex (SRP_A). `None` for empty, non-hex or absurdly long input.
pub(crate) fn parse_hex(hex: &str) -> Option<BigUint> {
    if hex.is_empty() || hex.len() > MAX_HEX_DIGITS || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    BigUint::parse_bytes(hex.as_bytes(), 16)
}

/// Why a handshake cannot produce a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeError {
    /// `A mod N == 0`: the client's public value would force `S = 0`.
    ZeroA,
    /// `u == 0`.
    ZeroU,
}

/// The server's half of one SRP exchange: the secret `b`, the public `B` and the verifier.
#[derive(Clone)]
pub(crate) struct Handshake {
    b: BigUint,
    big_b: BigUint,
    v: BigUint,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handshake([REDACTED])")
    }
}

impl Handshake {
    /// `B = (k·v + g^b) mod N` for a fresh random `b`.
    pub(crate) fn start(verifier: &Verifier, rng: &mut impl RngCore) -> Self {
        let group = group();
        loop {
            let mut bytes = [0u8; 128];
            rng.fill_bytes(&mut bytes);
            let b = BigUint::from_bytes_be(&bytes) % &group.n;
            if b.is_zero() {
                continue;
            }
            let big_b = (&group.k * &verifier.v + group.g.modpow(&b, &group.n)) % &group.n;
            if !big_b.is_zero() {
                return Handshake {
                    b,
                    big_b,
                    v: verifier.v.clone(),
                };
            }
        }
    }

    /// A handshake with a chosen `b`, for known-answer tests.
    #[cfg(test)]
    pub(crate) fn with_secret(verifier: &Verifier, b: BigUint) -> Self {
        let group = group();
        let big_b = (&group.k * &verifier.v + group.g.modpow(&b, &group.n)) % &group.n;
        Handshake {
            b,
            big_b,
            v: verifier.v.clone(),
        }
    }

    /// A handshake with a random `B` and no verifier, for the fake challenge of an unknown user.
    pub(crate) fn fake(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0u8; 384];
        rng.fill_bytes(&mut bytes);
        let big_b = BigUint::from_bytes_be(&bytes) % &group().n;
        Handshake {
            b: BigUint::from(1u32),
            big_b,
            v: BigUint::from(1u32),
        }
    }

    /// SRP_B as the service sends it: lowercase hex, no padding.
    pub(crate) fn b_hex(&self) -> String {
        self.big_b.to_str_radix(16)
    }

    /// The 16-byte session key: `S = (A·v^u)^b mod N`, then HKDF-SHA256 with salt PAD(u), IKM PAD(S)
    /// and info "Caldera Derived Key".
    pub(crate) fn session_key(&self, a: &BigUint) -> Result<[u8; 16], HandshakeError> {
        let group = group();
        if (a % &group.n).is_zero() {
            return Err(HandshakeError::ZeroA);
        }
        let u = BigUint::from_bytes_be(&sha256(&[&pad(a), &pad(&self.big_b)]));
        if u.is_zero() {
            return Err(HandshakeError::ZeroU);
        }
        let base = (a * self.v.modpow(&u, &group.n)) % &group.n;
        let s = base.modpow(&self.b, &group.n);
        let hkdf = Hkdf::<Sha256>::new(Some(&pad(&u)), &pad(&s));
        let mut key = [0u8; 16];
        hkdf.expand(b"Caldera Derived Key", &mut key)
            .expect("16 bytes is a valid HKDF-SHA256 output length");
        Ok(key)
    }
}

/// Checks `signature == HMAC-SHA256(key, realm ‖ user_id ‖ secret_block ‖ timestamp)` in constant time.
pub(crate) fn verify_claim(
    key: &[u8; 16],
    realm: &str,
    user_id: &str,
    secret_block: &[u8],
    timestamp: &str,
    signature: &[u8],
) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(realm.as_bytes());
    mac.update(user_id.as_bytes());
    mac.update(secret_block);
    mac.update(timestamp.as_bytes());
    mac.verify_slice(signature).is_ok()
}

#[cfg(test)]
mod tests;
