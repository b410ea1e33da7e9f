//! The probes of one endpoint: which versions, suites, groups and signature
//! hashes it accepts, each learnt from raw ClientHellos.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tls_parser::{TlsCipherAu, TlsCipherKx, TlsCipherSuite};

use super::catalog::{all_groups, suites_for, Protocol, GROUPS, MD5_SCHEMES, SHA1_SCHEMES};
use super::wire::{probe, Offer, Reply, ServerHello};

/// Where and how to probe.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The address connected to.
    pub address: SocketAddr,
    /// The name sent as SNI and checked against nothing (a scan inspects, it does not trust).
    pub server_name: Option<String>,
    /// Connect and read timeout of each probe.
    pub timeout: Duration,
    /// How long the whole scan of the target may take.
    pub deadline: Duration,
    /// When that is over (`None`: later than this clock can say).
    pub deadline_at: Option<Instant>,
}

impl Endpoint {
    /// The timeout of the next connection: the probe's own, or what is
    /// left of the scan's; `Err` once the scan's time is up, as a server
    /// that answers every probe just in time could hold a gate for hours.
    pub fn connection_timeout(&self) -> io::Result<Duration> {
        let Some(deadline_at) = self.deadline_at else {
            return Ok(self.timeout);
        };
        match deadline_at.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(self.timeout.min(left)),
            _ => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the scan did not finish within its deadline of {} (--deadline): the endpoint answers too slowly",
                    humantime::format_duration(self.deadline)
                ),
            )),
        }
    }
}

/// Each group probed under a version: whether the server took it.
pub type GroupAnswers = (Protocol, Vec<(u16, bool)>);

/// What the raw probes saw.
#[derive(Debug, Default)]
pub struct Observations {
    /// Each version probed: `Ok` when accepted, else why not (the alert, a close).
    pub protocols: Vec<(Protocol, Result<(), NotTaken>)>,
    /// The suites accepted under each accepted version, in the server's order of preference.
    pub suites: Vec<(Protocol, Vec<u16>)>,
    /// Each of TLS 1.3 and 1.2 the server accepts, and each group's answer
    /// under it: a server may take under one a group it refuses under the other.
    pub groups: Vec<GroupAnswers>,
    /// For SHA-1 and MD5: the scheme the server signed its key exchange
    /// with when offered only that hash (`None` when it refused). Empty when
    /// no TLS 1.2 key exchange could be probed.
    pub weak_hashes: Vec<(&'static str, Option<u16>)>,
    /// Bits of the DHE prime, when the server does finite-field DHE in TLS 1.2.
    pub dh_bits: Option<usize>,
    /// Each distinct certificate sent in the clear (TLS 1.2 and older),
    /// from every accepted version and suite (the certificate can follow
    /// the suite's signature type), in the order first seen; at most
    /// [`MAX_CERTIFICATES`].
    pub plaintext_certificates: Vec<Vec<u8>>,
    /// Whether the server sent more distinct certificates than that.
    pub too_many_certificates: bool,
}

/// Distinct certificates judged per scan: real servers send a handful; a
/// hostile one could send thousands of chains to exhaust the scanner.
pub const MAX_CERTIFICATES: usize = 256;

/// Why an offer was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotTaken {
    /// The server said no: an alert, another version, a broken answer.
    Refused(String),
    /// The connection was closed or reset without a word, twice: a
    /// refusal, unless a limiter in front cut it.
    CutOff(&'static str),
}

impl fmt::Display for NotTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotTaken::Refused(reason) => f.write_str(reason),
            NotTaken::CutOff(reason) => f.write_str(reason),
        }
    }
}

impl Observations {
    /// Whether the server accepted `protocol`.
    pub fn accepts(&self, protocol: Protocol) -> bool {
        self.protocols.contains(&(protocol, Ok(())))
    }

    fn keep_chain(&mut self, chain: &[Vec<u8>]) {
        for certificate in chain {
            if self.plaintext_certificates.contains(certificate) {
                continue;
            }
            if self.plaintext_certificates.len() == MAX_CERTIFICATES {
                self.too_many_certificates = true;
                return;
            }
            self.plaintext_certificates.push(certificate.clone());
        }
    }
}

/// Runs every probe against `endpoint`. `Err` when the endpoint stops
/// answering at the TCP level: a partial scan is not a result.
pub fn observe(endpoint: &Endpoint) -> io::Result<Observations> {
    let mut seen = Observations::default();
    for protocol in Protocol::ALL {
        let answer = accepted_hello(endpoint, protocol)?;
        if let Ok(hello) = answer.as_ref() {
            seen.keep_chain(&hello.certificates);
            let suites = accepted_suites(endpoint, protocol, &mut seen)?;
            if suites.is_empty() {
                return Err(io::Error::other(format!(
                    "the server took {} with every suite offered, then refused them all: its answers cannot be judged",
                    protocol.name()
                )));
            }
            seen.suites.push((protocol, suites));
        }
        seen.protocols.push((protocol, answer.map(drop)));
    }
    check_refusals_were_answers(endpoint, &seen)?;
    seen.groups = accepted_groups(endpoint, &seen)?;
    if seen.accepts(Protocol::Tls12) {
        seen.weak_hashes = weak_hash_signatures(endpoint)?;
        seen.dh_bits = dh_prime_bits(endpoint)?;
    }
    Ok(seen)
}

