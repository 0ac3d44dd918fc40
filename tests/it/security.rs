//! Security tests against the real binaries (issue 10; security-reliability.md §1.7): an
//! impostor run as another uid on the daemon's port or socket path never receives a byte (no
//! password, no code, no API key) from `login` or a helper; a socket directory pre-created by
//! another uid is refused; a squatted TCP port leaves the Unix socket serving; 1,100 connections
//! held by another uid leave our requests answering and the daemon's descriptors bounded; a
//! same-uid relay (socat) gets 401 without the API key; proxies from the environment are never
//! used for Cognito; the login process is non-dumpable and a SIGSEGV of the daemon dumps no
//! core; no device secret reaches the output at trace level.
//!
//! Another uid needs root (CI runs as root): the tests that need it fail, loudly, without it.
//! The programs run as uid 65534 are small Python scripts (Debian's /usr/bin/python3).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{
    DaemonProcess, EmulatorHost, ProfileSpec, Sandbox, expect_code, read_text,
};
use cogbroker_e2e::free_port;

const POOL: &str = "us-east-1_E2eSecurity";
const CLIENT: &str = "security-client";
const PASSWORD: &str = "Security-Passw0rd!";
const API_KEY: &str = "e2e-security-api-key-0123456789abcdef";
/// A hang guard only (never a timing assertion): requests that answer do so in milliseconds.
const HANG_GUARD: Duration = Duration::from_secs(5);
const NOBODY: u32 = 65534;

fn seed() -> String {
    format!(
        r#"[[pools]]
id = "{POOL}"

[[pools.clients]]
id = "{CLIENT}"
access_token_ttl = 3600

[[pools.users]]
username = "alice"
password = "{PASSWORD}"
status = "CONFIRMED"
"#
    )
}

fn sandbox(endpoint: &str) -> anyhow::Result<Sandbox> {
    Sandbox::new(endpoint, &[ProfileSpec::new("dev", POOL, CLIENT, "alice")])
}

/// Rewrites one line of the sandbox's `[daemon]` table (or adds it after the header).
fn set_daemon(sandbox: &Sandbox, key: &str, value: &str) -> anyhow::Result<()> {
    let text = read_text(&sandbox.config_path)?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let line = format!("{key} = {value}");
    match lines
        .iter()
        .position(|l| l.starts_with(&format!("{key} = ")))
    {
        Some(index) => lines[index] = line,
        None => lines.insert(1, line),
    }
    std::fs::write(&sandbox.config_path, lines.join("\n") + "\n")?;
    Ok(())
}

/// A 0600 API key file in the sandbox, named in the config.
fn configure_api_key(sandbox: &Sandbox) -> anyhow::Result<PathBuf> {
    let path = sandbox.dir.path().join("api-key");
    std::fs::write(&path, format!("{API_KEY}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    set_daemon(sandbox, "api_key_file", &format!("\"{}\"", path.display()))?;
    Ok(path)
}

fn require_root() {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "this test runs programs as uid {NOBODY} and needs root (CI runs as root)"
    );
}

/// Debian's Python, which uid 65534 can run (a pyenv shim under /root cannot).
fn system_python() -> &'static str {
    let python = "/usr/bin/python3";
    assert!(
        Path::new(python).is_file(),
        "this test needs {python} to run a program as uid {NOBODY}"
    );
    python
}

/// A world-readable directory for scripts and files the other uid uses.
fn shared_dir(sandbox: &Sandbox, name: &str, mode: u32) -> anyhow::Result<PathBuf> {
    let dir = sandbox.dir.path().join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
    Ok(dir)
}

/// A Python script run as uid 65534 with piped stdin/stdout.
struct AsNobody {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: BufReader<ChildStdout>,
}

impl AsNobody {
    fn spawn(sandbox: &Sandbox, script: &str, args: &[&str]) -> anyhow::Result<Self> {
        require_root();
        let python = system_python();
        // The sandbox directory is 0755 and so readable by the other uid.
        std::fs::set_permissions(sandbox.dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let path = shared_dir(sandbox, "scripts", 0o755)?.join(format!("s{}.py", free_port()?));
        std::fs::write(&path, script)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        let mut child = Command::new("setpriv")
            .args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".to_owned(),
                python.to_owned(),
            ])
            .arg(&path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("run setpriv (util-linux)")?;
        let stdin = child.stdin.take().context("stdin")?;
        let lines = BufReader::new(child.stdout.take().context("stdout")?);
        Ok(Self {
            child,
            stdin,
            lines,
        })
    }

    /// The next line the script prints (an event: the script flushes after each).
    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let read = self.lines.read_line(&mut line)?;
        ensure!(read > 0, "the script as uid {NOBODY} ended early");
        Ok(line.trim_end().to_owned())
    }

    fn say(&mut self, text: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{text}")?;
        self.stdin.flush()?;
        Ok(())
    }
}

