//! `gatehouse audit`: settings that are valid but risky, each a finding with a stable id, a
//! severity, the key path and `file:line:col`, what is wrong and the fix. Reads the policy
//! through the same loader as `run`, without needing its secrets. Text for people, JSON for
//! scripts, SARIF 2.1.0 for code-scanning tools; exit 4 when a finding is at or above
//! `--fail-on` (default high).

use std::path::Path;
use std::time::Duration;

use clap::ValueEnum;
use ipnet::IpNet;
use serde::Serialize;
use serde_json::json;

use crate::config;
use crate::policy::auth::jwt::TokenSource;
use crate::policy::auth::{AuthKind, AuthProvider};
use crate::policy::model::{PathMatch, RouteAuth};
use crate::policy::origin::OriginPattern;
use crate::policy::Policy;

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a comment beside the key.
    Low,
    /// Fix or explain.
    Medium,
    /// Fix.
    High,
}

/// Output format of `audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// A list for people.
    Text,
    /// `{"findings":[...]}`.
    Json,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable id.
    pub id: &'static str,
    /// Severity.
    pub severity: Severity,
    /// Key path in the policy.
    pub key: String,
    /// Policy file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// A comment `# audit GHnnn ...` on the key's line or just above it explains why it stays:
    /// shown, but never fails the run.
    pub explained: bool,
}

/// The rules: id, severity, one-line description (SARIF's rule list).
const RULES: &[(&str, Severity, &str)] = &[
    (
        "GH001",
        Severity::High,
        "credentials over plain HTTP on a non-loopback listener",
    ),
    ("GH002", Severity::High, "admin listener not on loopback"),
    (
        "GH003",
        Severity::High,
        "trusted proxies wider than private ranges",
    ),
    (
        "GH004",
        Severity::Medium,
        "public route that is not health-style",
    ),
    (
        "GH005",
        Severity::Medium,
        "authenticated route without a rate limit",
    ),
    (
        "GH006",
        Severity::Medium,
        "authenticated routes without a brute-force guard",
    ),
    ("GH007", Severity::Medium, "WebSocket route without caps"),
    (
        "GH008",
        Severity::High,
        "WebSocket route without websocket.origins",
    ),
    (
        "GH009",
        Severity::High,
        "allow_missing_origin on a cookie-authenticated socket",
    ),
    ("GH010", Severity::Low, "cors: upstream"),
    (
        "GH011",
        Severity::Medium,
        "long-lived JWT WebSocket without close_on_token_expiry",
    ),
    (
        "GH012",
        Severity::Medium,
        "JWT provider without audience or issuer",
    ),
    ("GH013", Severity::Low, "JWT leeway above 30 s"),
    ("GH014", Severity::High, "HS secret file readable by others"),
    ("GH015", Severity::Medium, "weak or mixed htpasswd hashes"),
    ("GH016", Severity::Medium, "path or header hygiene relaxed"),
    ("GH017", Severity::Low, "CORS origin list allows any origin"),
];

fn severity_of(id: &str) -> Severity {
    RULES
        .iter()
        .find(|r| r.0 == id)
        .map_or(Severity::Medium, |r| r.1)
}

fn private(net: &IpNet) -> bool {
    let ranges: [IpNet; 7] = [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "fc00::/7",
        "::1/128",
        "169.254.0.0/16",
    ]
    .map(|r| r.parse().unwrap_or(IpNet::V4(Default::default())));
    ranges.iter().any(|r| r.contains(net) && r.prefix_len() > 0)
}

fn health_style(path: &PathMatch) -> bool {
    let p = match path {
        PathMatch::Exact(p) | PathMatch::Prefix(p) => p.to_ascii_lowercase(),
    };
    ["health", "ready", "live", "ping", "status", "version"]
        .iter()
        .any(|w| p.contains(w))
}

fn cookie_tokens(p: &AuthProvider) -> bool {
    matches!(&p.kind, AuthKind::Jwt(j) if j.sources.iter().any(|s| matches!(s, TokenSource::Cookie(_))))
}

