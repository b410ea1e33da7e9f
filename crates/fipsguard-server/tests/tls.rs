//! The server's TLS, probed with real clients over loopback: curl and
//! `openssl s_client` succeed with approved settings; everything else fails
//! the handshake.

mod common;

use std::process::{Command, Stdio};

use common::TestServer;
use fipsguard_crypto::tls::{ClientAuth, Identity, TlsError};
use fipsguard_crypto::Refusal;

/// Runs `openssl s_client` with `args` against the server; true if the
/// handshake completed.
fn s_client(server: &TestServer, args: &[&str]) -> bool {
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &server.addr.to_string(),
            "-servername",
            "localhost",
            "-CAfile",
        ])
        .arg(&server.ca_file)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let completed =
        text.contains("Verify return code: 0 (ok)") && !text.contains("Cipher is (NONE)");
    completed && output.status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_clients_connect_and_everything_else_is_refused() {
    let server = TestServer::start().await;
    let port = server.addr.port().to_string();

    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
                "--cacert",
            ])
            .arg(&server.ca_file)
            .args(extra)
            .arg(format!("https://localhost:{port}/v1/health"))
            .output()
            .expect("curl runs")
    };
    let ok = curl(&[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"fips_mode\":true"));
    assert!(
        curl(&["--tlsv1.2", "--tls-max", "1.2"]).status.success(),
        "TLS 1.2 with an approved suite"
    );
    assert!(curl(&["--http2"]).status.success(), "HTTP/2");

    assert!(s_client(&server, &["-tls1_3"]), "TLS 1.3 with the defaults");
    assert!(s_client(
        &server,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]
    ));
    for (what, args) in [
        ("TLS 1.1", &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"][..]),
        ("TLS 1.0", &["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"][..]),
        (
            "only CHACHA20-POLY1305 (1.3)",
            &["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"][..],
        ),
        (
            "only CHACHA20-POLY1305 (1.2)",
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"][..],
        ),
        ("only X448", &["-tls1_3", "-groups", "X448"][..]),
        ("only X25519", &["-tls1_3", "-groups", "X25519"][..]),
        (
            "only SHA-1 signatures",
            &[
                "-tls1_2",
                "-sigalgs",
                "ECDSA+SHA1:RSA+SHA1",
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ][..],
        ),
        (
            "only CBC suites",
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384"][..],
        ),
    ] {
        assert!(!s_client(&server, args), "{what} must be refused");
    }
    server.stop().await;
}

