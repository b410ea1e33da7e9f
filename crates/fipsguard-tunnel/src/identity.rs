//! Who a verified peer certificate names, and whether an allow-list lets
//! it in. The certificate was verified by the handshake already (chain,
//! validity, revocation); this only reads its names.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::TunnelConfig;

/// The names in a verified end-entity certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Subject, as `CN=…, O=…`.
    pub subject: String,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// URI subject alternative names (SPIFFE IDs, say).
    pub uris: Vec<String>,
}

impl PeerIdentity {
    /// Reads the names of a DER certificate.
    pub fn of(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("the peer certificate does not parse: {e}"))?;
        let common_name = cert.subject().iter_common_name().next();
        let mut identity = Self {
            subject: cert.subject().to_string(),
            common_name: common_name
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_owned),
            ..Self::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => identity.dns.push(dns.to_string()),
                    GeneralName::URI(uri) => identity.uris.push(uri.to_string()),
                    _ => {}
                }
            }
        }
        Ok(identity)
    }

    /// The one name logs and the PROXY header carry: the first URI SAN,
    /// else the first DNS SAN, else the subject.
    pub fn principal(&self) -> &str {
        self.uris
            .first()
            .or(self.dns.first())
            .map_or(self.subject.as_str(), String::as_str)
    }

    /// Whether `tunnel`'s allow-list admits this identity: any listed DNS
    /// name (case-insensitive), URI or subject (exact) is enough.
    pub fn allowed_by(&self, tunnel: &TunnelConfig) -> bool {
        tunnel
            .allow_dns
            .iter()
            .any(|allowed| self.dns.iter().any(|d| d.eq_ignore_ascii_case(allowed)))
            || tunnel
                .allow_uri
                .iter()
                .any(|allowed| self.uris.contains(allowed))
            || tunnel.allow_subject.contains(&self.subject)
    }
}

/// When a certificate stops being valid, in Unix seconds.
pub fn not_after(der: &[u8]) -> Option<i64> {
    X509Certificate::from_der(der)
        .ok()
        .map(|(_, cert)| cert.validity().not_after.timestamp())
}
