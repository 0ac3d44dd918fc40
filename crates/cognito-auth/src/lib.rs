//! The Amazon Cognito user-pool authentication protocol.
//!
//! Modules:
//! - [`secret`]: tokens, passwords and keys as types that cannot be printed.
//! - [`env`](mod@env): the injected clock and randomness.
//! - [`srp`]: SRP-6a exactly as Cognito computes it, SECRET_HASH and the TIMESTAMP format (pure).
//! - [`error`]: the one [`Error`] type, Cognito's error codes and their [`ErrorClass`].
//! - [`pool`]: user pool IDs, app clients and regional endpoints.
//! - [`wire`]: the cognito-idp JSON 1.1 request and reply types.
//! - [`client`]: the only HTTP code, [`CognitoClient`].
//! - [`tokens`]: claims, [`TokenSet`] expiry and skew, JWKS verification.
//! - [`flow`]: the sign-in state machine (pure: replies in, requests or challenges out).
//! - [`authenticator`]: the async driver, [`Authenticator`]: login, challenges, refresh, sign-out.
//! - [`identity`]: AWS credentials from an identity pool ([`IdentityClient`]) and STS
//!   ([`StsClient`]).
//! - [`oauth`]: the OAuth 2.0 endpoints of a user-pool domain, [`OAuthClient`]: client
//!   credentials, browser login with PKCE, refresh and revocation.
//!
//! Nothing in this crate reads the environment, the file system, the keyring or the clock by
//! itself: the caller injects a [`env::Clock`] and an [`env::Entropy`].

#![warn(missing_docs)]

pub mod authenticator;
pub mod client;
pub mod env;
pub mod error;
pub mod flow;
pub mod identity;
pub mod oauth;
pub mod pool;
pub mod secret;
pub mod srp;
pub mod tokens;
pub mod wire;

#[cfg(test)]
mod testing;

pub use authenticator::{Authenticator, RefreshRequest, Refreshed};
pub use client::{ClientOptions, CognitoClient};
pub use error::{
    Error, ErrorClass, ErrorCode, OAuthError, OAuthErrorCode, OAuthRequest, RefreshFailure,
    ServiceError,
};
pub use flow::{
    AuthFlow, Challenge, ChallengeAnswer, DeviceCredentials, DeviceRemembering, LoginRequest,
    LoginStep, LoginSuccess, MfaType, PendingLogin, RespondError,
};
pub use identity::{AwsCredentials, IdentityClient, Logins, StsClient};
pub use oauth::{BrowserLogin, OAuthClient, OAuthTokens, Pkce};
pub use pool::{
    AppClient, EndpointVariant, UserPoolId, identity_endpoint, regional_endpoint, sts_endpoint,
};
pub use tokens::{Claims, Expectation, Jwks, TokenSet, TokenUse};