#[test]
fn weak_or_unapproved_server_keys_are_refused_at_startup() {
    let dir = tempfile::TempDir::new().unwrap();
    let make = |args: &[&str], name: &str| {
        let key = dir.path().join(format!("{name}.key"));
        let cert = dir.path().join(format!("{name}.pem"));
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(args)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        (cert, key)
    };
    let (cert, key) = make(&["-newkey", "rsa:1024"], "rsa1024");
    assert!(matches!(
        Identity::from_pem_files(&cert, &key),
        Err(TlsError::NotApproved(Refusal::RsaKeyTooSmall))
    ));
    // The key is judged by the certificate's: a private key beside an
    // approved certificate that is not its own, weak or not, is refused.
    let (p256, _) = make(
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "p256",
    );
    let (_, rsa2048) = make(&["-newkey", "rsa:2048"], "other");
    for other in [&key, &rsa2048] {
        let err = Identity::from_pem_files(&p256, other).unwrap_err();
        assert!(
            err.to_string()
                .contains("the private key is not the first certificate's own"),
            "{err}"
        );
    }
    let (cert, key) = make(
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
        "k256",
    );
    let err = Identity::from_pem_files(&cert, &key).unwrap_err();
    assert!(
        matches!(err, TlsError::NotApproved(Refusal::TlsKeyNotOffered)),
        "{err}"
    );
    assert!(err.to_string().contains("P-256 or P-384"));
    let (cert, key) = make(&["-newkey", "rsa:2048"], "rsa2048");
    let identity = Identity::from_pem_files(&cert, &key).unwrap();
    assert_eq!(identity.key_description, "RSA 2048 bits");
    let config = fipsguard_crypto::tls::server_config(identity, ClientAuth::None).unwrap();
    assert!(config.fips());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_identify_callers_and_can_be_required() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    let p256 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=client CA",
                "-keyout",
                &file("ca.key"),
                "-out",
                &file("ca.pem"),
            ][..],
            &p256,
        ]
        .concat(),
    );
    openssl(
        &[
            &[
                "req",
                "-subj",
                "/CN=payments-service",
                "-keyout",
                &file("client.key"),
                "-out",
                &file("client.csr"),
            ][..],
            &p256,
        ]
        .concat(),
    );
    std::fs::write(
        file("ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        &file("client.csr"),
        "-CA",
        &file("ca.pem"),
        "-CAkey",
        &file("ca.key"),
        "-CAcreateserial",
        "-extfile",
        &file("ext"),
        "-out",
        &file("client.pem"),
    ]);
    // A client key on P-521: outside the key policy, refused like the server's own would be.
    let p521 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-521",
        "-nodes",
    ];
    openssl(
        &[
            &[
                "req",
                "-subj",
                "/CN=p521-client",
                "-keyout",
                &file("p521.key"),
                "-out",
                &file("p521.csr"),
            ][..],
            &p521,
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        &file("p521.csr"),
        "-CA",
        &file("ca.pem"),
        "-CAkey",
        &file("ca.key"),
        "-CAcreateserial",
        "-extfile",
        &file("ext"),
        "-out",
        &file("p521.pem"),
    ]);
    let der = Command::new("openssl")
        .args(["x509", "-in", &file("client.pem"), "-outform", "der"])
        .output()
        .unwrap()
        .stdout;
    let fingerprint: String =
        fipsguard_crypto::digest::digest(fipsguard_crypto::digest::HashAlgorithm::Sha256, &der)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();

    for required in [false, true] {
        let roots =
            fipsguard_crypto::tls::read_roots(std::path::Path::new(&file("ca.pem"))).unwrap();
        let server = TestServer::start_with(|options| {
            options.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
            options.client_auth = if required {
                ClientAuth::Required(roots.into())
            } else {
                ClientAuth::Optional(roots.into())
            };
        })
        .await;
        // The officer token from setup: with a required certificate the
        // harness client (which has none) cannot make another.
        let auditor = server.officer.clone();
        let port = server.addr.port().to_string();
        let status = |cert: Option<&str>| {
            let mut curl = Command::new("curl");
            curl.args([
                "-sS",
                "--fail",
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
                "--cacert",
            ])
            .arg(&server.ca_file)
            .args(["-H", &format!("Authorization: Bearer {auditor}")]);
            if let Some(name) = cert {
                curl.args([
                    "--cert",
                    &file(&format!("{name}.pem")),
                    "--key",
                    &file(&format!("{name}.key")),
                ]);
            }
            curl.arg(format!("https://localhost:{port}/v1/status"))
                .output()
                .unwrap()
        };
        assert!(
            !status(Some("p521")).status.success(),
            "a P-521 client key is refused"
        );
        // By its rule, not as a signature that does not verify.
        let refused_by_rule = "fipsguard_tls_handshake_failures_total{reason=\"key_not_approved\"}";
        let refusals = server.plain_metrics().await;
        assert!(
            refusals
                .lines()
                .any(|line| line.starts_with(refused_by_rule)),
            "{refusals}"
        );
        let with = status(Some("client"));
        assert!(
            with.status.success(),
            "{}",
            String::from_utf8_lossy(&with.stderr)
        );
        let body: serde_json::Value = serde_json::from_slice(&with.stdout).unwrap();
        assert_eq!(
            body["caller"]["client_certificate_sha256"],
            fingerprint.as_str()
        );
        let without = status(None);
        match required {
            false => {
                let body: serde_json::Value = serde_json::from_slice(&without.stdout).unwrap();
                assert!(body["caller"]["client_certificate_sha256"].is_null());
            }
            true => assert!(
                !without.status.success(),
                "a required client certificate is required"
            ),
        }
        server.stop().await;
    }
}
