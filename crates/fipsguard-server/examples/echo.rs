//! The baseline for `bench/serve.sh`: a bare HTTPS echo server on the same
//! FIPS TLS policy and listener as `fipsguard serve`, with no API behind it.
//!
//! usage: echo LISTEN_ADDR CA_FILE

use std::sync::Arc;

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use fipsguard_crypto::tls::{self, ClientAuth};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect("usage: echo LISTEN_ADDR CA_FILE");
    let ca_file = args.next().expect("usage: echo LISTEN_ADDR CA_FILE");
    let (identity, pem) =
        tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).expect("certificate");
    std::fs::write(&ca_file, pem).expect("CA file written");
    let config = tls::server_config(identity, ClientAuth::None).expect("TLS config");
    let app = Router::new().route("/echo", post(|body: Bytes| async move { body }));
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    println!("echo server on {listen}");
    fipsguard_server::listener::serve(
        listener,
        Arc::new(config),
        app,
        fipsguard_server::listener::ConnectionLimits {
            max_connections: 4096,
            idle_timeout: std::time::Duration::from_secs(75),
            body_timeout: fipsguard_server::listener::BODY_TIMEOUT,
        },
        std::future::pending(),
    )
    .await;
}
