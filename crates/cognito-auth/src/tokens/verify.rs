//! Verifying a token: its RS256 signature against a pool's JWKS, then its expiry, issuer, kind
//! and client. Apart from the unverified claims the broker keeps for its own bookkeeping.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Claims, claims_from_json, decode_base64url, unix_seconds};
use crate::error::Error;
use crate::pool::UserPoolId;

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
