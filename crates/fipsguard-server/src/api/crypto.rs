//! Cryptographic operations under managed keys (users, by grant).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use fipsguard_core::auth::Operation;
use fipsguard_core::kms::SignInput;
use fipsguard_core::{EncryptionContext, KmsError};
use fipsguard_crypto::digest::HashAlgorithm;
use fipsguard_crypto::sign::SignatureScheme;
use fipsguard_crypto::SecretBytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{
    base64, base64_opt, base64_secret, encode, string_field, Base64Secret, Body, SecretJson,
};
use super::extract::Path;
use crate::audit::{BatchTally, ErrorCode, Subject};
use crate::auth::{Access, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::metrics::{record_failure, record_operation};
use crate::state::AppState;

type Context = Option<BTreeMap<String, String>>;

fn context(pairs: Context) -> Result<EncryptionContext, KmsError> {
    EncryptionContext::new(pairs.unwrap_or_default())
}

/// Runs a core operation, recording its outcome and latency.
async fn measured<T>(
    op: &'static str,
    work: impl Future<Output = Result<T, KmsError>>,
) -> ApiResult<T> {
    let started = Instant::now();
    let result = work.await;
    record_operation(op, started.elapsed(), result.as_ref().err());
    result.map_err(ApiError::from)
}

/// A batch, measured as one operation. One whose item the service failed
/// (its store, its root key, the module's state) failed whole with that
/// item's error (the core stops at it), counted and logged once: it is to
/// be tried again. One whose every item was refused did nothing, and is
/// counted rejected (as the audit log records it).
async fn measured_batch<R>(
    op: &'static str,
    work: impl Future<Output = Result<Vec<Result<R, KmsError>>, KmsError>>,
) -> ApiResult<Vec<Result<R, KmsError>>> {
    let started = Instant::now();
    let result = work.await;
    match &result {
        Ok(results) if results.iter().all(Result::is_err) => {
            crate::metrics::record_rejected_batch(op, started.elapsed());
        }
        other => record_operation(op, started.elapsed(), other.as_ref().err()),
    }
    result.map_err(ApiError::from)
}

/// Encrypt up to 64 KiB.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptRequest {
    /// Plaintext, base64.
    #[serde(deserialize_with = "base64_secret")]
    #[schema(value_type = String, format = Byte)]
    pub plaintext: SecretBytes,
    /// Encryption context (not secret).
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub context: Context,
}

/// A ciphertext.
#[derive(Serialize, ToSchema)]
pub struct CiphertextResponse {
    /// `fg:v<version>:<base64>`
    pub ciphertext: String,
}

impl IntoResponse for CiphertextResponse {
    fn into_response(self) -> Response {
        string_field("ciphertext", &self.ciphertext)
    }
}

/// Decrypt or rewrap.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    /// `fg:v…` ciphertext.
    pub ciphertext: String,
    /// The encryption context it was made with.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub context: Context,
}

/// A plaintext.
#[derive(Serialize, ToSchema)]
pub struct PlaintextResponse {
    /// Plaintext, base64.
    #[schema(value_type = String, format = Byte)]
    pub plaintext: Base64Secret,
}

/// Generate a data key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataKeyRequest {
    /// Key length in bytes, 16-64 (default 32).
    pub bytes: Option<usize>,
    /// Encryption context.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub context: Context,
    /// Return the plaintext too (default true); false gives the wrapped form only.
    pub include_plaintext: Option<bool>,
}

/// A data key.
#[derive(Serialize, ToSchema)]
pub struct DataKeyResponse {
    /// The data key encrypted under the managed key.
    pub ciphertext: String,
    /// The data key, base64 (absent in the wrapped-only form).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Byte)]
    pub plaintext: Option<Base64Secret>,
}

/// Sign a message, or a digest with its hash named.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Message, base64.
    #[serde(default, deserialize_with = "base64_opt")]
    #[schema(value_type = Option<String>, format = Byte)]
    pub message: Option<Vec<u8>>,
    /// Digest, base64 (instead of message).
    #[serde(default, deserialize_with = "base64_opt")]
    #[schema(value_type = Option<String>, format = Byte)]
    pub digest: Option<Vec<u8>>,
    /// The digest's hash: sha-256, sha-384, sha-512.
    pub hash: Option<String>,
    /// Scheme, e.g. rsa-pss-sha256 (default: the key type's).
    pub scheme: Option<String>,
}

