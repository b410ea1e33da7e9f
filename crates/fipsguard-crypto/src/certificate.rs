//! The facts about a certificate a TLS policy judges: key type and size,
//! signature algorithm and hash, validity. Parsing only, no trust decisions.

use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::RSAPublicKey;
use x509_parser::signature_algorithm::SignatureAlgorithm;

/// A certificate's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// RSA with a modulus of this many bits.
    Rsa(usize),
    /// EC on this curve (`P-256`, or the OID when unnamed here).
    Ec(String),
    /// Anything else, by algorithm OID or name.
    Other(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Rsa(bits) => write!(f, "RSA {bits} bits"),
            Key::Ec(curve) => write!(f, "EC {curve}"),
            Key::Other(name) => f.write_str(name),
        }
    }
}

/// Whether a certificate signed itself, and what shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfSigned {
    /// Another name, or another key named as the authority's: issued.
    No,
    /// One name as subject and issuer, and its own key identifier named
    /// as the authority's.
    ByKeyIdentifier,
    /// One name as subject and issuer, no authority key identifier: the
    /// name alone says so, which another certificate of that name with
    /// another key puts in doubt (see [`doubt_namesakes`]).
    ByName,
}

impl Facts {
    /// Whether it signed itself, by either sign.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed != SelfSigned::No
    }
}

/// What one certificate says about itself.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The subject, RFC 4514 style.
    pub subject: String,
    /// Whether it signed itself (a root; its own signature proves nothing).
    pub self_signed: SelfSigned,
    /// The public key.
    pub key: Key,
    /// The SubjectPublicKeyInfo, to tell two keys apart.
    pub public_key: Vec<u8>,
    /// The subject key identifier, as the certificate states it.
    pub key_id: Option<Vec<u8>>,
    /// The signature algorithm's name (its OID when this scanner does not
    /// know it).
    pub signature: String,
    /// The hash the signature is computed over, when the algorithm fixes one.
    pub signature_hash: Option<&'static str>,
    /// The end of the validity period, as printed.
    pub not_after: String,
    /// Seconds until expiry (negative once expired).
    pub seconds_left: i64,
    /// Seconds until the validity period begins (positive while not yet valid).
    pub seconds_until_valid: i64,
}

/// When a DER certificate stops being valid, in Unix seconds; `None` when
/// it does not parse.
pub fn not_after(der: &[u8]) -> Option<i64> {
    X509Certificate::from_der(der)
        .ok()
        .map(|(_, cert)| cert.validity().not_after.timestamp())
}

/// Reads the facts of a DER certificate.
pub fn inspect(der: &[u8]) -> Result<Facts, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("unparsable certificate: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let (signature, signature_hash) = signature(&cert);
    let identifiers = key_identifiers(&cert);
    Ok(Facts {
        subject: cert.subject().to_string(),
        self_signed: self_signed(&cert, identifiers),
        key: key(&cert),
        public_key: cert.public_key().raw.to_vec(),
        key_id: identifiers.subject.map(<[u8]>::to_vec),
        signature,
        signature_hash,
        not_after: cert.validity().not_after.to_string(),
        seconds_left: cert.validity().not_after.timestamp() - now,
        seconds_until_valid: cert.validity().not_before.timestamp() - now,
    })
}

/// The key identifiers a certificate states, read in one pass.
#[derive(Clone, Copy, Default)]
struct KeyIdentifiers<'a> {
    /// The authority's (the issuer's key).
    authority: Option<&'a [u8]>,
    /// The subject's (its own key).
    subject: Option<&'a [u8]>,
    /// Either extension is unreadable or stated twice: what it says
    /// proves nothing.
    unreadable: bool,
}

