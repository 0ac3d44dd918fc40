//! The OAuth ways in against the real daemon (design.md §14): a machine client's
//! client_credentials grant served by the CLI, the helpers and the API, and a refused secret
//! that stops upstream calls.

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{DaemonProcess, EmulatorHost, ProfileSpec, Sandbox, api, expect_code};

const SECRET: &str = "e2e-M2m-Secret-0123456789";

fn seed() -> String {
    format!(
        r#"[[pools]]
id = "us-east-1_E2eOauth"

[[pools.resource_servers]]
identifier = "https://api.example.com"
scopes = ["read", "write"]

[[pools.clients]]
id = "machine"
secret = "{SECRET}"
access_token_ttl = 3600
allowed_oauth_flows = ["client_credentials"]
allowed_scopes = ["https://api.example.com/read", "https://api.example.com/write"]
"#
    )
}

fn machine(name: &str, domain: &str, secret_var: &str) -> ProfileSpec {
    ProfileSpec::raw(
        name,
        &format!(
            "grant = \"client_credentials\"\ndomain = \"{domain}\"\nclient_id = \"machine\"\nclient_secret = {{ env = \"{secret_var}\" }}\nscopes = [\"https://api.example.com/read\", \"https://api.example.com/write\"]\n"
        ),
    )
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One API call over TCP, from a synchronous test.
fn get(daemon: &DaemonProcess, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(api(&reqwest::Client::new(), daemon, path, None))
}

#[test]
fn client_credentials_is_served_by_the_cli_the_helpers_and_the_api() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[machine("m2m", &emulator.endpoint, "M2M_SECRET")],
    )?;
    // At trace, to prove neither the secret nor a token is ever logged.
    let mut daemon = sandbox.serve(&[("M2M_SECRET", SECRET), ("RUST_LOG", "trace")])?;

    let output = sandbox.cli(&["token", "m2m"], None)?;
    expect_code(&output, 0)?;
    let token = stdout(&output).trim().to_owned();
    let claims = cognito_auth::tokens::decode_claims(&token).context("a jwt")?;
    ensure!(claims.sub == "machine", "sub {:?}", claims.sub);
    ensure!(
        claims.scope.as_deref()
            == Some("https://api.example.com/read https://api.example.com/write"),
        "scope {:?}",
        claims.scope
    );
    ensure!(emulator.handle.calls("oauth2/token") == 1);

    // The helpers hand out the same cached token.
    let output = sandbox.cli(
        &[
            "exec",
            "m2m",
            "--",
            "sh",
            "-c",
            "printf %s \"$COGBROKER_TOKEN\"",
        ],
        None,
    )?;
    expect_code(&output, 0)?;
    ensure!(stdout(&output) == token, "exec gave another token");
    let output = sandbox.cli(&["env", "m2m"], None)?;
    expect_code(&output, 0)?;
    ensure!(stdout(&output).contains(&token));
    ensure!(emulator.handle.calls("oauth2/token") == 1);

    // kubectl's helper, whose default is the ID token, gets the access token here.
    let output = sandbox.cli(&["kube-credential", "m2m"], None)?;
    expect_code(&output, 0)?;
    ensure!(stdout(&output).contains(&token), "{}", stdout(&output));
    // Nothing to log in to, and no password prompt.
    let output = sandbox.cli(&["login", "m2m"], None)?;
    expect_code(&output, 1)?;
    ensure!(
        stderr(&output).contains("needs no login"),
        "{}",
        stderr(&output)
    );

    // No ID token: the CLI and the API say so.
    let output = sandbox.cli(&["token", "m2m", "--kind", "id"], None)?;
    expect_code(&output, 1)?;
    ensure!(
        stderr(&output).contains("access tokens only"),
        "{}",
        stderr(&output)
    );
    let (status, body) = get(&daemon, "/v1/profiles/m2m/token?kind=id")?;
    ensure!(
        status == 422 && body["error"] == "unsupported",
        "{status} {body}"
    );
    let (status, body) = get(&daemon, "/v1/profiles/m2m")?;
    ensure!(
        status == 200 && body["auth_flow"] == "client_credentials",
        "{body}"
    );

    daemon.terminate()?;
    let (out, err) = daemon.finished_output();
    ensure!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "the secret was logged"
    );
    ensure!(!err.contains(&token), "the token was logged");
    Ok(())
}