/// A signature.
#[derive(Serialize, ToSchema)]
pub struct SignatureResponse {
    /// Signature, base64.
    pub signature: String,
    /// Key version that signed.
    pub version: u32,
    /// Scheme used.
    pub scheme: &'static str,
}

/// Verify a signature.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Message, base64.
    #[serde(default, deserialize_with = "base64_opt")]
    #[schema(value_type = Option<String>, format = Byte)]
    pub message: Option<Vec<u8>>,
    /// Digest, base64.
    #[serde(default, deserialize_with = "base64_opt")]
    #[schema(value_type = Option<String>, format = Byte)]
    pub digest: Option<Vec<u8>>,
    /// The digest's hash.
    pub hash: Option<String>,
    /// Scheme.
    pub scheme: Option<String>,
    /// Signature, base64.
    #[serde(deserialize_with = "base64")]
    #[schema(value_type = String, format = Byte)]
    pub signature: Vec<u8>,
    /// Key version that signed.
    pub version: u32,
}

/// A verification verdict.
#[derive(Serialize, ToSchema)]
pub struct ValidResponse {
    /// Whether it verified.
    pub valid: bool,
}

/// Compute a MAC.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MacRequest {
    /// Data, base64.
    #[serde(deserialize_with = "base64")]
    #[schema(value_type = String, format = Byte)]
    pub data: Vec<u8>,
}

/// A MAC tag.
#[derive(Serialize, ToSchema)]
pub struct MacResponse {
    /// Tag, base64.
    pub tag: String,
    /// Key version.
    pub version: u32,
}

/// Verify a MAC.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MacVerifyRequest {
    /// Data, base64.
    #[serde(deserialize_with = "base64")]
    #[schema(value_type = String, format = Byte)]
    pub data: Vec<u8>,
    /// Tag, base64.
    #[serde(deserialize_with = "base64")]
    #[schema(value_type = String, format = Byte)]
    pub tag: Vec<u8>,
    /// Key version that computed it.
    pub version: u32,
}

/// Random bytes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomRequest {
    /// How many, 1-1024.
    pub bytes: usize,
}

/// Random bytes.
#[derive(Serialize, ToSchema)]
pub struct RandomResponse {
    /// Random bytes, base64.
    #[schema(value_type = String, format = Byte)]
    pub random: Base64Secret,
}

/// A batch.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch<T> {
    /// Up to 1000 items.
    pub items: Vec<T>,
}

/// Per-item results of a batch: each is a success body or an error.
#[derive(Serialize, ToSchema)]
pub struct BatchResponse<T> {
    /// One per item, in order: the item's answer, or `{"error": …}`.
    pub results: Vec<BatchItem<T>>,
}

/// One result of a batch.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem<T> {
    /// The item's answer.
    Done(T),
    /// Why the item failed.
    Failed {
        /// The error, as a whole request's would be.
        error: ErrorBody,
    },
}

impl<T> BatchResponse<T> {
    /// The answer, and how it went for the audit record (each failure is
    /// counted in the metrics as a request's is).
    fn new<R>(results: Vec<Result<R, KmsError>>, answer: impl Fn(R) -> T) -> (BatchTally, Self) {
        let mut tally = BatchTally::default();
        let results = results
            .into_iter()
            .map(|result| {
                tally.items += 1;
                match result {
                    Ok(value) => BatchItem::Done(answer(value)),
                    Err(e) => {
                        record_failure(&e);
                        tally.failed += 1;
                        tally.first_error.get_or_insert(ErrorCode(e.code()));
                        BatchItem::Failed {
                            error: ApiError::from(e).into(),
                        }
                    }
                }
            })
            .collect();
        (tally, Self { results })
    }
}

fn scheme(name: Option<&str>) -> Result<Option<SignatureScheme>, KmsError> {
    let Some(name) = name else { return Ok(None) };
    let approved = fipsguard_crypto::registry::lookup(name)?;
    SignatureScheme::ALL
        .into_iter()
        .find(|s| s.name() == approved.name)
        .map(Some)
        .ok_or_else(|| KmsError::InvalidRequest(format!("{name} is not a signature scheme")))
}

