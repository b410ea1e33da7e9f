//! The audit log of a real `fipsguard serve`: no secret ever reaches it or
//! the logs, and no acknowledged request is ever missing from it, even
//! when the server is killed under load.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Setup;
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// POSTs (or GETs, without a body) as `token`; returns status and JSON.
async fn call(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let request = match body {
        Some(body) => client.post(url).json(&body),
        None => client.get(url),
    };
    let response = request.bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Saves the audit public key to `audit.pem`.
async fn save_public_key(setup: &Setup, client: &reqwest::Client) {
    let url = format!("{}/v1/keys/fipsguard-audit/public-key", setup.url());
    let (status, key) = call(client, &url, &setup.officer, None).await;
    assert_eq!(status, 200, "{key}");
    std::fs::write(setup.path("audit.pem"), key["pem"].as_str().unwrap()).unwrap();
}

/// A user token allowed every operation on every key.
async fn user_token(setup: &Setup, client: &reqwest::Client) -> String {
    let url = format!("{}/v1/tokens", setup.url());
    let grants = json!([{ "keys": "*", "operations": ["encrypt", "decrypt", "rewrap", "datakey", "sign", "verify", "mac", "mac-verify"] }]);
    let (status, created) = call(
        client,
        &url,
        &setup.officer,
        Some(json!({ "role": "user", "grants": grants })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created["token"].as_str().unwrap().to_owned()
}

#[test]
fn no_secret_reaches_the_audit_log_or_the_logs() {
    let setup = Setup::new();
    let server = setup.serve();
    let client = setup.client();
    let mut secrets: Vec<String> = vec![setup.officer.clone()];
    runtime().block_on(async {
        let url = |path: &str| format!("{}{path}", setup.url());
        for (name, key_type) in [
            ("aes", "aes256-gcm"),
            ("hmac", "hmac-sha256"),
            ("ecdsa", "ecdsa-p256"),
        ] {
            let (status, _) = call(
                &client,
                &url("/v1/keys"),
                &setup.officer,
                Some(json!({ "name": name, "type": key_type })),
            )
            .await;
            assert_eq!(status, 201);
        }
        let user = user_token(&setup, &client).await;
        secrets.push(user.clone());
        let plaintext = b"SECRET-PLAINTEXT-7d1c0e";
        secrets.push(String::from_utf8_lossy(plaintext).into_owned());
        secrets.push(b64(plaintext));
        let context = json!({ "tenant": "acme" });
        let (_, encrypted) = call(
            &client,
            &url("/v1/keys/aes/encrypt"),
            &user,
            Some(json!({ "plaintext": b64(plaintext), "context": context })),
        )
        .await;
        let ciphertext = encrypted["ciphertext"].as_str().unwrap().to_owned();
        secrets.push(ciphertext.clone());
        let (status, decrypted) = call(
            &client,
            &url("/v1/keys/aes/decrypt"),
            &user,
            Some(json!({ "ciphertext": ciphertext, "context": context })),
        )
        .await;
        assert_eq!(
            (status, decrypted["plaintext"].as_str()),
            (200, Some(b64(plaintext).as_str()))
        );
        let (_, rewrapped) = call(
            &client,
            &url("/v1/keys/aes/rewrap"),
            &user,
            Some(json!({ "ciphertext": ciphertext, "context": context })),
        )
        .await;
        secrets.push(rewrapped["ciphertext"].as_str().unwrap().to_owned());
        let (_, datakey) = call(
            &client,
            &url("/v1/keys/aes/datakey"),
            &user,
            Some(json!({ "context": context })),
        )
        .await;
        secrets.push(datakey["plaintext"].as_str().unwrap().to_owned());
        secrets.push(datakey["ciphertext"].as_str().unwrap().to_owned());
        let (_, mac) = call(
            &client,
            &url("/v1/keys/hmac/mac"),
            &user,
            Some(json!({ "data": b64(plaintext) })),
        )
        .await;
        secrets.push(mac["tag"].as_str().unwrap().to_owned());
        let (_, signature) = call(
            &client,
            &url("/v1/keys/ecdsa/sign"),
            &user,
            Some(json!({ "message": b64(plaintext) })),
        )
        .await;
        secrets.push(signature["signature"].as_str().unwrap().to_owned());
        let (_, random) = call(
            &client,
            &url("/v1/random"),
            &user,
            Some(json!({ "bytes": 32 })),
        )
        .await;
        secrets.push(random["random"].as_str().unwrap().to_owned());
        // Refusals carry no secret either: a wrong token, a wrong context,
        // a malformed body with a plaintext in it.
        let wrong = format!("{}x", &user[..user.len() - 1]);
        let (status, _) = call(
            &client,
            &url("/v1/keys/aes/encrypt"),
            &wrong,
            Some(json!({ "plaintext": b64(plaintext) })),
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = call(
            &client,
            &url("/v1/keys/aes/decrypt"),
            &user,
            Some(json!({ "ciphertext": ciphertext, "context": { "tenant": "other" } })),
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &client,
            &url("/v1/keys/aes/encrypt"),
            &user,
            Some(json!({ "plaintext": "SECRET-PLAINTEXT-7d1c0e!", "extra": 1 })),
        )
        .await;
        assert_eq!(status, 400);
        save_public_key(&setup, &client).await;
    });
    let log = server.stop();
    setup.verify_audit();
    let audit = setup.audit_text();
    assert!(
        audit.matches("\"kind\":\"request\"").count() >= 15,
        "{audit}"
    );
    for secret in &secrets {
        // Tokens: neither whole nor their secret part (the id is public).
        let needle = secret
            .strip_prefix("fgt.")
            .map_or(secret.as_str(), |t| &t[17..]);
        assert!(
            !audit.contains(needle),
            "a secret in the audit log: {needle}"
        );
        assert!(
            !log.contains(needle),
            "a secret in the server log: {needle}"
        );
        assert!(
            !setup.init_stderr.contains(needle),
            "a secret in init's log"
        );
    }
}

/// A key store too slow to give the audit key its record (its table
/// locked past the record's second in memory) fails the log's next flush
/// within the 5 s a checkpoint's signature may take: requests are refused
/// (503, `audit_unavailable`), not held for as long as the store hangs;
/// health says the log cannot be written, the server log why. Once the
/// store answers, the log records the outage, serves again, and verifies.
#[test]
fn a_store_too_slow_for_the_audit_key_refuses_requests_instead_of_holding_them() {
    let Some((setup, schema)) = Setup::on_postgres() else {
        return;
    };
    let server = setup.serve();
    let client = setup.client();
    runtime().block_on(async {
        save_public_key(&setup, &client).await;
        let url = |path: &str| format!("{}{path}", setup.url());
        let random = url("/v1/random");
        let draw = || call(&client, &random, &setup.officer, Some(json!({"bytes": 16})));
        let (status, answer) = draw().await;
        assert_eq!(status, 200, "{answer}");

        let lock = common::TableLock::take(&schema, "keys");
        // The audit key's record in memory goes stale: the next checkpoint
        // reads it again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let asked = Instant::now();
        let (status, answer) = draw().await;
        let waited = asked.elapsed();
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (503, Some("audit_unavailable")),
            "{answer}"
        );
        assert!(waited < Duration::from_secs(9), "refused after {waited:?}");
        let (status, health) = call(&client, &url("/v1/health"), "", None).await;
        assert_eq!(status, 503, "{health}");
        assert_eq!(health["audit"]["writable"], false, "{health}");
        common::wait_until(Duration::from_secs(5), "the reason logged", || {
            server.log().lines().any(|line| {
                line.contains("audit log write failed")
                    && line.contains("the key store is slow or unreachable")
            })
        });

        lock.release();
        let recovered = Instant::now();
        while draw().await.0 != 200 {
            assert!(
                recovered.elapsed() < Duration::from_secs(15),
                "the log did not recover"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let outage = setup
        .audit_records()
        .into_iter()
        .find(|record| record["kind"] == "outage")
        .expect("the outage is on record");
    let error = outage["error"].as_str().unwrap_or_default();
    assert!(error.contains("no answer within 5 s"), "{outage}");
    setup.verify_audit();
}

#[test]
fn every_acknowledged_request_survives_twenty_kills() {
    let setup = Setup::new();
    let client = setup.client();
    let rt = runtime();
    let first = setup.serve();
    let user = rt.block_on(async {
        let url = format!("{}/v1/keys", setup.url());
        let (status, _) = call(
            &client,
            &url,
            &setup.officer,
            Some(json!({ "name": "k", "type": "aes256-gcm" })),
        )
        .await;
        assert_eq!(status, 201);
        save_public_key(&setup, &client).await;
        user_token(&setup, &client).await
    });
    first.stop();
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    for kill in 0..20u64 {
        let server = setup.serve();
        rt.block_on(load(
            &setup,
            &user,
            &acknowledged,
            Duration::from_millis(150 + kill * 37 % 400),
            server,
        ));
    }
    let last = setup.serve();
    last.stop();
    let report = setup.verify_audit();
    let audited: HashSet<String> = setup
        .audit_records()
        .into_iter()
        .filter(|record| record["outcome"] == "success")
        .filter_map(|record| record["request_id"].as_str().map(str::to_owned))
        .collect();
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.len() > 200,
        "too little load to prove anything: {}",
        acknowledged.len()
    );
    let missing: Vec<_> = acknowledged.difference(&audited).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged requests have no audit event: {missing:?}",
        missing.len()
    );
    println!(
        "{} acknowledged encrypts over 20 kills, all audited; {report}",
        acknowledged.len()
    );
}

/// Requests refused without a valid token are recorded one by one up to
/// `[audit] unauthenticated_records_per_sec`; beyond it they are counted
/// by address, in a record a stop writes and `audit verify` reports, and
/// their request lines are logged at debug. A
/// request whose token was verified is recorded one by one whatever the
/// flood, refused or not.
#[test]
fn refusals_without_a_token_beyond_the_budget_are_counted_by_address() {
    let setup = Setup::new();
    setup.set("audit", "unauthenticated_records_per_sec = 2");
    let server = setup.serve();
    let client = setup.client();
    let keys = format!("{}/v1/keys", setup.url());
    let sent = 40;
    runtime().block_on(async {
        save_public_key(&setup, &client).await;
        let user = user_token(&setup, &client).await;
        for round in 0..sent {
            assert_eq!(call(&client, &keys, "not-a-token", None).await.0, 401);
            if round % 10 == 0 {
                assert_eq!(call(&client, &keys, &setup.officer, None).await.0, 200);
                // A user may not list keys: refused, with a caller.
                assert_eq!(call(&client, &keys, &user, None).await.0, 403);
            }
        }
    });
    let log = server.stop();
    let records = setup.audit_records();
    let requests = |status: u64| {
        records
            .iter()
            .filter(|r| r["kind"] == "request" && r["route"] == "/v1/keys" && r["status"] == status)
            .count() as u64
    };
    assert_eq!(requests(200), 4, "every request with a token");
    assert_eq!(requests(403), 4, "every refusal of a caller with a token");
    // The budget's first two (and what it earns, at 2 a second, while the
    // first round's records are synced); then the client, once counted,
    // stays counted until the record of counts (at the stop here).
    let one_by_one = requests(401);
    assert!(
        (2..=5).contains(&one_by_one),
        "{one_by_one} recorded one by one"
    );
    // Those counted log their request line at debug, not at info: a flood
    // fills neither the audit disk nor the log. Once one is counted, every
    // later one is.
    let levels: Vec<_> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["status"] == 401)
        .map(|line| line["level"].as_str().unwrap_or_default().to_owned())
        .collect();
    let first_counted = levels.iter().position(|level| level == "DEBUG");
    assert_eq!(first_counted, Some(one_by_one as usize), "{log}");
    assert!(
        levels[one_by_one as usize..]
            .iter()
            .all(|level| level == "DEBUG")
            && levels.len() as u64 == sent,
        "{levels:?}"
    );
    let counted: Vec<_> = records
        .iter()
        .filter(|r| r["kind"] == "unauthenticated_refusals")
        .collect();
    assert_eq!(counted.len(), 1, "{counted:?}");
    let expected = json!({
        "count": sent - one_by_one,
        "clients": [{ "client": "127.0.0.1", "count": sent - one_by_one }],
        "others": 0,
    });
    for field in ["count", "clients", "others"] {
        assert_eq!(counted[0][field], expected[field], "{}", counted[0]);
    }
    let report = setup.verify_audit();
    assert!(
        report.contains(&format!(
            "{} request(s) refused without an authenticated caller",
            sent - one_by_one
        )) && report.contains("most from 127.0.0.1"),
        "{report}"
    );
}

/// A SIGTERM sent the moment the server says it is serving is handled:
/// each time the server drains, closes its audit log with a shutdown
/// record (counted here) and exits cleanly (`stop` asserts that).
#[test]
fn a_sigterm_on_the_serving_line_stops_the_server_in_order() {
    let setup = Setup::new();
    let first = setup.serve();
    runtime().block_on(save_public_key(&setup, &setup.client()));
    first.stop();
    let shutdowns = || {
        setup
            .audit_records()
            .iter()
            .filter(|record| record["kind"] == "shutdown")
            .count()
    };
    let before = shutdowns();
    let runs = 10;
    for _ in 0..runs {
        setup.serve().stop();
    }
    assert_eq!(shutdowns(), before + runs);
    setup.verify_audit();
}

/// Removing the newest audit file leaves a log that verifies on its own;
/// the checkpoint kept in the key store finds it at the next start, which
/// fails until an operator accepts the gap, and the log records that.
#[test]
fn a_removed_newest_audit_file_stops_the_next_start() {
    let setup = Setup::new();
    let server = setup.serve();
    // An auditor keeps the latest checkpoint elsewhere; health does not show it.
    let (recorded, health) = runtime().block_on(async {
        let client = setup.client();
        save_public_key(&setup, &client).await;
        let (_, status) = call(
            &client,
            &format!("{}/v1/status", setup.url()),
            &setup.officer,
            None,
        )
        .await;
        let health = client
            .get(format!("{}/v1/health", setup.url()))
            .send()
            .await
            .unwrap();
        (
            status["health"]["audit"]["checkpoint"].clone(),
            health.json::<Value>().await.unwrap(),
        )
    });
    assert!(
        health["audit"].is_object() && health["audit"].get("checkpoint").is_none(),
        "{health}"
    );
    let expected = format!("{}:{}", recorded["seq"], recorded["hash"].as_str().unwrap());
    server.stop();
    let verify_expecting = || {
        std::process::Command::new(common::FIPSGUARD)
            .args(["audit", "verify", "--log"])
            .arg(setup.path("audit"))
            .arg("--public-key")
            .arg(setup.path("audit.pem"))
            .args(["--expect-checkpoint", &expected])
            .output()
            .unwrap()
    };
    assert!(verify_expecting().status.success(), "{recorded}");
    let files = fipsguard_audit::segments(&setup.path("audit")).unwrap();
    std::fs::remove_file(files.last().unwrap()).unwrap();
    // The rest verifies on its own.
    setup.verify_audit();
    let cut = verify_expecting();
    let report = String::from_utf8_lossy(&cut.stdout);
    assert_eq!(cut.status.code(), Some(1), "{report}");
    assert!(report.contains("does not hold checkpoint"), "{report}");

    let refused = std::process::Command::new(common::FIPSGUARD)
        .args(["serve", "--config"])
        .arg(setup.path("fipsguard.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("records were removed"), "{stderr}");
    assert!(stderr.contains("--audit-accept-gap"), "{stderr}");

    setup.serve_with_args(&["--audit-accept-gap"], &[]).stop();
    let report = setup.verify_audit();
    assert!(report.contains("startup accepting a gap"), "{report}");
    setup.serve().stop();
}

/// Sixteen clients encrypt on keep-alive connections; after `for_how_long`
/// the server is killed. Every 200's request id goes into `acknowledged`.
async fn load(
    setup: &Setup,
    user: &str,
    acknowledged: &Arc<Mutex<HashSet<String>>>,
    for_how_long: Duration,
    server: common::Server,
) {
    let url = format!("{}/v1/keys/k/encrypt", setup.url());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (client, url, user, stop, acknowledged) = (
            setup.client(),
            url.clone(),
            user.to_owned(),
            stop.clone(),
            acknowledged.clone(),
        );
        clients.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = client
                    .post(&url)
                    .bearer_auth(&user)
                    .json(&json!({ "plaintext": "aGVsbG8=" }))
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() == 200 {
                    let id = response.headers()["x-request-id"]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    acknowledged.lock().unwrap().insert(id);
                }
            }
        });
    }
    tokio::time::sleep(for_how_long).await;
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while clients.join_next().await.is_some() {}
}
