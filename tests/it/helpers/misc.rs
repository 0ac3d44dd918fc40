//! `env` through a real sh, `exec` (the token in the child's environment, exit codes, signal
//! death, signals reaching the command, no shell or parent in between), Bazel's and Go's
//! protocols, `token --format bearer`, and the exit codes every helper shares.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::expect_code;
use serde_json::json;

use super::fixture::{World, shown};

#[test]
fn env_output_survives_a_real_sh() -> anyhow::Result<()> {
    let world = World::start("", "")?;
    let token = world.token("access")?;
    let id_token = world.token("id")?;
    let cogbroker = world.bin_dir()?.join("cogbroker");
    let script = r#"eval "$("$0" --config "$1" env dev)" && eval "$("$0" --config "$1" env dev --kind id --var ID_TOKEN)" && printf '%s\n%s' "$COGBROKER_TOKEN" "$ID_TOKEN""#;
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&cogbroker)
        .arg(&world.sandbox.config_path)
        .output()?;
    expect_code(&output, 0)?;
    ensure!(String::from_utf8(output.stdout)? == format!("{token}\n{id_token}"));

    let output = world.cli(&["env", "dev", "--shell", "fish"], None)?;
    expect_code(&output, 0)?;
    ensure!(output.stdout == format!("set -gx COGBROKER_TOKEN '{token}'\n").as_bytes());
    let output = world.cli(
        &["env", "dev", "--shell", "powershell", "--var", "TOK"],
        None,
    )?;
    expect_code(&output, 0)?;
    ensure!(output.stdout == format!("$Env:TOK = '{token}'\n").as_bytes());
    let output = world.cli(&["env", "dev", "--var", "NOT-A-NAME"], None)?;
    expect_code(&output, 2)?;
    ensure!(
        output.stdout.is_empty()
            && String::from_utf8_lossy(&output.stderr).contains("is not a variable name")
    );
    Ok(())
}

