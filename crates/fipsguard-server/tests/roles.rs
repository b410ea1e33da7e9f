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
    let (status, answer) = server
        .call(
            Method::POST,
            "/v1/keys",
            Some(&server.officer),
            Some(json!({ "name": "pending", "type": "aes256-gcm", "active": false })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
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
    let created = StatusCode::CREATED;
    let post = |path: &str, body: Value, allowed: &'static [Who]| {
        Case::new(Method::POST, path, Some(body), allowed)
    };
    let cases: Vec<Case> = vec![
        post(
            "/v1/keys",
            json!({ "name": "new-CALLER", "type": "aes256-gcm" }),
            officer,
        )
        .answers(created),
        Case::new(Method::GET, "/v1/keys", None, oversight),
        Case::new(
            Method::GET,
            "/v1/keys/data",
            None,
            &[Officer, Auditor, User],
        )
        .needs("data", Operation::Read),
        Case::new(Method::POST, "/v1/keys/life/rotate", None, officer),
        post(
            "/v1/keys/life/config",
            json!({ "min_decryption_version": 1 }),
            officer,
        ),
        Case::new(Method::POST, "/v1/keys/life/deactivate", None, officer),
        Case::new(Method::POST, "/v1/keys/pending/activate", None, officer),
        // Without a body: the default window.
        Case::new(Method::POST, "/v1/keys/life/destroy", None, officer),
        Case::new(Method::DELETE, "/v1/keys/life/destroy", None, officer),
        Case::new(Method::POST, "/v1/keys/life/compromise", None, officer),
        Case::new(Method::POST, "/v1/keys/life/destroy-now", None, officer),
        Case::new(
            Method::GET,
            "/v1/keys/signer/public-key",
            None,
            &[Officer, Auditor, User],
        ),
        post(
            "/v1/keys/data/encrypt",
            json!({ "plaintext": b64(b"y") }),
            &[User, EncryptOnlyUser],
        )
        .needs("data", Operation::Encrypt),
        post(
            "/v1/keys/data/decrypt",
            json!({ "ciphertext": ciphertext }),
            users,
        )
        .needs("data", Operation::Decrypt),
        post(
            "/v1/keys/data/rewrap",
            json!({ "ciphertext": ciphertext }),
            users,
        )
        .needs("data", Operation::Rewrap),
        post("/v1/keys/data/datakey", json!({}), users).needs("data", Operation::Datakey),
        post(
            "/v1/keys/data/encrypt/batch",
            json!({ "items": [{ "plaintext": b64(b"z") }] }),
            &[User, EncryptOnlyUser],
        )
        .needs("data", Operation::Encrypt),
        post(
            "/v1/keys/data/decrypt/batch",
            json!({ "items": [{ "ciphertext": ciphertext }] }),
            users,
        )
        .needs("data", Operation::Decrypt),
        post(
            "/v1/keys/signer/sign",
            json!({ "message": b64(b"m") }),
            users,
        )
        .needs("signer", Operation::Sign),
        post(
            "/v1/keys/signer/sign/batch",
            json!({ "items": [{ "message": b64(b"m") }] }),
            users,
        )
        .needs("signer", Operation::Sign),
        post(
            "/v1/keys/signer/verify",
            json!({ "message": b64(b"m"), "signature": signature, "version": 1 }),
            users,
        )
        .needs("signer", Operation::Verify),
        post("/v1/keys/mac/mac", json!({ "data": b64(b"m") }), users).needs("mac", Operation::Mac),
        post(
            "/v1/keys/mac/mac/verify",
            json!({ "data": b64(b"m"), "tag": tag, "version": 1 }),
            users,
        )
        .needs("mac", Operation::MacVerify),
        post(
            "/v1/random",
            json!({ "bytes": 16 }),
            &[Officer, User, OtherKeysUser, EncryptOnlyUser],
        ),
        post("/v1/tokens", json!({ "role": "auditor" }), officer).answers(created),
        Case::new(Method::GET, "/v1/tokens", None, officer),
        Case::new(Method::GET, "/v1/tokens/self", None, any_token),
        Case::new(
            Method::DELETE,
            &format!("/v1/tokens/{revocable}"),
            None,
            officer,
        ),
        Case::new(Method::GET, "/v1/status", None, oversight),
        Case::new(Method::POST, "/v1/selftest", None, officer),
        Case::new(Method::GET, "/metrics", None, oversight),
        Case::new(Method::GET, "/v1/health", None, public),
        Case::new(Method::GET, "/v1/openapi.json", None, public),
        // Last: every caller that passes ends its own token (the officer's,
        // the only one, is kept: 409, checked below).
        Case::new(
            Method::DELETE,
            "/v1/tokens/self",
            None,
            &[Auditor, User, OtherKeysUser, EncryptOnlyUser],
        ),
    ];

    assert_every_route_is_a_case(&server, &cases).await;

    let mut checked = 0;
    for case in &cases {
        let Case {
            method,
            path,
            allowed,
            ..
        } = case;
        for (n, who) in EVERYONE.iter().enumerate() {
            if *method == Method::DELETE && path == "/v1/tokens/self" && *who == Officer {
                continue;
            }
            let (status, answer) = server
                .call(
                    method.clone(),
                    path,
                    token_for(*who).as_deref(),
                    case.body(n),
                )
                .await;
            let expected = match who {
                _ if allowed.contains(who) => case.ok,
                Nobody | Garbled => StatusCode::UNAUTHORIZED,
                _ => StatusCode::FORBIDDEN,
            };
            assert_eq!(status, expected, "{method} {path} as {who:?}: {answer}");
            if !expected.is_success() {
                let code = answer["error"]["code"].as_str().unwrap_or_default();
                assert!(
                    ["unauthenticated", "forbidden"].contains(&code),
                    "{method} {path} as {who:?}: {answer}"
                );
            }
            checked += 1;
        }
        // The grant of the one operation the endpoint needs lets a user in;
        // a grant of every other operation on the same key does not.
        if let Some((key, operation)) = case.needs {
            let others: Vec<Operation> = ALL_OPERATIONS
                .into_iter()
                .filter(|op| *op != operation)
                .collect();
            for (operations, expected) in
                [(vec![operation], case.ok), (others, StatusCode::FORBIDDEN)]
            {
                let holder = server.user(key, &operations).await;
                let (status, answer) = server
                    .call(method.clone(), path, Some(&holder), case.body(0))
                    .await;
                assert_eq!(
                    status, expected,
                    "{method} {path} granted {operations:?}: {answer}"
                );
                checked += 1;
            }
        }
    }
    // The officer's token, the only one, is kept by either route.
    let own = format!("/v1/tokens/{}", &server.officer[4..20]);
    for path in [own.as_str(), "/v1/tokens/self"] {
        let (status, answer) = server
            .call(Method::DELETE, path, Some(&server.officer), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "last_officer_token");
    }
    println!(
        "role matrix: {} endpoints x {} callers, and users granted one operation or all others: {checked} checks",
        cases.len(),
        EVERYONE.len()
    );
    server.stop().await;
}

