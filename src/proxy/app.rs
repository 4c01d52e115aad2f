//! Bounds the *whole* request head, not each read: Pingora times out individual reads, which
//! a slow-loris client defeats by sending one byte at a time. This wrapper around the proxy
//! app gives each request on a connection a deadline and closes the connection if the head
//! has not been read by then. The proxy's first hook after the head is parsed
//! (`on_connection_reuse`, fed the [`HeadSignal`] we put in the connection context) marks the
//! head as read. The deadline's timer is only armed when a request's head arrives in pieces
//! (see `process_new_http`).
//!
//! On a new connection the budget is `request_header`; on a keep-alive connection the next
//! request may first sit idle for up to `http_idle`, so its budget is `http_idle +
//! request_header`. A connection that runs out of budget is closed without an answer
//! (POLICY.md: "otherwise the connection is closed").

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;

use super::gate::{keepalive_secs, Gate, HeadSignal, Reused};
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
        let deadline = tokio::time::Instant::now() + budget;
        let work = self.inner.process_new_http(session, shutdown);
        tokio::pin!(work);
        // On a keep-alive connection the timer is armed lazily, since most requests never need
        // one: until the first wake-up the connection waits for bytes under Pingora's
        // keep-alive timeout (`http_idle`, shorter than the budget), and a wake-up that finds
        // the head still incomplete (a byte arrived, or more) arms the timer for what is left
        // of the budget. Once the head is in, the timer is dropped. Registering and removing
        // a timer for every request cost ~1 µs of CPU per request (docs/benchmarks.md). A new
        // connection waits under Pingora's 60 s default, so its timer is armed at once; so is
        // a keep-alive one whose `http_idle`, rounded up to Pingora's whole seconds, is longer
        // than the budget.
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut unarmed_first_wait =
            reused && Duration::from_secs(keepalive_secs(t.http_idle)) <= budget;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(done) = work.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
            if head_done.load(Ordering::Acquire) {
                timer = None;
                return Poll::Pending;
            }
            if std::mem::take(&mut unarmed_first_wait) {
                return Poll::Pending;
            }
            let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if t.as_mut().poll(cx).is_ready() {
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
