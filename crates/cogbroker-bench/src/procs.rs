//! The processes a bench run starts (emulator, daemons, the hello-world baseline) and what it
//! reads about them from /proc.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{Context as _, bail};

use crate::load::{self, Target};

/// A child process that is stopped (SIGTERM, then waited for) when dropped.
#[derive(Debug)]
pub(crate) struct Proc {
    child: Child,
    pub(crate) name: String,
}

impl Proc {
    pub(crate) fn spawn(name: &str, command: &mut Command) -> anyhow::Result<Self> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        Ok(Self {
            child,
            name: name.to_owned(),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// utime + stime in clock ticks, from /proc/PID/stat.
    pub(crate) fn cpu_ticks(&self) -> anyhow::Result<u64> {
        cpu_ticks(self.pid())
    }

    /// VmRSS in KiB, from /proc/PID/status.
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmRSS for {}", self.name))
    }

    /// Whether it already exited.
    pub(crate) fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + Duration::from_secs(8);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// utime + stime of a process in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    parse_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

/// utime + stime from the text of /proc/PID/stat.
fn parse_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    // The command name (field 2) may contain spaces; the fields after its ')' are fixed.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// The kernel's clock ticks per second (USER_HZ): 100 on Linux.
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

/// A free loopback port (bound and released: the daemon's config needs a number).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `cognito-emulator --seed SEED` on a free port and waits for its `listening on` line.
pub(crate) fn start_emulator(
    bin: &Path,
    seed: &Path,
    log: &Path,
) -> anyhow::Result<(Proc, SocketAddr)> {
    let mut proc = Proc::spawn(
        "cognito-emulator",
        Command::new(bin)
            .arg("--seed")
            .arg(seed)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?),
    )?;
    let stdout = proc.child_mut().stdout.take().context("emulator stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(addr) = line.trim().strip_prefix("listening on http://") else {
        bail!(
            "the emulator did not start (stdout {line:?}); see {}",
            log.display()
        );
    };
    Ok((proc, addr.parse()?))
}

/// One daemon instance with its own temporary config, XDG directories and memory store.
#[derive(Debug)]
pub(crate) struct Daemon {
    pub(crate) proc: Proc,
    pub(crate) tcp: Target,
    pub(crate) unix: Target,
    pub(crate) env: Vec<(String, PathBuf)>,
}

/// The files and environment of one daemon, before it starts.
#[derive(Debug, Clone)]
pub(crate) struct DaemonSetup {
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) port: u16,
}

impl DaemonSetup {
    /// Writes `[daemon]` (with `store = "memory"`) plus `profiles` (TOML text) under `dir`.
    pub(crate) fn write(dir: &Path, profiles: &str) -> anyhow::Result<Self> {
        Self::write_with_store(dir, profiles, "memory")
    }

