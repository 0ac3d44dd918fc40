//! Running the real `cogbroker` binary for end-to-end tests: a private directory with a config
//! file, the daemon as a child process whose readiness is the `READY=1` datagram on a
//! `NOTIFY_SOCKET` we own (an event, never a sleep), and CLI invocations against it.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, bail};
use cognito_emulator::{Handle, RunningEmulator};

use crate::workspace_binary;

/// How long a daemon may take to say `READY=1` or to exit after a signal.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(30);

/// An emulator on its own runtime, so tests can stay synchronous while it serves.
pub struct EmulatorHost {
    runtime: tokio::runtime::Runtime,
    running: Option<RunningEmulator>,
    /// Counters, faults, clock and codes.
    pub handle: Handle,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl std::fmt::Debug for EmulatorHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorHost")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl EmulatorHost {
    /// Starts an emulator seeded from TOML on `127.0.0.1:0`.
    pub fn start(seed_toml: &str) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("start a runtime for the emulator")?;
        let running = runtime.block_on(crate::start_emulator(seed_toml))?;
        let handle = running.handle();
        let endpoint = running.endpoint();
        Ok(Self {
            runtime,
            running: Some(running),
            handle,
            endpoint,
        })
    }

    /// Stops the emulator: from now on its port refuses connections (Cognito "down").
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.shutdown());
        }
    }

    /// Total calls of every operation and outcome so far.
    pub fn total_calls(&self) -> u64 {
        let stats = serde_json::to_value(self.handle.stats()).unwrap_or_default();
        stats
            .as_object()
            .map(|operations| {
                operations
                    .values()
                    .filter_map(|outcomes| outcomes.as_object())
                    .flat_map(|outcomes| outcomes.values())
                    .filter_map(serde_json::Value::as_u64)
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for EmulatorHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One profile of a test configuration.
#[derive(Clone, Debug)]
pub struct ProfileSpec {
    /// The profile name.
    pub name: String,
    /// The pool id, e.g. `us-east-1_Test1`.
    pub pool: String,
    /// The app client id.
    pub client: String,
    /// The username.
    pub username: String,
    /// Extra TOML lines for the profile table.
    pub extra: String,
}

impl ProfileSpec {
    /// A profile with no extra settings.
    pub fn new(name: &str, pool: &str, client: &str, username: &str) -> Self {
        Self {
            name: name.to_owned(),
            pool: pool.to_owned(),
            client: client.to_owned(),
            username: username.to_owned(),
            extra: String::new(),
        }
    }

    /// A profile written as `extra` alone (no pool, client or username lines): the OAuth
    /// grants, whose keys the test writes itself.
    pub fn raw(name: &str, extra: &str) -> Self {
        Self {
            name: name.to_owned(),
            pool: String::new(),
            client: String::new(),
            username: String::new(),
            extra: extra.to_owned(),
        }
    }
}

/// A private directory with a config file: where a daemon and its CLI calls live.
#[derive(Debug)]
pub struct Sandbox {
    /// Removed on drop.
    pub dir: tempfile::TempDir,
    /// `<dir>/config.toml`.
    pub config_path: PathBuf,
    /// `<dir>/run/cogbroker.sock`.
    pub socket: PathBuf,
}

impl Sandbox {
    /// Writes a config with a file store, the socket in `<dir>/run` and TCP on `127.0.0.1:0`.
    pub fn new(endpoint: &str, profiles: &[ProfileSpec]) -> anyhow::Result<Self> {
        Self::with_store(endpoint, profiles, "file")
    }

    /// Like [`Sandbox::new`] with another store backend.
    pub fn with_store(
        endpoint: &str,
        profiles: &[ProfileSpec],
        store: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("cb-e2e-")
            .tempdir()
            .context("create a temporary directory")?;
        let socket = dir.path().join("run").join("cogbroker.sock");
        let state = dir.path().join("state");
        let mut text = format!(
            "[daemon]\nlisten = \"127.0.0.1:0\"\nsocket = {}\nstore = \"{store}\"\nstate_dir = {}\nlog = \"info\"\n",
            toml_string(&socket),
            toml_string(&state),
        );
        for profile in profiles {
            if profile.pool.is_empty() {
                text.push_str(&format!(
                    "\n[profiles.{}]\n{}\n",
                    profile.name, profile.extra
                ));
                continue;
            }
            text.push_str(&format!(
                "\n[profiles.{}]\nregion = \"{}\"\nuser_pool_id = \"{}\"\nclient_id = \"{}\"\nusername = \"{}\"\nendpoint = \"{endpoint}\"\n{}\n",
                profile.name,
                profile.pool.split('_').next().unwrap_or("us-east-1"),
                profile.pool,
                profile.client,
                profile.username,
                profile.extra,
            ));
        }
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, text).context("write the test config")?;
        Ok(Self {
            dir,
            config_path,
            socket,
        })
    }

    /// `cogbroker --config <this config>` with a clean environment (no COGBROKER_*, private XDG
    /// dirs, and `COGBROKER_NO_AUTOSTART=1`: remove it to test autostart).
    pub fn command(&self) -> anyhow::Result<Command> {
        let mut command = Command::new(workspace_binary("cogbroker")?);
        command.arg("--config").arg(&self.config_path);
        self.clean_env(&mut command);
        Ok(command)
    }

    /// Runs the CLI with `args`, feeding `stdin`, and collects its output.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
        let mut command = self.command()?;
        command.args(args);
        run_with_stdin(command, stdin)
    }

    /// `cogbroker login <profile> --password-stdin`, which must exit 0.
    pub fn login_stdin(&self, profile: &str, password: &str) -> anyhow::Result<Output> {
        let output = self.cli(
            &["login", profile, "--password-stdin"],
            Some(&format!("{password}\n")),
        )?;
        expect_code(&output, 0)?;
        Ok(output)
    }

    fn clean_env(&self, command: &mut Command) {
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("COGBROKER_")
                || key.starts_with("LISTEN_")
                || key == "NOTIFY_SOCKET"
                || key == "RUST_LOG"
            {
                command.env_remove(key);
            }
        }
        // A test that wants a daemon starts one itself (autostart has its own tests), so no
        // command ever leaves a background daemon behind.
        command
            .env("COGBROKER_NO_AUTOSTART", "1")
            .env("XDG_RUNTIME_DIR", self.dir.path().join("xdg-run"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg-config"))
            .env("XDG_STATE_HOME", self.dir.path().join("xdg-state"));
    }

    /// Starts `cogbroker serve` and waits for `READY=1`.
    pub fn serve(&self, env: &[(&str, &str)]) -> anyhow::Result<DaemonProcess> {
        let mut command = self.command()?;
        command.arg("serve");
        for (key, value) in env {
            command.env(key, value);
        }
        self.spawn_daemon(command)
    }

    /// Starts `<wrapper...> cogbroker --config <config> serve` (e.g. `prlimit --nofile=1024:`)
    /// with the same clean environment, and waits for `READY=1`.
    pub fn serve_wrapped(&self, wrapper: &[&str]) -> anyhow::Result<DaemonProcess> {
        let (program, args) = wrapper.split_first().context("a wrapper command")?;
        let mut command = Command::new(program);
        command
            .args(args)
            .arg(workspace_binary("cogbroker")?)
            .arg("--config")
            .arg(&self.config_path)
            .arg("serve");
        self.clean_env(&mut command);
        self.spawn_daemon(command)
    }

    /// Starts `cogbroker serve` as systemd would with `WatchdogSec`: `WATCHDOG_USEC` set and
    /// `WATCHDOG_PID` naming the daemon itself (a shell exports its own pid, then `exec`s).
    pub fn serve_with_watchdog(&self, usec: u64) -> anyhow::Result<DaemonProcess> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" --config \"$1\" serve")
            .arg(workspace_binary("cogbroker")?)
            .arg(&self.config_path)
            .env("WATCHDOG_USEC", usec.to_string());
        self.clean_env(&mut command);
        self.spawn_daemon(command)
    }

    /// Starts `systemd-socket-activate -l <socket> cogbroker serve`: the activator binds the
    /// socket and `exec`s the daemon (same pid) on the first connection, passing the socket as
    /// `LISTEN_FDS`. Returns once the socket listens; the daemon is not running yet.
    pub fn socket_activated(&self) -> anyhow::Result<(DaemonProcess, PathBuf)> {
        use std::io::BufRead as _;
        use std::os::unix::fs::DirBuilderExt as _;
        let run_dir = self.socket.parent().context("the socket has a directory")?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(run_dir)
            .context("create the socket directory")?;
        let notify_path = self.dir.path().join(format!("notify-{}.sock", unique()));
        let notify = UnixDatagram::bind(&notify_path).context("bind the NOTIFY_SOCKET")?;
        let mut command = Command::new("systemd-socket-activate");
        command.arg("-l").arg(&self.socket);
        // The activator passes the program only TERM, PATH, USER, HOME and what `-E` names.
        let mut pass = |name: &str, value: &Path| {
            command.arg("-E").arg(format!("{name}={}", value.display()));
        };
        pass("NOTIFY_SOCKET", &notify_path);
        pass("XDG_RUNTIME_DIR", &self.dir.path().join("xdg-run"));
        pass("XDG_CONFIG_HOME", &self.dir.path().join("xdg-config"));
        pass("XDG_STATE_HOME", &self.dir.path().join("xdg-state"));
        command
            .arg(workspace_binary("cogbroker")?)
            .arg("--config")
            .arg(&self.config_path)
            .arg("serve");
        self.clean_env(&mut command);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .context("spawn systemd-socket-activate (Debian package systemd)")?;
        let mut stderr = std::io::BufReader::new(child.stderr.take().context("no stderr pipe")?);
        let mut line = String::new();
        loop {
            line.clear();
            let read = stderr
                .read_line(&mut line)
                .context("read the activator's stderr")?;
            if read == 0 {
                bail!("systemd-socket-activate exited before listening");
            }
            if line.starts_with("Listening on") {
                break;
            }
        }
        let daemon = DaemonProcess::adopt(child, notify, Some(Box::new(stderr)))?;
        Ok((daemon, self.socket.clone()))
    }

    fn spawn_daemon(&self, mut command: Command) -> anyhow::Result<DaemonProcess> {
        let notify_path = self.dir.path().join(format!("notify-{}.sock", unique()));
        let notify = UnixDatagram::bind(&notify_path).context("bind the NOTIFY_SOCKET")?;
        command
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command.spawn().context("spawn cogbroker serve")?;
        let mut daemon = DaemonProcess::adopt(child, notify, None)?;
        daemon.ready = daemon.wait_for_notification("READY=1")?;
        daemon.tcp = daemon
            .ready
            .split(|c: char| c.is_whitespace())
            .find_map(|word| word.strip_prefix("http://"))
            .and_then(|addr| addr.parse().ok());
        Ok(daemon)
    }
}

