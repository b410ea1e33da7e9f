//! One module per subcommand.

use std::io::{self, Write};
use std::process::ExitCode;

pub mod algorithms;
pub mod audit;
pub mod client;
pub mod data;
pub mod files;
pub mod init;
pub mod keys;
pub mod selftest;
pub mod serve;
pub mod tokens;

/// The async runtime for commands that need one: one worker per core.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the runtime starts")
}

/// Reports a failed command on stderr: exit 1.
pub fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("fipsguard: {message}");
    ExitCode::FAILURE
}

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
