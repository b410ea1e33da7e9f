//! `fipsguard tunnel`: a TLS proxy that only ever speaks the FIPS TLS
//! policy (`fipsguard_crypto::tls`, the same as `serve`), for software
//! whose own TLS is not validated.
//!
//! - [`config`]: what a tunnel is (TOML or flags);
//! - [`proxy`]: accepting, the handshake, the allow-list, forwarding;
//! - [`reload`]: certificates, keys, CAs and CRLs rebuilt on SIGHUP or change;
//! - [`identity`]: names in a verified peer certificate;
//! - [`proxy_protocol`]: the PROXY v2 header towards the target;
//! - [`metrics`]: the Prometheus series and the health listener.

pub mod config;
pub mod identity;
pub mod metrics;
pub mod proxy;
pub mod proxy_protocol;
pub mod reload;

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

pub use config::{Config, Mode, Target, TunnelConfig};
pub use proxy::Tunnel;

/// How often the certificate, key, CA and CRL files are checked for change.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// How long the metrics listener may finish a scrape once the tunnels have
/// drained; a client that stalls its request is cut then.
const METRICS_GRACE: Duration = Duration::from_secs(2);

/// Runs every tunnel of `config` until `shutdown` resolves, then drains.
/// SIGHUP, or a change to one of its files, makes a tunnel read its
/// certificate, key, CAs and CRL again.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let report = fipsguard_crypto::module::power_up();
    if let Some(failed) = report.first_failure() {
        return Err(format!(
            "self-test {failed} failed: the module refuses service, so no tunnel starts"
        ));
    }
    metrics::install();
    // Before any tunnel says it listens: a reload asked for on that line
    // must not meet SIGHUP's default action, which ends the process.
    let mut hangups =
        signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
    let mut tunnels = Vec::new();
    for tunnel in config.tunnels.clone() {
        if tunnel.unsafe_listen && !tunnel.listen.ip().is_loopback() {
            tracing::warn!(tunnel = %tunnel.name, listen = %tunnel.listen, "a client tunnel listening off loopback (unsafe_listen) lends its TLS identity to anyone who can reach it");
        }
        let tunnel = Tunnel::bind(tunnel).await?;
        tracing::info!(tunnel = %tunnel.name(), listen = %tunnel.local_addr().map_err(|e| e.to_string())?, mode = ?tunnel.mode(), "tunnel listening");
        tunnels.push(tunnel);
    }
    let (stop, stopped) = watch::channel(false);
    let metrics_server = match config.metrics_listen {
        Some(addr) => {
            let listener = metrics::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
            let mut stopped = stopped.clone();
            Some(tokio::spawn(metrics::serve(listener, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })))
        }
        None => None,
    };
    let states: Vec<_> = tunnels.iter().map(Tunnel::tls).collect();
    let watcher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        loop {
            tokio::select! {
                Some(()) = hangups.recv() => states.iter().for_each(|s| s.reload("SIGHUP")),
                _ = tick.tick() => states.iter().for_each(|s| s.reload_if_changed()),
            }
        }
    });
    let drain = config.drain_timeout();
    let mut running = Vec::new();
    for tunnel in tunnels {
        running.push(tunnel.start(stopped.clone(), drain).await?);
    }
    shutdown.await;
    tracing::info!("shutting down: no new connections; draining open ones");
    let _ = stop.send(true);
    watcher.abort();
    for tunnel in running {
        tunnel.finished().await;
    }
    if let Some(mut server) = metrics_server {
        if tokio::time::timeout(METRICS_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
    Ok(())
}
