//! Digital signatures (FIPS 186-5): ECDSA P-256/P-384, RSA-PSS and
//! RSA PKCS#1 v1.5 with 2048-4096-bit keys, and Ed25519.
//!
//! Keys are generated inside the module and pass a pairwise consistency
//! test before they are returned (FIPS 140-3 IG 10.3.A). Public keys travel
//! as X.509 SubjectPublicKeyInfo DER; ECDSA signatures are ASN.1 DER.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

use crate::digest::HashAlgorithm;
use crate::error::{Error, Refusal};
use crate::fault;
use crate::module::{ensure_operational, enter_error_state};
use crate::secret::SecretBytes;

/// The kinds of signing key fipsguard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningKeyType {
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
    /// Ed25519 (FIPS 186-5 EdDSA).
    Ed25519,
}

impl SigningKeyType {
    /// The RSA key type of `bits`; sizes below 2048 bits are refused, other
    /// sizes are not offered.
    pub fn rsa(bits: u32) -> Result<Self, Error> {
        match bits {
            2048 => Ok(Self::Rsa2048),
            3072 => Ok(Self::Rsa3072),
            4096 => Ok(Self::Rsa4096),
            b if b < 2048 => Err(Refusal::RsaKeyTooSmall.into()),
            bits => Err(Refusal::RsaKeySizeNotOffered { bits }.into()),
        }
    }

    /// The registry name, e.g. `ecdsa-p256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
            Self::Ed25519 => "ed25519",
        }
    }

    fn rsa_bits(self) -> Option<u32> {
        match self {
            Self::Rsa2048 => Some(2048),
            Self::Rsa3072 => Some(3072),
            Self::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// The scheme the pairwise consistency test signs with.
    fn consistency_scheme(self) -> SignatureScheme {
        match self {
            Self::EcdsaP256 => SignatureScheme::EcdsaP256Sha256,
            Self::EcdsaP384 => SignatureScheme::EcdsaP384Sha384,
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => SignatureScheme::RsaPssSha256,
            Self::Ed25519 => SignatureScheme::Ed25519,
        }
    }
}

/// A signature scheme: key type, hash and padding together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureScheme {
    /// ECDSA P-256 with SHA-256, DER signature.
    EcdsaP256Sha256,
    /// ECDSA P-384 with SHA-384, DER signature.
    EcdsaP384Sha384,
    /// RSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt.
    RsaPssSha256,
    /// RSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt.
    RsaPssSha384,
    /// RSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt.
    RsaPssSha512,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSA PKCS#1 v1.5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSA PKCS#1 v1.5 with SHA-512.
    RsaPkcs1Sha512,
    /// Ed25519 (pure).
    Ed25519,
}

impl SignatureScheme {
    /// Every scheme offered, in registry order.
    pub const ALL: [SignatureScheme; 9] = [
        Self::EcdsaP256Sha256,
        Self::EcdsaP384Sha384,
        Self::RsaPssSha256,
        Self::RsaPssSha384,
        Self::RsaPssSha512,
        Self::RsaPkcs1Sha256,
        Self::RsaPkcs1Sha384,
        Self::RsaPkcs1Sha512,
        Self::Ed25519,
    ];

    /// The registry name, e.g. `rsa-pss-sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Self::EcdsaP384Sha384 => "ecdsa-p384-sha384",
            Self::RsaPssSha256 => "rsa-pss-sha256",
            Self::RsaPssSha384 => "rsa-pss-sha384",
            Self::RsaPssSha512 => "rsa-pss-sha512",
            Self::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            Self::RsaPkcs1Sha384 => "rsa-pkcs1-sha384",
            Self::RsaPkcs1Sha512 => "rsa-pkcs1-sha512",
            Self::Ed25519 => "ed25519",
        }
    }

    /// The hash the scheme signs with; `None` for Ed25519, which hashes
    /// inside the signature algorithm and cannot sign a digest.
    pub fn hash(self) -> Option<HashAlgorithm> {
        match self {
            Self::EcdsaP256Sha256 | Self::RsaPssSha256 | Self::RsaPkcs1Sha256 => {
                Some(HashAlgorithm::Sha256)
            }
            Self::EcdsaP384Sha384 | Self::RsaPssSha384 | Self::RsaPkcs1Sha384 => {
                Some(HashAlgorithm::Sha384)
            }
            Self::RsaPssSha512 | Self::RsaPkcs1Sha512 => Some(HashAlgorithm::Sha512),
            Self::Ed25519 => None,
        }
    }

    /// Reads a caller's pre-computed digest for this scheme: it must be of
    /// the scheme's hash and of that hash's length.
    fn digest(self, digest: &[u8]) -> Result<aws_lc_rs::digest::Digest, Error> {
        let hash = self.hash().ok_or(Refusal::PrehashNotOffered)?;
        aws_lc_rs::digest::Digest::import_less_safe(digest, hash.aws_lc())
            .map_err(|_| Error::InvalidInput("the digest length does not match the scheme's hash"))
    }

    /// Whether a key of `key_type` can make this kind of signature.
    pub fn fits(self, key_type: SigningKeyType) -> bool {
        use SigningKeyType as K;
        match self {
            Self::EcdsaP256Sha256 => key_type == K::EcdsaP256,
            Self::EcdsaP384Sha384 => key_type == K::EcdsaP384,
            Self::Ed25519 => key_type == K::Ed25519,
            _ => key_type.rsa_bits().is_some(),
        }
    }

    fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            Self::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
            Self::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
            Self::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::RsaPssSha384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::RsaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
            Self::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::RsaPkcs1Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::RsaPkcs1Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::Ed25519 => &signature::ED25519,
        }
    }

    fn rsa_encoding(self) -> Option<&'static dyn signature::RsaEncoding> {
        match self {
            Self::RsaPssSha256 => Some(&signature::RSA_PSS_SHA256),
            Self::RsaPssSha384 => Some(&signature::RSA_PSS_SHA384),
            Self::RsaPssSha512 => Some(&signature::RSA_PSS_SHA512),
            Self::RsaPkcs1Sha256 => Some(&signature::RSA_PKCS1_SHA256),
            Self::RsaPkcs1Sha384 => Some(&signature::RSA_PKCS1_SHA384),
            Self::RsaPkcs1Sha512 => Some(&signature::RSA_PKCS1_SHA512),
            _ => None,
        }
    }
}

