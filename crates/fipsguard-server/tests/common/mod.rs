//! A real server on a loopback port, and a real HTTPS client for it (on
//! the same FIPS TLS policy).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use fipsguard_core::auth::{Grant, Operation};
use fipsguard_crypto::tls;
use fipsguard_server::{config, Running};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub ca_file: PathBuf,
    pub officer: String,
    pub client: reqwest::Client,
    running: Option<Running>,
    _dir: TempDir,
}

impl TestServer {
    /// A development server on a free loopback port.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A development server that also serves `/metrics` on a plain-HTTP
    /// loopback listener.
    pub async fn with_metrics() -> Self {
        Self::start_with(|options| options.metrics_listen = Some("127.0.0.1:0".parse().unwrap()))
            .await
    }

    /// The same, with options adjusted before it starts.
    pub async fn start_with(adjust: impl FnOnce(&mut fipsguard_server::ServerOptions)) -> Self {
        let dir = TempDir::new().unwrap();
        let (mut options, info) = config::development(dir.path(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        adjust(&mut options);
        let running = fipsguard_server::start(options, std::future::pending())
            .await
            .unwrap();
        let addr = running.local_addr;
        let roots = tls::read_roots(&info.ca_file).unwrap();
        let client = reqwest::Client::builder()
            .resolve("localhost", addr)
            .use_preconfigured_tls(tls::client_config(roots, None).unwrap())
            .build()
            .unwrap();
        Self {
            url: format!("https://localhost:{}", addr.port()),
            addr,
            ca_file: info.ca_file,
            officer: String::from_utf8(info.officer_token.expose_secret().to_vec()).unwrap(),
            client,
            running: Some(running),
            _dir: dir,
        }
    }

    /// Sends a request; returns the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A new token of `role` with `grants`, made by the officer.
    pub async fn token(&self, role: &str, grants: &[Grant]) -> String {
        let body = json!({ "role": role, "grants": grants });
        let (status, created) = self
            .call(Method::POST, "/v1/tokens", Some(&self.officer), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["token"].as_str().unwrap().to_owned()
    }

    /// A new user token granted `operations` on the keys `keys` matches.
    pub async fn user(&self, keys: &str, operations: &[Operation]) -> String {
        let grants = [Grant {
            keys: keys.into(),
            operations: operations.to_vec(),
        }];
        self.token("user", &grants).await
    }

    /// Creates a key as the officer.
    pub async fn create_key(&self, name: &str, key_type: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/keys",
                Some(&self.officer),
                Some(json!({ "name": name, "type": key_type })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// The directory of the server's audit log.
    pub fn audit_dir(&self) -> PathBuf {
        self._dir.path().join("audit")
    }

    /// The separate metrics listener's address, if the server has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().and_then(|r| r.metrics_addr)
    }

    /// The exposition, scraped from the separate metrics listener.
    pub async fn plain_metrics(&self) -> String {
        let address = self
            .metrics_addr()
            .expect("a server with a metrics listener");
        let response = self
            .client
            .get(format!("http://{address}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.text().await.unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// promtool (Debian package `prometheus`): required under CI, skipped
/// with a visible message elsewhere.
pub fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "promtool (Debian package prometheus) is required under CI"
        );
        eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)");
    }
    found
}
