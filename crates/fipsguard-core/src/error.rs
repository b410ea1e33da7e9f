//! The key management error vocabulary. Every variant says what went wrong
//! in terms an operator can act on; none carries plaintext, key material or
//! a passphrase (key names, versions and states are not secret).

use crate::lifecycle::KeyState;
use crate::store::StoreError;

/// An error from a key management operation.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// No key has this name.
    #[error("key {0:?} does not exist")]
    KeyNotFound(String),
    /// No token has this id, or it is revoked already.
    #[error("no active token has the id {0:?}")]
    TokenNotFound(String),
    /// A key with this name exists already.
    #[error("key {0:?} already exists")]
    KeyExists(String),
    /// Revoking this token would leave no live officer token.
    #[error("this is the last live officer token: create another officer token before revoking it, as no officer token could be made again")]
    LastOfficerToken,
    /// The key exists but has no such version.
    #[error("key {name:?} has no version {version}")]
    VersionNotFound {
        /// The key.
        name: String,
        /// The version asked for.
        version: u32,
    },
    /// The request broke a rule about its shape (a name, a size, a range).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The lifecycle does not allow this transition (SP 800-57 Part 1, 7.3).
    #[error("key {name:?} cannot go from {from} to {to} (SP 800-57 Part 1 lifecycle)")]
    IllegalTransition {
        /// The key.
        name: String,
        /// Its current state.
        from: KeyState,
        /// The state asked for.
        to: KeyState,
    },
    /// The key's state does not allow this operation.
    #[error("key {name:?} is {state}: {operation} is not allowed in that state")]
    StateForbids {
        /// The key.
        name: String,
        /// Its state.
        state: KeyState,
        /// The operation refused.
        operation: &'static str,
    },
    /// No valid token was presented (missing, malformed, unknown, expired or
    /// revoked: the caller is not told which).
    #[error("authentication required: present a valid bearer token")]
    Unauthenticated,
    /// Too many tokens this node has not seen are being looked up at once
    /// (a flood of guesses, most likely): refused without a store read.
    #[error("too many tokens new to this node are being checked at once; try again shortly")]
    TokenLookupsBusy,
    /// The caller's role or grants do not allow this.
    #[error("the {role} role may not {operation}{}", key.as_ref().map(|k| format!(" on key {k:?}")).unwrap_or_default())]
    Forbidden {
        /// The caller's role.
        role: crate::auth::Role,
        /// What was refused.
        operation: String,
        /// The key, if the operation concerns one.
        key: Option<String>,
    },
    /// The key's type does not offer this operation.
    #[error("key {name:?} is of type {key_type}, which cannot {operation}")]
    WrongKeyType {
        /// The key.
        name: String,
        /// Its type.
        key_type: &'static str,
        /// The operation refused.
        operation: &'static str,
    },
    /// A ciphertext could not be decrypted; the reason says why.
    #[error("cannot decrypt: {0}")]
    Decrypt(#[from] DecryptError),
    /// The key version reached the SP 800-38D limit on random-IV encryptions
    /// and could not rotate.
    #[error("key {name:?} version {version} has reached its limit of {limit} encryptions (SP 800-38D, 8.3) and rotation failed; rotate the key")]
    EncryptionLimit {
        /// The key.
        name: String,
        /// The exhausted version.
        version: u32,
        /// The limit.
        limit: u64,
    },
    /// The key has as many versions as a key can have: it cannot be
    /// rotated, nor encrypt past its newest version's limit.
    #[error("key {0:?} has {max} versions, the most a key can have; create a new key", max = u32::MAX)]
    VersionsExhausted(String),
    /// The key's scheduled destruction is due but held: what records it
    /// (the audit log) could not. The key is refused until it goes ahead.
    #[error("key {name:?} is due for destruction, which is held until it can be recorded: {why}")]
    DestructionHeld {
        /// The key.
        name: String,
        /// Why it is held.
        why: String,
    },
    /// The key's version reached its encryption limit and the key must
    /// rotate, which is held until it can be recorded: what records it
    /// (the audit log) could not.
    #[error("key {name:?} reached its encryption limit; its rotation is held until it can be recorded: {why}")]
    RotationHeld {
        /// The key.
        name: String,
        /// Why it is held.
        why: String,
    },
    /// The root key-encryption key is missing, wrong or unusable.
    #[error("root key-encryption key: {0}")]
    RootKek(String),
    /// The cryptographic boundary refused or failed.
    #[error(transparent)]
    Crypto(#[from] fipsguard_crypto::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a ciphertext did not decrypt. Each cause has its own variant so that
/// callers and metrics can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// Not a fipsguard ciphertext, or cut short.
    #[error("malformed ciphertext: {0}")]
    Malformed(&'static str),
    /// A fipsguard ciphertext of a format this build does not know.
    #[error("unsupported ciphertext format {0}")]
    UnsupportedFormat(u8),
    /// The ciphertext was made under a different key.
    #[error("the ciphertext belongs to key {actual:?}, not {expected:?}")]
    WrongKey {
        /// The key asked to decrypt.
        expected: String,
        /// The key named in the ciphertext.
        actual: String,
    },
    /// The encryption context given differs from the one used to encrypt.
    #[error("the encryption context does not match the one the data was encrypted with")]
    ContextMismatch,
    /// The key version is below the key's minimum decryption version.
    #[error("key version {version} is below the minimum decryption version {min}")]
    VersionTooOld {
        /// The ciphertext's version.
        version: u32,
        /// The key's minimum.
        min: u32,
    },
    /// The key version's material was destroyed.
    #[error("key version {0} has been destroyed")]
    VersionDestroyed(u32),
    /// Authentication failed: the ciphertext was modified.
    #[error("authentication failed: the ciphertext was modified or corrupted")]
    Tampered,
}

impl KmsError {
    /// Whether the service failed (its store, its root key, the module),
    /// not the request: it did nothing, and is to be tried again. What
    /// APIs answer with a 5xx.
    pub fn is_service_failure(&self) -> bool {
        use fipsguard_crypto::Error as Crypto;
        match self {
            Self::Crypto(
                Crypto::NotApproved(_)
                | Crypto::InvalidInput(_)
                | Crypto::InvalidKey(_)
                | Crypto::VerificationFailed,
            )
            | Self::Store(StoreError::Conflict(_)) => false,
            Self::Crypto(_)
            | Self::Store(_)
            | Self::RootKek(_)
            | Self::DestructionHeld { .. }
            | Self::RotationHeld { .. } => true,
            Self::KeyNotFound(_)
            | Self::TokenNotFound(_)
            | Self::KeyExists(_)
            | Self::LastOfficerToken
            | Self::VersionNotFound { .. }
            | Self::InvalidRequest(_)
            | Self::IllegalTransition { .. }
            | Self::StateForbids { .. }
            | Self::Unauthenticated
            | Self::TokenLookupsBusy
            | Self::Forbidden { .. }
            | Self::WrongKeyType { .. }
            | Self::Decrypt(_)
            | Self::EncryptionLimit { .. }
            | Self::VersionsExhausted(_) => false,
        }
    }

    /// A stable code for APIs, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyNotFound(_) => "key_not_found",
            Self::TokenNotFound(_) => "token_not_found",
            Self::KeyExists(_) => "key_exists",
            Self::LastOfficerToken => "last_officer_token",
            Self::VersionNotFound { .. } => "version_not_found",
            Self::InvalidRequest(_) => "invalid_request",
            Self::IllegalTransition { .. } => "illegal_transition",
            Self::StateForbids { .. } => "key_state",
            Self::WrongKeyType { .. } => "wrong_key_type",
            Self::Unauthenticated => "unauthenticated",
            Self::TokenLookupsBusy => "token_lookups_busy",
            Self::Forbidden { .. } => "forbidden",
            Self::Decrypt(e) => e.code(),
            Self::EncryptionLimit { .. } => "encryption_limit",
            Self::VersionsExhausted(_) => "versions_exhausted",
            Self::DestructionHeld { .. } => "destruction_held",
            Self::RotationHeld { .. } => "rotation_held",
            Self::RootKek(_) => "root_kek",
            Self::Crypto(fipsguard_crypto::Error::NotApproved(_)) => "not_approved",
            Self::Crypto(fipsguard_crypto::Error::ErrorState { .. }) => "module_error_state",
            Self::Crypto(fipsguard_crypto::Error::VerificationFailed) => "verification_failed",
            Self::Crypto(_) => "crypto_failure",
            Self::Store(StoreError::Unavailable(_)) => "store_unavailable",
            Self::Store(StoreError::Conflict(_)) => "store_conflict",
            Self::Store(StoreError::Corrupt(_)) => "store_corrupt",
            Self::Store(StoreError::RootKeyChanged) => "root_key_changed",
            Self::Store(StoreError::CommitUnknown(_)) => "store_unavailable",
        }
    }
}

impl DecryptError {
    /// A stable code for APIs, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "ciphertext_malformed",
            Self::UnsupportedFormat(_) => "ciphertext_unsupported_format",
            Self::WrongKey { .. } => "ciphertext_wrong_key",
            Self::ContextMismatch => "ciphertext_context_mismatch",
            Self::VersionTooOld { .. } => "ciphertext_version_too_old",
            Self::VersionDestroyed(_) => "ciphertext_version_destroyed",
            Self::Tampered => "ciphertext_tampered",
        }
    }
}

/// The result of a key management operation.
pub type Result<T, E = KmsError> = std::result::Result<T, E>;
