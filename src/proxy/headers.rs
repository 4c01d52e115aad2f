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

use http::HeaderName;
use pingora::http::RequestHeader;
use pingora::prelude::*;

use crate::policy::{Forward, Policy};

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
pub fn rewrite(req: &mut RequestHeader, policy: &Policy, fwd: &Forward, hop: &Hop) -> Result<()> {
    let target = match &fwd.query {
        Some(q) => format!("{}?{q}", fwd.path),
        None => fwd.path.clone(),
    };
    let uri = http::Uri::try_from(target.as_str()).map_err(|e| {
        Error::explain(
            ErrorType::InternalError,
            format!("normalized target is not a URI: {e}"),
        )
    })?;
    req.set_uri(uri);

    // Hop-by-hop: the names listed in Connection, then the fixed set.
    let listed: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "upgrade" && t != "close" && t != "keep-alive")
        .collect();
    for name in listed {
        // Framing headers are never removable by a client's Connection header.
        if name != "content-length" && name != "transfer-encoding" && name != "host" {
            req.remove_header(name.as_str());
        }
    }
    for name in HOP_BY_HOP {
        req.remove_header(*name);
    }
    if fwd.websocket.is_some() {
        req.insert_header(http::header::CONNECTION, "Upgrade")?;
        req.insert_header(http::header::UPGRADE, "websocket")?;
    }

    // Spellings and headers a client may not send on.
    let allow_underscores = policy.server.headers.allow_underscores;
    let dropped: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| {
            let name = n.as_str();
            name.contains('_') && (!allow_underscores || owned_spelling(name, policy))
        })
        .cloned()
        .collect();
    for name in dropped {
        req.remove_header(&name);
    }
    for name in OVERRIDES {
        req.remove_header(*name);
    }
    if !fwd.peer_trusted {
        req.remove_header("forwarded");
    }

    // Claims: only the proxy speaks for them.
    for h in &policy.claim_headers {
        req.remove_header(h);
    }
    for (h, v) in &fwd.claim_headers {
        req.insert_header(h.clone(), v.clone())?;
    }

    // Forwarding headers: the hops the decision vouched for, then the peer.
    let xff = if fwd.forwarded_for.is_empty() {
        hop.peer.to_string()
    } else {
        format!("{}, {}", fwd.forwarded_for, hop.peer)
    };
    req.insert_header(HeaderName::from_static("x-forwarded-for"), xff)?;
    req.insert_header(
        HeaderName::from_static("x-real-ip"),
        hop.client_ip.to_string(),
    )?;
    let keep = |req: &RequestHeader, name: &str| fwd.peer_trusted && req.headers.contains_key(name);
    if !keep(req, "x-forwarded-proto") {
        req.insert_header(
            HeaderName::from_static("x-forwarded-proto"),
            if hop.tls { "https" } else { "http" },
        )?;
    }
    if !keep(req, "x-forwarded-host") {
        match req.headers.get(http::header::HOST).cloned() {
            Some(host) => {
                req.insert_header(HeaderName::from_static("x-forwarded-host"), host)?;
            }
            None => {
                req.remove_header("x-forwarded-host");
            }
        }
    }
    req.insert_header(HeaderName::from_static("x-request-id"), hop.request_id)?;
    Ok(())
}

/// Whether `name` (lowercase, with `_`) spells a header the proxy sets or strips.
fn owned_spelling(name: &str, policy: &Policy) -> bool {
    let dashed = name.replace('_', "-");
    PROXY_OWNED.contains(&dashed.as_str())
        || dashed.starts_with("x-forwarded-")
        || OVERRIDES.contains(&dashed.as_str())
        || policy.claim_headers.iter().any(|h| h.as_str() == dashed)
}