/// When versions were refused only by a cut-off connection, asks again for
/// a version the server took: cut off as well, the server was limiting the
/// scanner, and its refusals prove nothing.
fn check_refusals_were_answers(endpoint: &Endpoint, seen: &Observations) -> io::Result<()> {
    let cut_off = seen
        .protocols
        .iter()
        .any(|(_, answer)| matches!(answer, Err(NotTaken::CutOff(_))));
    let Some(&accepted) = Protocol::ALL.iter().find(|&&p| seen.accepts(p)) else {
        return Ok(());
    };
    if cut_off {
        still_takes(endpoint, accepted)?;
    }
    Ok(())
}

/// After a probe was cut off without an alert: `Err` unless the server
/// still takes `protocol` (it did before), as it then was limiting the
/// scanner, and the cut proves nothing.
fn still_takes(endpoint: &Endpoint, protocol: Protocol) -> io::Result<()> {
    match accepted_hello(endpoint, protocol)? {
        Ok(_) => Ok(()),
        Err(_) => Err(io::Error::other(format!(
            "the server cut off probes without an alert, then one for {} it had taken: a limit on connections, not refusals",
            protocol.name()
        ))),
    }
}

/// The server's hello when it accepts the offer's version, else why not.
/// A probe without a verdict is tried once more, then fails the scan: a
/// partial scan is not a result.
fn answer(endpoint: &Endpoint, offer: &Offer<'_>) -> io::Result<Result<ServerHello, NotTaken>> {
    // A connection cut short by the deadline fails as the deadline.
    let attempt = || {
        probe(
            endpoint.address,
            endpoint.server_name.as_deref(),
            offer,
            endpoint.connection_timeout()?,
        )
        .map_err(|e| endpoint.connection_timeout().err().unwrap_or(e))
    };
    // A close or reset without an alert may be a limit on connections,
    // not an answer: asked once more too.
    let reply = match attempt()? {
        Reply::Unanswered(_) | Reply::CutOff(_) => attempt()?,
        reply => reply,
    };
    Ok(match reply {
        Reply::Hello(hello) if hello.version == offer.protocol.wire() => Ok(hello),
        Reply::Hello(hello) => Err(NotTaken::Refused(format!(
            "answered with version 0x{:04x}",
            hello.version
        ))),
        Reply::Refused(reason) => Err(NotTaken::Refused(reason)),
        Reply::CutOff(reason) => Err(NotTaken::CutOff(reason)),
        Reply::Unanswered(reason) => {
            let probe = offer.protocol.name();
            return Err(io::Error::other(format!(
                "the {probe} probe got {reason}, twice"
            )));
        }
    })
}

/// The server's hello when it takes `offer`, `None` when it refuses it. A
/// probe cut off without an alert counts as refused only once the server
/// has shown it still takes `known` (a version it took before): a limit
/// on connections in front of it would otherwise hide what it accepts.
fn send(
    endpoint: &Endpoint,
    offer: &Offer<'_>,
    known: Protocol,
) -> io::Result<Option<ServerHello>> {
    match answer(endpoint, offer)? {
        Ok(hello) => Ok(Some(hello)),
        Err(NotTaken::Refused(_)) => Ok(None),
        Err(NotTaken::CutOff(_)) => still_takes(endpoint, known).map(|()| None),
    }
}

/// The server's hello when it accepts `protocol` with everything offered.
fn accepted_hello(
    endpoint: &Endpoint,
    protocol: Protocol,
) -> io::Result<Result<ServerHello, NotTaken>> {
    let suites = suites_for(protocol);
    let groups = all_groups();
    let mut offer = Offer::new(protocol, &suites, &groups);
    offer.through_key_exchange = protocol != Protocol::Tls13;
    answer(endpoint, &offer)
}

