//! The refresh rows: a herd of callers on one profile, a storm of profiles expiring at once.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::bail;

use super::{PASSWORD, Plan, TOKEN_PATH, mib, profile};
use crate::load::{self, Conn, Target, quantile};
use crate::procs::{self, Daemon, DaemonSetup};
use crate::{Row, Verdict};

/// Refresh calls counted by the emulator: every operation (nothing else talks to it meanwhile).
pub(super) async fn upstream_calls(emulator: &Target) -> anyhow::Result<(u64, serde_json::Value)> {
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

pub(super) async fn reset_stats(emulator: &Target) -> anyhow::Result<()> {
    let (status, _) = load::once(emulator, http::Method::DELETE, "/_control/stats", None).await?;
    anyhow::ensure!(status.is_success(), "DELETE /_control/stats: {status}");
    Ok(())
}

/// `n` connections opened first, then one GET each at the same moment; latencies in ms.
pub(super) async fn burst(target: &Target, path: &str, n: usize) -> anyhow::Result<Vec<f64>> {
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

/// The daemon's own refresh timings so far (`cogbroker_refresh_duration_seconds` sum and
/// count in `/metrics`): what a refresh took from the job's start to the upstream's answer.
async fn refresh_timings(daemon: &Daemon) -> anyhow::Result<(f64, f64)> {
    let (status, body) = load::once(&daemon.unix, http::Method::GET, "/metrics", None).await?;
    anyhow::ensure!(status.is_success(), "GET /metrics: {status}");
    let text = std::str::from_utf8(&body)?;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .ok_or_else(|| anyhow::anyhow!("/metrics has no {name}"))
    };
    Ok((
        value("cogbroker_refresh_duration_seconds_sum ")?,
        value("cogbroker_refresh_duration_seconds_count ")?,
    ))
}

/// Milliseconds per refresh between two readings of [`refresh_timings`].
fn per_refresh(before: (f64, f64), after: (f64, f64)) -> f64 {
    (after.0 - before.0) / (after.1 - before.1).max(1.0) * 1e3
}

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    quantile(&mut values, 0.5)
}

pub(super) async fn herd_rows(
    daemon: &Daemon,
    emulator: &Target,
    plan: &Plan,
) -> anyhow::Result<Vec<Row>> {
    daemon.login("herd", PASSWORD).await?;
    // One refresh with one caller: what a single upstream round trip costs through the daemon.
    let mut one = Vec::new();
    let before = refresh_timings(daemon).await?;
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
    let alone = per_refresh(before, refresh_timings(daemon).await?);
    let single = median(&one);
    // Rounds of the same burst on a fresh token, then on the expired one: one burst's p50 moves
    // with whatever else the machine runs, so the row takes the median of the rounds.
    let (mut calls, mut added, mut during, mut stats) = (Vec::new(), Vec::new(), Vec::new(), None);
    // A round whose burst made no upstream call found a token the daemon's 30 s tick had
    // refreshed during the wait (it refreshes stale tokens in the background, as it should):
    // that round measured no herd, so it is run again, a few times at most.
    let mut skipped = 0;
    while added.len() < plan.herd_rounds && skipped < plan.herd_rounds {
        let mut fresh = burst(&daemon.unix, TOKEN_PATH, plan.herd).await?;
        // The herd token lives 2 s: let it expire, then all callers at once.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        reset_stats(emulator).await?;
        let before = refresh_timings(daemon).await?;
        let mut herd = burst(&daemon.unix, "/v1/profiles/herd/token", plan.herd).await?;
        let after = refresh_timings(daemon).await?;
        let (round_calls, round_stats) = upstream_calls(emulator).await?;
        if round_calls == 0 {
            skipped += 1;
            continue;
        }
        during.push(per_refresh(before, after));
        calls.push(round_calls);
        stats.get_or_insert(round_stats);
        added.push(quantile(&mut herd, 0.5) - quantile(&mut fresh, 0.5));
    }
    anyhow::ensure!(
        !added.is_empty(),
        "no herd round made an upstream call: the token never expired"
    );
    let added_median = median(&added);
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let calls_text = calls
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let during_median = median(&during);
    Ok(vec![
        Row::new(
            format!(
                "{} concurrent callers on an expired token: upstream calls per round",
                plan.herd
            ),
            calls_text,
            "",
            "",
            "exactly 1",
            Verdict::of(calls.iter().all(|&c| c == 1)),
        )
        .with_note(&stats.unwrap_or_default().to_string()),
        Row::new(
            format!(
                "herd: added p50 latency vs the same burst on a fresh token (ms, median of {} rounds)",
                added.len()
            ),
            format!(
                "{added_median:.2} (rounds {}{})",
                list(&added),
                if skipped > 0 {
                    format!("; {skipped} run again: the tick had refreshed the token")
                } else {
                    String::new()
                }
            ),
            format!("{single:.2} (one refresh, one caller)"),
            format!("{:.2}×", added_median / single),
            "≈ 1 upstream round trip (≤ 2×)",
            Verdict::of(added_median / single <= 2.0),
        ),
        Row::new(
            "herd: the refresh itself, job start → upstream answer, during the burst vs alone (ms, median)",
            format!("{during_median:.2}"),
            format!("{alone:.2} (alone)"),
            format!("{:.2}×", during_median / alone),
            "reported",
            Verdict::Info,
        ),
    ])
}

pub(super) async fn storm_rows(
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
    // The file store, which `store = "auto"` picks without a keyring: like the keyring it keeps
    // no session in the daemon's memory (the memory store holds a copy of each, ~0.9 KB).
    let setup = DaemonSetup::write_with_store(&dir.join("d-storm"), &profiles, "file")?;
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
