//! `gatehouse test`: policy unit tests, as `opa test` is for OPA. Each case is a request, an
//! optional identity ("authenticated by the route's provider with these claims", so tests need
//! no production secret or private key) and what must happen. Every case is decided by the
//! same pure `decide()` the proxy runs; stateful limits are not evaluated.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config;
use crate::policy::auth::Identity;
use crate::policy::{decide, Decision, Outcome, Policy, RequestFacts};

/// A tests file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    tests: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    request: Request,
    identity: Option<GivenIdentity>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default = "get")]
    method: String,
    path: String,
    #[serde(default = "loopback")]
    ip: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    tls: bool,
}

fn get() -> String {
    "GET".into()
}
fn loopback() -> String {
    "127.0.0.1".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GivenIdentity {
    #[serde(default)]
    claims: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    decision: String,
    route: Option<String>,
    status: Option<u16>,
    reason: Option<String>,
    step: Option<String>,
}

/// What one case got.
struct Got {
    decision: &'static str,
    route: Option<String>,
    status: u16,
    reason: Option<String>,
    step: &'static str,
}

fn got(policy: &Policy, d: &Decision) -> Got {
    let (decision, reason) = match &d.outcome {
        Outcome::Forward(_) => ("allow", None),
        Outcome::Preflight(_) => ("preflight", None),
        Outcome::Deny(den) if den.undetermined => ("undetermined", None),
        Outcome::Deny(den) => ("deny", Some(den.reason.as_str().to_string())),
    };
    Got {
        decision,
        route: d
            .route
            .and_then(|i| policy.routes.get(i))
            .map(|r| r.name.clone()),
        status: d.status(),
        reason,
        step: d.step(),
    }
}

fn mismatches(want: &Expect, got: &Got) -> Vec<String> {
    let mut out = Vec::new();
    if want.decision != got.decision {
        out.push(format!(
            "decision: expected {}, got {}",
            want.decision, got.decision
        ));
    }
    if let Some(r) = &want.route {
        if got.route.as_deref() != Some(r.as_str()) {
            out.push(format!(
                "route: expected {r}, got {}",
                got.route.as_deref().unwrap_or("none")
            ));
        }
    }
    if let Some(s) = want.status {
        if s != got.status {
            out.push(format!("status: expected {s}, got {}", got.status));
        }
    }
    if let Some(r) = &want.reason {
        if got.reason.as_deref() != Some(r.as_str()) {
            out.push(format!(
                "reason: expected {r}, got {}",
                got.reason.as_deref().unwrap_or("none")
            ));
        }
    }
    if let Some(s) = &want.step {
        if s != got.step {
            out.push(format!("step: expected {s}, got {}", got.step));
        }
    }
    out
}

/// Runs one case; `Err` is why the case could not be built.
fn run_case(policy: &Policy, c: &Case, now: u64) -> Result<(Got, Decision), String> {
    let method = Method::from_bytes(c.request.method.as_bytes())
        .map_err(|_| format!("{:?} is not a method", c.request.method))?;
    let peer: IpAddr = c
        .request
        .ip
        .parse()
        .map_err(|_| format!("ip {:?} is not an address", c.request.ip))?;
    let mut headers = HeaderMap::new();
    for (n, v) in &c.request.headers {
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("header {n:?}"))?;
        let value = HeaderValue::from_str(v).map_err(|_| format!("header {n}: {v:?}"))?;
        headers.append(name, value);
    }
    if !headers.contains_key(http::header::HOST) {
        if let Some(l) = policy.server.listeners.first() {
            if let Ok(v) = HeaderValue::from_str(&l.addr.to_string()) {
                headers.insert(http::header::HOST, v);
            }
        }
    }
    let identity = c.identity.as_ref().map(|i| Identity {
        subject: i
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .map(str::to_string),
        expires_at: None,
        claims: std::sync::Arc::new(i.claims.clone()),
        source: "test identity".into(),
    });
    let target = c.request.path.as_bytes();
    let facts = RequestFacts {
        peer,
        method: &method,
        target,
        headers: &headers,
        head_bytes: RequestFacts::measure_head(&method, target, &headers),
        now,
        version: Version::HTTP_11,
        tls: c.request.tls,
        assumed_identity: identity.as_ref(),
    };
    let d = decide(policy, &facts, true);
    Ok((got(policy, &d), d))
}

/// Exit 0 when every case passes, 1 when one fails, 2 when a file cannot be read.
pub fn test(config_path: &Path, files: &[std::path::PathBuf]) -> i32 {
    let policy = match config::load_with(config_path, config::Secrets::Optional) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (mut passed, mut failed) = (0, 0);
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return 2;
            }
        };
        let tests: TestFile = match serde_yaml::from_str(&text) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return 2;
            }
        };
        for c in &tests.tests {
            match run_case(&policy, c, now) {
                Err(why) => {
                    failed += 1;
                    println!("FAIL {}: {}: {why}", file.display(), c.name);
                }
                Ok((g, d)) => {
                    let wrong = mismatches(&c.expect, &g);
                    if wrong.is_empty() {
                        passed += 1;
                        println!("ok   {}", c.name);
                    } else {
                        failed += 1;
                        println!("FAIL {}: {}", file.display(), c.name);
                        for w in wrong {
                            println!("       {w}");
                        }
                        for s in d.trail.steps() {
                            println!("       | {:<18} {:<13} {}", s.step, s.verdict, s.rule);
                        }
                    }
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    i32::from(failed > 0)
}
