//! Bounds the *whole* request head, not each read: Pingora times out individual reads, which
//! a slow-loris client defeats by sending one byte at a time. This wrapper around the proxy
//! app starts a timer for each request on a connection and closes the connection if the head
//! has not been read when it fires. The proxy's first hook after the head is parsed
//! (`on_connection_reuse`, fed the [`HeadSignal`] we put in the connection context) stops it.
//!
//! On a new connection the budget is `request_header`; on a keep-alive connection the next
//! request may first sit idle for up to `http_idle`, so its budget is `http_idle +
//! request_header`. A connection that runs out of budget is closed without an answer
//! (POLICY.md: "otherwise the connection is closed").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;

use super::gate::{Gate, HeadSignal, Reused};
use crate::runtime::Shared;

/// The proxy app with a head-time budget.
pub struct GateApp {
    inner: Arc<HttpProxy<Gate>>,
    shared: Arc<Shared>,
}

impl GateApp {
    /// Wraps a built proxy.
    pub fn new(inner: HttpProxy<Gate>, shared: Arc<Shared>) -> Self {
        GateApp {
            inner: Arc::new(inner),
            shared,
        }
    }
}

#[async_trait]
impl HttpServerApp for GateApp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let t = self.shared.policy().server.timeouts;
        let reused = session
            .take_connection_user_context()
            .is_some_and(|c| c.downcast_ref::<Reused>().is_some());
        let head_done = Arc::new(AtomicBool::new(false));
        session.set_connection_user_context(Some(Box::new(HeadSignal(head_done.clone()))));
        let budget = if reused {
            t.http_idle + t.request_header
        } else {
            session.set_read_timeout(Some(t.request_header));
            t.request_header
        };
        let work = self.inner.process_new_http(session, shutdown);
        tokio::pin!(work);
        tokio::select! {
            done = &mut work => done,
            _ = tokio::time::sleep(budget) => {
                if head_done.load(Ordering::Acquire) {
                    work.await
                } else {
                    tracing::debug!(budget_ms = budget.as_millis() as u64, "request head not received in time; closing");
                    None
                }
            }
        }
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await
    }
}
