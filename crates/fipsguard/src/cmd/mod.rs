//! One module per subcommand.

use std::io::{self, Write};
use std::process::ExitCode;

use std::sync::Arc;

use fipsguard_core::Kms;
use fipsguard_server::config::{Config, LogFormat, RootKeyConfig};

pub mod algorithms;
pub mod audit;
pub mod check;
pub mod client;
pub mod data;
pub mod files;
pub mod init;
pub mod keys;
pub mod rekey;
pub mod selftest;
pub mod serve;
pub mod tokens;
pub mod tunnel;

/// The async runtime for commands that need one: one worker per core.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the runtime starts")
}

/// A runtime on the calling thread alone, for work that needs no more
/// (the tunnel, whose heavy work runs on its own workers; watching for
/// signals while a file is written).
pub fn control_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the runtime starts")
}

/// Creates the root key file `root` names if it does not exist yet (`init`,
/// `rekey`), and says so.
pub fn create_root_key_file(root: &RootKeyConfig) -> Result<(), String> {
    let Some(file) = root.file.as_ref().filter(|f| !f.exists()) else {
        return Ok(());
    };
    fipsguard_core::root::create_key_file(file).map_err(|e| e.to_string())?;
    eprintln!(
        "created root key file {} (mode 0600): back it up; without it the keys are lost",
        file.display()
    );
    Ok(())
}

/// Opens the configuration's audit log, if it keeps one, for a command
/// that changes the store beside the servers (`init`, `rekey`).
pub async fn open_audit(
    config: &Config,
    kms: &Arc<Kms>,
) -> Result<Option<fipsguard_audit::AuditLog>, String> {
    match config.audit.resolve()? {
        Some(audit) => {
            let node = config.audit.node.clone();
            fipsguard_server::audit::open(kms, audit, node, vec![])
                .await
                .map(Some)
        }
        None => Ok(None),
    }
}

/// Reports a failed command on stderr: exit 1.
pub fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("fipsguard: {message}");
    ExitCode::FAILURE
}

/// Writes a command's output to stdout. A reader that goes away early
/// (`fipsguard algorithms | head`) is not an error.
pub fn emit(write: impl FnOnce(&mut dyn Write) -> io::Result<()>, code: ExitCode) -> ExitCode {
    emit_or(write, code, ExitCode::FAILURE)
}

/// [`emit`], exiting with `unwritten` when the output could not be written.
pub fn emit_or(
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    code: ExitCode,
    unwritten: ExitCode,
) -> ExitCode {
    let mut out = io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("fipsguard: cannot write output: {e}");
            unwritten
        }
        _ => code,
    }
}

/// Writes `value` as pretty JSON.
pub fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// Resolves on SIGINT or SIGTERM. The handlers are in place when this
/// returns, not when the future is first polled: a server announces it is
/// serving before its task polls, and a signal sent on that announcement
/// must not be lost (or kill it without a drain).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: draining in-flight work");
    }
}

/// Files a process holds besides its connections: listeners, the store,
/// the audit log, the runtime's own.
const OTHER_OPEN_FILES: usize = 64;

/// Raises the soft limit on open files to the hard one (a Rust program,
/// unlike a Go one, keeps the soft limit it is given, often 1,024), and
/// warns when even the hard limit is below what `connections` sockets
/// need: accept would fail with EMFILE before the connection limit.
pub fn raise_open_file_limit(connections: usize) {
    let needed = u64::try_from(connections.saturating_add(OTHER_OPEN_FILES)).unwrap_or(u64::MAX);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            "the open-file limit is below what the configured connections need; raise it (LimitNOFILE= in systemd, ulimit -n) or lower max_connections"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}

/// Logs to stderr, filtered by `FIPSGUARD_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIPSGUARD_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
