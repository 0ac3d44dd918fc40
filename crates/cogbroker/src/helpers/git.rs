//! git's credential helper protocol (integrations.md B.1): `key=value` lines, a blank line or EOF
//! ends the list, keys ending in `[]` are lists (an empty value clears one), unknown keys are
//! ignored. With `capability[]=authtype` (git 2.46+) the answer is a Bearer `credential`;
//! otherwise the username/password form.

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::{Credential, ProtocolError, short};

/// git's own limit on one line.
pub const MAX_LINE: usize = 65_535;

/// What git asks the helper to do (the first argument). Unknown operations are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Give a credential.
    Get,
    /// git got a success with a credential; a store helper would keep it.
    Store,
    /// git got a 401 with a credential: the server rejected it.
    Erase,
    /// Which capabilities the helper has (git 2.46+).
    Capability,
    /// Anything else: must be ignored silently.
    Other,
}

impl Operation {
    /// Parses the operation argument.
    pub fn parse(text: &str) -> Self {
        match text {
            "get" => Self::Get,
            "store" => Self::Store,
            "erase" => Self::Erase,
            "capability" => Self::Capability,
            _ => Self::Other,
        }
    }
}

/// The attributes of one request that the helper uses. `Debug` never shows the secrets.
#[derive(Debug, Default)]
pub struct Request {
    /// `capability[]` values in order (after any clearing `capability[]=`).
    pub capabilities: Vec<String>,
    /// `protocol` (`https`, `http`, ...).
    pub protocol: Option<String>,
    /// `host`, with the port when the URL had one.
    pub host: Option<String>,
    /// `path` (only when `credential.useHttpPath` is set).
    pub path: Option<String>,
    /// `username`.
    pub username: Option<String>,
    /// `password` (on `erase`: the rejected one).
    pub password: Option<SecretString>,
    /// `credential` (on `erase` with authtype: the rejected one).
    pub credential: Option<SecretString>,
}

impl Request {
    /// Whether the caller understands `authtype` and `credential`.
    pub fn has_authtype(&self) -> bool {
        self.capabilities.iter().any(|c| c == "authtype")
    }

    /// The credential the caller holds (on `erase`: the one the server rejected).
    pub fn presented(&self) -> Option<&SecretString> {
        self.credential.as_ref().or(self.password.as_ref())
    }
}

/// Parses a request. Errors name the line and what was wrong; values never appear in them.
pub fn parse(input: &[u8]) -> Result<Request, ProtocolError> {
    let text = std::str::from_utf8(input)
        .map_err(|_| ProtocolError::new("the git credential request is not UTF-8"))?;
    let mut request = Request::default();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        if line.is_empty() {
            break;
        }
        if line.len() > MAX_LINE {
            return Err(ProtocolError::new(format!(
                "line {number} of the git credential request is longer than {MAX_LINE} bytes"
            )));
        }
        if line.contains('\0') {
            return Err(ProtocolError::new(format!(
                "line {number} of the git credential request contains a NUL byte"
            )));
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ProtocolError::new(format!(
                "line {number} of the git credential request has no `=`: {:?} (expected key=value)",
                short(line)
            )));
        };
        match key {
            "capability[]" if value.is_empty() => request.capabilities.clear(),
            "capability[]" => request.capabilities.push(value.to_owned()),
            "protocol" => request.protocol = Some(value.to_owned()),
            "host" => request.host = Some(value.to_ascii_lowercase()),
            "path" => request.path = Some(value.to_owned()),
            "username" => request.username = Some(value.to_owned()),
            "password" => request.password = Some(SecretString::from(value.to_owned())),
            "credential" => request.credential = Some(SecretString::from(value.to_owned())),
            "url" => apply_url(&mut request, value, number)?,
            _ => {}
        }
    }
    Ok(request)
}

/// `url=` stands for the attributes it contains (git expands it the same way).
fn apply_url(request: &mut Request, value: &str, number: usize) -> Result<(), ProtocolError> {
    let url = url::Url::parse(value).map_err(|error| {
        ProtocolError::new(format!(
            "line {number} of the git credential request: `url` is not a URL ({error})"
        ))
    })?;
    request.protocol = Some(url.scheme().to_owned());
    if let Some(host) = url.host_str() {
        let host = host.to_ascii_lowercase();
        request.host = Some(match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        });
    }
    let path = url.path().trim_start_matches('/');
    request.path = (!path.is_empty()).then(|| path.to_owned());
    if !url.username().is_empty() {
        request.username = Some(url.username().to_owned());
    }
    Ok(())
}

/// The answer to `get`: the Bearer form when the request carried `capability[]=authtype`
/// (capability echoed first, `ephemeral=1` so storage helpers do not keep it), else the
/// username/password form. Both carry `password_expiry_utc`.
pub fn get_reply(request: &Request, username: &str, credential: &Credential) -> Zeroizing<String> {
    let token = credential.secret();
    let expiry = credential.expires_unix;
    Zeroizing::new(if request.has_authtype() {
        format!(
            "capability[]=authtype\nauthtype=Bearer\ncredential={token}\nephemeral=1\npassword_expiry_utc={expiry}\n"
        )
    } else {
        format!("username={username}\npassword={token}\npassword_expiry_utc={expiry}\n")
    })
}

