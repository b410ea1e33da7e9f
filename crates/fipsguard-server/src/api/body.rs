//! Request bodies: JSON with unknown fields rejected, errors in the API's
//! shape, base64 fields decoded without echoing what was sent.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64_simd::STANDARD;
use serde::de::DeserializeOwned;
use serde::de::Visitor;
use serde::{Deserialize, Deserializer};

use crate::error::ApiError;

/// A JSON request body.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::bad_request(format!(
                "invalid request body: {}",
                without_quoted(&e.body_text())
            ))),
            Err(JsonRejection::JsonSyntaxError(_)) => {
                Err(ApiError::bad_request("the request body is not valid JSON"))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than the server accepts",
                ))
            }
            Err(other) => Err(ApiError::bad_request(format!(
                "unreadable request body: {}",
                other.body_text()
            ))),
        }
    }
}

/// Drops quoted parts of a parser message: they can hold what the caller
/// sent, which may be secret and must not travel into logs.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                out.push_str(if quoted { "\"…" } else { "\"" });
            }
            _ if quoted => {}
            _ => out.push(c),
        }
    }
    out
}

/// Deserializes a standard base64 string into bytes.
pub fn base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    Decoded::deserialize(deserializer).map(|d| d.0)
}

/// Deserializes an optional standard base64 string into bytes.
pub fn base64_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
    Option::<Decoded>::deserialize(deserializer).map(|d| d.map(|d| d.0))
}

/// Bytes decoded straight from the JSON text: no owned copy of the base64
/// (of a plaintext, say) is made and left behind unwiped.
struct Decoded(Vec<u8>);

impl<'de> Deserialize<'de> for Decoded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(Base64Text)
    }
}

/// Visits the base64 text of a [`Decoded`].
struct Base64Text;

impl Visitor<'_> for Base64Text {
    type Value = Decoded;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Decoded, E> {
        STANDARD
            .decode_to_vec(text.trim())
            .map(Decoded)
            .map_err(|_| E::custom("a field is not valid base64"))
    }
}

/// Encodes bytes as standard base64.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode_to_string(bytes)
}

/// The JSON answer `{"<name>":"<text>"}`. Text holding nothing that JSON
/// escapes, as ciphertexts never do, is copied in as it is, found so by a
/// scan the compiler vectorizes, instead of passing serde_json's escape
/// loop byte by byte (see BENCHMARKS.md, "Instructions per request"); any
/// other text is escaped the usual way.
pub fn string_field(name: &'static str, text: &str) -> Response {
    let escapes = text.bytes().fold(false, |found, b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    let body = if escapes {
        serde_json::to_vec(&serde_json::json!({ name: text })).expect("a string serializes")
    } else {
        let mut body = Vec::with_capacity(name.len() + text.len() + 7);
        for part in [b"{\"", name.as_bytes(), b"\":\"", text.as_bytes(), b"\"}"] {
            body.extend_from_slice(part);
        }
        body
    };
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::string_field;

    #[tokio::test]
    async fn a_string_field_is_the_json_serde_writes() {
        for text in [
            "fg:v1:AAEC+/==",
            "",
            "quote \" inside",
            "back\\slash",
            "\\u0041",
            "a\",\"b\":\"c",
            "line\nbreak",
            "unit\u{1f}separator",
            "del\u{7f}",
            "é ✓",
        ] {
            let response = string_field("text", text);
            assert_eq!(response.headers()["content-type"], "application/json");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let expected = serde_json::to_vec(&serde_json::json!({ "text": text })).unwrap();
            assert_eq!(body, expected, "{text:?}");
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(value["text"], text, "{text:?}");
        }
    }
}
