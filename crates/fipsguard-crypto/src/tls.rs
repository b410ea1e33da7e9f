//! The TLS policy, in one place for `serve`, `tunnel` and every client:
//! rustls on AWS-LC's FIPS module, TLS 1.3 and 1.2 only, AES-GCM suites only,
//! NIST-curve key exchange (with the ML-KEM hybrid where the provider approves
//! it), and certificates with RSA keys of 2048 bits or more or ECDSA keys on
//! P-256/P-384. Every config this module returns answers `fips() == true`;
//! it refuses to return one that would not.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider, kx_group};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use crate::certificate;
use crate::digest::{digest, HashAlgorithm};
use crate::error::Refusal;
use crate::module::ensure_operational;
use crate::random;
use crate::sign::{SignatureScheme, SigningKey, SigningKeyType};

pub use rustls;

/// TLS 1.3 and 1.2; nothing older (SP 800-52 Rev. 2, section 3.1).
pub static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The certificate's key is not one the policy allows.
    #[error("{0}")]
    NotApproved(Refusal),
    /// A certificate of the chain is one no client under the policy
    /// would accept (out of its validity period, signed over a broken
    /// hash, unreadable).
    #[error("certificate {position} of the chain ({subject}): {reason}")]
    Certificate {
        /// Its place in the chain, 1 for the server's own.
        position: usize,
        /// Its subject.
        subject: String,
        /// Why it is refused.
        reason: String,
    },
    /// The module is not operational.
    #[error(transparent)]
    Module(#[from] crate::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Rustls(String),
    /// The configuration would not be FIPS-approved as a whole.
    #[error("the TLS configuration is not FIPS-approved (rustls reports fips() == false); refusing to use it")]
    NotFips,
}

/// The approved crypto provider: the FIPS provider cut down to the policy.
pub fn provider() -> Arc<CryptoProvider> {
    let base = default_provider();
    let hybrid: [&'static dyn rustls::crypto::SupportedKxGroup; 2] =
        [kx_group::X25519MLKEM768, kx_group::SECP256R1MLKEM768];
    let kx_groups = hybrid
        .into_iter()
        .filter(|group| group.fips())
        .chain([kx_group::SECP256R1, kx_group::SECP384R1])
        .collect();
    Arc::new(CryptoProvider {
        signature_verification_algorithms: *verification_algorithms(),
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups,
        ..base
    })
}

/// The provider's signature verification algorithms without those the
/// policy does not offer for TLS keys (Ed25519, P-521), so peers (clients
/// under mTLS, servers for the tunnel's client side) are held to the same
/// key policy as fipsguard's own certificate.
fn verification_algorithms() -> &'static rustls::crypto::WebPkiSupportedAlgorithms {
    use rustls::pki_types::alg_id;
    static ALGORITHMS: std::sync::OnceLock<rustls::crypto::WebPkiSupportedAlgorithms> =
        std::sync::OnceLock::new();
    ALGORITHMS.get_or_init(|| {
        let base = default_provider().signature_verification_algorithms;
        let offered = |a: &&&'static dyn rustls::pki_types::SignatureVerificationAlgorithm| {
            let key = a.public_key_alg_id();
            key != alg_id::ECDSA_P521 && key != alg_id::ED25519
        };
        let all: Vec<_> = base.all.iter().filter(offered).copied().collect();
        let mapping: Vec<_> = base
            .mapping
            .iter()
            .map(|(scheme, algorithms)| {
                let kept: Vec<_> = algorithms.iter().filter(offered).copied().collect();
                (*scheme, &*Box::leak(kept.into_boxed_slice()))
            })
            .filter(|(_, algorithms)| !algorithms.is_empty())
            .collect();
        // Built once per process; the 'static slices rustls wants are leaked on purpose.
        rustls::crypto::WebPkiSupportedAlgorithms {
            all: Box::leak(all.into_boxed_slice()),
            mapping: Box::leak(mapping.into_boxed_slice()),
        }
    })
}

/// A certificate chain and its private key, checked against the policy.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// What kind of key it is, e.g. `EC P-256` or `RSA 3072 bits`.
    pub key_description: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identity({} certificates, {}, key [redacted])",
            self.chain.len(),
            self.key_description
        )
    }
}

