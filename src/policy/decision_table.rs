//! The decision table: policies written as YAML strings × requests, with a fixed clock,
//! asserting the reason code and the step of every denial rule (and the route of every
//! admission). Pure — no sockets, no processes — so it runs in milliseconds and can grow to
//! hundreds of rows; the end-to-end tests keep a handful of these for the wiring.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use super::{decide, Outcome, Policy, Reason, RequestFacts};

const NOW: u64 = 1_800_000_000;
const SECRET: &str = "table-secret-0123456789abcdef-012345";

/// The base policy: one route for each kind of rule.
const BASE: &str = r#"
version: 1
server:
  listen: [{ addr: "127.0.0.1:8080" }]
  client_ip: { trusted_proxies: ["10.0.0.0/8"] }
  limits: { max_headers: 20, max_header_bytes: 2KiB }
upstream: { addr: "127.0.0.1:9000" }
defaults: { rate_limit: none }
access: { deny: ["203.0.113.0/24"] }
auth:
  jwt:
    jwt:
      algorithms: [HS256]
      secret_env: SECRET
      issuer: "https://auth.test"
      audience: "api"
      leeway: 0s
      token_sources: [header, "cookie:tok", "query:access_token"]
      forward_claims: { sub: X-Sub }
origins:
  web: ["https://app.example.com", "https://*.example.org"]
routes:
  - name: health
    match: { path: /health, methods: [GET, HEAD] }
    auth: none
  - name: internal
    match: { prefix: /internal/ }
    access: { allow: ["10.0.0.0/8"] }
    auth: none
  - name: admin
    match: { prefix: /admin/ }
    auth: jwt
    require: { claims: { role: admin } }
  - name: api
    match: { prefix: /api/, methods: [GET, POST] }
    auth: jwt
    cors: { origins: web, methods: [GET, POST] }
  - name: strict
    match: { prefix: /strict/ }
    auth: none
    cors: { origins: web, enforce: true }
  - name: ws
    match: { path: /ws }
    auth: jwt
    websocket: { origins: web, close_on_token_expiry: true }
  - name: ws-open
    match: { path: /ws/open }
    auth: none
    websocket: { allow_missing_origin: true }
  - name: public
    match: { prefix: /pub/ }
    auth: none
"#;

fn policy(yaml: &str) -> Policy {
    let env = |name: &str| (name == "SECRET").then(|| SECRET.as_bytes().to_vec());
    crate::config::load_str(yaml, Path::new("/table/policy.yaml"), &env)
        .unwrap_or_else(|e| panic!("table policy does not compile:\n{e}"))
}

