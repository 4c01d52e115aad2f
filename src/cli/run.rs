//! `gatehouse run`: load the policy, set up logging, start serving.

use std::path::PathBuf;

use super::LogFormat;
use crate::config;
use crate::proxy::server;
use crate::runtime::log_writer::BatchWriter;
use crate::runtime::Shared;

/// Serves until stopped; returns an exit code only when it could not start.
pub fn run(config_path: PathBuf, log_format: LogFormat, threads: Option<usize>) -> i32 {
    init_logging(log_format);
    let policy = match config::load(&config_path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            // A policy that is right but whose TLS files cannot serve is a start failure
            // (exit 3, like a port in use), not a policy error.
            if e.0.iter().all(|err| err.path.contains(".tls.")) {
                eprintln!(
                    "gatehouse: cannot start: a TLS listener's certificate or key is unusable"
                );
                return 3;
            }
            eprintln!("gatehouse: the policy has errors; not starting");
            return 1;
        }
    };
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let shared = Shared::new(policy);
    match server::run(config_path, shared, threads) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}

/// Log lines go to stderr through [`BatchWriter`]: formatted on the worker thread, appended to
/// an in-memory batch, written out by a background thread every few milliseconds. When the
/// output falls behind by more than [`LOG_BUFFER_BYTES`], new lines are dropped and counted
/// (`gatehouse_log_lines_dropped_total`) rather than stalling every request behind a slow disk.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn")
    });
    use std::io::IsTerminal;
    let writer = BatchWriter::start(std::io::stderr(), LOG_BUFFER_BYTES);
    crate::runtime::metrics::set_log_writer(writer.clone());
    crate::runtime::access_log::install(
        writer.clone(),
        match format {
            LogFormat::Json => crate::runtime::access_log::Format::Json,
            LogFormat::Text => crate::runtime::access_log::Format::Text,
        },
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Bytes of log lines that may wait in memory before new ones are dropped (and counted).
const LOG_BUFFER_BYTES: usize = 64 << 20;
