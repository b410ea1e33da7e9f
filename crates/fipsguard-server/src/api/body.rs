//! Request and response bodies: JSON with unknown fields rejected, errors
//! in the API's shape, base64 fields decoded without echoing what was sent,
//! and secrets (decoded or answered) held only in memory that is wiped.

use std::io;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64_simd::{Out, STANDARD};
use fipsguard_crypto::secret::wipe;
use fipsguard_crypto::SecretBytes;
use serde::de::DeserializeOwned;
use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ApiError;
use crate::listener::BodyTimedOut;

/// A JSON request body.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // The common case, plain `application/json`, is read and parsed
        // directly: axum's `Json` parses the media type and tracks the path
        // through the document, which only a refusal needs. A body the
        // direct parse refuses is parsed again by `Json`, whose error names
        // what is wrong, worded as for every other body.
        if !is_plain_json(&request) {
            let parsed = Json::<T>::from_request(request, state).await;
            return parsed.map(|Json(value)| Body(value)).map_err(refusal);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| refusal(e.into()))?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Body(value)),
            Err(_) => Json::<T>::from_bytes(&bytes)
                .map(|Json(value)| Body(value))
                .map_err(refusal),
        }
    }
}

/// A JSON request body that may be left out: an empty body, whatever its
/// content type, stands for `T::default()`.
pub struct OptionalBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // Kept for the read of what arrived: its content type, and the
        // body limit the route sets (an extension).
        let (headers, extensions) = (request.headers().clone(), request.extensions().clone());
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| refusal(e.into()))?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        let mut request = Request::new(axum::body::Body::from(bytes));
        *request.headers_mut() = headers;
        *request.extensions_mut() = extensions;
        let Body(value) = Body::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// Whether the request says its body is `application/json`, plainly.
fn is_plain_json(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"application/json"))
}

/// The API's error for a body that is not the JSON an operation takes.
fn refusal(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::bad_request(format!(
            "invalid request body: {}",
            parser_message::<serde_json::Error>(&e)
        )),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("the request body is not valid JSON")
        }
        JsonRejection::MissingJsonContentType(_) => not_json(),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than the server accepts",
            )
        }
        JsonRejection::BytesRejection(e) if cause::<BodyTimedOut>(&e).is_some() => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body did not arrive in time; send it whole, at once",
        ),
        other => ApiError::bad_request(format!("unreadable request body: {}", other.body_text())),
    }
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with Content-Type: application/json",
    )
}

/// `error`, or the first error it wraps, that is an `E`.
fn cause<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    std::iter::successors(Some(error), |e| e.source()).find_map(|e| e.downcast_ref::<E>())
}

/// The parser's message (an `E`) without the path axum puts before it:
/// the path names map keys and unknown fields, which are the caller's text.
/// Parts of the message that repeat the caller's text are dropped too.
pub(crate) fn parser_message<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> String {
    match cause::<serde_path_to_error::Error<E>>(error) {
        Some(error) => without_quoted(&error.inner().to_string()),
        None => "it does not match the operation's request".to_owned(),
    }
}

/// Drops the parts of a parser message that repeat what the caller sent,
/// which may be secret and must not travel into logs: `"`-quoted values
/// (escaped quotes inside them included), and the `` ` ``-quoted name or
/// number after "unknown field", "unknown variant", "integer", "floating
/// point" or "character", up to serde's own list of the expected names,
/// which are the API's and are kept.
fn without_quoted(message: &str) -> String {
    const ECHOES: [&str; 5] = [
        "unknown field `",
        "unknown variant `",
        "integer `",
        "floating point `",
        "character `",
    ];
    const ECHO_ENDS: [&str; 2] = ["`, expected", "`, there are no"];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        if let Some(echo) = ECHOES.iter().find(|echo| rest.starts_with(**echo)) {
            out.push_str(echo);
            out.push('…');
            let name = &rest[echo.len()..];
            // The last such ending is serde's: a name cannot come after it.
            let end = ECHO_ENDS.iter().filter_map(|end| name.rfind(end)).max();
            match end.or_else(|| name.rfind('`')) {
                Some(end) => rest = &name[end..],
                None => return out,
            }
        } else if c == '"' {
            out.push_str("\"…\"");
            match closing_quote(&rest[1..]) {
                Some(end) => rest = &rest[1 + end + 1..],
                None => return out,
            }
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Where the quoted text starting `text` ends: its first `"` not escaped.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    text.char_indices().find_map(|(at, c)| {
        let closes = c == '"' && !escaped;
        escaped = c == '\\' && !escaped;
        closes.then_some(at)
    })
}

/// Deserializes a standard base64 string into bytes.
pub fn base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    Decoded::deserialize(deserializer).map(|d| d.0)
}

