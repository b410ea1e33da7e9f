//! The other system crypto libraries: GnuTLS, NSS and libgcrypt. Each is
//! not applicable where it is not installed; where it is, each has its own
//! way of entering FIPS mode, most of them following the kernel flag.

use std::env;

use super::root::Unreadable;
use super::{Host, Rule};
use crate::{Finding, Status};

const GNUTLS_CONFIG: &str = "/etc/gnutls/config";
const NSS_DATABASE: &str = "/etc/pki/nssdb/pkcs11.txt";
/// RHEL 8 and older: written by fips-mode-setup, read by NSS with the kernel flag.
const SYSTEM_FIPS: &str = "/etc/system-fips";
const GCRYPT_FORCE: &str = "/etc/gcrypt/fips_enabled";

/// `host.gnutls-fips`.
pub(super) const GNUTLS: Rule = Rule {
    id: "host.gnutls-fips",
    title: "GnuTLS in FIPS 140 mode",
};

/// `host.nss-fips`.
pub(super) const NSS: Rule = Rule {
    id: "host.nss-fips",
    title: "NSS system database in FIPS mode",
};

/// `host.libgcrypt-fips`.
pub(super) const LIBGCRYPT: Rule = Rule {
    id: "host.libgcrypt-fips",
    title: "libgcrypt in FIPS mode",
};

// Versioned names: the unversioned `.so` of GnuTLS and libgcrypt is only a
// development symlink. NSS's runtime library has no version in its name.

/// `host.gnutls-fips`: GnuTLS enters FIPS 140 mode when the kernel flag is
/// 1 (GNUTLS_FORCE_FIPS_MODE=1 switches only the processes that carry it,
/// so the scanner's own is shown, not counted). Pass when it does and the library carries the `.hmac` file a
/// FIPS 140 build checks itself against; warn without that file; fail when
/// nothing switches it on.
pub(super) fn gnutls(rule: &Rule, host: &Host) -> Result<Finding, Unreadable> {
    let Some(library) = host
        .root
        .find_library(|name| name.starts_with("libgnutls.so."))?
    else {
        return Ok(absent(rule, "libgnutls.so"));
    };
    let mut evidence = vec![format!("{library}: present")];
    let hmac = host
        .root
        .find_library(|name| name.starts_with(".libgnutls.so") && name.ends_with(".hmac"))?;
    evidence.push(match &hmac {
        Some(path) => format!("{path}: integrity file of a FIPS 140 build"),
        None => "no .libgnutls.so.*.hmac: this build may have no FIPS 140 mode".to_string(),
    });
    if host.root.read(GNUTLS_CONFIG)?.is_some() {
        evidence.push(format!(
            "{GNUTLS_CONFIG}: present (priority settings; FIPS mode follows the kernel flag)"
        ));
    }
    let forced = host
        .root
        .is_live()
        .then(|| env::var("GNUTLS_FORCE_FIPS_MODE").ok())
        .flatten();
    if let Some(value) = &forced {
        // It switches only the processes that carry it: not the host.
        evidence.push(format!(
            "GNUTLS_FORCE_FIPS_MODE={value} in the scanner's own environment: not counted (it switches only processes that carry it)"
        ));
    }
    evidence.push(host.kernel_evidence());
    let on = host.kernel_on()?;
    let status = match (on, hmac) {
        (true, Some(_)) => Status::Pass,
        (true, None) => Status::Warn,
        (false, _) => Status::Fail,
    };
    Ok(finding(rule, status, evidence).remediation(match status {
        Status::Warn => {
            "install a GnuTLS built with --enable-fips140-mode (RHEL's, Ubuntu Pro FIPS)"
        }
        _ => "boot with fips=1, which GnuTLS follows (RHEL: fips-mode-setup --enable)",
    }))
}

