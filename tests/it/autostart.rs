//! Autostart: a client command that finds no daemon starts `cogbroker serve` in the background
//! (gpg-agent style), waits for it to accept and answers; ten at once start one daemon; with
//! autostart off it exits 3. Every daemon a test causes is found (by `SO_PEERCRED` on the socket
//! and by scanning /proc) and stopped before the test ends.

use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use cogbroker_e2e::daemon::{EmulatorHost, PROCESS_DEADLINE, ProfileSpec, Sandbox, expect_code};
use tokio::time::Instant;

const POOL: &str = "us-east-1_E2eAutostart";
const CLIENT: &str = "e2e-autostart";
const PASSWORD: &str = "Alice-Passw0rd!";

fn seed() -> String {
    format!(
        "[[pools]]\nid = \"{POOL}\"\n\n[[pools.clients]]\nid = \"{CLIENT}\"\naccess_token_ttl = 3600\n\n\
         [[pools.users]]\nusername = \"alice\"\npassword = \"{PASSWORD}\"\nstatus = \"CONFIRMED\"\n"
    )
}

fn sandbox(emulator: &EmulatorHost) -> anyhow::Result<Sandbox> {
    Sandbox::new(
        &emulator.endpoint,
        &[ProfileSpec::new("dev", POOL, CLIENT, "alice")],
    )
}

