//! Real AWS clients against cogbroker's AWS credentials (design.md §13): the AWS CLI v1 from
//! PyPI through `credential_process` (set up by `cogbroker setup aws`), and boto3 through
//! `cogbroker exec --aws` (the container provider), against the emulator's identity pool and
//! STS and against moto's. `make interop` installs both into its venv and names them in
//! `COGBROKER_AWS_CLI` and `COGBROKER_PYTHON`; without them these tests fail, never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, ensure};
use cogbroker_e2e::daemon::{DaemonProcess, EmulatorHost, ProfileSpec, Sandbox, expect_code};
use cogbroker_e2e::workspace_binary;
use serde_json::Value;

use crate::moto::Moto;

const POOL: &str = "us-east-1_InteropAws";
const CLIENT: &str = "aws-client";
const USER: &str = "alice";
const PASSWORD: &str = "Interop-Aws-Passw0rd!";
const IDENTITY_POOL: &str = "us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f";
const ROLE: &str = "arn:aws:iam::123456789012:role/CognitoAuth";

/// What boto3 runs inside `exec --aws`: the provider it used and who STS says it is.
const BOTO3_SCRIPT: &str = r#"
import json, os, boto3
session = boto3.Session(region_name="us-east-1")
credentials = session.get_credentials()
sts = session.client("sts", endpoint_url=os.environ["STS_ENDPOINT"])
identity = sts.get_caller_identity()
print(json.dumps({"method": credentials.method, "arn": identity["Arn"], "account": identity["Account"]}))
"#;

/// The real clients from the interop venv.
struct Clients {
    aws: PathBuf,
    python: PathBuf,
}

impl Clients {
    fn from_env() -> anyhow::Result<Self> {
        let find = |var: &str| -> anyhow::Result<PathBuf> {
            let path = std::env::var_os(var).map(PathBuf::from).with_context(|| {
                format!("{var} is not set: run these tests through `make interop`, which installs the AWS CLI and boto3")
            })?;
            ensure!(path.is_file(), "{var}={} does not exist", path.display());
            Ok(path)
        };
        Ok(Self {
            aws: find("COGBROKER_AWS_CLI")?,
            python: find("COGBROKER_PYTHON")?,
        })
    }
}

/// A home with `cogbroker` on PATH and no AWS or cogbroker settings from the outside.
struct Home {
    dir: PathBuf,
    path: String,
}

impl Home {
    fn new(sandbox: &Sandbox) -> anyhow::Result<Self> {
        let dir = sandbox.dir.path().join("home");
        let bin = sandbox.dir.path().join("bin");
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(&bin)?;
        std::os::unix::fs::symlink(workspace_binary("cogbroker")?, bin.join("cogbroker"))?;
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Ok(Self { dir, path })
    }

    /// `program` with this home, the sandbox's config, and no inherited AWS_* or COGBROKER_*.
    fn command(&self, sandbox: &Sandbox, program: &Path) -> Command {
        let mut command = Command::new(program);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("AWS_") || key.starts_with("COGBROKER_") || key.starts_with("XDG_") {
                command.env_remove(key);
            }
        }
        command
            .env("HOME", &self.dir)
            .env("PATH", &self.path)
            .env("COGBROKER_CONFIG", &sandbox.config_path)
            .env("COGBROKER_NO_AUTOSTART", "1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        command
    }
}

fn run(mut command: Command) -> anyhow::Result<Output> {
    command.stdin(std::process::Stdio::null());
    command.output().context("run a client")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `cogbroker setup aws --profile dev`, then the AWS CLI through `credential_process`:
/// `configure list` names the custom process, `sts get-caller-identity` at `sts` succeeds.
fn aws_cli_round(
    clients: &Clients,
    sandbox: &Sandbox,
    home: &Home,
    sts: &str,
) -> anyhow::Result<Value> {
    let mut setup = home.command(sandbox, &workspace_binary("cogbroker")?);
    setup.args(["setup", "aws", "--profile", "dev"]);
    let output = run(setup)?;
    expect_code(&output, 0)?;
    let config = std::fs::read_to_string(home.dir.join(".aws/config"))?;
    ensure!(
        config.contains("[profile dev]")
            && config.contains("credential_process = cogbroker aws-credential-process dev"),
        "{config}"
    );

    let mut list = home.command(sandbox, &clients.aws);
    list.args(["configure", "list", "--profile", "dev"]);
    let output = run(list)?;
    expect_code(&output, 0)?;
    let shown = text(&output.stdout);
    ensure!(
        shown
            .lines()
            .any(|line| line.contains("access_key") && line.contains("custom-process")),
        "aws configure list:\n{shown}"
    );

    let mut call = home.command(sandbox, &clients.aws);
    call.args([
        "sts",
        "get-caller-identity",
        "--profile",
        "dev",
        "--output",
        "json",
        "--endpoint-url",
        sts,
    ]);
    let output = run(call)?;
    expect_code(&output, 0)?;
    serde_json::from_slice(&output.stdout).context("get-caller-identity prints JSON")
}

/// boto3 inside `cogbroker exec dev --aws`: the container provider, STS at `sts`.
fn boto3_round(
    clients: &Clients,
    sandbox: &Sandbox,
    home: &Home,
    sts: &str,
) -> anyhow::Result<Value> {
    let mut exec = home.command(sandbox, &workspace_binary("cogbroker")?);
    exec.args(["exec", "dev", "--aws", "--"])
        .arg(&clients.python)
        .args(["-c", BOTO3_SCRIPT])
        .env("STS_ENDPOINT", sts)
        // Another profile's keys in the caller's environment must not win.
        .env("AWS_ACCESS_KEY_ID", "AKIASTALEKEY")
        .env("AWS_SECRET_ACCESS_KEY", "stale");
    let output = run(exec)?;
    expect_code(&output, 0)?;
    let result: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("boto3's output: {}", text(&output.stdout)))?;
    ensure!(result["method"] == "container-role", "{result}");
    Ok(result)
}

