//! The decision: compiled policy + request facts → verdict + trail, in the order of
//! `POLICY.md` ("Evaluation order"), stopping at the first denial. Pure: no I/O, no clock
//! (the time comes in the facts), no shared state.
//!
//! Each step is one small function returning `Result<_, Denial>`, chained with `?` in
//! [`Eval::run`], so the evaluation order reads off that one function. Stateful steps
//! (connection caps, rate limits, queues) are enforced by the runtime around this call and
//! are recorded here as "not evaluated". The trail's text is only formatted when recording.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use serde_json::Value;

use super::admission::{Admission, Check, Stateless};
use super::auth::{AuthFailure, AuthInput, AuthKind, Identity};
use super::client_ip::{client_ip, in_nets, ClientIp};
use super::decision::{
    Decision, Denial, Forward, Outcome, Preflight, Reason, ResponseCors, Trail, WebSocketForward,
};
use super::facts::RequestFacts;
use super::model::{AccessRule, Cors, Policy, Rate, Route, RouteAuth};
use super::origin::Origin;
use super::path::{normalize_target, NormalizedTarget};

/// Evaluates one request with no state: stateful steps are "not evaluated" (`explain`).
/// `record` turns the trail on; the verdict is the same either way.
pub fn decide(policy: &Policy, facts: &RequestFacts<'_>, record: bool) -> Decision {
    decide_with(policy, facts, &mut Stateless, record)
}

/// Evaluates one request, calling `admission` at the stateful steps (the proxy).
pub fn decide_with(
    policy: &Policy,
    facts: &RequestFacts<'_>,
    admission: &mut dyn Admission,
    record: bool,
) -> Decision {
    let mut eval = Eval {
        policy,
        facts,
        adm: admission,
        trail: Trail::new(record),
        client: None,
        route: None,
    };
    let outcome = match eval.run() {
        Ok(Admit::Forward(fwd)) => Outcome::Forward(fwd),
        Ok(Admit::Preflight(p)) => Outcome::Preflight(p),
        Err(mut d) => {
            // A refusal on a `cors` route still carries the CORS headers for an allowed
            // origin, so the page can read why (a 401, a 429) instead of a CORS error.
            if let (Some(route), false) = (eval.route, BEFORE_ROUTE.contains(&d.step)) {
                if let ResponseCors::Allow(h) = response_cors(route, facts) {
                    d.headers.extend(h.into_iter().filter_map(|(name, value)| {
                        value.to_str().ok().map(|v| (name, v.to_string()))
                    }));
                }
            }
            Outcome::Deny(d)
        }
    };
    Decision {
        client_ip: eval
            .client
            .as_ref()
            .map_or(super::client_ip::canonical(facts.peer), |c| c.ip),
        route: eval.route.map(|r| r.index),
        outcome,
        trail: eval.trail,
    }
}

/// Steps that decide before a route is chosen.
const BEFORE_ROUTE: &[&str] = &[
    "client_ip",
    "head",
    "hygiene",
    "access",
    "connections_per_ip",
    "path",
    "preflight",
    "route",
];

/// What an admitted request becomes.
enum Admit {
    /// Forwarded.
    Forward(Box<Forward>),
    /// A preflight the proxy answers.
    Preflight(Preflight),
}

/// One evaluation in progress.
struct Eval<'p, 'f, 'a> {
    policy: &'p Policy,
    facts: &'f RequestFacts<'f>,
    adm: &'a mut dyn Admission,
    trail: Trail,
    client: Option<ClientIp>,
    route: Option<&'p Route>,
}

impl<'p> Eval<'p, '_, '_> {
    /// The evaluation order of POLICY.md, one step a line.
    fn run(&mut self) -> Result<Admit, Denial> {
        let client = self.client_ip()?;
        self.head_limits()?;
        self.hygiene()?;
        self.global_access(client.ip)?;
        self.connections(client.ip)?;
        let target = self.path()?;
        let upstream_preflight = match self.preflight(&target.path)? {
            None => None,
            Some(PreflightRoute::Answer(p)) => return Ok(Admit::Preflight(p)),
            Some(PreflightRoute::Forward(route)) => Some(route),
        };
        let route = match upstream_preflight {
            Some(r) => r,
            None => self.route(&target.path)?,
        };
        self.route_access(route, client.ip)?;
        let upgrade = self.facts.is_websocket_upgrade();
        let identity = if upstream_preflight.is_some() {
            // `cors: upstream`: a browser never sends credentials on a preflight.
            self.trail.record("auth", "skip", || {
                format!(
                    "preflight forwarded to the upstream ({}.cors: upstream)",
                    route.key()
                )
            });
            None
        } else {
            self.origin(route, upgrade)?;
            let identity = self.auth(route, &target, upgrade, client.ip)?;
            self.claims(route, identity.as_ref())?;
            identity
        };
        let subject = identity.as_ref().and_then(|i| i.subject.as_deref());
        self.rate_limit(route, client.ip, subject)?;
        self.websocket_caps(route, upgrade, client.ip, subject)?;
        self.body_size(route)?;
        self.concurrency_note(route);
        Ok(Admit::Forward(Box::new(
            self.forward(route, target, identity, upgrade, client),
        )))
    }

