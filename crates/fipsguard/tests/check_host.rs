//! `fipsguard check host` through the real binary: fixture trees stand in
//! for a RHEL host in FIPS mode (configured by hand, and as RHEL 9 ships),
//! a stock Debian host, a half-configured host and one whose kernel flag
//! cannot be read; each gives a known status per
//! finding id and the exit code a CI gate keys on. The scan of this machine
//! must agree with what its own `/proc/sys/crypto/fips_enabled` says.

mod scan;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use scan::{check_json, finding};

const IDS: [&str; 7] = [
    "host.kernel-fips",
    "host.crypto-policy",
    "host.openssl-fips-provider",
    "host.openssl-fips-active",
    "host.gnutls-fips",
    "host.nss-fips",
    "host.libgcrypt-fips",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/host")
        .join(name)
}

/// The exit code and the one host report of `check host --format json`,
/// with `--root` when given.
fn check_host(root: Option<&Path>) -> (i32, Value) {
    let mut args = vec![OsString::from("host")];
    if let Some(root) = root {
        args.extend([OsString::from("--root"), root.into()]);
    }
    let (code, document) = check_json(args);
    let reports = document["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{document:#}");
    let report = reports[0].clone();
    assert_eq!(report["kind"], "host");
    assert_eq!(document["verdict"], report["verdict"]);
    assert_findings_are_complete(&report);
    (code, report)
}

/// Every rule, in order, each with evidence, and a remediation exactly when
/// the status calls for one.
fn assert_findings_are_complete(report: &Value) {
    let findings = report["findings"].as_array().unwrap();
    let ids: Vec<&str> = findings.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, IDS, "{report:#}");
    for finding in findings {
        assert!(!finding["title"].as_str().unwrap().is_empty());
        let evidence = finding["evidence"].as_array().unwrap();
        assert!(!evidence.is_empty(), "no evidence: {finding:#}");
        let needs_remedy = matches!(finding["status"].as_str(), Some("warn" | "fail" | "error"));
        assert_eq!(
            finding["remediation"].is_string(),
            needs_remedy,
            "{finding:#}"
        );
    }
}

fn statuses(report: &Value) -> BTreeMap<String, String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let id = f["id"].as_str().unwrap().to_string();
            (id, f["status"].as_str().unwrap().to_string())
        })
        .collect()
}

fn expected(pairs: [(&str, &str); 7]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(id, status)| (id.to_string(), status.to_string()))
        .collect()
}

fn evidence(report: &Value, id: &str) -> String {
    let lines = finding(report, id)["evidence"].as_array().unwrap();
    let lines: Vec<&str> = lines.iter().map(|line| line.as_str().unwrap()).collect();
    lines.join("\n")
}

#[test]
fn a_rhel_host_in_fips_mode_passes_every_check() {
    let root = fixture("rhel-fips");
    let (code, report) = check_host(Some(&root));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["subject"], root.display().to_string());
    assert_eq!(report["summary"], "FIPS mode: 7 of 7 checks pass");
    assert!(statuses(&report).values().all(|status| status == "pass"));
    // The activation was found through the .include, read inside the root.
    let active = evidence(&report, "host.openssl-fips-active");
    assert!(
        active.contains("/etc/pki/tls/fipsmodule.cnf: [fips_sect] activate = 1"),
        "{active}"
    );
    assert!(active.contains("default_properties = fips=yes"), "{active}");
}

#[test]
fn a_stock_debian_host_fails_where_fips_would_be_switched_on() {
    let (code, report) = check_host(Some(&fixture("debian-default")));
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verdict"], "fail");
    assert_eq!(
        statuses(&report),
        expected([
            ("host.kernel-fips", "fail"),
            ("host.crypto-policy", "not-applicable"),
            ("host.openssl-fips-provider", "fail"),
            ("host.openssl-fips-active", "fail"),
            ("host.gnutls-fips", "fail"),
            ("host.nss-fips", "not-applicable"),
            ("host.libgcrypt-fips", "fail"),
        ])
    );
    assert_eq!(
        report["summary"],
        "not in FIPS mode: 5 of 7 checks fail, 2 not applicable"
    );
    assert_eq!(
        evidence(&report, "host.kernel-fips"),
        "/proc/sys/crypto/fips_enabled: 0"
    );
    let kernel = finding(&report, "host.kernel-fips");
    assert!(kernel["remediation"].as_str().unwrap().contains("fips=1"));
}

