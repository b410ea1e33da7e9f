//! What an endpoint may accept. The built-in profile follows NIST SP 800-52
//! Rev. 2 as fipsguard reads it for FIPS 140-3 deployments; a TOML file with
//! the same fields replaces it (every field optional, defaulting to the profile).

use std::path::Path;

use serde::Deserialize;

use super::catalog::{Protocol, GROUPS};
use fipsguard_crypto::certificate::{CURVES, HASHES};

/// A TLS policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Shown in findings.
    pub name: String,
    /// Versions the endpoint may accept.
    pub protocols: Vec<Protocol>,
    /// Versions the endpoint must accept.
    pub required_protocols: Vec<Protocol>,
    /// IANA names of the suites the endpoint may accept.
    pub cipher_suites: Vec<String>,
    /// Named groups the endpoint may accept.
    pub groups: Vec<String>,
    /// Hashes a handshake signature may never use.
    pub forbidden_signature_hashes: Vec<String>,
    /// Smallest RSA modulus (and DHE prime) in bits.
    pub min_rsa_bits: usize,
    /// Curves a certificate's EC key may be on.
    pub ec_curves: Vec<String>,
    /// Certificates expiring within this many days are a warning.
    pub expiry_warning_days: u32,
}

const FIPS_SUITES: &[&str] = &[
    // TLS 1.3 (SP 800-52 Rev. 2, 3.3.1.2)
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
    // TLS 1.2, ephemeral key exchange only (3.3.1.1)
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_AES_128_CCM",
    "TLS_DHE_RSA_WITH_AES_256_CCM",
    "TLS_DHE_RSA_WITH_AES_128_CCM_8",
    "TLS_DHE_RSA_WITH_AES_256_CCM_8",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
];

/// NIST curves and finite-field groups (3.3.2), and hybrids whose security
/// rests on an approved ML-KEM (FIPS 203) component.
const FIPS_GROUPS: &[&str] = &[
    "secp256r1",
    "secp384r1",
    "secp521r1",
    "ffdhe2048",
    "ffdhe3072",
    "ffdhe4096",
    "ffdhe6144",
    "ffdhe8192",
    "X25519MLKEM768",
    "SecP256r1MLKEM768",
    "SecP384r1MLKEM1024",
];

impl Default for Policy {
    fn default() -> Self {
        Policy {
            name: "FIPS (SP 800-52 Rev. 2)".into(),
            protocols: vec![Protocol::Tls12, Protocol::Tls13],
            required_protocols: vec![Protocol::Tls12, Protocol::Tls13],
            cipher_suites: FIPS_SUITES.iter().map(|s| s.to_string()).collect(),
            groups: FIPS_GROUPS.iter().map(|s| s.to_string()).collect(),
            forbidden_signature_hashes: vec!["SHA-1".into(), "MD5".into()],
            min_rsa_bits: 2048,
            ec_curves: vec!["P-256".into(), "P-384".into(), "P-521".into()],
            expiry_warning_days: 30,
        }
    }
}

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("policy {path}: {reason}")]
pub struct PolicyError {
    path: String,
    reason: String,
}

impl Policy {
    /// Reads a TOML policy; unknown fields and unknown suite names are errors,
    /// so a typo never loosens a gate.
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let error = |reason: String| PolicyError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let policy: Policy = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        if let Some(unknown) = policy
            .cipher_suites
            .iter()
            .find(|name| tls_parser::TlsCipherSuite::from_name(name).is_none())
        {
            return Err(error(format!("unknown cipher suite {unknown}")));
        }
        if let Some(unknown) = policy
            .groups
            .iter()
            .find(|name| !GROUPS.iter().any(|group| group.name == name.as_str()))
        {
            return Err(error(format!("unknown group {unknown}")));
        }
        if let Some(unknown) = policy
            .forbidden_signature_hashes
            .iter()
            .find(|name| !HASHES.contains(&name.as_str()))
        {
            return Err(error(format!(
                "unknown hash {unknown} (one of {})",
                HASHES.join(", ")
            )));
        }
        if let Some(unknown) = policy
            .ec_curves
            .iter()
            .find(|name| !CURVES.iter().any(|(_, curve)| curve == name))
        {
            let known: Vec<&str> = CURVES.iter().map(|(_, curve)| *curve).collect();
            return Err(error(format!(
                "unknown curve {unknown} (one of {})",
                known.join(", ")
            )));
        }
        Ok(policy)
    }

    /// Whether `protocol` may be accepted.
    pub fn allows_protocol(&self, protocol: Protocol) -> bool {
        self.protocols.contains(&protocol)
    }

    /// Whether the suite named `name` may be accepted.
    pub fn allows_suite(&self, name: &str) -> bool {
        self.cipher_suites.iter().any(|s| s == name)
    }

    /// Whether the group named `name` may be accepted.
    pub fn allows_group(&self, name: &str) -> bool {
        self.groups.iter().any(|g| g == name)
    }

    /// Whether a finite-field DHE prime of `bits` meets an ffdhe group the
    /// policy allows (TLS 1.2 DHE sends a prime, not a group name).
    pub fn allows_finite_field(&self, bits: usize) -> bool {
        self.groups
            .iter()
            .filter_map(|g| g.strip_prefix("ffdhe")?.parse::<usize>().ok())
            .any(|size| size <= bits)
    }

    /// Whether signatures over `hash` are forbidden.
    pub fn forbids_hash(&self, hash: &str) -> bool {
        self.forbidden_signature_hashes.iter().any(|h| h == hash)
    }
}
