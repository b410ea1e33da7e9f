//! What a TLS endpoint accepts, judged against a policy: raw ClientHellos
//! for each version, suite and group (reading a ServerHello needs no
//! crypto), then complete handshakes: one approved, and one asking for
//! each key type's certificate.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use fipsguard_crypto::tls::rustls::pki_types::ServerName;

use crate::{Finding, Kind, Report, Status};

mod assess;
mod catalog;
mod handshake;
mod policy;
mod probe;
mod wire;

pub use catalog::Protocol;
pub use policy::{Policy, PolicyError};
pub use wire::{read_reply, Reply, ServerHello};

use probe::Endpoint;

/// How endpoints are probed.
#[derive(Debug, Clone)]
pub struct Options {
    /// Connect and read timeout of each probe connection, and the longest
    /// the host name may take to resolve.
    pub timeout: Duration,
    /// SNI to send instead of the target's host name.
    pub server_name: Option<String>,
    /// Longest time the whole scan of one target, all its addresses
    /// together, may take.
    pub deadline: Duration,
}

/// Targets probed at once; each one's probes run one after another
/// (many servers handle one handshake at a time), address by address.
const PARALLEL_ENDPOINTS: usize = 32;

/// The longest DNS name (RFC 1035, 2.3.4, written without its final dot).
const MAX_DNS_NAME: usize = 253;

/// Addresses of one name probed: the first in address order.
const MAX_ADDRESSES: usize = 16;

/// Probes every `HOST:PORT` target, at each address of its host that this
/// host has a route to (a pool behind one name may hold one server set up
/// differently from the rest); one report per address, in the given order.
pub fn scan(targets: &[String], policy: &Policy, options: &Options) -> Vec<Report> {
    let mut reports = Vec::with_capacity(targets.len());
    for batch in targets.chunks(PARALLEL_ENDPOINTS) {
        std::thread::scope(|scope| {
            let running: Vec<_> = batch
                .iter()
                .map(|target| scope.spawn(move || scan_target(target, policy, options)))
                .collect();
            reports.extend(
                running
                    .into_iter()
                    .flat_map(|t| t.join().expect("a probe thread")),
            );
        });
    }
    reports
}

/// The addresses of one target, one after another: those of a name with
/// an IPv4 and an IPv6 address are one server.
fn scan_target(target: &str, policy: &Policy, options: &Options) -> Vec<Report> {
    match plan(target, options) {
        Ok(scans) => scans.into_iter().map(|scan| scan.run(policy)).collect(),
        Err(reason) => vec![unreachable(target.to_owned(), "tls.target", reason)],
    }
}

/// The scan of one address of a target.
struct Scan {
    /// The report's subject: the target, or `TARGET/ADDRESS` when more
    /// than one of its addresses is scanned (a URI path, so that SARIF's
    /// `tls://` location stays one).
    subject: String,
    endpoint: Endpoint,
    /// What the report says of the name's other addresses.
    coverage: String,
}

impl Scan {
    fn run(self, policy: &Policy) -> Report {
        let endpoint = &self.endpoint;
        let cut = |e: std::io::Error| {
            unreachable(
                self.subject.clone(),
                "tls.reachable",
                format!("{}: {e}", endpoint.address),
            )
        };
        let seen = match probe::observe(endpoint) {
            Ok(seen) => seen,
            Err(e) => return cut(e),
        };
        let attempt = handshake::handshakes(endpoint);
        // Past the deadline the handshakes were cut short: not a result either.
        if let Err(e) = endpoint.connection_timeout() {
            return cut(e);
        }
        let findings = assess::findings(&seen, &attempt, policy);
        Report {
            kind: Kind::Tls,
            subject: self.subject,
            summary: summary(&findings, policy) + &self.coverage,
            findings,
        }
    }
}

