//! The API key file (`[daemon] api_key_file`): read by the daemon, which checks callers
//! against it, and by the CLI, which sends it. One reader for both, strict, like ssh with a
//! private key: the file is opened once without following a symbolic link, and the opened file
//! itself must be a regular file owned by us and closed to group and others (0600), in a
//! directory nobody else can write to (or a sticky one), holding one line of at least
//! [`MIN_LEN`] visible ASCII characters. The bytes read are zeroized.

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use anyhow::Context as _;
use secrecy::SecretString;
use zeroize::Zeroizing;

/// The shortest key accepted: 16 characters (e.g. `openssl rand -hex 16` gives 32).
pub const MIN_LEN: usize = 16;
/// The largest file read: a key is one short line.
const MAX_FILE: u64 = 4096;

/// Reads the API key in `path`, refusing a file others could read or replace, a symbolic link,
/// or a key that is empty, short or not one line of visible ASCII.
pub fn read(path: &Path) -> anyhow::Result<SecretString> {
    let shown = path.display();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(path)
        .with_context(|| {
            format!("reading the API key file {shown} failed (it must not be a symbolic link)")
        })?;
    // Everything below is checked on the opened file, so nothing can be swapped in between.
    let metadata = file
        .metadata()
        .with_context(|| format!("reading the API key file {shown} failed"))?;
    anyhow::ensure!(
        metadata.is_file(),
        "the API key file {shown} is not a regular file"
    );
    let us = crate::listen::our_uid();
    anyhow::ensure!(
        metadata.uid() == us,
        "the API key file {shown} is owned by uid {}, not by you (uid {us}): chown it or make a new one",
        metadata.uid()
    );
    anyhow::ensure!(
        metadata.mode() & 0o077 == 0,
        "the API key file {shown} is readable by others: chmod 600 it"
    );
    anyhow::ensure!(
        metadata.len() <= MAX_FILE,
        "the API key file {shown} is {} bytes; a key is one short line",
        metadata.len()
    );
    check_parent(path, us)?;
    let mut text = Zeroizing::new(String::new());
    file.by_ref()
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .with_context(|| format!("reading the API key file {shown} failed"))?;
    let key = text.trim();
    anyhow::ensure!(!key.is_empty(), "the API key file {shown} is empty");
    anyhow::ensure!(
        key.bytes().all(|b| b.is_ascii_graphic()),
        "the API key in {shown} must be one line of visible ASCII characters (no spaces)"
    );
    anyhow::ensure!(
        key.len() >= MIN_LEN,
        "the API key in {shown} is too short ({} characters; at least {MIN_LEN}: \
         e.g. `openssl rand -hex 32 > {shown}`)",
        key.len()
    );
    Ok(SecretString::from(key.to_owned()))
}

/// The directory holding the key must be ours or root's, and writable by nobody else unless it
/// is sticky: otherwise someone could replace the file between two reads of the configuration.
fn check_parent(path: &Path, us: u32) -> anyhow::Result<()> {
    let parent = match path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        Some(parent) => parent,
        None => Path::new("."),
    };
    let metadata = std::fs::metadata(parent).with_context(|| {
        format!(
            "cannot inspect {}, the API key file's directory",
            parent.display()
        )
    })?;
    let mode = metadata.mode() & 0o7777;
    anyhow::ensure!(
        metadata.uid() == us || metadata.uid() == 0,
        "the API key file's directory {} is owned by uid {}, not by you (uid {us}) or root",
        parent.display(),
        metadata.uid()
    );
    anyhow::ensure!(
        mode & 0o022 == 0 || mode & 0o1000 != 0,
        "the API key file's directory {} is writable by others (mode {:o}): move the key or chmod go-w the directory",
        parent.display(),
        mode & 0o777
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use secrecy::ExposeSecret as _;

    use super::*;

    fn key_file(contents: &str, mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-key");
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn a_private_file_gives_its_trimmed_key() {
        let (_dir, path) = key_file("  s3cret-key-0123456789\n", 0o600);
        assert_eq!(
            read(&path).unwrap().expose_secret(),
            "s3cret-key-0123456789"
        );
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        for mode in [0o640, 0o604, 0o644] {
            let (_dir, path) = key_file("s3cret-key-0123456789\n", mode);
            let error = format!("{:#}", read(&path).unwrap_err());
            assert!(error.contains("chmod 600"), "{mode:o}: {error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
    }

    #[test]
    fn empty_and_missing_files_are_refused_by_name() {
        let (_dir, path) = key_file(" \n", 0o600);
        let error = format!("{:#}", read(&path).unwrap_err());
        assert!(error.contains("is empty"), "{error}");
        let missing = path.with_file_name("none");
        let error = format!("{:#}", read(&missing).unwrap_err());
        assert!(error.contains("none"), "{error}");
    }

    #[test]
    fn short_or_spaced_keys_are_refused_without_being_shown() {
        let (_dir, path) = key_file("x\n", 0o600);
        let error = format!("{:#}", read(&path).unwrap_err());
        assert!(error.contains("too short"), "{error}");
        let (_dir, path) = key_file("s3cret key with spaces 0123\n", 0o600);
        let error = format!("{:#}", read(&path).unwrap_err());
        assert!(error.contains("visible ASCII"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn a_symbolic_link_is_refused_even_to_a_good_file() {
        let (dir, path) = key_file("s3cret-key-0123456789\n", 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let error = format!("{:#}", read(&link).unwrap_err());
        assert!(error.contains("symbolic link"), "{error}");
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let (dir, path) = key_file("s3cret-key-0123456789\n", 0o600);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = format!("{:#}", read(&path).unwrap_err());
        assert!(error.contains("writable by others"), "{error}");
        // Sticky (like /tmp): others cannot replace our file.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        read(&path).unwrap();
    }

    /// Another owner: as root the file is handed to uid 65534; not root, the test cannot make
    /// a file someone else owns, so it fails loudly rather than pass untested.
    #[test]
    fn a_file_owned_by_another_uid_is_refused() {
        let (_dir, path) = key_file("s3cret-key-0123456789\n", 0o600);
        rustix::fs::chown(&path, Some(rustix::fs::Uid::from_raw(65534)), None)
            .expect("this test needs root (CI runs as root) to give the file to uid 65534");
        let error = format!("{:#}", read(&path).unwrap_err());
        assert!(error.contains("owned by uid 65534"), "{error}");
    }
}
