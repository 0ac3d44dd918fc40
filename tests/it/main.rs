//! End-to-end tests, one binary.
mod autostart;
mod cli;
mod daemon;
mod faults;
mod flows;
mod fuzz_corpus;
mod helpers;
mod security;
mod setup;
