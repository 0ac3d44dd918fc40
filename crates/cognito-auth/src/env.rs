//! The clock and the randomness, injected so the protocol logic stays deterministic in tests.

use std::time::SystemTime;

/// The wall clock. Cognito's timestamps, token expiry and session lifetimes are wall-clock
/// quantities, so this is `SystemTime`, never a monotonic instant.
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// A source of cryptographically secure random bytes.
pub trait Entropy: Send + Sync + 'static {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]);
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, dest: &mut [u8]) {
        // The OS CSPRNG failing means the machine cannot produce secrets at all; continuing
        // with predictable bytes would be far worse than stopping.
        getrandom::getrandom(dest).expect("the operating system's random number generator failed");
    }
}
