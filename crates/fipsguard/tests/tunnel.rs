//! `fipsguard tunnel` with real peers: curl and openssl against a server
//! tunnel, psql to PostgreSQL through a client and a server tunnel,
//! allow-lists, CRLs, PROXY protocol v2, reloads that keep connections,
//! hostile peers, and a clean drain.

mod common;
mod pki;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::FIPSGUARD;
use pki::Pki;

/// A running `fipsguard tunnel` and what it logged.
struct Tunnel {
    child: Child,
    log: Arc<Mutex<String>>,
    metrics: u16,
}

impl Tunnel {
    /// Starts `fipsguard tunnel ARGS` with a metrics listener and waits
    /// until it listens.
    fn start(args: &[&str]) -> Self {
        Self::launch(Command::new(FIPSGUARD), args, true)
    }

    /// The same inside network namespace `namespace`, whose metrics
    /// listener this process cannot reach: ready once it logs so.
    fn start_in(namespace: &str, args: &[&str]) -> Self {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", namespace, FIPSGUARD]);
        Self::launch(command, args, false)
    }

    fn launch(mut command: Command, args: &[&str], reachable: bool) -> Self {
        let metrics = free_port();
        let mut child = command
            .arg("tunnel")
            .args(args)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .env("FIPSGUARD_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = collect(child.stderr.take().unwrap());
        wait_until("the tunnel listens", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the tunnel exited ({status}): {}", log.lock().unwrap());
            }
            log.lock().unwrap().contains("tunnel listening")
                && (!reachable || TcpStream::connect(("127.0.0.1", metrics)).is_ok())
        });
        Self {
            child,
            log,
            metrics,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The Prometheus text of its metrics listener.
    fn metrics(&self) -> String {
        http_get(self.metrics, "/metrics")
    }

    /// The value of one series (0 if absent).
    fn series(&self, name_and_labels: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every refused handshake so far, whatever the reason.
fn refused_total(tunnel: &Tunnel) -> f64 {
    tunnel
        .metrics()
        .lines()
        .filter(|line| {
            line.starts_with("fipsguard_tunnel_handshakes_total")
                && line.contains("outcome=\"refused\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn collect(stderr: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let collected = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = collected.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    log
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    common::wait_until(
        Duration::from_secs(20),
        &format!("timed out waiting until {what}"),
        done,
    );
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// A CRL loaded while a client's handshake runs (under the configuration
/// it was accepted with) keeps that client from the target: it is not let
/// through to be cut later.
#[test]
fn a_client_revoked_during_its_handshake_never_reaches_the_target() {
    use fipsguard_crypto::tls::{self, rustls};
    let pki = Pki::new();
    pki.leaf("alice", "DNS:alice.fipsguard.test");
    let (target, seen) = http_target("should not be seen");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let tunnel = Tunnel::start(&strs(&mtls_server_args(
        &pki,
        &listen,
        &format!("127.0.0.1:{target}"),
    )));
    let identity =
        tls::Identity::from_pem_files(&pki.path("alice.pem"), &pki.path("alice.key")).unwrap();
    let roots = tls::read_roots(&pki.path("ca.pem")).unwrap();
    let config = Arc::new(tls::client_config(roots, Some(identity)).unwrap());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(config, name).unwrap();
    let mut tcp = TcpStream::connect(&listen).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The hello out, and the server's whole flight in: what is left to
    // send is alice's certificate and her Finished.
    while client.wants_write() {
        client.write_tls(&mut tcp).unwrap();
    }
    while client.is_handshaking() {
        client.read_tls(&mut tcp).unwrap();
        client.process_new_packets().unwrap();
    }

    pki.revoke("alice");
    wait_until("the new CRL is loaded", || {
        tunnel.series("fipsguard_tunnel_reloads_total{tunnel=\"tunnel\",outcome=\"ok\"}") >= 1.0
    });
    while client.wants_write() {
        client.write_tls(&mut tcp).unwrap();
    }
    wait_until("the tunnel refuses alice", || {
        tunnel.series("fipsguard_tunnel_handshakes_total{tunnel=\"tunnel\",outcome=\"refused\",reason=\"revoked_certificate\"}") >= 1.0
    });
    let mut answer = Vec::new();
    let _ = client.read_tls(&mut tcp);
    let _ = client.process_new_packets();
    let _ = client.reader().read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(*seen.lock().unwrap(), 0, "the target saw nothing");
    assert!(tunnel.log().contains("Revoked"), "{}", tunnel.log());
}

/// A target that answers every connection with a fixed HTTP response and
/// counts the connections it saw.
fn http_target(body: &'static str) -> (u16, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            *counter.lock().unwrap() += 1;
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (port, seen)
}

/// A target that echoes every byte back.
fn echo_target() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let _ = std::io::copy(&mut reader, &mut stream);
            });
        }
    });
    port
}

fn curl(pki: &Pki, port: u16, extra: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(pki.path("ca.pem"))
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(extra)
        .arg(format!("https://localhost:{port}/"))
        .output()
        .unwrap()
}

fn s_client(port: u16, extra: &[&str]) -> Output {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// An interactive TLS client (openssl) through which lines echo.
struct Session {
    child: Child,
    input: std::process::ChildStdin,
    output: BufReader<std::process::ChildStdout>,
}

impl Session {
    fn open(listen: &str, pki: &Pki) -> Self {
        Self::open_with(listen, pki, &[])
    }

    /// With more `s_client` arguments (a client certificate, say).
    fn open_with(listen: &str, pki: &Pki, extra: &[&str]) -> Self {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-connect",
                listen,
                "-servername",
                "localhost",
            ])
            .args(["-CAfile", &pki.path_str("ca.pem")])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            input,
            output,
        }
    }

    /// Sends a line and returns the line that comes back.
    fn echo(&mut self, line: &str) -> String {
        writeln!(self.input, "{line}").unwrap();
        let mut answer = String::new();
        self.output.read_line(&mut answer).unwrap();
        answer.trim().to_owned()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server tunnel's flags but for who it lets in, which is never a default.
fn server_base(pki: &Pki, listen: &str, target: &str) -> Vec<String> {
    vec![
        "server".into(),
        "--listen".into(),
        listen.into(),
        "--target".into(),
        target.into(),
        "--cert".into(),
        pki.path_str("server.pem"),
        "--key".into(),
        pki.path_str("server.key"),
    ]
}

/// A server tunnel that lets in any client, without a certificate.
fn server_args(pki: &Pki, listen: &str, target: &str) -> Vec<String> {
    let mut args = server_base(pki, listen, target);
    args.push("--disable-authentication".into());
    args
}

/// [`server_base`] requiring client certificates from the PKI's CA,
/// checked against its `crl.pem`; the caller says which are let in.
fn mtls_base(pki: &Pki, listen: &str, target: &str) -> Vec<String> {
    let mut args = server_base(pki, listen, target);
    let client_ca = [
        "--client-ca",
        &pki.path_str("ca.pem"),
        "--crl",
        &pki.path_str("crl.pem"),
    ];
    args.extend(client_ca.map(String::from));
    args
}

/// [`mtls_base`] letting in every client the CA verifies.
fn mtls_server_args(pki: &Pki, listen: &str, target: &str) -> Vec<String> {
    let mut args = mtls_base(pki, listen, target);
    args.push("--allow-all".into());
    args
}

/// A client tunnel to a server tunnel at `target`, trusting the PKI's CA.
fn client_args(pki: &Pki, listen: &str, target: &str) -> Vec<String> {
    vec![
        "client".into(),
        "--listen".into(),
        listen.into(),
        "--target".into(),
        target.into(),
        "--server-name".into(),
        "localhost".into(),
        "--cacert".into(),
        pki.path_str("ca.pem"),
    ]
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `fipsguard tunnel ARGS`, which must refuse to start (exit 1) saying
/// `rule`; under `timeout`, so a tunnel that wrongly starts ends the test.
fn refused_at_startup(args: &[&str], rule: &str) {
    let output = Command::new("timeout")
        .args(["20", FIPSGUARD, "tunnel"])
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.contains(rule), "{args:?}: {err}");
}

#[test]
fn a_server_tunnel_serves_curl_and_openssl_and_refuses_what_the_policy_refuses() {
    let pki = Pki::new();
    let (target, _) = http_target("hello through FIPS TLS");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let tunnel = Tunnel::start(&strs(&server_args(
        &pki,
        &listen,
        &format!("127.0.0.1:{target}"),
    )));

    let ok = curl(&pki, port, &[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "hello through FIPS TLS"
    );
    let tls12 = curl(&pki, port, &["--tls-max", "1.2", "--tlsv1.2"]);
    assert!(
        tls12.status.success(),
        "TLS 1.2 with an approved suite is fine"
    );
    let s = s_client(port, &["-CAfile", &pki.path_str("ca.pem")]);
    let text = String::from_utf8_lossy(&s.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(text.contains("TLSv1.3"), "{text}");

    // Each offer outside the policy reaches the tunnel and is refused there
    // (counted), not merely failed by the local client.
    let refused_cases: [(&str, &dyn Fn() -> Output); 5] = [
        ("TLS 1.1", &|| {
            curl(
                &pki,
                port,
                &[
                    "--tlsv1.1",
                    "--tls-max",
                    "1.1",
                    "--ciphers",
                    "DEFAULT@SECLEVEL=0",
                ],
            )
        }),
        ("TLS 1.1 (openssl)", &|| {
            s_client(port, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
        }),
        ("CHACHA20-POLY1305 only, TLS 1.3", &|| {
            s_client(
                port,
                &["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
            )
        }),
        ("CHACHA20-POLY1305 only, TLS 1.2", &|| {
            s_client(
                port,
                &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
            )
        }),
        ("X448 only", &|| s_client(port, &["-groups", "X448"])),
    ];
    for (what, attempt) in refused_cases {
        let before = refused_total(&tunnel);
        let output = attempt();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(!text.contains("hello through FIPS TLS"), "{what}: {text}");
        wait_until(&format!("the tunnel refuses {what}"), || {
            refused_total(&tunnel) > before
        });
    }
    let refusals = tunnel.series("fipsguard_tunnel_handshakes_total{tunnel=\"tunnel\",outcome=\"refused\",reason=\"incompatible_peer\"}");
    assert!(refusals >= 4.0, "refusals by reason: {}", tunnel.metrics());
    let ok = tunnel.series(
        "fipsguard_tunnel_handshakes_total{tunnel=\"tunnel\",outcome=\"ok\",reason=\"none\"}",
    );
    assert!(ok >= 3.0, "{}", tunnel.metrics());
    let metrics = tunnel.metrics();
    for series in [
        "fipsguard_tunnel_open_connections{tunnel=\"tunnel\"}",
        "fipsguard_tunnel_bytes_total{tunnel=\"tunnel\",direction=\"to_target\"}",
        "fipsguard_tunnel_bytes_total{tunnel=\"tunnel\",direction=\"to_peer\"}",
        "fipsguard_tunnel_sessions_total{tunnel=\"tunnel\",version=\"TLSv1_3\",suite=\"TLS13_AES_256_GCM_SHA384\"}",
        "fipsguard_tunnel_certificate_expiry_timestamp_seconds{tunnel=\"tunnel\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing: {metrics}");
    }
    assert!(http_get(tunnel.metrics, "/health").contains("200 OK"));
    assert!(
        tunnel.log().contains("reason=\"incompatible_peer\""),
        "{}",
        tunnel.log()
    );
}

#[test]
fn settings_out_of_range_are_refused_at_startup_by_name() {
    let pki = Pki::new();
    let listen = format!("127.0.0.1:{}", free_port());
    for (flag, value, rule) in [
        ("--workers", "0", "workers must be 1 to 256"),
        ("--workers", "257", "workers must be 1 to 256"),
        (
            "--max-connections",
            "0",
            "max_connections must be 1 to 1,000,000",
        ),
        (
            "--handshake-timeout-secs",
            "0",
            "handshake_timeout_secs must be at least 1",
        ),
        (
            "--max-connections-per-client",
            "0",
            "max_connections_per_client must be 1 to max_connections",
        ),
        (
            "--max-connections-per-client",
            "4097",
            "max_connections_per_client must be 1 to max_connections",
        ),
        (
            "--idle-timeout-secs",
            "2592001",
            "idle_timeout_secs must be at most 2,592,000",
        ),
        (
            "--client-ipv6-prefix",
            "31",
            "client_ipv6_prefix must be 32 to 128",
        ),
        (
            "--client-ipv6-prefix",
            "129",
            "client_ipv6_prefix must be 32 to 128",
        ),
    ] {
        let mut args = server_args(&pki, &listen, "127.0.0.1:1");
        args.extend([flag.to_owned(), value.to_owned()]);
        refused_at_startup(&strs(&args), rule);
    }
    // On loopback every client has one address: a cap per client there
    // would be a second max_connections.
    let mut client = client_args(&pki, &listen, "127.0.0.1:1");
    client.extend(["--max-connections-per-client".into(), "8".into()]);
    refused_at_startup(
        &strs(&client),
        "every client of a tunnel on loopback has the same one",
    );

    // Flags require the pair; a file could give a client certificate
    // without its key, and the tunnel would then present none.
    let config = pki.path_str("half.toml");
    std::fs::write(
        &config,
        format!(
            "[[tunnel]]\nname = \"half\"\nmode = \"client\"\nlisten = {listen:?}\ntarget = \"127.0.0.1:1\"\ncacert = {:?}\ncert = {:?}\n",
            pki.path_str("ca.pem"),
            pki.path_str("server.pem"),
        ),
    )
    .unwrap();
    refused_at_startup(&["--config", &config], "cert and key go together");
}

#[test]
fn who_a_tunnel_lets_in_is_always_said_never_a_default() {
    let pki = Pki::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let base = server_base(&pki, &listen, "127.0.0.1:1");
    let with = |more: &[&str]| {
        let mut args = base.clone();
        args.extend(more.iter().map(|s| s.to_string()));
        args
    };
    let ca = pki.path_str("ca.pem");
    for (args, rule) in [
        (
            with(&[]),
            "a server tunnel needs client_ca (mTLS) to know its clients, or disable_authentication",
        ),
        (
            with(&["--client-ca", &ca]),
            "a server tunnel with client_ca needs an allow-list",
        ),
        (
            with(&[
                "--client-ca",
                &ca,
                "--disable-authentication",
                "--allow-all",
            ]),
            "disable_authentication contradicts client_ca",
        ),
        (
            with(&["--client-ca", &ca, "--allow-all", "--allow-dns", "a"]),
            "allow_all contradicts the allow-list",
        ),
        (with(&["--allow-all"]), "allow_all needs client_ca"),
        (
            with(&["--disable-authentication", "--unsafe-listen"]),
            "unsafe_listen is for client tunnels",
        ),
    ] {
        refused_at_startup(&strs(&args), rule);
    }
    // A list left empty (a template with nothing filled in) admits no one:
    // it is refused, not read as no list.
    let config = pki.path_str("empty-list.toml");
    std::fs::write(
        &config,
        format!(
            "[[tunnel]]\nmode = \"server\"\nlisten = {listen:?}\ntarget = \"127.0.0.1:1\"\ncert = {:?}\nkey = {:?}\nclient_ca = {ca:?}\nallow_uri = []\n",
            pki.path_str("server.pem"),
            pki.path_str("server.key"),
        ),
    )
    .unwrap();
    refused_at_startup(&["--config", &config], "an empty allow-list admits no one");
    // A client tunnel lends its certificate to whoever reaches its port.
    // An address no interface has: a tunnel that wrongly started could
    // not listen on it either.
    let off_loopback = "192.0.2.1:5432".to_owned();
    let client = [
        "client",
        "--listen",
        &off_loopback,
        "--target",
        "127.0.0.1:1",
        "--cacert",
        &ca,
    ];
    refused_at_startup(&client, "a client tunnel listening off loopback");
}

#[test]
fn the_open_file_limit_is_raised_and_one_too_low_is_named() {
    let pki = Pki::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let with_limit = |ulimit: &str, max_connections: &str| {
        let mut args = server_args(&pki, &listen, "127.0.0.1:1");
        args.extend(["--max-connections".into(), max_connections.into()]);
        let mut command = Command::new("sh");
        let script = format!("ulimit {ulimit} && exec \"$0\" \"$@\"");
        command.args(["-c", &script, FIPSGUARD]);
        Tunnel::launch(command, &strs(&args), true)
    };
    // A soft limit of 256 under a higher hard one: raised to the hard one,
    // which is enough for 100 connections on any machine.
    let tunnel = with_limit("-S -n 256", "100");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", tunnel.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert!(fields[3] != "256" && fields[3] == fields[4], "{line}");
    assert!(!tunnel.log().contains("open-file limit is below"));
    drop(tunnel);
    // A hard limit of 256: far below two sockets for each of 4,096 connections.
    let tunnel = with_limit("-n 256", "4096");
    assert!(
        tunnel.log().contains("open-file limit is below"),
        "{}",
        tunnel.log()
    );
}

#[test]
fn weak_certificates_are_refused_at_startup_and_at_the_handshake() {
    let pki = Pki::new();
    pki.rsa_1024("weak");
    // Our own certificate: the tunnel does not start, and says why.
    let port = free_port();
    let output = Command::new(FIPSGUARD)
        .args([
            "tunnel",
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--target",
            "127.0.0.1:1",
            "--disable-authentication",
        ])
        .args([
            "--cert",
            &pki.path_str("weak.pem"),
            "--key",
            &pki.path_str("weak.key"),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("RSA keys below 2048 bits are not approved"),
        "{err}"
    );

    // Client certificates under mTLS: RSA-1024 and SHA-1 signatures fail
    // the handshake, though the CA signed them.
    pki.leaf_with("rsa1024-client", "DNS:client", &["rsa:1024"], "sha256");
    pki.leaf_with(
        "sha1-client",
        "DNS:client",
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "sha1",
    );
    let (target, seen) = http_target("should not be seen");
    let mtls_port = free_port();
    let mtls_listen = format!("127.0.0.1:{mtls_port}");
    let mut args = server_base(&pki, &mtls_listen, &format!("127.0.0.1:{target}"));
    args.extend([
        "--client-ca".into(),
        pki.path_str("ca.pem"),
        "--allow-all".into(),
    ]);
    let mtls = Tunnel::start(&strs(&args));
    for (client, reason) in [
        ("rsa1024-client", "key_not_approved"),
        ("sha1-client", "signature_not_approved"),
    ] {
        let before = refused_total(&mtls);
        // openssl, told to offer them (curl's OpenSSL would not load the
        // RSA-1024 key at all).
        let output = s_client(
            mtls_port,
            &[
                "-cert",
                &pki.path_str(&format!("{client}.pem")),
                "-key",
                &pki.path_str(&format!("{client}.key")),
                "-cipher",
                "DEFAULT@SECLEVEL=0",
                "-CAfile",
                &pki.path_str("ca.pem"),
            ],
        );
        assert!(!String::from_utf8_lossy(&output.stdout).contains("should not be seen"));

        wait_until(&format!("{client} is refused by the tunnel"), || {
            refused_total(&mtls) > before
        });
        let series = format!("fipsguard_tunnel_handshakes_total{{tunnel=\"tunnel\",outcome=\"refused\",reason=\"{reason}\"}}");
        assert_eq!(mtls.series(&series), 1.0, "{client}: {}", mtls.metrics());
    }
    assert_eq!(*seen.lock().unwrap(), 0, "the target saw nothing");

    // A server's certificate: a client tunnel will not talk to it.
    let (_weak_server, server_port) = openssl_www(&pki, "weak", &["-cipher", "DEFAULT@SECLEVEL=0"]);
    let local = free_port();
    let tunnel = Tunnel::start(&[
        "client",
        "--listen",
        &format!("127.0.0.1:{local}"),
        "--target",
        &format!("127.0.0.1:{server_port}"),
        "--server-name",
        "localhost",
        "--cacert",
        &pki.path_str("weak.pem"),
    ]);
    let mut stream = TcpStream::connect(("127.0.0.1", local)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "nothing may pass: {}",
        String::from_utf8_lossy(&answer)
    );
    wait_until("the refusal is counted", || {
        tunnel.series("fipsguard_tunnel_handshakes_total{tunnel=\"tunnel\",outcome=\"refused\",reason=\"bad_certificate\"}") >= 1.0
    });
}

/// A child process stopped and reaped however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server -www` with the PKI's certificate `name`, and its port.
/// Each answer says whether its session was `New` or `Reused`.
fn openssl_www(pki: &Pki, name: &str, args: &[&str]) -> (Reaped, u16) {
    let port = free_port();
    let server = Command::new("openssl")
        .args(["s_server", "-accept", &port.to_string(), "-www"])
        .args(args)
        .args([
            "-cert",
            &pki.path_str(&format!("{name}.pem")),
            "-key",
            &pki.path_str(&format!("{name}.key")),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Reaped(server);
    wait_until("openssl listens", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (server, port)
}

#[test]
fn a_client_tunnel_checks_the_servers_certificate_on_every_connection() {
    let pki = Pki::new();
    // openssl hands out session tickets: a client that kept one would
    // resume without the server's chain.
    let (_server, port) = openssl_www(&pki, "server", &[]);
    let local = free_port();
    let _tunnel = Tunnel::start(&strs(&client_args(
        &pki,
        &format!("127.0.0.1:{local}"),
        &format!("127.0.0.1:{port}"),
    )));
    for connection in 0..3 {
        let mut stream = TcpStream::connect(("127.0.0.1", local)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.contains("New, TLSv1.3"),
            "connection {connection}: {answer}"
        );
    }
}

#[test]
fn psql_reaches_postgresql_through_a_client_and_a_server_tunnel() {
    let pki = Pki::new();
    pki.leaf(
        "db-client",
        "DNS:db-client,URI:spiffe://fipsguard.test/db-client",
    );
    let server_port = free_port();
    let server_listen = format!("127.0.0.1:{server_port}");
    let mut args = server_base(&pki, &server_listen, "127.0.0.1:5432");
    args.extend(["--client-ca".into(), pki.path_str("ca.pem")]);
    args.extend([
        "--allow-uri".into(),
        "spiffe://fipsguard.test/db-client".into(),
    ]);
    let _server = Tunnel::start(&strs(&args));
    let local = free_port();
    let mut client = client_args(&pki, &format!("127.0.0.1:{local}"), &server_listen);
    client.extend([
        "--cert".into(),
        pki.path_str("db-client.pem"),
        "--key".into(),
        pki.path_str("db-client.key"),
    ]);
    let _client = Tunnel::start(&strs(&client));
    let output = Command::new("psql")
        .arg(format!("host=127.0.0.1 port={local} user=postgres dbname=test sslmode=disable connect_timeout=10"))
        .args(["-tAc", "SELECT 6 * 7"])
        .output()
        .expect("psql is installed");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "42");
}

#[test]
fn allow_lists_and_crls_refuse_before_the_target_sees_a_byte_and_proxy_v2_names_the_peer() {
    let pki = Pki::new();
    pki.leaf(
        "allowed",
        "DNS:allowed.fipsguard.test,URI:spiffe://fipsguard.test/allowed",
    );
    pki.leaf("stranger", "DNS:stranger.fipsguard.test");
    pki.leaf("revoked", "URI:spiffe://fipsguard.test/allowed");
    pki.revoke("revoked");

    // The target records what arrives on each connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().port();
    let (arrived, received) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let arrived = arrived.clone();
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut bytes = vec![0u8; 4096];
                let n = stream.read(&mut bytes).unwrap_or(0);
                bytes.truncate(n);
                let _ = stream.write_all(b"welcome");
                let _ = arrived.send(bytes);
            });
        }
    });
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = mtls_base(&pki, &listen, &format!("127.0.0.1:{target}"));
    args.extend(
        [
            "--allow-uri",
            "spiffe://fipsguard.test/allowed",
            "--allow-dns",
            "reports.fipsguard.test",
            "--allow-subject",
            "CN=batch, O=fipsguard tests",
            "--proxy-protocol",
        ]
        .map(String::from),
    );
    let tunnel = Tunnel::start(&strs(&args));

    let with_cert = |name: &str| {
        s_client(
            port,
            &[
                "-ign_eof",
                "-CAfile",
                &pki.path_str("ca.pem"),
                "-cert",
                &pki.path_str(&format!("{name}.pem")),
                "-key",
                &pki.path_str(&format!("{name}.key")),
            ],
        )
    };
    for refused in ["stranger", "revoked"] {
        let output = with_cert(refused);
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("welcome"),
            "{refused}"
        );
    }
    // A refusal names the subject too, as allow_subject takes it.
    let log = tunnel.log();
    assert!(
        log.contains("stranger.fipsguard.test (subject CN=stranger, O=fipsguard tests) is not on the allow-list"),
        "{log}"
    );
    // A name with a line break in it (OpenSSL writes `\n` in a
    // configuration as one) is refused as the malformed certificate it
    // is, and starts no line of the log.
    pki.leaf("forged", "URI:spiffe://fipsguard.test/x\\nforged line");
    let output = with_cert("forged");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("welcome"));
    wait_until("the forged name is refused", || {
        tunnel
            .log()
            .contains("holds a character other than printable ASCII")
    });
    let log = tunnel.log();
    assert!(!log.lines().any(|line| line.starts_with("forged")), "{log}");
    let no_cert = s_client(port, &["-CAfile", &pki.path_str("ca.pem")]);
    assert!(!String::from_utf8_lossy(&no_cert.stdout).contains("welcome"));
    assert!(
        received.recv_timeout(Duration::from_millis(500)).is_err(),
        "the target saw a connection from a refused peer"
    );
    let reasons = tunnel.metrics();
    for reason in [
        "not_allowed",
        "revoked_certificate",
        "no_certificate",
        "bad_certificate",
    ] {
        assert!(
            reasons.contains(&format!("outcome=\"refused\",reason=\"{reason}\"")),
            "{reason} not counted: {reasons}"
        );
    }

    let allowed = with_cert("allowed");
    let text = String::from_utf8_lossy(&allowed.stdout);
    assert!(text.contains("welcome"), "{text}");
    let header = received.recv_timeout(Duration::from_secs(5)).unwrap();
    let parsed = ppp::v2::Header::try_from(header.as_slice()).expect("a PROXY v2 header");
    match parsed.addresses {
        ppp::v2::Addresses::IPv4(addresses) => {
            assert_eq!(addresses.source_address, std::net::Ipv4Addr::LOCALHOST);
            assert_eq!(addresses.destination_port, port);
        }
        other => panic!("addresses: {other:?}"),
    }
    let tlvs: Vec<_> = parsed.tlvs().map(Result::unwrap).collect();
    let identity = tlvs
        .iter()
        .find(|t| t.kind == 0xE0)
        .expect("the identity TLV");
    assert_eq!(&identity.value[..], b"spiffe://fipsguard.test/allowed");
    let ssl = tlvs.iter().find(|t| t.kind == 0x20).expect("the SSL TLV");
    assert_eq!(
        ssl.value[0] & 0x07,
        0x07,
        "SSL, with a verified client certificate"
    );
    assert_eq!(&ssl.value[1..5], &[0; 4], "verify: 0, verified");
    assert!(ssl.value.windows(7).any(|w| w == b"allowed"), "the CN");

    // A DNS name is let in whatever its case, a subject attribute by
    // attribute in the certificate's order; the PROXY header names what
    // the allow-list matched.
    pki.leaf("mixed-case", "DNS:Reports.FipsGuard.Test");
    pki.leaf("batch", "DNS:unlisted.fipsguard.test");
    for (name, admitted_as) in [
        ("mixed-case", "Reports.FipsGuard.Test"),
        ("batch", "CN=batch, O=fipsguard tests"),
    ] {
        let output = with_cert(name);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("welcome"), "{name}: {text}");
        let header = received.recv_timeout(Duration::from_secs(5)).unwrap();
        let parsed = ppp::v2::Header::try_from(header.as_slice()).expect("a PROXY v2 header");
        let identity = parsed
            .tlvs()
            .map(Result::unwrap)
            .find(|t| t.kind == 0xE0)
            .expect("the identity TLV");
        assert_eq!(&identity.value[..], admitted_as.as_bytes(), "{name}");
    }

    // A new CRL is picked up without a restart: the same client is refused.
    std::thread::sleep(Duration::from_millis(1100)); // a new modification time
    pki.revoke("allowed");
    wait_until("the new CRL is loaded", || {
        tunnel.series("fipsguard_tunnel_reloads_total{tunnel=\"tunnel\",outcome=\"ok\"}") >= 1.0
    });
    let revoked_now = with_cert("allowed");
    assert!(!String::from_utf8_lossy(&revoked_now.stdout).contains("welcome"));
    assert!(
        received.recv_timeout(Duration::from_millis(500)).is_err(),
        "the target saw a connection from a revoked client"
    );
}

