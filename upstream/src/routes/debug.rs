//! `GET /debug/requests` (the recorded requests, oldest first) and `DELETE /debug/requests`
//! (forget them); `GET /debug/truncated?bytes=N` announces `2N` bytes, sends `N` and breaks
//! the connection (an upstream that dies mid-response, for the proxy's tests). Only mounted
//! with `--debug`; the recording itself is [`crate::debug_record`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use crate::debug_record::{DebugLog, RequestRecord};

/// The debug routes over `log`.
pub(crate) fn routes(log: Arc<DebugLog>) -> Router {
    Router::new()
        .route("/debug/requests", get(list).delete(clear))
        .route("/debug/truncated", get(truncated))
        .with_state(log)
}

async fn truncated(
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> axum::response::Response {
    let n: usize = query
        .as_deref()
        .and_then(|q| q.strip_prefix("bytes="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
        .min(1 << 20);
    // The first part goes out (and is flushed) before the connection breaks.
    let parts = futures_util::stream::unfold(0u8, move |step| async move {
        match step {
            0 => Some((Ok(bytes::Bytes::from(vec![b'x'; n])), 1)),
            1 => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                Some((
                    Err(std::io::Error::other("the upstream died mid-response")),
                    2,
                ))
            }
            _ => None,
        }
    });
    let body = axum::body::Body::from_stream(parts);
    axum::response::Response::builder()
        .header("content-length", (2 * n).to_string())
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap_or_default()
}

async fn list(State(log): State<Arc<DebugLog>>) -> Json<Vec<RequestRecord>> {
    Json(log.snapshot())
}

async fn clear(State(log): State<Arc<DebugLog>>) -> StatusCode {
    log.clear();
    StatusCode::NO_CONTENT
}
