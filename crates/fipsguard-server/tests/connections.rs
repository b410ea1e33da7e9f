//! What a client's connections may hold: a cap on their number, and a
//! deadline for connections with no request in flight.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::TestServer;
use fipsguard_crypto::tls;
use hyper::body::{Bytes, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_and_the_rest_keep_working() {
    let server = TestServer::start_with(|options| options.connections.max_connections = 2).await;
    // Two idle connections hold both slots (each is mid-handshake: no bytes sent).
    let held = [
        tokio::net::TcpStream::connect(server.addr).await.unwrap(),
        tokio::net::TcpStream::connect(server.addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buffer = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buffer))
        .await
        .expect("closed at once");
    assert_eq!(read.unwrap(), 0, "the connection over the limit is closed");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = server.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "slots free again once the idle connections go"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_although_the_client_pings() {
    // Two seconds: a busy test machine may stall a request for a while.
    let idle_timeout = Duration::from_secs(2);
    let server = TestServer::start_with(|options| {
        assert_eq!(
            options.connections.idle_timeout,
            Duration::from_secs(75),
            "the default idle deadline"
        );
        options.connections.idle_timeout = idle_timeout;
    })
    .await;
    let (mut requests, connection) = http2_connection(&server).await;
    let open = tokio::spawn(connection);
    let health = || {
        hyper::Request::get(format!("{}/v1/health", server.url))
            .body(Trickle::empty())
            .unwrap()
    };

    // A request longer than the deadline (its body trickled over 3.2 s)
    // is in flight, not idle: the connection serves the next one at once.
    let (status, answer) = trickled_key_creation(&server, &mut requests, "slow", 800).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let response = requests.send_request(health()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // In use: a request every 300 ms for one and a half times the deadline.
    for _ in 0..10 {
        let response = requests.send_request(health()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!open.is_finished(), "a connection in use stays open");

    // Idle, with the client pinging every 100 ms: the server closes it.
    let closed = tokio::time::timeout(idle_timeout * 5, open)
        .await
        .expect("the idle connection is closed within the deadline and its grace");
    assert!(closed.unwrap().is_ok(), "closed gracefully (GOAWAY)");
    assert!(
        requests.send_request(health()).await.is_err(),
        "nothing more is served on it"
    );
    let (status, _) = server.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "new connections are served");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_past_its_deadline_is_refused() {
    let server = TestServer::start_with(|options| {
        assert_eq!(options.connections.body_timeout, Duration::from_secs(30));
        options.connections.body_timeout = Duration::from_secs(1);
    })
    .await;
    let (mut requests, connection) = http2_connection(&server).await;
    tokio::spawn(connection);
    let (status, answer) = trickled_key_creation(&server, &mut requests, "late", 600).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{answer}");
    assert_eq!(answer["error"]["code"], "body_timeout", "{answer}");
    let (status, _) = server
        .call(Method::GET, "/v1/keys/late", Some(&server.officer), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
    let (status, _) = trickled_key_creation(&server, &mut requests, "prompt", 0).await;
    assert_eq!(status, StatusCode::CREATED, "a prompt body is served");
    server.stop().await;
}

/// Creates the key `name` as the officer, sending the body in four pieces
/// `pause_ms` apart; the answer's status and JSON.
async fn trickled_key_creation(
    server: &TestServer,
    requests: &mut Http2Requests,
    name: &str,
    pause_ms: u64,
) -> (StatusCode, Value) {
    let body = format!(r#"{{"name": "{name}", "type": "aes256-gcm"}}"#);
    let (pieces, trickle) = Trickle::new();
    let request = hyper::Request::post(format!("{}/v1/keys", server.url))
        .header("authorization", format!("Bearer {}", server.officer))
        .header("content-type", "application/json")
        .body(trickle)
        .unwrap();
    let sending = tokio::spawn(async move {
        for piece in body.as_bytes().chunks(body.len().div_ceil(4)) {
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            if pieces.send(Bytes::copy_from_slice(piece)).await.is_err() {
                return; // answered before the body was all sent
            }
        }
    });
    let response = requests.send_request(request).await.unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    sending.abort();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A request body sent a piece at a time, as a slow client sends it; it
/// ends when the sender is dropped.
struct Trickle(mpsc::Receiver<Bytes>);

impl Trickle {
    fn new() -> (mpsc::Sender<Bytes>, Self) {
        let (sender, receiver) = mpsc::channel(4);
        (sender, Self(receiver))
    }

    /// No body at all (the sender is dropped at once).
    fn empty() -> Self {
        Self::new().1
    }
}

impl hyper::body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|piece| piece.map(|piece| Ok(Frame::data(piece))))
    }
}

type Http2Requests = hyper::client::conn::http2::SendRequest<Trickle>;

/// An HTTP/2 connection (ALPN `h2`) that pings the server every 100 ms,
/// even with no request under way: a client holding a connection open.
async fn http2_connection(
    server: &TestServer,
) -> (
    Http2Requests,
    hyper::client::conn::http2::Connection<
        TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        Trickle,
        TokioExecutor,
    >,
) {
    let roots = tls::read_roots(&server.ca_file).unwrap();
    let mut config = tls::client_config(roots, None).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = tls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(stream))
        .await
        .unwrap()
}
