//! Refresh timing as pure functions of (now, token times, backoff state): when a token is fresh,
//! when to refresh in the background, when a caller must wait, how long to back off
//! (security-reliability.md §2.3). No clock, no IO: every input is an argument.

use std::time::{Duration, SystemTime};

/// A token minted less than this long ago is never refreshed again just to satisfy a `min_ttl`
/// (the smallest gap; long tokens use 10 % of their lifetime).
pub const RECENTLY_MINTED: Duration = Duration::from_secs(5);

/// The two windows before expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Inside this window before expiry the token is stale: refresh in the background.
    pub stale: Duration,
    /// The hand-out floor: by default no token with less than this left is handed out without
    /// first trying to refresh.
    pub floor: Duration,
}

/// Per-profile constants of the policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// This profile's jitter, a fraction in `[0, 1)`, drawn once so profiles spread out.
    pub jitter: f64,
    /// The configured `refresh_before`, replacing the computed stale window.
    pub refresh_before: Option<Duration>,
}

/// When the current token was received and when it expires (the earlier of `ExpiresIn` and the
/// JWT `exp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTimes {
    /// Local wall-clock time at receipt.
    pub received_at: SystemTime,
    /// Expiry, in local wall-clock time.
    pub expires_at: SystemTime,
}

impl TokenTimes {
    /// The token's whole lifetime.
    pub fn lifetime(&self) -> Duration {
        self.expires_at
            .duration_since(self.received_at)
            .unwrap_or(Duration::ZERO)
    }

    /// Time left at `now` (zero when expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    /// Time since receipt at `now` (zero if the clock went backwards).
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.received_at)
            .unwrap_or(Duration::ZERO)
    }
}

/// Failed attempts so far and when the next one is allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Consecutive failed attempts.
    pub failures: u32,
    /// No new attempt before this time.
    pub next_attempt_at: Option<SystemTime>,
}

impl Backoff {
    /// Whether attempts are held back at `now`, and for how long.
    pub fn wait_at(&self, now: SystemTime) -> Option<Duration> {
        self.next_attempt_at
            .and_then(|at| at.duration_since(now).ok())
            .filter(|wait| !wait.is_zero())
    }
}

/// What a token request should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestDecision {
    /// Hand out the current token; optionally start a background refresh (not awaited).
    Serve {
        /// Start a background refresh.
        refresh_in_background: bool,
    },
    /// Hand out the current token flagged degraded: it is below what was asked, but refreshing
    /// is failing or backing off and the token is still valid.
    ServeDegraded,
    /// Join (or start) the profile's single in-flight refresh, then decide again.
    Refresh,
    /// No valid token and refreshing is backing off: answer 503 with this `Retry-After`.
    Unavailable {
        /// How long until the next attempt is allowed.
        retry_after: Duration,
    },
    /// No token and nothing to refresh with: a login is needed.
    NoSession,
}

/// The stale window and hand-out floor for a token of `lifetime`:
/// stale = clamp(25 % lifetime, 60 s, 15 min) (or `refresh_before`) minus jitter × min(10 %
/// lifetime, 60 s); floor = clamp(5 % lifetime, 30 s, 5 min); neither more than half the lifetime,
/// and the floor never beyond the stale window.
pub fn windows(lifetime: Duration, tuning: &Tuning) -> Windows {
    let half = lifetime / 2;
    let base = tuning.refresh_before.unwrap_or_else(|| {
        lifetime
            .mul_f64(0.25)
            .clamp(Duration::from_secs(60), Duration::from_secs(15 * 60))
    });
    let jitter_span = lifetime.mul_f64(0.1).min(Duration::from_secs(60));
    let jitter = jitter_span.mul_f64(tuning.jitter.clamp(0.0, 1.0));
    let stale = base.saturating_sub(jitter).min(half);
    let floor = lifetime
        .mul_f64(0.05)
        .clamp(Duration::from_secs(30), Duration::from_secs(5 * 60))
        .min(half)
        .min(stale);
    Windows { stale, floor }
}

