//! A client for the fipsguard HTTPS API. Its TLS is the same FIPS policy
//! the server uses (`fipsguard_crypto::tls`): TLS 1.2/1.3, approved suites
//! and groups, on the validated module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use fipsguard_core::name::KeyName;
use fipsguard_crypto::tls;
use fipsguard_crypto::SecretBytes;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use zeroize::Zeroize;

/// Where the system's trusted CAs are, when no `--cacert` is given.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Times a request the server refused as busy (429) is sent again: a busy
/// server did nothing with it, and asks to be tried again shortly.
const BUSY_RETRIES: u32 = 3;

/// The longest wait before a retry, whatever `Retry-After` asks.
const LONGEST_RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client was set up wrongly (address, CA file, token).
    #[error("{0}")]
    Setup(String),
    /// The server could not be reached or the TLS handshake failed.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The server's URL.
        url: String,
        /// What went wrong, including the causes underneath.
        reason: String,
    },
    /// The server answered, but not as the API says it does.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The server answered with an error.
    #[error("{code}: {message} (HTTP {status})")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's error code, e.g. `forbidden`.
        code: String,
        /// The server's message.
        message: String,
        /// The whole answer (health, say, answers 503 with its report).
        answer: Value,
    },
}

/// A server and the credentials to call it with.
pub struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<SecretBytes>,
}

impl Client {
    /// A client for the server at `url` (`https://host:port`), trusting the
    /// CAs in `cacert` (the system's if `None`), sending `token` if given.
    pub fn new(
        url: &str,
        cacert: Option<&Path>,
        token: Option<SecretBytes>,
    ) -> Result<Self, ClientError> {
        let url = url.trim_end_matches('/').to_owned();
        if !url.starts_with("https://") {
            return Err(ClientError::Setup(format!(
                "the server address must be an https:// URL, not {url:?}"
            )));
        }
        let roots_file = cacert.map_or_else(|| PathBuf::from(SYSTEM_ROOTS), Path::to_owned);
        let roots = tls::read_roots(&roots_file).map_err(|e| ClientError::Setup(e.to_string()))?;
        let config =
            tls::client_config(roots, None).map_err(|e| ClientError::Setup(e.to_string()))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(config)
            // A redirect could send a token or a data key elsewhere, or in clear.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot build the HTTPS client: {e}")))?;
        Ok(Self { http, url, token })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends a request with an optional JSON body; returns the JSON answer
    /// (`Null` for an empty one) or the server's error. A request the
    /// server refuses as busy is sent again after the wait it asks for, a
    /// few times.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let body = body.map(JsonBody::new).transpose()?;
        let mut retries = 0;
        let response = loop {
            let request = self.request(method.clone(), path, body.as_ref())?;
            let response = request.send().await.map_err(|e| self.unreachable(&e))?;
            if response.status() != StatusCode::TOO_MANY_REQUESTS || retries == BUSY_RETRIES {
                break response;
            }
            retries += 1;
            let wait = retry_after(&response);
            // Read to its end, so that the connection serves the next try.
            let _ = response.bytes().await;
            tokio::time::sleep(wait).await;
        };
        let status = response.status();
        // Parsed from the body as it arrived: no text copy of an answer
        // that may hold a key or a plaintext.
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        let answer = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        // The body too, when this is its only holder (the HTTP stack's own
        // buffers are out of reach).
        wipe_if_only_holder(body);
        if status.is_success() {
            Ok(answer)
        } else {
            Err(server_error(status, answer))
        }
    }

    /// A request with the token, if any, and the JSON body, if any.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&JsonBody>,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            let token = std::str::from_utf8(token.expose_secret())
                .map_err(|_| ClientError::Setup("the token is not text".into()))?;
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.0.clone());
        }
        Ok(request)
    }

    /// A new 256-bit data key under `key`: the key itself, and its
    /// encryption under the server key (`fg:v…`), which only that key
    /// and `context` can open again.
    pub async fn data_key(
        &self,
        key: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<(SecretBytes, String), ClientError> {
        let path = format!("/v1/keys/{}/datakey", path_segment(key)?);
        let answer = self
            .call(Method::POST, &path, Some(&json!({ "context": context })))
            .await?;
        with_secret_answer(answer, |answer| {
            let wrapped = field(answer, "ciphertext")?.to_owned();
            Ok((decode_secret(field(answer, "plaintext")?)?, wrapped))
        })
    }

    /// Decrypts a data key made by [`Client::data_key`].
    pub async fn unwrap_data_key(
        &self,
        key: &str,
        wrapped: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<SecretBytes, ClientError> {
        let path = format!("/v1/keys/{}/decrypt", path_segment(key)?);
        let body = json!({ "ciphertext": wrapped, "context": context });
        let answer = self.call(Method::POST, &path, Some(&body)).await?;
        with_secret_answer(answer, |answer| decode_secret(field(answer, "plaintext")?))
    }

    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        // reqwest's own message is only the outermost layer ("error sending
        // request"); the cause underneath (refused, certificate unknown) is
        // what the user needs.
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        ClientError::Unreachable {
            url: self.url.clone(),
            reason,
        }
    }
}

