//! Key lifecycle endpoints (officers), metadata and public keys.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use fipsguard_core::auth::Operation;
use fipsguard_core::kms::{ConfigureKey, CreateKey, KeyMetadata, Page};
use fipsguard_core::KeyType;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::{encode, Body, OptionalBody};
use super::extract::{Path, Query};
use crate::audit::Subject;
use crate::auth::{Access, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The audit key may be rotated, never retired: without it no request
/// could be audited, so none could be served.
fn keep_audit_key(name: &str) -> ApiResult<()> {
    if name == crate::audit::AUDIT_KEY {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "audit_key_protected",
            "the audit key cannot be deactivated, compromised or destroyed while it signs the audit log; rotate it instead (see docs/audit.md)",
        ));
    }
    Ok(())
}

/// A key's metadata as the answer, its key and version told to the audit
/// record.
fn answer(caller: &Caller, metadata: KeyMetadata) -> Json<KeyMetadata> {
    caller.acted_on(Subject::key(&metadata.name, metadata.latest_version));
    Json(metadata)
}

/// Create a key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// 1-64 of A-Z a-z 0-9 _ . -, not . or .., not starting with fgt. (the tokens' prefix)
    pub name: String,
    /// aes256-gcm, hmac-sha256|384|512, ecdsa-p256|p384, rsa-2048|3072|4096, ed25519
    #[serde(rename = "type")]
    pub key_type: String,
    /// Start active (default) or pre-active.
    #[serde(default = "yes")]
    pub active: bool,
    /// May material ever leave the service (default no; fixed at creation).
    #[serde(default)]
    pub exportable: bool,
    /// Cryptoperiod in seconds (at least 3600).
    pub rotate_every_secs: Option<i64>,
}

fn yes() -> bool {
    true
}

/// Change a key's configuration.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigureKeyRequest {
    /// New minimum decryption version.
    pub min_decryption_version: Option<u32>,
    /// New cryptoperiod in seconds; 0 removes it.
    pub rotate_every_secs: Option<i64>,
}

/// Schedule a key's destruction.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDestroyRequest {
    /// Days until destruction, 1-30 (default 7).
    pub days: Option<u32>,
}

/// Paging of key listings.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// List keys after this name.
    pub after: Option<String>,
    /// Page size, 1-1000 (default 100).
    pub limit: Option<u32>,
}

/// A public key.
#[derive(Serialize, ToSchema)]
pub struct PublicKeyResponse {
    /// Version it belongs to.
    pub version: u32,
    /// SubjectPublicKeyInfo, PEM.
    pub pem: String,
    /// SubjectPublicKeyInfo DER, base64.
    pub der: String,
}

/// Version selection for public keys.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    /// Version (default: latest).
    pub version: Option<u32>,
}

/// Create a key (officer).
#[utoipa::path(post, path = "/v1/keys", request_body = CreateKeyRequest, responses((status = 201, description = "created")), tag = "keys")]
pub async fn create(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Body(r): Body<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<KeyMetadata>)> {
    caller.require(Access::Officer)?;
    // A refused creation names, in its audit record, the key it asked for.
    let refused = |e| {
        caller.acted_on(Subject::named(&r.name));
        ApiError::from(e)
    };
    if r.name == crate::audit::AUDIT_KEY {
        caller.acted_on(Subject::named(&r.name));
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "audit_key_reserved",
            "fipsguard-audit is the audit key's name: the service creates that key itself, as the log needs it",
        ));
    }
    let key_type: KeyType = r.key_type.parse().map_err(refused)?;
    let request = CreateKey {
        name: r.name.clone(),
        key_type,
        active: r.active,
        exportable: r.exportable,
        rotate_every_secs: r.rotate_every_secs,
    };
    let metadata = s.kms.create_key(request).await.map_err(refused)?;
    Ok((StatusCode::CREATED, answer(&caller, metadata)))
}

