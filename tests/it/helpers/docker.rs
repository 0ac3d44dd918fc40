//! The real docker CLI, no docker daemon: `docker manifest inspect --insecure` against a
//! loopback TLS registry that demands Basic `<user>:<valid token>` drives `get` through
//! `"credsStore": "cogbroker"` (docker finds `docker-credential-cogbroker` on PATH, a link to
//! the binary: the argv[0] form); `docker logout` drives `erase` four times. Then every action
//! against the helper directly.

use std::process::Command;
use std::sync::Arc;

use anyhow::ensure;
use cogbroker_e2e::daemon::expect_code;
use cognito_auth::tokens::TokenUse;
use serde_json::json;
use sha2::Digest as _;

use super::fixture::{Response, Server, Tls, USER, Verifier, World, run, shown};

const NOT_FOUND: &[u8] = b"credentials not found in native keychain\n";

/// The image config the manifest points at.
const IMAGE_CONFIG: &str =
    r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

fn config_digest() -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(IMAGE_CONFIG.as_bytes()))
}

fn manifest() -> String {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": IMAGE_CONFIG.len(),
            "digest": config_digest(),
        },
        "layers": [],
    })
    .to_string()
}

fn registry(world: &World, tls: &Tls) -> anyhow::Result<Server> {
    let verifier: Arc<Verifier> = Arc::clone(&world.verifier);
    Server::start(Some(Arc::clone(&tls.config)), move |request| {
        let authorized = request.basic().is_some_and(|(user, password)| {
            user == USER && verifier.accepts(&password, TokenUse::Access)
        });
        if !authorized {
            return Response::json(
                401,
                &json!({"errors": [{"code": "UNAUTHORIZED", "message": "token required"}]}),
            )
            .with_header("WWW-Authenticate", "Basic realm=\"test-registry\"")
            .with_header("Docker-Distribution-API-Version", "registry/2.0");
        }
        if request.target == "/v2/" {
            return Response::json(200, &json!({}))
                .with_header("Docker-Distribution-API-Version", "registry/2.0");
        }
        if request.target == "/v2/team/app/manifests/1.0" {
            let body = manifest();
            let digest = format!("sha256:{:x}", sha2::Sha256::digest(body.as_bytes()));
            let body = if request.method == "HEAD" {
                String::new()
            } else {
                body
            };
            return Response::new(
                200,
                "application/vnd.docker.distribution.manifest.v2+json",
                body,
            )
            .with_header("Docker-Content-Digest", &digest)
            .with_header("Docker-Distribution-API-Version", "registry/2.0");
        }
        if request.target == format!("/v2/team/app/blobs/{}", config_digest()) {
            return Response::new(200, "application/octet-stream", IMAGE_CONFIG)
                .with_header("Docker-Content-Digest", &config_digest());
        }
        Response::json(404, &json!({"errors": [{"code": "MANIFEST_UNKNOWN"}]}))
    })
}

fn docker(world: &World, name: &str) -> anyhow::Result<Command> {
    let home = world.sandbox.dir.path().join(name);
    let config = home.join(".docker");
    std::fs::create_dir_all(&config)?;
    std::fs::write(config.join("config.json"), r#"{"credsStore": "cogbroker"}"#)?;
    let mut command = world.client("docker", &home)?;
    command.env("DOCKER_CONFIG", &config).env(
        "DOCKER_HOST",
        format!("unix://{}", home.join("no-daemon.sock").display()),
    );
    Ok(command)
}

#[test]
fn docker_manifest_inspect_gets_the_token_and_logout_erases() -> anyhow::Result<()> {
    let world = World::start("hosts = [\"127.0.0.1\"]", "")?;
    let tls = Tls::self_signed()?;
    let server = registry(&world, &tls)?;
    let token = world.token("access")?;
    let reference = format!("127.0.0.1:{}/team/app:1.0", server.addr.port());

    let mut command = docker(&world, "docker-home")?;
    command.args(["manifest", "inspect", "--insecure", &reference]);
    let output = run(command, None)?;
    expect_code(&output, 0)?;
    let inspected: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    ensure!(inspected["schemaVersion"] == 2, "{}", shown(&output));
    let presented = server
        .requests()
        .iter()
        .filter_map(|r| r.basic())
        .any(|(user, password)| user == USER && password == token);
    ensure!(presented, "docker sent alice:<token> as Basic");

    // docker logout: erase for the bare host (twice), then the http:// and https:// forms.
    // A wrapper named like the helper records each call, then execs the binary under that
    // name (the argv[0] form).
    let bin = world.sandbox.dir.path().join("logout-bin");
    std::fs::create_dir_all(&bin)?;
    let log = world.sandbox.dir.path().join("erase.log");
    let wrapper = bin.join("docker-credential-cogbroker");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/bash\ninput=$(cat)\nprintf '%s %s\\n' \"$1\" \"$input\" >> '{}'\nprintf '%s' \"$input\" | exec -a docker-credential-cogbroker '{}' \"$@\"\n",
            log.display(),
            world.bin_dir()?.join("cogbroker").display()
        ),
    )?;
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let host = format!("127.0.0.1:{}", server.addr.port());
    let mut command = docker(&world, "docker-home")?;
    command
        .env("PATH", format!("{}:{}", bin.display(), world.path_env()?))
        .args(["logout", &host]);
    let output = run(command, None)?;
    expect_code(&output, 0)?;
    let calls = std::fs::read_to_string(&log)?;
    let erases: Vec<&str> = calls
        .lines()
        .filter(|line| line.starts_with("erase "))
        .collect();
    ensure!(
        erases
            == [
                format!("erase {host}"),
                format!("erase {host}"),
                format!("erase http://{host}"),
                format!("erase https://{host}"),
            ],
        "{calls}"
    );
    // Logout at docker ends nothing at the daemon.
    ensure!(world.token("access")? == token);
    Ok(())
}

