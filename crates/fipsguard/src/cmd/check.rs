//! `fipsguard check`: FIPS posture of hosts, binaries and TLS endpoints, for
//! people and CI gates (exit 0 all pass, 1 a rule failed, 2 usage or probe error).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fipsguard_check::output::{render, Format};
use fipsguard_check::tls::{self, Policy};
use fipsguard_check::{binary, exit_code, host, Report};

/// Flags of `fipsguard check`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    target: Target,
    /// Output: a table for people, or json, sarif (2.1.0) or junit (XML) for CI.
    #[arg(long, global = true, value_enum, default_value = "table")]
    format: Format,
}

#[derive(clap::Subcommand)]
enum Target {
    /// This host's FIPS mode: kernel flag, crypto policy, OpenSSL/GnuTLS/NSS/libgcrypt settings.
    Host {
        /// Read /proc and /etc under this directory instead of the running system.
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Which crypto ELF binaries carry (directories are scanned recursively).
    Binary {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// What TLS endpoints accept (versions, suites, groups, signatures, certificates) against a policy.
    Tls {
        /// Endpoints as HOST:PORT ([IPv6]:PORT for addresses); each address of a HOST is scanned, up to 16.
        #[arg(required = true)]
        targets: Vec<String>,
        /// A TOML policy [default: the built-in FIPS profile, SP 800-52 Rev. 2].
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Timeout of each probe connection, and of resolving the host name.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Longest time the scan of one target (all of its addresses) may take; past it what is left is reported as not scanned (exit 2).
        #[arg(long, default_value = "10m", value_parser = above_zero)]
        deadline: Duration,
        /// SNI to send [default: the target's host name, none for an address].
        #[arg(long)]
        server_name: Option<String>,
    },
}

/// A duration that is not zero (a zero deadline would scan nothing).
fn above_zero(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("must be above zero".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the scan and prints the reports.
pub fn run(args: &Args) -> ExitCode {
    let reports: Vec<Report> = match &args.target {
        Target::Host { root } => vec![host::scan(root)],
        Target::Binary { paths } => binary::scan(paths),
        Target::Tls {
            targets,
            policy,
            timeout,
            deadline,
            server_name,
        } => {
            let policy = match policy.as_deref().map(Policy::from_file).transpose() {
                Ok(policy) => policy.unwrap_or_default(),
                Err(e) => {
                    eprintln!("fipsguard: {e}");
                    return ExitCode::from(2);
                }
            };
            let options = tls::Options {
                timeout: *timeout,
                deadline: *deadline,
                server_name: server_name.clone(),
            };
            tls::scan(targets, &policy, &options)
        }
    };
    let text = render(&reports, args.format);
    // A report that could not be written is a scan a gate cannot read:
    // incomplete (2), not a failed rule (1).
    super::emit_or(
        |out| out.write_all(text.as_bytes()),
        ExitCode::from(exit_code(&reports)),
        ExitCode::from(2),
    )
}
