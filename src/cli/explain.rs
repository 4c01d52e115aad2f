//! `gatehouse explain`: one request through the same decision the proxy runs, printed step
//! by step with the rule that decided each.

use std::net::IpAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::OutputFormat;
use crate::config;
use crate::policy::explain::{to_json, to_text};
use crate::policy::{decide, RequestFacts};

/// Exit 0 whatever the decision; 1 for an invalid policy; 2 for bad arguments.
pub fn explain(
    config_path: &Path,
    method: &str,
    path: &str,
    ip: &str,
    headers: &[String],
    format: OutputFormat,
) -> i32 {
    let policy = match config::load(config_path) {
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
    };
    let decision = decide(&policy, &facts, true);
    match format {
        OutputFormat::Text => print!("{}", to_text(&policy, &decision)),
        OutputFormat::Json => println!("{}", to_json(&policy, &decision)),
    }
    0
}
