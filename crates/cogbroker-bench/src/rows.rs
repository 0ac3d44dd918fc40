//! Every row of the table: set-up, measurement, goal.

mod helper_modes;
mod layout;
mod login;
mod refresh;
mod startup;

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

use tokio::time::Instant;

use self::helper_modes::{helper_row, helpers};
use self::layout::symbol_order_row;
use self::login::{login_row, srp_row};
use self::refresh::{herd_rows, storm_rows};
use self::startup::startup_row;
use crate::load::{self, Target, quantile};
use crate::procs::{self, Daemon, DaemonSetup};
use crate::{Options, Row, Verdict};

const POOL: &str = "us-east-1_Bench";
const PASSWORD: &str = "Bench-Passw0rd!";
const TOKEN_PATH: &str = "/v1/profiles/bench/token";

/// Sizes of a run.
struct Plan {
    seconds: Duration,
    seq: usize,
    proc_runs: usize,
    aws_runs: usize,
    srp_runs: usize,
    logins: usize,
    herd: usize,
    herd_rounds: usize,
    idle: Duration,
    soak: u64,
    starts: usize,
    storm: usize,
    storm_ttl: u64,
    storm_before: u64,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                seconds: Duration::from_secs(1),
                seq: 2_000,
                proc_runs: 20,
                aws_runs: 2,
                srp_runs: 5,
                logins: 3,
                herd: 1_000,
                herd_rounds: 1,
                idle: Duration::from_secs(10),
                soak: 100_000,
                starts: 3,
                storm: 100,
                storm_ttl: 30,
                storm_before: 15,
            }
        } else {
            Self {
                seconds: Duration::from_secs(4),
                seq: 20_000,
                proc_runs: 200,
                aws_runs: 10,
                srp_runs: 30,
                logins: 20,
                herd: 1_000,
                herd_rounds: 9,
                idle: Duration::from_secs(60),
                soak: 1_000_000,
                starts: 10,
                storm: 1_000,
                storm_ttl: 100,
                storm_before: 50,
            }
        }
    }
}

fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "==> {message}");
}

fn seed(plan: &Plan) -> String {
    let mut text = format!(
        "[[pools]]\nid = \"{POOL}\"\n\n\
         [[pools.clients]]\nid = \"bench-long\"\naccess_token_ttl = 3600\nid_token_ttl = 3600\n\n\
         [[pools.clients]]\nid = \"bench-herd\"\naccess_token_ttl = 2\nid_token_ttl = 2\n\n\
         [[pools.clients]]\nid = \"bench-storm\"\naccess_token_ttl = {ttl}\nid_token_ttl = {ttl}\n\n",
        ttl = plan.storm_ttl
    );
    for i in 0..plan.storm.max(4) {
        let _ = write!(
            text,
            "[[pools.users]]\nusername = \"u{i}\"\npassword = \"{PASSWORD}\"\n\n"
        );
    }
    text
}

fn profile(
    name: &str,
    client: &str,
    user: &str,
    flow: &str,
    endpoint: &str,
    extra: &str,
) -> String {
    format!(
        "[profiles.{name}]\nuser_pool_id = \"{POOL}\"\nclient_id = \"{client}\"\nusername = \"{user}\"\nauth_flow = \"{flow}\"\nremember_device = false\nendpoint = \"{endpoint}\"\n{extra}\n"
    )
}

/// A server's CPU time (utime + stime) summed over load runs, and the requests they made.
#[derive(Debug, Default)]
struct CpuPerRequest {
    ticks: u64,
    requests: u64,
}

impl CpuPerRequest {
    async fn measure(
        &mut self,
        server: &procs::Proc,
        run: impl std::future::Future<Output = anyhow::Result<load::Throughput>>,
    ) -> anyhow::Result<load::Throughput> {
        let before = server.cpu_ticks()?;
        let measured = run.await?;
        self.ticks += server.cpu_ticks()?.saturating_sub(before);
        self.requests += measured.requests;
        Ok(measured)
    }

    fn micros(&self) -> f64 {
        self.ticks as f64 / procs::TICKS_PER_SECOND * 1e6 / self.requests.max(1) as f64
    }
}

