//! Path and query extractors whose refusals are API errors (`{"error":
//! {"code", "message"}}`, as every other refusal), not axum's plain text.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::body::parser_message;
use crate::error::ApiError;

/// The route's path parameters (`{name}`, `{id}`).
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            // The segment is not repeated: it is whatever the caller sent.
            Err(_) => Err(ApiError::bad_request(
                "a path parameter is not valid (key names and token ids are UTF-8 text)",
            )),
        }
    }
}

/// The query string's parameters; unknown ones are refused by `T`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            // Whatever the rejection, the caller's own text is not repeated.
            Err(e) => Err(ApiError::bad_request(format!(
                "invalid query string: {}",
                parser_message::<serde_urlencoded::de::Error>(&e)
            ))),
        }
    }
}
