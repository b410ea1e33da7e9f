//! Many processes on one store, and processes killed mid-work: what other
//! processes and restarts see. The children are this test binary itself,
//! re-run on its ignored `child` test with a role in the environment.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fipsguard_core::kms::{CreateKey, KmsConfig};
use fipsguard_core::{EncryptionContext, KeyType, Kms, RootKekSource, Store};
use fipsguard_store::{PoolLimits, PostgresStore, SqliteStore};

const ROLE: &str = "FIPSGUARD_TEST_CHILD_ROLE";
const STORE: &str = "FIPSGUARD_TEST_CHILD_STORE";
const KEY_FILE: &str = "FIPSGUARD_TEST_CHILD_KEY_FILE";
const LOG: &str = "FIPSGUARD_TEST_CHILD_LOG";

/// Where a child finds the store: `sqlite:PATH` or `postgres:URL`.
async fn open_store(spec: &str) -> Arc<dyn Store> {
    match spec.split_once(':').expect("kind:location") {
        ("sqlite", path) => Arc::new(SqliteStore::open(Path::new(path)).await.unwrap()),
        ("postgres", url) => Arc::new(
            PostgresStore::connect(
                url,
                PoolLimits {
                    size: 4,
                    timeout: PoolLimits::DEFAULT_TIMEOUT,
                },
            )
            .await
            .unwrap(),
        ),
        (kind, _) => panic!("unknown store kind {kind}"),
    }
}

fn store_spec(backend: &common::Backend) -> String {
    match (backend.sqlite_path(), backend.postgres_url()) {
        (Some(path), _) => format!("sqlite:{}", path.display()),
        (_, Some(url)) => format!("postgres:{url}"),
        _ => unreachable!(),
    }
}

fn spawn_child(role: &str, backend: &common::Backend, log: &Path) -> Child {
    let RootKekSource::KeyFile(key_file) = backend.key_file() else {
        unreachable!()
    };
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(STORE, store_spec(backend))
        .env(KEY_FILE, key_file)
        .env(LOG, log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
#[ignore = "run as a child process by the tests in this file"]
fn child() {
    let role = std::env::var(ROLE).expect("started by a parent test");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = open_store(&std::env::var(STORE).unwrap()).await;
        let root = RootKekSource::KeyFile(std::env::var(KEY_FILE).unwrap().into());
        let kms = Kms::open(store, &root, KmsConfig::default()).await.unwrap();
        match role.as_str() {
            "rotate" => {
                for _ in 0..100 {
                    kms.rotate_key("contended").await.unwrap();
                }
            }
            "work" => work_until_killed(&kms, Path::new(&std::env::var(LOG).unwrap())).await,
            other => panic!("unknown role {other}"),
        }
    });
}

/// Creates, uses and rotates keys forever, logging each operation only
/// after it returned success.
async fn work_until_killed(kms: &Kms, log: &Path) {
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let ctx = EncryptionContext::empty();
    let prefix = common::hex(&fipsguard_crypto::random::bytes(4).unwrap());
    for n in 0u64.. {
        let name = format!("k-{prefix}-{n}");
        kms.create_key(CreateKey::new(&name, KeyType::Aes256Gcm))
            .await
            .unwrap();
        let ciphertext = kms.encrypt(&name, name.as_bytes(), &ctx).await.unwrap();
        log.write_all(format!("created {name} {ciphertext}\n").as_bytes())
            .unwrap();
        let rotated = kms.rotate_key(&name).await.unwrap();
        log.write_all(format!("rotated {name} {}\n", rotated.latest_version).as_bytes())
            .unwrap();
    }
}

/// Operations the log holds whole lines for.
fn logged_lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |text| text.matches('\n').count())
}

/// Checks every logged operation against a freshly opened store; returns
/// how many were checked.
async fn check_log(backend: &common::Backend, log: &Path) -> usize {
    let kms = Kms::open(
        backend.reopen().await,
        &backend.key_file(),
        KmsConfig::default(),
    )
    .await
    .expect("the store opens cleanly");
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // A line without its newline was being written when the kill came.
    let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
    let mut checked = 0;
    for line in complete.lines() {
        match line.split(' ').collect::<Vec<_>>()[..] {
            ["created", name, ciphertext] => {
                let plaintext = kms
                    .decrypt(name, ciphertext, &EncryptionContext::empty())
                    .await
                    .unwrap();
                assert_eq!(plaintext.expose_secret(), name.as_bytes());
            }
            ["rotated", name, version] => {
                let latest = kms.get_key(name).await.unwrap().latest_version;
                assert!(
                    latest >= version.parse().unwrap(),
                    "{name}: rotation to {version} lost"
                );
            }
            _ => panic!("unreadable log line {line:?}"),
        }
        checked += 1;
    }
    checked
}

async fn kill_at_random_moments(backend: common::Backend) {
    let log = backend.dir.path().join("operations.log");
    backend.kms(KmsConfig::default()).await;
    let mut total = 0;
    for round in 0..20 {
        let mut child = spawn_child("work", &backend, &log);
        // Wait for the child's first acknowledged operation, then kill it at
        // a random moment in the next 0-510 ms.
        while logged_lines(&log) <= total {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                panic!(
                    "round {round}: the child exited ({status}) before doing any work: {stderr}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let delay = u64::from(fipsguard_crypto::random::bytes(1).unwrap()[0]) * 2;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(path) = backend.sqlite_path() {
            let connection = rusqlite::Connection::open(path).unwrap();
            let verdict: String = connection
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(verdict, "ok", "round {round}: the database is damaged");
        }
        total = check_log(&backend, &log).await;
    }
    println!(
        "{}: 20 SIGKILLs, {total} acknowledged operations all present and decryptable",
        backend.name
    );
}

async fn two_processes_rotating_one_key(backend: common::Backend) {
    let kms = backend.kms(KmsConfig::default()).await;
    kms.create_key(CreateKey::new("contended", KeyType::Aes256Gcm))
        .await
        .unwrap();
    let log = backend.dir.path().join("unused.log");
    let children = [
        spawn_child("rotate", &backend, &log),
        spawn_child("rotate", &backend, &log),
    ];
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let store = backend.reopen().await;
    common::assert_consecutive_versions(store.as_ref(), "contended", 201).await;
}

on_both_stores!(kill_at_random_moments, two_processes_rotating_one_key);
