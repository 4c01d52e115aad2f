//! The HTTP surface: which path goes to which handler, and the layers around them (CORS, the
//! `--debug` recorder). Each submodule serves one part of the API.

mod body;
mod cors;
mod debug;
mod echo;
mod health;
mod swagger;
mod tests;
mod transcribe;
mod voice;
mod ws;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{middleware, Router};

use crate::config::Config;
use crate::debug_record::{self, DebugLog};
use crate::error;
use crate::executions::ExecutionStore;
use crate::state::AppState;

/// Builds the whole application for `config`.
pub(crate) fn router(config: &Config) -> Router {
    let state = AppState {
        executions: Arc::new(ExecutionStore::new(
            config.max_executions,
            config.execution_max_age,
        )),
        ws_ping: config.ws_ping,
    };
    let mut app = Router::new()
        .route("/health", get(health::health))
        .route("/api/v1/tests/execute", post(tests::execute))
        .route("/api/v1/tests/status/{id}", get(tests::status))
        .route("/ws", get(ws::upgrade))
        .route("/ws/voice", get(voice::upgrade))
        .route("/api/transcribe", post(transcribe::transcribe))
        .merge(echo::routes())
        .with_state(state);
    if config.swagger {
        app = app.merge(swagger::routes());
    }
    let debug_log = config.debug.then(|| Arc::new(DebugLog::default()));
    if let Some(log) = &debug_log {
        app = app.merge(debug::routes(Arc::clone(log)));
    }
    app = app
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed);
    if config.cors {
        app = cors::permissive(app);
    }
    // Outermost, so every request is recorded, CORS preflights and 404s included.
    if let Some(log) = debug_log {
        app = app.layer(middleware::from_fn_with_state(log, debug_record::record));
    }
    app
}
