//! The client CLI run as a user runs it, against a real server over TLS:
//! key and token management, the data commands, where settings come from,
//! `selftest --remote`, and envelope encryption of files.

mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, Setup, FIPSGUARD};
use fipsguard_core::file_format::DEFAULT_CHUNK_SIZE;
use serde_json::Value;

const CHUNK: usize = DEFAULT_CHUNK_SIZE as usize;
/// IV, tag.
const RECORD: usize = 12 + CHUNK + 16;

/// A server and the client's settings for it.
struct Fixture {
    setup: Setup,
    server: Option<Server>,
    home: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self::with_server_env(&[])
    }

    fn with_server_env(env: &[(&str, &str)]) -> Self {
        Self::serving(Setup::new(), env)
    }

    fn serving(setup: Setup, env: &[(&str, &str)]) -> Self {
        let server = Some(setup.serve_with(env));
        Self {
            setup,
            server,
            home: tempfile::TempDir::new().unwrap(),
        }
    }

    /// `fipsguard ARGS` with the server's address and CA in the
    /// environment, `token` as the token, and `stdin` as its input.
    fn run(&self, token: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut command = self.command(args);
        command.env("FIPSGUARD_TOKEN", token);
        run_with_stdin(command, stdin)
    }

    /// The command with no token and no configuration file of the user's.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(FIPSGUARD);
        command.args(args);
        self.client_env(&mut command);
        command
    }

    /// The server's address and CA; no token, no configuration file.
    fn client_env(&self, command: &mut Command) {
        command
            .env("FIPSGUARD_ADDR", self.setup.url())
            .env("FIPSGUARD_CACERT", self.setup.path("server.pem"))
            .env("HOME", self.home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("FIPSGUARD_TOKEN")
            .env_remove("FIPSGUARD_CLIENT_CONFIG");
    }

    /// Runs as the officer and returns the JSON answer; fails the test on
    /// a non-zero exit.
    fn officer_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.run(&self.setup.officer, &args, b"");
        assert_ok(&output);
        serde_json::from_slice(&output.stdout).expect("JSON output")
    }

    /// A user token granted `operations` on keys matching `keys`.
    fn user(&self, keys: &str, operations: &str) -> String {
        let grant = format!("{keys}:{operations}");
        let created = self.officer_json(&["token", "create", "--role", "user", "--grant", &grant]);
        created["token"].as_str().unwrap().to_owned()
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.setup.path(name)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
    }
}

