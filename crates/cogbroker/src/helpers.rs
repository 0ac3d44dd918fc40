//! The credential-helper protocols (design.md §12, integrations.md B.1–B.7), as pure functions
//! over strings and bytes: parse what a consumer sends, format what it expects back. No IO, no
//! clock, no daemon: `cli::helpers` reads stdin, asks the daemon and writes what these return.
//!
//! One module per protocol:
//! - [`git`]: git's credential helper protocol (`get`, `store`, `erase`, `capability`).
//! - [`docker`]: docker-credential-helpers (`get`, `store`, `erase`, `list`, `version`).
//! - [`kube`]: client-go's exec credential plugin (`ExecCredential` v1 and v1beta1).
//! - [`cargo`]: cargo's credential-provider protocol v1 (JSON lines).
//! - [`bazel`]: the Bazel / EngFlow credential helper (`get` → header map).
//! - [`goauth`]: Go's `GOAUTH` command form (URL prefixes, then header lines).
//! - [`env`]: `export` lines for sh, fish and PowerShell.

pub mod aws;
pub mod bazel;
pub mod cargo;
pub mod docker;
pub mod env;
pub mod git;
pub mod goauth;
pub mod kube;

use std::fmt;
use std::io::Read;

use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

/// The most a helper reads from a consumer (every protocol's request is a few hundred bytes;
/// git allows 64 KiB lines, so one line plus its neighbours fits).
pub const MAX_INPUT: usize = 256 * 1024;

/// A consumer sent something its protocol does not allow. The message names what was wrong and
/// never repeats a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolError(pub String);

impl ProtocolError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A token as the helpers hand it out: the value, and when it expires (Unix seconds and the
/// daemon's RFC 3339 form). `Debug` never shows the value.
#[derive(Clone)]
pub struct Credential {
    /// The token.
    pub token: SecretString,
    /// Expiry in Unix seconds.
    pub expires_unix: u64,
    /// Expiry as RFC 3339 in UTC (`2026-01-02T03:04:05Z`).
    pub expires_rfc3339: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("token", &"[REDACTED]")
            .field("expires_unix", &self.expires_unix)
            .field("expires_rfc3339", &self.expires_rfc3339)
            .finish()
    }
}

impl Credential {
    /// The token's text (for output only).
    pub fn secret(&self) -> &str {
        self.token.expose_secret()
    }
}

/// Reads all of `reader`, refusing more than `limit` bytes (the error names `what`).
pub fn read_bounded(
    reader: impl Read,
    limit: usize,
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    let mut buffer = Zeroizing::new(Vec::new());
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut buffer)
        .map_err(|error| ProtocolError::new(format!("reading {what} failed: {error}")))?;
    if buffer.len() > limit {
        return Err(ProtocolError::new(format!(
            "{what} is larger than {limit} bytes; refusing it"
        )));
    }
    Ok(buffer)
}

/// The `host` or `host:port` (port only when written) of an absolute URL such as
/// `https://git.example.com:8443/x`, lower case.
pub fn url_host(text: &str) -> Result<String, ProtocolError> {
    let url = url::Url::parse(text.trim())
        .map_err(|error| ProtocolError::new(format!("{:?} is not a URL ({error})", short(text))))?;
    let host = url
        .host_str()
        .ok_or_else(|| ProtocolError::new(format!("the URL {:?} has no host", short(text))))?
        .to_ascii_lowercase();
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// At most 80 characters of untrusted input, for an error message.
pub(crate) fn short(text: &str) -> String {
    let mut shown: String = text.chars().take(80).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_bounded() {
        let ok = read_bounded(&b"12345"[..], 5, "stdin").unwrap();
        assert_eq!(&ok[..], b"12345");
        let error = read_bounded(&b"123456"[..], 5, "stdin").unwrap_err();
        assert_eq!(error.0, "stdin is larger than 5 bytes; refusing it");
    }

    #[test]
    fn url_hosts_keep_written_ports_only() {
        assert_eq!(
            url_host("https://Git.Example.com/a/b").unwrap(),
            "git.example.com"
        );
        assert_eq!(
            url_host("https://r.example.com:5000/v2/").unwrap(),
            "r.example.com:5000"
        );
        assert_eq!(url_host("http://[::1]:8080/").unwrap(), "[::1]:8080");
        // The scheme's default port is not "written".
        assert_eq!(
            url_host("https://r.example.com:443/").unwrap(),
            "r.example.com"
        );
        assert!(
            url_host("not a url")
                .unwrap_err()
                .0
                .contains("is not a URL")
        );
        assert!(
            url_host("file:///etc/passwd")
                .unwrap_err()
                .0
                .contains("has no host")
        );
    }

    #[test]
    fn credentials_do_not_debug_their_value() {
        let credential = Credential {
            token: SecretString::from("eyJ.secret.value".to_owned()),
            expires_unix: 1,
            expires_rfc3339: "1970-01-01T00:00:01Z".to_owned(),
        };
        assert!(!format!("{credential:?}").contains("secret"));
    }
}
