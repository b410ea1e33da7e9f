//! Every endpoint against every kind of caller: who is let in, who is
//! refused, and with which status.

mod common;

use common::{b64, TestServer};
use fipsguard_core::auth::{Grant, Operation};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ALL_OPERATIONS: [Operation; 9] = [
    Operation::Encrypt,
    Operation::Decrypt,
    Operation::Rewrap,
    Operation::Datakey,
    Operation::Sign,
    Operation::Verify,
    Operation::Mac,
    Operation::MacVerify,
    Operation::Read,
];

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Nobody,
    Garbled,
    Officer,
    Auditor,
    /// A user granted every operation on every key.
    User,
    /// A user granted every operation, but only on another key.
    OtherKeysUser,
    /// A user granted only `encrypt` on the data key.
    EncryptOnlyUser,
}

const EVERYONE: &[Who] = &[
    Who::Nobody,
    Who::Garbled,
    Who::Officer,
    Who::Auditor,
    Who::User,
    Who::OtherKeysUser,
    Who::EncryptOnlyUser,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_admits_exactly_its_roles() {
    let server = TestServer::start().await;
    for (name, key_type) in [
        ("data", "aes256-gcm"),
        ("signer", "ecdsa-p256"),
        ("mac", "hmac-sha256"),
        ("life", "aes256-gcm"),
    ] {
        server.create_key(name, key_type).await;
    }
    let all = vec![Grant {
        keys: "*".into(),
        operations: ALL_OPERATIONS.to_vec(),
    }];
    let other = vec![Grant {
        keys: "other".into(),
        operations: ALL_OPERATIONS.to_vec(),
    }];
    let encrypt_only = vec![Grant {
        keys: "data".into(),
        operations: vec![Operation::Encrypt],
    }];
    let user = server.token("user", &all).await;
    let other_user = server.token("user", &other).await;
    let encrypt_user = server.token("user", &encrypt_only).await;
    let auditor = server.token("auditor", &[]).await;
    let token_for = |who: Who| -> Option<String> {
        match who {
            Who::Nobody => None,
            Who::Garbled => {
                Some("fgt.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into())
            }
            Who::Officer => Some(server.officer.clone()),
            Who::Auditor => Some(auditor.clone()),
            Who::User => Some(user.clone()),
            Who::OtherKeysUser => Some(other_user.clone()),
            Who::EncryptOnlyUser => Some(encrypt_user.clone()),
        }
    };

    // Material the crypto endpoints need, made by the fully granted user.
    let as_user = Some(user.as_str());
    let (_, sealed) = server
        .call(
            Method::POST,
            "/v1/keys/data/encrypt",
            as_user,
            Some(json!({ "plaintext": b64(b"x") })),
        )
        .await;
    let ciphertext = sealed["ciphertext"].as_str().unwrap().to_owned();
    let (_, signed) = server
        .call(
            Method::POST,
            "/v1/keys/signer/sign",
            as_user,
            Some(json!({ "message": b64(b"m") })),
        )
        .await;
    let signature = signed["signature"].as_str().unwrap().to_owned();
    let (_, tagged) = server
        .call(
            Method::POST,
            "/v1/keys/mac/mac",
            as_user,
            Some(json!({ "data": b64(b"m") })),
        )
        .await;
    let tag = tagged["tag"].as_str().unwrap().to_owned();
    let (_, made) = server
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&server.officer),
            Some(json!({ "role": "auditor" })),
        )
        .await;
    let revocable = made["info"]["id"].as_str().unwrap().to_owned();

    use Who::*;
    let officer: &[Who] = &[Officer];
    let oversight: &[Who] = &[Officer, Auditor];
    let users: &[Who] = &[User];
    let public: &[Who] = EVERYONE;
    let any_token: &[Who] = &[Officer, Auditor, User, OtherKeysUser, EncryptOnlyUser];
    let cases: Vec<(Method, String, Option<Value>, &[Who])> = vec![
        (
            Method::POST,
            "/v1/keys".into(),
            Some(json!({ "name": "new-CALLER", "type": "aes256-gcm" })),
            officer,
        ),
        (Method::GET, "/v1/keys".into(), None, oversight),
        (
            Method::GET,
            "/v1/keys/data".into(),
            None,
            &[Officer, Auditor, User],
        ),
        (Method::POST, "/v1/keys/life/rotate".into(), None, officer),
        (
            Method::POST,
            "/v1/keys/life/config".into(),
            Some(json!({ "min_decryption_version": 1 })),
            officer,
        ),
        (
            Method::POST,
            "/v1/keys/life/deactivate".into(),
            None,
            officer,
        ),
        (Method::POST, "/v1/keys/life/activate".into(), None, officer),
        (
            Method::POST,
            "/v1/keys/life/destroy".into(),
            Some(json!({ "days": 3 })),
            officer,
        ),
        (
            Method::DELETE,
            "/v1/keys/life/destroy".into(),
            None,
            officer,
        ),
        (
            Method::POST,
            "/v1/keys/life/compromise".into(),
            None,
            officer,
        ),
        (
            Method::POST,
            "/v1/keys/life/destroy-now".into(),
            None,
            officer,
        ),
        (
            Method::GET,
            "/v1/keys/signer/public-key".into(),
            None,
            &[Officer, Auditor, User],
        ),
        (
            Method::POST,
            "/v1/keys/data/encrypt".into(),
            Some(json!({ "plaintext": b64(b"y") })),
            &[User, EncryptOnlyUser],
        ),
        (
            Method::POST,
            "/v1/keys/data/decrypt".into(),
            Some(json!({ "ciphertext": ciphertext })),
            users,
        ),
        (
            Method::POST,
            "/v1/keys/data/rewrap".into(),
            Some(json!({ "ciphertext": ciphertext })),
            users,
        ),
        (
            Method::POST,
            "/v1/keys/data/datakey".into(),
            Some(json!({})),
            users,
        ),
        (
            Method::POST,
            "/v1/keys/data/encrypt/batch".into(),
            Some(json!({ "items": [{ "plaintext": b64(b"z") }] })),
            &[User, EncryptOnlyUser],
        ),
        (
            Method::POST,
            "/v1/keys/data/decrypt/batch".into(),
            Some(json!({ "items": [{ "ciphertext": ciphertext }] })),
            users,
        ),
        (
            Method::POST,
            "/v1/keys/signer/sign".into(),
            Some(json!({ "message": b64(b"m") })),
            users,
        ),
        (
            Method::POST,
            "/v1/keys/signer/sign/batch".into(),
            Some(json!({ "items": [{ "message": b64(b"m") }] })),
            users,
        ),
        (
            Method::POST,
            "/v1/keys/signer/verify".into(),
            Some(json!({ "message": b64(b"m"), "signature": signature, "version": 1 })),
            users,
        ),
        (
            Method::POST,
            "/v1/keys/mac/mac".into(),
            Some(json!({ "data": b64(b"m") })),
            users,
        ),
        (
            Method::POST,
            "/v1/keys/mac/mac/verify".into(),
            Some(json!({ "data": b64(b"m"), "tag": tag, "version": 1 })),
            users,
        ),
        (
            Method::POST,
            "/v1/random".into(),
            Some(json!({ "bytes": 16 })),
            &[Officer, User, OtherKeysUser, EncryptOnlyUser],
        ),
        (
            Method::POST,
            "/v1/tokens".into(),
            Some(json!({ "role": "auditor" })),
            officer,
        ),
        (Method::GET, "/v1/tokens".into(), None, officer),
        (Method::GET, "/v1/tokens/self".into(), None, any_token),
        (
            Method::DELETE,
            format!("/v1/tokens/{revocable}"),
            None,
            officer,
        ),
        (Method::GET, "/v1/status".into(), None, oversight),
        (Method::POST, "/v1/selftest".into(), None, officer),
        (Method::GET, "/metrics".into(), None, oversight),
        (Method::GET, "/v1/health".into(), None, public),
        (Method::GET, "/v1/openapi.json".into(), None, public),
        // Last: every caller that passes ends its own token (the officer's,
        // the only one, is kept: 409).
        (Method::DELETE, "/v1/tokens/self".into(), None, any_token),
    ];

    assert_every_route_is_a_case(&server, &cases).await;

    let mut checked = 0;
    for (method, path, body, allowed) in &cases {
        for (n, who) in EVERYONE.iter().enumerate() {
            // Creating keys needs a fresh name each time.
            let body = body.as_ref().map(|b| {
                serde_json::from_str(&b.to_string().replace("CALLER", &n.to_string())).unwrap()
            });
            let (status, answer) = server
                .call(method.clone(), path, token_for(*who).as_deref(), body)
                .await;
            let expected_refusal = match who {
                _ if allowed.contains(who) => None,
                Nobody | Garbled => Some(StatusCode::UNAUTHORIZED),
                _ => Some(StatusCode::FORBIDDEN),
            };
            match expected_refusal {
                Some(refusal) => {
                    assert_eq!(status, refusal, "{method} {path} as {who:?}: {answer}");
                    let code = answer["error"]["code"].as_str().unwrap_or_default();
                    assert!(
                        ["unauthenticated", "forbidden"].contains(&code),
                        "{method} {path} as {who:?}: {answer}"
                    );
                }
                None => assert!(
                    !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                    "{method} {path} as {who:?} was refused: {status} {answer}"
                ),
            }
            checked += 1;
        }
    }
    // The officer's token, the only one, is kept by either route.
    let own = format!("/v1/tokens/{}", &server.officer[4..20]);
    let (status, answer) = server
        .call(Method::DELETE, &own, Some(&server.officer), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "last_officer_token");
    println!(
        "role matrix: {} endpoints x {} callers = {checked} checks",
        cases.len(),
        EVERYONE.len()
    );
    server.stop().await;
}

