//! `fipsguard init` and `fipsguard serve --config`, run as an operator runs
//! them: a configuration file, a certificate from openssl, SIGTERM to stop.

mod common;

use std::process::Command;

#[test]
fn init_then_serve_from_a_configuration_file() {
    let setup = common::Setup::new();
    let (token, port) = (&setup.officer, setup.port);
    assert!(token.starts_with("fgt."), "{token}");
    assert!(setup.init_stderr.contains("created root key file"));
    let again = Command::new(common::FIPSGUARD)
        .args(["init", "--config"])
        .arg(setup.path("fipsguard.toml"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "a second init is refused");

    let server = setup.serve();
    let curl = |path_and_auth: &[&str]| {
        Command::new("curl")
            .args([
                "-sS",
                "--fail-with-body",
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
                "--cacert",
            ])
            .arg(setup.path("server.pem"))
            .args(path_and_auth)
            .output()
            .unwrap()
    };
    let status = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("https://localhost:{port}/v1/status"),
    ]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let body = String::from_utf8_lossy(&status.stdout);
    assert!(
        body.contains("\"store\":\"sqlite\"") && body.contains("\"fips_mode\":true"),
        "{body}"
    );

    // Changes log a JSON line at info, with the caller's token id but never
    // the token, nor the new token the answer carries.
    let created = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"role": "auditor"}"#,
        &format!("https://localhost:{port}/v1/tokens"),
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );
    let answer: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let new_token = answer["token"].as_str().unwrap();

    let public_key = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("https://localhost:{port}/v1/keys/fipsguard-audit/public-key"),
    ]);
    let public_key: serde_json::Value = serde_json::from_slice(&public_key.stdout).unwrap();
    std::fs::write(setup.path("audit.pem"), public_key["pem"].as_str().unwrap()).unwrap();
    let log = server.log.clone();
    server.stop();
    let log = log.lock().unwrap().clone();
    let line = log
        .lines()
        .find(|line| line.contains("\"INFO\"") && line.contains("/v1/tokens"))
        .unwrap_or_else(|| panic!("no info line for the change: {log}"));
    assert!(
        line.starts_with('{') && line.contains(&token[4..20]),
        "{line}"
    );
    assert!(
        !log.contains(&token[21..]) && !log.contains(&new_token[21..]),
        "a token's secret in the log"
    );

    // The audit log holds init, startup, every request and the shutdown,
    // verifies with the public key alone, and names tokens only by id.
    let verify = setup.verify_audit();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(report.starts_with("audit log verified"), "{report}");
    let events = setup.audit_text();
    for kind in [
        "init",
        "self_test",
        "startup",
        "request",
        "shutdown",
        "checkpoint",
    ] {
        assert!(
            events.contains(&format!("\"kind\":\"{kind}\"")),
            "no {kind} event"
        );
    }
    let new_id = answer["info"]["id"].as_str().unwrap();
    assert!(
        events.contains(&format!("\"token\":\"{new_id}\"")),
        "the new token's id is recorded"
    );
    assert!(!events.contains(&token[21..]) && !events.contains(&new_token[21..]));
}

#[test]
fn connection_settings_that_would_hold_slots_for_ever_are_refused() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = dir.path().join("fipsguard.toml");
    let store = dir.path().join("fipsguard.db");
    let root_key = dir.path().join("absent").join("root.key");
    std::fs::write(
        &config,
        format!(
            "idle_timeout_secs = 0\n[tls]\ncert = {root_key:?}\nkey = {root_key:?}\n[store]\nsqlite = {store:?}\n[root_key]\nfile = {root_key:?}\n"
        ),
    )
    .unwrap();
    let serve = |idle_override: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fipsguard"));
        command.args(["serve", "--config"]).arg(&config);
        if let Some(secs) = idle_override {
            command.env("FIPSGUARD_IDLE_TIMEOUT_SECS", secs);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for (idle_override, refusal) in [
        (None, "idle_timeout_secs must be 1 to 86400"),
        (Some("soon"), "FIPSGUARD_IDLE_TIMEOUT_SECS"),
        (
            Some("18446744073709551615"),
            "idle_timeout_secs must be 1 to 86400",
        ),
    ] {
        let (code, stderr) = serve(idle_override);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(refusal), "{idle_override:?}: {stderr}");
        assert!(!store.exists(), "refused before the store is opened");
    }
    let (code, stderr) = serve(Some("30"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        !stderr.contains("idle_timeout") && stderr.contains("root.key"),
        "the override replaces the file's 0; the next refusal is the missing root key: {stderr}"
    );
}
