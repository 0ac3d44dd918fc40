//! The emulator's wall clock: the host clock plus an adjustable offset (skew and expiry in tests).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Host time plus `offset` seconds. Every expiry, token time and TOTP step reads this clock.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset: AtomicI64,
}

impl Clock {
    pub(crate) fn now(&self) -> SystemTime {
        let offset = self.offset.load(Ordering::SeqCst);
        let host = SystemTime::now();
        if offset >= 0 {
            host + Duration::from_secs(offset.unsigned_abs())
        } else {
            host - Duration::from_secs(offset.unsigned_abs())
        }
    }

    /// Whole unix seconds of [`Clock::now`].
    pub(crate) fn unix(&self) -> i64 {
        match self.now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }

    pub(crate) fn offset(&self) -> i64 {
        self.offset.load(Ordering::SeqCst)
    }

    pub(crate) fn set_offset(&self, seconds: i64) {
        self.offset.store(seconds, Ordering::SeqCst);
    }

    pub(crate) fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::SeqCst);
    }
}