impl Drop for AsNobody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Listens where the daemon would (TCP port or socket path) and answers like it: `/healthz`
/// with `health`, anything else with `status` (the real daemon's answers, captured first), so
/// a client that trusted it would go on to send the password. Prints `ready`, then one line
/// per connection: `conn <hex of every byte received>`.
const IMPOSTOR: &str = r#"
import os, socket, sys
kind, addr, health, status = sys.argv[1:5]
if kind == "tcp":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", int(addr)))
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(addr)
    os.chmod(addr, 0o777)
s.listen(64)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    conn.settimeout(10)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
            data += chunk
        if data:
            target = head.split(b" ")[1] if b" " in head else b""
            reply = (health if target.startswith(b"/healthz") else status).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(reply) + reply)
    except OSError:
        pass
    conn.close()
    print("conn " + data.hex(), flush=True)
"#;

/// The real daemon's `/healthz` and status of the logged-out profile, for the impostor to replay.
fn real_answers(sandbox: &Sandbox) -> anyhow::Result<(String, String)> {
    let mut daemon = sandbox.serve(&[])?;
    let tcp = daemon.tcp.context("the daemon's TCP address")?;
    let get = |path: &str| -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(tcp)?;
        stream.set_read_timeout(Some(HANG_GUARD))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {tcp}\r\nX-Cogbroker-Request: 1\r\nAuthorization: Bearer {API_KEY}\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        let (_, body) = text.split_once("\r\n\r\n").context("an HTTP answer")?;
        ensure!(text.starts_with("HTTP/1.1 200"), "{text}");
        Ok(body.to_owned())
    };
    let answers = (get("/healthz")?, get("/v1/profiles/dev")?);
    ensure!(daemon.terminate()?.success());
    Ok(answers)
}

/// Runs the login and helpers against `target_args` (`--url ...` or `--socket ...`), then a
/// probe of our own that the impostor does answer; every connection before the probe must have
/// carried nothing at all.
fn nothing_reaches(
    sandbox: &Sandbox,
    impostor: &mut AsNobody,
    target_args: &[&str],
    probe: &mut dyn FnMut() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let with = |rest: &[&str]| -> Vec<String> {
        target_args
            .iter()
            .chain(rest)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let runs: [(Vec<String>, Option<String>); 4] = [
        (
            with(&["login", "dev", "--password-stdin"]),
            Some(format!("{PASSWORD}\n")),
        ),
        (with(&["token", "dev"]), None),
        (
            with(&["git-credential", "--profile", "dev", "get"]),
            Some("protocol=https\nhost=git.example.com\n\n".to_owned()),
        ),
        (
            with(&["docker-credential", "--profile", "dev", "get"]),
            Some("registry.example.com\n".to_owned()),
        ),
    ];
    for (args, stdin) in &runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // Standard input from a file: a client that refuses before reading it must not fail
        // on a closed pipe instead.
        let mut command = sandbox.command()?;
        command.args(&args);
        let input = sandbox.dir.path().join("stdin.txt");
        std::fs::write(&input, stdin.as_deref().unwrap_or(""))?;
        command.stdin(std::fs::File::open(&input)?);
        let output = command.output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(!output.status.success(), "{args:?} must fail: {stderr}");
        ensure!(
            !String::from_utf8_lossy(&output.stdout).contains("password="),
            "{args:?} printed a credential"
        );
        if args.contains(&"login") || args.contains(&"token") {
            expect_code(&output, 3)?;
            ensure!(
                stderr.contains(&format!("served by uid {NOBODY}"))
                    && stderr.contains("nothing was sent"),
                "{args:?}: {stderr}"
            );
        }
    }
    let answer = probe()?;
    ensure!(
        answer.contains("200 OK"),
        "the impostor answers a client that sends: {answer}"
    );
    let mut empty = 0;
    loop {
        let line = impostor.line()?;
        let hex = line
            .strip_prefix("conn")
            .with_context(|| format!("a connection line, not {line:?}"))?
            .trim();
        let text = String::from_utf8_lossy(&decode_hex(hex)?).into_owned();
        if text.contains("impostor-probe") {
            break;
        }
        ensure!(
            text.is_empty(),
            "the impostor received {} bytes: {text}",
            text.len()
        );
        ensure!(!text.contains(PASSWORD) && !text.contains(API_KEY));
        empty += 1;
    }
    ensure!(
        empty >= runs.len(),
        "each client connected (and sent nothing): {empty} connections"
    );
    Ok(())
}

fn decode_hex(hex: &str) -> anyhow::Result<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).context("hex")?, 16).context("hex"))
        .collect()
}

