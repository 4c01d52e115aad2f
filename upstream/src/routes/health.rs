//! `GET /health`: liveness for the proxy and for people.

use axum::Json;
use serde_json::{json, Value};

/// Always `{"status":"ok"}`.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
