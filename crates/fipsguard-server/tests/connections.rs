//! What a client's connections may hold: a cap on their number, and a
//! deadline for connections with no request in flight.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use fipsguard_crypto::tls;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use reqwest::{Method, StatusCode};
use tokio::io::AsyncReadExt;

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
    let idle_timeout = Duration::from_secs(1);
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
            .body(String::new())
            .unwrap()
    };

    // In use: a request every 300 ms for three times the deadline.
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

/// An HTTP/2 connection (ALPN `h2`) that pings the server every 100 ms,
/// even with no request under way: a client holding a connection open.
async fn http2_connection(
    server: &TestServer,
) -> (
    hyper::client::conn::http2::SendRequest<String>,
    hyper::client::conn::http2::Connection<
        TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        String,
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
