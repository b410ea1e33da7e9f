//! `check binary`: which crypto an ELF file carries, and whether it is a
//! validated module.
//!
//! Every conclusion rests on evidence a reviewer can check by hand: dynamic
//! dependencies (`readelf -d`), symbols (`nm`), sections (`readelf -S`), Go
//! build info (`go version -m`) and C strings (`strings`), the last because
//! they survive `strip`. Each kind of crypto found is a finding of its own;
//! `binary.crypto-module` carries the verdict, the worst of them:
//!
//! | verdict | when |
//! |---|---|
//! | pass | the crypto carried is a validated module: AWS-LC FIPS, BoringCrypto (Go+BoringCrypto too, when linked, not merely asked for), the Go Cryptographic Module at a frozen `GOFIPS140` version |
//! | warn | the module is the host's (shared libcrypto, GnuTLS, NSS, libgcrypt; Go through golang-fips/openssl; static OpenSSL 3, FIPS only through the host's provider), Go's in-tree module (`GOFIPS140=latest`), or Rust crates implementing primitives, whose use a reviewer judges |
//! | fail | crypto that is not a validated module is carried, alone or beside one: standard Go crypto, non-FIPS AWS-LC or BoringSSL, OpenSSL before 3, ring (Rust crypto crates warn instead) |
//! | not-applicable | no crypto was found |
//! | error | the file could not be read, is malformed, or was named but is not ELF |
//!
//! Wrappers over a module (aws-lc-rs, rustls' provider, Go's `crypto/*` API
//! over BoringCrypto) are not separate crypto and are not reported.

mod detect;
mod elf;
mod go;
mod loader;
mod strings;
mod verdict;
mod walk;

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crate::{Finding, Report};
use loader::Loader;

/// The finding id of BoringCrypto, whether Go or something else linked it.
const BORINGCRYPTO: &str = "binary.boringcrypto";
const BORINGCRYPTO_TITLE: &str = "BoringCrypto, BoringSSL's validated module";

/// For crypto whose module is the host's: where to look next.
const HOST_REMEDIATION: &str =
    "The module is the host's, if any: run `fipsguard check host` where this binary runs \
     (kernel FIPS mode, OpenSSL FIPS provider, crypto policy).";

/// Scans files and, recursively, directories; one report per ELF file,
/// sorted by path. Files that are not ELF are skipped inside directories
/// and reported as errors when named. Each file is scanned once, under its
/// own name rather than a link's; links to directories are not followed.
pub fn scan(paths: &[PathBuf]) -> Vec<Report> {
    let walk::Coverage {
        targets,
        dirs,
        errors: mut reports,
    } = walk::targets(paths);
    let (checked, inspected): (HashSet<_>, Vec<_>) =
        inspect_all(&targets, &Loader::new()).into_iter().unzip();
    reports.extend(inspected);
    reports.extend(walk::without_binaries(&dirs, &checked));
    reports.sort_by(|a, b| a.subject.cmp(&b.subject));
    reports
}

/// The report for ELF bytes already in memory (`subject` names them), as
/// [`scan`] makes for a file: the entry point for fuzzing the parsers.
pub fn scan_bytes(subject: &str, bytes: &[u8]) -> Report {
    verdict::report(subject.to_owned(), bytes, None)
}

/// Inspects the targets on up to four cores: files are independent, and
/// reading and searching them is most of a scan's time. Each worker holds
/// one whole file, so the cap also bounds memory. Each report comes with
/// the file it is about.
fn inspect_all(targets: &[walk::Target], loader: &Loader) -> Vec<(walk::FileId, Report)> {
    const MAX_WORKERS: usize = 4;
    let next = AtomicUsize::new(0);
    let workers = thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .clamp(1, targets.len().clamp(1, MAX_WORKERS));
    thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut reports = Vec::new();
                    while let Some(target) = targets.get(next.fetch_add(1, Ordering::Relaxed)) {
                        reports.extend(inspect(target, loader).map(|report| (target.id, report)));
                    }
                    reports
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn inspect(target: &walk::Target, loader: &Loader) -> Option<Report> {
    let subject = target.path.display().to_string();
    match elf::read_if_elf(&target.path) {
        Ok(Some(bytes)) => Some(verdict::report(
            subject,
            &bytes,
            Some((&target.path, loader)),
        )),
        Ok(None) if target.named => Some(verdict::error(subject, "not an ELF file")),
        Ok(None) => None,
        Err(err) => Some(verdict::error(subject, format!("cannot read: {err}"))),
    }
}

/// One kind of crypto found in a binary: its finding, and how the report's
/// summary names it.
struct Component {
    finding: Finding,
    label: String,
}

impl Component {
    fn new(mut finding: Finding, evidence: EvidenceSet, label: String) -> Self {
        finding.evidence = evidence.0;
        Component { finding, label }
    }
}

/// Evidence lines being gathered for a finding.
#[derive(Debug, Clone, Default)]
struct EvidenceSet(Vec<String>);

impl EvidenceSet {
    fn push(&mut self, line: impl Into<String>) {
        self.0.push(line.into());
    }

    fn extend(&mut self, other: &EvidenceSet) {
        self.0.extend(other.0.iter().cloned());
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One line for the defined symbols starting with `prefix`: how many,
    /// and the first as an example.
    fn symbols(&mut self, facts: &elf::Facts<'_>, prefix: &str) {
        let mut names = facts.symbols_with_prefix(prefix);
        if let Some(first) = names.next() {
            let count = 1 + names.count();
            self.push(format!("{count} symbols {prefix}*, e.g. {first}"));
        }
    }
}
