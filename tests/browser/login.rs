//! The browser login (design.md §14) driven by real headless Chromium: `cogbroker login P
//! --browser` runs `$BROWSER`, here a script that fetches the emulator's login form from the
//! authorize URL it is given, fills in the user's password, and has Chromium submit it. The
//! pool redirects Chromium to the CLI's loopback listener; the CLI hands the redirect to the
//! daemon, which checks `state` and redeems the code with the PKCE verifier (the emulator checks
//! it). Then the tokens are there, and nothing else listens on the callback port.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{EmulatorHost, ProfileSpec, Sandbox, expect_code, read_text};

const CLIENT: &str = "webapp";
const USER: &str = "alice";
const PASSWORD: &str = "Alice-Passw0rd!";

/// `$BROWSER`: the URL is its last argument. Chromium is left running (the CLI never waits
/// for a browser); its pid goes to `$WORK/chromium.pid` for the test to end it.
const BROWSER_SCRIPT: &str = r#"#!/bin/sh
set -eu
url="$1"
printf '%s\n' "$url" > "$WORK/opened-url"
curl -sf "$url" -o "$WORK/form.html"
origin=$(printf '%s' "$url" | sed -E 's|^(https?://[^/]+).*|\1|')
sed -e "s|action=\"/oauth2/authorize\"|action=\"$origin/oauth2/authorize\"|" \
    -e "s|<input name=\"username\"|<input name=\"username\" value=\"$SIGNIN_USER\"|" \
    -e "s|<input name=\"password\"|<input name=\"password\" value=\"$SIGNIN_PASSWORD\"|" \
    "$WORK/form.html" > "$WORK/signin.html"
printf '<script>document.forms[0].submit()</script>\n' >> "$WORK/signin.html"
"$CHROMIUM" --headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --user-data-dir="$WORK/chromium" \
    "file://$WORK/signin.html" > "$WORK/chromium.log" 2>&1 &
echo $! > "$WORK/chromium.pid"
"#;

#[test]
fn chromium_signs_in_through_the_login_page_and_the_loopback_redirect() -> anyhow::Result<()> {
    let chromium = super::chromium()?;
    let port = cogbroker_e2e::free_port()?;
    let callback = format!("http://localhost:{port}/callback");
    let emulator = EmulatorHost::start(&format!(
        r#"[[pools]]
id = "us-east-1_Browser2"

[[pools.clients]]
id = "{CLIENT}"
allowed_oauth_flows = ["code"]
allowed_scopes = ["openid", "email"]
callback_urls = ["{callback}"]

[[pools.users]]
username = "{USER}"
password = "{PASSWORD}"
email = "alice@example.com"
"#
    ))?;
    let profile = ProfileSpec::raw(
        "web",
        &format!(
            "grant = \"authorization_code\"\ndomain = \"{}\"\nclient_id = \"{CLIENT}\"\nredirect_uri = \"{callback}\"\n",
            emulator.endpoint
        ),
    );
    let sandbox = Sandbox::new(&emulator.endpoint, &[profile])?;
    let mut daemon = sandbox.serve(&[])?;
    let work = sandbox.dir.path().join("browser-login");
    std::fs::create_dir_all(&work)?;
    let script = work.join("browser.sh");
    std::fs::write(&script, BROWSER_SCRIPT)?;
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()?;

    let mut command = sandbox.command()?;
    command
        .args(["login", "web", "--browser"])
        .env("BROWSER", &script)
        .env("WORK", &work)
        .env("CHROMIUM", &chromium)
        .env("SIGNIN_USER", USER)
        .env("SIGNIN_PASSWORD", PASSWORD)
        .stdin(Stdio::null());
    let output = cogbroker_e2e::daemon::run_with_stdin(command, None);
    let killed = end_chromium(&work);
    let output = output?;
    killed?;
    let chromium_log = read_text(&work.join("chromium.log")).unwrap_or_default();
    expect_code(&output, 0).with_context(|| format!("chromium said:\n{chromium_log}"))?;
    ensure!(
        String::from_utf8_lossy(&output.stdout).contains("web: logged in"),
        "{output:?}"
    );

    let opened = read_text(&work.join("opened-url"))?;
    let url = url::Url::parse(opened.trim())?;
    let query: std::collections::BTreeMap<String, String> =
        url.query_pairs().into_owned().collect();
    ensure!(query["code_challenge_method"] == "S256", "{opened}");
    ensure!(query["redirect_uri"] == callback, "{opened}");
    ensure!(query["state"].len() >= 22, "{opened}");
    ensure!(
        emulator.handle.calls("oauth2/token") == 1,
        "one code redemption"
    );

    let output = sandbox.cli(&["token", "web", "--kind", "id"], None)?;
    expect_code(&output, 0)?;
    let claims = cognito_auth::tokens::decode_claims(String::from_utf8(output.stdout)?.trim())?;
    ensure!(claims.username.as_deref() == Some(USER), "{claims:?}");
    // The listener lived only while the login was pending.
    ensure!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on the callback port"
    );
    daemon.terminate()?;
    Ok(())
}

/// Ends the Chromium the script started (by its pid), if it started one.
fn end_chromium(work: &Path) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(work.join("chromium.pid")) else {
        return Ok(());
    };
    let pid: i32 = text.trim().parse().context("the chromium pid")?;
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    Ok(())
}
