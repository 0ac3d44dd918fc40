//! Every row of the table: set-up, measurement, goal.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::bail;
use num_bigint::BigUint;

use crate::load::{self, Conn, Target, quantile};
use crate::procs::{self, Daemon, DaemonSetup, Proc, TICKS_PER_SECOND};
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

/// Runs every row (or only the throughput rows) and returns them with the commands started.
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
    let (hello, hello_tcp, hello_unix) =
        procs::start_hello(&hello_bin, &dir.join("hello.sock")).await?;
    commands.push(
        "bench-hello 127.0.0.1:PORT hello.sock (axum hello-world, default runtime)".to_owned(),
    );

    // Throughput: 50 kept-alive connections, interleaved with the baseline, best of two rounds.
    for (name, ours, base) in [
        ("TCP", &daemon.tcp, &hello_tcp),
        ("Unix socket", &daemon.unix, &hello_unix),
    ] {
        say(&format!("cache-hit throughput, {name}"));
        let figure = format!("cache-hit throughput, {name}, 50 keep-alive connections (req/s)");
        let measured = async {
            let (mut best_ours, mut best_base) = (0.0_f64, 0.0_f64);
            for _ in 0..2 {
                best_ours =
                    best_ours.max(load::throughput(ours, TOKEN_PATH, 50, plan.seconds).await?);
                best_base = best_base.max(load::throughput(base, "/", 50, plan.seconds).await?);
            }
            anyhow::Ok((best_ours, best_base))
        }
        .await;
        rows.push(match measured {
            Ok((o, b)) => Row::new(
                figure,
                format!("{o:.0}"),
                format!("{b:.0} (hello-world)"),
                format!("{:.2}×", o / b),
                "≥ 0.9×",
                Verdict::of(o / b >= 0.9),
            ),
            Err(e) => Row::error(figure, "≥ 0.9×", &e),
        });
    }
    commands.push(format!("load: {} s × 2 rounds per side, GET {TOKEN_PATH} vs GET /, X-Cogbroker-Request: 1, Host 127.0.0.1:PORT", plan.seconds.as_secs()));
    if options.only_throughput {
        drop(hello);
        drop(daemon);
        drop(emulator);
        return Ok((rows, commands));
    }

    // Latency: one kept-alive connection, sequential requests.
    for (name, ours, base) in [
        ("TCP", &daemon.tcp, &hello_tcp),
        ("Unix socket", &daemon.unix, &hello_unix),
    ] {
        say(&format!("cache-hit latency, {name}"));
        let figure = format!("cache-hit latency p50 / p99, {name}, one connection (µs)");
        let measured = async {
            let mut o = load::sequential(ours, TOKEN_PATH, plan.seq).await?;
            let mut b = load::sequential(base, "/", plan.seq).await?;
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
        "latency: {} sequential GETs per side after {} warm-up",
        plan.seq,
        plan.seq / 10
    ));

    // Processes: `cogbroker token`, the minimal client, the AWS CLI, the helper modes.
    say("helper processes");
    let env = daemon.env.clone();
    let with_env = |mut command: Command| {
        command.envs(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        command
    };
    let oneshot = procs::time_process(
        &|| {
            let mut c = Command::new(&oneshot_bin);
            c.arg(daemon.unix.oneshot_arg()).arg(TOKEN_PATH);
            c
        },
        None,
        "eyJ",
        10,
        plan.proc_runs,
    );
    let token = procs::time_process(
        &|| {
            let mut c = with_env(Command::new(&cogbroker));
            c.args(["token", "bench"]);
            c
        },
        None,
        "eyJ",
        10,
        plan.proc_runs,
    );
    commands.push(format!("`cogbroker token bench` and `bench-oneshot unix:SOCK {TOKEN_PATH}`: 10 warm-up + {} runs each, wall time from spawn to exit", plan.proc_runs));
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
    let aws = options.venv.join("bin").join("aws");
    let aws_figure = "`cogbroker token P` vs `aws --version` (ms, mean)";
    if aws.is_file() {
        let measured = procs::time_process(
            &|| {
                let mut c = Command::new(&aws);
                c.arg("--version");
                c
            },
            None,
            "aws-cli",
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
    for helper in helpers() {
        rows.push(helper_row(
            &helper, &cogbroker, &with_env, oneshot_ms, &plan,
        ));
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

/// A helper mode: how to detect it, run it and check its answer.
struct Helper {
    name: &'static str,
    /// Arguments that print help when the mode exists (exit 0) and are refused by clap otherwise.
    detect: Vec<&'static str>,
    args: Vec<&'static str>,
    stdin: Option<&'static str>,
    env: Vec<(&'static str, &'static str)>,
    expect: &'static str,
}

fn helpers() -> Vec<Helper> {
    vec![
        Helper {
            name: "git (`git-credential get`)",
            detect: vec!["git-credential", "--help"],
            args: vec!["git-credential", "--profile", "bench", "get"],
            stdin: Some("protocol=https\nhost=git.example.com\n\n"),
            env: vec![],
            expect: "password=",
        },
        Helper {
            name: "docker (`docker-credential get`)",
            detect: vec!["docker-credential", "--help"],
            args: vec!["docker-credential", "--profile", "bench", "get"],
            stdin: Some("https://registry.example.com\n"),
            env: vec![],
            expect: "Secret",
        },
        Helper {
            name: "kubectl (`kube-credential P`)",
            detect: vec!["kube-credential", "--help"],
            args: vec!["kube-credential", "bench"],
            stdin: None,
            env: vec![(
                "KUBERNETES_EXEC_INFO",
                r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
            )],
            expect: "token",
        },
        Helper {
            name: "cargo (`--cargo-plugin`)",
            detect: vec!["cargo-credential", "--help"],
            args: vec!["--cargo-plugin"],
            stdin: Some(concat!(
                r#"{"v":1,"registry":{"index-url":"sparse+https://registry.example.com/index/","name":"bench"},"kind":"get","operation":"read","args":["cargo-credential","--profile","bench"]}"#,
                "\n"
            )),
            env: vec![],
            expect: "eyJ",
        },
        Helper {
            name: "env (`env P`)",
            detect: vec!["env", "--help"],
            args: vec!["env", "bench"],
            stdin: None,
            env: vec![],
            expect: "COGBROKER_TOKEN",
        },
    ]
}

fn helper_row(
    helper: &Helper,
    cogbroker: &Path,
    with_env: &dyn Fn(Command) -> Command,
    oneshot_ms: Option<f64>,
    plan: &Plan,
) -> Row {
    let figure = format!("helper {} as a process (ms, mean)", helper.name);
    let goal = "≤ 1.2× minimal client";
    let detected = Command::new(cogbroker)
        .args(&helper.detect)
        .stdin(std::process::Stdio::null())
        .output();
    match detected {
        Ok(output) if output.status.success() => {}
        Ok(_) => return Row::new(figure, "not built", "", "", goal, Verdict::NotBuilt),
        Err(e) => return Row::error(figure, goal, &e.into()),
    }
    let measured = procs::time_process(
        &|| {
            let mut c = with_env(Command::new(cogbroker));
            c.args(&helper.args).envs(helper.env.iter().copied());
            c
        },
        helper.stdin,
        helper.expect,
        5,
        plan.proc_runs / 2,
    );
    match (measured, oneshot_ms) {
        (Ok((mean, _)), Some(base)) => Row::new(
            figure,
            format!("{mean:.2}"),
            format!("{base:.2}"),
            format!("{:.2}×", mean / base),
            goal,
            Verdict::of(mean / base <= 1.2),
        ),
        (Ok((mean, _)), None) => Row::new(
            figure,
            format!("{mean:.2}"),
            "no baseline",
            "",
            goal,
            Verdict::Error,
        ),
        (Err(e), _) => Row::error(figure, goal, &e),
    }
}

/// Our SRP client math per login (A = g^a, then the password claim: g^x and (B − k·g^x)^(a+u·x))
/// against the same three exponentiations done with bare num-bigint.
fn srp_row(runs: usize) -> Row {
    use cognito_auth::env::{Entropy as _, OsEntropy};
    use cognito_auth::srp;
    let figure = "SRP client math per login (ms)";
    let goal = "≤ 1.2× bare modpow";
    let n = BigUint::parse_bytes(srp::N_HEX.as_bytes(), 16).expect("N_HEX is hex");
    let g = BigUint::from(srp::G);
    let random = |bytes: usize| {
        let mut buf = vec![0_u8; bytes];
        OsEntropy.fill(&mut buf);
        BigUint::from_bytes_be(&buf)
    };
    let b = random(128);
    let big_b = g.modpow(&b, &n);
    let b_hex = format!("{big_b:x}");
    let salt_hex = format!("{:x}", random(16));
    let block = {
        use std::fmt::Write as _;
        let mut buf = vec![0_u8; 48];
        OsEntropy.fill(&mut buf);
        // base64 of random bytes: hex digits are valid base64 characters (length multiple of 4).
        buf.iter().fold(String::new(), |mut s, byte| {
            let _ = write!(s, "{byte:02x}");
            s
        })
    };
    let id = srp::SrpIdentity {
        realm: "Bench",
        user_id: "u0",
        password: PASSWORD,
    };
    let server = srp::ServerChallenge {
        salt_hex: &salt_hex,
        srp_b_hex: &b_hex,
        secret_block_b64: &block,
    };
    let timestamp = srp::cognito_timestamp(std::time::SystemTime::now());
    let ours = (|| {
        let start = Instant::now();
        for _ in 0..runs {
            let eph = srp::SrpEphemeral::generate(&OsEntropy);
            let claim = srp::password_claim(&eph, &id, &server, &timestamp)?;
            std::hint::black_box(claim);
        }
        anyhow::Ok(start.elapsed().as_secs_f64() * 1e3 / runs as f64)
    })();
    let k = random(32);
    let start = Instant::now();
    for _ in 0..runs {
        let a = random(128);
        let big_a = g.modpow(&a, &n);
        let x = random(32);
        let u = random(32);
        let gx = g.modpow(&x, &n);
        let base = (&big_b + &n * &k - (&k * &gx) % &n) % &n;
        let s = base.modpow(&(&a + &u * &x), &n);
        std::hint::black_box((big_a, s));
    }
    let bare = start.elapsed().as_secs_f64() * 1e3 / runs as f64;
    match ours {
        Ok(o) => Row::new(
            figure,
            format!("{o:.2}"),
            format!("{bare:.2} (num-bigint modpow ×3)"),
            format!("{:.2}×", o / bare),
            goal,
            Verdict::of(o / bare <= 1.2),
        ),
        Err(e) => Row::error(figure, goal, &e),
    }
}

async fn login_row(
    daemon: &Daemon,
    emulator: &Proc,
    emulator_addr: &std::net::SocketAddr,
    venv: &Path,
    plan: &Plan,
    commands: &mut Vec<String>,
) -> Row {
    let figure = "full SRP login on loopback (ms per login)";
    let goal = "≤ 1.0× pycognito";
    let ours = async {
        daemon.login("srp", PASSWORD).await?;
        let (d0, e0) = (daemon.proc.cpu_ticks()?, emulator.cpu_ticks()?);
        let start = Instant::now();
        for _ in 0..plan.logins {
            daemon.login("srp", PASSWORD).await?;
        }
        let wall = start.elapsed().as_secs_f64() * 1e3 / plan.logins as f64;
        let per = |ticks: u64| ticks as f64 / TICKS_PER_SECOND * 1e3 / plan.logins as f64;
        let (d, e) = (
            per(daemon.proc.cpu_ticks()? - d0),
            per(emulator.cpu_ticks()? - e0),
        );
        anyhow::Ok((wall, d, e))
    }
    .await;
    let python = venv.join("bin").join("python");
    let script = r#"
import sys, time, boto3, botocore
from botocore.config import Config
from pycognito.aws_srp import AWSSRP
endpoint, pool, client_id, user, password, n = sys.argv[1:7]
client = boto3.client("cognito-idp", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id="x", aws_secret_access_key="x", config=Config(signature_version=botocore.UNSIGNED))
def once():
    AWSSRP(username=user, password=password, pool_id=pool, client_id=client_id, client=client).authenticate_user()
once()
start = time.perf_counter()
for _ in range(int(n)):
    once()
print((time.perf_counter() - start) * 1000 / int(n))
"#;
    let base = if python.is_file() {
        Command::new(&python)
            .args([
                "-c",
                script,
                &format!("http://{emulator_addr}"),
                POOL,
                "bench-long",
                "u1",
                PASSWORD,
                &plan.logins.to_string(),
            ])
            .output()
            .map_err(anyhow::Error::from)
            .and_then(|out| {
                if !out.status.success() {
                    bail!(
                        "pycognito: {}",
                        String::from_utf8_lossy(&out.stderr)
                            .lines()
                            .last()
                            .unwrap_or_default()
                    );
                }
                Ok(String::from_utf8_lossy(&out.stdout).trim().parse::<f64>()?)
            })
    } else {
        Err(anyhow::anyhow!(
            "no venv python at {} (pip could not install pycognito)",
            python.display()
        ))
    };
    commands.push(format!("login: {n} × POST /v1/profiles/srp/login (USER_SRP_AUTH) over the socket; pycognito AWSSRP.authenticate_user() × {n} in one Python process against the same emulator", n = plan.logins));
    match (ours, base) {
        (Ok((wall, d, e)), Ok(py)) => Row::new(
            figure,
            format!(
                "{wall:.1} = daemon CPU {d:.1} + emulator CPU {e:.1} + round trips/waits {:.1}",
                (wall - d - e).max(0.0)
            ),
            format!("{py:.1} (pycognito)"),
            format!("{:.2}×", wall / py),
            goal,
            Verdict::of(wall / py <= 1.0),
        ),
        (Ok((wall, d, e)), Err(err)) => Row::new(
            figure,
            format!("{wall:.1} (daemon CPU {d:.1}, emulator CPU {e:.1})"),
            format!("not measured: {err:#}"),
            "",
            goal,
            Verdict::Error,
        ),
        (Err(err), _) => Row::error(figure, goal, &err),
    }
}

/// Refresh calls counted by the emulator: every operation (nothing else talks to it meanwhile).
async fn upstream_calls(emulator: &Target) -> anyhow::Result<(u64, serde_json::Value)> {
    let (status, body) = load::once(emulator, http::Method::GET, "/_control/stats", None).await?;
    if !status.is_success() {
        bail!("/_control/stats: {status}");
    }
    let stats: serde_json::Value = serde_json::from_slice(&body)?;
    let total = stats
        .as_object()
        .map(|ops| {
            ops.values()
                .flat_map(|o| o.as_object().into_iter().flat_map(|m| m.values()))
                .filter_map(serde_json::Value::as_u64)
                .sum()
        })
        .unwrap_or(0);
    Ok((total, stats))
}

async fn reset_stats(emulator: &Target) -> anyhow::Result<()> {
    let (status, _) = load::once(emulator, http::Method::DELETE, "/_control/stats", None).await?;
    anyhow::ensure!(status.is_success(), "DELETE /_control/stats: {status}");
    Ok(())
}

/// `n` connections opened first, then one GET each at the same moment; latencies in ms.
async fn burst(target: &Target, path: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::open(target).await?);
    }
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut tasks = Vec::with_capacity(n);
    for mut conn in conns {
        let gate = std::sync::Arc::clone(&gate);
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let start = Instant::now();
            conn.get_ok(&path).await?;
            anyhow::Ok(start.elapsed().as_secs_f64() * 1e3)
        }));
    }
    gate.wait().await;
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await??);
    }
    Ok(out)
}

