use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use cognito_auth::secret::AccessToken;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::*;

/// base64url without padding (enough for a test JWT).
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn jwt(sub: &str, exp: u64) -> String {
    let part = |value: serde_json::Value| b64url(value.to_string().as_bytes());
    format!(
        "{}.{}.c2ln",
        part(serde_json::json!({"alg": "RS256", "kid": "k"})),
        part(serde_json::json!({"sub": sub, "token_use": "access", "exp": exp, "iat": exp - 3600}))
    )
}

/// An access-only token set for `sub`, valid for an hour (other modules' tests use it too).
pub(crate) fn tokens(sub: &str) -> TokenSet {
    let now = SystemTime::now();
    let exp = now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
    TokenSet::access_only(AccessToken::new(jwt(sub, exp)), Some(3600), now).unwrap()
}

fn sink(path: &Path, format: SinkFormat) -> SinkConfig {
    SinkConfig {
        path: path.to_path_buf(),
        kind: TokenKind::Access,
        format,
        host: Some("registry.example.com".to_owned()),
        login: None,
        on_change: None,
    }
}

fn text(sink: &SinkConfig, tokens: &TokenSet) -> String {
    String::from_utf8(render(sink, "p", tokens).unwrap().to_vec()).unwrap()
}

#[test]
fn every_format_holds_the_token_as_its_reader_expects() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens("machine");
    let token = tokens.access_token().expose_secret().to_owned();
    let path = dir.path().join("t");
    assert_eq!(
        text(&sink(&path, SinkFormat::Raw), &tokens),
        format!("{token}\n")
    );
    assert_eq!(
        text(&sink(&path, SinkFormat::Header), &tokens),
        format!("Authorization: Bearer {token}\n")
    );
    assert_eq!(
        text(&sink(&path, SinkFormat::Netrc), &tokens),
        format!("machine registry.example.com login oauth2 password {token}\n")
    );
    assert_eq!(
        text(&sink(&path, SinkFormat::Npmrc), &tokens),
        format!("//registry.example.com/:_authToken={token}\n")
    );
    let json: serde_json::Value =
        serde_json::from_str(&text(&sink(&path, SinkFormat::Json), &tokens)).unwrap();
    assert_eq!(json["token"], token.as_str());
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["kind"], "access");
    assert_eq!(json["expires_at"], rfc3339(tokens.expires_at()).as_str());
    // No ID token in a client_credentials set: an id sink renders nothing.
    let mut id = sink(&path, SinkFormat::Raw);
    id.kind = TokenKind::Id;
    assert!(render(&id, "p", &tokens).is_none());
}

#[test]
fn written_0600_in_a_0700_directory_replacing_the_old_file_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/token");
    let sink = sink(&path, SinkFormat::Raw);
    write(&sink, b"one\n").unwrap();
    write(&sink, b"two\n").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    let dir_mode = fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let left: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| is_temporary(path))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    remove(&sink).unwrap();
    assert!(!path.exists());
    remove(&sink).unwrap();
}

#[test]
fn a_symlink_planted_after_startup_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("victim");
    fs::write(&target, "precious").unwrap();
    let path = dir.path().join("token");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let error = write(&sink(&path, SinkFormat::Raw), b"tok\n").unwrap_err();
    assert!(format!("{error:#}").contains("symlink"), "{error:#}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
}

/// Readers racing a writer only ever see a whole token: the old file or the new one.
#[test]
fn concurrent_readers_never_see_a_partial_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let sink = sink(&path, SinkFormat::Raw);
    let body = |n: usize| format!("token-{n:04}-{}\n", "x".repeat(4096));
    write(&sink, body(0).as_bytes()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let path = path.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let text = fs::read_to_string(&path).expect("the sink always exists");
                    let n: usize = text[6..10].parse().expect("a whole token");
                    assert_eq!(text, format!("token-{n:04}-{}\n", "x".repeat(4096)));
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for n in 1..300 {
        write(&sink, body(n).as_bytes()).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert_eq!(fs::read_to_string(&path).unwrap(), body(299));
}