#[test]
fn an_installed_but_unloaded_provider_passes_installed_and_fails_active() {
    let (code, report) = check_host(Some(&fixture("partial")));
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        statuses(&report),
        expected([
            ("host.kernel-fips", "pass"),
            // FIPS configured, DEFAULT still applied.
            ("host.crypto-policy", "warn"),
            ("host.openssl-fips-provider", "pass"),
            ("host.openssl-fips-active", "fail"),
            // Kernel flag on, but the build carries no FIPS integrity file.
            ("host.gnutls-fips", "warn"),
            ("host.nss-fips", "fail"),
            ("host.libgcrypt-fips", "not-applicable"),
        ])
    );
    let active = evidence(&report, "host.openssl-fips-active");
    assert!(
        active.contains("no fips provider under [provider_sect]"),
        "{active}"
    );
}

/// RHEL 9 as `fips-mode-setup --enable` leaves it: Red Hat's OpenSSL 3
/// loads and requires its fips provider on the kernel flag, with no line
/// for it in openssl.cnf. The same tree with the flag at 0, or another
/// distribution's OpenSSL with the flag at 1, is not in FIPS mode.
#[test]
fn red_hats_openssl_follows_the_kernel_flag_without_a_line_in_its_configuration() {
    let (code, report) = check_host(Some(&fixture("rhel9-kernel")));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        statuses(&report),
        expected([
            ("host.kernel-fips", "pass"),
            ("host.crypto-policy", "pass"),
            // The module's checksum is built in: no fipsmodule.cnf.
            ("host.openssl-fips-provider", "warn"),
            ("host.openssl-fips-active", "pass"),
            ("host.gnutls-fips", "not-applicable"),
            ("host.nss-fips", "not-applicable"),
            ("host.libgcrypt-fips", "not-applicable"),
        ])
    );
    let active = evidence(&report, "host.openssl-fips-active");
    assert!(
        active.contains("/etc/os-release: ID=rhel, with the kernel flag at 1"),
        "{active}"
    );
    assert!(
        active.contains("no fips provider under [provider_sect]"),
        "{active}"
    );

    let tree = |name: &str, flag: &str, os_release: Option<&str>| {
        let dir = tempfile::tempdir().unwrap();
        let copied = Command::new("cp")
            .arg("-a")
            .arg(fixture(name).join("."))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(copied.success());
        std::fs::write(dir.path().join("proc/sys/crypto/fips_enabled"), flag).unwrap();
        if let Some(text) = os_release {
            std::fs::write(dir.path().join("etc/os-release"), text).unwrap();
        }
        dir
    };
    let off = tree("rhel9-kernel", "0\n", None);
    let debian = tree(
        "debian-default",
        "1\n",
        Some("ID=debian\nNAME=\"Debian GNU/Linux\"\n"),
    );
    // A configuration that asks for the default provider's algorithms.
    let not_fips = tree("rhel9-kernel", "1\n", None);
    let config = not_fips.path().join("etc/pki/tls/openssl.cnf");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[ evp_properties ]\n",
        "[ evp_properties ]\ndefault_properties = fips=no\n",
    );
    std::fs::write(&config, text).unwrap();
    for dir in [off, debian, not_fips] {
        let (code, report) = check_host(Some(dir.path()));
        assert_eq!(code, 1, "{report:#}");
        let active = finding(&report, "host.openssl-fips-active");
        assert_eq!(active["status"], "fail", "{active:#}");
        let evidence = evidence(&report, "host.openssl-fips-active");
        assert!(!evidence.contains("/etc/os-release"), "{evidence}");
    }
}

#[test]
fn an_unreadable_kernel_flag_is_an_error_not_a_guess() {
    let (code, report) = check_host(Some(&fixture("unreadable")));
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["verdict"], "error");
    let statuses = statuses(&report);
    // libgcrypt follows the kernel flag, so it cannot be decided either.
    for id in ["host.kernel-fips", "host.libgcrypt-fips"] {
        assert_eq!(statuses[id], "error", "{id}");
        let evidence = evidence(&report, id);
        assert!(
            evidence.starts_with("/proc/sys/crypto/fips_enabled: "),
            "{evidence}"
        );
    }
    assert_eq!(statuses["host.openssl-fips-provider"], "not-applicable");
}

