//! Bounded queues in front of the upstream (`concurrency: { max_in_flight, queue,
//! queue_timeout }`): at most `max_in_flight` requests of a route at the upstream, up to
//! `queue` more waiting in arrival order (tokio's semaphore is fair), then 503 `queue_full`;
//! a wait past `queue_timeout` is 503 `queue_timeout`. A waiter that goes away (its future is
//! dropped) leaves the queue at once. A route whose `concurrency` did not change keeps its
//! queue across a reload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::policy::model::Concurrency;
use crate::policy::Policy;

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The queue was full on arrival.
    Full,
    /// Waited `queue_timeout` without a slot.
    Timeout,
}

/// A route's queue.
struct RouteQueue {
    slots: Arc<Semaphore>,
    waiting: AtomicU32,
    limits: Concurrency,
}

/// A slot at the upstream, held until the request ends.
pub struct QueuePermit {
    _permit: OwnedSemaphorePermit,
}

/// Leaves the waiting count however the wait ends.
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every route's queue.
#[derive(Default)]
pub struct Queues {
    routes: Mutex<HashMap<(String, Concurrency), Arc<RouteQueue>>>,
}

impl Queues {
    fn queue(&self, route: &str, c: Concurrency) -> Option<Arc<RouteQueue>> {
        let mut map = self.routes.lock().ok()?;
        Some(
            map.entry((route.to_string(), c))
                .or_insert_with(|| {
                    Arc::new(RouteQueue {
                        slots: Arc::new(Semaphore::new(c.max_in_flight as usize)),
                        waiting: AtomicU32::new(0),
                        limits: c,
                    })
                })
                .clone(),
        )
    }

    /// Waits for a slot of `route`; `Err` when the queue is full or the wait too long.
    pub async fn enter(&self, route: &str, c: Concurrency) -> Result<QueuePermit, QueueError> {
        let Some(q) = self.queue(route, c) else {
            return Err(QueueError::Full);
        };
        if let Ok(p) = q.slots.clone().try_acquire_owned() {
            return Ok(QueuePermit { _permit: p });
        }
        // Count ourselves in, unless the queue is already full.
        let admitted = q
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < q.limits.queue).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            return Err(QueueError::Full);
        }
        let _waiting = Waiting(&q.waiting);
        match tokio::time::timeout(q.limits.queue_timeout, q.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(QueuePermit { _permit: p }),
            _ => Err(QueueError::Timeout),
        }
    }

    /// Requests of `route` waiting now.
    pub fn waiting(&self, route: &str) -> u32 {
        self.routes
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((r, _), _)| r == route)
                    .map(|(_, q)| q.waiting.load(Ordering::Acquire))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Keeps the queues whose route still has the same `concurrency`.
    pub fn retain_for(&self, policy: &Policy) {
        let live: Vec<(String, Concurrency)> = policy
            .routes
            .iter()
            .filter_map(|r| r.concurrency.map(|c| (r.name.clone(), c)))
            .collect();
        if let Ok(mut m) = self.routes.lock() {
            m.retain(|k, _| live.contains(k));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn c(max: u32, queue: u32, ms: u64) -> Concurrency {
        Concurrency {
            max_in_flight: max,
            queue,
            queue_timeout: Duration::from_millis(ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn full_then_timeout_then_freed() {
        let qs = Queues::default();
        let lim = c(1, 1, 500);
        let held = qs.enter("r", lim).await.unwrap();
        // One may wait; the next is refused at once.
        let waiter = {
            let qs = &qs;
            async move { qs.enter("r", lim).await }
        };
        tokio::pin!(waiter);
        assert!(tokio::time::timeout(Duration::from_millis(10), &mut waiter)
            .await
            .is_err());
        assert_eq!(qs.waiting("r"), 1);
        assert_eq!(qs.enter("r", lim).await.err(), Some(QueueError::Full));
        // The waiter times out.
        assert_eq!(waiter.await.err(), Some(QueueError::Timeout));
        assert_eq!(qs.waiting("r"), 0);
        drop(held);
        assert!(qs.enter("r", lim).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_frees_its_place() {
        let qs = Queues::default();
        let lim = c(1, 1, 60_000);
        let _held = qs.enter("r", lim).await.unwrap();
        {
            let w = qs.enter("r", lim);
            tokio::pin!(w);
            assert!(tokio::time::timeout(Duration::from_millis(10), &mut w)
                .await
                .is_err());
            assert_eq!(qs.waiting("r"), 1);
        } // dropped: the client went away
        assert_eq!(qs.waiting("r"), 0);
        let w = qs.enter("r", lim);
        tokio::pin!(w);
        assert!(tokio::time::timeout(Duration::from_millis(10), &mut w)
            .await
            .is_err());
        assert_eq!(qs.waiting("r"), 1, "the freed place was taken");
    }
}
