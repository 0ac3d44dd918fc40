//! What the handlers share ([`AppState`]): the broker, the audit ring, limits and the shutdown
//! signal, behind one `Arc`.

use tokio_util::sync::CancellationToken;

use crate::broker::Broker;

/// What the handlers share: one `Arc`, so the state a request carries costs one increment.
#[derive(Clone)]
pub(super) struct AppState(pub(super) std::sync::Arc<Shared>);

pub(super) struct Shared {
    pub(super) broker: Broker,
    pub(super) body_limit: usize,
    /// Who took which token.
    pub(super) audit: std::sync::Arc<crate::audit::AuditRing>,
    /// Ends event streams at shutdown, so graceful shutdown does not wait on them.
    pub(super) shutdown: CancellationToken,
    /// The TCP listener's address (the AWS SDKs' credentials URL names it).
    pub(super) tcp: Option<std::net::SocketAddr>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
