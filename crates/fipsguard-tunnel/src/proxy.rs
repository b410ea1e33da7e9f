//! One tunnel at work: accept, hand-shake under the policy (with a
//! deadline), check the peer against the allow-list before a byte reaches
//! the target, then forward both ways until either side closes.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use fipsguard_crypto::tls::rustls::pki_types::CertificateDer;
use fipsguard_crypto::tls::rustls::CommonState;
use fipsguard_crypto::tls::{recheck_within, ClientRefused};
use fipsguard_net::{ClientConnections, ClientSlot};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, Instant};

use crate::config::{Target, TunnelConfig};
use crate::identity::PeerIdentity;
use crate::metrics;
use crate::proxy_protocol;
use crate::reload::{Side, TlsState};

/// Bytes moved per read each way: four TLS records' worth, so bulk
/// transfers take few system calls (tokio's default is 8 KiB).
const COPY_BUFFER: usize = 64 << 10;

/// How long cut connections have to reset before their event loop ends.
const CUT_GRACE: Duration = Duration::from_secs(1);

/// How often a drain looks whether the last connection has closed.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// How long accepting pauses after an error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// TCP keepalive on both sides: a peer or target that vanished without a
/// word (a host powered off, a network cut) is found within about two
/// minutes and its connection, and slot, freed, instead of never.
const KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(10))
    .with_retries(6);

/// A bound tunnel, ready to run.
pub struct Tunnel {
    config: Arc<TunnelConfig>,
    tls: Arc<TlsState>,
    slots: Arc<Semaphore>,
    listener: TcpListener,
}

impl Tunnel {
    /// Builds the TLS side (refusing certificates and keys the policy does
    /// not allow) and binds the listener.
    pub async fn bind(config: TunnelConfig) -> Result<Self, String> {
        config.validate()?;
        let config = Arc::new(config);
        let tls = Arc::new(TlsState::load(config.clone())?);
        let listener = listen(config.listen, config.max_connections).map_err(|e| {
            format!(
                "tunnel {:?}: cannot listen on {}: {e}",
                config.name, config.listen
            )
        })?;
        metrics::open_connections(&config.name, 0.0);
        Ok(Self {
            slots: Arc::new(Semaphore::new(config.max_connections)),
            config,
            tls,
            listener,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Server or client.
    pub fn mode(&self) -> crate::Mode {
        self.config.mode
    }

    /// Its TLS configuration, for reloads.
    pub fn tls(&self) -> Arc<TlsState> {
        self.tls.clone()
    }

    /// Starts the worker threads and returns once every one of them is
    /// accepting (or the first error, so that a tunnel never runs short of
    /// its workers unnoticed). Each runs its own event loop and accepts
    /// from the shared listening socket, so a connection's handshake and
    /// both directions of its copying stay on the thread that accepted it:
    /// a bulk stream never waits on a wake-up from another thread. Workers
    /// accept until `stop` turns true, then wait for open connections; at
    /// most `drain`, after which those still open are cut.
    pub async fn start(
        self,
        stop: watch::Receiver<bool>,
        drain: Duration,
    ) -> Result<Running, String> {
        let name = self.config.name.clone();
        let cannot =
            |e: &dyn std::fmt::Display| format!("tunnel {name:?}: cannot start its workers: {e}");
        let listener = self.listener.into_std().map_err(|e| cannot(&e))?;
        let worker = Worker {
            config: self.config.clone(),
            tls: self.tls,
            slots: self.slots,
            clients: ClientConnections::new(
                self.config.client_grouping(),
                self.config.max_connections_per_client,
            ),
            cut: Arc::new(watch::channel(false).0),
            drain,
        };
        let mut finished = Vec::new();
        for index in 0..self.config.workers() {
            let (worker, stop) = (worker.clone(), stop.clone());
            let listener = listener.try_clone().map_err(|e| cannot(&e))?;
            let (ready, accepting) = oneshot::channel();
            let (done, finished_one) = oneshot::channel();
            thread::Builder::new()
                .name(format!("fg-tunnel-{index}"))
                .spawn(move || {
                    worker.run(listener, stop, ready);
                    let _ = done.send(());
                })
                .map_err(|e| cannot(&e))?;
            finished.push(finished_one);
            accepting
                .await
                .unwrap_or_else(|_| Err("a worker thread ended before it accepted".into()))
                .map_err(|e| cannot(&e))?;
        }
        Ok(Running { finished })
    }
}

/// A started tunnel.
pub struct Running {
    finished: Vec<oneshot::Receiver<()>>,
}

impl Running {
    /// Resolves when every worker has stopped accepting and drained.
    pub async fn finished(self) {
        for worker in self.finished {
            let _ = worker.await;
        }
    }
}

/// What each worker thread of a tunnel shares with the others.
#[derive(Clone)]
struct Worker {
    config: Arc<TunnelConfig>,
    tls: Arc<TlsState>,
    slots: Arc<Semaphore>,
    /// The connections each client holds, for its cap.
    clients: ClientConnections,
    /// Turns true when the drain timeout has passed: open connections are
    /// then reset, never closed as if they had ended.
    cut: Arc<watch::Sender<bool>>,
    drain: Duration,
}

impl Worker {
    /// Runs this thread's event loop until the tunnel stops and drains.
    /// `ready` hears once the loop accepts, or why it cannot.
    fn run(
        self,
        listener: std::net::TcpListener,
        stop: watch::Receiver<bool>,
        ready: oneshot::Sender<Result<(), String>>,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        runtime.block_on(async {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    let _ = ready.send(Ok(()));
                    self.accept(listener, stop).await;
                    self.drain().await;
                }
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                }
            }
        });
    }

