//! The `ProxyHttp` implementation: one request's life through Gatehouse.
//!
//! `request_filter` loads the policy snapshot, builds the facts, calls
//! [`crate::policy::decide`] and either answers the denial or stores the verdict;
//! `upstream_peer` picks timeouts (plain vs upgraded); `upstream_request_filter` rewrites what
//! goes upstream; `response_filter` switches an upgraded connection to the WebSocket idle
//! timeout; `fail_to_proxy` maps upstream failures to 502/504 JSON; `logging` writes the access
//! log line and the metrics. An upgraded plain-TCP WebSocket leaves the hooks: `tunnel` spawns
//! its relay with everything the request holds and ends the request with a `HANDED_OFF` error
//! that `fail_to_proxy` turns into "no answer, do not reuse" (the relay task logs at close).

use std::any::Any;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use super::headers::{rewrite, Hop};
use super::respond;
use super::websocket;
use crate::policy::client_ip::{canonical, in_nets};
use crate::policy::{
    decide_with, Forward, Outcome, Policy, Reason, RequestFacts, ResponseCors, WebSocketForward,
};
use crate::runtime::access_log;
use crate::runtime::limits::{QueueError, QueuePermit, RuntimeAdmission, SlotGuard};
use crate::runtime::metrics::GaugeGuard;
use crate::runtime::verify_pool::OwnedRequest;
use crate::runtime::{Shared, VerifyPool};

/// The error type of a streamed body that passed `max_body`.
const BODY_TOO_LARGE: &str = "body_too_large";

/// Marker carried across keep-alive requests: "this connection served a request before".
pub(crate) struct Reused;

/// Set by the first hook that runs after the request head was read; the app wrapper's head
/// timer checks it (see [`super::app`]).
pub(crate) struct HeadSignal(pub(crate) Arc<AtomicBool>);

/// Per-request state. What happens to the request is in [`State`]: decided once, in
/// `request_filter`; the later hooks only read it.
pub struct Ctx {
    start: Instant,
    request_id: String,
    /// The policy snapshot this request was decided under (kept to its end).
    policy: Option<Arc<Policy>>,
    client_ip: Option<IpAddr>,
    route: Option<usize>,
    state: State,
    /// How a relayed WebSocket ended.
    closed: Option<String>,
}

/// Where a request stands.
enum State {
    /// Before the decision.
    Deciding,
    /// Answered by the proxy with a reason code.
    Denied {
        reason: Reason,
        cause: Option<String>,
    },
    /// Answered by the proxy without a denial (a CORS preflight).
    Answered,
    /// An upgraded WebSocket now relayed by a task of its own, which holds the request's slots
    /// and writes its access line.
    HandedOff,
    /// Admitted: everything needed to forward it.
    Forwarding {
        fwd: Box<Forward>,
        /// Set once the upstream answered 101.
        upgraded: Option<WsOpen>,
        /// Slots held for the life of the request (in flight per IP, WebSocket caps) and the
        /// route's gauges: given back on drop, however the request ends.
        _held: Held,
        /// Body bytes received so far (for `max_body` on a streamed body).
        body_bytes: u64,
    },
}

/// What an admitted request holds until it ends.
#[derive(Default)]
struct Held {
    _slots: Vec<SlotGuard>,
    _queue: Option<QueuePermit>,
    _in_flight: Option<GaugeGuard>,
    _websocket: Option<GaugeGuard>,
}

/// Keeps `gatehouse_websockets_open` right however the connection ends.
struct WsOpen(Arc<Shared>);

impl Drop for WsOpen {
    fn drop(&mut self) {
        self.0.metrics.websockets_open.dec();
    }
}

/// The proxy.
pub struct Gate {
    shared: Arc<Shared>,
}

impl Gate {
    /// A proxy over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Gate { shared }
    }

    fn route_name<'c>(&self, ctx: &'c Ctx) -> &'c str {
        match (&ctx.policy, ctx.route) {
            (Some(p), Some(i)) => p.routes.get(i).map_or("-", |r| r.name.as_str()),
            _ => "-",
        }
    }

    async fn deny(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        reason: Reason,
        message: &str,
        extra: &[(http::HeaderName, String)],
        cause: Option<String>,
    ) {
        if let Err(e) = respond::deny(session, reason, message, &ctx.request_id, extra).await {
            tracing::debug!(error = %e, "could not write the denial");
        }
        ctx.state = State::Denied { reason, cause };
    }
}

