//! API errors: `{"error": {"code", "message"}}` with the status that fits.
//! Messages come from the core's error vocabulary, which never carries
//! secrets; internal failures are logged and answered without detail.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fipsguard_core::{KmsError, StoreError};
use serde::Serialize;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `key_not_found`.
    pub code: &'static str,
    /// What happened, for people.
    pub message: String,
}

impl ApiError {
    /// An error with its parts.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl From<KmsError> for ApiError {
    fn from(error: KmsError) -> Self {
        use fipsguard_crypto::Error as Crypto;
        let status = status_of(&error);
        let message = match status {
            // Store and module internals go to the log, not to callers.
            StatusCode::INTERNAL_SERVER_ERROR | StatusCode::SERVICE_UNAVAILABLE => {
                tracing::error!(code = error.code(), error = %error, "request failed");
                match &error {
                    KmsError::Crypto(Crypto::ErrorState { .. }) => error.to_string(),
                    _ => "the service could not complete the request; see the server log".into(),
                }
            }
            _ => error.to_string(),
        };
        Self {
            status,
            code: error.code(),
            message,
        }
    }
}

/// The `error` object of an answer (or of one item of a batch).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable code, e.g. `key_not_found`.
    pub code: &'static str,
    /// What happened, for people.
    pub message: String,
}

/// The whole answer: `{"error": {…}}`.
#[derive(Serialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

impl From<ApiError> for ErrorBody {
    fn from(error: ApiError) -> Self {
        Self {
            code: error.code,
            message: error.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = (self.status, self.code);
        let body = ErrorAnswer { error: self.into() };
        let mut response = (status, Json(body)).into_response();
        response
            .extensions_mut()
            .insert(crate::audit::ErrorCode(code));
        // Busy is for a moment: when to try again (RFC 9110, 10.2.3).
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// The status that answers `error`: 5xx only where the service failed.
pub(crate) fn status_of(error: &KmsError) -> StatusCode {
    use fipsguard_crypto::Error as Crypto;
    match error {
        KmsError::KeyNotFound(_)
        | KmsError::VersionNotFound { .. }
        | KmsError::TokenNotFound(_) => StatusCode::NOT_FOUND,
        KmsError::KeyExists(_)
        | KmsError::LastOfficerToken
        | KmsError::IllegalTransition { .. }
        | KmsError::StateForbids { .. }
        | KmsError::EncryptionLimit { .. }
        | KmsError::VersionsExhausted(_)
        | KmsError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
        KmsError::InvalidRequest(_) | KmsError::WrongKeyType { .. } | KmsError::Decrypt(_) => {
            StatusCode::BAD_REQUEST
        }
        KmsError::Crypto(
            Crypto::NotApproved(_) | Crypto::InvalidInput(_) | Crypto::InvalidKey(_),
        ) => StatusCode::BAD_REQUEST,
        KmsError::Crypto(Crypto::VerificationFailed) => StatusCode::BAD_REQUEST,
        KmsError::Unauthenticated => StatusCode::UNAUTHORIZED,
        KmsError::TokenLookupsBusy => StatusCode::TOO_MANY_REQUESTS,
        KmsError::Forbidden { .. } => StatusCode::FORBIDDEN,
        KmsError::Crypto(Crypto::ErrorState { .. })
        | KmsError::DestructionHeld { .. }
        | KmsError::RotationHeld { .. }
        | KmsError::Store(
            StoreError::Unavailable(_) | StoreError::CommitUnknown(_) | StoreError::RootKeyChanged,
        ) => StatusCode::SERVICE_UNAVAILABLE,
        KmsError::RootKek(_) | KmsError::Crypto(_) | KmsError::Store(StoreError::Corrupt(_)) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header::RETRY_AFTER;
    use axum::response::IntoResponse;
    use fipsguard_core::KmsError;

    use super::ApiError;

    #[test]
    fn a_5xx_answers_exactly_what_the_core_calls_a_service_failure() {
        use fipsguard_core::auth::Role;
        use fipsguard_core::{DecryptError, KeyState, StoreError};
        use fipsguard_crypto::Error as Crypto;
        let name = || "k".to_owned();
        let held = || (name(), "the audit log".to_owned());
        for error in [
            KmsError::KeyNotFound(name()),
            KmsError::TokenNotFound(name()),
            KmsError::KeyExists(name()),
            KmsError::LastOfficerToken,
            KmsError::VersionNotFound {
                name: name(),
                version: 2,
            },
            KmsError::InvalidRequest(name()),
            KmsError::IllegalTransition {
                name: name(),
                from: KeyState::Destroyed,
                to: KeyState::Active,
            },
            KmsError::StateForbids {
                name: name(),
                state: KeyState::Deactivated,
                operation: "encrypt",
            },
            KmsError::Unauthenticated,
            KmsError::TokenLookupsBusy,
            KmsError::Forbidden {
                role: Role::Auditor,
                operation: "encrypt".into(),
                key: None,
            },
            KmsError::WrongKeyType {
                name: name(),
                key_type: "aes256-gcm",
                operation: "sign",
            },
            KmsError::Decrypt(DecryptError::Tampered),
            KmsError::EncryptionLimit {
                name: name(),
                version: 1,
                limit: 1,
            },
            KmsError::VersionsExhausted(name()),
            KmsError::DestructionHeld {
                name: held().0,
                why: held().1,
            },
            KmsError::RotationHeld {
                name: held().0,
                why: held().1,
            },
            KmsError::RootKek(name()),
            KmsError::Crypto(Crypto::InvalidInput("x")),
            KmsError::Crypto(Crypto::InvalidKey("x")),
            KmsError::Crypto(Crypto::VerificationFailed),
            KmsError::Crypto(Crypto::AuthenticationFailed),
            KmsError::Crypto(Crypto::ErrorState {
                failed_test: name(),
            }),
            KmsError::Store(StoreError::Unavailable(name())),
            KmsError::Store(StoreError::Conflict(name())),
            KmsError::Store(StoreError::Corrupt(name())),
            KmsError::Store(StoreError::RootKeyChanged),
            KmsError::Store(StoreError::CommitUnknown(name())),
        ] {
            assert_eq!(
                super::status_of(&error).is_server_error(),
                error.is_service_failure(),
                "{error:?}"
            );
        }
    }

    #[test]
    fn a_busy_refusal_says_when_to_try_again() {
        let busy = ApiError::from(KmsError::TokenLookupsBusy).into_response();
        assert_eq!(busy.status(), 429);
        assert_eq!(busy.headers()[RETRY_AFTER], "1");
        let refused = ApiError::from(KmsError::Unauthenticated).into_response();
        assert!(refused.headers().get(RETRY_AFTER).is_none());
    }
}