/// The decision for one token request.
///
/// - `min_ttl`: what the caller asked for (default: the floor). A `min_ttl` no token can
///   satisfy is capped at `lifetime − max(5 s, 10 % lifetime)`: it gets one refresh and then the
///   freshest token, and a token minted in the last few seconds is not refreshed for it.
/// - `can_refresh`: a refresh token exists and the profile is not `login_required`.
/// - `already_refreshed`: this request already waited for a refresh; never refresh twice.
pub fn on_request(
    now: SystemTime,
    token: Option<TokenTimes>,
    tuning: &Tuning,
    min_ttl: Option<Duration>,
    backoff: &Backoff,
    can_refresh: bool,
    already_refreshed: bool,
) -> RequestDecision {
    let backing_off = backoff.wait_at(now);
    let Some(token) = token else {
        if !can_refresh || already_refreshed {
            return RequestDecision::NoSession;
        }
        return match backing_off {
            Some(retry_after) => RequestDecision::Unavailable { retry_after },
            None => RequestDecision::Refresh,
        };
    };
    let lifetime = token.lifetime();
    let remaining = token.remaining(now);
    let windows = windows(lifetime, tuning);
    let recent_gap = RECENTLY_MINTED.max(lifetime.mul_f64(0.1));
    let required = min_ttl
        .unwrap_or(windows.floor)
        .min(lifetime.saturating_sub(recent_gap));
    let valid = !remaining.is_zero();
    let in_stale_window = remaining <= windows.stale;

    if valid && remaining >= required {
        return RequestDecision::Serve {
            refresh_in_background: in_stale_window && can_refresh && backing_off.is_none(),
        };
    }
    if already_refreshed {
        return if valid {
            RequestDecision::Serve {
                refresh_in_background: false,
            }
        } else if can_refresh {
            RequestDecision::Unavailable {
                retry_after: backing_off.unwrap_or(Duration::from_secs(1)),
            }
        } else {
            RequestDecision::NoSession
        };
    }
    if !can_refresh {
        return if valid {
            RequestDecision::ServeDegraded
        } else {
            RequestDecision::NoSession
        };
    }
    if let Some(retry_after) = backing_off {
        return if valid {
            RequestDecision::ServeDegraded
        } else {
            RequestDecision::Unavailable { retry_after }
        };
    }
    RequestDecision::Refresh
}

/// Whether the periodic tick should start a background refresh now: the token is inside its
/// stale window (or expired), a refresh is possible, and no backoff holds it back. A session
/// without tokens (just restored) is left for the first request.
pub fn on_tick(
    now: SystemTime,
    token: Option<TokenTimes>,
    tuning: &Tuning,
    backoff: &Backoff,
    can_refresh: bool,
) -> bool {
    tick_start(now, token, tuning, backoff, can_refresh, Duration::ZERO).is_some()
}

/// When the tick should start a background refresh: `Some(ZERO)` for now (as [`on_tick`]),
/// `Some(delay)` when the profile's own jittered stale point falls within the next `horizon`
/// (the tick interval), `None` otherwise.
///
/// Starting each refresh at its own due time, rather than at the first tick after it, keeps
/// the per-profile jitter: profiles with identical expiry would otherwise all start at the
/// same tick, in bursts of hundreds.
pub fn tick_start(
    now: SystemTime,
    token: Option<TokenTimes>,
    tuning: &Tuning,
    backoff: &Backoff,
    can_refresh: bool,
    horizon: Duration,
) -> Option<Duration> {
    let token = token?;
    if !can_refresh || backoff.wait_at(now).is_some() {
        return None;
    }
    let remaining = token.remaining(now);
    let stale = windows(token.lifetime(), tuning).stale;
    if remaining <= stale {
        return Some(Duration::ZERO);
    }
    let until_stale = remaining - stale;
    (until_stale <= horizon).then_some(until_stale)
}

/// Full-jitter backoff: `random × min(cap, base × 2^attempt)`, `random` in `[0, 1)`.
pub fn backoff_delay(attempt: u32, base: Duration, cap: Duration, random: f64) -> Duration {
    let exponential = base
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(cap)
        .min(cap);
    exponential.mul_f64(random.clamp(0.0, 1.0))
}

/// The backoff after one more failure of the background path: full jitter from `base`, at most
/// `cap`, and while a token is valid at most half of what is left of it (so a retry still
/// happens before expiry). Never less than `min_gap`, so a broken upstream is not hammered.
pub fn after_failure(
    now: SystemTime,
    previous: &Backoff,
    token: Option<TokenTimes>,
    base: Duration,
    cap: Duration,
    min_gap: Duration,
    random: f64,
) -> Backoff {
    let mut delay = backoff_delay(previous.failures, base, cap, random);
    if let Some(token) = token {
        let remaining = token.remaining(now);
        if !remaining.is_zero() {
            delay = delay.min(remaining / 2);
        }
    }
    let delay = delay.max(min_gap);
    Backoff {
        failures: previous.failures.saturating_add(1),
        next_attempt_at: now.checked_add(delay),
    }
}

#[cfg(test)]
mod tests;
