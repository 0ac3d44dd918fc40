//! Real cargo against a loopback sparse registry with `auth-required: true` that demands
//! `Authorization: Bearer <valid access token>` on every request (config.json, the index entry,
//! the .crate), with a private CARGO_HOME: through the credential-provider protocol as cargo
//! really runs it (`cogbroker --cargo-plugin`, the rest in `args`), and through
//! `cargo:token-from-stdout cogbroker token P --format bearer`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::expect_code;
use cognito_auth::tokens::TokenUse;
use serde_json::json;
use sha2::Digest as _;

use super::fixture::{Response, Server, Verifier, World, run, shown};

const CRATE: &str = "cbdemo";

/// `cbdemo-0.1.0.crate`, packed by the system tar.
fn crate_file(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let source = dir.join(format!("{CRATE}-0.1.0"));
    std::fs::create_dir_all(source.join("src"))?;
    std::fs::write(
        source.join("Cargo.toml"),
        format!("[package]\nname = \"{CRATE}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
    )?;
    std::fs::write(source.join("src/lib.rs"), "pub fn answer() -> u32 { 42 }\n")?;
    let packed = dir.join(format!("{CRATE}-0.1.0.crate"));
    let output = Command::new("tar")
        .arg("-czf")
        .arg(&packed)
        .arg("-C")
        .arg(dir)
        .arg(format!("{CRATE}-0.1.0"))
        .output()?;
    expect_code(&output, 0)?;
    Ok(std::fs::read(packed)?)
}

fn registry(world: &World) -> anyhow::Result<Server> {
    let verifier: Arc<Verifier> = Arc::clone(&world.verifier);
    let packed = crate_file(&world.sandbox.dir.path().join("crate-src"))?;
    let checksum = format!("{:x}", sha2::Sha256::digest(&packed));
    let base = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let base_in_handler = Arc::clone(&base);
    let server = Server::start(None, move |request| {
        let authorized = request
            .bearer()
            .is_some_and(|token| verifier.accepts(token, TokenUse::Access));
        if !authorized {
            return Response::new(401, "text/plain", "token required").with_header(
                "WWW-Authenticate",
                "Cargo login_url=\"https://example.invalid/login\"",
            );
        }
        let base = base_in_handler.get().cloned().unwrap_or_default();
        match request.target.as_str() {
            "/config.json" => Response::json(
                200,
                &json!({"dl": format!("{base}/api/v1/crates"), "api": base, "auth-required": true}),
            ),
            "/cb/de/cbdemo" => Response::new(
                200,
                "text/plain",
                format!(
                    "{}\n",
                    json!({"name": CRATE, "vers": "0.1.0", "deps": [], "cksum": checksum, "features": {}, "yanked": false})
                ),
            ),
            "/api/v1/crates/cbdemo/0.1.0/download" => {
                Response::new(200, "application/gzip", packed.clone())
            }
            _ => Response::new(404, "text/plain", "not found"),
        }
    })?;
    let _ = base.set(format!("http://127.0.0.1:{}", server.addr.port()));
    Ok(server)
}

/// A project depending on `cbdemo` from registry `corp`, and a CARGO_HOME whose config
/// declares `corp` with `credential_provider` (a TOML value).
fn project(
    world: &World,
    server: &Server,
    name: &str,
    credential_provider: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let root = world.sandbox.dir.path().join(name);
    let cargo_home = root.join("cargo-home");
    std::fs::create_dir_all(&cargo_home)?;
    std::fs::write(
        cargo_home.join("config.toml"),
        format!(
            "[registries.corp]\nindex = \"sparse+http://127.0.0.1:{}/\"\ncredential-provider = {credential_provider}\n",
            server.addr.port()
        ),
    )?;
    let app = root.join("app");
    std::fs::create_dir_all(app.join("src"))?;
    std::fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{CRATE} = {{ version = \"0.1\", registry = \"corp\" }}\n"
        ),
    )?;
    std::fs::write(app.join("src/main.rs"), "fn main() {}\n")?;
    Ok((app, cargo_home))
}

fn cargo(
    world: &World,
    app: &Path,
    cargo_home: &Path,
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".rustup")))
        .context("where rustup keeps the toolchains")?;
    let toolchain = std::env::var_os("RUSTUP_TOOLCHAIN");
    let mut command = world.client("cargo", &app.join("home"))?;
    command
        .current_dir(app)
        .env("CARGO_HOME", cargo_home)
        .env("RUSTUP_HOME", rustup_home)
        .args(args);
    if let Some(toolchain) = toolchain {
        command.env("RUSTUP_TOOLCHAIN", toolchain);
    }
    run(command, None)
}