/// Issue 10, finding 1 (TCP): another uid squats the daemon's port while it is down and
/// answers like the daemon. `login --password-stdin`, `token` and the git and docker helpers
/// refuse it (exit 3, naming its uid) before sending a byte: no password, no API key.
#[test]
fn an_impostor_on_the_tcp_port_receives_nothing() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator.endpoint)?;
    configure_api_key(&sandbox)?;
    let (health, status) = real_answers(&sandbox)?;
    let port = free_port()?.to_string();
    let mut impostor = AsNobody::spawn(&sandbox, IMPOSTOR, &["tcp", &port, &health, &status])?;
    ensure!(impostor.line()? == "ready");
    let url = format!("http://127.0.0.1:{port}");
    let mut probe = || -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port.parse::<u16>()?))?;
        stream.set_read_timeout(Some(HANG_GUARD))?;
        stream.write_all(b"GET /healthz?impostor-probe HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    };
    nothing_reaches(&sandbox, &mut impostor, &["--url", &url], &mut probe)
}

/// Issue 10, finding 1 (Unix socket): another uid listens on a socket path the client is
/// pointed at (a directory it could create first). SO_PEERCRED names it; nothing is sent.
#[test]
fn an_impostor_on_the_socket_path_receives_nothing() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator.endpoint)?;
    let (health, status) = real_answers(&sandbox)?;
    let dir = shared_dir(&sandbox, "squatted", 0o777)?;
    let socket = dir.join("cogbroker.sock");
    let socket_text = socket.to_str().context("utf-8 path")?.to_owned();
    let mut impostor = AsNobody::spawn(
        &sandbox,
        IMPOSTOR,
        &["unix", &socket_text, &health, &status],
    )?;
    ensure!(impostor.line()? == "ready");
    let mut probe = || -> anyhow::Result<String> {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket)?;
        stream.set_read_timeout(Some(HANG_GUARD))?;
        stream.write_all(b"GET /healthz?impostor-probe HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    };
    nothing_reaches(
        &sandbox,
        &mut impostor,
        &["--socket", &socket_text],
        &mut probe,
    )
}

/// Security test 5: a runtime directory pre-created by another uid — a configured one, or the
/// `$TMPDIR/cogbroker-UID` fallback when `XDG_RUNTIME_DIR` is unset — stops the daemon before
/// it binds; so does a writable, non-sticky directory above the socket.
#[test]
fn a_socket_directory_another_uid_made_is_refused() -> anyhow::Result<()> {
    require_root();
    let sandbox = sandbox("http://127.0.0.1:9")?;
    let nobody = rustix::fs::Uid::from_raw(NOBODY);

    // The fallback: TMPDIR is a sticky world-writable directory, like /tmp.
    let tmp = shared_dir(&sandbox, "tmp", 0o1777)?;
    let squatted = tmp.join("cogbroker-0");
    std::fs::create_dir(&squatted)?;
    std::fs::set_permissions(&squatted, std::fs::Permissions::from_mode(0o777))?;
    rustix::fs::chown(&squatted, Some(nobody), None)?;
    set_daemon(&sandbox, "socket", "\"auto\"")?;
    let mut command = sandbox.command()?;
    command
        .arg("serve")
        .env_remove("XDG_RUNTIME_DIR")
        .env("TMPDIR", &tmp);
    let output = command.output()?;
    expect_code(&output, 1)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        stderr.contains(&format!("owned by uid {NOBODY}")) && stderr.contains("cogbroker-0"),
        "{stderr}"
    );
    ensure!(
        !squatted.join("cogbroker").exists(),
        "nothing was created inside it"
    );

    // Made by us but open to everyone (no sticky bit): anyone could swap the directory.
    std::fs::remove_dir(&squatted)?;
    let open = shared_dir(&sandbox, "open", 0o777)?;
    set_daemon(
        &sandbox,
        "socket",
        &format!("\"{}\"", open.join("run").join("cogbroker.sock").display()),
    )?;
    let output = sandbox.cli(&["serve"], None)?;
    expect_code(&output, 1)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(stderr.contains("writable by others"), "{stderr}");

    // Created fresh in the sticky TMPDIR: the daemon makes both directories 0700 and serves.
    set_daemon(&sandbox, "socket", "\"auto\"")?;
    let mut daemon = serve_command(&sandbox, &tmp)?;
    for dir in [squatted.clone(), squatted.join("cogbroker")] {
        let mode = std::fs::metadata(&dir)?.permissions().mode() & 0o777;
        ensure!(mode == 0o700, "{} is mode {mode:o}", dir.display());
    }
    ensure!(daemon.terminate()?.success());
    Ok(())
}

/// `cogbroker serve` with `XDG_RUNTIME_DIR` unset and `TMPDIR` set (the fallback socket path).
fn serve_command(sandbox: &Sandbox, tmp: &Path) -> anyhow::Result<DaemonProcess> {
    let tmpdir = format!("TMPDIR={}", tmp.display());
    sandbox.serve_wrapped(&["env", "-u", "XDG_RUNTIME_DIR", &tmpdir])
}