/// The cache-hit rows against `bench-hello`, on TCP and the Unix socket: throughput (50
/// kept-alive connections, interleaved with the baseline, best of two rounds) and latency (one
/// kept-alive connection, the two sides taking turns request by request).
async fn cache_hit_rows(
    daemon: &Daemon,
    hello: &procs::Proc,
    (hello_tcp, hello_unix): (&Target, &Target),
    plan: &Plan,
    rows: &mut Vec<Row>,
    commands: &mut Vec<String>,
) {
    // Throughput: 50 kept-alive connections, interleaved with the baseline, best of two rounds.
    // The server's CPU time per request over all rounds is reported beside it: on a shared
    // machine it moves far less than requests per second do.
    for (name, ours, base) in [
        ("TCP", &daemon.tcp, hello_tcp),
        ("Unix socket", &daemon.unix, hello_unix),
    ] {
        say(&format!("cache-hit throughput, {name}"));
        let figure = format!("cache-hit throughput, {name}, 50 keep-alive connections (req/s)");
        let measured = async {
            let (mut ours_best, mut base_best) = (0.0_f64, 0.0_f64);
            let (mut ours_cpu, mut base_cpu) = (CpuPerRequest::default(), CpuPerRequest::default());
            for _ in 0..2 {
                let run = ours_cpu
                    .measure(
                        &daemon.proc,
                        load::throughput(ours, TOKEN_PATH, 50, plan.seconds),
                    )
                    .await?;
                ours_best = ours_best.max(run.per_second);
                let run = base_cpu
                    .measure(hello, load::throughput(base, "/", 50, plan.seconds))
                    .await?;
                base_best = base_best.max(run.per_second);
            }
            anyhow::Ok((ours_best, base_best, ours_cpu.micros(), base_cpu.micros()))
        }
        .await;
        let cpu_figure = format!("server CPU per cache-hit request, {name}, same runs (µs)");
        match measured {
            Ok((o, b, o_cpu, b_cpu)) => {
                rows.push(Row::new(
                    figure,
                    format!("{o:.0}"),
                    format!("{b:.0} (hello-world)"),
                    format!("{:.2}×", o / b),
                    "≥ 0.9×",
                    Verdict::of(o / b >= 0.9),
                ));
                rows.push(Row::new(
                    cpu_figure,
                    format!("{o_cpu:.2}"),
                    format!("{b_cpu:.2} (hello-world)"),
                    format!("{:.2}×", o_cpu / b_cpu),
                    "reported",
                    Verdict::Info,
                ));
            }
            Err(e) => rows.push(Row::error(figure, "≥ 0.9×", &e)),
        }
    }
    commands.push(format!("load: {} s × 2 rounds per side, GET {TOKEN_PATH} vs GET /, X-Cogbroker-Request: 1, Host 127.0.0.1:PORT", plan.seconds.as_secs()));

    // Latency: one kept-alive connection, sequential requests.
    for (name, ours, base) in [
        ("TCP", &daemon.tcp, hello_tcp),
        ("Unix socket", &daemon.unix, hello_unix),
    ] {
        say(&format!("cache-hit latency, {name}"));
        let figure = format!("cache-hit latency p50 / p99, {name}, one connection (µs)");
        let measured = async {
            let (mut o, mut b) =
                load::sequential_pair((ours, TOKEN_PATH), (base, "/"), plan.seq).await?;
            anyhow::Ok((
                quantile(&mut o, 0.5),
                quantile(&mut o, 0.99),
                quantile(&mut b, 0.5),
                quantile(&mut b, 0.99),
            ))
        }
        .await;
        rows.push(match measured {
            Ok((o50, o99, b50, b99)) => Row::new(
                figure,
                format!("{o50:.1} / {o99:.1}"),
                format!("{b50:.1} / {b99:.1}"),
                format!("{:.2}× / {:.2}×", o50 / b50, o99 / b99),
                "p50 ≤ 1.2×",
                Verdict::of(o50 / b50 <= 1.2),
            ),
            Err(e) => Row::error(figure, "p50 ≤ 1.2×", &e),
        });
    }
    commands.push(format!(
        "latency: {} sequential GETs per side after {} warm-up, the two sides taking turns request by request",
        plan.seq,
        plan.seq / 10
    ));
}

