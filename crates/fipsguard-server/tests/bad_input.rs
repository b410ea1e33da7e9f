//! Bad input gets the right 4xx JSON error, and the server keeps serving.

mod common;

use common::{b64, TestServer};
use fipsguard_core::auth::Operation;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_nothing_breaks() {
    let server = TestServer::start().await;
    server.create_key("data", "aes256-gcm").await;
    let user = server
        .user("*", &[Operation::Encrypt, Operation::Decrypt])
        .await;
    let url = |path: &str| format!("{}{path}", server.url);
    let raw = |method: Method, path: &str, body: &str, content_type: &str| {
        server
            .client
            .request(method, url(path))
            .bearer_auth(&user)
            .header("content-type", content_type.to_owned())
            .body(body.to_owned())
            .send()
    };

    let cases: Vec<(&str, reqwest::Response, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            raw(
                Method::POST,
                "/v1/keys/data/encrypt",
                "{\"plaintext\":",
                "application/json",
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "wrong type",
            raw(
                Method::POST,
                "/v1/keys/data/encrypt",
                "{\"plaintext\": 5}",
                "application/json",
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown field",
            raw(
                Method::POST,
                "/v1/keys/data/encrypt",
                "{\"plaintext\": \"\", \"nonce\": \"AAAA\"}",
                "application/json",
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "invalid base64",
            raw(
                Method::POST,
                "/v1/keys/data/encrypt",
                "{\"plaintext\": \"not base64!\"}",
                "application/json",
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "not JSON at all",
            raw(
                Method::POST,
                "/v1/keys/data/encrypt",
                "plaintext=x",
                "text/plain",
            )
            .await
            .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "plaintext over 64 KiB",
            raw(
                Method::POST,
                "/v1/keys/data/encrypt",
                &json!({ "plaintext": b64(&vec![0u8; 65 * 1024]) }).to_string(),
                "application/json",
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown key",
            raw(
                Method::POST,
                "/v1/keys/nope/encrypt",
                &json!({ "plaintext": "" }).to_string(),
                "application/json",
            )
            .await
            .unwrap(),
            StatusCode::NOT_FOUND,
            "key_not_found",
        ),
        (
            "invalid key name",
            raw(
                Method::POST,
                "/v1/keys/bad%20name/encrypt",
                &json!({ "plaintext": "" }).to_string(),
                "application/json",
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "a key name that is not UTF-8",
            raw(
                Method::POST,
                "/v1/keys/%FF/encrypt",
                &json!({ "plaintext": "" }).to_string(),
                "application/json",
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "a query parameter of the wrong type",
            raw(Method::GET, "/v1/keys?limit=many", "", "application/json")
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "an unknown query parameter",
            raw(Method::GET, "/v1/keys?colour=red", "", "application/json")
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "garbage ciphertext",
            raw(
                Method::POST,
                "/v1/keys/data/decrypt",
                &json!({ "ciphertext": "fg:v1:%%%" }).to_string(),
                "application/json",
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "ciphertext_malformed",
        ),
        (
            "wrong method",
            raw(Method::GET, "/v1/keys/data/encrypt", "", "application/json")
                .await
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "unknown endpoint",
            raw(Method::GET, "/v1/nothing", "", "application/json")
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "missing token",
            server
                .client
                .post(url("/v1/keys/data/encrypt"))
                .json(&json!({ "plaintext": "" }))
                .send()
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "garbled token",
            server
                .client
                .post(url("/v1/keys/data/encrypt"))
                .header("authorization", "Bearer fgt.zz.garbage")
                .json(&json!({ "plaintext": "" }))
                .send()
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "not a bearer token",
            server
                .client
                .post(url("/v1/keys/data/encrypt"))
                .basic_auth("user", Some("pass"))
                .json(&json!({ "plaintext": "" }))
                .send()
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
    ];
    for (what, response, status, code) in cases {
        assert_eq!(response.status(), status, "{what}");
        assert!(
            response.headers().get("x-request-id").is_some(),
            "{what}: every answer has a request id"
        );
        let body: serde_json::Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }

    // The parser's messages do not echo what was sent.
    let secret = "SUPER-SECRET-VALUE";
    let response = raw(
        Method::POST,
        "/v1/keys/data/encrypt",
        &format!("{{\"plaintext\": [\"{secret}\"]}}"),
        "application/json",
    )
    .await
    .unwrap();
    assert!(!response.text().await.unwrap().contains(secret));
    // Nor a field name the API does not know, in a body or a query string.
    let (body, query) = (
        format!("{{\"plaintext\": \"\", \"{secret}\": 1}}"),
        format!("/v1/keys?{secret}=1"),
    );
    for response in [
        raw(
            Method::POST,
            "/v1/keys/data/encrypt",
            &body,
            "application/json",
        )
        .await,
        raw(Method::GET, &query, "", "application/json").await,
    ] {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let text = response.text().await.unwrap();
        assert!(text.contains("unknown field"), "{text}");
        assert!(!text.contains(secret), "{text}");
    }

    // JSON under any spelling of its media type is read alike: plain
    // `application/json` takes a shorter path than the others.
    for content_type in [
        "application/json",
        "APPLICATION/JSON",
        "application/json; charset=utf-8",
    ] {
        let good = json!({ "plaintext": b64(b"ok") }).to_string();
        let response = raw(Method::POST, "/v1/keys/data/encrypt", &good, content_type);
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{content_type}");
        for (bad, wording) in [
            ("{\"plaintext\":", "not valid JSON"),
            ("{\"plaintext\": 1}", "invalid request body: invalid type"),
        ] {
            let response = raw(Method::POST, "/v1/keys/data/encrypt", bad, content_type);
            let response = response.await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{content_type}");
            let text = response.text().await.unwrap();
            assert!(text.contains(wording), "{content_type}: {text}");
        }
    }

    // Still serving.
    let (status, sealed) = server
        .call(
            Method::POST,
            "/v1/keys/data/encrypt",
            Some(&user),
            Some(json!({ "plaintext": b64(b"ok") })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sealed}");
    server.stop().await;
}

/// A body an operation may leave out (scheduling a destruction: the
/// default window) may be empty, with or without a JSON content type; one
/// that is there is read as any other, and the OpenAPI document says it is
/// optional.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_an_operation_may_leave_out_may_be_empty() {
    let server = TestServer::start().await;
    for name in ["a", "b", "c"] {
        server.create_key(name, "aes256-gcm").await;
        let path = format!("/v1/keys/{name}/deactivate");
        let (status, _) = server
            .call(Method::POST, &path, Some(&server.officer), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let schedule = |name: &str, content_type: Option<&str>, body: &str| {
        let mut request = server
            .client
            .post(format!("{}/v1/keys/{name}/destroy", server.url))
            .bearer_auth(&server.officer)
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    for (name, content_type, body, expected) in [
        ("a", None, "", StatusCode::OK),
        ("b", Some("application/json"), "", StatusCode::OK),
        (
            "c",
            None,
            r#"{"days": 2}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "c",
            Some("application/json"),
            r#"{"days": 99}"#,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let answer = schedule(name, content_type, body).await.unwrap();
        assert_eq!(answer.status(), expected, "{name} {content_type:?} {body}");
    }
    let (_, key) = server
        .call(Method::GET, "/v1/keys/a", Some(&server.officer), None)
        .await;
    let week = key["destroy_at"].as_i64().unwrap() - key["created_at"].as_i64().unwrap();
    assert!((7 * 86_400..7 * 86_400 + 60).contains(&week), "{key}");
    // One that is there is held to the server's body limit, not axum's.
    let large = TestServer::start_with(|o| o.max_body_bytes = 4 << 20).await;
    large.create_key("d", "aes256-gcm").await;
    let path = "/v1/keys/d/deactivate";
    let (status, _) = large
        .call(Method::POST, path, Some(&large.officer), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let padded = format!("{{\"days\": 2{}}}", " ".repeat(3 << 20));
    let answer = large
        .client
        .post(format!("{}/v1/keys/d/destroy", large.url))
        .bearer_auth(&large.officer)
        .header("content-type", "application/json")
        .body(padded)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "3 MiB under a 4 MiB limit");
    large.stop().await;
    let (_, document) = server
        .call(Method::GET, "/v1/openapi.json", None, None)
        .await;
    let body = &document["paths"]["/v1/keys/{name}/destroy"]["post"]["requestBody"];
    assert!(body["content"].is_object(), "{document}");
    assert_ne!(body["required"], true, "{body}");
    server.stop().await;
}

/// A token fits a key name's length and characters, with or without its
/// `fgt.`: pasted as a key name, a grant's pattern, a role, a key type or
/// in a description, it is refused (so never stored or listed) and not
/// repeated in the answer. The audit side: tests/audit.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_pasted_where_text_belongs_are_refused_and_not_repeated() {
    let server = TestServer::start().await;
    let token = server.token("auditor", &[]).await;
    let (secret, unprefixed) = (&token[21..], &token[4..]);
    let officer = |path: &'static str, body: serde_json::Value| {
        server.call(Method::POST, path, Some(&server.officer), Some(body))
    };
    let padded = format!("x-{unprefixed}x");
    for name in [token.as_str(), unprefixed, padded.as_str()] {
        let create_key = json!({ "name": name, "type": "aes256-gcm" });
        let (status, answer) = officer("/v1/keys", create_key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("not a token"), "{answer}");
        assert!(!answer.to_string().contains(secret), "{answer}");
    }
    let misplaced = [
        ("/v1/keys", json!({ "name": "k", "type": token })),
        ("/v1/tokens", json!({ "role": token })),
        (
            "/v1/tokens",
            json!({ "role": "auditor", "description": format!("ci job {unprefixed} (rotate)") }),
        ),
        (
            "/v1/tokens",
            json!({ "role": "auditor", "description": format!("old token {unprefixed}.") }),
        ),
        (
            "/v1/tokens",
            json!({ "role": "auditor", "description": "ci job \u{1b}[2J" }),
        ),
    ];
    for (path, body) in misplaced {
        let (status, answer) = officer(path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(!answer.to_string().contains(secret), "{answer}");
    }
    let described =
        json!({ "role": "auditor", "description": "ci job (rotate) on fgt.example.com" });
    let (status, answer) = officer("/v1/tokens", described).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let refused = [
        token.as_str(),
        unprefixed,
        padded.as_str(),
        "fgt.*",
        "pay ments*",
        "**",
        "",
        "a/b",
    ];
    let taken = ["*", "pay*", ".a*", "payments"];
    let cases = refused
        .map(|p| (p, StatusCode::BAD_REQUEST))
        .into_iter()
        .chain(taken.map(|p| (p, StatusCode::CREATED)));
    for (pattern, expected) in cases {
        let grants = json!([{ "keys": pattern, "operations": ["encrypt"] }]);
        let body = json!({ "role": "user", "grants": grants });
        let (status, answer) = server
            .call(
                Method::POST,
                "/v1/tokens",
                Some(&server.officer),
                Some(body),
            )
            .await;
        assert_eq!(status, expected, "{pattern:?}: {answer}");
        assert!(!answer.to_string().contains(secret), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_configured_limit_are_refused() {
    // A small limit, so the whole body sits in socket buffers before the
    // server answers and the answer is never raced by the upload.
    let server = TestServer::start_with(|options| {
        assert_eq!(
            options.max_body_bytes,
            1 << 20,
            "the default limit is 1 MiB"
        );
        options.max_body_bytes = 4096;
    })
    .await;
    server.create_key("data", "aes256-gcm").await;
    let user = server.user("data", &[Operation::Encrypt]).await;
    let body = json!({ "plaintext": b64(&[0u8; 8192]) });
    let response = server
        .client
        .post(format!("{}/v1/keys/data/encrypt", server.url))
        .bearer_auth(&user)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "body_too_large");
    let small = json!({ "plaintext": b64(&[0u8; 1024]) });
    let (status, _) = server
        .call(
            Method::POST,
            "/v1/keys/data/encrypt",
            Some(&user),
            Some(small),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the server keeps serving");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_requests_in_flight() {
    let server = TestServer::start().await;
    server.create_key("slow", "rsa-3072").await;
    let user = server.user("slow", &[Operation::Sign]).await;
    let items: Vec<_> = (0..1000)
        .map(|i| json!({ "message": b64(format!("m{i}").as_bytes()) }))
        .collect();
    let in_flight = {
        let request = server
            .client
            .post(format!("{}/v1/keys/slow/sign/batch", server.url))
            .bearer_auth(&user)
            .json(&json!({ "items": items }));
        tokio::spawn(async move { request.send().await })
    };
    // The batch takes about two seconds; half a second in, it is being served.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let addr = server.addr;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections once stopping"
    );

    let response = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    assert!(
        results.iter().all(|r| r["signature"].is_string()),
        "every item signed"
    );
    stopping.await.unwrap();
}
