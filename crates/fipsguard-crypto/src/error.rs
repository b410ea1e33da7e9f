//! The boundary's error vocabulary.
//!
//! Every refusal names the rule it enforces and the standard behind it, so an
//! operator reading a log line (or an auditor reading an audit record) knows
//! why without reading code. No variant ever carries key material, plaintext
//! or a passphrase: messages are built from static text and public
//! parameters only.

use std::fmt;

/// An error from the module boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request asked for an algorithm, parameter or use that is not an
    /// approved service of this module. Nothing was computed.
    #[error("{0}")]
    NotApproved(Refusal),

    /// The module is in its error state because a self-test failed; every
    /// cryptographic service is refused until a restart passes the power-up
    /// self-tests (FIPS 140-3 section 7.10.1).
    #[error("the cryptographic module is in its error state (self-test {failed_test} failed); all cryptographic services are refused until a restart passes the power-up self-tests")]
    ErrorState {
        /// Name of the first self-test that failed.
        failed_test: String,
    },

    /// A freshly generated asymmetric key failed its pairwise consistency
    /// test (FIPS 140-3 IG 10.3.A); the key was discarded and the module
    /// entered its error state.
    #[error("pairwise consistency test failed for a new {algorithm} key; the key was discarded and the module entered its error state")]
    PairwiseConsistency {
        /// The key type whose test failed.
        algorithm: &'static str,
    },

    /// Authenticated decryption or unwrapping failed: wrong key, wrong
    /// additional data, or modified or truncated input. Nothing is released.
    #[error("authentication failed: the data was not produced by this key with this context, or it was modified or truncated")]
    AuthenticationFailed,

    /// A signature or MAC did not verify.
    #[error("verification failed: the signature or tag does not match the message and key")]
    VerificationFailed,

    /// Key bytes or an encoding could not be parsed or did not describe an
    /// acceptable key.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),

    /// An input had the wrong length or shape.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),

    /// The module reported an internal failure it did not explain.
    #[error("the cryptographic module reported an unspecified failure during {0}")]
    Module(&'static str),
}

