//! A server that passed power-up fails a periodic self-test run while
//! clients are encrypting: from that moment no request succeeds, none gets
//! a partial result, health and metrics keep answering and say why, the
//! audit log records the failure, and the shipped alert fires on the live
//! metrics. (Its own test binary: the module's error state is process-wide.)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{b64, TestServer};
use fipsguard_core::auth::Operation;
use fipsguard_crypto::{fault, module};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const FAILING_TEST: &str = "hmac-sha-512";

/// One answer a client got: when it sent the request, when the answer came.
struct Answer {
    sent: Instant,
    received: Instant,
    status: StatusCode,
    body: Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_self_test_failure_stops_service_at_once() {
    // Power-up is run 1 and passes; the first periodic run (run 2) fails.
    std::env::set_var(fault::ENV_VAR, format!("{FAILING_TEST}@2"));
    let server = Arc::new(
        TestServer::start_with(|options| {
            options.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
            options.self_test_interval = Duration::from_secs(2);
        })
        .await,
    );
    assert_eq!(module::self_test_runs(), 1);
    server.create_key("data", "aes256-gcm").await;
    let user = server.user("data", &[Operation::Encrypt]).await;

    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (server, user) = (server.clone(), user.clone());
        clients.spawn(async move { encrypt_until_refused_for_a_while(&server, &user).await });
    }
    let answers: Vec<Vec<Answer>> = clients.join_all().await;

    let first_refusal = answers
        .iter()
        .flatten()
        .filter(|a| a.status != StatusCode::OK)
        .map(|a| a.received)
        .min()
        .expect("the periodic run failed while clients were encrypting");
    let ciphertext_len = answers
        .iter()
        .flatten()
        .find(|a| a.status == StatusCode::OK)
        .map(|a| a.body["ciphertext"].as_str().unwrap().len());
    assert!(
        ciphertext_len.is_some(),
        "requests succeeded before the failure"
    );
    let mut succeeded = 0;
    for client in &answers {
        let mut refused = false;
        for answer in client {
            if answer.status == StatusCode::OK {
                assert!(
                    !refused,
                    "a request succeeded after this client was refused"
                );
                assert!(
                    answer.sent < first_refusal,
                    "a request sent after the error state succeeded"
                );
                let ciphertext = answer.body["ciphertext"].as_str().unwrap();
                assert!(ciphertext.starts_with("fg:v") && Some(ciphertext.len()) == ciphertext_len);
                succeeded += 1;
            } else {
                refused = true;
                assert_eq!(
                    answer.status,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{}",
                    answer.body
                );
                assert_eq!(
                    answer.body["error"]["code"], "module_error_state",
                    "{}",
                    answer.body
                );
                assert!(answer.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(FAILING_TEST));
                assert!(answer.body.get("ciphertext").is_none(), "{}", answer.body);
            }
        }
    }
    println!(
        "self-test failure under load: {succeeded} encrypts succeeded before it, {} refused after",
        answers.iter().flatten().count() - succeeded
    );

    let (status, health) = server.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        health["module_state"],
        json!({ "state": "error", "failed_test": FAILING_TEST })
    );
    assert!(
        health["self_tests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == FAILING_TEST && t["passed"] == false),
        "{health}"
    );

    // An officer's on-demand run cannot get past the error state either.
    let (status, body) = server
        .call(Method::POST, "/v1/selftest", Some(&server.officer), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    let metrics = server.plain_metrics().await;
    for line in [
        "fipsguard_module_error_state 1".to_owned(),
        format!(r#"fipsguard_selftest_passed{{test="{FAILING_TEST}"}} 0"#),
        r#"fipsguard_selftest_runs_total{trigger="periodic",outcome="failed"} 1"#.to_owned(),
        r#"fipsguard_selftest_runs_total{trigger="power-up",outcome="passed"} 1"#.to_owned(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    alert_fires_on(&metrics);

    let audit = audit_lines(&server);
    let last = audit.last().unwrap();
    for part in [
        r#""kind":"self_test""#,
        r#""trigger":"periodic""#,
        r#""passed":false"#,
        FAILING_TEST,
        r#""unprotected""#,
    ] {
        assert!(
            last.contains(part),
            "{part} not in the last audit record: {last}"
        );
    }
    assert!(
        audit
            .iter()
            .any(|l| l.contains(r#""kind":"self_test""#) && l.contains(r#""trigger":"power-up""#)),
        "the power-up run is recorded too"
    );
}

/// Encrypts in a loop until refused for half a second.
async fn encrypt_until_refused_for_a_while(server: &TestServer, user: &str) -> Vec<Answer> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answers = Vec::new();
    let mut refused_since = None;
    while Instant::now() < deadline {
        let sent = Instant::now();
        let (status, body) = server
            .call(
                Method::POST,
                "/v1/keys/data/encrypt",
                Some(user),
                Some(json!({ "plaintext": b64(&[7u8; 64]) })),
            )
            .await;
        let received = Instant::now();
        if status != StatusCode::OK && refused_since.is_none() {
            refused_since = Some(received);
        }
        answers.push(Answer {
            sent,
            received,
            status,
            body,
        });
        if refused_since.is_some_and(|t| t.elapsed() > Duration::from_millis(500)) {
            break;
        }
    }
    answers
}

/// The shipped rule `FipsguardSelfTestFailed`, evaluated by promtool on
/// the series just scraped.
fn alert_fires_on(metrics: &str) {
    let Some(promtool) = common::promtool() else {
        return;
    };
    let sample = format!(r#"fipsguard_selftest_passed{{test="{FAILING_TEST}"}}"#);
    let value = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&sample))
        .unwrap()
        .trim();
    let rules = common::deploy_dir().join("prometheus/alerts.yml");
    let dir = tempfile::tempdir().unwrap();
    let test = dir.path().join("live_test.yml");
    std::fs::write(
        &test,
        format!(
            r#"rule_files: ["{rules}"]
tests:
  - interval: 1m
    input_series:
      - series: 'fipsguard_selftest_passed{{instance="live", test="{FAILING_TEST}"}}'
        values: '{value} {value}'
    alert_rule_test:
      - eval_time: 1m
        alertname: FipsguardSelfTestFailed
        exp_alerts:
          - exp_labels: {{ severity: page, instance: live, test: {FAILING_TEST} }}
            exp_annotations:
              summary: "self-test {FAILING_TEST} failed on live"
              runbook: docs/runbooks/self-test-failure.md
"#,
            rules = rules.display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new(promtool)
        .args(["test", "rules"])
        .arg(&test)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the alert does not fire on the live metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every line of the audit log, oldest first.
fn audit_lines(server: &TestServer) -> Vec<String> {
    fipsguard_audit::segments(&server.audit_dir())
        .unwrap()
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}