/// Deserializes an optional standard base64 string into bytes.
pub fn base64_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
    Option::<Decoded<Vec<u8>>>::deserialize(deserializer).map(|d| d.map(|d| d.0))
}

/// Deserializes a standard base64 string into a secret (a plaintext).
pub fn base64_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretBytes, D::Error> {
    Decoded::deserialize(deserializer).map(|d| d.0)
}

/// What a base64 field decodes into.
trait DecodeInto: Sized {
    fn decode(text: &[u8]) -> Option<Self>;
}

impl DecodeInto for Vec<u8> {
    fn decode(text: &[u8]) -> Option<Self> {
        STANDARD.decode_to_vec(text).ok()
    }
}

/// Decoded into wiped memory, so that a failed decoding leaves no partial
/// secret behind either.
impl DecodeInto for SecretBytes {
    fn decode(text: &[u8]) -> Option<Self> {
        let mut bytes = SecretBytes::new(vec![0; STANDARD.decoded_length(text).ok()?]);
        let written = STANDARD
            .decode(text, Out::from_slice(bytes.expose_secret_mut()))
            .ok()?
            .len();
        bytes.truncate(written);
        Some(bytes)
    }
}

/// Bytes decoded straight from the JSON text (serde_json hands over the
/// request's own text when the string holds no escapes, as base64 written
/// without `\/` never does): no owned copy of the base64 of a plaintext is
/// made here.
struct Decoded<T>(T);

impl<'de, T: DecodeInto> Deserialize<'de> for Decoded<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(Base64Text(PhantomData))
    }
}

/// Visits the base64 text of a [`Decoded`].
struct Base64Text<T>(PhantomData<T>);

impl<T: DecodeInto> Visitor<'_> for Base64Text<T> {
    type Value = Decoded<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Decoded<T>, E> {
        T::decode(text.trim().as_bytes())
            .map(Decoded)
            .ok_or_else(|| E::custom("a field is not valid base64"))
    }
}

/// A secret answered as base64 (a plaintext, a data key, random bytes):
/// the encoding is wiped once serialized.
pub struct Base64Secret(pub SecretBytes);

impl Serialize for Base64Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = STANDARD.encode_to_string(self.0.expose_secret());
        SecretText(SecretBytes::new(text.into_bytes())).serialize(serializer)
    }
}

/// A secret answered as text (a new token), without an unwiped copy.
pub struct SecretText(pub SecretBytes);

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(self.0.expose_secret())
            .map_err(|_| serde::ser::Error::custom("a secret text is not UTF-8"))?;
        serializer.serialize_str(text)
    }
}

/// A JSON answer that carries a secret: written into memory that is wiped
/// when hyper has sent it, and that leaves no copy behind as it grows.
/// (rustls encrypts in place what it is given; the plaintext copies in
/// hyper's and rustls' own buffers are out of reach.)
pub struct SecretJson<T>(pub T);

