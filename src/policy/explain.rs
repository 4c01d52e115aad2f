//! Renders a [`Decision`] for `gatehouse explain`: a table for people, JSON for scripts
//! (`{"decision","status","reason","route","trail":[{"step","verdict","rule"}]}`).

use serde_json::json;

use super::decision::{Decision, Outcome};
use super::model::Policy;

/// The JSON form.
pub fn to_json(policy: &Policy, d: &Decision) -> serde_json::Value {
    let (decision, reason) = match &d.outcome {
        Outcome::Forward(_) => ("allow", None),
        Outcome::Deny(den) => ("deny", Some(den.reason.as_str())),
    };
    let route = d
        .route
        .and_then(|i| policy.routes.get(i))
        .map(|r| r.name.clone());
    json!({
        "decision": decision,
        "status": d.status(),
        "reason": reason,
        "route": route,
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
