//! Password hashing off the event loop. A bcrypt or argon2id verification takes milliseconds
//! of CPU; run inline, a flood of wrong passwords would stall every request on the same worker
//! (`/health` went from 0.2 ms to ~700 ms with 16 such clients). Requests that carry basic
//! credentials are decided on tokio's blocking pool instead, at most `permits` at a time: a
//! flood queues behind the permits and slows only the requests that carry it.
//!
//! The decision itself is the same pure [`decide`]; only *where* it runs differs.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Version};
use tokio::sync::Semaphore;

use super::limits::RuntimeAdmission;
use crate::policy::{decide_with, Decision, Policy, RequestFacts};

/// The request parts a decision reads, owned so the decision can move to another thread.
#[derive(Clone)]
pub struct OwnedRequest {
    /// TCP peer.
    pub peer: IpAddr,
    /// Method.
    pub method: Method,
    /// Raw target.
    pub target: Vec<u8>,
    /// Headers.
    pub headers: HeaderMap,
    /// HTTP version.
    pub version: Version,
    /// Whether the listener is TLS.
    pub tls: bool,
    /// Unix seconds.
    pub now: u64,
}

/// A copy of `headers` whose values share one buffer of their own. A plain clone shares the
/// values' bytes with the request's whole head buffer (4 KiB or more), which a WebSocket's
/// copy (kept for the reload re-check) would then hold for the socket's life: the largest
/// item left in a heap profile of idle sockets. Falls back to the plain clone if a value
/// cannot be rebuilt, so the copy always decides like the original.
fn compact(headers: &HeaderMap) -> HeaderMap {
    let total: usize = headers.iter().map(|(_, v)| v.len()).sum();
    let mut buf = bytes::BytesMut::with_capacity(total);
    for (_, v) in headers.iter() {
        buf.extend_from_slice(v.as_bytes());
    }
    let buf = buf.freeze();
    let mut out = HeaderMap::with_capacity(headers.len());
    let mut at = 0;
    for (name, v) in headers.iter() {
        let slice = buf.slice(at..at + v.len());
        at += v.len();
        match http::HeaderValue::from_maybe_shared(slice) {
            Ok(mut value) => {
                value.set_sensitive(v.is_sensitive());
                out.append(name.clone(), value);
            }
            Err(_) => return headers.clone(),
        }
    }
    out
}

impl OwnedRequest {
    /// Copies the facts.
    pub fn from_facts(f: &RequestFacts<'_>) -> Self {
        OwnedRequest {
            peer: f.peer,
            method: f.method.clone(),
            target: f.target.to_vec(),
            headers: compact(f.headers),
            version: f.version,
            tls: f.tls,
            now: f.now,
        }
    }

    /// The facts, borrowed.
    pub fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            peer: self.peer,
            method: &self.method,
            target: &self.target,
            headers: &self.headers,
            head_bytes: RequestFacts::measure_head(&self.method, &self.target, &self.headers),
            now: self.now,
            version: self.version,
            tls: self.tls,
            assumed_identity: None,
        }
    }
}

/// A bounded pool for decisions that verify passwords.
pub struct VerifyPool {
    permits: Arc<Semaphore>,
}

impl VerifyPool {
    /// At most `permits` verifications at once.
    pub fn new(permits: usize) -> Self {
        VerifyPool {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    /// Whether a request must be decided here: it carries `Authorization: Basic`.
    pub fn wants(headers: &HeaderMap) -> bool {
        headers.get(http::header::AUTHORIZATION).is_some_and(|v| {
            v.as_bytes().len() > 6 && v.as_bytes()[..6].eq_ignore_ascii_case(b"basic ")
        })
    }

    /// Decides on the blocking pool; waits (asynchronously) for a permit first. The admission
    /// goes with the decision and comes back with the slots it took.
    pub async fn decide(
        &self,
        policy: Arc<Policy>,
        req: OwnedRequest,
        mut admission: RuntimeAdmission,
    ) -> (Decision, Option<RuntimeAdmission>) {
        let permit = self.permits.clone().acquire_owned().await;
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let d = decide_with(&policy, &req.facts(), &mut admission, false);
            (d, admission)
        });
        match job.await {
            Ok((d, adm)) => (d, Some(adm)),
            // Only a panic or a shutting-down runtime gets here: fail closed.
            Err(e) => {
                tracing::error!(error = %e, "password verification did not complete");
                let denial = crate::policy::Denial::new(
                    "auth",
                    crate::policy::Reason::CredentialsInvalid,
                    "the credentials were rejected",
                );
                let d = Decision {
                    client_ip: std::net::IpAddr::from([0, 0, 0, 0]),
                    route: None,
                    outcome: crate::policy::Outcome::Deny(denial),
                    trail: Default::default(),
                };
                (d, None)
            }
        }
    }
}

#[cfg(test)]
mod compact_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_compact_copy_has_every_value_in_order_and_shares_nothing_with_the_head() {
        let head = bytes::Bytes::from_static(b"a.test\x01one\x01two\x01t\xe9st");
        let part = |r: std::ops::Range<usize>| {
            http::HeaderValue::from_maybe_shared(head.slice(r)).unwrap()
        };
        let mut h = HeaderMap::new();
        h.append(http::header::HOST, part(0..6));
        h.append("x-multi", part(7..10));
        h.append("x-multi", part(11..14));
        h.append("x-obs", part(15..19));
        let c = compact(&h);
        assert_eq!(c, h);
        assert_eq!(
            c.get_all("x-multi").iter().collect::<Vec<_>>(),
            vec!["one", "two"]
        );
        let start = head.as_ptr() as usize;
        for v in c.values() {
            let p = v.as_bytes().as_ptr() as usize;
            assert!(
                p < start || p >= start + head.len(),
                "shares the head buffer"
            );
        }
    }
}
