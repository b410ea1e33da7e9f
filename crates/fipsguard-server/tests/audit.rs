//! The audit layer over HTTPS: fail closed when the log cannot be written,
//! changes recorded before they are made, the audit key out of reach.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{b64, TestServer};
use fipsguard_core::auth::Operation;
use fipsguard_core::kms::CreateKey;
use fipsguard_server::config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The tests of this file run one at a time: they share the process's
/// metrics, and a server starting sets `fipsguard_audit_writable` to 1
/// while another test expects it at 0.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn encrypt(server: &TestServer, token: &str) -> (StatusCode, Value) {
    let body = json!({ "plaintext": b64(b"audited") });
    server
        .call(Method::POST, "/v1/keys/k/encrypt", Some(token), Some(body))
        .await
}

fn segment(server: &TestServer) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(server.audit_dir())
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    files.pop().unwrap()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn an_unwritable_log_refuses_operations_until_it_is_writable() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::with_metrics().await;
    server.create_key("k", "aes256-gcm").await;
    let user = server.user("k", &[Operation::Encrypt]).await;
    assert_eq!(encrypt(&server, &user).await.0, StatusCode::OK);

    let file = segment(&server);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let (status, body) = encrypt(&server, &user).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "audit_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("refused until it can"), "{body}");
    let dir = server.audit_dir().display().to_string();
    assert!(
        !message.contains(&dir),
        "a caller is not told the log's path"
    );
    // Refused up front from now on, for every operation, before its
    // handler runs (no encryption is counted); health says that it fails,
    // the metric why.
    let encryptions = || async { operations(&server.plain_metrics().await, "encrypt") };
    let before = encryptions().await;
    assert!(before >= 1.0, "the first encryption is counted");
    let (status, _) = encrypt(&server, &user).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(encryptions().await, before, "the handler ran");
    let rotate = "/v1/keys/k/rotate";
    let (status, _) = server
        .call(Method::POST, rotate, Some(&server.officer), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "a change too");
    let (status, health) = server.call(Method::GET, "/v1/health", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["audit"]["writable"], false, "{health}");
    assert!(!health.to_string().contains(&dir), "{health}");
    let metrics = server.plain_metrics().await;
    assert!(
        metric(
            &metrics,
            "fipsguard_audit_failures_total{reason=\"read_only\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "fipsguard_audit_refused_requests_total{reason=\"audit_unavailable\"}"
        ) >= 2.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "fipsguard_audit_writable"), 0.0);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if server.call(Method::GET, "/v1/health", None, None).await.0 == StatusCode::OK {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the log did not recover");
    assert_eq!(encrypt(&server, &user).await.0, StatusCode::OK);
    assert_eq!(
        metric(&server.plain_metrics().await, "fipsguard_audit_writable"),
        1.0
    );
    // The outage is on record, with the requests it refused (the
    // encryption and the change refused up front; the one whose own
    // write failed found it out).
    let text = std::fs::read_to_string(&file).unwrap();
    let outage = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["record"].take())
        .find(|record| record["kind"] == "outage")
        .expect("the outage is on record");
    assert_eq!(outage["refused"], 2, "{outage}");
    server.stop().await;
}

/// A change whose intent the log cannot take is refused, and counted once
/// among the requests the log refused, though its closing record is
/// refused too.
#[tokio::test]
async fn a_change_refused_at_its_intent_is_counted_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::with_metrics().await;
    server.create_key("k", "aes256-gcm").await;
    let series = "fipsguard_audit_refused_requests_total{reason=\"audit_unavailable\"}";
    let before = metric(&server.plain_metrics().await, series);
    // The log fails under the change: its first write is its intent.
    let file = segment(&server);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let (status, body) = server
        .call(
            Method::POST,
            "/v1/keys/k/rotate",
            Some(&server.officer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "audit_unavailable", "{body}");
    let after = metric(&server.plain_metrics().await, series);
    assert_eq!(after - before, 1.0, "one request refused");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    server.stop().await;
}

