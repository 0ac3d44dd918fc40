//! The profile's published [`Snapshot`]: its task replaces it, every request reads it.
//!
//! One per profile for the daemon's life, so it is only the lock and the `Arc` (32 bytes behind
//! the shared `Arc`). A `tokio::sync::watch` did the same with room for eight notifiers and
//! change versions nobody in the daemon waits on: 352 bytes per profile (heaptrack, 1,000
//! profiles). Readers take the read lock for one `Arc` clone, as `watch::Receiver::borrow` did.

use std::sync::{Arc, PoisonError, RwLock};

use super::super::state::Snapshot;

#[derive(Debug)]
pub(crate) struct Published {
    current: RwLock<Arc<Snapshot>>,
    /// Woken on every publish, for tests that wait on state instead of time.
    #[cfg(test)]
    changed: tokio::sync::Notify,
}

impl Published {
    pub(crate) fn new(first: Snapshot) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(first)),
            #[cfg(test)]
            changed: tokio::sync::Notify::new(),
        })
    }

    /// The current snapshot: one `Arc` clone under the read lock. A panic cannot leave the
    /// lock's value half-written (writers only swap an `Arc`), so a poisoned lock is read on.
    pub(crate) fn current(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the snapshot.
    pub(crate) fn publish(&self, next: Arc<Snapshot>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        #[cfg(test)]
        self.changed.notify_waiters();
    }

    /// Waits until the published snapshot satisfies `ready`.
    #[cfg(test)]
    pub(crate) async fn wait_for(&self, mut ready: impl FnMut(&Arc<Snapshot>) -> bool) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the check, so a publish between the check and the wait wakes it.
            changed.as_mut().enable();
            if ready(&self.current()) {
                return;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_stays_small() {
        let size = std::mem::size_of::<Published>();
        // The lock and the Arc, plus the tests' notifier (absent from builds people run).
        let notify = std::mem::size_of::<tokio::sync::Notify>();
        assert!(size - notify <= 32, "Published is {size} bytes");
    }

    #[tokio::test]
    async fn a_waiter_sees_the_publish_it_waits_for() {
        let published = Published::new(Snapshot::default());
        let waiter = {
            let published = Arc::clone(&published);
            tokio::spawn(async move { published.wait_for(|s| s.generation == 2).await })
        };
        tokio::task::yield_now().await;
        for generation in 1..=2 {
            published.publish(Arc::new(Snapshot {
                generation,
                ..Snapshot::default()
            }));
        }
        waiter.await.expect("the waiter returns");
        assert_eq!(published.current().generation, 2);
    }
}