/// One endpoint of the matrix: the callers it lets in, what it answers
/// them, and the operation a user's grant must name for it.
struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    allowed: &'static [Who],
    ok: StatusCode,
    needs: Option<(&'static str, Operation)>,
}

impl Case {
    fn new(method: Method, path: &str, body: Option<Value>, allowed: &'static [Who]) -> Self {
        Self {
            method,
            path: path.to_owned(),
            body,
            allowed,
            ok: StatusCode::OK,
            needs: None,
        }
    }

    fn answers(self, ok: StatusCode) -> Self {
        Self { ok, ..self }
    }

    fn needs(self, key: &'static str, operation: Operation) -> Self {
        Self {
            needs: Some((key, operation)),
            ..self
        }
    }

    /// The body for the `n`th caller (created keys need names of their own).
    fn body(&self, n: usize) -> Option<Value> {
        let body = self.body.as_ref()?.to_string();
        Some(serde_json::from_str(&body.replace("CALLER", &n.to_string())).unwrap())
    }
}

/// The router and the OpenAPI document are made from one list, so the
/// document's operations (and the document's own route) are every route
/// there is: each must be walked by the matrix, and nothing else.
async fn assert_every_route_is_a_case(server: &TestServer, cases: &[Case]) {
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
    for Case { method, path, .. } in cases {
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
