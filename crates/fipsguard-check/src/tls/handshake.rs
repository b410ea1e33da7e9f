//! Complete handshakes through rustls on the validated module: one with
//! only approved settings, proof that an approved client can talk to the
//! endpoint, then one asking for each key type's certificate (TLS 1.3
//! encrypts the chain, so probes cannot see it).

use std::sync::{Arc, Mutex};

use fipsguard_crypto::tls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use fipsguard_crypto::tls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms,
};
use fipsguard_crypto::tls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use fipsguard_crypto::tls::rustls::{
    self, ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme,
};
use fipsguard_crypto::tls::{provider, PROTOCOL_VERSIONS};

use super::probe::Endpoint;
use super::wire::Deadline;
use fipsguard_crypto::certificate::{inspect, Key};

/// What the approved handshake negotiated.
#[derive(Debug)]
pub struct Negotiated {
    /// e.g. `TLSv1_3`.
    pub protocol: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub suite: String,
    /// e.g. `X25519MLKEM768`.
    pub group: Option<String>,
}

/// The outcome of the approved handshake and the chains the server sent
/// (recorded even when a handshake then fails, e.g. on a weak key).
#[derive(Debug)]
pub struct Attempt {
    /// What was negotiated, or why no approved handshake completed.
    pub outcome: Result<Negotiated, Failure>,
    /// Each chain the server sent, leaf first: to the approved client, and
    /// to clients that verify only ECDSA and only RSA (a server may hold a
    /// certificate of each type). Handshakes that got none add none.
    pub chains: Vec<Vec<CertificateDer<'static>>>,
    /// The key types whose certificate request got no answer (cut off or
    /// timed out, no chain): a certificate may have gone unseen.
    pub unanswered: Vec<String>,
}

/// Why no approved handshake completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server refused or broke off what an approved client offers.
    Refused(String),
    /// The connection was closed or reset without a TLS alert, twice: a
    /// refusal, unless something in front limits connections.
    CutOff(String),
    /// No verdict: the endpoint could not be reached or did not answer in
    /// time, which says nothing about what it would accept.
    Undecided(String),
}

impl Failure {
    /// A refusal when the server said no (a TLS error, a close, a reset);
    /// undecided when it said nothing (a timeout, a network error).
    fn of(error: &std::io::Error) -> Self {
        use std::io::ErrorKind::{ConnectionReset, InvalidData, UnexpectedEof};
        match error.kind() {
            InvalidData => Failure::Refused(error.to_string()),
            UnexpectedEof | ConnectionReset => Failure::CutOff(error.to_string()),
            _ => Failure::Undecided(error.to_string()),
        }
    }
}

/// Completes one handshake with the FIPS policy's client configuration,
/// then asks for the certificate of each key type it did not show.
pub fn handshakes(endpoint: &Endpoint) -> Attempt {
    let all = provider()
        .signature_verification_algorithms
        .supported_schemes();
    let (outcome, chain) = recorded_handshake(endpoint, all.clone());
    let mut attempt = Attempt {
        outcome,
        chains: vec![chain],
        unanswered: Vec::new(),
    };
    // The approved handshake's certificate already shows its own type.
    let shown = attempt.chains[0]
        .first()
        .and_then(|leaf| inspect(leaf).ok())
        .map(|facts| facts.key);
    let families = [
        (
            "ECDSA",
            is_ecdsa as SchemeFilter,
            matches!(shown, Some(Key::Ec(_))),
        ),
        ("RSA", is_rsa, matches!(shown, Some(Key::Rsa(_)))),
    ];
    for (family, member, shown) in families {
        if shown {
            continue;
        }
        let schemes = all.iter().copied().filter(member).collect();
        // Only an alert says the server holds no such certificate: a cut-off
        // or a timeout before any chain may be a limiter in front.
        match recorded_handshake(endpoint, schemes) {
            (Err(Failure::CutOff(reason) | Failure::Undecided(reason)), chain)
                if chain.is_empty() =>
            {
                attempt
                    .unanswered
                    .push(format!("{family} certificate: {reason}"));
            }
            (_, chain) => attempt.chains.push(chain),
        }
    }
    attempt.chains.retain(|chain| !chain.is_empty());
    attempt
}

type SchemeFilter = fn(&SignatureScheme) -> bool;

