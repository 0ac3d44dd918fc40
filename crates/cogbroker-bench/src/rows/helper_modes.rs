//! The helper-mode rows: each credential helper run as its consumer runs it.

use std::path::Path;
use std::process::Command;

use crate::procs::Timed;
use crate::{Row, Verdict};

/// A helper mode: how to detect it, run it and check its answer.
pub(super) struct Helper {
    name: &'static str,
    /// Arguments that print help when the mode exists (exit 0) and are refused by clap otherwise.
    detect: Vec<&'static str>,
    args: Vec<&'static str>,
    stdin: Option<&'static str>,
    env: Vec<(&'static str, &'static str)>,
    expect: &'static str,
}

pub(super) fn helpers() -> Vec<Helper> {
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

/// Whether this binary has the mode: its help exits 0 (clap refuses an unknown subcommand).
pub(super) fn built(helper: &Helper, cogbroker: &Path) -> anyhow::Result<bool> {
    let output = Command::new(cogbroker)
        .args(&helper.detect)
        .stdin(std::process::Stdio::null())
        .output()?;
    Ok(output.status.success())
}

/// The mode as its consumer runs it: arguments, environment, a real request on stdin.
pub(super) fn timed<'a>(
    helper: &'a Helper,
    cogbroker: &'a Path,
    with_env: &'a dyn Fn(Command) -> Command,
) -> Timed<'a> {
    Timed {
        make: Box::new(move || {
            let mut c = with_env(Command::new(cogbroker));
            c.args(&helper.args).envs(helper.env.iter().copied());
            c
        }),
        stdin: helper.stdin,
        expect: helper.expect,
    }
}

/// The row of a mode: `built` from [`built`], `measured` from the same interleaved runs as the
/// baseline's `oneshot_ms` (`None` when it was not run).
pub(super) fn helper_row(
    helper: &Helper,
    built: anyhow::Result<bool>,
    measured: Option<anyhow::Result<(f64, f64)>>,
    oneshot_ms: Option<f64>,
) -> Row {
    let figure = format!("helper {} as a process (ms, mean)", helper.name);
    let goal = "≤ 1.2× minimal client";
    match built {
        Ok(true) => {}
        Ok(false) => return Row::new(figure, "not built", "", "", goal, Verdict::NotBuilt),
        Err(e) => return Row::error(figure, goal, &e),
    }
    match (measured, oneshot_ms) {
        (Some(Ok((mean, _))), Some(base)) => Row::new(
            figure,
            format!("{mean:.2}"),
            format!("{base:.2}"),
            format!("{:.2}×", mean / base),
            goal,
            Verdict::of(mean / base <= 1.2),
        ),
        (Some(Ok((mean, _))), None) => Row::new(
            figure,
            format!("{mean:.2}"),
            "no baseline",
            "",
            goal,
            Verdict::Error,
        ),
        (Some(Err(e)), _) => Row::error(figure, goal, &e),
        (None, _) => Row::error(figure, goal, &anyhow::anyhow!("not measured")),
    }
}
