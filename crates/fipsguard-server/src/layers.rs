//! What every request passes through: a request id, one log line, HTTP
//! metrics; and the answers for unknown routes and methods.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use metrics::counter;

use crate::error::ApiError;

/// Where authentication leaves the caller's token id for the log line.
#[derive(Clone, Default)]
pub struct Actor(pub std::sync::Arc<std::sync::OnceLock<String>>);

/// Gives the request an id (echoed as `x-request-id`), logs it once with
/// its outcome and the caller's token id (never the token), counts it.
/// Failures and changes to keys and tokens log at info; successful
/// cryptographic operations at debug (a line per success costs a third of
/// the throughput; the audit log is to be the durable record of each).
pub async fn request_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let actor = Actor::default();
    let mut request = request;
    request.extensions_mut().insert(actor.clone());
    let mut response = next.run(request).await;
    let status = response.status();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let actor = actor.0.get().map_or("-", String::as_str);
    let micros = started.elapsed().as_micros() as u64;
    let class = match status.as_u16() {
        200..=299 if is_management(&method, &route) => {
            tracing::info!(request_id = %id, %method, route = %route, status = status.as_u16(), actor, micros, "request");
            "2xx"
        }
        200..=299 => {
            tracing::debug!(request_id = %id, %method, route = %route, status = status.as_u16(), actor, micros, "request");
            "2xx"
        }
        code => {
            tracing::info!(request_id = %id, %method, route = %route, status = code, actor, micros, "request");
            if code < 500 {
                "4xx"
            } else {
                "5xx"
            }
        }
    };
    counter!("fipsguard_http_requests_total", "route" => route, "status" => class).increment(1);
    response
}

/// Changes to keys and tokens: logged at info even when they succeed.
fn is_management(method: &axum::http::Method, route: &str) -> bool {
    const CHANGES: [&str; 8] = [
        "/rotate",
        "/config",
        "/activate",
        "/deactivate",
        "/compromise",
        "/destroy",
        "/destroy-now",
        "/v1/keys",
    ];
    method != axum::http::Method::GET
        && (route.starts_with("/v1/tokens") || CHANGES.iter().any(|c| route.ends_with(c)))
}

/// A request id unique within this process and across restarts: a random
/// prefix drawn once, then a counter.
fn request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let bytes = fipsguard_crypto::random::bytes(4).unwrap_or_default();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /v1/openapi.json",
    )
}

/// Known routes, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /v1/openapi.json",
    )
}
