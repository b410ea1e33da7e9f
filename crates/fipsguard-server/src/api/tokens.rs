//! Token management (officers), and each caller's own token (anyone).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use fipsguard_core::auth::{Grant, ListedToken, Role};
use fipsguard_core::kms::CreateToken;
use fipsguard_core::TokenInfo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{Body, SecretJson, SecretText};
use super::extract::Path;
use crate::audit::Subject;
use crate::auth::{Access, Caller};
use crate::error::ApiResult;
use crate::state::AppState;

/// Create a token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// officer, user or auditor.
    pub role: String,
    /// Users only: `[{"keys": "payments" | "prefix*" | "*", "operations": ["encrypt", ...]}]`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub grants: Vec<Grant>,
    /// Lifetime in seconds (60 s to 366 days, and at most the server's
    /// `max_token_ttl_secs`); absent, that maximum, or never expires if the
    /// server sets none.
    pub ttl_secs: Option<i64>,
    /// What the token is for.
    #[serde(default)]
    pub description: String,
}

/// A new token, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    /// The bearer token. It is not stored and cannot be shown again.
    #[schema(value_type = String)]
    pub token: SecretText,
    /// What it is.
    #[schema(value_type = Object)]
    pub info: TokenInfo,
}

/// Create a token (officer).
#[utoipa::path(post, path = "/v1/tokens", request_body = CreateTokenRequest, responses((status = 201, body = CreatedToken)), tag = "tokens")]
pub async fn create(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Body(r): Body<CreateTokenRequest>,
) -> ApiResult<(StatusCode, SecretJson<CreatedToken>)> {
    caller.require(Access::Officer)?;
    let role: Role = r.role.parse()?;
    let new = s
        .kms
        .create_token(CreateToken {
            role,
            grants: r.grants,
            ttl_secs: r.ttl_secs,
            description: r.description,
        })
        .await?;
    caller.acted_on(Subject::token(&new.info.id));
    Ok((
        StatusCode::CREATED,
        SecretJson(CreatedToken {
            token: SecretText(new.token),
            info: new.info,
        }),
    ))
}

/// List tokens (officer).
#[utoipa::path(get, path = "/v1/tokens", responses((status = 200, description = "every token's description, with `altered: true` for a token whose stored row the service did not write")), tag = "tokens")]
pub async fn list(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<Vec<ListedToken>>> {
    caller.require(Access::Officer)?;
    Ok(Json(s.kms.list_tokens().await?))
}

/// The caller's own token (any role): its role, grants and expiry, so
/// that a service can see when to ask for a new one.
#[utoipa::path(get, path = "/v1/tokens/self", responses((status = 200, description = "the caller's token's description")), tag = "tokens")]
pub async fn own(caller: Caller) -> Json<TokenInfo> {
    Json(caller.principal.info().clone())
}

/// Revoke the caller's own token (any role): a job done with its token
/// ends it rather than leave it live until it expires.
#[utoipa::path(delete, path = "/v1/tokens/self", responses((status = 200, description = "revoked: the token's description"), (status = 409, description = "last_officer_token: the last live officer token is kept")), tag = "tokens")]
pub async fn revoke_own(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<TokenInfo>> {
    Ok(Json(s.kms.revoke_token(caller.principal.token_id()).await?))
}

/// Revoke a token (officer).
#[utoipa::path(delete, path = "/v1/tokens/{id}", responses((status = 200, description = "revoked"), (status = 404, description = "token_not_found: no active token has this id"), (status = 409, description = "last_officer_token: the last live officer token is kept")), tag = "tokens")]
pub async fn revoke(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenInfo>> {
    caller.require(Access::Officer)?;
    Ok(Json(s.kms.revoke_token(&id).await?))
}
