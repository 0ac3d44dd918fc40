//! RS256 JWTs: one RSA-2048 key for access tokens and one for ID tokens.
//!
//! Generating the two keys is most of an emulator's start-up, so the key pairs are generated once
//! per process and shared by every emulator it starts; each emulator still signs under its own
//! `kid`s and verifies only its own `kid`s, so a token of one emulator is refused by another, and a
//! verifier that looks keys up by `kid` (as Cognito's clients do) tells them apart. With
//! `COGNITO_EMULATOR_KEY_CACHE=<dir>` the pairs are also kept in that directory (0700, files 0600)
//! and reused by later processes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rsa::RsaPrivateKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
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
    /// Signs under `kid` with `key`.
    fn new(kid: String, key: RsaPrivateKey) -> Self {
        let public = key.to_public_key();
        let jwk = json!({
            "alg": "RS256",
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            "kid": kid,
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "use": "sig",
        });
        JwtKey {
            kid,
            signing: SigningKey::new(key),
            verifying: VerifyingKey::new(public),
            jwk,
        }
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

/// The access-token and ID-token keys of one emulator, and the identity pools' OpenID token key
/// (the ID key's material under its own `kid`, so neither kind of token verifies as the other).
pub(crate) struct KeySet {
    pub(crate) access: JwtKey,
    pub(crate) id: JwtKey,
    pub(crate) identity: JwtKey,
}

impl KeySet {
    /// Generates both keys, in parallel.
    #[cfg(test)]
    pub(crate) fn generate(kid_prefix: &str) -> anyhow::Result<Self> {
        let pair = KeyPair::generate()?;
        Ok(KeySet::with(kid_prefix, &pair))
    }

    /// The process's shared key pairs (see the module docs) under `<kid_prefix>-access` and
    /// `<kid_prefix>-id`.
    pub(crate) fn shared(kid_prefix: &str) -> anyhow::Result<Self> {
        Ok(KeySet::with(kid_prefix, &*shared_pair()?))
    }

    fn with(kid_prefix: &str, pair: &KeyPair) -> Self {
        KeySet {
            access: JwtKey::new(format!("{kid_prefix}-access"), pair.access.clone()),
            id: JwtKey::new(format!("{kid_prefix}-id"), pair.id.clone()),
            identity: JwtKey::new(format!("{kid_prefix}-identity"), pair.id.clone()),
        }
    }

    /// `{"keys": [access, id]}`.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [self.access.jwk(), self.id.jwk()] })
    }
}

/// The access-token and ID-token private keys.
struct KeyPair {
    access: RsaPrivateKey,
    id: RsaPrivateKey,
}

const KEY_CACHE_ENV: &str = "COGNITO_EMULATOR_KEY_CACHE";
const KEY_FILES: [&str; 2] = ["access-rs256.pem", "id-rs256.pem"];

static SHARED_PAIR: Mutex<Option<Arc<KeyPair>>> = Mutex::new(None);

/// The process's key pairs: made on first use (or read from the key cache), then reused.
fn shared_pair() -> anyhow::Result<Arc<KeyPair>> {
    let mut slot = SHARED_PAIR.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(pair) = slot.as_ref() {
        return Ok(Arc::clone(pair));
    }
    let cache = std::env::var_os(KEY_CACHE_ENV).map(PathBuf::from);
    let pair = match cache.as_deref().and_then(read_cache) {
        Some(pair) => pair,
        None => {
            let pair = KeyPair::generate()?;
            if let Some(dir) = &cache {
                if let Err(error) = write_cache(dir, &pair) {
                    tracing::warn!(dir = %dir.display(), %error, "cannot store the signing keys in the key cache");
                }
            }
            pair
        }
    };
    let pair = Arc::new(pair);
    *slot = Some(Arc::clone(&pair));
    Ok(pair)
}

impl KeyPair {
    /// Two fresh RSA-2048 keys, generated in parallel.
    fn generate() -> anyhow::Result<Self> {
        let new = || RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048);
        let (access, id) = std::thread::scope(|scope| {
            let access = scope.spawn(new);
            (access.join(), new())
        });
        let access = access.map_err(|_| anyhow::anyhow!("rsa key generation panicked"))??;
        Ok(KeyPair { access, id: id? })
    }
}

/// Both keys from the cache directory, if it holds them and nobody else can read them.
fn read_cache(dir: &Path) -> Option<KeyPair> {
    let read = |name: &str| -> Option<RsaPrivateKey> {
        let path = dir.join(name);
        let mode = fs::metadata(&path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "ignoring a cached signing key that others can read");
            return None;
        }
        let pem = fs::read_to_string(&path).ok()?;
        RsaPrivateKey::from_pkcs8_pem(&pem).ok()
    };
    Some(KeyPair {
        access: read(KEY_FILES[0])?,
        id: read(KEY_FILES[1])?,
    })
}

/// Stores both keys: a 0700 directory, 0600 files, each written whole and renamed into place.
fn write_cache(dir: &Path, pair: &KeyPair) -> anyhow::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    for (name, key) in KEY_FILES.iter().zip([&pair.access, &pair.id]) {
        let pem = key.to_pkcs8_pem(LineEnding::LF)?;
        let temp = dir.join(format!(".{name}.{}", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, dir.join(name))?;
    }
    Ok(())
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

    #[test]
    fn emulators_share_key_pairs_but_not_kids() {
        let one = KeySet::shared("one").expect("keys");
        let two = KeySet::shared("two").expect("keys");
        let token = one.access.sign(&json!({ "sub": "abc" }));
        assert!(one.access.verify(&token).is_some());
        assert!(
            two.access.verify(&token).is_none(),
            "another emulator's kid is refused"
        );
        assert_eq!(one.jwks()["keys"][0]["n"], two.jwks()["keys"][0]["n"]);
        assert_ne!(one.jwks()["keys"][0]["n"], one.jwks()["keys"][1]["n"]);
    }

    #[test]
    fn the_key_cache_round_trips_and_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("keys");
        let pair = KeyPair::generate().expect("keys");
        write_cache(&cache, &pair).expect("written");
        let mode = |p: &Path| fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(&cache), 0o700);
        assert_eq!(mode(&cache.join(KEY_FILES[0])), 0o600);
        let read = read_cache(&cache).expect("read back");
        assert!(read.access == pair.access && read.id == pair.id);
        fs::set_permissions(cache.join(KEY_FILES[1]), fs::Permissions::from_mode(0o644))
            .expect("chmod");
        assert!(read_cache(&cache).is_none(), "a readable key is not used");
    }
}
