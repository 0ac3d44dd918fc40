//! PKCE S256 (RFC 7636) and the `state` of a browser login.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::env::Entropy;
use crate::error::Error;
use crate::secret::CodeVerifier;

/// A PKCE verifier and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    verifier: CodeVerifier,
    challenge: String,
}

impl Pkce {
    /// The `code_challenge_method` this crate uses.
    pub const METHOD: &'static str = "S256";

    /// A fresh verifier: 32 random bytes from `entropy`, base64url without padding (43
    /// characters, 256 bits).
    pub fn generate(entropy: &dyn Entropy) -> Pkce {
        let mut bytes = zeroize::Zeroizing::new([0_u8; 32]);
        entropy.fill(bytes.as_mut());
        let verifier = CodeVerifier::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()));
        let challenge = challenge_of(&verifier);
        Pkce {
            verifier,
            challenge,
        }
    }

    /// The challenge of a given verifier, which must be 43 to 128 characters of
    /// `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
    pub fn from_verifier(verifier: CodeVerifier) -> Result<Pkce, Error> {
        let text = verifier.expose_secret();
        let valid_length = (43..=128).contains(&text.len());
        let valid_chars = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !valid_length || !valid_chars {
            return Err(Error::InvalidInput(
                "a pkce code verifier must be 43 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_' and '~'"
                    .into(),
            ));
        }
        let challenge = challenge_of(&verifier);
        Ok(Pkce {
            verifier,
            challenge,
        })
    }

    /// The verifier, sent only at the token step.
    pub fn verifier(&self) -> &CodeVerifier {
        &self.verifier
    }

    /// `BASE64URL(SHA256(verifier))`, sent on the authorize URL.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

fn challenge_of(verifier: &CodeVerifier) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret().as_bytes()))
}

/// A fresh `state`: 32 random bytes (256 bits) from `entropy`, base64url without padding.
pub fn new_state(entropy: &dyn Entropy) -> String {
    let mut bytes = [0_u8; 32];
    entropy.fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u8);

    impl Entropy for Fixed {
        fn fill(&self, dest: &mut [u8]) {
            dest.fill(self.0);
        }
    }

    #[test]
    fn rfc_7636_appendix_b() {
        let pkce = Pkce::from_verifier(CodeVerifier::new(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ))
        .unwrap();
        assert_eq!(
            pkce.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn generated_verifiers_come_from_the_entropy() {
        let one = Pkce::generate(&Fixed(1));
        let two = Pkce::generate(&Fixed(2));
        assert_eq!(one.verifier().expose_secret().len(), 43);
        assert_ne!(
            one.verifier().expose_secret(),
            two.verifier().expose_secret()
        );
        let again = Pkce::from_verifier(one.verifier().clone()).unwrap();
        assert_eq!(again.challenge(), one.challenge());
        assert!(!format!("{one:?}").contains(one.verifier().expose_secret()));
    }

    #[test]
    fn bad_verifiers_are_refused() {
        for bad in ["short", &"a".repeat(129), &format!("{}+", "a".repeat(42))] {
            assert!(matches!(
                Pkce::from_verifier(CodeVerifier::new(bad)),
                Err(Error::InvalidInput(_))
            ));
        }
    }

    #[test]
    fn state_carries_256_bits() {
        let state = new_state(&Fixed(7));
        assert_eq!(URL_SAFE_NO_PAD.decode(&state).unwrap(), [7_u8; 32]);
        assert_ne!(state, new_state(&Fixed(8)));
    }
}