fn key_identifiers<'a>(cert: &'a X509Certificate<'_>) -> KeyIdentifiers<'a> {
    let mut found = KeyIdentifiers::default();
    let mut authority_seen = false;
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                found.unreadable |= authority_seen;
                authority_seen = true;
                found.authority = aki.key_identifier.as_ref().map(|id| id.0);
            }
            ParsedExtension::SubjectKeyIdentifier(ski) => {
                found.unreadable |= found.subject.is_some();
                found.subject = found.subject.or(Some(ski.0));
            }
            ParsedExtension::ParseError { .. }
                if extension.oid == OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER
                    || extension.oid == OID_X509_EXT_SUBJECT_KEY_IDENTIFIER =>
            {
                found.unreadable = true;
            }
            _ => {}
        }
    }
    found
}

/// Subject and issuer are one name and, where the certificate names an
/// authority key identifier, one key: a CA may issue a certificate under
/// its own name, and that certificate's signature is relied on.
fn self_signed(cert: &X509Certificate<'_>, identifiers: KeyIdentifiers<'_>) -> SelfSigned {
    if cert.subject() != cert.issuer() {
        return SelfSigned::No;
    }
    if identifiers.unreadable {
        // Such key identifiers prove nothing either way.
        return SelfSigned::No;
    }
    match (identifiers.authority, identifiers.subject) {
        (Some(authority), Some(subject)) if authority == subject => SelfSigned::ByKeyIdentifier,
        (Some(_), _) => SelfSigned::No,
        (None, _) => SelfSigned::ByName,
    }
}

/// A certificate self-signed by its name alone, sent beside another of
/// that name with another key: the other may have issued it, so it does
/// not count as self-signed. One whose key identifiers show it signed
/// itself keeps that (two roots may share a name), unless the other, with
/// another key, claims the same identifier: the issuer chose it.
pub fn doubt_namesakes(certificates: &mut [Facts]) {
    let doubtful: Vec<bool> = certificates
        .iter()
        .map(|cert| {
            let mut namesakes = certificates.iter().filter(|other| {
                other.subject == cert.subject && other.public_key != cert.public_key
            });
            match cert.self_signed {
                SelfSigned::No => false,
                SelfSigned::ByName => namesakes.next().is_some(),
                SelfSigned::ByKeyIdentifier => namesakes.any(|other| other.key_id == cert.key_id),
            }
        })
        .collect();
    for (cert, doubtful) in certificates.iter_mut().zip(doubtful) {
        if doubtful {
            cert.self_signed = SelfSigned::No;
        }
    }
}

/// The signature algorithm's name and the hash it signs over.
fn signature(cert: &X509Certificate<'_>) -> (String, Option<&'static str>) {
    let oid = cert.signature_algorithm.algorithm.to_id_string();
    if oid == RSASSA_PSS {
        return pss_signature(cert);
    }
    match signature_algorithm(&oid) {
        (_, Some(UNKNOWN)) => (format!("signature algorithm {oid}"), Some(UNKNOWN)),
        (name, hash) => (name.to_owned(), hash),
    }
}

/// RSASSA-PSS names its hash in its parameters, SHA-1 when they are left
/// out (RFC 4055). A mask generation hash other than the message's is
/// undecided (nothing here judges the pair), unless the message hash is
/// broken on its own.
fn pss_signature(cert: &X509Certificate<'_>) -> (String, Option<&'static str>) {
    let params = match SignatureAlgorithm::try_from(&cert.signature_algorithm) {
        Ok(SignatureAlgorithm::RSASSA_PSS(params)) => params,
        _ => return ("RSASSA-PSS (unreadable parameters)".into(), Some(UNKNOWN)),
    };
    let message = hash_name(&params.hash_algorithm_oid().to_id_string());
    let mask = params
        .mask_gen_algorithm()
        .ok()
        .filter(|mgf| mgf.mgf.to_id_string() == MGF1)
        .and_then(|mgf| hash_name(&mgf.hash.to_id_string()));
    match (message, mask) {
        (Some(hash), Some(mask)) if hash == mask => (format!("RSASSA-PSS ({hash})"), Some(hash)),
        (Some(hash), Some(mask)) => (
            format!("RSASSA-PSS ({hash}, MGF1 with {mask})"),
            Some(if BROKEN.contains(&hash) {
                hash
            } else {
                UNKNOWN
            }),
        ),
        _ => (
            "RSASSA-PSS (a hash or mask this scanner does not know)".into(),
            Some(UNKNOWN),
        ),
    }
}

