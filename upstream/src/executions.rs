//! The in-memory record of test executions: their status, their log lines, and a live feed for
//! subscribers. Bounded by count and age so memory stays flat however long the server runs:
//! when an execution is added, finished ones past the age bound go, then the oldest finished
//! ones until there is room. A running execution is never evicted; if every slot holds a
//! running one, a new execution is refused.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast;

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Still running steps.
    Running,
    /// Every step passed.
    Passed,
    /// At least one step failed.
    Failed,
}

/// What a live subscriber receives, in the order it happened.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A new log line.
    Log(String),
    /// The execution finished with this status; nothing follows.
    Done(Status),
}

/// A consistent view for a subscriber: the lines written so far and, if still running, a
/// receiver for everything after them (no gap, no duplicate).
pub(crate) struct Subscription {
    /// Lines written before the subscription.
    pub(crate) lines: Vec<String>,
    /// Status at the time of the subscription.
    pub(crate) status: Status,
    /// Later events; `None` when the execution had already finished.
    pub(crate) live: Option<broadcast::Receiver<Event>>,
}

/// The body of `GET /api/v1/tests/status/{id}`.
#[derive(Debug, Serialize)]
pub(crate) struct Snapshot {
    /// The execution's id.
    pub(crate) execution_id: String,
    /// Its status.
    pub(crate) status: Status,
    /// Every line written so far.
    pub(crate) logs: Vec<String>,
}

/// Refusal to add an execution when every slot holds a running one.
#[derive(Debug, thiserror::Error)]
#[error("too many running executions (limit {0})")]
pub(crate) struct StoreFull(usize);

struct Execution {
    status: Status,
    logs: Vec<String>,
    finished_at: Option<Instant>,
    events: broadcast::Sender<Event>,
}

#[derive(Default)]
struct Inner {
    executions: HashMap<String, Execution>,
    /// Ids, oldest first.
    order: VecDeque<String>,
}

/// Bounded store of executions, shared by the runner and the routes.
pub(crate) struct ExecutionStore {
    inner: Mutex<Inner>,
    max_count: usize,
    max_age: Duration,
}

