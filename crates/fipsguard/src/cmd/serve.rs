//! `fipsguard serve`: the HTTPS key management service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use fipsguard_server::config::{development, Config, LogFormat};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Flags of `fipsguard serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (TOML); see docs/configuration.md.
    #[arg(
        long,
        env = "FIPSGUARD_CONFIG",
        required_unless_present = "dev",
        conflicts_with = "dev"
    )]
    config: Option<PathBuf>,
    /// Development server: nothing else needed (ephemeral root key, SQLite
    /// in a temporary directory, self-signed certificate). Not for production.
    #[arg(long)]
    dev: bool,
    /// Start although the audit log falls short of the checkpoint saved
    /// in the key store (records removed), recording the gap in the log:
    /// once, after keeping the evidence (docs/runbooks/audit-failure.md).
    #[arg(long, conflicts_with = "dev")]
    audit_accept_gap: bool,
    /// Address for --dev.
    #[arg(long, default_value = "127.0.0.1:8443", requires = "dev")]
    listen: SocketAddr,
    /// With --dev: also write the URL, CA file and officer token as JSON to this file (mode 0600), for scripts.
    #[arg(long, requires = "dev")]
    dev_info: Option<PathBuf>,
    /// With --dev: no audit log, to measure what it costs (bench/serve.sh).
    #[arg(long, requires = "dev")]
    dev_no_audit: bool,
    /// With --dev: seconds between self-test runs while serving (default a day).
    #[arg(long, requires = "dev", value_parser = clap::value_parser!(u64).range(1..))]
    self_test_interval: Option<u64>,
    /// With --dev: also serve `/metrics` without a token on this plain-HTTP address.
    #[arg(long, requires = "dev")]
    metrics_listen: Option<SocketAddr>,
}

/// Starts the server and runs until SIGINT or SIGTERM, then drains.
pub async fn run(args: &Args) -> ExitCode {
    // Taken before anything else: until a handler exists, SIGHUP (a
    // `systemctl reload` just after a start) would end the process. One
    // that comes before the server serves is answered once it does.
    let hangups = signal(SignalKind::hangup()).expect("SIGHUP handler");
    match &args.config {
        Some(path) => production(path, args.audit_accept_gap, hangups).await,
        None => dev(args, hangups).await,
    }
}

async fn production(path: &std::path::Path, accept_audit_gap: bool, hangups: Signal) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => return super::fail(e),
    };
    super::init_logging(config.log_format);
    let mut options = match config.server_options().await {
        Ok(options) => options,
        Err(e) => return super::fail(e),
    };
    if let Some(audit) = options.audit.as_mut() {
        audit.accept_gap = accept_audit_gap;
    }
    options.hangups = Some(hangups);
    serve_until_signal(options).await
}

async fn dev(args: &Args, hangups: Signal) -> ExitCode {
    super::init_logging(LogFormat::Text);
    let dir = match tempfile::Builder::new().prefix("fipsguard-dev-").tempdir() {
        Ok(dir) => dir,
        Err(e) => return super::fail(format!("cannot create a temporary directory: {e}")),
    };
    let (mut options, info) = match development(dir.path(), args.listen).await {
        Ok(dev) => dev,
        Err(e) => return super::fail(e),
    };
    if args.dev_no_audit {
        options.audit = None;
    }
    if let Some(secs) = args.self_test_interval {
        options.self_test_interval = std::time::Duration::from_secs(secs);
    }
    options.metrics_listen = args.metrics_listen;
    options.hangups = Some(hangups);
    super::raise_open_file_limit(options.connections.max_connections);
    let running = match fipsguard_server::start(options, super::shutdown_signal()).await {
        Ok(running) => running,
        Err(e) => return super::fail(format!("cannot start: {e}")),
    };
    // Announced once the listener is bound, so scripts can connect at once.
    let token = String::from_utf8_lossy(info.officer_token.expose_secret()).into_owned();
    let url = format!("https://{}", running.local_addr);
    println!("fipsguard development server (NOT for production: the root key lives only in this process)");
    println!("  url:           {url}");
    println!("  CA file:       {}", info.ca_file.display());
    println!("  officer token: {token}");
    println!("  audit log:     {}", info.audit_dir.display());
    if let Some(metrics) = running.metrics_addr {
        println!("  metrics:       http://{metrics}/metrics (no token)");
    }
    println!(
        "  try:           curl --cacert {} {url}/v1/health",
        info.ca_file.display()
    );
    if let Some(path) = &args.dev_info {
        let json = serde_json::json!({ "url": url, "ca_file": info.ca_file, "officer_token": token, "audit_dir": info.audit_dir });
        if let Err(e) = write_private(path, &json.to_string()) {
            running.stop().await;
            return super::fail(format!("cannot write {}: {e}", path.display()));
        }
    }
    running.wait().await;
    ExitCode::SUCCESS
}

async fn serve_until_signal(options: fipsguard_server::ServerOptions) -> ExitCode {
    super::raise_open_file_limit(options.connections.max_connections);
    match fipsguard_server::start(options, super::shutdown_signal()).await {
        Ok(running) => {
            running.wait().await;
            ExitCode::SUCCESS
        }
        Err(e) => super::fail(format!("cannot start: {e}")),
    }
}

/// Writes a new file only its owner can read (an old one is replaced, not
/// reused, so its permissions cannot linger).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}
