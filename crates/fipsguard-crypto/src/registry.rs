//! The approved-algorithm registry: what fipsguard exposes, the standard
//! that approves each, and the self-tests that cover it. Everything else is
//! refused by name, with the rule.

use crate::error::{Error, Refusal};

/// One approved service.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ApprovedAlgorithm {
    /// The name callers use, e.g. `aes-256-gcm`.
    pub name: &'static str,
    /// What it is for.
    pub service: &'static str,
    /// The standards that approve it.
    pub standard: &'static str,
    /// The self-tests that cover it (names as in `fipsguard selftest`).
    pub self_tests: &'static [&'static str],
}

const fn approved(
    name: &'static str,
    service: &'static str,
    standard: &'static str,
    self_tests: &'static [&'static str],
) -> ApprovedAlgorithm {
    ApprovedAlgorithm {
        name,
        service,
        standard,
        self_tests,
    }
}

/// Every algorithm fipsguard exposes.
#[rustfmt::skip]
pub const APPROVED: &[ApprovedAlgorithm] = &[
    approved("aes-256-gcm", "authenticated encryption, module-generated 96-bit IV", "FIPS 197, SP 800-38D", &["aes-256-gcm-seal", "aes-256-gcm-open"]),
    approved("aes-256-kwp", "key wrapping with padding (keys at rest)", "FIPS 197, SP 800-38F", &["aes-256-kwp"]),
    approved("hmac-sha256", "message authentication, keys of 112 bits or more", "FIPS 198-1, FIPS 180-4", &["hmac-sha-256"]),
    approved("hmac-sha384", "message authentication, keys of 112 bits or more", "FIPS 198-1, FIPS 180-4", &["hmac-sha-384"]),
    approved("hmac-sha512", "message authentication, keys of 112 bits or more", "FIPS 198-1, FIPS 180-4", &["hmac-sha-512"]),
    approved("sha-256", "hashing", "FIPS 180-4", &["sha-256"]),
    approved("sha-384", "hashing", "FIPS 180-4", &["sha-384"]),
    approved("sha-512", "hashing", "FIPS 180-4", &["sha-512"]),
    approved("sha3-256", "hashing", "FIPS 202", &["sha3-256"]),
    approved("hkdf-sha256", "key derivation from a shared secret, non-empty salt", "SP 800-56C Rev. 2 (RFC 5869)", &["hkdf-sha-256"]),
    approved("pbkdf2-hmac-sha512", "key derivation from a password (>= 1000 iterations, >= 128-bit salt, >= 14-byte password)", "SP 800-132", &["pbkdf2-hmac-sha-512"]),
    approved("ecdsa-p256-sha256", "signatures, P-256 keys", "FIPS 186-5, SP 800-186", &["ecdsa-p256-verify", "ecdsa-p256-sign"]),
    approved("ecdsa-p384-sha384", "signatures, P-384 keys", "FIPS 186-5, SP 800-186", &["ecdsa-p384-verify", "ecdsa-p384-sign"]),
    approved("rsa-pss-sha256", "signatures, RSA 2048/3072/4096-bit keys", "FIPS 186-5", &["rsa-3072-pss-verify", "rsa-3072-pss-sign"]),
    approved("rsa-pss-sha384", "signatures, RSA 2048/3072/4096-bit keys", "FIPS 186-5", &["rsa-3072-pss-verify", "rsa-3072-pss-sign"]),
    approved("rsa-pss-sha512", "signatures, RSA 2048/3072/4096-bit keys", "FIPS 186-5", &["rsa-3072-pss-verify", "rsa-3072-pss-sign"]),
    approved("rsa-pkcs1-sha256", "signatures (PKCS#1 v1.5 padding), RSA 2048/3072/4096-bit keys", "FIPS 186-5", &["rsa-3072-pkcs1-verify", "rsa-3072-pss-sign"]),
    approved("rsa-pkcs1-sha384", "signatures (PKCS#1 v1.5 padding), RSA 2048/3072/4096-bit keys", "FIPS 186-5", &["rsa-3072-pkcs1-verify", "rsa-3072-pss-sign"]),
    approved("rsa-pkcs1-sha512", "signatures (PKCS#1 v1.5 padding), RSA 2048/3072/4096-bit keys", "FIPS 186-5", &["rsa-3072-pkcs1-verify", "rsa-3072-pss-sign"]),
    approved("ed25519", "signatures (pure EdDSA)", "FIPS 186-5", &["ed25519"]),
    approved("ecdsa-p256", "key pair generation, with a pairwise consistency test", "FIPS 186-5 A.2, SP 800-186", &["ecdsa-p256-sign"]),
    approved("ecdsa-p384", "key pair generation, with a pairwise consistency test", "FIPS 186-5 A.2, SP 800-186", &["ecdsa-p384-sign"]),
    approved("rsa-2048", "key pair generation (signing keys), with a pairwise consistency test", "FIPS 186-5 A.1", &["rsa-3072-pss-sign"]),
    approved("rsa-3072", "key pair generation (signing keys), with a pairwise consistency test", "FIPS 186-5 A.1", &["rsa-3072-pss-sign"]),
    approved("rsa-4096", "key pair generation (signing keys), with a pairwise consistency test", "FIPS 186-5 A.1", &["rsa-3072-pss-sign"]),
    approved("ml-kem-768", "post-quantum key encapsulation", "FIPS 203", &["ml-kem-768"]),
    approved("ml-kem-1024", "post-quantum key encapsulation", "FIPS 203", &["ml-kem-1024"]),
    approved("ctr-drbg", "random bit generation", "SP 800-90A Rev. 1", &["drbg-health"]),
];

