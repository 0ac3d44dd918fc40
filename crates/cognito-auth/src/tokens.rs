//! Tokens: claims read without verification (for expiry and the internal username), the token set
//! a sign-in or refresh yields, and RS256 verification against a pool's JWKS.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::pool::UserPoolId;
use crate::secret::{AccessToken, IdToken};
use crate::wire::AuthenticationResult;

/// The claims of an access or ID token that the broker uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// The user's immutable UUID.
    pub sub: String,
    /// The internal username: the access token's `username` or the ID token's
    /// `cognito:username`.
    pub username: Option<String>,
    /// The app client (access tokens).
    pub client_id: Option<String>,
    /// The audience: the app client (ID tokens). The first entry if `aud` is a list.
    pub aud: Option<String>,
    /// `access` or `id`.
    pub token_use: Option<String>,
    /// The issuer URL.
    pub iss: Option<String>,
    /// Expiry, epoch seconds (a fractional value is floored).
    pub exp: i64,
    /// Issued at, epoch seconds.
    pub iat: Option<i64>,
    /// When the user authenticated, epoch seconds.
    pub auth_time: Option<i64>,
    /// This token's unique ID.
    pub jti: Option<String>,
    /// The ID shared by all tokens of one sign-in (present when revocation is on).
    pub origin_jti: Option<String>,
    /// The device the token is tied to.
    pub device_key: Option<String>,
    /// Space-separated scopes (access tokens).
    pub scope: Option<String>,
    /// `cognito:groups`.
    pub groups: Vec<String>,
}

/// Decodes a JWT's claims **without verifying its signature**: for the broker's own bookkeeping
/// (expiry, username), never to make a trust decision.
pub fn decode_claims(jwt: &str) -> Result<Claims, Error> {
    let mut parts = jwt.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Protocol("a token is not a three-part jwt".into()));
    };
    let bytes = decode_base64url(payload)
        .ok_or_else(|| Error::Protocol("a token's payload is not base64url".into()))?;
    let object: serde_json::Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| Error::Protocol("a token's payload is not a json object".into()))?;
    claims_from_json(&object)
}

fn claims_from_json(object: &serde_json::Map<String, Value>) -> Result<Claims, Error> {
    let string = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
    let number = |name: &str| object.get(name).and_then(numeric_date);
    let sub = string("sub").ok_or_else(|| Error::Protocol("a token has no sub claim".into()))?;
    let exp =
        number("exp").ok_or_else(|| Error::Protocol("a token has no numeric exp claim".into()))?;
    let aud = match object.get("aud") {
        Some(Value::String(aud)) => Some(aud.clone()),
        Some(Value::Array(list)) => list.iter().find_map(Value::as_str).map(str::to_owned),
        _ => None,
    };
    let groups = object
        .get("cognito:groups")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Claims {
        sub,
        username: string("username").or_else(|| string("cognito:username")),
        client_id: string("client_id"),
        aud,
        token_use: string("token_use"),
        iss: string("iss"),
        exp,
        iat: number("iat"),
        auth_time: number("auth_time"),
        jti: string("jti"),
        origin_jti: string("origin_jti"),
        device_key: string("device_key"),
        scope: string("scope"),
        groups,
    })
}

/// When a token expires in the local clock: `received_at + (exp − iat)`, so `exp` shifted by the
/// measured clock skew; the raw `exp` without `iat`.
pub(crate) fn local_expiry(claims: &Claims, received_at: SystemTime) -> SystemTime {
    match claims.iat {
        Some(iat) => after_seconds(received_at, claims.exp - iat),
        None => from_unix(claims.exp),
    }
}