#[test]
fn crl_files_are_read_as_pem_or_der_and_one_without_a_list_is_refused() {
    let pki = Pki::new();
    pki.leaf("revoked", "DNS:revoked.fipsguard.test");
    pki.leaf("good", "DNS:good.fipsguard.test");
    pki.revoke("revoked");
    std::fs::write(pki.path("empty.crl"), b"").unwrap();
    std::fs::write(
        pki.path("cert-only.pem"),
        std::fs::read(pki.path("ca.pem")).unwrap(),
    )
    .unwrap();
    let (target, _) = http_target("checked");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args_with_crl = |crl: &str| {
        let mut args = server_base(&pki, &listen, &format!("127.0.0.1:{target}"));
        let ca = pki.path_str("ca.pem");
        args.extend(["--client-ca", &ca, "--crl", crl, "--allow-all"].map(String::from));
        args
    };

    // Without a list, revocation would silently be off: refused at startup.
    for empty in ["empty.crl", "cert-only.pem"] {
        let args = args_with_crl(&pki.path_str(empty));
        refused_at_startup(&strs(&args), "no certificate revocation list");
    }

    // A DER list revokes as the PEM one does.
    pki.der_crl("crl.der", false);
    let tunnel = Tunnel::start(&strs(&args_with_crl(&pki.path_str("crl.der"))));
    let with_cert = |name: &str| {
        let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
        let (cert, key) = (pki.path_str(&cert), pki.path_str(&key));
        curl(&pki, port, &["--cert", &cert, "--key", &key])
    };
    let refused = |reason: &str| {
        tunnel.series(&format!(
            "fipsguard_tunnel_handshakes_total{{tunnel=\"tunnel\",outcome=\"refused\",reason=\"{reason}\"}}"
        ))
    };
    assert!(String::from_utf8_lossy(&with_cert("good").stdout).contains("checked"));
    assert!(!String::from_utf8_lossy(&with_cert("revoked").stdout).contains("checked"));
    // Counted once the tunnel is done with the connection, which may be
    // just after curl has read the alert.
    wait_until("the revoked client is counted", || {
        refused("revoked_certificate") == 1.0
    });
    // When the list passes its nextUpdate (in two days), for an alert.
    let next_update = || {
        let series = "fipsguard_tunnel_crl_next_update_timestamp_seconds{tunnel=\"tunnel\"}";
        tunnel.series(series) - std::time::UNIX_EPOCH.elapsed().unwrap().as_secs_f64()
    };
    let ahead = next_update();
    assert!((171_000.0..173_000.0).contains(&ahead), "{ahead}");

    // A list past its nextUpdate refuses everyone it covers, by name.
    pki.der_crl("crl.der", true);
    wait_until("the expired list is loaded", || {
        tunnel.series("fipsguard_tunnel_reloads_total{tunnel=\"tunnel\",outcome=\"ok\"}") >= 1.0
    });
    assert!(!String::from_utf8_lossy(&with_cert("good").stdout).contains("checked"));
    wait_until("the refusal is counted", || refused("crl_expired") == 1.0);
    let ahead = next_update();
    assert!(
        (-87_000.0..-86_000.0).contains(&ahead),
        "passed a day ago: {ahead}"
    );

    // Every metric the shipped tunnel alerts use is one the tunnel exports.
    let metrics = tunnel.metrics();
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/prometheus/tunnel-alerts.yml"
    );
    let rules = std::fs::read_to_string(rules).unwrap();
    for used in rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("fipsguard_"))
    {
        assert!(
            metrics.lines().any(|l| l.starts_with(&format!("{used}{{"))),
            "tunnel-alerts.yml uses {used}, which the tunnel does not export:\n{metrics}"
        );
    }
}

