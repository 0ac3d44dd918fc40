//! `setup git`: for each host, in git's global config,
//!
//! ```text
//! [credential "https://HOST"]
//!     helper =
//!     helper = !cogbroker git-credential --profile P
//! ```
//!
//! The empty `helper` first resets the helper list for that host (as `gh auth setup-git` does),
//! so a storage helper configured for every host (`credential.helper = store`) never answers
//! with a stale copy before us. The edit is made by git itself (`git config --file`) on a copy
//! of the file, which is then written atomically in place, so git's own format and the user's
//! comments stay. The file is git's `--global` one: `$GIT_CONFIG_GLOBAL`, else `~/.gitconfig`,
//! else `$XDG_CONFIG_HOME/git/config` when only that exists, exactly as `git config --global`
//! chooses.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use super::{Plan, Request, env_path, home, read_existing};
use crate::config::EnvSource;

/// The file `git config --global` writes.
pub fn global_path(env: &dyn EnvSource) -> anyhow::Result<PathBuf> {
    if let Some(path) = env_path(env, "GIT_CONFIG_GLOBAL") {
        return Ok(path);
    }
    let home = home(env)?;
    let user = home.join(".gitconfig");
    let xdg = env_path(env, "XDG_CONFIG_HOME")
        .filter(|dir| dir.is_absolute())
        .unwrap_or_else(|| home.join(".config"))
        .join("git")
        .join("config");
    Ok(if !user.exists() && xdg.is_file() {
        xdg
    } else {
        user
    })
}

/// The git config key of the helper list for `host`.
pub fn helper_key(host: &str) -> String {
    format!("credential.https://{host}.helper")
}

/// The helper command line for `profile`.
pub fn helper_value(profile: &str) -> String {
    format!("!cogbroker git-credential --profile {profile}")
}

/// Plans the change.
pub fn plan(request: &Request, env: &dyn EnvSource) -> anyhow::Result<Plan> {
    anyhow::ensure!(
        !request.hosts.is_empty(),
        "setup git needs the git hosts: add `hosts = [\"git.example.com\"]` to [profiles.{}] or \
         pass --host",
        request.profile
    );
    let (path, old) = read_existing(&global_path(env)?)?;
    let wanted = ["".to_owned(), helper_value(&request.profile)];
    if old.is_some() {
        let mut all_set = true;
        for host in &request.hosts {
            // Also proves the file parses: git refuses a malformed one here.
            if get_all(&path, &helper_key(host))? != wanted {
                all_set = false;
            }
        }
        if all_set {
            return Ok(Plan {
                path,
                new: old.clone().unwrap_or_default(),
                old,
                new_file_mode: 0o644,
                notes: Vec::new(),
            });
        }
    }
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let copy = scratch.path().join("config");
    std::fs::write(&copy, old.as_deref().unwrap_or_default())
        .context("cannot copy the git config to a scratch file")?;
    for host in &request.hosts {
        let key = helper_key(host);
        git_config(&copy, &["--replace-all", &key, ""])?;
        git_config(&copy, &["--add", &key, &wanted[1]])?;
    }
    let new = std::fs::read(&copy).context("cannot read the edited scratch copy")?;
    Ok(Plan {
        path,
        old,
        new,
        new_file_mode: 0o644,
        notes: Vec::new(),
    })
}

/// `git config --file FILE --get-all KEY`: the values, none when unset.
pub fn get_all(file: &Path, key: &str) -> anyhow::Result<Vec<String>> {
    let output = git(file, &["--get-all", key])?;
    match output.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()),
        Some(1) => Ok(Vec::new()), // the key is not set
        _ => Err(git_failed(file, &output)),
    }
}

fn git_config(file: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = git(file, args)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(git_failed(file, &output))
    }
}

fn git(file: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new("git")
        .arg("config")
        .arg("--file")
        .arg(file)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run git (is it installed and on PATH?)")
}

fn git_failed(file: &Path, output: &std::process::Output) -> anyhow::Error {
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::anyhow!(
        "git config refused {} ({}): {}; fix it first (nothing was changed)",
        file.display(),
        output.status,
        stderr.trim()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env(home: &Path) -> BTreeMap<String, String> {
        BTreeMap::from([("HOME".to_owned(), home.display().to_string())])
    }

    #[test]
    fn the_global_file_is_chosen_as_git_chooses_it() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        assert_eq!(global_path(&env(home)).unwrap(), home.join(".gitconfig"));
        std::fs::create_dir_all(home.join(".config/git")).unwrap();
        std::fs::write(home.join(".config/git/config"), "").unwrap();
        assert_eq!(
            global_path(&env(home)).unwrap(),
            home.join(".config/git/config")
        );
        std::fs::write(home.join(".gitconfig"), "").unwrap();
        assert_eq!(global_path(&env(home)).unwrap(), home.join(".gitconfig"));
        let mut env = env(home);
        env.insert("GIT_CONFIG_GLOBAL".to_owned(), "/x/gitconfig".to_owned());
        assert_eq!(global_path(&env).unwrap(), Path::new("/x/gitconfig"));
    }
}
