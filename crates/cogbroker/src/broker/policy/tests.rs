//! Table tests of the refresh policy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const T0: u64 = 1_800_000_000;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + seconds)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn token(received: u64, lifetime: u64) -> TokenTimes {
    TokenTimes {
        received_at: at(received),
        expires_at: at(received + lifetime),
    }
}

const NO_JITTER: Tuning = Tuning {
    jitter: 0.0,
    refresh_before: None,
};

#[test]
fn windows_table() {
    let full = Tuning {
        jitter: 0.999_999,
        refresh_before: None,
    };
    let five_minutes = Tuning {
        jitter: 0.0,
        refresh_before: Some(secs(300)),
    };
    // (lifetime, tuning, stale, floor)
    let cases: &[(u64, Tuning, f64, u64)] = &[
        (3600, NO_JITTER, 900.0, 180),
        (3600, full, 840.0, 180),
        (300, NO_JITTER, 75.0, 30),
        (300, full, 45.0, 30),
        (20, NO_JITTER, 10.0, 10),
        (20, full, 10.0, 10),
        (86_400, NO_JITTER, 900.0, 300),
        (3600, five_minutes, 300.0, 180),
        (120, five_minutes, 60.0, 30),
        (0, NO_JITTER, 0.0, 0),
    ];
    for (lifetime, tuning, stale, floor) in cases {
        let got = windows(secs(*lifetime), tuning);
        assert!(
            (got.stale.as_secs_f64() - stale).abs() < 0.01,
            "lifetime {lifetime} {tuning:?}: stale {:?}, want {stale}",
            got.stale
        );
        assert_eq!(got.floor, secs(*floor), "lifetime {lifetime} {tuning:?}");
        assert!(got.floor <= got.stale && got.stale <= secs(*lifetime) / 2 + secs(1));
    }
}

/// One token request: (name, now, token, min_ttl, backoff, can_refresh, already_refreshed).
type RequestCase = (
    &'static str,
    u64,
    Option<TokenTimes>,
    Option<u64>,
    Backoff,
    bool,
    bool,
);

fn check_request(case: RequestCase, expected: RequestDecision) {
    let (name, now, token, min_ttl, backoff, can_refresh, already) = case;
    let got = on_request(
        at(now),
        token,
        &NO_JITTER,
        min_ttl.map(secs),
        &backoff,
        can_refresh,
        already,
    );
    assert_eq!(got, expected, "{name}");
}

#[test]
#[rustfmt::skip]
fn request_table() {
    use RequestDecision::*;
    let none = Backoff::default();
    let backing = Backoff { failures: 2, next_attempt_at: Some(at(100)) };
    let until = |t| Backoff { failures: 1, next_attempt_at: Some(at(t)) };
    let fresh_1h = Some(token(0, 3600));
    let t20 = Some(token(0, 20));
    let serve = Serve { refresh_in_background: false };
    let serve_and_refresh = Serve { refresh_in_background: true };
    let jumped_back = Some(TokenTimes { received_at: at(7200), expires_at: at(10_800) });
    let cases: Vec<(RequestCase, RequestDecision)> = vec![
        (("fresh", 10, fresh_1h, None, none, true, false), serve),
        (("stale: serve and refresh behind", 2800, fresh_1h, None, none, true, false), serve_and_refresh),
        (("stale while backing off: no background kick", 2800, fresh_1h, None, until(2900), true, false), serve),
        (("below floor: block", 3500, fresh_1h, None, none, true, false), Refresh),
        (("expired: block", 4000, fresh_1h, None, none, true, false), Refresh),
        (("expired, backing off: 503", 90, t20, None, backing, true, false), Unavailable { retry_after: secs(10) }),
        (("below floor, backing off, still valid: degraded", 3500, fresh_1h, None, until(3550), true, false), ServeDegraded),
        (("min_ttl satisfiable", 100, fresh_1h, Some(3000), none, true, false), serve),
        (("min_ttl needs refresh", 1000, fresh_1h, Some(3000), none, true, false), Refresh),
        (("min_ttl too long, minted just now: no storm", 2, t20, Some(3600), none, true, false), serve),
        (("min_ttl too long, older token: one refresh", 6, t20, Some(3600), none, true, false), Refresh),
        (("min_ttl too long after the refresh: freshest", 0, t20, Some(3600), none, true, true), serve),
        (("min_ttl too long, 1h token minted 5 min ago", 300, fresh_1h, Some(7200), none, true, false), serve),
        (("min_ttl too long, 1h token minted 7 min ago", 420, fresh_1h, Some(7200), none, true, false), Refresh),
        (("min_ttl 0 on a nearly expired token", 3599, fresh_1h, Some(0), none, true, false), serve_and_refresh),
        (("20 s token: fresh at 9 s", 9, t20, None, none, true, false), serve),
        (("20 s token: blocks at 11 s", 11, t20, None, none, true, false), Refresh),
        (("no token, no session", 0, None, None, none, false, false), NoSession),
        (("no token, session restored", 0, None, None, none, true, false), Refresh),
        (("no token, backing off", 0, None, None, backing, true, false), Unavailable { retry_after: secs(100) }),
        (("login required but token valid", 3500, fresh_1h, None, none, false, false), ServeDegraded),
        (("login required, expired", 4000, fresh_1h, None, none, false, false), NoSession),
        (("refresh failed, still valid", 3500, fresh_1h, None, none, true, true), serve),
        (("refresh done but expired", 4000, fresh_1h, None, none, true, true), Unavailable { retry_after: secs(1) }),
        (("clock jumped back 2 h", 0, jumped_back, None, none, true, false), serve),
    ];
    for (case, expected) in cases {
        check_request(case, expected);
    }
}