impl Identity {
    /// Reads a PEM certificate chain and PEM private key.
    pub fn from_pem_files(chain: &Path, key: &Path) -> Result<Self, TlsError> {
        let certs = CertificateDer::pem_file_iter(chain)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| pem_error(chain, e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
        Self::new(certs, key)
    }

    /// Checks the chain and its key against the policy: the certificate's
    /// key is judged, and the private key must be that key's own, as the
    /// module loads it.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        ensure_operational()?;
        let leaf_key = check_chain(&chain)?;
        if let Some(refusal) = key_refusal(&leaf_key) {
            return Err(TlsError::NotApproved(refusal));
        }
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider())
            .and_then(|certified| certified.keys_match())
            .map_err(|e| {
                TlsError::Rustls(format!(
                    "the private key is not the first certificate's own: {e}"
                ))
            })?;
        let key_description = leaf_key.to_string();
        Ok(Self {
            chain,
            key,
            key_description,
        })
    }

    /// The certificate chain.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

/// The CAs a peer's certificate must chain to, and the revocation lists
/// it is checked against.
pub struct PeerTrust {
    /// Trusted CA certificates.
    pub roots: RootCertStore,
    /// Certificate revocation lists (RFC 5280); a certificate listed in one
    /// fails the handshake.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

impl PeerTrust {
    /// When the first of its revocation lists passes its nextUpdate, in
    /// Unix seconds: from then on every certificate the list covers is
    /// refused, until a newer list is loaded. `None` without lists that
    /// name one.
    pub fn crls_next_update(&self) -> Option<i64> {
        use x509_parser::prelude::FromDer;
        use x509_parser::revocation_list::CertificateRevocationList;
        self.crls
            .iter()
            .filter_map(|der| CertificateRevocationList::from_der(der).ok())
            .filter_map(|(_, crl)| crl.next_update())
            .map(|next| next.timestamp())
            .min()
    }

    /// The CAs in the PEM bundle `ca`, and the revocation lists (PEM or
    /// DER) in `crl`, each signed by its CA where that CA is in `ca`.
    pub fn read(ca: &Path, crl: Option<&Path>) -> Result<Self, TlsError> {
        let roots = read_roots(ca)?;
        let crls = match crl {
            Some(crl) => {
                let crls = read_crls(crl)?;
                check_crl_signatures(&roots, &crls).map_err(|reason| file_error(crl, reason))?;
                crls
            }
            None => Vec::new(),
        };
        Ok(Self { roots, crls })
    }
}

impl From<RootCertStore> for PeerTrust {
    fn from(roots: RootCertStore) -> Self {
        Self {
            roots,
            crls: Vec::new(),
        }
    }
}

/// Whom a server asks for a client certificate.
pub enum ClientAuth {
    /// No client certificates.
    None,
    /// Clients may present a certificate from these roots (mTLS optional).
    Optional(PeerTrust),
    /// Clients must present a certificate from these roots.
    Required(PeerTrust),
}

/// A server configuration under the policy.
pub fn server_config(
    identity: Identity,
    client_auth: ClientAuth,
) -> Result<ServerConfig, TlsError> {
    server_config_and_verifier(identity, client_auth).map(|(config, _)| config)
}

/// Checks a client's certificate chain as a server configuration's
/// handshakes do: its roots, validity and revocation lists.
pub type ClientVerifier = Arc<dyn rustls::server::danger::ClientCertVerifier>;

/// Why a client whose handshake passed under an earlier trust is refused
/// under `verifier` (`chain`: its certificates, its own first): whatever
/// its certificate now fails (revoked, expired, no longer from a trusted CA
/// or within its constraints). `None` while it is accepted, or when what
/// fails says nothing of this client (a revocation list past its
/// nextUpdate, or silent on its issuer; a certificate not yet valid, which
/// passed before): new handshakes are refused for those, but an unrelated
/// change must not cut every client.
pub fn refuses_established_client(
    verifier: &ClientVerifier,
    chain: &[CertificateDer<'static>],
) -> Option<ClientRefused> {
    use rustls::CertificateError;
    let (end_entity, intermediates) = chain.split_first()?;
    match verifier.verify_client_cert(end_entity, intermediates, UnixTime::now()) {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownRevocationStatus
            | CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        )) => None,
        Err(rustls::Error::InvalidCertificate(e)) => Some(ClientRefused {
            reason: match e {
                CertificateError::Revoked => ClientRefused::REVOKED,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    ClientRefused::EXPIRED
                }
                _ => ClientRefused::UNTRUSTED,
            },
            detail: e.to_string(),
        }),
        _ => None,
    }
}

/// Why a client accepted earlier is refused now.
#[derive(Debug)]
pub struct ClientRefused {
    /// As a metric label: `revoked`, `expired`, or `untrusted` (its CA is
    /// no longer trusted, or its chain no longer verifies).
    pub reason: &'static str,
    /// What the verifier says of its certificate.
    pub detail: String,
}

