//! `fipsguard init` and `fipsguard serve --config`, run as an operator runs
//! them: a configuration file, a certificate from openssl, SIGTERM to stop.

mod common;
mod http2;
mod pki;

use std::process::Command;
use std::time::Duration;

use serde_json::json;

#[test]
fn init_then_serve_from_a_configuration_file() {
    let setup = common::Setup::new();
    let (token, port) = (&setup.officer, setup.port);
    assert!(token.starts_with("fgt."), "{token}");
    assert!(setup.init_stderr.contains("created root key file"));
    let again = Command::new(common::FIPSGUARD)
        .args(["init", "--config"])
        .arg(setup.path("fipsguard.toml"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "a second init is refused");

    let server = setup.serve();
    let curl = |path_and_auth: &[&str]| curl(&setup, path_and_auth);
    let status = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("https://localhost:{port}/v1/status"),
    ]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let body = String::from_utf8_lossy(&status.stdout);
    assert!(
        body.contains("\"store\":\"sqlite\"") && body.contains("\"fips_mode\":true"),
        "{body}"
    );

    // Changes log a JSON line at info, with the caller's token id but never
    // the token, nor the new token the answer carries.
    let created = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"role": "auditor"}"#,
        &format!("https://localhost:{port}/v1/tokens"),
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );
    let answer: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let new_token = answer["token"].as_str().unwrap();

    save_audit_key(&setup);
    let log = server.log.clone();
    server.stop();
    let log = log.lock().unwrap().clone();
    let line = log
        .lines()
        .find(|line| line.contains("\"INFO\"") && line.contains("/v1/tokens"))
        .unwrap_or_else(|| panic!("no info line for the change: {log}"));
    assert!(
        line.starts_with('{') && line.contains(&token[4..20]),
        "{line}"
    );
    assert!(
        !log.contains(&token[21..]) && !log.contains(&new_token[21..]),
        "a token's secret in the log"
    );

    // The audit log holds init, startup, every request and the shutdown,
    // verifies with the public key alone, and names tokens only by id.
    let report = setup.verify_audit();
    assert!(report.starts_with("audit log verified"), "{report}");
    let events = setup.audit_text();
    for kind in [
        "init",
        "self_test",
        "startup",
        "request",
        "shutdown",
        "checkpoint",
    ] {
        assert!(
            events.contains(&format!("\"kind\":\"{kind}\"")),
            "no {kind} event"
        );
    }
    let new_id = answer["info"]["id"].as_str().unwrap();
    assert!(
        events.contains(&format!("\"token\":\"{new_id}\"")),
        "the new token's id is recorded"
    );
    assert!(!events.contains(&token[21..]) && !events.contains(&new_token[21..]));
    // The startup names the certificate served.
    let certificate = format!(
        "\"certificate\":\"{}\"",
        fingerprint(&setup.path("server.pem"))
    );
    let startup = events
        .lines()
        .find(|l| l.contains("\"kind\":\"startup\""))
        .unwrap();
    assert!(startup.contains(&certificate), "{startup}");
}

/// With a client CA and a CRL, a client whose certificate the list revokes
/// fails the handshake and one it does not name is served; a list with no
/// client CA to check it for, or one its CA did not sign, is refused at
/// start.
#[test]
fn client_certificates_are_checked_against_the_configured_crl() {
    let setup = common::Setup::new();
    let pki = pki::Pki::new();
    pki.leaf("good", "DNS:good.fipsguard.test");
    pki.leaf("revoked", "DNS:revoked.fipsguard.test");
    pki.revoke("revoked");
    let (ca, crl) = (pki.path_str("ca.pem"), pki.path_str("crl.pem"));
    let server = setup.serve_with(&[
        ("FIPSGUARD_TLS_CLIENT_CA", ca.as_str()),
        ("FIPSGUARD_TLS_CRL", crl.as_str()),
    ]);
    let health = |name: &str| {
        let (cert, key) = (
            pki.path_str(&format!("{name}.pem")),
            pki.path_str(&format!("{name}.key")),
        );
        let url = format!("https://localhost:{}/v1/health", setup.port);
        curl(&setup, &["--cert", &cert, "--key", &key, &url])
    };
    let good = health("good");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(!health("revoked").status.success());
    // When the list passes its nextUpdate (in two days), for an alert.
    let next_update = series(
        &setup,
        "fipsguard_tls_client_crl_next_update_timestamp_seconds",
    );
    let ahead = next_update - std::time::UNIX_EPOCH.elapsed().unwrap().as_secs_f64();
    assert!((171_000.0..173_000.0).contains(&ahead), "{ahead}");
    // What curl says depends on when the alert overtakes its request; the
    // server's own log names the reason.
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the refusal is logged",
        || server.log().contains("revoked_certificate"),
    );
    // A client key outside the policy is refused by the rule it breaks.
    let p521 = ["ec", "-pkeyopt", "ec_paramgen_curve:P-521"];
    pki.leaf_with("p521", "DNS:p521.fipsguard.test", &p521, "sha256");
    assert!(!health("p521").status.success());
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the key's rule is logged",
        || {
            server.log().lines().any(|line| {
                line.contains("key_not_approved")
                    && line.contains("TLS certificate keys must be RSA of 2048 bits or more")
            })
        },
    );
    server.stop();

    let refused = Command::new(common::FIPSGUARD)
        .args(["serve", "--config"])
        .arg(setup.path("fipsguard.toml"))
        .env("FIPSGUARD_TLS_CRL", &crl)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("[tls] crl needs [tls] client_ca"),
        "{stderr}"
    );

    pki.forged_crl("forged.pem");
    let forged = pki.path("forged.pem");
    let env = [
        ("FIPSGUARD_TLS_CLIENT_CA", ca.as_ref()),
        ("FIPSGUARD_TLS_CRL", forged.as_os_str()),
    ];
    let (code, stderr) = refused_start(&setup, &env, "a server given a forged list ends");
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("forged.pem")
            && stderr.contains("the revocation list of CN=fipsguard test CA does not verify"),
        "{stderr}"
    );
}

