//! The login rows: the SRP math alone, then whole logins against the emulator.

use std::path::Path;
use std::process::Command;

use tokio::time::Instant;

use anyhow::bail;
use num_bigint::BigUint;

use super::{PASSWORD, POOL, Plan};
use crate::procs::{Daemon, Proc, TICKS_PER_SECOND};
use crate::{Row, Verdict};

/// Our SRP client math per login (A = g^a, then the password claim: g^x and (B − k·g^x)^(a+u·x))
/// against the same three exponentiations done with bare num-bigint.
pub(super) fn srp_row(runs: usize) -> Row {
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

pub(super) async fn login_row(
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
