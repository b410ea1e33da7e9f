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
    /// Change the root key of a configuration's store (every node stopped first); binds a store an earlier release wrote.
    Rekey(cmd::rekey::Args),
    /// Run the key management service (HTTPS API).
    Serve(cmd::serve::Args),
    /// Check the audit log: `fipsguard audit verify --log DIR --public-key PEM`.
    Audit(cmd::audit::Args),
    /// Manage a server's keys and their lifecycle (officer).
    Key(cmd::keys::Args),
    /// Manage a server's bearer tokens (officer).
    Token(cmd::tokens::Args),
    /// Encrypt a file (any size, or - for stdin) under a data key from the server.
    Encrypt(cmd::files::EncryptArgs),
    /// Decrypt a file made by `fipsguard encrypt`.
    Decrypt(cmd::files::DecryptArgs),
    /// Encrypt small data (at most 64 KiB) on the server; prints the ciphertext.
    EncryptData(cmd::data::EncryptArgs),
    /// Decrypt a ciphertext on the server; writes the plaintext to stdout.
    DecryptData(cmd::data::DecryptArgs),
    /// Sign a message or, with --hash, a file's digest.
    Sign(cmd::data::SignArgs),
    /// Verify a signature (exit 0 valid, 1 invalid).
    Verify(cmd::data::VerifyArgs),
    /// Compute a MAC.
    Mac(cmd::data::MacArgs),
    /// Random bytes from the server's DRBG.
    Random(cmd::data::RandomArgs),
    /// A FIPS-only TLS proxy: `tunnel server`, `tunnel client`, or `tunnel --config FILE`.
    Tunnel(Box<cmd::tunnel::Args>),
    /// Prove or disprove FIPS posture: `check host`, `check binary PATH...`, `check tls HOST:PORT...`.
    Check(cmd::check::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Selftest(args) => cmd::selftest::run(&args),
        Command::Algorithms(args) => cmd::algorithms::run(&args),
        Command::Init(args) => cmd::runtime().block_on(cmd::init::run(&args)),
        Command::Rekey(args) => cmd::runtime().block_on(cmd::rekey::run(&args)),
        Command::Serve(args) => cmd::runtime().block_on(cmd::serve::run(&args)),
        Command::Audit(args) => cmd::audit::run(&args),
        Command::Key(args) => cmd::keys::run(&args),
        Command::Token(args) => cmd::tokens::run(&args),
        Command::Encrypt(args) => cmd::files::encrypt(&args),
        Command::Decrypt(args) => cmd::files::decrypt(&args),
        Command::EncryptData(args) => cmd::data::encrypt(&args),
        Command::DecryptData(args) => cmd::data::decrypt(&args),
        Command::Sign(args) => cmd::data::sign(&args),
        Command::Verify(args) => cmd::data::verify(&args),
        Command::Mac(args) => cmd::data::mac(&args),
        Command::Random(args) => cmd::data::random(&args),
        Command::Tunnel(args) => cmd::control_runtime().block_on(cmd::tunnel::run(&args)),
        Command::Check(args) => cmd::check::run(&args),
    }
}