enum KeyPairInner {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private signing key. Not `Clone`; `Debug` shows only its type; AWS-LC
/// wipes the key when it drops.
pub struct SigningKey {
    key_type: SigningKeyType,
    inner: KeyPairInner,
}

impl SigningKey {
    /// Generates a key inside the module and runs the pairwise consistency
    /// test on it before returning it. A failed test discards the key and
    /// puts the module into its error state.
    pub fn generate(key_type: SigningKeyType) -> Result<Self, Error> {
        ensure_operational()?;
        let inner = match key_type {
            SigningKeyType::EcdsaP256 | SigningKeyType::EcdsaP384 => {
                EcdsaKeyPair::generate(ecdsa_signing(key_type)).map(KeyPairInner::Ecdsa)
            }
            SigningKeyType::Rsa2048 => {
                RsaKeyPair::generate(KeySize::Rsa2048).map(KeyPairInner::Rsa)
            }
            SigningKeyType::Rsa3072 => {
                RsaKeyPair::generate(KeySize::Rsa3072).map(KeyPairInner::Rsa)
            }
            SigningKeyType::Rsa4096 => {
                RsaKeyPair::generate(KeySize::Rsa4096).map(KeyPairInner::Rsa)
            }
            SigningKeyType::Ed25519 => Ed25519KeyPair::generate().map(KeyPairInner::Ed25519),
        }
        .map_err(|_| Error::Module("key generation"))?;
        let key = Self { key_type, inner };
        key.pairwise_consistency_test()?;
        Ok(key)
    }

    /// Imports a PKCS#8 private key of the given type. RSA keys below 2048
    /// bits are refused; a key of another type or size is invalid.
    pub fn from_pkcs8(key_type: SigningKeyType, pkcs8: &[u8]) -> Result<Self, Error> {
        ensure_operational()?;
        let inner = match key_type {
            SigningKeyType::EcdsaP256 | SigningKeyType::EcdsaP384 => {
                EcdsaKeyPair::from_pkcs8(ecdsa_signing(key_type), pkcs8).map(KeyPairInner::Ecdsa)
            }
            SigningKeyType::Ed25519 => Ed25519KeyPair::from_pkcs8(pkcs8).map(KeyPairInner::Ed25519),
            _ => RsaKeyPair::from_pkcs8(pkcs8).map(KeyPairInner::Rsa),
        }
        // aws-lc-rs names its rejection reasons; "TooSmall" is RSA below 2048.
        .map_err(|rejected| match rejected.description_() {
            "TooSmall" => Error::NotApproved(Refusal::RsaKeyTooSmall),
            _ => Error::InvalidKey("not a PKCS#8 private key of the expected type"),
        })?;
        if let (Some(bits), KeyPairInner::Rsa(rsa)) = (key_type.rsa_bits(), &inner) {
            let actual = rsa.public_modulus_len() * 8;
            if actual < 2048 {
                return Err(Refusal::RsaKeyTooSmall.into());
            }
            if actual != bits as usize {
                return Err(Error::InvalidKey(
                    "RSA modulus size does not match the key type",
                ));
            }
        }
        Ok(Self { key_type, inner })
    }

    /// Builds the RFC 8032 test key from its seed. Only the known-answer
    /// test needs a raw seed; keys otherwise come from `generate` or PKCS#8.
    pub(crate) fn from_ed25519_seed_for_self_test(seed: &[u8]) -> Result<Self, Error> {
        let key = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| Error::InvalidKey("Ed25519 seed rejected by the module"))?;
        Ok(Self {
            key_type: SigningKeyType::Ed25519,
            inner: KeyPairInner::Ed25519(key),
        })
    }