fn sign_input<'a>(
    message: &'a Option<Vec<u8>>,
    digest: &'a Option<Vec<u8>>,
    hash: Option<&str>,
) -> Result<SignInput<'a>, KmsError> {
    match (message, digest, hash) {
        (Some(m), None, None) => Ok(SignInput::Message(m)),
        (None, Some(d), Some(hash)) => {
            let hash = HashAlgorithm::for_signing(hash).ok_or_else(|| {
                KmsError::InvalidRequest("hash must be sha-256, sha-384 or sha-512".into())
            })?;
            Ok(SignInput::Digest(hash, d))
        }
        _ => Err(KmsError::InvalidRequest(
            "give either message, or digest with hash".into(),
        )),
    }
}

/// Encrypt (users granted `encrypt`).
#[utoipa::path(post, path = "/v1/keys/{name}/encrypt", request_body = EncryptRequest, responses((status = 200, body = CiphertextResponse)), tag = "crypto")]
pub async fn encrypt(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<EncryptRequest>,
) -> ApiResult<CiphertextResponse> {
    caller.require(Access::Key(Operation::Encrypt, &name))?;
    let ciphertext = measured("encrypt", async {
        s.kms
            .encrypt(&name, r.plaintext.expose_secret(), &context(r.context)?)
            .await
    })
    .await?;
    caller.acted_on(Subject::ciphertext(&ciphertext));
    Ok(CiphertextResponse { ciphertext })
}

/// Decrypt (users granted `decrypt`).
#[utoipa::path(post, path = "/v1/keys/{name}/decrypt", request_body = DecryptRequest, responses((status = 200, body = PlaintextResponse)), tag = "crypto")]
pub async fn decrypt(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<DecryptRequest>,
) -> ApiResult<SecretJson<PlaintextResponse>> {
    caller.require(Access::Key(Operation::Decrypt, &name))?;
    // Named before the attempt, so a refusal records the version asked for.
    caller.acted_on(Subject::ciphertext(&r.ciphertext));
    let plaintext = measured("decrypt", async {
        s.kms
            .decrypt(&name, &r.ciphertext, &context(r.context)?)
            .await
    })
    .await?;
    Ok(SecretJson(PlaintextResponse {
        plaintext: Base64Secret(plaintext),
    }))
}

/// Re-encrypt under the newest version (users granted `rewrap`).
#[utoipa::path(post, path = "/v1/keys/{name}/rewrap", request_body = DecryptRequest, responses((status = 200, body = CiphertextResponse)), tag = "crypto")]
pub async fn rewrap(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<DecryptRequest>,
) -> ApiResult<CiphertextResponse> {
    caller.require(Access::Key(Operation::Rewrap, &name))?;
    let rewrapped = measured("rewrap", async {
        s.kms
            .rewrap(&name, &r.ciphertext, &context(r.context)?)
            .await
    })
    .await;
    // Refused or not, the record names the version the ciphertext was under.
    let made = rewrapped.as_ref().ok().map(String::as_str);
    caller.acted_on(Subject::rewrap(&r.ciphertext, made));
    Ok(CiphertextResponse {
        ciphertext: rewrapped?,
    })
}

/// Generate a data key (users granted `datakey`).
#[utoipa::path(post, path = "/v1/keys/{name}/datakey", request_body = DataKeyRequest, responses((status = 200, body = DataKeyResponse)), tag = "crypto")]
pub async fn datakey(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<DataKeyRequest>,
) -> ApiResult<SecretJson<DataKeyResponse>> {
    caller.require(Access::Key(Operation::Datakey, &name))?;
    let key = measured("datakey", async {
        s.kms
            .generate_data_key(&name, r.bytes.unwrap_or(32), &context(r.context)?)
            .await
    })
    .await?;
    let plaintext = r
        .include_plaintext
        .unwrap_or(true)
        .then_some(Base64Secret(key.plaintext));
    caller.acted_on(Subject::ciphertext(&key.ciphertext));
    Ok(SecretJson(DataKeyResponse {
        ciphertext: key.ciphertext,
        plaintext,
    }))
}

