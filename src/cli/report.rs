//! `gatehouse report`: the whole policy as one HTML page for auditors — every route against
//! the controls that guard it, the server settings, origin lists, providers and the `audit`
//! findings. Auditors read one file, often offline, attached to a ticket or printed, so the
//! page is self-contained: inline CSS only, no external assets, and no scripts at all (its
//! Content-Security-Policy forbids them), readable with scripts off. The policy file's SHA-256
//! ties the page to the exact text it describes.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::cli::audit::{self, Finding, Severity};
use crate::config;
use crate::policy::auth::jwt::JwtKeys;
use crate::policy::auth::{AuthKind, AuthProvider};
use crate::policy::model::{AccessRule, PathMatch, Rate, RouteAuth};
use crate::policy::origin::{OriginList, OriginPattern};
use crate::policy::Policy;

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;\
margin:2em;color:#111;line-height:1.4}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.5em;border-bottom:1px solid #999}\
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}\
th,td{border:1px solid #888;padding:.3em .5em;text-align:left;vertical-align:top;white-space:pre-line}\
th{background:#eee}code{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}dd{margin:0}\
tr.high td{background:#fdd}tr.medium td{background:#ffe9c7}tr.low td{background:#eef}\
.wide{overflow-x:auto}\
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}\
@media print{body{margin:0;font-size:9pt}.wide{overflow:visible}tr{break-inside:avoid}\
thead{display:table-header-group}h2{break-after:avoid}}";

/// HTML-escapes text (`& < > " '`).
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(secs: u64) -> String {
    let (y, m, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

fn sev_name(s: Severity) -> &'static str {
    match s {
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

/// A duration as the policy writes it: `1h`, `5m`, `30s`, `250ms`.
fn dur(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_nanos() != 0 || s == 0 {
        format!("{}ms", d.as_millis())
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn rate(r: &Rate) -> String {
    format!("{}/{}", r.count, dur(r.period))
}

fn unit(b: u64, size: u64, name: &str) -> String {
    if b % size == 0 {
        format!("{} {name}", b / size)
    } else {
        format!("{:.1} {name}", b as f64 / size as f64)
    }
}

fn bytes(b: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if b >= MIB {
        format!("{b} B ({})", unit(b, MIB, "MiB"))
    } else if b >= KIB {
        format!("{b} B ({})", unit(b, KIB, "KiB"))
    } else {
        format!("{b} B")
    }
}

fn opt(v: Option<u32>) -> String {
    v.map_or_else(|| "—".to_string(), |n| n.to_string())
}

fn yes(b: bool) -> String {
    (if b { "yes" } else { "no" }).to_string()
}

fn nets(v: &[IpNet]) -> String {
    if v.is_empty() {
        return "none".to_string();
    }
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn access(a: Option<&AccessRule>, absent: &str) -> String {
    let Some(a) = a else {
        return absent.to_string();
    };
    let allow = a.allow.as_deref().map_or_else(|| "any".to_string(), nets);
    format!("allow {allow}\ndeny {}\n({})", nets(&a.deny), a.key)
}

fn port_part(scheme: &str, port: u16) -> String {
    let default = match scheme {
        "http" => 80,
        "https" => 443,
        _ => 0,
    };
    if port == default {
        String::new()
    } else {
        format!(":{port}")
    }
}

/// One origin entry as written. `Origin`'s fields are private, so an exact entry's host and
/// port are read back from its `Debug` form (falling back to that form whole).
fn pattern(p: &OriginPattern) -> String {
    match p {
        OriginPattern::Any => "*".to_string(),
        OriginPattern::Null => "null".to_string(),
        OriginPattern::Wildcard {
            scheme,
            suffix,
            port,
        } => format!("{scheme}://*.{suffix}{}", port_part(scheme, *port)),
        OriginPattern::Exact(o) => {
            let debug = format!("{o:?}");
            let field = |marker: &str| -> Option<String> {
                let rest = debug.split_once(marker)?.1;
                rest.split(['"', ',', ' ', '}']).next().map(str::to_string)
            };
            let host = field("host: \"");
            let port = field("port: ").and_then(|p| p.parse::<u16>().ok());
            match (p.scheme(), host, port) {
                (Some(s), Some(h), Some(port)) => format!("{s}://{h}{}", port_part(s, port)),
                _ => debug,
            }
        }
    }
}

fn list(l: &OriginList) -> String {
    let entries: Vec<String> = l.entries.iter().map(pattern).collect();
    let aliases = if l.loopback_aliases {
        " (loopback aliases)"
    } else {
        ""
    };
    format!("{}{aliases}: {}", l.key, entries.join(", "))
}

fn provider_kind(p: &AuthProvider) -> String {
    match &p.kind {
        AuthKind::Jwt(j) => {
            let algs: Vec<String> = j.algorithms.iter().map(|a| format!("{a:?}")).collect();
            let missing = if matches!(j.keys, JwtKeys::Unavailable(_)) {
                " (secret not loaded)"
            } else {
                ""
            };
            format!("jwt {}{missing}", algs.join(", "))
        }
        AuthKind::Basic(_) => "basic".to_string(),
    }
}

fn provider_settings(p: &AuthProvider) -> String {
    match &p.kind {
        AuthKind::Jwt(j) => {
            let sources: Vec<String> = j.sources.iter().map(|s| s.label()).collect();
            let claims: Vec<String> = j
                .forward_claims
                .iter()
                .map(|(c, h)| format!("{c} → {}", h.as_str()))
                .collect();
            format!(
                "issuer: {}\naudience: {}\nleeway: {}s\nsources: {}\nforward_claims: {}\nkeys: {:?}",
                j.issuer.as_deref().unwrap_or("— (not checked)"),
                if j.audience.is_empty() { "— (not checked)".to_string() } else { j.audience.join(", ") },
                j.leeway,
                sources.join(", "),
                if claims.is_empty() { "none".to_string() } else { claims.join(", ") },
                j.keys
            )
        }
        AuthKind::Basic(b) => {
            let labels = b.cost_labels();
            let mut distinct = labels.clone();
            distinct.dedup();
            let hashes: Vec<String> = distinct
                .iter()
                .map(|d| format!("{d} ×{}", labels.iter().filter(|l| *l == d).count()))
                .collect();
            format!(
                "realm: {}\nusers: {}\nhashes: {}",
                b.realm,
                b.user_count(),
                hashes.join(", ")
            )
        }
    }
}

/// Writes a table; every header and cell is plain text, escaped here. `rows` pairs a CSS
/// class (`""` for none) with the cells.
fn table(out: &mut String, head: &[&str], rows: &[(&str, Vec<String>)]) {
    if rows.is_empty() {
        out.push_str("<p>None.</p>\n");
        return;
    }
    out.push_str("<div class=\"wide\"><table><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>\n");
    for (class, cells) in rows {
        if class.is_empty() {
            out.push_str("<tr>");
        } else {
            let _ = write!(out, "<tr class=\"{}\">", esc(class));
        }
        for c in cells {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
}

fn kv(k: &str, v: String) -> (&'static str, Vec<String>) {
    ("", vec![k.to_string(), v])
}

/// The report page for `policy` (loaded from `policy_text`) and its `audit` findings,
/// generated at `generated_unix` (Unix seconds, shown in UTC).
pub fn render(
    policy: &Policy,
    findings: &[Finding],
    policy_text: &str,
    generated_unix: u64,
) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let mut sha = String::with_capacity(64);
    for b in Sha256::digest(policy_text.as_bytes()).iter() {
        let _ = write!(sha, "{b:02x}");
    }
    let s = &policy.server;
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        out,
        "<title>Gatehouse policy report</title>\n<style>{CSS}</style></head><body>"
    );
    out.push_str("<h1>Gatehouse policy report</h1>\n<dl>");
    let _ = write!(
        out,
        "<dt>Policy file</dt><dd><code>{}</code></dd>",
        esc(&policy.file.display().to_string())
    );
    let _ = write!(out, "<dt>SHA-256</dt><dd><code>{sha}</code></dd>");
    let _ = write!(out, "<dt>Generated</dt><dd>{}</dd>", utc(generated_unix));
    let _ = write!(
        out,
        "<dt>Gatehouse</dt><dd>{}</dd>",
        esc(env!("CARGO_PKG_VERSION"))
    );
    let _ = writeln!(
        out,
        "<dt>Upstream</dt><dd><code>{}</code> (connect timeout {})</dd></dl>",
        esc(&policy.upstream.addr.to_string()),
        dur(policy.upstream.connect_timeout)
    );

    out.push_str("<h2>Summary</h2>\n");
    let count = |sev: Severity| {
        findings
            .iter()
            .filter(|f| f.severity == sev)
            .count()
            .to_string()
    };
    let public = policy
        .routes
        .iter()
        .filter(|r| matches!(r.auth, RouteAuth::None))
        .count();
    let summary = [
        (
            "high",
            vec!["high findings".to_string(), count(Severity::High)],
        ),
        (
            "medium",
            vec!["medium findings".to_string(), count(Severity::Medium)],
        ),
        (
            "low",
            vec!["low findings".to_string(), count(Severity::Low)],
        ),
        kv(
            "explained beside the key",
            findings.iter().filter(|f| f.explained).count().to_string(),
        ),
        kv("total findings", findings.len().to_string()),
        kv(
            "routes",
            format!("{} ({public} public)", policy.routes.len()),
        ),
    ];
    table(&mut out, &["", "count"], &summary);

    out.push_str("<h2>Routes × controls</h2>\n<p>Routes in match order; a highlighted row has findings.</p>\n");
    let mut rows: Vec<(&str, Vec<String>)> = Vec::new();
    for r in &policy.routes {
        let rk = r.key();
        let mine: Vec<&Finding> = findings
            .iter()
            .filter(|f| {
                f.key
                    .strip_prefix(rk.as_str())
                    .is_some_and(|t| t.is_empty() || t.starts_with('.') || t.starts_with('['))
            })
            .collect();
        let class = mine.iter().map(|f| f.severity).max().map_or("", sev_name);
        let ids: Vec<String> = mine
            .iter()
            .map(|f| {
                if f.explained {
                    format!("{} (explained)", f.id)
                } else {
                    f.id.to_string()
                }
            })
            .collect();
        let path = match &r.path {
            PathMatch::Exact(p) => format!("path {p}"),
            PathMatch::Prefix(p) => format!("prefix {p}"),
        };
        let methods = r.methods.as_ref().map_or_else(
            || "any".to_string(),
            |m| m.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(","),
        );
        let auth = match &r.auth {
            RouteAuth::None => "none".to_string(),
            RouteAuth::Provider(p) => format!("{}\n{}", p.name, provider_kind(p)),
        };
        let claims: Vec<String> = r
            .require_claims
            .iter()
            .map(|c| format!("{} = {}", c.claim, c.values.join(" | ")))
            .collect();
        let cors = if r.cors_upstream {
            "upstream".to_string()
        } else if let Some(c) = &r.cors {
            format!(
                "{}{}",
                list(&c.origins),
                if c.credentials { "\ncredentials" } else { "" }
            )
        } else {
            "—".to_string()
        };
        let ws = r.websocket.as_ref().map_or_else(
            || "—".to_string(),
            |w| {
                format!(
                    "origins: {}\nmax_per_ip: {}\nmax_per_subject: {}\nidle: {}\nclose_on_token_expiry: {}{}",
                    w.origins.as_deref().map_or_else(|| "any".to_string(), list),
                    opt(w.max_per_ip),
                    opt(w.max_per_subject),
                    w.idle_timeout.map_or_else(|| format!("{} (server)", dur(s.timeouts.websocket_idle)), dur),
                    yes(w.close_on_token_expiry),
                    if w.allow_missing_origin { "\nallow_missing_origin" } else { "" }
                )
            },
        );
        let limit = r.rate_limit.as_ref().map_or_else(
            || "off".to_string(),
            |l| {
                let mut parts = Vec::new();
                if let Some(x) = &l.per_ip {
                    parts.push(format!("per_ip {}", rate(x)));
                }
                if let Some(x) = &l.per_subject {
                    parts.push(format!("per_subject {}", rate(x)));
                }
                parts.push(format!("burst {}", l.burst));
                if l.shadow {
                    parts.push("shadow (not enforced)".to_string());
                }
                parts.push(format!("({})", l.key));
                parts.join("\n")
            },
        );
        let queue = r.concurrency.map_or_else(
            || "—".to_string(),
            |c| {
                format!(
                    "in-flight {}\nqueue {}\nwait {}",
                    c.max_in_flight,
                    c.queue,
                    dur(c.queue_timeout)
                )
            },
        );
        rows.push((
            class,
            vec![
                format!("{}\n{rk}", r.name),
                format!("{path}\n{methods}"),
                auth,
                if claims.is_empty() {
                    "—".to_string()
                } else {
                    claims.join("\n")
                },
                access(r.access.as_ref(), "global only"),
                cors,
                ws,
                limit,
                r.max_body.map_or_else(|| "no cap".to_string(), bytes),
                queue,
                r.upstream_timeout.map_or_else(
                    || format!("{} (server)", dur(s.timeouts.upstream_read)),
                    dur,
                ),
                if ids.is_empty() {
                    "—".to_string()
                } else {
                    ids.join("\n")
                },
            ],
        ));
    }
    let head = [
        "route",
        "match",
        "auth",
        "required claims",
        "IP rules",
        "CORS origins",
        "WebSocket",
        "rate limit",
        "body cap",
        "queue",
        "upstream timeout",
        "findings",
    ];
    table(&mut out, &head, &rows);

    out.push_str("<h2>Server</h2>\n");
    let listeners: Vec<String> = s
        .listeners
        .iter()
        .map(|l| format!("{}  TLS: {}", l.addr, yes(l.tls.is_some())))
        .collect();
    let server = [
        kv("listeners", listeners.join("\n")),
        kv(
            "admin",
            s.admin.map_or_else(|| "off".to_string(), |a| a.to_string()),
        ),
        kv("trusted proxies", nets(&s.trusted_proxies)),
        kv("timeouts.request_header", dur(s.timeouts.request_header)),
        kv("timeouts.http_idle", dur(s.timeouts.http_idle)),
        kv("timeouts.upstream_read", dur(s.timeouts.upstream_read)),
        kv("timeouts.websocket_idle", dur(s.timeouts.websocket_idle)),
        kv(
            "limits.connections_per_ip",
            opt(s.limits.connections_per_ip),
        ),
        kv(
            "limits.auth_failures_per_ip",
            s.limits
                .auth_failures_per_ip
                .as_ref()
                .map_or_else(|| "off".to_string(), rate),
        ),
        kv("limits.max_headers", s.limits.max_headers.to_string()),
        kv("limits.max_header_bytes", bytes(s.limits.max_header_bytes)),
        kv("paths.allow_semicolon", yes(s.paths.allow_semicolon)),
        kv("paths.case_insensitive", yes(s.paths.case_insensitive)),
        kv(
            "headers.allow_underscores",
            yes(s.headers.allow_underscores),
        ),
        kv("global access", access(policy.access.as_ref(), "allow all")),
    ];
    table(&mut out, &["setting", "value"], &server);

    out.push_str("<h2>Origin lists</h2>\n");
    let origins: Vec<(&str, Vec<String>)> = policy
        .origin_lists
        .iter()
        .map(|l| {
            (
                "",
                vec![
                    l.key.clone(),
                    yes(l.loopback_aliases),
                    l.entries.iter().map(pattern).collect::<Vec<_>>().join("\n"),
                ],
            )
        })
        .collect();
    table(&mut out, &["key", "loopback aliases", "entries"], &origins);

    out.push_str("<h2>Auth providers</h2>\n");
    let providers: Vec<(&str, Vec<String>)> = policy
        .providers
        .iter()
        .map(|p| {
            (
                "",
                vec![p.name.clone(), provider_kind(p), provider_settings(p)],
            )
        })
        .collect();
    table(&mut out, &["name", "kind", "settings"], &providers);

    out.push_str("<h2>Findings</h2>\n");
    let found: Vec<(&str, Vec<String>)> = findings
        .iter()
        .map(|f| {
            (
                sev_name(f.severity),
                vec![
                    sev_name(f.severity).to_string(),
                    f.id.to_string(),
                    format!("{}:{}:{}", f.file, f.line, f.column),
                    f.key.clone(),
                    f.message.clone(),
                    f.fix.clone(),
                    yes(f.explained),
                ],
            )
        })
        .collect();
    table(
        &mut out,
        &[
            "severity",
            "id",
            "location",
            "key",
            "message",
            "fix",
            "explained",
        ],
        &found,
    );

    if !policy.warnings.is_empty() {
        out.push_str("<h2>Warnings</h2>\n");
        let warnings: Vec<(&str, Vec<String>)> = policy
            .warnings
            .iter()
            .map(|(k, m)| ("", vec![k.clone(), m.clone()]))
            .collect();
        table(&mut out, &["key", "warning"], &warnings);
    }
    out.push_str("</body></html>\n");
    out
}

/// Runs `report`: loads the policy at `path` (secrets optional), audits it and writes the
/// page to `out`. Exit 0, 1 (invalid policy) or 2 (I/O error).
pub fn report(path: &Path, out: &Path) -> i32 {
    let policy = match config::load_with(path, config::Secrets::Optional) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return 2;
        }
    };
    let findings = audit::located(&policy, path);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let html = render(&policy, &findings, &text, now);
    if let Err(e) = std::fs::write(out, html) {
        eprintln!("cannot write {}: {e}", out.display());
        return 2;
    }
    println!("wrote {}", out.display());
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn escapes_and_sizes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(bytes(1_048_576), "1048576 B (1 MiB)");
        assert_eq!(bytes(1536), "1536 B (1.5 KiB)");
        assert_eq!(dur(Duration::from_secs(90)), "90s");
        assert_eq!(dur(Duration::from_millis(250)), "250ms");
    }
}