/// Issue 10, finding 1 (last part): a squatted TCP port no longer takes the daemon down: it
/// serves the Unix socket and says why TCP is missing.
#[test]
fn a_squatted_port_leaves_the_socket_serving() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator.endpoint)?;
    let squatter = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = squatter.local_addr()?.port();
    set_daemon(&sandbox, "listen", &format!("\"127.0.0.1:{port}\""))?;
    let mut daemon = sandbox.serve(&[])?;
    let output = sandbox.cli(&["status", "dev"], None)?;
    expect_code(&output, 0)?;
    sandbox.login_stdin("dev", PASSWORD)?;
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 0)?;
    ensure!(daemon.terminate()?.success());
    let stderr = daemon.stderr_text();
    ensure!(
        stderr.contains("TCP listener not started") && stderr.contains(&port.to_string()),
        "{stderr}"
    );
    drop(squatter);
    Ok(())
}

/// Holds `count` TCP connections to the port as another uid, then on "probe" sends a request
/// on 50 of them and prints how many got any answer.
const FLOOD: &str = r#"
import resource, socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
print("held %d" % len(held), flush=True)
sys.stdin.readline()
answered = 0
for conn in held[:50]:
    try:
        conn.settimeout(5)
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        if conn.recv(100):
            answered += 1
    except OSError:
        pass
print("answered %d" % answered, flush=True)
sys.stdin.readline()
"#;

fn open_fds(pid: i32) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Issue 10, finding 2: 1,100 connections held by uid 65534 against a daemon started with
/// systemd's soft descriptor limit (1024). The daemon raised the soft limit to the hard one,
/// closed every foreign connection without a reply (logging the uid, rate-limited), keeps a
/// bounded number of descriptors, and our requests on the Unix socket and TCP still answer.
#[test]
fn another_uid_holding_1100_connections_starves_nothing() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator.endpoint)?;
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .context("a finite hard descriptor limit")?;
    ensure!(
        hard > 2048,
        "the hard descriptor limit ({hard}) leaves no room to test"
    );
    let mut daemon = sandbox.serve_wrapped(&["prlimit", &format!("--nofile=1024:{hard}"), "--"])?;
    let limits = read_text(Path::new(&format!("/proc/{}/limits", daemon.pid())))?;
    let open_files = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .context("Max open files")?;
    let soft: Vec<&str> = open_files.split_whitespace().collect();
    ensure!(
        soft.get(3) == Some(&hard.to_string().as_str()),
        "the soft limit is raised to the hard one: {open_files}"
    );
    let before = open_fds(daemon.pid())?;
    sandbox.login_stdin("dev", PASSWORD)?;

    let tcp = daemon.tcp.context("the daemon's TCP address")?;
    let mut flood = AsNobody::spawn(&sandbox, FLOOD, &[&tcp.port().to_string(), "1100"])?;
    ensure!(flood.line()? == "held 1100");

    // Our requests, each under a hang guard: the Unix socket (the CLI) and TCP (raw HTTP).
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 0)?;
    let mut stream = TcpStream::connect(tcp)?;
    stream.set_read_timeout(Some(HANG_GUARD))?;
    write!(
        stream,
        "GET /v1/profiles/dev/token HTTP/1.1\r\nHost: {tcp}\r\nX-Cogbroker-Request: 1\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let during = open_fds(daemon.pid())?;
    ensure!(
        during < before + 64,
        "the daemon holds {during} descriptors with 1,100 foreign connections (was {before})"
    );
    flood.say("probe")?;
    ensure!(
        flood.line()? == "answered 0",
        "foreign connections got no HTTP"
    );
    flood.say("done")?;
    drop(flood);
    ensure!(daemon.terminate()?.success());
    let stderr = daemon.stderr_text();
    ensure!(
        stderr.contains(&format!("peer_uid={NOBODY}")),
        "the refusal names the uid: {stderr}"
    );
    let refusals = stderr
        .lines()
        .filter(|line| line.contains("closed without a reply"))
        .count();
    ensure!(
        (1..=10).contains(&refusals),
        "refusals are rate-limited, not 1,100 lines: {refusals}"
    );
    Ok(())
}

