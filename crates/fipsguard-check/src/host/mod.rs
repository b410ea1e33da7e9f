//! FIPS posture of a host: is this machine (or a root tree: an image, a fake
//! `/proc` and `/etc`) set up so that its crypto libraries run in FIPS mode?
//!
//! One finding per rule, in this order, each with the files it read as
//! evidence:
//!
//! | id | passes when |
//! |---|---|
//! | `host.kernel-fips` | `/proc/sys/crypto/fips_enabled` is `1` |
//! | `host.crypto-policy` | `/etc/crypto-policies/config` is `FIPS` or `FIPS:<subpolicy>` (not applicable without one) |
//! | `host.openssl-fips-provider` | OpenSSL 3's `fips.so` is installed, with its module configuration (`fipsmodule.cnf`) |
//! | `host.openssl-fips-active` | the OpenSSL configuration activates the fips provider and requires `fips=yes` (or Red Hat's OpenSSL 3 does both on the kernel flag); on the live system `openssl` shows it active and refuses MD5 by default |
//! | `host.gnutls-fips` | GnuTLS, when present, is switched to FIPS 140 mode |
//! | `host.nss-fips` | NSS, when present, has its system database in FIPS mode |
//! | `host.libgcrypt-fips` | libgcrypt, when present, is switched to FIPS mode |
//!
//! Every path is read inside the root (see [`root`]), so the same scan
//! answers for `/` and for a fixture tree. A file that exists but cannot be
//! read makes its finding an error, never a guess.

mod libraries;
mod openssl;
mod openssl_conf;
mod root;
mod system;

use std::path::Path;

use crate::{Finding, Kind, Report, Status};
use root::{Root, Unreadable};
use system::KernelFlag;

/// Checks the host whose filesystem is rooted at `root` (`/` for this machine).
pub fn scan(root: &Path) -> Report {
    if !root.is_dir() {
        return not_a_host(root, "is not a directory");
    }
    if std::fs::read_dir(root).is_ok_and(|mut entries| entries.next().is_none()) {
        // A mount point with nothing mounted on it yet.
        return not_a_host(root, "is empty (nothing mounted there yet?)");
    }
    let host = Host::new(Root::new(root));
    let findings = vec![
        system::KERNEL.run(|rule| system::kernel_fips(rule, &host)),
        system::CRYPTO_POLICY.run(|rule| system::crypto_policy(rule, &host)),
        openssl::PROVIDER.run(|rule| openssl::provider_installed(rule, &host)),
        openssl::ACTIVE.run(|rule| openssl::provider_active(rule, &host)),
        libraries::GNUTLS.run(|rule| libraries::gnutls(rule, &host)),
        libraries::NSS.run(|rule| libraries::nss(rule, &host)),
        libraries::LIBGCRYPT.run(|rule| libraries::libgcrypt(rule, &host)),
    ];
    Report {
        kind: Kind::Host,
        subject: root.display().to_string(),
        summary: summary(&findings),
        findings,
    }
}

/// A `--root` with no host in it: an error, so that a mistyped or empty
/// one cannot find nothing to check and pass.
fn not_a_host(root: &Path, why: &str) -> Report {
    let finding = Finding::new("host.root", "The tree to scan exists", Status::Error)
        .evidence(format!("{} {why}", root.display()))
        .remediation("give --root the directory the host's filesystem is mounted at");
    Report {
        kind: Kind::Host,
        subject: root.display().to_string(),
        summary: "not scanned".into(),
        findings: vec![finding],
    }
}

/// What every check may ask: the tree, and the kernel flag that several
/// libraries follow (read once, so all findings agree on it).
struct Host {
    root: Root,
    kernel: Result<KernelFlag, Unreadable>,
}

impl Host {
    fn new(root: Root) -> Self {
        let kernel = system::read_kernel_flag(&root);
        Host { root, kernel }
    }

    /// Whether the kernel is in FIPS mode, for libraries that follow it.
    fn kernel_on(&self) -> Result<bool, Unreadable> {
        match &self.kernel {
            Ok(flag) => Ok(*flag == KernelFlag::On),
            Err(unreadable) => Err(unreadable.again()),
        }
    }

    /// The kernel flag as a line of evidence for those libraries.
    fn kernel_evidence(&self) -> String {
        match &self.kernel {
            Ok(flag) => flag.evidence(),
            Err(unreadable) => unreadable.to_string(),
        }
    }
}

/// One rule a host scan checks: its stable id and what it is about.
struct Rule {
    id: &'static str,
    title: &'static str,
}

