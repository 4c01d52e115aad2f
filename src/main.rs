//! The `gatehouse` binary: parses the command line and hands over to [`gatehouse::cli`].

use clap::Parser;

fn main() {
    let cli = gatehouse::cli::Cli::parse();
    std::process::exit(gatehouse::cli::main(cli));
}
