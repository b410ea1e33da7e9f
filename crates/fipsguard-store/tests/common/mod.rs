//! Real stores for the tests: SQLite in a temporary directory, and the
//! local PostgreSQL (FIPSGUARD_TEST_POSTGRES, default the `test` database on
//! 127.0.0.1:5432) in a schema of its own per test. Under CI (CI=true) the
//! PostgreSQL tests fail rather than skip when the server is unreachable.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fipsguard_core::{Kms, KmsConfig, RootKekSource, Store};
use fipsguard_crypto::mac::{MacAlgorithm, MacKey};
use fipsguard_store::{PoolLimits, PostgresStore, SqliteStore};
use tempfile::TempDir;

/// Eight connections, and a deadline long past any test's locks (the
/// flood tests hold a table for seconds): only tests/deadlines.rs tests
/// the deadline.
const FIXTURE_LIMITS: PoolLimits = PoolLimits {
    size: 8,
    timeout: std::time::Duration::from_secs(120),
};

pub const DEFAULT_POSTGRES: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

/// A store and what keeps it alive, with a way to open more handles on the
/// same data (another "node" or a restart).
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<dyn Store>,
    location: Location,
    pub dir: TempDir,
}

enum Location {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

impl Drop for Backend {
    /// Drops a PostgreSQL backend's schema, so that test runs leave
    /// nothing behind in the database. Best effort: a lock still held
    /// (by a failed test's connection) makes it give up after 10 s and
    /// leave the schema, saying so (a panic here would hide the test's).
    fn drop(&mut self) {
        if let Location::Postgres { schema, .. } = &self.location {
            let drop = format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {schema} CASCADE");
            let dropped = std::process::Command::new("psql")
                .args([postgres_base().as_str(), "-qc", &drop])
                .output();
            match dropped {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "schema {schema} left behind: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("schema {schema} left behind: psql: {e}"),
            }
        }
    }
}

impl Backend {
    /// A fresh handle on the same data, as a second node or a restarted
    /// process would open it.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        match &self.location {
            Location::Sqlite(path) => Arc::new(SqliteStore::open(path).await.unwrap()),
            Location::Postgres { url, .. } => {
                Arc::new(PostgresStore::connect(url, FIXTURE_LIMITS).await.unwrap())
            }
        }
    }

    /// The root key file in this backend's directory (created on first use).
    pub fn key_file(&self) -> RootKekSource {
        let path = self.dir.path().join("root.key");
        if !path.exists() {
            fipsguard_core::root::create_key_file(&path).unwrap();
        }
        RootKekSource::KeyFile(path)
    }

    /// A new root key file in this backend's directory, for a change of
    /// root key.
    pub fn new_key_file(&self) -> RootKekSource {
        let path = self.dir.path().join("new.key");
        fipsguard_core::root::create_key_file(&path).unwrap();
        RootKekSource::KeyFile(path)
    }

    /// A service over this backend's store with its key file, as
    /// `fipsguard rekey` opens it: taking what an earlier release wrote.
    pub async fn rekeying_kms(&self) -> Kms {
        let (bind, root) = (
            fipsguard_core::root::UnboundValues::AcceptToRebind,
            self.key_file(),
        );
        Kms::open_to_rekey(self.reopen().await, &root, KmsConfig::default(), bind)
            .await
            .unwrap()
    }

    /// Why a change of root key, as `fipsguard rekey
    /// --bind-earlier-release` asks for it, is refused.
    pub async fn rekey_refusal(&self) -> String {
        let kms = self.rekeying_kms().await;
        let refused = kms.change_root_key(&self.new_key_file()).await;
        refused.expect_err("refused").to_string()
    }

    /// Why a service over this backend's store with its key file is refused.
    pub async fn open_refusal(&self) -> String {
        let opened = Kms::open(self.reopen().await, &self.key_file(), KmsConfig::default()).await;
        opened.err().expect("refused").to_string()
    }

    /// A service over this backend's store with its key file.
    pub async fn kms(&self, config: KmsConfig) -> Kms {
        Kms::open(self.store.clone(), &self.key_file(), config)
            .await
            .unwrap()
    }

    /// The service, with the default configuration, on a clock the test
    /// moves, which starts at `now` (Unix seconds).
    pub async fn kms_at(&self, now: i64) -> (Kms, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(now)));
        let kms = Kms::open_with_clock(
            self.store.clone(),
            &self.key_file(),
            KmsConfig::default(),
            clock.clone(),
        )
        .await
        .unwrap();
        (kms, clock)
    }

    /// The store's root key check value, which versions written straight
    /// to the store must carry.
    pub async fn root_check(&self) -> Vec<u8> {
        let check = self.store.setting(fipsguard_core::ROOT_KEY_CHECK_SETTING);
        check.await.unwrap().expect("a service opened the store")
    }

    /// The root key of this backend's key file, to read and write what is
    /// wrapped under it as someone holding it could.
    pub fn root_kek(&self) -> fipsguard_crypto::keywrap::KeyEncryptionKey {
        let _ = self.key_file();
        let bytes = std::fs::read(self.dir.path().join("root.key")).unwrap();
        fipsguard_crypto::keywrap::KeyEncryptionKey::new(&bytes).unwrap()
    }

    /// Rewrites the store as a release that did not bind values to their
    /// place would have written it: every value wrapped under the root key
    /// alone, and the hashes of `tokens` (their whole texts) the tags of
    /// their secrets alone.
    pub async fn as_an_earlier_release_wrote_it(&self, tokens: &[&str]) {
        let kek = self.root_kek();
        let unbound = |wrapped: &[u8], parts: usize| {
            let bound = kek.unwrap(wrapped).unwrap();
            let bound = bound.expose_secret();
            assert!(bound.starts_with(b"fipsguard bound1"));
            // Past the label, the kind and its parts, each after its length.
            let mut at = 16;
            for _ in 0..parts {
                let length = u64::from_be_bytes(bound[at..at + 8].try_into().unwrap()) as usize;
                at += 8 + length;
            }
            kek.wrap(&bound[at..]).unwrap()
        };
        for name in ["root_kek_check", "token_hmac_key"] {
            let value = self.store.setting(name).await.unwrap().unwrap();
            let sql = format!(
                "UPDATE settings SET value = {} WHERE name = '{name}'",
                self.blob(&unbound(&value, 2))
            );
            self.execute(&sql).await;
        }
        for key in self.store.list_keys(None, 1000).await.unwrap() {
            for version in 1..=key.latest_version {
                let stored = self.store.version(&key.name, version).await.unwrap();
                let Some(wrapped) = stored.unwrap().wrapped_material else {
                    continue;
                };
                let sql = format!(
                    "UPDATE key_versions SET wrapped_material = {} \
                     WHERE key_name = '{}' AND version = {version}",
                    self.blob(&unbound(&wrapped, 3)),
                    key.name
                );
                self.execute(&sql).await;
            }
        }
        let wrapped = self.store.setting("token_hmac_key").await.unwrap().unwrap();
        let token_key = MacKey::new(
            MacAlgorithm::HmacSha256,
            kek.unwrap(&wrapped).unwrap().expose_secret(),
        )
        .unwrap();
        for token in tokens {
            let (id, secret) = (&token[4..20], &token[21..]);
            let sql = format!(
                "UPDATE tokens SET hash = {} WHERE id = '{id}'",
                self.blob(&token_key.sign(secret.as_bytes()).unwrap())
            );
            self.execute(&sql).await;
        }
    }

    /// `bytes` as a literal of this backend's SQL.
    pub fn blob(&self, bytes: &[u8]) -> String {
        match &self.location {
            Location::Sqlite(_) => format!("X'{}'", hex(bytes)),
            Location::Postgres { .. } => format!("'\\x{}'::bytea", hex(bytes)),
        }
    }

    /// Runs `sql` on the data from a connection of its own: a change made
    /// outside fipsguard, as a database administrator could.
    pub async fn execute(&self, sql: &str) {
        match &self.location {
            Location::Sqlite(path) => {
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
            Location::Postgres { url, .. } => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                client.batch_execute(sql).await.unwrap();
            }
        }
    }

    /// The SQLite database file, for tests that run other processes on it.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.location {
            Location::Sqlite(path) => Some(path),
            Location::Postgres { .. } => None,
        }
    }

    /// The PostgreSQL connection string, for the same.
    pub fn postgres_url(&self) -> Option<&str> {
        match &self.location {
            Location::Postgres { url, .. } => Some(url),
            Location::Sqlite(_) => None,
        }
    }
}

