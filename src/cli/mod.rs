//! The `gatehouse` command line: `run`, `check`, `explain`, `hash-password`. Each command
//! reports errors with context and returns an exit code a script can use:
//! 0 success, 1 invalid policy (or a failed policy test), 2 usage or I/O errors, 3 start
//! failure, 4 an `audit` finding at or above `--fail-on`.

pub mod audit;
pub mod check;
pub mod dump;
pub mod explain;
pub mod hash_password;
pub mod policy_test;
pub mod report;
pub mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Gatehouse: a reverse proxy that enforces one YAML policy file.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Output format of `explain`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    /// A table.
    Text,
    /// JSON.
    Json,
}

/// Output format of `dump`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DumpFormat {
    /// The policy format (YAML).
    Yaml,
    /// JSON.
    Json,
}

/// Password hash algorithm.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// bcrypt (`$2b$`), as `htpasswd -B`.
    Bcrypt,
    /// argon2id.
    Argon2id,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve: proxy to the upstream, enforcing the policy (hot-reloaded).
    Run {
        /// Policy file.
        #[arg(short, long, default_value = "proxy.yaml")]
        config: PathBuf,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Worker threads (default: the number of CPUs).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Validate a policy file: print a summary, or every error (exit 1).
    Check {
        /// Policy file.
        #[arg(short, long, default_value = "proxy.yaml")]
        config: PathBuf,
        /// Validate everything but the JWT secrets (for review without production secrets).
        #[arg(long)]
        no_secrets: bool,
    },
    /// Evaluate one request against the policy without serving it.
    Explain {
        /// Policy file.
        #[arg(short, long, default_value = "proxy.yaml")]
        config: PathBuf,
        /// HTTP method.
        method: String,
        /// Request target (path and query), as the client would send it.
        path: String,
        /// TCP peer address (default 127.0.0.1).
        #[arg(long, default_value = "127.0.0.1")]
        ip: String,
        /// A request header, `Name: value` (repeatable). Without `Host`, the first
        /// listener's address is sent as `Host`.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The request arrives on a TLS listener (its own origin is `https://Host`).
        #[arg(long)]
        tls: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Risky settings that are valid: findings with id, severity, key path, line and fix.
    Audit {
        /// Policy file.
        #[arg(short, long, default_value = "proxy.yaml")]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = audit::AuditFormat::Text)]
        format: audit::AuditFormat,
        /// Exit 4 when a finding is at or above this severity.
        #[arg(long, value_enum, default_value_t = audit::Severity::High)]
        fail_on: audit::Severity,
    },
    /// Print the JSON Schema (draft 2020-12) of the policy file (also docs/policy.schema.json).
    Schema,
    /// Print the effective policy: every default resolved, every inherited value written out.
    Dump {
        /// Policy file.
        #[arg(short, long, default_value = "proxy.yaml")]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DumpFormat::Yaml)]
        format: DumpFormat,
    },
    /// Write one self-contained HTML page for auditors: routes × controls, lists, findings.
    Report {
        /// Policy file.
        #[arg(short, long, default_value = "proxy.yaml")]
        config: PathBuf,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run policy tests (YAML files of requests and expected decisions); secrets are optional.
    Test {
        /// Policy file.
        #[arg(short, long, default_value = "proxy.yaml")]
        config: PathBuf,
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Read a password on stdin and print an htpasswd line (or just the hash).
    HashPassword {
        /// User name for the htpasswd line.
        #[arg(long)]
        user: Option<String>,
        /// Hash algorithm.
        #[arg(long, value_enum, default_value_t = HashAlgorithm::Bcrypt)]
        algorithm: HashAlgorithm,
        /// bcrypt cost (4–31).
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
}

/// Runs the parsed command and returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    match cli.command {
        Command::Run {
            config,
            log_format,
            threads,
        } => run::run(config, log_format, threads),
        Command::Check { config, no_secrets } => check::check(&config, no_secrets),
        Command::Explain {
            config,
            method,
            path,
            ip,
            headers,
            tls,
            format,
        } => explain::explain(&config, &method, &path, &ip, &headers, tls, format),
        Command::Test { config, files } => policy_test::test(&config, &files),
        Command::Report { config, output } => report::report(&config, &output),
        Command::Dump { config, format } => dump::dump(&config, format == DumpFormat::Json),
        Command::Schema => match serde_json::to_string_pretty(&crate::config::raw::schema()) {
            Ok(s) => {
                println!("{s}");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
        Command::Audit {
            config,
            format,
            fail_on,
        } => audit::audit(&config, format, fail_on),
        Command::HashPassword {
            user,
            algorithm,
            cost,
        } => hash_password::hash_password(user.as_deref(), algorithm, cost),
    }
}
