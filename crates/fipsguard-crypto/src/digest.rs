//! Hash functions: SHA-2 (FIPS 180-4) and SHA3-256 (FIPS 202).

use aws_lc_rs::digest;

use crate::error::Error;
use crate::module::ensure_operational;

/// The hash functions fipsguard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// SHA-384 (FIPS 180-4).
    Sha384,
    /// SHA-512 (FIPS 180-4).
    Sha512,
    /// SHA3-256 (FIPS 202).
    Sha3_256,
}

impl HashAlgorithm {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        self.aws_lc().output_len()
    }

    /// The registry name, e.g. `sha-256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha-256",
            Self::Sha384 => "sha-384",
            Self::Sha512 => "sha-512",
            Self::Sha3_256 => "sha3-256",
        }
    }

    pub(crate) fn aws_lc(self) -> &'static digest::Algorithm {
        match self {
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
            Self::Sha3_256 => &digest::SHA3_256,
        }
    }
}

/// Hashes `data` in one call.
pub fn digest(algorithm: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>, Error> {
    digest_parts(algorithm, &[data])
}

/// Hashes the concatenation of `parts` without copying them together.
pub fn digest_parts(algorithm: HashAlgorithm, parts: &[&[u8]]) -> Result<Vec<u8>, Error> {
    ensure_operational()?;
    let mut context = digest::Context::new(algorithm.aws_lc());
    for part in parts {
        context.update(part);
    }
    Ok(context.finish().as_ref().to_vec())
}