fn run_with_stdin(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_ok(output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

/// Exit 1 with one `fipsguard: …` line that says `why`, and nothing that
/// looks like a Rust debug dump.
fn assert_refused(output: &Output, why: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.starts_with("fipsguard: "), "{err}");
    assert!(err.contains(why), "expected {why:?} in {err}");
    for dump in ["Error {", "Server {", "kind:", "Os {", "panicked"] {
        assert!(!err.contains(dump), "a debug dump: {err}");
    }
}

#[test]
fn keys_walk_their_lifecycle_and_tokens_are_managed_from_the_cli() {
    let f = Fixture::new();
    let created = f.officer_json(&["key", "create", "payments", "--rotate-every", "90d"]);
    assert_eq!(created["state"], "active");
    assert_eq!(created["rotate_every_secs"], 90 * 86400);
    let pre = f.officer_json(&[
        "key",
        "create",
        "later",
        "--type",
        "ecdsa-p256",
        "--pre-active",
    ]);
    assert_eq!(pre["state"], "pre-active");
    assert_eq!(
        f.officer_json(&["key", "activate", "later"])["state"],
        "active"
    );

    let listed = f.officer_json(&["key", "list"]);
    let names: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"payments") && names.contains(&"later"),
        "{names:?}"
    );
    let table = f.run(&f.setup.officer, &["key", "list"], b"");
    assert_ok(&table);
    let row = stdout(&table)
        .lines()
        .find(|l| l.starts_with("payments "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no row: {}", stdout(&table)));
    assert!(
        row.contains("aes256-gcm") && row.contains("active"),
        "{row}"
    );

    assert_eq!(
        f.officer_json(&["key", "rotate", "payments"])["latest_version"],
        2
    );
    let configured =
        f.officer_json(&["key", "config", "payments", "--min-decryption-version", "2"]);
    assert_eq!(configured["min_decryption_version"], 2);
    assert_eq!(
        f.officer_json(&["key", "show", "payments"])["latest_version"],
        2
    );
    assert_eq!(
        f.officer_json(&["key", "deactivate", "payments"])["state"],
        "deactivated"
    );
    assert_eq!(
        f.officer_json(&["key", "compromise", "payments"])["state"],
        "compromised"
    );
    let scheduled = f.officer_json(&["key", "destroy", "payments", "--days", "3"]);
    assert!(scheduled["destroy_at"].is_i64(), "{scheduled}");
    let cancelled = f.officer_json(&["key", "cancel-destroy", "payments"]);
    assert!(cancelled["destroy_at"].is_null(), "{cancelled}");
    assert_eq!(
        f.officer_json(&["key", "destroy", "payments", "--now"])["state"],
        "destroyed"
    );

    // Refusals come back with the server's code and message, exit 1.
    let again = f.run(&f.setup.officer, &["key", "create", "later"], b"");
    assert_refused(&again, "(HTTP 409)");
    let bad_name = f.run(&f.setup.officer, &["key", "show", ".."], b"");
    assert_eq!(bad_name.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&bad_name).contains("key names are"),
        "{}",
        stderr(&bad_name)
    );

    // Tokens: create (shown once), list (never the secret), revoke.
    let created = f.officer_json(&[
        "token",
        "create",
        "--role",
        "user",
        "--grant",
        "later:sign,verify",
        "--ttl",
        "1h",
        "--description",
        "ci signer",
    ]);
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["info"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["info"]["grants"][0]["keys"], "later");
    let listed = f.run(&f.setup.officer, &["token", "list", "--json"], b"");
    assert_ok(&listed);
    assert!(stdout(&listed).contains(&id));
    assert!(
        !stdout(&listed).contains(&token),
        "a listing shows no secret"
    );
    assert_ok(&f.run(&token, &["sign", "--key", "later"], b"release"));
    // The holder sees its own token's description, never the secret (the
    // role matrix covers the other roles).
    let own = f.run(&token, &["token", "self", "--json"], b"");
    assert_ok(&own);
    let own: serde_json::Value = serde_json::from_slice(&own.stdout).unwrap();
    assert_eq!(own, created["info"], "the caller's own description");
    // A whole token given as the id is refused without being repeated.
    let pasted = f.run(&f.setup.officer, &["token", "revoke", &token], b"");
    assert!(!pasted.status.success());
    let secret = token.rsplit('.').next().unwrap();
    assert!(!stderr(&pasted).contains(secret), "{}", stderr(&pasted));
    assert_ok(&f.run(&f.setup.officer, &["token", "revoke", &id], b""));
    let revoked = f.run(&token, &["sign", "--key", "later"], b"release");
    assert_refused(&revoked, "unauthenticated");
    assert!(
        !stderr(&revoked).contains(&token),
        "the token is never echoed"
    );

    // Any holder may end its own token; it stops working at once.
    let job = f.user("later", "sign");
    let ended = f.run(&job, &["token", "revoke", "--self", "--json"], b"");
    assert_ok(&ended);
    let ended: serde_json::Value = serde_json::from_slice(&ended.stdout).unwrap();
    assert!(ended["revoked_at"].is_number(), "{ended}");
    assert_refused(&f.run(&job, &["token", "self"], b""), "unauthenticated");
    // The only officer token does not end itself: no other could be made.
    let last = f.run(&f.setup.officer, &["token", "revoke", "--self"], b"");
    assert_refused(&last, "last_officer_token");
    assert_ok(&f.run(&f.setup.officer, &["token", "self"], b""));

    // Usage errors are exit 2, before anything is sent.
    let usage = f.run(&f.setup.officer, &["key", "create"], b"");
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
    let grant = f.run(
        &f.setup.officer,
        &["token", "create", "--role", "user", "--grant", "nocolon"],
        b"",
    );
    assert_eq!(grant.status.code(), Some(2), "{}", stderr(&grant));
    let neither = f.run(&f.setup.officer, &["token", "revoke"], b"");
    assert_eq!(neither.status.code(), Some(2), "{}", stderr(&neither));
}

