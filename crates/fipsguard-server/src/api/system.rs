//! Health (for load balancers), status (for auditors), metrics, OpenAPI.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use fipsguard_core::KmsError;
use fipsguard_crypto::module::{self, State as ModuleState};
use fipsguard_crypto::selftest::SelfTestReport;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Access, Caller};
use crate::error::ApiResult;
use crate::selftest::Trigger;
use crate::state::AppState;

/// Health of the module and the store.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `error` when the module is in its error state, the store is
    /// unreachable or under another root key, or the audit log cannot be
    /// written.
    pub status: &'static str,
    /// The process runs AWS-LC in FIPS mode.
    pub fips_mode: bool,
    /// Module state (`operational`, or `error` with the failed self-test).
    #[schema(value_type = Object)]
    pub module_state: ModuleState,
    /// The validated module.
    #[schema(value_type = Object)]
    pub module: module::ModuleInfo,
    /// The latest self-test run's results (power-up, periodic or on demand).
    #[schema(value_type = Vec<Object>)]
    pub self_tests: Vec<fipsguard_crypto::selftest::SelfTestResult>,
    /// The store answers.
    pub store_reachable: bool,
    /// The store's root key is the one this node holds: `false` once
    /// `fipsguard rekey` changed it since this node started (restart it
    /// with the new root key); `null` while the store does not answer.
    #[schema(required = true)]
    pub root_key_current: Option<bool>,
    /// The audit log: `null` when turned off.
    #[schema(value_type = Option<Object>)]
    pub audit: Option<fipsguard_audit::Health>,
}

/// Health (no token): 200 when serving; 503 in the error state, without a
/// store, or while the audit log cannot be written.
#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = Health), (status = 503, body = Health)), tag = "system")]
pub async fn health(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    let mut body = current_health(&s).await;
    // Why the log fails names files and system errors: for the server's
    // log and the failure metric's reason, not for anyone who asks.
    if let Some(audit) = body.audit.as_mut() {
        if let Some(error) = audit.error.as_mut() {
            *error = AUDIT_FAILURE_ELSEWHERE.into();
        }
        // For auditors (`/v1/status`), who record it outside the host.
        audit.checkpoint = None;
    }
    let status = if body.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// What anyone is told of a failing audit log.
pub const AUDIT_FAILURE_ELSEWHERE: &str =
    "the audit log cannot be written (the reason is in the server log and fipsguard_audit_failures_total)";

/// Status for auditors.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// Health as above.
    #[schema(inline)]
    pub health: Health,
    /// fipsguard's version.
    pub version: &'static str,
    /// The store's kind.
    pub store: &'static str,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The caller as the server sees it: token id, role, client certificate.
    #[schema(value_type = Object)]
    pub caller: serde_json::Value,
}

/// Status (auditor, officer).
#[utoipa::path(get, path = "/v1/status", responses((status = 200, body = Status)), tag = "system")]
pub async fn status(State(s): State<Arc<AppState>>, caller: Caller) -> ApiResult<Json<Status>> {
    caller.require(Access::Oversight)?;
    let health = current_health(&s).await;
    let (principal, certificate) = (&caller.principal, &caller.certificate);
    let caller = serde_json::json!({
        "token_id": principal.token_id(),
        "role": principal.role(),
        "client_certificate_sha256": certificate.as_deref(),
    });
    Ok(Json(Status {
        health,
        version: env!("CARGO_PKG_VERSION"),
        store: s.store_kind,
        uptime_secs: s.started.elapsed().as_secs(),
        caller,
    }))
}

async fn current_health(s: &Arc<AppState>) -> Health {
    let report = module::latest_report();
    let module_state = module::state();
    let store = s.store_probe.answer(&s.kms).await;
    let (store_reachable, root_key_current) = (store.reachable(), store.root_key_current());
    let audit = s.audit.as_ref().map(fipsguard_audit::AuditLog::health);
    let audit_writable = audit.as_ref().is_none_or(|a| a.writable);
    let healthy = module_state == ModuleState::Operational
        && store_reachable
        && root_key_current == Some(true)
        && audit_writable;
    Health {
        status: if healthy { "ok" } else { "error" },
        fips_mode: report.fips_mode(),
        module_state,
        module: report.module.clone(),
        self_tests: report.results.clone(),
        store_reachable,
        root_key_current,
        audit,
    }
}

/// Runs the whole self-test suite now (officer): 200 with the per-test
/// results when every test passed. A failure puts the module into its
/// error state at once, so the answer is then 503 `module_error_state`
/// naming the failed test, and `GET /v1/health` shows every result.
#[utoipa::path(post, path = "/v1/selftest", responses((status = 200, description = "every self-test passed: the per-test results", body = Object), (status = 503, description = "a self-test failed: the module is in its error state")), tag = "system")]
pub async fn selftest(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<SelfTestReport>> {
    caller.require(Access::SelfTest)?;
    let report = crate::selftest::run(&s, Trigger::OnDemand).await;
    match module::state() {
        ModuleState::Error { failed_test } => {
            Err(KmsError::Crypto(fipsguard_crypto::Error::ErrorState { failed_test }).into())
        }
        _ => Ok(Json(report)),
    }
}

/// Prometheus metrics (auditor, officer).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition")), tag = "system")]
pub async fn metrics(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    caller.require(Access::Oversight)?;
    Ok(crate::metrics::scrape(&s).await)
}

/// The OpenAPI document (no token), as JSON made once when the router is.
pub fn openapi(document: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document)
}
