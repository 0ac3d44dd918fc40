//! The start-up row: exec to socket accepting, against a hello-world baseline.

use std::path::Path;
use std::process::Command;

use super::{Plan, profile};
use crate::load::quantile;
use crate::procs::{self, DaemonSetup};
use crate::{Row, Verdict};

pub(super) fn startup_row(
    cogbroker: &Path,
    hello_bin: &Path,
    dir: &Path,
    endpoint: &str,
    plan: &Plan,
) -> Row {
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
