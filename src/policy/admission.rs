//! The stateful steps of the evaluation order — connection caps and the brute-force guard
//! (step 3), rate limits (11), WebSocket caps (12) — as an interface the decision calls at
//! its step, the way it takes the time as a fact: the decision stays free of I/O and shared
//! state, and the order of checks stays the one of POLICY.md. The proxy passes the runtime's
//! implementation (counters and limiters, `runtime::limits`); `explain` and the pure tests pass
//! [`Stateless`], which evaluates nothing and says so.

use std::net::IpAddr;

use http::HeaderName;

use super::decision::Reason;
use super::model::{Rate, RateLimit, Route, WebSocketSettings};

/// What a stateful check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// This implementation keeps no state (`explain`): the limit is shown, not applied.
    NotEvaluated,
    /// Admitted.
    Pass,
    /// Over a limit, but the limit is in `shadow` mode: counted and logged, admitted.
    Shadow(Limited),
    /// Refused.
    Deny(Limited),
}

/// A refusal by a limit: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// `rate_limited` or `too_many_connections`.
    pub reason: Reason,
    /// Message for the client.
    pub message: String,
    /// Extra headers (`Retry-After`, `RateLimit-Policy`, `RateLimit`).
    pub headers: Vec<(HeaderName, String)>,
    /// Which limit and key, for the log and the trail.
    pub detail: String,
}

/// The stateful checks, called by the decision at their step.
pub trait Admission {
    /// Step 3: one more request in flight from `ip`, at most `max`.
    fn connection(&mut self, ip: IpAddr, max: u32) -> Check;
    /// Step 3: has `ip` used up its failed-authentication budget?
    fn auth_guard(&mut self, ip: IpAddr, rate: Rate) -> Check;
    /// Step 9 refused a credential (`token_invalid` / `credentials_invalid`) from `ip`.
    fn auth_failed(&mut self, ip: IpAddr, rate: Rate);
    /// Step 11: the route's rate limit, per client IP and per subject.
    fn rate_limit(
        &mut self,
        route: &Route,
        limit: &RateLimit,
        ip: IpAddr,
        subject: Option<&str>,
    ) -> Check;
    /// Verified tokens to consult at step 9 (the proxy's cache); none by default.
    fn token_cache(&self) -> Option<&dyn super::auth::TokenCache> {
        None
    }
    /// Step 12: one more open WebSocket on the route from `ip` / `subject`.
    fn websocket(
        &mut self,
        route: &Route,
        ws: &WebSocketSettings,
        ip: IpAddr,
        subject: Option<&str>,
    ) -> Check;
}

/// No state: every stateful step is reported as "not evaluated" (`gatehouse explain`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stateless;

impl Admission for Stateless {
    fn connection(&mut self, _: IpAddr, _: u32) -> Check {
        Check::NotEvaluated
    }
    fn auth_guard(&mut self, _: IpAddr, _: Rate) -> Check {
        Check::NotEvaluated
    }
    fn auth_failed(&mut self, _: IpAddr, _: Rate) {}
    fn rate_limit(&mut self, _: &Route, _: &RateLimit, _: IpAddr, _: Option<&str>) -> Check {
        Check::NotEvaluated
    }
    fn websocket(&mut self, _: &Route, _: &WebSocketSettings, _: IpAddr, _: Option<&str>) -> Check {
        Check::NotEvaluated
    }
}