const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const MGF1: &str = "1.2.840.113549.1.1.8";

/// Hashes a signature is never trusted over, whatever else it uses.
const BROKEN: [&str; 4] = ["MD2", "MD4", "MD5", "SHA-1"];

/// The name of a hash algorithm by OID: one of [`HASHES`].
fn hash_name(oid: &str) -> Option<&'static str> {
    let name = match oid {
        "1.2.840.113549.2.2" => "MD2",
        "1.2.840.113549.2.4" => "MD4",
        "1.2.840.113549.2.5" => "MD5",
        "1.3.14.3.2.26" => "SHA-1",
        "2.16.840.1.101.3.4.2.4" => "SHA-224",
        "2.16.840.1.101.3.4.2.1" => "SHA-256",
        "2.16.840.1.101.3.4.2.2" => "SHA-384",
        "2.16.840.1.101.3.4.2.3" => "SHA-512",
        "2.16.840.1.101.3.4.2.5" => "SHA-512/224",
        "2.16.840.1.101.3.4.2.6" => "SHA-512/256",
        "2.16.840.1.101.3.4.2.7" => "SHA3-224",
        "2.16.840.1.101.3.4.2.8" => "SHA3-256",
        "2.16.840.1.101.3.4.2.9" => "SHA3-384",
        "2.16.840.1.101.3.4.2.10" => "SHA3-512",
        _ => return None,
    };
    Some(name)
}

fn key(cert: &X509Certificate<'_>) -> Key {
    let spki = cert.public_key();
    match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => Key::Rsa(rsa.key_size()),
            _ => Key::Other("RSA (unparsable key)".into()),
        },
        // An RSA key restricted to PSS: the same modulus, under another OID.
        RSASSA_PSS => match RSAPublicKey::from_der(&spki.subject_public_key.data) {
            Ok((_, rsa)) => Key::Rsa(rsa.key_size()),
            Err(_) => Key::Other("RSA-PSS (unparsable key)".into()),
        },
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .unwrap_or_default();
            Key::Ec(curve_name(&curve).map_or(curve, str::to_owned))
        }
        "1.3.101.112" => Key::Other("Ed25519".into()),
        "1.3.101.113" => Key::Other("Ed448".into()),
        "1.2.840.10040.4.1" => Key::Other("DSA".into()),
        other => Key::Other(other.to_owned()),
    }
}

/// The named curves a certificate key is reported on, by OID: the names a
/// policy's `ec_curves` may use.
pub const CURVES: &[(&str, &str)] = &[
    ("1.2.840.10045.3.1.7", "P-256"),
    ("1.3.132.0.34", "P-384"),
    ("1.3.132.0.35", "P-521"),
    ("1.3.132.0.33", "P-224"),
    ("1.2.840.10045.3.1.1", "P-192"),
    ("1.3.132.0.10", "secp256k1"),
];

/// The hash names a signature is reported over: the names a policy's
/// `forbidden_signature_hashes` may use.
pub const HASHES: &[&str] = &[
    "MD2",
    "MD4",
    "MD5",
    "SHA-1",
    "SHA-224",
    "SHA-256",
    "SHA-384",
    "SHA-512",
    "SHA-512/224",
    "SHA-512/256",
    "SHA3-224",
    "SHA3-256",
    "SHA3-384",
    "SHA3-512",
];

/// What a signature algorithm this scanner does not know is reported as:
/// never allowed, since nothing about it was checked.
pub const UNKNOWN: &str = "unknown";

fn curve_name(oid: &str) -> Option<&'static str> {
    CURVES
        .iter()
        .find(|(known, _)| *known == oid)
        .map(|(_, name)| *name)
}

