//! End-to-end tests, one binary.
mod audit;
mod autostart;
mod aws;
mod cli;
mod daemon;
mod faults;
mod flows;
mod helpers;
mod oauth;
mod passwordless;
mod setup;
mod sinks;