    async fn accept(&self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let name = &self.config.name;
        loop {
            let accepted = tokio::select! {
                // Stopping wins over a connection waiting in the queue.
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: pause rather than spin.
                    tracing::warn!(tunnel = %name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            // Accepted as the tunnel stops: it goes with the listener, not
            // counted as refused.
            if *stop.borrow() {
                break;
            }
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                metrics::handshake(name, "refused", "connection_limit");
                tracing::warn!(tunnel = %name, %peer, "connection refused: at the connection limit");
                continue;
            };
            let client_slot = match self.clients.admit(peer.ip()) {
                Ok(client_slot) => client_slot,
                Err(refused) => {
                    metrics::handshake(name, "refused", "client_connection_limit");
                    tracing::warn!(tunnel = %name, %peer, client = %refused.client, max_connections_per_client = refused.cap, "connection refused: this client is at its connection limit");
                    continue;
                }
            };
            // Subscribed first: a reload between the two is then heard.
            let mut changes = self.tls.changes();
            let side = changes.borrow_and_update().clone();
            let connection = Connection {
                config: self.config.clone(),
                side,
                changes,
                peer,
                cut: self.cut.subscribe(),
                _slots: (slot, client_slot),
            };
            tokio::spawn(connection.serve(stream));
        }
    }

    /// Waits for all of the tunnel's connections, this worker's among
    /// them (its event loop must outlive them), for at most the drain
    /// timeout; then cuts those still open and gives them a moment to
    /// send their resets.
    async fn drain(&self) {
        // Watched, not acquired: every worker drains at once, and slots a
        // waiter had taken would pass for open connections.
        let all_closed = || async {
            while self.slots.available_permits() < self.config.max_connections {
                tokio::time::sleep(DRAIN_POLL).await;
            }
        };
        if timeout(self.drain, all_closed()).await.is_ok() {
            return;
        }
        let open = self.config.max_connections - self.slots.available_permits();
        // Every worker gets here; the first one to cut says so.
        if !self.cut.send_replace(true) {
            tracing::warn!(tunnel = %self.config.name, open, "shutdown: cutting the connections still open after the drain timeout (each side sees a reset)");
        }
        let _ = timeout(CUT_GRACE, all_closed()).await;
    }
}

/// A listener whose accept queue holds a burst as large as the connection
/// limit (the kernel caps it at `net.core.somaxconn`), so that a flood of
/// idle connections does not keep others waiting in the queue.
fn listen(address: SocketAddr, max_connections: usize) -> io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(max_connections.clamp(1024, 65535) as u32)
}

/// One accepted connection.
struct Connection {
    config: Arc<TunnelConfig>,
    side: Arc<Side>,
    /// The configurations reloads put in place after this one.
    changes: watch::Receiver<Arc<Side>>,
    peer: SocketAddr,
    cut: watch::Receiver<bool>,
    _slots: (OwnedSemaphorePermit, Option<ClientSlot>),
}

/// Why a connection was not forwarded: a metric label, and a log line.
struct Refusal {
    reason: &'static str,
    detail: String,
}

