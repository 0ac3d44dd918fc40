//! End-to-end tests, one binary.
mod autostart;
mod aws;
mod cli;
mod daemon;
mod faults;
mod flows;
mod helpers;
mod setup;
