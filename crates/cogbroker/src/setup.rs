//! `cogbroker setup git|docker|kubectl|cargo|aws`: writes a consumer's own configuration so it
//! asks cogbroker for credentials (design.md §12).
//!
//! Each tool is planned first: the file's current bytes and the bytes it should have, computed
//! by the ecosystem's own tool (`git config`, `kubectl config`) or a format-preserving parser
//! (`serde_json` keeping key order, `toml_edit`, the line-preserving [`ini`] editor), never by
//! splicing strings. Equal bytes mean "already set up" and no write; otherwise the change is
//! shown as a line diff and written atomically ([`crate::atomic::write`]: temp file, fsync, rename,
//! the file's mode kept). A file that does not parse is an error naming it, and is left alone.

pub mod aws;
pub mod cargo;
pub mod docker;
pub mod git;
pub mod ini;
pub mod kubectl;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::EnvSource;

/// The consumers `setup` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// git's credential helper, per host.
    Git,
    /// Docker's `credHelpers`, per registry host.
    Docker,
    /// A kubeconfig user with an `exec:` credential plugin.
    Kubectl,
    /// A cargo credential provider (one registry, or global).
    Cargo,
    /// An AWS shared-config profile with `credential_process`.
    Aws,
}

/// What to set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The cogbroker profile the consumer will ask for.
    pub profile: String,
    /// The hosts (`host` or `host:port`) the consumer should ask cogbroker for (git, docker).
    pub hosts: Vec<String>,
    /// The cargo registry name (`[registries.NAME]`); `None` = global credential providers.
    pub registry: Option<String>,
}

/// A change to one file, not yet written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The file (symbolic links resolved when it exists, so a managed dotfile stays a link).
    pub path: PathBuf,
    /// Its bytes now; `None` when it does not exist.
    pub old: Option<Vec<u8>>,
    /// Its bytes after the change.
    pub new: Vec<u8>,
    /// The mode of a new file (an existing file keeps its own).
    pub new_file_mode: u32,
    /// Things the person should know (what else to do, what the tool does to the file).
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether the file already says what it should.
    pub fn is_noop(&self) -> bool {
        self.old.as_deref() == Some(self.new.as_slice())
    }

    /// Writes the new bytes atomically (a no-op plan writes nothing).
    pub fn apply(&self) -> anyhow::Result<()> {
        if self.is_noop() {
            return Ok(());
        }
        crate::atomic::write(&self.path, &self.new, self.new_file_mode)
    }

    /// The change as a line diff (`-` old, `+` new, two lines of context).
    pub fn diff(&self) -> String {
        let old = String::from_utf8_lossy(self.old.as_deref().unwrap_or_default());
        let new = String::from_utf8_lossy(&self.new);
        line_diff(&old, &new)
    }
}

/// Plans `request` for `tool`, reading paths and files from `env` and the file system.
pub fn plan(tool: Tool, request: &Request, env: &dyn EnvSource) -> anyhow::Result<Plan> {
    match tool {
        Tool::Git => git::plan(request, env),
        Tool::Docker => docker::plan(request, env),
        Tool::Kubectl => kubectl::plan(request, env),
        Tool::Cargo => cargo::plan(request, env),
        Tool::Aws => aws::plan(request, env),
    }
}

/// The user's home directory (`$HOME`, which every one of these tools uses too).
pub(crate) fn home(env: &dyn EnvSource) -> anyhow::Result<PathBuf> {
    match env.var("HOME").filter(|home| Path::new(home).is_absolute()) {
        Some(home) => Ok(PathBuf::from(home)),
        None => anyhow::bail!("HOME is not set to an absolute path: cannot find the config file"),
    }
}

