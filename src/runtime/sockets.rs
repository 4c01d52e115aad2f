//! Open WebSockets and the facts each was admitted on, so that a reload can re-check them
//! (POLICY.md, Reload): each socket's admission request is decided again, by the same pure
//! [`decide`] that admitted it, against the new policy and the current time; a socket the new
//! policy would refuse — route gone or changed, client IP now denied, origin removed,
//! credential no longer valid — is told to close (1008). Limits are not counted again: the
//! socket already holds its slots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::verify_pool::OwnedRequest;
use crate::policy::{decide, Outcome, Policy};

/// Why a socket must close (the close frame's reason).
pub type CloseReason = Option<String>;

struct Entry {
    request: OwnedRequest,
    route: String,
    close: Arc<watch::Sender<CloseReason>>,
}

/// Every open WebSocket.
#[derive(Default)]
pub struct OpenSockets {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Entry>>,
}

/// A socket's place in the registry; leaving it (drop) removes the socket.
pub struct Registration {
    id: u64,
    registry: Arc<OpenSockets>,
    /// Changes to `Some(reason)` when the socket must close.
    pub close: watch::Receiver<CloseReason>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut m) = self.registry.map.lock() {
            m.remove(&self.id);
        }
    }
}

/// What a re-check did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recheck {
    /// Sockets decided again.
    pub checked: usize,
    /// Sockets told to close.
    pub closed: usize,
    /// How long it took, in microseconds.
    pub micros: u128,
}

impl OpenSockets {
    /// Registers an admitted socket.
    pub fn register(self: &Arc<Self>, request: OwnedRequest, route: &str) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        if let Ok(mut m) = self.map.lock() {
            m.insert(
                id,
                Entry {
                    request,
                    route: route.to_string(),
                    close: Arc::new(tx),
                },
            );
        }
        Registration {
            id,
            registry: self.clone(),
            close: rx,
        }
    }

    /// Sockets open now.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides every open socket again under `policy`; closes those it refuses.
    pub fn recheck(&self, policy: &Policy) -> Recheck {
        let started = Instant::now();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Decide outside the lock: a basic-auth socket's check verifies a password hash, and
        // sockets opening or closing meanwhile must not wait for it.
        let snapshot: Vec<(OwnedRequest, String, Arc<watch::Sender<CloseReason>>)> =
            match self.map.lock() {
                Ok(m) => m
                    .values()
                    .map(|e| (e.request.clone(), e.route.clone(), e.close.clone()))
                    .collect(),
                Err(_) => return Recheck::default(),
            };
        let mut report = Recheck::default();
        for (mut request, route, close) in snapshot {
            report.checked += 1;
            request.now = now;
            let d = decide(policy, &request.facts(), false);
            let why = match &d.outcome {
                Outcome::Forward(_)
                    if d.route
                        .and_then(|i| policy.routes.get(i))
                        .is_some_and(|r| r.name == route) =>
                {
                    None
                }
                Outcome::Forward(_) | Outcome::Preflight(_) => Some("policy changed: route".into()),
                Outcome::Deny(den) => Some(format!("policy changed: {}", den.reason)),
            };
            if let Some(reason) = why {
                let _ = close.send(Some(reason));
                report.closed += 1;
            }
        }
        report.micros = started.elapsed().as_micros();
        report
    }
}
