//! Bounds the *whole* request head, not each read: Pingora times out individual reads, which
//! a slow-loris client defeats by sending one byte at a time. This wrapper around the proxy
//! app gives each request on a connection a deadline and closes the connection if the head
//! has not been read by then. The proxy's first hook after the head is parsed
//! (`on_connection_reuse`, fed the [`HeadSignal`] we put in the connection context) marks the
//! head as read, and the timer goes back to a per-thread pool ([`super::timer_pool`]).
//!
//! On a new connection the budget is `request_header`. On a keep-alive connection the next
//! request may first sit idle for up to `http_idle` — the wrapper also enforces that idle
//! limit (Pingora's own keep-alive wait is left unlimited, which spares it a timer per
//! request) — and has `request_header` more once its first bytes arrived: `http_idle +
//! request_header` in all. A connection that runs out of budget is closed without an answer
//! (POLICY.md: "otherwise the connection is closed").

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
        let now = Instant::now();
        // A new connection has `request_header` for its head. A kept-alive one may first sit
        // idle for `http_idle` (Pingora itself waits without a timeout: HTTP/1.1 keep-alive is
        // left unlimited there), then has `request_header` more once its first bytes came.
        let (first, mut then) = if reused {
            (
                now + t.http_idle,
                Some(now + t.http_idle + t.request_header),
            )
        } else {
            session.set_read_timeout(Some(t.request_header));
            (now + t.request_header, None)
        };
        let mut timer = Some(PooledTimer::at(first));
        let mut woken = false;
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
                tracing::debug!(reused, "request head not received in time; closing");
                return Poll::Ready(None);
            }
            // Woken again with the head incomplete: bytes came, the idle wait is over.
            if std::mem::replace(&mut woken, true) {
                if let Some(deadline) = then.take() {
                    head_timer.reset(deadline);
                    let _ = head_timer.poll_elapsed(cx);
                }
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