fn signature_algorithm(oid: &str) -> (&'static str, Option<&'static str>) {
    match oid {
        "1.2.840.113549.1.1.2" => ("md2WithRSAEncryption", Some("MD2")),
        "1.2.840.113549.1.1.3" => ("md4WithRSAEncryption", Some("MD4")),
        "1.2.840.113549.1.1.4" => ("md5WithRSAEncryption", Some("MD5")),
        "1.3.14.3.2.29" => ("sha1WithRSASignature (OIW)", Some("SHA-1")),
        "1.2.840.113549.1.1.5" => ("sha1WithRSAEncryption", Some("SHA-1")),
        "1.2.840.113549.1.1.14" => ("sha224WithRSAEncryption", Some("SHA-224")),
        "1.2.840.113549.1.1.11" => ("sha256WithRSAEncryption", Some("SHA-256")),
        "1.2.840.113549.1.1.12" => ("sha384WithRSAEncryption", Some("SHA-384")),
        "1.2.840.113549.1.1.13" => ("sha512WithRSAEncryption", Some("SHA-512")),
        "1.2.840.113549.1.1.15" => ("sha512-224WithRSAEncryption", Some("SHA-512/224")),
        "1.2.840.113549.1.1.16" => ("sha512-256WithRSAEncryption", Some("SHA-512/256")),
        "2.16.840.1.101.3.4.3.1" => ("dsa-with-sha224", Some("SHA-224")),
        "2.16.840.1.101.3.4.3.2" => ("dsa-with-sha256", Some("SHA-256")),
        "2.16.840.1.101.3.4.3.9" => ("ecdsa-with-SHA3-224", Some("SHA3-224")),
        "2.16.840.1.101.3.4.3.10" => ("ecdsa-with-SHA3-256", Some("SHA3-256")),
        "2.16.840.1.101.3.4.3.11" => ("ecdsa-with-SHA3-384", Some("SHA3-384")),
        "2.16.840.1.101.3.4.3.12" => ("ecdsa-with-SHA3-512", Some("SHA3-512")),
        "2.16.840.1.101.3.4.3.13" => ("id-rsassa-pkcs1-v1_5-with-sha3-224", Some("SHA3-224")),
        "2.16.840.1.101.3.4.3.14" => ("id-rsassa-pkcs1-v1_5-with-sha3-256", Some("SHA3-256")),
        "2.16.840.1.101.3.4.3.15" => ("id-rsassa-pkcs1-v1_5-with-sha3-384", Some("SHA3-384")),
        "2.16.840.1.101.3.4.3.16" => ("id-rsassa-pkcs1-v1_5-with-sha3-512", Some("SHA3-512")),
        "1.2.840.10045.4.1" => ("ecdsa-with-SHA1", Some("SHA-1")),
        "1.2.840.10045.4.3.1" => ("ecdsa-with-SHA224", Some("SHA-224")),
        "1.2.840.10045.4.3.2" => ("ecdsa-with-SHA256", Some("SHA-256")),
        "1.2.840.10045.4.3.3" => ("ecdsa-with-SHA384", Some("SHA-384")),
        "1.2.840.10045.4.3.4" => ("ecdsa-with-SHA512", Some("SHA-512")),
        "1.2.840.10040.4.3" => ("dsa-with-sha1", Some("SHA-1")),
        "1.3.101.112" => ("Ed25519", None),
        "1.3.101.113" => ("Ed448", None),
        _ => (UNKNOWN, Some(UNKNOWN)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(file: &str) -> Facts {
        let path = format!("{}/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        inspect(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn rsassa_pss_signatures_report_the_hash_their_parameters_name() {
        let defaults = facts("pss-sha1.der");
        assert_eq!(defaults.signature, "RSASSA-PSS (SHA-1)");
        assert_eq!(defaults.signature_hash, Some("SHA-1"));
        let sha256 = facts("pss-sha256.der");
        assert_eq!(sha256.signature, "RSASSA-PSS (SHA-256)");
        assert_eq!(sha256.signature_hash, Some("SHA-256"));
    }

    #[test]
    fn a_certificate_issued_under_its_issuers_own_name_is_not_self_signed() {
        let root = facts("self-signed-sha1.der");
        assert_eq!(root.self_signed, SelfSigned::ByKeyIdentifier);
        let namesake = facts("same-name-sha1.der");
        assert_eq!(namesake.subject, "CN=Same Name");
        assert_eq!(
            namesake.self_signed,
            SelfSigned::No,
            "another key signed it"
        );
        assert_eq!(facts("pss-sha1.der").self_signed, SelfSigned::No);
    }

    #[test]
    fn every_hash_named_by_oid_is_one_a_policy_can_name() {
        let oids = (1..=10).map(|n| format!("2.16.840.1.101.3.4.2.{n}"));
        let others = [
            "1.2.840.113549.2.2",
            "1.2.840.113549.2.4",
            "1.2.840.113549.2.5",
            "1.3.14.3.2.26",
        ];
        let names: Vec<&str> = oids
            .chain(others.map(String::from))
            .filter_map(|oid| hash_name(&oid))
            .collect();
        assert_eq!(names.len(), 14);
        assert!(names.iter().all(|name| HASHES.contains(name)), "{names:?}");
        assert!(BROKEN.iter().all(|name| HASHES.contains(name)));
    }

    /// Without key identifiers the name alone would decide: sent beside a
    /// certificate of the same name and another key, it is not taken as
    /// self-signed; the namesake whose key identifiers show it signed
    /// itself still is.
    #[test]
    fn a_namesake_with_another_key_puts_a_self_signature_by_name_in_doubt() {
        let mut chain = vec![
            facts("same-name-no-ids-sha1.der"),
            facts("same-name-ca.der"),
        ];
        assert_eq!(chain[0].self_signed, SelfSigned::ByName);
        doubt_namesakes(&mut chain);
        assert_eq!(chain[0].self_signed, SelfSigned::No);
        assert_eq!(chain[1].self_signed, SelfSigned::ByKeyIdentifier);
        let mut alone = vec![facts("same-name-no-ids-sha1.der")];
        doubt_namesakes(&mut alone);
        assert_eq!(alone[0].self_signed, SelfSigned::ByName);
        let mut root = vec![facts("self-signed-sha1.der"), facts("pss-sha1.der")];
        doubt_namesakes(&mut root);
        assert!(root[0].is_self_signed());

        // Key identifiers are the issuer's to choose: one claimed by two
        // keys under one name proves neither signed itself.
        let mut claimed = vec![
            facts("claimed-key-id-sha1.der"),
            facts("claimed-key-id-ca.der"),
        ];
        assert_eq!(claimed[0].self_signed, SelfSigned::ByKeyIdentifier);
        assert_eq!(claimed[1].self_signed, SelfSigned::ByKeyIdentifier);
        doubt_namesakes(&mut claimed);
        assert_eq!(claimed[0].self_signed, SelfSigned::No);
        assert_eq!(claimed[1].self_signed, SelfSigned::No);
    }

    #[test]
    fn key_identifiers_stated_twice_prove_nothing() {
        let root = facts("two-subject-key-ids-base.der");
        assert_eq!(root.self_signed, SelfSigned::ByKeyIdentifier);
        // A second subject key identifier, before or after its own (the
        // one its authority key identifier names).
        for (file, first) in [
            ("two-subject-key-ids-first.der", vec![0xab; 20]),
            ("two-subject-key-ids-last.der", root.key_id.clone().unwrap()),
        ] {
            let twice = facts(file);
            assert_eq!(twice.self_signed, SelfSigned::No, "{file}");
            assert_eq!(twice.key_id, Some(first), "{file}");
        }
    }

    #[test]
    fn an_rsa_pss_key_is_an_rsa_key_of_its_modulus_size() {
        assert_eq!(facts("pss-key-leaf.der").key, Key::Rsa(2048));
        assert_eq!(facts("pss-sha1.der").key, Key::Ec("P-256".into()));
    }
}