/// The sandbox's CLI with autostart left on (the sandbox turns it off for every other test).
fn autostarting(sandbox: &Sandbox, args: &[&str]) -> anyhow::Result<Command> {
    let mut command = sandbox.command()?;
    command.env_remove("COGBROKER_NO_AUTOSTART").args(args);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(command)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A daemon this test caused but did not spawn itself: stopped with SIGTERM by [`stop`], and
/// killed on drop if a failed assertion left it running.
///
/// [`stop`]: Adopted::stop
struct Adopted {
    pid: i32,
}

impl Adopted {
    /// The process listening on `socket`.
    fn on_socket(socket: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            pid: socket_pid(socket)?,
        })
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.pid).context("a positive pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("SIGTERM the daemon")?;
        let deadline = Instant::now() + PROCESS_DEADLINE;
        let mut pause = Duration::from_millis(5);
        while alive(self.pid) {
            ensure!(
                Instant::now() < deadline,
                "daemon {} still runs {} s after SIGTERM",
                self.pid,
                PROCESS_DEADLINE.as_secs()
            );
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for Adopted {
    fn drop(&mut self) {
        if alive(self.pid) {
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// The pid of the process listening on `socket`, by `SO_PEERCRED`.
fn socket_pid(socket: &Path) -> anyhow::Result<i32> {
    let stream =
        UnixStream::connect(socket).with_context(|| format!("connect to {}", socket.display()))?;
    let credentials = rustix::net::sockopt::socket_peercred(&stream)
        .context("SO_PEERCRED on the daemon's socket")?;
    Ok(credentials.pid.as_raw_nonzero().get())
}

/// Whether process `pid` has `path` open.
fn holds_open(pid: u32, path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .any(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target == path))
}

/// Whether `pid` runs (a zombie waiting for its reaper does not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so split at the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Every live `cogbroker ... --config <config> ... serve` process on the machine.
fn daemons_for(config: &Path) -> anyhow::Result<Vec<i32>> {
    let config = config.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").context("read /proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue; // gone meanwhile
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&config) && args.contains(&b"serve".as_slice()) && alive(pid) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Logs in once with a daemon the test starts, then stops it: the file store keeps the session.
fn stored_session(sandbox: &Sandbox) -> anyhow::Result<()> {
    let mut daemon = sandbox.serve(&[])?;
    sandbox.login_stdin("dev", PASSWORD)?;
    let status = daemon.terminate()?;
    ensure!(status.success(), "the first daemon stopped with {status:?}");
    ensure!(!sandbox.socket.exists(), "the socket is gone with it");
    Ok(())
}

#[test]
fn a_token_request_with_no_daemon_starts_one_that_restores_the_session() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator)?;
    stored_session(&sandbox)?;
    let logins_before = emulator.handle.calls("InitiateAuth");

    let output = autostarting(&sandbox, &["token", "dev"])?
        .output()
        .context("run cogbroker token")?;
    // Whatever happens next, the daemon it started is stopped.
    let mut daemon = Adopted::on_socket(&sandbox.socket)
        .with_context(|| format!("no daemon on the socket; stderr: {}", text(&output.stderr)))?;
    expect_code(&output, 0)?;
    let token = text(&output.stdout);
    let token = token.trim_end();
    ensure!(
        token.split('.').count() == 3 && !token.contains(char::is_whitespace),
        "not a bare JWT on stdout: {token:?}"
    );
    let message = text(&output.stderr);
    ensure!(
        message.contains("started the daemon in the background")
            && message.contains(&format!("pid {}", daemon.pid)),
        "{message}"
    );
    ensure!(
        emulator.handle.calls("InitiateAuth") == logins_before,
        "the stored session answered: no new sign-in"
    );
    ensure!(daemons_for(&sandbox.config_path)? == vec![daemon.pid]);

    // The next command finds it running: no second start, no notice.
    let output = autostarting(&sandbox, &["token", "dev"])?.output()?;
    expect_code(&output, 0)?;
    ensure!(output.stderr.is_empty(), "{}", text(&output.stderr));
    // Its stderr went to the log in the state directory, not to our pipes.
    let log = sandbox.dir.path().join("state").join("daemon.log");
    ensure!(log.exists(), "no {}", log.display());

    daemon.stop()?;
    ensure!(daemons_for(&sandbox.config_path)?.is_empty());
    Ok(())
}

#[test]
fn ten_clients_at_once_start_exactly_one_daemon() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator)?;
    // The worst case: hold the clients' start lock until all ten have found no daemon and wait
    // for it, then let them race for it at once.
    let run = sandbox.socket.parent().context("the socket's directory")?;
    std::fs::DirBuilder::new().mode(0o700).create(run)?;
    let lock_path = run.join("cogbroker.sock.autostart.lock");
    let held = std::fs::File::create(&lock_path)?;
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive)?;
    let children = (0..10)
        .map(|_| {
            autostarting(&sandbox, &["status"])?
                .spawn()
                .context("spawn cogbroker status")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let deadline = Instant::now() + PROCESS_DEADLINE;
    let mut pause = Duration::from_millis(2);
    while !children
        .iter()
        .all(|child| holds_open(child.id(), &lock_path))
    {
        ensure!(
            Instant::now() < deadline,
            "the clients never reached the lock"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    drop(held);
    let outputs = children
        .into_iter()
        .map(|child| {
            child
                .wait_with_output()
                .context("wait for cogbroker status")
        })
        .collect::<anyhow::Result<Vec<Output>>>()?;
    let pids = daemons_for(&sandbox.config_path)?;
    let mut adopted: Vec<Adopted> = pids.iter().map(|&pid| Adopted { pid }).collect();
    for output in &outputs {
        expect_code(output, 0)?;
    }
    if pids.len() != 1 {
        bail!("{} daemons run: {pids:?}", pids.len());
    }
    ensure!(
        socket_pid(&sandbox.socket)? == pids[0],
        "the daemon on the socket is the one running"
    );
    let notices = outputs
        .iter()
        .filter(|output| text(&output.stderr).contains("started the daemon"))
        .count();
    ensure!(notices == 1, "{notices} clients say they started it");
    // Not even a short-lived second daemon was spawned (the daemon's own lock would have made it
    // exit with "already running", into the same log): each client looked again under the lock.
    let log = std::fs::read_to_string(sandbox.dir.path().join("state").join("daemon.log"))?;
    ensure!(
        !log.contains("already running"),
        "a second daemon was spawned:\n{log}"
    );
    for daemon in &mut adopted {
        daemon.stop()?;
    }
    ensure!(daemons_for(&sandbox.config_path)?.is_empty());
    Ok(())
}

#[test]
fn with_autostart_off_a_client_exits_3_and_starts_nothing() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator)?;
    let check = |output: &Output| -> anyhow::Result<()> {
        expect_code(output, 3)?;
        let message = text(&output.stderr);
        ensure!(message.contains("cogbroker serve"), "{message}");
        ensure!(output.stdout.is_empty());
        ensure!(daemons_for(&sandbox.config_path)?.is_empty());
        ensure!(!sandbox.socket.exists());
        Ok(())
    };

    // By the environment.
    let output = autostarting(&sandbox, &["token", "dev"])?
        .env("COGBROKER_NO_AUTOSTART", "1")
        .output()?;
    check(&output)?;

    // By the file.
    let config = std::fs::read_to_string(&sandbox.config_path)?;
    std::fs::write(
        &sandbox.config_path,
        config.replacen("[daemon]\n", "[daemon]\nautostart = false\n", 1),
    )?;
    let output = autostarting(&sandbox, &["status"])?.output()?;
    check(&output)
}

#[test]
fn a_daemon_that_cannot_start_is_reported_with_its_log() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = sandbox(&emulator)?;
    // A runtime directory open to others: the daemon refuses it before binding anything.
    let run = sandbox.socket.parent().context("the socket's directory")?;
    std::fs::create_dir(run)?;
    std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o755))?;
    let output = autostarting(&sandbox, &["status"])?.output()?;
    let leftovers: Vec<Adopted> = daemons_for(&sandbox.config_path)?
        .into_iter()
        .map(|pid| Adopted { pid })
        .collect();
    ensure!(leftovers.is_empty(), "a daemon runs after a failed start");
    expect_code(&output, 3)?;
    let message = text(&output.stderr);
    ensure!(
        message.contains("exited") && message.contains("open to group or others"),
        "the message quotes the daemon's own reason: {message}"
    );
    ensure!(message.contains("daemon.log"), "{message}");
    Ok(())
}