#[test]
fn cargo_fetches_through_the_credential_provider() -> anyhow::Result<()> {
    let world = World::start("", "")?;
    let server = registry(&world)?;
    let token = world.token("access")?;
    let (app, home) = project(
        &world,
        &server,
        "provider",
        r#"["cogbroker", "cargo-credential", "--profile", "dev"]"#,
    )?;
    for step in [&["generate-lockfile"][..], &["fetch"]] {
        let output = cargo(&world, &app, &home, step)?;
        expect_code(&output, 0).with_context(|| format!("cargo {step:?}"))?;
    }
    let lock = std::fs::read_to_string(app.join("Cargo.lock"))?;
    ensure!(lock.contains("name = \"cbdemo\""), "{lock}");
    let downloaded = server
        .requests()
        .iter()
        .any(|r| r.target.ends_with("/download") && r.bearer() == Some(token.as_str()));
    ensure!(
        downloaded,
        "the .crate was fetched with the profile's token"
    );
    Ok(())
}

#[test]
fn cargo_fetches_through_token_from_stdout() -> anyhow::Result<()> {
    let world = World::start("", "")?;
    let server = registry(&world)?;
    let (app, home) = project(
        &world,
        &server,
        "stdout",
        r#""cargo:token-from-stdout cogbroker token dev --format bearer""#,
    )?;
    let output = cargo(&world, &app, &home, &["generate-lockfile"])?;
    expect_code(&output, 0)?;
    ensure!(std::fs::read_to_string(app.join("Cargo.lock"))?.contains("cbdemo"));
    Ok(())
}

#[test]
fn cargo_shows_that_a_login_is_needed() -> anyhow::Result<()> {
    let world = World::start("", "")?;
    let server = registry(&world)?;
    let (app, home) = project(
        &world,
        &server,
        "idle",
        r#"["cogbroker", "cargo-credential", "--profile", "idle"]"#,
    )?;
    let output = cargo(&world, &app, &home, &["generate-lockfile"])?;
    ensure!(!output.status.success(), "{}", shown(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        stderr.contains("cogbroker login idle"),
        "{}",
        shown(&output)
    );
    Ok(())
}

#[test]
fn the_provider_protocol_line_by_line() -> anyhow::Result<()> {
    let world = World::start("hosts = [\"cargo.example.com\"]", "")?;
    let token = world.token("access")?;
    let request = |kind: &str, extra: &str, args: &str| {
        format!(
            r#"{{"v":1,"registry":{{"index-url":"sparse+https://cargo.example.com/index/"}},"kind":"{kind}"{extra},"args":{args}}}"#
        )
    };
    let input = [
        request("get", r#","operation":"read""#, "[]"),
        request("get", r#","operation":"publish","name":"c","vers":"1.0.0","cksum":"00""#, r#"["cargo-credential","--profile","dev"]"#),
        request("login", r#","token":"typed""#, "[]"),
        request("logout", "", "[]"),
        request("rotate", "", "[]"),
        r#"{"v":1,"registry":{"index-url":"sparse+https://other.example.com/"},"kind":"get","operation":"read","args":[]}"#.to_owned(),
        request("get", r#","operation":"read""#, r#"["cargo-credential","--profile","idle"]"#),
        "not json".to_owned(),
    ]
    .join("\n");
    let output = world.cli(&["--cargo-plugin"], Some(&format!("{input}\n")))?;
    expect_code(&output, 0)?;
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(lines.len() == 9, "{lines:?}");
    ensure!(lines[0] == json!({"v": [1]}));
    for reply in &lines[1..3] {
        ensure!(
            reply["Ok"]["kind"] == "get"
                && reply["Ok"]["token"] == format!("Bearer {token}").as_str(),
            "{reply}"
        );
        ensure!(
            reply["Ok"]["cache"] == "expires" && reply["Ok"]["expiration"].as_u64().is_some(),
            "{reply}"
        );
    }
    ensure!(
        lines[3]["Err"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cogbroker login dev")),
        "{}",
        lines[3]
    );
    ensure!(
        lines[4]["Err"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cogbroker logout dev")),
        "{}",
        lines[4]
    );
    ensure!(
        lines[5] == json!({"Err": {"kind": "operation-not-supported"}}),
        "{}",
        lines[5]
    );
    ensure!(
        lines[6] == json!({"Err": {"kind": "url-not-supported"}}),
        "{}",
        lines[6]
    );
    ensure!(
        lines[7]["Err"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cogbroker login idle")),
        "{}",
        lines[7]
    );
    ensure!(
        lines[8]["Err"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a JSON object")),
        "{}",
        lines[8]
    );
    Ok(())
}