/// Looks an algorithm up by name. Anything not in [`APPROVED`] is refused
/// with the rule it breaks.
pub fn lookup(name: &str) -> Result<&'static ApprovedAlgorithm, Error> {
    let name = name.trim().to_ascii_lowercase();
    APPROVED
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| Error::NotApproved(refusal_for(&name)))
}

/// Name fragments and the rule they break, checked in order after the
/// special cases in [`refusal_for`]; the first match names the rule.
#[rustfmt::skip]
const REFUSED_FRAGMENTS: &[(&[&str], Refusal)] = &[
    (&["md5", "md4"], Refusal::Md5),
    (&["oaep", "rsaes", "rsa-enc", "rsa-pkcs1-encrypt", "rsa-kem"], Refusal::RsaEncryption),
    (&["3des", "tdes", "tdea", "des-ede", "des-cbc", "des-ecb"], Refusal::TripleDes),
    (&["rc4", "arcfour"], Refusal::Rc4),
    (&["chacha", "poly1305"], Refusal::ChaCha20Poly1305),
    (&["p192", "p-192", "secp192", "prime192"], Refusal::P192),
    (&["x25519", "curve25519", "x448"], Refusal::X25519),
    (&["ecb"], Refusal::AesEcb),
    (&["aes-128", "aes-192", "aes128", "aes192"], Refusal::AesKeySizeNotOffered),
    (&["sha224", "sha-224", "sha512-224", "sha512-256", "sha3-224", "sha3-384", "sha3-512", "shake"], Refusal::HashNotOffered),
    // The offered members of these families matched by exact name already.
    (&["hmac-", "hkdf-", "pbkdf2-"], Refusal::HashNotOffered),
];

/// The rule a non-approved algorithm name breaks.
fn refusal_for(name: &str) -> Refusal {
    let has = |fragments: &[&str]| fragments.iter().any(|f| name.contains(f));
    if has(&["sha1", "sha-1"]) && !has(&["md5", "md4"]) {
        return match has(&["ecdsa", "rsa", "dsa", "sig"]) {
            true => Refusal::Sha1Signatures,
            false => Refusal::HashNotOffered,
        };
    }
    if name == "des" {
        return Refusal::TripleDes;
    }
    if let Some(bits) = rsa_bits(name) {
        return match bits < 2048 {
            true => Refusal::RsaKeyTooSmall,
            false => Refusal::RsaKeySizeNotOffered { bits },
        };
    }
    REFUSED_FRAGMENTS
        .iter()
        .find(|(fragments, _)| has(fragments))
        .map_or(Refusal::Unknown, |(_, rule)| *rule)
}

/// `rsa-1024`, `rsa1024`, `rsa-1024-pss`: the modulus size in an RSA name.
fn rsa_bits(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("rsa")?.trim_start_matches(['-', '_']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
