//! The compiled policy: what `config::compile` produces from the file and what the decision
//! reads. Immutable once built; a reload builds a new one and swaps it in whole. Every rule
//! keeps the key path it came from so a verdict can name the line of policy that decided it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;

use crate::policy::auth::AuthProvider;
use crate::policy::origin::OriginList;

/// A token-bucket rate: `count` requests per `period` (POLICY.md, Values → Rates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Requests admitted per period.
    pub count: u32,
    /// The refill period.
    pub period: Duration,
}

/// A whole, valid policy.
#[derive(Debug)]
pub struct Policy {
    /// The policy file.
    pub file: PathBuf,
    /// `server:`
    pub server: ServerSettings,
    /// `upstream:`
    pub upstream: UpstreamSettings,
    /// Global `access:`; `None` = allow all.
    pub access: Option<AccessRule>,
    /// `auth:` providers, in name order.
    pub providers: Vec<Arc<AuthProvider>>,
    /// `origins:` lists, in name order.
    pub origin_lists: Vec<Arc<OriginList>>,
    /// `routes:`, in file order.
    pub routes: Vec<Route>,
    /// Every header named by a `forward_claims` anywhere: stripped from every client request.
    pub claim_headers: Vec<HeaderName>,
    /// The policy file and every file it names: a change to any of them reloads the policy.
    pub watched_files: Vec<PathBuf>,
    /// Valid but suspicious settings (key path, message): `check` prints them.
    pub warnings: Vec<(String, String)>,
}

/// `server:`
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Public listeners.
    pub listeners: Vec<Listener>,
    /// Admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: Option<SocketAddr>,
    /// `client_ip.trusted_proxies`
    pub trusted_proxies: Vec<IpNet>,
    /// `timeouts:`
    pub timeouts: Timeouts,
    /// `limits:`
    pub limits: Limits,
    /// `paths:` (request hygiene).
    pub paths: PathOptions,
    /// `headers:` (which client headers pass).
    pub headers: HeaderOptions,
}

/// `server.paths`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathOptions {
    /// Accept `;` path parameters (refused by default: route confusion on Java upstreams).
    pub allow_semicolon: bool,
    /// Match routes case-insensitively (for upstreams such as IIS that ignore case).
    pub case_insensitive: bool,
}

/// `server.headers`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderOptions {
    /// Forward header names containing `_` (dropped by default, as nginx does).
    pub allow_underscores: bool,
}

/// A public listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Certificate and key for TLS, when set.
    pub tls: Option<TlsFiles>,
}

/// PEM files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// `server.timeouts`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The whole request head must arrive within this.
    pub request_header: Duration,
    /// Idle keep-alive connections are closed after this.
    pub http_idle: Duration,
    /// Each wait for the upstream on plain requests.
    pub upstream_read: Duration,
    /// Idle timeout once a connection is upgraded.
    pub websocket_idle: Duration,
}

/// `server.limits`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// In-flight requests + open WebSockets per client IP.
    pub connections_per_ip: Option<u32>,
    /// Largest request head, in bytes.
    pub max_header_bytes: u64,
    /// Most header lines in a request.
    pub max_headers: u32,
    /// Brute-force guard: failed authentications allowed per client IP (burst 0).
    pub auth_failures_per_ip: Option<Rate>,
}

/// `upstream:`
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Where requests go.
    pub addr: SocketAddr,
    /// Connect timeout.
    pub connect_timeout: Duration,
}

/// An `access:` block: deny wins, then allow (absent allow = allow all).
#[derive(Debug, Clone)]
pub struct AccessRule {
    /// Key path of the block, e.g. `access` or `routes[4].access`.
    pub key: String,
    /// `allow:`; `None` when absent.
    pub allow: Option<Vec<IpNet>>,
    /// `deny:`
    pub deny: Vec<IpNet>,
}

/// How a route matches paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// `path:` — exactly this path.
    Exact(String),
    /// `prefix:` — paths that start with this.
    Prefix(String),
}

