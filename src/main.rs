//! The `gatehouse` binary: parses the command line and hands over to [`gatehouse::cli`].
//!
//! The process allocates with jemalloc: with its background threads purging freed pages, the
//! memory of closed connections goes back to the OS within seconds, where glibc's malloc kept
//! it (see docs/benchmarks.md, "Memory that comes back").

use clap::Parser;

// `--features system-allocator` builds with the system's malloc instead, for heap profilers
// that intercept malloc (heaptrack): see docs/benchmarks.md.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    // Purge freed pages from a background thread rather than on the allocating threads (the
    // request path) or never (jemalloc's default without background threads).
    #[cfg(not(feature = "system-allocator"))]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("warning: jemalloc background purging not enabled: {e}");
    }
    let cli = gatehouse::cli::Cli::parse();
    std::process::exit(gatehouse::cli::main(cli));
}