/// Runs every row (or only those `--only` names) and returns them with the commands started.
pub(crate) async fn all(options: &Options) -> anyhow::Result<(Vec<Row>, Vec<String>)> {
    let plan = Plan::new(options.quick);
    let tmp = tempfile::Builder::new()
        .prefix("cogbroker-bench-")
        .tempdir()?;
    let dir = tmp.path();
    let cogbroker = options.bin_dir.join("cogbroker");
    let emulator_bin = options.bin_dir.join("cognito-emulator");
    let hello_bin = options.own_dir.join("bench-hello");
    let oneshot_bin = options.own_dir.join("bench-oneshot");
    let mut rows = Vec::new();
    let mut commands = Vec::new();

    say("starting the emulator");
    let seed_path = dir.join("seed.toml");
    std::fs::write(&seed_path, seed(&plan))?;
    let (emulator, emulator_addr) =
        procs::start_emulator(&emulator_bin, &seed_path, &dir.join("emulator.log"))?;
    let endpoint = format!("http://{emulator_addr}");
    let emulator_target = Target::Tcp(emulator_addr);
    commands.push(format!(
        "cognito-emulator --seed SEED --listen 127.0.0.1:0 (a pool, 3 clients, {} users)",
        plan.storm.max(4)
    ));

    if options.only_storm {
        say("refresh storm");
        let rows = storm_rows(
            &cogbroker,
            dir,
            &endpoint,
            &emulator_target,
            &plan,
            &mut commands,
        )
        .await?;
        drop(emulator);
        return Ok((rows, commands));
    }

    say("starting the daemon and the hello-world baseline");
    let main_profiles = profile("bench", "bench-long", "u0", "USER_SRP_AUTH", &endpoint, "")
        + &profile("srp", "bench-long", "u1", "USER_SRP_AUTH", &endpoint, "")
        + &profile("herd", "bench-herd", "u2", "USER_SRP_AUTH", &endpoint, "");
    let main_setup = DaemonSetup::write(&dir.join("d-main"), &main_profiles)?;
    let daemon = Daemon::start(&cogbroker, &main_setup).await?;
    let rss_fresh = daemon.proc.rss_kib()?;
    daemon.login("bench", PASSWORD).await?;
    commands.push("cogbroker --config CONFIG serve (store = memory, TCP 127.0.0.1:PORT and a Unix socket; profiles bench, srp, herd)".to_owned());
    if options.only_herd {
        say("1,000 callers on an expired token");
        let rows = herd_rows(&daemon, &emulator_target, &plan).await?;
        drop(daemon);
        drop(emulator);
        return Ok((rows, commands));
    }
    let (hello, hello_tcp, hello_unix) =
        procs::start_hello(&hello_bin, &dir.join("hello.sock")).await?;
    commands.push(
        "bench-hello 127.0.0.1:PORT hello.sock (axum hello-world, default runtime)".to_owned(),
    );

    if !options.only_process {
        cache_hit_rows(
            &daemon,
            &hello,
            (&hello_tcp, &hello_unix),
            &plan,
            &mut rows,
            &mut commands,
        )
        .await;
    }

    if options.only_throughput {
        drop(hello);
        drop(daemon);
        drop(emulator);
        return Ok((rows, commands));
    }

    // Processes: `cogbroker token`, the minimal client, the AWS CLI, the helper modes.
    say("helper processes");
    let env = daemon.env.clone();
    let with_env = |mut command: Command| {
        command.envs(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        command
    };
    // Every process takes its turn run by run: the baseline, `cogbroker token`, each helper.
    let modes = helpers();
    let built: Vec<_> = modes
        .iter()
        .map(|h| helper_modes::built(h, &cogbroker))
        .collect();
    let mut timed = vec![
        procs::Timed {
            make: Box::new(|| {
                let mut c = Command::new(&oneshot_bin);
                c.arg(daemon.unix.oneshot_arg()).arg(TOKEN_PATH);
                c
            }),
            stdin: None,
            expect: "eyJ",
        },
        procs::Timed {
            make: Box::new(|| {
                let mut c = with_env(Command::new(&cogbroker));
                c.args(["token", "bench"]);
                c
            }),
            stdin: None,
            expect: "eyJ",
        },
    ];
    let mut slots = Vec::new();
    for (mode, built) in modes.iter().zip(&built) {
        slots.push(matches!(built, Ok(true)).then_some(timed.len()));
        if matches!(built, Ok(true)) {
            timed.push(helper_modes::timed(mode, &cogbroker, &with_env));
        }
    }
    let mut measured: Vec<_> = procs::time_processes(&timed, 10, plan.proc_runs)
        .into_iter()
        .map(Some)
        .collect();
    let mut take = |i: usize| {
        measured[i]
            .take()
            .unwrap_or_else(|| Err(anyhow::anyhow!("not measured")))
    };
    let oneshot = take(0);
    let token = take(1);
    let helper_results: Vec<_> = slots.iter().map(|slot| slot.map(&mut take)).collect();
    drop(timed);
    commands.push(format!("`cogbroker token bench`, `bench-oneshot unix:SOCK {TOKEN_PATH}` and each helper mode, taking turns: 10 warm-up + {} runs each, wall time from spawn to exit", plan.proc_runs));
    let oneshot_ms = match &oneshot {
        Ok((mean, _)) => Some(*mean),
        Err(_) => None,
    };
    match (&token, &oneshot) {
        (Ok((t, tm)), Ok((b, bm))) => rows.push(Row::new(
            "`cogbroker token P` as a process, Unix socket (ms, mean; median)",
            format!("{t:.2}; {tm:.2}"),
            format!("{b:.2}; {bm:.2} (minimal compiled client)"),
            format!("{:.2}×", t / b),
            "≤ 1.0×",
            Verdict::of(t / b <= 1.0),
        )),
        (Err(e), _) | (_, Err(e)) => {
            rows.push(Row::error("`cogbroker token P` as a process", "≤ 1.0×", e))
        }
    }
    rows.push(symbol_order_row(&cogbroker));
    let aws = options.venv.join("bin").join("aws");
    let aws_figure = "`cogbroker token P` vs `aws --version` (ms, mean)";
    if aws.is_file() {
        let measured = procs::time_process(
            procs::Timed {
                make: Box::new(|| {
                    let mut c = Command::new(&aws);
                    c.arg("--version");
                    c
                }),
                stdin: None,
                expect: "aws-cli",
            },
            1,
            plan.aws_runs,
        );
        commands.push(format!(
            "`{} --version`: 1 warm-up + {} runs",
            aws.display(),
            plan.aws_runs
        ));
        rows.push(match (measured, &token) {
            (Ok((a, _)), Ok((t, _))) => Row::new(
                aws_figure,
                format!("{t:.2}"),
                format!("{a:.1} (aws-cli from PyPI)"),
                format!("{:.0}× faster", a / t),
                "≥ 100× faster",
                Verdict::of(a / t >= 100.0),
            ),
            (Err(e), _) => Row::error(aws_figure, "≥ 100× faster", &e),
            (_, Err(e)) => Row::error(aws_figure, "≥ 100× faster", e),
        });
    } else {
        rows.push(Row::new(
            aws_figure,
            "",
            format!(
                "not measured: no AWS CLI at {} (pip could not install awscli)",
                aws.display()
            ),
            "",
            "≥ 100× faster",
            Verdict::Error,
        ));
    }
    for ((mode, built), measured) in modes.iter().zip(built).zip(helper_results) {
        rows.push(helper_row(mode, built, measured, oneshot_ms));
    }
    if options.only_process {
        drop(hello);
        drop(daemon);
        drop(emulator);
        return Ok((rows, commands));
    }

    // SRP client math, in process.
    say("SRP client math");
    rows.push(srp_row(plan.srp_runs));

    // Full SRP login: ours over the API, pycognito against the same emulator.
    say("full SRP login");
    rows.push(
        login_row(
            &daemon,
            &emulator,
            &emulator_addr,
            &options.venv,
            &plan,
            &mut commands,
        )
        .await,
    );

    // Thundering herd on an expired token.
    say("1,000 callers on an expired token");
    rows.extend(
        herd_rows(&daemon, &emulator_target, &plan)
            .await
            .unwrap_or_else(|e| {
                vec![Row::error(
                    "herd: 1,000 callers on an expired token",
                    "1 upstream call",
                    &e,
                )]
            }),
    );

    // Start-up.
    say("start-up");
    rows.push(startup_row(&cogbroker, &hello_bin, dir, &endpoint, &plan));

    // Memory under load.
    say(&format!("memory after {} requests", plan.soak));
    let soak = async {
        load::fixed_count(&daemon.unix, TOKEN_PATH, 50, plan.soak / 10).await?;
        let before = daemon.proc.rss_kib()?;
        load::fixed_count(&daemon.unix, TOKEN_PATH, 50, plan.soak).await?;
        let after = daemon.proc.rss_kib()?;
        anyhow::Ok((before, after))
    }
    .await;
    let hello_rss = hello.rss_kib().unwrap_or(0);
    rows.push(Row::new(
        "RSS idle, fresh start, no session (MiB)",
        format!("{:.1}", mib(rss_fresh)),
        format!("{:.1} (hello-world after load)", mib(hello_rss)),
        "",
        "reported",
        Verdict::Info,
    ));
    let soak_figure = format!(
        "RSS growth over {} cache hits after {} warm-up (MiB)",
        plan.soak,
        plan.soak / 10
    );
    rows.push(match soak {
        Ok((before, after)) => Row::new(
            soak_figure,
            format!("{:.1} → {:.1}", mib(before), mib(after)),
            "",
            format!("{:+.2} MiB", mib(after) - mib(before)),
            "< 1 MiB growth",
            Verdict::of(after.saturating_sub(before) < 1024),
        ),
        Err(e) => Row::error(soak_figure, "< 1 MiB growth", &e),
    });
    drop(hello);
    // The storm counts every upstream call: nothing else may talk to the emulator meanwhile.
    drop(daemon);

    // Idle (its own daemon, measured while the storm runs: its ticks are its own) and the storm.
    say("idle daemon and refresh storm");
    let idle_setup = DaemonSetup::write(
        &dir.join("d-idle"),
        &profile("idle", "bench-long", "u3", "USER_SRP_AUTH", &endpoint, ""),
    )?;
    let idle_daemon = Daemon::start(&cogbroker, &idle_setup).await?;
    idle_daemon.login("idle", PASSWORD).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_start = idle_daemon.proc.cpu_ticks()?;
    let idle_until = Instant::now() + plan.idle;
    rows.extend(
        storm_rows(
            &cogbroker,
            dir,
            &endpoint,
            &emulator_target,
            &plan,
            &mut commands,
        )
        .await
        .unwrap_or_else(|e| vec![Row::error("refresh storm", "", &e)]),
    );
    let left = idle_until.saturating_duration_since(Instant::now());
    tokio::time::sleep(left).await;
    let idle_end = idle_daemon.proc.cpu_ticks()?;
    let idle_rss = idle_daemon.proc.rss_kib()?;
    rows.push(Row::new(
        format!(
            "idle CPU over {} s, one session, no refresh due (ticks)",
            plan.idle.as_secs()
        ),
        format!("{}", idle_end - idle_start),
        "",
        "",
        "0 ticks",
        Verdict::of(idle_end == idle_start),
    ));
    rows.push(Row::new(
        "RSS idle, one session (MiB)",
        format!("{:.1}", mib(idle_rss)),
        "",
        "",
        "reported",
        Verdict::Info,
    ));
    commands.push(format!(
        "idle: /proc/PID/stat utime+stime of a second daemon with one session, over {} s",
        plan.idle.as_secs()
    ));
    drop(idle_daemon);
    drop(emulator);
    Ok((rows, commands))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Row {
    fn with_note(mut self, note: &str) -> Self {
        self.ours = format!("{} (emulator stats {})", self.ours, note.replace('|', "/"));
        self
    }
}
