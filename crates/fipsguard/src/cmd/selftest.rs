//! `fipsguard selftest`: power-up self-tests, shown.

use std::io::{self, Write};
use std::process::ExitCode;

use fipsguard_crypto::module;
use fipsguard_crypto::selftest::SelfTestReport;

/// Flags of `fipsguard selftest`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the power-up self-tests (the same ones every fipsguard process runs
/// before its first operation) and prints the report; exit 1 on any failure.
pub fn run(args: &Args) -> ExitCode {
    let report = module::power_up();
    let code = if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    super::emit(
        |out| match args.json {
            true => super::write_json(
                out,
                &serde_json::json!({ "passed": report.passed(), "state": module::state(), "report": report }),
            ),
            false => write_human(out, report),
        },
        code,
    )
}

fn write_human(out: &mut dyn Write, report: &SelfTestReport) -> io::Result<()> {
    for r in &report.results {
        let verdict = if r.passed { "pass" } else { "FAIL" };
        let why = r
            .failure
            .as_deref()
            .map(|f| format!("  ({f})"))
            .unwrap_or_default();
        writeln!(out, "{:<24} {verdict} {:>8} us{why}", r.name, r.micros)?;
    }
    let m = &report.module;
    let major = m
        .fips_module_version
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    writeln!(out)?;
    writeln!(
        out,
        "module:      {} module{major} (library {})",
        m.name, m.library_version
    )?;
    writeln!(out, "certificate: {}", m.certificate)?;
    if report.fault_injection_compiled_in {
        writeln!(
            out,
            "warning:     test build: fault injection is compiled in"
        )?;
    }
    let total = report.results.len();
    match report.first_failure() {
        None => writeln!(
            out,
            "result:      all {total} self-tests passed in {} us",
            report.total_micros
        ),
        Some(name) => {
            let failed = report.results.iter().filter(|r| !r.passed).count();
            writeln!(out, "result:      {failed} of {total} self-tests FAILED (first: {name}); the module is in its error state and refuses all cryptographic services")
        }
    }
}
