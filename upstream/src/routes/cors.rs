//! Permissive CORS (any origin, method and header), as the original server had; the proxy
//! replaces these headers on the routes where it owns CORS.
//!
//! tower-http answers every `OPTIONS` request as a preflight. Only a real preflight (one with
//! `Access-Control-Request-Method`) should be, so that `OPTIONS /api/v1/echo` still reaches the
//! echo: other `OPTIONS` requests go to the routes without the CORS layer.

use axum::extract::Request;
use axum::http::{header, Method};
use axum::Router;
use tower::ServiceExt;
use tower_http::cors::CorsLayer;

/// Wraps `app` in permissive CORS, leaving non-preflight `OPTIONS` requests to the routes.
pub(crate) fn permissive(app: Router) -> Router {
    let with_cors = app.clone().layer(CorsLayer::permissive());
    let dispatch = tower::service_fn(move |request: Request| {
        let preflight_or_not_options = request.method() != Method::OPTIONS
            || request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let target = if preflight_or_not_options {
            with_cors.clone()
        } else {
            app.clone()
        };
        target.oneshot(request)
    });
    Router::new().fallback_service(dispatch)
}
