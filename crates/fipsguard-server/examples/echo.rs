//! The baselines for `bench/serve.sh`: a bare HTTPS echo server on the same
//! FIPS TLS policy and listener as `fipsguard serve`, with no API behind it.
//!
//! With `--durable FILE`, each request is answered only once a line for it
//! is synced to FILE by the plainest group commit (whatever is waiting is
//! written and synced together, no hashing, no signature): what that
//! design of a synced answer costs on this machine, whatever the record.
//!
//! usage: echo LISTEN_ADDR CA_FILE [--durable FILE]

use std::io::Write;
use std::sync::mpsc;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use fipsguard_crypto::tls::{self, ClientAuth};
use tokio::sync::oneshot;

// The same allocator as `fipsguard`, so the baseline differs from the
// server only in what the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: echo LISTEN_ADDR CA_FILE [--durable FILE]";
/// About the size of an audit record.
const LINE: usize = 320;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect(USAGE);
    let ca_file = args.next().expect(USAGE);
    let durable = match (args.next().as_deref(), args.next(), args.next()) {
        (None, _, _) => None,
        (Some("--durable"), Some(file), None) => Some(group_commit(&file)),
        _ => panic!("{USAGE}"),
    };
    let (identity, pem) =
        tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).expect("certificate");
    std::fs::write(&ca_file, pem).expect("CA file written");
    let config = tls::server_config(identity, ClientAuth::None).expect("TLS config");
    let app = Router::new().route("/echo", post(echo)).with_state(durable);
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

type Commit = mpsc::Sender<oneshot::Sender<()>>;

async fn echo(State(durable): State<Option<Commit>>, body: Bytes) -> Result<Bytes, StatusCode> {
    if let Some(commit) = durable {
        let (done, synced) = oneshot::channel();
        commit
            .send(done)
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
        synced.await.map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    }
    Ok(body)
}

/// A thread that writes a line for every waiting request, syncs once, and
/// then answers them all.
fn group_commit(path: &str) -> Commit {
    let mut file = std::fs::File::create(path).expect("durable file created");
    let (commit, requests) = mpsc::channel::<oneshot::Sender<()>>();
    std::thread::spawn(move || {
        let mut line = [b'x'; LINE];
        line[LINE - 1] = b'\n';
        let mut buffer = Vec::new();
        while let Ok(first) = requests.recv() {
            let batch: Vec<_> = std::iter::once(first).chain(requests.try_iter()).collect();
            for _ in &batch {
                buffer.extend_from_slice(&line);
            }
            file.write_all(&buffer)
                .and_then(|()| file.sync_data())
                .expect("durable file written");
            buffer.clear();
            for done in batch {
                let _ = done.send(());
            }
        }
    });
    commit
}
