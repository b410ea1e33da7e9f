//! What a TLS endpoint accepts, judged against a policy: raw ClientHellos
//! for each version, suite and group (reading a ServerHello needs no
//! crypto), then complete handshakes: one approved, and one asking for
//! each key type's certificate.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

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
    /// Longest time the whole scan of one endpoint may take.
    pub deadline: Duration,
}

/// Endpoints probed at once; each one's probes run one after another
/// (many servers handle one handshake at a time).
const PARALLEL_ENDPOINTS: usize = 32;

/// Addresses of one name probed, the first ones its resolution gives.
const MAX_ADDRESSES: usize = 16;

/// Probes every `HOST:PORT` target, at each of its host's addresses (a
/// pool behind one name may hold one server set up differently from the
/// rest); one report per address, in the given order.
pub fn scan(targets: &[String], policy: &Policy, options: &Options) -> Vec<Report> {
    let resolved = in_parallel(targets.iter().collect(), |target| {
        match plan(target, options) {
            Ok(scans) => scans.into_iter().map(Ok).collect(),
            Err(reason) => vec![Err(unreachable(target.clone(), "tls.target", reason))],
        }
    });
    let scans = resolved.into_iter().flatten().collect();
    in_parallel(scans, |scan| match scan {
        Ok(scan) => scan.run(policy),
        Err(report) => report,
    })
}

/// `work` on each item, [`PARALLEL_ENDPOINTS`] at a time; the results in
/// the items' order.
fn in_parallel<T: Send, R: Send>(items: Vec<T>, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    let mut results = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    let work = &work;
    while items.peek().is_some() {
        let batch: Vec<T> = items.by_ref().take(PARALLEL_ENDPOINTS).collect();
        std::thread::scope(|scope| {
            let running: Vec<_> = batch
                .into_iter()
                .map(|item| scope.spawn(move || work(item)))
                .collect();
            results.extend(
                running
                    .into_iter()
                    .map(|t| t.join().expect("a probe thread")),
            );
        });
    }
    results
}

/// The scan of one address of a target.
struct Scan {
    /// The report's subject: the target, and the address when its host
    /// has several.
    subject: String,
    endpoint: Endpoint,
    /// How many addresses the host has.
    addresses: usize,
}

impl Scan {
    fn run(mut self, policy: &Policy) -> Report {
        // From now: scans wait for their turn in batches.
        self.endpoint.deadline_at = std::time::Instant::now().checked_add(self.endpoint.deadline);
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
        let scanned = match self.addresses {
            1 => format!(" (at {})", endpoint.address),
            n if n > MAX_ADDRESSES => format!(
                " (one of the name's {n} addresses, of which the first {MAX_ADDRESSES} are scanned: scan the others as ADDRESS:PORT with --server-name)"
            ),
            n => format!(" (one of the name's {n} addresses, each scanned)"),
        };
        Report {
            kind: Kind::Tls,
            subject: self.subject,
            summary: summary(&findings, policy) + &scanned,
            findings,
        }
    }
}

/// Resolves `HOST:PORT` (`[v6]:PORT` too) into a scan of each address
/// (at most [`MAX_ADDRESSES`]); the host is the SNI unless it is an
/// address.
fn plan(target: &str, options: &Options) -> Result<Vec<Scan>, String> {
    let (host, _port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("{target}: expected HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses = resolve(target, options.timeout)?;
    if addresses.is_empty() {
        return Err(format!("{target}: the name has no address"));
    }
    let server_name = options.server_name.clone().or_else(|| {
        host.parse::<std::net::IpAddr>()
            .is_err()
            .then(|| host.to_owned())
    });
    let count = addresses.len();
    Ok(addresses
        .into_iter()
        .take(MAX_ADDRESSES)
        .map(|address| Scan {
            subject: match count {
                1 => target.to_owned(),
                _ => format!("{target} at {address}"),
            },
            endpoint: Endpoint {
                address,
                server_name: server_name.clone(),
                timeout: options.timeout,
                deadline: options.deadline,
                deadline_at: None,
            },
            addresses: count,
        })
        .collect())
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
        Err(_) => Err(format!(
            "{target}: the name did not resolve within {} (--timeout)",
            humantime::format_duration(timeout)
        )),
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