/// A server busy with token lookups (a flood of guessed tokens while its
/// store is slow, so that a token new to it waits for a turn in vain)
/// refuses as busy, 429 with `Retry-After`; the CLI waits as asked and
/// sends the request again, and gets its answer once the server can take
/// it. On PostgreSQL, where another connection can keep the token lookups
/// waiting.
#[test]
fn the_cli_tries_a_busy_server_again() {
    let Some((setup, schema)) = Setup::on_postgres() else {
        return;
    };
    // The lock below outlasts no read: guesses keep their turns.
    setup.set("store", "timeout_secs = 120");
    let mut f = Fixture::serving(setup, &[]);
    f.officer_json(&["key", "create", "app"]);
    let user = f.user("app", "encrypt");
    // Restarted, the server has seen no token yet.
    f.server.take().unwrap().stop();
    f.server = Some(f.setup.serve());
    let logged = |route: &str, status: u16| {
        let (route, status) = (
            format!(r#""route":"{route}""#),
            format!(r#""status":{status}"#),
        );
        let log = f.server.as_ref().unwrap().log();
        log.lines()
            .filter(|l| l.contains(&route) && l.contains(&status))
            .count()
    };
    let encrypt = "/v1/keys/{name}/encrypt";

    // Another connection keeps everyone out of the tokens table until
    // released.
    let lock = common::TableLock::take(&schema, "tokens");
    // 24 guesses: 4 (a quarter of the pool's 16 connections) wait for the
    // store, the rest are refused as busy once every turn is taken.
    let _guesses = Children(
        (0..24)
            .map(|i| {
                let guess = format!("Authorization: Bearer fgt.{i:016x}.{}", "A".repeat(43));
                Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "--max-time", "30", "--cacert"])
                    .arg(f.path("server.pem"))
                    .args([
                        "--resolve",
                        &format!("localhost:{}:127.0.0.1", f.setup.port),
                    ])
                    .args(["-H", &guess, &format!("{}/v1/keys", f.setup.url())])
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    common::wait_until(Duration::from_secs(10), "every turn taken", || {
        logged("/v1/keys", 429) >= 8
    });
    let sealed = std::thread::scope(|scope| {
        let cli = scope.spawn(|| f.run(&user, &["encrypt-data", "--key", "app"], b"while busy"));
        common::wait_until(Duration::from_secs(10), "the CLI refused as busy", || {
            logged(encrypt, 429) >= 1
        });
        lock.release();
        cli.join().unwrap()
    });
    assert_ok(&sealed);
    assert!(stdout(&sealed).starts_with("fg:v1:"), "{}", stdout(&sealed));
    common::wait_until(Duration::from_secs(10), "the answer logged", || {
        logged(encrypt, 200) == 1
    });
}

/// Child processes a test started, stopped if it fails before they end.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn data_commands_round_trip_and_refuse_by_rule() {
    let f = Fixture::new();
    f.officer_json(&["key", "create", "app"]);
    f.officer_json(&["key", "create", "signer", "--type", "ecdsa-p384"]);
    f.officer_json(&["key", "create", "tags", "--type", "hmac-sha256"]);
    let user = f.user("*", "encrypt,decrypt,sign,verify,mac");

    let sealed = f.run(
        &user,
        &["encrypt-data", "--key", "app", "--context", "tenant=7"],
        b"card 4111",
    );
    assert_ok(&sealed);
    let ciphertext = stdout(&sealed).trim().to_owned();
    assert!(ciphertext.starts_with("fg:v1:"), "{ciphertext}");
    let opened = f.run(
        &user,
        &[
            "decrypt-data",
            "--key",
            "app",
            "--context",
            "tenant=7",
            &ciphertext,
        ],
        b"",
    );
    assert_ok(&opened);
    assert_eq!(opened.stdout, b"card 4111");
    let from_stdin = f.run(
        &user,
        &["decrypt-data", "--key", "app", "--context", "tenant=7", "-"],
        ciphertext.as_bytes(),
    );
    assert_eq!(from_stdin.stdout, b"card 4111");
    let wrong = f.run(
        &user,
        &[
            "decrypt-data",
            "--key",
            "app",
            "--context",
            "tenant=8",
            &ciphertext,
        ],
        b"",
    );
    assert_refused(&wrong, "ciphertext_context_mismatch");
    assert!(wrong.stdout.is_empty());

    // A message signed here verifies; a changed one does not (exit 1).
    let message = f.path("release.tar");
    std::fs::write(&message, vec![7u8; 3 << 20]).unwrap();
    let message = message.to_str().unwrap();
    let signed = f.run(
        &user,
        &[
            "sign", "--key", "signer", "--hash", "sha-384", message, "--json",
        ],
        b"",
    );
    assert_ok(&signed);
    let signed: Value = serde_json::from_slice(&signed.stdout).unwrap();
    let signature = signed["signature"].as_str().unwrap();
    let verify = |path: &str| {
        f.run(
            &user,
            &[
                "verify",
                "--key",
                "signer",
                "--hash",
                "sha-384",
                "--signature",
                signature,
                "--version",
                "1",
                path,
            ],
            b"",
        )
    };
    let valid = verify(message);
    assert_ok(&valid);
    assert_eq!(stdout(&valid).trim(), "valid");
    let other = f.path("other.tar");
    std::fs::write(&other, b"something else").unwrap();
    let invalid = verify(other.to_str().unwrap());
    assert_eq!(invalid.status.code(), Some(1));
    assert_eq!(stdout(&invalid).trim(), "INVALID");
    // The same verdicts as JSON, with the same exit codes.
    let json_invalid = f.run(
        &user,
        &[
            "verify",
            "--key",
            "signer",
            "--hash",
            "sha-384",
            "--signature",
            signature,
            "--version",
            "1",
            other.to_str().unwrap(),
            "--json",
        ],
        b"",
    );
    assert_eq!(json_invalid.status.code(), Some(1));
    let verdict: Value = serde_json::from_slice(&json_invalid.stdout).unwrap();
    assert_eq!(verdict["valid"], false);
    let json_valid = f.run(
        &user,
        &[
            "verify",
            "--key",
            "signer",
            "--hash",
            "sha-384",
            "--signature",
            signature,
            "--version",
            "1",
            message,
            "--json",
        ],
        b"",
    );
    assert_ok(&json_valid);
    let too_big = f.run(&user, &["sign", "--key", "signer", message], b"");
    assert_refused(&too_big, "--hash to sign a digest");
    let md5 = f.run(
        &user,
        &["sign", "--key", "signer", "--hash", "md5", message],
        b"",
    );
    assert_eq!(
        md5.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&md5)
    );
    let context = f.run(
        &user,
        &["encrypt-data", "--key", "app", "--context", "novalue"],
        b"x",
    );
    assert_eq!(context.status.code(), Some(2), "{}", stderr(&context));
    assert!(stderr(&context).contains("--context takes key=value"));
    // Above the server's plaintext limit: refused here, nothing sent.
    let large = f.run(
        &user,
        &["encrypt-data", "--key", "app"],
        &[b'x'; 64 * 1024 + 1],
    );
    assert_eq!(large.status.code(), Some(1), "{}", stderr(&large));
    assert!(
        stderr(&large).contains("larger than 64 KiB"),
        "{}",
        stderr(&large)
    );
    let most = f.run(&user, &["encrypt-data", "--key", "app"], &[b'x'; 64 * 1024]);
    assert_ok(&most);

    let tag = f.run(&user, &["mac", "--key", "tags", "--json"], b"payload");
    assert_ok(&tag);
    let tag: Value = serde_json::from_slice(&tag.stdout).unwrap();
    assert_eq!(tag["version"], 1);
    let random = f.run(&user, &["random", "32"], b"");
    assert_ok(&random);
    assert_eq!(stdout(&random).trim().len(), 44, "32 bytes in base64");

    // Refused by role: the officer holds no data keys.
    let officer = f.run(&f.setup.officer, &["encrypt-data", "--key", "app"], b"x");
    assert_refused(&officer, "forbidden");
}

#[test]
fn settings_come_from_flags_the_environment_or_a_configuration_file() {
    let f = Fixture::new();
    f.officer_json(&["key", "create", "app"]);
    let user = f.user("app", "encrypt");
    let token_file = f.path("user.token");
    std::fs::write(&token_file, format!("{user}\n")).unwrap();
    let config = f.path("client.toml");
    std::fs::write(
        &config,
        format!(
            "addr = {:?}\ncacert = {:?}\ntoken_file = {:?}\n",
            f.setup.url(),
            f.setup.path("server.pem"),
            token_file
        ),
    )
    .unwrap();

    // Only the file: address, CA and token all come from it.
    let mut command = Command::new(FIPSGUARD);
    command
        .args(["random", "16", "--client-config"])
        .arg(&config)
        .env("HOME", f.home.path())
        .env_remove("FIPSGUARD_ADDR")
        .env_remove("FIPSGUARD_CACERT")
        .env_remove("FIPSGUARD_TOKEN");
    assert_ok(&run_with_stdin(command, b""));

    // The default file under ~/.config is read too.
    let default = f.home.path().join(".config/fipsguard");
    std::fs::create_dir_all(&default).unwrap();
    std::fs::copy(&config, default.join("client.toml")).unwrap();
    let mut command = Command::new(FIPSGUARD);
    command
        .args(["random", "16"])
        .env("HOME", f.home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("FIPSGUARD_ADDR")
        .env_remove("FIPSGUARD_CACERT")
        .env_remove("FIPSGUARD_TOKEN");
    assert_ok(&run_with_stdin(command, b""));

    // The environment wins over the file, and a flag over the environment.
    let mut command = f.command(&["random", "16"]);
    command.env("FIPSGUARD_TOKEN", "fgt.0000000000000000.wrong");
    assert_refused(&run_with_stdin(command, b""), "unauthenticated");
    let mut command = f.command(&["random", "16", "--token", &user]);
    command.env("FIPSGUARD_TOKEN", "fgt.0000000000000000.wrong");
    assert_ok(&run_with_stdin(command, b""));

    // A CA that did not sign the server fails the handshake, named.
    let other_ca = f.path("other.pem");
    common::make_certificate(&other_ca, &f.path("other.key"));
    let output = f.run(
        &user,
        &["random", "16", "--cacert", other_ca.to_str().unwrap()],
        b"",
    );
    assert_refused(&output, "cannot reach");
    let plain = f.run(
        &user,
        &["random", "16", "--addr", "http://127.0.0.1:1"],
        b"",
    );
    assert_refused(&plain, "https:// URL");
    let broken = f.path("broken.toml");
    std::fs::write(&broken, "addr = 7\n").unwrap();
    let output = f.run(
        &user,
        &["random", "16", "--client-config", broken.to_str().unwrap()],
        b"",
    );
    assert_refused(&output, "broken.toml");
}

#[test]
fn selftest_remote_runs_the_servers_suite_and_reports_its_failure() {
    // The server passes power-up (run 1) and fails the first run after it.
    let f = Fixture::with_server_env(&[("FIPSGUARD_FAULT_INJECT", "hmac-sha-256@3")]);
    let user = f.user("*", "encrypt");
    let refused = f.run(&user, &["selftest", "--remote"], b"");
    assert_refused(&refused, "forbidden");

    let first = f.run(&f.setup.officer, &["selftest", "--remote"], b"");
    assert_ok(&first);
    let text = stdout(&first);
    for name in fipsguard_crypto::selftest::test_names() {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name) && l.contains(" pass ")),
            "no passing line for {name}: {text}"
        );
    }
    assert!(text.contains("CMVP #5314"), "{text}");

    let failed = f.run(&f.setup.officer, &["selftest", "--remote", "--json"], b"");
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("the server's self-tests failed"));
    let report: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(report["passed"], false, "{report}");
    let results = report["report"]["results"].as_array();
    let hmac = results
        .unwrap_or_else(|| panic!("no results: {report}"))
        .iter()
        .find(|r| r["name"] == "hmac-sha-256");
    let hmac = hmac.unwrap_or_else(|| panic!("no hmac result: {report}"));
    assert_eq!(hmac["passed"], false, "{report}");
    // From now on the server refuses service.
    let after = f.run(&user, &["encrypt-data", "--key", "any"], b"x");
    assert_refused(&after, "(HTTP 503)");
}

