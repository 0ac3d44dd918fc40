//! The API key file (`[daemon] api_key_file`): read by the daemon, which checks callers
//! against it, and by the CLI, which sends it. One reader for both, strict: the file must be
//! closed to group and others (0600) and hold one non-empty line; the bytes read are zeroized.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use secrecy::SecretString;
use zeroize::Zeroizing;

/// Reads the API key in `path`, refusing a file others could read or an empty one.
pub fn read(path: &Path) -> anyhow::Result<SecretString> {
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("reading the API key file {} failed", path.display()))?;
    anyhow::ensure!(
        metadata.permissions().mode() & 0o077 == 0,
        "the API key file {} is readable by others: chmod 600 it",
        path.display()
    );
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the API key file {} failed", path.display()))?,
    );
    let key = text.trim();
    anyhow::ensure!(
        !key.is_empty(),
        "the API key file {} is empty",
        path.display()
    );
    Ok(SecretString::from(key.to_owned()))
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
        let (_dir, path) = key_file("  s3cret-key\n", 0o600);
        assert_eq!(read(&path).unwrap().expose_secret(), "s3cret-key");
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        for mode in [0o640, 0o604, 0o644] {
            let (_dir, path) = key_file("s3cret-key\n", mode);
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
}