    /// Step 5, the CORS preflight: answered by the proxy for the first path-matching route
    /// with `cors`, whose `methods` are not consulted; forwarded unauthenticated for
    /// `cors: upstream`.
    fn preflight(&mut self, path: &str) -> Result<Option<PreflightRoute<'p>>, Denial> {
        let h = self.facts.headers;
        let (true, Some(origin), Some(want)) = (
            self.facts.method == Method::OPTIONS,
            h.get(http::header::ORIGIN),
            h.get(http::header::ACCESS_CONTROL_REQUEST_METHOD),
        ) else {
            return Ok(None);
        };
        let policy = self.policy;
        let fold = policy.server.paths.case_insensitive;
        let Some(route) = policy
            .routes
            .iter()
            .find(|r| r.path.matches(path, fold) && (r.cors.is_some() || r.cors_upstream))
        else {
            return Ok(None);
        };
        self.route = Some(route);
        let Some(cors) = &route.cors else {
            self.trail.record("preflight", "pass", || {
                format!("{} ({}.cors: upstream): forwarded", route.name, route.key())
            });
            return Ok(Some(PreflightRoute::Forward(route)));
        };
        let origin = origin.to_str().unwrap_or("\u{fffd}");
        if cors.origins.find(origin).is_none() {
            self.trail.record("preflight", "deny", || {
                format!("{origin:?} is not on {} ({})", cors.origins.key, route.name)
            });
            return Err(self.deny("preflight", Reason::OriginDenied, "origin not allowed"));
        }
        let allowed = preflight_methods(route, cors);
        let want = want.to_str().unwrap_or("");
        if !allowed.iter().any(|m| m.as_str() == want) {
            self.trail.record("preflight", "deny", || {
                format!("method {want:?} is not in {}.cors.methods", route.key())
            });
            let msg = format!("method {want} is not allowed from this origin");
            return Err(self.deny("preflight", Reason::PreflightDenied, &msg));
        }
        let requested: Vec<String> = h
            .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(bad) = requested.iter().find(|r| !cors.headers.contains(r)) {
            self.trail.record("preflight", "deny", || {
                format!("header {bad:?} is not in {}.cors.headers", route.key())
            });
            let msg = format!("header {bad} is not allowed from this origin");
            return Err(self.deny("preflight", Reason::PreflightDenied, &msg));
        }
        self.trail.record("preflight", "pass", || {
            format!(
                "{origin} allowed by {} ({}): answered 204",
                cors.origins.key, route.name
            )
        });
        let mut headers = vec![
            (
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                origin.to_string(),
            ),
            (
                http::header::ACCESS_CONTROL_ALLOW_METHODS,
                allowed
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                http::header::VARY,
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".into(),
            ),
        ];
        if !requested.is_empty() {
            headers.push((
                http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                requested.join(", "),
            ));
        }
        if cors.credentials {
            headers.push((
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                "true".into(),
            ));
        }
        if let Some(age) = cors.max_age {
            headers.push((
                http::header::ACCESS_CONTROL_MAX_AGE,
                age.as_secs().to_string(),
            ));
        }
        Ok(Some(PreflightRoute::Answer(Preflight {
            route: route.index,
            headers,
        })))
    }

    fn deny(&mut self, step: &'static str, reason: Reason, message: &str) -> Denial {
        Denial::new(step, reason, message)
    }

    /// 1. Peer → client IP.
    fn client_ip(&mut self) -> Result<ClientIp, Denial> {
        let facts = self.facts;
        match client_ip(
            facts.peer,
            &self.policy.server.trusted_proxies,
            facts.headers,
        ) {
            Ok(c) => {
                self.trail.record("client_ip", "pass", || c.to_string());
                self.client = Some(c.clone());
                Ok(c)
            }
            Err(hop) => {
                self.trail.record("client_ip", "deny", || {
                    format!(
                        "X-Forwarded-For element {} ({:?}) is not an address, and the client is not found yet",
                        hop.position, hop.element
                    )
                });
                Err(self
                    .deny(
                        "client_ip",
                        Reason::BadRequest,
                        "X-Forwarded-For holds an element that is not an address",
                    )
                    .with_cause(format!(
                        "unreadable X-Forwarded-For element {}: {:?}",
                        hop.position, hop.element
                    )))
            }
        }
    }

    /// Head limits → 431.
    fn head_limits(&mut self) -> Result<(), Denial> {
        let limits = self.policy.server.limits;
        if self.facts.headers.len() > limits.max_headers as usize {
            self.trail.record("head", "deny", || {
                format!("server.limits.max_headers = {}", limits.max_headers)
            });
            let msg = format!("more than {} header lines", limits.max_headers);
            return Err(self.deny("head", Reason::HeadersTooLarge, &msg));
        }
        if self.facts.head_bytes as u64 > limits.max_header_bytes {
            self.trail.record("head", "deny", || {
                format!(
                    "server.limits.max_header_bytes = {}",
                    limits.max_header_bytes
                )
            });
            let msg = format!("request head over {} bytes", limits.max_header_bytes);
            return Err(self.deny("head", Reason::HeadersTooLarge, &msg));
        }
        Ok(())
    }

    /// Request hygiene (POLICY.md): `Host` and the upgrade's HTTP version → 400.
    fn hygiene(&mut self) -> Result<(), Denial> {
        match check_hygiene(self.facts) {
            Ok(()) => Ok(()),
            Err(why) => {
                self.trail.record("hygiene", "deny", || why.to_string());
                Err(self.deny("hygiene", Reason::BadRequest, why))
            }
        }
    }

    /// 2. Global access.
    fn global_access(&mut self, ip: IpAddr) -> Result<(), Denial> {
        let Some(rule) = &self.policy.access else {
            self.trail.record("access", "pass", || {
                "no global access rule (allow all)".into()
            });
            return Ok(());
        };
        self.access_rule(rule, ip, "access", "your address is not allowed")
    }

    fn access_rule(
        &mut self,
        rule: &AccessRule,
        ip: IpAddr,
        step: &'static str,
        message: &str,
    ) -> Result<(), Denial> {
        if access_admits(rule, ip) {
            self.trail.record(step, "pass", || explain_access(rule, ip));
            Ok(())
        } else {
            self.trail.record(step, "deny", || explain_access(rule, ip));
            Err(self.deny(step, Reason::IpDenied, message))
        }
    }

    /// Records a stateful check; `Err` for a refusal.
    fn stateful(
        &mut self,
        step: &'static str,
        check: Check,
        rule: impl Fn() -> String,
    ) -> Result<(), Denial> {
        match check {
            Check::NotEvaluated => {
                self.trail
                    .record(step, "not evaluated", || format!("{} (stateful)", rule()));
                Ok(())
            }
            Check::Pass => {
                self.trail.record(step, "pass", rule);
                Ok(())
            }
            Check::Shadow(l) => {
                self.trail.record(step, "shadow", || {
                    format!(
                        "{}: would refuse ({}), shadow mode admits",
                        rule(),
                        l.detail
                    )
                });
                Ok(())
            }
            Check::Deny(l) => {
                self.trail
                    .record(step, "deny", || format!("{}: {}", rule(), l.detail));
                let mut d = Denial::new(step, l.reason, l.message).with_cause(l.detail);
                d.headers = l.headers;
                Err(d)
            }
        }
    }

    /// 3. Connection cap per client IP.
    fn connections(&mut self, ip: IpAddr) -> Result<(), Denial> {
        let Some(n) = self.policy.server.limits.connections_per_ip else {
            return Ok(());
        };
        let check = self.adm.connection(ip, n);
        self.stateful("connections_per_ip", check, || {
            format!("server.limits.connections_per_ip = {n}")
        })
    }

    /// 4. Path normalization, and `;` path parameters.
    fn path(&mut self) -> Result<NormalizedTarget, Denial> {
        let paths = self.policy.server.paths;
        // Checked on the path as sent: a `..` may remove the `;` segment during
        // normalization, and the upstream (Tomcat, Spring) may still see the parameter.
        if !paths.allow_semicolon && has_path_parameter(self.facts.target) {
            self.trail.record("path", "deny", || {
                "';' path parameter (server.paths.allow_semicolon is false)".into()
            });
            return Err(self.deny(
                "path",
                Reason::BadPath,
                "';' path parameters are not accepted",
            ));
        }
        let target = match normalize_target(self.facts.target) {
            Ok(t) => t,
            Err(e) => {
                self.trail.record("path", "deny", || e.0.to_string());
                return Err(self.deny("path", Reason::BadPath, e.0));
            }
        };
        self.trail
            .record("path", "pass", || format!("normalized to {}", target.path));
        Ok(target)
    }

    /// 6. Route match: the first route whose path and method match → 404 / 405.
    fn route(&mut self, path: &str) -> Result<&'p Route, Denial> {
        let policy = self.policy;
        let fold = policy.server.paths.case_insensitive;
        let method = self.facts.method;
        let mut path_matched = false;
        for r in &policy.routes {
            if r.path.matches(path, fold) {
                if r.allows_method(method) {
                    self.trail.record("route", "pass", || {
                        format!("{} ({}.match)", r.name, r.key())
                    });
                    self.route = Some(r);
                    return Ok(r);
                }
                path_matched = true;
            }
        }
        if !path_matched {
            self.trail
                .record("route", "deny", || format!("no route matches {path}"));
            return Err(self.deny("route", Reason::NoRoute, "no route for this path"));
        }
        let matching: Vec<&Route> = policy
            .routes
            .iter()
            .filter(|r| r.path.matches(path, fold))
            .collect();
        let mut allow: Vec<&str> = Vec::new();
        for m in matching.iter().flat_map(|r| r.methods.iter().flatten()) {
            if !allow.contains(&m.as_str()) {
                allow.push(m.as_str());
            }
        }
        let allow = allow.join(", ");
        self.trail.record("route", "deny", || {
            let names: Vec<String> = matching
                .iter()
                .map(|r| format!("{} ({})", r.name, r.key()))
                .collect();
            format!(
                "path matched {} but not method {method}; allowed: {allow}",
                names.join(", ")
            )
        });
        let msg = format!("method {method} not allowed here");
        Err(self
            .deny("route", Reason::MethodNotAllowed, &msg)
            .with_header(http::header::ALLOW, allow))
    }

    /// 7. Route access.
    fn route_access(&mut self, route: &Route, ip: IpAddr) -> Result<(), Denial> {
        match &route.access {
            Some(rule) => self.access_rule(
                rule,
                ip,
                "route_access",
                "your address is not allowed on this route",
            ),
            None => Ok(()),
        }
    }

    /// 8. Origins: WebSocket upgrades on routes with `websocket.origins`; `cors.enforce`.
    fn origin(&mut self, route: &Route, upgrade: bool) -> Result<(), Denial> {
        let origin = self
            .facts
            .headers
            .get(http::header::ORIGIN)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        if let (true, Some(ws)) = (upgrade, &route.websocket) {
            if let Some(list) = &ws.origins {
                return match origin {
                    None if ws.allow_missing_origin => {
                        self.trail.record("origin", "pass", || {
                            format!("no Origin; {}.websocket.allow_missing_origin", route.key())
                        });
                        Ok(())
                    }
                    None => {
                        self.trail.record("origin", "deny", || {
                            format!(
                                "WebSocket upgrade without Origin ({}.websocket.origins)",
                                route.key()
                            )
                        });
                        Err(self.deny(
                            "origin",
                            Reason::OriginDenied,
                            "a WebSocket upgrade must send an allowed Origin",
                        ))
                    }
                    Some(o) => match list.find(o) {
                        Some(i) => {
                            self.trail.record("origin", "pass", || {
                                format!("{o} matches {}[{i}]", list.key)
                            });
                            Ok(())
                        }
                        None => {
                            self.trail.record("origin", "deny", || {
                                format!("{o:?} is not on {}", list.key)
                            });
                            Err(self.deny("origin", Reason::OriginDenied, "origin not allowed"))
                        }
                    },
                };
            }
        }
        let (Some(cors), Some(o)) = (&route.cors, origin) else {
            return Ok(());
        };
        match cors.origins.find(o) {
            Some(i) => self.trail.record("origin", "pass", || {
                format!("{o} matches {}[{i}]", cors.origins.key)
            }),
            None if cors.enforce => {
                self.trail.record("origin", "deny", || {
                    format!(
                        "{o:?} is not on {} and {}.cors.enforce is true",
                        cors.origins.key,
                        route.key()
                    )
                });
                return Err(self.deny("origin", Reason::OriginDenied, "origin not allowed"));
            }
            None => self.trail.record("origin", "pass", || {
                format!(
                    "{o:?} is not on {}: forwarded without CORS headers",
                    cors.origins.key
                )
            }),
        }
        Ok(())
    }

    /// 9. Authentication → 401.
    fn auth(
        &mut self,
        route: &Route,
        target: &NormalizedTarget,
        upgrade: bool,
        ip: IpAddr,
    ) -> Result<Option<Identity>, Denial> {
        let RouteAuth::Provider(p) = &route.auth else {
            self.trail.record("auth", "pass", || {
                format!("auth: none ({}.auth)", route.key())
            });
            return Ok(None);
        };
        if let Some(id) = self.facts.assumed_identity {
            self.trail.record("auth", "pass", || {
                format!(
                    "identity given by the test, as if authenticated by auth.{} (subject {:?})",
                    p.name,
                    id.subject.as_deref().unwrap_or("-")
                )
            });
            return Ok(Some(id.clone()));
        }
        // Step 3's brute-force guard: before any hash or signature is computed.
        let guard = self.policy.server.limits.auth_failures_per_ip;
        if let Some(rate) = guard {
            let check = self.adm.auth_guard(ip, rate);
            self.stateful("auth_guard", check, || {
                format!(
                    "server.limits.auth_failures_per_ip = {}/{}s",
                    rate.count,
                    rate.period.as_secs()
                )
            })?;
        }
        let input = AuthInput {
            headers: self.facts.headers,
            query: target.query.as_deref(),
            websocket_route: route.websocket.is_some(),
            now: self.facts.now,
            // Only a `cookie:` source reads it, and only from a Cookie header.
            cookie_refused: if self.facts.headers.contains_key(http::header::COOKIE) {
                cross_site(self.facts, route, upgrade)
            } else {
                None
            },
            cache: self.adm.token_cache(),
        };
        match p.authenticate(&input) {
            Ok(id) => {
                self.trail.record("auth", "pass", || {
                    format!(
                        "{} via {} (auth.{}), subject {:?}",
                        p.name,
                        id.source,
                        p.name,
                        id.subject.as_deref().unwrap_or("-")
                    )
                });
                Ok(Some(id))
            }
            Err(AuthFailure::Unavailable { cause }) => {
                self.trail.record("auth", "not evaluated", || {
                    format!("auth.{}: {cause}", p.name)
                });
                let mut d = self
                    .deny(
                        "auth",
                        Reason::TokenInvalid,
                        "the token could not be verified",
                    )
                    .with_cause(cause);
                d.undetermined = true;
                Err(d)
            }
            Err(failure) => {
                let (reason, message, cause) = failure.classify();
                if let (Some(rate), Reason::TokenInvalid | Reason::CredentialsInvalid) =
                    (guard, reason)
                {
                    self.adm.auth_failed(ip, rate);
                }
                self.trail
                    .record("auth", "deny", || format!("auth.{}: {cause}", p.name));
                Err(self
                    .deny("auth", reason, message)
                    .with_header(http::header::WWW_AUTHENTICATE, p.challenge(&failure))
                    .with_cause(cause.to_string()))
            }
        }
    }

    /// 10. `require.claims` → 403.
    fn claims(&mut self, route: &Route, identity: Option<&Identity>) -> Result<(), Denial> {
        if route.require_claims.is_empty() {
            return Ok(());
        }
        let claims = identity.map(|i| &i.claims);
        for req in &route.require_claims {
            let value = claims.and_then(|c| c.get(&req.claim));
            if !claim_matches(&req.claim, value, &req.values) {
                self.trail.record("claims", "deny", || {
                    format!(
                        "{}.require.claims.{} needs one of {:?}",
                        route.key(),
                        req.claim,
                        req.values
                    )
                });
                let msg = format!("claim {:?} does not allow this route", req.claim);
                return Err(self.deny("claims", Reason::InsufficientClaims, &msg));
            }
        }
        self.trail.record("claims", "pass", || {
            format!("{}.require.claims satisfied", route.key())
        });
        Ok(())
    }

    /// 11. The route's rate limit.
    fn rate_limit(
        &mut self,
        route: &Route,
        ip: IpAddr,
        subject: Option<&str>,
    ) -> Result<(), Denial> {
        let Some(rl) = &route.rate_limit else {
            return Ok(());
        };
        let check = self.adm.rate_limit(route, rl, ip, subject);
        self.stateful("rate_limit", check, || {
            let rate = |r: Option<Rate>| {
                r.map_or("-".to_string(), |r| {
                    format!("{}/{}s", r.count, r.period.as_secs())
                })
            };
            format!(
                "{}: per_ip {}, per_subject {}, burst {}{}",
                rl.key,
                rate(rl.per_ip),
                rate(rl.per_subject),
                rl.burst,
                if rl.shadow { " (shadow)" } else { "" }
            )
        })
    }

    /// 12. WebSocket caps per IP and per subject.
    fn websocket_caps(
        &mut self,
        route: &Route,
        upgrade: bool,
        ip: IpAddr,
        subject: Option<&str>,
    ) -> Result<(), Denial> {
        let Some(ws) = route.websocket.as_ref().filter(|_| upgrade) else {
            return Ok(());
        };
        if ws.max_per_ip.is_none() && ws.max_per_subject.is_none() {
            return Ok(());
        }
        let check = self.adm.websocket(route, ws, ip, subject);
        self.stateful("websocket_limits", check, || {
            let n = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
            format!(
                "{}.websocket: max_per_ip {}, max_per_subject {}",
                route.key(),
                n(ws.max_per_ip),
                n(ws.max_per_subject)
            )
        })
    }

    /// Step 13, `max_body` by `Content-Length`: before anything is read or forwarded. A
    /// chunked body is counted by the proxy as it streams.
    fn body_size(&mut self, route: &Route) -> Result<(), Denial> {
        let Some(max) = route.max_body else {
            return Ok(());
        };
        let declared = self
            .facts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(len) if len > max => {
                self.trail.record("max_body", "deny", || {
                    format!(
                        "Content-Length {len} > {max} bytes ({}.max_body)",
                        route.key()
                    )
                });
                let msg = format!("the body is over {max} bytes");
                Err(self.deny("max_body", Reason::BodyTooLarge, &msg))
            }
            _ => {
                self.trail.record("max_body", "pass", || {
                    format!("at most {max} bytes (a streamed body is counted as it arrives)")
                });
                Ok(())
            }
        }
    }

    /// 14. `concurrency`: the bounded queue is waited in by the proxy, after the decision.
    fn concurrency_note(&mut self, route: &Route) {
        if let Some(c) = &route.concurrency {
            self.trail.record("concurrency", "not evaluated", || {
                format!(
                    "{}.concurrency: {} in flight, {} queued, {}s queue timeout (stateful)",
                    route.key(),
                    c.max_in_flight,
                    c.queue,
                    c.queue_timeout.as_secs()
                )
            });
        }
    }

    /// 15. Forward: everything the proxy needs, decided here.
    fn forward(
        &mut self,
        route: &Route,
        target: NormalizedTarget,
        identity: Option<Identity>,
        upgrade: bool,
        client: ClientIp,
    ) -> Forward {
        let policy = self.policy;
        let query = match &target.query {
            Some(q) => strip_token_params(q, route),
            None => None,
        };
        let claim_headers = identity
            .as_ref()
            .map(|id| claim_headers(route, id))
            .unwrap_or_default();
        let timeouts = policy.server.timeouts;
        let websocket = match (&route.websocket, upgrade) {
            (Some(ws), true) => Some(WebSocketForward {
                idle_timeout: ws.idle_timeout.unwrap_or(timeouts.websocket_idle),
                close_at: ws
                    .close_on_token_expiry
                    .then(|| identity.as_ref().and_then(|i| i.expires_at))
                    .flatten(),
            }),
            _ => None,
        };
        self.trail.record("forward", "pass", || {
            format!("to upstream as {}", target.path)
        });
        Forward {
            route: route.index,
            path: target.path,
            query,
            identity,
            claim_headers,
            peer_trusted: in_nets(&policy.server.trusted_proxies, client.peer).is_some(),
            forwarded_for: client.chain,
            websocket,
            upstream_timeout: route.upstream_timeout.unwrap_or(timeouts.upstream_read),
            max_body: route.max_body,
            concurrency: route.concurrency,
            cors: response_cors(route, self.facts),
        }
    }
}