impl ClientRefused {
    /// A revocation list names its certificate.
    pub const REVOKED: &'static str = "revoked";
    /// A certificate of its chain is past its notAfter.
    pub const EXPIRED: &'static str = "expired";
    /// Anything else: its CA is no longer trusted, its chain no longer verifies.
    pub const UNTRUSTED: &'static str = "untrusted";
    /// Every `reason`, for series created at zero.
    pub const REASONS: [&'static str; 3] = [Self::REVOKED, Self::EXPIRED, Self::UNTRUSTED];
}

impl fmt::Display for ClientRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// A client verifier that holds the client's own key to the policy (RSA of
/// 2048 bits or more, ECDSA on P-256 or P-384) before webpki verifies its
/// chain, so that such a client is refused by the rule it breaks, not as a
/// signature that does not verify.
#[derive(Debug)]
struct ClientKeyPolicy(ClientVerifier);

impl rustls::server::danger::ClientCertVerifier for ClientKeyPolicy {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        if let Some(refusal) = peer_key_refusal(end_entity) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PeerKeyRefused(
                    refusal,
                )))),
            ));
        }
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.0.requires_raw_public_keys()
    }
}

/// A peer's key refused by the policy. rustls shows the error it is
/// carried in with `Debug`, so that is the rule's text too.
struct PeerKeyRefused(Refusal);

impl fmt::Debug for PeerKeyRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for PeerKeyRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for PeerKeyRefused {}

/// The rule a peer's own certificate key breaks, if any; `None` too for a
/// certificate that does not parse, which webpki refuses as such.
fn peer_key_refusal(end_entity: &CertificateDer<'_>) -> Option<Refusal> {
    key_refusal(&certificate::inspect(end_entity).ok()?.key)
}

/// The rule a certificate's key breaks, if any, this server's own or a
/// peer's: RSA of 2048 bits or more, or ECDSA on P-256 or P-384
/// (SP 800-52 Rev. 2, section 3.3.2).
fn key_refusal(key: &certificate::Key) -> Option<Refusal> {
    use certificate::Key;
    match key {
        Key::Rsa(bits) if *bits >= 2048 => None,
        Key::Rsa(_) => Some(Refusal::RsaKeyTooSmall),
        Key::Ec(curve) if curve == "P-256" || curve == "P-384" => None,
        Key::Ec(_) | Key::Other(_) => Some(Refusal::TlsKeyNotOffered),
    }
}

/// How long an established client's chain (`chain`) may go before it is
/// checked again: until just past the first notAfter still ahead (RFC 5280:
/// a certificate is valid through its notAfter second), an hour at most, so
/// that a wall clock set forward, or a suspended host, is caught up with.
pub fn recheck_within(chain: &[CertificateDer<'_>]) -> std::time::Duration {
    let now = std::time::UNIX_EPOCH
        .elapsed()
        .unwrap_or_default()
        .as_secs();
    recheck_within_at(chain, now)
}

/// [`recheck_within`] at `now` (Unix seconds).
fn recheck_within_at(chain: &[CertificateDer<'_>], now: u64) -> std::time::Duration {
    const AT_MOST: u64 = 3600;
    let left = chain
        .iter()
        .filter_map(|der| certificate::not_after(der))
        .filter_map(|t| u64::try_from(t).ok())
        .filter(|&t| t >= now)
        .map(|t| t + 1 - now)
        .min()
        .unwrap_or(AT_MOST);
    std::time::Duration::from_secs(left.clamp(1, AT_MOST))
}

/// A server configuration under the policy, and the verifier its
/// handshakes check client certificates with (`None` without client
/// certificates), so that a connection opened under an older one can be
/// checked again under the current trust.
pub fn server_config_and_verifier(
    identity: Identity,
    client_auth: ClientAuth,
) -> Result<(ServerConfig, Option<ClientVerifier>), TlsError> {
    ensure_operational()?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(rustls_error)?;
    let (trust, optional) = match client_auth {
        ClientAuth::None => (None, false),
        ClientAuth::Optional(trust) => (Some(trust), true),
        ClientAuth::Required(trust) => (Some(trust), false),
    };
    let verifier: Option<ClientVerifier> = match trust {
        None => None,
        Some(trust) if trust.roots.is_empty() => {
            return Err(TlsError::Rustls(
                "the client CA bundle holds no certificates".into(),
            ));
        }
        Some(trust) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(trust.roots), provider)
                    .with_crls(trust.crls)
                    .enforce_revocation_expiration();
            let verifier = match optional {
                true => verifier.allow_unauthenticated(),
                false => verifier,
            };
            let webpki = verifier.build().map_err(rustls_error)?;
            Some(Arc::new(ClientKeyPolicy(webpki)) as ClientVerifier)
        }
    };
    let builder = match &verifier {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier.clone()),
    };
    let mut config = builder
        .with_single_cert(identity.chain, identity.key)
        .map_err(rustls_error)?;
    if verifier.is_some() {
        // A resumed session skips the client certificate's checks (rustls
        // keeps sessions for a day): every connection verifies its chain,
        // validity and revocation afresh.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    match config.fips() {
        true => Ok((config, verifier)),
        false => Err(TlsError::NotFips),
    }
}