/// The rule a refused request broke. Each variant's message names the rule
/// and the standard that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// MD5 is not an approved hash function.
    Md5,
    /// SHA-1 may not be used to generate or verify digital signatures.
    Sha1Signatures,
    /// RSA modulus below 2048 bits.
    RsaKeyTooSmall,
    /// RSA modulus sizes other than 2048, 3072 and 4096 bits.
    RsaKeySizeNotOffered {
        /// The modulus size asked for.
        bits: u32,
    },
    /// RSA encryption (OAEP or PKCS#1 v1.5) is not an approved service here.
    RsaEncryption,
    /// Triple-DES encryption is no longer approved.
    TripleDes,
    /// RC4 was never approved.
    Rc4,
    /// ChaCha20-Poly1305 is not an approved AEAD.
    ChaCha20Poly1305,
    /// The P-192 curve is below the approved security strength.
    P192,
    /// X25519 key agreement is not approved (SP 800-56A lists no Montgomery curves).
    X25519,
    /// HMAC key below 112 bits.
    HmacKeyTooShort {
        /// The key length given, in bits.
        bits: usize,
    },
    /// ECB mode is not offered: it leaks plaintext structure.
    AesEcb,
    /// AES keys other than 256 bits are not offered for data encryption.
    AesKeySizeNotOffered,
    /// AES-GCM IV of a length other than 96 bits.
    GcmIvLength,
    /// AES-GCM tags shorter than 128 bits are not offered.
    GcmTagLength,
    /// A MAC tag shorter than the full output of its hash function.
    TruncatedTag,
    /// PBKDF2 with fewer than 1000 iterations.
    Pbkdf2Iterations {
        /// The iteration count given.
        iterations: u32,
    },
    /// PBKDF2 salt below 128 bits.
    Pbkdf2SaltTooShort {
        /// The salt length given, in bits.
        bits: usize,
    },
    /// PBKDF2 password below 14 bytes.
    Pbkdf2PasswordTooShort,
    /// PBKDF2 derived key below 112 bits.
    Pbkdf2OutputTooShort,
    /// HKDF with an empty salt.
    HkdfEmptySalt,
    /// A TLS certificate key other than RSA >= 2048 or ECDSA P-256/P-384.
    TlsKeyNotOffered,
    /// Signing a pre-computed digest with Ed25519 (Ed25519ph is not offered).
    PrehashNotOffered,
    /// A hash function fipsguard does not offer for this use.
    HashNotOffered,
    /// An algorithm name fipsguard does not know.
    Unknown,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Md5 => f.write_str("MD5 is not an approved hash function (FIPS 180-4 and FIPS 202 list the approved ones)"),
            Self::Sha1Signatures => f.write_str("SHA-1 is not approved for digital signature generation (SP 800-131A Rev. 2, section 9); its legacy use for verification is not offered"),
            Self::RsaKeyTooSmall => f.write_str("RSA keys below 2048 bits are not approved (SP 800-131A Rev. 2, section 3)"),
            Self::RsaKeySizeNotOffered { bits } => write!(f, "RSA modulus of {bits} bits is not offered; use 2048, 3072 or 4096 (FIPS 186-5, section 5.1)"),
            Self::RsaEncryption => f.write_str("RSA encryption (OAEP or PKCS#1 v1.5) is not an approved service of this module; use AES-256-GCM, or ML-KEM for key establishment (module security policy; SP 800-56B is not claimed)"),
            Self::TripleDes => f.write_str("DES and Triple-DES are not approved for encryption (SP 800-131A Rev. 2, section 2: TDEA encryption disallowed after 2023; SP 800-67 Rev. 2 withdrawn)"),
            Self::Rc4 => f.write_str("RC4 is not an approved cipher (it is absent from SP 800-140C, the list of approved security functions)"),
            Self::ChaCha20Poly1305 => f.write_str("ChaCha20-Poly1305 is not an approved AEAD; use AES-256-GCM (SP 800-38D)"),
            Self::P192 => f.write_str("curve P-192 gives less than 112 bits of security and is not approved for ECDSA or key agreement (SP 800-186, section 3.2.1; SP 800-131A Rev. 2)"),
            Self::X25519 => f.write_str("X25519 key agreement is not approved (SP 800-56A Rev. 3 lists only NIST prime curves); use ML-KEM (FIPS 203)"),
            Self::HmacKeyTooShort { bits } => write!(f, "HMAC keys below 112 bits are not approved (SP 800-131A Rev. 2, section 10; SP 800-107 Rev. 1); got {bits} bits"),
            Self::AesEcb => f.write_str("AES-ECB is not offered for data encryption: it reveals plaintext patterns; use AES-256-GCM (SP 800-38D)"),
            Self::AesKeySizeNotOffered => f.write_str("only 256-bit AES keys are offered (FIPS 197; CNSA 2.0 strength)"),
            Self::GcmIvLength => f.write_str("AES-GCM IVs must be 96 bits (SP 800-38D, section 8.2)"),
            Self::GcmTagLength => f.write_str("AES-GCM tags shorter than 128 bits are not offered (SP 800-38D, section 5.2.1.2 and appendix C)"),
            Self::TruncatedTag => f.write_str("truncated MAC tags are not offered: tags are the full HMAC output (SP 800-107 Rev. 1, section 5.3.3)"),
            Self::Pbkdf2Iterations { iterations } => write!(f, "PBKDF2 needs at least 1000 iterations (SP 800-132, section 5.2); got {iterations}"),
            Self::Pbkdf2SaltTooShort { bits } => write!(f, "PBKDF2 salt must be at least 128 bits (SP 800-132, section 5.1); got {bits} bits"),
            Self::Pbkdf2PasswordTooShort => f.write_str("PBKDF2 passwords must be at least 14 bytes (SP 800-132 with FIPS 140-3 IG D.N)"),
            Self::Pbkdf2OutputTooShort => f.write_str("PBKDF2 derived keys must be at least 112 bits (SP 800-132, section 5.3; IG D.N)"),
            Self::HkdfEmptySalt => f.write_str("HKDF with an empty salt is not offered: fipsguard requires a salt for the randomness-extraction step (its policy under SP 800-56C Rev. 2, section 5.1, which would otherwise default to all zeros)"),
            Self::TlsKeyNotOffered => f.write_str("TLS certificate keys must be RSA of 2048 bits or more, or ECDSA on P-256 or P-384 (SP 800-52 Rev. 2, section 3.3.2; other curves are not offered)"),
            Self::PrehashNotOffered => f.write_str("Ed25519 signs the message itself; pre-hashed Ed25519 (Ed25519ph) is not offered (FIPS 186-5, section 7.8)"),
            Self::HashNotOffered => f.write_str("this hash function is not offered for this use; use SHA-256, SHA-384, SHA-512 (FIPS 180-4) or SHA3-256 (FIPS 202)"),
            Self::Unknown => f.write_str("unknown algorithm: not in fipsguard's approved-algorithm registry (`fipsguard algorithms` lists it)"),
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        Error::NotApproved(refusal)
    }
}

impl Refusal {
    /// A stable identifier for the rule, for metrics labels and API error codes.
    pub fn rule_id(&self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha1Signatures => "sha1-signatures",
            Self::RsaKeyTooSmall => "rsa-key-too-small",
            Self::RsaKeySizeNotOffered { .. } => "rsa-key-size-not-offered",
            Self::RsaEncryption => "rsa-encryption",
            Self::TripleDes => "3des",
            Self::Rc4 => "rc4",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
            Self::P192 => "p192",
            Self::X25519 => "x25519",
            Self::HmacKeyTooShort { .. } => "hmac-key-too-short",
            Self::AesEcb => "aes-ecb",
            Self::AesKeySizeNotOffered => "aes-key-size-not-offered",
            Self::GcmIvLength => "gcm-iv-length",
            Self::GcmTagLength => "gcm-tag-length",
            Self::TruncatedTag => "truncated-tag",
            Self::Pbkdf2Iterations { .. } => "pbkdf2-iterations",
            Self::Pbkdf2SaltTooShort { .. } => "pbkdf2-salt-too-short",
            Self::Pbkdf2PasswordTooShort => "pbkdf2-password-too-short",
            Self::Pbkdf2OutputTooShort => "pbkdf2-output-too-short",
            Self::HkdfEmptySalt => "hkdf-empty-salt",
            Self::TlsKeyNotOffered => "tls-key-not-offered",
            Self::PrehashNotOffered => "prehash-not-offered",
            Self::HashNotOffered => "hash-not-offered",
            Self::Unknown => "unknown-algorithm",
        }
    }
}
