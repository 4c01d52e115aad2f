//! The `--debug` request recorder: remembers the last requests the server received so tests can
//! prove what reached it (or did not). A request is recorded when its head arrives; its body is
//! then counted chunk by chunk as it streams, and marked complete only if it ended cleanly.
//!
//! The middleware reads the body itself in a background task and forwards the chunks to the
//! handler through a small channel. The body is therefore always driven to its end and
//! counted, even when the handler never reads it, and memory stays bounded (no buffering of
//! the whole body). Trailers are not forwarded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::sync::mpsc;

/// How many requests are remembered.
const CAPACITY: usize = 1000;

/// One received request, as `GET /debug/requests` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RequestRecord {
    method: String,
    /// The path without the query.
    path: String,
    body_bytes: u64,
    body_complete: bool,
    /// The `X-Request-Id` header, if any.
    request_id: Option<String>,
}

/// The last [`CAPACITY`] requests, oldest first, each tagged with a sequence number so body
/// updates find their record (or nothing, once it was evicted or cleared).
#[derive(Default)]
pub(crate) struct DebugLog {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_seq: u64,
    records: VecDeque<(u64, RequestRecord)>,
}

impl DebugLog {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, record: RequestRecord) -> u64 {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        if inner.records.len() == CAPACITY {
            inner.records.pop_front();
        }
        inner.records.push_back((seq, record));
        seq
    }

    fn update(&self, seq: u64, change: impl FnOnce(&mut RequestRecord)) {
        let mut inner = self.lock();
        if let Ok(index) = inner.records.binary_search_by_key(&seq, |(s, _)| *s) {
            change(&mut inner.records[index].1);
        }
    }

    /// Every remembered request, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        self.lock().records.iter().map(|(_, r)| r.clone()).collect()
    }

    /// Forgets every request.
    pub(crate) fn clear(&self) {
        self.lock().records.clear();
    }
}

/// Records the request (unless it is under `/debug`) and counts its body as it streams.
pub(crate) async fn record(State(log): State<Arc<DebugLog>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/debug" || path.starts_with("/debug/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let request_id = parts
        .headers
        .get("x-request-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let empty = body.is_end_stream();
    let seq = log.push(RequestRecord {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        body_bytes: 0,
        body_complete: empty,
        request_id,
    });
    let body = if empty { body } else { tee(body, log, seq) };
    next.run(Request::from_parts(parts, body)).await
}

/// Reads `body` to its end in a task, counting it into record `seq`, and returns a body that
/// yields the same chunks (or the same error) to the handler.
fn tee(mut body: Body, log: Arc<DebugLog>, seq: u64) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, axum::Error>>(8);
    tokio::spawn(async move {
        let mut forward = true;
        loop {
            match body.frame().await {
                None => {
                    // Marked before the handler can see the end, so a handler that read the
                    // whole body answers only after its record is complete.
                    log.update(seq, |r| r.body_complete = true);
                    break;
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    log.update(seq, |r| r.body_bytes += data.len() as u64);
                    // Once the handler dropped its body, keep counting without forwarding.
                    forward = forward && tx.send(Ok(data)).await.is_ok();
                }
                Some(Err(err)) => {
                    if forward {
                        let _ = tx.send(Err(err)).await;
                    }
                    break;
                }
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Body::from_stream(chunks)
}
