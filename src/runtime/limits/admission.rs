//! The decision's stateful steps, answered from the [`LimitStore`]. Slots taken (a request in
//! flight, an open WebSocket) are kept as [`SlotGuard`]s that the proxy holds for the life of
//! the request or socket and that give the slot back on drop — success, error, client abort,
//! upstream abort, timeout or reload alike.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::store::{BucketId, CounterId, Key, LimitStore, Take};
use crate::policy::admission::{Admission, Check, Limited};
use crate::policy::model::{Rate, RateLimit, Route, WebSocketSettings};
use crate::policy::{Policy, Reason};

const GUARD_SCOPE: &str = "auth_failures_per_ip";

/// A held slot, given back on drop.
pub struct SlotGuard {
    store: Arc<dyn LimitStore>,
    id: CounterId,
    key: Key,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.store.release(&self.id, &self.key);
    }
}

/// The admission the proxy passes to the decision for one request.
pub struct RuntimeAdmission {
    store: Arc<dyn LimitStore>,
    tokens: Option<Arc<crate::runtime::token_cache::VerifiedTokens>>,
    /// Slots taken for this request; held until it ends.
    pub guards: Vec<SlotGuard>,
    /// Limits that would have refused but are in shadow mode (for the log).
    pub shadowed: Vec<String>,
}

impl RuntimeAdmission {
    /// A fresh admission over `store`.
    pub fn new(store: Arc<dyn LimitStore>) -> Self {
        RuntimeAdmission {
            store,
            tokens: None,
            guards: Vec::new(),
            shadowed: Vec::new(),
        }
    }

    /// Consults and fills `tokens` at the authentication step.
    pub fn with_token_cache(
        mut self,
        tokens: Arc<crate::runtime::token_cache::VerifiedTokens>,
    ) -> Self {
        self.tokens = Some(tokens);
        self
    }

    fn acquire(&mut self, scope: &str, dim: &'static str, key: Key, max: u32) -> bool {
        let id = CounterId {
            scope: scope.into(),
            dim,
        };
        if self.store.acquire(&id, &key, max) {
            self.guards.push(SlotGuard {
                store: self.store.clone(),
                id,
                key,
            });
            true
        } else {
            false
        }
    }
}

fn whole_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

fn rate_id(route: &Route, dim: &'static str, rate: Rate, burst: u32) -> BucketId {
    BucketId {
        scope: route.name.as_str().into(),
        dim,
        rate,
        burst,
    }
}

fn guard_id(rate: Rate) -> BucketId {
    BucketId {
        scope: GUARD_SCOPE.into(),
        dim: "per_ip",
        rate,
        burst: 0,
    }
}

/// Every bucket family `policy` names (the ones that must survive a reload).
pub fn bucket_ids(policy: &Policy) -> HashSet<BucketId> {
    let mut out = HashSet::new();
    if let Some(rate) = policy.server.limits.auth_failures_per_ip {
        out.insert(guard_id(rate));
    }
    for r in &policy.routes {
        if let Some(rl) = &r.rate_limit {
            if let Some(rate) = rl.per_ip {
                out.insert(rate_id(r, "per_ip", rate, rl.burst));
            }
            if let Some(rate) = rl.per_subject {
                out.insert(rate_id(r, "per_subject", rate, rl.burst));
            }
        }
    }
    out
}

/// The 429 of a refused rate limit: `Retry-After` (whole seconds, at least 1) and the IETF
/// draft's `RateLimit-Policy` / `RateLimit` headers, naming the bucket that refused.
fn rate_limited(id: &BucketId, key: &Key, wait: Duration, what: &str) -> Limited {
    let retry = whole_secs(wait);
    Limited {
        reason: Reason::RateLimited,
        message: format!("too many requests: retry in {retry}s"),
        headers: vec![
            (http::header::RETRY_AFTER, retry.to_string()),
            (
                HeaderName::from_static("ratelimit-policy"),
                format!(
                    "\"{}\";q={};w={}",
                    id.dim,
                    id.capacity(),
                    whole_secs(id.rate.period)
                ),
            ),
            (
                HeaderName::from_static("ratelimit"),
                format!("\"{}\";r=0;t={retry}", id.dim),
            ),
        ],
        detail: format!(
            "{what} {}/{}s burst {} exhausted for {key}",
            id.rate.count,
            id.rate.period.as_secs(),
            id.burst
        ),
    }
}