/// SIGHUP reads the TLS files again: a newer CRL refuses its client's new
/// handshakes and cuts its open connection while another client's goes
/// on; a renewed server certificate is served from then on; a broken file
/// is refused, and the configuration in force stays.
#[test]
fn sighup_reloads_the_tls_files() {
    let setup = common::Setup::new();
    let pki = pki::Pki::new();
    pki.leaf("good", "DNS:good.fipsguard.test");
    pki.leaf("doomed", "DNS:doomed.fipsguard.test");
    let (ca, crl) = (pki.path_str("ca.pem"), pki.path_str("crl.pem"));
    let server = setup.serve_with(&[
        ("FIPSGUARD_TLS_CLIENT_CA", ca.as_str()),
        ("FIPSGUARD_TLS_CRL", crl.as_str()),
    ]);
    let mut good = HttpSession::open(&setup, &pki, "good");
    let mut doomed = HttpSession::open(&setup, &pki, "doomed");
    assert_eq!(good.get("/v1/health").as_deref(), Some(OK));
    assert_eq!(doomed.get("/v1/health").as_deref(), Some(OK));
    let series = |name: &str| series(&setup, name);
    let (reloaded, failed) = (
        "fipsguard_tls_reloads_total{outcome=\"ok\"}",
        "fipsguard_tls_reloads_total{outcome=\"failed\"}",
    );
    assert_eq!(series(failed), 0.0, "the series is there before a failure");
    assert_eq!(series("fipsguard_tls_last_reload_failed"), 0.0);
    save_audit_key(&setup);
    let original = fingerprint(&setup.path("server.pem"));
    let revoked_cut = "fipsguard_tls_clients_cut_total{reason=\"revoked\"}";
    assert_eq!(series(revoked_cut), 0.0);

    pki.revoke("doomed");
    // Just before: its 10 s HTTP/1.1 idle deadline starts again.
    assert_eq!(good.get("/v1/health").as_deref(), Some(OK));
    server.hangup();
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the reload is counted",
        || series(reloaded) == 1.0,
    );
    // Well within the 10 s an idle HTTP/1.1 connection is given.
    common::exit_within(
        &mut doomed.child,
        std::time::Duration::from_secs(5),
        "the revoked client's open connection is closed",
    );
    assert_eq!(series(revoked_cut), 1.0);
    let closed = closing_logged(&server);
    assert!(closed.contains("revoked"), "{closed}");
    assert_eq!(
        good.get("/v1/health").as_deref(),
        Some(OK),
        "the other client stays"
    );
    drop(good);
    assert!(HttpSession::handshake_fails(&setup, &pki, "doomed"));
    assert!(!HttpSession::handshake_fails(&setup, &pki, "good"));

    // A renewed certificate: served once the server has read it.
    let renewed = setup.path("renewed");
    std::fs::create_dir(&renewed).unwrap();
    common::make_certificate(&renewed.join("server.pem"), &renewed.join("server.key"));
    std::fs::copy(renewed.join("server.pem"), renewed.join("ca.pem")).unwrap();
    let renewal = fingerprint(&renewed.join("ca.pem"));
    // Whether the server's certificate is the one in `ca`, and (if
    // `healthy`) whether its health is good.
    let health_with = |ca: &std::path::Path, healthy: bool| {
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "--resolve"])
            .args(healthy.then_some("--fail"))
            .arg(format!("localhost:{}:127.0.0.1", setup.port))
            .arg("--cacert")
            .arg(ca)
            .arg(format!("https://localhost:{}/v1/health", setup.port))
            .output()
            .unwrap()
            .status
            .success()
    };
    let serves = |ca: &std::path::Path| health_with(ca, false);
    let serves_renewed = || serves(&renewed.join("ca.pem"));
    assert!(!serves_renewed());
    for file in ["server.pem", "server.key"] {
        std::fs::rename(renewed.join(file), setup.path(file)).unwrap();
    }
    server.hangup();
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the renewed certificate is served",
        serves_renewed,
    );
    assert_eq!(series(reloaded), 2.0);

    // While the audit log cannot be written, good files are refused too:
    // the trust in force changes only with evidence.
    let unrecorded = setup.path("unrecorded");
    std::fs::create_dir(&unrecorded).unwrap();
    common::make_certificate(
        &unrecorded.join("server.pem"),
        &unrecorded.join("server.key"),
    );
    std::fs::copy(unrecorded.join("server.pem"), unrecorded.join("ca.pem")).unwrap();
    let segment = std::fs::read_dir(setup.path("audit"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .max()
        .unwrap();
    let mode = |mode| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&segment, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(0o400);
    for file in ["server.pem", "server.key"] {
        std::fs::copy(unrecorded.join(file), setup.path(file)).unwrap();
    }
    server.hangup();
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the unrecorded reload is refused",
        || {
            server
                .log()
                .contains("TLS reload refused: it could not be recorded in the audit log")
        },
    );
    assert!(serves_renewed() && !serves(&unrecorded.join("ca.pem")));
    mode(0o600);
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the audit log is writable again",
        || server.log().contains("audit log writable again"),
    );
    // Once it is, the same files load.
    server.hangup();
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the files refused for want of a record load",
        || serves(&unrecorded.join("ca.pem")),
    );
    assert_eq!((series(reloaded), series(failed)), (3.0, 1.0));
    let unrecorded = fingerprint(&unrecorded.join("ca.pem"));

    // A key that is not a key: refused, and the certificate in force stays.
    std::fs::write(setup.path("server.key"), "not a key").unwrap();
    server.hangup();
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the failed reload is counted",
        || series(failed) == 2.0,
    );
    assert_eq!(
        series("fipsguard_tls_last_reload_failed"),
        1.0,
        "held until a reload succeeds"
    );
    assert!(health_with(&setup.path("server.pem"), true));
    assert!(server
        .log()
        .contains("TLS reload failed: the configuration in force stays"));
    assert_eq!(series(reloaded), 3.0);

    // Good files again: the failure is cleared.
    common::make_certificate(&setup.path("server.pem"), &setup.path("server.key"));
    let restored = fingerprint(&setup.path("server.pem"));
    server.hangup();
    // Its certificate is served once they are (metrics are read over a
    // connection that trusts it).
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the restored files are loaded",
        || serves(&setup.path("server.pem")),
    );
    assert_eq!(series(reloaded), 4.0);
    assert_eq!(series("fipsguard_tls_last_reload_failed"), 0.0);

    // A revocation list its CA did not sign is refused: in force, it
    // would refuse every client of that CA.
    pki.forged_crl("crl.pem");
    server.hangup();
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the forged list's reload fails",
        || series(failed) == 3.0,
    );
    // The lists in force stay: one, not none.
    assert!(!HttpSession::handshake_fails(&setup, &pki, "good"));
    assert!(HttpSession::handshake_fails(&setup, &pki, "doomed"));
    server.stop();

    // Each reload is in the audit log: the certificate served from then
    // on, or why the files were refused.
    let reloads = setup.audit_records_of("tls_reload");
    let served = |reload: &serde_json::Value, certificate: &str| {
        assert_eq!(reload["loaded"], true, "{reload}");
        assert_eq!(reload["certificate"], certificate, "{reload}");
        assert!(reload.get("error").is_none(), "{reload}");
    };
    // The reload refused for want of a record left none.
    assert_eq!(reloads.len(), 6, "{reloads:?}");
    served(&reloads[0], &original);
    served(&reloads[1], &renewal);
    served(&reloads[2], &unrecorded);
    assert_eq!(reloads[3]["loaded"], false);
    assert!(reloads[3].get("certificate").is_none());
    let error = reloads[3]["error"].as_str().unwrap();
    assert!(error.contains("server.key"), "{error}");
    served(&reloads[4], &restored);
    let error = reloads[5]["error"].as_str().unwrap();
    assert!(
        error.contains("crl.pem") && error.contains("does not verify"),
        "{error}"
    );
    setup.verify_audit();
}

