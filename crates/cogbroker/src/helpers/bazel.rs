//! The Bazel / EngFlow credential helper (integrations.md B.6): command `get`, stdin
//! `{"uri": "..."}`, stdout `{"headers": {"Authorization": ["Bearer …"]}, "expires": RFC 3339}`.

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Credential, ProtocolError, short};

/// The command argument Bazel passes.
pub fn check_command(command: &str) -> Result<(), ProtocolError> {
    if command == "get" {
        Ok(())
    } else {
        Err(ProtocolError::new(format!(
            "unknown credential helper command {:?}; Bazel's protocol has only `get`",
            short(command)
        )))
    }
}

/// The request's `uri` and the `host[:port]` it names.
pub fn parse_request(input: &[u8]) -> Result<(String, String), ProtocolError> {
    #[derive(Deserialize)]
    struct Raw {
        uri: Option<String>,
    }
    let raw: Raw = serde_json::from_slice(input).map_err(|error| {
        ProtocolError::new(format!(
            "the credential helper request must be a JSON object {{\"uri\": \"https://...\"}} ({error})"
        ))
    })?;
    let uri = raw
        .uri
        .ok_or_else(|| ProtocolError::new("the credential helper request has no \"uri\""))?;
    let host = super::url_host(&uri)?;
    Ok((uri, host))
}

/// The answer with the token.
pub fn reply(credential: &Credential) -> Zeroizing<String> {
    let value = serde_json::json!({
        "headers": {"Authorization": [format!("Bearer {}", credential.secret())]},
        "expires": credential.expires_rfc3339,
    });
    Zeroizing::new(format!("{value}\n"))
}

/// The answer for a URI no profile claims: no headers (Bazel then fetches without any).
pub const NO_HEADERS: &str = "{\"headers\":{}}\n";

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn golden() {
        check_command("get").unwrap();
        assert!(check_command("store").unwrap_err().0.contains("only `get`"));
        let (uri, host) =
            parse_request(br#"{"uri":"https://Cache.example.com:8443/cas/ab"}"#).unwrap();
        assert_eq!(uri, "https://Cache.example.com:8443/cas/ab");
        assert_eq!(host, "cache.example.com:8443");
        assert!(
            parse_request(br#"{"url":"https://x/"}"#)
                .unwrap_err()
                .0
                .contains("no \"uri\"")
        );
        assert!(
            parse_request(b"https://x/")
                .unwrap_err()
                .0
                .contains("JSON object")
        );
        assert!(
            parse_request(br#"{"uri":"nope"}"#)
                .unwrap_err()
                .0
                .contains("is not a URL")
        );
        let credential = Credential {
            token: SecretString::from("eyJ.a.b".to_owned()),
            expires_unix: 1_767_000_000,
            expires_rfc3339: "2025-12-29T09:20:00Z".to_owned(),
        };
        assert_eq!(
            &*reply(&credential),
            "{\"headers\":{\"Authorization\":[\"Bearer eyJ.a.b\"]},\"expires\":\"2025-12-29T09:20:00Z\"}\n"
        );
    }
}