impl ExecutionStore {
    /// A store keeping at most `max_count` executions, finished ones for at most `max_age`.
    pub(crate) fn new(max_count: usize, max_age: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            max_count: max_count.max(1),
            max_age,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a running execution whose feed buffers `max_events` events, so a subscriber can
    /// never fall behind if the writer stays within that count. Returns its new id.
    pub(crate) fn create(&self, max_events: usize) -> Result<String, StoreFull> {
        let mut inner = self.lock();
        self.make_room(&mut inner, Instant::now());
        if inner.executions.len() >= self.max_count {
            return Err(StoreFull(self.max_count));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (events, _) = broadcast::channel(max_events.max(1));
        let execution = Execution {
            status: Status::Running,
            logs: Vec::new(),
            finished_at: None,
            events,
        };
        inner.executions.insert(id.clone(), execution);
        inner.order.push_back(id.clone());
        Ok(id)
    }

    /// Evicts expired finished executions, then the oldest finished ones until one more fits.
    fn make_room(&self, inner: &mut Inner, now: Instant) {
        let Inner { executions, order } = inner;
        let mut excess = order.len().saturating_sub(self.max_count - 1);
        order.retain(|id| {
            let Some(finished_at) = executions.get(id).and_then(|e| e.finished_at) else {
                return true; // running: never evicted
            };
            let expired = now.saturating_duration_since(finished_at) >= self.max_age;
            if expired || excess > 0 {
                excess = excess.saturating_sub(1);
                executions.remove(id);
                false
            } else {
                true
            }
        });
    }

    /// Appends a log line and hands it to live subscribers.
    pub(crate) fn log(&self, id: &str, line: String) {
        if let Some(execution) = self.lock().executions.get_mut(id) {
            // No receiver is not an error: nobody is watching right now.
            let _ = execution.events.send(Event::Log(line.clone()));
            execution.logs.push(line);
        }
    }

    /// Marks an execution finished and tells live subscribers.
    pub(crate) fn finish(&self, id: &str, status: Status) {
        if let Some(execution) = self.lock().executions.get_mut(id) {
            execution.status = status;
            execution.finished_at = Some(Instant::now());
            let _ = execution.events.send(Event::Done(status));
        }
    }

    /// The current status and log of an execution, if known.
    pub(crate) fn snapshot(&self, id: &str) -> Option<Snapshot> {
        let inner = self.lock();
        let execution = inner.executions.get(id)?;
        Some(Snapshot {
            execution_id: id.to_owned(),
            status: execution.status,
            logs: execution.logs.clone(),
        })
    }

    /// The lines so far plus a live feed, taken under one lock so nothing is missed or repeated.
    pub(crate) fn subscribe(&self, id: &str) -> Option<Subscription> {
        let inner = self.lock();
        let execution = inner.executions.get(id)?;
        let live = (execution.status == Status::Running).then(|| execution.events.subscribe());
        Some(Subscription {
            lines: execution.logs.clone(),
            status: execution.status,
            live,
        })
    }

    /// How many executions are held (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().executions.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn evicts_oldest_finished_first_and_never_a_running_one() {
        let store = ExecutionStore::new(3, Duration::from_secs(3600));
        let running = store.create(4).unwrap();
        let old = store.create(4).unwrap();
        let young = store.create(4).unwrap();
        store.finish(&old, Status::Passed);
        store.finish(&young, Status::Failed);

        let newest = store.create(4).unwrap();
        assert_eq!(store.len(), 3);
        assert!(store.snapshot(&running).is_some(), "running one kept");
        assert!(
            store.snapshot(&old).is_none(),
            "oldest finished one evicted"
        );
        assert!(store.snapshot(&young).is_some());
        assert!(store.snapshot(&newest).is_some());
    }

    #[test]
    fn count_stays_bounded_over_many_runs() {
        let store = ExecutionStore::new(10, Duration::from_secs(3600));
        for _ in 0..1000 {
            let id = store.create(4).unwrap();
            store.log(&id, "line".into());
            store.finish(&id, Status::Passed);
        }
        assert_eq!(store.len(), 10);
    }

    #[test]
    fn refuses_when_every_slot_is_running() {
        let store = ExecutionStore::new(2, Duration::ZERO);
        let a = store.create(4).unwrap();
        store.create(4).unwrap();
        assert!(store.create(4).is_err());
        store.finish(&a, Status::Passed);
        assert!(store.create(4).is_ok());
        assert!(store.snapshot(&a).is_none());
    }

    #[test]
    fn expired_finished_ones_go_when_a_new_one_is_added() {
        let store = ExecutionStore::new(100, Duration::ZERO);
        let done = store.create(4).unwrap();
        let running = store.create(4).unwrap();
        store.finish(&done, Status::Passed);
        store.create(4).unwrap();
        assert!(store.snapshot(&done).is_none());
        assert!(store.snapshot(&running).is_some());
    }

    #[test]
    fn subscriber_gets_backlog_then_live_events() {
        let store = ExecutionStore::new(10, Duration::from_secs(3600));
        let id = store.create(8).unwrap();
        store.log(&id, "one".into());
        let mut sub = store.subscribe(&id).unwrap();
        store.log(&id, "two".into());
        store.finish(&id, Status::Passed);

        assert_eq!(sub.lines, ["one"]);
        assert_eq!(sub.status, Status::Running);
        let live = sub.live.as_mut().unwrap();
        assert!(matches!(live.try_recv().unwrap(), Event::Log(l) if l == "two"));
        assert!(matches!(
            live.try_recv().unwrap(),
            Event::Done(Status::Passed)
        ));

        let late = store.subscribe(&id).unwrap();
        assert_eq!(late.lines, ["one", "two"]);
        assert_eq!(late.status, Status::Passed);
        assert!(late.live.is_none());
    }
}