impl Gate {
    /// An admitted WebSocket: the handshake goes to the upstream, and the socket is relayed
    /// by [`websocket::relay`] so that a reload or the token's expiry can close it.
    #[allow(clippy::too_many_arguments)]
    async fn tunnel(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        policy: &Policy,
        fwd: Box<Forward>,
        mut held: Held,
        ws: WebSocketForward,
        request: OwnedRequest,
        route_name: &str,
    ) -> Result<bool> {
        let Some(peer) = peer_of(session) else {
            return Err(Error::new(ErrorType::InternalError));
        };
        let mut upstream_req = session.req_header().clone();
        let hop = Hop {
            peer,
            client_ip: ctx.client_ip.unwrap_or(peer),
            tls: is_tls(session),
            request_id: &ctx.request_id,
        };
        rewrite(&mut upstream_req, policy, &fwd, &hop)?;
        let shaken = websocket::handshake(
            policy.upstream.addr,
            policy.upstream.connect_timeout,
            fwd.upstream_timeout,
            &upstream_req,
        )
        .await;
        // Not held for the life of the socket.
        drop(upstream_req);
        let (up, resp, rest) = match shaken {
            Ok(x) => x,
            Err(websocket::Failed(reason, cause)) => {
                let message = match reason {
                    Reason::UpstreamTimeout => "the upstream did not answer in time",
                    _ => "the upstream is unavailable",
                };
                self.deny(session, ctx, reason, message, &[], Some(cause))
                    .await;
                return Ok(true);
            }
        };
        let registration = if resp.status.as_u16() == 101 {
            self.shared.metrics.websockets_open.inc();
            held._websocket = Some(GaugeGuard::new(
                self.shared
                    .metrics
                    .route_websockets
                    .with_label_values(&[route_name]),
            ));
            Some(self.shared.sockets.register(request, route_name))
        } else {
            None
        };
        let upgraded = registration.as_ref().map(|_| WsOpen(self.shared.clone()));
        // Once upgraded the relay's own idle timeout (websocket_idle) replaces the HTTP ones.
        session.set_read_timeout(None);
        session.set_write_timeout(Some(ws.idle_timeout));
        let relayed = websocket::relay(
            session,
            up,
            resp,
            &fwd.cors,
            rest,
            &ctx.request_id,
            ws.idle_timeout,
            ws.close_at,
            registration,
        )
        .await;
        let end = match relayed {
            Ok(websocket::Relayed::Detached(pump)) => {
                // The tunnel lives on its own task with everything it holds; Pingora's session
                // ends now (without shutting the socket: see `fail_to_proxy`), and the access
                // line is written when the socket closes.
                let line = DetachedLine {
                    method: session.req_header().method.to_string(),
                    path: log_path(session.req_header().raw_path()).into_owned(),
                    route: route_name.to_string(),
                    client_ip: ctx.client_ip,
                    request_id: ctx.request_id.clone(),
                    start: ctx.start,
                };
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    let end = pump.run().await;
                    drop((held, upgraded, fwd));
                    line.write(&shared, &describe(Ok(end)));
                });
                ctx.state = State::HandedOff;
                return Err(Error::explain(
                    ErrorType::Custom(HANDED_OFF),
                    "WebSocket relayed on its own task",
                ));
            }
            Ok(websocket::Relayed::Ended(end)) => Ok(end),
            Err(e) => Err(e),
        };
        ctx.state = State::Forwarding {
            fwd,
            upgraded,
            _held: held,
            body_bytes: 0,
        };
        ctx.closed = Some(describe(end));
        Ok(true)
    }
}

/// The error type `request_filter` returns once a WebSocket runs on its own task: Pingora then
/// ends the request without answering, reusing or shutting the connection (see `fail_to_proxy`).
const HANDED_OFF: &str = "websocket_handed_off";

/// How a tunnel ended, for the access log's `closed` field.
fn describe(end: Result<websocket::End>) -> String {
    match end {
        Ok(websocket::End::Policy(reason)) => format!("closed by gatehouse (1008): {reason}"),
        Ok(websocket::End::Idle) => "idle timeout".into(),
        Ok(websocket::End::Closed) => "closed".into(),
        Ok(websocket::End::NotUpgraded(status)) => format!("not upgraded ({status})"),
        Err(e) => format!("relay error: {e}"),
    }
}

/// The path as logged: without the query (a query string may carry a token).
fn log_path(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(raw.split(|b| *b == b'?').next().unwrap_or(raw))
}

/// The access line of a detached WebSocket, written when it closes.
struct DetachedLine {
    method: String,
    path: String,
    route: String,
    client_ip: Option<IpAddr>,
    request_id: String,
    start: Instant,
}