    /// The public key in its raw encoding (the uncompressed point for
    /// ECDSA), as certificate builders want it.
    pub(crate) fn public_key_raw(&self) -> Vec<u8> {
        match &self.inner {
            KeyPairInner::Ecdsa(k) => k.public_key().as_ref().to_vec(),
            KeyPairInner::Rsa(k) => k.public_key().as_ref().to_vec(),
            KeyPairInner::Ed25519(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// The key's type.
    pub fn key_type(&self) -> SigningKeyType {
        self.key_type
    }

    /// The private key as PKCS#8 DER, to be wrapped for storage.
    pub fn to_pkcs8(&self) -> Result<SecretBytes, Error> {
        ensure_operational()?;
        let der = match &self.inner {
            KeyPairInner::Ecdsa(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            KeyPairInner::Rsa(k) => k.as_der().map(|d| d.as_ref().to_vec()),
            KeyPairInner::Ed25519(k) => k.to_pkcs8().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| Error::Module("private key encoding"))?;
        Ok(SecretBytes::new(der))
    }

    /// The public key as X.509 SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>, Error> {
        ensure_operational()?;
        match &self.inner {
            KeyPairInner::Ecdsa(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
            KeyPairInner::Rsa(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
            KeyPairInner::Ed25519(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| Error::Module("public key encoding"))
    }

    /// Signs `message` with `scheme`, which must fit the key's type.
    pub fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, Error> {
        ensure_operational()?;
        if !scheme.fits(self.key_type) {
            return Err(Error::InvalidInput(
                "the signature scheme does not match the key type",
            ));
        }
        let signature = match (&self.inner, scheme.rsa_encoding()) {
            (KeyPairInner::Ecdsa(k), _) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec()),
            (KeyPairInner::Ed25519(k), _) => k.try_sign(message).map(|s| s.as_ref().to_vec()),
            (KeyPairInner::Rsa(k), Some(encoding)) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(encoding, &SystemRandom::new(), message, &mut out)
                    .map(|()| out)
            }
            (KeyPairInner::Rsa(_), None) => {
                unreachable!("fits() admits only RSA schemes for RSA keys")
            }
        };
        signature.map_err(|_| Error::Module("signature generation"))
    }

    /// Signs a digest the caller computed with the scheme's hash (for
    /// messages too large to send). Ed25519 cannot sign digests.
    pub fn sign_digest(&self, scheme: SignatureScheme, digest: &[u8]) -> Result<Vec<u8>, Error> {
        ensure_operational()?;
        if !scheme.fits(self.key_type) {
            return Err(Error::InvalidInput(
                "the signature scheme does not match the key type",
            ));
        }
        let digest = scheme.digest(digest)?;
        let signature = match (&self.inner, scheme.rsa_encoding()) {
            (KeyPairInner::Ecdsa(k), _) => k.sign_digest(&digest).map(|s| s.as_ref().to_vec()),
            (KeyPairInner::Rsa(k), Some(encoding)) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign_digest(encoding, &digest, &mut out).map(|()| out)
            }
            _ => unreachable!("digest() refused Ed25519 and fits() matched the key"),
        };
        signature.map_err(|_| Error::Module("signature generation"))
    }

    /// Signs a fixed message and verifies it with the public key; on failure
    /// the module enters its error state (FIPS 140-3 IG 10.3.A).
    fn pairwise_consistency_test(&self) -> Result<(), Error> {
        const MESSAGE: &[u8] = b"fipsguard pairwise consistency test";
        let scheme = self.key_type.consistency_scheme();
        let passed = self.sign(scheme, MESSAGE).and_then(|mut sig| {
            if fault::injected("pct") {
                sig[0] ^= 1;
            }
            verify(scheme, &self.public_key_der()?, MESSAGE, &sig)
        });
        match passed {
            Ok(()) => Ok(()),
            Err(refused @ Error::ErrorState { .. }) => Err(refused),
            Err(_) => {
                enter_error_state(&format!("pct-{}", self.key_type.name()));
                Err(Error::PairwiseConsistency {
                    algorithm: self.key_type.name(),
                })
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, [redacted])", self.key_type.name())
    }
}

/// Verifies `signature` over `message` with a SubjectPublicKeyInfo DER
/// public key.
pub fn verify(
    scheme: SignatureScheme,
    public_key_der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    ensure_operational()?;
    signature::UnparsedPublicKey::new(scheme.verification(), public_key_der)
        .verify(message, signature)
        .map_err(|_| Error::VerificationFailed)
}

/// Verifies `signature` over a digest computed with the scheme's hash.
pub fn verify_digest(
    scheme: SignatureScheme,
    public_key_der: &[u8],
    digest: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    ensure_operational()?;
    let digest = scheme.digest(digest)?;
    signature::UnparsedPublicKey::new(scheme.verification(), public_key_der)
        .verify_digest(&digest, signature)
        .map_err(|_| Error::VerificationFailed)
}

fn ecdsa_signing(key_type: SigningKeyType) -> &'static signature::EcdsaSigningAlgorithm {
    match key_type {
        SigningKeyType::EcdsaP384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    }
}
