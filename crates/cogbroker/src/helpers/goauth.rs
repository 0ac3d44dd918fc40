//! Go's `GOAUTH` command form (Go 1.24, integrations.md B.6): the command is run with the URL as
//! its argument (and, after a 4xx, the response's status line and headers on stdin); it prints
//! credential sets: `https://` URL prefixes one per line, a blank line, header lines, a blank line.

use zeroize::Zeroizing;

use super::{Credential, ProtocolError, short};

/// One credential set: the URL prefixes (`https://host/`) it covers and the token.
pub fn credential_set(hosts: &[String], credential: &Credential) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    for host in hosts {
        out.push_str(&format!("https://{host}/\n"));
    }
    out.push('\n');
    out.push_str(&format!(
        "Authorization: Bearer {}\n\n",
        credential.secret()
    ));
    out
}

/// The status code of the response Go wrote on stdin after a 4xx (`HTTP/1.1 401 Unauthorized`),
/// or `None` when stdin was empty (the first call for a URL).
pub fn rejected_status(input: &[u8]) -> Result<Option<u16>, ProtocolError> {
    let text = std::str::from_utf8(input)
        .map_err(|_| ProtocolError::new("the response on stdin is not UTF-8"))?;
    let Some(status_line) = text.lines().next().filter(|line| !line.trim().is_empty()) else {
        return Ok(None);
    };
    let mut words = status_line.split_whitespace();
    let protocol = words.next().unwrap_or_default();
    let status = words.next().and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) if protocol.starts_with("HTTP/") => Ok(Some(code)),
        _ => Err(ProtocolError::new(format!(
            "the response on stdin does not start with a status line such as `HTTP/1.1 401 Unauthorized`: {:?}",
            short(status_line)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn golden() {
        let credential = Credential {
            token: SecretString::from("eyJ.a.b".to_owned()),
            expires_unix: 0,
            expires_rfc3339: String::new(),
        };
        assert_eq!(
            &*credential_set(
                &[
                    "go.example.com".to_owned(),
                    "proxy.example.com:8443".to_owned()
                ],
                &credential
            ),
            "https://go.example.com/\nhttps://proxy.example.com:8443/\n\nAuthorization: Bearer eyJ.a.b\n\n"
        );
        assert_eq!(rejected_status(b"").unwrap(), None);
        assert_eq!(
            rejected_status(b"HTTP/1.1 401 Unauthorized\nWww-Authenticate: Bearer\n\n").unwrap(),
            Some(401)
        );
        assert!(
            rejected_status(b"hello\n")
                .unwrap_err()
                .0
                .contains("status line")
        );
    }
}