/// Whether the path part of a raw target holds `;`, raw or percent-encoded (`%3B`).
fn has_path_parameter(target: &[u8]) -> bool {
    let end = target
        .iter()
        .position(|b| matches!(b, b'?' | b'#'))
        .unwrap_or(target.len());
    let path = &target[..end];
    path.contains(&b';') || path.windows(3).any(|w| w.eq_ignore_ascii_case(b"%3b"))
}

/// Where a preflight goes.
enum PreflightRoute<'p> {
    /// The proxy answers it.
    Answer(Preflight),
    /// `cors: upstream`: forwarded on this route, without authentication.
    Forward(&'p Route),
}

/// The methods a preflight may ask for: `cors.methods`, else the route's, else the simple ones.
fn preflight_methods(route: &Route, cors: &Cors) -> Vec<Method> {
    if !cors.methods.is_empty() {
        return cors.methods.clone();
    }
    route
        .methods
        .clone()
        .unwrap_or_else(|| vec![Method::GET, Method::HEAD, Method::POST])
}

/// The CORS headers of an actual (non-preflight) answer on `route`.
fn response_cors(route: &Route, facts: &RequestFacts<'_>) -> ResponseCors {
    if route.cors_upstream {
        return ResponseCors::Upstream;
    }
    let Some(cors) = &route.cors else {
        return ResponseCors::Strip;
    };
    let Some(origin) = facts
        .headers
        .get(http::header::ORIGIN)
        .filter(|v| v.to_str().is_ok_and(|o| cors.origins.find(o).is_some()))
    else {
        return ResponseCors::StripVary;
    };
    let mut h = Vec::with_capacity(4);
    // The request's own value: a clone shares its bytes.
    h.push((http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
    h.push((http::header::VARY, HeaderValue::from_static("Origin")));
    if cors.credentials {
        h.push((
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
    }
    if !cors.expose_headers.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&cors.expose_headers.join(", ")) {
            h.push((http::header::ACCESS_CONTROL_EXPOSE_HEADERS, v));
        }
    }
    ResponseCors::Allow(h)
}

/// Request hygiene: `Host` present (HTTP/1.1), single, a host[:port]; an absolute-form
/// target naming the same authority; no upgrade over HTTP/1.0.
fn check_hygiene(facts: &RequestFacts<'_>) -> Result<(), &'static str> {
    let mut hosts = facts.headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    match host {
        None if facts.version != Version::HTTP_10 && facts.version != Version::HTTP_09 => {
            return Err("HTTP/1.1 request without Host");
        }
        None => {}
        Some(h) => {
            if !valid_host_header(h.as_bytes()) {
                return Err("Host is not a single host[:port]");
            }
            if let Some(authority) = absolute_authority(facts.target) {
                if !authority.eq_ignore_ascii_case(h.as_bytes()) {
                    return Err("the absolute-form target names another host than Host");
                }
            }
        }
    }
    if facts.version <= Version::HTTP_10 && facts.is_websocket_upgrade() {
        return Err("a WebSocket upgrade needs HTTP/1.1");
    }
    Ok(())
}

/// `host[:port]`: a registered name or IPv4 (letters, digits, `-`, `.`, `_`), or `[v6]`.
fn valid_host_header(h: &[u8]) -> bool {
    let (host, port) = match h {
        [b'[', ..] => match h.iter().position(|b| *b == b']') {
            Some(end) => {
                let inner = &h[1..end];
                let ok = std::str::from_utf8(inner)
                    .is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
                if !ok {
                    return false;
                }
                (&h[..=end], &h[end + 1..])
            }
            None => return false,
        },
        _ => match h.iter().position(|b| *b == b':') {
            Some(i) => (&h[..i], &h[i..]),
            None => (h, &h[h.len()..]),
        },
    };
    let host_ok = host.first() == Some(&b'[')
        || (!host.is_empty()
            && host
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => {
            !digits.is_empty() && digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    host_ok && port_ok
}

/// The authority of an absolute-form target (`http://host:port/path`).
fn absolute_authority(target: &[u8]) -> Option<&[u8]> {
    let lower = |n: usize| target.get(..n).map(<[u8]>::to_ascii_lowercase);
    let rest = if lower(7).as_deref() == Some(b"http://") {
        &target[7..]
    } else if lower(8).as_deref() == Some(b"https://") {
        &target[8..]
    } else {
        return None;
    };
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The cookie rule of POLICY.md ("Cookie tokens and cross-site requests"): `Some(why)` when a
/// `cookie:` token must not be used as a credential for this request.
fn cross_site(facts: &RequestFacts<'_>, route: &Route, upgrade: bool) -> Option<&'static str> {
    let headers = facts.headers;
    let origin = headers.get(http::header::ORIGIN).map(HeaderValue::as_bytes);
    let listed = |o: &str| {
        let list = if upgrade {
            route.websocket.as_ref().and_then(|w| w.origins.as_deref())
        } else {
            route.cors.as_ref().map(|c| &*c.origins)
        };
        list.is_some_and(|l| l.find(o).is_some())
    };
    let origin_allowed = match origin {
        None => None,
        Some(raw) => {
            let o = std::str::from_utf8(raw).unwrap_or("");
            Some(same_origin(facts, o) || listed(o))
        }
    };
    if origin_allowed == Some(false) {
        return Some("cookie ignored: the request's Origin is another site and not allowed");
    }
    let cross = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross && origin_allowed != Some(true) {
        return Some("cookie ignored: Sec-Fetch-Site is cross-site and no allowed Origin");
    }
    None
}

/// Whether `origin` is the request's own origin: the listener's scheme and `Host`.
fn same_origin(facts: &RequestFacts<'_>, origin: &str) -> bool {
    let Some(host) = facts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let scheme = if facts.tls { "https" } else { "http" };
    match (
        Origin::parse(&format!("{scheme}://{host}")),
        Origin::parse(origin),
    ) {
        (Some(own), Some(theirs)) => own == theirs,
        _ => false,
    }
}

/// Every `query:` token parameter the route's provider lists is removed, whether or not it
/// was the credential that authenticated the request.
fn strip_token_params(query: &str, route: &Route) -> Option<String> {
    let params: Vec<&str> = match &route.auth {
        RouteAuth::Provider(p) => match &p.kind {
            AuthKind::Jwt(j) => j.query_params().collect(),
            AuthKind::Basic(_) => Vec::new(),
        },
        RouteAuth::None => Vec::new(),
    };
    if params.is_empty() {
        return Some(query.to_string());
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !params.contains(&name)
        })
        .collect();
    let out = kept.join("&");
    (!out.is_empty()).then_some(out)
}

/// Deny wins, then allow (absent allow = allow all): whether `ip` is admitted.
pub fn access_admits(rule: &AccessRule, ip: IpAddr) -> bool {
    if rule.deny.iter().any(|n| n.contains(&ip)) {
        return false;
    }
    match &rule.allow {
        None => true,
        Some(allow) => in_nets(allow, ip).is_some(),
    }
}

/// The rule of `rule` that decides for `ip`, for the trail.
pub fn explain_access(rule: &AccessRule, ip: IpAddr) -> String {
    if let Some(i) = rule.deny.iter().position(|n| n.contains(&ip)) {
        return format!("{ip} is in {}.deny[{i}] ({})", rule.key, rule.deny[i]);
    }
    match &rule.allow {
        None => format!("{ip}: {} has no allow list (allow all)", rule.key),
        Some(allow) => match allow.iter().position(|n| n.contains(&ip)) {
            Some(i) => format!("{ip} is in {}.allow[{i}] ({})", rule.key, allow[i]),
            None => format!("{ip} is not in {}.allow", rule.key),
        },
    }
}

fn value_strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        Value::Bool(b) => vec![b.to_string()],
        _ => Vec::new(),
    }
}

/// `require.claims` semantics: equals any accepted value; an array claim matches if any
/// element does; a space-separated `scope` string is a set.
pub fn claim_matches(name: &str, value: Option<&Value>, accepted: &[String]) -> bool {
    let Some(value) = value else { return false };
    let present: Vec<String> = match value {
        Value::Array(items) => items.iter().flat_map(value_strings).collect(),
        Value::String(s) if name == "scope" => s.split_whitespace().map(str::to_string).collect(),
        v => value_strings(v),
    };
    present.iter().any(|p| accepted.iter().any(|a| a == p))
}

fn claim_headers(route: &Route, id: &Identity) -> Vec<(HeaderName, HeaderValue)> {
    let RouteAuth::Provider(p) = &route.auth else {
        return Vec::new();
    };
    let AuthKind::Jwt(jwt) = &p.kind else {
        return Vec::new();
    };
    jwt.forward_claims
        .iter()
        .filter_map(|(claim, header)| {
            let text = match id.claims.get(claim)? {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .flat_map(value_strings)
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            HeaderValue::from_str(&text)
                .ok()
                .map(|v| (header.clone(), v))
        })
        .collect()
}

/// Builds facts for tests and tools that hold owned request parts.
pub fn facts_for<'a>(
    peer: IpAddr,
    method: &'a Method,
    target: &'a [u8],
    headers: &'a HeaderMap,
    now: u64,
) -> RequestFacts<'a> {
    RequestFacts {
        peer,
        method,
        target,
        headers,
        head_bytes: RequestFacts::measure_head(method, target, headers),
        now,
        version: Version::HTTP_11,
        tls: false,
        assumed_identity: None,
    }
}
