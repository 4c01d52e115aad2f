//! The facts of one request that the decision reads: no Pingora types, so the proxy,
//! `explain` and the tests build them the same way.

use std::net::IpAddr;

use http::{HeaderMap, Method, Version};

use super::auth::Identity;

/// One request, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The TCP peer.
    pub peer: IpAddr,
    /// Method.
    pub method: &'a Method,
    /// The raw request target (path and query) as received.
    pub target: &'a [u8],
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Size of the request head in bytes (request line + header lines).
    pub head_bytes: usize,
    /// Current time, Unix seconds (JWT `exp` / `nbf`).
    pub now: u64,
    /// HTTP version of the request.
    pub version: Version,
    /// Whether the client connected over TLS (the request's own scheme is `https`).
    pub tls: bool,
    /// An identity to assume instead of verifying credentials: "authenticated by the route's
    /// provider as this". Only `gatehouse test` sets it (policy tests without production
    /// secrets); the proxy never does.
    pub assumed_identity: Option<&'a Identity>,
}

impl RequestFacts<'_> {
    /// Whether this is a WebSocket upgrade request (`Upgrade: websocket` with
    /// `Connection: upgrade`).
    pub fn is_websocket_upgrade(&self) -> bool {
        let upgrade = self.headers.get_all(http::header::UPGRADE).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
            })
        });
        let connection = self
            .headers
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| {
                v.to_str().is_ok_and(|s| {
                    s.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                })
            });
        upgrade && connection
    }

    /// Size of the head the way the proxy counts it: request line plus `name: value\r\n` lines.
    pub fn measure_head(method: &Method, target: &[u8], headers: &HeaderMap) -> usize {
        let line = method.as_str().len() + 1 + target.len() + 11;
        headers.iter().fold(line + 2, |acc, (n, v)| {
            acc + n.as_str().len() + 2 + v.len() + 2
        })
    }
}