fn too_many(detail: String) -> Limited {
    Limited {
        reason: Reason::TooManyConnections,
        message: "too many connections from you".into(),
        headers: Vec::new(),
        detail,
    }
}

impl Admission for RuntimeAdmission {
    fn token_cache(&self) -> Option<&dyn crate::policy::auth::TokenCache> {
        self.tokens
            .as_deref()
            .map(|t| t as &dyn crate::policy::auth::TokenCache)
    }

    fn connection(&mut self, ip: IpAddr, max: u32) -> Check {
        if self.acquire("connections_per_ip", "in_flight", Key::Ip(ip), max) {
            Check::Pass
        } else {
            Check::Deny(too_many(format!(
                "{max} requests or WebSockets already open from {ip}"
            )))
        }
    }

    fn auth_guard(&mut self, ip: IpAddr, rate: Rate) -> Check {
        let id = guard_id(rate);
        match self.store.blocked(&id, &Key::Ip(ip)) {
            None => Check::Pass,
            Some(wait) => Check::Deny(Limited {
                reason: Reason::RateLimited,
                message: format!(
                    "too many failed authentications: retry in {}s",
                    whole_secs(wait)
                ),
                headers: vec![(http::header::RETRY_AFTER, whole_secs(wait).to_string())],
                detail: format!(
                    "{} failed authentications per {}s used up by {ip}",
                    rate.count,
                    rate.period.as_secs()
                ),
            }),
        }
    }

    fn auth_failed(&mut self, ip: IpAddr, rate: Rate) {
        let id = guard_id(rate);
        let key = Key::Ip(ip);
        let per_token = rate.period / rate.count.max(1);
        match self.store.take(&id, &key) {
            Take::Admitted { remaining: 0 } => self.store.block(&id, &key, per_token),
            Take::Admitted { .. } => {}
            Take::Refused { wait } => self.store.block(&id, &key, wait),
        }
    }

    fn rate_limit(
        &mut self,
        route: &Route,
        limit: &RateLimit,
        ip: IpAddr,
        subject: Option<&str>,
    ) -> Check {
        let mut refused = None;
        if let Some(rate) = limit.per_ip {
            let id = rate_id(route, "per_ip", rate, limit.burst);
            let key = Key::Ip(ip);
            if let Take::Refused { wait } = self.store.take(&id, &key) {
                refused = Some(rate_limited(
                    &id,
                    &key,
                    wait,
                    &format!("{}.per_ip", limit.key),
                ));
            }
        }
        if let (Some(rate), Some(sub), None) = (limit.per_subject, subject, &refused) {
            let id = rate_id(route, "per_subject", rate, limit.burst);
            let key = Key::Subject(sub.into());
            if let Take::Refused { wait } = self.store.take(&id, &key) {
                refused = Some(rate_limited(
                    &id,
                    &key,
                    wait,
                    &format!("{}.per_subject", limit.key),
                ));
            }
        }
        match refused {
            None => Check::Pass,
            Some(l) if limit.shadow => {
                self.shadowed.push(l.detail.clone());
                Check::Shadow(l)
            }
            Some(l) => Check::Deny(l),
        }
    }

    fn websocket(
        &mut self,
        route: &Route,
        ws: &WebSocketSettings,
        ip: IpAddr,
        subject: Option<&str>,
    ) -> Check {
        let held = self.guards.len();
        if let Some(max) = ws.max_per_ip {
            if !self.acquire(&route.name, "websockets_per_ip", Key::Ip(ip), max) {
                return Check::Deny(too_many(format!(
                    "{max} WebSockets already open on route {} from {ip}",
                    route.name
                )));
            }
        }
        if let (Some(max), Some(sub)) = (ws.max_per_subject, subject) {
            if !self.acquire(
                &route.name,
                "websockets_per_subject",
                Key::Subject(sub.into()),
                max,
            ) {
                // Give back the per-IP slot taken above.
                self.guards.truncate(held);
                return Check::Deny(too_many(format!(
                    "{max} WebSockets already open on route {} for subject {sub:?}",
                    route.name
                )));
            }
        }
        Check::Pass
    }
}
