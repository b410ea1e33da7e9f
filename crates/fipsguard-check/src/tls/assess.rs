//! What was observed, judged against a policy: one finding per rule.

use super::catalog::{group_name, scheme_hash, suite_name, Protocol};
use super::handshake::{Attempt, Failure};
use super::policy::Policy;
use super::probe::{Observations, MAX_CERTIFICATES};
use crate::{Finding, Status};
use fipsguard_crypto::certificate::{doubt_namesakes, inspect, Facts, Key, UNKNOWN};

/// Every finding for one endpoint, in a stable order.
pub fn findings(seen: &Observations, attempt: &Attempt, policy: &Policy) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Protocol::ALL
        .into_iter()
        .map(|p| protocol(seen, p, policy))
        .collect();
    findings.push(suites(seen, policy));
    findings.push(groups(seen, policy));
    findings.push(signature_hashes(seen, policy));
    findings.push(approved_handshake(attempt));
    findings.extend(certificates(seen, attempt, policy));
    findings
}

fn protocol(seen: &Observations, protocol: Protocol, policy: &Policy) -> Finding {
    let name = protocol.name();
    let answer = seen
        .protocols
        .iter()
        .find(|(p, _)| *p == protocol)
        .map(|(_, answer)| answer.clone());
    let accepted = matches!(answer, Some(Ok(())));
    let required = policy.required_protocols.contains(&protocol);
    let allowed = policy.allows_protocol(protocol);
    let (status, what) = match (accepted, allowed, required) {
        (true, false, _) => (Status::Fail, "accepted, but the policy forbids it"),
        (true, true, _) => (Status::Pass, "accepted"),
        (false, _, true) => (Status::Fail, "not accepted, but the policy requires it"),
        (false, _, false) => (Status::Pass, "not accepted"),
    };
    let remediation = if accepted {
        format!("disable {name} in the server's TLS configuration")
    } else {
        format!("enable {name} in the server's TLS configuration")
    };
    Finding::new(
        format!("tls.protocol.{}", name.to_lowercase()),
        format!("Protocol {name}"),
        status,
    )
    .evidence(match answer {
        Some(Err(reason)) => format!("{name}: {what} ({reason})"),
        _ => format!("{name}: {what}"),
    })
    .remediation(remediation)
}

fn suites(seen: &Observations, policy: &Policy) -> Finding {
    let mut refused = Vec::new();
    let mut evidence = Vec::new();
    for (protocol, ids) in &seen.suites {
        for &id in ids {
            let name = suite_name(id);
            let verdict = if policy.allows_suite(&name) && policy.allows_protocol(*protocol) {
                "allowed"
            } else {
                refused.push(name.clone());
                "not allowed"
            };
            evidence.push(format!("{} 0x{id:04x} {name}: {verdict}", protocol.name()));
        }
    }
    if seen.suites.is_empty() {
        evidence.push("no cipher suite accepted under any version".into());
    }
    let status = if seen.suites.is_empty() || !refused.is_empty() {
        Status::Fail
    } else {
        Status::Pass
    };
    with_evidence(
        Finding::new("tls.cipher-suites", "Cipher suites accepted", status),
        evidence,
    )
    .remediation(format!(
        "offer only the policy's suites; remove: {}",
        refused.join(", ")
    ))
}

