//! Entry points of the fuzz targets in `fuzz/` (cargo-fuzz, nightly) and of the corpus replay
//! test that runs in `make test` on stable: every parser that reads bytes from outside, fed
//! arbitrary input. Each must return (an error is fine) and never panic; some also check an
//! invariant. Not an API.

use std::path::Path;

use cognito_auth::error::ServiceError;

pub use crate::server::fuzz_entry::{host as host_header, json_body, token_query};
use cognito_auth::srp::{self, ServerChallenge, SrpEphemeral, SrpIdentity};

/// One fuzz entry point: arbitrary bytes in, nothing out (it must not panic).
pub type Entry = fn(&[u8]);

/// Every target by name, for the replay test and `make fuzz`.
pub const TARGETS: &[(&str, Entry)] = &[
    ("config", config),
    ("jwt", jwt),
    ("srp_challenge", srp_challenge),
    ("cognito_error", cognito_error),
    ("token_query", token_query),
    ("host_header", host_header),
    ("json_body", json_body),
    ("git", git),
    ("docker", docker),
    ("cargo", cargo),
    ("bazel", bazel),
    ("kube_exec_info", kube_exec_info),
    ("goauth", goauth),
];

/// The configuration file parser and validator (no file system: an empty environment).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = std::collections::BTreeMap::<String, String>::new();
    let _ = crate::config::parse(text, Path::new("/fuzz/config.toml"), &env);
}

/// JWT claims decoding (header and payload segments, base64url, JSON, numeric dates).
pub fn jwt(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cognito_auth::tokens::decode_claims(text);
    }
}

/// PASSWORD_VERIFIER challenge parameters: `SALT`, `SRP_B` and `SECRET_BLOCK` as three lines,
/// through the full SRP answer (hex and base64 parsing, the SRP safety checks).
pub fn srp_challenge(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let (Some(salt), Some(srp_b), Some(secret_block)) = (lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    let Ok(ephemeral) = SrpEphemeral::from_private_hex("5f3e9a0b17c2d4e6f8a1b3c5d7e9f0a2") else {
        return;
    };
    let identity = SrpIdentity {
        realm: "FuzzPool",
        user_id: "fuzz-user",
        password: "Fuzz-Passw0rd!",
    };
    let server = ServerChallenge {
        salt_hex: salt,
        srp_b_hex: srp_b,
        secret_block_b64: secret_block,
    };
    let _ = srp::password_claim(
        &ephemeral,
        &identity,
        &server,
        "Mon Jan 1 00:00:00 UTC 2024",
    );
}

/// A Cognito error reply (the first line is the `x-amzn-ErrorType` header, the rest the body),
/// and the message as the daemon repeats it: at most 200 characters, no control characters.
pub fn cognito_error(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (std::str::from_utf8(&data[..at]).ok(), &data[at + 1..]),
        None => (None, data),
    };
    for status in [400, 429, 500] {
        let error = ServiceError::from_reply(status, header, None, body);
        let _ = error.class();
        let shown = crate::broker::error::service_message(&error.message);
        assert!(
            shown.chars().count() <= 201,
            "an upstream message is bounded"
        );
        assert!(
            !shown.chars().any(char::is_control),
            "an upstream message has no control characters"
        );
    }
}

/// git's credential protocol on stdin.
pub fn git(data: &[u8]) {
    let _ = crate::helpers::git::parse(data);
}

/// docker-credential-helpers: the `get`/`erase` server URL and the `store` JSON.
pub fn docker(data: &[u8]) {
    let _ = crate::helpers::docker::server_url(data);
    let _ = crate::helpers::docker::parse_store(data);
}

/// cargo's credential-provider protocol: one JSON line per request.
pub fn cargo(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            let _ = crate::helpers::cargo::parse_request(line);
        }
    }
}

/// The Bazel credential helper's request JSON.
pub fn bazel(data: &[u8]) {
    let _ = crate::helpers::bazel::parse_request(data);
}

/// `KUBERNETES_EXEC_INFO` as kubectl sets it.
pub fn kube_exec_info(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::helpers::kube::api_version(Some(text));
    }
}

/// Go's GOAUTH second call: the URL, then the response status and headers.
pub fn goauth(data: &[u8]) {
    let _ = crate::helpers::goauth::rejected_status(data);
}
