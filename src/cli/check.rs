//! `gatehouse check`: validate a policy and summarize what it enforces.

use std::path::Path;

use crate::config;
use crate::policy::auth::AuthKind;
use crate::policy::model::{PathMatch, RouteAuth};
use crate::policy::Policy;

/// Exit 0 with a summary, or 1 with every error. `no_secrets` validates everything but the
/// JWT secrets (a reviewer's laptop, CI without production secrets).
pub fn check(path: &Path, no_secrets: bool) -> i32 {
    let secrets = if no_secrets {
        config::Secrets::Optional
    } else {
        config::Secrets::Required
    };
    match config::load_with(path, secrets) {
        Ok(policy) => {
            print!("{}", summary(&policy));
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let locator = config::locate::Locator::new(&text);
            for (key, message) in &policy.warnings {
                let (line, column) = locator.value(key);
                eprintln!(
                    "{}:{line}:{column}: {key}: warning: {message}",
                    path.display()
                );
            }
            0
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{}: {} error(s); the policy was not accepted",
                path.display(),
                errors.0.len()
            );
            1
        }
    }
}

/// A short human summary of a valid policy.
pub fn summary(p: &Policy) -> String {
    let mut out = format!("{}: OK\n", p.file.display());
    for l in &p.server.listeners {
        out.push_str(&format!(
            "  listen    {}{}\n",
            l.addr,
            if l.tls.is_some() { " (TLS)" } else { "" }
        ));
    }
    if let Some(a) = p.server.admin {
        out.push_str(&format!("  admin     {a}\n"));
    }
    out.push_str(&format!("  upstream  {}\n", p.upstream.addr));
    for prov in &p.providers {
        let kind = match &prov.kind {
            AuthKind::Jwt(j) => match &j.keys {
                crate::policy::auth::jwt::JwtKeys::Unavailable(why) => {
                    format!("jwt {:?}, secret not loaded: {why}", j.algorithms)
                }
                _ => format!("jwt {:?}", j.algorithms),
            },
            AuthKind::Basic(b) => format!("basic, {} user(s)", b.user_count()),
        };
        out.push_str(&format!("  auth      {} ({kind})\n", prov.name));
    }
    for r in &p.routes {
        let m = match &r.path {
            PathMatch::Exact(s) => format!("path {s}"),
            PathMatch::Prefix(s) => format!("prefix {s}"),
        };
        let methods = r.methods.as_ref().map_or("any".to_string(), |m| {
            m.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(",")
        });
        let auth = match &r.auth {
            RouteAuth::None => "none".to_string(),
            RouteAuth::Provider(p) => p.name.clone(),
        };
        let mut controls = Vec::new();
        if r.access.is_some() {
            controls.push("access".to_string());
        }
        if !r.require_claims.is_empty() {
            controls.push("claims".into());
        }
        if r.cors.is_some() {
            controls.push("cors".into());
        }
        if r.websocket.is_some() {
            controls.push("websocket".into());
        }
        if let Some(b) = r.max_body {
            controls.push(format!("max_body {b}B"));
        }
        if r.rate_limit.is_some() {
            controls.push("rate_limit".into());
        }
        if r.concurrency.is_some() {
            controls.push("concurrency".into());
        }
        out.push_str(&format!(
            "  route     {:<12} {m} [{methods}] auth={auth}{}\n",
            r.name,
            if controls.is_empty() {
                String::new()
            } else {
                format!(" {}", controls.join(" "))
            }
        ));
    }
    out
}
