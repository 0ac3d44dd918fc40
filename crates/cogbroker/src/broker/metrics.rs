//! Counters and a latency histogram, rendered as Prometheus text. Counting never blocks the hot
//! path for long: token requests are atomics, the rest a short mutex section.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const LATENCY_BUCKETS: [f64; 9] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const TOKEN_OUTCOMES: [&str; 6] = [
    "hit",
    "refreshed",
    "degraded",
    "unavailable",
    "login_required",
    "error",
];

#[derive(Default)]
pub(crate) struct Metrics {
    token_requests: [AtomicU64; 6],
    counters: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    refreshes: BTreeMap<&'static str, u64>,
    logins: BTreeMap<String, u64>,
    upstream_errors: BTreeMap<&'static str, u64>,
    latency_buckets: [u64; 9],
    latency_count: u64,
    latency_sum: f64,
}

impl Metrics {
    pub(crate) fn token_request(&self, outcome: &'static str) {
        if let Some(index) = TOKEN_OUTCOMES.iter().position(|o| *o == outcome) {
            self.token_requests[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        // Plain counters: a poisoned lock still holds usable numbers.
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn refresh(&self, outcome: &'static str, latency: Duration) {
        let mut counters = self.counters();
        *counters.refreshes.entry(outcome).or_default() += 1;
        let seconds = latency.as_secs_f64();
        for (bucket, bound) in counters.latency_buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        counters.latency_count += 1;
        counters.latency_sum += seconds;
    }

    pub(crate) fn login(&self, outcome: &str) {
        *self
            .counters()
            .logins
            .entry(outcome.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn upstream_error(&self, class: &'static str) {
        *self.counters().upstream_errors.entry(class).or_default() += 1;
    }

    /// `profiles`: (name, seconds to expiry, state, persistence degraded).
    pub(crate) fn render(&self, profiles: &[(String, Option<f64>, &'static str, bool)]) -> String {
        let mut out = String::new();
        let counters = self.counters();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP cogbroker_token_requests_total Token requests by outcome."
        );
        let _ = writeln!(out, "# TYPE cogbroker_token_requests_total counter");
        for (index, outcome) in TOKEN_OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out,
                "cogbroker_token_requests_total{{outcome=\"{outcome}\"}} {}",
                self.token_requests[index].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cogbroker_refreshes_total Refresh attempts by outcome."
        );
        let _ = writeln!(out, "# TYPE cogbroker_refreshes_total counter");
        for (outcome, count) in &counters.refreshes {
            let _ = writeln!(
                out,
                "cogbroker_refreshes_total{{outcome=\"{outcome}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP cogbroker_refresh_duration_seconds Latency of refresh attempts (retries included)."
        );
        let _ = writeln!(out, "# TYPE cogbroker_refresh_duration_seconds histogram");
        for (bound, count) in LATENCY_BUCKETS.iter().zip(counters.latency_buckets) {
            let _ = writeln!(
                out,
                "cogbroker_refresh_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "cogbroker_refresh_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            counters.latency_count
        );
        let _ = writeln!(
            out,
            "cogbroker_refresh_duration_seconds_sum {}",
            counters.latency_sum
        );
        let _ = writeln!(
            out,
            "cogbroker_refresh_duration_seconds_count {}",
            counters.latency_count
        );
        let _ = writeln!(out, "# HELP cogbroker_logins_total Login steps by outcome.");
        let _ = writeln!(out, "# TYPE cogbroker_logins_total counter");
        for (outcome, count) in &counters.logins {
            let _ = writeln!(
                out,
                "cogbroker_logins_total{{outcome=\"{outcome}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP cogbroker_upstream_errors_total Upstream refresh errors by class."
        );
        let _ = writeln!(out, "# TYPE cogbroker_upstream_errors_total counter");
        for (class, count) in &counters.upstream_errors {
            let _ = writeln!(
                out,
                "cogbroker_upstream_errors_total{{class=\"{class}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP cogbroker_token_seconds_to_expiry Seconds until the current token expires (negative: expired)."
        );
        let _ = writeln!(out, "# TYPE cogbroker_token_seconds_to_expiry gauge");
        for (name, expiry, _, _) in profiles {
            if let Some(seconds) = expiry {
                let _ = writeln!(
                    out,
                    "cogbroker_token_seconds_to_expiry{{profile=\"{name}\"}} {seconds:.0}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP cogbroker_profile_state The state of each profile (1 = current)."
        );
        let _ = writeln!(out, "# TYPE cogbroker_profile_state gauge");
        for (name, _, state, _) in profiles {
            let _ = writeln!(
                out,
                "cogbroker_profile_state{{profile=\"{name}\",state=\"{state}\"}} 1"
            );
        }
        let _ = writeln!(
            out,
            "# HELP cogbroker_persistence_degraded 1 while a rotated refresh token is held in memory only."
        );
        let _ = writeln!(out, "# TYPE cogbroker_persistence_degraded gauge");
        for (name, _, _, degraded) in profiles {
            let _ = writeln!(
                out,
                "cogbroker_persistence_degraded{{profile=\"{name}\"}} {}",
                u8::from(*degraded)
            );
        }
        out
    }
}