fn start_daemon(sandbox: &Sandbox) -> anyhow::Result<DaemonProcess> {
    let daemon = sandbox.serve(&[])?;
    sandbox.login_stdin("dev", PASSWORD)?;
    Ok(daemon)
}

#[test]
fn aws_cli_and_boto3_against_the_emulator() -> anyhow::Result<()> {
    let clients = Clients::from_env()?;
    let seed = format!(
        "[[pools]]\nid = \"{POOL}\"\n\n[[pools.clients]]\nid = \"{CLIENT}\"\n\n\
         [[pools.users]]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\n\
         [[identity_pools]]\nid = \"{IDENTITY_POOL}\"\nuser_pool = \"{POOL}\"\nclient_id = \"{CLIENT}\"\n\
         roles = {{ authenticated = \"{ROLE}\" }}\n"
    );
    let emulator = EmulatorHost::start(&seed)?;
    let mut dev = ProfileSpec::new("dev", POOL, CLIENT, USER);
    dev.extra = format!("identity_pool_id = \"{IDENTITY_POOL}\"");
    let sandbox = Sandbox::new(&emulator.endpoint, &[dev])?;
    let daemon = start_daemon(&sandbox)?;
    let home = Home::new(&sandbox)?;

    let identity = aws_cli_round(&clients, &sandbox, &home, &emulator.endpoint)?;
    let arn = identity["Arn"].as_str().unwrap_or_default();
    ensure!(
        arn.starts_with("arn:aws:sts::123456789012:assumed-role/CognitoAuth/"),
        "{identity}"
    );
    let result = boto3_round(&clients, &sandbox, &home, &emulator.endpoint)?;
    ensure!(result["arn"] == arn, "{result}");
    ensure!(emulator.handle.calls("GetId") == 1);
    ensure!(emulator.handle.calls("GetCallerIdentity") == 2);

    // The session ends upstream: the AWS CLI shows the login hint, boto3's exec exits 4.
    ensure!(emulator.handle.global_sign_out(POOL, USER));
    let output = sandbox.cli(&["refresh", "dev"], None)?;
    expect_code(&output, 4)?;
    let mut call = home.command(&sandbox, &clients.aws);
    call.args([
        "sts",
        "get-caller-identity",
        "--profile",
        "dev",
        "--endpoint-url",
        &emulator.endpoint,
    ]);
    let output = run(call)?;
    ensure!(!output.status.success());
    let stderr = text(&output.stderr);
    ensure!(
        stderr.contains("cogbroker login dev"),
        "aws stderr:\n{stderr}"
    );
    ensure!(text(&output.stdout).is_empty());

    let logs = daemon.stderr_text();
    ensure!(
        !logs.contains("SecretAccessKey\":\""),
        "no credentials in the log"
    );
    Ok(())
}

#[test]
fn the_daemon_against_moto_identity_pools() -> anyhow::Result<()> {
    let clients = Clients::from_env()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let moto = runtime.block_on(Moto::start())?;
    let pool = runtime.block_on(moto.provision_pool(PASSWORD))?;
    let identity_pool =
        runtime.block_on(moto.create_identity_pool(&pool.id, &pool.public_client_id))?;
    let endpoint = moto.endpoint().as_str().trim_end_matches('/').to_owned();

    let mut dev = ProfileSpec::new("dev", &pool.id, &pool.public_client_id, USER);
    dev.extra =
        format!("auth_flow = \"USER_PASSWORD_AUTH\"\nidentity_pool_id = \"{identity_pool}\"");
    let sandbox = Sandbox::new(&endpoint, &[dev])?;
    let daemon = start_daemon(&sandbox)?;

    // moto answers cognito-identity as text/html with a float epoch Expiration.
    let output = sandbox.cli(&["aws-credential-process", "dev"], None)?;
    expect_code(&output, 0)?;
    let json: Value = serde_json::from_slice(&output.stdout)?;
    ensure!(json["Version"] == 1, "{json}");
    ensure!(json["AccessKeyId"] == "TESTACCESSKEY12345", "{json}");
    let expiration = json["Expiration"].as_str().unwrap_or_default();
    ensure!(
        expiration.len() == 20 && expiration.ends_with('Z'),
        "{expiration}"
    );

    let home = Home::new(&sandbox)?;
    let identity = aws_cli_round(&clients, &sandbox, &home, &endpoint)?;
    ensure!(identity["Account"] == "123456789012", "{identity}");
    let result = boto3_round(&clients, &sandbox, &home, &endpoint)?;
    ensure!(result["account"] == "123456789012", "{result}");
    drop(daemon);
    drop(moto);
    Ok(())
}