fn groups(seen: &Observations, policy: &Policy) -> Finding {
    let title = "Key exchange groups accepted";
    if seen.groups.is_empty() {
        return Finding::new("tls.groups", title, Status::NotApplicable)
            .evidence("neither TLS 1.3 nor TLS 1.2 accepted: no group to probe");
    }
    let mut evidence = Vec::new();
    let mut forbidden = Vec::new();
    let mut approved = false;
    for (protocol, answers) in &seen.groups {
        let accepted: Vec<String> = answers
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(id, _)| group_name(*id))
            .collect();
        evidence.push(format!(
            "accepted under {}: {}",
            protocol.name(),
            if accepted.is_empty() {
                "none".to_owned()
            } else {
                accepted.join(", ")
            }
        ));
        for group in accepted {
            if policy.allows_group(&group) {
                approved = true;
            } else {
                forbidden.push(format!("{group} under {}: not allowed", protocol.name()));
            }
        }
    }
    if let Some(bits) = seen.dh_bits {
        evidence.push(format!("finite-field DHE prime: {bits} bits"));
        // TLS 1.2 DHE names no group: its prime stands for an allowed
        // group when the policy allows an ffdhe group no larger.
        if bits < policy.min_rsa_bits {
            forbidden.push(format!(
                "DHE prime of {bits} bits under TLS1.2: below {}",
                policy.min_rsa_bits
            ));
        } else if policy.allows_finite_field(bits) {
            approved = true;
        } else {
            forbidden.push(format!(
                "DHE prime of {bits} bits under TLS1.2: the policy allows no ffdhe group that small"
            ));
        }
    }
    let status = if forbidden.is_empty() && approved {
        Status::Pass
    } else {
        Status::Fail
    };
    evidence.extend(forbidden);
    with_evidence(Finding::new("tls.groups", title, status), evidence)
        .remediation("offer only approved groups (e.g. secp256r1, secp384r1) and DHE primes of 2048 bits or more")
}

fn signature_hashes(seen: &Observations, policy: &Policy) -> Finding {
    let title = "Handshake signatures over weak hashes";
    if seen.weak_hashes.is_empty() {
        return Finding::new("tls.signature-hashes", title, Status::NotApplicable)
            .evidence("TLS 1.2 not accepted: TLS 1.3 never signs with SHA-1 or MD5");
    }
    let mut status = Status::Pass;
    let mut evidence = Vec::new();
    for (hash, used) in &seen.weak_hashes {
        match used {
            Some(scheme) if policy.forbids_hash(scheme_hash(*scheme)) => {
                status = Status::Fail;
                evidence.push(format!(
                    "offered only {hash}: the server signed its key exchange with scheme 0x{scheme:04x} ({hash})"
                ));
            }
            Some(scheme) => {
                evidence.push(format!("offered only {hash}: signed with 0x{scheme:04x}"))
            }
            None => evidence.push(format!("offered only {hash}: refused")),
        }
    }
    with_evidence(Finding::new("tls.signature-hashes", title, status), evidence).remediation(
        "remove SHA-1 and MD5 from the server's signature algorithms (OpenSSL: raise @SECLEVEL above 0)",
    )
}