pub async fn sqlite() -> Backend {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("fipsguard.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    Backend {
        name: "sqlite",
        store,
        location: Location::Sqlite(path),
        dir,
    }
}

/// The PostgreSQL server the tests use.
fn postgres_base() -> String {
    std::env::var("FIPSGUARD_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into())
}

/// A PostgreSQL backend in a new schema, or `None` (with a visible message)
/// when no server answers outside CI.
pub async fn postgres() -> Option<Backend> {
    let base = postgres_base();
    let schema = format!(
        "fg_test_{}",
        hex(&fipsguard_crypto::random::bytes(8).unwrap())
    );
    match tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .unwrap();
        }
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL at {base:?} is required under CI: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL tests: no server at {base:?} ({e})");
            return None;
        }
    }
    let url = format!("{base} options='-c search_path={schema}'");
    let store = Arc::new(PostgresStore::connect(&url, FIXTURE_LIMITS).await.unwrap());
    Some(Backend {
        name: "postgres",
        store,
        location: Location::Postgres { url, schema },
        dir: TempDir::new().unwrap(),
    })
}

/// A lock that keeps every other connection from reading a table, held
/// by a connection of its own until released.
pub struct TableLock(tokio_postgres::Client);

impl TableLock {
    pub async fn take(url: &str, table: &str) -> Self {
        let lock = Self::connect(url).await;
        lock.lock(table).await;
        lock
    }

