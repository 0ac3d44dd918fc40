//! RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30-second steps, T0 = 0) over a base32 secret.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The time step in seconds.
const STEP: u64 = 30;

/// The RFC 6238 code for `secret_base32` at `unix_time`: six digits, HMAC-SHA1, 30-second steps.
///
/// The secret is decoded case-insensitively, ignoring spaces and `=` padding. Returns `None` when
/// it is not base32 or is empty.
pub fn totp(secret_base32: &str, unix_time: u64) -> Option<String> {
    let key = decode_secret(secret_base32)?;
    Some(format!("{:06}", hotp(&key, unix_time / STEP, 6)))
}

/// Whether `code` matches the secret at `unix_time` or one step either side.
pub(crate) fn verify(secret_base32: &str, code: &str, unix_time: u64) -> bool {
    let Some(key) = decode_secret(secret_base32) else {
        return false;
    };
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let step = unix_time / STEP;
    [step.saturating_sub(1), step, step + 1]
        .iter()
        .any(|&counter| format!("{:06}", hotp(&key, counter, 6)) == code)
}

/// Decodes an RFC 4648 base32 secret; `None` if malformed or empty.
pub(crate) fn decode_secret(secret_base32: &str) -> Option<Vec<u8>> {
    let cleaned: String = secret_base32
        .chars()
        .filter(|c| *c != ' ' && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let key = data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .ok()?;
    (!key.is_empty()).then_some(key)
}

/// Encodes a fresh secret as AssociateSoftwareToken does (base32, no padding).
pub(crate) fn encode_secret(key: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(key)
}

/// RFC 4226 HOTP with dynamic truncation.
fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ASCII key "12345678901234567890" of RFC 6238 Appendix B, in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc_6238_sha1_vectors() {
        let key = decode_secret(RFC_SECRET).expect("valid base32");
        assert_eq!(key, b"12345678901234567890");
        for (time, eight_digits) in [
            (59u64, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(&key, time / STEP, 8), eight_digits, "T = {time}");
            assert_eq!(
                totp(RFC_SECRET, time),
                Some(format!("{:06}", eight_digits % 1_000_000))
            );
        }
    }

    #[test]
    fn accepts_one_step_of_drift_and_no_more() {
        let code = totp(RFC_SECRET, 1_000_000_000).expect("valid secret");
        assert!(verify(RFC_SECRET, &code, 1_000_000_000));
        assert!(verify(RFC_SECRET, &code, 1_000_000_000 + 30));
        assert!(verify(RFC_SECRET, &code, 1_000_000_000 - 30));
        assert!(!verify(RFC_SECRET, &code, 1_000_000_000 + 90));
        assert!(!verify(RFC_SECRET, "12345", 1_000_000_000));
    }

    #[test]
    fn secrets_decode_leniently_but_reject_garbage() {
        assert_eq!(totp("jbswy3dpehpk3pxp", 0), totp("JBSWY3DPEHPK3PXP", 0));
        assert_eq!(totp("JBSW Y3DP EHPK 3PXP", 0), totp("JBSWY3DPEHPK3PXP", 0));
        assert_eq!(totp("not base32!", 0), None);
        assert_eq!(totp("", 0), None);
        assert_eq!(
            decode_secret(&encode_secret(b"0123456789")),
            Some(b"0123456789".to_vec())
        );
    }
}
