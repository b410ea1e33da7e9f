//! The vocabulary every scanner speaks: a finding has a stable id, a status,
//! the evidence it rests on and, when it is not a pass, what to do about it.

use serde::Serialize;

/// The outcome of one finding. Ordered from best to worst, so the worst
/// status of a report is its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The rule does not apply here (the component is absent).
    NotApplicable,
    /// The rule holds.
    Pass,
    /// Allowed, but worth a look (e.g. a certificate expiring soon).
    Warn,
    /// The rule is broken.
    Fail,
    /// The scanner could not decide (unreadable file, unreachable endpoint).
    Error,
}

impl Status {
    /// The name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotApplicable => "not-applicable",
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }
}

/// One checked rule and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `host.kernel-fips`; CI rules key on it.
    pub id: String,
    /// What the rule is, in a few words.
    pub title: String,
    /// The outcome.
    pub status: Status,
    /// What was seen: file contents, symbols, the server's answer.
    pub evidence: Vec<String>,
    /// What to do when the status is not a pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
}

impl Finding {
    /// A finding with no evidence or remediation yet.
    pub fn new(id: impl Into<String>, title: impl Into<String>, status: Status) -> Self {
        Finding {
            id: id.into(),
            title: title.into(),
            status,
            evidence: Vec::new(),
            remediation: None,
        }
    }

    /// Adds a line of evidence.
    pub fn evidence(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }

    /// Sets the remediation, kept only when the status calls for one.
    pub fn remediation(mut self, text: impl Into<String>) -> Self {
        if matches!(self.status, Status::Warn | Status::Fail | Status::Error) {
            self.remediation = Some(text.into());
        }
        self
    }
}

/// What a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A host or a root tree.
    Host,
    /// A binary file.
    Binary,
    /// A TLS endpoint.
    Tls,
}

impl Kind {
    /// The name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::Binary => "binary",
            Kind::Tls => "tls",
        }
    }
}

/// The findings for one subject: a host, a file or an endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What kind of subject.
    pub kind: Kind,
    /// The subject itself: a root directory, a path or `host:port`.
    pub subject: String,
    /// One line a person reads first (e.g. "validated module: AWS-LC FIPS 3.0.0").
    pub summary: String,
    /// Every rule checked, in a stable order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The worst status among the findings (not-applicable when there are none).
    pub fn verdict(&self) -> Status {
        worst(self.findings.iter().map(|finding| finding.status))
    }
}

/// The worst of several statuses.
pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses.into_iter().max().unwrap_or(Status::NotApplicable)
}

/// The process exit code for a set of reports: 0 when nothing failed,
/// 1 when a rule failed, 2 when a probe could not run (the scan is incomplete,
/// which a gate must not read as a pass or as a plain failure).
pub fn exit_code(reports: &[Report]) -> u8 {
    match worst(reports.iter().map(Report::verdict)) {
        Status::Error => 2,
        Status::Fail => 1,
        _ => 0,
    }
}
