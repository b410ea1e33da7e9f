//! `fipsguard check tls` against real servers: `fipsguard serve` must pass;
//! `openssl s_server`s that accept TLS 1.1, a ChaCha20 suite, SHA-1
//! signatures or an RSA-1024 certificate must each fail with exactly the
//! finding that names the fault. The output formats are read by the tools a
//! CI system would use, and the findings are compared with testssl.sh's.

mod common;
mod pki;
mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::FIPSGUARD;
use pki::Pki;
use scan::finding;

/// An `openssl s_server` on a free loopback port, killed on drop.
struct OpensslServer {
    child: Child,
    target: String,
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Approved TLS 1.3 suites, so a server differs from a passing one only where a test says.
const TLS13_APPROVED: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";
const TLS12_APPROVED: &str = "ECDHE-RSA-AES128-GCM-SHA256";
const SHA256_ONLY: &str = "RSA-PSS+SHA256:RSA+SHA256";

fn s_server(pki: &Pki, cert: &str, extra: &[&str]) -> OpensslServer {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let child = openssl_s_server(Command::new("openssl"), &target, pki, cert, extra);
    wait_for_port(port);
    OpensslServer { child, target }
}

/// `openssl s_server` (as `command`) accepting on `address` with the
/// PKI's `cert`, and `extra` options.
fn openssl_s_server(
    mut command: Command,
    address: &str,
    pki: &Pki,
    cert: &str,
    extra: &[&str],
) -> Child {
    command
        .args(["s_server", "-quiet", "-accept", address])
        .arg("-cert")
        .arg(pki.path(&format!("{cert}.pem")))
        .arg("-key")
        .arg(pki.path(&format!("{cert}.key")))
        .args(["-groups", "P-256:P-384"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed")
}

fn wait_for_port(port: u16) {
    common::wait_until(
        Duration::from_secs(10),
        &format!("port {port} never opened"),
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

/// A server that accepts TLS 1.1 (and, for it, a CBC suite with
/// `cipher`), otherwise approved.
fn tls11_options(cipher: &str) -> [&str; 8] {
    [
        "-min_protocol",
        "TLSv1.1",
        "-cipher",
        cipher,
        "-ciphersuites",
        TLS13_APPROVED,
        "-sigalgs",
        SHA256_ONLY,
    ]
}

/// The weak servers, each with one fault, and the findings it must fail.
struct WeakServers {
    _pki: Pki,
    servers: Vec<(OpensslServer, &'static [&'static str])>,
}

fn weak_servers() -> WeakServers {
    let pki = Pki::new();
    pki.leaf_with("rsa", "DNS:localhost", &["rsa:2048"], "sha256");
    pki.leaf_with("rsa1024", "DNS:localhost", &["rsa:1024"], "sha256");
    pki.leaf_with("sha1", "DNS:localhost", &["rsa:2048"], "sha1");
    let tls11_cipher = format!("{TLS12_APPROVED}:ECDHE-RSA-AES128-SHA:@SECLEVEL=0");
    let seclevel0 = format!("{TLS12_APPROVED}:@SECLEVEL=0");
    let tls11 = s_server(&pki, "rsa", &tls11_options(&tls11_cipher));
    let chacha = s_server(
        &pki,
        "rsa",
        &[
            "-cipher",
            &format!("{TLS12_APPROVED}:ECDHE-RSA-CHACHA20-POLY1305"),
            "-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
        ],
    );
    let sha1 = s_server(
        &pki,
        "sha1",
        &[
            "-cipher",
            &seclevel0,
            "-ciphersuites",
            TLS13_APPROVED,
            "-sigalgs",
            "RSA+SHA1:RSA-PSS+SHA256:RSA+SHA256",
        ],
    );
    let rsa1024 = s_server(
        &pki,
        "rsa1024",
        &[
            "-cipher",
            &seclevel0,
            "-ciphersuites",
            TLS13_APPROVED,
            "-sigalgs",
            SHA256_ONLY,
        ],
    );
    WeakServers {
        _pki: pki,
        servers: vec![
            // Accepting TLS 1.1 (and a CBC suite only because TLS 1.1 has no GCM).
            (tls11, &["tls.protocol.tls1.1", "tls.cipher-suites"]),
            (chacha, &["tls.cipher-suites"]),
            // Signs its key exchange with SHA-1 when asked; its certificate is SHA-1 signed too.
            (sha1, &["tls.signature-hashes", "tls.certificate.signature"]),
            // No approved client can finish a handshake with a 1024-bit key.
            (rsa1024, &["tls.certificate.key", "tls.approved-handshake"]),
        ],
    }
}

/// `check tls TARGETS --format json`.
fn check_json(targets: &[&str]) -> (i32, Value) {
    scan::check_json(std::iter::once("tls").chain(targets.iter().copied()))
}

fn check(args: &[&str]) -> Output {
    Command::new(FIPSGUARD)
        .args(["check", "tls"])
        .args(args)
        .output()
        .unwrap()
}

/// Asserts that `finding` could not be decided (error), its evidence
/// saying `why`.
fn undecided_because(finding: &Value, why: &str) {
    assert_eq!(finding["status"], "error", "{finding}");
    assert!(finding["evidence"].to_string().contains(why), "{finding}");
}

fn failed_ids(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn fipsguard_serve_passes_and_each_weak_server_fails_with_its_finding() {
    let setup = common::Setup::new();
    let server = setup.serve();
    let serve_target = format!("127.0.0.1:{}", setup.port);
    let weak = weak_servers();

    let mut targets = vec![serve_target.as_str()];
    targets.extend(weak.servers.iter().map(|(s, _)| s.target.as_str()));
    let (code, json) = check_json(&targets);
    assert_eq!(code, 1, "a failing endpoint fails the gate: {json}");
    let reports = json["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 5);

    let served = &reports[0];
    assert!(failed_ids(served).is_empty(), "{served}");
    // The test certificate lives two days: inside the 30-day warning window.
    assert_eq!(served["verdict"], "warn", "{served}");
    assert_eq!(finding(served, "tls.certificate.expiry")["status"], "warn");
    assert_eq!(served["subject"], serve_target.as_str());
    let summary = served["summary"].as_str().unwrap();
    assert!(
        summary.ends_with(&format!("(at {serve_target})")),
        "the address that answered: {summary}"
    );
    for accepted in ["tls.protocol.tls1.2", "tls.protocol.tls1.3"] {
        assert_eq!(
            finding(served, accepted)["evidence"][0]
                .as_str()
                .unwrap()
                .split(':')
                .nth(1),
            Some(" accepted")
        );
    }
    let handshake = finding(served, "tls.approved-handshake")["evidence"][0]
        .as_str()
        .unwrap();
    assert!(handshake.starts_with("TLSv1_3 TLS13_AES_"), "{handshake}");

    for ((weak_server, expected), report) in weak.servers.iter().zip(&reports[1..]) {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            failed_ids(report),
            expected,
            "{}: {report}",
            weak_server.target
        );
        assert_eq!(report["verdict"], "fail");
    }
    let evidence = |report: &Value, id: &str| finding(report, id)["evidence"].to_string();
    assert!(evidence(&reports[2], "tls.cipher-suites")
        .contains("TLS1.3 0x1303 TLS_CHACHA20_POLY1305_SHA256: not allowed"));
    assert!(evidence(&reports[2], "tls.cipher-suites")
        .contains("TLS1.2 0xcca8 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: not allowed"));
    assert!(evidence(&reports[3], "tls.signature-hashes").contains("scheme 0x0201 (SHA-1)"));
    let signature = evidence(&reports[3], "tls.certificate.signature");
    assert!(
        signature.contains("ecdsa-with-SHA1: not allowed"),
        "{signature}"
    );
    assert!(evidence(&reports[4], "tls.certificate.key").contains("RSA 1024 bits: not allowed"));

    // The table a person reads names the verdict and the failing rule.
    let table = check(&[&serve_target, &weak.servers[0].0.target]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("FAIL tls.protocol.tls1.1"), "{table}");
    assert!(table.contains("fix: disable TLS1.1"), "{table}");
    assert!(
        table.ends_with("verdict: fail (2 subjects: 1 fail, 1 warn)\n"),
        "{table}"
    );
    server.stop();
}

#[test]
fn exit_codes_tell_a_gate_pass_fail_and_could_not_check() {
    let setup = common::Setup::new();
    let server = setup.serve();
    let serve_target = format!("localhost:{}", setup.port);
    assert_eq!(check(&[&serve_target]).status.code(), Some(0));

    // Nothing listens: a probe error (2), not a pass or a plain failure.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let closed = closed.to_string();
    let (code, json) = check_json(&[&serve_target, &closed]);
    assert_eq!(code, 2);
    assert_eq!(json["reports"][1]["findings"][0]["id"], "tls.reachable");
    assert_eq!(json["reports"][1]["verdict"], "error");

    // A server name no hello can carry is a target error, not a crash.
    for (name, why) in [
        ("a".repeat(70_000), "longer than a DNS name can be"),
        ("not a name".to_owned(), "not a name"),
    ] {
        let (code, json) = check_json(&[&closed, "--server-name", &name]);
        let finding = &json["reports"][0]["findings"][0];
        assert_eq!((code, &finding["id"]), (2, &Value::from("tls.target")));
        assert!(finding.to_string().contains(why), "{finding}");
    }

    let (code, json) = check_json(&["no-port-here"]);
    assert_eq!(
        (code, &json["reports"][0]["findings"][0]["id"]),
        (2, &Value::from("tls.target"))
    );
    assert_eq!(
        check(&[]).status.code(),
        Some(2),
        "no target is a usage error"
    );
    assert_eq!(
        check(&[&serve_target, "--format", "yaml"]).status.code(),
        Some(2)
    );

    // A policy file replaces the profile; a typo in it is refused, not ignored.
    let dir = tempfile::TempDir::new().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "name = \"strict\"\ncipher_suites = [\"TLS_AES_256_GCM_SHA384\"]\nrequired_protocols = [\"TLS1.3\"]\nprotocols = [\"TLS1.3\"]\n").unwrap();
    let policy_arg = policy.to_str().unwrap();
    let (code, json) = check_json(&[&serve_target, "--policy", policy_arg]);
    assert_eq!(
        code, 1,
        "TLS 1.2 and AES-128 break the strict policy: {json}"
    );
    assert_eq!(
        failed_ids(&json["reports"][0]),
        BTreeSet::from([
            "tls.protocol.tls1.2".to_owned(),
            "tls.cipher-suites".to_owned()
        ])
    );
    for typo in [
        "protocol = [\"TLS1.3\"]\n",
        "cipher_suites = [\"TLS_AES_256_GCM\"]\n",
        "protocols = [\"TLS1.4\"]\n",
        "groups = [\"P-256\"]\n",
        "forbidden_signature_hashes = [\"SHA1\"]\n",
        "ec_curves = [\"p256\"]\n",
    ] {
        std::fs::write(&policy, typo).unwrap();
        let output = check(&[&serve_target, "--policy", policy_arg]);
        assert_eq!(output.status.code(), Some(2), "{typo}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("policy"),
            "{typo}"
        );
    }
    server.stop();
}

/// SARIF validated against the OASIS 2.1.0 schema and JUnit read by
/// junitparser, with Debian's Python: what CI systems consume.
#[test]
fn sarif_validates_against_its_schema_and_junit_reads_back() {
    let setup = common::Setup::new();
    let server = setup.serve();
    let weak = weak_servers();
    let serve_target = format!("127.0.0.1:{}", setup.port);
    let targets = [serve_target.as_str(), weak.servers[0].0.target.as_str()];
    let dir = tempfile::TempDir::new().unwrap();

    let mut args = targets.to_vec();
    args.extend(["--format", "sarif"]);
    let sarif = check(&args);
    assert_eq!(sarif.status.code(), Some(1));
    let sarif_path = dir.path().join("check.sarif");
    std::fs::write(&sarif_path, &sarif.stdout).unwrap();
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sarif-schema-2.1.0.json"
    );
    python(&format!(
        "import json, jsonschema\nschema = json.load(open({schema:?}))\nlog = json.load(open({:?}))\njsonschema.Draft7Validator(schema).validate(log)\nprint('valid')",
        sarif_path.to_str().unwrap()
    ));
    let log: Value = serde_json::from_slice(&sarif.stdout).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    let tls11 = results
        .iter()
        .find(|r| r["ruleId"] == "tls.protocol.tls1.1" && r["level"] == "error")
        .expect("the TLS 1.1 result is an error");
    assert_eq!(
        tls11["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        format!("tls://{}", targets[1])
    );
    assert_eq!(log["runs"][0]["invocations"][0]["exitCode"], 1);
    // SARIF 3.27.10: only a failing result carries a level; a check that
    // could not be decided is a failure to look at.
    for result in results {
        assert!(
            result["kind"] == "fail" || result["level"] == "none",
            "{result}"
        );
    }
    let closed = check(&["127.0.0.1:1", "--format", "sarif"]);
    assert_eq!(closed.status.code(), Some(2));
    let log: Value = serde_json::from_slice(&closed.stdout).unwrap();
    let undecided = &log["runs"][0]["results"][0];
    assert_eq!(undecided["ruleId"], "tls.reachable", "{undecided}");
    assert_eq!(
        (&undecided["kind"], &undecided["level"]),
        (&Value::from("fail"), &Value::from("error"))
    );

    let mut args = targets.to_vec();
    args.extend(["--format", "junit"]);
    let junit = check(&args);
    let junit_path = dir.path().join("check.xml");
    std::fs::write(&junit_path, &junit.stdout).unwrap();
    let counts = python(&format!(
        "from junitparser import JUnitXml\nxml = JUnitXml.fromfile({:?})\nprint(xml.tests, xml.failures, xml.errors, xml.skipped, len(list(xml)))",
        junit_path.to_str().unwrap()
    ));
    let (json_code, json) = check_json(&targets);
    assert_eq!(json_code, 1);
    let statuses: Vec<&str> = json["reports"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["findings"].as_array().unwrap())
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    let count = |s: &str| statuses.iter().filter(|&&x| x == s).count();
    assert_eq!(
        counts.trim(),
        format!(
            "{} {} {} {} 2",
            statuses.len(),
            count("fail"),
            count("error"),
            count("not-applicable")
        )
    );
    server.stop();
}

/// Runs a Python snippet with Debian's interpreter (where the bootstrap
/// installs python3-jsonschema and python3-junitparser); returns stdout.
fn python(code: &str) -> String {
    let output = Command::new("/usr/bin/python3")
        .args(["-c", code])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// What testssl.sh finds on the weak servers: versions offered and suites
/// per version, the same as `check tls` finds. Skipped, visibly, only when
/// testssl.sh is not installed.
#[test]
fn findings_agree_with_testssl() {
    if Command::new("testssl").arg("--version").output().is_err() {
        eprintln!("SKIPPED: testssl (Debian package testssl.sh) is not installed");
        return;
    }
    let weak = weak_servers();
    let targets: Vec<&str> = weak
        .servers
        .iter()
        .map(|(s, _)| s.target.as_str())
        .collect();
    let (_, json) = check_json(&targets);
    let dir = tempfile::TempDir::new().unwrap();
    let testssl: Vec<Accepted> = std::thread::scope(|scope| {
        let running: Vec<_> = targets
            .iter()
            .enumerate()
            .map(|(i, target)| {
                let file = dir.path().join(format!("{i}.json"));
                scope.spawn(move || testssl_findings(target, &file))
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for ((report, theirs), target) in json["reports"]
        .as_array()
        .unwrap()
        .iter()
        .zip(testssl)
        .zip(&targets)
    {
        let ours = our_findings(report);
        assert!(!ours.is_empty());
        assert_eq!(
            ours, theirs,
            "{target}: fipsguard check (left) and testssl.sh (right) disagree"
        );
    }
}

/// Accepted suites (code points) by protocol name.
type Accepted = BTreeMap<String, BTreeSet<u16>>;

fn our_findings(report: &Value) -> Accepted {
    let mut accepted = Accepted::new();
    for f in report["findings"].as_array().unwrap() {
        let id = f["id"].as_str().unwrap();
        if let Some(protocol) = id.strip_prefix("tls.protocol.") {
            if f["evidence"][0].as_str().unwrap().contains(": accepted") {
                accepted.entry(protocol.to_uppercase()).or_default();
            }
        }
    }
    for line in finding(report, "tls.cipher-suites")["evidence"]
        .as_array()
        .unwrap()
    {
        let mut words = line.as_str().unwrap().split(' ');
        let (Some(protocol), Some(code)) = (words.next(), words.next()) else {
            continue;
        };
        if let Some(hex) = code.strip_prefix("0x") {
            accepted
                .entry(protocol.to_uppercase())
                .or_default()
                .insert(u16::from_str_radix(hex, 16).unwrap());
        }
    }
    accepted
}

fn testssl_findings(target: &str, file: &std::path::Path) -> Accepted {
    let output = Command::new("testssl")
        .args([
            "--quiet",
            "--warnings",
            "off",
            "--color",
            "0",
            "--protocols",
            "--cipher-per-proto",
            "--jsonfile",
        ])
        .arg(file)
        .arg(target)
        .output()
        .unwrap();
    assert!(
        file.exists(),
        "testssl wrote no JSON: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let entries: Vec<Value> = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let protocol_name = |id: &str| match id {
        "SSLv3" | "ssl3" => Some("SSL3.0"),
        "TLS1" | "tls1" => Some("TLS1.0"),
        "TLS1_1" | "tls1_1" => Some("TLS1.1"),
        "TLS1_2" | "tls1_2" => Some("TLS1.2"),
        "TLS1_3" | "tls1_3" => Some("TLS1.3"),
        _ => None,
    };
    let mut accepted = Accepted::new();
    for entry in entries {
        let id = entry["id"].as_str().unwrap_or_default();
        let finding = entry["finding"].as_str().unwrap_or_default();
        if let Some(protocol) = protocol_name(id) {
            if finding.starts_with("offered") {
                accepted.entry(protocol.to_owned()).or_default();
            }
        } else if let Some((protocol, hex)) = id
            .strip_prefix("cipher-")
            .and_then(|rest| rest.split_once("_x"))
        {
            let protocol = protocol_name(protocol).expect("a known protocol");
            accepted
                .entry(protocol.to_owned())
                .or_default()
                .insert(u16::from_str_radix(hex, 16).unwrap());
        }
    }
    accepted
}

/// Endpoints that never give a verdict: one that answers every
/// ClientHello one byte at a time, forever (a record header announcing
/// 16 KiB, then a trickle), and one that reads and stays silent, as a
/// firewall dropping old hellos or a rate limit looks. A probe without a
/// verdict is no refusal: the scan ends as incomplete (exit 2,
/// `tls.reachable`) within its deadlines, and passes nothing.
#[test]
fn endpoints_that_never_answer_cannot_hold_or_pass_a_scan() {
    use std::io::{Read, Write};
    let serve = |answer: fn(std::net::TcpStream)| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || answer(stream));
            }
        });
        target
    };
    let trickle = serve(|mut stream| {
        let header = [0x16u8, 0x03, 0x03, 0x40, 0x00];
        for byte in header.iter().chain(std::iter::repeat(&0u8)) {
            if stream.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let silent = serve(|mut stream| {
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).is_ok_and(|n| n > 0) {}
    });
    for target in [trickle, silent] {
        let started = Instant::now();
        let output = check(&[&target, "--timeout", "1s", "--format", "json"]);
        // One probe and its retry, a second each: tried twice, then given up.
        let report = given_up(&output, started.elapsed());
        assert_not_scanned(&report);
    }
}

/// The one report of a scan that gave up (exit 2) after 2 to 10 seconds.
fn given_up(output: &Output, elapsed: Duration) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10),
        "the scan took {elapsed:?}: {text}"
    );
    let mut json: Value = serde_json::from_slice(&output.stdout).unwrap();
    json["reports"][0].take()
}

/// A host name the system resolver never answers for is given up at
/// `--timeout` (here 2 s; the resolver's own retries would take 150 s) as
/// not scanned: a silent DNS server cannot hold a gate.
#[test]
fn a_name_that_never_resolves_is_given_up_at_the_timeout() {
    let host = common::Namespace::new();
    host.etc_file("nsswitch.conf", "hosts: files dns\n");
    host.etc_file(
        "resolv.conf",
        "nameserver 127.0.0.1\noptions timeout:30 attempts:5\n",
    );
    // A DNS server that takes every query, over UDP and TCP, and never answers.
    let silent = "import socket, sys, time\n\
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 53))\n\
        t = socket.socket(); t.bind(('127.0.0.1', 53)); t.listen()\n\
        print('ready', flush=True); time.sleep(600)";
    let mut dns = host
        .command("python3")
        .args(["-c", silent])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(dns.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let started = Instant::now();
    let output = host
        .command(FIPSGUARD)
        .args(["check", "tls", "kms.fipsguard.test:443"])
        .args(["--timeout", "2s", "--format", "json"])
        .output()
        .unwrap();
    let report = given_up(&output, started.elapsed());
    let _ = dns.kill();
    let _ = dns.wait();
    undecided_because(finding(&report, "tls.target"), "did not resolve within 2s");
}

/// A name with several addresses (a pool) is scanned at each this host
/// has a route to, one report per address: a server set up differently
/// from the rest fails the gate whichever address comes first. An
/// address with no route from here (IPv6 on a host without it) is passed
/// over, and said to be.
#[test]
fn each_address_of_a_name_is_scanned() {
    let host = common::Namespace::new();
    let name = "pool.fipsguard.test";
    host.etc_file("nsswitch.conf", "hosts: files\n");
    // One listed twice, as a hand-kept file may: scanned once.
    host.etc_file(
        "hosts",
        &format!("127.0.0.3 {name}\n127.0.0.2 {name}\n127.0.0.3 {name}\n2001:db8::1 {name}\n"),
    );
    let pki = Pki::new();
    pki.leaf_with("rsa", &format!("DNS:{name}"), &["rsa:2048"], "sha256");
    let tls11_cipher = format!("{TLS12_APPROVED}:ECDHE-RSA-AES128-SHA:@SECLEVEL=0");
    let approved = [
        "-cipher",
        TLS12_APPROVED,
        "-ciphersuites",
        TLS13_APPROVED,
        "-sigalgs",
        SHA256_ONLY,
    ];
    let servers = [
        ("127.0.0.2:8443", &approved[..]),
        ("127.0.0.3:8443", &tls11_options(&tls11_cipher)[..]),
    ]
    .map(|(address, options)| OpensslServer {
        child: openssl_s_server(host.command("openssl"), address, &pki, "rsa", options),
        target: address.to_owned(),
    });
    for server in &servers {
        common::wait_until(Duration::from_secs(10), &server.target, || {
            let listening = host
                .command("ss")
                .args(["-Hltn", "src", &server.target])
                .output()
                .unwrap();
            !listening.stdout.is_empty()
        });
    }
    let mut command = host.command(FIPSGUARD);
    command.args(["check", "tls", &format!("{name}:8443")]);
    let (code, json) = scan::json_of(command);
    let text = json.to_string();
    assert_eq!(code, 1, "{text}");
    let reports = json["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{text}");
    let at = |address: &str| {
        let subject = format!("{name}:8443/{address}");
        let report = reports
            .iter()
            .find(|r| r["subject"] == subject.as_str())
            .unwrap_or_else(|| panic!("no report for {subject}: {text}"));
        let summary = report["summary"].as_str().unwrap();
        let coverage = format!("(at {address}:8443, one of the name's 3 addresses: 2 scanned, 1 with no route from this host not scanned)");
        assert!(summary.ends_with(&coverage), "{summary}");
        failed_ids(report)
    };
    assert!(at("127.0.0.2").is_empty(), "{text}");
    assert!(at("127.0.0.3").contains("tls.protocol.tls1.1"), "{text}");
}

/// A server that answers every probe, each a little late: the scan of one
/// endpoint ends at its deadline (here 2 s, for some 200 probes that would
/// take a minute) as incomplete, so a slow endpoint cannot hold a gate
/// for hours.
#[test]
fn a_slow_endpoint_is_cut_at_the_scans_deadline() {
    let pki = Pki::new();
    pki.leaf_with("rsa", "DNS:localhost", &["rsa:2048"], "sha256");
    let server = s_server(&pki, "rsa", &["-cipher", TLS12_APPROVED]);
    let backend = server.target.clone();
    let front = proxy(move |_, _| {
        std::thread::sleep(Duration::from_millis(300));
        Some(backend.clone())
    });
    let started = Instant::now();
    let output = check(&[&front, "--deadline", "2s", "--format", "json"]);
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("within its deadline of 2s"), "{text}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_not_scanned(&report["reports"][0]);
    assert!(
        elapsed < Duration::from_secs(10),
        "the scan took {elapsed:?}"
    );
    // A deadline of nothing would scan nothing.
    let zero = check(&[&front, "--deadline", "0s"]);
    assert_eq!(zero.status.code(), Some(2));
    let refused = String::from_utf8_lossy(&zero.stderr);
    assert!(refused.contains("must be above zero"), "{refused}");
}

/// A connection limiter in front of a server that takes TLS 1.1: every
/// other connection is closed at once, without a TLS alert. Such a close
/// is asked again, so the scan finds what the server itself accepts (a
/// close read as a refusal passed TLS 1.1 here).
#[test]
fn a_limiter_closing_connections_does_not_pass_old_protocols() {
    let weak = weak_servers();
    let (tls11, faults) = &weak.servers[0];
    let front = cutting_every_other_connection(&tls11.target);
    let (code, json) = check_json(&[front.as_str()]);
    assert_eq!(code, 1, "{json}");
    let expected: BTreeSet<String> = faults.iter().map(|id| id.to_string()).collect();
    assert_eq!(failed_ids(&json["reports"][0]), expected, "{json}");
}

/// A limiter that lets through every version's probe and then cuts every
/// connection without a word: the probes after (suites, groups, signature
/// hashes) cannot be read as refusals, as a cut suite list passed the
/// suites with what it had seen; the scan is incomplete (exit 2) and passes
/// nothing.
#[test]
fn a_limiter_cutting_the_later_probes_leaves_the_scan_incomplete() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pki = Pki::new();
    pki.leaf_with("rsa", "DNS:localhost", &["rsa:2048"], "sha256");
    let server = s_server(
        &pki,
        "rsa",
        &["-cipher", TLS12_APPROVED, "-ciphersuites", TLS13_APPROVED],
    );
    let backend = server.target.clone();
    // The TLS 1.3 version probe is the last of them; the one after it (its
    // first suite) goes through too, so a suite list is under way when
    // the cuts start.
    let since_tls13 = AtomicUsize::new(0);
    let front = proxy(move |_, hello| {
        let seen = since_tls13.load(Ordering::Relaxed);
        if seen > 0 || offers_tls13(hello) {
            since_tls13.store(seen + 1, Ordering::Relaxed);
        }
        (seen < 2).then(|| backend.clone())
    });
    let (code, json) = check_json(&[front.as_str()]);
    assert_eq!(code, 2, "{json}");
    assert_not_scanned(&json["reports"][0]);
}

/// Asserts an endpoint's report is incomplete: `tls.reachable` an error,
/// and nothing passed.
fn assert_not_scanned(report: &Value) {
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["id"] == "tls.reachable" && f["status"] == "error"),
        "{report}"
    );
    assert!(!findings.iter().any(|f| f["status"] == "pass"), "{report}");
}

/// A TCP proxy to `backend` that closes its 1st, 3rd, 5th … connection.
fn cutting_every_other_connection(backend: &str) -> String {
    let backend = backend.to_owned();
    proxy(move |n, _| (n % 2 == 1).then(|| backend.clone()))
}

/// A server that takes X25519 under TLS 1.2 only: a proxy sends
/// ClientHellos offering TLS 1.3 to a TLS 1.3 server on P-256 and P-384, and the
/// rest to a TLS 1.2 server on P-256 and X25519 (as a front whose two
/// versions are served by different stacks would). Groups probed under
/// TLS 1.3 alone passed it.
#[test]
fn a_group_accepted_under_tls_1_2_only_fails() {
    let pki = Pki::new();
    pki.leaf_with("rsa", "DNS:localhost", &["rsa:2048"], "sha256");
    let tls13 = s_server(&pki, "rsa", &["-tls1_3", "-ciphersuites", TLS13_APPROVED]);
    let tls12 = s_server(
        &pki,
        "rsa",
        &[
            "-tls1_2",
            "-cipher",
            TLS12_APPROVED,
            "-groups",
            "P-256:X25519",
        ],
    );
    let (new, old) = (tls13.target.clone(), tls12.target.clone());
    let front = proxy(move |_, hello| Some(if offers_tls13(hello) { &new } else { &old }.clone()));
    let report = &fails_only(&[front.as_str()], "tls.groups");
    let evidence = finding(report, "tls.groups")["evidence"].to_string();
    assert!(
        evidence.contains("accepted under TLS1.3: secp256r1, secp384r1\""),
        "{evidence}"
    );
    assert!(
        evidence.contains("x25519 under TLS1.2: not allowed"),
        "{evidence}"
    );
}

/// A TLS 1.2 server that also takes P-192 (secp192r1, weaker than any
/// policy allows) after P-256: every registered curve is probed alone, the
/// legacy ones too (a catalog without them passed this server).
#[test]
fn a_legacy_curve_beside_an_approved_one_fails() {
    let pki = Pki::new();
    pki.leaf_with("rsa", "DNS:localhost", &["rsa:2048"], "sha256");
    let cipher = format!("{TLS12_APPROVED}:@SECLEVEL=0");
    let server = s_server(
        &pki,
        "rsa",
        &[
            "-cipher",
            &cipher,
            "-ciphersuites",
            TLS13_APPROVED,
            "-sigalgs",
            SHA256_ONLY,
            "-groups",
            "P-256:P-192",
        ],
    );
    let report = &fails_only(&[server.target.as_str()], "tls.groups");
    let evidence = finding(report, "tls.groups")["evidence"].to_string();
    assert!(
        evidence.contains("secp192r1 under TLS1.2: not allowed"),
        "{evidence}"
    );
}

/// A server holding an ECDSA certificate and a weak RSA one: an approved
/// client gets the ECDSA one, a client that verifies only RSA the other.
/// Judged on the first chain alone, it passed.
#[test]
fn every_certificate_a_server_holds_is_judged() {
    let pki = Pki::new();
    let server = ecdsa_and_weak_rsa(&pki);
    let report = &fails_only(&[server.target.as_str()], "tls.certificate.key");
    let keys = finding(report, "tls.certificate.key")["evidence"].to_string();
    assert!(keys.contains("EC P-256: allowed"), "{keys}");
    assert!(keys.contains("RSA 1024 bits: not allowed"), "{keys}");
}

/// The same server behind a front that cuts off every TLS 1.3 hello
/// verifying only RSA: the RSA certificate request gets no answer, so
/// what depends on it cannot pass (exit 2), while the weak key TLS 1.2
/// showed in the clear still fails.
#[test]
fn a_certificate_request_cut_off_leaves_the_certificates_undecided() {
    let pki = Pki::new();
    let server = ecdsa_and_weak_rsa(&pki);
    let backend = server.target.clone();
    let front = proxy(move |_, hello| {
        let rsa_only = offers_tls13(hello)
            && signature_schemes(hello).is_some_and(|schemes| {
                !schemes.is_empty() && !schemes.iter().any(|s| s >> 8 >= 4 && s & 0xff == 3)
            });
        (!rsa_only).then(|| backend.clone())
    });
    let (code, json) = check_json(&[front.as_str()]);
    assert_eq!(code, 2, "{json}");
    let report = &json["reports"][0];
    assert_eq!(finding(report, "tls.certificate.key")["status"], "fail");
    for id in ["tls.certificate.signature", "tls.certificate.expiry"] {
        undecided_because(finding(report, id), "no answer for: RSA certificate");
    }
}

/// `openssl s_server` with the CA's ECDSA `server` certificate and an
/// RSA-1024 one beside it, offering both with AES-GCM.
fn ecdsa_and_weak_rsa(pki: &Pki) -> OpensslServer {
    ecdsa_and_weak_rsa_with(
        pki,
        &[
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
            "-ciphersuites",
            TLS13_APPROVED,
            "-sigalgs",
            &format!("ECDSA+SHA256:{SHA256_ONLY}"),
        ],
    )
}

/// The same two certificates, with the server's other settings in `extra`.
fn ecdsa_and_weak_rsa_with(pki: &Pki, extra: &[&str]) -> OpensslServer {
    pki.leaf_with("rsa1024", "DNS:localhost", &["rsa:1024"], "sha256");
    let (cert, key) = (pki.path_str("rsa1024.pem"), pki.path_str("rsa1024.key"));
    let mut args = vec!["-dcert", &cert, "-dkey", &key];
    args.extend_from_slice(extra);
    s_server(pki, "server", &args)
}

/// The signature_algorithms a ClientHello record offers, if it is one.
fn signature_schemes(record: &[u8]) -> Option<Vec<u16>> {
    let u16_at = |at: usize| Some(u16::from_be_bytes([*record.get(at)?, *record.get(at + 1)?]));
    // Record header 5, handshake header 4, version 2, random 32.
    let mut at = 5 + 4 + 2 + 32;
    at += 1 + usize::from(*record.get(at)?); // session id
    at += 2 + usize::from(u16_at(at)?); // cipher suites
    at += 1 + usize::from(*record.get(at)?); // compression methods
    let end = at + 2 + usize::from(u16_at(at)?);
    at += 2;
    while at + 4 <= end {
        let (kind, len) = (u16_at(at)?, usize::from(u16_at(at + 2)?));
        if kind == 13 {
            let list = record.get(at + 6..at + 4 + len)?;
            return Some(
                list.chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect(),
            );
        }
        at += 4 + len;
    }
    None
}

/// A TLS 1.2 server whose weak RSA certificate comes only with a CBC
/// suite, which no approved handshake here offers: the chain each
/// accepted suite brings is read, so it is judged too.
#[test]
fn a_certificate_only_a_tls_1_2_suite_brings_is_judged() {
    let pki = Pki::new();
    let server = ecdsa_and_weak_rsa_with(
        &pki,
        &[
            "-tls1_2",
            "-serverpref",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA256:@SECLEVEL=0",
            "-sigalgs",
            "ECDSA+SHA256:RSA+SHA256",
        ],
    );
    let policy = pki.path("tls12.toml");
    std::fs::write(&policy, "required_protocols = [\"TLS1.2\"]\n").unwrap();
    let report = &fails_only(
        &["--policy", policy.to_str().unwrap(), server.target.as_str()],
        "tls.certificate.key",
    );
    let keys = finding(report, "tls.certificate.key")["evidence"].to_string();
    assert!(keys.contains("RSA 1024 bits: not allowed"), "{keys}");
}

/// `check tls ARGS` on one endpoint, which must fail on the finding `id`
/// alone; its report.
fn fails_only(args: &[&str], id: &str) -> Value {
    let (code, json) = check_json(args);
    assert_eq!(code, 1, "{json}");
    let report = json["reports"][0].clone();
    assert_eq!(
        failed_ids(&report),
        BTreeSet::from([id.to_owned()]),
        "{report}"
    );
    report
}

/// Whether a ClientHello record lists TLS 1.3 in supported_versions.
fn offers_tls13(hello: &[u8]) -> bool {
    hello.windows(5).enumerate().any(|(at, w)| {
        let list = usize::from(w[4]);
        w[..2] == [0x00, 0x2b]
            && usize::from(u16::from_be_bytes([w[2], w[3]])) == list + 1
            && hello
                .get(at + 5..at + 5 + list)
                .is_some_and(|versions| versions.chunks(2).any(|v| v == [0x03, 0x04]))
    })
}

/// A TCP proxy: for its Nth connection, given the first TLS record the
/// client sent, `route` names the backend, or none to close the connection
/// at once, without a word.
fn proxy(route: impl Fn(usize, &[u8]) -> Option<String> + Send + 'static) -> String {
    use std::io::{Read, Write};
    use std::net::Shutdown;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let front = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(mut client) = client else { continue };
            let mut record = vec![0u8; 5];
            if client.read_exact(&mut record).is_err() {
                continue;
            }
            let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
            record.resize(5 + len, 0);
            if client.read_exact(&mut record[5..]).is_err() {
                continue;
            }
            let Some(backend) = route(n, &record) else {
                continue; // dropped: closed without a word
            };
            let Ok(mut server) = TcpStream::connect(&backend) else {
                continue;
            };
            if server.write_all(&record).is_err() {
                continue;
            }
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Write);
                });
            };
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(server, client);
        }
    });
    front
}
