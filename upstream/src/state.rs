//! The state every route shares.

use std::sync::Arc;
use std::time::Duration;

use crate::executions::ExecutionStore;

/// Shared by the routes; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    /// Every known execution.
    pub(crate) executions: Arc<ExecutionStore>,
    /// Interval of `{"type":"ping"}` frames on `/ws`; zero disables them.
    pub(crate) ws_ping: Duration,
}
