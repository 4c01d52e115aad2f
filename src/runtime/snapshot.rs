//! The live policy, swapped atomically with `arc-swap`: each request loads one `Arc<Policy>`
//! at its start and keeps it to the end, so it sees one whole policy, old or new, even if a
//! reload lands mid-request. Open WebSockets hold their snapshot and are never dropped by a swap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{Limits, Metrics, VerifyPool};
use crate::policy::Policy;

/// Everything the proxy, admin listener and reloader share.
pub struct Shared {
    policy: ArcSwap<Policy>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Where password verifications run.
    pub verify_pool: VerifyPool,
    /// Rate-limit buckets, connection counters and queues.
    pub limits: Limits,
    /// Open WebSockets, re-checked on every reload.
    pub sockets: Arc<super::sockets::OpenSockets>,
    /// Verified JWTs (cleared on every reload).
    pub tokens: Arc<super::token_cache::VerifiedTokens>,
    listening: AtomicBool,
}

impl Shared {
    /// Starts with a loaded policy.
    pub fn new(policy: Policy) -> Arc<Self> {
        Arc::new(Shared {
            policy: ArcSwap::from_pointee(policy),
            metrics: Metrics::new(),
            limits: Limits::in_memory(),
            sockets: Arc::default(),
            tokens: Arc::new(super::token_cache::VerifiedTokens::new(100_000)),
            verify_pool: VerifyPool::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            listening: AtomicBool::new(false),
        })
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Swaps in a new policy; limit state of unchanged limits survives; open WebSockets the
    /// new policy would refuse are told to close.
    pub fn swap(&self, policy: Policy) -> super::sockets::Recheck {
        self.limits.retain_for(&policy);
        let policy = Arc::new(policy);
        self.policy.store(policy.clone());
        // Tokens verified under the old keys, issuers or audiences must be verified again.
        self.tokens.clear();
        self.sockets.recheck(&policy)
    }

    /// Marks the public listeners as accepting.
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    /// Whether the public listeners accept connections.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }
}
