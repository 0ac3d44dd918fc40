//! Crash recovery of a rotating session (security-reliability.md §2, fault "kill -9 during a
//! rotating refresh"): a refresh whose result never reached the store is redone at start-up,
//! inside the upstream's grace for the old refresh token, without waiting for a caller.

use super::*;

/// A store over a shared memory store that can be made to lose every save after the next
/// marked one: the daemon "dies" between the upstream's reply and the store write.
struct CrashingStore {
    inner: Arc<MemoryStore>,
    crash_after_mark: AtomicBool,
    crashed: AtomicBool,
}

impl CrashingStore {
    fn over(inner: Arc<MemoryStore>) -> Self {
        Self {
            inner,
            crash_after_mark: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
        }
    }
}

impl SecretStore for CrashingStore {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn load(&self, profile: &ProfileName) -> anyhow::Result<Option<StoredSession>> {
        self.inner.load(profile)
    }
    fn save(&self, profile: &ProfileName, session: &StoredSession) -> anyhow::Result<()> {
        if self.crashed.load(Ordering::SeqCst) {
            anyhow::bail!("the process is gone");
        }
        self.inner.save(profile, session)?;
        if session.refresh_unconfirmed && self.crash_after_mark.load(Ordering::SeqCst) {
            self.crashed.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
    fn erase(&self, profile: &ProfileName) -> anyhow::Result<()> {
        self.inner.erase(profile)
    }
}

const PROFILE: &str = "graced";

/// Logs in, refreshes once (the session is now known to rotate), then refreshes again with the
/// store dying right after the mark: the upstream rotated, the store still holds the old token
/// marked unconfirmed. Returns the shared store and the refresh calls so far.
async fn crash_during_a_rotating_refresh(harness: &Harness) -> (Arc<MemoryStore>, u64) {
    let shared = Arc::new(MemoryStore::default());
    let store = Arc::new(CrashingStore::over(shared.clone()));
    let broker = harness.broker(store.clone());
    broker.restore().await;
    broker
        .login(PROFILE, Some(Password::new(ALICE_PASSWORD)))
        .await
        .expect("alice logs in");
    harness.advance(25);
    broker
        .token(PROFILE, TokenKind::Access, None)
        .await
        .unwrap();
    let name: ProfileName = PROFILE.parse().unwrap();
    let stored = shared.load(&name).unwrap().unwrap();
    assert_eq!(stored.rotates, Some(true), "{stored:?}");
    assert!(!stored.refresh_unconfirmed, "{stored:?}");

    store.crash_after_mark.store(true, Ordering::SeqCst);
    harness.advance(25);
    broker
        .token(PROFILE, TokenKind::Access, None)
        .await
        .unwrap();
    let stored = shared.load(&name).unwrap().unwrap();
    assert!(stored.refresh_unconfirmed, "the mark is stored: {stored:?}");
    let calls = harness.calls(REFRESH);
    assert_eq!(calls, 2);
    (shared, calls)
}

#[tokio::test]
async fn a_restart_inside_the_grace_refreshes_by_itself_and_keeps_the_session() {
    let harness = Harness::start().await;
    let (shared, calls) = crash_during_a_rotating_refresh(&harness).await;
    harness.advance(5); // restarted within the 30 s grace, and nobody asks for a token

    let broker = harness.broker(shared.clone());
    let mut events = broker.subscribe();
    broker.restore().await;
    loop {
        match events.recv().await.unwrap() {
            BrokerEvent::TokenRefreshed { profile, .. } if profile == PROFILE => break,
            BrokerEvent::RefreshFailed { profile, class } if profile == PROFILE => {
                panic!("the restart refresh failed: {class}")
            }
            _ => {}
        }
    }
    assert_eq!(harness.calls(REFRESH), calls + 1);
    let stored = shared.load(&PROFILE.parse().unwrap()).unwrap().unwrap();
    assert!(!stored.refresh_unconfirmed, "{stored:?}");
    assert_eq!(broker.status(PROFILE).unwrap().state, "fresh");
    // The session lives on: the next refresh (of the newly stored token) works too.
    harness.advance(25);
    broker
        .token(PROFILE, TokenKind::Access, None)
        .await
        .unwrap();
    assert_eq!(harness.calls(REFRESH), calls + 2);
}

#[tokio::test]
async fn a_restart_after_the_grace_asks_for_a_login_once_and_never_retries() {
    let harness = Harness::start().await;
    let (shared, calls) = crash_during_a_rotating_refresh(&harness).await;
    harness.advance(40); // past the 30 s grace

    let broker = harness.broker(shared);
    let mut events = broker.subscribe();
    broker.restore().await;
    loop {
        if let BrokerEvent::RefreshFailed { profile, class } = events.recv().await.unwrap()
            && profile == PROFILE
        {
            assert_eq!(class, "login_required");
            break;
        }
    }
    // Answered after the failure has been applied (the task handles commands in order).
    broker.held_refresh_token(PROFILE).await;
    let status = broker.status(PROFILE).unwrap();
    assert_eq!(status.state, "login_required", "{status:?}");
    let error = broker
        .token(PROFILE, TokenKind::Access, None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "login_required");
    broker.tick();
    broker.drain().await;
    assert_eq!(harness.calls(REFRESH), calls + 1, "one try, no retry loop");
}

#[tokio::test]
async fn a_session_that_does_not_rotate_is_not_marked_after_its_first_refresh() {
    let harness = Harness::start().await;
    let store = Arc::new(GatedStore::new());
    let broker = harness.broker(store.clone());
    broker.restore().await;
    broker
        .login("device", Some(Password::new("Dora-Passw0rd!")))
        .await
        .expect("dora logs in");
    harness.advance(25);
    broker
        .token("device", TokenKind::Access, None)
        .await
        .unwrap();
    // First refresh: rotation unknown, so marked, then confirmed (login + confirmation).
    assert_eq!(store.marks.load(Ordering::SeqCst), 1);
    assert_eq!(lock(&store.saved).len(), 2);
    harness.advance(25);
    broker
        .token("device", TokenKind::Access, None)
        .await
        .unwrap();
    assert_eq!(harness.calls(REFRESH), 2);
    assert_eq!(
        store.marks.load(Ordering::SeqCst),
        1,
        "no mark once known not to rotate"
    );
    assert_eq!(
        lock(&store.saved).len(),
        2,
        "nothing changed, nothing saved"
    );
}
