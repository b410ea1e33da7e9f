//! ML-KEM key encapsulation (FIPS 203), parameter sets 768 and 1024.

use std::fmt;

use aws_lc_rs::kem::{self, Ciphertext, ML_KEM_1024, ML_KEM_768};

use crate::error::Error;
use crate::fault;
use crate::module::{ensure_operational, enter_error_state};
use crate::secret::{constant_time_eq, SecretBytes};

/// The ML-KEM parameter sets fipsguard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KemAlgorithm {
    /// ML-KEM-768 (security category 3).
    MlKem768,
    /// ML-KEM-1024 (security category 5).
    MlKem1024,
}

impl KemAlgorithm {
    /// The registry name, e.g. `ml-kem-768`.
    pub fn name(self) -> &'static str {
        match self {
            Self::MlKem768 => "ml-kem-768",
            Self::MlKem1024 => "ml-kem-1024",
        }
    }

    fn aws_lc(self) -> &'static kem::Algorithm {
        match self {
            Self::MlKem768 => &ML_KEM_768,
            Self::MlKem1024 => &ML_KEM_1024,
        }
    }
}

/// An ML-KEM decapsulation (private) key. Not `Clone`; AWS-LC wipes it on
/// drop.
pub struct DecapsulationKey {
    algorithm: KemAlgorithm,
    key: kem::DecapsulationKey,
    // AWS-LC cannot derive the public half of an imported decapsulation
    // key, so the pair travels together.
    encapsulation_key: Vec<u8>,
}

impl DecapsulationKey {
    /// Generates a key pair and runs the pairwise consistency test
    /// (encapsulate to the new key, decapsulate, compare) before returning.
    pub fn generate(algorithm: KemAlgorithm) -> Result<Self, Error> {
        ensure_operational()?;
        let key = kem::DecapsulationKey::generate(algorithm.aws_lc())
            .map_err(|_| Error::Module("ML-KEM key generation"))?;
        let encapsulation_key = key
            .encapsulation_key()
            .and_then(|ek| ek.key_bytes().map(|b| b.as_ref().to_vec()))
            .map_err(|_| Error::Module("ML-KEM encapsulation key encoding"))?;
        let key = Self {
            algorithm,
            key,
            encapsulation_key,
        };
        key.pairwise_consistency_test()?;
        Ok(key)
    }

    /// Imports a key pair in its FIPS 203 encodings. The two halves must
    /// belong together: a fresh encapsulation must round-trip through them.
    pub fn from_bytes(
        algorithm: KemAlgorithm,
        decapsulation_key: &[u8],
        encapsulation_key: &[u8],
    ) -> Result<Self, Error> {
        ensure_operational()?;
        let key =
            kem::DecapsulationKey::new(algorithm.aws_lc(), decapsulation_key).map_err(|_| {
                Error::InvalidKey("not an ML-KEM decapsulation key of this parameter set")
            })?;
        let key = Self {
            algorithm,
            key,
            encapsulation_key: encapsulation_key.to_vec(),
        };
        // A mismatched pair is bad input, not a module failure.
        match key.halves_agree()? {
            true => Ok(key),
            false => Err(Error::InvalidKey(
                "the encapsulation key does not belong to the decapsulation key",
            )),
        }
    }

    /// The parameter set.
    pub fn algorithm(&self) -> KemAlgorithm {
        self.algorithm
    }

    /// The decapsulation key in its FIPS 203 encoding, to be wrapped for storage.
    pub fn to_bytes(&self) -> Result<SecretBytes, Error> {
        ensure_operational()?;
        self.key
            .key_bytes()
            .map(|b| SecretBytes::copy_from(b.as_ref()))
            .map_err(|_| Error::Module("ML-KEM key encoding"))
    }

    /// The matching encapsulation (public) key.
    pub fn encapsulation_key(&self) -> Result<&[u8], Error> {
        ensure_operational()?;
        Ok(&self.encapsulation_key)
    }

    /// Recovers the shared secret from `ciphertext`. (ML-KEM rejects
    /// implicitly: a modified ciphertext yields an unrelated secret.)
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<SecretBytes, Error> {
        ensure_operational()?;
        self.key
            .decapsulate(Ciphertext::from(ciphertext))
            .map(|s| SecretBytes::copy_from(s.as_ref()))
            .map_err(|_| Error::InvalidInput("ML-KEM ciphertext has the wrong length"))
    }

    /// Encapsulates to the public half and decapsulates with the private
    /// half; the two secrets must agree.
    fn halves_agree(&self) -> Result<bool, Error> {
        let (ciphertext, sent) = encapsulate(self.algorithm, &self.encapsulation_key)?;
        let received = self.decapsulate(&ciphertext)?;
        Ok(constant_time_eq(
            received.expose_secret(),
            sent.expose_secret(),
        ))
    }

    /// The pairwise consistency test on a generated key (FIPS 140-3 IG
    /// 10.3.A): a failure means the module is broken, so it stops.
    fn pairwise_consistency_test(&self) -> Result<(), Error> {
        match self.halves_agree() {
            Ok(true) if !fault::injected("pct") => return Ok(()),
            Err(refused @ Error::ErrorState { .. }) => return Err(refused),
            _ => {}
        }
        enter_error_state(&format!("pct-{}", self.algorithm.name()));
        Err(Error::PairwiseConsistency {
            algorithm: self.algorithm.name(),
        })
    }
}

impl fmt::Debug for DecapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DecapsulationKey({}, [redacted])", self.algorithm.name())
    }
}

/// Encapsulates a fresh shared secret to `encapsulation_key`; returns the
/// ciphertext to send and the secret to keep.
pub fn encapsulate(
    algorithm: KemAlgorithm,
    encapsulation_key: &[u8],
) -> Result<(Vec<u8>, SecretBytes), Error> {
    ensure_operational()?;
    let ek = kem::EncapsulationKey::new(algorithm.aws_lc(), encapsulation_key)
        .map_err(|_| Error::InvalidKey("not an ML-KEM encapsulation key of this parameter set"))?;
    let (ct, secret) = ek
        .encapsulate()
        .map_err(|_| Error::Module("ML-KEM encapsulation"))?;
    Ok((
        ct.as_ref().to_vec(),
        SecretBytes::copy_from(secret.as_ref()),
    ))
}
