//! Real git, both versions on the machine: `git credential fill` with and without the authtype
//! capability, and `git ls-remote` over HTTP against a server that demands a valid token
//! (Bearer from git 2.47, the token as Basic password from git 2.39) and serves the repository
//! through `git http-backend`. A rejected token makes git call `erase`, which refreshes once,
//! but never for a token minted seconds ago.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::expect_code;
use cognito_auth::tokens::TokenUse;

use super::fixture::{Request, Response, Server, USER, Verifier, World, run, shown};

const GIT_NEW: &str = "/usr/local/bin/git";
const GIT_OLD: &str = "/usr/bin/git";

fn version(git: &str) -> anyhow::Result<String> {
    let output = Command::new(git).arg("--version").output()?;
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// A home whose global git config uses our helper.
fn git_home(world: &World, git: &str, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let home = world.sandbox.dir.path().join(name);
    let mut command = world.client(git, &home)?;
    command.args([
        "config",
        "--global",
        "credential.helper",
        "!cogbroker git-credential",
    ]);
    expect_code(&run(command, None)?, 0)?;
    Ok(home)
}

fn fill(
    world: &World,
    git: &str,
    home: &Path,
    input: &str,
) -> anyhow::Result<std::process::Output> {
    let mut command = world.client(git, home)?;
    command.args(["credential", "fill"]);
    run(command, Some(input))
}

#[test]
fn git_credential_fill_with_and_without_authtype() -> anyhow::Result<()> {
    let world = World::start("hosts = [\"127.0.0.1\"]", "hosts = [\"localhost\"]")?;
    let token = world.token("access")?;
    for git in [GIT_NEW, GIT_OLD] {
        let home = git_home(&world, git, &format!("home-{}", git.replace('/', "_")))?;
        let new = version(git)?.starts_with("git version 2.47");

        // Without the capability: the username/password form.
        let output = fill(
            &world,
            git,
            &home,
            "protocol=https\nhost=127.0.0.1:8443\n\n",
        )?;
        expect_code(&output, 0)?;
        let text = String::from_utf8(output.stdout)?;
        ensure!(
            text.contains(&format!("username={USER}\n")),
            "{git}: {text}"
        );
        ensure!(
            text.contains(&format!("password={token}\n")),
            "{git}: {text}"
        );
        ensure!(!text.contains("credential="), "{git}: {text}");
        if new {
            ensure!(text.contains("password_expiry_utc="), "{git}: {text}");
        }

        // With it: git 2.47 passes it on and gets the Bearer form; git 2.39 drops the
        // capability it does not know, so the helper answers the old way.
        let output = fill(
            &world,
            git,
            &home,
            "capability[]=authtype\nprotocol=https\nhost=127.0.0.1:8443\n\n",
        )?;
        expect_code(&output, 0)?;
        let text = String::from_utf8(output.stdout)?;
        if new {
            ensure!(
                text.contains(&format!(
                    "capability[]=authtype\nauthtype=Bearer\ncredential={token}\nephemeral=1\n"
                )),
                "{git}: {text}"
            );
            ensure!(text.contains("password_expiry_utc="), "{git}: {text}");
        } else {
            ensure!(
                text.contains(&format!("password={token}\n")),
                "{git}: {text}"
            );
            ensure!(!text.contains("authtype"), "{git}: {text}");
        }

        // A host no profile claims: the helper says nothing, git falls through (to a prompt,
        // disabled here).
        let output = fill(&world, git, &home, "protocol=https\nhost=example.org\n\n")?;
        ensure!(
            output.status.code() == Some(128),
            "{git}: {}",
            shown(&output)
        );
        ensure!(
            String::from_utf8_lossy(&output.stderr).contains("terminal prompts disabled"),
            "{git}: {}",
            shown(&output)
        );

        // Login needed: git stops (quit=1) instead of prompting, and shows our message.
        let output = fill(&world, git, &home, "protocol=https\nhost=localhost\n\n")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.code() == Some(128),
            "{git}: {}",
            shown(&output)
        );
        ensure!(stderr.contains("cogbroker login idle"), "{git}: {stderr}");
        ensure!(stderr.contains("told us to quit"), "{git}: {stderr}");
        ensure!(!stderr.contains("terminal prompts"), "{git}: {stderr}");
    }

    // Who took the token: each hand-out names the helper, and git among the processes that ran
    // it (git runs `!cogbroker git-credential` through `sh -c`).
    let parents = world.audit_parents("dev")?;
    for git in [GIT_NEW, GIT_OLD] {
        let exe = std::fs::canonicalize(git)?.display().to_string();
        ensure!(
            parents.contains(&exe),
            "{git} is not named among a helper's parents: {parents:?}"
        );
    }
    Ok(())
}