/// An environment variable naming a path, when set and not empty.
pub(crate) fn env_path(env: &dyn EnvSource, var: &str) -> Option<PathBuf> {
    env.var(var)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// Reads the file at `path` (following a symbolic link to its target, whose path is returned),
/// or `None` when it does not exist.
pub(crate) fn read_existing(path: &Path) -> anyhow::Result<(PathBuf, Option<Vec<u8>>)> {
    match std::fs::canonicalize(path) {
        Ok(real) => {
            let bytes = std::fs::read(&real)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", real.display()))?;
            Ok((real, Some(bytes)))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            anyhow::ensure!(
                std::fs::symlink_metadata(path).is_err(),
                "{} is a symbolic link to a missing file: create the target first",
                path.display()
            );
            Ok((path.to_path_buf(), None))
        }
        Err(error) => anyhow::bail!("cannot read {}: {error}", path.display()),
    }
}

/// Checks a `host` or `host:port` as written in `hosts` or `--host`.
pub fn check_host(host: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(&format!("https://{host}/")).ok();
    let round_trips = parsed.as_ref().is_some_and(|url| {
        let shown = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        shown.eq_ignore_ascii_case(host) && url.path() == "/"
    });
    anyhow::ensure!(
        round_trips && !host.is_empty(),
        "{host:?} is not a host name or host:port (no scheme, path or user), e.g. \
         git.example.com or registry.example.com:5000"
    );
    Ok(())
}

/// A minimal exact line diff: the common head and tail are context, the middle is replaced.
/// (Each setup changes one region of a file; this shows exactly that region.)
fn line_diff(old: &str, new: &str) -> String {
    const CONTEXT: usize = 2;
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let head = old_lines
        .iter()
        .zip(&new_lines)
        .take_while(|(a, b)| a == b)
        .count();
    let tail = old_lines[head..]
        .iter()
        .rev()
        .zip(new_lines[head..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = String::new();
    let context_start = head.saturating_sub(CONTEXT);
    if context_start > 0 {
        let _ = writeln!(out, "  ...");
    }
    for line in &old_lines[context_start..head] {
        let _ = writeln!(out, "  {line}");
    }
    for line in &old_lines[head..old_lines.len() - tail] {
        let _ = writeln!(out, "- {line}");
    }
    for line in &new_lines[head..new_lines.len() - tail] {
        let _ = writeln!(out, "+ {line}");
    }
    let after = &old_lines[old_lines.len() - tail..];
    for line in after.iter().take(CONTEXT) {
        let _ = writeln!(out, "  {line}");
    }
    if after.len() > CONTEXT {
        let _ = writeln!(out, "  ...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_shows_the_changed_region_with_context() {
        let old = "a\nb\nc\nd\ne\nf\n";
        let new = "a\nb\nc\nX\nY\ne\nf\n";
        assert_eq!(
            line_diff(old, new),
            "  ...\n  b\n  c\n- d\n+ X\n+ Y\n  e\n  f\n"
        );
        assert_eq!(line_diff("", "x\n"), "+ x\n");
        assert_eq!(line_diff("a\n", "a\nb\n"), "  a\n+ b\n");
    }

    #[test]
    fn hosts() {
        for good in [
            "git.example.com",
            "registry.example.com:5000",
            "127.0.0.1:8443",
        ] {
            check_host(good).unwrap();
        }
        for bad in [
            "",
            "https://git.example.com",
            "git.example.com/team",
            "user@git.example.com",
            "a b",
            "host:notaport",
        ] {
            let error = check_host(bad).unwrap_err();
            assert!(format!("{error}").contains("not a host name"), "{bad}");
        }
    }

    #[test]
    fn a_plan_whose_bytes_match_is_a_noop_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let plan = Plan {
            path: path.clone(),
            old: Some(b"x".to_vec()),
            new: b"x".to_vec(),
            new_file_mode: 0o600,
            notes: Vec::new(),
        };
        assert!(plan.is_noop());
        plan.apply().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_symlinked_file_is_read_through_its_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let (path, bytes) = read_existing(&link).unwrap();
        assert_eq!(path, std::fs::canonicalize(&target).unwrap());
        assert_eq!(bytes.as_deref(), Some(b"x".as_slice()));
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("missing"), &dangling).unwrap();
        assert!(read_existing(&dangling).is_err());
        let (path, bytes) = read_existing(&dir.path().join("none")).unwrap();
        assert_eq!((path, bytes), (dir.path().join("none"), None));
    }
}
