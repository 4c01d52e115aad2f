//! `gatehouse dump`: the effective policy — every default resolved, every inherited value
//! written out on the route that inherits it — in the policy format itself, so `check` accepts
//! it and it decides exactly like the original (the decision table proves it row by row).
//! Secrets never appear: a key is named by where it comes from (`secret_env: NAME`, a file),
//! which the policy file already says.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::config;
use crate::policy::auth::jwt::KeySource;
use crate::policy::auth::AuthKind;
use crate::policy::model::{AccessRule, PathMatch, Policy, Rate, RouteAuth};
use crate::policy::origin::OriginList;

fn duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

fn rate(r: Rate) -> String {
    format!("{}/{}", r.count, duration(r.period))
}

fn access(a: &AccessRule) -> Value {
    let mut m = Map::new();
    if let Some(allow) = &a.allow {
        m.insert(
            "allow".into(),
            json!(allow.iter().map(ToString::to_string).collect::<Vec<_>>()),
        );
    }
    m.insert(
        "deny".into(),
        json!(a.deny.iter().map(ToString::to_string).collect::<Vec<_>>()),
    );
    Value::Object(m)
}

fn entries(l: &OriginList) -> Value {
    json!(l
        .entries
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>())
}

/// A reference to a named list, or the list itself when it was written inline.
fn origins_ref(l: &OriginList) -> Value {
    match l.key.strip_prefix("origins.") {
        Some(name) => json!(name),
        None => entries(l),
    }
}