/// A key name as one URL path segment: names that are not key names are
/// refused before anything is sent.
pub fn path_segment(name: &str) -> Result<&str, ClientError> {
    KeyName::new(name).map_err(|e| ClientError::Setup(e.to_string()))?;
    Ok(name)
}

/// A string field of a server answer.
fn field<'a>(answer: &'a Value, name: &str) -> Result<&'a str, ClientError> {
    answer[name]
        .as_str()
        .ok_or_else(|| ClientError::Protocol(format!("the answer has no {name:?} field")))
}

/// Base64 from the server into bytes that zeroize.
fn decode_secret(text: &str) -> Result<SecretBytes, ClientError> {
    STANDARD
        .decode(text)
        .map(SecretBytes::new)
        .map_err(|_| ClientError::Protocol("a key in the answer is not valid base64".into()))
}

/// What `read` takes from an answer that holds a secret (a data key in
/// base64), the answer's strings wiped afterwards, whatever `read` found.
fn with_secret_answer<T>(
    mut answer: Value,
    read: impl FnOnce(&Value) -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let read = read(&answer);
    wipe_strings(&mut answer);
    read
}

/// Zeroes every string in a JSON answer, so that freed memory keeps no
/// copy of what it held.
fn wipe_strings(value: &mut Value) {
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe_strings),
        Value::Object(fields) => fields.values_mut().for_each(wipe_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A JSON request body, which may hold a plaintext or a key: written once
/// into a buffer of its exact size (no grown buffer left behind with part
/// of it), shared by every try of its request, and wiped when the call is
/// over.
struct JsonBody(Bytes);

impl JsonBody {
    fn new(value: &Value) -> Result<Self, ClientError> {
        let unwritable =
            |e: serde_json::Error| ClientError::Setup(format!("cannot write the request: {e}"));
        let mut length = Length(0);
        serde_json::to_writer(&mut length, value).map_err(unwritable)?;
        let mut buffer = Vec::with_capacity(length.0);
        serde_json::to_writer(&mut buffer, value).map_err(unwritable)?;
        Ok(Self(Bytes::from(buffer)))
    }
}

impl Drop for JsonBody {
    fn drop(&mut self) {
        wipe_if_only_holder(std::mem::take(&mut self.0));
    }
}

/// Zeroes `bytes` if no one else holds them (the HTTP stack has let go of
/// a request's body once it is sent, and of an answer once it is read);
/// whether it could.
fn wipe_if_only_holder(bytes: Bytes) -> bool {
    match bytes.try_into_mut() {
        Ok(mut bytes) => {
            bytes.as_mut().zeroize();
            true
        }
        Err(_) => false,
    }
}

/// Counts what is written: the exact size of a body before it is written.
struct Length(usize);

impl std::io::Write for Length {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The wait a busy answer asks for (`Retry-After` in seconds, RFC 9110,
/// 10.2.3), one second if it names none, and never more than
/// [`LONGEST_RETRY_WAIT`].
fn retry_after(response: &reqwest::Response) -> std::time::Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.trim().parse().ok())
        .map_or(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs,
        )
        .min(LONGEST_RETRY_WAIT)
}

/// The server's `{"error": {"code", "message"}}`, or what stood in its place.
fn server_error(status: StatusCode, answer: Value) -> ClientError {
    let field = |name: &str| answer["error"][name].as_str().map(str::to_owned);
    ClientError::Server {
        status: status.as_u16(),
        code: field("code").unwrap_or_else(|| "http_error".into()),
        message: field("message").unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("unexpected answer")
                .to_owned()
        }),
        answer,
    }
}

pub use reqwest::Method as HttpMethod;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wiped_answer_keeps_no_string() {
        let mut answer = json!({
            "plaintext": "c2VjcmV0",
            "nested": [{"ciphertext": "fg:v1:AAAA"}, 7, null, true],
        });
        wipe_strings(&mut answer);
        assert_eq!(
            answer,
            json!({"plaintext": "", "nested": [{"ciphertext": ""}, 7, null, true]})
        );
    }

    #[test]
    fn a_request_body_is_written_to_its_exact_size_and_wiped_once_let_go() {
        let value = json!({"plaintext": "c2VjcmV0", "context": {"a": "b"}});
        let mut body = JsonBody::new(&value).unwrap();
        let written = std::mem::take(&mut body.0).try_into_mut().unwrap();
        assert_eq!(written, serde_json::to_vec(&value).unwrap());
        assert_eq!(
            written.capacity(),
            written.len(),
            "no room left to grow into"
        );
        body.0 = written.freeze();
        // As a try of the request holds it, then lets it go.
        let sent = body.0.clone();
        assert!(
            !wipe_if_only_holder(body.0.clone()),
            "wiped while a try holds it"
        );
        drop(sent);
        assert!(wipe_if_only_holder(std::mem::take(&mut body.0)));
    }
}