/// List keys (officer, auditor).
#[utoipa::path(get, path = "/v1/keys", params(ListQuery), responses((status = 200, description = "a page of keys")), tag = "keys")]
pub async fn list(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page>> {
    caller.require(Access::Oversight)?;
    Ok(Json(
        s.kms
            .list_keys(q.after.as_deref(), q.limit.unwrap_or(100))
            .await?,
    ))
}

/// Read a key's metadata (officer, auditor, users granted `read`).
#[utoipa::path(get, path = "/v1/keys/{name}", responses((status = 200, description = "metadata")), tag = "keys")]
pub async fn get(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    caller.require(Access::Key(Operation::Read, &name))?;
    Ok(answer(&caller, s.kms.get_key(&name).await?))
}

/// Add a version (officer).
#[utoipa::path(post, path = "/v1/keys/{name}/rotate", responses((status = 200, description = "rotated")), tag = "keys")]
pub async fn rotate(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    caller.require(Access::Officer)?;
    Ok(answer(&caller, s.kms.rotate_key(&name).await?))
}

/// Change minimum decryption version or cryptoperiod (officer).
#[utoipa::path(post, path = "/v1/keys/{name}/config", request_body = ConfigureKeyRequest, responses((status = 200, description = "configured")), tag = "keys")]
pub async fn configure(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<ConfigureKeyRequest>,
) -> ApiResult<Json<KeyMetadata>> {
    caller.require(Access::Officer)?;
    let change = ConfigureKey {
        min_decryption_version: r.min_decryption_version,
        rotate_every_secs: r.rotate_every_secs.map(|secs| (secs != 0).then_some(secs)),
    };
    Ok(answer(&caller, s.kms.configure_key(&name, change).await?))
}

/// Pre-active to active (officer).
#[utoipa::path(post, path = "/v1/keys/{name}/activate", responses((status = 200, description = "active")), tag = "keys")]
pub async fn activate(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    caller.require(Access::Officer)?;
    Ok(answer(&caller, s.kms.activate_key(&name).await?))
}

/// Active to deactivated (officer).
#[utoipa::path(post, path = "/v1/keys/{name}/deactivate", responses((status = 200, description = "deactivated")), tag = "keys")]
pub async fn deactivate(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    caller.require(Access::Officer)?;
    keep_audit_key(&name)?;
    Ok(answer(&caller, s.kms.deactivate_key(&name).await?))
}

/// Mark compromised (officer).
#[utoipa::path(post, path = "/v1/keys/{name}/compromise", responses((status = 200, description = "compromised")), tag = "keys")]
pub async fn compromise(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    caller.require(Access::Officer)?;
    keep_audit_key(&name)?;
    Ok(answer(&caller, s.kms.compromise_key(&name).await?))
}

/// Schedule destruction (officer).
#[utoipa::path(post, path = "/v1/keys/{name}/destroy", request_body = Option<ScheduleDestroyRequest>, responses((status = 200, description = "scheduled")), tag = "keys")]
pub async fn schedule_destroy(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    OptionalBody(r): OptionalBody<ScheduleDestroyRequest>,
) -> ApiResult<Json<KeyMetadata>> {
    caller.require(Access::Officer)?;
    keep_audit_key(&name)?;
    Ok(answer(
        &caller,
        s.kms.schedule_destroy(&name, r.days).await?,
    ))
}

/// Cancel a scheduled destruction (officer).
#[utoipa::path(delete, path = "/v1/keys/{name}/destroy", responses((status = 200, description = "cancelled")), tag = "keys")]
pub async fn cancel_destroy(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    caller.require(Access::Officer)?;
    Ok(answer(&caller, s.kms.cancel_destroy(&name).await?))
}

/// Destroy now (officer).
#[utoipa::path(post, path = "/v1/keys/{name}/destroy-now", responses((status = 200, description = "destroyed")), tag = "keys")]
pub async fn destroy_now(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    caller.require(Access::Officer)?;
    keep_audit_key(&name)?;
    Ok(answer(&caller, s.kms.destroy_key_now(&name).await?))
}

/// Public key of a signing key (officer, auditor, users granted `verify`).
#[utoipa::path(get, path = "/v1/keys/{name}/public-key", params(VersionQuery), responses((status = 200, body = PublicKeyResponse)), tag = "keys")]
pub async fn public_key(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<PublicKeyResponse>> {
    caller.require(Access::PublicKey(&name))?;
    let key = s.kms.public_key(&name, q.version).await?;
    Ok(Json(PublicKeyResponse {
        version: key.version,
        der: encode(&key.der),
        pem: key.pem,
    }))
}