#[test]
fn exec_hands_the_token_to_the_command_and_becomes_it() -> anyhow::Result<()> {
    let world = World::start("", "")?;
    let token = world.token("access")?;
    let output = world.cli(
        &[
            "exec",
            "dev",
            "--",
            "sh",
            "-c",
            "printf %s \"$COGBROKER_TOKEN\"",
        ],
        None,
    )?;
    expect_code(&output, 0)?;
    ensure!(output.stdout == token.as_bytes());
    let output = world.cli(
        &[
            "exec",
            "dev",
            "--var",
            "API_TOKEN",
            "--",
            "printenv",
            "API_TOKEN",
        ],
        None,
    )?;
    expect_code(&output, 0)?;
    ensure!(String::from_utf8(output.stdout)?.trim() == token);
    // Exit codes and signal deaths are the command's own.
    let output = world.cli(&["exec", "dev", "--", "sh", "-c", "exit 7"], None)?;
    ensure!(output.status.code() == Some(7), "{}", shown(&output));
    let output = world.cli(&["exec", "dev", "--", "sh", "-c", "kill -TERM $$"], None)?;
    ensure!(output.status.signal() == Some(15), "{}", shown(&output));
    // Not found / login needed: the command never runs.
    let output = world.cli(&["exec", "dev", "--", "/nonexistent/command"], None)?;
    ensure!(output.status.code() == Some(127), "{}", shown(&output));
    let output = world.cli(&["exec", "idle", "--", "sh", "-c", "echo ran"], None)?;
    expect_code(&output, 4)?;
    ensure!(
        output.stdout.is_empty()
            && String::from_utf8_lossy(&output.stderr).contains("cogbroker login idle")
    );

    // A signal sent to the process we started reaches the command: it *is* that process.
    let mut command = world.sandbox.command()?;
    command
        .args([
            "exec",
            "dev",
            "--",
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while :; do sleep 1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    ensure!(line == "ready\n", "{line:?}");
    let exe = std::fs::read_link(format!("/proc/{}/exe", child.id()))?;
    ensure!(
        !exe.to_string_lossy().contains("cogbroker"),
        "the command replaced cogbroker: {}",
        exe.display()
    );
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id())?).context("pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
    let status = child.wait()?;
    ensure!(status.code() == Some(42), "{status:?}");
    Ok(())
}

#[test]
fn bazel_and_goauth_answers() -> anyhow::Result<()> {
    let world = World::start(
        "hosts = [\"cache.example.com\", \"go.example.com\"]",
        "hosts = [\"idle.example.com\"]",
    )?;
    let token = world.token("access")?;
    let output = world.cli(
        &["bazel-credential", "get"],
        Some(r#"{"uri":"https://cache.example.com/cas/abc"}"#),
    )?;
    expect_code(&output, 0)?;
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    ensure!(
        reply["headers"] == json!({"Authorization": [format!("Bearer {token}")]}),
        "{reply}"
    );
    ensure!(
        reply["expires"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{reply}"
    );
    let output = world.cli(
        &["bazel-credential", "get"],
        Some(r#"{"uri":"https://elsewhere.example.com/x"}"#),
    )?;
    expect_code(&output, 0)?;
    ensure!(output.stdout == b"{\"headers\":{}}\n");
    let output = world.cli(
        &["bazel-credential", "get"],
        Some(r#"{"url":"https://cache.example.com/"}"#),
    )?;
    expect_code(&output, 1)?;
    ensure!(
        output.stdout.is_empty() && String::from_utf8_lossy(&output.stderr).contains("no \"uri\"")
    );
    let output = world.cli(&["bazel-credential", "store"], Some("{}"))?;
    expect_code(&output, 2)?;
    let output = world.cli(
        &["bazel-credential", "get"],
        Some(r#"{"uri":"https://idle.example.com/x"}"#),
    )?;
    expect_code(&output, 4)?;

    // GOAUTH: for the URL Go fetches, its host's prefix; without a URL every profile's hosts.
    let output = world.cli(&["goauth", "https://go.example.com/mod/@v/list"], Some(""))?;
    expect_code(&output, 0)?;
    ensure!(
        output.stdout
            == format!("https://go.example.com/\n\nAuthorization: Bearer {token}\n\n").as_bytes(),
        "{}",
        shown(&output)
    );
    let output = world.cli(&["goauth", "--profile", "dev"], Some(""))?;
    expect_code(&output, 0)?;
    ensure!(
        output.stdout
            == format!("https://cache.example.com/\nhttps://go.example.com/\n\nAuthorization: Bearer {token}\n\n").as_bytes(),
        "{}",
        shown(&output)
    );
    let output = world.cli(&["goauth", "https://unclaimed.example.com/x"], Some(""))?;
    expect_code(&output, 0)?;
    ensure!(output.stdout.is_empty());
    // After a 401 Go passes the response: a token minted seconds ago is not refreshed again.
    let output = world.cli(
        &["goauth", "https://go.example.com/x"],
        Some("HTTP/1.1 401 Unauthorized\nWww-Authenticate: Bearer\n\n"),
    )?;
    expect_code(&output, 0)?;
    ensure!(
        String::from_utf8_lossy(&output.stderr).contains("only seconds old"),
        "{}",
        shown(&output)
    );
    ensure!(String::from_utf8_lossy(&output.stdout).contains(&token));
    let output = world.cli(&["goauth", "https://go.example.com/x"], Some("garbage\n"))?;
    expect_code(&output, 1)?;
    ensure!(String::from_utf8_lossy(&output.stderr).contains("status line"));
    Ok(())
}

#[test]
fn token_bearer_and_the_shared_exit_codes() -> anyhow::Result<()> {
    let mut world = World::start("", "")?;
    let token = world.token("access")?;
    let output = world.cli(&["token", "dev", "--format", "bearer"], None)?;
    expect_code(&output, 0)?;
    ensure!(output.stdout == format!("Bearer {token}\n").as_bytes());
    world.daemon.terminate()?;
    for args in [
        &["kube-credential", "dev"][..],
        &["env", "dev"],
        &["exec", "dev", "--", "true"],
        &["token", "dev", "--format", "bearer"],
    ] {
        let output = world.cli(args, None)?;
        expect_code(&output, 3).with_context(|| format!("{args:?}"))?;
        ensure!(output.stdout.is_empty(), "{args:?}");
        ensure!(
            String::from_utf8_lossy(&output.stderr).contains("cogbroker serve"),
            "{args:?}"
        );
    }
    Ok(())
}
