//! Request bodies: JSON with unknown fields rejected, errors in the API's
//! shape, base64 fields decoded without echoing what was sent.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::Json;
use base64_simd::STANDARD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

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
    let text = String::deserialize(deserializer)?;
    STANDARD
        .decode_to_vec(text.trim())
        .map_err(|_| serde::de::Error::custom("a field is not valid base64"))
}

/// Deserializes an optional standard base64 string into bytes.
pub fn base64_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(text) => STANDARD
            .decode_to_vec(text.trim())
            .map(Some)
            .map_err(|_| serde::de::Error::custom("a field is not valid base64")),
        None => Ok(None),
    }
}

/// Encodes bytes as standard base64.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode_to_string(bytes)
}

/// Writes `text` into a JSON answer as it is when it needs no escaping, as
/// ciphertexts never do, instead of checking it byte by byte for
/// characters to escape (for a 1 KiB encrypt, a tenth of the server's
/// work). Any other text is written the usual way. For serde_json only
/// (another serializer would see RawValue's private wrapper), and not for
/// secrets: the text is copied once more, and the copy is not wiped.
pub fn verbatim<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    // Without a backslash, `"text"` parses as one JSON string only if that
    // string is `text`.
    let raw = match text.contains('\\') {
        true => None,
        false => RawValue::from_string(format!("\"{text}\"")).ok(),
    };
    match raw {
        Some(raw) => raw.serialize(serializer),
        None => serializer.serialize_str(text),
    }
}

#[cfg(test)]
mod tests {
    use super::verbatim;

    #[derive(serde::Serialize)]
    struct Answer<'a> {
        #[serde(serialize_with = "verbatim")]
        text: &'a str,
    }

    #[test]
    fn verbatim_text_is_the_same_json_as_escaped_text() {
        for text in [
            "fg:v1:AAEC+/==",
            "",
            "quote \" inside",
            "back\\slash",
            "\\u0041",
            "a\",\"b\":\"c",
            "line\nbreak",
            "é ✓",
        ] {
            let expected = serde_json::to_string(&serde_json::json!({ "text": text })).unwrap();
            assert_eq!(
                serde_json::to_string(&Answer { text }).unwrap(),
                expected,
                "{text:?}"
            );
            let value = serde_json::to_value(Answer { text }).unwrap();
            assert_eq!(value["text"], text, "{text:?}");
        }
    }
}
