//! `make bench`: measures the release binaries `cogbroker` and `cognito-emulator` as a black box
//! (their CLI and HTTP API) against baselines this run builds and starts itself, prints one table
//! and writes it to docs/benchmarks.md. See docs/benchmarks.md for what each row means.
//!
//! `cogbroker-bench [--quick] [--only throughput|storm|herd|process] [--bin-dir DIR] [--venv DIR] [--out FILE]`

mod load;
mod procs;
mod rows;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

/// What a run was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    /// Only the cache-hit rows (throughput and latency).
    pub(crate) only_throughput: bool,
    /// Only the 1,000-profile rows (refresh storm, RSS with 1,000 sessions).
    pub(crate) only_storm: bool,
    /// Only the herd rows (1,000 callers on an expired token).
    pub(crate) only_herd: bool,
    /// Only the process rows (`cogbroker token`, the AWS CLI, the helper modes).
    pub(crate) only_process: bool,
    /// Where `cogbroker` and `cognito-emulator` are (default: this binary's directory).
    pub(crate) bin_dir: PathBuf,
    /// Where `bench-hello` and `bench-oneshot` are (this binary's directory).
    pub(crate) own_dir: PathBuf,
    /// The Python venv with awscli and pycognito.
    pub(crate) venv: PathBuf,
    pub(crate) out: Option<PathBuf>,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) ours: String,
    pub(crate) baseline: String,
    pub(crate) ratio: String,
    pub(crate) goal: String,
    pub(crate) result: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    Fail,
    /// Measured and reported, no goal.
    Info,
    /// The subcommand does not exist in this binary yet.
    NotBuilt,
    /// The row could not be measured (the message says why).
    Error,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "FAIL",
            Self::Info => "info",
            Self::NotBuilt => "not built",
            Self::Error => "ERROR",
        }
    }

    pub(crate) fn of(ok: bool) -> Self {
        if ok { Self::Pass } else { Self::Fail }
    }
}

impl Row {
    pub(crate) fn new(
        figure: impl Into<String>,
        ours: impl Into<String>,
        baseline: impl Into<String>,
        ratio: impl Into<String>,
        goal: impl Into<String>,
        result: Verdict,
    ) -> Self {
        Self {
            figure: figure.into(),
            ours: ours.into(),
            baseline: baseline.into(),
            ratio: ratio.into(),
            goal: goal.into(),
            result,
        }
    }

    pub(crate) fn error(
        figure: impl Into<String>,
        goal: impl Into<String>,
        error: &anyhow::Error,
    ) -> Self {
        let message = format!("{error:#}").replace('|', "/").replace('\n', " ");
        Self::new(figure, message, "", "", goal, Verdict::Error)
    }
}

