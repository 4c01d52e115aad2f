//! Bounds the *whole* request head, not each read: Pingora times out individual reads, which
//! a slow-loris client defeats by sending one byte at a time. This wrapper around the proxy
//! app gives each request on a connection a deadline and closes the connection if the head
//! has not been read by then. The proxy's first hook after the head is parsed
//! (`on_connection_reuse`, fed the [`HeadSignal`] we put in the connection context) marks the
//! head as read, and the timer goes back to a per-thread pool ([`super::timer_pool`]): re-arming
//! a pooled timer costs far less than creating and cancelling one per request.
//!
//! On a new connection the budget is `request_header`; on a keep-alive connection the next
//! request may first sit idle for up to `http_idle` (Pingora's keep-alive timeout, set by
//! `request_filter`), so its budget is `http_idle + request_header`. A connection that runs
//! out of budget is closed without an answer (POLICY.md: "otherwise the connection is closed").

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::time::Instant;

use super::gate::{Gate, HeadSignal, Reused};
use super::timer_pool::PooledTimer;
use crate::runtime::Shared;

/// The deadline of a budget too large to add to the clock (about a century).
const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

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
            t.http_idle.saturating_add(t.request_header)
        } else {
            session.set_read_timeout(Some(t.request_header));
            t.request_header
        };
        let now = Instant::now();
        // An absurd budget (the policy accepts durations up to u64::MAX seconds) saturates.
        let deadline = now.checked_add(budget).unwrap_or(now + FAR_FUTURE);
        let mut timer = Some(PooledTimer::at(deadline));
        let work = self.inner.process_new_http(session, shutdown);
        tokio::pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(done) = work.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
            let Some(head_timer) = timer.as_mut() else {
                return Poll::Pending;
            };
            if head_done.load(Ordering::Acquire) {
                // The head is in: the timer goes back to the pool.
                timer = None;
                return Poll::Pending;
            }
            if head_timer.poll_elapsed(cx).is_ready() {
                tracing::debug!(
                    budget_ms = budget.as_millis() as u64,
                    "request head not received in time; closing"
                );
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await
    }
}
