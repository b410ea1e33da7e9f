//! The `/v1` API: routes, and the OpenAPI document generated from them.

pub mod body;
pub mod crypto;
pub mod extract;
pub mod keys;
pub mod system;
pub mod tokens;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tower::ServiceBuilder;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::layers;
use crate::state::AppState;

/// What the OpenAPI document says beyond its paths.
#[derive(OpenApi)]
#[openapi(info(
    title = "fipsguard",
    description = "Key management and cryptography on AWS-LC's FIPS 140-3 validated module. Every call but health and this document takes `Authorization: Bearer <token>`; errors are `{\"error\": {\"code\", \"message\"}}`."
))]
struct ApiInfo;

/// Every route with its handler, each described by its handler's
/// `#[utoipa::path]`: the router and the OpenAPI document are made from
/// this one list, so no route goes undescribed. Every route is spelled out
/// in full: a nested router would rewrite each request's URI on its way in.
fn described_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiInfo::openapi())
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::get))
        .routes(routes!(keys::rotate))
        .routes(routes!(keys::configure))
        .routes(routes!(keys::activate))
        .routes(routes!(keys::deactivate))
        .routes(routes!(keys::compromise))
        .routes(routes!(keys::schedule_destroy, keys::cancel_destroy))
        .routes(routes!(keys::destroy_now))
        .routes(routes!(keys::public_key))
        .routes(routes!(crypto::encrypt))
        .routes(routes!(crypto::decrypt))
        .routes(routes!(crypto::rewrap))
        .routes(routes!(crypto::datakey))
        .routes(routes!(crypto::sign))
        .routes(routes!(crypto::verify))
        .routes(routes!(crypto::mac))
        .routes(routes!(crypto::mac_verify))
        .routes(routes!(crypto::encrypt_batch))
        .routes(routes!(crypto::decrypt_batch))
        .routes(routes!(crypto::sign_batch))
        .routes(routes!(crypto::random))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::own, tokens::revoke_own))
        .routes(routes!(tokens::revoke))
        .routes(routes!(system::health))
        .routes(routes!(system::status))
        .routes(routes!(system::selftest))
        .routes(routes!(system::metrics))
}

/// The application: routes and the layers every request passes.
pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    let (routes, document) = described_routes().split_for_parts();
    let document = Bytes::from(document.to_json().expect("the OpenAPI document serializes"));
    routes
        .route(
            "/v1/openapi.json",
            get(move || std::future::ready(system::openapi(document.clone()))),
        )
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

    fn document() -> Value {
        serde_json::to_value(super::described_routes().into_openapi()).unwrap()
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