/// `at + seconds`, a negative count counting as zero.
pub(crate) fn after_seconds(at: SystemTime, seconds: i64) -> SystemTime {
    at + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// A NumericDate: an integer, or a float taken at its floor.
fn numeric_date(value: &Value) -> Option<i64> {
    if let Some(int) = value.as_i64() {
        return Some(int);
    }
    let float = value.as_f64()?;
    // Saturating `as` is the intent: absurd dates clamp rather than wrap.
    float.is_finite().then(|| float.floor() as i64)
}

/// base64url, with or without padding.
fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

/// The access and ID tokens of one sign-in or refresh, with their decoded claims and expiry. A
/// user-pool sign-in always has both; an OAuth client_credentials grant has an access token
/// only ([`TokenSet::access_only`]).
///
/// A daemon holds one per profile for as long as the tokens live, so it keeps of the claims
/// only what it uses each time (the internal username, `iat`); the others are decoded again,
/// once, when [`access_claims`](Self::access_claims) or [`id_claims`](Self::id_claims) is
/// first asked for (about 0.8 KB per set not held otherwise).
#[derive(Clone)]
pub struct TokenSet {
    access_token: AccessToken,
    id_token: Option<IdToken>,
    username: Option<Box<str>>,
    iat: Option<i64>,
    claims: OnceLock<Box<(Claims, Option<Claims>)>>,
    received_at: SystemTime,
    expires_at: SystemTime,
}

impl TokenSet {
    /// Builds the set from an `AuthenticationResult` received at `received_at` (local clock).
    ///
    /// `expires_at` is in the local clock: the earliest of `received_at + ExpiresIn` (when
    /// sent; some emulators omit it) and, for each token, `received_at + (exp − iat)` — that is
    /// `exp` shifted by the measured clock skew. A token without `iat` contributes its raw `exp`.
    pub fn from_result(
        result: &AuthenticationResult,
        received_at: SystemTime,
    ) -> Result<Self, Error> {
        let access_token = result.access_token.clone().ok_or_else(|| {
            Error::Protocol("the authentication result has no access token".into())
        })?;
        let id_token = result
            .id_token
            .clone()
            .ok_or_else(|| Error::Protocol("the authentication result has no id token".into()))?;
        let access_claims = decode_claims(access_token.expose_secret())?;
        let id_claims = decode_claims(id_token.expose_secret())?;

        let mut expires_at =
            local_expiry(&access_claims, received_at).min(local_expiry(&id_claims, received_at));
        if let Some(expires_in) = result.expires_in {
            expires_at = expires_at.min(after_seconds(received_at, expires_in));
        }
        Ok(TokenSet {
            access_token,
            id_token: Some(id_token),
            username: access_claims
                .username
                .or(id_claims.username)
                .map(String::into_boxed_str),
            iat: access_claims.iat.or(id_claims.iat),
            claims: OnceLock::new(),
            received_at,
            expires_at,
        })
    }

    /// A set with an access token and no ID token (the client_credentials grant), received at
    /// `received_at`; `expires_at` as for [`from_result`](Self::from_result).
    pub fn access_only(
        access_token: AccessToken,
        expires_in: Option<i64>,
        received_at: SystemTime,
    ) -> Result<Self, Error> {
        let access_claims = decode_claims(access_token.expose_secret())?;
        let mut expires_at = local_expiry(&access_claims, received_at);
        if let Some(expires_in) = expires_in {
            expires_at = expires_at.min(after_seconds(received_at, expires_in));
        }
        Ok(TokenSet {
            access_token,
            id_token: None,
            username: access_claims.username.map(String::into_boxed_str),
            iat: access_claims.iat,
            claims: OnceLock::new(),
            received_at,
            expires_at,
        })
    }

    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// The ID token (none from a client_credentials grant).
    pub fn id_token(&self) -> Option<&IdToken> {
        self.id_token.as_ref()
    }

    /// The access token's claims (unverified).
    pub fn access_claims(&self) -> &Claims {
        &self.decoded().0
    }

    /// The ID token's claims (unverified).
    pub fn id_claims(&self) -> Option<&Claims> {
        self.decoded().1.as_ref()
    }

    /// Both tokens' claims, decoded on the first call. The same tokens decoded when the set was
    /// made, so the default (empty claims) is never what comes back.
    fn decoded(&self) -> &(Claims, Option<Claims>) {
        self.claims.get_or_init(|| {
            let decode = |jwt: &str| decode_claims(jwt).unwrap_or_default();
            Box::new((
                decode(self.access_token.expose_secret()),
                self.id_token
                    .as_ref()
                    .map(|token| decode(token.expose_secret())),
            ))
        })
    }

    /// When the earlier of the two tokens expires, in the local clock.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// When the tokens arrived, in the local clock.
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    /// How long the tokens are valid from their arrival.
    pub fn lifetime(&self) -> Duration {
        self.expires_at
            .duration_since(self.received_at)
            .unwrap_or(Duration::ZERO)
    }

    /// The server clock minus the local clock, in seconds, measured as the access token's
    /// `iat` − `received_at` (so it includes the network latency). `None` without `iat`.
    pub fn clock_skew(&self) -> Option<i64> {
        Some(self.iat? - unix_seconds(self.received_at))
    }

    /// The internal username (access `username`, else ID `cognito:username`): the one to hash
    /// for REFRESH_TOKEN_AUTH.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &self.access_token)
            .field("id_token", &self.id_token())
            .field("username", &self.username())
            .field("received_at", &self.received_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn from_unix(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// The issuer of a pool's tokens on AWS: `https://cognito-idp.<region>.amazonaws.com/<pool>`.
/// Emulators may issue other values; take the issuer from configuration when they do.
pub fn issuer(region: &str, pool: &UserPoolId) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://cognito-idp.{region}.{suffix}/{pool}")
}

/// Which token a verification expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// An ID token (`token_use` = `id`, `aud` = client ID).
    Id,
    /// An access token (`token_use` = `access`, `client_id` = client ID).
    Access,
}

impl TokenUse {
    /// The `token_use` claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenUse::Id => "id",
            TokenUse::Access => "access",
        }
    }
}