/// A file of `len` bytes, not all alike.
fn make_file(path: &Path, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(path, data).unwrap();
}

#[test]
fn files_round_trip_at_every_chunk_boundary_and_through_pipes() {
    let f = Fixture::new();
    f.officer_json(&["key", "create", "files"]);
    let user = f.user("files", "datakey,decrypt");
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345] {
        let plain = f.path(&format!("plain-{len}"));
        let sealed = f.path(&format!("sealed-{len}"));
        let opened = f.path(&format!("opened-{len}"));
        make_file(&plain, len);
        let enc = f.run(
            &user,
            &[
                "encrypt",
                "--key",
                "files",
                "--context",
                "dept=hr",
                plain.to_str().unwrap(),
                sealed.to_str().unwrap(),
            ],
            b"",
        );
        assert_ok(&enc);
        let size = std::fs::metadata(&sealed).unwrap().len() as usize;
        let chunks = len.div_ceil(CHUNK).max(1);
        assert!(size > len + chunks * 28, "{len}: {size}");
        let dec = f.run(
            &user,
            &[
                "decrypt",
                sealed.to_str().unwrap(),
                opened.to_str().unwrap(),
            ],
            b"",
        );
        assert_ok(&dec);
        assert_eq!(
            std::fs::read(&opened).unwrap(),
            std::fs::read(&plain).unwrap(),
            "{len}"
        );
    }

    // stdin to stdout, both ways.
    let data: Vec<u8> = (0..2 * CHUNK + 5).map(|i| (i % 256) as u8).collect();
    let sealed = f.run(&user, &["encrypt", "--key", "files", "-", "-"], &data);
    assert_ok(&sealed);
    assert!(sealed.stdout.starts_with(b"FGFILE\x01"));
    let opened = f.run(&user, &["decrypt", "-", "-"], &sealed.stdout);
    assert_ok(&opened);
    assert!(opened.stdout == data, "stdin/stdout round trip");

    // The data key is opened only with the context it was made under.
    let plain = f.path("plain-1");
    let sealed = f.path("sealed-1");
    let out = f.path("wrong-context");
    let wrong = f.run(
        &user,
        &[
            "decrypt",
            "--context",
            "dept=it",
            sealed.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        b"",
    );
    assert_refused(&wrong, "ciphertext_context_mismatch");
    assert!(!out.exists());
    let right = f.run(
        &user,
        &[
            "decrypt",
            "--context",
            "dept=hr",
            sealed.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        b"",
    );
    assert_ok(&right);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&plain).unwrap());

    // Without a datakey grant there is no file encryption.
    let reader = f.user("files", "decrypt");
    let refused = f.run(
        &reader,
        &[
            "encrypt",
            "--key",
            "files",
            plain.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        b"",
    );
    assert_refused(&refused, "forbidden");
}