/// Resolves `HOST:PORT` (`[v6]:PORT` too) into a scan of each address
/// this host has a route to, in address order (at most
/// [`MAX_ADDRESSES`]; all of them when it has a route to none, each then
/// reported unreachable); the host is the SNI unless it is an address.
fn plan(target: &str, options: &Options) -> Result<Vec<Scan>, String> {
    let (host, _port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("{target}: expected HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Some(name) = &options.server_name {
        // Sent in every hello: a name no server could have is refused here.
        if name.len() > MAX_DNS_NAME {
            return Err(format!(
                "--server-name is longer than a DNS name can be ({MAX_DNS_NAME} characters)"
            ));
        }
        ServerName::try_from(name.as_str()).map_err(|e| format!("--server-name {name:?}: {e}"))?;
    }
    let mut addresses = resolve(target, options.timeout)?;
    addresses.sort_unstable();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(format!("{target}: the name has no address"));
    }
    // One deadline for all of a name's addresses: a gate is held no longer
    // for a name with many.
    let deadline_at = std::time::Instant::now().checked_add(options.deadline);
    let total = addresses.len();
    let (routed, unrouted): (Vec<_>, Vec<_>) = addresses
        .into_iter()
        .partition(|address| routable(*address));
    // With no route to any, each is scanned, to be reported unreachable.
    let (chosen, passed_over) = if routed.is_empty() {
        (unrouted, 0)
    } else {
        (routed, unrouted.len())
    };
    let scanned = chosen.len().min(MAX_ADDRESSES);
    let server_name = options.server_name.clone().or_else(|| {
        host.parse::<std::net::IpAddr>()
            .is_err()
            .then(|| host.to_owned())
    });
    let mut others = Vec::new();
    if scanned > 1 {
        others.push(format!("{scanned} scanned"));
    }
    if chosen.len() > MAX_ADDRESSES {
        others.push(format!(
            "{} past the first {MAX_ADDRESSES} not scanned (scan them as ADDRESS:PORT with --server-name)",
            chosen.len() - MAX_ADDRESSES
        ));
    }
    if passed_over > 0 {
        others.push(format!(
            "{passed_over} with no route from this host not scanned"
        ));
    }
    Ok(chosen
        .into_iter()
        .take(MAX_ADDRESSES)
        .map(|address| Scan {
            subject: match scanned {
                1 => target.to_owned(),
                _ => format!("{target}/{}", address.ip()),
            },
            coverage: match total {
                1 => format!(" (at {address})"),
                _ => format!(
                    " (at {address}, one of the name's {total} addresses: {})",
                    others.join(", ")
                ),
            },
            endpoint: Endpoint {
                address,
                server_name: server_name.clone(),
                timeout: options.timeout,
                deadline: options.deadline,
                deadline_at,
            },
        })
        .collect())
}

/// Whether this host has a route to `address`: connecting a UDP socket
/// looks the route up and sends nothing. A name's IPv6 address is passed
/// over on a host without IPv6, whose clients never use it.
fn routable(address: SocketAddr) -> bool {
    let any: SocketAddr = match address {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    std::net::UdpSocket::bind(any)
        .and_then(|socket| socket.connect(address))
        .is_ok()
}

/// `target`'s addresses, from the system resolver, which is given
/// `timeout`: a resolver that does not answer would otherwise hold the
/// scan (and a CI gate) for as long as its own retries last. Past it, the
/// lookup is left to end on its own thread.
fn resolve(target: &str, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    let (answer, answered) = std::sync::mpsc::channel();
    let name = target.to_owned();
    std::thread::spawn(move || {
        let _ = answer.send(name.to_socket_addrs().map(Iterator::collect));
    });
    match answered.recv_timeout(timeout) {
        Ok(found) => found.map_err(|e| format!("{target}: {e}")),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "{target}: the name did not resolve within {} (--timeout)",
            humantime::format_duration(timeout)
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(format!("{target}: the name's lookup failed"))
        }
    }
}

fn unreachable(subject: String, id: &str, reason: String) -> Report {
    Report {
        kind: Kind::Tls,
        subject,
        summary: "not scanned".into(),
        findings: vec![
            Finding::new(id, "The endpoint could be probed", Status::Error)
                .evidence(reason)
                .remediation("check the address and that the endpoint is up"),
        ],
    }
}

fn summary(findings: &[Finding], policy: &Policy) -> String {
    let count = |status| findings.iter().filter(|f| f.status == status).count();
    let total = findings.len();
    match (count(Status::Fail), count(Status::Error)) {
        (0, 0) => format!("meets {}", policy.name),
        (0, n) => format!("incomplete: {n} of {total} checks undecided"),
        (n, 0) => format!("{n} of {total} checks fail {}", policy.name),
        (n, m) => format!("{n} of {total} checks fail {}, {m} undecided", policy.name),
    }
}