fn token(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn good(role: &str) -> String {
    token(
        json!({"sub": "alice", "role": role, "iss": "https://auth.test", "aud": "api", "exp": NOW + 60}),
    )
}

/// What a row expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Forwarded by this route.
    Fwd(&'static str),
    /// Denied with this reason at this step.
    Deny(Reason, &'static str),
    /// A preflight answered 204 by this route's `cors`.
    Pre(&'static str),
}
use Want::*;

struct Row {
    name: &'static str,
    method: &'static str,
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    peer: &'static str,
    version: Version,
    tls: bool,
    want: Want,
}

fn row(name: &'static str, target: &str, want: Want) -> Row {
    Row {
        name,
        method: "GET",
        target: target.as_bytes().to_vec(),
        headers: vec![("host".into(), b"gate.test".to_vec())],
        peer: "198.51.100.7",
        version: Version::HTTP_11,
        tls: false,
        want,
    }
}

impl Row {
    fn h(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }
    fn hb(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_string(), value.to_vec()));
        self
    }
    fn no_host(mut self) -> Self {
        self.headers.retain(|(n, _)| n != "host");
        self
    }
    fn m(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }
    fn peer(mut self, peer: &'static str) -> Self {
        self.peer = peer;
        self
    }
    fn v(mut self, version: Version) -> Self {
        self.version = version;
        self
    }
    fn tls(mut self) -> Self {
        self.tls = true;
        self
    }
    fn bearer(self, t: &str) -> Self {
        self.h("authorization", &format!("Bearer {t}"))
    }
    fn upgrade(self) -> Self {
        self.h("upgrade", "websocket").h("connection", "Upgrade")
    }
}

/// Decides `r` under `policy`, asking `adm` at the stateful steps.
fn decide_row(
    policy: &Policy,
    r: &Row,
    adm: &mut dyn super::admission::Admission,
    record: bool,
) -> super::Decision {
    let method = Method::from_bytes(r.method.as_bytes()).unwrap();
    let mut headers = HeaderMap::new();
    for (n, v) in &r.headers {
        headers.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    let facts = RequestFacts {
        peer: r.peer.parse().unwrap(),
        method: &method,
        target: &r.target,
        headers: &headers,
        head_bytes: RequestFacts::measure_head(&method, &r.target, &headers),
        now: NOW,
        version: r.version,
        tls: r.tls,
        assumed_identity: None,
    };
    super::decide_with(policy, &facts, adm, record)
}

/// What a decision came to, in the table's terms.
fn want_of(policy: &Policy, d: &super::Decision) -> Want {
    match &d.outcome {
        Outcome::Forward(f) => Fwd(policy
            .routes
            .get(f.route)
            .map(|r| leak(&r.name))
            .unwrap_or("?")),
        Outcome::Preflight(p) => Pre(policy
            .routes
            .get(p.route)
            .map(|r| leak(&r.name))
            .unwrap_or("?")),
        Outcome::Deny(den) => Deny(den.reason, den.step),
    }
}

fn run(policy: &Policy, rows: &[Row]) {
    let mut failures = Vec::new();
    for r in rows {
        let d = decide_row(policy, r, &mut super::admission::Stateless, false);
        let got = want_of(policy, &d);
        // The recorded trail must reach the same verdict as the hot path.
        let traced = decide_row(policy, r, &mut super::admission::Stateless, true);
        if got != r.want || traced.outcome != d.outcome {
            failures.push(format!(
                "{}: want {:?}, got {:?}; trail:\n  {}",
                r.name,
                r.want,
                got,
                traced
                    .trail
                    .steps()
                    .iter()
                    .map(|s| format!("{} {} {}", s.step, s.verdict, s.rule))
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

#[test]
fn base_policy_table() {
    run(&policy(BASE), &base_rows());
}

#[test]
fn the_effective_policy_dump_decides_like_the_original() {
    for yaml in [BASE, LIMITED] {
        let original = policy(yaml);
        let dumped = serde_yaml::to_string(&crate::cli::dump::effective(&original)).unwrap();
        let again = policy(&dumped);
        // Same verdicts, row by row (the rows' expectations hold for the original).
        for r in base_rows() {
            let a = decide_row(&original, &r, &mut super::admission::Stateless, false);
            let b = decide_row(&again, &r, &mut super::admission::Stateless, false);
            assert_eq!(
                (a.status(), a.reason(), a.step(), a.route),
                (b.status(), b.reason(), b.step(), b.route),
                "{}: the dump decides differently\n{dumped}",
                r.name
            );
        }
        // And the dump of the dump is the same text: every default was already written out.
        let twice = serde_yaml::to_string(&crate::cli::dump::effective(&again)).unwrap();
        assert_eq!(dumped, twice);
    }
}

fn base_rows() -> Vec<Row> {
    let admin = good("admin");
    let tester = good("tester");
    let expired = token(json!({"sub": "a", "iss": "https://auth.test", "aud": "api", "exp": NOW}));
    let crit = {
        let mut h = Header::new(Algorithm::HS256);
        h.crit = Some(vec!["exp".into()]);
        encode(
            &h,
            &json!({"sub": "a", "iss": "https://auth.test", "aud": "api", "exp": NOW + 60}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let many: Vec<Row> = vec![{
        let mut r = row(
            "21 header lines",
            "/health",
            Deny(Reason::HeadersTooLarge, "head"),
        );
        for i in 0..20 {
            r = r.h(&format!("x-h{i}"), "1");
        }
        r
    }];
    let mut rows = vec![
        // Admissions.
        row("public", "/health", Fwd("health")),
        row("HEAD public", "/health", Fwd("health")).m("HEAD"),
        row("jwt api", "/api/x", Fwd("api")).bearer(&tester),
        row("jwt admin", "/admin/x", Fwd("admin")).bearer(&admin),
        row("normalized into a route", "/pub/a/../b", Fwd("public")),
        row("internal from 10/8", "/internal/x", Fwd("internal")).peer("10.1.2.3"),
        row("ws allowed origin", "/ws", Fwd("ws"))
            .upgrade()
            .bearer(&tester)
            .h("origin", "https://a.b.example.org"),
        row("ws open without origin", "/ws/open", Fwd("ws-open")).upgrade(),
        row("HTTP/1.0 without Host", "/health", Fwd("health"))
            .no_host()
            .v(Version::HTTP_10),
        row("cookie same-origin", "/api/x", Fwd("api"))
            .h("cookie", &format!("tok={tester}"))
            .h("origin", "http://gate.test"),
        row("cookie same-origin tls", "/api/x", Fwd("api"))
            .tls()
            .h("cookie", &format!("tok={tester}"))
            .h("origin", "https://gate.test:443"),
        row("cookie from an allowed CORS origin", "/api/x", Fwd("api"))
            .h("cookie", &format!("tok={tester}"))
            .h("origin", "https://app.example.com")
            .h("sec-fetch-site", "cross-site"),
        row("cookie without Origin", "/api/x", Fwd("api")).h("cookie", &format!("tok={tester}")),
        row(
            "query token on a ws route",
            &format!("/ws?access_token={tester}"),
            Fwd("ws"),
        )
        .upgrade()
        .h("origin", "https://app.example.com"),
        row(
            "trusted proxy, client first untrusted",
            "/health",
            Fwd("health"),
        )
        .peer("10.0.0.1")
        .hb("x-forwarded-for", b"\xc3\xa9, 198.51.100.9, 10.0.0.2"),
        // 1. client IP.
        row(
            "unreadable hop where the client is sought",
            "/health",
            Deny(Reason::BadRequest, "client_ip"),
        )
        .peer("10.0.0.1")
        .h("x-forwarded-for", "198.51.100.9, garbage"),
        row(
            "non-ASCII hop where the client is sought",
            "/health",
            Deny(Reason::BadRequest, "client_ip"),
        )
        .peer("10.0.0.1")
        .hb("x-forwarded-for", b"\xc3\xa9"),
        // Head limits.
        row(
            "head too large",
            "/health",
            Deny(Reason::HeadersTooLarge, "head"),
        )
        .h("x-big", &"a".repeat(3000)),
        // Hygiene.
        row("no Host", "/health", Deny(Reason::BadRequest, "hygiene")).no_host(),
        row("two Host", "/health", Deny(Reason::BadRequest, "hygiene")).h("host", "other.test"),
        row("Host list", "/health", Deny(Reason::BadRequest, "hygiene"))
            .no_host()
            .h("host", "a.test, b.test"),
        row(
            "Host with path",
            "/health",
            Deny(Reason::BadRequest, "hygiene"),
        )
        .no_host()
        .h("host", "a.test/x"),
        row(
            "Host bad port",
            "/health",
            Deny(Reason::BadRequest, "hygiene"),
        )
        .no_host()
        .h("host", "a.test:80x"),
        row(
            "absolute-form other host",
            "http://evil.test/health",
            Deny(Reason::BadRequest, "hygiene"),
        ),
        row(
            "absolute-form same host",
            "http://GATE.test/health",
            Fwd("health"),
        ),
        row(
            "HTTP/1.0 upgrade",
            "/ws/open",
            Deny(Reason::BadRequest, "hygiene"),
        )
        .upgrade()
        .v(Version::HTTP_10),
        // 2. access.
        row(
            "globally denied",
            "/health",
            Deny(Reason::IpDenied, "access"),
        )
        .peer("203.0.113.5"),
        row(
            "denied via forwarded",
            "/health",
            Deny(Reason::IpDenied, "access"),
        )
        .peer("10.0.0.1")
        .hb("x-forwarded-for", b"\xff, 203.0.113.5"),
        row(
            "mapped v6 denied",
            "/health",
            Deny(Reason::IpDenied, "access"),
        )
        .peer("::ffff:203.0.113.5"),
        // 4. path.
        row("dot-dot above root", "/..", Deny(Reason::BadPath, "path")),
        row("encoded slash", "/pub/a%2Fb", Deny(Reason::BadPath, "path")),
        row("semicolon", "/pub/a;b", Deny(Reason::BadPath, "path")),
        row(
            "semicolon removed by dot-dot",
            "/pub/a;x/../b",
            Deny(Reason::BadPath, "path"),
        ),
        row(
            "encoded semicolon",
            "/pub/a%3Bb",
            Deny(Reason::BadPath, "path"),
        ),
        row(
            "encoded semicolon lower",
            "/pub/a%3bb",
            Deny(Reason::BadPath, "path"),
        ),
        row(
            "semicolon in the query is fine",
            "/pub/a?x=1;2",
            Fwd("public"),
        ),
        row(
            "tomcat ..;",
            "/pub/..;/admin/",
            Deny(Reason::BadPath, "path"),
        ),
        // 6. route.
        row("no route", "/nope", Deny(Reason::NoRoute, "route")),
        row(
            "case-sensitive by default",
            "/HEALTH",
            Deny(Reason::NoRoute, "route"),
        ),
        row("method", "/health", Deny(Reason::MethodNotAllowed, "route")).m("DELETE"),
        // 7. route access.
        row(
            "internal from outside",
            "/internal/x",
            Deny(Reason::IpDenied, "route_access"),
        ),
        // 8. origin.
        row(
            "ws foreign origin",
            "/ws",
            Deny(Reason::OriginDenied, "origin"),
        )
        .upgrade()
        .bearer(&tester)
        .h("origin", "https://evil.test"),
        row(
            "ws suffix trick",
            "/ws",
            Deny(Reason::OriginDenied, "origin"),
        )
        .upgrade()
        .h("origin", "https://example.org.evil.test"),
        row(
            "ws apex of wildcard",
            "/ws",
            Deny(Reason::OriginDenied, "origin"),
        )
        .upgrade()
        .h("origin", "https://example.org"),
        row(
            "ws missing origin",
            "/ws",
            Deny(Reason::OriginDenied, "origin"),
        )
        .upgrade(),
        row("ws scheme", "/ws", Deny(Reason::OriginDenied, "origin"))
            .upgrade()
            .h("origin", "http://app.example.com"),
        row(
            "cors.enforce foreign",
            "/strict/x",
            Deny(Reason::OriginDenied, "origin"),
        )
        .h("origin", "https://evil.test"),
        row("cors.enforce allowed", "/strict/x", Fwd("strict"))
            .h("origin", "https://app.example.com"),
        row("cors not enforced", "/api/x", Fwd("api"))
            .bearer(&tester)
            .h("origin", "https://evil.test"),
        // 9. auth.
        row("no token", "/api/x", Deny(Reason::AuthRequired, "auth")),
        row(
            "garbage token",
            "/api/x",
            Deny(Reason::TokenInvalid, "auth"),
        )
        .bearer("abc"),
        row(
            "expired at leeway 0",
            "/api/x",
            Deny(Reason::TokenInvalid, "auth"),
        )
        .bearer(&expired),
        row("crit", "/api/x", Deny(Reason::TokenInvalid, "auth")).bearer(&crit),
        row(
            "query token off a ws route",
            &format!("/api/x?access_token={tester}"),
            Deny(Reason::AuthRequired, "auth"),
        ),
        row(
            "cookie cross-site origin",
            "/api/x",
            Deny(Reason::AuthRequired, "auth"),
        )
        .h("cookie", &format!("tok={tester}"))
        .h("origin", "https://evil.test"),
        row(
            "cookie cross-site fetch metadata",
            "/api/x",
            Deny(Reason::AuthRequired, "auth"),
        )
        .h("cookie", &format!("tok={tester}"))
        .h("sec-fetch-site", "cross-site"),
        row(
            "cookie origin other scheme",
            "/api/x",
            Deny(Reason::AuthRequired, "auth"),
        )
        .tls()
        .h("cookie", &format!("tok={tester}"))
        .h("origin", "http://gate.test"),
        row(
            "cookie null origin",
            "/api/x",
            Deny(Reason::AuthRequired, "auth"),
        )
        .h("cookie", &format!("tok={tester}"))
        .h("origin", "null"),
        row(
            "cookie on ws from foreign origin never gets to auth",
            "/ws",
            Deny(Reason::OriginDenied, "origin"),
        )
        .upgrade()
        .h("cookie", &format!("tok={tester}"))
        .h("origin", "https://evil.test"),
        row(
            "basic to a jwt route",
            "/api/x",
            Deny(Reason::AuthRequired, "auth"),
        )
        .h("authorization", "Basic YTpi"),
        // 5. preflights.
        row("preflight answered", "/api/x", Pre("api"))
            .m("OPTIONS")
            .h("origin", "https://app.example.com")
            .h("access-control-request-method", "POST"),
        row("preflight wildcard origin", "/api/x", Pre("api"))
            .m("OPTIONS")
            .h("origin", "https://a.example.org")
            .h("access-control-request-method", "GET"),
        row(
            "preflight foreign origin",
            "/api/x",
            Deny(Reason::OriginDenied, "preflight"),
        )
        .m("OPTIONS")
        .h("origin", "https://evil.test")
        .h("access-control-request-method", "POST"),
        row(
            "preflight method",
            "/api/x",
            Deny(Reason::PreflightDenied, "preflight"),
        )
        .m("OPTIONS")
        .h("origin", "https://app.example.com")
        .h("access-control-request-method", "DELETE"),
        row(
            "preflight header",
            "/api/x",
            Deny(Reason::PreflightDenied, "preflight"),
        )
        .m("OPTIONS")
        .h("origin", "https://app.example.com")
        .h("access-control-request-method", "GET")
        .h("access-control-request-headers", "x-evil"),
        row(
            "OPTIONS without ACRM is no preflight",
            "/api/x",
            Deny(Reason::MethodNotAllowed, "route"),
        )
        .m("OPTIONS")
        .h("origin", "https://app.example.com"),
        row(
            "preflight on a route without cors is routed as usual",
            "/pub/x",
            Fwd("public"),
        )
        .m("OPTIONS")
        .h("origin", "https://app.example.com")
        .h("access-control-request-method", "GET"),
        row(
            "preflight without cors on an auth route",
            "/admin/x",
            Deny(Reason::AuthRequired, "auth"),
        )
        .m("OPTIONS")
        .h("origin", "https://app.example.com")
        .h("access-control-request-method", "GET"),
        row(
            "preflight still behind global access",
            "/api/x",
            Deny(Reason::IpDenied, "access"),
        )
        .peer("203.0.113.1")
        .m("OPTIONS")
        .h("origin", "https://app.example.com")
        .h("access-control-request-method", "POST"),
        // 10. claims.
        row(
            "claims",
            "/admin/x",
            Deny(Reason::InsufficientClaims, "claims"),
        )
        .bearer(&tester),
    ];
    rows.extend(many);
    rows
}

#[test]
fn path_options_table() {
    let semicolons = policy(&BASE.replace(
        "  limits:",
        "  paths: { allow_semicolon: true, case_insensitive: true }\n  limits:",
    ));
    run(
        &semicolons,
        &[
            row("semicolon allowed", "/pub/a;b", Fwd("public")),
            row("encoded semicolon allowed", "/pub/a%3Bb", Fwd("public")),
            row(
                "tomcat ..; still refused",
                "/pub/..;/x",
                Deny(Reason::BadPath, "path"),
            ),
            row("case-insensitive exact", "/HEALTH", Fwd("health")),
            row("case-insensitive prefix", "/PUB/x", Fwd("public")),
            row(
                "case-insensitive still needs auth",
                "/ADMIN/x",
                Deny(Reason::AuthRequired, "auth"),
            ),
        ],
    );
}

#[test]
fn forward_carries_what_the_glue_needs() {
    let p = policy(BASE);
    let tester = good("tester");
    let target = format!("/ws?access_token={tester}&x=1");
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("gate.test"));
    headers.insert("upgrade", HeaderValue::from_static("websocket"));
    headers.insert("connection", HeaderValue::from_static("Upgrade"));
    headers.insert(
        "origin",
        HeaderValue::from_static("https://app.example.com"),
    );
    let facts = super::evaluate::facts_for(
        "10.0.0.1".parse().unwrap(),
        &Method::GET,
        target.as_bytes(),
        &headers,
        NOW,
    );
    let mut with_xff = headers.clone();
    with_xff.insert(
        "x-forwarded-for",
        HeaderValue::from_static("1.1.1.1, 198.51.100.7, 10.0.0.9"),
    );
    let facts2 = RequestFacts {
        headers: &with_xff,
        ..facts
    };
    let Outcome::Forward(f) = decide(&p, &facts2, false).outcome else {
        panic!("forwarded")
    };
    assert_eq!(f.query.as_deref(), Some("x=1"), "token stripped");
    assert_eq!(f.forwarded_for, "198.51.100.7, 10.0.0.9");
    assert!(f.peer_trusted);
    let ws = f.websocket.expect("websocket facts");
    assert_eq!(ws.close_at, Some(NOW + 60), "exp + leeway 0");
    assert_eq!(f.identity.unwrap().subject.as_deref(), Some("alice"));
    assert_eq!(f.claim_headers.len(), 1);
}

/// An admission that refuses what it is told to, recording what it was asked.
#[derive(Default)]
struct Scripted {
    refuse: Vec<&'static str>,
    asked: Vec<&'static str>,
    failures: u32,
}

impl Scripted {
    fn answer(&mut self, what: &'static str, reason: Reason) -> super::admission::Check {
        self.asked.push(what);
        if self.refuse.contains(&what) {
            super::admission::Check::Deny(super::admission::Limited {
                reason,
                message: what.into(),
                headers: Vec::new(),
                detail: what.into(),
            })
        } else {
            super::admission::Check::Pass
        }
    }
}

impl super::admission::Admission for Scripted {
    fn connection(&mut self, _: std::net::IpAddr, _: u32) -> super::admission::Check {
        self.answer("connection", Reason::TooManyConnections)
    }
    fn auth_guard(
        &mut self,
        _: std::net::IpAddr,
        _: super::model::Rate,
    ) -> super::admission::Check {
        self.answer("auth_guard", Reason::RateLimited)
    }
    fn auth_failed(&mut self, _: std::net::IpAddr, _: super::model::Rate) {
        self.failures += 1;
    }
    fn rate_limit(
        &mut self,
        _: &super::model::Route,
        _: &super::model::RateLimit,
        _: std::net::IpAddr,
        _: Option<&str>,
    ) -> super::admission::Check {
        self.answer("rate_limit", Reason::RateLimited)
    }
    fn websocket(
        &mut self,
        _: &super::model::Route,
        _: &super::model::WebSocketSettings,
        _: std::net::IpAddr,
        _: Option<&str>,
    ) -> super::admission::Check {
        self.answer("websocket", Reason::TooManyConnections)
    }
}

const LIMITED: &str = r#"
version: 1
server:
  listen: [{ addr: "127.0.0.1:8080" }]
  limits: { connections_per_ip: 5, auth_failures_per_ip: "3/1m" }
upstream: { addr: "127.0.0.1:9000" }
defaults: { rate_limit: { per_ip: "10/1m" }, max_body: 100 }
auth:
  jwt:
    jwt: { algorithms: [HS256], secret_env: SECRET, issuer: "https://auth.test", audience: "api" }
routes:
  - name: open
    match: { prefix: /open/ }
    auth: none
  - name: api
    match: { prefix: /api/ }
    auth: jwt
  - name: ws
    match: { path: /ws }
    auth: jwt
    websocket: { max_per_ip: 2 }
"#;

#[test]
fn stateful_steps_are_asked_in_policy_order() {
    let p = policy(LIMITED);
    let tester = good("tester");
    let cases: Vec<(Row, Vec<&'static str>, Want, Vec<&'static str>)> = vec![
        (
            row("all pass", "/api/x", Fwd("api")).bearer(&tester),
            vec![],
            Fwd("api"),
            vec!["connection", "auth_guard", "rate_limit"],
        ),
        (
            row("conn cap first", "/api/x", Fwd("api")).bearer(&tester),
            vec!["connection"],
            Deny(Reason::TooManyConnections, "connections_per_ip"),
            vec!["connection"],
        ),
        (
            row("guard before verifying", "/api/x", Fwd("api")).bearer("garbage"),
            vec!["auth_guard"],
            Deny(Reason::RateLimited, "auth_guard"),
            vec!["connection", "auth_guard"],
        ),
        (
            row("no guard on public routes", "/open/x", Fwd("open")),
            vec!["auth_guard"],
            Fwd("open"),
            vec!["connection", "rate_limit"],
        ),
        (
            row("rate after auth", "/api/x", Fwd("api")).bearer(&tester),
            vec!["rate_limit"],
            Deny(Reason::RateLimited, "rate_limit"),
            vec!["connection", "auth_guard", "rate_limit"],
        ),
        (
            row("rate limit never reached by a 401", "/api/x", Fwd("api")),
            vec![],
            Deny(Reason::AuthRequired, "auth"),
            vec!["connection", "auth_guard"],
        ),
        (
            row("ws caps", "/ws", Fwd("ws")).upgrade().bearer(&tester),
            vec!["websocket"],
            Deny(Reason::TooManyConnections, "websocket_limits"),
            vec!["connection", "auth_guard", "rate_limit", "websocket"],
        ),
        (
            row("body after caps", "/open/x", Fwd("open")).h("content-length", "101"),
            vec![],
            Deny(Reason::BodyTooLarge, "max_body"),
            vec!["connection", "rate_limit"],
        ),
        (
            row("body at the cap", "/open/x", Fwd("open")).h("content-length", "100"),
            vec![],
            Fwd("open"),
            vec!["connection", "rate_limit"],
        ),
    ];
    for (r, refuse, want, asked) in cases {
        let mut adm = Scripted {
            refuse,
            ..Scripted::default()
        };
        let got = want_of(&p, &decide_row(&p, &r, &mut adm, false));
        assert_eq!(got, want, "{}", r.name);
        assert_eq!(adm.asked, asked, "{}", r.name);
    }
    // A rejected credential is counted for the guard; a missing one is not.
    let mut adm = Scripted::default();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("gate.test"));
    headers.insert("authorization", HeaderValue::from_static("Bearer garbage"));
    let facts = super::evaluate::facts_for(
        "192.0.2.1".parse().unwrap(),
        &Method::GET,
        b"/api/x",
        &headers,
        NOW,
    );
    let _ = super::decide_with(&p, &facts, &mut adm, false);
    headers.remove("authorization");
    let facts = super::evaluate::facts_for(
        "192.0.2.1".parse().unwrap(),
        &Method::GET,
        b"/api/x",
        &headers,
        NOW,
    );
    let _ = super::decide_with(&p, &facts, &mut adm, false);
    assert_eq!(adm.failures, 1);
}
