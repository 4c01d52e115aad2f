//! `GET /debug/requests` (the recorded requests, oldest first) and `DELETE /debug/requests`
//! (forget them). Only mounted with `--debug`; the recording itself is
//! [`crate::debug_record`].

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
        .with_state(log)
}

async fn list(State(log): State<Arc<DebugLog>>) -> Json<Vec<RequestRecord>> {
    Json(log.snapshot())
}

async fn clear(State(log): State<Arc<DebugLog>>) -> StatusCode {
    log.clear();
    StatusCode::NO_CONTENT
}