impl<T: Serialize> IntoResponse for SecretJson<T> {
    fn into_response(self) -> Response {
        let mut body = WipedBuffer::default();
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(CONTENT_TYPE, "application/json")],
                axum::body::Body::from(Bytes::from_owner(body)),
            )
                .into_response(),
            Err(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the answer could not be encoded",
            )
            .into_response(),
        }
    }
}

/// A growing buffer that wipes each allocation it leaves and, when
/// dropped, the one it holds.
#[derive(Default)]
struct WipedBuffer(Vec<u8>);

impl Drop for WipedBuffer {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl io::Write for WipedBuffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let needed = self.0.len() + data.len();
        if needed > self.0.capacity() {
            let mut grown = Vec::with_capacity(needed.max(2 * self.0.capacity()).max(256));
            grown.extend_from_slice(&self.0);
            // The old allocation is wiped before it is freed.
            wipe(&mut std::mem::replace(&mut self.0, grown));
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRef<[u8]> for WipedBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
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
    use super::{base64_secret, string_field, without_quoted, Base64Secret, SecretJson};
    use axum::response::IntoResponse;
    use fipsguard_crypto::SecretBytes;

    #[tokio::test]
    async fn a_secret_answer_is_the_json_serde_writes_at_any_size() {
        // Sizes around the buffer's first allocation and its doublings.
        for len in [0, 1, 2, 3, 100, 180, 181, 190, 1000, 70_000] {
            let secret: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let answer = serde_json::json!({
                "plaintext": Base64Secret(SecretBytes::copy_from(&secret)),
                "note": "a \"quoted\" word",
            });
            let response = SecretJson(&answer).into_response();
            assert_eq!(response.headers()["content-type"], "application/json");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(body, serde_json::to_vec(&answer).unwrap(), "{len}");
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let decoded = base64_secret(&value["plaintext"]).unwrap();
            assert_eq!(decoded.expose_secret(), secret, "{len}");
        }
    }

    #[test]
    fn parser_messages_lose_the_callers_text_and_keep_the_apis_names() {
        for (message, expected) in [
            (
                "unknown field `secret`, expected `plaintext` or `context`",
                "unknown field `…`, expected `plaintext` or `context`",
            ),
            (
                "unknown variant `secret`, expected one of `aes256-gcm`",
                "unknown variant `…`, expected one of `aes256-gcm`",
            ),
            (
                "invalid type: string \"secret\", expected u32",
                "invalid type: string \"…\", expected u32",
            ),
            ("missing field `plaintext`", "missing field `plaintext`"),
            ("unknown field `unterminated", "unknown field `…"),
            (
                "invalid type: string \"a\\\"SECRET\\\\\", expected u32",
                "invalid type: string \"…\", expected u32",
            ),
            (
                "unknown field `a`SECRET`, expected `plaintext`",
                "unknown field `…`, expected `plaintext`",
            ),
            (
                "unknown field `a`, expected SECRET`, expected `plaintext`",
                "unknown field `…`, expected `plaintext`",
            ),
            (
                "invalid type: integer `4111111111111111`, expected a string",
                "invalid type: integer `…`, expected a string",
            ),
            (
                "invalid value: floating point `1.5`, expected u32",
                "invalid value: floating point `…`, expected u32",
            ),
            (
                "unknown variant `x`, there are no variants",
                "unknown variant `…`, there are no variants",
            ),
        ] {
            assert_eq!(without_quoted(message), expected);
        }
    }

    #[test]
    fn a_secret_field_takes_only_base64() {
        for text in ["not base64!", "QUJD=", "QQ", "Q", "=="] {
            let error = base64_secret(&serde_json::json!(text)).err().unwrap();
            assert_eq!(error.to_string(), "a field is not valid base64", "{text}");
        }
        let error = base64_secret(&serde_json::json!(5)).err().unwrap();
        assert!(error.to_string().contains("a base64 string"), "{error}");
        let decoded = base64_secret(&serde_json::json!(" QUJD ")).unwrap();
        assert_eq!(decoded.expose_secret(), b"ABC");
    }

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
