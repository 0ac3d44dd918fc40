//! `cogbroker setup` against a private HOME: each consumer's file gains exactly our entry, keeps
//! everything else (comments included, where the format has them), keeps its mode, is never
//! written on a second run or with `--dry-run`, and a malformed file is an error that leaves it
//! untouched. The results are read back with the real tools: both installed git versions,
//! kubectl, and the AWS CLI where installed.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::expect_code;
use cogbroker_e2e::workspace_binary;
use serde_json::Value;

/// Variables that would point the tools somewhere else than the private HOME.
const REDIRECTS: &[&str] = &[
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "DOCKER_CONFIG",
    "KUBECONFIG",
    "CARGO_HOME",
    "AWS_CONFIG_FILE",
    "AWS_PROFILE",
    "XDG_CONFIG_HOME",
    "COGBROKER_CONFIG",
];

/// A private HOME with a cogbroker config holding one profile `dev` and its `hosts`.
struct Home {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Home {
    fn new() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("cb-setup-").tempdir()?;
        let config = dir.path().join("cogbroker.toml");
        std::fs::write(
            &config,
            "[profiles.dev]\nregion = \"us-east-1\"\nuser_pool_id = \"us-east-1_Setup1\"\n\
             client_id = \"setup-client\"\nusername = \"alice\"\n\
             hosts = [\"git.example.com\", \"registry.example.com:5000\"]\n",
        )?;
        Ok(Self { dir, config })
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Any program with HOME here and no redirecting variables.
    fn program(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        for var in REDIRECTS {
            command.env_remove(var);
        }
        command.env("HOME", self.dir.path());
        command
    }

    fn setup(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut command = self.program(workspace_binary("cogbroker")?);
        command
            .arg("--config")
            .arg(&self.config)
            .arg("setup")
            .args(args);
        command.output().context("run cogbroker setup")
    }