impl DetachedLine {
    fn write(&self, shared: &Shared, closed: &str) {
        shared
            .metrics
            .requests
            .with_label_values(&[self.route.as_str(), "101"])
            .inc();
        access_log::write(&access_log::Entry {
            method: &self.method,
            path: &self.path,
            route: &self.route,
            status: 101,
            client_ip: self.client_ip,
            duration: self.start.elapsed(),
            request_id: &self.request_id,
            outcome: access_log::Outcome::Request {
                upgraded: true,
                closed,
                error: "",
            },
        });
    }
}

/// The keep-alive timeout Pingora is given for `http_idle`: whole seconds, at least one.
fn keepalive_secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A request id in UUID form: a random 64-bit prefix drawn once per process, then a counter.
/// Unique per process and cheap (no system call per request, which a v4 UUID costs); it
/// identifies a request, it is not a secret.
fn new_request_id() -> String {
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // The 128 bits prefix:counter in UUID text form, without the formatting machinery.
    let mut buf = uuid::Uuid::encode_buffer();
    uuid::Uuid::from_u64_pair(prefix, n)
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

fn valid_request_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
}

fn peer_of(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| canonical(a.ip()))
}

fn is_tls(session: &Session) -> bool {
    session
        .digest()
        .and_then(|d: &Digest| d.ssl_digest.as_ref())
        .is_some()
}