    /// [`DaemonSetup::write`] with another `store`.
    pub(crate) fn write_with_store(
        dir: &Path,
        profiles: &str,
        store: &str,
    ) -> anyhow::Result<Self> {
        for sub in ["config", "state", "run"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        set_mode(&dir.join("run"), 0o700)?;
        let port = free_port()?;
        let socket = dir.join("run").join("cogbroker").join("cogbroker.sock");
        let config = dir.join("config").join("config.toml");
        let text = format!(
            "[daemon]\nlisten = \"127.0.0.1:{port}\"\nsocket = \"{}\"\nstore = \"{store}\"\nstate_dir = \"{}\"\nlog = \"warn\"\n\n{profiles}",
            socket.display(),
            dir.join("state").display(),
        );
        std::fs::write(&config, text)?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
            socket,
            port,
        })
    }

    /// The environment every process talking to this daemon gets.
    pub(crate) fn env(&self) -> Vec<(String, PathBuf)> {
        vec![
            ("COGBROKER_CONFIG".to_owned(), self.config.clone()),
            ("XDG_CONFIG_HOME".to_owned(), self.dir.join("config")),
            ("XDG_STATE_HOME".to_owned(), self.dir.join("state")),
            ("XDG_RUNTIME_DIR".to_owned(), self.dir.join("run")),
        ]
    }

    /// `cogbroker serve` with this setup (not waited for).
    pub(crate) fn command(&self, bin: &Path) -> anyhow::Result<Command> {
        let mut command = Command::new(bin);
        command
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .envs(self.env())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("daemon.log"))?);
        Ok(command)
    }

    pub(crate) fn tcp(&self) -> Target {
        Target::Tcp(SocketAddr::from(([127, 0, 0, 1], self.port)))
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

impl Daemon {
    /// Starts the daemon and waits until `/healthz` answers on both transports.
    pub(crate) async fn start(bin: &Path, setup: &DaemonSetup) -> anyhow::Result<Self> {
        let mut proc = Proc::spawn("cogbroker serve", &mut setup.command(bin)?)?;
        let unix = Target::Unix(setup.socket.clone());
        let tcp = setup.tcp();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if proc.exited() {
                bail!(
                    "cogbroker serve exited at start; see {}",
                    setup.dir.join("daemon.log").display()
                );
            }
            let unix_ok = load::once(&unix, http::Method::GET, "/healthz", None).await;
            let tcp_ok = load::once(&tcp, http::Method::GET, "/healthz", None).await;
            if matches!((&unix_ok, &tcp_ok), (Ok((s1, _)), Ok((s2, _))) if s1.is_success() && s2.is_success())
            {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "cogbroker serve did not answer /healthz within 20 s; see {}",
                    setup.dir.join("daemon.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            proc,
            tcp,
            unix,
            env: setup.env(),
        })
    }

    /// Logs `profile` in over the socket (POST /v1/profiles/P/login with the password).
    pub(crate) async fn login(&self, profile: &str, password: &str) -> anyhow::Result<()> {
        login(&self.unix, profile, password).await
    }
}

/// POST /v1/profiles/P/login; it must answer `authenticated`.
pub(crate) async fn login(target: &Target, profile: &str, password: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({ "password": password }).to_string();
    let (status, answer) = load::once(
        target,
        http::Method::POST,
        &format!("/v1/profiles/{profile}/login"),
        Some(&body),
    )
    .await?;
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
    if status != http::StatusCode::OK || answer["status"] != "authenticated" {
        bail!(
            "login {profile}: {status} {}",
            answer
                .get("error")
                .cloned()
                .unwrap_or(answer["status"].clone())
        );
    }
    Ok(())
}

/// Starts the hello-world baseline on a free TCP port and `socket`.
pub(crate) async fn start_hello(
    bin: &Path,
    socket: &Path,
) -> anyhow::Result<(Proc, Target, Target)> {
    let port = free_port()?;
    let tcp = Target::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    let unix = Target::Unix(socket.to_owned());
    let mut proc = Proc::spawn(
        "bench-hello",
        Command::new(bin)
            .arg(format!("127.0.0.1:{port}"))
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if proc.exited() {
            bail!("bench-hello exited at start");
        }
        let a = load::once(&tcp, http::Method::GET, "/", None).await;
        let b = load::once(&unix, http::Method::GET, "/", None).await;
        if a.is_ok() && b.is_ok() {
            return Ok((proc, tcp, unix));
        }
        if Instant::now() > deadline {
            bail!("bench-hello did not answer within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Time from exec to the first accepted connection on `socket`, polling connect() every 100 µs.
pub(crate) fn exec_to_accept(command: &mut Command, socket: &Path) -> anyhow::Result<Duration> {
    let _ = std::fs::remove_file(socket);
    let start = Instant::now();
    let mut proc = Proc::spawn("start-up probe", command)?;
    loop {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            let elapsed = start.elapsed();
            drop(proc);
            return Ok(elapsed);
        }
        if proc.exited() {
            bail!("{} exited before accepting", proc.name);
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("{} did not accept within 10 s", proc.name);
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// A process to time: how to make its command, its stdin, and what its stdout must contain.
pub(crate) struct Timed<'a> {
    pub(crate) make: Box<dyn Fn() -> Command + 'a>,
    pub(crate) stdin: Option<&'a str>,
    pub(crate) expect: &'a str,
}

/// Wall time (ms) of one run, spawn to exit; it must exit 0 with `expect` in its stdout.
fn run_once(timed: &Timed<'_>) -> anyhow::Result<f64> {
    let mut command = (timed.make)();
    command
        .stdin(if timed.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command.spawn().with_context(|| format!("{command:?}"))?;
    if let Some(input) = timed.stdin {
        use std::io::Write as _;
        let mut pipe = child.stdin.take().context("stdin")?;
        pipe.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.contains(timed.expect) {
        bail!(
            "{:?} {}: {}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(elapsed.as_secs_f64() * 1e3)
}

/// Mean and median wall time (ms) of each process over `runs` runs after `warmup`, the
/// processes taking turns run by run, so a change in the machine's load meets all of them
/// alike. A process that fails once is measured no further and reports why.
pub(crate) fn time_processes(
    timed: &[Timed<'_>],
    warmup: usize,
    runs: usize,
) -> Vec<anyhow::Result<(f64, f64)>> {
    let mut samples: Vec<anyhow::Result<Vec<f64>>> =
        timed.iter().map(|_| Ok(Vec::with_capacity(runs))).collect();
    for i in 0..warmup + runs {
        for (process, slot) in timed.iter().zip(samples.iter_mut()) {
            let Ok(list) = slot else { continue };
            match run_once(process) {
                Ok(ms) if i >= warmup => list.push(ms),
                Ok(_) => {}
                Err(error) => *slot = Err(error),
            }
        }
    }
    samples
        .into_iter()
        .map(|slot| {
            let mut list = slot?;
            let mean = list.iter().sum::<f64>() / list.len().max(1) as f64;
            Ok((mean, load::quantile(&mut list, 0.5)))
        })
        .collect()
}

/// [`time_processes`] of one process.
pub(crate) fn time_process(
    timed: Timed<'_>,
    warmup: usize,
    runs: usize,
) -> anyhow::Result<(f64, f64)> {
    time_processes(std::slice::from_ref(&timed), warmup, runs)
        .pop()
        .context("one process timed")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_come_from_fields_14_and_15_even_with_spaces_in_the_name() {
        let stat = "4242 (tokio rt) worker) S 1 4242 4242 0 -1 4194304 500 0 0 0 17 5 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 22);
        assert!(parse_cpu_ticks("garbage").is_err());
    }

    #[test]
    fn own_process_has_readable_ticks_and_rss() {
        assert!(cpu_ticks(std::process::id()).is_ok());
    }
}
