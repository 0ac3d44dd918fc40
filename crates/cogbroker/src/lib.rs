//! `cogbroker`: a local token broker for Amazon Cognito user pools, as a library behind the binary.
//!
//! Modules:
//! - [`config`]: the TOML file and `COGBROKER_*` overrides, parsed and validated into a typed
//!   [`config::Config`] before anything binds; secret sources resolved lazily at use.
//! - [`store`]: the only code that touches the OS keyring or the session files
//!   ([`store::SecretStore`]: keyring, 0600 file store, memory for tests).
//! - [`broker`]: the only owner of tokens: logins, single-flight refresh, rotation-safe
//!   persistence, stale-while-revalidate, the periodic wall-clock tick, events and metrics.
//! - [`listen`]: binding the Unix socket (0700 dir, 0600 socket, stale/live detection, socket
//!   activation) and loopback TCP; who is on the other end of a connection (`SO_PEERCRED`, the
//!   kernel's TCP table).
//! - [`server`]: the local HTTP API (axum) behind the listener checks (Host, Origin,
//!   Sec-Fetch-Site, proxy headers, peer uid, API key, `X-Cogbroker-Request`), limits and
//!   graceful shutdown.
//! - [`serve`]: the `serve` command: config validated before binding, process hardening,
//!   `READY=1` before any upstream call, the systemd watchdog, SIGTERM → graceful stop.
//! - [`api`]: the v1 HTTP API as serde types, shared by [`server`] and [`client`], with the
//!   paths, the request header and the one duration grammar; [`apikey`]: the one reader of the
//!   API key file.
//! - [`autostart`]: starting the daemon in the background on first use (gpg-agent style).
//! - [`setup`]: `cogbroker setup git|docker|kubectl|cargo|aws`, format-preserving edits of
//!   each consumer's own configuration.
//! - [`cli`]: the command line (clap) and the exit codes; [`client`]: its HTTP/1 client to the
//!   daemon over the Unix socket or loopback TCP; [`demo`]: `cogbroker demo` (cargo feature
//!   `demo`, on by default); [`output`]: what commands print on stdout.

pub mod api;
pub mod apikey;
pub mod atomic;
pub mod audit;
pub mod autostart;
pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod helpers;
pub mod listen;
pub mod output;
pub mod secrets;
pub mod serve;
pub mod server;
pub mod setup;
pub mod store;
#[cfg(test)]
mod test_child;
