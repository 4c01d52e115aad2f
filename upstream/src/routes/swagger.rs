//! `GET /openapi.json` and `GET /swagger/index.html`: the API description, and a small
//! self-contained page that lists its operations (no external assets, so it works offline).

use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;

/// The OpenAPI 3 document, written by hand next to the code it describes.
const OPENAPI: &str = include_str!("../../assets/openapi.json");
/// The page that renders it.
const INDEX: &str = include_str!("../../assets/swagger.html");

/// The documentation routes (only mounted with `--swagger=true`).
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route(
            "/swagger",
            get(|| async { Redirect::to("/swagger/index.html") }),
        )
        .route(
            "/swagger/",
            get(|| async { Redirect::to("/swagger/index.html") }),
        )
        .route("/swagger/index.html", get(|| async { Html(INDEX) }))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn document_is_openapi_3_and_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for path in [
            "/health",
            "/api/v1/tests/execute",
            "/api/v1/tests/status/{id}",
            "/ws",
            "/ws/voice",
            "/api/transcribe",
            "/api/v1/echo",
            "/api/v1/echo/{path}",
            "/openapi.json",
            "/swagger/index.html",
            "/debug/requests",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
    }
}