/// What a verified token must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The exact `iss`.
    pub issuer: String,
    /// The app client: `aud` of ID tokens, `client_id` of access tokens.
    pub client_id: String,
    /// The token kind.
    pub token_use: TokenUse,
}

/// A pool's RSA signing keys, by `kid`.
#[derive(Clone)]
pub struct Jwks {
    keys: BTreeMap<String, RsaPublicKey>,
}

impl Jwks {
    /// Parses `{"keys":[{"kty":"RSA","kid":..,"n":..,"e":..}, ..]}`. Keys that are not RSA or
    /// are not for signatures are skipped.
    pub fn from_json(s: &str) -> Result<Self, Error> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Key>,
        }
        #[derive(serde::Deserialize)]
        struct Key {
            kty: String,
            #[serde(default)]
            kid: Option<String>,
            #[serde(default)]
            n: Option<String>,
            #[serde(default)]
            e: Option<String>,
            #[serde(default, rename = "use")]
            usage: Option<String>,
            #[serde(default)]
            alg: Option<String>,
        }
        let document: Document = serde_json::from_str(s)
            .map_err(|error| Error::Protocol(format!("the jwks is not valid json: {error}")))?;
        let mut keys = BTreeMap::new();
        for key in document.keys {
            let usable = key.kty == "RSA"
                && key.usage.as_deref().is_none_or(|usage| usage == "sig")
                && key.alg.as_deref().is_none_or(|alg| alg == "RS256");
            let (true, Some(kid), Some(n), Some(e)) = (usable, key.kid, key.n, key.e) else {
                continue;
            };
            let n = decode_base64url(&n)
                .ok_or_else(|| Error::Protocol(format!("jwks key {kid}: n is not base64url")))?;
            let e = decode_base64url(&e)
                .ok_or_else(|| Error::Protocol(format!("jwks key {kid}: e is not base64url")))?;
            let public = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
                .map_err(|error| {
                    Error::Protocol(format!("jwks key {kid} is not a usable rsa key: {error}"))
                })?;
            keys.insert(kid, public);
        }
        Ok(Jwks { keys })
    }

    /// The key IDs present.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Verifies an RS256 JWT: the signature with the `kid` key, then `exp` (against `now`),
    /// `iss`, `token_use`, and `aud` (ID tokens) or `client_id` (access tokens).
    pub fn verify(
        &self,
        jwt: &str,
        expect: &Expectation,
        now: SystemTime,
    ) -> Result<Claims, Error> {
        let reject = |why: &str| Error::InvalidToken(why.to_owned());
        let mut parts = jwt.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(reject("not a three-part jwt"));
        };
        let header: serde_json::Map<String, Value> = decode_base64url(header_b64)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| reject("the header is not base64url json"))?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(reject("the algorithm is not RS256"));
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or_else(|| reject("the header has no kid"))?;
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| Error::InvalidToken(format!("unknown kid {kid:?}")))?;
        let signature = decode_base64url(signature_b64)
            .ok_or_else(|| reject("the signature is not base64url"))?;
        let signed = &jwt[..header_b64.len() + 1 + payload_b64.len()];
        let digest = Sha256::digest(signed.as_bytes());
        key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
            .map_err(|_| reject("bad signature"))?;

        let payload: serde_json::Map<String, Value> = decode_base64url(payload_b64)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| reject("the payload is not base64url json"))?;
        let claims =
            claims_from_json(&payload).map_err(|_| reject("the payload lacks sub or exp"))?;
        if claims.exp <= unix_seconds(now) {
            return Err(reject("expired"));
        }
        if claims.iss.as_deref() != Some(expect.issuer.as_str()) {
            return Err(reject("wrong issuer"));
        }
        if claims.token_use.as_deref() != Some(expect.token_use.as_str()) {
            return Err(reject("wrong token_use"));
        }
        let audience = match expect.token_use {
            TokenUse::Id => claims.aud.as_deref(),
            TokenUse::Access => claims.client_id.as_deref(),
        };
        if audience != Some(expect.client_id.as_str()) {
            return Err(reject("issued to another client"));
        }
        Ok(claims)
    }
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use rsa::RsaPrivateKey;
    use rsa::rand_core::{CryptoRng, RngCore};
    use rsa::traits::PublicKeyParts;
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An unsigned JWT with the given payload (for unverified decoding).
    fn unsigned(payload: &Value) -> String {
        format!(
            "{}.{}.sig",
            b64(br#"{"alg":"RS256","kid":"k"}"#),
            b64(payload.to_string().as_bytes())
        )
    }

    fn result(access: &Value, id: &Value, expires_in: Option<i64>) -> AuthenticationResult {
        AuthenticationResult {
            access_token: Some(AccessToken::new(unsigned(access))),
            id_token: Some(IdToken::new(unsigned(id))),
            refresh_token: None,
            expires_in,
            token_type: Some("Bearer".into()),
            new_device_metadata: None,
        }
    }

    #[test]
    fn decodes_claims_without_verification() {
        let token = unsigned(&json!({
            "sub": "uuid-1", "username": "alice", "client_id": "c", "token_use": "access",
            "iss": "https://issuer", "exp": 1_800_003_600.9, "iat": 1_800_000_000,
            "origin_jti": "o", "jti": "j", "device_key": "us-east-1_d", "scope": "aws.cognito.signin.user.admin",
            "cognito:groups": ["admins"]
        }));
        let claims = decode_claims(&token).unwrap();
        assert_eq!(claims.exp, 1_800_003_600);
        assert_eq!(claims.iat, Some(1_800_000_000));
        assert_eq!(claims.username.as_deref(), Some("alice"));
        assert_eq!(claims.device_key.as_deref(), Some("us-east-1_d"));
        assert_eq!(claims.groups, vec!["admins".to_string()]);

        let id = decode_claims(&unsigned(
            &json!({"sub": "s", "cognito:username": "bob", "aud": ["c1", "c2"], "exp": 5}),
        ))
        .unwrap();
        assert_eq!(id.username.as_deref(), Some("bob"));
        assert_eq!(id.aud.as_deref(), Some("c1"));

        for bad in ["", "a.b", "a.b.c.d", "x.!!!.y"] {
            assert!(
                matches!(decode_claims(bad), Err(Error::Protocol(_))),
                "{bad}"
            );
        }
        assert!(decode_claims(&unsigned(&json!({"sub": "s"}))).is_err());
        assert!(decode_claims(&unsigned(&json!({"sub": "s", "exp": "soon"}))).is_err());
        assert!(decode_claims(&unsigned(&json!({"exp": 1}))).is_err());
        // Padded base64url is accepted too.
        let padded = format!("h.{}.s", URL_SAFE.encode(br#"{"sub":"s","exp":7}"#));
        assert_eq!(decode_claims(&padded).unwrap().exp, 7);
    }

    #[test]
    fn expiry_is_the_earliest_and_skew_corrected() {
        // Server clock == local clock; ExpiresIn shorter than the exp claims.
        let access = json!({"sub": "s", "username": "u-int", "exp": NOW + 3600, "iat": NOW});
        let id = json!({"sub": "s", "cognito:username": "u-id", "exp": NOW + 7200, "iat": NOW});
        let set = TokenSet::from_result(&result(&access, &id, Some(1800)), at(NOW)).unwrap();
        assert_eq!(set.expires_at(), at(NOW + 1800));
        assert_eq!(set.lifetime(), Duration::from_secs(1800));
        assert_eq!(set.clock_skew(), Some(0));
        assert_eq!(set.username(), Some("u-int"));

        // No ExpiresIn (cognito-local): the access token's exp decides.
        let set = TokenSet::from_result(&result(&access, &id, None), at(NOW)).unwrap();
        assert_eq!(set.expires_at(), at(NOW + 3600));

        // The ID token expires first.
        let short_id = json!({"sub": "s", "exp": NOW + 600, "iat": NOW});
        let set = TokenSet::from_result(&result(&access, &short_id, Some(3600)), at(NOW)).unwrap();
        assert_eq!(set.expires_at(), at(NOW + 600));
        assert_eq!(set.username(), Some("u-int"));

        // The local clock runs two hours ahead of the server: exp is in the local past, yet the
        // token is good for an hour from its arrival.
        let local = NOW + 7200;
        let set = TokenSet::from_result(&result(&access, &id, None), at(local)).unwrap();
        assert_eq!(set.clock_skew(), Some(-7200));
        assert_eq!(set.expires_at(), at(local + 3600));

        // Without iat, exp is taken as is.
        let no_iat = json!({"sub": "s", "exp": NOW + 100});
        let set = TokenSet::from_result(&result(&no_iat, &no_iat, Some(3600)), at(NOW)).unwrap();
        assert_eq!(set.expires_at(), at(NOW + 100));
        assert_eq!(set.clock_skew(), None);
        assert_eq!(set.username(), None);
    }

    #[test]
    fn a_token_set_holds_little_and_decodes_its_claims_when_asked() {
        let access = json!({"sub": "s", "exp": NOW + 3600, "iat": NOW - 5, "scope": "a b"});
        let id = json!({"sub": "s", "cognito:username": "u-id", "exp": NOW + 3600, "iat": NOW});
        let reply = result(&access, &id, Some(3600));
        let set = TokenSet::from_result(&reply, at(NOW)).unwrap();
        // The access token names no user: the ID token's username; the access token's iat.
        assert_eq!(set.username(), Some("u-id"));
        assert_eq!(set.clock_skew(), Some(-5));
        // Held per profile for the tokens' lifetime: the claims are not kept inline.
        assert!(
            std::mem::size_of::<TokenSet>() <= 160,
            "{}",
            std::mem::size_of::<TokenSet>()
        );
        let copy = set.clone();
        for set in [&set, &copy] {
            let tokens = (reply.access_token.as_ref(), reply.id_token.as_ref());
            let (Some(access_jwt), Some(id_jwt)) = tokens else {
                unreachable!("the reply has both tokens")
            };
            assert_eq!(
                set.access_claims(),
                &decode_claims(access_jwt.expose_secret()).unwrap()
            );
            assert_eq!(
                set.id_claims(),
                Some(&decode_claims(id_jwt.expose_secret()).unwrap())
            );
            assert_eq!(set.access_claims().scope.as_deref(), Some("a b"));
        }
    }

    #[test]
    fn token_set_needs_both_tokens_and_hides_them() {
        let access = json!({"sub": "s", "exp": NOW + 3600});
        let mut missing = result(&access, &access, Some(3600));
        missing.id_token = None;
        assert!(matches!(
            TokenSet::from_result(&missing, at(NOW)),
            Err(Error::Protocol(_))
        ));

        let set = TokenSet::from_result(&result(&access, &access, Some(3600)), at(NOW)).unwrap();
        let printed = format!("{set:?}");
        assert!(
            !printed.contains(set.access_token().expose_secret()),
            "{printed}"
        );
        assert!(printed.contains("[REDACTED]"), "{printed}");
    }

    #[test]
    fn issuer_format() {
        let pool = UserPoolId::parse("us-east-1_AbC").unwrap();
        assert_eq!(
            issuer("us-east-1", &pool),
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC"
        );
    }

    struct OsRng;

    impl RngCore for OsRng {
        fn next_u32(&mut self) -> u32 {
            let mut bytes = [0; 4];
            self.fill_bytes(&mut bytes);
            u32::from_le_bytes(bytes)
        }
        fn next_u64(&mut self) -> u64 {
            let mut bytes = [0; 8];
            self.fill_bytes(&mut bytes);
            u64::from_le_bytes(bytes)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            getrandom::getrandom(dest).unwrap();
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl CryptoRng for OsRng {}

    fn key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).unwrap())
    }

    fn jwks_json() -> String {
        let public = key().to_public_key();
        json!({"keys": [
            {"kty": "RSA", "kid": "other", "alg": "RS256", "use": "sig", "e": "AQAB", "n": b64(&[0xc5; 256])},
            {"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
             "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}
        ]})
        .to_string()
    }

    fn sign(header: &Value, payload: &Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let digest = Sha256::digest(signed.as_bytes());
        let signature = key().sign(Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap();
        format!("{signed}.{}", b64(&signature))
    }

    #[test]
    fn jwks_verifies_rs256_tokens() {
        let jwks = Jwks::from_json(&jwks_json()).unwrap();
        assert_eq!(jwks.kids().collect::<Vec<_>>(), ["k1", "other"]);
        let iss = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC";
        let header = json!({"alg": "RS256", "kid": "k1"});
        let access = json!({"sub": "s", "iss": iss, "token_use": "access", "client_id": "client", "exp": NOW + 60, "iat": NOW});
        let id =
            json!({"sub": "s", "iss": iss, "token_use": "id", "aud": "client", "exp": NOW + 60});
        let expect_access = Expectation {
            issuer: iss.into(),
            client_id: "client".into(),
            token_use: TokenUse::Access,
        };
        let expect_id = Expectation {
            token_use: TokenUse::Id,
            ..expect_access.clone()
        };

        let claims = jwks
            .verify(&sign(&header, &access), &expect_access, at(NOW))
            .unwrap();
        assert_eq!(claims.client_id.as_deref(), Some("client"));
        jwks.verify(&sign(&header, &id), &expect_id, at(NOW))
            .unwrap();

        let rejected =
            |jwt: &str, expect: &Expectation, now: u64| match jwks.verify(jwt, expect, at(now)) {
                Err(Error::InvalidToken(why)) => why,
                other => panic!("expected a rejection, got {other:?}"),
            };
        assert_eq!(
            rejected(&sign(&header, &access), &expect_access, NOW + 60),
            "expired"
        );
        assert_eq!(
            rejected(&sign(&header, &access), &expect_id, NOW),
            "wrong token_use"
        );
        assert_eq!(
            rejected(&sign(&header, &id), &expect_access, NOW),
            "wrong token_use"
        );
        let other_issuer = Expectation {
            issuer: "https://evil".into(),
            ..expect_access.clone()
        };
        assert_eq!(
            rejected(&sign(&header, &access), &other_issuer, NOW),
            "wrong issuer"
        );
        let other_client = Expectation {
            client_id: "other".into(),
            ..expect_id.clone()
        };
        assert_eq!(
            rejected(&sign(&header, &id), &other_client, NOW),
            "issued to another client"
        );
        assert_eq!(
            rejected(
                &sign(&json!({"alg": "RS256", "kid": "nope"}), &access),
                &expect_access,
                NOW
            ),
            "unknown kid \"nope\""
        );
        assert_eq!(
            rejected(
                &sign(&json!({"alg": "none", "kid": "k1"}), &access),
                &expect_access,
                NOW
            ),
            "the algorithm is not RS256"
        );
        assert_eq!(
            rejected(
                &sign(&json!({"alg": "RS256", "kid": "other"}), &access),
                &expect_access,
                NOW
            ),
            "bad signature"
        );

        // A payload swapped under a valid signature.
        let genuine = sign(&header, &access);
        let forged_payload = json!({"sub": "admin", "iss": iss, "token_use": "access", "client_id": "client", "exp": NOW + 60});
        let mut parts: Vec<&str> = genuine.split('.').collect();
        let forged_b64 = b64(forged_payload.to_string().as_bytes());
        parts[1] = &forged_b64;
        assert_eq!(
            rejected(&parts.join("."), &expect_access, NOW),
            "bad signature"
        );
        assert_eq!(rejected("a.b", &expect_access, NOW), "not a three-part jwt");
    }

    #[test]
    fn jwks_rejects_garbage() {
        assert!(Jwks::from_json("not json").is_err());
        assert!(
            Jwks::from_json(r#"{"keys":[{"kty":"RSA","kid":"k","n":"!!","e":"AQAB"}]}"#).is_err()
        );
        assert_eq!(Jwks::from_json(r#"{"keys":[]}"#).unwrap().kids().count(), 0);
    }
}
