//! Secret newtypes: tokens, passwords, codes and keys that cannot be printed.
//!
//! Every value here wraps [`secrecy::SecretString`], so it is zeroized on drop and its `Debug`
//! output is `Name([REDACTED])`. None implements `Display` or `Serialize`: the bytes leave only
//! through [`expose_secret`](Password::expose_secret), at the point where they hit the wire or
//! the store.

use secrecy::{ExposeSecret, SecretString};

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The secret itself. Call this only where the value is sent or stored.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }

            /// Whether the secret is the empty string.
            pub fn is_empty(&self) -> bool {
                self.0.expose_secret().is_empty()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([REDACTED])"))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self::new(value)
            }
        }
    };
}

secret_type!(
    /// A user's password (or a new password answering NEW_PASSWORD_REQUIRED).
    Password
);
secret_type!(
    /// A one-time code: SMS, email or TOTP.
    OneTimeCode
);
secret_type!(
    /// A Cognito access token (a JWT).
    AccessToken
);
secret_type!(
    /// A Cognito ID token (a JWT).
    IdToken
);
secret_type!(
    /// A Cognito refresh token (an opaque, encrypted string). The crown jewel.
    RefreshToken
);
secret_type!(
    /// An app client's secret.
    ClientSecret
);
secret_type!(
    /// The random password of a remembered device, generated at ConfirmDevice time.
    DevicePassword
);
secret_type!(
    /// A TOTP shared secret (base32) or a URI that carries one.
    TotpSecret
);
secret_type!(
    /// A challenge session string: opaque, short-lived, single-use, but still a bearer of state.
    SessionToken
);

secret_type!(
    /// A PKCE code verifier (RFC 7636): sent only at the token step, it proves the caller began
    /// the browser login.
    CodeVerifier
);

secret_type!(
    /// An OAuth authorization code from the redirect: single-use, redeemed for tokens.
    AuthorizationCode
);

secret_type!(
    /// An identity pool's OpenID token (GetOpenIdToken), traded at STS for AWS credentials.
    OpenIdToken
);

secret_type!(
    /// An AWS access key id. Not a secret by itself, but it names the key: kept out of logs too.
    AwsAccessKeyId
);

secret_type!(
    /// An AWS secret access key (the identity pool's `SecretKey`, STS's `SecretAccessKey`).
    AwsSecretAccessKey
);

secret_type!(
    /// An AWS session token of temporary credentials.
    AwsSessionToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let values = [
            format!("{:?}", Password::new("hunter2-secret")),
            format!("{:?}", RefreshToken::new("hunter2-secret")),
            format!("{:?}", ClientSecret::new("hunter2-secret")),
            format!("{:?}", DevicePassword::new("hunter2-secret")),
            format!("{:?}", Some(AccessToken::new("hunter2-secret"))),
            format!("{:?}", CodeVerifier::new("hunter2-secret")),
            format!("{:?}", AuthorizationCode::new("hunter2-secret")),
            format!("{:?}", OpenIdToken::new("hunter2-secret")),
            format!("{:?}", AwsAccessKeyId::new("hunter2-secret")),
            format!("{:?}", AwsSecretAccessKey::new("hunter2-secret")),
            format!("{:?}", AwsSessionToken::new("hunter2-secret")),
        ];
        for printed in values {
            assert!(!printed.contains("hunter2"), "{printed}");
            assert!(printed.contains("[REDACTED]"), "{printed}");
        }
    }

    #[test]
    fn expose_secret_returns_the_value() {
        assert_eq!(OneTimeCode::new("123456").expose_secret(), "123456");
    }
}
