//! End-to-end tests, one binary.
mod audit;
mod autostart;
mod aws;
mod cli;
mod daemon;
mod faults;
mod flows;
mod fuzz_corpus;
mod helpers;
mod oauth;
mod passwordless;
mod security;
mod setup;
mod sinks;
