//! A self-test failure while serving: every cryptographic request is
//! refused, health says why, and the plain metrics listener keeps answering
//! so the alert can fire. (Its own test binary: the module's error state is
//! process-wide.)

mod common;

use common::{b64, TestServer};
use fipsguard_core::auth::Operation;
use fipsguard_crypto::{fault, module};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_self_test_stops_service_but_not_health_and_metrics() {
    let server = TestServer::start_with(|options| {
        options.metrics_listen = Some("127.0.0.1:0".parse().unwrap())
    })
    .await;
    server.create_key("data", "aes256-gcm").await;
    let user = server.user("data", &[Operation::Encrypt]).await;
    let encrypt = || {
        server.call(
            Method::POST,
            "/v1/keys/data/encrypt",
            Some(&user),
            Some(json!({ "plaintext": b64(b"x") })),
        )
    };
    assert_eq!(encrypt().await.0, StatusCode::OK);

    // The officer's run fails: the module enters its error state, and the
    // audit log's last record says so, outside the chain.
    std::env::set_var(fault::ENV_VAR, "hmac-sha-512");
    let (status, body) = server
        .call(Method::POST, "/v1/selftest", Some(&server.officer), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    let (status, body) = encrypt().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "module_error_state");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hmac-sha-512"),
        "{body}"
    );

    let (status, health) = server.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        health["module_state"],
        json!({ "state": "error", "failed_test": "hmac-sha-512" })
    );

    let text = server.plain_metrics().await;
    assert!(text.contains("fipsguard_module_error_state 1"), "{text}");
    assert!(
        text.contains(r#"fipsguard_selftest_passed{test="hmac-sha-512"} 0"#),
        "{text}"
    );

    // A later passing run does not leave the error state: only a restart does.
    std::env::remove_var(fault::ENV_VAR);
    assert!(module::run_self_tests().passed());
    assert_eq!(encrypt().await.0, StatusCode::SERVICE_UNAVAILABLE);
    // No file was started that nothing could be chained into (an empty
    // newest file would not verify): the log ends in the file the
    // error-state record closed.
    let files: Vec<_> = std::fs::read_dir(server.audit_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let last = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        last.lines().last().unwrap().contains("hmac-sha-512"),
        "the error-state record closes it: {last}"
    );
    server.stop().await;
}
