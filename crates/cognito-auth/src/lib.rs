//! The Amazon Cognito user-pool authentication protocol.
//!
//! Modules:
//! - [`secret`]: tokens, passwords and keys as types that cannot be printed.
//! - [`env`]: the injected clock and randomness.
//! - [`srp`]: SRP-6a exactly as Cognito computes it, SECRET_HASH and the TIMESTAMP format (pure).
//!
//! Nothing in this crate reads the environment, the file system, the keyring or the clock by
//! itself: the caller injects a [`env::Clock`] and an [`env::Entropy`].

pub mod env;
pub mod secret;
pub mod srp;