#[test]
fn outputs_are_their_owners_alone_unless_they_replace_a_file() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    f.officer_json(&["key", "create", "files"]);
    let user = f.user("files", "datakey,decrypt");
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    let (plain, sealed, opened) = (f.path("plain"), f.path("sealed"), f.path("opened"));
    make_file(&plain, CHUNK + 1);
    let args = |verb, input: &Path, output: &Path| {
        let mut args = vec![verb];
        if verb == "encrypt" {
            args.extend(["--key", "files"]);
        }
        args.extend([input.to_str().unwrap(), output.to_str().unwrap()]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |token: &str, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        f.run(token, &args, b"")
    };
    assert_ok(&run(&user, args("encrypt", &plain, &sealed)));
    assert_eq!(mode(&sealed), 0o600, "a new output is its owner's alone");

    // A file it replaces keeps its permissions.
    std::fs::write(&opened, b"old").unwrap();
    std::fs::set_permissions(&opened, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_ok(&run(&user, args("decrypt", &sealed, &opened)));
    assert_eq!(
        std::fs::read(&opened).unwrap(),
        std::fs::read(&plain).unwrap()
    );
    assert_eq!(mode(&opened), 0o640);

    // In place: the input is read whole before it is replaced.
    assert_ok(&run(&user, args("encrypt", &opened, &opened)));
    assert!(std::fs::read(&opened).unwrap().starts_with(b"FGFILE"));
    assert_ok(&run(&user, args("decrypt", &opened, &opened)));
    assert_eq!(
        std::fs::read(&opened).unwrap(),
        std::fs::read(&plain).unwrap()
    );

    // A missing input is found before the server is asked for a data key:
    // a token that may not have one hears of the path, not of its grant.
    let reader = f.user("files", "decrypt");
    let missing = run(&reader, args("encrypt", &f.path("missing"), &sealed));
    assert_refused(&missing, "cannot open");
    assert!(
        !stderr(&missing).contains("forbidden"),
        "{}",
        stderr(&missing)
    );
}

/// Where each chunk record starts in an encrypted file.
fn records(sealed: &[u8]) -> (usize, Vec<usize>) {
    let header = 11 + u32::from_be_bytes(sealed[7..11].try_into().unwrap()) as usize;
    let starts = (header..sealed.len()).step_by(RECORD).collect();
    (header, starts)
}

#[test]
fn an_interrupted_encryption_leaves_no_output() {
    let f = Fixture::new();
    f.officer_json(&["key", "create", "files"]);
    let user = f.user("files", "datakey");
    let dir = tempfile::TempDir::new().unwrap();
    let leftovers = || -> Vec<_> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect()
    };
    // Starts `encrypt` through `launcher`, feeds it chunks until its
    // temporary file exists (stdin stays open), then sends it `sig`.
    let interrupt = |launcher: &[&str], out: &str, sig: &str| {
        let out = dir.path().join(out);
        let mut command = Command::new(launcher[0]);
        command.args(&launcher[1..]).arg(FIPSGUARD);
        command.args(["encrypt", "--key", "files", "-", out.to_str().unwrap()]);
        f.client_env(&mut command);
        let mut child = command
            .env("FIPSGUARD_TOKEN", &user)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(&vec![7u8; 3 * CHUNK]).unwrap();
        common::wait_until(Duration::from_secs(20), "no output file appeared", || {
            !leftovers().is_empty()
        });
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
        (child, input)
    };
    let exit_of = |mut child: std::process::Child| {
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("still running 20 s after the signal");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Whatever the test runner ignores, the command starts with the
    // default dispositions a shell gives a foreground job.
    let foreground = ["env", "--default-signal=INT,TERM,HUP"];
    for (sig, signo) in [("-INT", 2), ("-TERM", 15), ("-HUP", 1)] {
        let (child, input) = interrupt(&foreground, "out.fg", sig);
        let status = exit_of(child);
        // It dies of the signal, as a program without cleanup would.
        assert_eq!(status.signal(), Some(signo), "{sig}: {status}");
        assert!(leftovers().is_empty(), "{sig} left {:?}", leftovers());
        drop(input);
    }

    // Started with SIGHUP ignored (nohup), it stays ignored: the run goes on.
    let (child, mut input) = interrupt(&["nohup"], "kept.fg", "-HUP");
    input.write_all(&vec![7u8; CHUNK]).unwrap();
    drop(input);
    let status = exit_of(child);
    assert!(status.success(), "{status}");
    assert_eq!(leftovers(), vec![std::ffi::OsString::from("kept.fg")]);
}

#[test]
fn tampered_files_are_refused_and_leave_no_output() {
    let f = Fixture::new();
    f.officer_json(&["key", "create", "files"]);
    let user = f.user("files", "datakey,decrypt");
    let seal = |name: &str, len: usize| -> Vec<u8> {
        let plain = f.path(&format!("{name}.plain"));
        let sealed = f.path(&format!("{name}.fg"));
        make_file(&plain, len);
        assert_ok(&f.run(
            &user,
            &[
                "encrypt",
                "--key",
                "files",
                plain.to_str().unwrap(),
                sealed.to_str().unwrap(),
            ],
            b"",
        ));
        std::fs::read(sealed).unwrap()
    };
    let good = seal("good", 3 * CHUNK + 100);
    let other = seal("other", 3 * CHUNK + 100);
    let (header, starts) = records(&good);
    assert_eq!(starts.len(), 4);
    let record =
        |file: &[u8], i: usize| file[starts[i]..(starts[i] + RECORD).min(file.len())].to_vec();
    let join = |parts: &[Vec<u8>]| parts.concat();
    let head = good[..header].to_vec();

    let mut flipped = good.clone();
    flipped[starts[1] + 500] ^= 1;
    let mut flipped_iv = good.clone();
    flipped_iv[starts[2]] ^= 0x80;
    let mut flipped_tag = good.clone();
    *flipped_tag.last_mut().unwrap() ^= 1;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a flipped ciphertext byte",
            flipped,
            "chunk 1 does not authenticate",
        ),
        (
            "a flipped IV byte",
            flipped_iv,
            "chunk 2 does not authenticate",
        ),
        (
            "a flipped tag byte",
            flipped_tag,
            "chunk 3 does not authenticate",
        ),
        (
            "truncation at a chunk boundary",
            good[..starts[3]].to_vec(),
            "chunk 2 does not authenticate as the last one",
        ),
        (
            "truncation inside the last chunk",
            good[..good.len() - 5].to_vec(),
            "chunk 3 does not authenticate",
        ),
        (
            "truncation to a stub",
            good[..starts[3] + 10].to_vec(),
            "shorter than an IV and a tag",
        ),
        (
            "truncation inside the header",
            good[..header - 3].to_vec(),
            "ends inside the header",
        ),
        (
            "truncation inside the header's first bytes",
            good[..8].to_vec(),
            "ends inside the header",
        ),
        (
            "truncation inside the magic",
            good[..3].to_vec(),
            "ends inside the header",
        ),
        (
            "two chunks swapped",
            join(&[
                head.clone(),
                record(&good, 0),
                record(&good, 2),
                record(&good, 1),
                record(&good, 3),
            ]),
            "chunk 1 does not authenticate",
        ),
        (
            "a chunk duplicated",
            join(&[
                head.clone(),
                record(&good, 0),
                record(&good, 0),
                record(&good, 1),
                record(&good, 2),
                record(&good, 3),
            ]),
            "chunk 1 does not authenticate",
        ),
        (
            "a chunk from another file",
            join(&[
                head.clone(),
                record(&good, 0),
                record(&other, 1),
                record(&good, 2),
                record(&good, 3),
            ]),
            "chunk 1 does not authenticate",
        ),
        (
            "bytes appended",
            join(&[good.clone(), b"more".to_vec()]),
            "chunk 3 does not authenticate",
        ),
        (
            "another file's last chunk appended",
            join(&[good.clone(), record(&other, 3)]),
            "does not authenticate",
        ),
        (
            "an unknown format version",
            {
                let mut v = good.clone();
                v[6] = 9;
                v
            },
            "unknown encrypted file format version 9",
        ),
        (
            "not an encrypted file",
            b"plain text, not sealed".to_vec(),
            "not a fipsguard encrypted file",
        ),
        (
            "another file's header",
            join(&[other[..header].to_vec(), good[header..].to_vec()]),
            "chunk 0 does not authenticate",
        ),
    ];
    for (what, bytes, why) in cases {
        let input = f.path("tampered.fg");
        let output = f.path("tampered.out");
        std::fs::write(&input, &bytes).unwrap();
        let result = f.run(
            &user,
            &["decrypt", input.to_str().unwrap(), output.to_str().unwrap()],
            b"",
        );
        assert_refused(&result, why);
        assert!(!output.exists(), "{what}: no output file");
        let leftovers: Vec<_> = std::fs::read_dir(f.setup.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".fipsguard-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{what}: a temporary file was left behind"
        );
    }

    // A tampered chunk on a stdin that stays open (a stalled producer) is
    // refused at once: the reader waiting for more does not hold the exit.
    let mut tampered = good.clone();
    tampered[starts[1] + 500] ^= 1;
    let output = f.path("stalled.out");
    let mut decrypt = f.command(&["decrypt", "-", output.to_str().unwrap()]);
    let mut child = decrypt
        .env("FIPSGUARD_TOKEN", &user)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut open_stdin = child.stdin.take().unwrap();
    open_stdin.write_all(&tampered).unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
        panic!("decrypt waited for the rest of an input it had already refused");
    }
    let result = child.wait_with_output().unwrap();
    drop(open_stdin);
    assert_refused(&result, "chunk 1 does not authenticate");
    assert!(!output.exists(), "no output file");

    // A key version in the header that is not the wrapped key's own is
    // refused before anything is asked of the server or written.
    let name_len = good[15] as usize;
    let mut reversioned = good.clone();
    reversioned[16 + name_len + 3] ^= 0x02;
    let input = f.path("reversioned.fg");
    std::fs::write(&input, &reversioned).unwrap();
    let result = f.run(&user, &["decrypt", input.to_str().unwrap(), "-"], b"");
    assert_refused(&result, "the key version is not the wrapped key's");
    assert!(result.stdout.is_empty());

    // --key pins the server key: a file under another key is refused
    // before the server is asked to unwrap anything.
    let input = f.path("good.fg");
    std::fs::write(&input, &good).unwrap();
    let result = f.run(
        &user,
        &["decrypt", "--key", "payroll", input.to_str().unwrap(), "-"],
        b"",
    );
    assert_refused(
        &result,
        "encrypted under key \"files\", not \"payroll\" (--key)",
    );
    assert!(result.stdout.is_empty());
    let result = f.run(
        &user,
        &["decrypt", "--key", "files", input.to_str().unwrap(), "-"],
        b"",
    );
    assert_ok(&result);

    // An output that is a link (or a device, or a pipe) would be replaced
    // by the rename, not written to: refused, and left as it was.
    let link = f.path("link.out");
    std::os::unix::fs::symlink(f.path("elsewhere"), &link).unwrap();
    let result = f.run(
        &user,
        &["decrypt", input.to_str().unwrap(), link.to_str().unwrap()],
        b"",
    );
    assert_refused(&result, "is not a regular file");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!f.path("elsewhere").exists());

    // The header's context is bound to the data key: changed in the
    // header, the server refuses to unwrap it.
    let plain = f.path("hr.plain");
    let sealed = f.path("hr.fg");
    make_file(&plain, 100);
    assert_ok(&f.run(
        &user,
        &[
            "encrypt",
            "--key",
            "files",
            "--context",
            "dept=hr",
            plain.to_str().unwrap(),
            sealed.to_str().unwrap(),
        ],
        b"",
    ));
    // --no-context pins the empty context as --context pins others: a file
    // whose header names a context is refused, one without opens.
    let pinned = |file: &Path| {
        let file = file.to_str().unwrap();
        f.run(&user, &["decrypt", "--no-context", file, "-"], b"")
    };
    let result = pinned(&sealed);
    assert_refused(&result, "ciphertext_context_mismatch");
    assert!(result.stdout.is_empty());
    assert_ok(&pinned(&f.path("good.fg")));

    let mut spoofed = std::fs::read(&sealed).unwrap();
    let at = spoofed.windows(4).position(|w| w == b"\x00\x02hr").unwrap();
    spoofed[at + 2..at + 4].copy_from_slice(b"it");
    std::fs::write(&sealed, &spoofed).unwrap();
    let result = f.run(&user, &["decrypt", sealed.to_str().unwrap(), "-"], b"");
    assert_refused(&result, "ciphertext_context_mismatch");
    assert!(
        result.stdout.is_empty(),
        "nothing is written before the key is unwrapped"
    );
}

