//! Tokens: claims read without verification (for expiry and the internal username), the token set
//! a sign-in or refresh yields; RS256 verification against a pool's JWKS is in `verify.rs`.

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::error::Error;
use crate::secret::{AccessToken, IdToken};
use crate::wire::AuthenticationResult;

mod verify;

pub use verify::{Expectation, Jwks, TokenUse, issuer};

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

pub(super) fn claims_from_json(object: &serde_json::Map<String, Value>) -> Result<Claims, Error> {
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
pub(super) fn decode_base64url(text: &str) -> Option<Vec<u8>> {
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

pub(super) fn unix_seconds(time: SystemTime) -> i64 {
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

#[cfg(test)]
mod tests;