/// (name, now, token, backoff, can_refresh, expected)
type TickCase = (&'static str, u64, Option<TokenTimes>, Backoff, bool, bool);

#[test]
#[rustfmt::skip]
fn tick_table() {
    let none = Backoff::default();
    let until = |t| Backoff { failures: 1, next_attempt_at: Some(at(t)) };
    let hour = Some(token(0, 3600));
    let cases: Vec<TickCase> = vec![
        ("fresh", 100, hour, none, true, false),
        ("stale window starts at T-15min", 2700, hour, none, true, true),
        ("just before the window", 2699, hour, none, true, false),
        ("expired", 4000, hour, none, true, true),
        ("backing off", 4000, hour, until(4001), true, false),
        ("backoff elapsed", 4001, hour, until(4001), true, true),
        ("login required", 4000, hour, none, false, false),
        ("no token yet", 0, None, none, true, false),
        ("20 s token at 10 s", 10, Some(token(0, 20)), none, true, true),
        ("20 s token at 9 s", 9, Some(token(0, 20)), none, true, false),
    ];
    for (name, now, token, backoff, can_refresh, expected) in cases {
        assert_eq!(on_tick(at(now), token, &NO_JITTER, &backoff, can_refresh), expected, "{name}");
    }
}

/// (name, now, token, backoff, can_refresh, expected delay)
type TickStartCase = (
    &'static str,
    u64,
    Option<TokenTimes>,
    Backoff,
    bool,
    Option<Duration>,
);

#[test]
fn tick_start_looks_one_interval_ahead() {
    let hour = Some(token(0, 3600));
    let horizon = Duration::from_secs(30);
    let secs = |s| Some(Duration::from_secs(s));
    let until = |t| Backoff {
        failures: 1,
        next_attempt_at: Some(at(t)),
    };
    let cases: Vec<TickStartCase> = vec![
        (
            "inside the window: now",
            2700,
            hour,
            Backoff::default(),
            true,
            secs(0),
        ),
        (
            "10 s before the window",
            2690,
            hour,
            Backoff::default(),
            true,
            secs(10),
        ),
        (
            "exactly one interval before",
            2670,
            hour,
            Backoff::default(),
            true,
            secs(30),
        ),
        (
            "beyond the interval",
            2669,
            hour,
            Backoff::default(),
            true,
            None,
        ),
        ("backing off", 2690, hour, until(2691), true, None),
        (
            "login required",
            2690,
            hour,
            Backoff::default(),
            false,
            None,
        ),
        ("no token yet", 0, None, Backoff::default(), true, None),
    ];
    for (name, now, token, backoff, can_refresh, expected) in cases {
        let got = tick_start(at(now), token, &NO_JITTER, &backoff, can_refresh, horizon);
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn backoff_is_full_jitter_and_capped() {
    let base = Duration::from_millis(200);
    let cap = secs(20);
    assert_eq!(backoff_delay(0, base, cap, 0.0), Duration::ZERO);
    assert_eq!(backoff_delay(0, base, cap, 0.5), Duration::from_millis(100));
    assert_eq!(backoff_delay(3, base, cap, 0.5), Duration::from_millis(800));
    assert_eq!(backoff_delay(10, base, cap, 0.5), secs(10));
    assert_eq!(backoff_delay(40, base, cap, 1.0), cap);
    for attempt in 0..64 {
        for random in [0.0, 0.3, 0.999] {
            let delay = backoff_delay(attempt, secs(1), secs(300), random);
            assert!(delay <= secs(300), "{attempt} {random}");
        }
    }
}

#[test]
fn background_backoff_is_bounded_by_the_token() {
    let start = Backoff::default();
    let after = after_failure(
        at(3000),
        &start,
        Some(token(0, 3600)),
        secs(1),
        secs(300),
        Duration::ZERO,
        0.5,
    );
    assert_eq!(after.failures, 1);
    assert_eq!(
        after.next_attempt_at,
        Some(at(3000) + Duration::from_millis(500))
    );
    let many = Backoff {
        failures: 20,
        next_attempt_at: None,
    };
    let after = after_failure(
        at(3500),
        &many,
        Some(token(0, 3600)),
        secs(1),
        secs(300),
        Duration::ZERO,
        0.99,
    );
    // 100 s left: at most half of it.
    assert_eq!(after.next_attempt_at, Some(at(3550)));
    let expired = after_failure(
        at(5000),
        &many,
        Some(token(0, 3600)),
        secs(1),
        secs(300),
        secs(1),
        0.0,
    );
    assert_eq!(expired.next_attempt_at, Some(at(5001)), "min gap");
    assert_eq!(expired.failures, 21);
}
