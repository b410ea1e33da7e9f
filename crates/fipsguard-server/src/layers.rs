//! What every request passes through: a request id, one log line, HTTP
//! metrics; and the answers for unknown routes and methods.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::audit::is_change;
use crate::error::ApiError;

/// Who a request is from, once authentication knows.
pub struct ActorInfo {
    /// The token id (never the token).
    pub token_id: String,
    /// Its role.
    pub role: fipsguard_core::Role,
}

/// What the layers know of a request: its id, its route, and where
/// authentication leaves the caller for the log line and the audit record.
/// Shared by every layer as an `Arc<RequestContext>` extension.
pub struct RequestContext {
    /// The request id.
    pub id: String,
    /// The matched route template (`unmatched` for none).
    pub route: String,
    /// The request's path as sent.
    pub path: String,
    /// The authenticated caller.
    pub actor: Arc<OnceLock<ActorInfo>>,
}

/// Gives the request an id (echoed as `x-request-id`), logs it once with
/// its outcome and the caller's token id (never the token), counts it.
/// Failures and changes to keys and tokens log at info; successful
/// cryptographic operations at debug (a line per success costs a third of
/// the throughput; the audit log is to be the durable record of each).
pub async fn request_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let context = Arc::new(RequestContext {
        id: request_id(),
        route: route.clone(),
        path: request.uri().path().to_owned(),
        actor: Arc::default(),
    });
    let mut request = request;
    request.extensions_mut().insert(context.clone());
    let mut response = next.run(request).await;
    let status = response.status();
    let id = &context.id;
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let actor = context.actor.get().map_or("-", |a| a.token_id.as_str());
    let micros = started.elapsed().as_micros() as u64;
    match status.as_u16() {
        200..=299 if is_change(&method, &route) => {
            tracing::info!(request_id = %id, %method, route = %route, status = status.as_u16(), actor, micros, "request");
        }
        200..=299 => {
            tracing::debug!(request_id = %id, %method, route = %route, status = status.as_u16(), actor, micros, "request");
        }
        code => {
            tracing::info!(request_id = %id, %method, route = %route, status = code, actor, micros, "request");
        }
    }
    crate::metrics::record_request(&route, status);
    response
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
