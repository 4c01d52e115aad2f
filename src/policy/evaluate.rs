//! The decision: compiled policy + request facts → verdict + trail, in the order of
//! `POLICY.md` ("Evaluation order"), stopping at the first denial. Pure: no I/O, no clock
//! (the time comes in the facts), no shared state. Stateful steps (connection caps, rate
//! limits, queues) are enforced by the runtime around this call and are recorded here as
//! "not evaluated".

use http::{HeaderName, HeaderValue};
use serde_json::Value;

use super::auth::{jwt::strip_query_param, AuthFailure, AuthKind, Identity};
use super::client_ip::{client_ip, in_nets};
use super::decision::{Decision, Denial, Forward, Outcome, Reason, Trail};
use super::facts::RequestFacts;
use super::model::{AccessRule, Policy, Route, RouteAuth};
use super::path::normalize_target;

/// Evaluates one request. `record` turns the trail on (`explain`, debugging); the verdict is
/// the same either way.
pub fn decide(policy: &Policy, facts: &RequestFacts<'_>, record: bool) -> Decision {
    let mut trail = Trail::new(record);
    let client = client_ip(facts.peer, &policy.server.trusted_proxies, facts.headers);
    trail.record("client_ip", "pass", || {
        format!("{} — {}", client.ip, client.how)
    });
    let ip = client.ip;
    let (route, outcome) = evaluate(policy, facts, ip, &mut trail);
    Decision {
        client_ip: ip,
        route,
        outcome,
        trail,
    }
}

fn deny(reason: Reason, message: impl Into<String>) -> Outcome {
    Outcome::Deny(Denial::new(reason, message))
}