impl PathMatch {
    /// Whether the (normalized) path matches; `fold_case` compares ASCII case-insensitively.
    pub fn matches(&self, path: &str, fold_case: bool) -> bool {
        match (self, fold_case) {
            (PathMatch::Exact(p), false) => path == p,
            (PathMatch::Exact(p), true) => path.eq_ignore_ascii_case(p),
            (PathMatch::Prefix(p), false) => path.starts_with(p.as_str()),
            (PathMatch::Prefix(p), true) => path
                .get(..p.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(p)),
        }
    }
}

/// Who may use a route.
#[derive(Debug, Clone)]
pub enum RouteAuth {
    /// `auth: none` — public.
    None,
    /// `auth: <provider>`
    Provider(Arc<AuthProvider>),
}

/// One entry of `require.claims`.
#[derive(Debug, Clone)]
pub struct ClaimRequirement {
    /// Claim name.
    pub claim: String,
    /// Accepted values (any one suffices).
    pub values: Vec<String>,
}

/// `routes[i].cors`
#[derive(Debug, Clone)]
pub struct Cors {
    /// Allowed origins.
    pub origins: Arc<OriginList>,
    /// `credentials:`
    pub credentials: bool,
    /// Allowed methods for preflights.
    pub methods: Vec<Method>,
    /// Allowed request headers (lowercase).
    pub headers: Vec<String>,
    /// Response headers exposed to scripts.
    pub expose_headers: Vec<String>,
    /// Preflight cache time.
    pub max_age: Option<Duration>,
    /// Deny plain requests from disallowed origins.
    pub enforce: bool,
}

/// `routes[i].websocket`
#[derive(Debug, Clone)]
pub struct WebSocketSettings {
    /// Allowed `Origin`s for the upgrade; `None` = any.
    pub origins: Option<Arc<OriginList>>,
    /// Open WebSockets per client IP.
    pub max_per_ip: Option<u32>,
    /// Open WebSockets per JWT subject.
    pub max_per_subject: Option<u32>,
    /// Idle timeout once upgraded (overrides `server.timeouts.websocket_idle`).
    pub idle_timeout: Option<Duration>,
    /// Accept an upgrade with no `Origin` header.
    pub allow_missing_origin: bool,
    /// Close a JWT-authenticated socket when its token expires.
    pub close_on_token_expiry: bool,
}

/// A `rate_limit` in force on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Key path it came from (`defaults.rate_limit` or `routes[i].rate_limit`).
    pub key: String,
    /// Per client IP.
    pub per_ip: Option<Rate>,
    /// Per JWT subject.
    pub per_subject: Option<Rate>,
    /// Extra bucket capacity.
    pub burst: u32,
    /// Count and log what would be refused, without refusing.
    pub shadow: bool,
}

/// `routes[i].concurrency`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concurrency {
    /// Requests forwarded at once.
    pub max_in_flight: u32,
    /// Requests waiting beyond that.
    pub queue: u32,
    /// Longest wait in the queue.
    pub queue_timeout: Duration,
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in `routes:`.
    pub index: usize,
    /// `name:`
    pub name: String,
    /// Path matcher.
    pub path: PathMatch,
    /// `match.methods`; `None` = any.
    pub methods: Option<Vec<Method>>,
    /// Route `access:`.
    pub access: Option<AccessRule>,
    /// `auth:`
    pub auth: RouteAuth,
    /// `require.claims`
    pub require_claims: Vec<ClaimRequirement>,
    /// `cors:` (the proxy's own CORS policy).
    pub cors: Option<Cors>,
    /// `cors: upstream`: the upstream manages CORS; its headers pass and its preflights are
    /// forwarded without authentication.
    pub cors_upstream: bool,
    /// `websocket:`
    pub websocket: Option<WebSocketSettings>,
    /// Effective `max_body` (route's own, else `defaults.max_body`).
    pub max_body: Option<u64>,
    /// Effective `rate_limit` (route's own, else `defaults.rate_limit`; `None` when off).
    pub rate_limit: Option<RateLimit>,
    /// `upstream_timeout:` (overrides `server.timeouts.upstream_read`).
    pub upstream_timeout: Option<Duration>,
    /// `concurrency:`
    pub concurrency: Option<Concurrency>,
}

impl Route {
    /// Key path of this route, e.g. `routes[2]`.
    pub fn key(&self) -> String {
        format!("routes[{}]", self.index)
    }

    /// Whether the route admits `method`.
    pub fn allows_method(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }
}
