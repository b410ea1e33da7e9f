//! Key types: what a key is for and how its material is made and used.

use std::fmt;
use std::str::FromStr;

use fipsguard_crypto::aead::Aes256GcmKey;
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_crypto::sign::{SignatureScheme, SigningKey, SigningKeyType};
use fipsguard_crypto::{random, SecretBytes};

use crate::error::{KmsError, Result};

/// The types of key the service manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// AES-256-GCM: encrypt/decrypt and data keys.
    Aes256Gcm,
    /// An HMAC key (MAC generate/verify).
    Hmac(MacAlgorithm),
    /// A signing key (sign/verify). RSA is signing-only: RSA encryption is
    /// not an approved service of the module.
    Signing(SigningKeyType),
}

/// What a key type is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Encrypt and decrypt.
    EncryptDecrypt,
    /// Generate and verify MACs.
    GenerateVerifyMac,
    /// Sign and verify.
    SignVerify,
}

impl KeyType {
    /// Every key type, for listings.
    pub const ALL: [KeyType; 10] = [
        Self::Aes256Gcm,
        Self::Hmac(MacAlgorithm::HmacSha256),
        Self::Hmac(MacAlgorithm::HmacSha384),
        Self::Hmac(MacAlgorithm::HmacSha512),
        Self::Signing(SigningKeyType::EcdsaP256),
        Self::Signing(SigningKeyType::EcdsaP384),
        Self::Signing(SigningKeyType::Rsa2048),
        Self::Signing(SigningKeyType::Rsa3072),
        Self::Signing(SigningKeyType::Rsa4096),
        Self::Signing(SigningKeyType::Ed25519),
    ];

    /// The name used in APIs and storage, e.g. `aes256-gcm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes256-gcm",
            Self::Hmac(MacAlgorithm::HmacSha256) => "hmac-sha256",
            Self::Hmac(MacAlgorithm::HmacSha384) => "hmac-sha384",
            Self::Hmac(MacAlgorithm::HmacSha512) => "hmac-sha512",
            Self::Signing(t) => t.name(),
        }
    }

    /// What the type is for.
    pub fn purpose(self) -> Purpose {
        match self {
            Self::Aes256Gcm => Purpose::EncryptDecrypt,
            Self::Hmac(_) => Purpose::GenerateVerifyMac,
            Self::Signing(_) => Purpose::SignVerify,
        }
    }

    /// The signature scheme used when a caller names none.
    pub fn default_scheme(self) -> Option<SignatureScheme> {
        match self {
            Self::Signing(SigningKeyType::EcdsaP256) => Some(SignatureScheme::EcdsaP256Sha256),
            Self::Signing(SigningKeyType::EcdsaP384) => Some(SignatureScheme::EcdsaP384Sha384),
            Self::Signing(SigningKeyType::Ed25519) => Some(SignatureScheme::Ed25519),
            Self::Signing(_) => Some(SignatureScheme::RsaPssSha256),
            _ => None,
        }
    }

    /// Generates new key material inside the module.
    pub(crate) fn generate(self) -> Result<Material> {
        Ok(match self {
            Self::Aes256Gcm => Material {
                secret: random::secret(32)?,
                public_key: None,
            },
            Self::Hmac(alg) => Material {
                secret: random::secret(alg.tag_len())?,
                public_key: None,
            },
            Self::Signing(t) => {
                let key = SigningKey::generate(t)?;
                Material {
                    secret: key.to_pkcs8()?,
                    public_key: Some(key.public_key_der()?),
                }
            }
        })
    }

    /// Turns unwrapped material into a ready-to-use key object.
    pub(crate) fn load(self, secret: &SecretBytes) -> Result<UsableKey> {
        let bytes = secret.expose_secret();
        Ok(match self {
            Self::Aes256Gcm => UsableKey::Aes(Aes256GcmKey::new(bytes)?),
            Self::Hmac(alg) => UsableKey::Mac(Box::new(MacKey::new(alg, bytes)?)),
            Self::Signing(t) => UsableKey::Sign(SigningKey::from_pkcs8(t, bytes)?),
        })
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = KmsError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|t| t.as_str()).collect();
                // What was sent is not repeated: it may be a pasted token.
                KmsError::InvalidRequest(format!(
                    "unknown key type; known types: {}",
                    known.join(", ")
                ))
            })
    }
}

/// Freshly generated key material: the secret part (raw key or PKCS#8) and,
/// for asymmetric keys, the public key (SubjectPublicKeyInfo DER).
pub(crate) struct Material {
    pub secret: SecretBytes,
    pub public_key: Option<Vec<u8>>,
}

/// A key version ready for use: what the cache holds.
pub(crate) enum UsableKey {
    Aes(Aes256GcmKey),
    Mac(Box<MacKey>),
    Sign(SigningKey),
}

impl UsableKey {
    /// The public key (SubjectPublicKeyInfo DER) of an asymmetric key, as
    /// its private key makes it.
    pub(crate) fn public_key(&self) -> Result<Option<Vec<u8>>> {
        match self {
            Self::Sign(key) => Ok(Some(key.public_key_der()?)),
            Self::Aes(_) | Self::Mac(_) => Ok(None),
        }
    }
}
