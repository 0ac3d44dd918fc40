//! End-to-end tests, one binary.
mod cli;
mod daemon;
mod faults;
mod flows;
mod helpers;