/// A client configuration under the policy, trusting `trust` (roots, and
/// revocation lists if any), presenting `identity` if given.
pub fn client_config(
    trust: impl Into<PeerTrust>,
    identity: Option<Identity>,
) -> Result<ClientConfig, TlsError> {
    ensure_operational()?;
    let trust = trust.into();
    let provider = provider();
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(trust.roots), provider.clone())
            .with_crls(trust.crls)
            .enforce_revocation_expiration()
            .build()
            .map_err(rustls_error)?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(rustls_error)?
        .with_webpki_verifier(verifier);
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain, identity.key)
            .map_err(rustls_error)?,
        None => builder.with_no_client_auth(),
    };
    // A resumed session skips the server's chain: its expiry and the
    // revocation lists' nextUpdate would not be checked again for as long
    // as a ticket lives.
    config.resumption = rustls::client::Resumption::disabled();
    config.fips().then_some(config).ok_or(TlsError::NotFips)
}

/// Reads a PEM bundle of CA certificates into a root store.
pub fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| pem_error(path, e))? {
        roots
            .add(cert.map_err(|e| pem_error(path, e))?)
            .map_err(rustls_error)?;
    }
    Ok(roots)
}

/// Reads certificate revocation lists: PEM (`X509 CRL` blocks) or a single
/// DER list, as many CAs publish them. A file holding none is refused:
/// rustls checks revocation only when it has a list, so an empty file (one
/// being rewritten, say) or a misread one would turn the checks off.
pub fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
    let pem = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    const DER_SEQUENCE: u8 = 0x30;
    match (pem.is_empty(), bytes.first()) {
        (false, _) => Ok(pem),
        (true, Some(&DER_SEQUENCE)) => Ok(vec![CertificateRevocationListDer::from(bytes)]),
        (true, _) => Err(file_error(
            path,
            "no certificate revocation list in it (PEM X509 CRL blocks, or one DER list); \
             refusing to run without the revocation checks it was given for",
        )),
    }
}

/// Refuses a revocation list issued by a CA of `roots` whose signature
/// does not verify under that CA's key with an algorithm the policy takes.
/// Handshakes would find the same and refuse every certificate the CA
/// issued; refused where it is read, a list from another CA of the same
/// name (or a damaged one) stops a start, and a reload keeps the lists in
/// force. A list from an intermediate CA, whose certificate only peers
/// send, is checked at each handshake alone.
fn check_crl_signatures(
    roots: &RootCertStore,
    crls: &[CertificateRevocationListDer<'_>],
) -> Result<(), String> {
    for der in crls {
        let list = SignedList::parse(der).ok_or("a revocation list that is not DER")?;
        let mut issuers = roots
            .roots
            .iter()
            .filter(|anchor| anchor.subject.as_ref() == list.issuer)
            .peekable();
        if issuers.peek().is_some()
            && !issuers.any(|anchor| list.signed_by(&anchor.subject_public_key_info))
        {
            return Err(format!(
                "the revocation list of {} does not verify under the key of that CA in the \
                 CA bundle with an approved signature algorithm; refusing it, as it would \
                 refuse every certificate the CA issued",
                list.issuer_name()
            ));
        }
    }
    Ok(())
}

/// What a revocation list's signature is checked with (RFC 5280, 5.1):
/// DER as signed, each field the contents of its element, as rustls's
/// trust anchors and webpki's signature algorithms hold theirs.
struct SignedList<'a> {
    /// `tbsCertList`, whole.
    signed: &'a [u8],
    algorithm: &'a [u8],
    signature: &'a [u8],
    issuer: &'a [u8],
    /// The issuer's Name, whole.
    issuer_der: &'a [u8],
}