fn parse_args() -> anyhow::Result<Options> {
    let exe = std::env::current_exe()?;
    let own_dir = exe.parent().context("binary directory")?.to_owned();
    let mut options = Options {
        quick: false,
        only_throughput: false,
        only_storm: false,
        only_herd: false,
        only_process: false,
        bin_dir: own_dir.clone(),
        venv: own_dir.join("..").join("bench-venv"),
        own_dir,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--only" => match args.next().as_deref() {
                Some("throughput") => options.only_throughput = true,
                Some("storm") => options.only_storm = true,
                Some("herd") => options.only_herd = true,
                Some("process") => options.only_process = true,
                other => bail!(
                    "--only: expected `throughput`, `storm`, `herd` or `process`, got {other:?}"
                ),
            },
            "--bin-dir" => {
                options.bin_dir = args.next().context("--bin-dir needs a directory")?.into()
            }
            "--venv" => options.venv = args.next().context("--venv needs a directory")?.into(),
            "--out" => options.out = Some(args.next().context("--out needs a file")?.into()),
            other => bail!(
                "unknown argument {other:?}; usage: cogbroker-bench [--quick] [--only throughput|storm|herd|process] [--bin-dir DIR] [--venv DIR] [--out FILE]"
            ),
        }
    }
    for bin in ["cogbroker", "cognito-emulator"] {
        let path = options.bin_dir.join(bin);
        if !path.is_file() {
            bail!(
                "{} is missing: build it with `cargo build --release --bins`",
                path.display()
            );
        }
    }
    Ok(options)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "cogbroker-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<std::process::ExitCode> {
    let options = parse_args()?;
    let started = SystemTime::now();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (rows, commands) = runtime.block_on(rows::all(&options))?;
    let elapsed = started.elapsed().unwrap_or_default();
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let table = render_table(&rows);
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{table}")?;
    writeln!(out, "({:.0} s)", elapsed.as_secs_f64())?;

    if let Some(path) = &options.out {
        let section = render_section(
            &options,
            &rows,
            &commands,
            started,
            elapsed.as_secs_f64(),
            &load_before,
            &load_after,
        );
        write_section(path, &section)?;
        writeln!(out, "wrote {}", path.display())?;
    }
    let broken = rows.iter().any(|row| row.result == Verdict::Error);
    let failed = rows.iter().any(|row| row.result == Verdict::Fail);
    Ok(if broken || (failed && !options.quick) {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

fn render_table(rows: &[Row]) -> String {
    let mut text = String::from(
        "| figure | ours | baseline | ratio | goal | result |\n|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} |",
            row.figure,
            row.ours,
            row.baseline,
            row.ratio,
            row.goal,
            row.result.label()
        );
    }
    text
}

const BEGIN: &str =
    "<!-- bench:begin (written by `make bench`; everything between these markers is replaced) -->";
const END: &str = "<!-- bench:end -->";

fn render_section(
    options: &Options,
    rows: &[Row],
    commands: &[String],
    started: SystemTime,
    seconds: f64,
    load_before: &str,
    load_after: &str,
) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        ""
    } else {
        " (with uncommitted changes)"
    };
    let unix = started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut text = String::new();
    let _ = writeln!(text, "{BEGIN}\n");
    let _ = writeln!(
        text,
        "## Latest run{}\n",
        if options.quick { " (quick)" } else { "" }
    );
    let _ = writeln!(text, "- date: {} (unix {unix}), {seconds:.0} s", utc(unix));
    let _ = writeln!(text, "- commit: `{commit}`{dirty}");
    let _ = writeln!(
        text,
        "- machine: {cpu}, {cores} cores, Linux {}",
        kernel.trim()
    );
    let _ = writeln!(
        text,
        "- load average before / after: {} / {} — **a shared machine**: other builds ran on the same cores, so only the ratios mean something",
        load_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        text,
        "- command: `{}`\n",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(text, "{}", render_table(rows));
    let _ = writeln!(text, "Commands this run started:\n");
    for command in commands {
        let _ = writeln!(text, "- {command}");
    }
    let _ = writeln!(text, "\n{END}");
    text
}

fn write_section(path: &std::path::Path, section: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!(
                "{}{}{}",
                &old[..begin],
                section.trim_end(),
                &old[end + END.len()..]
            )
        }
        _ => format!("# Benchmarks\n\n{section}"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

fn git(args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `YYYY-MM-DD HH:MM UTC` from unix seconds (days-from-civil inverse).
fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_renders_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_796_206_741), "2026-12-02 10:19 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn write_section_replaces_only_between_the_markers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.md");
        std::fs::write(
            &path,
            format!("# Title\n\nkept\n\n{BEGIN}\nold\n{END}\ntail\n"),
        )
        .unwrap();
        write_section(&path, &format!("{BEGIN}\nnew\n{END}\n")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("# Title\n\nkept\n\n{BEGIN}\nnew\n{END}\ntail\n")
        );
    }

    #[test]
    fn write_section_creates_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.md");
        write_section(&path, &format!("{BEGIN}\nx\n{END}\n")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# Benchmarks\n") && text.contains("\nx\n"),
            "{text}"
        );
    }

    #[test]
    fn table_has_one_line_per_row() {
        let rows = vec![
            Row::new("f", "1", "2", "0.5×", "≥ 1×", Verdict::Fail),
            Row::new("g", "not built", "", "", "", Verdict::NotBuilt),
        ];
        let table = render_table(&rows);
        assert_eq!(table.lines().count(), 4);
        assert!(table.contains("| f | 1 | 2 | 0.5× | ≥ 1× | FAIL |"));
        assert!(table.contains("| not built |"));
    }
}