#[test]
fn a_refused_client_secret_is_a_config_error_without_a_retry_storm() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[machine("bad", &emulator.endpoint, "BAD_SECRET")],
    )?;
    let mut daemon = sandbox.serve(&[("BAD_SECRET", "wrong-secret-value")])?;
    for _ in 0..5 {
        let output = sandbox.cli(&["token", "bad"], None)?;
        expect_code(&output, 1)?;
        let message = stderr(&output);
        ensure!(message.contains("client_secret"), "{message}");
        ensure!(!message.contains("wrong-secret-value"), "{message}");
    }
    let (status, body) = get(&daemon, "/v1/profiles/bad/token")?;
    ensure!(
        status == 500 && body["error"] == "misconfigured",
        "{status} {body}"
    );
    ensure!(
        emulator.handle.calls("oauth2/token") == 1,
        "{} token calls",
        emulator.handle.calls("oauth2/token")
    );
    let output = sandbox.cli(&["status", "bad"], None)?;
    ensure!(
        stdout(&output).contains("misconfigured"),
        "{}",
        stdout(&output)
    );

    // An explicit refresh tries again, once.
    let output = sandbox.cli(&["refresh", "bad"], None)?;
    expect_code(&output, 1)?;
    ensure!(emulator.handle.calls("oauth2/token") == 2);
    daemon.terminate()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// authorization_code: the browser login, with the emulator's form posted by an HTTP client
// here (tests/browser drives the same login through real Chromium).

const WEB_CLIENT: &str = "webapp";
const USER: &str = "alice";
const PASSWORD: &str = "Alice-Passw0rd!";

fn web_seed(callback: &str) -> String {
    format!(
        r#"[[pools]]
id = "us-east-1_E2eWeb"

[[pools.clients]]
id = "{WEB_CLIENT}"
access_token_ttl = 3600
rotation = {{ enabled = true, grace_seconds = 0 }}
allowed_oauth_flows = ["code"]
allowed_scopes = ["openid", "email"]
callback_urls = ["{callback}"]

[[pools.users]]
username = "{USER}"
password = "{PASSWORD}"
email = "alice@example.com"
"#
    )
}

/// What a person does in the browser: load the form at `authorize_url`, post the password,
/// and return where the pool redirects to (with the code and state).
fn sign_in_like_a_browser(authorize_url: &str) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let form = client.get(authorize_url).send().await?;
        ensure!(form.status() == 200, "the form: {}", form.status());
        let html = form.text().await?;
        let mut fields: Vec<(String, String)> = html
            .split("<input type=\"hidden\" ")
            .skip(1)
            .filter_map(|input| {
                let name = input.split("name=\"").nth(1)?.split('"').next()?;
                let value = input.split("value=\"").nth(1)?.split('"').next()?;
                Some((name.to_owned(), value.replace("&amp;", "&")))
            })
            .collect();
        fields.push(("username".to_owned(), USER.to_owned()));
        fields.push(("password".to_owned(), PASSWORD.to_owned()));
        let url = url::Url::parse(authorize_url)?;
        let post = client
            .post(url.join("/oauth2/authorize")?)
            .form(&fields)
            .send()
            .await?;
        ensure!(post.status() == 302, "the form post: {}", post.status());
        Ok(post
            .headers()
            .get("location")
            .context("a redirect")?
            .to_str()?
            .to_owned())
    })
}