/// The effective policy as a JSON value in the policy format.
pub fn effective(p: &Policy) -> Value {
    let s = &p.server;
    let listen: Vec<Value> = s
        .listeners
        .iter()
        .map(|l| match &l.tls {
            Some(t) => json!({"addr": l.addr.to_string(), "tls": {"cert": t.cert, "key": t.key}}),
            None => json!({"addr": l.addr.to_string()}),
        })
        .collect();
    let mut limits = Map::new();
    if let Some(n) = s.limits.connections_per_ip {
        limits.insert("connections_per_ip".into(), json!(n));
    }
    limits.insert(
        "max_header_bytes".into(),
        json!(s.limits.max_header_bytes.to_string()),
    );
    limits.insert("max_headers".into(), json!(s.limits.max_headers));
    if let Some(r) = s.limits.auth_failures_per_ip {
        limits.insert("auth_failures_per_ip".into(), json!(rate(r)));
    }
    let mut server = json!({
        "listen": listen,
        "client_ip": {"trusted_proxies": s.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>()},
        "timeouts": {
            "request_header": duration(s.timeouts.request_header),
            "http_idle": duration(s.timeouts.http_idle),
            "upstream_read": duration(s.timeouts.upstream_read),
            "websocket_idle": duration(s.timeouts.websocket_idle),
        },
        "limits": limits,
        "paths": {"allow_semicolon": s.paths.allow_semicolon, "case_insensitive": s.paths.case_insensitive},
        "headers": {"allow_underscores": s.headers.allow_underscores},
    });
    if let (Some(a), Some(o)) = (s.admin, server.as_object_mut()) {
        o.insert("admin".into(), json!(a.to_string()));
    }

    let mut auth = Map::new();
    for prov in &p.providers {
        let v = match &prov.kind {
            AuthKind::Jwt(j) => {
                let mut m = Map::new();
                m.insert(
                    "algorithms".into(),
                    json!(j
                        .algorithms
                        .iter()
                        .map(|a| format!("{a:?}"))
                        .collect::<Vec<_>>()),
                );
                let (k, v) = match &j.key_source {
                    KeySource::Env(n) => ("secret_env", json!(n)),
                    KeySource::SecretFile(f) => ("secret_file", json!(f)),
                    KeySource::Jwks(f) => ("jwks_file", json!(f)),
                    KeySource::PublicKey(f) => ("public_key_file", json!(f)),
                };
                m.insert(k.into(), v);
                if let Some(i) = &j.issuer {
                    m.insert("issuer".into(), json!(i));
                }
                if !j.audience.is_empty() {
                    m.insert("audience".into(), json!(j.audience));
                }
                m.insert("leeway".into(), json!(format!("{}s", j.leeway)));
                m.insert(
                    "token_sources".into(),
                    json!(j.sources.iter().map(|s| s.label()).collect::<Vec<_>>()),
                );
                let claims: Map<String, Value> = j
                    .forward_claims
                    .iter()
                    .map(|(c, h)| (c.clone(), json!(h.as_str())))
                    .collect();
                m.insert("forward_claims".into(), Value::Object(claims));
                json!({ "jwt": m })
            }
            AuthKind::Basic(b) => json!({"basic": {"realm": b.realm, "htpasswd": b.htpasswd}}),
        };
        auth.insert(prov.name.clone(), v);
    }

    let mut origins = Map::new();
    for l in &p.origin_lists {
        let name = l.key.strip_prefix("origins.").unwrap_or(&l.key).to_string();
        let v = if l.loopback_aliases {
            json!({"origins": entries(l), "loopback_aliases": true})
        } else {
            entries(l)
        };
        origins.insert(name, v);
    }

    let routes: Vec<Value> = p
        .routes
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("name".into(), json!(r.name));
            let mut matcher = match &r.path {
                PathMatch::Exact(x) => json!({"path": x}),
                PathMatch::Prefix(x) => json!({"prefix": x}),
            };
            if let (Some(methods), Some(o)) = (&r.methods, matcher.as_object_mut()) {
                o.insert(
                    "methods".into(),
                    json!(methods.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
                );
            }
            m.insert("match".into(), matcher);
            if let Some(a) = &r.access {
                m.insert("access".into(), access(a));
            }
            m.insert(
                "auth".into(),
                match &r.auth {
                    RouteAuth::None => json!("none"),
                    RouteAuth::Provider(p) => json!(p.name),
                },
            );
            if !r.require_claims.is_empty() {
                let claims: Map<String, Value> = r
                    .require_claims
                    .iter()
                    .map(|c| (c.claim.clone(), json!(c.values)))
                    .collect();
                m.insert("require".into(), json!({ "claims": claims }));
            }
            if r.cors_upstream {
                m.insert("cors".into(), json!("upstream"));
            }
            if let Some(c) = &r.cors {
                let mut cors = json!({
                    "origins": origins_ref(&c.origins),
                    "credentials": c.credentials,
                    "methods": c.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                    "headers": c.headers,
                    "expose_headers": c.expose_headers,
                    "enforce": c.enforce,
                });
                if let (Some(age), Some(o)) = (c.max_age, cors.as_object_mut()) {
                    o.insert("max_age".into(), json!(duration(age)));
                }
                m.insert("cors".into(), cors);
            }
            if let Some(ws) = &r.websocket {
                let mut w = Map::new();
                if let Some(o) = &ws.origins {
                    w.insert("origins".into(), origins_ref(o));
                }
                if let Some(n) = ws.max_per_ip {
                    w.insert("max_per_ip".into(), json!(n));
                }
                if let Some(n) = ws.max_per_subject {
                    w.insert("max_per_subject".into(), json!(n));
                }
                let idle = ws.idle_timeout.unwrap_or(s.timeouts.websocket_idle);
                w.insert("idle_timeout".into(), json!(duration(idle)));
                w.insert("allow_missing_origin".into(), json!(ws.allow_missing_origin));
                w.insert("close_on_token_expiry".into(), json!(ws.close_on_token_expiry));
                m.insert("websocket".into(), Value::Object(w));
            }
            if let Some(b) = r.max_body {
                m.insert("max_body".into(), json!(b.to_string()));
            }
            let upstream = r.upstream_timeout.unwrap_or(s.timeouts.upstream_read);
            m.insert("upstream_timeout".into(), json!(duration(upstream)));
            m.insert(
                "rate_limit".into(),
                match &r.rate_limit {
                    None => json!("none"),
                    Some(rl) => {
                        let mut l = Map::new();
                        if let Some(x) = rl.per_ip {
                            l.insert("per_ip".into(), json!(rate(x)));
                        }
                        if let Some(x) = rl.per_subject {
                            l.insert("per_subject".into(), json!(rate(x)));
                        }
                        l.insert("burst".into(), json!(rl.burst));
                        l.insert("shadow".into(), json!(rl.shadow));
                        Value::Object(l)
                    }
                },
            );
            if let Some(c) = r.concurrency {
                m.insert(
                    "concurrency".into(),
                    json!({"max_in_flight": c.max_in_flight, "queue": c.queue, "queue_timeout": duration(c.queue_timeout)}),
                );
            }
            Value::Object(m)
        })
        .collect();

    let mut out = json!({
        "version": 1,
        "server": server,
        "upstream": {"addr": p.upstream.addr.to_string(), "connect_timeout": duration(p.upstream.connect_timeout)},
        "auth": auth,
        "origins": origins,
        "routes": routes,
    });
    if let (Some(a), Some(o)) = (&p.access, out.as_object_mut()) {
        o.insert("access".into(), access(a));
    }
    out
}

/// Prints the effective policy (YAML or JSON); exit 1 for an invalid policy.
pub fn dump(path: &Path, json_out: bool) -> i32 {
    let policy = match config::load_with(path, config::Secrets::Optional) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let v = effective(&policy);
    let text = if json_out {
        serde_json::to_string_pretty(&v).map_err(|e| e.to_string())
    } else {
        serde_yaml::to_string(&v).map_err(|e| e.to_string())
    };
    match text {
        Ok(t) => {
            if !json_out {
                println!(
                    "# Effective policy of {} (gatehouse dump): every default resolved.",
                    path.display()
                );
            }
            println!("{t}");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
