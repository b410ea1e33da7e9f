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

/// Probes every `HOST:PORT` target; one report each, in the given order.
pub fn scan(targets: &[String], policy: &Policy, options: &Options) -> Vec<Report> {
    let mut reports = Vec::with_capacity(targets.len());
    for batch in targets.chunks(PARALLEL_ENDPOINTS) {
        std::thread::scope(|scope| {
            let running: Vec<_> = batch
                .iter()
                .map(|target| scope.spawn(move || scan_one(target, policy, options)))
                .collect();
            reports.extend(
                running
                    .into_iter()
                    .map(|t| t.join().expect("a probe thread")),
            );
        });
    }
    reports
}

fn scan_one(target: &str, policy: &Policy, options: &Options) -> Report {
    let (endpoint, addresses) = match endpoint(target, options) {
        Ok(found) => found,
        Err(reason) => return unreachable(target, "tls.target", reason),
    };
    let seen = match probe::observe(&endpoint) {
        Ok(seen) => seen,
        Err(e) => {
            return unreachable(
                target,
                "tls.reachable",
                format!("{}: {e}", endpoint.address),
            )
        }
    };
    let attempt = handshake::handshakes(&endpoint);
    // Past the deadline the handshakes were cut short: not a result either.
    if let Err(e) = endpoint.connection_timeout() {
        return unreachable(
            target,
            "tls.reachable",
            format!("{}: {e}", endpoint.address),
        );
    }
    let findings = assess::findings(&seen, &attempt, policy);
    // A name may stand for several servers: say which one answered for it.
    let scanned = match addresses {
        1 => format!(" (at {})", endpoint.address),
        n => format!(
            " (at {}, one of the name's {n} addresses: scan each as ADDRESS:PORT with --server-name)",
            endpoint.address
        ),
    };
    Report {
        kind: Kind::Tls,
        subject: target.to_owned(),
        summary: summary(&findings, policy) + &scanned,
        findings,
    }
}

/// Resolves `HOST:PORT` (`[v6]:PORT` too); the host is the SNI unless it is
/// an address. The first address is probed; the count says how many the
/// name has.
fn endpoint(target: &str, options: &Options) -> Result<(Endpoint, usize), String> {
    let (host, _port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("{target}: expected HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses = resolve(target, options.timeout)?;
    let address = *addresses
        .first()
        .ok_or_else(|| format!("{target}: the name has no address"))?;
    let server_name = options.server_name.clone().or_else(|| {
        host.parse::<std::net::IpAddr>()
            .is_err()
            .then(|| host.to_owned())
    });
    let endpoint = Endpoint {
        address,
        server_name,
        timeout: options.timeout,
        deadline: options.deadline,
        deadline_at: std::time::Instant::now().checked_add(options.deadline),
    };
    Ok((endpoint, addresses.len()))
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

fn unreachable(target: &str, id: &str, reason: String) -> Report {
    Report {
        kind: Kind::Tls,
        subject: target.to_owned(),
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