    /// Its connection, to take the lock with later at once.
    pub async fn connect(url: &str) -> Self {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        Self(client)
    }

    pub async fn lock(&self, table: &str) {
        self.0
            .batch_execute(&format!(
                "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
            ))
            .await
            .unwrap();
    }

    /// How many connections wait for this lock now.
    pub async fn waiting(&self, url: &str) -> i64 {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let holder: i32 = self
            .0
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                &[&holder],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn release(self) {
        self.0.batch_execute("COMMIT").await.unwrap();
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Defines each listed `async fn(Backend)` as a test on SQLite and on
/// PostgreSQL.
#[macro_export]
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::common::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(backend) = super::common::postgres().await {
                        super::$test(backend).await
                    }
                }
            )*
        }
    };
}

/// Asserts the key has exactly versions 1..=`latest`, none missing, none extra.
pub async fn assert_consecutive_versions(store: &dyn Store, name: &str, latest: u32) {
    assert_eq!(
        store.key(name).await.unwrap().unwrap().latest_version,
        latest
    );
    for version in 1..=latest {
        assert!(
            store.version(name, version).await.unwrap().is_some(),
            "version {version} missing"
        );
    }
    assert!(store.version(name, latest + 1).await.unwrap().is_none());
}

/// A clock tests can move.
pub struct ManualClock(pub std::sync::atomic::AtomicI64);

impl fipsguard_core::kms::Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A request for a token of `role` without grants.
pub fn token_request(
    role: fipsguard_core::Role,
    ttl_secs: Option<i64>,
    description: &str,
) -> fipsguard_core::kms::CreateToken {
    fipsguard_core::kms::CreateToken {
        role,
        grants: vec![],
        ttl_secs,
        description: description.into(),
    }
}