#[async_trait]
impl ProxyHttp for Gate {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            request_id: String::new(),
            policy: None,
            client_ip: None,
            route: None,
            state: State::Deciding,
            closed: None,
        }
    }

    fn persist_connection_context(
        &self,
        _session: &Session,
        _ctx: &Ctx,
    ) -> Option<Box<dyn Any + Send + Sync>> {
        Some(Box::new(Reused))
    }

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        _ctx: &mut Ctx,
        prev: Box<dyn Any + Send + Sync>,
    ) {
        if let Some(signal) = prev.downcast_ref::<HeadSignal>() {
            signal.0.store(true, Ordering::Release);
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let policy = self.shared.policy();
        let timeouts = policy.server.timeouts;
        // Keep-alive as the client asked (Pingora read it from the request: HTTP/1.1 unless
        // `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`); when kept, the
        // connection may then sit idle for http_idle before its next request.
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(keepalive_secs(timeouts.http_idle)));
        }
        // From here on the downstream reads are body reads: idle after http_idle.
        session.set_read_timeout(Some(timeouts.http_idle));

        let peer = peer_of(session);
        let tls = is_tls(session);
        let req = session.req_header();
        let peer_trusted =
            peer.is_some_and(|p| in_nets(&policy.server.trusted_proxies, p).is_some());
        ctx.request_id = match req
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
        {
            Some(id) if peer_trusted && valid_request_id(id) => id.to_string(),
            _ => new_request_id(),
        };
        ctx.policy = Some(policy.clone());
        let Some(peer) = peer else {
            let cause = Some("no client address".to_string());
            self.deny(
                session,
                ctx,
                Reason::BadRequest,
                "no client address",
                &[],
                cause,
            )
            .await;
            return Ok(true);
        };
        let facts = RequestFacts {
            peer,
            method: &req.method,
            target: req.raw_path(),
            headers: &req.headers,
            head_bytes: RequestFacts::measure_head(&req.method, req.raw_path(), &req.headers),
            now: now_secs(),
            version: req.version,
            tls,
            assumed_identity: None,
        };
        let admission = RuntimeAdmission::new(self.shared.limits.store.clone())
            .with_token_cache(self.shared.tokens.clone());
        let (decision, admission) = if VerifyPool::wants(&req.headers) {
            let owned = OwnedRequest::from_facts(&facts);
            self.shared
                .verify_pool
                .decide(policy.clone(), owned, admission)
                .await
        } else {
            let mut admission = admission;
            let d = decide_with(&policy, &facts, &mut admission, false);
            (d, Some(admission))
        };
        // A WebSocket keeps the facts it was admitted on, to be decided again on reload.
        let ws_request = matches!(&decision.outcome, Outcome::Forward(f) if f.websocket.is_some())
            .then(|| OwnedRequest::from_facts(&facts));
        ctx.client_ip = Some(decision.client_ip);
        ctx.route = decision.route;
        let (slots, shadowed) =
            admission.map_or((Vec::new(), Vec::new()), |a| (a.guards, a.shadowed));
        // Borrowed from this request's snapshot (no copy per request).
        let route_name: &str = decision
            .route
            .and_then(|i| policy.routes.get(i))
            .map_or("-", |r| r.name.as_str());
        if !shadowed.is_empty() {
            self.shared
                .metrics
                .shadow_limited
                .with_label_values(&[route_name])
                .inc();
            tracing::info!(target: "access", route = %route_name, request_id = %ctx.request_id,
                client_ip = %decision.client_ip, limits = %shadowed.join("; "),
                "shadow: a rate limit would have refused this request");
        }
        let fwd = match decision.outcome {
            Outcome::Forward(fwd) => fwd,
            Outcome::Preflight(p) => {
                if let Err(e) = respond::preflight(session, &ctx.request_id, &p.headers).await {
                    tracing::debug!(error = %e, "could not write the preflight answer");
                }
                ctx.state = State::Answered;
                return Ok(true);
            }
            Outcome::Deny(d) => {
                self.deny(session, ctx, d.reason, &d.message, &d.headers, d.cause)
                    .await;
                return Ok(true);
            }
        };
        // Step 14: the route's bounded queue.
        let mut held = Held {
            _slots: slots,
            ..Held::default()
        };
        if let Some(c) = fwd.concurrency {
            let waiting =
                GaugeGuard::new(self.shared.metrics.queued.with_label_values(&[route_name]));
            let entered = self.shared.limits.queues.enter(route_name, c);
            let outcome = if session.is_body_empty() {
                // Nothing more to read: a read that ends means the client went away, and
                // its place in the queue is given back at once.
                tokio::select! {
                    r = entered => Some(r),
                    _ = session.read_body_or_idle(true) => None,
                }
            } else {
                Some(entered.await)
            };
            drop(waiting);
            match outcome {
                Some(Ok(permit)) => held._queue = Some(permit),
                Some(Err(e)) => {
                    let (reason, message) = match e {
                        QueueError::Full => (Reason::QueueFull, "the route's queue is full"),
                        QueueError::Timeout => {
                            (Reason::QueueTimeout, "waited too long for the upstream")
                        }
                    };
                    let t = c.queue_timeout;
                    let retry = (t.as_secs() + u64::from(t.subsec_nanos() > 0))
                        .max(1)
                        .to_string();
                    let extra = [(http::header::RETRY_AFTER, retry)];
                    self.deny(session, ctx, reason, message, &extra, None).await;
                    return Ok(true);
                }
                None => {
                    ctx.state = State::Denied {
                        reason: Reason::QueueTimeout,
                        cause: Some("the client went away while queued".into()),
                    };
                    return Ok(true);
                }
            }
        }
        held._in_flight = Some(GaugeGuard::new(
            self.shared
                .metrics
                .in_flight
                .with_label_values(&[route_name]),
        ));
        if let (Some(ws), Some(request)) = (fwd.websocket, ws_request) {
            return self
                .tunnel(session, ctx, &policy, fwd, held, ws, request, route_name)
                .await;
        }
        ctx.state = State::Forwarding {
            fwd,
            upgraded: None,
            _held: held,
            body_bytes: 0,
        };
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let State::Forwarding {
            fwd,
            body_bytes,
            upgraded: None,
            ..
        } = &mut ctx.state
        {
            if let (Some(max), Some(chunk)) = (fwd.max_body, body.as_ref()) {
                *body_bytes += chunk.len() as u64;
                if *body_bytes > max {
                    // Step 13 for a streamed body: the upstream request is aborted here.
                    return Err(Error::explain(
                        ErrorType::Custom(BODY_TOO_LARGE),
                        format!("request body passed max_body ({max} bytes)"),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let (Some(policy), State::Forwarding { fwd, .. }) = (&ctx.policy, &ctx.state) else {
            return Err(Error::new(ErrorType::InternalError));
        };
        let mut peer = HttpPeer::new(policy.upstream.addr, false, String::new());
        peer.options.connection_timeout = Some(policy.upstream.connect_timeout);
        // WebSockets never come here: they are relayed by `websocket::relay`.
        peer.options.read_timeout = Some(fwd.upstream_timeout);
        peer.options.write_timeout = Some(fwd.upstream_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let (Some(policy), State::Forwarding { fwd, .. }, Some(peer)) =
            (&ctx.policy, &ctx.state, peer_of(session))
        else {
            return Err(Error::new(ErrorType::InternalError));
        };
        let hop = Hop {
            peer,
            client_ip: ctx.client_ip.unwrap_or(peer),
            tls: is_tls(session),
            request_id: &ctx.request_id,
        };
        rewrite(upstream, policy, fwd, &hop)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let cors = match &ctx.state {
            State::Forwarding { fwd, .. } => &fwd.cors,
            _ => &ResponseCors::Strip,
        };
        respond::finish_upstream_answer(resp, &ctx.request_id, cors)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        use ErrorType as T;
        if matches!(e.etype(), T::Custom(HANDED_OFF)) {
            // Nothing to answer (the 101 went out) and the connection is not reused: Pingora
            // drops its handle on the socket without shutting it; the tunnel holds another.
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let reason = match (e.esource(), e.etype()) {
            (_, T::Custom(BODY_TOO_LARGE)) => Some(Reason::BodyTooLarge),
            (_, T::HTTPStatus(code)) if *code == 408 => Some(Reason::RequestTimeout),
            (
                ErrorSource::Upstream,
                T::ConnectTimedout | T::ReadTimedout | T::WriteTimedout | T::TLSHandshakeTimedout,
            ) => Some(Reason::UpstreamTimeout),
            (ErrorSource::Upstream, _) => Some(Reason::UpstreamUnavailable),
            (_, T::ConnectTimedout) => Some(Reason::UpstreamTimeout),
            (_, T::ConnectRefused | T::ConnectNoRoute | T::ConnectError | T::ConnectionClosed)
                if matches!(ctx.state, State::Forwarding { .. })
                    && session.response_written().is_none() =>
            {
                Some(Reason::UpstreamUnavailable)
            }
            (ErrorSource::Downstream, T::ReadTimedout) => Some(Reason::RequestTimeout),
            (ErrorSource::Downstream, T::InvalidHTTPHeader) => Some(Reason::BadRequest),
            (ErrorSource::Downstream, _) => None,
            _ => Some(Reason::UpstreamUnavailable),
        };
        let code = match reason {
            Some(r) if session.response_written().is_none() => {
                let message = match r {
                    Reason::BodyTooLarge => "the body is over the route's max_body",
                    Reason::UpstreamTimeout => "the upstream did not answer in time",
                    Reason::RequestTimeout => "the request was not received in time",
                    Reason::BadRequest => "malformed request",
                    _ => "the upstream is unavailable",
                };
                ctx.state = State::Denied {
                    reason: r,
                    cause: Some(e.to_string()),
                };
                session.set_keepalive(None);
                if let Err(err) = respond::deny(session, r, message, &ctx.request_id, &[]).await {
                    tracing::debug!(error = %err, "could not write the error response");
                }
                r.status()
            }
            _ => 0,
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, _error: &Error) -> bool {
        // Upstream failures are logged once, by `logging`, with their reason code.
        matches!(ctx.state, State::Denied { .. } | State::HandedOff)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if matches!(ctx.state, State::HandedOff) {
            // Written by the tunnel's task when the socket closes.
            return;
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let status_label = session
            .response_written()
            .map_or("0", |r| r.status.as_str());
        let route = self.route_name(ctx);
        let req = session.req_header();
        // The path only: a query string may carry a token (`query:` sources) or other secrets.
        let path = log_path(req.raw_path());
        let metrics = &self.shared.metrics;
        metrics
            .requests
            .with_label_values(&[route, status_label])
            .inc();
        let error = e.map(|e| e.to_string());
        let outcome = match &ctx.state {
            State::Denied { reason, cause } => {
                metrics
                    .denied
                    .with_label_values(&[route, reason.as_str()])
                    .inc();
                access_log::Outcome::Denied {
                    reason: reason.as_str(),
                    cause: cause.as_deref().unwrap_or(""),
                }
            }
            state => access_log::Outcome::Request {
                upgraded: matches!(
                    state,
                    State::Forwarding {
                        upgraded: Some(_),
                        ..
                    }
                ),
                closed: ctx.closed.as_deref().unwrap_or(""),
                error: error.as_deref().unwrap_or(""),
            },
        };
        access_log::write(&access_log::Entry {
            method: req.method.as_str(),
            path: &path,
            route,
            status,
            client_ip: ctx.client_ip,
            duration: ctx.start.elapsed(),
            request_id: &ctx.request_id,
            outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_shaped_unique_and_share_the_process_prefix() {
        let (a, b) = (new_request_id(), new_request_id());
        for id in [&a, &b] {
            let groups: Vec<&str> = id.split('-').collect();
            let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
            assert!(id
                .bytes()
                .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        }
        assert_ne!(a, b);
        assert_eq!(a[..19], b[..19], "same per-process prefix");
    }
}
