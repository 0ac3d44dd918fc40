//! SRP-6a exactly as Cognito computes it (PASSWORD_VERIFIER, DEVICE_PASSWORD_VERIFIER and the
//! ConfirmDevice verifier), plus SECRET_HASH and the TIMESTAMP format. Pure: no IO, no clock.
//!
//! The arithmetic follows cognito-protocol.md §4: the RFC 5054 3072-bit group with g = 2,
//! SHA-256, integers hashed in their minimal two's-complement encoding ([`pad`]), the pool name
//! (or device group key) mixed into x, and an HKDF step with the info "Caldera Derived Key".
//!
//! Every input that comes from the server (SALT, SRP_B, SECRET_BLOCK) is checked before any
//! arithmetic and never causes a panic: malformed or absurdly long values are [`SrpError`]s.
//!
//! Secrets: the private value `a` lives only as big-endian bytes in a [`Zeroizing`] buffer and is
//! rebuilt into a big integer for each use. num-bigint gives no access to its limbs, so every
//! secret big integer (a, x, S, the exponent a + u·x and the base B − k·v) is held in a private
//! wrapper that, on drop, overwrites its digits in place through `BigUint::assign_from_slice`
//! (which reuses the allocation) before freeing them. Temporaries inside num-bigint's own
//! arithmetic (modpow scratch space) cannot be reached and are not wiped. Hash outputs, PAD(S)
//! and the derived key sit in `Zeroizing` buffers.

use std::fmt;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use num_bigint::{BigInt, BigUint, Sign};
use num_traits::Zero;
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::env::Entropy;
use crate::secret::{ClientSecret, DevicePassword};

/// The SRP modulus N: the 3072-bit safe prime of RFC 5054, as lowercase hex.
pub const N_HEX: &str = concat!(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74",
    "020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437",
    "4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed",
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05",
    "98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb",
    "9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b",
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718",
    "3995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33",
    "a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7",
    "abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864",
    "d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e2",
    "08e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff",
);

/// The SRP generator g.
pub const G: u32 = 2;

/// The longest SALT, SRP_B or private-value hex string accepted (a leading `-` counts).
///
/// N has 768 hex digits, so anything much longer is not a value of this group; refusing it
/// before parsing keeps a hostile server from making us do big-integer work of its choosing.
pub const MAX_HEX_DIGITS: usize = 1100;

/// The HKDF `info` of Cognito's key derivation (the HKDF crate appends the 0x01 counter itself).
const HKDF_INFO: &[u8] = b"Caldera Derived Key";

/// The length of the derived key K in bytes.
const KEY_BYTES: usize = 16;

/// Random bytes in the private value a (1024 bits, as amazon-cognito-identity-js uses).
const PRIVATE_VALUE_BYTES: usize = 128;

/// Random bytes behind a device password (56 base64 characters).
const DEVICE_PASSWORD_BYTES: usize = 40;

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Base64 as Amplify v6 reads SECRET_BLOCK when the strict decoding fails: either alphabet
/// (after mapping `-`/`_` to `+`/`/`), padding optional, non-zero trailing bits tolerated.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A client's ephemeral SRP key pair: the private value a and the public value A = g^a mod N.
///
/// Make a fresh one for every SRP exchange (user and device SRP each get their own). `Debug`
/// never shows a.
#[derive(Clone)]
pub struct SrpEphemeral {
    /// a, big-endian, zeroized on drop; rebuilt into a big integer only while computing S.
    private: Zeroizing<Vec<u8>>,
    /// A = g^a mod N (public).
    public: BigUint,
}

/// Who is proving knowledge of which password.
///
/// For user SRP: `realm` is the pool name (the pool ID after the first `_`), `user_id` is
/// USER_ID_FOR_SRP and `password` the user's password. For device SRP: `realm` is the device
/// group key, `user_id` the device key and `password` the stored device password.
#[derive(Clone, Copy)]
pub struct SrpIdentity<'a> {
    /// The pool name (`us-east-1_AbC123` → `AbC123`), or the device group key.
    pub realm: &'a str,
    /// USER_ID_FOR_SRP, or the device key.
    pub user_id: &'a str,
    /// The password (UTF-8), or the device password.
    pub password: &'a str,
}

