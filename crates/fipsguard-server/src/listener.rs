//! The HTTPS listener: TLS under the shared policy, HTTP/1.1 and HTTP/2,
//! a cap on connections, deadlines for handshakes, headers and idle
//! connections, graceful shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use fipsguard_crypto::tls::rustls::pki_types::CertificateDer;
use fipsguard_crypto::tls::{recheck_within, ClientRefused};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::metrics::{record_tls_client_cut, record_tls_failure};
use crate::tls::{fingerprint, ServerTls};

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's headers (slowloris). For
/// HTTP/1.1 the clock also runs while a kept-alive connection waits for its
/// next request, so this is HTTP/1.1's idle deadline too.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most concurrent HTTP/2 streams per connection.
const MAX_STREAMS: u32 = 128;

/// How long a closing connection's requests in flight may take (at
/// shutdown, or when it is closed for being idle) before it is dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The same for a connection whose client certificate is no longer
/// accepted: it takes no new request, and what it started before is
/// answered (or dropped) within this.
const REFUSED_GRACE: Duration = Duration::from_secs(5);
/// How long a client has, from its request's headers, to send the body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Limits on the connections clients hold.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Most concurrent connections; more are closed at once.
    pub max_connections: usize,
    /// Most concurrent connections from one client; `None`: no such cap.
    pub per_client: Option<usize>,
    /// How clients are told apart (an IPv4 address, an IPv6 prefix), for
    /// `per_client` and for the audit log's counts of refusals.
    pub client_grouping: fipsguard_net::ClientGrouping,
    /// A connection with no request in flight for this long is closed
    /// gracefully. HTTP/2 needs it: its clients keep idle connections
    /// alive with pings, which would otherwise hold a slot for ever.
    pub idle_timeout: Duration,
    /// A request whose body has not arrived in full this long after its
    /// headers fails (408): a body trickled a byte at a time would
    /// otherwise keep its request, and so its connection, in flight.
    pub body_timeout: Duration,
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then
/// drains in-flight requests. Each connection takes the TLS configuration
/// in force when it is accepted.
pub async fn serve(
    listener: TcpListener,
    in_force: watch::Receiver<Arc<ServerTls>>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let clients = fipsguard_net::ClientConnections::new(limits.client_grouping, limits.per_client);
    // Every connection holds a receiver: a send starts their graceful
    // close, and `closed()` tells when the last one has ended.
    let (closing, _) = watch::channel(());
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
            let max_connections = limits.max_connections;
            tracing::warn!(%peer, max_connections, "connection refused: at the connection limit");
            continue;
        };
        let client_slot = match clients.admit(peer.ip()) {
            Ok(client_slot) => client_slot,
            Err(refused) => {
                record_tls_failure("client_connection_limit");
                tracing::warn!(%peer, client = %refused.client, max_connections_per_client = refused.cap, "connection refused: this client is at its connection limit");
                continue;
            }
        };
        // Marked seen as it is taken: only a later configuration is news
        // to this connection.
        let mut tls = in_force.clone();
        let acceptor = TlsAcceptor::from(tls.borrow_and_update().config.clone());
        let (app, closing) = (app.clone(), closing.subscribe());
        tokio::spawn(async move {
            let _slots = (slot, client_slot);
            serve_connection(stream, peer, acceptor, app, limits, closing, tls).await;
        });
    }
    drop(listener);
    // Errors only when no connection is open, which `closed()` sees too.
    let _ = closing.send(());
    // A little longer than each connection's own grace, which starts
    // when the connection sees the signal.
    if tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(5), closing.closed())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open after the drain timeout");
    }
}