#[test]
fn every_docker_action_and_the_argv0_form() -> anyhow::Result<()> {
    let world = World::start(
        "hosts = [\"127.0.0.1:5000\", \"registry.example.com\"]",
        "hosts = [\"localhost:5000\"]",
    )?;
    let token = world.token("access")?;
    let helper = world.bin_dir()?.join("docker-credential-cogbroker");
    let call = |args: &[&str], stdin: Option<&str>| -> anyhow::Result<std::process::Output> {
        let mut command = Command::new(&helper);
        command
            .args(args)
            .env("COGBROKER_CONFIG", &world.sandbox.config_path);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("COGBROKER_") && key != "COGBROKER_CONFIG" {
                command.env_remove(key);
            }
        }
        run(command, stdin)
    };

    for url in [
        "127.0.0.1:5000",
        "https://127.0.0.1:5000",
        "http://127.0.0.1:5000/",
        "registry.example.com/v2/",
    ] {
        let output = call(&["get"], Some(&format!("{url}\n")))?;
        expect_code(&output, 0)?;
        let reply: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        ensure!(
            reply == json!({"ServerURL": url, "Username": USER, "Secret": token}),
            "{url}: {reply}"
        );
    }
    // Not ours: docker's sentinel on stdout, exit 1 (docker goes on anonymously).
    for url in ["127.0.0.1:5001", "https://index.docker.io/v1/"] {
        let output = call(&["get"], Some(url))?;
        expect_code(&output, 1)?;
        ensure!(output.stdout == NOT_FOUND, "{url}: {}", shown(&output));
    }
    // Login needed: the message on stdout (docker shows only that), exit 4.
    let output = call(&["get"], Some("localhost:5000"))?;
    expect_code(&output, 4)?;
    ensure!(
        String::from_utf8_lossy(&output.stdout).contains("`cogbroker login idle`"),
        "{}",
        shown(&output)
    );
    // Empty input: docker's own message.
    let output = call(&["get"], Some("\n"))?;
    expect_code(&output, 1)?;
    ensure!(
        output.stdout == b"no credentials server URL\n",
        "{}",
        shown(&output)
    );

    let output = call(&["list"], None)?;
    expect_code(&output, 0)?;
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    ensure!(
        listed
            == json!({"127.0.0.1:5000": USER, "registry.example.com": USER, "localhost:5000": "ivy"}),
        "{listed}"
    );
    let output = call(&["version"], None)?;
    expect_code(&output, 0)?;
    ensure!(String::from_utf8_lossy(&output.stdout).starts_with("cogbroker "));

    // store: ignored for our hosts, refused for others; never kept.
    let output = call(
        &["store"],
        Some(r#"{"ServerURL":"127.0.0.1:5000","Username":"x","Secret":"pw"}"#),
    )?;
    expect_code(&output, 0)?;
    ensure!(output.stdout.is_empty());
    let output = call(
        &["store"],
        Some(r#"{"ServerURL":"other.example.com","Username":"x","Secret":"pw"}"#),
    )?;
    expect_code(&output, 1)?;
    ensure!(
        String::from_utf8_lossy(&output.stdout)
            .contains("other.example.com is not in any profile's `hosts`")
    );
    ensure!(!String::from_utf8_lossy(&output.stdout).contains("pw"));
    let output = call(&["store"], Some("not json"))?;
    expect_code(&output, 1)?;
    ensure!(String::from_utf8_lossy(&output.stdout).contains("store expects a JSON object"));
    // erase: ours → done; others → not found.
    let output = call(&["erase"], Some("https://127.0.0.1:5000"))?;
    expect_code(&output, 0)?;
    let output = call(&["erase"], Some("elsewhere.example.com"))?;
    expect_code(&output, 1)?;
    ensure!(output.stdout == NOT_FOUND);
    // An unknown action.
    let output = call(&["fetch"], None)?;
    expect_code(&output, 2)?;
    ensure!(String::from_utf8_lossy(&output.stdout).contains("usage: docker-credential-cogbroker"));
    // The subcommand form answers the same.
    let output = world.cli(&["docker-credential", "get"], Some("127.0.0.1:5000"))?;
    expect_code(&output, 0)?;
    ensure!(String::from_utf8_lossy(&output.stdout).contains(&token));
    Ok(())
}