async fn herd_rows(daemon: &Daemon, emulator: &Target, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    daemon.login("herd", PASSWORD).await?;
    // One refresh with one caller: what a single upstream round trip costs through the daemon.
    let mut one = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let (status, _) = load::once(
            &daemon.unix,
            http::Method::POST,
            "/v1/profiles/herd/refresh",
            None,
        )
        .await?;
        anyhow::ensure!(
            status.is_success(),
            "POST /v1/profiles/herd/refresh: {status}"
        );
        one.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let single = quantile(&mut one, 0.5);
    let mut fresh = burst(&daemon.unix, TOKEN_PATH, plan.herd).await?;
    // The herd token lives 2 s: let it expire, then all callers at once.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    reset_stats(emulator).await?;
    let mut herd = burst(&daemon.unix, "/v1/profiles/herd/token", plan.herd).await?;
    let (calls, stats) = upstream_calls(emulator).await?;
    let (f50, h50) = (quantile(&mut fresh, 0.5), quantile(&mut herd, 0.5));
    let added = h50 - f50;
    Ok(vec![
        Row::new(
            format!(
                "{} concurrent callers on an expired token: upstream calls",
                plan.herd
            ),
            format!("{calls}"),
            "",
            "",
            "exactly 1",
            Verdict::of(calls == 1),
        )
        .with_note(&stats.to_string()),
        Row::new(
            "herd: added p50 latency vs the same burst on a fresh token (ms)",
            format!("{added:.2} (p50 {h50:.2} vs {f50:.2})"),
            format!("{single:.2} (one refresh, one caller)"),
            format!("{:.2}×", added / single),
            "≈ 1 upstream round trip (≤ 2×)",
            Verdict::of(added / single <= 2.0),
        ),
    ])
}

