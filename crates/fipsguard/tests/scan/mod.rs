//! What the `fipsguard check` tests share: the command run as a
//! subprocess with `--format json`, and the findings read back.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::process::Command;

use serde_json::Value;

/// `fipsguard check ARGS --format json`: the exit code and the document.
pub fn check_json<I, S>(args: I) -> (i32, Value)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(env!("CARGO_BIN_EXE_fipsguard"));
    command.arg("check").args(args);
    json_of(command)
}

/// `program` run as `nobody` where the tests run as root (who reads
/// everything), else as the user running them: to meet a file this user
/// cannot read. `program` must be one `nobody` may run.
pub fn as_nobody(program: &std::path::Path) -> Command {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        return Command::new(program);
    }
    let mut nobody = Command::new("setpriv");
    nobody.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    nobody.arg(program);
    nobody
}

/// `COMMAND --format json`, where COMMAND runs `fipsguard check`: the exit
/// code and the document.
pub fn json_of(mut command: Command) -> (i32, Value) {
    let output = command
        .args(["--format", "json"])
        .output()
        .expect("fipsguard runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let document = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "JSON output ({err}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().expect("an exit code"), document)
}

/// The finding `id` of a report.
pub fn finding<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|finding| finding["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {report:#}"))
}