/// The server's half of the exchange: the PASSWORD_VERIFIER (or DEVICE_PASSWORD_VERIFIER)
/// challenge parameters, exactly as received.
#[derive(Debug, Clone, Copy)]
pub struct ServerChallenge<'a> {
    /// `SALT`: hex, possibly odd-length, possibly negative (a leading `-`).
    pub salt_hex: &'a str,
    /// `SRP_B`: hex.
    pub srp_b_hex: &'a str,
    /// `SECRET_BLOCK`: base64 (standard; URL-safe or unpadded is tolerated).
    pub secret_block_b64: &'a str,
}

/// The answer to PASSWORD_VERIFIER / DEVICE_PASSWORD_VERIFIER, ready for ChallengeResponses.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordClaim {
    /// `PASSWORD_CLAIM_SIGNATURE`: standard base64 of the 32-byte HMAC.
    pub signature_b64: String,
    /// `PASSWORD_CLAIM_SECRET_BLOCK`: the server's SECRET_BLOCK, unchanged.
    pub secret_block_b64: String,
    /// `TIMESTAMP`: the string that was signed.
    pub timestamp: String,
}

/// The `DeviceSecretVerifierConfig` of a ConfirmDevice call.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceVerifier {
    /// `PasswordVerifier`: standard base64 of PAD(g^x mod N).
    pub password_verifier_b64: String,
    /// `Salt`: standard base64 of PAD(salt), the salt bytes read as an unsigned integer.
    pub salt_b64: String,
}

/// Why an SRP computation was refused. Nothing here carries a secret or a server value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrpError {
    /// A hex field is empty or holds something other than hex digits (SALT may also start
    /// with one `-`).
    #[error("{field} is not a hexadecimal number")]
    MalformedHex {
        /// The field: `SALT`, `SRP_B` or `a`.
        field: &'static str,
    },
    /// A hex field is longer than [`MAX_HEX_DIGITS`].
    #[error("{field} is too long ({digits} characters)")]
    HexTooLong {
        /// The field: `SALT`, `SRP_B` or `a`.
        field: &'static str,
        /// Its length in characters.
        digits: usize,
    },
    /// SRP_B is a multiple of N: the SRP safety check failed, nothing may be sent.
    #[error("the server's public value SRP_B is zero modulo N")]
    ServerPublicValueZero,
    /// The scrambling parameter u = H(PAD(A) ‖ PAD(B)) is zero.
    #[error("the scrambling parameter u is zero")]
    ScramblingParameterZero,
    /// The client's public value A is a multiple of N (impossible with g = 2; checked anyway).
    #[error("the client's public value A is zero modulo N")]
    ClientPublicValueZero,
    /// A private value of zero was supplied.
    #[error("the private value a is zero")]
    PrivateValueZero,
    /// SECRET_BLOCK is base64 neither strictly nor leniently.
    #[error("SECRET_BLOCK is not base64")]
    MalformedSecretBlock,
}

impl SrpEphemeral {
    /// Draws a fresh private value a (128 random bytes) and computes A = g^a mod N.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        let mut private = Zeroizing::new(vec![0_u8; PRIVATE_VALUE_BYTES]);
        entropy.fill(&mut private[..]);
        Self::from_private_bytes(private)
    }

    /// Rebuilds a key pair from a known private value (hex), for known-answer tests.
    pub fn from_private_hex(a_hex: &str) -> Result<Self, SrpError> {
        let private = SecretUint(parse_hex_magnitude(a_hex, "a")?);
        if private.0.is_zero() {
            return Err(SrpError::PrivateValueZero);
        }
        Ok(Self::from_private_bytes(Zeroizing::new(
            private.0.to_bytes_be(),
        )))
    }

    /// `SRP_A`: A as lowercase hex without leading zeros.
    pub fn public_hex(&self) -> String {
        format!("{:x}", self.public)
    }

    fn from_private_bytes(private: Zeroizing<Vec<u8>>) -> Self {
        let group = &*GROUP;
        let a = SecretUint::from_bytes_be(&private);
        let public = group.g.modpow(&a.0, &group.n);
        Self { private, public }
    }

    fn private_value(&self) -> SecretUint {
        SecretUint::from_bytes_be(&self.private)
    }
}