/// `fipsguard rekey` with the server stopped: the old root key no longer
/// opens the store, the new one opens every key and token, and the audit
/// log records the intent and the outcome of each attempt, refusals
/// included.
#[test]
fn rekey_moves_the_store_to_a_new_root_key() {
    let setup = common::Setup::new();
    let officer = format!("Authorization: Bearer {}", setup.officer);
    let api = |path: &str| format!("https://localhost:{}/v1/{path}", setup.port);
    let post = |auth: &str, path: &str, body: &str| post_json(&setup, auth, &api(path), body);
    let server = setup.serve();
    post(
        &officer,
        "keys",
        r#"{"name": "payments", "type": "aes256-gcm"}"#,
    );
    let user = post(
        &officer,
        "tokens",
        r#"{"role": "user", "grants": [{"keys": "payments", "operations": ["encrypt", "decrypt"]}]}"#,
    );
    let user = format!("Authorization: Bearer {}", user["token"].as_str().unwrap());
    let sealed = post(
        &user,
        "keys/payments/encrypt",
        r#"{"plaintext": "aGVsbG8="}"#,
    );
    save_audit_key(&setup);

    let rekey = |new: &[&str]| {
        Command::new(common::FIPSGUARD)
            .args(["rekey", "--config"])
            .arg(setup.path("fipsguard.toml"))
            .args(new)
            .output()
            .unwrap()
    };
    let new_key = setup.path("new-root.key");
    let new_key = new_key.to_str().unwrap();
    // Beside the running server, which holds the audit directory: refused
    // before anything is written.
    let beside = rekey(&["--new-key-file", new_key]);
    let stderr = String::from_utf8_lossy(&beside.stderr);
    assert_eq!(beside.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("a server still running?"), "{stderr}");
    assert!(!setup.path("new-root.key").exists());
    server.stop();
    let same = rekey(&["--new-key-file", setup.path("root.key").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&same.stderr);
    assert_eq!(same.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the new root key is the one in use"),
        "{stderr}"
    );
    // A node left running (its own audit directory, so the change is not
    // refused for it) is taken out of service by the change.
    let stale_audit = setup.path("stale-audit");
    let stale = setup.serve_with(&[("FIPSGUARD_AUDIT_DIR", stale_audit.to_str().unwrap())]);
    let changed = rekey(&["--new-key-file", new_key]);
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert!(changed.status.success(), "{stderr}");
    // The audit key and the payments key.
    assert!(
        stderr.contains("created root key file")
            && stderr.contains("root key changed: 2 key version(s)"),
        "{stderr}"
    );
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the node left running reports the change",
        || {
            let health = curl(&setup, &[&api("health")]);
            String::from_utf8_lossy(&health.stdout).contains("\"root_key_current\":false")
                && health.status.code() == Some(22)
        },
    );
    // A scrape tells it at once, not at the next minute's upkeep.
    assert_eq!(series(&setup, "fipsguard_root_key_available"), 0.0);
    let refused = curl(
        &setup,
        &[
            "-H",
            &officer,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"name": "late", "type": "aes256-gcm"}"#,
            &api("keys"),
        ],
    );
    let body = String::from_utf8_lossy(&refused.stdout);
    assert!(body.contains("\"code\":\"root_key_changed\""), "{body}");
    stale.stop();

    let (code, refused) = refused_start(&setup, &[], "a start with the old root key");
    assert!(
        code != Some(0) && refused.contains("not the one the store was created with"),
        "{refused}"
    );

    let server = setup.serve_with(&[("FIPSGUARD_ROOT_KEY_FILE", new_key)]);
    let body = format!(r#"{{"ciphertext": {}}}"#, sealed["ciphertext"]);
    let opened = post(&user, "keys/payments/decrypt", &body);
    assert_eq!(opened["plaintext"], "aGVsbG8=");
    server.stop();

    let report = setup.verify_audit();
    assert!(
        report.contains("the root key was changed to a key file (2 key version(s) wrapped again)")
            && report.contains("a change of the root key to a key file failed: root key-encryption key: the new root key is the one in use")
            && report.matches("a change of the root key to a key file began").count() == 2,
        "{report}"
    );
    let changes = setup.audit_records_of("root_key_change");
    let outcomes: Vec<_> = changes
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["intent", "failure", "intent", "success"]);
    assert!(changes[1]["error"]
        .as_str()
        .unwrap()
        .contains("the one in use"));
    assert_eq!(changes[3]["versions"], 2);
    assert!(
        changes
            .iter()
            .all(|c| c.get("binds_earlier_release").is_none()),
        "{changes:?}"
    );
}

/// Runs `fipsguard ARGS` on a terminal of its own (a pseudo-terminal)
/// and types each of `entries` once its prompt (text ending in ": ") has
/// been shown and echo is off: what the terminal showed, and the exit
/// code.
fn on_a_terminal(args: &[&std::ffi::OsStr], entries: &[&str]) -> (Option<i32>, String) {
    const TYPIST: &str = r#"
import os, pty, signal, sys, termios, time
count = int(sys.argv[1])
entries, command = sys.argv[2:2 + count], sys.argv[2 + count:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(command[0], command)
shown = b""
def give_up(*_):
    sys.stdout.buffer.write(shown + b"\n[still waiting after 60 s]\n")
    sys.stdout.flush()
    os._exit(124)
signal.signal(signal.SIGALRM, give_up)
signal.alarm(60)
def read():
    global shown
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        return False
    shown += chunk
    return bool(chunk)
ended = None
for entry in entries:
    # A prompt: new output that ends in ": ", awaiting its answer.
    start = len(shown)
    while not (len(shown) > start and shown.endswith(b": ")) and read():
        pass
    # Typed once the terminal no longer echoes, as a person would be,
    # unless the program ended first.
    while ended is None and termios.tcgetattr(fd)[3] & termios.ECHO:
        done, status = os.waitpid(pid, os.WNOHANG)
        ended = status if done else None
        time.sleep(0.01)
    if ended is not None:
        break
    os.write(fd, entry.encode() + b"\r")
while read():
    pass
if ended is None:
    _, ended = os.waitpid(pid, 0)
sys.stdout.buffer.write(shown)
sys.exit(os.waitstatus_to_exitcode(ended))
"#;
    let out = Command::new("python3")
        .args(["-c", TYPIST, &entries.len().to_string()])
        .args(entries)
        .arg(common::FIPSGUARD)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code(),
        shown + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `rekey --new-passphrase-prompt` reads the new passphrase twice at the
/// terminal, not echoed: entries that differ change nothing and leave no
/// record; the same twice change the root key, which the store then opens
/// with. Without a terminal it is refused, saying why.
#[test]
fn rekey_takes_a_new_passphrase_typed_twice_at_the_terminal() {
    let setup = served_once();
    let config = setup.path("fipsguard.toml");
    let args = [
        std::ffi::OsStr::new("rekey"),
        "--config".as_ref(),
        config.as_os_str(),
        "--new-passphrase-prompt".as_ref(),
    ];
    let changes = || setup.audit_records_of("root_key_change").len();
    let passphrase = "a passphrase of the ceremony, 2026";

    let (code, shown) = on_a_terminal(&args, &[passphrase, "a passphrase of the ceremony, 2062"]);
    assert!(
        code == Some(1)
            && shown.contains("the two passphrases typed differ: the root key was not changed"),
        "{code:?} {shown}"
    );
    assert!(!shown.contains("ceremony"), "echoed: {shown}");
    assert_eq!(changes(), 0);

    // Too short, however given, or a variable not set: refused before
    // anything is recorded.
    let (code, shown) = on_a_terminal(&args, &["", ""]);
    assert!(
        code == Some(1) && shown.contains("a passphrase must be at least"),
        "{code:?} {shown}"
    );
    for (env, refusal) in [
        (Some("short"), "a passphrase must be at least"),
        (
            None,
            "the root key passphrase variable FG_TEST_NEW_PASSPHRASE is not set",
        ),
    ] {
        let mut rekey = Command::new(common::FIPSGUARD);
        rekey
            .args(&args[..3])
            .args(["--new-passphrase-env", "FG_TEST_NEW_PASSPHRASE"])
            .env_remove("FG_TEST_NEW_PASSPHRASE");
        if let Some(value) = env {
            rekey.env("FG_TEST_NEW_PASSPHRASE", value);
        }
        let refused = rekey.output().unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            refused.status.code() == Some(1) && stderr.contains(refusal),
            "{stderr}"
        );
    }
    assert_eq!(changes(), 0);

    let without_terminal = Command::new("setsid")
        .arg(common::FIPSGUARD)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&without_terminal.stderr);
    assert!(
        without_terminal.status.code() == Some(1)
            && stderr.contains("--new-passphrase-prompt reads from a terminal"),
        "{stderr}"
    );
    assert_eq!(changes(), 0);

    let (code, shown) = on_a_terminal(&args, &[passphrase, passphrase]);
    assert!(
        code == Some(0) && shown.contains("root key changed"),
        "{code:?} {shown}"
    );
    assert!(!shown.contains("ceremony"), "echoed: {shown}");
    assert_eq!(changes(), 2);
    let text = std::fs::read_to_string(&config).unwrap();
    let file_line = text.lines().find(|l| l.starts_with("file = ")).unwrap();
    let text = text.replace(file_line, "passphrase_env = \"FG_TEST_NEW_PASSPHRASE\"");
    std::fs::write(&config, text).unwrap();
    let server = setup.serve_with(&[("FG_TEST_NEW_PASSPHRASE", passphrase)]);
    let health = curl(&setup, &[&format!("{}/v1/health", setup.url())]);
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stdout)
    );
    server.stop();
}