fn is_ecdsa(scheme: &SignatureScheme) -> bool {
    use SignatureScheme::*;
    matches!(
        scheme,
        ECDSA_NISTP256_SHA256 | ECDSA_NISTP384_SHA384 | ECDSA_NISTP521_SHA512
    )
}

fn is_rsa(scheme: &SignatureScheme) -> bool {
    use SignatureScheme::*;
    matches!(
        scheme,
        RSA_PSS_SHA256
            | RSA_PSS_SHA384
            | RSA_PSS_SHA512
            | RSA_PKCS1_SHA256
            | RSA_PKCS1_SHA384
            | RSA_PKCS1_SHA512
    )
}

/// One handshake verifying only `schemes`, and the chain the server sent.
/// Cut off without an alert, it is asked once more, as the probes are.
fn recorded_handshake(
    endpoint: &Endpoint,
    schemes: Vec<SignatureScheme>,
) -> (Result<Negotiated, Failure>, Vec<CertificateDer<'static>>) {
    let recorder = Arc::new(ChainRecorder::new(schemes));
    let outcome = match handshake(endpoint, recorder.clone()) {
        Err(Failure::CutOff(_)) => handshake(endpoint, recorder.clone()),
        outcome => outcome,
    };
    let chain = recorder.chain.lock().map(|c| c.clone()).unwrap_or_default();
    (outcome, chain)
}

fn handshake(endpoint: &Endpoint, recorder: Arc<ChainRecorder>) -> Result<Negotiated, Failure> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| Failure::Undecided(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(recorder)
        .with_no_client_auth();
    let name = server_name(endpoint).map_err(Failure::Undecided)?;
    let mut connection = ClientConnection::new(Arc::new(config), name)
        .map_err(|e| Failure::Undecided(e.to_string()))?;
    let timeout = endpoint
        .connection_timeout()
        .map_err(|e| Failure::Undecided(e.to_string()))?;
    let mut socket = Deadline::connect(endpoint.address, timeout)
        .map_err(|e| Failure::Undecided(format!("connect: {e}")))?;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut socket)
            .map_err(|e| Failure::of(&e))?;
    }
    let negotiated = Negotiated {
        protocol: format!(
            "{:?}",
            connection.protocol_version().expect("after a handshake")
        ),
        suite: format!(
            "{:?}",
            connection
                .negotiated_cipher_suite()
                .expect("after a handshake")
                .suite()
        ),
        group: connection
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name())),
    };
    connection.send_close_notify();
    let _ = connection.complete_io(&mut socket);
    Ok(negotiated)
}

fn server_name(endpoint: &Endpoint) -> Result<ServerName<'static>, String> {
    match &endpoint.server_name {
        Some(name) => ServerName::try_from(name.clone()).map_err(|e| format!("{name}: {e}")),
        None => Ok(ServerName::IpAddress(endpoint.address.ip().into())),
    }
}

/// Accepts any chain (a scan inspects certificates, it does not trust them)
/// but verifies every handshake signature with the approved algorithms, so
/// the handshake is a real approved one. It offers the server `schemes`,
/// which decide the certificate a server holding several sends.
#[derive(Debug)]
struct ChainRecorder {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    algorithms: WebPkiSupportedAlgorithms,
    schemes: Vec<SignatureScheme>,
}

impl ChainRecorder {
    fn new(schemes: Vec<SignatureScheme>) -> Self {
        ChainRecorder {
            chain: Mutex::new(Vec::new()),
            algorithms: provider().signature_verification_algorithms,
            schemes,
        }
    }
}

impl ServerCertVerifier for ChainRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        if let Ok(mut recorded) = self.chain.lock() {
            *recorded = chain;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Failure;
    use std::io::{Error, ErrorKind};

    #[test]
    fn only_an_answer_is_a_refusal() {
        let refused = Failure::of(&Error::from(ErrorKind::InvalidData));
        assert!(matches!(refused, Failure::Refused(_)));
        for kind in [ErrorKind::UnexpectedEof, ErrorKind::ConnectionReset] {
            let cut = Failure::of(&Error::from(kind));
            assert!(matches!(cut, Failure::CutOff(_)), "{kind:?}");
        }
        for kind in [
            ErrorKind::WouldBlock,
            ErrorKind::TimedOut,
            ErrorKind::ConnectionRefused,
        ] {
            assert!(
                matches!(Failure::of(&Error::from(kind)), Failure::Undecided(_)),
                "{kind:?}"
            );
        }
    }
}
