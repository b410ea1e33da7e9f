//! Reports rendered for people (a table) and for CI: JSON, SARIF 2.1.0 for
//! code-scanning dashboards, JUnit XML for test-report views.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;
use serde_sarif::sarif;

use crate::report::{exit_code, worst};
use crate::{Finding, Report, Status};

const TOOL_NAME: &str = "fipsguard check";
const TOOL_URI: &str = "https://github.com/fipsguard/fipsguard";
const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// How reports are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for a terminal.
    Table,
    /// The reports as JSON, verdicts included.
    Json,
    /// SARIF 2.1.0: one run, a rule per finding id, a result per finding.
    Sarif,
    /// JUnit XML: a test suite per subject, a test case per finding.
    Junit,
}

/// Renders `reports` in `format`.
pub fn render(reports: &[Report], format: Format) -> String {
    match format {
        Format::Table => table(reports),
        Format::Json => json(reports),
        Format::Sarif => sarif_log(reports),
        Format::Junit => junit(reports),
    }
}

fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    for report in reports {
        let _ = writeln!(
            out,
            "{} {}: {} ({})",
            report.kind.as_str(),
            report.subject,
            report.verdict().as_str().to_uppercase(),
            report.summary
        );
        let id_width = report
            .findings
            .iter()
            .map(|f| f.id.len())
            .max()
            .unwrap_or(0);
        for finding in &report.findings {
            table_row(&mut out, finding, id_width);
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", totals(reports));
    out
}

/// Status and id line up; evidence and the fix sit under the title.
fn table_row(out: &mut String, finding: &Finding, id_width: usize) {
    let indent = " ".repeat(2 + 5 + id_width + 2);
    let _ = writeln!(
        out,
        "  {:<5}{:<id_width$}  {}",
        short_status(finding.status),
        finding.id,
        finding.title
    );
    for line in &finding.evidence {
        let _ = writeln!(out, "{indent}{line}");
    }
    if let Some(remediation) = &finding.remediation {
        let _ = writeln!(out, "{indent}fix: {remediation}");
    }
}

/// Four letters keep the table narrow; the legend is the word itself.
fn short_status(status: Status) -> &'static str {
    match status {
        Status::NotApplicable => "n/a",
        Status::Pass => "pass",
        Status::Warn => "warn",
        Status::Fail => "FAIL",
        Status::Error => "ERR",
    }
}

