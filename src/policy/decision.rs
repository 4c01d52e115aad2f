//! What the decision returns: a verdict, the reason code when it is a denial, and the trail of
//! steps with the rule that decided each — the same value the proxy enforces, `explain` prints
//! and the tests assert on.

use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Serialize;

use super::auth::Identity;
use super::model::Concurrency;

/// Reason codes of `POLICY.md`; the JSON `error` field and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// 403: client IP refused by an `access` rule.
    IpDenied,
    /// 429: too many connections from one IP / subject.
    TooManyConnections,
    /// 400: ambiguous or malicious path.
    BadPath,
    /// 403: origin not allowed.
    OriginDenied,
    /// 403: preflight asked for a method/header not allowed.
    PreflightDenied,
    /// 405: path matched, method did not.
    MethodNotAllowed,
    /// 404: no route.
    NoRoute,
    /// 401: no usable credentials.
    AuthRequired,
    /// 401: JWT rejected.
    TokenInvalid,
    /// 401: basic credentials rejected.
    CredentialsInvalid,
    /// 403: claims do not satisfy `require.claims`.
    InsufficientClaims,
    /// 429: rate limited.
    RateLimited,
    /// 413: body too large.
    BodyTooLarge,
    /// 503: queue full.
    QueueFull,
    /// 503: waited too long in the queue.
    QueueTimeout,
    /// 502: upstream refused or failed.
    UpstreamUnavailable,
    /// 504: upstream too slow.
    UpstreamTimeout,
    /// 431: request head too large.
    HeadersTooLarge,
    /// 408: request head not received in time.
    RequestTimeout,
    /// 400: request could not be parsed.
    BadRequest,
}

impl Reason {
    /// The reason code as written in responses, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::IpDenied => "ip_denied",
            Reason::TooManyConnections => "too_many_connections",
            Reason::BadPath => "bad_path",
            Reason::OriginDenied => "origin_denied",
            Reason::PreflightDenied => "preflight_denied",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::NoRoute => "no_route",
            Reason::AuthRequired => "auth_required",
            Reason::TokenInvalid => "token_invalid",
            Reason::CredentialsInvalid => "credentials_invalid",
            Reason::InsufficientClaims => "insufficient_claims",
            Reason::RateLimited => "rate_limited",
            Reason::BodyTooLarge => "body_too_large",
            Reason::QueueFull => "queue_full",
            Reason::QueueTimeout => "queue_timeout",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::HeadersTooLarge => "headers_too_large",
            Reason::RequestTimeout => "request_timeout",
            Reason::BadRequest => "bad_request",
        }
    }

    /// The HTTP status for this reason.
    pub fn status(self) -> u16 {
        match self {
            Reason::BadPath | Reason::BadRequest => 400,
            Reason::AuthRequired | Reason::TokenInvalid | Reason::CredentialsInvalid => 401,
            Reason::IpDenied
            | Reason::OriginDenied
            | Reason::PreflightDenied
            | Reason::InsufficientClaims => 403,
            Reason::NoRoute => 404,
            Reason::MethodNotAllowed => 405,
            Reason::RequestTimeout => 408,
            Reason::BodyTooLarge => 413,
            Reason::TooManyConnections | Reason::RateLimited => 429,
            Reason::HeadersTooLarge => 431,
            Reason::UpstreamUnavailable => 502,
            Reason::QueueFull | Reason::QueueTimeout => 503,
            Reason::UpstreamTimeout => 504,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    /// The evaluation step that refused (`client_ip`, `hygiene`, `path`, `route`, `auth`, …).
    pub step: &'static str,
    /// Reason code.
    pub reason: Reason,
    /// Message for the client (never the precise auth cause).
    pub message: String,
    /// Extra response headers (`Allow`, `WWW-Authenticate`).
    pub headers: Vec<(HeaderName, String)>,
    /// Precise cause, for the log only.
    pub cause: Option<String>,
    /// The step could not be evaluated (a policy loaded without its secrets, for review):
    /// the request is refused, and `explain` / `gatehouse test` say the outcome is unknown.
    pub undetermined: bool,
}

impl Denial {
    /// A denial at `step` with no extra headers or cause.
    pub fn new(step: &'static str, reason: Reason, message: impl Into<String>) -> Self {
        Denial {
            step,
            reason,
            message: message.into(),
            headers: Vec::new(),
            cause: None,
            undetermined: false,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds the precise cause, for the log only.
    pub fn with_cause(mut self, cause: String) -> Self {
        self.cause = Some(cause);
        self
    }
}

/// What to forward, and everything the proxy needs to do it: the glue decides nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// Index of the route in `routes:`.
    pub route: usize,
    /// Normalized path.
    pub path: String,
    /// Query to forward (`query:` token parameters removed).
    pub query: Option<String>,
    /// Who authenticated, if the route has auth.
    pub identity: Option<Identity>,
    /// Claim headers to add (`forward_claims`).
    pub claim_headers: Vec<(HeaderName, HeaderValue)>,
    /// `X-Forwarded-For` hops we vouch for, left of the peer (empty: the peer is the client).
    pub forwarded_for: String,
    /// Whether the peer is a trusted proxy (its `X-Forwarded-Proto`/`-Host`, `Forwarded` and
    /// `X-Request-Id` are kept).
    pub peer_trusted: bool,
    /// A WebSocket upgrade on a websocket route: `Upgrade` passes, and these timeouts apply.
    pub websocket: Option<WebSocketForward>,
    /// Each wait for the upstream on a plain request.
    pub upstream_timeout: Duration,
    /// Largest request body (a streamed body is counted against it as it arrives).
    pub max_body: Option<u64>,
    /// The route's bounded queue, waited in before forwarding.
    pub concurrency: Option<Concurrency>,
    /// The CORS headers of the answer.
    pub cors: ResponseCors,
}

/// The facts an admitted WebSocket carries for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketForward {
    /// Idle timeout once upgraded (replaces the HTTP timeouts).
    pub idle_timeout: Duration,
    /// The JWT's `exp` plus leeway (Unix seconds) when the socket must close at expiry.
    pub close_at: Option<u64>,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Forward to the upstream (subject to the stateful limits).
    Forward(Box<Forward>),
    /// A CORS preflight answered by the proxy: 204 with these headers, never forwarded.
    Preflight(Preflight),
    /// Refuse.
    Deny(Denial),
}

/// A preflight the proxy answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// The route whose `cors` answered.
    pub route: usize,
    /// `Access-Control-Allow-*`, `Vary`.
    pub headers: Vec<(HeaderName, String)>,
}

