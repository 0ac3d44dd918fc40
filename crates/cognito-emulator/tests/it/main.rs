//! Integration tests: raw JSON 1.1 requests over real HTTP against an emulator on 127.0.0.1:0.

mod auth;
mod devices;
mod faults;
mod identity;
mod mfa;
mod oauth;
mod support;
mod tokens;
