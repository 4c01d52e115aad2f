//! `gatehouse explain`: one request through the same decision the proxy runs, printed step
//! by step with the rule that decided each: a table for people, JSON for scripts
//! (`{"decision","status","reason","route","step","trail":[{"step","verdict","rule"}]}`).

use std::net::IpAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::json;

use super::OutputFormat;
use crate::config;
use crate::policy::{decide, Decision, Outcome, Policy, RequestFacts};

/// Exit 0 whatever the decision; 1 for an invalid policy; 2 for bad arguments.
pub fn explain(
    config_path: &Path,
    method: &str,
    path: &str,
    ip: &str,
    headers: &[String],
    tls: bool,
    format: OutputFormat,
) -> i32 {
    // Secrets are optional: without one, every step before authentication is still
    // explained, and the step that needs it says it could not be evaluated.
    let policy = match config::load_with(config_path, config::Secrets::Optional) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        eprintln!("error: {method:?} is not an HTTP method");
        return 2;
    };
    let Ok(peer) = ip.parse::<IpAddr>() else {
        eprintln!("error: --ip {ip:?} is not an IP address");
        return 2;
    };
    let mut map = HeaderMap::new();
    for h in headers {
        let Some((name, value)) = h.split_once(':') else {
            eprintln!("error: -H {h:?}: expected 'Name: value'");
            return 2;
        };
        match (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            (Ok(n), Ok(v)) => {
                map.append(n, v);
            }
            _ => {
                eprintln!("error: -H {h:?} is not a valid header");
                return 2;
            }
        }
    }
    // A request always carries Host; unless -H gives one, use the first listener's address.
    if !map.contains_key(http::header::HOST) {
        if let Some(l) = policy.server.listeners.first() {
            if let Ok(v) = HeaderValue::from_str(&l.addr.to_string()) {
                map.insert(http::header::HOST, v);
            }
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let facts = RequestFacts {
        peer,
        method: &method,
        target: path.as_bytes(),
        headers: &map,
        head_bytes: RequestFacts::measure_head(&method, path.as_bytes(), &map),
        now,
        version: http::Version::HTTP_11,
        tls,
        assumed_identity: None,
    };
    let decision = decide(&policy, &facts, true);
    match format {
        OutputFormat::Text => print!("{}", to_text(&policy, &decision)),
        OutputFormat::Json => println!("{}", to_json(&policy, &decision)),
    }
    0
}

/// The JSON form.
pub fn to_json(policy: &Policy, d: &Decision) -> serde_json::Value {
    let (decision, reason) = match &d.outcome {
        Outcome::Forward(_) | Outcome::Preflight(_) => ("allow", None),
        Outcome::Deny(den) if den.undetermined => ("undetermined", None),
        Outcome::Deny(den) => ("deny", Some(den.reason.as_str())),
    };
    let status = match &d.outcome {
        Outcome::Deny(den) if den.undetermined => None,
        _ => Some(d.status()),
    };
    let route = d
        .route
        .and_then(|i| policy.routes.get(i))
        .map(|r| r.name.clone());
    json!({
        "decision": decision,
        "status": status,
        "reason": reason,
        "route": route,
        "step": d.step(),
        "client_ip": d.client_ip.to_string(),
        "trail": d.trail.steps(),
    })
}

/// The text form.
pub fn to_text(policy: &Policy, d: &Decision) -> String {
    let mut out = String::new();
    let width = d
        .trail
        .steps()
        .iter()
        .map(|s| s.step.len())
        .max()
        .unwrap_or(0);
    for s in d.trail.steps() {
        out.push_str(&format!(
            "{:<width$}  {:<13}  {}\n",
            s.step, s.verdict, s.rule
        ));
    }
    let route = d
        .route
        .and_then(|i| policy.routes.get(i))
        .map_or("-".to_string(), |r| r.name.clone());
    match &d.outcome {
        Outcome::Forward(f) => {
            let q = f
                .query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "=> ALLOW {} (route {route}): forwarded as {}{q}\n",
                d.status(),
                f.path
            ));
        }
        Outcome::Preflight(p) => {
            out.push_str(&format!(
                "=> PREFLIGHT 204 (route {route}): answered by the proxy with {}\n",
                p.headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        Outcome::Deny(den) if den.undetermined => {
            out.push_str(&format!(
                "=> UNDETERMINED at {} (route {route}): {}; set the secret to evaluate it\n",
                den.step,
                den.cause.as_deref().unwrap_or(&den.message)
            ));
        }
        Outcome::Deny(den) => {
            out.push_str(&format!(
                "=> DENY {} {} (route {route}): {}\n",
                d.status(),
                den.reason,
                den.message
            ));
        }
    }
    out
}
