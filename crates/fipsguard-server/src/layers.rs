//! What every request passes through: a request id, one log line, HTTP
//! metrics; and the answers for unknown routes and methods.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, histogram};

use crate::error::ApiError;

/// Where authentication leaves the caller's token id for the log line.
#[derive(Clone, Default)]
pub struct Actor(pub std::sync::Arc<std::sync::OnceLock<String>>);

/// Gives the request an id (echoed as `x-request-id`), logs it once with
/// its outcome and the caller's token id (never the token), counts it.
pub async fn request_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = fipsguard_crypto::random::bytes(8)
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>())
        .unwrap_or_default();
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
    let actor = actor.0.get().cloned().unwrap_or_else(|| "-".into());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let elapsed = started.elapsed();
    tracing::info!(request_id = %id, %method, route = %route, status = status.as_u16(), actor = %actor, micros = elapsed.as_micros() as u64, "request");
    let class = match status.as_u16() {
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    counter!("fipsguard_http_requests_total", "route" => route.clone(), "status" => class)
        .increment(1);
    histogram!("fipsguard_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    response
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