impl<'a> SignedList<'a> {
    /// Walks the DER only as far as webpki reads it for these fields, so
    /// that a list handshakes take is never refused as unreadable here.
    fn parse(der: &'a [u8]) -> Option<Self> {
        use x509_parser::der_parser::asn1_rs::{Any, FromDer};
        const INTEGER: u32 = 2;
        let (_, list) = Any::from_der(der).ok()?;
        let (rest, tbs) = Any::from_der(list.data).ok()?;
        let signed = &list.data[..list.data.len() - rest.len()];
        let (rest, algorithm) = Any::from_der(rest).ok()?;
        let (_, signature) = Any::from_der(rest).ok()?;
        // tbsCertList: an optional version, the signature's algorithm, then
        // the issuer.
        let (mut fields, first) = Any::from_der(tbs.data).ok()?;
        if first.tag().0 == INTEGER {
            fields = Any::from_der(fields).ok()?.0;
        }
        let (after, issuer) = Any::from_der(fields).ok()?;
        Some(Self {
            signed,
            algorithm: algorithm.data,
            signature: without_unused_bits(signature.data)?,
            issuer: issuer.data,
            issuer_der: &fields[..fields.len() - after.len()],
        })
    }

    /// The issuer as text (`CN=…`), for a refusal.
    fn issuer_name(&self) -> String {
        use x509_parser::prelude::{FromDer, X509Name};
        X509Name::from_der(self.issuer_der).map_or_else(
            |_| "an issuer whose name does not parse".into(),
            |(_, name)| name.to_string(),
        )
    }

    /// Whether the key in `spki` (the contents of a subjectPublicKeyInfo)
    /// signed the list, by an algorithm of the policy for that key.
    fn signed_by(&self, spki: &[u8]) -> bool {
        use x509_parser::der_parser::asn1_rs::{Any, FromDer};
        let Ok((rest, key_algorithm)) = Any::from_der(spki) else {
            return false;
        };
        let Some(key) = Any::from_der(rest)
            .ok()
            .and_then(|(_, key)| without_unused_bits(key.data))
        else {
            return false;
        };
        verification_algorithms()
            .all
            .iter()
            .filter(|a| a.public_key_alg_id().as_ref() == key_algorithm.data)
            .filter(|a| a.signature_alg_id().as_ref() == self.algorithm)
            .any(|a| a.verify_signature(key, self.signed, self.signature).is_ok())
    }
}

/// A BIT STRING's contents as bytes: only whole bytes are a key or a
/// signature.
fn without_unused_bits(bit_string: &[u8]) -> Option<&[u8]> {
    match bit_string.split_first()? {
        (0, bytes) => Some(bytes),
        _ => None,
    }
}

/// A metric-label-sized reason why a handshake failed, from the error an
/// acceptor or connector returned.
pub fn handshake_failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::Error as E;
    match error.get_ref().and_then(|e| e.downcast_ref::<E>()) {
        Some(E::PeerIncompatible(_)) => "incompatible_peer",
        Some(E::NoCertificatesPresented) => "no_certificate",
        Some(E::InvalidCertificate(rustls::CertificateError::Revoked)) => "revoked_certificate",
        Some(E::InvalidCertificate(rustls::CertificateError::Other(other)))
            if other.0.downcast_ref::<PeerKeyRefused>().is_some() =>
        {
            "key_not_approved"
        }
        Some(E::InvalidCertificate(rustls::CertificateError::UnknownRevocationStatus)) => {
            "revocation_unknown"
        }
        Some(E::InvalidCertificate(
            rustls::CertificateError::ExpiredRevocationList
            | rustls::CertificateError::ExpiredRevocationListContext { .. },
        )) => "crl_expired",
        // Signed with an algorithm outside the policy (SHA-1, say).
        #[allow(deprecated)]
        Some(E::InvalidCertificate(
            rustls::CertificateError::UnsupportedSignatureAlgorithm
            | rustls::CertificateError::UnsupportedSignatureAlgorithmContext { .. }
            | rustls::CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. },
        )) => "signature_not_approved",
        Some(E::InvalidCertificate(_)) => "bad_certificate",
        Some(E::AlertReceived(_)) => "alert_received",
        Some(E::InvalidMessage(_)) => "invalid_message",
        Some(E::PeerMisbehaved(_)) => "peer_misbehaved",
        Some(_) => "other",
        None if error.kind() == std::io::ErrorKind::UnexpectedEof => "eof",
        None => "io",
    }
}

