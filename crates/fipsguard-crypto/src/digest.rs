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
    /// The hashes a digest may be signed with (SHA-2, FIPS 186-5).
    pub const FOR_SIGNING: [Self; 3] = [Self::Sha256, Self::Sha384, Self::Sha512];

    /// The hash of [`Self::FOR_SIGNING`] with this registry name.
    pub fn for_signing(name: &str) -> Option<Self> {
        Self::FOR_SIGNING.into_iter().find(|h| h.name() == name)
    }

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

/// A hash computed over data that arrives in pieces (a file of any size).
pub struct Hasher(digest::Context);

impl Hasher {
    /// Starts a hash.
    pub fn new(algorithm: HashAlgorithm) -> Result<Self, Error> {
        ensure_operational()?;
        Ok(Self(digest::Context::new(algorithm.aws_lc())))
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything added.
    pub fn finish(self) -> Result<Vec<u8>, Error> {
        ensure_operational()?;
        Ok(self.0.finish().as_ref().to_vec())
    }
}

/// So that `std::io::copy` can feed a hash from any reader.
impl std::io::Write for Hasher {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.update(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
