//! State that outlives one request: the swappable policy snapshot and the metrics. The pure
//! decision never sees this; the proxy reads a snapshot per request and records outcomes.

pub mod access_log;
pub mod limits;
pub mod log_writer;
pub mod metrics;
pub mod snapshot;
pub mod sockets;
pub mod token_cache;
pub mod verify_pool;

pub use limits::Limits;
pub use metrics::Metrics;
pub use snapshot::Shared;
pub use verify_pool::VerifyPool;