/// A store an earlier release wrote (its values not bound to their place;
/// here, its check value) is refused by `serve` and by a plain `rekey`,
/// both naming `--bind-earlier-release`. With the flag, `rekey` takes the
/// store for such a release's, and so refuses the bound token hash that
/// `init` wrote in it: no release wrote that mixture.
#[test]
fn a_store_an_earlier_release_wrote_waits_for_rekey_to_bind_it() {
    let setup = served_once();
    let db = rusqlite::Connection::open(setup.path("fipsguard.db")).unwrap();
    let read = "SELECT value FROM settings WHERE name = 'root_kek_check'";
    let check: Vec<u8> = db.query_row(read, [], |row| row.get(0)).unwrap();
    let kek = fipsguard_crypto::keywrap::KeyEncryptionKey::new(
        &std::fs::read(setup.path("root.key")).unwrap(),
    )
    .unwrap();
    let bound = kek.unwrap(&check).unwrap();
    // As an earlier release wrapped it: the 32 random bytes alone.
    let unbound = kek
        .wrap(&bound.expose_secret()[bound.len() - 32..])
        .unwrap();
    let write = "UPDATE settings SET value = ?1 WHERE name = 'root_kek_check'";
    db.execute(write, [unbound]).unwrap();
    drop(db);

    let (code, refused) = refused_start(&setup, &[], "a start on an earlier release's store");
    assert!(
        code != Some(0) && refused.contains("`fipsguard rekey --bind-earlier-release`"),
        "{refused}"
    );
    let rekey = |flags: &[&str]| {
        let out = Command::new(common::FIPSGUARD)
            .args(["rekey", "--config"])
            .arg(setup.path("fipsguard.toml"))
            .arg("--new-key-file")
            .arg(setup.path("new-root.key"))
            .args(flags)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let plain = rekey(&[]);
    assert!(
        plain.contains("`fipsguard rekey --bind-earlier-release`"),
        "{plain}"
    );
    let bind = rekey(&["--bind-earlier-release"]);
    assert!(
        bind.contains("has a bound hash in a store an earlier release wrote")
            && bind.contains("the root key was not changed"),
        "{bind}"
    );
    // Only the attempt to bind reached the log (the plain one was refused
    // on opening the store), and it says it would bind.
    let changes = setup.audit_records_of("root_key_change");
    let binding: Vec<_> = changes
        .iter()
        .map(|c| (c["outcome"].as_str().unwrap(), &c["binds_earlier_release"]))
        .collect();
    assert_eq!(
        binding,
        [("intent", &json!(true)), ("failure", &json!(true))],
        "{changes:?}"
    );
    let report = setup.verify_audit();
    assert!(
        report.contains("a change of the root key to a key file that binds a store an earlier release wrote failed"),
        "{report}"
    );
}

/// An audit key that is active with a destruction scheduled, which only
/// a hand-made change to the store can leave, keeps the server from
/// starting, saying so: the log would otherwise be signed by a key on its
/// way out.
#[test]
fn an_audit_key_with_a_destruction_scheduled_is_refused_at_start() {
    let setup = common::Setup::new();
    setup.serve().stop();
    let db = rusqlite::Connection::open(setup.path("fipsguard.db")).unwrap();
    let schedule = "UPDATE keys SET destroy_at = unixepoch() + 86400 WHERE name = 'fipsguard-audit' AND state = 'active'";
    assert_eq!(db.execute(schedule, []).unwrap(), 1);
    drop(db);
    let (code, refused) = refused_start(&setup, &[], "a start with the audit key due to go");
    assert!(
        code != Some(0)
            && refused.contains("the key fipsguard-audit has a destruction scheduled")
            && refused.contains("the store was changed by hand"),
        "{refused}"
    );
}

/// A key whose version reaches `max_encryptions_per_version` rotates by
/// itself, with its intent in the audit log before and its outcome (the
/// new version) after; encryption goes on under the new version, and
/// everything sealed before still decrypts.
#[test]
fn a_rotation_at_the_encryption_limit_leaves_its_intent_and_outcome_in_the_audit_log() {
    let setup = common::Setup::new();
    let server = setup.serve_with(&[("FIPSGUARD_MAX_ENCRYPTIONS_PER_VERSION", "64")]);
    let officer = format!("Authorization: Bearer {}", setup.officer);
    let url = |path: &str| keys_url(&setup, path);
    post_json(
        &setup,
        &officer,
        &url(""),
        r#"{"name": "metered", "type": "aes256-gcm"}"#,
    );
    let grants = r#"{"role": "user", "grants": [{"keys": "metered", "operations": ["encrypt", "decrypt"]}]}"#;
    let tokens = format!("https://localhost:{}/v1/tokens", setup.port);
    let user = post_json(&setup, &officer, &tokens, grants);
    let user = format!("Authorization: Bearer {}", user["token"].as_str().unwrap());
    let body = r#"{"plaintext": "bWV0ZXJlZA=="}"#;
    let sealed: Vec<serde_json::Value> = (0..80)
        .map(|_| post_json(&setup, &user, &url("/metered/encrypt"), body))
        .collect();
    // `fg:v<version>:<base64>`
    let versions: Vec<_> = sealed
        .iter()
        .map(|s| s["ciphertext"].as_str().unwrap().split(':').nth(1).unwrap())
        .collect();
    assert_eq!(versions[0], "v1");
    assert_eq!(versions[79], "v2", "rotated before the 65th encryption");
    let under_first = versions.iter().filter(|v| **v == "v1").count();
    assert!(under_first <= 64, "{under_first} under version 1");
    for ciphertext in [&sealed[0], &sealed[79]] {
        let body = json!({"ciphertext": ciphertext["ciphertext"]}).to_string();
        post_json(&setup, &user, &url("/metered/decrypt"), &body);
    }
    save_audit_key(&setup);
    server.stop();
    let records = setup.audit_records();
    // One request after another: the version is on record as added before
    // the first encryption under it.
    let rotated = records
        .iter()
        .find(|r| r["kind"] == "key_rotation" && r["outcome"] == "success")
        .map(|r| r["seq"].as_u64().unwrap());
    let first_under_new = records
        .iter()
        .find(|r| r["route"] == "/v1/keys/{name}/encrypt" && r["key_version"] == 2)
        .map(|r| r["seq"].as_u64().unwrap());
    assert!(
        rotated.is_some() && rotated < first_under_new,
        "{rotated:?}, {first_under_new:?}"
    );
    let rotations: Vec<_> = records
        .into_iter()
        .filter(|record| record["kind"] == "key_rotation")
        .map(|r| {
            (
                r["key"].clone(),
                r["version"].clone(),
                r["outcome"].clone(),
                r["new_version"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rotations,
        [
            (json!("metered"), json!(1), json!("intent"), json!(null)),
            (json!("metered"), json!(1), json!("success"), json!(2)),
        ]
    );
    let report = setup.verify_audit();
    assert!(!report.contains("began, and no outcome"), "{report}");
}

/// A key whose scheduled destruction has come is destroyed by the
/// server's sweep (at start, then every minute), with its intent in the
/// audit log before and its outcome after.
#[test]
fn a_due_destruction_leaves_its_intent_and_outcome_in_the_audit_log() {
    let setup = common::Setup::new();
    let server = setup.serve();
    let officer = format!("Authorization: Bearer {}", setup.officer);
    let url = |path: &str| keys_url(&setup, path);
    for (path, body) in [
        ("", r#"{"name": "archive", "type": "aes256-gcm"}"#),
        ("/archive/deactivate", "{}"),
        ("/archive/destroy", r#"{"days": 1}"#),
    ] {
        post_json(&setup, &officer, &url(path), body);
    }
    save_audit_key(&setup);
    server.stop();
    // The day passes (the schedule, moved back in the store by a day).
    let db = rusqlite::Connection::open(setup.path("fipsguard.db")).unwrap();
    let moved = "UPDATE keys SET destroy_at = destroy_at - 86400 WHERE name = 'archive'";
    assert_eq!(db.execute(moved, []).unwrap(), 1);
    drop(db);

    let server = setup.serve();
    let records = || -> Vec<serde_json::Value> { setup.audit_records_of("key_destruction") };
    common::wait_until(
        Duration::from_secs(20),
        "the sweep destroys the key",
        || records().len() == 2,
    );
    let key = curl(&setup, &["-H", &officer, &url("/archive")]);
    let key: serde_json::Value = serde_json::from_slice(&key.stdout).unwrap();
    assert_eq!(key["state"], "destroyed", "{key}");
    server.stop();
    let outcomes: Vec<_> = records()
        .iter()
        .map(|r| (r["key"].clone(), r["outcome"].clone(), r["due"].is_string()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (json!("archive"), json!("intent"), true),
            (json!("archive"), json!("success"), true)
        ]
    );
    setup.verify_audit();
}

/// A change whose client goes away mid-way (after its intent is on record,
/// while the store is busy) still runs to its end and leaves its outcome
/// in the audit log, with its log line, over HTTP/1.1 and HTTP/2 (whose
/// requests run on tasks of their own); a server told to stop meanwhile
/// waits for it. The log never holds an intent the change's end does not
/// follow.
#[test]
fn a_change_whose_client_goes_away_is_recorded_to_its_end() {
    let setup = common::Setup::new();
    let server = setup.serve();
    let officer = format!("Authorization: Bearer {}", setup.officer);
    let url = |path: &str| keys_url(&setup, path);
    post_json(
        &setup,
        &officer,
        &url(""),
        r#"{"name": "k", "type": "aes256-gcm"}"#,
    );
    save_audit_key(&setup);
    let rotations = || -> Vec<(serde_json::Value, serde_json::Value)> {
        setup
            .audit_records()
            .into_iter()
            .filter(|record| record["route"] == "/v1/keys/{name}/rotate")
            .map(|record| (record["outcome"].clone(), record["key_version"].clone()))
            .collect()
    };
    let log = server.log.clone();
    let handed_on = || log.lock().unwrap().matches("dropped mid-way").count();
    // A rotation that waits for the store's write lock, held elsewhere,
    // and a client that goes once its intent is on record; then
    // `meanwhile`, then the lock goes.
    let rotate_gone = |round: usize, http: &str, meanwhile: &mut dyn FnMut()| {
        let db = rusqlite::Connection::open(setup.path("fipsguard.db")).unwrap();
        db.execute_batch("BEGIN IMMEDIATE").unwrap();
        let args = ["-X", "POST", http, "-H", &officer, &url("/k/rotate")];
        let mut client = curl_command(&setup, &args).spawn().unwrap();
        common::wait_until(Duration::from_secs(20), "the intent", || {
            rotations().len() == 2 * round - 1
        });
        client.kill().unwrap();
        client.wait().unwrap();
        common::wait_until(Duration::from_secs(20), "the hand-off", || {
            handed_on() == round
        });
        meanwhile();
        db.execute_batch("COMMIT").unwrap();
    };
    rotate_gone(1, "--http1.1", &mut || {
        assert_eq!(rotations(), [(json!("intent"), json!(null))]);
    });
    common::wait_until(Duration::from_secs(20), "the first outcome", || {
        rotations().len() == 2
    });
    // Told to stop while the change still waits.
    let mut stopping = None;
    let mut server = Some(server);
    rotate_gone(2, "--http2", &mut || {
        let server = server.take().unwrap();
        stopping = Some(std::thread::spawn(move || server.stop()));
        common::wait_until(Duration::from_secs(20), "the stop begins", || {
            log.lock().unwrap().contains("shutting down")
        });
    });
    stopping.unwrap().join().unwrap();
    assert_eq!(
        rotations(),
        [
            (json!("intent"), json!(null)),
            (json!("success"), json!(2)),
            (json!("intent"), json!(null)),
            (json!("success"), json!(3))
        ]
    );
    let log = log.lock().unwrap().clone();
    let logged = log.lines().filter(|line| {
        line.contains(r#""route":"/v1/keys/{name}/rotate""#) && line.contains(r#""status":200"#)
    });
    assert_eq!(logged.count(), 2, "each change's request line: {log}");
    let report = setup.verify_audit();
    assert!(!report.contains("no outcome follows it"), "{report}");
}

/// `/v1/health` is open to anyone: however many call it, and however
/// close together, the store is probed at most once a second.
#[test]
fn health_checks_probe_the_store_at_most_once_a_second() {
    let setup = common::Setup::new();
    let server = setup.serve();
    let (client, url) = (setup.client(), format!("{}/v1/health", setup.url()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let health = |client: reqwest::Client, url: String| async move {
        let answer = client.get(url).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["store_reachable"], true, "{body}");
    };
    runtime.block_on(health(client.clone(), url.clone()));
    let probes = || series(&setup, "fipsguard_store_probe_duration_seconds_count");
    let before = probes();
    let started = std::time::Instant::now();
    runtime.block_on(async {
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (client, url) = (client.clone(), url.clone());
            callers.spawn(async move {
                for _ in 0..4 {
                    health(client.clone(), url.clone()).await;
                }
            });
        }
        while let Some(done) = callers.join_next().await {
            done.unwrap();
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    // The scrape that counts them probes too, once its answer is stale.
    // (That a stale answer is probed again, the PostgreSQL test of a
    // silent store shows: health finds it silent, then answering.)
    let probed = probes() - before;
    assert!(
        probed <= seconds.ceil() + 2.0,
        "{probed} probes for 200 health checks in {seconds:.1} s"
    );
    server.stop();
}

/// With `max_connections_per_client`, a client's connections beyond its
/// cap are closed as they are accepted, and counted; one it closes frees
/// its place.
#[test]
fn a_client_holds_at_most_its_cap_of_connections() {
    use common::closed_within;
    use std::time::Duration;
    let setup = common::Setup::new();
    let server = setup.serve_with(&[("FIPSGUARD_MAX_CONNECTIONS_PER_CLIENT", "2")]);
    let connect = || std::net::TcpStream::connect(("127.0.0.1", setup.port)).unwrap();
    let open = |stream: &std::net::TcpStream| !closed_within(stream, Duration::from_millis(500));
    let held = [connect(), connect()];
    assert!(open(&held[0]) && open(&held[1]));
    assert!(
        closed_within(&connect(), Duration::from_secs(10)),
        "a third connection from one client"
    );
    drop(held);
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the refusal is counted",
        || {
            series(
                &setup,
                "fipsguard_tls_handshake_failures_total{reason=\"client_connection_limit\"}",
            ) == 1.0
        },
    );
    assert!(open(&connect()), "a place freed is taken again");
    let log = server.stop();
    let refusal = log
        .lines()
        .find(|line| line.contains("this client is at its connection limit"))
        .unwrap_or_else(|| panic!("no refusal logged: {log}"));
    assert!(refusal.contains(r#""client":"127.0.0.1""#), "{refusal}");
}

/// A setup whose server has run once and stopped, its audit key saved.
fn served_once() -> common::Setup {
    let setup = common::Setup::new();
    let server = setup.serve();
    save_audit_key(&setup);
    server.stop();
    setup
}

/// Saves the audit log's public key to `audit.pem`, for `verify_audit`.
fn save_audit_key(setup: &common::Setup) {
    let public_key = curl(
        setup,
        &[
            "-H",
            &format!("Authorization: Bearer {}", setup.officer),
            &format!(
                "https://localhost:{}/v1/keys/fipsguard-audit/public-key",
                setup.port
            ),
        ],
    );
    let public_key: serde_json::Value = serde_json::from_slice(&public_key.stdout).unwrap();
    std::fs::write(setup.path("audit.pem"), public_key["pem"].as_str().unwrap()).unwrap();
}

/// SHA-256 (hex) of the certificate in the PEM file `pem`.
fn fingerprint(pem: &std::path::Path) -> String {
    use fipsguard_crypto::digest::{digest, HashAlgorithm};
    use fipsguard_crypto::tls::rustls::pki_types::{pem::PemObject, CertificateDer};
    let der = CertificateDer::from_pem_file(pem).unwrap();
    // Computed here, not by the server's own function, which it checks.
    let sha256 = digest(HashAlgorithm::Sha256, &der).unwrap();
    sha256.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client whose certificate expires while it is connected is closed
/// then, with no reload to prompt it.
#[test]
fn a_client_is_closed_when_its_certificate_expires() {
    let setup = common::Setup::new();
    let pki = pki::Pki::new();
    let server = setup.serve_with(&[("FIPSGUARD_TLS_CLIENT_CA", &pki.path_str("ca.pem"))]);
    // Issued once the server runs, so a slow start does not eat into its
    // few seconds.
    pki.short_lived_leaf("brief", 12);
    let not_after = {
        use fipsguard_crypto::tls::rustls::pki_types::{pem::PemObject, CertificateDer};
        let pem = CertificateDer::from_pem_file(pki.path("brief.pem")).unwrap();
        fipsguard_crypto::certificate::not_after(&pem).unwrap()
    };
    let now = || i64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_secs()).unwrap();
    let mut brief = HttpSession::open(&setup, &pki, "brief");
    // A request every 2 s keeps HTTP/1.1's 10 s idle deadline away.
    while let Some(status) = brief.get("/v1/health") {
        assert_eq!(status, OK);
        assert!(
            now() < not_after + 10,
            "still open 10 s after its certificate expired"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    assert!(now() > not_after, "closed before its certificate expired");
    let closed = closing_logged(&server);
    assert!(closed.contains("expired"), "{closed}");
    let cut = |reason: &str| {
        series(
            &setup,
            &format!("fipsguard_tls_clients_cut_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!((cut("expired"), cut("revoked")), (1.0, 0.0));
    server.stop();
}

/// An HTTP/2 client may open streams until it answers the ping that
/// follows the server's first GOAWAY. One told to go for being idle, whose
/// certificate is then revoked, gets no more answers, and its connection
/// is dropped after the refused client's grace although the client never
/// answers, not after the idle connection's 30 s.
#[test]
fn a_refused_http2_client_is_served_nothing_more() {
    let setup = common::Setup::new();
    let pki = pki::Pki::new();
    pki.leaf("doomed", "DNS:doomed.fipsguard.test");
    let (ca, crl) = (pki.path_str("ca.pem"), pki.path_str("crl.pem"));
    let server = setup.serve_with(&[
        ("FIPSGUARD_TLS_CLIENT_CA", ca.as_str()),
        ("FIPSGUARD_TLS_CRL", crl.as_str()),
        ("FIPSGUARD_IDLE_TIMEOUT_SECS", "2"),
    ]);
    let mut doomed = http2::Http2::open(
        setup.port,
        &setup.path("server.pem"),
        &pki.path("doomed.pem"),
        &pki.path("doomed.key"),
    );
    let health = doomed.get("/v1/health").expect("answered");
    assert!(health.contains("\"fips_mode\":true"), "{health}");
    while !doomed.told_to_go {
        doomed.frame().expect("told to go away once idle");
    }

    pki.revoke("doomed");
    server.hangup();
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the closing connection's client is cut",
        || {
            series(
                &setup,
                "fipsguard_tls_clients_cut_total{reason=\"revoked\"}",
            ) == 1.0
        },
    );
    let cut = std::time::Instant::now();
    let refused = doomed.get("/v1/health").expect("answered within the grace");
    assert!(
        refused.contains("\"code\":\"client_certificate_refused\""),
        "{refused}"
    );
    while doomed.frame().is_some() {}
    // The 5 s grace, not the client's 10 s read timeout.
    assert!(
        cut.elapsed() < std::time::Duration::from_secs(9),
        "dropped after the grace, ping unanswered"
    );
    server.stop();
}

/// The server's log line for a connection closed because its client
/// certificate is refused, in lower case.
fn closing_logged(server: &common::Server) -> String {
    const CLOSING: &str =
        "connection closed: the TLS configuration in force refuses its client certificate";
    // Logged before the close, but read from the server's stderr after it.
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the closing is logged",
        || server.log().contains(CLOSING),
    );
    let log = server.log();
    log.lines()
        .find(|l| l.contains(CLOSING))
        .expect("logged")
        .to_lowercase()
}

/// The status line of a successful answer.
const OK: &str = "HTTP/1.1 200 OK";

/// A development server has no TLS files to read again: SIGHUP says so
/// and the server goes on (the signal's default would end it).
#[test]
fn a_development_server_answers_sighup_and_goes_on() {
    let dir = tempfile::TempDir::new().unwrap();
    let info = dir.path().join("dev.json");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(common::FIPSGUARD)
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--dev-info")
        .arg(&info)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        use std::io::BufRead;
        let (log, stderr) = (log.clone(), server.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        })
    };
    common::wait_until(
        std::time::Duration::from_secs(30),
        "the server starts",
        || std::fs::metadata(&info).is_ok_and(|m| m.len() > 0),
    );
    common::signal(&server, "HUP");
    common::wait_until(
        std::time::Duration::from_secs(10),
        "SIGHUP is answered",
        || log.lock().unwrap().contains("SIGHUP: nothing to reload"),
    );
    let dev: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&info).unwrap()).unwrap();
    let health = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "--cacert",
            dev["ca_file"].as_str().unwrap(),
        ])
        .arg(format!("https://127.0.0.1:{port}/v1/health"))
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    common::signal(&server, "TERM");
    let status = common::exit_within(
        &mut server,
        std::time::Duration::from_secs(30),
        "the server stops",
    );
    assert!(status.success());
    reader.join().unwrap();
}

/// Starts `fipsguard serve` on `setup`'s configuration with `env`, which
/// must end it (`what` says why): its exit code and what it wrote to
/// stderr.
fn refused_start(
    setup: &common::Setup,
    env: &[(&str, &std::ffi::OsStr)],
    what: &str,
) -> (Option<i32>, String) {
    let mut server = Command::new(common::FIPSGUARD)
        .args(["serve", "--config"])
        .arg(setup.path("fipsguard.toml"))
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = common::exit_within(&mut server, std::time::Duration::from_secs(30), what);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

/// An HTTP/1.1 connection over `openssl s_client` with a client
/// certificate from the PKI, held open between requests.
struct HttpSession {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl HttpSession {
    fn open(setup: &common::Setup, pki: &pki::Pki, client: &str) -> Self {
        let mut child = Self::s_client(setup, pki, client)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = std::io::BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            input,
            output,
        }
    }

    /// Whether `client`'s handshake is refused.
    fn handshake_fails(setup: &common::Setup, pki: &pki::Pki, client: &str) -> bool {
        let mut child = Self::s_client(setup, pki, client)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        let _ = input
            .write_all(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        drop(input);
        !common::exit_within(
            &mut child,
            std::time::Duration::from_secs(10),
            "s_client ends",
        )
        .success()
    }

    fn s_client(setup: &common::Setup, pki: &pki::Pki, client: &str) -> Command {
        let mut command = Command::new("openssl");
        command
            .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
            .arg(format!("127.0.0.1:{}", setup.port))
            .args(["-servername", "localhost", "-CAfile"])
            .arg(setup.path("server.pem"))
            .args(["-cert", &pki.path_str(&format!("{client}.pem"))])
            .args(["-key", &pki.path_str(&format!("{client}.key"))])
            .stderr(std::process::Stdio::null());
        command
    }

    /// Sends a GET and returns the answer's status line, reading the
    /// whole answer; `None` once the connection is closed.
    fn get(&mut self, path: &str) -> Option<String> {
        use std::io::{BufRead, Read, Write};
        write!(self.input, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
        self.input.flush().ok()?;
        let mut status = String::new();
        if self.output.read_line(&mut status).unwrap() == 0 {
            return None;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            self.output.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.output.read_exact(&mut body).unwrap();
        Some(status.trim_end().to_owned())
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the series `name` (with its labels) on the setup's
/// server's `/metrics`.
fn series(setup: &common::Setup, name: &str) -> f64 {
    let metrics = curl(
        setup,
        &[
            "-H",
            &format!("Authorization: Bearer {}", setup.officer),
            &format!("https://localhost:{}/metrics", setup.port),
        ],
    );
    let (metrics, stderr) = (
        String::from_utf8_lossy(&metrics.stdout),
        String::from_utf8_lossy(&metrics.stderr),
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {metrics}{stderr}"))
        .parse()
        .unwrap()
}

/// POSTs `body` as JSON to `url` with the header `auth`; the answer, which
/// must be a success.
fn post_json(setup: &common::Setup, auth: &str, url: &str, body: &str) -> serde_json::Value {
    let headers = ["-H", auth, "-H", "Content-Type: application/json"];
    let out = curl(setup, &[&headers[..], &["-d", body, url]].concat());
    assert!(
        out.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The address of `/v1/keys` with `path` after it on the setup's server.
fn keys_url(setup: &common::Setup, path: &str) -> String {
    format!("https://localhost:{}/v1/keys{path}", setup.port)
}

/// curl against the setup's server, trusting its certificate.
fn curl(setup: &common::Setup, path_and_auth: &[&str]) -> std::process::Output {
    curl_command(setup, path_and_auth).output().unwrap()
}

/// The command [`curl`] runs, for a test to start and stop itself.
fn curl_command(setup: &common::Setup, path_and_auth: &[&str]) -> Command {
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "--fail-with-body",
        "--resolve",
        &format!("localhost:{}:127.0.0.1", setup.port),
        "--cacert",
    ])
    .arg(setup.path("server.pem"))
    .args(path_and_auth);
    curl
}

#[test]
fn the_token_lifetime_policy_bounds_every_new_token() {
    let setup = common::Setup::new();
    let server = setup.serve_with(&[("FIPSGUARD_MAX_TOKEN_TTL_SECS", "3600")]);
    let create = |body: &str| {
        let output = curl(
            &setup,
            &[
                "-H",
                &format!("Authorization: Bearer {}", setup.officer),
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
                &format!("{}/v1/tokens", setup.url()),
            ],
        );
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        (output.status.success(), answer)
    };
    let (created, answer) = create(r#"{"role": "auditor"}"#);
    assert!(created, "{answer}");
    let info = &answer["info"];
    let lifetime = info["expires_at"].as_i64().unwrap() - info["created_at"].as_i64().unwrap();
    assert_eq!(lifetime, 3600, "asked for none, given the longest: {info}");
    let (created, answer) = create(r#"{"role": "auditor", "ttl_secs": 3601}"#);
    assert!(!created, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_token_ttl_secs"), "{message}");
    server.stop();
}

#[test]
fn settings_out_of_range_are_refused_before_the_store_is_opened() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = dir.path().join("fipsguard.toml");
    let store = dir.path().join("fipsguard.db");
    let root_key = dir.path().join("absent").join("root.key");
    let audit = dir.path().join("audit");
    std::fs::write(
        &config,
        format!(
            "idle_timeout_secs = 0\n[tls]\ncert = {root_key:?}\nkey = {root_key:?}\n[store]\nsqlite = {store:?}\n[root_key]\nfile = {root_key:?}\n[audit]\ndir = {audit:?}\n"
        ),
    )
    .unwrap();
    let run = |command: &str, env: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_fipsguard"))
            .args([command, "--config"])
            .arg(&config)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let serve = |env: &[(&str, &str)]| run("serve", env);
    let idle = |secs| ("FIPSGUARD_IDLE_TIMEOUT_SECS", secs);
    let max_token_ttl = |secs| ("FIPSGUARD_MAX_TOKEN_TTL_SECS", secs);
    let idle_range = "idle_timeout_secs must be 1 to 86400";
    let ttl_range = "max_token_ttl_secs must be 60 to 31622400";
    let per_version = |count| ("FIPSGUARD_MAX_ENCRYPTIONS_PER_VERSION", count);
    let per_version_range = "max_encryptions_per_version must be 1 to 4294967296";
    let ipv6_prefix = |bits| ("FIPSGUARD_CLIENT_IPV6_PREFIX", bits);
    let ipv6_prefix_range = "client_ipv6_prefix must be 32 to 128";
    for (env, refusal) in [
        (&[][..], idle_range),
        (&[idle("soon")], "FIPSGUARD_IDLE_TIMEOUT_SECS"),
        (&[idle("18446744073709551615")], idle_range),
        (&[idle("30"), max_token_ttl("59")], ttl_range),
        (&[idle("30"), max_token_ttl("31622401")], ttl_range),
        (
            &[idle("30"), max_token_ttl("90d")],
            "FIPSGUARD_MAX_TOKEN_TTL_SECS",
        ),
        (&[idle("30"), per_version("0")], per_version_range),
        (&[idle("30"), per_version("4294967297")], per_version_range),
        (
            &[idle("30"), per_version("-1")],
            "FIPSGUARD_MAX_ENCRYPTIONS_PER_VERSION",
        ),
        (&[idle("30"), ipv6_prefix("31")], ipv6_prefix_range),
        (&[idle("30"), ipv6_prefix("129")], ipv6_prefix_range),
        (
            &[idle("30"), ipv6_prefix("/64")],
            "FIPSGUARD_CLIENT_IPV6_PREFIX",
        ),
    ] {
        let (code, stderr) = serve(env);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(refusal), "{env:?}: {stderr}");
        assert!(!store.exists(), "refused before the store is opened");
    }
    let text = std::fs::read_to_string(&config).unwrap();
    let store_range = "[store] timeout_secs must be 1 to 300";
    for (setting, refusal) in [
        ("timeout_secs = 0", store_range),
        ("timeout_secs = 301", store_range),
        ("pool_size = 0", "[store] pool_size must be at least 1"),
    ] {
        let with_setting = text.replace("[store]\n", &format!("[store]\n{setting}\n"));
        std::fs::write(&config, with_setting).unwrap();
        let (code, stderr) = serve(&[idle("30")]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(refusal), "{setting}: {stderr}");
        assert!(!store.exists(), "refused before the store is opened");
    }
    std::fs::write(&config, &text).unwrap();
    let (code, stderr) = serve(&[
        idle("30"),
        max_token_ttl("3600"),
        per_version("4294967296"),
        ipv6_prefix("128"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        !stderr.contains("idle_timeout")
            && !stderr.contains("max_token")
            && !stderr.contains("max_encryptions")
            && !stderr.contains("client_ipv6_prefix")
            && stderr.contains("root.key"),
        "the overrides replace the file's 0; the next refusal is the missing root key: {stderr}"
    );

    // `init` refuses the same settings before it creates the root key file.
    let root_key = dir.path().join("root.key");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("absent/", "")).unwrap();
    for (env, refusal) in [
        (&[][..], idle_range),
        (&[idle("30"), max_token_ttl("59")], ttl_range),
    ] {
        let (code, stderr) = run("init", env);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(refusal), "{env:?}: {stderr}");
        assert!(!root_key.exists(), "init created no root key file");
    }
}

/// A setup on PostgreSQL whose store calls are given up after a second.
fn on_postgres_with_a_store_deadline_of_a_second() -> Option<(common::Setup, common::Schema)> {
    let (setup, schema) = common::Setup::on_postgres()?;
    setup.set("store", "timeout_secs = 1");
    Some((setup, schema))
}

/// While the store does not answer (its settings table held by a lock),
/// no one can tell whether its root key is still this node's: health says
/// `null` rather than `true`, and the gauge keeps the value last known.
#[test]
fn health_does_not_call_the_root_key_current_while_the_store_is_silent() {
    let Some((setup, schema)) = on_postgres_with_a_store_deadline_of_a_second() else {
        return;
    };
    let _server = setup.serve();
    let health = || -> serde_json::Value {
        let url = format!("{}/v1/health", setup.url());
        let output = curl(&setup, &["--max-time", "30", &url]);
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let answer = health();
    assert_eq!(answer["root_key_current"], true, "{answer}");
    assert_eq!(series(&setup, "fipsguard_root_key_available"), 1.0);

    let lock = common::TableLock::take(&schema, "settings");
    common::wait_until(Duration::from_secs(20), "the store found silent", || {
        health()["store_reachable"] == false
    });
    let answer = health();
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(
        answer.get("root_key_current"),
        Some(&json!(null)),
        "{answer}"
    );
    assert_eq!(series(&setup, "fipsguard_store_reachable"), 0.0);
    assert_eq!(series(&setup, "fipsguard_root_key_available"), 1.0);
    lock.release();
    common::wait_until(Duration::from_secs(20), "the store answers again", || {
        health()["root_key_current"] == true
    });
}

/// With `[store] timeout_secs = 1` on PostgreSQL, a request whose store
/// read is held by a locked table is answered `503 store_unavailable` at
/// about that deadline, not for as long as the lock is held; the server
/// log names the setting; once the table is free the same request
/// succeeds (the cancelled read left its connection fit for use).
#[test]
fn a_request_held_by_a_locked_table_is_answered_at_the_store_deadline() {
    let Some((setup, schema)) = on_postgres_with_a_store_deadline_of_a_second() else {
        return;
    };
    let server = setup.serve();
    let auth = format!("Authorization: Bearer {}", setup.officer);
    let tokens = format!("{}/v1/tokens", setup.url());
    let list = || {
        let asked = std::time::Instant::now();
        let output = curl(&setup, &["--max-time", "30", "-H", &auth, &tokens]);
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        (answer, asked.elapsed())
    };
    let (answer, _) = list();
    assert!(answer.is_array(), "{answer}");

    let lock = common::TableLock::take(&schema, "tokens");
    let (answer, waited) = list();
    assert_eq!(answer["error"]["code"], "store_unavailable", "{answer}");
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(5)).contains(&waited),
        "answered after {waited:?}"
    );
    common::wait_until(Duration::from_secs(5), "the deadline logged", || {
        server
            .log()
            .lines()
            .any(|line| line.contains("store_unavailable") && line.contains("[store] timeout_secs"))
    });
    lock.release();
    let (answer, waited) = list();
    assert!(answer.is_array(), "{answer}");
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
}