/// What this machine's kernel flag should make of `host.kernel-fips`.
fn expected_kernel_finding() -> (&'static str, String) {
    match std::fs::read_to_string("/proc/sys/crypto/fips_enabled") {
        Ok(text) if text.trim() == "1" => ("pass", "/proc/sys/crypto/fips_enabled: 1".into()),
        Ok(text) => (
            "fail",
            format!("/proc/sys/crypto/fips_enabled: {}", text.trim()),
        ),
        Err(_) => (
            "fail",
            "kernel has no FIPS support compiled in (no /proc/sys/crypto/fips_enabled)".into(),
        ),
    }
}

#[test]
fn this_machine_is_judged_by_its_own_kernel_flag() {
    let (status, line) = expected_kernel_finding();
    for root in [None, Some(Path::new("/"))] {
        let (code, report) = check_host(root);
        assert_eq!(report["subject"], "/");
        let kernel = finding(&report, "host.kernel-fips");
        assert_eq!(kernel["status"], status, "{kernel:#}");
        assert_eq!(evidence(&report, "host.kernel-fips"), line);
        let statuses = statuses(&report);
        let expected_code = if statuses.values().any(|s| s == "error") {
            2
        } else if statuses.values().any(|s| s == "fail") {
            1
        } else {
            0
        };
        assert_eq!(code, expected_code, "{report:#}");
        if openssl_installed() {
            // openssl itself has the last word on a live system; without
            // a fips.so nothing can make the default fetch FIPS-only.
            let active = evidence(&report, "host.openssl-fips-active");
            assert!(active.contains("openssl list -providers: "), "{active}");
            assert!(
                active.contains("openssl dgst (the default fetch): "),
                "{active}"
            );
            if statuses["host.openssl-fips-provider"] == "fail" {
                assert!(
                    active.contains("serves MD5: applications may fetch non-FIPS algorithms"),
                    "{active}"
                );
            }
        }
    }
}

fn openssl_installed() -> bool {
    Command::new("/usr/bin/openssl")
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// An executable `openssl` in `dir` that runs the shell `script`.
fn fake_openssl(dir: &Path, script: &str) -> PathBuf {
    let fake = dir.join("openssl");
    std::fs::write(&fake, format!("#!/bin/sh\n{script}")).unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&fake, executable).unwrap();
    fake
}

/// The system's `openssl` is asked, in an empty environment: another
/// `openssl` earlier in `PATH`, and `LD_PRELOAD`, are not consulted.
#[test]
fn only_the_systems_openssl_is_asked() {
    if !openssl_installed() {
        return; // no OpenSSL 3 here: the finding does not ask it
    }
    let bin = tempfile::tempdir().unwrap();
    let asked = bin.path().join("asked");
    fake_openssl(bin.path(), &format!("touch {asked:?}\n"));
    let path = std::env::join_paths(
        std::iter::once(bin.path().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_fipsguard"));
    command
        .args(["check", "host"])
        .env("PATH", path)
        .env("LD_PRELOAD", bin.path().join("no-such-library.so"));
    let (_, document) = scan::json_of(command);
    let evidence = evidence(&document["reports"][0], "host.openssl-fips-active");
    assert!(!asked.exists(), "the openssl in PATH was run: {evidence}");
    assert!(
        evidence.contains("openssl list -providers: "),
        "the system's openssl answered: {evidence}"
    );
}

/// A wedged `openssl` (a provider that never answers) is stopped and
/// reported, not waited for: the scan ends, the finding fails, and what
/// the command started is stopped with it (here a wrapper script whose
/// child holds its output open, bound over the system's `openssl` in a
/// mount namespace of the scan's own: this needs root, as CI is).
#[test]
fn an_openssl_that_never_answers_is_stopped_and_reported() {
    if !openssl_installed() {
        return; // no OpenSSL 3 here: the finding does not ask it
    }
    let bin = tempfile::tempdir().unwrap();
    let pid_file = bin.path().join("child.pid");
    let fake = fake_openssl(
        bin.path(),
        &format!("sleep 600 &\necho $! > {pid_file:?}\nwait\n"),
    );
    let scan = format!(
        "mount --bind {fake:?} /usr/bin/openssl && exec {:?} check host --format json",
        env!("CARGO_BIN_EXE_fipsguard")
    );
    let namespaces = Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .is_ok_and(|status| status.success());
    if !namespaces {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "this test needs a mount namespace (root, as CI runs)"
        );
        eprintln!("SKIPPED: no mount namespace for this user");
        return;
    }
    let started = std::time::Instant::now();
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &scan])
        .output()
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    let report = &document["reports"][0];
    let active = finding(report, "host.openssl-fips-active");
    let evidence = evidence(report, "host.openssl-fips-active");
    if !pid_file.exists() {
        // No OpenSSL configuration here: the finding is decided without
        // asking the command.
        assert_ne!(active["status"], "pass", "{active:#}");
        return;
    }
    assert_eq!(active["status"], "fail", "{active:#}");
    assert!(
        evidence.contains("openssl list -providers did not answer within 10 s (stopped)"),
        "{evidence}"
    );
    let child = std::fs::read_to_string(&pid_file).unwrap();
    let stat = format!("/proc/{}/stat", child.trim());
    let gone = || {
        std::fs::read_to_string(&stat).map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
    };
    let waited = std::time::Instant::now();
    while !gone() && waited.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(gone(), "the command's own child was stopped too");
}

