//! Who took my token: the audit ring names the real executables of two different consumers,
//! one on the Unix socket (SO_PEERCRED) and one on loopback TCP (socket table inode → process),
//! and the process that ran each, and never holds a token.

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{EmulatorHost, ProfileSpec, Sandbox, expect_code};

const SECRET: &str = "e2e-Audit-Secret-0123456789";

#[test]
fn the_audit_names_each_consumer_executable() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&format!(
        r#"[[pools]]
id = "us-east-1_E2eAudit"

[[pools.resource_servers]]
identifier = "https://api.example.com"
scopes = ["read"]

[[pools.clients]]
id = "machine"
secret = "{SECRET}"
allowed_oauth_flows = ["client_credentials"]
allowed_scopes = ["https://api.example.com/read"]
"#
    ))?;
    let profile = ProfileSpec::raw(
        "m2m",
        &format!(
            "grant = \"client_credentials\"\ndomain = \"{}\"\nclient_id = \"machine\"\nclient_secret = {{ env = \"M2M_SECRET\" }}\n",
            emulator.endpoint
        ),
    );
    let sandbox = Sandbox::new(&emulator.endpoint, &[profile])?;
    let mut daemon = sandbox.serve(&[("M2M_SECRET", SECRET)])?;

    // Consumer one: the cogbroker CLI, over the Unix socket.
    let output = sandbox.cli(&["token", "m2m"], None)?;
    expect_code(&output, 0)?;
    let token = String::from_utf8(output.stdout)?.trim().to_owned();
    // Consumer two: curl, over loopback TCP.
    let tcp = daemon.tcp.context("the daemon's TCP address")?;
    let curl = std::process::Command::new("curl")
        .args([
            "-sf",
            "-H",
            "X-Cogbroker-Request: 1",
            "-H",
            "Accept: text/plain",
        ])
        .arg(format!("http://{tcp}/v1/profiles/m2m/token"))
        .output()
        .context("run curl")?;
    ensure!(curl.status.success(), "curl failed: {curl:?}");
    ensure!(String::from_utf8(curl.stdout)? == token);

    let output = sandbox.cli(&["audit", "m2m", "--json"], None)?;
    expect_code(&output, 0)?;
    let text = String::from_utf8(output.stdout)?;
    ensure!(!text.contains(&token), "the audit holds a token");
    let reply: serde_json::Value = serde_json::from_str(&text)?;
    let entries = reply["entries"].as_array().context("entries")?;
    ensure!(entries.len() == 2, "{reply}");
    let cogbroker = std::fs::canonicalize(cogbroker_e2e::workspace_binary("cogbroker")?)?;
    let curl_exe = std::fs::canonicalize(cogbroker_e2e::on_path("curl")?)?;
    let uid = rustix::process::getuid().as_raw();
    ensure!(entries[0]["transport"] == "unix", "{reply}");
    ensure!(
        entries[0]["exe"] == cogbroker.display().to_string().as_str(),
        "{reply}"
    );
    ensure!(entries[1]["transport"] == "tcp", "{reply}");
    ensure!(
        entries[1]["exe"] == curl_exe.display().to_string().as_str(),
        "{reply}"
    );
    // Both were started by this test.
    let us = std::fs::canonicalize(std::env::current_exe()?)?;
    for entry in entries {
        ensure!(
            entry["parents"][0]["pid"] == std::process::id()
                && entry["parents"][0]["exe"] == us.display().to_string().as_str(),
            "{entry}"
        );
        ensure!(
            entry["uid"] == uid && entry["pid"].as_i64().is_some(),
            "{entry}"
        );
        ensure!(
            entry["profile"] == "m2m" && entry["kind"] == "access",
            "{entry}"
        );
    }
    let output = sandbox.cli(&["audit"], None)?;
    expect_code(&output, 0)?;
    let table = String::from_utf8(output.stdout)?;
    ensure!(table.lines().count() == 2, "{table}");
    ensure!(table.contains(&curl_exe.display().to_string()), "{table}");
    ensure!(
        table.contains(&format!(
            "run by {} (pid {})",
            us.display(),
            std::process::id()
        )),
        "{table}"
    );
    daemon.terminate()?;
    Ok(())
}
