//! Encryption context: caller-supplied key/value pairs bound to a
//! ciphertext through the AEAD's additional data. Not secret (it is logged
//! and fingerprinted), so it must not carry sensitive values.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use fipsguard_crypto::digest::{digest_parts, HashAlgorithm};
use fipsguard_crypto::module;

use crate::error::{KmsError, Result};

/// Most pairs a context may hold.
pub const MAX_PAIRS: usize = 64;
/// Longest key or value, in bytes.
pub const MAX_FIELD_LEN: usize = 256;

/// An encryption context, held sorted so its encoding is canonical, and
/// within the limits (made only by [`new`](Self::new)), so every length
/// fits the encoding's two bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// Validates `pairs` against the size limits.
    pub fn new(pairs: BTreeMap<String, String>) -> Result<Self> {
        if pairs.len() > MAX_PAIRS {
            return Err(KmsError::InvalidRequest(format!(
                "an encryption context holds at most {MAX_PAIRS} pairs"
            )));
        }
        if pairs
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > MAX_FIELD_LEN || v.len() > MAX_FIELD_LEN)
        {
            return Err(KmsError::InvalidRequest(format!(
                "encryption context keys are 1-{MAX_FIELD_LEN} bytes and values at most {MAX_FIELD_LEN} bytes"
            )));
        }
        Ok(Self(pairs))
    }

    /// The empty context.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The pairs.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Length-prefixed encoding of the sorted pairs: unambiguous, so two
    /// different contexts never encode alike.
    pub(crate) fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in &self.0 {
            for field in [key, value] {
                let len = u16::try_from(field.len()).expect("at most MAX_FIELD_LEN");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(field.as_bytes());
            }
        }
        out
    }

    /// A short public fingerprint stored in the ciphertext, so a decrypt
    /// with the wrong context is reported as such rather than as tampering.
    pub(crate) fn fingerprint(&self) -> Result<[u8; 8]> {
        // Most requests carry no context: its fingerprint is hashed once,
        // and given while the module is operational, as a hash would be.
        static EMPTY: OnceLock<[u8; 8]> = OnceLock::new();
        let empty = self.0.is_empty();
        let operational = || matches!(module::state(), module::State::Operational);
        if let Some(fingerprint) = EMPTY.get().filter(|_| empty && operational()) {
            return Ok(*fingerprint);
        }
        let hash = digest_parts(
            HashAlgorithm::Sha256,
            &[b"fipsguard/context/v1\0", &self.canonical()],
        )?;
        let fingerprint = hash[..8].try_into().expect("SHA-256 is 32 bytes");
        if empty {
            let _ = EMPTY.set(fingerprint);
        }
        Ok(fingerprint)
    }
}

impl TryFrom<BTreeMap<String, String>> for EncryptionContext {
    type Error = KmsError;

    fn try_from(pairs: BTreeMap<String, String>) -> Result<Self> {
        Self::new(pairs)
    }
}
