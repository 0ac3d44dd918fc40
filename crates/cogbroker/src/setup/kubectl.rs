//! `setup kubectl`: a kubeconfig user `cogbroker-P` whose credentials come from
//!
//! ```yaml
//! exec:
//!   apiVersion: client.authentication.k8s.io/v1
//!   command: cogbroker
//!   args: [kube-credential, P]
//!   interactiveMode: Never
//! ```
//!
//! The edit is made by kubectl itself (`kubectl config set-credentials --exec-…`) on a copy of
//! the kubeconfig, which is then written atomically in place. Why kubectl and not a YAML
//! library: no Rust YAML crate that round-trips comments is well kept, and a kubeconfig is a
//! file kubectl owns: every `kubectl config use-context` rewrites it in kubectl's format, so
//! comments never survive in it anyway (the plan says so when the file has any). The file is
//! the first entry of `$KUBECONFIG`, else `~/.kube/config`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;
use serde_json::Value;

use super::{Plan, Request, home, read_existing};
use crate::config::EnvSource;

/// The exec plugin API version we write (GA since Kubernetes 1.22).
pub const API_VERSION: &str = "client.authentication.k8s.io/v1";

/// The kubeconfig user for `profile`.
pub fn user_name(profile: &str) -> String {
    format!("cogbroker-{profile}")
}

/// The kubeconfig to edit: the first entry of `$KUBECONFIG`, else `~/.kube/config`.
pub fn config_path(env: &dyn EnvSource) -> anyhow::Result<PathBuf> {
    let first = env.var("KUBECONFIG").and_then(|list| {
        list.split(':')
            .find(|entry| !entry.is_empty())
            .map(PathBuf::from)
    });
    match first {
        Some(path) => Ok(path),
        None => Ok(home(env)?.join(".kube").join("config")),
    }
}

/// Plans the change.
pub fn plan(request: &Request, env: &dyn EnvSource) -> anyhow::Result<Plan> {
    let (path, old) = read_existing(&config_path(env)?)?;
    let user = user_name(&request.profile);
    let args = ["kube-credential".to_owned(), request.profile.clone()];
    let mut notes = vec![format!(
        "use it in a context: `kubectl config set-context CONTEXT --user={user}` (kubectl runs exec \
         plugins only for https servers)"
    )];
    if old.is_some() {
        // Also proves the file parses: kubectl refuses a malformed one here.
        let view = view(&path)?;
        if exec_of(&view, &user).is_some_and(|exec| matches_ours(exec, &args)) {
            return Ok(Plan {
                path,
                new: old.clone().unwrap_or_default(),
                old,
                new_file_mode: 0o600,
                notes,
            });
        }
    }
    if old.as_deref().is_some_and(|bytes| {
        String::from_utf8_lossy(bytes)
            .lines()
            .any(|l| l.trim_start().starts_with('#'))
    }) {
        notes.push(
            "kubectl writes the kubeconfig in its own format: its comments are not kept (as with \
             any `kubectl config` command)"
                .to_owned(),
        );
    }
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let copy = scratch.path().join("config");
    std::fs::write(&copy, old.as_deref().unwrap_or_default())
        .context("cannot copy the kubeconfig to a scratch file")?;
    let output = kubectl(&copy)
        .args(["config", "set-credentials", &user])
        .arg(format!("--exec-api-version={API_VERSION}"))
        .arg("--exec-command=cogbroker")
        .arg(format!("--exec-arg={}", args[0]))
        .arg(format!("--exec-arg={}", args[1]))
        .arg("--exec-interactive-mode=Never")
        .output()
        .context("cannot run kubectl (is it installed and on PATH?)")?;
    if !output.status.success() {
        return Err(kubectl_failed(&path, &output));
    }
    let new = std::fs::read(&copy).context("cannot read the edited scratch copy")?;
    Ok(Plan {
        path,
        old,
        new,
        new_file_mode: 0o600,
        notes,
    })
}

/// `kubectl config view --raw -o json` of one file.
pub fn view(file: &Path) -> anyhow::Result<Value> {
    let output = kubectl(file)
        .args(["config", "view", "--raw", "-o", "json"])
        .output()
        .context("cannot run kubectl (is it installed and on PATH?)")?;
    if !output.status.success() {
        return Err(kubectl_failed(file, &output));
    }
    serde_json::from_slice(&output.stdout).context("kubectl config view printed no JSON")
}

/// The `exec` object of kubeconfig user `name`, if it has one.
pub fn exec_of<'a>(view: &'a Value, name: &str) -> Option<&'a Value> {
    view.get("users")?
        .as_array()?
        .iter()
        .find(|user| user.get("name").and_then(Value::as_str) == Some(name))?
        .get("user")?
        .get("exec")
}

fn matches_ours(exec: &Value, args: &[String; 2]) -> bool {
    let text = |key: &str| exec.get(key).and_then(Value::as_str);
    let found_args: Option<Vec<&str>> = exec
        .get("args")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect());
    text("apiVersion") == Some(API_VERSION)
        && text("command") == Some("cogbroker")
        && text("interactiveMode") == Some("Never")
        && found_args == Some(vec![args[0].as_str(), args[1].as_str()])
}

fn kubectl(file: &Path) -> Command {
    let mut command = Command::new("kubectl");
    command.env("KUBECONFIG", file).stdin(Stdio::null());
    command
}

fn kubectl_failed(file: &Path, output: &std::process::Output) -> anyhow::Error {
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::anyhow!(
        "kubectl refused the kubeconfig {} ({}): {}; fix it first (nothing was changed)",
        file.display(),
        output.status,
        stderr.trim()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_first_kubeconfig_entry_is_edited() {
        let env = BTreeMap::from([
            ("HOME".to_owned(), "/home/a".to_owned()),
            ("KUBECONFIG".to_owned(), ":/k/one:/k/two".to_owned()),
        ]);
        assert_eq!(config_path(&env).unwrap(), Path::new("/k/one"));
        let env = BTreeMap::from([("HOME".to_owned(), "/home/a".to_owned())]);
        assert_eq!(
            config_path(&env).unwrap(),
            Path::new("/home/a/.kube/config")
        );
    }

    #[test]
    fn only_our_exact_exec_counts_as_set_up() {
        let view = serde_json::json!({"users": [{"name": "cogbroker-dev", "user": {"exec": {
            "apiVersion": API_VERSION, "command": "cogbroker",
            "args": ["kube-credential", "dev"], "interactiveMode": "Never"}}}]});
        let args = ["kube-credential".to_owned(), "dev".to_owned()];
        assert!(matches_ours(
            exec_of(&view, "cogbroker-dev").unwrap(),
            &args
        ));
        let other = ["kube-credential".to_owned(), "prod".to_owned()];
        assert!(!matches_ours(
            exec_of(&view, "cogbroker-dev").unwrap(),
            &other
        ));
        assert!(exec_of(&view, "cogbroker-prod").is_none());
    }
}
