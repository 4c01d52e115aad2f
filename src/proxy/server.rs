//! Assembles the Pingora server from the policy: the public listeners (plain and TLS) behind
//! the head-budget app, the admin listener, and the reloader as a background service.

use std::path::PathBuf;
use std::sync::Arc;

use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use super::admin::AdminApp;
use super::app::GateApp;
use super::bind;
use super::gate::Gate;
use crate::reload::Reloader;
use crate::runtime::limits::Sweeper;
use crate::runtime::Shared;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An address cannot be bound.
    #[error(transparent)]
    Bind(#[from] bind::BindError),
    /// A TLS listener could not be set up.
    #[error("TLS listener {addr}: {message}")]
    Tls {
        /// Address.
        addr: String,
        /// What failed.
        message: String,
    },
}

/// Checks every address, builds the server and runs it; returns only on a start error.
pub fn run(policy_path: PathBuf, shared: Arc<Shared>, threads: usize) -> Result<(), StartError> {
    let policy = shared.policy();
    for (i, l) in policy.server.listeners.iter().enumerate() {
        bind::check(l.addr, &format!("server.listen[{i}]"))?;
    }
    if let Some(admin) = policy.server.admin {
        bind::check(admin, "server.admin")?;
    }

    let conf = ServerConf {
        threads: threads.max(1),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let proxy = pingora::proxy::http_proxy(&server.configuration, Gate::new(shared.clone()));
    let mut public = Service::new("gatehouse".to_string(), GateApp::new(proxy, shared.clone()));
    for l in &policy.server.listeners {
        let addr = l.addr.to_string();
        // No L4 read buffer: Pingora reads request heads and bodies into buffers of its own,
        // and its default 64 KiB per connection was held by every idle keep-alive connection
        // and WebSocket (see docs/benchmarks.md, "Idle WebSocket memory").
        let mut endpoint =
            ListenerConfig::tcp(&addr).l4_buffer(L4BufferSettings::default().read(0));
        if let Some(tls) = &l.tls {
            let settings =
                TlsSettings::intermediate(&tls.cert.to_string_lossy(), &tls.key.to_string_lossy())
                    .map_err(|e| StartError::Tls {
                        addr: addr.clone(),
                        message: e.to_string(),
                    })?;
            endpoint = endpoint.tls(settings);
        }
        public.add_listener(endpoint);
    }
    server.add_service(public);

    if let Some(admin_addr) = policy.server.admin {
        let mut admin = Service::new(
            "gatehouse admin".to_string(),
            HttpServer::new_app(AdminApp::new(shared.clone())),
        );
        admin.add_tcp(&admin_addr.to_string());
        server.add_service(admin);
    }
    server.add_service(background_service(
        "policy reload",
        Reloader::new(policy_path, shared.clone()),
    ));
    server.add_service(background_service(
        "limit state sweeper",
        Sweeper(shared.clone()),
    ));

    let listeners: Vec<String> = policy
        .server
        .listeners
        .iter()
        .map(|l| {
            format!(
                "{}://{}",
                if l.tls.is_some() { "https" } else { "http" },
                l.addr
            )
        })
        .collect();
    tracing::info!(
        listeners = %listeners.join(", "),
        admin = %policy.server.admin.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        upstream = %policy.upstream.addr,
        routes = policy.routes.len(),
        "gatehouse listening"
    );
    println!(
        "gatehouse listening on {} (upstream {})",
        listeners.join(", "),
        policy.upstream.addr
    );
    if let Some(a) = policy.server.admin {
        println!("gatehouse admin on http://{a} (/healthz /readyz /metrics)");
    }
    server.run_forever()
}
