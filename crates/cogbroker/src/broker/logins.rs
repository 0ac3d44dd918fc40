//! The login registry: which profile a `login_id` belongs to, so `POST /v1/logins/{id}` reaches
//! the right profile task. The pending login itself (the challenge and its session) lives only
//! in that task; this map holds names, never secrets, and is touched only when a login starts,
//! is answered or ends: never on the token path.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// `login_id` → profile name.
#[derive(Debug, Default)]
pub(crate) struct LoginIndex {
    by_id: Mutex<HashMap<String, String>>,
}

impl LoginIndex {
    pub(crate) fn insert(&self, login_id: &str, profile: &str) {
        self.map().insert(login_id.to_owned(), profile.to_owned());
    }

    pub(crate) fn remove(&self, login_id: &str) {
        self.map().remove(login_id);
    }

    pub(crate) fn profile_of(&self, login_id: &str) -> Option<String> {
        self.map().get(login_id).cloned()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Each critical section is one map operation: a panic elsewhere cannot leave it
        // half-updated.
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