/// Every finding on `policy` (key paths, not yet located).
pub fn findings(policy: &Policy) -> Vec<(&'static str, String, String, String)> {
    let mut out = Vec::new();
    let mut add = |id: &'static str, key: String, message: String, fix: &str| {
        out.push((id, key, message, fix.to_string()));
    };
    let s = &policy.server;
    let exposed_plain: Vec<String> = s
        .listeners
        .iter()
        .filter(|l| l.tls.is_none() && !l.addr.ip().is_loopback())
        .map(|l| l.addr.to_string())
        .collect();
    if let Some(a) = s.admin.filter(|a| !a.ip().is_loopback()) {
        add(
            "GH002",
            "server.admin".into(),
            format!("the admin listener {a} (metrics, readiness) is reachable beyond this host"),
            "bind it to 127.0.0.1 or ::1 and scrape through the host",
        );
    }
    for (i, n) in s.trusted_proxies.iter().enumerate() {
        if !private(n) {
            add(
                "GH003",
                format!("server.client_ip.trusted_proxies[{i}]"),
                format!("{n} is trusted to say who the client is: anyone there can forge X-Forwarded-For"),
                "list only your load balancers' addresses, or private ranges they live in",
            );
        }
    }
    let auth_routes = policy
        .routes
        .iter()
        .any(|r| matches!(r.auth, RouteAuth::Provider(_)));
    if auth_routes && s.limits.auth_failures_per_ip.is_none() {
        add(
            "GH006",
            "server.limits".into(),
            "routes require credentials but nothing limits failed attempts per IP".into(),
            "set server.limits.auth_failures_per_ip, e.g. \"20/1m\"",
        );
    }
    if s.paths.allow_semicolon {
        add(
            "GH016",
            "server.paths.allow_semicolon".into(),
            "';' path parameters pass: Java upstreams may route /admin;x/ to /admin/".into(),
            "turn it off unless the upstream needs matrix parameters; then explain it beside the key",
        );
    }
    if s.headers.allow_underscores {
        add(
            "GH016",
            "server.headers.allow_underscores".into(),
            "header names with '_' pass: CGI/WSGI/PHP upstreams read X_Foo as X-Foo".into(),
            "turn it off unless the upstream needs such names",
        );
    }
    for p in &policy.providers {
        let key = format!("auth.{}", p.name);
        match &p.kind {
            AuthKind::Jwt(j) => {
                if j.audience.is_empty() || j.issuer.is_none() {
                    add(
                        "GH012",
                        format!("{key}.jwt"),
                        "tokens are accepted without checking who issued them or for whom (issuer/audience)".into(),
                        "set issuer and audience so a token minted for another service is refused",
                    );
                }
                if j.leeway > 30 {
                    add(
                        "GH013",
                        format!("{key}.jwt.leeway"),
                        format!(
                            "{}s of clock skew keeps expired tokens alive that long",
                            j.leeway
                        ),
                        "30s or less",
                    );
                }
                if let Some(f) = &j.secret_file {
                    if other_readable(f) {
                        add(
                            "GH014",
                            format!("{key}.jwt.secret_file"),
                            format!(
                                "{} can be read by other users: they can mint tokens",
                                f.display()
                            ),
                            "chmod 600 (or 640 with a dedicated group)",
                        );
                    }
                }
            }
            AuthKind::Basic(b) => {
                let labels = b.cost_labels();
                let weak = labels.iter().any(|l| {
                    l.strip_prefix("bcrypt cost ")
                        .and_then(|c| c.parse::<u32>().ok())
                        .is_some_and(|c| c < 10)
                });
                let mut distinct = labels.clone();
                distinct.dedup();
                if weak || distinct.len() > 1 {
                    add(
                        "GH015",
                        format!("{key}.basic.htpasswd"),
                        format!(
                            "entries: {}{}",
                            distinct.join(", "),
                            if weak { " (bcrypt cost below 10 is cheap to brute-force)" } else { " (mixed: unknown users answer at another speed)" }
                        ),
                        "re-hash every entry with one algorithm and cost: gatehouse hash-password --algorithm argon2id",
                    );
                }
            }
        }
        let sends_secrets = matches!(p.kind, AuthKind::Basic(_)) || cookie_tokens(p);
        if sends_secrets && !exposed_plain.is_empty() {
            add(
                "GH001",
                key.clone(),
                format!(
                    "{} credentials travel in clear text on {}",
                    if matches!(p.kind, AuthKind::Basic(_)) { "basic-auth" } else { "cookie" },
                    exposed_plain.join(", ")
                ),
                "serve them on a TLS listener, or bind the plain listener to loopback behind a TLS-terminating proxy",
            );
        }
    }
    for r in &policy.routes {
        let key = r.key();
        let provider = match &r.auth {
            RouteAuth::Provider(p) => Some(p),
            RouteAuth::None => None,
        };
        if provider.is_none() && !health_style(&r.path) {
            add(
                "GH004",
                format!("{key}.auth"),
                format!("route {} is public", r.name),
                "require a provider, or keep public only health-style paths (and say why beside the key)",
            );
        }
        if provider.is_some() && r.rate_limit.is_none() {
            add(
                "GH005",
                key.clone(),
                format!(
                    "route {} requires credentials but has no rate limit",
                    r.name
                ),
                "set rate_limit (or inherit defaults.rate_limit)",
            );
        }
        if r.cors_upstream {
            add(
                "GH010",
                format!("{key}.cors"),
                format!(
                    "route {}: the upstream decides CORS and its preflights pass unauthenticated",
                    r.name
                ),
                "prefer the proxy's own cors block, so the policy file shows who may call",
            );
        }
        if let Some(c) = &r.cors {
            if c.origins.entries.contains(&OriginPattern::Any) {
                add(
                    "GH017",
                    format!("{key}.cors.origins"),
                    format!("route {}: any site may read its answers", r.name),
                    "list the origins that need it",
                );
            }
        }
        let Some(ws) = &r.websocket else { continue };
        let wk = format!("{key}.websocket");
        if ws.max_per_ip.is_none() && ws.max_per_subject.is_none() {
            add(
                "GH007",
                wk.clone(),
                format!(
                    "route {}: nothing bounds how many sockets one client holds",
                    r.name
                ),
                "set websocket.max_per_ip (and max_per_subject on authenticated sockets)",
            );
        }
        if ws.origins.is_none() {
            add(
                "GH008",
                wk.clone(),
                format!(
                    "route {}: any web page can open this socket (cross-site WebSocket hijacking)",
                    r.name
                ),
                "set websocket.origins",
            );
        }
        if ws.allow_missing_origin && provider.is_some_and(|p| cookie_tokens(p)) {
            add(
                "GH009",
                format!("{wk}.allow_missing_origin"),
                format!("route {}: an upgrade without Origin is admitted on a cookie-authenticated socket", r.name),
                "give non-browser clients a header or query token, or explain beside the key why it is needed",
            );
        }
        let jwt = provider.is_some_and(|p| matches!(p.kind, AuthKind::Jwt(_)));
        let idle = ws.idle_timeout.unwrap_or(s.timeouts.websocket_idle);
        if jwt && !ws.close_on_token_expiry && idle > Duration::from_secs(900) {
            add(
                "GH011",
                wk.clone(),
                format!(
                    "route {}: sockets may outlive their token by up to {}s of idle time, and for ever while busy",
                    r.name,
                    idle.as_secs()
                ),
                "set websocket.close_on_token_expiry: true",
            );
        }
    }
    out
}