fn evaluate(
    policy: &Policy,
    facts: &RequestFacts<'_>,
    ip: std::net::IpAddr,
    trail: &mut Trail,
) -> (Option<usize>, Outcome) {
    // 0. Head limits (431).
    let limits = &policy.server.limits;
    if facts.headers.len() > limits.max_headers as usize {
        trail.record("head", "deny", || {
            format!("server.limits.max_headers = {}", limits.max_headers)
        });
        return (
            None,
            deny(
                Reason::HeadersTooLarge,
                format!("more than {} header lines", limits.max_headers),
            ),
        );
    }
    if facts.head_bytes as u64 > limits.max_header_bytes {
        trail.record("head", "deny", || {
            format!(
                "server.limits.max_header_bytes = {}",
                limits.max_header_bytes
            )
        });
        return (
            None,
            deny(
                Reason::HeadersTooLarge,
                format!("request head over {} bytes", limits.max_header_bytes),
            ),
        );
    }

    // 2. Global access.
    if let Some(rule) = &policy.access {
        match check_access(rule, ip) {
            Ok(why) => trail.record("access", "pass", || why),
            Err(why) => {
                trail.record("access", "deny", || why);
                return (None, deny(Reason::IpDenied, "your address is not allowed"));
            }
        }
    } else {
        trail.record("access", "pass", || {
            "no global access rule (allow all)".into()
        });
    }

    // 3. connections_per_ip (stateful).
    if let Some(n) = limits.connections_per_ip {
        trail.record("connections_per_ip", "not evaluated", || {
            format!("server.limits.connections_per_ip = {n} (stateful)")
        });
    }

    // 4. Path normalization.
    let target = match normalize_target(facts.target) {
        Ok(t) => {
            trail.record("path", "pass", || format!("normalized to {}", t.path));
            t
        }
        Err(e) => {
            trail.record("path", "deny", || e.0.to_string());
            return (None, deny(Reason::BadPath, e.0));
        }
    };

    // 6. Route match (path and method; first in file order).
    let mut path_matched = Vec::new();
    let mut chosen = None;
    for r in &policy.routes {
        if r.path.matches(&target.path) {
            if r.allows_method(facts.method) {
                chosen = Some(r);
                break;
            }
            path_matched.push(r);
        }
    }
    let Some(route) = chosen else {
        if path_matched.is_empty() {
            trail.record("route", "deny", || {
                format!("no route matches {}", target.path)
            });
            return (None, deny(Reason::NoRoute, "no route for this path"));
        }
        let mut allow: Vec<&str> = Vec::new();
        for r in &path_matched {
            for m in r.methods.iter().flatten() {
                if !allow.contains(&m.as_str()) {
                    allow.push(m.as_str());
                }
            }
        }
        let allow = allow.join(", ");
        trail.record("route", "deny", || {
            let names: Vec<String> = path_matched
                .iter()
                .map(|r| format!("{} ({})", r.name, r.key()))
                .collect();
            format!(
                "path matched {} but not method {}; allowed: {allow}",
                names.join(", "),
                facts.method
            )
        });
        let mut d = Denial::new(
            Reason::MethodNotAllowed,
            format!("method {} not allowed here", facts.method),
        );
        d.headers.push((http::header::ALLOW, allow));
        return (None, Outcome::Deny(d));
    };
    let rid = Some(route.index);
    trail.record("route", "pass", || {
        format!("{} ({}.match)", route.name, route.key())
    });

    // 7. Route access.
    if let Some(rule) = &route.access {
        match check_access(rule, ip) {
            Ok(why) => trail.record("route_access", "pass", || why),
            Err(why) => {
                trail.record("route_access", "deny", || why);
                return (
                    rid,
                    deny(
                        Reason::IpDenied,
                        "your address is not allowed on this route",
                    ),
                );
            }
        }
    }

    // 8. Origins: WebSocket upgrades on routes with websocket.origins; cors.enforce.
    let upgrade = facts.is_websocket_upgrade();
    if let Err(o) = check_origin(route, facts, upgrade, trail) {
        return (rid, *o);
    }

    // 9. Auth.
    let websocket_route = route.websocket.is_some();
    let identity = match &route.auth {
        RouteAuth::None => {
            trail.record("auth", "pass", || {
                format!("auth: none ({}.auth)", route.key())
            });
            None
        }
        RouteAuth::Provider(p) => match p.authenticate(
            facts.headers,
            target.query.as_deref(),
            websocket_route,
            facts.now,
        ) {
            Ok(id) => {
                trail.record("auth", "pass", || {
                    format!(
                        "{} via {} (auth.{}), subject {:?}",
                        p.name,
                        id.source,
                        p.name,
                        id.subject.as_deref().unwrap_or("-")
                    )
                });
                Some(id)
            }
            Err(failure) => {
                let (reason, cause) = match &failure {
                    AuthFailure::Missing { cause } => (Reason::AuthRequired, cause),
                    AuthFailure::TokenInvalid { cause } => (Reason::TokenInvalid, cause),
                    AuthFailure::CredentialsInvalid { cause } => {
                        (Reason::CredentialsInvalid, cause)
                    }
                };
                trail.record("auth", "deny", || format!("auth.{}: {cause}", p.name));
                let message = match reason {
                    Reason::AuthRequired => "authentication required",
                    Reason::TokenInvalid => "the token was rejected",
                    _ => "the credentials were rejected",
                };
                let mut d = Denial::new(reason, message);
                d.headers
                    .push((http::header::WWW_AUTHENTICATE, p.challenge(&failure)));
                d.cause = Some(cause.clone());
                return (rid, Outcome::Deny(d));
            }
        },
    };

    // 10. require.claims
    if !route.require_claims.is_empty() {
        let claims = identity.as_ref().map(|i| &i.claims);
        for req in &route.require_claims {
            let value = claims.and_then(|c| c.get(&req.claim));
            if !claim_matches(&req.claim, value, &req.values) {
                trail.record("claims", "deny", || {
                    format!(
                        "{}.require.claims.{} needs one of {:?}",
                        route.key(),
                        req.claim,
                        req.values
                    )
                });
                return (
                    rid,
                    deny(
                        Reason::InsufficientClaims,
                        format!("claim {:?} does not allow this route", req.claim),
                    ),
                );
            }
        }
        trail.record("claims", "pass", || {
            format!("{}.require.claims satisfied", route.key())
        });
    }

    // 11–14. Stateful or body-time steps.
    if let Some(rl) = &route.rate_limit {
        trail.record("rate_limit", "not evaluated", || {
            format!("{} (stateful)", rl.key)
        });
    }
    if let Some(ws) = &route.websocket {
        if upgrade && (ws.max_per_ip.is_some() || ws.max_per_subject.is_some()) {
            trail.record("websocket_limits", "not evaluated", || {
                format!("{}.websocket (stateful)", route.key())
            });
        }
    }
    if let Some(max) = route.max_body {
        trail.record("max_body", "not evaluated", || {
            format!("{max} bytes (checked while the body streams)")
        });
    }
    if route.concurrency.is_some() {
        trail.record("concurrency", "not evaluated", || {
            format!("{}.concurrency (stateful)", route.key())
        });
    }

    // 15. Forward.
    let query = match (
        &target.query,
        identity
            .as_ref()
            .and_then(|i| i.strip_query_param.as_deref()),
    ) {
        (Some(q), Some(param)) => strip_query_param(q, param),
        (q, None) => q.clone(),
        (None, Some(_)) => None,
    };
    let claim_headers = identity
        .as_ref()
        .map(|id| claim_headers(route, id))
        .unwrap_or_default();
    trail.record("forward", "pass", || {
        format!("to upstream as {}", target.path)
    });
    (
        rid,
        Outcome::Forward(Forward {
            path: target.path,
            query,
            identity,
            claim_headers,
        }),
    )
}