#[test]
fn browser_login_by_paste_back_then_refresh_and_revoke() -> anyhow::Result<()> {
    let port = cogbroker_e2e::free_port()?;
    let callback = format!("http://localhost:{port}/callback");
    let emulator = EmulatorHost::start(&web_seed(&callback))?;
    let profile = ProfileSpec::raw(
        "web",
        &format!(
            "grant = \"authorization_code\"\ndomain = \"{}\"\nclient_id = \"{WEB_CLIENT}\"\nredirect_uri = \"{callback}\"\nscopes = [\"email\"]\n",
            emulator.endpoint
        ),
    );
    let sandbox = Sandbox::new(&emulator.endpoint, &[profile])?;
    let mut daemon = sandbox.serve(&[("RUST_LOG", "trace")])?;

    // A wrong state, pasted: refused naming it, the code never redeemed.
    let mut login = PastedLogin::start(&sandbox)?;
    let authorize_url = login.authorize_url.clone();
    let url = url::Url::parse(&authorize_url)?;
    let query: std::collections::BTreeMap<String, String> =
        url.query_pairs().into_owned().collect();
    ensure!(query["code_challenge_method"] == "S256", "{authorize_url}");
    ensure!(query["code_challenge"].len() == 43, "{authorize_url}");
    ensure!(
        query["state"].len() >= 22,
        "state of 128 bits or more: {authorize_url}"
    );
    ensure!(
        query["scope"].split(' ').any(|s| s == "openid"),
        "{authorize_url}"
    );
    let redirect = sign_in_like_a_browser(&authorize_url)?;
    let forged = redirect.replace(&query["state"], "forged-state-value");
    let output = login.paste(&forged)?;
    expect_code(&output, 1)?;
    ensure!(stderr(&output).contains("state"), "{}", stderr(&output));
    ensure!(
        emulator.handle.calls("oauth2/token") == 0,
        "the code was redeemed"
    );

    // The right one.
    let mut login = PastedLogin::start(&sandbox)?;
    let redirect = sign_in_like_a_browser(&login.authorize_url.clone())?;
    let output = login.paste(&redirect)?;
    expect_code(&output, 0)?;
    ensure!(
        stdout(&output).contains("web: logged in"),
        "{}",
        stdout(&output)
    );
    ensure!(emulator.handle.calls("oauth2/token") == 1);
    let output = sandbox.cli(&["token", "web", "--kind", "id"], None)?;
    expect_code(&output, 0)?;
    let id_token = stdout(&output).trim().to_owned();
    let claims = cognito_auth::tokens::decode_claims(&id_token)?;
    ensure!(claims.username.as_deref() == Some(USER), "{claims:?}");
    let (_, status) = get(&daemon, "/v1/profiles/web")?;
    ensure!(status["auth_flow"] == "authorization_code", "{status}");

    // Renewed with the refresh_token grant (rotating), revoked on logout.
    let output = sandbox.cli(&["refresh", "web"], None)?;
    expect_code(&output, 0)?;
    ensure!(emulator.handle.calls("oauth2/token") == 2);
    let output = sandbox.cli(&["logout", "web"], None)?;
    expect_code(&output, 0)?;
    ensure!(emulator.handle.calls("oauth2/revoke") == 1);
    let output = sandbox.cli(&["token", "web"], None)?;
    expect_code(&output, 4)?;

    // The same login over the API, for GUIs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, reply) = runtime.block_on(api(
        &reqwest::Client::new(),
        &daemon,
        "/v1/profiles/web/login",
        Some(serde_json::json!({})),
    ))?;
    ensure!(
        status == 200 && reply["status"] == "browser",
        "{status} {reply}"
    );
    ensure!(
        reply["login_id"].as_str().is_some_and(|id| id.len() == 64),
        "{reply}"
    );
    let url = reply["authorize_url"].as_str().context("authorize_url")?;
    ensure!(
        url.starts_with(&format!("{}/oauth2/authorize?", emulator.endpoint)),
        "{url}"
    );
    daemon.terminate()?;
    let (out, err) = daemon.finished_output();
    ensure!(
        !out.contains(&redirect) && !err.contains(&redirect),
        "the code was logged"
    );
    Ok(())
}

/// `cogbroker login P --no-browser`, its URL read from stderr, the redirect pasted on stdin.
struct PastedLogin {
    child: std::process::Child,
    authorize_url: String,
    stderr: std::io::BufReader<std::process::ChildStderr>,
}

impl PastedLogin {
    fn start(sandbox: &Sandbox) -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let mut command = sandbox.command()?;
        command
            .args(["login", "web", "--no-browser"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn()?;
        let mut stderr = std::io::BufReader::new(child.stderr.take().context("stderr")?);
        let mut line = String::new();
        stderr.read_line(&mut line)?;
        let authorize_url = line.trim().to_owned();
        ensure!(
            authorize_url.starts_with("http"),
            "the first stderr line: {line:?}"
        );
        Ok(Self {
            child,
            authorize_url,
            stderr,
        })
    }

    fn paste(&mut self, redirect: &str) -> anyhow::Result<std::process::Output> {
        use std::io::{Read as _, Write as _};
        let mut stdin = self.child.stdin.take().context("stdin")?;
        writeln!(stdin, "{redirect}")?;
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .context("stdout")?
            .read_to_string(&mut stdout)?;
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest)?;
        let status = self.child.wait()?;
        drop(stdin);
        Ok(std::process::Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: rest.into_bytes(),
        })
    }
}
