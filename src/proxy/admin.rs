//! The admin listener (`server.admin`, loopback by default): `/healthz` (the process
//! answers), `/readyz` (a policy is loaded and the first public listener accepts connections),
//! `/metrics` (Prometheus text). It is not subject to the policy and not counted in
//! `connections_per_ip`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::runtime::Shared;

/// Serves the admin endpoints.
pub struct AdminApp {
    shared: Arc<Shared>,
}

impl AdminApp {
    /// An admin app over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        AdminApp { shared }
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = resp.body().len();
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    resp
}

/// Where to connect to probe a listener (a wildcard bind is probed on loopback).
fn probe_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(v6) if v6.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/healthz" => reply(200, "application/json", br#"{"status":"ok"}"#.to_vec()),
            "/readyz" => {
                let policy = self.shared.policy();
                let ready = if self.shared.is_listening() {
                    true
                } else if let Some(l) = policy.server.listeners.first() {
                    let probe = tokio::net::TcpStream::connect(probe_addr(l.addr));
                    let ok = matches!(
                        tokio::time::timeout(Duration::from_secs(1), probe).await,
                        Ok(Ok(_))
                    );
                    if ok {
                        self.shared.set_listening();
                    }
                    ok
                } else {
                    false
                };
                if ready {
                    reply(200, "application/json", br#"{"status":"ready"}"#.to_vec())
                } else {
                    reply(
                        503,
                        "application/json",
                        br#"{"status":"starting"}"#.to_vec(),
                    )
                }
            }
            "/metrics" => reply(
                200,
                "text/plain; version=0.0.4",
                self.shared.metrics.render(),
            ),
            _ => reply(
                404,
                "application/json",
                br#"{"error":"not_found","message":"admin endpoints: /healthz /readyz /metrics"}"#
                    .to_vec(),
            ),
        }
    }
}