/// A running `cogbroker serve`.
#[derive(Debug)]
pub struct DaemonProcess {
    pid: i32,
    exit: Receiver<std::io::Result<ExitStatus>>,
    exited: Option<ExitStatus>,
    notify: UnixDatagram,
    notifications: Vec<String>,
    stdout: Collector,
    stderr: Collector,
    waiter: Option<JoinHandle<()>>,
    /// The datagram that carried `READY=1` (with `STATUS=`).
    pub ready: String,
    /// The TCP address from `STATUS=`.
    pub tcp: Option<SocketAddr>,
}

impl DaemonProcess {
    fn adopt(
        mut child: Child,
        notify: UnixDatagram,
        stderr: Option<Box<dyn std::io::Read + Send>>,
    ) -> anyhow::Result<Self> {
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        let stdout = Collector::spawn(child.stdout.take().context("no stdout pipe")?);
        let stderr = match stderr {
            Some(reader) => Collector::spawn(reader),
            None => Collector::spawn(child.stderr.take().context("no stderr pipe")?),
        };
        let (sender, exit) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = sender.send(child.wait());
        });
        Ok(Self {
            pid,
            exit,
            exited: None,
            notify,
            notifications: Vec::new(),
            stdout,
            stderr,
            waiter: Some(waiter),
            ready: String::new(),
            tcp: None,
        })
    }

    /// Waits for a datagram containing `needle` (e.g. `READY=1`, `STOPPING=1`); returns it.
    pub fn wait_for_notification(&mut self, needle: &str) -> anyhow::Result<String> {
        self.wait_for_notifications(needle, 1)
    }

    /// Reads every datagram already queued on the notify socket, without waiting, and returns
    /// how many. A long run must call it now and then: the daemon's `sd_notify` blocks once the
    /// socket's queue is full, as it would with a manager that never reads (systemd always does).
    pub fn drain_notifications(&mut self) -> anyhow::Result<usize> {
        self.notify
            .set_nonblocking(true)
            .context("make the notify socket non-blocking")?;
        let mut buffer = vec![0u8; 4096];
        let mut drained = 0;
        while let Ok(length) = self.notify.recv(&mut buffer) {
            drained += 1;
            // Keep the readiness datagrams and the latest ones, not every STATUS= of a long run.
            if self.notifications.len() < 64 {
                self.notifications
                    .push(String::from_utf8_lossy(&buffer[..length]).into_owned());
            }
        }
        self.notify
            .set_nonblocking(false)
            .context("make the notify socket blocking again")?;
        Ok(drained)
    }

    /// Waits until `count` datagrams containing `needle` have arrived; returns the last one.
    pub fn wait_for_notifications(&mut self, needle: &str, count: usize) -> anyhow::Result<String> {
        let seen =
            |notifications: &[String]| notifications.iter().filter(|n| n.contains(needle)).count();
        if seen(&self.notifications) >= count {
            return Ok(self
                .notifications
                .iter()
                .rev()
                .find(|n| n.contains(needle))
                .cloned()
                .unwrap_or_default());
        }
        self.notify
            .set_read_timeout(Some(PROCESS_DEADLINE))
            .context("set the notify socket timeout")?;
        let mut buffer = vec![0u8; 4096];
        loop {
            match self.notify.recv(&mut buffer) {
                Ok(length) => {
                    let datagram = String::from_utf8_lossy(&buffer[..length]).into_owned();
                    self.notifications.push(datagram.clone());
                    if datagram.contains(needle) && seen(&self.notifications) >= count {
                        return Ok(datagram);
                    }
                }
                Err(error) => bail!(
                    "no {needle} from the daemon within {} s ({error}); exit: {:?}; stderr:\n{}",
                    PROCESS_DEADLINE.as_secs(),
                    self.try_exit(),
                    self.stderr_text()
                ),
            }
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Every datagram received so far.
    pub fn notifications(&self) -> &[String] {
        &self.notifications
    }

    /// Sends a signal (`rustix::process::Signal::TERM`, `KILL`, ...).
    pub fn signal(&mut self, signal: rustix::process::Signal) -> anyhow::Result<()> {
        if self.try_exit().is_some() {
            bail!("the daemon already exited");
        }
        let pid = rustix::process::Pid::from_raw(self.pid).context("invalid pid")?;
        rustix::process::kill_process(pid, signal).context("send the signal")?;
        Ok(())
    }

    /// Waits for the process to exit (bounded by [`PROCESS_DEADLINE`]).
    pub fn wait(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        match self.exit.recv_timeout(PROCESS_DEADLINE) {
            Ok(result) => {
                let status = result.context("wait for the daemon")?;
                self.exited = Some(status);
                if let Some(waiter) = self.waiter.take() {
                    let _ = waiter.join();
                }
                Ok(status)
            }
            Err(RecvTimeoutError::Timeout) => bail!(
                "the daemon did not exit within {} s; stderr:\n{}",
                PROCESS_DEADLINE.as_secs(),
                self.stderr_text()
            ),
            Err(RecvTimeoutError::Disconnected) => bail!("the daemon's waiter thread vanished"),
        }
    }

    /// Waits up to `limit` for the process to exit; `None` when it is still running.
    pub fn wait_up_to(&mut self, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
        if let Some(status) = self.exited {
            return Ok(Some(status));
        }
        match self.exit.recv_timeout(limit) {
            Ok(result) => {
                let status = result.context("wait for the daemon")?;
                self.exited = Some(status);
                if let Some(waiter) = self.waiter.take() {
                    let _ = waiter.join();
                }
                Ok(Some(status))
            }
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => bail!("the daemon's waiter thread vanished"),
        }
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(rustix::process::Signal::TERM)?;
        self.wait()
    }

    /// The exit status if the process already ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Ok(status)) = self.exit.try_recv() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// Everything the daemon wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        self.stdout.text()
    }

    /// Stderr after the process ended (all pipes drained).
    pub fn finished_output(&mut self) -> (String, String) {
        self.stdout.join();
        self.stderr.join();
        (self.stdout.text(), self.stderr.text())
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            let _ = self.exit.recv_timeout(PROCESS_DEADLINE);
        }
    }
}

