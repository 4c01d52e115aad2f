//! `ANY /api/v1/echo[/...]`: answers the request as JSON so tests can see exactly what reached
//! the upstream: method, path as received (not normalized), raw query, every header value in
//! order under its lowercase name, and the body length (counted, not stored).

use std::collections::BTreeMap;

use axum::extract::Request;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::body::consume;
use crate::error::ApiError;
use crate::state::AppState;

/// The echo routes: the base path, with a trailing slash, and everything below.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/echo", any(echo))
        .route("/api/v1/echo/", any(echo))
        .route("/api/v1/echo/{*rest}", any(echo))
}

async fn echo(request: Request) -> Result<Json<Value>, ApiError> {
    let (parts, body) = request.into_parts();
    let mut headers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.entry(name.as_str()).or_default().push(value);
    }
    let body_bytes = consume(body, u64::MAX, |_| {}).await?;
    Ok(Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "body_bytes": body_bytes,
    })))
}
