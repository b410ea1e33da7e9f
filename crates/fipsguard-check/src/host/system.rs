//! The system-wide switches: the kernel's FIPS flag, which the libraries
//! follow, and the system crypto policy (RHEL, Fedora and relatives), which
//! configures them all at once.

use super::root::{Root, Unreadable};
use super::{Host, Rule};
use crate::{Finding, Status};

const KERNEL_FLAG: &str = "/proc/sys/crypto/fips_enabled";
const POLICY: &str = "/etc/crypto-policies/config";
/// What `update-crypto-policies` last applied; the config is only what was asked for.
const POLICY_APPLIED: &str = "/etc/crypto-policies/state/current";

/// `host.kernel-fips`.
pub(super) const KERNEL: Rule = Rule {
    id: "host.kernel-fips",
    title: "kernel in FIPS mode (fips_enabled)",
};

/// `host.crypto-policy`.
pub(super) const CRYPTO_POLICY: Rule = Rule {
    id: "host.crypto-policy",
    title: "system crypto policy is FIPS",
};

/// What `/proc/sys/crypto/fips_enabled` says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum KernelFlag {
    /// `1`: the kernel runs its self-tests and the libraries follow it.
    On,
    /// `0`.
    Off,
    /// `/proc/sys` exists but the flag does not: a kernel built without
    /// `CONFIG_CRYPTO_FIPS`.
    Unsupported,
    /// No `/proc/sys` in the tree: an image, whose kernel is that of
    /// whichever host runs it.
    NoKernel,
    /// Neither `0` nor `1`.
    Unexpected(String),
}

impl KernelFlag {
    /// The flag as a line of evidence.
    pub fn evidence(&self) -> String {
        match self {
            KernelFlag::On => format!("{KERNEL_FLAG}: 1"),
            KernelFlag::Off => format!("{KERNEL_FLAG}: 0"),
            KernelFlag::Unsupported => {
                format!("kernel has no FIPS support compiled in (no {KERNEL_FLAG})")
            }
            KernelFlag::NoKernel => {
                "no /proc/sys in this tree: the kernel flag is the running host's".to_string()
            }
            KernelFlag::Unexpected(text) => {
                format!("{KERNEL_FLAG}: {text:?} (expected 0 or 1)")
            }
        }
    }
}

/// Reads the kernel flag.
pub(super) fn read_kernel_flag(root: &Root) -> Result<KernelFlag, Unreadable> {
    let Some(text) = root.read(KERNEL_FLAG)? else {
        return Ok(if root.is_dir("/proc/sys") {
            KernelFlag::Unsupported
        } else {
            KernelFlag::NoKernel
        });
    };
    Ok(match text.trim() {
        "1" => KernelFlag::On,
        "0" => KernelFlag::Off,
        other => KernelFlag::Unexpected(other.to_string()),
    })
}

/// `host.kernel-fips`: pass on `1`; fail on `0` or a kernel without the flag.
pub(super) fn kernel_fips(rule: &Rule, host: &Host) -> Result<Finding, Unreadable> {
    let flag = host.kernel.as_ref().map_err(Unreadable::again)?;
    let (status, remediation) = match flag {
        KernelFlag::On => (Status::Pass, ""),
        KernelFlag::Off | KernelFlag::Unsupported => (
            Status::Fail,
            "boot a FIPS-capable kernel with fips=1 on its command line \
             (RHEL: fips-mode-setup --enable; Ubuntu: pro enable fips)",
        ),
        KernelFlag::NoKernel => (Status::NotApplicable, ""),
        KernelFlag::Unexpected(_) => (
            Status::Error,
            "read the kernel flag on the running host, not a copy",
        ),
    };
    Ok(rule
        .finding(status)
        .evidence(flag.evidence())
        .remediation(remediation))
}

/// `host.crypto-policy`: pass on `FIPS` or `FIPS:<subpolicy>`, fail on any
/// other policy, warn when FIPS is configured but another policy is applied;
/// not applicable without crypto policies (Debian and Ubuntu have none).
pub(super) fn crypto_policy(rule: &Rule, host: &Host) -> Result<Finding, Unreadable> {
    let Some(text) = host.root.read(POLICY)? else {
        return Ok(rule.finding(Status::NotApplicable).evidence(format!(
            "no {POLICY}: this system has no system-wide crypto policies"
        )));
    };
    let configured = first_setting(&text);
    let applied = host.root.read(POLICY_APPLIED)?;
    let applied = applied.as_deref().map(first_setting);
    let status = match (is_fips(configured), applied) {
        (false, _) => Status::Fail,
        (true, Some(applied)) if applied != configured => Status::Warn,
        (true, _) => Status::Pass,
    };
    let mut finding = rule
        .finding(status)
        .evidence(format!("{POLICY}: {}", shown(configured)));
    if let Some(applied) = applied {
        finding = finding.evidence(format!("{POLICY_APPLIED}: {}", shown(applied)));
    }
    Ok(finding.remediation(match status {
        Status::Warn => "run update-crypto-policies to apply the configured policy, then reboot",
        _ => "update-crypto-policies --set FIPS (RHEL: fips-mode-setup --enable), then reboot",
    }))
}

fn is_fips(policy: &str) -> bool {
    policy == "FIPS" || policy.starts_with("FIPS:")
}

/// The first line that is not blank or a comment.
fn first_setting(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .unwrap_or("")
}

fn shown(value: &str) -> &str {
    if value.is_empty() {
        "(empty)"
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fips_and_its_subpolicies_are_fips() {
        assert!(is_fips("FIPS"));
        assert!(is_fips("FIPS:OSPP"));
        assert!(!is_fips("DEFAULT"));
        assert!(!is_fips("DEFAULT:FIPS"));
        assert!(!is_fips("FIPSY"));
    }

    #[test]
    fn the_setting_skips_comments() {
        assert_eq!(
            first_setting("# chosen by fips-mode-setup\n\nFIPS\n"),
            "FIPS"
        );
        assert_eq!(first_setting("# nothing\n"), "");
    }
}
