//! `cogbroker`: a local token broker for Amazon Cognito user pools, as a library behind the binary.

pub mod broker;
pub mod config;
pub mod listen;
pub mod server;
pub mod store;