#[test]
fn the_helper_alone_follows_the_protocol() -> anyhow::Result<()> {
    let world = World::start("hosts = [\"127.0.0.1\"]", "hosts = [\"localhost\"]")?;
    // Not ours: nothing on stdout, exit 0.
    let output = world.cli(
        &["git-credential", "get"],
        Some("protocol=https\nhost=example.org\n\n"),
    )?;
    expect_code(&output, 0)?;
    ensure!(output.stdout.is_empty(), "{}", shown(&output));
    // Login required: quit=1 and exit 4 naming the command.
    let output = world.cli(
        &["git-credential", "get"],
        Some("protocol=https\nhost=localhost\n"),
    )?;
    expect_code(&output, 4)?;
    ensure!(output.stdout == b"quit=1\n", "{}", shown(&output));
    ensure!(String::from_utf8_lossy(&output.stderr).contains("`cogbroker login idle`"));
    // Store and unknown operations: accepted, silent.
    for operation in ["store", "approve"] {
        let output = world.cli(
            &["git-credential", operation],
            Some("host=127.0.0.1\npassword=x\n"),
        )?;
        expect_code(&output, 0)?;
        ensure!(output.stdout.is_empty(), "{operation}: {}", shown(&output));
    }
    let output = world.cli(&["git-credential", "capability"], None)?;
    expect_code(&output, 0)?;
    ensure!(
        output.stdout == b"version 0\ncapability authtype\n",
        "{}",
        shown(&output)
    );
    // Malformed input: a clear error, no output.
    let output = world.cli(
        &["git-credential", "get"],
        Some("host=127.0.0.1\ngarbage\n"),
    )?;
    expect_code(&output, 1)?;
    ensure!(output.stdout.is_empty());
    ensure!(
        String::from_utf8_lossy(&output.stderr)
            .contains("line 2 of the git credential request has no `=`")
    );
    // Oversized input is refused, not buffered without end.
    let huge = format!("host=127.0.0.1\npath={}\n", "a".repeat(300 * 1024));
    let output = world.cli(&["git-credential", "get"], Some(&huge))?;
    expect_code(&output, 1)?;
    ensure!(
        String::from_utf8_lossy(&output.stderr).contains("larger than"),
        "{}",
        shown(&output)
    );
    // The daemon down: exit 3 saying how to start it (and git is told to stop).
    let mut world = world;
    world.daemon.terminate()?;
    let output = world.cli(
        &["git-credential", "get"],
        Some("protocol=https\nhost=127.0.0.1\n"),
    )?;
    expect_code(&output, 3)?;
    ensure!(output.stdout == b"quit=1\n");
    ensure!(String::from_utf8_lossy(&output.stderr).contains("cogbroker serve"));
    Ok(())
}

/// A bare repository with one commit; returns the root holding `repo.git` and the commit id.
fn repository(world: &World) -> anyhow::Result<(std::path::PathBuf, String)> {
    let root = world.sandbox.dir.path().join("git-root");
    let work = world.sandbox.dir.path().join("git-work");
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let output = Command::new(GIT_NEW)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", world.sandbox.dir.path())
            .output()?;
        expect_code(&output, 0)?;
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    };
    let work_text = work.display().to_string();
    git(&["init", "-q", "-b", "main", &work_text])?;
    git(&[
        "-C",
        &work_text,
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "one",
    ])?;
    let commit = git(&["-C", &work_text, "rev-parse", "HEAD"])?;
    std::fs::create_dir_all(&root)?;
    git(&[
        "clone",
        "-q",
        "--bare",
        &work_text,
        &root.join("repo.git").display().to_string(),
    ])?;
    Ok((root, commit))
}