#[test]
fn clients_with_certificates_never_resume_a_session_unchecked() {
    let pki = Pki::new();
    pki.leaf("client", "DNS:client.fipsguard.test");
    let (target, _) = http_target("resumed?");
    // Connects twice with TLS 1.2 session ids (openssl), the second time
    // offering the first's session if it had one to keep; that answer.
    let connect_twice = |args: &[String]| {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut all = server_base(&pki, &listen, &format!("127.0.0.1:{target}"));
        all.extend_from_slice(args);
        let _tunnel = Tunnel::start(&strs(&all));
        let session = pki.path_str("session.pem");
        let _ = std::fs::remove_file(&session);
        let client = [
            "-tls1_2",
            "-CAfile",
            &pki.path_str("ca.pem"),
            "-cert",
            &pki.path_str("client.pem"),
            "-key",
            &pki.path_str("client.key"),
        ];
        s_client(port, &[&client[..], &["-sess_out", &session]].concat());
        let offered = std::path::Path::new(&session).exists();
        let resume: &[&str] = if offered {
            &["-sess_in", &session]
        } else {
            &[]
        };
        let again = s_client(port, &[&client[..], resume].concat());
        (offered, String::from_utf8_lossy(&again.stdout).into_owned())
    };
    // The method works: without client certificates, sessions resume.
    let (_, plain) = connect_twice(&["--disable-authentication".into()]);
    assert!(plain.contains("Reused, TLSv1.2"), "{plain}");
    // With them, no session is kept: every connection is a full
    // handshake, its certificate checked afresh.
    let (offered, checked) = connect_twice(&[
        "--client-ca".into(),
        pki.path_str("ca.pem"),
        "--allow-all".into(),
    ]);
    assert!(!offered, "a session to resume was offered");
    assert!(checked.contains("New, TLSv1.2"), "{checked}");
}

