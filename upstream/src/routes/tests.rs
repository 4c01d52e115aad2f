//! The REST side of test executions: start one (`POST /api/v1/tests/execute`) and read its
//! status and log (`GET /api/v1/tests/status/{id}`).

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::body::{check_declared_length, consume};
use crate::error::ApiError;
use crate::executions::Snapshot;
use crate::runner;
use crate::state::AppState;
use crate::suite::Suite;

/// Largest suite accepted, in bytes (bounds the memory one execution's log can take).
const MAX_SUITE_BYTES: u64 = 256 * 1024;

/// Starts the posted suite: 202 `{"execution_id", "status": "running"}`.
pub(crate) async fn execute(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_declared_length(&headers, MAX_SUITE_BYTES)?;
    let mut bytes = Vec::new();
    consume(body, MAX_SUITE_BYTES, |chunk| {
        bytes.extend_from_slice(chunk)
    })
    .await?;
    let suite =
        Suite::from_slice(&bytes).map_err(|msg| ApiError::bad_request("invalid_suite", msg))?;
    let id = runner::start(&state.executions, suite)
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))?;
    let body = json!({ "execution_id": id, "status": "running" });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// The status and log of one execution; 404 if unknown (or evicted).
pub(crate) async fn status(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Snapshot>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
    state
        .executions
        .snapshot(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("unknown execution_id {id:?}")))
}
