//! Runtime state for the policy's limits (POLICY.md steps 3, 11, 12, 14): rate-limit buckets,
//! the brute-force guard, connection and WebSocket counters, and the bounded request queues.
//!
//! - [`store`] — the seam: [`LimitStore`] and the in-process [`MemoryStore`].
//! - [`admission`] — [`RuntimeAdmission`], the [`crate::policy::admission::Admission`] the proxy
//!   hands to the decision: it takes tokens and slots, and keeps the slots it took as guards
//!   that give them back however the request ends.
//! - [`queue`] — per-route bounded queues in front of the upstream.

pub mod admission;
pub mod queue;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

pub use admission::{RuntimeAdmission, SlotGuard};
pub use queue::{QueueError, QueuePermit, Queues};
pub use store::{LimitStore, MemoryStore};

use crate::policy::Policy;

/// How often idle limit state is evicted.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// All limit state of one Gatehouse process.
pub struct Limits {
    /// Buckets and counters.
    pub store: Arc<dyn LimitStore>,
    /// Route queues.
    pub queues: Queues,
}

impl Limits {
    /// Limits kept in this process.
    pub fn in_memory() -> Self {
        Limits {
            store: Arc::new(MemoryStore::new()),
            queues: Queues::default(),
        }
    }

    /// After a reload: forget the buckets and queues of limits the new policy no longer has;
    /// those of unchanged limits survive.
    pub fn retain_for(&self, policy: &Policy) {
        let live = admission::bucket_ids(policy);
        self.store.retain_buckets(&|id| live.contains(id));
        self.queues.retain_for(policy);
    }
}

/// Evicts idle limit state every few seconds.
pub struct Sweeper(pub Arc<crate::runtime::Shared>);

#[async_trait]
impl BackgroundService for Sweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => self.0.limits.store.sweep(),
                _ = shutdown.changed() => break,
            }
        }
    }
}