impl Connection {
    async fn serve(self, stream: TcpStream) {
        let name = self.config.name.clone();
        // Interactive protocols (distribution, SQL) must not wait on Nagle.
        let _ = stream.set_nodelay(true);
        keep_alive(&stream);
        metrics::open_connections(&name, 1.0);
        let local = stream.local_addr().ok();
        let result = match &*self.side {
            Side::Server { acceptor, .. } => self.accept_tls(acceptor, stream, local).await,
            Side::Client { connector, name } => {
                self.originate_tls(connector, name.clone(), stream).await
            }
        };
        if let Err(refusal) = result {
            metrics::handshake(&name, "refused", refusal.reason);
            tracing::info!(tunnel = %name, peer = %self.peer, reason = refusal.reason, detail = %refusal.detail, "connection refused");
        }
        metrics::open_connections(&name, -1.0);
    }

    /// Server mode: TLS in, plain out.
    async fn accept_tls(
        &self,
        acceptor: &tokio_rustls::TlsAcceptor,
        stream: TcpStream,
        local: Option<SocketAddr>,
    ) -> Result<(), Refusal> {
        let config = &self.config;
        let tls = handshake(config, acceptor.accept(stream)).await?;
        let session = tls.get_ref().1;
        let identity = match session.peer_certificates().and_then(|chain| chain.first()) {
            Some(cert) => Some(PeerIdentity::of(cert).map_err(|e| refusal("bad_certificate", e))?),
            None => None,
        };
        let admitted_as = match &identity {
            Some(id) => Some(id.admitted_as(config).ok_or_else(|| {
                refusal(
                    "not_allowed",
                    match id.principal() == id.subject {
                        true => format!("{} is not on the allow-list", id.subject),
                        // The subject too, in the form allow_subject takes.
                        false => format!(
                            "{} (subject {}) is not on the allow-list",
                            id.principal(),
                            id.subject
                        ),
                    },
                )
            })?),
            None if config.has_allow_list() => {
                return Err(refusal("not_allowed", "a client without a certificate"));
            }
            None => None,
        };
        let client = identity.as_ref().zip(admitted_as);
        let chain = session.peer_certificates().map(<[_]>::to_vec);
        self.refused_since_accept(chain.as_deref())?;
        let (version, suite) = negotiated(session);
        let mut target = timeout(config.handshake_timeout(), connect(&config.target()))
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            .map_err(|e| refusal("target_unreachable", e))?;
        // Again for a reload while the target was being reached: nothing
        // has been sent to it yet.
        self.refused_since_accept(chain.as_deref())?;
        if config.proxy_protocol {
            let header = proxy_protocol::header(self.peer, local, client, version, suite)
                .map_err(|e| refusal("proxy_header", e))?;
            target
                .write_all(&header)
                .await
                .map_err(|e| refusal("target_unreachable", e))?;
        }
        metrics::handshake(&config.name, "ok", "none");
        metrics::session(&config.name, version, suite);
        tracing::debug!(tunnel = %config.name, peer = %self.peer, identity = admitted_as, version, suite, "forwarding");
        self.forward(tls, target, chain.as_deref()).await;
        Ok(())
    }

