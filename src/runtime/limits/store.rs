//! The seam between the request path and where limit state lives. [`LimitStore`] is what the
//! admission logic needs: take a token from a keyed bucket, hold and release a counted slot,
//! block a key for a while. [`MemoryStore`] keeps it in this process (the default); a store on
//! a shared service (Redis) for several Gatehouse instances implements the same trait and
//! plugs in without touching the request path.
//!
//! Buckets are GCRA token buckets (`governor`): a rate `N/period` with `burst` holds `N + burst`
//! tokens and refills one every `period / N`. Idle keys are evicted only once their bucket is
//! full again (`retain_recent`), so eviction never changes an answer: the limits stay exact
//! while memory stays bounded by the keys seen within one refill window.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::policy::model::Rate;

/// What a bucket or counter is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A client IP.
    Ip(IpAddr),
    /// A JWT subject (or basic-auth user).
    Subject(Arc<str>),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Ip(ip) => write!(f, "ip {ip}"),
            Key::Subject(s) => write!(f, "subject {s:?}"),
        }
    }
}

/// One family of buckets: a scope (a route, or the brute-force guard), a dimension and the
/// limit. A route whose limit did not change keeps the same id across a reload, so its buckets
/// survive; a changed limit is a new family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketId {
    /// Route name, or `auth_failures_per_ip`.
    pub scope: Arc<str>,
    /// `per_ip` or `per_subject`.
    pub dim: &'static str,
    /// The rate.
    pub rate: Rate,
    /// Extra capacity.
    pub burst: u32,
}

impl BucketId {
    /// Bucket capacity.
    pub fn capacity(&self) -> u32 {
        self.rate.count.saturating_add(self.burst)
    }
}

/// One family of counters: open WebSockets per IP on a route, requests in flight per IP…
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterId {
    /// Route name, or `connections_per_ip`.
    pub scope: Arc<str>,
    /// What is counted.
    pub dim: &'static str,
}

/// The outcome of taking a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Admitted; this many tokens are left.
    Admitted {
        /// Tokens left in the bucket.
        remaining: u32,
    },
    /// Empty; the next token arrives after this long.
    Refused {
        /// Time until one token is back.
        wait: Duration,
    },
}

/// Where limit state lives.
pub trait LimitStore: Send + Sync {
    /// Takes one token from `key`'s bucket in family `id`.
    fn take(&self, id: &BucketId, key: &Key) -> Take;
    /// Takes a slot of `key` in family `id` if fewer than `max` are held.
    fn acquire(&self, id: &CounterId, key: &Key, max: u32) -> bool;
    /// Gives back a slot taken with [`LimitStore::acquire`].
    fn release(&self, id: &CounterId, key: &Key);
    /// Slots held (for tests and gauges).
    fn held(&self, id: &CounterId, key: &Key) -> u32;
    /// Blocks `key` in family `id` for `for_`.
    fn block(&self, id: &BucketId, key: &Key, for_: Duration);
    /// How long `key` stays blocked, if it is.
    fn blocked(&self, id: &BucketId, key: &Key) -> Option<Duration>;
    /// Drops bucket families the policy no longer names (after a reload).
    fn retain_buckets(&self, keep: &dyn Fn(&BucketId) -> bool);
    /// Evicts idle state: full buckets, expired blocks, zero counters.
    fn sweep(&self);
    /// Keys held in bucket families (for tests and memory accounting).
    fn bucket_keys(&self) -> usize;
}

type Limiter<C> = RateLimiter<Key, DashMapStateStore<Key>, C, StateInformationMiddleware>;

/// The in-process store.
pub struct MemoryStore<C: Clock + Clone = DefaultClock> {
    clock: C,
    buckets: RwLock<HashMap<BucketId, Arc<Limiter<C>>>>,
    counters: DashMap<(CounterId, Key), u32>,
    blocks: DashMap<(BucketId, Key), C::Instant>,
}