/// `git http-backend` as CGI for one request.
fn http_backend(root: &Path, request: &Request) -> Response {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let mut command = Command::new(GIT_NEW);
    command
        .arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &request.method)
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .env("CONTENT_TYPE", request.header("content-type").unwrap_or(""))
        .env("REMOTE_USER", USER)
        .env("REMOTE_ADDR", "127.0.0.1");
    if let Some(protocol) = request.header("git-protocol") {
        command.env("GIT_PROTOCOL", protocol);
    }
    if let Some(encoding) = request.header("content-encoding") {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    let output = match run_bytes(command, &request.body) {
        Ok(output) => output,
        Err(error) => return Response::new(500, "text/plain", format!("{error:#}")),
    };
    let split = output
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|window| window == b"\n\n")
                .map(|at| (at, 2))
        });
    let Some((at, gap)) = split else {
        return Response::new(500, "text/plain", "http-backend wrote no headers");
    };
    let head = String::from_utf8_lossy(&output[..at]).into_owned();
    let mut response = Response {
        status: 200,
        headers: Vec::new(),
        body: output[at + gap..].to_vec(),
    };
    for line in head.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.eq_ignore_ascii_case("status") {
            response.status = value
                .trim()
                .split(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
        } else {
            response
                .headers
                .push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    response
}

fn run_bytes(mut command: Command, stdin: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    use std::process::Stdio;
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().context("spawn git http-backend")?;
    child.stdin.take().context("stdin")?.write_all(stdin)?;
    let output = child.wait_with_output()?;
    Ok(output.stdout)
}

/// The repository behind a token check: Bearer `<valid access token>`, or Basic with the
/// profile's user and a valid access token as the password.
fn git_server(world: &World, root: std::path::PathBuf) -> anyhow::Result<Server> {
    let verifier: Arc<Verifier> = Arc::clone(&world.verifier);
    Server::start(None, move |request| {
        let authorized = match (request.bearer(), request.basic()) {
            (Some(token), _) => verifier.accepts(token, TokenUse::Access),
            (None, Some((user, password))) => {
                user == USER && verifier.accepts(&password, TokenUse::Access)
            }
            (None, None) => false,
        };
        if !authorized {
            return Response::new(401, "text/plain", "token required")
                .with_header("WWW-Authenticate", "Basic realm=\"git\"")
                .with_header("WWW-Authenticate", "Bearer realm=\"git\"");
        }
        http_backend(&root, request)
    })
}

fn ls_remote(
    world: &World,
    git: &str,
    home: &Path,
    url: &str,
) -> anyhow::Result<std::process::Output> {
    let mut command = world.client(git, home)?;
    command.args(["ls-remote", url]);
    run(command, None)
}

#[test]
fn git_ls_remote_over_http_with_a_token_and_a_refresh_after_a_401() -> anyhow::Result<()> {
    let world = World::start("hosts = [\"127.0.0.1\"]", "")?;
    let (root, commit) = repository(&world)?;
    let server = git_server(&world, root)?;
    let url = format!("http://127.0.0.1:{}/repo.git", server.addr.port());

    for (git, scheme) in [(GIT_NEW, "Bearer "), (GIT_OLD, "Basic ")] {
        let home = git_home(&world, git, &format!("ls-{}", git.replace('/', "_")))?;
        let before = server.requests().len();
        let output = ls_remote(&world, git, &home, &url)?;
        expect_code(&output, 0).with_context(|| git.to_owned())?;
        let text = String::from_utf8(output.stdout)?;
        ensure!(
            text.contains(&format!("{commit}\trefs/heads/main")),
            "{git}: {text}"
        );
        let schemes: Vec<String> = server.requests()[before..]
            .iter()
            .filter_map(|request| request.header("authorization").map(str::to_owned))
            .collect();
        ensure!(
            !schemes.is_empty() && schemes.iter().all(|s| s.starts_with(scheme)),
            "{git}: {schemes:?}"
        );
    }

    // The server revokes the current token. git's `erase` right away does not refresh: the
    // token is seconds old (a misconfigured server cannot cause a refresh storm).
    let home = git_home(&world, GIT_NEW, "revoked")?;
    let first = world.token("access")?;
    world.verifier.revoke(&first);
    let calls = world.upstream_calls();
    let output = ls_remote(&world, GIT_NEW, &home, &url)?;
    ensure!(output.status.code() == Some(128), "{}", shown(&output));
    ensure!(
        String::from_utf8_lossy(&output.stderr).contains("only seconds old"),
        "{}",
        shown(&output)
    );
    ensure!(
        world.upstream_calls() == calls,
        "no refresh for a token minted seconds ago"
    );
    ensure!(world.token("access")? == first);

    // Once the token is older than that gap (the daemon's rule: max(5 s, 10 % of the 60 s
    // lifetime)), the next 401 makes `erase` refresh once, and the retry works. The daemon's
    // clock is moved on rather than waited for.
    world.set_daemon_clock_ahead(7)?;
    let output = ls_remote(&world, GIT_NEW, &home, &url)?;
    ensure!(output.status.code() == Some(128), "{}", shown(&output));
    ensure!(
        String::from_utf8_lossy(&output.stderr).contains("the next attempt uses a new one"),
        "{}",
        shown(&output)
    );
    let second = world.token("access")?;
    ensure!(second != first, "erase refreshed the token");
    let output = ls_remote(&world, GIT_NEW, &home, &url)?;
    expect_code(&output, 0)?;
    ensure!(String::from_utf8(output.stdout)?.contains(&commit));
    Ok(())
}
