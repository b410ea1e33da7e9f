//! Secrets that pass through a real `fipsguard serve` leave no copy in its
//! memory once the requests are answered: the server's writable memory is
//! read through /proc and searched for every secret it was sent or made.
//!
//! What is searched for is what the server decodes or answers: a
//! plaintext sent to encrypt, once decoded, and the data keys and random
//! bytes it makes, decoded or as the base64 of its answers. (The base64 of
//! a plaintext sent to encrypt is the request's text, which stays in the
//! receive buffers: docs/module.md, "Key material"; it is not searched for.)

mod common;

use base64::Engine;
use common::Setup;
use serde_json::{json, Value};

/// A plaintext no other bytes in the server resemble.
const PLAINTEXT: &[u8] = b"\x00fipsguard memory canary: a plaintext sent to encrypt\xff";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("a base64 string"))
        .unwrap()
}

/// A secret and the name it is reported under (never its bytes).
struct Secret {
    what: String,
    bytes: Vec<u8>,
}

impl Secret {
    /// The secret itself and the base64 of it the server answered with.
    fn both(what: &str, bytes: Vec<u8>) -> [Secret; 2] {
        [
            Secret {
                what: format!("{what} (base64)"),
                bytes: b64(&bytes).into_bytes(),
            },
            Secret {
                what: what.to_owned(),
                bytes,
            },
        ]
    }
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// Drives encrypt, datakey, decrypt (single and batch) and random, and
/// returns every secret that went through the server.
async fn workload(setup: &Setup) -> Vec<Secret> {
    let client = setup.client();
    let url = |path: &str| format!("{}{path}", setup.url());
    post(
        &client,
        url("/v1/keys"),
        &setup.officer,
        json!({ "name": "k", "type": "aes256-gcm" }),
    )
    .await;
    let grants = json!([{ "keys": "*", "operations": ["encrypt", "decrypt", "datakey"] }]);
    let created = post(
        &client,
        url("/v1/tokens"),
        &setup.officer,
        json!({ "role": "user", "grants": grants }),
    )
    .await;
    let user = created["token"].as_str().unwrap().to_owned();
    let context = json!({ "tenant": "memory" });

    let mut secrets = vec![Secret {
        what: "a plaintext sent to encrypt".into(),
        bytes: PLAINTEXT.to_vec(),
    }];
    for _ in 0..16 {
        let body = json!({ "plaintext": b64(PLAINTEXT), "context": context });
        post(&client, url("/v1/keys/k/encrypt"), &user, body).await;
    }
    let mut wrapped = Vec::new();
    for _ in 0..16 {
        let key = post(
            &client,
            url("/v1/keys/k/datakey"),
            &user,
            json!({ "context": context }),
        )
        .await;
        let ciphertext = key["ciphertext"].as_str().unwrap().to_owned();
        let opened = post(
            &client,
            url("/v1/keys/k/decrypt"),
            &user,
            json!({ "ciphertext": ciphertext, "context": context }),
        )
        .await;
        assert_eq!(opened["plaintext"], key["plaintext"]);
        secrets.extend(Secret::both("a data key", unb64(&key["plaintext"])));
        wrapped.push(json!({ "ciphertext": ciphertext, "context": context }));
    }
    let batch = post(
        &client,
        url("/v1/keys/k/decrypt/batch"),
        &user,
        json!({ "items": wrapped }),
    )
    .await;
    assert_eq!(batch["results"].as_array().unwrap().len(), 16);
    for _ in 0..8 {
        let random = post(
            &client,
            url("/v1/random"),
            &setup.officer,
            json!({ "bytes": 64 }),
        )
        .await;
        secrets.extend(Secret::both("random bytes", unb64(&random["random"])));
    }
    // Tokens made but never presented (a presented one stays in the
    // receive buffers, which are out of reach: docs/module.md).
    for _ in 0..4 {
        let created = post(
            &client,
            url("/v1/tokens"),
            &setup.officer,
            json!({ "role": "auditor" }),
        )
        .await;
        let token = created["token"].as_str().unwrap();
        // Its last 24 characters: a freed copy keeps all but its first
        // bytes, which the allocator overwrites with a free-list pointer.
        let secret = token.rsplit('.').next().unwrap();
        secrets.push(Secret {
            what: "a new token's secret".into(),
            bytes: secret.as_bytes()[secret.len() - 24..].to_vec(),
        });
    }
    secrets
}

#[test]
fn no_secret_stays_in_the_servers_memory_after_its_answer() {
    let setup = Setup::new();
    let server = setup.serve();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The client, and with it every connection, is gone before the search.
    let secrets = runtime.block_on(workload(&setup));
    std::thread::sleep(std::time::Duration::from_millis(500));

    let regions = common::writable_memory(server.child.id());
    let searched: usize = regions.iter().map(Vec::len).sum();
    assert!(searched > 1 << 20, "the server's memory was read");
    let left: Vec<&str> = secrets
        .iter()
        .filter(|secret| {
            let finder = memchr::memmem::Finder::new(&secret.bytes);
            regions.iter().any(|r| finder.find(r).is_some())
        })
        .map(|secret| secret.what.as_str())
        .collect();
    server.stop();
    assert!(
        left.is_empty(),
        "{} of {} secrets were found in {searched} bytes of the server's memory: {left:?}",
        left.len(),
        secrets.len()
    );
}