impl Row {
    fn with_note(mut self, note: &str) -> Self {
        self.ours = format!("{} (emulator stats {})", self.ours, note.replace('|', "/"));
        self
    }
}

fn startup_row(cogbroker: &Path, hello_bin: &Path, dir: &Path, endpoint: &str, plan: &Plan) -> Row {
    let figure = "start-up: exec → socket accepting (ms, median)";
    let goal = "≤ 10× hello-world";
    let measured = (|| {
        let setup = DaemonSetup::write(
            &dir.join("d-start"),
            &profile("start", "bench-long", "u0", "USER_SRP_AUTH", endpoint, ""),
        )?;
        let hello_socket = dir.join("hello-start.sock");
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..plan.starts {
            ours.push(
                procs::exec_to_accept(&mut setup.command(cogbroker)?, &setup.socket)?.as_secs_f64()
                    * 1e3,
            );
            let port = procs::free_port()?;
            let mut hello = Command::new(hello_bin);
            hello
                .arg(format!("127.0.0.1:{port}"))
                .arg(&hello_socket)
                .stdout(std::process::Stdio::null());
            base.push(procs::exec_to_accept(&mut hello, &hello_socket)?.as_secs_f64() * 1e3);
        }
        anyhow::Ok((quantile(&mut ours, 0.5), quantile(&mut base, 0.5)))
    })();
    match measured {
        Ok((o, b)) => Row::new(
            figure,
            format!("{o:.2}"),
            format!("{b:.2} (hello-world)"),
            format!("{:.1}×", o / b),
            goal,
            Verdict::of(o / b <= 10.0),
        ),
        Err(e) => Row::error(figure, goal, &e),
    }
}

