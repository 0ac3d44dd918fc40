//! Reading challenge parameters, and the otpauth URI of an MFA setup.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::srp::ServerChallenge;
use crate::wire::Parameters;

pub(super) fn server_challenge<'a>(
    parameters: &'a Parameters,
    challenge: &str,
) -> Result<ServerChallenge<'a>, Error> {
    let field = |name: &str| {
        parameters
            .non_empty(name)
            .ok_or_else(|| Error::Protocol(format!("{challenge} has no {name}")))
    };
    Ok(ServerChallenge {
        salt_hex: field("SALT")?,
        srp_b_hex: field("SRP_B")?,
        secret_block_b64: field("SECRET_BLOCK")?,
    })
}

/// A challenge parameter holding a JSON list of strings (`MFAS_CAN_CHOOSE`, ...). Absent or
/// empty means an empty list.
pub(super) fn parse_json_strings(value: Option<&str>, name: &str) -> Result<Vec<String>, Error> {
    let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
        return Ok(Vec::new());
    };
    serde_json::from_str(value)
        .map_err(|_| Error::Protocol(format!("{name} is not a json list of strings")))
}

/// `userAttributes`: a JSON object; non-string values are kept in their JSON form.
pub(super) fn parse_json_object(value: Option<&str>) -> Result<BTreeMap<String, String>, Error> {
    let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value)
        .map_err(|_| Error::Protocol("userAttributes is not a json object".into()))?;
    Ok(object
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            (name, text)
        })
        .collect())
}

/// `otpauth://totp/<issuer>:<account>?secret=<secret>&issuer=<issuer>`, percent-encoded.
pub(super) fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}",
        percent_encode(account),
        percent_encode(secret)
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