/// Sign (users granted `sign`).
#[utoipa::path(post, path = "/v1/keys/{name}/sign", request_body = SignRequest, responses((status = 200, body = SignatureResponse)), tag = "crypto")]
pub async fn sign(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<SignRequest>,
) -> ApiResult<Json<SignatureResponse>> {
    caller.require(Access::Key(Operation::Sign, &name))?;
    let signature = measured("sign", async {
        let input = sign_input(&r.message, &r.digest, r.hash.as_deref())?;
        s.kms.sign(&name, input, scheme(r.scheme.as_deref())?).await
    })
    .await?;
    caller.acted_on(Subject::version(signature.version));
    Ok(Json(SignatureResponse {
        signature: encode(&signature.bytes),
        version: signature.version,
        scheme: signature.scheme.name(),
    }))
}

/// Verify a signature (users granted `verify`).
#[utoipa::path(post, path = "/v1/keys/{name}/verify", request_body = VerifyRequest, responses((status = 200, body = ValidResponse)), tag = "crypto")]
pub async fn verify(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<VerifyRequest>,
) -> ApiResult<Json<ValidResponse>> {
    caller.require(Access::Key(Operation::Verify, &name))?;
    caller.acted_on(Subject::version(r.version));
    let valid = measured("verify", async {
        let input = sign_input(&r.message, &r.digest, r.hash.as_deref())?;
        s.kms
            .verify(
                &name,
                r.version,
                input,
                scheme(r.scheme.as_deref())?,
                &r.signature,
            )
            .await
    })
    .await?;
    Ok(Json(ValidResponse { valid }))
}

/// Compute a MAC (users granted `mac`).
#[utoipa::path(post, path = "/v1/keys/{name}/mac", request_body = MacRequest, responses((status = 200, body = MacResponse)), tag = "crypto")]
pub async fn mac(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<MacRequest>,
) -> ApiResult<Json<MacResponse>> {
    caller.require(Access::Key(Operation::Mac, &name))?;
    let tag = measured("mac", s.kms.mac(&name, &r.data)).await?;
    caller.acted_on(Subject::version(tag.version));
    Ok(Json(MacResponse {
        tag: encode(&tag.bytes),
        version: tag.version,
    }))
}

/// Verify a MAC (users granted `mac-verify`).
#[utoipa::path(post, path = "/v1/keys/{name}/mac/verify", request_body = MacVerifyRequest, responses((status = 200, body = ValidResponse)), tag = "crypto")]
pub async fn mac_verify(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<MacVerifyRequest>,
) -> ApiResult<Json<ValidResponse>> {
    caller.require(Access::Key(Operation::MacVerify, &name))?;
    caller.acted_on(Subject::version(r.version));
    let valid = measured(
        "mac_verify",
        s.kms.mac_verify(&name, r.version, &r.data, &r.tag),
    )
    .await?;
    Ok(Json(ValidResponse { valid }))
}

/// Random bytes (users and officers).
#[utoipa::path(post, path = "/v1/random", request_body = RandomRequest, responses((status = 200, body = RandomResponse)), tag = "crypto")]
pub async fn random(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Body(r): Body<RandomRequest>,
) -> ApiResult<SecretJson<RandomResponse>> {
    caller.require(Access::Random)?;
    let bytes = measured("random", async { s.kms.random(r.bytes) }).await?;
    Ok(SecretJson(RandomResponse {
        random: Base64Secret(bytes),
    }))
}

/// Encrypt up to 1000 items (users granted `encrypt`).
#[utoipa::path(post, path = "/v1/keys/{name}/encrypt/batch", request_body = Batch<EncryptRequest>, responses((status = 200, body = BatchResponse<CiphertextResponse>)), tag = "crypto")]
pub async fn encrypt_batch(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<Batch<EncryptRequest>>,
) -> ApiResult<(
    Extension<BatchTally>,
    Json<BatchResponse<CiphertextResponse>>,
)> {
    caller.require(Access::Key(Operation::Encrypt, &name))?;
    let items = r
        .items
        .into_iter()
        .map(|i| Ok((i.plaintext, context(i.context)?)))
        .collect::<Result<Vec<_>, KmsError>>()?;
    let results = measured_batch("encrypt_batch", s.kms.encrypt_batch(&name, &items)).await?;
    let (tally, answer) =
        BatchResponse::new(results, |ciphertext| CiphertextResponse { ciphertext });
    Ok((Extension(tally), Json(answer)))
}