/// Refuses a chain that clients under the policy would refuse, at start
/// rather than at every handshake: a certificate outside its validity
/// period (RFC 5280, section 4.1.2.5), or one signed over SHA-1 or MD5 (SP
/// 800-131A Rev. 2, section 9; SP 800-52 Rev. 2, section 3.2), the
/// server's own too when it signed itself (a client that pins it checks
/// that signature). A self-signed certificate at the end of a longer chain
/// is the trust anchor, which clients take from their own store: neither
/// its signature nor its dates are judged. A notBefore up to
/// [`CLOCK_SKEW`] ahead is taken as the issuer's clock running ahead of
/// this one. Returns the first certificate's key, for the key rule.
fn check_chain(chain: &[CertificateDer<'_>]) -> Result<certificate::Key, TlsError> {
    let mut facts = Vec::with_capacity(chain.len());
    for (index, der) in chain.iter().enumerate() {
        let unreadable = |reason| TlsError::Certificate {
            position: index + 1,
            subject: "unreadable".into(),
            reason,
        };
        facts.push(certificate::inspect(der).map_err(unreadable)?);
    }
    // One that names itself its issuer, sent beside another of that name,
    // may have been issued by it (as `check tls` judges it).
    certificate::doubt_namesakes(&mut facts);
    let anchor = facts.len().saturating_sub(1);
    for (index, facts) in facts.iter().enumerate() {
        if index > 0 && index == anchor && facts.is_self_signed() {
            continue;
        }
        let broken = facts.signature_hash.and_then(|hash| match hash {
            "SHA-1" => Some(Refusal::Sha1Signatures),
            "MD2" | "MD4" | "MD5" => Some(Refusal::Md5),
            _ => None,
        });
        let reason = if facts.seconds_left < 0 {
            format!(
                "expired on {}; renew it (RFC 5280, section 4.1.2.5)",
                facts.not_after
            )
        } else if facts.seconds_until_valid > CLOCK_SKEW.as_secs() as i64 {
            format!(
                "not valid for another {} s (RFC 5280, section 4.1.2.5): this host's clock, or the certificate, is wrong",
                facts.seconds_until_valid
            )
        } else if let Some(rule) = broken {
            format!(
                "signed with {}: {rule} [{}]",
                facts.signature,
                rule.rule_id()
            )
        } else {
            continue;
        };
        return Err(TlsError::Certificate {
            position: index + 1,
            subject: facts.subject.clone(),
            reason,
        });
    }
    facts
        .into_iter()
        .next()
        .map(|leaf| leaf.key)
        .ok_or_else(|| TlsError::Rustls("the certificate chain is empty".into()))
}

/// How far ahead of this host's clock a certificate's notBefore may be:
/// an issuer that dates a new certificate "now" by a clock running ahead.
const CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

/// A self-signed ECDSA P-256 certificate for `names` (DNS names or IP
/// addresses), valid for 90 days, made and signed inside the module: for
/// development servers. Returns the identity and the certificate as PEM (to
/// give clients as their CA).
pub fn self_signed(names: &[String]) -> Result<(Identity, String), TlsError> {
    let now = time::OffsetDateTime::now_utc();
    let valid = (
        now - time::Duration::days(1),
        now + time::Duration::days(90),
    );
    let (certificate, key) = self_signed_between(names, valid)?;
    let pem = certificate.pem();
    Ok((Identity::new(vec![certificate.der().clone()], key)?, pem))
}

/// A self-signed certificate for `names`, valid from `valid.0` to
/// `valid.1`, and its key.
fn self_signed_between(
    names: &[String],
    valid: (time::OffsetDateTime, time::OffsetDateTime),
) -> Result<(rcgen::Certificate, PrivateKeyDer<'static>), TlsError> {
    let key = SigningKey::generate(SigningKeyType::EcdsaP256)?;
    let pkcs8 = key.to_pkcs8()?;
    let public = key.public_key_der()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(rustls_error)?;
    (params.not_before, params.not_after) = valid;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fipsguard development server");
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&random::bytes(16)?));
    // RFC 5280 4.2.1.2 method (1), computed in the module.
    params.key_identifier_method =
        rcgen::KeyIdMethod::PreSpecified(digest(HashAlgorithm::Sha256, &public)?[..20].to_vec());
    let signer = rcgen::KeyPair::from_remote(Box::new(ModuleSigner(key))).map_err(rustls_error)?;
    let certificate = params.self_signed(&signer).map_err(rustls_error)?;
    let key = PrivateKeyDer::Pkcs8(pkcs8.expose_secret().to_vec().into());
    Ok((certificate, key))
}

/// Lets the certificate builder sign through the module.
struct ModuleSigner(SigningKey);

