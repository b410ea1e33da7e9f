//! `fipsguard tunnel`: FIPS-only TLS in front of, or out of, software whose
//! own TLS is not validated.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use fipsguard_server::config::LogFormat;
use fipsguard_tunnel::{Config, Mode, TunnelConfig};

/// Flags of `fipsguard tunnel`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    mode: Option<ModeCommand>,
    /// Run every `[[tunnel]]` of a TOML file (see docs/tunnel.md).
    #[arg(long, required = true)]
    config: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum ModeCommand {
    /// Accept FIPS TLS on --listen, forward plain TCP to --target.
    Server(OneTunnel),
    /// Accept plain TCP on --listen, forward over FIPS TLS to --target.
    Client(OneTunnel),
}

/// One tunnel from flags.
#[derive(clap::Args)]
struct OneTunnel {
    #[command(flatten)]
    tunnel: TunnelConfig,
    /// Plain-HTTP address for /metrics and /health (keep it private).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Seconds shutdown waits for open connections before it cuts them.
    #[arg(long, default_value_t = fipsguard_tunnel::config::DEFAULT_DRAIN_SECS)]
    drain_timeout_secs: u64,
    /// Log lines as JSON.
    #[arg(long)]
    log_json: bool,
}

/// Runs the tunnels until SIGINT or SIGTERM, then drains.
pub async fn run(args: &Args) -> ExitCode {
    let config = match (&args.config, &args.mode) {
        (Some(path), _) => {
            super::init_logging(LogFormat::Text);
            Config::load(path)
        }
        (None, Some(ModeCommand::Server(one))) => one.config(Mode::Server),
        (None, Some(ModeCommand::Client(one))) => one.config(Mode::Client),
        (None, None) => {
            Err("give --config FILE, or `tunnel server` / `tunnel client` with flags".into())
        }
    };
    let config = match config {
        Ok(config) => config,
        Err(e) => return super::fail(e),
    };
    // Each connection holds two sockets: the peer's and the target's.
    let sockets = config.tunnels.iter().map(|t| 2 * t.max_connections).sum();
    super::raise_open_file_limit(sockets);
    match fipsguard_tunnel::run(config, super::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(e),
    }
}

impl OneTunnel {
    fn config(&self, mode: Mode) -> Result<Config, String> {
        super::init_logging(match self.log_json {
            true => LogFormat::Json,
            false => LogFormat::Text,
        });
        let config = Config {
            metrics_listen: self.metrics_listen,
            drain_timeout_secs: self.drain_timeout_secs,
            tunnels: vec![TunnelConfig {
                mode,
                ..self.tunnel.clone()
            }],
        };
        config.validate()?;
        Ok(config)
    }
}