fn approved_handshake(attempt: &Attempt) -> Finding {
    let title = "A handshake with only approved settings (rustls on AWS-LC FIPS)";
    match &attempt.outcome {
        Ok(negotiated) => Finding::new("tls.approved-handshake", title, Status::Pass).evidence(
            format!(
                "{} {} {}",
                negotiated.protocol,
                negotiated.suite,
                negotiated.group.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_owned(),
        ),
        Err(Failure::Refused(reason) | Failure::CutOff(reason)) => Finding::new("tls.approved-handshake", title, Status::Fail)
            .evidence(reason.clone())
            .remediation("offer TLS 1.2 or 1.3 with an AES-GCM suite, a NIST curve and a certificate the policy allows"),
        Err(Failure::Undecided(reason)) => Finding::new("tls.approved-handshake", title, Status::Error)
            .evidence(reason.clone())
            .remediation("check that the endpoint is up and answers within --timeout"),
    }
}

/// Every certificate the server sent in any chain, each judged once.
fn certificates(seen: &Observations, attempt: &Attempt, policy: &Policy) -> Vec<Finding> {
    let ids = [
        ("tls.certificate.key", "Certificate keys"),
        ("tls.certificate.signature", "Certificate signatures"),
        ("tls.certificate.expiry", "Certificate validity"),
    ];
    let mut certificates: Vec<&[u8]> = Vec::new();
    let sent = attempt
        .chains
        .iter()
        .flatten()
        .map(|c| c.as_ref())
        .chain(seen.plaintext_certificates.iter().map(Vec::as_slice));
    for der in sent {
        if !certificates.contains(&der) {
            certificates.push(der);
        }
    }
    if seen.too_many_certificates || certificates.len() > MAX_CERTIFICATES {
        let reason = format!(
            "the server sent more than {MAX_CERTIFICATES} distinct certificates: not judged"
        );
        return unreadable(&ids, &reason);
    }
    let facts: Result<Vec<Facts>, String> = certificates.iter().map(|der| inspect(der)).collect();
    let findings = match facts {
        Ok(mut facts) if !facts.is_empty() => {
            doubt_namesakes(&mut facts);
            vec![
                certificate_keys(&facts, policy),
                certificate_signatures(&facts, policy),
                certificate_expiry(&facts, policy),
            ]
        }
        Ok(_) => return unreadable(&ids, "the server sent no certificate in any probe"),
        Err(reason) => return unreadable(&ids, &reason),
    };
    // A certificate of a key type whose request got no answer may be the
    // weak one: what was seen can fail, but not pass.
    findings
        .into_iter()
        .map(|finding| {
            let mut finding = attempt.unanswered.iter().fold(finding, |finding, reason| {
                finding.evidence(format!("no answer for: {reason}"))
            });
            if !attempt.unanswered.is_empty() && finding.status < Status::Fail {
                finding.status = Status::Error;
            }
            finding
        })
        .collect()
}

fn unreadable(ids: &[(&str, &str)], reason: &str) -> Vec<Finding> {
    ids.iter()
        .map(|(id, title)| {
            Finding::new(*id, *title, Status::Error)
                .evidence(reason)
                .remediation("check that the endpoint serves TLS with a certificate")
        })
        .collect()
}

fn certificate_keys(chain: &[Facts], policy: &Policy) -> Finding {
    let mut status = Status::Pass;
    let mut evidence = Vec::new();
    for cert in chain {
        let allowed = match &cert.key {
            Key::Rsa(bits) => *bits >= policy.min_rsa_bits,
            Key::Ec(curve) => policy.ec_curves.contains(curve),
            Key::Other(_) => false,
        };
        if !allowed {
            status = Status::Fail;
        }
        let verdict = if allowed { "allowed" } else { "not allowed" };
        evidence.push(format!("{}: {}: {verdict}", cert.subject, cert.key));
    }
    with_evidence(
        Finding::new("tls.certificate.key", "Certificate keys", status),
        evidence,
    )
    .remediation(format!(
        "reissue with RSA {} bits or more, or ECDSA on {}",
        policy.min_rsa_bits,
        policy.ec_curves.join("/")
    ))
}

/// A self-signed root's own signature is never checked by a client, so it
/// does not count against the chain.
fn certificate_signatures(chain: &[Facts], policy: &Policy) -> Finding {
    let mut status = Status::Pass;
    let mut evidence = Vec::new();
    for cert in chain {
        // MD2 and MD4 fail whatever the policy lists; an algorithm this
        // scanner does not know is undecided, neither passed nor failed.
        let unknown = !cert.is_self_signed() && cert.signature_hash == Some(UNKNOWN);
        let forbidden = !cert.is_self_signed()
            && cert
                .signature_hash
                .is_some_and(|h| matches!(h, "MD2" | "MD4") || policy.forbids_hash(h));
        status = status.max(match (forbidden, unknown) {
            (true, _) => Status::Fail,
            (false, true) => Status::Error,
            (false, false) => Status::Pass,
        });
        let verdict = match (forbidden, unknown, cert.is_self_signed()) {
            (true, _, _) => "not allowed",
            (false, true, _) => "not known to this scanner: undecided",
            (false, false, true) => "self-signed, not relied on",
            (false, false, false) => "allowed",
        };
        evidence.push(format!("{}: {}: {verdict}", cert.subject, cert.signature));
    }
    with_evidence(
        Finding::new(
            "tls.certificate.signature",
            "Certificate signatures",
            status,
        ),
        evidence,
    )
    .remediation("reissue the certificate signed with SHA-256 or stronger")
}

fn certificate_expiry(chain: &[Facts], policy: &Policy) -> Finding {
    const DAY: i64 = 86_400;
    let warn_after = i64::from(policy.expiry_warning_days) * DAY;
    let mut status = Status::Pass;
    let mut evidence = Vec::new();
    for cert in chain {
        let state = if cert.seconds_left < 0 {
            status = Status::Fail;
            "expired".to_owned()
        } else if cert.seconds_until_valid > 0 {
            status = Status::Fail;
            "not valid yet".to_owned()
        } else {
            if cert.seconds_left < warn_after {
                status = status.max(Status::Warn);
            }
            format!("{} days left", cert.seconds_left / DAY)
        };
        evidence.push(format!(
            "{}: not after {} ({state})",
            cert.subject, cert.not_after
        ));
    }
    with_evidence(
        Finding::new("tls.certificate.expiry", "Certificate validity", status),
        evidence,
    )
    .remediation("renew the certificate")
}

fn with_evidence(finding: Finding, lines: Vec<String>) -> Finding {
    lines.into_iter().fold(finding, Finding::evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fipsguard_crypto::certificate::SelfSigned;

    fn signed_with(signature: &str, hash: Option<&'static str>) -> Facts {
        Facts {
            subject: "CN=leaf".into(),
            self_signed: SelfSigned::No,
            key: Key::Ec("P-256".into()),
            public_key: Vec::new(),
            key_id: None,
            signature: signature.to_owned(),
            signature_hash: hash,
            not_after: String::new(),
            seconds_left: 86_400 * 365,
            seconds_until_valid: -86_400,
        }
    }

    #[test]
    fn broken_signature_algorithms_fail_and_unknown_ones_are_undecided() {
        let lenient = Policy {
            forbidden_signature_hashes: Vec::new(),
            ..Policy::default()
        };
        let md2 = signed_with("md2WithRSAEncryption", Some("MD2"));
        assert_eq!(
            certificate_signatures(&[md2], &lenient).status,
            Status::Fail
        );
        let unknown = signed_with("signature algorithm 1.2.3.4", Some(UNKNOWN));
        let finding = certificate_signatures(&[unknown], &lenient);
        assert_eq!(finding.status, Status::Error);
        assert!(
            finding.evidence[0].contains("1.2.3.4"),
            "{:?}",
            finding.evidence
        );
        let sha256 = signed_with("ecdsa-with-SHA256", Some("SHA-256"));
        assert_eq!(
            certificate_signatures(&[sha256], &lenient).status,
            Status::Pass
        );
    }

    #[test]
    fn a_dhe_only_server_is_judged_by_its_prime_and_every_version_counts() {
        use super::super::catalog::Protocol;
        let policy = Policy::default();
        let none_named = vec![(0x0017, false), (0x001d, false)];
        let mut seen = Observations {
            groups: vec![(Protocol::Tls12, none_named)],
            dh_bits: Some(2048),
            ..Observations::default()
        };
        assert_eq!(groups(&seen, &policy).status, Status::Pass);
        let elliptic_only = Policy {
            groups: vec!["secp384r1".into()],
            ..Policy::default()
        };
        assert_eq!(groups(&seen, &elliptic_only).status, Status::Fail);
        seen.dh_bits = Some(1024);
        let finding = groups(&seen, &policy);
        assert_eq!(finding.status, Status::Fail);
        assert!(finding
            .evidence
            .contains(&"DHE prime of 1024 bits under TLS1.2: below 2048".to_owned()));
        seen.dh_bits = None;
        assert_eq!(groups(&seen, &policy).status, Status::Fail);

        // An allowed elliptic curve does not excuse DHE the policy forbids.
        let seen = Observations {
            groups: vec![(Protocol::Tls12, vec![(0x0018, true), (0x001d, false)])],
            dh_bits: Some(2048),
            ..Observations::default()
        };
        assert_eq!(groups(&seen, &policy).status, Status::Pass);
        let finding = groups(&seen, &elliptic_only);
        assert_eq!(finding.status, Status::Fail);
        assert!(finding.evidence.contains(
            &"DHE prime of 2048 bits under TLS1.2: the policy allows no ffdhe group that small"
                .to_owned()
        ));

        let seen = Observations {
            groups: vec![
                (Protocol::Tls13, vec![(0x0017, true), (0x001d, false)]),
                (Protocol::Tls12, vec![(0x0017, true), (0x001d, true)]),
            ],
            ..Observations::default()
        };
        let finding = groups(&seen, &policy);
        assert_eq!(finding.status, Status::Fail);
        assert!(finding
            .evidence
            .iter()
            .any(|line| line == "x25519 under TLS1.2: not allowed"));
    }

    #[test]
    fn too_many_certificates_are_not_judged() {
        let seen = Observations {
            too_many_certificates: true,
            ..Observations::default()
        };
        let attempt = Attempt {
            outcome: Err(Failure::Refused("test".into())),
            chains: Vec::new(),
            unanswered: Vec::new(),
        };
        let findings = certificates(&seen, &attempt, &Policy::default());
        assert_eq!(findings.len(), 3);
        for finding in findings {
            assert_eq!(finding.status, Status::Error);
            assert!(finding.evidence[0].contains("more than 256 distinct certificates"));
        }
    }

    /// A key type whose certificate request got no answer keeps every
    /// certificate finding from passing, but a failure stays a failure.
    #[test]
    fn certificates_of_an_unanswered_key_type_leave_the_findings_undecided() {
        let der = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fipsguard-crypto/testdata/pss-sha256.der"
        ))
        .unwrap();
        let mut attempt = Attempt {
            outcome: Err(Failure::Refused("test".into())),
            chains: vec![vec![der.into()]],
            unanswered: Vec::new(),
        };
        let seen = Observations::default();
        let statuses = |attempt: &Attempt, policy: &Policy| -> Vec<Status> {
            certificates(&seen, attempt, policy)
                .iter()
                .map(|f| f.status)
                .collect()
        };
        // The test certificate's validity is not what is tested here.
        let policy = Policy {
            expiry_warning_days: 0,
            ..Policy::default()
        };
        assert_eq!(statuses(&attempt, &policy), [Status::Pass; 3]);
        attempt.unanswered.push("RSA certificate: timed out".into());
        assert_eq!(statuses(&attempt, &policy), [Status::Error; 3]);
        let findings = certificates(&seen, &attempt, &policy);
        assert!(findings[0]
            .evidence
            .contains(&"no answer for: RSA certificate: timed out".to_owned()));
        let strict = Policy {
            ec_curves: vec!["P-384".into()],
            ..policy
        };
        assert_eq!(
            statuses(&attempt, &strict),
            [Status::Fail, Status::Error, Status::Error]
        );
    }

    #[test]
    fn a_certificate_not_valid_yet_fails_as_an_expired_one_does() {
        let policy = Policy::default();
        let mut early = signed_with("ecdsa-with-SHA256", Some("SHA-256"));
        let valid = certificate_expiry(std::slice::from_ref(&early), &policy);
        assert_eq!(valid.status, Status::Pass);
        early.seconds_until_valid = 3_600;
        let finding = certificate_expiry(&[early], &policy);
        assert_eq!(finding.status, Status::Fail);
        assert!(finding
            .evidence
            .iter()
            .any(|line| line.contains("not valid yet")));
    }
}
