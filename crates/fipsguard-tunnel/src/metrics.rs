//! The tunnel's Prometheus series, and the plain-HTTP listener that serves
//! them with a health check for load balancers. Labels carry tunnel names,
//! outcomes and reasons, TLS versions and suites: never a peer's identity.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use fipsguard_crypto::module;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process's recorder, installed once. Its series are counters and
/// gauges only: a histogram's samples would be kept until a scrape unless
/// folded on a timer, as the server does (`run_upkeep`).
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// Installs the recorder, so series exist before the first connection.
pub fn install() {
    handle();
}

/// A handshake's end: `ok`, or `refused` with why.
pub fn handshake(tunnel: &str, outcome: &'static str, reason: &'static str) {
    counter!("fipsguard_tunnel_handshakes_total", "tunnel" => tunnel.to_owned(), "outcome" => outcome, "reason" => reason)
        .increment(1);
}

/// What an established session negotiated.
pub fn session(tunnel: &str, version: &'static str, suite: &'static str) {
    counter!("fipsguard_tunnel_sessions_total", "tunnel" => tunnel.to_owned(), "version" => version, "suite" => suite)
        .increment(1);
}

/// Connections open now.
pub fn open_connections(tunnel: &str, delta: f64) {
    gauge!("fipsguard_tunnel_open_connections", "tunnel" => tunnel.to_owned()).increment(delta);
}

/// Bytes forwarded: `to_target` from whoever connected to the tunnel
/// towards its target, `to_peer` back.
pub fn bytes_counter(tunnel: &str, direction: &'static str) -> metrics::Counter {
    counter!("fipsguard_tunnel_bytes_total", "tunnel" => tunnel.to_owned(), "direction" => direction)
}

/// A connection closed for being idle.
pub fn idle_closed(tunnel: &str) {
    counter!("fipsguard_tunnel_idle_closed_total", "tunnel" => tunnel.to_owned()).increment(1);
}

/// An open connection cut because its client is no longer accepted: its
/// certificate expired, or a reload's trust refuses it (`reason`, from
/// `ClientRefused::reason`).
pub fn client_cut(tunnel: &str, reason: &'static str) {
    counter!("fipsguard_tunnel_clients_cut_total", "tunnel" => tunnel.to_owned(), "reason" => reason)
        .increment(1);
}

/// Creates a tunnel's series of reloads and of the connections they cut
/// at zero, so that an alert on their increase sees the first one.
pub fn init_reloads(tunnel: &str) {
    for outcome in ["ok", "failed"] {
        counter!("fipsguard_tunnel_reloads_total", "tunnel" => tunnel.to_owned(), "outcome" => outcome)
            .increment(0);
    }
    for reason in fipsguard_crypto::tls::ClientRefused::REASONS {
        counter!("fipsguard_tunnel_clients_cut_total", "tunnel" => tunnel.to_owned(), "reason" => reason)
            .increment(0);
    }
    last_reload_failed(tunnel, false);
}

/// A reload of certificates, keys, CAs and CRLs.
pub fn reload(tunnel: &str, outcome: &'static str) {
    // The gauge first: whoever sees the count sees the state it left.
    last_reload_failed(tunnel, outcome == "failed");
    counter!("fipsguard_tunnel_reloads_total", "tunnel" => tunnel.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Whether the tunnel's last reload failed (so the files in use are older
/// than those on disk): 0 from its start, 1 until a reload succeeds.
pub fn last_reload_failed(tunnel: &str, failed: bool) {
    gauge!("fipsguard_tunnel_last_reload_failed", "tunnel" => tunnel.to_owned())
        .set(f64::from(u8::from(failed)));
}

/// When the tunnel's own certificate expires.
pub fn certificate_expiry(tunnel: &str, unix_seconds: i64) {
    gauge!("fipsguard_tunnel_certificate_expiry_timestamp_seconds", "tunnel" => tunnel.to_owned())
        .set(unix_seconds as f64);
}

/// When the first of the tunnel's revocation lists passes its nextUpdate:
/// from then on every peer certificate it covers is refused.
pub fn crl_next_update(tunnel: &str, unix_seconds: i64) {
    gauge!("fipsguard_tunnel_crl_next_update_timestamp_seconds", "tunnel" => tunnel.to_owned())
        .set(unix_seconds as f64);
}

/// Serves `/metrics` and `/health` on `addr` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(|| async { handle().render() }))
        .route("/health", get(health));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// 200 while the module is operational; 503 naming the failed self-test.
async fn health() -> (StatusCode, String) {
    match module::state() {
        module::State::Error { failed_test } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("error: self-test {failed_test} failed; the module refuses service\n"),
        ),
        _ => (StatusCode::OK, "ok\n".to_owned()),
    }
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