/// One connection: its TLS handshake, then HTTP until the client goes, or
/// until it is closed gracefully (requests in flight are answered first)
/// because the server shuts down or it has been idle for `idle_timeout`.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<()>,
    in_force: watch::Receiver<Arc<ServerTls>>,
) {
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
    let (chain, certificate) = (
        tls.get_ref().1.peer_certificates().map(<[_]>::to_vec),
        client.certificate.clone(),
    );
    let app = TowerToHyperService::new(app);
    // A request is in flight until its answer's headers are ready, not
    // until its body is sent: every answer here is small and whole, and
    // one a client stops reading is cut by the close grace below.
    let activity = Arc::new(Activity::new());
    // Set once the TLS configuration in force refuses the client
    // certificate: requests under way may finish, new ones are refused.
    // HTTP/2 needs it, as a client may open streams until it answers the
    // ping that follows the server's first GOAWAY.
    let refused = Arc::new(AtomicBool::new(false));
    let service = {
        let (activity, refused) = (activity.clone(), refused.clone());
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // Inserted here, not by a layer on the router: `Router::layer`
            // would box every route again for each connection, and a
            // request passing it would clone the boxes.
            request.extensions_mut().insert(client.clone());
            let served = (!refused.load(Ordering::Acquire)).then(|| {
                let in_flight = activity.begin();
                let request = request.map(|body| BodyDeadline::new(body, limits.body_timeout));
                (in_flight, app.call(request))
            });
            async move {
                let Some((in_flight, response)) = served else {
                    return Ok(client_refused_answer());
                };
                let response = response.await;
                drop(in_flight);
                response
            }
        })
    };
    let builder = http_builder();
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::pin!(connection);
    // Watched while the connection closes too: a client can be refused
    // during the 30 s an idle or shutting-down connection is given.
    let refusal = refused_client(in_force, chain);
    tokio::pin!(refusal);
    // Once closing: when the connection is dropped, requests in flight or
    // not (a client that stops reading its answers must not hold it open).
    let mut drop_at: Option<tokio::time::Instant> = None;
    let ended = loop {
        let open = drop_at.is_none();
        let grace = tokio::select! {
            ended = connection.as_mut() => break ended,
            () = tokio::time::sleep_until(drop_at.unwrap_or_else(tokio::time::Instant::now)), if !open => break Ok(()),
            _ = closing.changed(), if open => DRAIN_TIMEOUT,
            () = activity.idle_for(limits.idle_timeout), if open => {
                tracing::debug!(%peer, "closing an idle connection");
                DRAIN_TIMEOUT
            }
            reason = &mut refusal, if !refused.load(Ordering::Acquire) => {
                refused.store(true, Ordering::Release);
                record_tls_client_cut(reason.reason);
                let certificate = certificate.as_deref().unwrap_or("-");
                tracing::warn!(%peer, certificate, %reason, "connection closed: the TLS configuration in force refuses its client certificate");
                REFUSED_GRACE
            }
        };
        if open {
            connection.as_mut().graceful_shutdown();
        }
        let until = tokio::time::Instant::now() + grace;
        drop_at = Some(drop_at.map_or(until, |at| at.min(until)));
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Resolves, with the reason, once the TLS configuration in force refuses
/// the client certificate (`chain`) this connection was accepted with: a
/// reload's new trust (a revocation list that names it, another client CA)
/// or the expiry of a certificate of its chain (checked just past each
/// notAfter, and at least hourly). Never for a connection without one.
async fn refused_client(
    mut in_force: watch::Receiver<Arc<ServerTls>>,
    chain: Option<Vec<CertificateDer<'static>>>,
) -> ClientRefused {
    let Some(chain) = chain else {
        return std::future::pending().await;
    };
    // Cleared once nothing can reload any more (the server is stopping,
    // or it takes no SIGHUP): expiry is then all that is left.
    let mut reloads = true;
    loop {
        tokio::select! {
            changed = in_force.changed(), if reloads => reloads = changed.is_ok(),
            () = tokio::time::sleep(recheck_within(&chain)) => {}
        }
        let tls = in_force.borrow_and_update().clone();
        if let Some(reason) = tls.refuses_client(&chain) {
            return reason;
        }
    }
}

/// The answer to a request that arrives on a connection after the TLS
/// configuration in force has refused its client certificate.
fn client_refused_answer() -> axum::response::Response {
    use axum::response::IntoResponse;
    crate::error::ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "client_certificate_refused",
        "the TLS configuration in force refuses this connection's client certificate \
         (revoked, expired or no longer trusted); the connection is closing",
    )
    .into_response()
}

/// Whether a connection has a request in flight, and since when it has
/// had none.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended, in milliseconds since `opened`.
    last_ended: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ended: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let quiet_since = if self.in_flight.load(Ordering::Acquire) > 0 {
                Instant::now()
            } else {
                self.opened + Duration::from_millis(self.last_ended.load(Ordering::Acquire))
            };
            let deadline = quiet_since + timeout;
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A request under way; its end is the connection's latest activity.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let ended = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.last_ended.store(ended, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request body that must arrive in full by a deadline; the timer is
/// set only if the body is not all there when first read.
struct BodyDeadline {
    body: Incoming,
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error a request body past its deadline ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl BodyDeadline {
    fn new(body: Incoming, timeout: Duration) -> Self {
        Self {
            body,
            deadline: tokio::time::Instant::now() + timeout,
            timer: None,
        }
    }
}

impl Body for BodyDeadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// HTTP/1.1 and HTTP/2 with deadlines: headers must arrive within
/// `HEADER_TIMEOUT`, and HTTP/2 peers that stop answering pings are dropped.
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
    /// The client's address, as text: formatted once per connection and
    /// shared by its requests' audit records.
    pub address: Arc<str>,
    /// SHA-256 fingerprint (hex) of the verified end-entity certificate,
    /// shared like the address.
    pub certificate: Option<Arc<str>>,
}

impl Peer {
    fn of(
        address: std::net::SocketAddr,
        chain: Option<&[fipsguard_crypto::tls::rustls::pki_types::CertificateDer<'_>]>,
    ) -> Self {
        let leaf = chain.and_then(|c| c.first());
        Self {
            address: address.to_string().into(),
            certificate: leaf.and_then(|cert| fingerprint(cert).ok()).map(Arc::from),
        }
    }
}
