//! `fipsguard`: FIPS 140-3 validated cryptography as a service, a tunnel and
//! a compliance scanner. This binary only parses flags and calls the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

// The request path allocates and frees many short buffers; mimalloc keeps
// that off glibc malloc's slower consolidation paths (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// FIPS 140-3 validated cryptography, built only on AWS-LC's FIPS module.
#[derive(Parser)]
#[command(name = "fipsguard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the module's self-tests and show the results (exit 1 on any failure).
    Selftest(cmd::selftest::Args),
    /// List the approved algorithms and the standards behind them.
    Algorithms(cmd::algorithms::Args),
    /// Create the store (and root key file) of a configuration and print the first officer token.
    Init(cmd::init::Args),
    /// Run the key management service (HTTPS API).
    Serve(cmd::serve::Args),
    /// Check the audit log: `fipsguard audit verify --log DIR --public-key PEM`.
    Audit(cmd::audit::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Selftest(args) => cmd::selftest::run(&args),
        Command::Algorithms(args) => cmd::algorithms::run(&args),
        Command::Init(args) => cmd::runtime().block_on(cmd::init::run(&args)),
        Command::Serve(args) => cmd::runtime().block_on(cmd::serve::run(&args)),
        Command::Audit(args) => cmd::audit::run(&args),
    }
}