    /// Refuses a client whose handshake ran under a configuration a reload
    /// has since replaced, if the new one refuses it as it would an
    /// established client: a CRL loaded meanwhile then keeps the client
    /// from the target, not only cuts it once there.
    fn refused_since_accept(
        &self,
        chain: Option<&[CertificateDer<'static>]>,
    ) -> Result<(), Refusal> {
        let (Some(chain), Ok(true)) = (chain, self.changes.has_changed()) else {
            return Ok(());
        };
        match self.changes.borrow().refuses_client(chain) {
            Some(why) if why.reason == ClientRefused::REVOKED => {
                Err(refusal("revoked_certificate", why))
            }
            Some(why) => Err(refusal("bad_certificate", why)),
            None => Ok(()),
        }
    }

    /// Client mode: plain in, TLS out.
    async fn originate_tls(
        &self,
        connector: &tokio_rustls::TlsConnector,
        name: fipsguard_crypto::tls::rustls::pki_types::ServerName<'static>,
        stream: TcpStream,
    ) -> Result<(), Refusal> {
        let config = &self.config;
        let Target::Tcp(address) = config.target() else {
            return Err(refusal(
                "target_unreachable",
                "a client tunnel needs a TCP target",
            ));
        };
        let server = timeout(config.handshake_timeout(), TcpStream::connect(&address))
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
            .map_err(|e| refusal("target_unreachable", e))?;
        let _ = server.set_nodelay(true);
        keep_alive(&server);
        let tls = handshake(config, connector.connect(name, server)).await?;
        let session = tls.get_ref().1;
        let (version, suite) = negotiated(session);
        metrics::handshake(&config.name, "ok", "none");
        metrics::session(&config.name, version, suite);
        self.forward(stream, tls, None).await;
        Ok(())
    }

    /// Copies both ways until both sides are done; bytes are counted as
    /// they pass, so long-lived connections show in the metrics too.
    /// If either side ends abruptly (a TLS stream cut without its
    /// close_notify, a reset), or shutdown cuts the connection, both are
    /// reset rather than closed, so neither end mistakes a truncated
    /// stream for a complete one. A connection idle both ways for the
    /// tunnel's idle timeout is closed in order on both sides, as nothing
    /// is in flight; but one whose data waits all that time for a
    /// receiver that does not take it is reset, since closing it in order
    /// would pass off what was held back as the end of the stream. A
    /// client (`client`: its certificates) whose certificate expires, or
    /// that a reload's trust refuses, is cut the same way.
    async fn forward(
        &self,
        outside: impl Stream,
        inside: impl Stream,
        client: Option<&[CertificateDer<'static>]>,
    ) {
        let name = &self.config.name;
        let activity = Activity::new();
        let mut outside = Counted::new(outside, name, "to_target", &activity);
        let mut inside = Counted::new(inside, name, "to_peer", &activity);
        let mut cut = self.cut.clone();
        let ended = tokio::select! {
            copied = tokio::io::copy_bidirectional_with_sizes(
                &mut outside,
                &mut inside,
                COPY_BUFFER,
                COPY_BUFFER,
            ) => copied.map_err(|e| e.to_string()).map(|_| Ended::Closed),
            Ok(_) = cut.wait_for(|cut| *cut) => Err("cut at the drain timeout".to_owned()),
            why = client_refused(self.changes.clone(), client) => {
                metrics::client_cut(name, why.reason);
                tracing::warn!(tunnel = %name, peer = %self.peer, reason = %why, "connection cut: its client certificate is no longer accepted");
                Err(why.to_string())
            }
            limit = activity.idle_for(self.config.idle_timeout()) => Ok(Ended::Idle(limit)),
        };
        let abrupt = match ended {
            Ok(Ended::Closed) => None,
            Ok(Ended::Idle(limit)) if activity.writes_waiting() => Some(format!(
                "no progress for {} s: data waits for a receiver that does not take it",
                limit.as_secs()
            )),
            Ok(Ended::Idle(limit)) => {
                tracing::debug!(tunnel = %name, peer = %self.peer, idle_secs = limit.as_secs(), "connection idle: closing both sides");
                metrics::idle_closed(name);
                let close = async {
                    let _ = outside.shutdown().await;
                    let _ = inside.shutdown().await;
                };
                timeout(CUT_GRACE, close)
                    .await
                    .err()
                    .map(|_| "an idle connection's close did not complete".to_owned())
            }
            Err(why) => Some(why),
        };
        if let Some(why) = abrupt {
            tracing::debug!(tunnel = %name, peer = %self.peer, error = %why, "connection ended abruptly: resetting both sides");
            outside.inner.reset_on_close();
            inside.inner.reset_on_close();
        }
    }
}

/// Waits until the client with certificates `client` is no longer
/// accepted, and says why: a certificate of its chain expires (checked
/// just past each notAfter, and at least hourly), or a reload's trust
/// refuses it (a new revocation list names it, the client CA changed).
/// Never, for a connection without a client certificate.
async fn client_refused(
    mut changes: watch::Receiver<Arc<Side>>,
    client: Option<&[CertificateDer<'static>]>,
) -> fipsguard_crypto::tls::ClientRefused {
    let Some(chain) = client else {
        return std::future::pending().await;
    };
    // Cleared when the tunnel is going away: only the expiry is left.
    let mut watching = true;
    loop {
        tokio::select! {
            changed = changes.changed(), if watching => watching = changed.is_ok(),
            () = tokio::time::sleep(recheck_within(chain)) => {}
        }
        // The chain is verified again, under the configuration in use: a
        // certificate it sent beside its path may have expired.
        let side = changes.borrow_and_update().clone();
        if let Some(why) = side.refuses_client(chain) {
            return why;
        }
    }
}

/// Runs a handshake under the tunnel's deadline.
async fn handshake<T>(
    config: &TunnelConfig,
    handshake: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, Refusal> {
    match timeout(config.handshake_timeout(), handshake).await {
        Err(_) => Err(refusal("timeout", "no handshake within the deadline")),
        Ok(Err(e)) => Err(refusal(
            fipsguard_crypto::tls::handshake_failure_reason(&e),
            e,
        )),
        Ok(Ok(tls)) => Ok(tls),
    }
}

/// The protocol version and cipher suite a session settled on.
fn negotiated(session: &CommonState) -> (&'static str, &'static str) {
    let version = session.protocol_version().and_then(|v| v.as_str());
    let suite = session
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str());
    (version.unwrap_or("unknown"), suite.unwrap_or("unknown"))
}

fn refusal(reason: &'static str, detail: impl std::fmt::Display) -> Refusal {
    Refusal {
        reason,
        detail: detail.to_string(),
    }
}

/// A byte stream to a target, TCP or Unix.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {
    /// Makes closing send a TCP reset instead of an orderly end.
    fn reset_on_close(&self) {}
}

impl Stream for TcpStream {
    fn reset_on_close(&self) {
        let _ = self.set_zero_linger();
    }
}

/// A Unix socket has no reset: its peer sees the end either way.
impl Stream for UnixStream {}

impl Stream for tokio_rustls::server::TlsStream<TcpStream> {
    fn reset_on_close(&self) {
        self.get_ref().0.reset_on_close();
    }
}

impl Stream for tokio_rustls::client::TlsStream<TcpStream> {
    fn reset_on_close(&self) {
        self.get_ref().0.reset_on_close();
    }
}

impl Stream for Box<dyn Stream> {
    fn reset_on_close(&self) {
        (**self).reset_on_close();
    }
}

async fn connect(target: &Target) -> io::Result<Box<dyn Stream>> {
    Ok(match target {
        Target::Tcp(address) => {
            let stream = TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            keep_alive(&stream);
            Box::new(stream)
        }
        Target::Unix(path) => Box::new(UnixStream::connect(path).await?),
    })
}

/// How a forwarded connection ended in order.
enum Ended {
    /// Both sides closed.
    Closed,
    /// Nothing moved either way for this long.
    Idle(Duration),
}

/// Sets [`KEEPALIVE`] on a TCP connection; a socket that refuses it
/// still works, without the probes.
fn keep_alive(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&KEEPALIVE);
}

/// When a connection last moved a byte, either way, and whether data
/// waits for a receiver to take it.
#[derive(Clone)]
struct Activity {
    opened: Instant,
    last_millis: Arc<AtomicU64>,
    waiting_writes: Arc<AtomicUsize>,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_millis: Arc::default(),
            waiting_writes: Arc::default(),
        }
    }

    fn writes_waiting(&self) -> bool {
        self.waiting_writes.load(Ordering::Relaxed) > 0
    }

    fn touch(&self) {
        let millis = self.opened.elapsed().as_millis() as u64;
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    /// Resolves with `limit` once nothing has moved for that long; never
    /// without a limit.
    async fn idle_for(&self, limit: Option<Duration>) -> Duration {
        let Some(limit) = limit else {
            return std::future::pending().await;
        };
        loop {
            let last =
                self.opened + Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
            if last.elapsed() >= limit {
                return limit;
            }
            match last.checked_add(limit) {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        }
    }
}

/// A stream whose reads add to a byte counter, and whose reads and
/// writes mark the connection active.
struct Counted<S> {
    inner: S,
    counter: ::metrics::Counter,
    activity: Activity,
    /// This side's write (or flush) is waiting for its receiver.
    write_waiting: bool,
}

impl<S> Counted<S> {
    fn new(inner: S, tunnel: &str, direction: &'static str, activity: &Activity) -> Self {
        Self {
            inner,
            counter: metrics::bytes_counter(tunnel, direction),
            activity: activity.clone(),
            write_waiting: false,
        }
    }

    /// Notes a write or flush: done is progress, pending is data waiting.
    fn track<T>(&mut self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let waiting = polled.is_pending();
        if waiting != self.write_waiting {
            self.write_waiting = waiting;
            match waiting {
                true => self.activity.waiting_writes.fetch_add(1, Ordering::Relaxed),
                false => self.activity.waiting_writes.fetch_sub(1, Ordering::Relaxed),
            };
        }
        if !waiting {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            self.counter.increment(read);
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
