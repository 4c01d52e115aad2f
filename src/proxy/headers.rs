//! What the upstream receives (POLICY.md, "What the upstream receives"):
//! the normalized path and the query (minus a `query:` token); hop-by-hop headers removed per
//! RFC 9110 — without letting a client's `Connection: x-real-ip` strip the proxy's own
//! headers, since those are set *after* the removal; every `forward_claims` header the client
//! sent removed and the verified claims added; `X-Forwarded-For` (the chain from trusted
//! proxies only, plus the peer), `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Real-IP` and
//! `X-Request-Id` set by the proxy; header names with `_` dropped (unless allowed, and never a
//! spelling of a header the proxy owns), `Forwarded` from untrusted peers and the
//! path/method override headers removed.

use std::net::IpAddr;

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::prelude::*;

use crate::policy::{Forward, Policy};
use crate::text::IpText;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
];

/// Headers that let a client change the path or method the upstream sees after the route
/// was chosen: always removed.
const OVERRIDES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers the proxy sets or strips; with `_` read as `-`, a client's spelling of one of
/// these is dropped even when underscores are allowed (CGI-style upstreams read both as one).
const PROXY_OWNED: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
    "forwarded",
];

/// Facts about the connection the rewrite needs.
pub struct Hop<'a> {
    /// TCP peer.
    pub peer: IpAddr,
    /// Decided client IP.
    pub client_ip: IpAddr,
    /// Whether the client connected over TLS.
    pub tls: bool,
    /// Request id.
    pub request_id: &'a str,
}

/// Rewrites the request that goes upstream.
///
/// The rewrite works on the request's plain `http` parts, without Pingora's header-case map:
/// every insert through `RequestHeader` re-parses the name, allocates it twice and grows two
/// hash maps sized exactly for the client's headers, which a profile showed costing more than
/// the rest of the policy together. The upstream therefore receives standard header names in
/// their usual capitalization and other names in lower case (header names are
/// case-insensitive, RFC 9110 §5.1; HTTP/2 and HAProxy lower-case them all).
pub fn rewrite(req: &mut RequestHeader, policy: &Policy, fwd: &Forward, hop: &Hop) -> Result<()> {
    // The placeholder allocates nothing (an empty header map, the default URI).
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: http::request::Parts = std::mem::replace(req, placeholder).into();
    let result = rewrite_parts(&mut parts, policy, fwd, hop);
    *req = RequestHeader::from(parts);
    result
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn rewrite_parts(
    parts: &mut http::request::Parts,
    policy: &Policy,
    fwd: &Forward,
    hop: &Hop,
) -> Result<()> {
    let unchanged = parts.uri.scheme().is_none()
        && parts.uri.authority().is_none()
        && parts.uri.path() == fwd.path
        && parts.uri.query() == fwd.query.as_deref();
    if !unchanged {
        let target = match &fwd.query {
            Some(q) => format!("{}?{q}", fwd.path),
            None => fwd.path.clone(),
        };
        parts.uri = http::Uri::try_from(target).map_err(|e| {
            Error::explain(
                ErrorType::InternalError,
                format!("normalized target is not a URI: {e}"),
            )
        })?;
    }
    let headers = &mut parts.headers;

    // One pass over the client's names: what may not go on. (No allocation when nothing does.)
    let allow_underscores = policy.server.headers.allow_underscores;
    let mut dropped: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        let drop = HOP_BY_HOP.contains(&n)
            || OVERRIDES.contains(&n)
            || (n == "forwarded" && !fwd.peer_trusted)
            || (n.contains('_') && (!allow_underscores || owned_spelling(n, policy)))
            || policy.claim_headers.contains(name);
        if drop {
            dropped.push(name.clone());
        }
    }
    // Hop-by-hop: also the names listed in Connection (never the framing headers or Host).
    for value in headers.get_all(http::header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            let Ok(name) = HeaderName::from_bytes(token.as_bytes()) else {
                continue;
            };
            let keep = matches!(
                name.as_str(),
                "upgrade"
                    | "close"
                    | "keep-alive"
                    | "content-length"
                    | "transfer-encoding"
                    | "host"
            );
            if !keep {
                dropped.push(name);
            }
        }
    }
    for name in &dropped {
        headers.remove(name);
    }

    headers.reserve(6 + fwd.claim_headers.len());
    if fwd.websocket.is_some() {
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        );
        headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    // Claims: only the proxy speaks for them.
    for (h, v) in &fwd.claim_headers {
        headers.insert(h.clone(), v.clone());
    }

    // Forwarding headers: the hops the decision vouched for, then the peer.
    let peer = IpText::new(hop.peer);
    let xff = if fwd.forwarded_for.is_empty() {
        value(peer.as_str())?
    } else {
        value(&format!("{}, {}", fwd.forwarded_for, peer.as_str()))?
    };
    headers.insert(X_FORWARDED_FOR, xff);
    let real_ip = if hop.client_ip == hop.peer {
        peer
    } else {
        IpText::new(hop.client_ip)
    };
    headers.insert(X_REAL_IP, value(real_ip.as_str())?);
    if !(fwd.peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        let proto = if hop.tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(fwd.peer_trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match headers.get(http::header::HOST).cloned() {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host);
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    headers.insert(X_REQUEST_ID, value(hop.request_id)?);
    Ok(())
}

fn value(v: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(v).map_err(|e| {
        Error::explain(
            ErrorType::InternalError,
            format!("invalid forwarding header value: {e}"),
        )
    })
}

/// Whether `name` (lowercase, with `_`) spells a header the proxy sets or strips.
fn owned_spelling(name: &str, policy: &Policy) -> bool {
    let dashed = name.replace('_', "-");
    PROXY_OWNED.contains(&dashed.as_str())
        || dashed.starts_with("x-forwarded-")
        || OVERRIDES.contains(&dashed.as_str())
        || policy.claim_headers.iter().any(|h| h.as_str() == dashed)
}