    fn write(&self, relative: &str, text: &str, mode: u32) -> anyhow::Result<PathBuf> {
        let path = self.path(relative);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(path)
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The file's bytes, mode and inode: a rename (a write) changes the inode.
fn snapshot(path: &Path) -> anyhow::Result<(Vec<u8>, u32, u64)> {
    let meta = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    Ok((
        std::fs::read(path)?,
        meta.permissions().mode() & 0o7777,
        meta.ino(),
    ))
}

/// Runs `setup ARGS` three ways: `--dry-run` (prints the change, writes nothing), for real
/// (writes, mode kept), again (already set up, no write). Returns the written text.
fn setup_three_times(home: &Home, args: &[&str], path: &Path) -> anyhow::Result<String> {
    let before = snapshot(path).ok();

    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let output = home.setup(&dry)?;
    expect_code(&output, 0)?;
    ensure!(
        stdout(&output).contains("dry run: nothing written"),
        "{}",
        stdout(&output)
    );
    ensure!(
        stdout(&output).contains("\n+ "),
        "the change is shown: {}",
        stdout(&output)
    );
    ensure!(
        snapshot(path).ok() == before,
        "--dry-run wrote {}",
        path.display()
    );

    let output = home.setup(args)?;
    expect_code(&output, 0)?;
    ensure!(
        stdout(&output).contains(&format!("wrote {}", path.display())),
        "{}",
        stdout(&output)
    );
    let (bytes, mode, inode) = snapshot(path)?;
    if let Some((_, old_mode, _)) = &before {
        ensure!(mode == *old_mode, "mode {mode:o}, was {old_mode:o}");
    }

    let output = home.setup(args)?;
    expect_code(&output, 0)?;
    ensure!(
        stdout(&output).contains("already set up for profile dev (nothing written)"),
        "{}",
        stdout(&output)
    );
    ensure!(
        snapshot(path)? == (bytes.clone(), mode, inode),
        "a second run wrote"
    );
    Ok(String::from_utf8(bytes)?)
}

/// A malformed file: exit 1 naming it, file untouched.
fn refuses_malformed(home: &Home, args: &[&str], path: &Path) -> anyhow::Result<()> {
    let before = snapshot(path)?;
    let output = home.setup(args)?;
    expect_code(&output, 1)?;
    let message = stderr(&output);
    ensure!(
        message.contains(&path.display().to_string()) && message.contains("nothing was changed"),
        "{message}"
    );
    ensure!(stdout(&output).is_empty(), "{}", stdout(&output));
    ensure!(snapshot(path)? == before, "a malformed file was touched");
    Ok(())
}

/// Each installed git binary (2.47 under /usr/local/bin, Debian's 2.39 as /usr/bin/git).
fn gits() -> Vec<PathBuf> {
    ["/usr/local/bin/git", "/usr/bin/git"]
        .into_iter()
        .map(PathBuf::from)
        .filter(|git| git.is_file())
        .collect()
}

fn git_values(
    home: &Home,
    git: &Path,
    extra_env: &[(&str, &Path)],
    key: &str,
) -> anyhow::Result<Vec<String>> {
    let mut command = home.program(git);
    for (name, value) in extra_env {
        command.env(name, value);
    }
    let output = command
        .args(["config", "--global", "--get-all", key])
        .output()?;
    expect_code(&output, 0)?;
    Ok(stdout(&output).lines().map(str::to_owned).collect())
}

#[test]
fn git_gets_a_helper_per_host_and_keeps_the_rest() -> anyhow::Result<()> {
    let found = gits();
    ensure!(!found.is_empty(), "no git installed");
    for git in &found {
        let home = Home::new()?;
        let original =
            "# my settings\n[user]\n\tname = Alice # me\n[credential]\n\thelper = store\n";
        let path = home.write(".gitconfig", original, 0o640)?;
        // The setup's own `git config` calls use this git.
        let mut path_var = git
            .parent()
            .context("git's directory")?
            .as_os_str()
            .to_owned();
        path_var.push(":");
        path_var.push(std::env::var_os("PATH").unwrap_or_default());
        let with_git = |args: &[&str]| -> anyhow::Result<Output> {
            let mut command = home.program(workspace_binary("cogbroker")?);
            command
                .env("PATH", &path_var)
                .arg("--config")
                .arg(&home.config)
                .arg("setup")
                .args(args);
            Ok(command.output()?)
        };
        let output = with_git(&["git"])?;
        expect_code(&output, 0)?;
        let text = std::fs::read_to_string(&path)?;
        ensure!(
            text.starts_with(original),
            "{}: the old lines stay: {text}",
            git.display()
        );
        // Read back by every installed git, the way git itself resolves --global.
        for reader in &found {
            for host in ["git.example.com", "registry.example.com:5000"] {
                let values = git_values(
                    &home,
                    reader,
                    &[],
                    &format!("credential.https://{host}.helper"),
                )?;
                ensure!(
                    values == ["", "!cogbroker git-credential --profile dev"],
                    "{} reads {values:?}",
                    reader.display()
                );
            }
            let name = git_values(&home, reader, &[], "user.name")?;
            ensure!(name == ["Alice"], "{name:?}");
        }
        let output = with_git(&["git"])?;
        expect_code(&output, 0)?;
        ensure!(
            stdout(&output).contains("already set up"),
            "{}",
            stdout(&output)
        );
    }

    // Dry run, mode, idempotence; and GIT_CONFIG_GLOBAL is the file when set.
    let home = Home::new()?;
    let path = home.write(".gitconfig", "[core]\n\teditor = vi\n", 0o600)?;
    let text = setup_three_times(&home, &["git", "--host", "other.example.com"], &path)?;
    ensure!(
        text.contains("[credential \"https://other.example.com\"]"),
        "{text}"
    );
    ensure!(
        !text.contains("git.example.com"),
        "--host replaces the profile's hosts: {text}"
    );

    let elsewhere = home.path("elsewhere/gitconfig");
    let mut command = home.program(workspace_binary("cogbroker")?);
    command
        .env("GIT_CONFIG_GLOBAL", &elsewhere)
        .arg("--config")
        .arg(&home.config)
        .args(["setup", "git"]);
    expect_code(&command.output()?, 0)?;
    let values = git_values(
        &home,
        &found[0],
        &[("GIT_CONFIG_GLOBAL", &elsewhere)],
        "credential.https://git.example.com.helper",
    )?;
    ensure!(values.len() == 2, "{values:?}");

    let broken = home.write(".gitconfig", "[core\n\teditor = vi\n", 0o644)?;
    refuses_malformed(&home, &["git"], &broken)
}

#[test]
fn kubectl_gets_an_exec_user_read_back_by_kubectl() -> anyhow::Result<()> {
    let home = Home::new()?;
    let original = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://k8s.example.com\ncontexts:\n- name: prod\n  context:\n    cluster: prod\n    user: admin\ncurrent-context: prod\nusers:\n- name: admin\n  user:\n    token: not-a-real-token\n";
    let path = home.write(".kube/config", original, 0o600)?;
    setup_three_times(&home, &["kubectl"], &path)?;
    let output = home
        .program("kubectl")
        .args(["config", "view", "--raw", "-o", "json"])
        .output()?;
    expect_code(&output, 0)?;
    let view: Value = serde_json::from_slice(&output.stdout)?;
    let users = view["users"].as_array().context("users")?;
    let ours = users
        .iter()
        .find(|user| user["name"] == "cogbroker-dev")
        .context("no cogbroker-dev user")?;
    let exec = &ours["user"]["exec"];
    ensure!(
        exec["apiVersion"] == "client.authentication.k8s.io/v1",
        "{exec}"
    );
    ensure!(exec["command"] == "cogbroker", "{exec}");
    ensure!(
        exec["args"] == serde_json::json!(["kube-credential", "dev"]),
        "{exec}"
    );
    ensure!(exec["interactiveMode"] == "Never", "{exec}");
    // Everything else is still there.
    ensure!(
        users
            .iter()
            .any(|user| user["name"] == "admin" && user["user"]["token"] == "not-a-real-token")
    );
    ensure!(view["current-context"] == "prod");
    ensure!(view["clusters"][0]["cluster"]["server"] == "https://k8s.example.com");

    // KUBECONFIG's first entry is the file.
    let first = home.path("k/first");
    let second = home.write("k/second", original, 0o600)?;
    let mut list = first.as_os_str().to_owned();
    list.push(":");
    list.push(&second);
    let mut command = home.program(workspace_binary("cogbroker")?);
    command
        .env("KUBECONFIG", &list)
        .arg("--config")
        .arg(&home.config)
        .args(["setup", "kubectl"]);
    expect_code(&command.output()?, 0)?;
    ensure!(std::fs::read_to_string(&first)?.contains("cogbroker-dev"));
    ensure!(
        std::fs::read_to_string(&second)? == original,
        "the second entry is untouched"
    );

    let broken = home.write(".kube/config", "users: [\n", 0o600)?;
    refuses_malformed(&home, &["kubectl"], &broken)
}

#[test]
fn docker_gets_cred_helpers_per_registry_keeping_other_keys() -> anyhow::Result<()> {
    let home = Home::new()?;
    let original = "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {}\n\t},\n\t\"credHelpers\": {\n\t\t\"gcr.io\": \"gcloud\"\n\t},\n\t\"psFormat\": \"table {{.ID}}\"\n}";
    let path = home.write(".docker/config.json", original, 0o600)?;
    let text = setup_three_times(&home, &["docker"], &path)?;
    let value: Value = serde_json::from_str(&text)?;
    ensure!(value["credHelpers"]["gcr.io"] == "gcloud", "{text}");
    ensure!(
        value["credHelpers"]["git.example.com"] == "cogbroker",
        "{text}"
    );
    ensure!(
        value["credHelpers"]["registry.example.com:5000"] == "cogbroker",
        "{text}"
    );
    ensure!(value["psFormat"] == "table {{.ID}}", "{text}");
    let keys: Vec<&String> = value.as_object().context("an object")?.keys().collect();
    ensure!(
        keys == ["auths", "credHelpers", "psFormat"],
        "key order kept: {keys:?}"
    );

    let broken = home.write(".docker/config.json", "{\"auths\": ", 0o600)?;
    refuses_malformed(&home, &["docker"], &broken)
}

#[test]
fn cargo_gets_a_credential_provider_keeping_comments() -> anyhow::Result<()> {
    let home = Home::new()?;
    let original = "# my cargo settings\n[net]\ngit-fetch-with-cli = true # corporate proxy\n\n[registries.corp]\nindex = \"sparse+https://cargo.example.com/index/\"\n";
    let path = home.write(".cargo/config.toml", original, 0o644)?;
    let text = setup_three_times(&home, &["cargo", "--registry", "corp"], &path)?;
    ensure!(
        text == format!(
            "{original}credential-provider = [\"cogbroker\", \"cargo-credential\", \"--profile\", \"dev\"]\n"
        ),
        "{text}"
    );
    let text = setup_three_times(&home, &["cargo"], &path)?;
    ensure!(
        text.contains(
            "[registry]\nglobal-credential-providers = [\"cargo:token\", \"cogbroker cargo-credential --profile dev\"]\n"
        ),
        "{text}"
    );
    ensure!(text.starts_with(original), "{text}");

    let broken = home.write(".cargo/config.toml", "[net\n", 0o644)?;
    refuses_malformed(&home, &["cargo"], &broken)
}

#[test]
fn aws_gets_a_credential_process_profile_keeping_comments() -> anyhow::Result<()> {
    let home = Home::new()?;
    let original =
        "# mine\n[default]\nregion = eu-west-1\n\n; work\n[profile work]\nregion = us-east-1\n";
    let path = home.write(".aws/config", original, 0o600)?;
    let text = setup_three_times(&home, &["aws"], &path)?;
    ensure!(
        text == format!(
            "{original}\n[profile dev]\ncredential_process = cogbroker aws-credential-process dev\n"
        ),
        "{text}"
    );
    // The AWS CLI reads it back, where it is installed.
    if let Ok(output) = home
        .program("aws")
        .args(["configure", "get", "credential_process", "--profile", "dev"])
        .output()
    {
        if output.status.code() != Some(127) {
            expect_code(&output, 0)?;
            ensure!(
                stdout(&output).trim() == "cogbroker aws-credential-process dev",
                "{}",
                stdout(&output)
            );
        }
    }

    let broken = home.write(".aws/config", "region = x\n[default]\n", 0o600)?;
    refuses_malformed(&home, &["aws"], &broken)
}

#[test]
fn a_profile_must_be_named_when_there_are_several() -> anyhow::Result<()> {
    let home = Home::new()?;
    let mut text = std::fs::read_to_string(&home.config)?;
    text.push_str("\n[profiles.prod]\nregion = \"us-east-1\"\nuser_pool_id = \"us-east-1_Setup1\"\nclient_id = \"setup-client\"\nusername = \"alice\"\n");
    std::fs::write(&home.config, text)?;
    let output = home.setup(&["aws"])?;
    expect_code(&output, 2)?;
    ensure!(stderr(&output).contains("--profile"), "{}", stderr(&output));
    let output = home.setup(&["git", "--profile", "prod"])?;
    expect_code(&output, 1)?;
    ensure!(
        stderr(&output).contains("hosts = ") && stderr(&output).contains("--host"),
        "{}",
        stderr(&output)
    );
    ensure!(!home.path(".gitconfig").exists());
    Ok(())
}
