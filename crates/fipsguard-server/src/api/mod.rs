//! The `/v1` API: routes, and the OpenAPI document generated from them.

pub mod body;
pub mod crypto;
pub mod extract;
pub mod keys;
pub mod system;
pub mod tokens;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceBuilder;
use utoipa::OpenApi;

use crate::layers;
use crate::state::AppState;

/// The OpenAPI 3 description of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "fipsguard",
        description = "Key management and cryptography on AWS-LC's FIPS 140-3 validated module. Every call but health and this document takes `Authorization: Bearer <token>`; errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        keys::create,
        keys::list,
        keys::get,
        keys::rotate,
        keys::configure,
        keys::activate,
        keys::deactivate,
        keys::compromise,
        keys::schedule_destroy,
        keys::cancel_destroy,
        keys::destroy_now,
        keys::public_key,
        crypto::encrypt,
        crypto::decrypt,
        crypto::rewrap,
        crypto::datakey,
        crypto::sign,
        crypto::verify,
        crypto::mac,
        crypto::mac_verify,
        crypto::random,
        crypto::encrypt_batch,
        crypto::decrypt_batch,
        crypto::sign_batch,
        tokens::create,
        tokens::list,
        tokens::revoke,
        tokens::own,
        system::health,
        system::status,
        system::selftest,
        system::metrics,
    )
)]
pub struct ApiDoc;

/// The application: routes and the layers every request passes.
pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    // Every route spelled out in full: a nested router would rewrite each
    // request's URI on its way in.
    Router::new()
        .route("/v1/keys", post(keys::create).get(keys::list))
        .route("/v1/keys/{name}", get(keys::get))
        .route("/v1/keys/{name}/rotate", post(keys::rotate))
        .route("/v1/keys/{name}/config", post(keys::configure))
        .route("/v1/keys/{name}/activate", post(keys::activate))
        .route("/v1/keys/{name}/deactivate", post(keys::deactivate))
        .route("/v1/keys/{name}/compromise", post(keys::compromise))
        .route(
            "/v1/keys/{name}/destroy",
            post(keys::schedule_destroy).delete(keys::cancel_destroy),
        )
        .route("/v1/keys/{name}/destroy-now", post(keys::destroy_now))
        .route("/v1/keys/{name}/public-key", get(keys::public_key))
        .route("/v1/keys/{name}/encrypt", post(crypto::encrypt))
        .route("/v1/keys/{name}/decrypt", post(crypto::decrypt))
        .route("/v1/keys/{name}/rewrap", post(crypto::rewrap))
        .route("/v1/keys/{name}/datakey", post(crypto::datakey))
        .route("/v1/keys/{name}/sign", post(crypto::sign))
        .route("/v1/keys/{name}/verify", post(crypto::verify))
        .route("/v1/keys/{name}/mac", post(crypto::mac))
        .route("/v1/keys/{name}/mac/verify", post(crypto::mac_verify))
        .route("/v1/keys/{name}/encrypt/batch", post(crypto::encrypt_batch))
        .route("/v1/keys/{name}/decrypt/batch", post(crypto::decrypt_batch))
        .route("/v1/keys/{name}/sign/batch", post(crypto::sign_batch))
        .route("/v1/random", post(crypto::random))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/self", get(tokens::own))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/v1/health", get(system::health))
        .route("/v1/status", get(system::status))
        .route("/v1/selftest", post(system::selftest))
        .route("/v1/openapi.json", get(system::openapi))
        .route("/metrics", get(system::metrics))
        .fallback(layers::not_found)
        .method_not_allowed_fallback(layers::method_not_allowed)
        // The two as one layer, outermost first: axum boxes each layer
        // per route, and a request passing a layer clones the boxes
        // inside it, so separate layers cost allocations per request.
        .layer(
            ServiceBuilder::new()
                .layer(layers::RequestLayer(state.clone()))
                .layer(DefaultBodyLimit::max(max_body_bytes)),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use utoipa::OpenApi;

    fn document() -> Value {
        serde_json::to_value(super::ApiDoc::openapi()).unwrap()
    }

    fn schema<'a>(document: &'a Value, reference: &Value) -> &'a Value {
        let name = reference["$ref"].as_str().unwrap();
        &document["components"]["schemas"][name.trim_start_matches("#/components/schemas/")]
    }

    #[test]
    fn a_batch_answer_is_described_item_by_item() {
        let document = document();
        for (operation, answer) in [
            ("encrypt", "ciphertext"),
            ("decrypt", "plaintext"),
            ("sign", "signature"),
        ] {
            let path = format!("/v1/keys/{{name}}/{operation}/batch");
            let ok = &document["paths"][&path]["post"]["responses"]["200"];
            let batch = schema(&document, &ok["content"]["application/json"]["schema"]);
            let item = schema(&document, &batch["properties"]["results"]["items"]);
            let [done, failed] = item["oneOf"].as_array().unwrap().as_slice() else {
                panic!("{item}")
            };
            assert!(done["properties"][answer].is_object(), "{done}");
            assert_eq!(failed["required"], json!(["error"]), "{failed}");
            let error = schema(&document, &failed["properties"]["error"]);
            assert_eq!(error["required"], json!(["code", "message"]));
        }
    }

    #[test]
    fn an_encryption_context_is_an_optional_map_of_strings() {
        let document = document();
        for request in ["EncryptRequest", "DecryptRequest", "DataKeyRequest"] {
            let request = &document["components"]["schemas"][request];
            let required = request["required"].as_array();
            assert!(
                !required.is_some_and(|r| r.contains(&json!("context"))),
                "{request}"
            );
            let context = &request["properties"]["context"];
            assert_eq!(
                context["additionalProperties"]["type"], "string",
                "{context}"
            );
        }
    }
}