/// Answers a PASSWORD_VERIFIER or DEVICE_PASSWORD_VERIFIER challenge (cognito-protocol.md §4.3).
///
/// `timestamp` is the TIMESTAMP string to sign, normally [`cognito_timestamp`] of the current
/// time. The signature is base64(HMAC-SHA256(K, realm ‖ user_id ‖ SECRET_BLOCK bytes ‖ timestamp)).
pub fn password_claim(
    eph: &SrpEphemeral,
    id: &SrpIdentity<'_>,
    server: &ServerChallenge<'_>,
    timestamp: &str,
) -> Result<PasswordClaim, SrpError> {
    let secret_block = decode_secret_block(server.secret_block_b64)?;
    let session = session_key(eph, id, server)?;
    let mut mac = hmac_sha256(&session.key[..]);
    mac.update(id.realm.as_bytes());
    mac.update(id.user_id.as_bytes());
    mac.update(&secret_block);
    mac.update(timestamp.as_bytes());
    Ok(PasswordClaim {
        signature_b64: STANDARD.encode(mac.finalize().into_bytes()),
        secret_block_b64: server.secret_block_b64.to_owned(),
        timestamp: timestamp.to_owned(),
    })
}

/// Builds the ConfirmDevice verifier for a new device (cognito-protocol.md §4.9).
///
/// `salt` is 16 fresh random bytes. They are read as an unsigned integer and PADded, as
/// amazon-cognito-identity-js does: 17 bytes when the top bit is set, 16 usually, fewer when
/// the leading bytes are zero. Those same bytes come back as SALT at device sign-in, where
/// [`password_claim`] PADs the value again, so both sides hash identical bytes.
pub fn device_verifier(
    device_group_key: &str,
    device_key: &str,
    device_password: &DevicePassword,
    salt: [u8; 16],
) -> DeviceVerifier {
    let group = &*GROUP;
    let salt_bytes = pad_unsigned(&BigUint::from_bytes_be(&salt));
    let x = private_key(
        &salt_bytes,
        device_group_key,
        device_key,
        device_password.expose_secret(),
    );
    let verifier = group.g.modpow(&x.0, &group.n);
    DeviceVerifier {
        password_verifier_b64: STANDARD.encode(&*pad_unsigned(&verifier)),
        salt_b64: STANDARD.encode(&*salt_bytes),
    }
}

/// A new random device password: standard base64 of 40 random bytes (56 characters).
pub fn generate_device_password(entropy: &dyn Entropy) -> DevicePassword {
    let mut bytes = Zeroizing::new([0_u8; DEVICE_PASSWORD_BYTES]);
    entropy.fill(&mut bytes[..]);
    DevicePassword::new(STANDARD.encode(&bytes[..]))
}

/// Formats `t` as Cognito's TIMESTAMP (Java `EEE MMM d HH:mm:ss z yyyy`, English, UTC), e.g.
/// `Sun Nov 1 05:04:03 UTC 2026`: the day is not zero-padded, the names come from fixed tables.
pub fn cognito_timestamp(t: SystemTime) -> String {
    let seconds = unix_seconds(t);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 4 with Sunday = 0).
    let weekday = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1) as usize];
    format!(
        "{weekday} {month_name} {day} {:02}:{:02}:{:02} UTC {year:04}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    )
}

