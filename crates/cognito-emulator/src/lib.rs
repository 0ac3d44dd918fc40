//! A faithful, verifying local Amazon Cognito user-pool emulator (design.md §9), with the
//! user pool's OAuth endpoints, identity pools and the STS calls of their basic flow.
//!
//! It speaks the service's JSON 1.1 protocol on `POST /` and verifies what a client sends: SRP
//! claim signatures (computed from the server's side), TIMESTAMP formats, SECRET_HASH, TOTP codes,
//! device SRP, sessions and refresh tokens. Tests drive it through [`Handle`]; the binary exposes the
//! same controls under `/_control/`. The seed format, the control API and the choices made where the
//! service is ambiguous are documented in `docs/emulator.md`.
//!
//! Modules:
//! - `seed`: the TOML seed, parsed strictly ([`Seed`]).
//! - `server`: HTTP, the accept loop, JWKS ([`Emulator`], [`RunningEmulator`]).
//! - `ops`: the Cognito operations, one transaction each over `state`.
//! - `srp`: server-side SRP-6a; `timefmt`: Java timestamps; [`totp`]: RFC 6238; `jwt`: RS256.
//! - `sts`: STS's query protocol and XML (its logic, and identity pools', is in `ops`).
//! - `oauth`: the `/oauth2/` endpoints over HTTP (their logic is in `ops::oauth`).
//! - `faults`: fault injection and counters ([`Fault`], [`Stats`]); `control`: `/_control/`.
//! - `handle`: [`Handle`]; `clock`: the skewable clock; `ids`: random identifiers.

mod clock;
mod control;
mod error;
mod faults;
mod handle;
mod ids;
mod inject;
mod jwt;
mod oauth;
mod ops;
mod seed;
mod server;
mod srp;
mod state;
mod sts;
mod timefmt;
mod totp;

pub use faults::{Fault, FaultKind, Stats};
pub use handle::Handle;
pub use seed::{Seed, SeedError};
pub use server::{Emulator, RunningEmulator};
pub use state::{DeviceInfo, SentMessage};
pub use totp::totp;
