//! `fipsguard selftest`: the module's self-tests, here or on a server.

use std::io::{self, Write};
use std::process::ExitCode;

use fipsguard_client::{ClientError, HttpMethod};
use fipsguard_crypto::module;
use serde_json::{json, Value};

use super::client::ServerArgs;

/// Flags of `fipsguard selftest`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Run them on the server instead (`POST /v1/selftest`, officer token).
    #[arg(long)]
    remote: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs the power-up self-tests (the same ones every fipsguard process runs
/// before its first operation), or with `--remote` the server's whole
/// suite, and prints the report; exit 1 on any failure.
pub fn run(args: &Args) -> ExitCode {
    if args.remote {
        return super::runtime().block_on(remote(args));
    }
    let report = module::power_up();
    let passed = report.passed();
    let report = serde_json::to_value(report).expect("reports serialize");
    show(
        args,
        passed,
        json!({ "passed": passed, "state": module::state(), "report": report }),
    )
}

/// On the server: its report when every test passed; when one failed, the
/// server's error and the per-test results its health shows.
async fn remote(args: &Args) -> ExitCode {
    let client = match args.server.client() {
        Ok(client) => client,
        Err(e) => return super::fail(e),
    };
    match client.call(HttpMethod::POST, "/v1/selftest", None).await {
        Ok(report) => show(
            args,
            true,
            json!({ "passed": true, "server": client.url(), "report": report }),
        ),
        Err(ref error @ ClientError::Server { ref code, .. }) if code == "module_error_state" => {
            eprintln!("fipsguard: the server's self-tests failed: {error}");
            // Health answers 503 in the error state, with every result.
            let health = match client.call(HttpMethod::GET, "/v1/health", None).await {
                Ok(health) | Err(ClientError::Server { answer: health, .. }) => health,
                Err(_) => Value::Null,
            };
            let report = json!({ "module": health["module"], "results": health["self_tests"] });
            let error = json!({ "message": error.to_string() });
            show(
                args,
                false,
                json!({ "passed": false, "server": client.url(), "error": error, "report": report }),
            )
        }
        Err(e) => super::fail(e),
    }
}

fn show(args: &Args, passed: bool, output: Value) -> ExitCode {
    let code = if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    super::emit(
        |out| match args.json {
            true => super::write_json(out, &output),
            false => write_human(out, &output["report"]),
        },
        code,
    )
}

/// One line per test, then the module; `report` is a self-test report as
/// JSON (local or from a server).
fn write_human(out: &mut dyn Write, report: &Value) -> io::Result<()> {
    let results = report["results"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for r in results {
        let verdict = if r["passed"] == true { "pass" } else { "FAIL" };
        let why = r["failure"]
            .as_str()
            .map(|f| format!("  ({f})"))
            .unwrap_or_default();
        let name = r["name"].as_str().unwrap_or("?");
        writeln!(out, "{name:<24} {verdict} {:>8} us{why}", r["micros"])?;
    }
    let m = &report["module"];
    let major = m["fips_module_version"]
        .as_u64()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    writeln!(out)?;
    writeln!(
        out,
        "module:      {} module{major} (library {})",
        text(&m["name"]),
        text(&m["library_version"])
    )?;
    writeln!(out, "certificate: {}", text(&m["certificate"]))?;
    if report["fault_injection_compiled_in"] == true {
        writeln!(
            out,
            "warning:     test build: fault injection is compiled in"
        )?;
    }
    let total = results.len();
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r["passed"] != true)
        .filter_map(|r| r["name"].as_str())
        .collect();
    match failed.first() {
        None => writeln!(out, "result:      all {total} self-tests passed in {} us", report["total_micros"]),
        Some(name) => writeln!(
            out,
            "result:      {} of {total} self-tests FAILED (first: {name}); the module is in its error state and refuses all cryptographic services",
            failed.len()
        ),
    }
}
