//! From the crypto found to a report: the verdict finding, the evidence
//! findings and the one-line summary.

use std::path::Path;

use super::loader::Loader;
use super::{detect, elf, Component};
use crate::{worst, Finding, Kind, Report, Status};

const VERDICT_ID: &str = "binary.crypto-module";
const VERDICT_TITLE: &str = "Crypto comes from a validated module";

/// The report for one ELF file; with its `path` on this host and a
/// loader, the libraries it loads are followed.
pub(super) fn report(subject: String, bytes: &[u8], host: Option<(&Path, &Loader)>) -> Report {
    let facts = match elf::Facts::parse(bytes) {
        Ok(facts) => facts,
        Err(err) => return error(subject, format!("malformed ELF: {err}")),
    };
    let indirect = match host.map(|(path, loader)| loader.indirect_host_libraries(path, &facts)) {
        None => Vec::new(),
        Some(Ok(indirect)) => indirect,
        Some(Err(err)) => return error(subject, err),
    };
    let (components, go_build) = detect::components(&facts, &indirect);
    let mut findings = vec![verdict(&components)];
    let summary = summary(&components);
    findings.extend(components.into_iter().map(|component| component.finding));
    findings.extend(go_build);
    Report {
        kind: Kind::Binary,
        subject,
        summary,
        findings,
    }
}

/// A report for a file the scanner could not judge.
pub(super) fn error(subject: String, reason: impl Into<String>) -> Report {
    let reason = reason.into();
    let finding = Finding::new(VERDICT_ID, VERDICT_TITLE, Status::Error)
        .evidence(reason.clone())
        .remediation("Name ELF executables, shared libraries or directories holding them, readable by this user.");
    Report {
        kind: Kind::Binary,
        subject,
        summary: reason,
        findings: vec![finding],
    }
}

fn verdict(components: &[Component]) -> Finding {
    let status = worst(components.iter().map(|component| component.finding.status));
    let mut finding = Finding::new(VERDICT_ID, VERDICT_TITLE, status);
    if components.is_empty() {
        return finding.evidence("no crypto library, module or Go crypto package found");
    }
    for component in components {
        let line = format!(
            "{}: {} ({})",
            component.finding.status.as_str(),
            component.label,
            component.finding.id
        );
        finding = finding.evidence(line);
    }
    let first_worst = components
        .iter()
        .find(|component| component.finding.status == status);
    match first_worst.and_then(|component| component.finding.remediation.clone()) {
        Some(remediation) => finding.remediation(remediation),
        None => finding,
    }
}

/// One line: the crypto that decides the verdict first, then any validated
/// module beside it.
fn summary(components: &[Component]) -> String {
    let labels = |status: Status| {
        let labels: Vec<&str> = components
            .iter()
            .filter(|component| component.finding.status == status)
            .map(|component| component.label.as_str())
            .collect();
        labels.join("; ")
    };
    let validated = labels(Status::Pass);
    let status = worst(components.iter().map(|component| component.finding.status));
    match status {
        Status::Pass => format!("validated module: {validated}"),
        Status::Warn | Status::Fail if !validated.is_empty() => {
            format!("{} beside validated module: {validated}", labels(status))
        }
        Status::Fail => format!("{}, no validated module", labels(status)),
        Status::Warn | Status::Error => labels(status),
        Status::NotApplicable => "no crypto".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::EvidenceSet;

    fn component(id: &str, status: Status, label: &str) -> Component {
        let finding = Finding::new(id, "title", status).remediation(format!("fix {id}"));
        Component::new(finding, EvidenceSet::default(), label.to_owned())
    }

    #[test]
    fn no_crypto_is_not_applicable() {
        assert_eq!(verdict(&[]).status, Status::NotApplicable);
        assert_eq!(summary(&[]), "no crypto");
    }

    #[test]
    fn a_validated_module_alone_passes() {
        let found = [component(
            "binary.aws-lc-fips",
            Status::Pass,
            "AWS-LC FIPS 3.6.0 (static)",
        )];
        assert_eq!(verdict(&found).status, Status::Pass);
        assert_eq!(
            summary(&found),
            "validated module: AWS-LC FIPS 3.6.0 (static)"
        );
    }

    #[test]
    fn unvalidated_crypto_beside_a_module_fails() {
        let found = [
            component(
                "binary.aws-lc-fips",
                Status::Pass,
                "AWS-LC FIPS 3.6.0 (static)",
            ),
            component("binary.ring", Status::Fail, "ring 0.17.8"),
        ];
        let finding = verdict(&found);
        assert_eq!(finding.status, Status::Fail);
        assert_eq!(finding.remediation.as_deref(), Some("fix binary.ring"));
        assert_eq!(
            summary(&found),
            "ring 0.17.8 beside validated module: AWS-LC FIPS 3.6.0 (static)"
        );
    }

    #[test]
    fn unvalidated_crypto_alone_says_so() {
        let found = [component(
            "binary.go-crypto",
            Status::Fail,
            "Go native crypto (go1.19.8)",
        )];
        assert_eq!(
            summary(&found),
            "Go native crypto (go1.19.8), no validated module"
        );
    }
}
