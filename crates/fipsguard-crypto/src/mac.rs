//! HMAC (FIPS 198-1) with SHA-256, SHA-384 and SHA-512.

use std::fmt;

use aws_lc_rs::hmac;

use crate::digest::HashAlgorithm;
use crate::error::{Error, Refusal};
use crate::module::ensure_operational;

/// Shortest approved HMAC key: 112 bits (SP 800-131A Rev. 2, section 10).
pub const MIN_KEY_LEN: usize = 14;

/// The HMAC variants fipsguard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacAlgorithm {
    /// HMAC-SHA-256.
    HmacSha256,
    /// HMAC-SHA-384.
    HmacSha384,
    /// HMAC-SHA-512.
    HmacSha512,
}

impl MacAlgorithm {
    /// The hash function underneath.
    pub fn hash(self) -> HashAlgorithm {
        match self {
            Self::HmacSha256 => HashAlgorithm::Sha256,
            Self::HmacSha384 => HashAlgorithm::Sha384,
            Self::HmacSha512 => HashAlgorithm::Sha512,
        }
    }

    /// Tag length in bytes (the full hash output; truncation is not offered).
    pub fn tag_len(self) -> usize {
        self.hash().output_len()
    }

    fn aws_lc(self) -> hmac::Algorithm {
        match self {
            Self::HmacSha256 => hmac::HMAC_SHA256,
            Self::HmacSha384 => hmac::HMAC_SHA384,
            Self::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

/// An HMAC key of at least 112 bits. Not `Clone`; AWS-LC wipes it on drop.
pub struct MacKey {
    algorithm: MacAlgorithm,
    key: hmac::Key,
}

impl MacKey {
    /// Makes a key; keys shorter than 112 bits are refused.
    pub fn new(algorithm: MacAlgorithm, key_bytes: &[u8]) -> Result<Self, Error> {
        ensure_operational()?;
        if key_bytes.len() < MIN_KEY_LEN {
            return Err(Refusal::HmacKeyTooShort {
                bits: key_bytes.len() * 8,
            }
            .into());
        }
        Ok(Self {
            algorithm,
            key: hmac::Key::new(algorithm.aws_lc(), key_bytes),
        })
    }

    /// The algorithm this key is for.
    pub fn algorithm(&self) -> MacAlgorithm {
        self.algorithm
    }

    /// Computes the tag of `data`.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        ensure_operational()?;
        Ok(hmac::sign(&self.key, data).as_ref().to_vec())
    }

    /// Checks `tag` against `data` in constant time. Tags shorter than the
    /// full output are refused rather than compared as prefixes.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> Result<(), Error> {
        ensure_operational()?;
        if tag.len() < self.algorithm.tag_len() {
            return Err(Refusal::TruncatedTag.into());
        }
        hmac::verify(&self.key, data, tag).map_err(|_| Error::VerificationFailed)
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacKey({:?}, [redacted])", self.algorithm)
    }
}