/// `host.nss-fips`: pass when the system database's internal module has the
/// `fips` flag, or (RHEL 8 and older) `/etc/system-fips` exists and the
/// kernel flag is 1; fail otherwise.
pub(super) fn nss(rule: &Rule, host: &Host) -> Result<Finding, Unreadable> {
    let Some(library) = host
        .root
        .find_library(|name| name.starts_with("libnss3.so"))?
    else {
        return Ok(absent(rule, "libnss3.so"));
    };
    let mut evidence = vec![format!("{library}: present")];
    let database = host.root.read(NSS_DATABASE)?;
    let fips_line = database.as_deref().and_then(fips_module_line);
    evidence.push(match (&database, fips_line) {
        (None, _) => format!("no {NSS_DATABASE}: no system NSS database"),
        (Some(_), Some(line)) => format!("{NSS_DATABASE}: {line}"),
        (Some(_), None) => format!("{NSS_DATABASE}: no module with the fips flag"),
    });
    let system_fips = host.root.exists(SYSTEM_FIPS);
    if system_fips {
        evidence.push(format!("{SYSTEM_FIPS}: present"));
        evidence.push(host.kernel_evidence());
    }
    let on = fips_line.is_some() || (system_fips && host.kernel_on()?);
    let status = if on { Status::Pass } else { Status::Fail };
    Ok(finding(rule, status, evidence).remediation(
        "modutil -fips true -dbdir sql:/etc/pki/nssdb (RHEL: fips-mode-setup --enable)",
    ))
}

/// `host.libgcrypt-fips`: libgcrypt enters FIPS mode when
/// `/etc/gcrypt/fips_enabled` exists (whatever it holds) or the kernel flag
/// is 1; pass then, fail otherwise.
pub(super) fn libgcrypt(rule: &Rule, host: &Host) -> Result<Finding, Unreadable> {
    let Some(library) = host
        .root
        .find_library(|name| name.starts_with("libgcrypt.so."))?
    else {
        return Ok(absent(rule, "libgcrypt.so"));
    };
    let forced = host.root.exists(GCRYPT_FORCE);
    let mut evidence = vec![format!("{library}: present")];
    evidence.push(if forced {
        format!("{GCRYPT_FORCE}: present")
    } else {
        format!("no {GCRYPT_FORCE}")
    });
    evidence.push(host.kernel_evidence());
    let status = if forced || host.kernel_on()? {
        Status::Pass
    } else {
        Status::Fail
    };
    Ok(finding(rule, status, evidence).remediation(
        "boot with fips=1, which libgcrypt follows (or create /etc/gcrypt/fips_enabled)",
    ))
}

fn absent(rule: &Rule, library: &str) -> Finding {
    rule.finding(Status::NotApplicable)
        .evidence(format!("no {library} in the library directories"))
}

fn finding(rule: &Rule, status: Status, evidence: Vec<String>) -> Finding {
    evidence
        .into_iter()
        .fold(rule.finding(status), Finding::evidence)
}

/// The `NSS=` line of a module whose flags include `fips`, as NSS writes it
/// for its internal FIPS module (`NSS=Flags=internal,critical,fips ...`).
fn fips_module_line(database: &str) -> Option<&str> {
    database.lines().map(str::trim).find(|line| {
        let Some(settings) = line.strip_prefix("NSS=") else {
            return false;
        };
        settings.split_whitespace().any(|setting| {
            let lower = setting.to_ascii_lowercase();
            lower
                .strip_prefix("flags=")
                .is_some_and(|flags| flags.split(',').any(|flag| flag == "fips"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nss_fips_flag_is_read_from_the_module_settings() {
        let fips = "library=\nname=NSS Internal FIPS PKCS #11 Module\n\
                    NSS=Flags=internal,critical,fips trustOrder=75 cipherOrder=100\n";
        assert_eq!(
            fips_module_line(fips),
            Some("NSS=Flags=internal,critical,fips trustOrder=75 cipherOrder=100")
        );
        let plain = "name=NSS Internal PKCS #11 Module\n\
                     NSS=Flags=internal,critical trustOrder=75 cipherOrder=100\n";
        assert_eq!(fips_module_line(plain), None);
    }
}
