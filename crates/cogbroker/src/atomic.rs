//! Replacing a file atomically: a temporary file in the same directory, written, given the old
//! file's mode (or `new_file_mode`), fsynced, renamed over the file, then the directory fsynced.
//! A reader sees the old bytes or the new ones, never a mix, and a crash leaves one of the two.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;

/// Writes `bytes` to `path` atomically. An existing file keeps its permission bits; a new one
/// gets `new_file_mode`, and missing parent directories are created 0700.
pub fn write(path: &Path, bytes: &[u8], new_file_mode: u32) -> anyhow::Result<()> {
    let dir = parent_created(path)?;
    let mode = match fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => new_file_mode,
        Err(error) => {
            return Err(error).with_context(|| format!("cannot inspect {}", path.display()));
        }
    };
    replace(path, dir, bytes, mode)
}

/// Writes `bytes` to `path` atomically with exactly `mode`, whatever the old file had; missing
/// parent directories are created 0700.
pub fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = parent_created(path)?;
    replace(path, dir, bytes, mode)
}

/// `path`'s directory (`.` for a bare name), created 0700 when missing.
fn parent_created(path: &Path) -> anyhow::Result<&Path> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The temporary file beside `path` (mode `mode` before a byte is written), fsynced, renamed
/// over `path`, then `dir` fsynced.
fn replace(path: &Path, dir: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let shown = path.display();
    let name = path
        .file_name()
        .with_context(|| format!("{shown} names no file"))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".cogbroker-");
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file beside {shown}"))?;
    // The umask may have narrowed the mode asked for at creation: set it exactly.
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of the new {shown}"))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write the new {shown}"))?;
    temp.persist(path)
        .map_err(|error| error.error)
        .with_context(|| format!("cannot replace {shown}"))?;
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_keeping_the_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_new_file_gets_the_given_mode_and_its_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/config.json");
        write(&path, b"{}", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{}");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join("a"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
    }
}