/// A thread copying a pipe into memory.
#[derive(Debug)]
struct Collector {
    buffer: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    fn spawn(mut pipe: impl std::io::Read + Send + 'static) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(length) => {
                        if let Ok(mut buffer) = sink.lock() {
                            buffer.extend_from_slice(&chunk[..length]);
                        }
                    }
                }
            }
        });
        Self {
            buffer,
            thread: Some(thread),
        }
    }

    fn text(&self) -> String {
        self.buffer
            .lock()
            .map(|buffer| String::from_utf8_lossy(&buffer).into_owned())
            .unwrap_or_default()
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request to the daemon's HTTP API over loopback TCP, as a script would send it: a GET,
/// or a POST of `body`. Returns the status and the JSON answer.
pub async fn api(
    client: &reqwest::Client,
    daemon: &DaemonProcess,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let tcp = daemon.tcp.context("the daemon's TCP address")?;
    let url = format!("http://{tcp}{path}");
    let request = match body {
        Some(body) => client.post(url).json(&body),
        None => client.get(url),
    };
    let response = request.header("X-Cogbroker-Request", "1").send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// Runs a command to completion, writing `stdin` (if any) first.
pub fn run_with_stdin(mut command: Command, stdin: Option<&str>) -> anyhow::Result<Output> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().context("spawn the CLI")?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().context("no stdin pipe")?;
        pipe.write_all(text.as_bytes())
            .context("write the CLI's stdin")?;
    }
    let output = child.wait_with_output().context("wait for the CLI")?;
    Ok(output)
}

/// The exit code of a CLI run, with its output in the error message when it is not `expected`.
pub fn expect_code(output: &Output, expected: i32) -> anyhow::Result<()> {
    if output.status.code() != Some(expected) {
        bail!(
            "expected exit code {expected}, got {:?}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Reads all of a file, for assertions.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|mut file| file.read_to_string(&mut text))
        .with_context(|| format!("read {}", path.display()))?;
    Ok(text)
}

/// A path as a quoted TOML basic string, for test configs.
pub fn toml_string(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