/// What happens to the CORS headers of the upstream's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseCors {
    /// Remove the upstream's `Access-Control-*` headers (a route without `cors`).
    Strip,
    /// Remove them; add `Vary: Origin` (a `cors` route, origin absent or not allowed).
    StripVary,
    /// Replace them with these (a `cors` route, origin allowed). Values are ready to send:
    /// the allowed origin is the request's own `Origin` value, the rest are constants.
    Allow(Vec<(HeaderName, HeaderValue)>),
    /// Keep the upstream's (`cors: upstream`).
    Upstream,
}

/// One line of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Step name (`client_ip`, `access`, `path`, `route`, `auth`, …).
    pub step: &'static str,
    /// `pass`, `deny`, `skip` or `not evaluated`.
    pub verdict: &'static str,
    /// The rule that decided it, with its key path.
    pub rule: String,
}

/// The trail of a decision; recording is off on the hot path and on for `explain`, the
/// same code either way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail {
    enabled: bool,
    steps: Vec<Step>,
}

impl Trail {
    /// A trail that records (`true`) or not.
    pub fn new(enabled: bool) -> Self {
        Trail {
            enabled,
            steps: Vec::new(),
        }
    }

    /// Records a step; the closure runs only when recording.
    pub fn record(
        &mut self,
        step: &'static str,
        verdict: &'static str,
        rule: impl FnOnce() -> String,
    ) {
        if self.enabled {
            self.steps.push(Step {
                step,
                verdict,
                rule: rule(),
            });
        }
    }

    /// The recorded steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// The result of evaluating one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Client IP per step 1 (the peer when step 1 itself refused).
    pub client_ip: IpAddr,
    /// Index of the chosen route, once one is chosen.
    pub route: Option<usize>,
    /// Verdict.
    pub outcome: Outcome,
    /// Steps.
    pub trail: Trail,
}

impl Decision {
    /// HTTP status: 200 for a forward, else the denial's.
    pub fn status(&self) -> u16 {
        match &self.outcome {
            Outcome::Forward(_) => 200,
            Outcome::Preflight(_) => 204,
            Outcome::Deny(d) => d.reason.status(),
        }
    }

    /// The step that decided: the denying step, or `forward`.
    pub fn step(&self) -> &'static str {
        match &self.outcome {
            Outcome::Forward(_) => "forward",
            Outcome::Preflight(_) => "preflight",
            Outcome::Deny(d) => d.step,
        }
    }

    /// The reason code of a denial.
    pub fn reason(&self) -> Option<Reason> {
        match &self.outcome {
            Outcome::Forward(_) | Outcome::Preflight(_) => None,
            Outcome::Deny(d) => Some(d.reason),
        }
    }
}
