//! The HTTPS listener: TLS under the shared policy, HTTP/1.1 and HTTP/2,
//! a cap on connections, a handshake deadline, graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::metrics::record_tls_failure;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's headers (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most concurrent HTTP/2 streams per connection.
const MAX_STREAMS: u32 = 128;

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then
/// drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<fipsguard_crypto::tls::rustls::ServerConfig>,
    app: Router,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            record_tls_failure("connection_limit");
            tracing::warn!(%peer, max_connections, "connection refused: at the connection limit");
            continue;
        };
        let (acceptor, app, watcher) = (acceptor.clone(), app.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    let reason = fipsguard_crypto::tls::handshake_failure_reason(&e);
                    record_tls_failure(reason);
                    tracing::info!(%peer, reason, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    record_tls_failure("timeout");
                    return;
                }
            };
            // The peer and its verified client certificate (mTLS), for
            // authorization, logs and the audit record.
            let client = Peer::of(peer, tls.get_ref().1.peer_certificates());
            let service = TowerToHyperService::new(app.layer(axum::Extension(client)));
            let builder = http_builder();
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open after the drain timeout");
    }
}

/// HTTP/1.1 and HTTP/2 with deadlines: headers must arrive within
/// `HEADER_TIMEOUT`, idle HTTP/2 connections are pinged and dropped.
fn http_builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(HEADER_TIMEOUT);
    builder
}

/// The other end of a connection: its address and the client certificate
/// it presented and the server verified against its client CA, if any.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The client's address.
    pub address: std::net::SocketAddr,
    /// SHA-256 fingerprint (hex) of the verified end-entity certificate.
    pub certificate: Option<String>,
}

impl Peer {
    fn of(
        address: std::net::SocketAddr,
        chain: Option<&[fipsguard_crypto::tls::rustls::pki_types::CertificateDer<'_>]>,
    ) -> Self {
        use fipsguard_crypto::digest::{digest, HashAlgorithm};
        let leaf = chain.and_then(|c| c.first());
        let fingerprint = leaf.and_then(|cert| digest(HashAlgorithm::Sha256, cert).ok());
        Self {
            address,
            certificate: fingerprint.map(hex::encode),
        }
    }
}