/// Every suite the server accepts under `protocol`: offer all, strike the
/// one it picks, repeat until it refuses (one connection per accepted
/// suite). Before TLS 1.3, each answer's certificate chain is kept too.
fn accepted_suites(
    endpoint: &Endpoint,
    protocol: Protocol,
    seen: &mut Observations,
) -> io::Result<Vec<u16>> {
    let mut remaining = suites_for(protocol);
    let groups = all_groups();
    let mut accepted = Vec::new();
    while !remaining.is_empty() {
        let mut offer = Offer::new(protocol, &remaining, &groups);
        offer.through_key_exchange = protocol != Protocol::Tls13;
        let Some(hello) = send(endpoint, &offer, protocol)? else {
            break;
        };
        seen.keep_chain(&hello.certificates);
        let Some(index) = remaining.iter().position(|&s| s == hello.suite) else {
            // A broken server: what else it takes cannot be told.
            return Err(io::Error::other(format!(
                "under {} the server picked suite 0x{:04x}, which it was not offered",
                protocol.name(),
                hello.suite
            )));
        };
        accepted.push(remaining.remove(index));
    }
    Ok(accepted)
}

/// Each group alone, under each of TLS 1.3 and 1.2 the server accepts:
/// under TLS 1.3 the HelloRetryRequest names the group; under TLS 1.2 the
/// ECDHE key exchange does.
fn accepted_groups(endpoint: &Endpoint, seen: &Observations) -> io::Result<Vec<GroupAnswers>> {
    let mut all = Vec::new();
    for protocol in [Protocol::Tls13, Protocol::Tls12] {
        if !seen.accepts(protocol) {
            continue;
        }
        let suites = match protocol {
            Protocol::Tls13 => suites_for(protocol),
            _ => ephemeral_suites(&[TlsCipherKx::Ecdhe]),
        };
        let mut answers = Vec::new();
        // ECDHE suites take only elliptic-curve groups (code points below
        // the finite-field ones); TLS 1.3 takes every kind.
        let probed = GROUPS
            .iter()
            .filter(|group| protocol == Protocol::Tls13 || group.id < 0x0100);
        for group in probed {
            let mut offer = Offer::new(protocol, &suites, std::slice::from_ref(&group.id));
            offer.through_key_exchange = true;
            let chosen = send(endpoint, &offer, protocol)?
                .and_then(|hello| hello.group.or(hello.key_exchange_group));
            answers.push((group.id, chosen == Some(group.id)));
        }
        all.push((protocol, answers));
    }
    Ok(all)
}

/// TLS 1.2 suites whose key exchange is one of `kinds`, without PSK (a
/// PSK key exchange starts with an identity hint, another layout).
fn ephemeral_suites(kinds: &[TlsCipherKx]) -> Vec<u16> {
    suites_for(Protocol::Tls12)
        .into_iter()
        .filter(|&id| {
            TlsCipherSuite::from_id(id)
                .is_some_and(|s| kinds.contains(&s.kx) && s.au != TlsCipherAu::Psk)
        })
        .collect()
}

/// The size of the server's finite-field DHE prime, if it does DHE at all.
fn dh_prime_bits(endpoint: &Endpoint) -> io::Result<Option<usize>> {
    let suites = ephemeral_suites(&[TlsCipherKx::Dhe]);
    let groups = all_groups();
    let mut offer = Offer::new(Protocol::Tls12, &suites, &groups);
    offer.through_key_exchange = true;
    Ok(send(endpoint, &offer, Protocol::Tls12)?.and_then(|hello| hello.dh_bits))
}

/// Offers only SHA-1 (then only MD5) signature schemes and reads which
/// scheme signs the ServerKeyExchange, if the server goes on at all.
fn weak_hash_signatures(endpoint: &Endpoint) -> io::Result<Vec<(&'static str, Option<u16>)>> {
    let suites = ephemeral_suites(&[TlsCipherKx::Ecdhe, TlsCipherKx::Dhe]);
    let groups = all_groups();
    let mut answers = Vec::new();
    for (hash, schemes) in [("SHA-1", SHA1_SCHEMES), ("MD5", MD5_SCHEMES)] {
        let mut offer = Offer::new(Protocol::Tls12, &suites, &groups);
        offer.signature_schemes = schemes;
        offer.through_key_exchange = true;
        let used = send(endpoint, &offer, Protocol::Tls12)?
            .and_then(|hello| hello.key_exchange_signature)
            .filter(|scheme| schemes.contains(scheme));
        answers.push((hash, used));
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_kept_once_and_only_up_to_the_limit() {
        let mut seen = Observations::default();
        let chain: Vec<Vec<u8>> = (0..200u32).map(|n| n.to_be_bytes().to_vec()).collect();
        seen.keep_chain(&chain);
        seen.keep_chain(&chain);
        assert_eq!(seen.plaintext_certificates.len(), 200);
        assert!(!seen.too_many_certificates);
        let more: Vec<Vec<u8>> = (150..400u32).map(|n| n.to_be_bytes().to_vec()).collect();
        seen.keep_chain(&more);
        assert_eq!(seen.plaintext_certificates.len(), MAX_CERTIFICATES);
        assert!(seen.too_many_certificates);
    }
}
