//! The baselines for `bench/serve.sh`: a bare HTTPS echo server on the same
//! FIPS TLS policy and listener as `fipsguard serve`, with no API behind it.
//!
//! With `--durable FILE`, each request is answered only once a line for it
//! is synced to FILE by the plainest group commit (whatever is waiting is
//! written and synced together, no hashing, no signature): what that
//! design of a synced answer costs on this machine, whatever the record.
//!
//! With `--encrypt TOKEN`, it also answers `POST /encrypt` with only the
//! work an authenticated encrypt cannot do without, on the same stack: the
//! bearer token checked by HMAC-SHA-256 against its stored hash, the JSON
//! body `{"plaintext": BASE64}` read and decoded, an AES-256-GCM seal with
//! the module's IV, and `{"ciphertext": BASE64}` written. No key store,
//! cache, lifecycle, ciphertext header, metrics, request log or audit: what
//! the least an encrypt API can do costs here.
//!
//! usage: echo LISTEN_ADDR CA_FILE [--durable FILE | --encrypt TOKEN]

use std::io::Write;
use std::sync::mpsc;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use fipsguard_crypto::aead::{Aes256GcmKey, IV_LEN, TAG_LEN};
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_crypto::random;
use fipsguard_crypto::tls::{self, ClientAuth};
use fipsguard_server::api::body::string_field;
use fipsguard_server::tls::ServerTls;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, watch};

// The same allocator as `fipsguard`, so the baseline differs from the
// server only in what the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: echo LISTEN_ADDR CA_FILE [--durable FILE | --encrypt TOKEN]";
/// About the size of an audit record.
const LINE: usize = 320;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect(USAGE);
    let ca_file = args.next().expect(USAGE);
    let (durable, encrypter) = match (args.next().as_deref(), args.next(), args.next()) {
        (None, _, _) => (None, None),
        (Some("--durable"), Some(file), None) => (Some(group_commit(&file)), None),
        (Some("--encrypt"), Some(token), None) => (None, Some(Arc::new(Encrypter::new(&token)))),
        _ => panic!("{USAGE}"),
    };
    let (identity, pem) =
        tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).expect("certificate");
    let tls = ServerTls::new(identity, ClientAuth::None).expect("TLS config");
    let mut app = Router::new().route("/echo", post(echo)).with_state(durable);
    if let Some(encrypter) = encrypter {
        app = app.merge(
            Router::new()
                .route("/encrypt", post(encrypt))
                .with_state(encrypter),
        );
    }
    let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
    // Ends on SIGTERM as the server does, so that a build for profile-guided
    // optimization (bench/pgo.sh) writes its profile on the way out.
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    // Last: the benchmarks take the CA file as the sign that it serves.
    std::fs::write(&ca_file, pem).expect("CA file written");
    println!("echo server on {listen}");
    fipsguard_server::listener::serve(
        listener,
        watch::channel(Arc::new(tls)).1,
        app,
        fipsguard_server::listener::ConnectionLimits {
            max_connections: 4096,
            per_client: None,
            client_grouping: fipsguard_net::ClientGrouping::default(),
            idle_timeout: std::time::Duration::from_secs(75),
            body_timeout: fipsguard_server::listener::BODY_TIMEOUT,
        },
        async move {
            terminate.recv().await;
        },
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

/// The least an authenticated encrypt needs: a token's stored hash and the
/// key that checks it, and one AES-256-GCM key.
struct Encrypter {
    token_key: MacKey,
    token_hash: Vec<u8>,
    key: Aes256GcmKey,
}

impl Encrypter {
    fn new(token: &str) -> Self {
        let token_key = MacKey::new(
            MacAlgorithm::HmacSha256,
            &random::bytes(32).expect("random"),
        )
        .expect("MAC key");
        Self {
            token_hash: token_key.sign(token.as_bytes()).expect("token hashed"),
            token_key,
            key: Aes256GcmKey::new(&random::bytes(32).expect("random")).expect("AES key"),
        }
    }
}

#[derive(serde::Deserialize)]
struct Plaintext<'a> {
    plaintext: &'a str,
}

async fn encrypt(
    State(encrypter): State<Arc<Encrypter>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, StatusCode> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    encrypter
        .token_key
        .verify(token.as_bytes(), &encrypter.token_hash)
        .map_err(|_| StatusCode::UNAUTHORIZED)?;
    let request: Plaintext<'_> =
        serde_json::from_slice(&body).map_err(|_| StatusCode::BAD_REQUEST)?;
    // IV, ciphertext and tag laid out once, as the server does.
    let mut payload = Vec::with_capacity(IV_LEN + request.plaintext.len() * 3 / 4 + TAG_LEN);
    payload.extend_from_slice(&[0; IV_LEN]);
    base64_simd::STANDARD
        .decode_append(request.plaintext, &mut payload)
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    encrypter
        .key
        .seal_in_frame(b"", &mut payload, 0)
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(string_field(
        "ciphertext",
        &base64_simd::STANDARD.encode_to_string(&payload),
    ))
}