#[test]
fn certificates_reload_on_sighup_and_on_change_without_dropping_connections() {
    let pki = Pki::new();
    let echo = echo_target();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let tunnel = Tunnel::start(&strs(&server_args(
        &pki,
        &listen,
        &format!("127.0.0.1:{echo}"),
    )));
    let serial = || {
        let output = s_client(port, &["-CAfile", &pki.path_str("ca.pem")]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let pem_start = text
            .find("-----BEGIN CERTIFICATE-----")
            .expect("a certificate");
        let pem_end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
        let mut x509 = Command::new("openssl")
            .args(["x509", "-noout", "-serial"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        x509.stdin
            .take()
            .unwrap()
            .write_all(&text.as_bytes()[pem_start..pem_end])
            .unwrap();
        String::from_utf8(x509.wait_with_output().unwrap().stdout).unwrap()
    };
    // Before any reload, its series are there at zero, for alerts on
    // their increase.
    let metrics = tunnel.metrics();
    for series in [
        "fipsguard_tunnel_reloads_total{tunnel=\"tunnel\",outcome=\"ok\"} 0",
        "fipsguard_tunnel_reloads_total{tunnel=\"tunnel\",outcome=\"failed\"} 0",
        "fipsguard_tunnel_clients_cut_total{tunnel=\"tunnel\",reason=\"revoked\"} 0",
        "fipsguard_tunnel_clients_cut_total{tunnel=\"tunnel\",reason=\"expired\"} 0",
        "fipsguard_tunnel_clients_cut_total{tunnel=\"tunnel\",reason=\"untrusted\"} 0",
    ] {
        assert!(
            metrics.lines().any(|line| line == series),
            "{series}: {metrics}"
        );
    }
    // A connection that stays open across both reloads: openssl as an
    // interactive client, echoing through the tunnel.
    let mut open = Session::open(&listen, &pki);
    let mut echo_line = |line: &str| assert_eq!(open.echo(line), line);
    echo_line("before");
    let first = serial();

    pki.leaf("server", "DNS:localhost");
    tunnel.signal("-HUP");
    wait_until("SIGHUP reloads", || tunnel.log().contains("why=\"SIGHUP\""));
    let second = serial();
    assert_ne!(first, second, "new connections get the new certificate");
    echo_line("after SIGHUP");

    // New files given the old ones' modification times, then copied over
    // them keeping those times (as `cp -p` or `rsync -t` install files
    // made elsewhere) are noticed all the same. Counted from a second on,
    // when any reload the renames above set off (files are checked every
    // second) has come and gone.
    let reloads_ok =
        || tunnel.series("fipsguard_tunnel_reloads_total{tunnel=\"tunnel\",outcome=\"ok\"}");
    std::thread::sleep(Duration::from_millis(1100));
    let before = reloads_ok();
    pki.leaf("server-next", "DNS:localhost");
    let run = |program: &str, args: &[String]| {
        assert!(Command::new(program).args(args).status().unwrap().success());
    };
    for (old, new) in [
        ("server.pem", "server-next.pem"),
        ("server.key", "server-next.key"),
    ] {
        let (old, new) = (pki.path_str(old), pki.path_str(new));
        run("touch", &["-r".into(), old.clone(), new.clone()]);
        run("cp", &["-p".into(), new, old]);
    }
    wait_until("the change is noticed", || reloads_ok() > before);
    assert_ne!(serial(), second);
    echo_line("after the files changed");

    // A broken file keeps the working configuration.
    let failing = "fipsguard_tunnel_last_reload_failed{tunnel=\"tunnel\"}";
    assert_eq!(tunnel.series(failing), 0.0);
    std::fs::write(pki.path("server.key"), "not a key").unwrap();
    wait_until("the failed reload is counted", || {
        tunnel.series("fipsguard_tunnel_reloads_total{tunnel=\"tunnel\",outcome=\"failed\"}") >= 1.0
    });
    assert_eq!(tunnel.series(failing), 1.0, "held until a reload succeeds");
    assert!(!serial().is_empty(), "still serving");
    echo_line("still open");
    drop(open);
}

/// A reload whose new CRL names a client that is connected cuts that
/// client's connection (its openssl sees the connection end; the cut is
/// counted and logged); a client the CRL does not name keeps its own.
#[test]
fn a_connected_client_on_a_reloaded_crl_is_cut_and_the_others_stay() {
    let pki = Pki::new();
    pki.leaf("alice", "DNS:alice.fipsguard.test");
    pki.leaf("bob", "DNS:bob.fipsguard.test");
    let echo = echo_target();
    let listen = format!("127.0.0.1:{}", free_port());
    let args = mtls_server_args(&pki, &listen, &format!("127.0.0.1:{echo}"));
    let tunnel = Tunnel::start(&strs(&args));
    let client = |name: &str| {
        let (cert, key) = (
            pki.path_str(&format!("{name}.pem")),
            pki.path_str(&format!("{name}.key")),
        );
        Session::open_with(&listen, &pki, &["-cert", &cert, "-key", &key])
    };
    let (mut alice, mut bob) = (client("alice"), client("bob"));
    assert_eq!(alice.echo("hello"), "hello");
    assert_eq!(bob.echo("hello"), "hello");
    let cut = |reason: &str| {
        tunnel.series(&format!(
            "fipsguard_tunnel_clients_cut_total{{tunnel=\"tunnel\",reason=\"{reason}\"}}"
        ))
    };

    pki.revoke("alice");
    wait_until("the new CRL is loaded", || {
        tunnel.series("fipsguard_tunnel_reloads_total{tunnel=\"tunnel\",outcome=\"ok\"}") >= 1.0
    });
    wait_until("alice's openssl sees its connection end", || {
        alice.child.try_wait().unwrap().is_some()
    });
    assert_eq!(cut("revoked"), 1.0);
    assert_eq!(bob.echo("still here"), "still here");
    let log = tunnel.log();
    assert!(
        log.contains("connection cut: its client certificate is no longer accepted"),
        "{log}"
    );
    assert!(log.contains("Revoked"), "{log}");

    // A list past its nextUpdate says nothing new of bob: new handshakes
    // are refused for it, but his open connection is not cut.
    pki.der_crl("crl.pem", true);
    wait_until("the stale CRL is loaded", || {
        tunnel.series("fipsguard_tunnel_reloads_total{tunnel=\"tunnel\",outcome=\"ok\"}") >= 2.0
    });
    assert_eq!(bob.echo("after the stale list"), "after the stale list");
    assert_eq!(cut("revoked"), 1.0);

    // Another client CA (of the same name, with another key: bob's
    // certificate's signature no longer verifies), with its own list (a
    // list that does not verify under the CA of its name is refused).
    let other = Pki::new();
    for file in ["crl.pem", "ca.pem"] {
        let new = pki.path(&format!("{file}.new"));
        std::fs::copy(other.path(file), &new).unwrap();
        std::fs::rename(&new, pki.path(file)).unwrap();
    }
    wait_until("bob's openssl sees its connection end", || {
        bob.child.try_wait().unwrap().is_some()
    });
    assert_eq!((cut("revoked"), cut("untrusted")), (1.0, 1.0));
    assert!(tunnel.log().contains("BadSignature"), "{}", tunnel.log());
}

/// A client whose certificate expires while it is connected is cut then,
/// with no reload to prompt it.
#[test]
fn a_client_is_cut_when_its_certificate_expires() {
    let pki = Pki::new();
    let echo = echo_target();
    let listen = format!("127.0.0.1:{}", free_port());
    let tunnel = Tunnel::start(&strs(&mtls_server_args(
        &pki,
        &listen,
        &format!("127.0.0.1:{echo}"),
    )));
    // Issued once the tunnel runs (it reads only the CA and the CRL), so
    // a slow start does not eat into its few seconds.
    pki.short_lived_leaf("brief", 10);
    let (cert, key) = (pki.path_str("brief.pem"), pki.path_str("brief.key"));
    let mut brief = Session::open_with(&listen, &pki, &["-cert", &cert, "-key", &key]);
    assert_eq!(brief.echo("hello"), "hello");
    common::wait_until(
        Duration::from_secs(40),
        "the expired client's openssl sees its connection end",
        || brief.child.try_wait().unwrap().is_some(),
    );
    assert_eq!(
        tunnel.series("fipsguard_tunnel_clients_cut_total{tunnel=\"tunnel\",reason=\"expired\"}"),
        1.0
    );
    let log = tunnel.log();
    let cut = log
        .lines()
        .find(|line| line.contains("connection cut: its client certificate is no longer accepted"))
        .unwrap_or_else(|| panic!("no cut in {log}"));
    assert!(cut.to_lowercase().contains("expired"), "{cut}");
    assert_eq!(
        tunnel.series("fipsguard_tunnel_reloads_total{tunnel=\"tunnel\",outcome=\"ok\"}"),
        0.0
    );
}

/// A connection idle both ways for the idle timeout is closed in order
/// (the peer's openssl sees the end of the stream); one in use stays open;
/// the tunnel's TCP connections on both sides carry keepalive probes.
#[test]
fn idle_connections_are_closed_and_all_are_kept_alive() {
    let pki = Pki::new();
    let echo = echo_target();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = server_args(&pki, &listen, &format!("127.0.0.1:{echo}"));
    args.extend(["--idle-timeout-secs".to_owned(), "4".to_owned()]);
    let tunnel = Tunnel::start(&strs(&args));
    let mut busy = Session::open(&listen, &pki);
    let mut idle = Session::open(&listen, &pki);
    assert_eq!(busy.echo("hello"), "hello");
    assert_eq!(idle.echo("hello"), "hello");

    // ss shows the timer that runs: a retransmission's while data is
    // unacknowledged, the keepalive's once the socket is quiet.
    let sockets = |filter: String| {
        let output = Command::new("ss")
            .args(["-tnoH", "state", "established", &filter])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    for side in [
        format!("( sport = :{port} )"),
        format!("( dport = :{echo} )"),
    ] {
        wait_until("keepalive on the tunnel's sockets", || {
            let lines = sockets(side.clone());
            lines.lines().count() == 2
                && lines.lines().all(|line| line.contains("timer:(keepalive"))
        });
    }

    for i in 0..12 {
        let line = format!("still here {i}");
        assert_eq!(busy.echo(&line), line);
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_until("openssl sees the idle connection end", || {
        idle.child.try_wait().unwrap().is_some()
    });
    let mut rest = String::new();
    assert_eq!(idle.output.read_line(&mut rest).unwrap(), 0, "{rest}");
    assert_eq!(
        tunnel.series("fipsguard_tunnel_idle_closed_total{tunnel=\"tunnel\"}"),
        1.0
    );
    assert_eq!(busy.echo("last"), "last");
}

/// Data held up all through the idle timeout by a target that does not
/// read is not passed off as a finished stream: the connection is reset,
/// not closed in order, and not counted as idle.
#[test]
fn a_stalled_receiver_is_reset_not_closed_as_idle() {
    let pki = Pki::new();
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_port = target.local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = server_args(&pki, &listen, &format!("127.0.0.1:{target_port}"));
    args.extend(["--idle-timeout-secs".to_owned(), "2".to_owned()]);
    let tunnel = Tunnel::start(&strs(&args));
    let session = Session::open(&listen, &pki);
    let (held, _) = target.accept().unwrap(); // and never read
    let mut input = std::fs::File::from(
        std::os::fd::AsFd::as_fd(&session.input)
            .try_clone_to_owned()
            .unwrap(),
    );
    let block = vec![b'x'; 64 << 10];
    let mut sent = 0usize;
    // Until the buffers between here and the target are full; the write
    // fails once openssl is gone.
    let writer = std::thread::scope(|scope| {
        let sending = scope.spawn(|| {
            while input.write_all(&block).is_ok() {
                sent += block.len();
            }
        });
        wait_until("the stalled connection is reset", || {
            tunnel
                .log()
                .contains("data waits for a receiver that does not take it")
        });
        drop(session);
        sending.join()
    });
    writer.unwrap();
    assert!(sent > 0);
    assert_eq!(
        tunnel.series("fipsguard_tunnel_idle_closed_total{tunnel=\"tunnel\"}"),
        0.0
    );
    drop(held);
}

/// A reload asked for the moment the tunnel says it listens (by a
/// supervisor, say) reloads it: it neither ends the process nor is lost.
/// Many tunnels in one file, so that the first says it listens well
/// before the last is bound.
#[test]
fn a_sighup_on_the_listening_line_reloads_the_tunnel() {
    let pki = Pki::new();
    let echo = echo_target();
    let config = pki.path("tunnels.toml");
    // Port 0: thirty ports picked ahead could be taken meanwhile.
    let tunnels: String = (0..30)
        .map(|i| {
            format!(
                "[[tunnel]]\nname = \"t{i}\"\nmode = \"server\"\nlisten = \"127.0.0.1:0\"\ntarget = \"127.0.0.1:{echo}\"\ncert = {:?}\nkey = {:?}\ndisable_authentication = true\n",
                pki.path_str("server.pem"),
                pki.path_str("server.key"),
            )
        })
        .collect();
    std::fs::write(&config, tunnels).unwrap();
    for _ in 0..5 {
        let mut child = Command::new(FIPSGUARD)
            .args(["tunnel", "--config"])
            .arg(&config)
            .env("FIPSGUARD_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (listening, heard) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let collected = log.clone();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("tunnel listening") {
                    let _ = listening.send(());
                }
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        heard.recv_timeout(Duration::from_secs(30)).unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
        wait_until("the SIGHUP reload", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "SIGHUP ended the tunnel ({status}): {}",
                    log.lock().unwrap()
                );
            }
            log.lock().unwrap().contains("why=\"SIGHUP\"")
        });
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn hostile_peers_never_crash_or_starve_the_tunnel_and_sigterm_drains() {
    let pki = Pki::new();
    let (target, _) = http_target("still here");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = server_args(&pki, &listen, &format!("127.0.0.1:{target}"));
    // Two event loops on any host, so the path with several workers is
    // the one under attack.
    args.extend(
        [
            "--handshake-timeout-secs",
            "2",
            "--max-connections",
            "3000",
            "--workers",
            "2",
        ]
        .map(String::from),
    );
    let tunnel = Tunnel::start(&strs(&args));

    // Garbage, an abrupt close mid-handshake, and 2,000 idle connections.
    let mut garbage = TcpStream::connect(&listen).unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 1, 2, 3, 4, 5])
        .unwrap();
    let mut http = TcpStream::connect(&listen).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut half = TcpStream::connect(&listen).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40]).unwrap();
    half.shutdown(Shutdown::Both).unwrap();
    let idle: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(&listen).unwrap())
        .collect();
    wait_until("the idle connections are open", || {
        tunnel.series("fipsguard_tunnel_open_connections{tunnel=\"tunnel\"}") >= 2000.0
    });
    // A real client is served at once, while they wait.
    let started = Instant::now();
    let ok = curl(&pki, port, &[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "still here");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "served before the idle ones timed out"
    );
    // The deadline closes them all.
    wait_until("idle connections time out", || {
        tunnel.series("fipsguard_tunnel_open_connections{tunnel=\"tunnel\"}") == 0.0
    });
    drop(idle);
    let metrics = tunnel.metrics();
    assert!(metrics.contains("reason=\"timeout\""), "{metrics}");
    assert!(
        metrics.contains("reason=\"invalid_message\"")
            || metrics.contains("reason=\"peer_misbehaved\""),
        "{metrics}"
    );

    // At the connection limit, one more is refused at once and counted.
    let small_port = free_port();
    let small_listen = format!("127.0.0.1:{small_port}");
    let mut small_args = server_args(&pki, &small_listen, &format!("127.0.0.1:{target}"));
    small_args.extend(["--max-connections", "2"].map(String::from));
    let small = Tunnel::start(&strs(&small_args));
    let _held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&small_listen).unwrap())
        .collect();
    wait_until("both slots are taken", || {
        small.series("fipsguard_tunnel_open_connections{tunnel=\"tunnel\"}") == 2.0
    });
    let over = curl(&pki, small_port, &[]);
    assert!(!over.status.success(), "a third connection must be refused");
    assert!(
        small
            .metrics()
            .contains("outcome=\"refused\",reason=\"connection_limit\""),
        "{}",
        small.metrics()
    );

    // SIGTERM: open connections, on both workers' event loops, finish; a
    // new one is refused; exit 0, even with a request to the metrics
    // listener stalled half-way.
    let echo = echo_target();
    let drain_port = free_port();
    let drain_listen = format!("127.0.0.1:{drain_port}");
    let mut drain_args = server_args(&pki, &drain_listen, &format!("127.0.0.1:{echo}"));
    drain_args.extend(["--workers", "2"].map(String::from));
    let mut drained = Tunnel::start(&strs(&drain_args));
    let mut open: Vec<_> = (0..6).map(|_| Session::open(&drain_listen, &pki)).collect();
    for session in &mut open {
        assert_eq!(session.echo("one"), "one");
    }
    let mut stalled = TcpStream::connect(("127.0.0.1", drained.metrics)).unwrap();
    stalled.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    drained.signal("-TERM");
    wait_until("the listener closes", || {
        TcpStream::connect(&drain_listen).is_err()
    });
    for session in &mut open {
        assert_eq!(
            session.echo("two"),
            "two",
            "open connections still work while draining"
        );
    }
    assert!(
        drained.child.try_wait().unwrap().is_none(),
        "it waits for the open connections"
    );
    drop(open);
    let status = common::exit_within(
        &mut drained.child,
        Duration::from_secs(20),
        "no exit after the drain",
    );
    assert!(status.success());
}

