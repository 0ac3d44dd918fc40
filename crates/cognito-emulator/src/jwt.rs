//! RS256 JWTs: one RSA-2048 key for access tokens and one for ID tokens, generated per start.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// One signing key with its `kid` and public JWK.
pub(crate) struct JwtKey {
    kid: String,
    signing: SigningKey<Sha256>,
    verifying: VerifyingKey<Sha256>,
    jwk: Value,
}

impl JwtKey {
    /// Generates a fresh RSA-2048 key.
    pub(crate) fn generate(kid: String) -> anyhow::Result<Self> {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
        let public = key.to_public_key();
        let jwk = json!({
            "alg": "RS256",
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            "kid": kid,
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "use": "sig",
        });
        Ok(JwtKey {
            kid,
            signing: SigningKey::new(key),
            verifying: VerifyingKey::new(public),
            jwk,
        })
    }

    /// `header.claims.signature` with header `{"kid", "alg": "RS256"}`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({ "kid": self.kid, "alg": "RS256" });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.signing.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// The claims of `token` if this key signed it; `None` for anything malformed or foreign.
    pub(crate) fn verify(&self, token: &str) -> Option<Map<String, Value>> {
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("kid")?.as_str()? != self.kid || header.get("alg")?.as_str()? != "RS256" {
            return None;
        }
        let signature =
            Signature::try_from(URL_SAFE_NO_PAD.decode(signature).ok()?.as_slice()).ok()?;
        let signing_input = &token[..header_and_claims_len(token)?];
        self.verifying
            .verify(signing_input.as_bytes(), &signature)
            .ok()?;
        match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    pub(crate) fn jwk(&self) -> &Value {
        &self.jwk
    }
}

/// The length of `header.claims` in a three-part token.
fn header_and_claims_len(token: &str) -> Option<usize> {
    token.rfind('.')
}

/// The access-token and ID-token keys of one emulator.
pub(crate) struct KeySet {
    pub(crate) access: JwtKey,
    pub(crate) id: JwtKey,
}

impl KeySet {
    /// Generates both keys, in parallel (RSA key generation dominates start-up).
    pub(crate) fn generate(kid_prefix: &str) -> anyhow::Result<Self> {
        let access_kid = format!("{kid_prefix}-access");
        let id_kid = format!("{kid_prefix}-id");
        let (access, id) = std::thread::scope(|scope| {
            let access = scope.spawn(|| JwtKey::generate(access_kid));
            let id = JwtKey::generate(id_kid);
            (access.join(), id)
        });
        let access = access.map_err(|_| anyhow::anyhow!("rsa key generation panicked"))??;
        Ok(KeySet { access, id: id? })
    }

    /// `{"keys": [access, id]}`.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [self.access.jwk(), self.id.jwk()] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_rejects_tampering() {
        let keys = KeySet::generate("test").expect("keygen");
        let claims = json!({ "sub": "abc", "token_use": "access", "exp": 10 });
        let token = keys.access.sign(&claims);
        let verified = keys.access.verify(&token).expect("own signature verifies");
        assert_eq!(verified.get("sub"), Some(&json!("abc")));

        assert!(
            keys.id.verify(&token).is_none(),
            "the id key has another kid"
        );
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD
            .encode(json!({ "sub": "evil", "token_use": "access", "exp": 10 }).to_string());
        assert!(
            keys.access.verify(&parts.join(".")).is_none(),
            "changed claims fail the signature"
        );
        assert!(keys.access.verify("a.b").is_none());
        assert!(keys.access.verify("").is_none());

        let jwks = keys.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|k| k["kid"].as_str())
            .collect();
        assert_eq!(kids, ["test-access", "test-id"]);
        assert_eq!(jwks["keys"][0]["e"], json!("AQAB"));
    }
}