#[cfg(unix)]
fn other_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn other_readable(_: &Path) -> bool {
    false
}

/// Runs `audit`; exit 0, 1 (invalid policy) or 4 (a finding at or above `fail_on`).
pub fn audit(path: &Path, format: AuditFormat, fail_on: Severity) -> i32 {
    let policy = match config::load_with(path, config::Secrets::Optional) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let list = located(&policy, path);
    match format {
        AuditFormat::Text => print!("{}", render_text(&list)),
        AuditFormat::Json => println!("{}", json!({ "findings": list })),
        AuditFormat::Sarif => println!("{}", sarif(&list)),
    }
    if list.iter().any(|f| f.severity >= fail_on && !f.explained) {
        4
    } else {
        0
    }
}

/// Every finding on `policy`, located in the file at `path`, most severe first.
pub fn located(policy: &Policy, path: &Path) -> Vec<Finding> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let locator = config::locate::Locator::new(&text);
    let file = path.display().to_string();
    let mut list: Vec<Finding> = findings(policy)
        .into_iter()
        .map(|(id, key, message, fix)| {
            let (line, column) = locator.key(&key);
            let marker = format!("audit {id}");
            let lines: Vec<&str> = text.lines().collect();
            let explained = (line.saturating_sub(4)..line)
                .filter_map(|i| lines.get(i))
                .any(|l| l.split_once('#').is_some_and(|(_, c)| c.contains(&marker)));
            Finding {
                explained,
                id,
                severity: severity_of(id),
                key,
                file: file.clone(),
                line,
                column,
                message,
                fix,
            }
        })
        .collect();
    list.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.line.cmp(&b.line)));
    list
}

fn render_text(list: &[Finding]) -> String {
    let mut out = String::new();
    for f in list {
        out.push_str(&format!(
            "{:<6} {}  {}:{}:{}  {}: {}{}\n       fix: {}\n",
            format!("{:?}", f.severity).to_uppercase(),
            f.id,
            f.file,
            f.line,
            f.column,
            f.key,
            f.message,
            if f.explained {
                " [explained beside the key]"
            } else {
                ""
            },
            f.fix
        ));
    }
    let count = |s: Severity| list.iter().filter(|f| f.severity == s).count();
    out.push_str(&format!(
        "{} finding(s): {} high, {} medium, {} low; {} explained\n",
        list.len(),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low),
        list.iter().filter(|f| f.explained).count()
    ));
    out
}

fn sarif(list: &[Finding]) -> serde_json::Value {
    let level = |s: Severity| match s {
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    };
    let rules: Vec<_> = RULES
        .iter()
        .map(|(id, sev, text)| {
            json!({
                "id": id,
                "shortDescription": { "text": text },
                "defaultConfiguration": { "level": level(*sev) },
            })
        })
        .collect();
    let results: Vec<_> = list
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.id,
                "level": if f.explained { "note" } else { level(f.severity) },
                "message": { "text": format!("{}: {} Fix: {}", f.key, f.message, f.fix) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": f.file },
                        "region": { "startLine": f.line.max(1), "startColumn": f.column.max(1) },
                    }
                }],
            })
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": { "driver": {
                "name": "gatehouse",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}