/// The answer that stops git from asking further helpers or prompting for a password.
pub const QUIT: &str = "quit=1\n";

/// The answer to `capability`.
pub const CAPABILITIES: &str = "version 0\ncapability authtype\n";

/// A username git may carry in the `username=` line: no newline or NUL (they would end the
/// attribute), else a neutral name.
pub fn safe_username(username: &str) -> &str {
    if username.is_empty() || username.contains(['\n', '\0']) {
        "cogbroker"
    } else {
        username
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn credential() -> Credential {
        Credential {
            token: SecretString::from("eyJhbGciOi.payload.sig".to_owned()),
            expires_unix: 1_767_000_000,
            expires_rfc3339: "2025-12-29T09:20:00Z".to_owned(),
        }
    }

    #[test]
    fn bearer_form_with_the_authtype_capability() {
        let request = parse(
            b"capability[]=authtype\ncapability[]=state\nprotocol=https\nhost=Git.Example.com:8443\nwwwauth[]=Bearer realm=\"x\"\n\n",
        )
        .unwrap();
        assert_eq!(request.host.as_deref(), Some("git.example.com:8443"));
        assert_eq!(
            &*get_reply(&request, "alice", &credential()),
            "capability[]=authtype\nauthtype=Bearer\ncredential=eyJhbGciOi.payload.sig\nephemeral=1\npassword_expiry_utc=1767000000\n"
        );
    }

    #[test]
    fn password_form_without_it() {
        let request = parse(b"protocol=https\nhost=git.example.com\n").unwrap();
        assert!(!request.has_authtype());
        assert_eq!(
            &*get_reply(&request, "alice", &credential()),
            "username=alice\npassword=eyJhbGciOi.payload.sig\npassword_expiry_utc=1767000000\n"
        );
    }

    #[test]
    fn an_empty_list_value_clears_the_list() {
        let request = parse(b"capability[]=authtype\ncapability[]=\nhost=h\n").unwrap();
        assert!(!request.has_authtype());
    }

    #[test]
    fn url_expands_and_input_stops_at_the_blank_line() {
        let request =
            parse(b"url=https://bob@git.example.com:444/org/repo.git\n\nhost=other\n").unwrap();
        assert_eq!(request.protocol.as_deref(), Some("https"));
        assert_eq!(request.host.as_deref(), Some("git.example.com:444"));
        assert_eq!(request.path.as_deref(), Some("org/repo.git"));
        assert_eq!(request.username.as_deref(), Some("bob"));
    }

    #[test]
    fn erase_carries_the_rejected_credential() {
        let request =
            parse(b"capability[]=authtype\nhost=h\nauthtype=Bearer\ncredential=old-token\n")
                .unwrap();
        assert_eq!(request.presented().unwrap().expose_secret(), "old-token");
        let request = parse(b"host=h\nusername=u\npassword=old-password\n").unwrap();
        assert_eq!(request.presented().unwrap().expose_secret(), "old-password");
        assert!(!format!("{request:?}").contains("old-password"));
    }

    #[test]
    fn unknown_attributes_are_ignored_and_bad_lines_named() {
        let request = parse(b"host=h\nfuture_thing=1\noauth_refresh_token=x\n").unwrap();
        assert_eq!(request.host.as_deref(), Some("h"));
        assert_eq!(
            parse(b"host=h\nno equals sign\n").unwrap_err().0,
            "line 2 of the git credential request has no `=`: \"no equals sign\" (expected key=value)"
        );
        assert!(parse(b"host=\xff\n").unwrap_err().0.contains("not UTF-8"));
        assert!(parse(b"host=a\0b\n").unwrap_err().0.contains("NUL"));
        let long = format!("path={}\n", "a".repeat(MAX_LINE));
        assert!(
            parse(long.as_bytes())
                .unwrap_err()
                .0
                .contains("longer than 65535")
        );
        assert!(
            parse(b"url=::\n")
                .unwrap_err()
                .0
                .contains("`url` is not a URL")
        );
    }

    #[test]
    fn operations() {
        assert_eq!(Operation::parse("get"), Operation::Get);
        assert_eq!(Operation::parse("store"), Operation::Store);
        assert_eq!(Operation::parse("erase"), Operation::Erase);
        assert_eq!(Operation::parse("capability"), Operation::Capability);
        assert_eq!(Operation::parse("approve"), Operation::Other);
    }

    #[test]
    fn usernames_cannot_inject_attributes() {
        assert_eq!(safe_username("alice@example.com"), "alice@example.com");
        assert_eq!(safe_username("a\npassword=x"), "cogbroker");
        assert_eq!(safe_username(""), "cogbroker");
    }
}