/// An Erlang node without epmd, listening for distribution on `listen_ip`
/// and port `port`, as every node it talks to must.
fn erlang(command: &mut Command, name: &str, listen_ip: &str, port: u16, eval: &str) -> Child {
    let interface = format!("{{{}}}", listen_ip.replace('.', ","));
    command
        .args(["-noshell", "-name", name, "-setcookie", "fipsguard-test"])
        .args(["-start_epmd", "false", "-erl_epmd_port", &port.to_string()])
        .args(["-kernel", "inet_dist_use_interface", &interface])
        .args(["-eval", eval])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("erl (Debian erlang-base) is installed")
}

#[test]
fn erlang_distribution_runs_only_through_a_pair_of_tunnels() {
    let pki = Pki::new();
    pki.leaf("node-a", "DNS:node-a");
    pki.leaf("node-b", "DNS:node-b");
    let host_b = common::Namespace::new();
    let port = free_port();

    // Host B (the namespace): the node listens on loopback only; its server
    // tunnel is the only listener on the network.
    let mut node_b = erlang(
        &mut host_b.command("erl"),
        "b@127.0.0.3",
        "127.0.0.1",
        port,
        "timer:sleep(infinity).",
    );
    let tls_listen = format!("{}:9443", host_b.address);
    let _server = Tunnel::start_in(
        &host_b.name,
        &[
            "server",
            "--name",
            "b-in",
            "--listen",
            &tls_listen,
            "--target",
            &format!("127.0.0.1:{port}"),
            "--cert",
            &pki.path_str("node-b.pem"),
            "--key",
            &pki.path_str("node-b.key"),
            "--client-ca",
            &pki.path_str("ca.pem"),
            "--allow-dns",
            "node-a",
        ],
    );
    // Host A (here): b@127.0.0.3 is reached through the client tunnel.
    let client = Tunnel::start(&[
        "client",
        "--name",
        "to-b",
        "--listen",
        &format!("127.0.0.3:{port}"),
        "--target",
        &tls_listen,
        "--server-name",
        "node-b",
        "--cacert",
        &pki.path_str("ca.pem"),
        "--cert",
        &pki.path_str("node-a.pem"),
        "--key",
        &pki.path_str("node-a.key"),
    ]);
    wait_until("node b listens", || {
        let listeners = host_b.command("ss").arg("-ltnH").output().unwrap();
        String::from_utf8_lossy(&listeners.stdout).contains(&format!("127.0.0.1:{port}"))
    });

    let call = "io:format(\"~p~n\", [{rpc:call('b@127.0.0.3', erlang, node, []), \
                rpc:call('b@127.0.0.3', lists, sum, [[1, 2, 3]])}]), halt().";
    let node_a = erlang(
        &mut Command::new("erl"),
        "a@127.0.0.2",
        "127.0.0.2",
        port,
        call,
    );
    let output = node_a.wait_with_output().unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        answer.trim(),
        "{'b@127.0.0.3',6}",
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // It went through the tunnels, over TLS.
    let handshakes = client.series(
        "fipsguard_tunnel_handshakes_total{tunnel=\"to-b\",outcome=\"ok\",reason=\"none\"}",
    );
    assert!(handshakes >= 1.0, "{}", client.metrics());
    assert!(
        client.series("fipsguard_tunnel_bytes_total{tunnel=\"to-b\",direction=\"to_target\"}")
            > 0.0
    );
    // Nothing on host B listens off loopback but the tunnel's TLS port.
    let listeners = host_b.command("ss").arg("-ltnH").output().unwrap();
    let listeners = String::from_utf8_lossy(&listeners.stdout);
    for line in listeners.lines() {
        let local = line.split_whitespace().nth(3).unwrap_or_default();
        assert!(
            local.starts_with("127.") || local.starts_with("[::1]") || local == tls_listen,
            "a listener off loopback on host B: {line}"
        );
    }
    assert!(listeners.contains(&tls_listen), "{listeners}");
    let _ = node_b.kill();
    let _ = node_b.wait();
}