#[test]
fn a_root_that_is_not_a_directory_is_an_error_not_a_pass() {
    let (code, document) = check_json([
        OsString::from("host"),
        "--root".into(),
        fixture("no-such-tree").into(),
    ]);
    assert_eq!(code, 2, "{document:#}");
    let report = &document["reports"][0];
    assert_eq!(report["verdict"], "error");
    assert_eq!(report["findings"][0]["id"], "host.root");

    // An empty directory (a mount point with nothing on it yet): nothing
    // checked is not a pass either.
    let empty = tempfile::tempdir().unwrap();
    let (code, document) =
        check_json([OsString::from("host"), "--root".into(), empty.path().into()]);
    assert_eq!(code, 2, "{document:#}");
    let finding = &document["reports"][0]["findings"][0];
    assert_eq!(finding["id"], "host.root");
    assert!(
        finding["evidence"]
            .to_string()
            .contains("is empty (nothing mounted there yet?)"),
        "{finding}"
    );
}

#[test]
fn a_report_that_cannot_be_written_is_an_incomplete_scan() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fipsguard"))
        .args(["check", "host", "--root"])
        .arg(fixture("rhel-fips"))
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "not 1, a failed rule");
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot write output"));
}

#[test]
fn the_scanners_own_gnutls_variable_does_not_switch_the_host() {
    let scan = |forced: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fipsguard"));
        command.args(["check", "host", "--format", "json"]);
        if forced {
            command.env("GNUTLS_FORCE_FIPS_MODE", "1");
        }
        let output = command.output().unwrap();
        let document: Value = serde_json::from_slice(&output.stdout).unwrap();
        let report = document["reports"][0].clone();
        (
            finding(&report, "host.gnutls-fips").clone(),
            evidence(&report, "host.gnutls-fips"),
        )
    };
    let (plain, _) = scan(false);
    let (forced, evidence) = scan(true);
    if plain["status"] == "not-applicable" {
        return; // no GnuTLS on this machine
    }
    assert_eq!(forced["status"], plain["status"], "{forced:#}");
    assert!(evidence.contains("not counted"), "{evidence}");
}

/// A library directory the scanning user cannot read (the scan runs as
/// `nobody` where the tests run as root, who reads everything) leaves the
/// libraries' findings undecided, not "no such library here".
#[test]
fn a_library_directory_that_cannot_be_read_is_an_error_not_an_absence() {
    use std::os::unix::fs::PermissionsExt;
    let tree = tempfile::tempdir().unwrap();
    let at = |name: &str| tree.path().join(name);
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(tree.path(), 0o755);
    // A copy nobody may run, wherever this checkout lies.
    std::fs::copy(env!("CARGO_BIN_EXE_fipsguard"), at("fipsguard")).unwrap();
    std::fs::create_dir_all(at("root/usr/lib64")).unwrap();
    mode(&at("root"), 0o755);
    mode(&at("root/usr"), 0o755);
    std::fs::write(at("root/usr/lib64/libgcrypt.so.20"), "placeholder\n").unwrap();
    mode(&at("root/usr/lib64"), 0o000);
    let mut command = scan::as_nobody(&at("fipsguard"));
    command.args(["check", "host", "--root"]);
    command.arg(at("root"));
    let (code, document) = scan::json_of(command);
    mode(&at("root/usr/lib64"), 0o755); // for the temporary directory's removal
    assert_eq!(code, 2, "{document:#}");
    let report = &document["reports"][0];
    for id in ["host.gnutls-fips", "host.libgcrypt-fips"] {
        assert_eq!(finding(report, id)["status"], "error", "{id}: {report:#}");
        let evidence = evidence(report, id);
        assert!(
            evidence.contains("/usr/lib64") && evidence.contains("Permission denied"),
            "{id}: {evidence}"
        );
    }
}