impl Rule {
    /// A finding of this rule.
    fn finding(&self, status: Status) -> Finding {
        Finding::new(self.id, self.title, status)
    }

    /// Runs a check; a file it could not read makes the finding an error.
    fn run(&self, check: impl FnOnce(&Rule) -> Result<Finding, Unreadable>) -> Finding {
        check(self).unwrap_or_else(|unreadable| {
            let path = unreadable.path.clone();
            self.finding(Status::Error)
                .evidence(unreadable.to_string())
                .remediation(format!(
                    "make {path} a file the scanner can read (or remove what is in its place)"
                ))
        })
    }
}

/// One line: the overall answer, then the counts that support it, e.g.
/// "not in FIPS mode: 3 of 7 checks fail, 2 pass, 2 not applicable".
fn summary(findings: &[Finding]) -> String {
    let count = |status| findings.iter().filter(|f| f.status == status).count();
    let (fail, error) = (count(Status::Fail), count(Status::Error));
    let headline = match (fail, error, count(Status::Warn), count(Status::Pass)) {
        (0, 0, 0, 0) => "nothing FIPS mode applies to",
        (0, 0, 0, _) => "FIPS mode",
        (0, 0, _, _) => "FIPS mode, with warnings",
        (0, _, _, _) => "FIPS mode undetermined",
        _ => "not in FIPS mode",
    };
    let total = findings.len();
    let counts = [
        (fail, "fail"),
        (error, "undecided"),
        (count(Status::Warn), "warn"),
        (count(Status::Pass), "pass"),
        (count(Status::NotApplicable), "not applicable"),
    ];
    let mut parts =
        counts
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .enumerate()
            .map(|(at, (n, what))| match at {
                0 => format!("{n} of {total} checks {what}"),
                _ => format!("{n} {what}"),
            });
    let first = parts.next();
    let rest: Vec<String> = parts.collect();
    match first {
        Some(first) if rest.is_empty() => format!("{headline}: {first}"),
        Some(first) => format!("{headline}: {first}, {}", rest.join(", ")),
        None => format!("{headline}: no checks"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(statuses: &[Status]) -> Vec<Finding> {
        statuses
            .iter()
            .map(|status| Finding::new("host.x", "x", *status))
            .collect()
    }

    #[test]
    fn a_tree_without_proc_or_crypto_libraries_has_nothing_to_check() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let report = scan(dir.path());
        assert_eq!(report.kind, Kind::Host);
        assert_eq!(report.findings.len(), 7);
        assert_eq!(report.verdict(), Status::NotApplicable);
        assert_eq!(
            report.summary,
            "nothing FIPS mode applies to: 7 of 7 checks not applicable"
        );
    }

    #[test]
    fn an_openssl_cnf_without_openssl_3_is_not_judged_as_openssl_3() {
        // RHEL 8: OpenSSL 1.1, its FIPS mode following the kernel flag.
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [
            ("etc/pki/tls/openssl.cnf", "[ req ]\n"),
            ("usr/lib64/libcrypto.so.1.1", "placeholder\n"),
        ] {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let report = scan(dir.path());
        let status =
            |report: &Report, id: &str| report.findings.iter().find(|f| f.id == id).unwrap().status;
        for id in ["host.openssl-fips-provider", "host.openssl-fips-active"] {
            assert_eq!(status(&report, id), Status::NotApplicable, "{id}");
        }
        // An OpenSSL 3 built into /usr/local is judged.
        let local = dir.path().join("usr/local/lib64");
        std::fs::create_dir_all(&local).unwrap();
        std::fs::write(local.join("libcrypto.so.3"), "placeholder\n").unwrap();
        let report = scan(dir.path());
        assert_eq!(status(&report, "host.openssl-fips-provider"), Status::Fail);
    }

    #[test]
    fn summary_leads_with_the_answer_and_counts_the_rest() {
        use Status::*;
        assert_eq!(
            summary(&findings(&[Fail, Pass, Fail, NotApplicable])),
            "not in FIPS mode: 2 of 4 checks fail, 1 pass, 1 not applicable"
        );
        assert_eq!(
            summary(&findings(&[Pass, Pass, NotApplicable])),
            "FIPS mode: 2 of 3 checks pass, 1 not applicable"
        );
        assert_eq!(
            summary(&findings(&[Error, Warn])),
            "FIPS mode undetermined: 1 of 2 checks undecided, 1 warn"
        );
    }
}
