//! Random identifiers and opaque strings in the shapes the service uses.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::{Rng, RngCore};

/// A random UUID v4, lowercase and dashed.
pub(crate) fn uuid(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An opaque challenge session (the service's are a few hundred characters).
pub(crate) fn session(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 192];
    rng.fill_bytes(&mut b);
    format!("AYABe{}", URL_SAFE_NO_PAD.encode(b))
}

/// SECRET_BLOCK: random bytes, standard base64.
pub(crate) fn secret_block(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 96];
    rng.fill_bytes(&mut b);
    STANDARD.encode(b)
}

/// A refresh token shaped like the service's JWE (five base64url parts); opaque to clients.
pub(crate) fn refresh_token(rng: &mut impl RngCore) -> String {
    const HEADER: &str = "eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIiwiYWxnIjoiUlNBLU9BRVAifQ";
    let mut part = |len: usize| {
        let mut b = vec![0u8; len];
        rng.fill_bytes(&mut b);
        URL_SAFE_NO_PAD.encode(b)
    };
    format!(
        "{HEADER}.{}.{}.{}.{}",
        part(256),
        part(12),
        part(320),
        part(16)
    )
}

/// A device key: `<region>_<uuid>`.
pub(crate) fn device_key(region: &str, rng: &mut impl RngCore) -> String {
    format!("{region}_{}", uuid(rng))
}

/// A device group key: short, and (like the documented examples) starting with `-`.
pub(crate) fn device_group_key(rng: &mut impl RngCore) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..8)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("-{tail}")
}

/// A six-digit one-time code, as sent by SMS or email.
pub(crate) fn code(rng: &mut impl RngCore) -> String {
    format!("{:06}", rng.gen_range(0..1_000_000u32))
}

/// A temporary access key id: `ASIA` and 16 characters of `[A-Z2-7]`.
pub(crate) fn access_key_id(rng: &mut impl RngCore) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("ASIA{tail}")
}

/// A secret access key: 40 characters of base64.
pub(crate) fn secret_access_key(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 30];
    rng.fill_bytes(&mut b);
    STANDARD.encode(b)
}

/// A session token: opaque, a few hundred characters of base64.
pub(crate) fn session_token(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 300];
    rng.fill_bytes(&mut b);
    format!("IQoJb3JpZ2luX2Vj{}", STANDARD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let mut rng = rand::thread_rng();
        let id = uuid(&mut rng);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let s = session(&mut rng);
        assert!((20..=2048).contains(&s.len()));
        assert_eq!(refresh_token(&mut rng).split('.').count(), 5);
        assert!(device_key("us-east-1", &mut rng).starts_with("us-east-1_"));
        assert_eq!(code(&mut rng).len(), 6);
        assert!(device_group_key(&mut rng).starts_with('-'));
        let akid = access_key_id(&mut rng);
        assert!(akid.starts_with("ASIA") && akid.len() == 20);
        assert_eq!(secret_access_key(&mut rng).len(), 40);
    }
}