/// Issue 10, finding 3 (security test 7): a same-uid relay (socat, as ssh -L or an IDE port
/// forward would be) makes any caller look like us; with an API key configured, a request
/// through it without the key gets 401, with the key 200. `/healthz` needs no key from us.
#[test]
fn a_same_uid_relay_needs_the_api_key() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator.endpoint)?;
    configure_api_key(&sandbox)?;
    let mut daemon = sandbox.serve(&[])?;
    let tcp = daemon.tcp.context("the daemon's TCP address")?;
    let relay_port = free_port()?;
    let mut relay = Command::new("socat")
        .args([
            "-d".to_owned(),
            "-d".to_owned(),
            format!("TCP-LISTEN:{relay_port},bind=127.0.0.1,reuseaddr,fork"),
            format!("TCP:{tcp}"),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .context("this test needs socat (.ci/run installs it)")?;
    let mut log = BufReader::new(relay.stderr.take().context("socat's stderr")?);
    loop {
        let mut line = String::new();
        ensure!(log.read_line(&mut line)? > 0, "socat exited");
        if line.contains("listening on") {
            break;
        }
    }
    let through_relay = |auth: Option<&str>, path: &str| -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", relay_port))?;
        stream.set_read_timeout(Some(HANG_GUARD))?;
        // A caller behind a relay can name the daemon's own Host.
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: {tcp}\r\nX-Cogbroker-Request: 1\r\nConnection: close\r\n"
        );
        if let Some(key) = auth {
            head.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    };
    let answer = through_relay(None, "/v1/profiles/dev")?;
    ensure!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    ensure!(answer.contains("unauthorized"), "{answer}");
    let answer = through_relay(Some("wrong-key-wrong-key-wrong"), "/v1/profiles")?;
    ensure!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let answer = through_relay(Some(API_KEY), "/v1/profiles/dev")?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = through_relay(None, "/healthz")?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The CLI, which reads the key file, still works over TCP.
    let output = sandbox.cli(&["--url", &format!("http://{tcp}"), "status", "dev"], None)?;
    expect_code(&output, 0)?;
    let _ = relay.kill();
    let _ = relay.wait();
    ensure!(daemon.terminate()?.success());
    ensure!(
        !daemon.stderr_text().contains(API_KEY),
        "the key is never logged"
    );
    Ok(())
}

/// Issue 10, finding 4 (proxies): with `HTTPS_PROXY`, `HTTP_PROXY` and `ALL_PROXY` pointing at
/// a listener of ours, the daemon still reaches Cognito directly: the login succeeds and the
/// "proxy" never sees a connection.
#[test]
fn environment_proxies_are_not_used_for_cognito() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator.endpoint)?;
    let proxy = std::net::TcpListener::bind("127.0.0.1:0")?;
    proxy.set_nonblocking(true)?;
    let proxy_url = format!("http://{}", proxy.local_addr()?);
    let vars = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ];
    let env: Vec<(&str, &str)> = vars
        .iter()
        .map(|name| (*name, proxy_url.as_str()))
        .collect();
    let mut daemon = sandbox.serve(&env)?;
    sandbox.login_stdin("dev", PASSWORD)?;
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 0)?;
    ensure!(daemon.terminate()?.success());
    match proxy.accept() {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Ok((_, from)) => anyhow::bail!("the proxy from the environment was used (from {from})"),
        Err(error) => Err(error.into()),
    }
}

