//! docker-credential-helpers (integrations.md B.2): one action argument; `get` and `erase` read
//! the server URL as plain text, `store` a JSON object; errors are printed on stdout (exit 1),
//! and `credentials not found in native keychain` tells docker to go on anonymously.

use std::collections::BTreeMap;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Credential, ProtocolError, short};

/// docker's not-found sentinel, verbatim.
pub const NOT_FOUND: &str = "credentials not found in native keychain";
/// docker's message for an empty server URL, verbatim.
pub const NO_SERVER_URL: &str = "no credentials server URL";
/// docker's message for a `store` without a username, verbatim.
pub const NO_USERNAME: &str = "no credentials username";

/// A docker-credential-helpers action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Credentials for a server URL.
    Get,
    /// Keep credentials (refused or ignored: the broker owns them).
    Store,
    /// Forget credentials for a server URL.
    Erase,
    /// Server URL → username for everything this helper answers.
    List,
    /// The helper's version.
    Version,
}

impl Action {
    /// Parses the action argument; the error is docker-credential-helpers' usage line.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        match text {
            "get" => Ok(Self::Get),
            "store" => Ok(Self::Store),
            "erase" => Ok(Self::Erase),
            "list" => Ok(Self::List),
            "version" => Ok(Self::Version),
            other => Err(ProtocolError::new(format!(
                "unknown docker credential action {:?}; usage: docker-credential-cogbroker <store|get|erase|list|version>",
                short(other)
            ))),
        }
    }
}

/// The server URL docker sent (`get`, `erase`), trimmed, and the `host[:port]` it names: docker
/// passes a bare host (`registry.example.com:5000`), an `https://` URL or one with a path.
pub fn server_url(input: &[u8]) -> Result<(String, String), ProtocolError> {
    let text = std::str::from_utf8(input)
        .map_err(|_| ProtocolError::new("the server URL on stdin is not UTF-8"))?
        .trim();
    if text.is_empty() {
        return Err(ProtocolError::new(NO_SERVER_URL));
    }
    if text.contains(['\n', '\r', '\0', ' ']) {
        return Err(ProtocolError::new(format!(
            "the server URL on stdin must be one word, not {:?}",
            short(text)
        )));
    }
    let host = if text.contains("://") {
        super::url_host(text)?
    } else {
        let bare = text
            .split('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if bare.is_empty() {
            return Err(ProtocolError::new(format!(
                "the server URL {:?} names no host",
                short(text)
            )));
        }
        bare
    };
    Ok((text.to_owned(), host))
}

/// The `get` answer: `{"ServerURL", "Username", "Secret"}`, the token as the secret.
pub fn get_reply(server_url: &str, username: &str, credential: &Credential) -> Zeroizing<String> {
    let value = serde_json::json!({
        "ServerURL": server_url,
        "Username": username,
        "Secret": credential.secret(),
    });
    Zeroizing::new(format!("{value}\n"))
}

/// What `store` sends.
#[derive(Debug)]
pub struct StoreRequest {
    /// `ServerURL`.
    pub server_url: String,
    /// `Username`.
    pub username: String,
}

/// Parses `store`'s JSON (the secret is read and dropped, never kept).
pub fn parse_store(input: &[u8]) -> Result<StoreRequest, ProtocolError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "ServerURL", default)]
        server_url: String,
        #[serde(rename = "Username", default)]
        username: String,
    }
    let raw: Raw = serde_json::from_slice(input).map_err(|error| {
        ProtocolError::new(format!(
            "store expects a JSON object {{\"ServerURL\", \"Username\", \"Secret\"}} on stdin ({error})"
        ))
    })?;
    if raw.server_url.trim().is_empty() {
        return Err(ProtocolError::new(NO_SERVER_URL));
    }
    if raw.username.trim().is_empty() {
        return Err(ProtocolError::new(NO_USERNAME));
    }
    Ok(StoreRequest {
        server_url: raw.server_url,
        username: raw.username,
    })
}

/// The `list` answer: server URL → username.
pub fn list_reply(entries: &BTreeMap<String, String>) -> String {
    format!("{}\n", serde_json::json!(entries))
}

/// The `version` answer.
pub fn version_reply() -> String {
    format!("cogbroker {}\n", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn actions() {
        assert_eq!(Action::parse("get").unwrap(), Action::Get);
        assert_eq!(Action::parse("store").unwrap(), Action::Store);
        assert_eq!(Action::parse("erase").unwrap(), Action::Erase);
        assert_eq!(Action::parse("list").unwrap(), Action::List);
        assert_eq!(Action::parse("version").unwrap(), Action::Version);
        assert!(
            Action::parse("fetch")
                .unwrap_err()
                .0
                .contains("usage: docker-credential-cogbroker")
        );
    }

    #[test]
    fn server_urls_in_every_form_docker_sends() {
        let host = |text: &str| server_url(text.as_bytes()).map(|(_, host)| host);
        assert_eq!(
            host("registry.example.com:5000\n").unwrap(),
            "registry.example.com:5000"
        );
        assert_eq!(
            host("https://Registry.example.com:5000").unwrap(),
            "registry.example.com:5000"
        );
        assert_eq!(
            host("http://registry.example.com:5000/").unwrap(),
            "registry.example.com:5000"
        );
        assert_eq!(
            host("https://index.docker.io/v1/").unwrap(),
            "index.docker.io"
        );
        assert_eq!(
            host("registry.example.com/v2/").unwrap(),
            "registry.example.com"
        );
        assert_eq!(
            server_url(b"  r.example.com \n").unwrap().0,
            "r.example.com"
        );
        assert_eq!(host("\n").unwrap_err().0, NO_SERVER_URL);
        assert!(host("a b").unwrap_err().0.contains("one word"));
        assert!(host("/v2").unwrap_err().0.contains("names no host"));
    }

    #[test]
    fn get_is_the_docker_json_object() {
        let credential = Credential {
            token: SecretString::from("tok\"en".to_owned()),
            expires_unix: 0,
            expires_rfc3339: String::new(),
        };
        assert_eq!(
            &*get_reply("r.example.com:5000", "alice", &credential),
            "{\"ServerURL\":\"r.example.com:5000\",\"Username\":\"alice\",\"Secret\":\"tok\\\"en\"}\n"
        );
    }

    #[test]
    fn store_list_and_version() {
        let request =
            parse_store(br#"{"ServerURL":"https://r.example.com","Username":"u","Secret":"s"}"#)
                .unwrap();
        assert_eq!(request.server_url, "https://r.example.com");
        assert_eq!(request.username, "u");
        assert_eq!(
            parse_store(br#"{"Username":"u"}"#).unwrap_err().0,
            NO_SERVER_URL
        );
        assert_eq!(
            parse_store(br#"{"ServerURL":"r"}"#).unwrap_err().0,
            NO_USERNAME
        );
        assert!(
            parse_store(b"r.example.com")
                .unwrap_err()
                .0
                .starts_with("store expects a JSON object")
        );
        let entries = BTreeMap::from([("r.example.com:5000".to_owned(), "alice".to_owned())]);
        assert_eq!(list_reply(&entries), "{\"r.example.com:5000\":\"alice\"}\n");
        assert_eq!(list_reply(&BTreeMap::new()), "{}\n");
        assert!(version_reply().starts_with("cogbroker "));
    }
}