async fn storm_rows(
    cogbroker: &Path,
    dir: &Path,
    endpoint: &str,
    emulator: &Target,
    plan: &Plan,
    commands: &mut Vec<String>,
) -> anyhow::Result<Vec<Row>> {
    let mut profiles = String::new();
    for i in 0..plan.storm {
        profiles += &profile(
            &format!("s{i}"),
            "bench-storm",
            &format!("u{i}"),
            "USER_PASSWORD_AUTH",
            endpoint,
            &format!("refresh_before = \"{}s\"", plan.storm_before),
        );
    }
    let setup = DaemonSetup::write(&dir.join("d-storm"), &profiles)?;
    let daemon = Daemon::start(cogbroker, &setup).await?;
    let rss_empty = daemon.proc.rss_kib()?;
    let start = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let next = std::sync::Arc::clone(&next);
        let unix = daemon.unix.clone();
        let total = plan.storm;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(());
                }
                procs::login(&unix, &format!("s{i}"), PASSWORD).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let login_spread = start.elapsed().as_secs_f64();
    reset_stats(emulator).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_full = daemon.proc.rss_kib()?;
    commands.push(format!(
        "storm: a daemon with {n} profiles (USER_PASSWORD_AUTH, {ttl} s tokens, refresh_before = {b} s), {n} logins over the socket (16 at a time), then /_control/stats polled every 250 ms",
        n = plan.storm,
        ttl = plan.storm_ttl,
        b = plan.storm_before
    ));
    // Wait for every profile's background refresh, bucketing upstream calls by second.
    let watch = Instant::now();
    let deadline = watch + Duration::from_secs(plan.storm_ttl + 5);
    let mut per_second: Vec<u64> = Vec::new();
    let mut seen = 0;
    while Instant::now() < deadline && seen < plan.storm as u64 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (total, _) = upstream_calls(emulator).await?;
        let second = watch.elapsed().as_secs() as usize;
        if per_second.len() <= second {
            per_second.resize(second + 1, 0);
        }
        per_second[second] += total - seen;
        seen = total;
    }
    let first = per_second.iter().position(|&n| n > 0);
    let last = per_second.iter().rposition(|&n| n > 0);
    let peak = per_second.iter().copied().max().unwrap_or(0);
    let window = match (first, last) {
        (Some(f), Some(l)) => (l - f + 1) as f64,
        _ => 0.0,
    };
    let jitter = (plan.storm_ttl as f64 * 0.1).min(60.0);
    let uniform = plan.storm as f64 / jitter;
    drop(daemon);
    Ok(vec![
        Row::new(
            format!("RSS with {} profiles logged in (MiB)", plan.storm),
            format!(
                "{:.1} (before the logins {:.1})",
                mib(rss_full),
                mib(rss_empty)
            ),
            "",
            "",
            "≤ 15 MiB",
            Verdict::of(rss_full <= 15 * 1024),
        ),
        Row::new(
            format!(
                "refresh storm: {} profiles, same lifetime, logins over {login_spread:.1} s",
                plan.storm
            ),
            format!("{seen} refreshes over {window:.0} s, peak {peak}/s"),
            format!("{uniform:.0}/s (all spread evenly over the {jitter:.0} s jitter window)"),
            format!("{:.2}×", peak as f64 / uniform),
            format!("all {} refreshed once; peak ≤ 2× even", plan.storm),
            Verdict::of(seen == plan.storm as u64 && (peak as f64) <= 2.0 * uniform),
        ),
    ])
}