fn check_origin(
    route: &Route,
    facts: &RequestFacts<'_>,
    upgrade: bool,
    trail: &mut Trail,
) -> Result<(), Box<Outcome>> {
    let origin = facts
        .headers
        .get(http::header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if upgrade {
        if let Some(ws) = &route.websocket {
            if let Some(list) = &ws.origins {
                match origin {
                    None if ws.allow_missing_origin => {
                        trail.record("origin", "pass", || {
                            format!("no Origin; {}.websocket.allow_missing_origin", route.key())
                        });
                    }
                    None => {
                        trail.record("origin", "deny", || {
                            format!(
                                "WebSocket upgrade without Origin ({}.websocket.origins)",
                                route.key()
                            )
                        });
                        return Err(Box::new(deny(
                            Reason::OriginDenied,
                            "a WebSocket upgrade must send an allowed Origin",
                        )));
                    }
                    Some(o) => match list.find(o) {
                        Some(i) => trail.record("origin", "pass", || {
                            format!("{o} matches {}[{i}]", list.key)
                        }),
                        None => {
                            trail.record("origin", "deny", || {
                                format!("{o:?} is not on {}", list.key)
                            });
                            return Err(Box::new(deny(Reason::OriginDenied, "origin not allowed")));
                        }
                    },
                }
                return Ok(());
            }
        }
    }
    if let (Some(cors), Some(o)) = (&route.cors, origin) {
        match cors.origins.find(o) {
            Some(i) => trail.record("origin", "pass", || {
                format!("{o} matches {}[{i}]", cors.origins.key)
            }),
            None if cors.enforce => {
                trail.record("origin", "deny", || {
                    format!(
                        "{o:?} is not on {} and {}.cors.enforce is true",
                        cors.origins.key,
                        route.key()
                    )
                });
                return Err(Box::new(deny(Reason::OriginDenied, "origin not allowed")));
            }
            None => trail.record("origin", "pass", || {
                format!(
                    "{o:?} is not on {}: forwarded without CORS headers",
                    cors.origins.key
                )
            }),
        }
    }
    Ok(())
}

/// Deny wins, then allow (absent allow = allow all). `Ok`/`Err` carry the deciding rule.
pub fn check_access(rule: &AccessRule, ip: std::net::IpAddr) -> Result<String, String> {
    if let Some(i) = rule.deny.iter().position(|n| n.contains(&ip)) {
        return Err(format!(
            "{ip} is in {}.deny[{i}] ({})",
            rule.key, rule.deny[i]
        ));
    }
    match &rule.allow {
        None => Ok(format!("{ip}: {} has no allow list (allow all)", rule.key)),
        Some(allow) => match in_nets(allow, ip) {
            Some(net) => {
                let i = allow.iter().position(|n| n == net).unwrap_or(0);
                Ok(format!("{ip} is in {}.allow[{i}] ({net})", rule.key))
            }
            None => Err(format!("{ip} is not in {}.allow", rule.key)),
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