impl MemoryStore<DefaultClock> {
    /// A store on the real clock.
    pub fn new() -> Self {
        Self::with_clock(DefaultClock::default())
    }
}

impl Default for MemoryStore<DefaultClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock + Clone + Send + Sync> MemoryStore<C>
where
    C::Instant: Send + Sync,
{
    /// A store on `clock` (tests pass a fake one).
    pub fn with_clock(clock: C) -> Self {
        MemoryStore {
            clock,
            buckets: RwLock::new(HashMap::new()),
            counters: DashMap::new(),
            blocks: DashMap::new(),
        }
    }

    fn limiter(&self, id: &BucketId) -> Option<Arc<Limiter<C>>> {
        if let Some(l) = self.buckets.read().ok()?.get(id) {
            return Some(l.clone());
        }
        let count = NonZeroU32::new(id.rate.count)?;
        let per_token = id.rate.period / count.get();
        let quota = Quota::with_period(per_token)?
            .allow_burst(NonZeroU32::new(id.capacity()).unwrap_or(count));
        let limiter = Arc::new(
            RateLimiter::dashmap_with_clock(quota, self.clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
        );
        let mut map = self.buckets.write().ok()?;
        Some(map.entry(id.clone()).or_insert(limiter).clone())
    }
}

fn entry<K: Eq + Hash + Clone, V>(map: &DashMap<K, V>, k: &K) -> Option<V>
where
    V: Copy,
{
    map.get(k).map(|v| *v)
}

impl<C> LimitStore for MemoryStore<C>
where
    C: Clock + Clone + Send + Sync,
    C::Instant: Send + Sync,
{
    fn take(&self, id: &BucketId, key: &Key) -> Take {
        let Some(limiter) = self.limiter(id) else {
            // A zero rate cannot be compiled; refuse rather than admit without a limit.
            return Take::Refused {
                wait: id.rate.period,
            };
        };
        match limiter.check_key(key) {
            Ok(snapshot) => Take::Admitted {
                remaining: snapshot.remaining_burst_capacity(),
            },
            Err(not_until) => Take::Refused {
                wait: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    fn acquire(&self, id: &CounterId, key: &Key, max: u32) -> bool {
        let mut slot = self.counters.entry((id.clone(), key.clone())).or_insert(0);
        if *slot >= max {
            return false;
        }
        *slot += 1;
        true
    }

    fn release(&self, id: &CounterId, key: &Key) {
        let k = (id.clone(), key.clone());
        let empty = match self.counters.get_mut(&k) {
            Some(mut n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        };
        if empty {
            self.counters.remove_if(&k, |_, n| *n == 0);
        }
    }

    fn held(&self, id: &CounterId, key: &Key) -> u32 {
        entry(&self.counters, &(id.clone(), key.clone())).unwrap_or(0)
    }

    fn block(&self, id: &BucketId, key: &Key, for_: Duration) {
        let until = self.clock.now() + for_.into();
        self.blocks.insert((id.clone(), key.clone()), until);
    }

    fn blocked(&self, id: &BucketId, key: &Key) -> Option<Duration> {
        let k = (id.clone(), key.clone());
        let until = *self.blocks.get(&k)?;
        let now = self.clock.now();
        if until > now {
            Some(until.duration_since(now).into())
        } else {
            self.blocks.remove(&k);
            None
        }
    }

    fn retain_buckets(&self, keep: &dyn Fn(&BucketId) -> bool) {
        if let Ok(mut map) = self.buckets.write() {
            map.retain(|id, _| keep(id));
        }
        self.blocks.retain(|(id, _), _| keep(id));
    }

    fn sweep(&self) {
        let limiters: Vec<_> = match self.buckets.read() {
            Ok(map) => map.values().cloned().collect(),
            Err(_) => return,
        };
        for l in limiters {
            l.retain_recent();
            l.shrink_to_fit();
        }
        let now = self.clock.now();
        self.blocks.retain(|_, until| *until > now);
        self.counters.retain(|_, n| *n > 0);
        self.blocks.shrink_to_fit();
        self.counters.shrink_to_fit();
    }

    fn bucket_keys(&self) -> usize {
        self.buckets
            .read()
            .map(|m| m.values().map(|l| l.len()).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn id(count: u32, period: u64, burst: u32) -> BucketId {
        BucketId {
            scope: "r".into(),
            dim: "per_ip",
            rate: Rate {
                count,
                period: Duration::from_secs(period),
            },
            burst,
        }
    }

    fn ip(n: u32) -> Key {
        Key::Ip(IpAddr::from(n.to_be_bytes()))
    }

    #[test]
    fn five_a_minute_admits_five_then_one_every_twelve_seconds() {
        let clock = FakeRelativeClock::default();
        let store = MemoryStore::with_clock(clock.clone());
        let b = id(5, 60, 0);
        for left in (0..5).rev() {
            assert_eq!(store.take(&b, &ip(1)), Take::Admitted { remaining: left });
        }
        let Take::Refused { wait } = store.take(&b, &ip(1)) else {
            panic!("6th admitted")
        };
        assert_eq!(wait, Duration::from_secs(12));
        // Another key has its own bucket.
        assert!(matches!(store.take(&b, &ip(2)), Take::Admitted { .. }));
        clock.advance(Duration::from_secs(12));
        assert!(matches!(store.take(&b, &ip(1)), Take::Admitted { .. }));
        assert!(matches!(store.take(&b, &ip(1)), Take::Refused { .. }));
    }

    #[test]
    fn burst_adds_capacity() {
        let store = MemoryStore::with_clock(FakeRelativeClock::default());
        let b = id(10, 60, 2);
        let admitted = (0..20)
            .filter(|_| matches!(store.take(&b, &ip(1)), Take::Admitted { .. }))
            .count();
        assert_eq!(admitted, 12);
    }

    #[test]
    fn a_million_distinct_keys_are_evicted_once_their_buckets_refill() {
        let clock = FakeRelativeClock::default();
        let store = MemoryStore::with_clock(clock.clone());
        let b = id(10, 1, 0);
        for n in 0..1_000_000u32 {
            assert!(matches!(store.take(&b, &ip(n)), Take::Admitted { .. }));
        }
        assert_eq!(store.bucket_keys(), 1_000_000);
        // Not yet refilled: nothing may be forgotten (that would reset a bucket).
        store.sweep();
        assert_eq!(store.bucket_keys(), 1_000_000);
        clock.advance(Duration::from_secs(1));
        store.sweep();
        assert_eq!(store.bucket_keys(), 0, "idle keys evicted");
    }

    #[test]
    fn counters_hold_and_release() {
        let store = MemoryStore::with_clock(FakeRelativeClock::default());
        let c = CounterId {
            scope: "r".into(),
            dim: "ws_per_ip",
        };
        assert!(store.acquire(&c, &ip(1), 2));
        assert!(store.acquire(&c, &ip(1), 2));
        assert!(!store.acquire(&c, &ip(1), 2));
        store.release(&c, &ip(1));
        assert_eq!(store.held(&c, &ip(1)), 1);
        assert!(store.acquire(&c, &ip(1), 2));
        store.release(&c, &ip(1));
        store.release(&c, &ip(1));
        assert_eq!(store.held(&c, &ip(1)), 0);
        store.sweep();
        assert!(store.counters.is_empty());
    }

    #[test]
    fn blocks_expire() {
        let clock = FakeRelativeClock::default();
        let store = MemoryStore::with_clock(clock.clone());
        let b = id(3, 60, 0);
        store.block(&b, &ip(1), Duration::from_secs(20));
        assert_eq!(store.blocked(&b, &ip(1)), Some(Duration::from_secs(20)));
        clock.advance(Duration::from_secs(20));
        assert_eq!(store.blocked(&b, &ip(1)), None);
    }
}
