//! Claims decoding, the token set's expiry and skew, and JWKS verification.

use std::sync::OnceLock;

use rsa::rand_core::{CryptoRng, RngCore};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::*;
use crate::pool::UserPoolId;

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
    let id = json!({"sub": "s", "iss": iss, "token_use": "id", "aud": "client", "exp": NOW + 60});
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
    assert!(Jwks::from_json(r#"{"keys":[{"kty":"RSA","kid":"k","n":"!!","e":"AQAB"}]}"#).is_err());
    assert_eq!(Jwks::from_json(r#"{"keys":[]}"#).unwrap().kids().count(), 0);
}