/// Decrypt up to 1000 items (users granted `decrypt`).
#[utoipa::path(post, path = "/v1/keys/{name}/decrypt/batch", request_body = Batch<DecryptRequest>, responses((status = 200, body = BatchResponse<PlaintextResponse>)), tag = "crypto")]
pub async fn decrypt_batch(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<Batch<DecryptRequest>>,
) -> ApiResult<(
    Extension<BatchTally>,
    SecretJson<BatchResponse<PlaintextResponse>>,
)> {
    caller.require(Access::Key(Operation::Decrypt, &name))?;
    let items = r
        .items
        .into_iter()
        .map(|i| Ok((i.ciphertext, context(i.context)?)))
        .collect::<Result<Vec<_>, KmsError>>()?;
    let results = measured_batch("decrypt_batch", s.kms.decrypt_batch(&name, &items)).await?;
    let (tally, answer) = BatchResponse::new(results, |plaintext| PlaintextResponse {
        plaintext: Base64Secret(plaintext),
    });
    Ok((Extension(tally), SecretJson(answer)))
}

/// Sign up to 1000 messages (users granted `sign`).
#[utoipa::path(post, path = "/v1/keys/{name}/sign/batch", request_body = Batch<SignRequest>, responses((status = 200, body = BatchResponse<SignatureResponse>)), tag = "crypto")]
pub async fn sign_batch(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(r): Body<Batch<SignRequest>>,
) -> ApiResult<(
    Extension<BatchTally>,
    Json<BatchResponse<SignatureResponse>>,
)> {
    caller.require(Access::Key(Operation::Sign, &name))?;
    let inputs = r
        .items
        .iter()
        .map(|i| sign_input(&i.message, &i.digest, i.hash.as_deref()))
        .collect::<Result<Vec<_>, KmsError>>()?;
    let first = r.items.first().and_then(|i| i.scheme.as_deref());
    if r.items.iter().any(|i| i.scheme.as_deref() != first) {
        return Err(ApiError::bad_request(
            "every item of a sign batch uses the same scheme",
        ));
    }
    let scheme = scheme(first)?;
    let results = measured_batch("sign_batch", s.kms.sign_batch(&name, &inputs, scheme)).await?;
    let (tally, answer) = BatchResponse::new(results, |sig| SignatureResponse {
        signature: encode(&sig.bytes),
        version: sig.version,
        scheme: sig.scheme.name(),
    });
    Ok((Extension(tally), Json(answer)))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use fipsguard_core::{DecryptError, KmsError, StoreError};
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::measured_batch;

    #[test]
    fn a_batch_the_service_failed_answers_its_error_counted_once() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let rejected = || Err(KmsError::Decrypt(DecryptError::Tampered));
        // What the core answers for a batch whose item the service failed.
        let failed = KmsError::Store(StoreError::Unavailable("down".into()));
        let answer = metrics::with_local_recorder(&recorder, || {
            runtime.block_on(measured_batch::<u32>("decrypt_batch", async {
                Err(failed)
            }))
        });
        let error = answer.unwrap_err();
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code, "store_unavailable");
        let text = metrics.render();
        for series in [
            "fipsguard_crypto_operations_total{op=\"decrypt_batch\",outcome=\"failure\"} 1",
            "fipsguard_key_access_errors_total{reason=\"store_unavailable\"} 1",
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
        // Items refused for the request's own reasons are answered one by
        // one; a batch of nothing else did nothing, and is counted rejected.
        let batches = [vec![Ok(1), rejected()], vec![rejected(), rejected()]];
        for batch in batches {
            let answer = metrics::with_local_recorder(&recorder, || {
                runtime.block_on(measured_batch("decrypt_batch", async { Ok(batch) }))
            });
            assert_eq!(answer.unwrap().len(), 2);
        }
        let text = metrics.render();
        for series in [
            "fipsguard_crypto_operations_total{op=\"decrypt_batch\",outcome=\"success\"} 1",
            "fipsguard_crypto_operations_total{op=\"decrypt_batch\",outcome=\"rejected\"} 1",
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
    }
}