/// Security test 25: the daemon and `cogbroker login` (waiting at the password prompt) are
/// non-dumpable: a same-uid process without CAP_SYS_PTRACE cannot read their
/// `/proc/PID/environ` (the kernel's ptrace access check, the one `PTRACE_ATTACH` and
/// `/proc/PID/mem` pass through), while it can read a plain process's.
#[test]
fn the_login_process_is_not_dumpable() -> anyhow::Result<()> {
    use expectrl::Session;
    require_root();
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator.endpoint)?;
    // Root without capabilities, for the daemon, the login and the control process alike: the
    // kernel lets a process without CAP_SYS_PTRACE inspect a same-uid one only if that one is
    // dumpable and holds no capability the inspector lacks.
    const NO_CAPS: [&str; 3] = ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"];
    let mut daemon = sandbox.serve_wrapped(&["setpriv", NO_CAPS[0], NO_CAPS[1], NO_CAPS[2]])?;
    let mut command = Command::new("setpriv");
    command
        .args(NO_CAPS)
        .arg(cogbroker_e2e::workspace_binary("cogbroker")?)
        .arg("--config")
        .arg(&sandbox.config_path)
        .args(["login", "dev"])
        .env("COGBROKER_NO_AUTOSTART", "1")
        .env_remove("RUST_LOG");
    let mut session = Session::spawn(command).context("spawn the CLI on a pty")?;
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session.expect("Password for alice (dev): ")?;
    let pid = session.get_process().pid().as_raw();

    let read_environ = |pid: u32| -> anyhow::Result<bool> {
        let status = Command::new("setpriv")
            .args(NO_CAPS)
            .args(["cat", &format!("/proc/{pid}/environ")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        Ok(status.success())
    };
    // A plain process under the same setpriv, once it runs without capabilities (it says so
    // and then waits on its standard input).
    let mut control = Command::new("setpriv")
        .args(NO_CAPS)
        .args(["sh", "-c", "echo ready; read line"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut ready = String::new();
    BufReader::new(control.stdout.take().context("the control's stdout")?).read_line(&mut ready)?;
    ensure!(ready.trim() == "ready");
    ensure!(
        read_environ(control.id())?,
        "the check can succeed: a dumpable process's environ is readable"
    );
    let _ = control.kill();
    let _ = control.wait();
    ensure!(
        !read_environ(u32::try_from(pid)?)?,
        "the login process's environ was readable: it is dumpable"
    );
    ensure!(
        !read_environ(u32::try_from(daemon.pid())?)?,
        "the daemon's environ was readable: it is dumpable"
    );
    session.send_line(PASSWORD)?;
    session.expect("dev: logged in")?;
    ensure!(daemon.terminate()?.success());
    Ok(())
}

/// Security test 25, the core: `kill -SEGV` of the daemon, started with `ulimit -c unlimited`
/// in a directory of its own, dumps no core (the kernel says so in the wait status, and no file
/// appears where `core_pattern` would put one), while a control shell under the same limit does.
#[test]
fn a_segfault_of_the_daemon_dumps_no_core() -> anyhow::Result<()> {
    use std::os::unix::process::ExitStatusExt as _;
    let segv = rustix::process::Signal::SEGV.as_raw();
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator.endpoint)?;
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern")?;
    let cores_in = |dir: &Path| -> anyhow::Result<Vec<String>> {
        Ok(std::fs::read_dir(dir)?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("core"))
            .collect())
    };
    let unlimited = "ulimit -c unlimited && cd \"$CORE_DIR\" && exec \"$0\" \"$@\"";

    let control_dir = sandbox.dir.path().join("control-cwd");
    std::fs::create_dir(&control_dir)?;
    let control = Command::new("sh")
        .args(["-c", unlimited, "sh", "-c", "kill -SEGV $$"])
        .env("CORE_DIR", &control_dir)
        .status()?;
    ensure!(
        control.signal() == Some(segv) && control.core_dumped(),
        "the check can fail: a plain process under `ulimit -c unlimited` must dump a core on \
         SIGSEGV (core_pattern {:?}, control {control:?})",
        pattern.trim()
    );
    // Where cores land in the working directory, the file is there too.
    let in_cwd = !pattern.trim().starts_with('|') && !pattern.contains('/');
    ensure!(
        !in_cwd || !cores_in(&control_dir)?.is_empty(),
        "the control's core file is there"
    );

    let daemon_dir = sandbox.dir.path().join("daemon-cwd");
    std::fs::create_dir(&daemon_dir)?;
    let wrapper = [
        "env",
        &format!("CORE_DIR={}", daemon_dir.display()),
        "sh",
        "-c",
        unlimited,
    ];
    let mut daemon = sandbox.serve_wrapped(&wrapper)?;
    sandbox.login_stdin("dev", PASSWORD)?;
    // The first SIGSEGV may only meet the Rust runtime's stack-overflow handler, which puts the
    // default action back and returns (the signal was sent, not a fault); the next one kills.
    let mut status = None;
    for _ in 0..10 {
        if daemon.try_exit().is_none() {
            daemon.signal(rustix::process::Signal::SEGV)?;
        }
        status = daemon.wait_up_to(Duration::from_millis(500))?;
        if status.is_some() {
            break;
        }
    }
    let status = status.context("the daemon outlived ten SIGSEGVs")?;
    ensure!(
        status.signal() == Some(segv),
        "killed by SIGSEGV, got {status:?}"
    );
    ensure!(!status.core_dumped(), "the kernel dumped the daemon's core");
    let cores = cores_in(&daemon_dir)?;
    ensure!(
        cores.is_empty(),
        "core files in the daemon's directory: {cores:?}"
    );
    Ok(())
}

/// Security test 22, the parts the older trace test leaves out, in one run at `RUST_LOG=trace`:
/// a confidential client (its secret), a NEW_PASSWORD_REQUIRED login answered with a new
/// password over the API, refresh-token rotation, the API key sent on every TCP request, then a
/// CLI token, a refresh and a logout. Not one of those secrets, nor any segment (header, payload,
/// signature) of the tokens handed out, nor the refresh tokens stored, appears in any output of
/// the daemon or of the CLI.
#[test]
fn no_secret_in_any_output_at_trace_with_key_client_secret_and_new_password() -> anyhow::Result<()>
{
    const SECRET_CLIENT: &str = "security-confidential";
    const CLIENT_SECRET: &str = "ConfidentialClientSecret0123456789abcdefghij";
    const FIRST_PASSWORD: &str = "Temporary-Passw0rd!";
    const NEW_PASSWORD: &str = "Brand-New-Passw0rd!";
    let seed = format!(
        r#"[[pools]]
id = "{POOL}"

[[pools.clients]]
id = "{SECRET_CLIENT}"
secret = "{CLIENT_SECRET}"
access_token_ttl = 3600
rotation = {{ enabled = true, grace_seconds = 60 }}

[[pools.users]]
username = "nora"
password = "{FIRST_PASSWORD}"
status = "FORCE_CHANGE_PASSWORD"
"#
    );
    let emulator = EmulatorHost::start(&seed)?;
    let mut spec = ProfileSpec::new("dev", POOL, SECRET_CLIENT, "nora");
    spec.extra = "client_secret = { env = \"E2E_SECURITY_CLIENT_SECRET\" }\n".to_owned();
    let sandbox = Sandbox::new(&emulator.endpoint, &[spec])?;
    configure_api_key(&sandbox)?;
    let env = [
        ("RUST_LOG", "trace"),
        ("E2E_SECURITY_CLIENT_SECRET", CLIENT_SECRET),
    ];
    let mut daemon = sandbox.serve(&env)?;
    let tcp = daemon.tcp.context("the daemon's TCP address")?;
    let call = |method: &str, path: &str, body: Option<&str>| {
        call_api(tcp, Some(API_KEY), method, path, body)
    };
    let (status, started) = call(
        "POST",
        "/v1/profiles/dev/login",
        Some(&format!(r#"{{"password":"{FIRST_PASSWORD}"}}"#)),
    )?;
    ensure!(
        status == 200 && started["challenge"] == "NEW_PASSWORD_REQUIRED",
        "{started}"
    );
    let login_id = started["login_id"].as_str().context("login_id")?;
    let (status, done) = call(
        "POST",
        &format!("/v1/logins/{login_id}"),
        Some(&format!(r#"{{"new_password":"{NEW_PASSWORD}"}}"#)),
    )?;
    ensure!(status == 200 && done["status"] == "authenticated", "{done}");
    let mut tokens = Vec::new();
    for path in ["/v1/profiles/dev/token", "/v1/profiles/dev/token?kind=id"] {
        let (status, answer) = call("GET", path, None)?;
        ensure!(status == 200, "{answer}");
        tokens.push(answer["token"].as_str().context("a token")?.to_owned());
    }
    let mut refresh_tokens = stored_refresh_tokens(&sandbox.dir.path().join("state"))?;
    let (status, answer) = call("POST", "/v1/profiles/dev/refresh", Some("{}"))?;
    ensure!(status == 200, "{answer}");
    refresh_tokens.extend(stored_refresh_tokens(&sandbox.dir.path().join("state"))?);
    ensure!(!refresh_tokens.is_empty(), "a refresh token was stored");
    let mut cli_output = String::new();
    for args in [&["token", "dev"][..], &["logout", "dev"]] {
        let mut command = sandbox.command()?;
        command.args(args).env("RUST_LOG", "trace");
        let output = command.output()?;
        expect_code(&output, 0)?;
        let out = String::from_utf8_lossy(&output.stdout).into_owned();
        if args[0] == "token" {
            tokens.push(out.trim().to_owned());
        } else {
            cli_output.push_str(&out);
        }
        cli_output.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    ensure!(daemon.terminate()?.success());
    let (daemon_stdout, daemon_stderr) = daemon.finished_output();
    ensure!(daemon_stderr.contains("TRACE"), "trace logging is on");
    let everything = format!("{daemon_stdout}\n{daemon_stderr}\n{cli_output}");
    let mut secrets = vec![
        ("the first password".to_owned(), FIRST_PASSWORD.to_owned()),
        ("the new password".to_owned(), NEW_PASSWORD.to_owned()),
        ("the client secret".to_owned(), CLIENT_SECRET.to_owned()),
        ("the API key".to_owned(), API_KEY.to_owned()),
    ];
    for token in &tokens {
        for (index, segment) in token.split('.').enumerate() {
            if segment.len() >= 8 {
                secrets.push((format!("JWT segment {index}"), segment.to_owned()));
            }
        }
    }
    for token in refresh_tokens {
        secrets.push(("a refresh token".to_owned(), token));
    }
    for (what, secret) in &secrets {
        ensure!(
            !everything.contains(secret.as_str()),
            "{what} appears in the output"
        );
    }
    Ok(())
}

/// Security test 22, the remembered device: a login at `RUST_LOG=trace` that confirms a device
/// (ConfirmDevice carries the verifier of a password the daemon made), then a second login in
/// which the device answers DEVICE_SRP_AUTH and DEVICE_PASSWORD_VERIFIER. Neither the device
/// password, nor the user's password, nor the TOTP code, nor a token appears in any output.
#[test]
fn no_device_secret_in_any_output_at_trace() -> anyhow::Result<()> {
    const DEVICE_POOL: &str = "us-east-1_E2eSecDevice";
    const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXP";
    let seed = format!(
        r#"[[pools]]
id = "{DEVICE_POOL}"
mfa = "optional"
device_tracking = "always"

[[pools.clients]]
id = "{CLIENT}"
access_token_ttl = 3600

[[pools.users]]
username = "dora"
password = "{PASSWORD}"
mfa = "totp"
totp_secret = "{TOTP_SECRET}"
"#
    );
    let emulator = EmulatorHost::start(&seed)?;
    let mut spec = ProfileSpec::new("dev", DEVICE_POOL, CLIENT, "dora");
    spec.extra = "remember_device = true\n".to_owned();
    let sandbox = Sandbox::new(&emulator.endpoint, &[spec])?;
    let mut daemon = sandbox.serve(&[("RUST_LOG", "trace")])?;
    let tcp = daemon.tcp.context("the daemon's TCP address")?;
    let call =
        |method: &str, path: &str, body: Option<&str>| call_api(tcp, None, method, path, body);
    let password_body = format!(r#"{{"password":"{PASSWORD}"}}"#);

    // First login: password, then a TOTP code; the daemon confirms and remembers the device.
    let (status, started) = call("POST", "/v1/profiles/dev/login", Some(&password_body))?;
    ensure!(
        status == 200 && started["challenge"] == "SOFTWARE_TOKEN_MFA",
        "{started}"
    );
    let login_id = started["login_id"].as_str().context("login_id")?;
    let code = emulator
        .handle
        .totp_code(DEVICE_POOL, "dora")
        .context("a TOTP code")?;
    let (status, done) = call(
        "POST",
        &format!("/v1/logins/{login_id}"),
        Some(&format!(r#"{{"code":"{code}"}}"#)),
    )?;
    ensure!(status == 200 && done["status"] == "authenticated", "{done}");
    ensure!(emulator.handle.calls("ConfirmDevice") == 1);
    let state = sandbox.dir.path().join("state");
    let device_passwords = stored_strings(&state, "/device/device_password")?;
    ensure!(
        device_passwords.len() == 1 && device_passwords[0].len() >= 16,
        "one device password is stored"
    );

    // Second login: the device answers for the MFA, through the device password's SRP.
    let responds_before = emulator.handle.calls("RespondToAuthChallenge");
    let (status, done) = call("POST", "/v1/profiles/dev/login", Some(&password_body))?;
    ensure!(status == 200 && done["status"] == "authenticated", "{done}");
    ensure!(
        emulator.handle.calls("RespondToAuthChallenge") - responds_before == 3,
        "PASSWORD_VERIFIER, DEVICE_SRP_AUTH, DEVICE_PASSWORD_VERIFIER"
    );
    let (status, answer) = call("GET", "/v1/profiles/dev/token", None)?;
    ensure!(status == 200, "{answer}");
    let token = answer["token"].as_str().context("a token")?.to_owned();
    ensure!(daemon.terminate()?.success());
    let (daemon_stdout, daemon_stderr) = daemon.finished_output();
    ensure!(daemon_stderr.contains("TRACE"), "trace logging is on");
    let everything = format!("{daemon_stdout}\n{daemon_stderr}");
    let mut secrets = vec![
        (
            "the device password".to_owned(),
            device_passwords[0].clone(),
        ),
        ("the password".to_owned(), PASSWORD.to_owned()),
        ("the TOTP secret".to_owned(), TOTP_SECRET.to_owned()),
    ];
    for (index, segment) in token.split('.').enumerate() {
        secrets.push((format!("JWT segment {index}"), segment.to_owned()));
    }
    for token in stored_refresh_tokens(&state)? {
        secrets.push(("a refresh token".to_owned(), token));
    }
    for (what, secret) in &secrets {
        ensure!(
            !everything.contains(secret.as_str()),
            "{what} appears in the output"
        );
    }
    // Six digits: looked for as a whole number, leaving out each line's timestamp.
    let leaked = everything
        .lines()
        .map(crate::daemon::without_timestamp)
        .flat_map(|line| line.split(|c: char| !c.is_ascii_digit()))
        .any(|number| number == code);
    ensure!(!leaked, "the TOTP code appears in the output");
    Ok(())
}

/// One HTTP/1.1 request to the daemon's TCP listener (with the API key when given); the status
/// and the JSON body (Null when the body is not JSON).
fn call_api(
    tcp: std::net::SocketAddr,
    api_key: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut stream = TcpStream::connect(tcp)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    let authorization = api_key
        .map(|key| format!("Authorization: Bearer {key}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {tcp}\r\nX-Cogbroker-Request: 1\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text.get(9..12).context("a status line")?.parse()?;
    let (_, json) = text.split_once("\r\n\r\n").context("an HTTP answer")?;
    Ok((
        status,
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    ))
}

/// Every `refresh_token` in the file store's records under `state_dir`.
fn stored_refresh_tokens(state_dir: &Path) -> anyhow::Result<Vec<String>> {
    stored_strings(state_dir, "/refresh_token")
}

/// Every string at the JSON `pointer` of the file store's records under `state_dir`.
fn stored_strings(state_dir: &Path, pointer: &str) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![state_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(value) = serde_json::from_str::<serde_json::Value>(&read_text(&path)?)
            {
                if let Some(text) = value.pointer(pointer).and_then(serde_json::Value::as_str) {
                    found.push(text.to_owned());
                }
            }
        }
    }
    Ok(found)
}