/// SECRET_HASH = base64(HMAC-SHA256(key = client secret, message = username ‖ client ID)).
///
/// `username` is the value the server sees as USERNAME in that request (cognito-protocol.md §3).
pub fn secret_hash(client_secret: &ClientSecret, username: &str, client_id: &str) -> String {
    let mut mac = hmac_sha256(client_secret.expose_secret().as_bytes());
    mac.update(username.as_bytes());
    mac.update(client_id.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// PAD: the minimal big-endian two's-complement encoding of `value` (Java's
/// `BigInteger.toByteArray()`), the form in which Cognito hashes every integer.
///
/// Non-negative values get a leading 0x00 when their top bit is set; zero is `[0x00]`;
/// negative values (only ever a SALT) are two's complement, e.g. −0x80 → `[0x80]`.
pub fn pad(value: &BigInt) -> Vec<u8> {
    value.to_signed_bytes_be()
}

/// The group constants, computed once.
struct Group {
    n: BigUint,
    g: BigUint,
    /// k = H(PAD(N) ‖ PAD(g)).
    k: BigUint,
}

static GROUP: LazyLock<Group> = LazyLock::new(|| {
    // N_HEX is a constant checked by the tests, so parsing it cannot fail.
    let n = BigUint::parse_bytes(N_HEX.as_bytes(), 16).expect("N_HEX is valid hex");
    let g = BigUint::from(G);
    let k = BigUint::from_bytes_be(&sha256(&[&pad_unsigned(&n), &pad_unsigned(&g)])[..]);
    Group { n, g, k }
});

/// A big integer that holds a secret: wiped in place on drop (see the module docs).
struct SecretUint(BigUint);

/// The values of one exchange, kept apart from the signing so tests can check each one.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "u, x and S are read only by the known-answer tests"
    )
)]
struct SessionKey {
    u: BigUint,
    x: SecretUint,
    premaster_secret: SecretUint,
    key: Zeroizing<[u8; KEY_BYTES]>,
}

impl SecretUint {
    fn from_bytes_be(bytes: &[u8]) -> Self {
        Self(BigUint::from_bytes_be(bytes))
    }
}

impl Drop for SecretUint {
    fn drop(&mut self) {
        // Overwrite every limb with ones. `assign_from_slice` clears the digit vector and
        // refills it within its existing capacity, so the old digits are overwritten rather
        // than freed; `black_box` keeps the compiler from discarding those stores as dead.
        let limbs = usize::try_from(self.0.bits().div_ceil(64)).unwrap_or(0);
        let ones = vec![u32::MAX; limbs * 2];
        self.0.assign_from_slice(&ones);
        std::hint::black_box(&self.0);
        self.0.set_zero();
    }
}

impl fmt::Debug for SecretUint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretUint([REDACTED])")
    }
}

impl fmt::Debug for SrpEphemeral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrpEphemeral")
            .field("private", &"[REDACTED]")
            .field("public_bits", &self.public.bits())
            .finish()
    }
}

impl fmt::Debug for SrpIdentity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrpIdentity")
            .field("realm", &self.realm)
            .field("user_id", &self.user_id)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

impl fmt::Debug for PasswordClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordClaim")
            .field("signature_b64", &"[REDACTED]")
            .field("secret_block_b64", &"[REDACTED]")
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

impl fmt::Debug for DeviceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceVerifier")
            .field("password_verifier_b64", &"[REDACTED]")
            .field("salt_b64", &self.salt_b64)
            .finish()
    }
}

/// Steps 3–7 of cognito-protocol.md §4.3: checks the server's values, then u, x, S and K.
fn session_key(
    eph: &SrpEphemeral,
    id: &SrpIdentity<'_>,
    server: &ServerChallenge<'_>,
) -> Result<SessionKey, SrpError> {
    let group = &*GROUP;
    let server_public = parse_hex_magnitude(server.srp_b_hex, "SRP_B")?;
    let server_public = server_public % &group.n;
    if server_public.is_zero() {
        return Err(SrpError::ServerPublicValueZero);
    }
    let salt = parse_signed_hex(server.salt_hex, "SALT")?;
    // A is stored reduced mod N, so "A mod N == 0" is "A == 0".
    if eph.public.is_zero() {
        return Err(SrpError::ClientPublicValueZero);
    }
    let u = BigUint::from_bytes_be(
        &sha256(&[&pad_unsigned(&eph.public), &pad_unsigned(&server_public)])[..],
    );
    if u.is_zero() {
        return Err(SrpError::ScramblingParameterZero);
    }
    let x = private_key(&pad(&salt), id.realm, id.user_id, id.password);

    // S = (B − k·g^x)^(a + u·x) mod N, with the base brought into [0, N) before subtracting
    // so the unsigned arithmetic never underflows (B − k·v is almost always negative).
    let verifier = SecretUint(group.g.modpow(&x.0, &group.n));
    let k_verifier = SecretUint(&group.k * &verifier.0 % &group.n);
    let base = SecretUint((&server_public + &group.n - &k_verifier.0) % &group.n);
    let a = eph.private_value();
    let exponent = SecretUint(&a.0 + &u * &x.0);
    let premaster_secret = SecretUint(base.0.modpow(&exponent.0, &group.n));

    let ikm = pad_unsigned(&premaster_secret.0);
    let hkdf = Hkdf::<Sha256>::new(Some(&pad_unsigned(&u)), &ikm);
    let mut key = Zeroizing::new([0_u8; KEY_BYTES]);
    hkdf.expand(HKDF_INFO, &mut key[..])
        // HKDF-SHA256 can expand to 255 × 32 bytes; 16 is always fine.
        .expect("16 bytes is within HKDF-SHA256's output limit");
    Ok(SessionKey {
        u,
        x,
        premaster_secret,
        key,
    })
}

