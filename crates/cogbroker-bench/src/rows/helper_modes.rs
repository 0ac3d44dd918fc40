//! The helper-mode rows: each credential helper run as its consumer runs it.

use std::path::Path;
use std::process::Command;

use super::Plan;
use crate::procs::{self};
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

pub(super) fn helper_row(
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
