//! Server settings, kept apart from the command line so the library (and tests) can start a
//! server without going through clap.

use std::time::Duration;

/// Everything [`crate::spawn`] needs to start a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host name or IP address to listen on (default `127.0.0.1`: it sits behind the proxy).
    pub host: String,
    /// TCP port to listen on; `0` lets the OS pick one (default `9000`).
    pub port: u16,
    /// Answer with permissive CORS headers (default `true`).
    pub cors: bool,
    /// Serve `/openapi.json` and `/swagger/index.html` (default `true`).
    pub swagger: bool,
    /// Interval of the `{"type":"ping"}` frames on `/ws`; zero disables them (default 30 s).
    pub ws_ping: Duration,
    /// Serve `/debug/requests` and record every request (default `false`).
    pub debug: bool,
    /// How many executions are kept in memory at most (default 1000).
    pub max_executions: usize,
    /// How long a finished execution is kept (default one hour).
    pub execution_max_age: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 9000,
            cors: true,
            swagger: true,
            ws_ping: Duration::from_secs(30),
            debug: false,
            max_executions: 1000,
            execution_max_age: Duration::from_secs(3600),
        }
    }
}
