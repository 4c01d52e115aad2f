//! The `voiceflow` binary: parses `voiceflow server [flags]`, starts the server, prints
//! `voiceflow listening on http://ADDR` on stdout, and runs until Ctrl-C or SIGTERM. Logs go
//! to stderr (`RUST_LOG` sets the level, `info` by default).

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// How long in-flight requests get to finish after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Test-execution and voice server (the upstream Gatehouse protects).
#[derive(Parser)]
#[command(name = "voiceflow", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Server(ServerArgs),
}

#[derive(Args)]
struct ServerArgs {
    /// Host or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// TCP port to listen on (0: the OS picks one).
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Send permissive CORS headers.
    #[arg(long, action = ArgAction::Set, value_name = "true|false", default_value_t = true)]
    cors: bool,
    /// Serve /openapi.json and /swagger/index.html.
    #[arg(long, action = ArgAction::Set, value_name = "true|false", default_value_t = true)]
    swagger: bool,
    /// Seconds between {"type":"ping"} frames on /ws (0 disables them).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    ws_ping: u64,
    /// Serve /debug/requests, recording every request received.
    #[arg(long)]
    debug: bool,
}

impl ServerArgs {
    fn into_config(self) -> voiceflow::Config {
        voiceflow::Config {
            host: self.host,
            port: self.port,
            cors: self.cors,
            swagger: self.swagger,
            ws_ping: Duration::from_secs(self.ws_ping),
            debug: self.debug,
            ..voiceflow::Config::default()
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli {
        command: Command::Server(args),
    } = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let stopped = stop_signal();
    let handle = match voiceflow::spawn(args.into_config()).await {
        Ok(handle) => handle,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Tests and scripts parse this line: keep its format.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "voiceflow listening on http://{}", handle.addr());
    let _ = stdout.flush();
    drop(stdout);

    stopped.await;
    tracing::info!("stopping");
    match tokio::time::timeout(SHUTDOWN_GRACE, handle.shutdown()).await {
        Ok(Err(err)) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
        Ok(Ok(())) => ExitCode::SUCCESS,
        Err(_) => {
            tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; exiting anyway");
            ExitCode::SUCCESS
        }
    }
}

/// Installs the stop handlers now (so a signal sent as soon as the listening line is out is
/// not missed) and returns a future resolving on Ctrl-C or SIGTERM.
#[cfg(unix)]
fn stop_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    async fn next(signal: std::io::Result<Signal>) {
        match signal {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    }
    let interrupt = next(signal(SignalKind::interrupt()));
    let terminate = next(signal(SignalKind::terminate()));
    async {
        tokio::select! {
            () = interrupt => {}
            () = terminate => {}
        }
    }
}

/// Returns a future resolving on Ctrl-C.
#[cfg(not(unix))]
fn stop_signal() -> impl Future<Output = ()> {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
