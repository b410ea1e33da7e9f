//! The metrics a FIPS deployment is run by, scraped from a live server; the
//! shipped alert rules and dashboard checked against them with promtool.

mod common;

use std::process::Command;

use common::{b64, TestServer};
use fipsguard_core::auth::Operation;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_service_level_indicators_and_no_names() {
    let server = TestServer::start().await;
    let key = "payroll-secret-name";
    server.create_key(key, "aes256-gcm").await;
    server.create_key("signing-key", "ecdsa-p256").await;
    let user = server
        .user(
            "*",
            &[Operation::Encrypt, Operation::Decrypt, Operation::Sign],
        )
        .await;
    let auditor = server.token("auditor", &[]).await;
    let path = format!("/v1/keys/{key}");
    let (_, sealed) = server
        .call(
            Method::POST,
            &format!("{path}/encrypt"),
            Some(&user),
            Some(json!({ "plaintext": b64(b"x"), "context": {"a": "1"} })),
        )
        .await;
    let ciphertext = sealed["ciphertext"].as_str().unwrap();
    server
        .call(
            Method::POST,
            &format!("{path}/decrypt"),
            Some(&user),
            Some(json!({ "ciphertext": ciphertext, "context": {"a": "2"} })),
        )
        .await;
    server
        .call(
            Method::POST,
            "/v1/keys/signing-key/sign",
            Some(&user),
            Some(json!({ "message": b64(b"m"), "scheme": "ecdsa-p256-sha1" })),
        )
        .await;
    server
        .call(
            Method::POST,
            "/v1/keys/signing-key/rotate",
            Some(&user),
            None,
        )
        .await;
    let refused = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &server.addr.to_string(),
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());

    let (status, _) = server
        .call(Method::GET, "/metrics", Some(&user), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "users do not read metrics");
    let response = server
        .client
        .get(format!("{}/metrics", server.url))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    for series in [
        r#"fipsguard_crypto_operations_total{op="encrypt",outcome="success"} 1"#,
        r#"fipsguard_crypto_operations_total{op="decrypt",outcome="rejected"} 1"#,
        r#"fipsguard_crypto_operation_duration_seconds_bucket{op="encrypt",le="#,
        r#"fipsguard_decrypt_failures_total{reason="ciphertext_context_mismatch"} 1"#,
        r#"fipsguard_refused_requests_total{rule="sha1-signatures"} 1"#,
        r#"fipsguard_key_access_errors_total{reason="forbidden"}"#,
        r#"fipsguard_tls_handshake_failures_total{reason=""#,
        r#"fipsguard_selftest_passed{test="aes-256-gcm-seal"} 1"#,
        r#"fipsguard_selftest_passed{test="ml-kem-768"} 1"#,
        "fipsguard_module_fips_mode 1",
        "fipsguard_module_error_state 0",
        r#"fipsguard_keys{state="active"}"#,
        "fipsguard_keys_rotation_overdue",
        "fipsguard_key_versions_cached",
        "fipsguard_store_reachable 1",
        "fipsguard_root_key_available 1",
        r#"fipsguard_http_requests_total{route="/v1/keys/{name}/encrypt",status="2xx"}"#,
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    assert!(
        !text.contains(key) && !text.contains("signing-key"),
        "a key name became a label"
    );
    for token in [&user, &auditor, &server.officer] {
        let id = &token[4..20];
        assert!(!text.contains(id), "a token id became a label");
    }

    // Every metric the alert rules and dashboard use is one the server
    // exports; but one, which it exports only with [tls] crl (checked in
    // crates/fipsguard/tests/serve.rs).
    let names: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|n| {
            n.trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
                .to_owned()
        })
        .chain(["fipsguard_tls_client_crl_next_update_timestamp_seconds".to_owned()])
        .collect();
    for file in ["prometheus/alerts.yml", "grafana/fipsguard.json"] {
        let content = std::fs::read_to_string(common::deploy_dir().join(file)).unwrap();
        for used in content
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("fipsguard_"))
        {
            let used = used.trim_end_matches("_bucket");
            assert!(
                names.iter().any(|n| n == used),
                "{file} uses {used}, which the server does not export"
            );
        }
    }
    server.stop().await;
}

#[test]
fn shipped_alert_rules_pass_promtool() {
    let Some(promtool) = common::promtool() else {
        return;
    };
    let dir = common::deploy_dir().join("prometheus");
    for args in [
        &["check", "rules", "alerts.yml", "tunnel-alerts.yml"][..],
        &["test", "rules", "alerts_test.yml", "tunnel-alerts_test.yml"][..],
    ] {
        let output = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::deploy_dir().join("grafana/fipsguard.json")).unwrap(),
    )
    .unwrap();
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_metrics_listener_stops_with_the_server() {
    let server = TestServer::with_metrics().await;
    let address = server.metrics_addr().unwrap();
    server.plain_metrics().await;
    server.stop().await;
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "{address} still accepts connections after the server stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_leaves_no_metrics_listener() {
    let dir = tempfile::TempDir::new().unwrap();
    let (mut options, _) =
        fipsguard_server::config::development(dir.path(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    options.metrics_listen = Some(free);
    // An audit directory that is a file: the log cannot open.
    let not_a_directory = dir.path().join("audit-file");
    std::fs::write(&not_a_directory, b"").unwrap();
    options.audit.as_mut().unwrap().dir = not_a_directory;
    let refused = fipsguard_server::start(options, std::future::pending())
        .await
        .err()
        .expect("a start without its audit log");
    assert!(refused.to_string().contains("audit log"), "{refused}");
    assert!(
        tokio::net::TcpStream::connect(free).await.is_err(),
        "{free} accepts connections after the start failed"
    );
}