impl rcgen::RemoteKeyPair for ModuleSigner {
    fn public_key(&self) -> &[u8] {
        // rcgen asks for a borrowed slice; the key is small and lives as long.
        Box::leak(self.0.public_key_raw().into_boxed_slice())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0
            .sign(SignatureScheme::EcdsaP256Sha256, message)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A PEM file that does not parse, said without its contents: the
/// parser's own text quotes the offending line, which in a key file (one
/// written on a single line, say) is the key itself.
fn pem_error(path: &Path, error: rustls::pki_types::pem::Error) -> TlsError {
    use rustls::pki_types::pem::Error;
    let reason = match error {
        Error::Io(e) => e.to_string(),
        Error::NoItemsFound => "no PEM section of the expected kind in it".into(),
        Error::MissingSectionEnd { .. } => {
            "a PEM section has no END line (contents not shown)".into()
        }
        Error::IllegalSectionStart { .. } => {
            "a malformed PEM BEGIN line (contents not shown)".into()
        }
        Error::Base64Decode(_) => {
            "a PEM section's base64 does not decode (contents not shown)".into()
        }
        Error::SectionTooLarge => "a PEM section is larger than 256 MB".into(),
        _ => "not well-formed PEM (contents not shown)".into(),
    };
    file_error(path, reason)
}

fn file_error(path: &Path, error: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

fn rustls_error(error: impl fmt::Display) -> TlsError {
    TlsError::Rustls(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p256_key() -> PrivateKeyDer<'static> {
        let key = SigningKey::generate(SigningKeyType::EcdsaP256).unwrap();
        PrivateKeyDer::Pkcs8(key.to_pkcs8().unwrap().expose_secret().to_vec().into())
    }

    /// DER: `tag`, a short length, `content`.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut der = vec![tag, u8::try_from(content.len()).unwrap()];
        der.extend_from_slice(content);
        der
    }

    #[test]
    fn a_revocation_list_is_read_with_or_without_its_version() {
        let algorithm = tlv(
            0x30,
            &tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
        );
        let common_name = [tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, b"Test CA")].concat();
        let issuer = tlv(0x30, &tlv(0x31, &tlv(0x30, &common_name)));
        let this_update = tlv(0x17, b"261201000000Z");
        let list = |version: &[u8]| {
            let tbs = tlv(0x30, &[version, &algorithm, &issuer, &this_update].concat());
            let signature = tlv(0x03, &[0, 1, 2, 3]);
            (tlv(0x30, &[&tbs[..], &algorithm, &signature].concat()), tbs)
        };
        // v1 (no version), v2 (INTEGER 1).
        for version in [&[][..], &tlv(0x02, &[1])] {
            let (der, tbs) = list(version);
            let read = SignedList::parse(&der).unwrap();
            assert_eq!(read.signed, tbs, "the signed part is tbsCertList whole");
            assert_eq!(read.algorithm, &algorithm[2..]);
            assert_eq!(read.signature, [1, 2, 3]);
            assert_eq!(read.issuer, &issuer[2..]);
            assert_eq!(read.issuer_der, issuer);
            assert_eq!(read.issuer_name(), "CN=Test CA");
            // Cut anywhere, or with bits left over in its signature: not read.
            for len in 0..der.len() {
                assert!(SignedList::parse(&der[..len]).is_none(), "{len}");
            }
        }
        let (mut der, _) = list(&[]);
        let unused_bits = der.len() - 4;
        der[unused_bits] = 4;
        assert!(SignedList::parse(&der).is_none());
    }

    fn testdata(file: &str) -> CertificateDer<'static> {
        let path = format!("{}/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(path).unwrap().into()
    }

    fn refusal(error: TlsError) -> (usize, String) {
        match error {
            TlsError::Certificate {
                position, reason, ..
            } => (position, reason),
            other => panic!("not a certificate refusal: {other}"),
        }
    }

    /// A self-signed certificate valid from `from` to `to` days from now.
    fn valid_for(from: i32, to: i32) -> CertificateDer<'static> {
        let now = time::OffsetDateTime::now_utc();
        let day = time::Duration::days(1);
        let names = ["localhost".to_string()];
        let (certificate, _) =
            self_signed_between(&names, (now + day * from, now + day * to)).unwrap();
        certificate.der().clone()
    }

    #[test]
    fn a_certificate_outside_its_validity_period_is_refused_at_start() {
        let (position, reason) = refusal(check_chain(&[valid_for(-3, -1)]).unwrap_err());
        assert_eq!(position, 1);
        assert!(reason.starts_with("expired on "), "{reason}");
        let early = check_chain(&[valid_for(1, 3)]).unwrap_err();
        assert!(refusal(early).1.starts_with("not valid for another "));
        assert!(check_chain(&[valid_for(-1, 1)]).is_ok());
        // An issuer's clock a minute ahead of this one's.
        let now = time::OffsetDateTime::now_utc();
        let names = ["localhost".to_string()];
        let minute = time::Duration::minutes(1);
        let (ahead, _) = self_signed_between(&names, (now + minute, now + minute * 90)).unwrap();
        assert!(check_chain(&[ahead.der().clone()]).is_ok());
        // An expired root sent after the server's own certificate is not
        // judged: clients take the anchor from their own store.
        assert!(check_chain(&[valid_for(-1, 1), expired_root()]).is_ok());
    }