fn totals(reports: &[Report]) -> String {
    let mut counts: BTreeMap<Status, usize> = BTreeMap::new();
    for report in reports {
        *counts.entry(report.verdict()).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .rev()
        .map(|(status, count)| format!("{count} {}", status.as_str()))
        .collect();
    format!(
        "verdict: {} ({} subject{}: {})",
        overall(reports).as_str(),
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

fn overall(reports: &[Report]) -> Status {
    worst(reports.iter().map(Report::verdict))
}

#[derive(Serialize)]
struct JsonDocument<'a> {
    verdict: Status,
    reports: Vec<JsonReport<'a>>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    verdict: Status,
    #[serde(flatten)]
    report: &'a Report,
}

fn json(reports: &[Report]) -> String {
    let document = JsonDocument {
        verdict: overall(reports),
        reports: reports
            .iter()
            .map(|report| JsonReport {
                verdict: report.verdict(),
                report,
            })
            .collect(),
    };
    pretty(&document)
}

fn pretty(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("reports serialize to JSON");
    text.push('\n');
    text
}

fn sarif_log(reports: &[Report]) -> String {
    let run = sarif::Run::builder()
        .tool(sarif_tool(reports))
        .results(reports.iter().flat_map(sarif_results).collect::<Vec<_>>())
        .invocations(vec![sarif::Invocation::builder()
            .execution_successful(overall(reports) != Status::Error)
            .exit_code(i64::from(exit_code(reports)))
            .build()])
        .build();
    let log = sarif::Sarif::builder()
        .schema(SARIF_SCHEMA)
        .version(serde_json::json!("2.1.0"))
        .runs(vec![run])
        .build();
    pretty(&log)
}

/// One rule per finding id, described by its title.
fn sarif_tool(reports: &[Report]) -> sarif::Tool {
    let rules: BTreeMap<&str, &str> = reports
        .iter()
        .flat_map(|report| &report.findings)
        .map(|finding| (finding.id.as_str(), finding.title.as_str()))
        .collect();
    let rules: Vec<sarif::ReportingDescriptor> = rules
        .into_iter()
        .map(|(id, title)| {
            sarif::ReportingDescriptor::builder()
                .id(id)
                .short_description(
                    sarif::MultiformatMessageString::builder()
                        .text(title)
                        .build(),
                )
                .build()
        })
        .collect();
    let driver = sarif::ToolComponent::builder()
        .name(TOOL_NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .information_uri(TOOL_URI)
        .rules(rules)
        .build();
    sarif::Tool::builder().driver(driver).build()
}

fn sarif_results(report: &Report) -> Vec<sarif::Result> {
    let location = sarif::Location::builder()
        .physical_location(
            sarif::PhysicalLocation::builder()
                .artifact_location(
                    sarif::ArtifactLocation::builder()
                        .uri(subject_uri(report))
                        .build(),
                )
                .build(),
        )
        .build();
    report
        .findings
        .iter()
        .map(|finding| {
            let (kind, level) = sarif_kind_and_level(finding.status);
            sarif::Result::builder()
                .rule_id(finding.id.as_str())
                .kind(kind)
                .level(level)
                .message(
                    sarif::Message::builder()
                        .text(finding_message(report, finding))
                        .build(),
                )
                .locations(vec![location.clone()])
                .build()
        })
        .collect()
}

/// A URI reference for the subject: endpoints as `tls://host:port` (a
/// bare `host:port` would read as a URI scheme), file paths with what a URI
/// path cannot hold percent-encoded (a space, `#`, `%`, `?`, anything not
/// ASCII), and `./` before a relative one whose first segment has a `:`.
fn subject_uri(report: &Report) -> String {
    match report.kind {
        crate::Kind::Tls => tls_uri(&report.subject),
        crate::Kind::Host | crate::Kind::Binary => path_uri(&report.subject),
    }
}

/// What RFC 3986 does not allow as it is in a path.
const NOT_IN_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `tls://` and the endpoint, with what it cannot hold (a target mistyped
/// with a space, a `%`, an `@`) percent-encoded; an IPv6 address keeps its
/// brackets, and the `/ADDRESS` of one address of a name its slash.
fn tls_uri(endpoint: &str) -> String {
    const NOT_IN_AUTHORITY: &AsciiSet = &NOT_IN_PATH.remove(b'[').remove(b']').add(b'@');
    format!("tls://{}", utf8_percent_encode(endpoint, NOT_IN_AUTHORITY))
}

fn path_uri(path: &str) -> String {
    // `//x` would read as a host name: an absolute path has one `/`.
    let path = match path.trim_start_matches('/') {
        rest if rest.len() < path.len() => &path[path.len() - rest.len() - 1..],
        _ => path,
    };
    let encoded = utf8_percent_encode(path, NOT_IN_PATH).to_string();
    let first_segment = encoded.split('/').next().unwrap_or_default();
    match first_segment.contains(':') {
        true => format!("./{encoded}"),
        false => encoded,
    }
}

fn sarif_kind_and_level(status: Status) -> (sarif::ResultKind, sarif::ResultLevel) {
    match status {
        Status::NotApplicable => (sarif::ResultKind::NotApplicable, sarif::ResultLevel::None),
        Status::Pass => (sarif::ResultKind::Pass, sarif::ResultLevel::None),
        Status::Warn => (sarif::ResultKind::Fail, sarif::ResultLevel::Warning),
        Status::Fail => (sarif::ResultKind::Fail, sarif::ResultLevel::Error),
        // SARIF allows a level only on kind `fail`: a check that could not
        // be decided is a failure to look at.
        Status::Error => (sarif::ResultKind::Fail, sarif::ResultLevel::Error),
    }
}

/// The subject, the title, the evidence and the remediation, in one text.
fn finding_message(report: &Report, finding: &Finding) -> String {
    let mut text = format!(
        "{} {}: {} ({})",
        report.kind.as_str(),
        report.subject,
        finding.title,
        finding.status.as_str()
    );
    for line in &finding.evidence {
        let _ = write!(text, "\n{line}");
    }
    if let Some(remediation) = &finding.remediation {
        let _ = write!(text, "\nfix: {remediation}");
    }
    text
}

fn junit(reports: &[Report]) -> String {
    let mut document = quick_junit::Report::new(TOOL_NAME);
    for report in reports {
        let mut suite = TestSuite::new(format!("{} {}", report.kind.as_str(), report.subject));
        suite.add_test_cases(report.findings.iter().map(|f| junit_case(report, f)));
        document.add_test_suite(suite);
    }
    document.to_string().expect("reports serialize to XML")
}

/// Warnings pass (a gate must not fail on them) but keep their evidence.
fn junit_case(report: &Report, finding: &Finding) -> TestCase {
    let status = match finding.status {
        Status::Pass | Status::Warn => TestCaseStatus::success(),
        Status::NotApplicable => TestCaseStatus::skipped(),
        Status::Fail | Status::Error => {
            let kind = if finding.status == Status::Fail {
                NonSuccessKind::Failure
            } else {
                NonSuccessKind::Error
            };
            let mut status = TestCaseStatus::non_success(kind);
            status
                .set_message(finding.title.as_str())
                .set_type(finding.status.as_str())
                .set_description(finding_message(report, finding));
            status
        }
    };
    let mut case = TestCase::new(finding.id.as_str(), status);
    case.set_classname(format!("{}.{}", report.kind.as_str(), report.subject));
    if finding.status == Status::Warn {
        case.set_system_out(finding_message(report, finding));
    }
    case
}

#[cfg(test)]
mod tests {
    use super::{path_uri, tls_uri};

    #[test]
    fn an_endpoint_becomes_a_uri_whatever_was_typed() {
        for (endpoint, uri) in [
            ("db.example:5432", "tls://db.example:5432"),
            ("[2001:db8::1]:443", "tls://[2001:db8::1]:443"),
            ("my host:443", "tls://my%20host:443"),
            (
                "db.example:5432/192.0.2.7",
                "tls://db.example:5432/192.0.2.7",
            ),
            ("100%x@y#z", "tls://100%25x%40y%23z"),
        ] {
            assert_eq!(tls_uri(endpoint), uri);
        }
    }

    #[test]
    fn a_path_becomes_a_uri_reference_that_reads_back_as_that_path() {
        for (path, uri) in [
            ("/usr/bin/openssl", "/usr/bin/openssl"),
            ("/srv/my app/bin #2", "/srv/my%20app/bin%20%232"),
            ("/tmp/100%?.so", "/tmp/100%25%3F.so"),
            ("/opt/café/ü", "/opt/caf%C3%A9/%C3%BC"),
            ("c:tool/x", "./c:tool/x"),
            ("bin/a:b", "bin/a:b"),
        ] {
            assert_eq!(path_uri(path), uri, "{path}");
            assert_eq!(
                path_uri(&format!("//{path}")),
                path_uri(&format!("/{path}"))
            );
            let back = percent_encoding::percent_decode_str(uri.trim_start_matches("./"))
                .decode_utf8()
                .unwrap();
            assert_eq!(back, path);
        }
    }
}