/// How many `op` operations the metrics count, whatever their outcome.
fn operations(text: &str, op: &str) -> f64 {
    let series = format!("fipsguard_crypto_operations_total{{op=\"{op}\"");
    text.lines()
        .filter(|line| line.starts_with(&series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every record in the current file.
fn records(server: &TestServer) -> Vec<Value> {
    std::fs::read_to_string(segment(server))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["record"].clone())
        .collect()
}

/// The records of `route` in the current file.
fn records_of(server: &TestServer, route: &str) -> Vec<Value> {
    let mut records = records(server);
    records.retain(|r| r["route"] == route);
    records
}

#[tokio::test]
async fn the_log_names_the_key_a_path_reaches_and_nothing_a_path_smuggles() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    server.create_key("payments", "aes256-gcm").await;
    let user = server.user("payments", &[Operation::Encrypt]).await;
    let body = json!({ "plaintext": b64(b"x") });
    // An escaped spelling reaches the key and is recorded by its name.
    let (status, answer) = server
        .call(
            Method::POST,
            "/v1/keys/%70ayments/encrypt",
            Some(&user),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Kilobytes of junk as a key name, without a token: refused, not logged.
    let junk = "j".repeat(8000);
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/v1/keys/{junk}/encrypt"),
            None,
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A whole token pasted as a key name (it has a key name's length and
    // characters): refused without repeating it, and kept out of the log.
    let secret = &user[21..];
    let pasted = format!("/v1/keys/{user}/encrypt");
    for (caller, refused) in [
        (Some(user.as_str()), StatusCode::FORBIDDEN),
        (None, StatusCode::UNAUTHORIZED),
    ] {
        let body = json!({ "plaintext": b64(b"x") });
        let (status, answer) = server.call(Method::POST, &pasted, caller, Some(body)).await;
        assert_eq!(status, refused, "{answer}");
        assert!(!answer.to_string().contains(secret), "{answer}");
    }
    let (status, answer) = server
        .call(
            Method::GET,
            &format!("/v1/keys/{user}"),
            Some(&server.officer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(!answer.to_string().contains(secret), "{answer}");
    let encrypts = records_of(&server, "/v1/keys/{name}/encrypt");
    let keys: Vec<&Value> = encrypts.iter().map(|r| &r["key"]).collect();
    assert_eq!(
        keys,
        [&json!("payments"), &Value::Null, &Value::Null, &Value::Null],
        "{encrypts:?}"
    );
    let versions: Vec<&Value> = encrypts.iter().map(|r| &r["key_version"]).collect();
    assert_eq!(
        versions,
        [&json!(1), &Value::Null, &Value::Null, &Value::Null],
        "the version that sealed, and none for a refusal: {encrypts:?}"
    );
    let reads = records_of(&server, "/v1/keys/{name}");
    assert!(
        reads.iter().any(|r| r["status"] == 400) && reads.iter().all(|r| r["key"].is_null()),
        "{reads:?}"
    );
    assert!(!std::fs::read_to_string(segment(&server))
        .unwrap()
        .contains(secret));

    // A whole token pasted as the id to revoke: refused without repeating
    // it, and kept out of the log; the id of no token is not found.
    let user = server.token("user", &[]).await;
    let path = format!("/v1/tokens/{user}");
    let (status, answer) = server
        .call(Method::DELETE, &path, Some(&server.officer), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(!answer.to_string().contains(&user[21..]), "{answer}");
    let (status, answer) = server
        .call(
            Method::DELETE,
            "/v1/tokens/0123456789abcdef",
            Some(&server.officer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["code"], "token_not_found");
    let revokes = records_of(&server, "/v1/tokens/{id}");
    let tokens: Vec<&Value> = revokes.iter().map(|r| &r["token"]).collect();
    let unknown = json!("0123456789abcdef");
    assert_eq!(
        tokens,
        [&Value::Null, &Value::Null, &unknown, &unknown],
        "intent and outcome of each: {revokes:?}"
    );
    // A token that ends itself: each record names it as the caller and
    // as the token revoked (the path does not).
    let (status, answer) = server
        .call(Method::DELETE, "/v1/tokens/self", Some(&user), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = json!(&user[4..20]);
    let mut ended = records_of(&server, "/v1/tokens/self");
    ended.retain(|r| r["method"] == "DELETE");
    assert_eq!(
        ended
            .iter()
            .map(|r| [&r["outcome"], &r["actor"], &r["token"]])
            .collect::<Vec<_>>(),
        [[&json!("intent"), &id, &id], [&json!("success"), &id, &id]],
        "{ended:?}"
    );
    let log = std::fs::read_to_string(segment(&server)).unwrap();
    assert!(
        !log.contains(&user[21..]),
        "a token's secret in the audit log"
    );
    assert!(!log.contains(&junk));
    server.stop().await;
}

#[tokio::test]
async fn a_batchs_failed_items_are_counted_and_recorded() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::with_metrics().await;
    server.create_key("k", "aes256-gcm").await;
    let user = server
        .user("k", &[Operation::Encrypt, Operation::Decrypt])
        .await;
    let (_, sealed) = encrypt(&server, &user).await;
    let good = sealed["ciphertext"].as_str().unwrap().to_owned();
    // A character inside the tag: each of its six bits is data. (Near the
    // end, the last character before the padding has bits that must be
    // zero, and flipping one of those is malformed base64, not tampering.)
    let mut tampered = good.clone().into_bytes();
    let inside = tampered.len() - 10;
    tampered[inside] = if tampered[inside] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let series = "fipsguard_decrypt_failures_total{reason=\"ciphertext_tampered\"}";
    let before = metric(&server.plain_metrics().await, series);
    let items = json!({ "items": [
        { "ciphertext": good },
        { "ciphertext": tampered },
        { "ciphertext": tampered },
    ] });
    let (status, answer) = server
        .call(
            Method::POST,
            "/v1/keys/k/decrypt/batch",
            Some(&user),
            Some(items),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][1]["error"]["code"], "ciphertext_tampered");
    let after = metric(&server.plain_metrics().await, series);
    assert_eq!(after - before, 2.0, "each failed item counts");
    // A batch that did nothing at all (every item failed) is rejected.
    let all_failed = json!({ "items": [{ "ciphertext": tampered }, { "ciphertext": tampered }] });
    let (status, answer) = server
        .call(
            Method::POST,
            "/v1/keys/k/decrypt/batch",
            Some(&user),
            Some(all_failed),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let records = records_of(&server, "/v1/keys/{name}/decrypt/batch");
    let tallies: Vec<_> = records
        .iter()
        .map(|r| {
            let fields = ["outcome", "items", "failed_items", "error"];
            fields.map(|field| r[field].clone())
        })
        .collect();
    assert_eq!(
        tallies,
        [
            [
                json!("success"),
                json!(3),
                json!(2),
                json!("ciphertext_tampered")
            ],
            [
                json!("rejected"),
                json!(2),
                json!(2),
                json!("ciphertext_tampered")
            ],
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn changes_are_recorded_before_and_after_with_their_actor() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    server.create_key("k", "aes256-gcm").await;
    let (status, _) = server
        .call(
            Method::POST,
            "/v1/keys/k/rotate",
            Some(&server.officer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let officer_id = &server.officer[4..20];
    let records = records_of(&server, "/v1/keys/{name}/rotate");
    let outcomes: Vec<_> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["intent", "success"], "{records:?}");
    for record in &records {
        assert_eq!(record["actor"], officer_id);
        assert_eq!(record["role"], "officer");
        assert_eq!(record["key"], "k");
        assert!(record["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    assert_eq!(records[1]["key_version"], 2);
    assert_eq!(records[0]["request_id"], records[1]["request_id"]);
    server.stop().await;
}

/// A rewrap's record names the version its ciphertext was under and the
/// version it encrypted under; a refused one the version it came from.
#[tokio::test]
async fn a_rewrap_records_the_version_it_came_from_and_the_one_it_went_to() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    server.create_key("k", "aes256-gcm").await;
    let user = server
        .user("k", &[Operation::Encrypt, Operation::Rewrap])
        .await;
    let (_, sealed) = encrypt(&server, &user).await;
    let rotate = "/v1/keys/k/rotate";
    let (status, _) = server
        .call(Method::POST, rotate, Some(&server.officer), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let rewrap = |context| json!({ "ciphertext": sealed["ciphertext"], "context": context });
    for body in [rewrap(json!({})), rewrap(json!({ "other": "context" }))] {
        let (status, answer) = server
            .call(Method::POST, "/v1/keys/k/rewrap", Some(&user), Some(body))
            .await;
        assert!(
            status == StatusCode::OK || status.is_client_error(),
            "{answer}"
        );
    }
    let versions: Vec<_> = records_of(&server, "/v1/keys/{name}/rewrap")
        .iter()
        .map(|r| [&r["outcome"], &r["from_version"], &r["key_version"]].map(Value::clone))
        .collect();
    assert_eq!(
        versions,
        [
            [json!("success"), json!(1), json!(2)],
            [json!("rejected"), json!(1), Value::Null],
        ]
    );
    server.stop().await;
}

/// A refused decrypt, verify or MAC verify records the version it asked for, as a
/// success does: what was tried is the evidence.
#[tokio::test]
async fn refused_decrypts_and_verifies_record_the_version_asked_for() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    server.create_key("k", "aes256-gcm").await;
    server.create_key("s", "ecdsa-p256").await;
    server.create_key("m", "hmac-sha256").await;
    let operations = [
        Operation::Encrypt,
        Operation::Decrypt,
        Operation::Verify,
        Operation::MacVerify,
    ];
    let user = server.user("*", &operations).await;
    let (_, sealed) = server
        .call(
            Method::POST,
            "/v1/keys/k/encrypt",
            Some(&user),
            Some(json!({ "plaintext": b64(b"x"), "context": { "a": "b" } })),
        )
        .await;
    let refusals = [
        (
            "k/decrypt",
            json!({ "ciphertext": sealed["ciphertext"], "context": { "a": "c" } }),
            1,
        ),
        (
            "s/verify",
            json!({ "message": b64(b"m"), "signature": b64(b"sig"), "version": 7 }),
            7,
        ),
        (
            "m/mac/verify",
            json!({ "data": b64(b"m"), "tag": b64(b"tag"), "version": 5 }),
            5,
        ),
    ];
    for (path, body, version) in refusals {
        let (status, answer) = server
            .call(
                Method::POST,
                &format!("/v1/keys/{path}"),
                Some(&user),
                Some(body),
            )
            .await;
        assert!(status.is_client_error(), "{path}: {answer}");
        let route = format!("/v1/keys/{{name}}/{}", &path[2..]);
        let records = records_of(&server, &route);
        assert_eq!(records.len(), 1, "{route}: {records:?}");
        assert_eq!(records[0]["outcome"], "rejected", "{records:?}");
        assert_eq!(records[0]["key_version"], version, "{records:?}");
    }
    server.stop().await;
}

/// A refused creation names the key it asked for, when that is a key name.
#[tokio::test]
async fn a_refused_key_creation_names_the_key() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    server.create_key("taken", "aes256-gcm").await;
    for (body, status) in [
        (
            json!({ "name": "taken", "type": "aes256-gcm" }),
            StatusCode::CONFLICT,
        ),
        (
            json!({ "name": "odd", "type": "des" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "name": "a/b", "type": "aes256-gcm" }),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (answered, _) = server
            .call(Method::POST, "/v1/keys", Some(&server.officer), Some(body))
            .await;
        assert_eq!(answered, status);
    }
    let refusals: Vec<_> = records_of(&server, "/v1/keys")
        .into_iter()
        .filter(|r| r["outcome"] == "rejected")
        .map(|r| (r["key"].clone(), r["error"].clone()))
        .collect();
    assert_eq!(
        refusals,
        [
            (json!("taken"), json!("key_exists")),
            (json!("odd"), json!("invalid_request")),
            (Value::Null, json!("invalid_request")),
        ]
    );
    server.stop().await;
}

/// HEAD is answered by the GET routes: a read, recorded once with its
/// outcome, with no intent record before it.
#[tokio::test]
async fn a_head_request_is_recorded_as_a_read() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    for path in ["/v1/keys", "/v1/tokens", "/v1/tokens/self"] {
        let (status, _) = server
            .call(Method::HEAD, path, Some(&server.officer), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let mut records = records(&server);
    records.retain(|r| r["method"] == "HEAD");
    let outcomes: Vec<_> = records.iter().map(|r| &r["outcome"]).collect();
    assert_eq!(outcomes, ["success"; 3], "{records:?}");
    server.stop().await;
}

/// A store whose `fipsguard-audit` key is not an active ECDSA P-256 key
/// (made before the name was reserved, with the audit log off) keeps the
/// server from starting, saying what the key is.
#[tokio::test]
async fn an_audit_key_of_another_kind_is_refused_at_start() {
    let _alone = ONE_AT_A_TIME.lock().await;
    for (key_type, active, is) in [
        ("hmac-sha256", true, "is hmac-sha256 and active"),
        ("ecdsa-p256", false, "is ecdsa-p256 and pre-active"),
    ] {
        let dir = tempfile::TempDir::new().unwrap();
        let (options, _) = config::development(dir.path(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut request = CreateKey::new("fipsguard-audit", key_type.parse().unwrap());
        request.active = active;
        options.kms.create_key(request).await.unwrap();
        let refused = fipsguard_server::start(options, std::future::pending()).await;
        let Err(why) = refused else {
            panic!("{key_type}: the server started")
        };
        assert!(why.to_string().contains(is), "{why}");
    }
}

#[tokio::test]
async fn nobody_signs_with_the_audit_key_or_retires_it() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let user = server
        .user("*", &[Operation::Sign, Operation::Verify])
        .await;
    let body = json!({ "message": b64(b"forged checkpoint") });
    let (status, answer) = server
        .call(
            Method::POST,
            "/v1/keys/fipsguard-audit/sign",
            Some(&user),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let batch = json!({ "items": [{ "message": b64(b"forged checkpoint") }] });
    let (status, answer) = server
        .call(
            Method::POST,
            "/v1/keys/fipsguard-audit/sign/batch",
            Some(&user),
            Some(batch),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the batch form too: {answer}"
    );
    // Its name is taken by the service: nobody makes it as another kind.
    let (status, answer) = server
        .call(
            Method::POST,
            "/v1/keys",
            Some(&server.officer),
            Some(json!({ "name": "fipsguard-audit", "type": "hmac-sha256" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "audit_key_reserved");
    let (status, _) = server
        .call(
            Method::GET,
            "/v1/keys/fipsguard-audit/public-key",
            Some(&user),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "verifiers may read the public key");
    for change in ["deactivate", "compromise", "destroy", "destroy-now"] {
        let path = format!("/v1/keys/fipsguard-audit/{change}");
        let (status, answer) = server
            .call(Method::POST, &path, Some(&server.officer), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{change}: {answer}");
        assert_eq!(answer["error"]["code"], "audit_key_protected");
    }
    let (status, _) = server
        .call(
            Method::POST,
            "/v1/keys/fipsguard-audit/rotate",
            Some(&server.officer),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "rotation is how the audit key is renewed"
    );
    server.stop().await;
}