/// x = H(salt bytes ‖ H(realm ‖ user_id ‖ ":" ‖ password)), read unsigned.
fn private_key(salt_bytes: &[u8], realm: &str, user_id: &str, password: &str) -> SecretUint {
    let inner = sha256(&[
        realm.as_bytes(),
        user_id.as_bytes(),
        b":",
        password.as_bytes(),
    ]);
    let outer = sha256(&[salt_bytes, &inner[..]]);
    SecretUint::from_bytes_be(&outer[..])
}

/// SHA-256 over the concatenation of `parts`, into a buffer that is zeroized on drop.
fn sha256(parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let mut digest = Zeroizing::new([0_u8; 32]);
    hasher.finalize_into(GenericArray::from_mut_slice(&mut digest[..]));
    digest
}

fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    // HMAC hashes or pads keys of any length, so construction cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// PAD for a non-negative value, into a buffer that is zeroized on drop (S goes through here).
fn pad_unsigned(value: &BigUint) -> Zeroizing<Vec<u8>> {
    let magnitude = Zeroizing::new(value.to_bytes_be());
    let mut padded = Zeroizing::new(Vec::with_capacity(magnitude.len() + 1));
    if magnitude[0] >= 0x80 {
        padded.push(0);
    }
    padded.extend_from_slice(&magnitude);
    padded
}

/// Parses unsigned hex of any length (odd is fine) up to [`MAX_HEX_DIGITS`].
fn parse_hex_magnitude(digits: &str, field: &'static str) -> Result<BigUint, SrpError> {
    if digits.len() > MAX_HEX_DIGITS {
        return Err(SrpError::HexTooLong {
            field,
            digits: digits.len(),
        });
    }
    // `parse_bytes` alone would also accept `_` separators, so check the digits first.
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(SrpError::MalformedHex { field });
    }
    BigUint::parse_bytes(digits.as_bytes(), 16).ok_or(SrpError::MalformedHex { field })
}

/// Parses hex with an optional leading `-`, as Java's `BigInteger.toString(16)` writes it.
fn parse_signed_hex(text: &str, field: &'static str) -> Result<BigInt, SrpError> {
    if text.len() > MAX_HEX_DIGITS {
        return Err(SrpError::HexTooLong {
            field,
            digits: text.len(),
        });
    }
    match text.strip_prefix('-') {
        Some(magnitude) => Ok(BigInt::from_biguint(
            Sign::Minus,
            parse_hex_magnitude(magnitude, field)?,
        )),
        None => Ok(BigInt::from(parse_hex_magnitude(text, field)?)),
    }
}

/// SECRET_BLOCK as bytes: strict standard base64 first, then Amplify's lenient reading.
fn decode_secret_block(text: &str) -> Result<Vec<u8>, SrpError> {
    if let Ok(bytes) = STANDARD.decode(text) {
        return Ok(bytes);
    }
    let normalised: String = text
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    LENIENT_BASE64
        .decode(normalised)
        .map_err(|_| SrpError::MalformedSecretBlock)
}

/// Whole seconds since the Unix epoch, rounded down (also before 1970).
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            if before.subsec_nanos() > 0 {
                -whole - 1
            } else {
                -whole
            }
        }
    }
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
