//! What the upstream receives (POLICY.md, "What the upstream receives"):
//! the normalized path and the query (minus a `query:` token); hop-by-hop headers removed per
//! RFC 9110 — without letting a client's `Connection: x-real-ip` strip the proxy's own
//! headers, since those are set *after* the removal; every `forward_claims` header the client
//! sent removed and the verified claims added; `X-Forwarded-For` (the chain from trusted
//! proxies only, plus the peer), `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Real-IP` and
//! `X-Request-Id` set by the proxy.

use std::net::IpAddr;

use http::HeaderName;
use pingora::http::RequestHeader;
use pingora::prelude::*;

use crate::policy::client_ip::forwarded_chain;
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

/// Facts about the connection the rewrite needs.
pub struct Hop {
    /// TCP peer.
    pub peer: IpAddr,
    /// Whether the peer is a trusted proxy.
    pub peer_trusted: bool,
    /// Decided client IP.
    pub client_ip: IpAddr,
    /// Whether the client connected over TLS.
    pub tls: bool,
    /// Request id.
    pub request_id: String,
    /// Whether this is a WebSocket upgrade on a websocket route (Upgrade passes).
    pub websocket: bool,
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
    if hop.websocket {
        req.insert_header(http::header::CONNECTION, "Upgrade")?;
        req.insert_header(http::header::UPGRADE, "websocket")?;
    }

    // Claims: only the proxy speaks for them.
    for h in &policy.claim_headers {
        req.remove_header(h);
    }
    for (h, v) in &fwd.claim_headers {
        req.insert_header(h.clone(), v.clone())?;
    }

    // Forwarding headers.
    let xff = if hop.peer_trusted {
        let mut chain: Vec<String> = forwarded_chain(&req.headers)
            .into_iter()
            .map(str::to_string)
            .collect();
        chain.push(hop.peer.to_string());
        chain.join(", ")
    } else {
        hop.peer.to_string()
    };
    req.insert_header(HeaderName::from_static("x-forwarded-for"), xff)?;
    req.insert_header(
        HeaderName::from_static("x-real-ip"),
        hop.client_ip.to_string(),
    )?;
    let keep = |req: &RequestHeader, name: &str| hop.peer_trusted && req.headers.contains_key(name);
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
    req.insert_header(
        HeaderName::from_static("x-request-id"),
        hop.request_id.as_str(),
    )?;
    Ok(())
}
