//! `fipsguard selftest` and `fipsguard algorithms`, run as a user runs them.

use std::process::{Command, Output};

use fipsguard_crypto::registry::APPROVED;
use fipsguard_crypto::selftest::test_names;
use serde_json::Value;

fn fipsguard(args: &[&str], fault: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fipsguard"));
    command.args(args).env_remove("FIPSGUARD_FAULT_INJECT");
    if let Some(fault) = fault {
        command.env("FIPSGUARD_FAULT_INJECT", fault);
    }
    command.output().expect("fipsguard runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn selftest_passes_and_shows_every_test_and_the_module() {
    let output = fipsguard(&["selftest"], None);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    for name in test_names() {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"));
        assert!(line.contains(" pass ") && line.ends_with(" us"), "{line}");
    }
    assert!(text.contains("module:      AWS-LC FIPS module 3"), "{text}");
    assert!(text.contains("CMVP #5314"), "{text}");
    assert!(
        text.contains(&format!("all {} self-tests passed", test_names().count())),
        "{text}"
    );
}

#[test]
fn selftest_json_carries_the_same_results() {
    let output = fipsguard(&["selftest", "--json"], None);
    assert_eq!(output.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert_eq!(json["passed"], true);
    assert_eq!(json["state"]["state"], "operational");
    let results = json["report"]["results"].as_array().unwrap();
    let names: Vec<_> = results
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, test_names().collect::<Vec<_>>());
    assert!(results
        .iter()
        .all(|r| r["passed"] == true && r["micros"].is_u64()));
    assert_eq!(
        json["report"]["module"]["certificate"],
        "CMVP #5314 (AWS-LC FIPS 3.0, static)"
    );
    assert_eq!(json["report"]["module"]["fips_module_version"], 3);
}

#[test]
fn a_forced_failure_exits_non_zero_and_names_the_test() {
    let output = fipsguard(&["selftest"], Some("ml-kem-768"));
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let line = text.lines().find(|l| l.starts_with("ml-kem-768 ")).unwrap();
    assert!(
        line.contains("FAIL") && line.contains("fault injection"),
        "{line}"
    );
    assert!(
        text.contains("1 of")
            && text.contains("FAILED (first: ml-kem-768)")
            && text.contains("error state"),
        "{text}"
    );

    let output = fipsguard(&["selftest", "--json"], Some("sha3-256"));
    assert_eq!(output.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["passed"], false);
    assert_eq!(
        json["state"],
        serde_json::json!({"state": "error", "failed_test": "sha3-256"})
    );
}

#[test]
fn algorithms_lists_the_registry_as_a_table_and_as_json() {
    let output = fipsguard(&["algorithms"], None);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for a in APPROVED {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(a.name))
            .unwrap();
        assert!(line.contains(a.standard), "{line}");
    }

    let output = fipsguard(&["algorithms", "--json"], None);
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed = json.as_array().unwrap();
    assert_eq!(listed.len(), APPROVED.len());
    let gcm = listed.iter().find(|a| a["name"] == "aes-256-gcm").unwrap();
    assert_eq!(gcm["standard"], "FIPS 197, SP 800-38D");
    let ml_kem = listed.iter().find(|a| a["name"] == "ml-kem-768").unwrap();
    assert_eq!(ml_kem["standard"], "FIPS 203");
}

#[test]
fn usage_errors_exit_with_2() {
    let output = fipsguard(&["selftest", "--no-such-flag"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--no-such-flag"));
}
