//! One profile's published state: an immutable `Snapshot` swapped as a whole, so the hot path
//! reads it with one `Arc` clone and no lock held across an await; plus time formatting.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cognito_auth::TokenSet;
use hyper::body::Bytes;

use crate::api::TokenKind;

use super::policy::{Backoff, TokenTimes};
use super::ticket::RefreshTicket;

/// What a profile looks like right now. Replaced, never mutated in place.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// Bumped whenever the tokens, the session or the failure state change (not for the
    /// `refreshing`/`login` flags): lets a caller's refresh request tell "something already
    /// happened since I looked".
    pub(crate) generation: u64,
    /// The current access and ID tokens.
    pub(crate) tokens: Option<Arc<HeldTokens>>,
    /// A refresh token is held (in memory) for this profile.
    pub(crate) has_session: bool,
    /// Why a login is required, when it is (refresh token refused).
    pub(crate) login_required: Option<String>,
    /// When tokens were last obtained (login or refresh).
    pub(crate) last_refresh: Option<SystemTime>,
    /// The class of the last failure, cleared by a success.
    pub(crate) last_error: Option<&'static str>,
    /// The last refresh attempt failed while a token was still valid.
    pub(crate) degraded: bool,
    /// A rotated refresh token is held in memory only: the store refused it.
    pub(crate) persistence_degraded: bool,
    /// Backoff of refresh attempts.
    pub(crate) backoff: Backoff,
    /// A device is remembered for this profile.
    pub(crate) device_remembered: bool,
    /// The stored session could not be read at startup.
    pub(crate) store_error: Option<String>,
    /// A refresh (or the unattended login after a refused refresh token) is running: callers
    /// who need it wait on its ticket instead of sending the profile's task a command each.
    pub(crate) refresh: Option<RefreshTicket>,
    /// Where this profile's login stands.
    pub(crate) login: LoginFlag,
    /// Upstream refused the profile's configuration (client secret, scopes): why. No refresh
    /// is attempted until an explicit one (or a restart with a new configuration).
    pub(crate) misconfigured: Option<String>,
    /// AWS credentials from the identity pool, their fetch state and the live grants.
    pub(crate) aws: super::aws::SharedAws,
}

/// Where a profile's login stands, as readers see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum LoginFlag {
    /// No login is running or waiting.
    #[default]
    Idle,
    /// A login step is running upstream.
    Busy,
    /// A challenge waits for a person until then.
    PendingUntil(SystemTime),
}

impl LoginFlag {
    /// A login is running, or waits for an answer that is not yet too late.
    pub(crate) fn active(self, now: SystemTime) -> bool {
        match self {
            Self::Idle => false,
            Self::Busy => true,
            Self::PendingUntil(expires_at) => expires_at > now,
        }
    }
}

/// A token set as snapshots share it, with one slot per token kind for what the server renders
/// from it once (the JSON of a token answer, of which only the seconds left and the degraded
/// flag change between requests): a cache hit then copies bytes instead of formatting them.
/// Made anew with every token set, so a rendering can never show other tokens than its own.
pub(crate) struct HeldTokens {
    set: TokenSet,
    rendered: [OnceLock<Option<Bytes>>; 2],
}

impl HeldTokens {
    pub(crate) fn new(set: TokenSet) -> Self {
        Self {
            set,
            rendered: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The slot for `kind`'s rendering (`None` inside: it could not be rendered in advance).
    pub(crate) fn rendered(&self, kind: TokenKind) -> &OnceLock<Option<Bytes>> {
        match kind {
            TokenKind::Access => &self.rendered[0],
            TokenKind::Id => &self.rendered[1],
        }
    }
}

impl std::ops::Deref for HeldTokens {
    type Target = TokenSet;

    fn deref(&self) -> &TokenSet {
        &self.set
    }
}

impl std::fmt::Debug for HeldTokens {
    /// The token set's own `Debug` (which hides every token); renderings are never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.set.fmt(f)
    }
}

impl Snapshot {
    /// A refresh is in flight.
    pub(crate) fn refreshing(&self) -> bool {
        self.refresh.is_some()
    }

    /// The token times the policy works on.
    pub(crate) fn token_times(&self) -> Option<TokenTimes> {
        self.tokens.as_ref().map(|tokens| TokenTimes {
            received_at: tokens.received_at(),
            expires_at: tokens.expires_at(),
        })
    }

    /// A refresh can be attempted: a refresh token is held (or none is needed) and it was not
    /// refused, and upstream did not refuse the configuration.
    pub(crate) fn can_refresh(&self) -> bool {
        self.has_session && self.login_required.is_none() && self.misconfigured.is_none()
    }
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// RFC 3339 in UTC with second precision, e.g. `2026-11-21T22:05:09Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let seconds = unix_seconds(time);
    let days = (seconds / 86_400) as i64;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_298_709, "2026-11-21T22:05:09Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(seconds)), expected);
        }
    }
}