#[test]
fn a_tls_stream_cut_without_close_notify_reaches_the_target_as_a_reset() {
    let pki = Pki::new();
    // The target reports how each connection ended: a clean end, or a reset.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().port();
    let (ended, endings) = mpsc::channel::<&'static str>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let ended = ended.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let how = loop {
                    match stream.read(&mut buf) {
                        Ok(0) => break "end",
                        Ok(_) => continue,
                        Err(_) => break "reset",
                    }
                };
                let _ = ended.send(how);
            });
        }
    });
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _tunnel = Tunnel::start(&strs(&server_args(
        &pki,
        &listen,
        &format!("127.0.0.1:{target}"),
    )));
    let client = |listen: &str| {
        // Not -quiet: it implies -ign_eof, and the end of stdin must close.
        Command::new("openssl")
            .args(["s_client", "-connect", listen, "-servername", "localhost"])
            .args(["-CAfile", &pki.path_str("ca.pem")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    // An orderly close (close_notify) is an orderly end at the target.
    let mut orderly = client(&listen);
    writeln!(orderly.stdin.as_mut().unwrap(), "all of it").unwrap();
    drop(orderly.stdin.take());
    assert_eq!(
        endings.recv_timeout(Duration::from_secs(10)).unwrap(),
        "end"
    );
    let _ = orderly.wait();

    // The same client killed mid-stream: its kernel closes the TCP
    // connection without a close_notify; the target must not take the
    // truncated stream for a complete one.
    let mut cut = client(&listen);
    writeln!(cut.stdin.as_mut().unwrap(), "half of it").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    cut.kill().unwrap();
    let _ = cut.wait();
    assert_eq!(
        endings.recv_timeout(Duration::from_secs(10)).unwrap(),
        "reset"
    );

    // A connection still open when shutdown's drain timeout passes is cut
    // the same way: a reset at the target, never an orderly end.
    let short_listen = format!("127.0.0.1:{}", free_port());
    let mut short_args = server_args(&pki, &short_listen, &format!("127.0.0.1:{target}"));
    short_args.extend(["--drain-timeout-secs", "1", "--workers", "2"].map(String::from));
    let mut short = Tunnel::start(&strs(&short_args));
    let mut lingering = client(&short_listen);
    writeln!(lingering.stdin.as_mut().unwrap(), "not all of it").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    short.signal("-TERM");
    assert_eq!(
        endings.recv_timeout(Duration::from_secs(10)).unwrap(),
        "reset"
    );
    let status = short.child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Said once, with the one connection open, whatever each worker saw.
    wait_until("the cut is logged", || {
        short.log().contains("cutting the connections still open")
    });
    let log = short.log();
    let cutting: Vec<_> = log
        .lines()
        .filter(|line| line.contains("cutting the connections still open"))
        .collect();
    assert!(
        matches!(cutting[..], [line] if line.contains("open=1")),
        "{log}"
    );
    let _ = lingering.kill();
    let _ = lingering.wait();
}

/// With `max_connections_per_client`, a client's connections beyond its
/// cap are closed as they are accepted, and counted; one it closes frees
/// its place.
#[test]
fn a_client_holds_at_most_its_cap_of_tunnel_connections() {
    use common::closed_within;
    let pki = Pki::new();
    let port = free_port();
    let mut args = server_args(&pki, &format!("127.0.0.1:{port}"), "127.0.0.1:1");
    args.extend(["--max-connections-per-client".into(), "2".into()]);
    let tunnel = Tunnel::start(&strs(&args));
    let connect = || TcpStream::connect(("127.0.0.1", port)).unwrap();
    let held = [connect(), connect()];
    let open = "fipsguard_tunnel_open_connections{tunnel=\"tunnel\"}";
    wait_until("both are taken", || tunnel.series(open) == 2.0);
    assert!(
        closed_within(&connect(), Duration::from_secs(10)),
        "a third connection from one client"
    );
    let limit = "fipsguard_tunnel_handshakes_total{tunnel=\"tunnel\",outcome=\"refused\",reason=\"client_connection_limit\"}";
    wait_until("the refusal is counted", || tunnel.series(limit) == 1.0);
    let log = tunnel.log();
    let refusal = log
        .lines()
        .find(|line| line.contains("this client is at its connection limit"))
        .unwrap_or_else(|| panic!("no refusal logged: {log}"));
    assert!(refusal.contains("client=127.0.0.1"), "{refusal}");
    drop(held);
    wait_until("both places freed", || tunnel.series(open) == 0.0);
    let again = connect();
    wait_until("a place freed is taken again", || {
        tunnel.series(open) == 1.0
    });
    assert!(!closed_within(&again, Duration::from_millis(500)));
}

/// A client tunnel may listen off loopback only with unsafe_listen, and
/// then says at startup what it lends, and serves whoever reaches it: here
/// a second host on a link of its own.
#[test]
fn a_client_tunnel_off_loopback_with_unsafe_listen_serves_and_warns() {
    let pki = Pki::new();
    let host = common::Namespace::new();
    let server_listen = format!("127.0.0.1:{}", free_port());
    let _server = Tunnel::start(&strs(&server_args(
        &pki,
        &server_listen,
        &format!("127.0.0.1:{}", echo_target()),
    )));
    let port = free_port();
    let mut args = client_args(
        &pki,
        &format!("{}:{port}", host.outer_address),
        &server_listen,
    );
    args.push("--unsafe-listen".into());
    let client = Tunnel::start(&strs(&args));
    assert!(
        client
            .log()
            .contains("lends its TLS identity to anyone who can reach it"),
        "{}",
        client.log()
    );
    let reach = format!(
        "import socket\n\
         s = socket.create_connection(('{}', {port}), 10)\n\
         s.sendall(b'from the other host\\n')\n\
         print(s.makefile().readline(), end='')",
        host.outer_address
    );
    let output = host
        .command("python3")
        .args(["-c", &reach])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "from the other host\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The other way round: a target that ends its connection in order is an
/// orderly end at the client, and one that resets it is a reset at the
/// client, never an orderly end, through a client and a server tunnel.
#[test]
fn a_target_that_resets_its_connection_is_a_reset_at_the_client() {
    let pki = Pki::new();
    // The first connection is answered and ended in order; the second is
    // closed with what it was sent still unread, which the kernel answers
    // with a reset.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_port = target.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (answered, _) = target.accept().unwrap();
        let mut line = String::new();
        BufReader::new(&answered).read_line(&mut line).unwrap();
        (&answered).write_all(b"bye\n").unwrap();
        drop(answered);
        let (reset, _) = target.accept().unwrap();
        reset.peek(&mut [0u8; 1]).unwrap();
        drop(reset);
    });
    let server_listen = format!("127.0.0.1:{}", free_port());
    let _server = Tunnel::start(&strs(&server_args(
        &pki,
        &server_listen,
        &format!("127.0.0.1:{target_port}"),
    )));
    let local = format!("127.0.0.1:{}", free_port());
    let _client = Tunnel::start(&strs(&client_args(&pki, &local, &server_listen)));
    let connect = || {
        let stream = TcpStream::connect(&local).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        writeln!(&stream, "hello").unwrap();
        stream
    };

    let mut orderly = BufReader::new(connect());
    let mut answer = String::new();
    orderly.read_line(&mut answer).unwrap();
    assert_eq!(answer, "bye\n");
    assert_eq!(orderly.read(&mut [0u8; 16]).unwrap(), 0, "an orderly end");

    let mut reset = connect();
    let ended = reset.read(&mut [0u8; 16]);
    assert_eq!(
        ended.as_ref().map_err(std::io::Error::kind).err(),
        Some(std::io::ErrorKind::ConnectionReset),
        "a reset, not {ended:?}"
    );
}