    #[test]
    fn a_malformed_key_file_is_refused_without_its_contents() {
        let dir = std::env::temp_dir().join(format!("fipsguard-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (chain, key) = (dir.join("chain.pem"), dir.join("key.pem"));
        let (certificate, _) = self_signed_between(
            &["localhost".to_string()],
            (
                time::OffsetDateTime::now_utc() - time::Duration::days(1),
                time::OffsetDateTime::now_utc() + time::Duration::days(1),
            ),
        )
        .unwrap();
        std::fs::write(&chain, certificate.pem()).unwrap();
        // A key on one line, or with its line breaks lost: the parser's
        // own text would quote the whole line back.
        let secret = "c2VjcmV0LWtleS1tYXRlcmlhbA";
        for text in [
            format!("-----BEGIN PRIVATE KEY-----{secret}-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN PRIVATE KEY-----\n{secret}\n"),
            format!("-----BEGIN PRIVATE KEY-----\n{secret}!!\n-----END PRIVATE KEY-----\n"),
        ] {
            std::fs::write(&key, &text).unwrap();
            let refused = Identity::from_pem_files(&chain, &key)
                .unwrap_err()
                .to_string();
            let quoted = format!("{:?}", secret.as_bytes());
            let quoted = &quoted[1..20];
            assert!(
                !refused.contains(secret) && !refused.contains(quoted),
                "{refused}"
            );
            assert!(refused.contains("key.pem"), "{refused}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_established_client_is_checked_again_just_past_its_first_expiry() {
        let hour = std::time::Duration::from_secs(3600);
        let chain = [valid_for(-1, 2), valid_for(-1, 1)];
        let not_after = |der| u64::try_from(certificate::not_after(der).unwrap()).unwrap();
        let (first, last) = (not_after(&chain[1]), not_after(&chain[0]));
        let at = |now: u64| recheck_within_at(&chain, now);
        assert_eq!(
            at(first - 10).as_secs(),
            11,
            "the first notAfter of the chain, plus a second"
        );
        assert_eq!(at(first).as_secs(), 1, "valid through its notAfter second");
        // Past the first, the last is about a day away: an hour at most.
        assert_eq!(at(first + 1), hour);
        assert_eq!(at(last - 5).as_secs(), 6);
        assert_eq!(at(last + 1), hour, "all expired");
        let unparsable = [CertificateDer::from(vec![0x30, 0x00])];
        assert_eq!(recheck_within_at(&unparsable, first), hour);
        assert_eq!(recheck_within_at(&[], first), hour);
    }

    /// A self-signed CA certificate of its own name, expired yesterday.
    fn expired_root() -> CertificateDer<'static> {
        let now = time::OffsetDateTime::now_utc();
        let mut params = rcgen::CertificateParams::default();
        params.not_before = now - time::Duration::days(3);
        params.not_after = now - time::Duration::days(1);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[1]));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "an old root");
        let key = SigningKey::generate(SigningKeyType::EcdsaP256).unwrap();
        let signer = rcgen::KeyPair::from_remote(Box::new(ModuleSigner(key))).unwrap();
        params.self_signed(&signer).unwrap().der().clone()
    }

    #[test]
    fn an_issued_certificate_signed_over_sha1_is_refused_but_a_root_is_not_judged() {
        // A leaf issued with RSASSA-PSS over SHA-1, second in a chain.
        let leaf = testdata("pss-sha256.der");
        let chain = vec![leaf, testdata("pss-sha1.der")];
        // Identity::new judges the chain before the key.
        let error = Identity::new(chain, p256_key()).unwrap_err();
        let text = error.to_string();
        let (position, reason) = refusal(error);
        assert_eq!(position, 2);
        assert!(reason.contains("[sha1-signatures]"), "{reason}");
        assert!(text.contains("leaf signed with RSASSA-PSS sha1"), "{text}");
        // A self-signed SHA-1 root's own signature is checked by no one;
        // a server's own self-signed certificate's is, by clients that pin it.
        let root = testdata("self-signed-sha1.der");
        assert!(check_chain(&[testdata("pss-sha256.der"), root.clone()]).is_ok());
        let (_, reason) = refusal(check_chain(&[root]).unwrap_err());
        assert!(reason.contains("[sha1-signatures]"), "{reason}");
    }
}
