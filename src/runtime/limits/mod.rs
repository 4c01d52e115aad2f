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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::policy::admission::{Admission, Check};

    fn policy(b_rate: &str) -> Policy {
        let yaml = format!(
            r#"
version: 1
server: {{ listen: [{{ addr: "127.0.0.1:1" }}] }}
upstream: {{ addr: "127.0.0.1:9" }}
routes:
  - {{ name: a, match: {{ prefix: /a/ }}, auth: none, rate_limit: {{ per_ip: "1/1h" }} }}
  - {{ name: b, match: {{ prefix: /b/ }}, auth: none, rate_limit: {{ per_ip: "{b_rate}" }} }}
"#
        );
        crate::config::load_str(&yaml, std::path::Path::new("/t/p.yaml"), &|_| None).unwrap()
    }

    fn take(limits: &Limits, p: &Policy, route: usize) -> bool {
        let r = &p.routes[route];
        let mut adm = RuntimeAdmission::new(limits.store.clone());
        let ip = "192.0.2.1".parse().unwrap();
        matches!(
            adm.rate_limit(r, r.rate_limit.as_ref().unwrap(), ip, None),
            Check::Pass
        )
    }

    #[test]
    fn buckets_of_unchanged_limits_survive_a_reload() {
        let limits = Limits::in_memory();
        let old = policy("1/1h");
        assert!(take(&limits, &old, 0) && take(&limits, &old, 1));
        assert!(
            !take(&limits, &old, 0) && !take(&limits, &old, 1),
            "both used up"
        );
        // Reload: a unchanged, b's limit changed.
        let new = policy("2/1h");
        limits.retain_for(&new);
        assert!(
            !take(&limits, &new, 0),
            "a's bucket survived the reload (still empty)"
        );
        assert!(
            take(&limits, &new, 1),
            "b has a new bucket for its new limit"
        );
    }
}
