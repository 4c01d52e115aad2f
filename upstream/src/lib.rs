//! voiceflow: the test-execution and voice server that Gatehouse protects. It has no
//! authentication of its own; it is meant to listen on loopback behind the proxy.
//!
//! Map of the crate:
//! - [`spawn`] (here): bind, then serve in the background; [`ServerHandle`] stops it.
//! - `config`: the settings ([`Config`]); `bind`: listening, and the [`BindError`] text.
//! - `routes`: the HTTP surface, one module per part of the API, and its layers.
//! - `suite`: what a test suite is and when it is malformed; `runner`: runs one step by step;
//!   `executions`: the bounded store of runs and their live log feeds.
//! - `debug_record`: the `--debug` recorder of received requests; `error`: JSON errors.

mod bind;
mod config;
mod debug_record;
mod error;
mod executions;
mod routes;
mod runner;
mod state;
mod suite;

use std::io;
use std::net::SocketAddr;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use bind::BindError;
pub use config::Config;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be opened.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Serving failed.
    #[error("server failed: {0}")]
    Serve(#[source] io::Error),
    /// The server task panicked or was cancelled.
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running server. Dropping it stops the server too (gracefully, in the background).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl ServerHandle {
    /// The address the server listens on (with the real port when `0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits for in-flight requests to finish. Upgraded
    /// WebSocket connections are not waited for.
    pub async fn shutdown(self) -> Result<(), Error> {
        let Self { shutdown, task, .. } = self;
        let _ = shutdown.send(());
        task.await?.map_err(Error::Serve)
    }
}

/// Binds `config.host:config.port` and serves the API in the background.
pub async fn spawn(config: Config) -> Result<ServerHandle, Error> {
    let listener = bind::bind(&config.host, config.port).await?;
    let addr = listener.local_addr().map_err(Error::Serve)?;
    let app = routes::router(&config);
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // Resolves on `shutdown()` and when the handle is dropped.
                let _ = stop.await;
            })
            .await
    });
    Ok(ServerHandle {
        addr,
        shutdown,
        task,
    })
}
