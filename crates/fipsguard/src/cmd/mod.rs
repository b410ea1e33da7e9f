//! One module per subcommand.

use std::io::{self, Write};
use std::process::ExitCode;

pub mod algorithms;
pub mod selftest;

/// Writes a command's output to stdout. A reader that goes away early
/// (`fipsguard algorithms | head`) is not an error.
pub fn emit(write: impl FnOnce(&mut dyn Write) -> io::Result<()>, code: ExitCode) -> ExitCode {
    let mut out = io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("fipsguard: cannot write output: {e}");
            ExitCode::FAILURE
        }
        _ => code,
    }
}

/// Writes `value` as pretty JSON.
pub fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}