#[test]
fn files_outlive_rotation_and_die_with_their_key() {
    let f = Fixture::new();
    f.officer_json(&["key", "create", "archive"]);
    let user = f.user("archive", "datakey,decrypt");
    let plain = f.path("ledger.csv");
    make_file(&plain, CHUNK + 3);
    let sealed = f.path("ledger.fg");
    let out = f.path("ledger.out");
    assert_ok(&f.run(
        &user,
        &[
            "encrypt",
            "--key",
            "archive",
            plain.to_str().unwrap(),
            sealed.to_str().unwrap(),
        ],
        b"",
    ));
    f.officer_json(&["key", "rotate", "archive"]);
    f.officer_json(&["key", "rotate", "archive"]);
    assert_ok(&f.run(
        &user,
        &["decrypt", sealed.to_str().unwrap(), out.to_str().unwrap()],
        b"",
    ));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&plain).unwrap());
    std::fs::remove_file(&out).unwrap();

    f.officer_json(&["key", "destroy", "archive", "--now"]);
    let gone = f.run(
        &user,
        &["decrypt", sealed.to_str().unwrap(), out.to_str().unwrap()],
        b"",
    );
    assert_refused(&gone, "destroyed");
    assert!(!out.exists());
}

#[test]
fn a_progress_bar_shows_on_a_terminal_only() {
    let f = Fixture::new();
    f.officer_json(&["key", "create", "big"]);
    let user = f.user("big", "datakey");
    let plain = f.path("big.bin");
    make_file(&plain, 9 << 20);
    let sealed = f.path("big.fg");
    let encrypt = |extra: &str| {
        format!(
            "{FIPSGUARD} encrypt --key big {extra} {} {}",
            plain.display(),
            sealed.display()
        )
    };

    // Not a terminal: nothing on stderr.
    let piped = f.run(
        &user,
        &[
            "encrypt",
            "--key",
            "big",
            plain.to_str().unwrap(),
            sealed.to_str().unwrap(),
        ],
        b"",
    );
    assert_ok(&piped);
    assert!(piped.stderr.is_empty(), "{}", stderr(&piped));

    // A terminal (a pseudo-terminal from script(1)): the bar, in bytes,
    // unless --quiet.
    let on_terminal = |extra: &str| {
        let mut script = Command::new("script");
        f.client_env(&mut script);
        script
            .env("FIPSGUARD_TOKEN", &user)
            .args(["-qec", &encrypt(extra), "/dev/null"]);
        let output = run_with_stdin(script, b"");
        assert_ok(&output);
        stdout(&output)
    };
    let shown = on_terminal("");
    assert!(shown.contains("MiB"), "no progress bar: {shown:?}");
    let quiet = on_terminal("--quiet");
    assert!(!quiet.contains("MiB"), "a bar despite --quiet: {quiet:?}");
}