/// The router and the OpenAPI document are made from one list, so the
/// document's operations (and the document's own route) are every route
/// there is: each must be walked by the matrix, and nothing else.
async fn assert_every_route_is_a_case(
    server: &TestServer,
    cases: &[(Method, String, Option<Value>, &[Who])],
) {
    let (status, document) = server
        .call(Method::GET, "/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut routes = vec![(Method::GET, "/v1/openapi.json".to_owned())];
    for (template, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            routes.push((method, template.clone()));
        }
    }
    // The route a case reaches: of the templates that match its path, the
    // one with the fewest parameters, as the router picks `/v1/tokens/self`
    // over `/v1/tokens/{id}`.
    let parameter = |segment: &&str| segment.starts_with('{') && segment.ends_with('}');
    let reached = |case_method: &Method, path: &str| {
        let path: Vec<&str> = path.split('/').collect();
        routes
            .iter()
            .filter(|(method, template)| {
                let template: Vec<&str> = template.split('/').collect();
                method == case_method
                    && template.len() == path.len()
                    && template
                        .iter()
                        .zip(&path)
                        .all(|(t, p)| t == p || (parameter(t) && !p.is_empty()))
            })
            .min_by_key(|(_, template)| template.split('/').filter(parameter).count())
    };
    let mut walked = Vec::new();
    for (method, path, _, _) in cases {
        let route = reached(method, path);
        assert!(
            route.is_some(),
            "{method} {path} is in the role matrix but is no route"
        );
        walked.extend(route);
    }
    for route in &routes {
        assert!(
            walked.contains(&route),
            "{route:?} is served but not in the role matrix"
        );
    }
}
