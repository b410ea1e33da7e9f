//! `fipsguard algorithms`: the approved-algorithm registry.

use std::io::{self, Write};
use std::process::ExitCode;

use fipsguard_crypto::registry::APPROVED;

/// Flags of `fipsguard algorithms`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the registry as JSON.
    #[arg(long)]
    json: bool,
}

/// Prints every approved algorithm with its standard and self-tests.
pub fn run(args: &Args) -> ExitCode {
    super::emit(
        |out| match args.json {
            true => super::write_json(out, &APPROVED),
            false => write_table(out),
        },
        ExitCode::SUCCESS,
    )
}

fn write_table(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<20} {:<28} {:<42} SERVICE",
        "ALGORITHM", "STANDARD", "SELF-TESTS"
    )?;
    for a in APPROVED {
        writeln!(
            out,
            "{:<20} {:<28} {:<42} {}",
            a.name,
            a.standard,
            a.self_tests.join(","),
            a.service
        )?;
    }
    Ok(())
}
