//! PostgreSQL: for many stateless nodes sharing one database. Rotation and
//! reservations lock the row they change (`SELECT … FOR UPDATE`), a token
//! revocation also the unrevoked officer tokens' rows, lifecycle
//! updates are conditional on the key's revision, so concurrent nodes never
//! lose an update.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use fipsguard_core::auth::{Role, TokenInfo, TokenRecord};
use fipsguard_core::{
    AddedVersion, Due, KeyRecord, NewVersion, Reservation, Revocation, RootKeyChange, Store,
    StoreError, VersionRecord, Wrapped, ROOT_KEY_CHECK_SETTING,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use crate::records::{self, KEY_COLUMNS, TOKEN_COLUMNS, VERSION_COLUMNS};
use crate::{schema_too_new, Migration};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/postgres/0001_keys.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/postgres/0002_tokens.sql"),
    },
];

/// Any constant: serialises migrations across nodes starting together.
const MIGRATION_LOCK: i64 = 0x6667_7561_7264;

/// A PostgreSQL store with a connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

/// How many connections a store opens, and how long any one step of a
/// call may take: waiting for a free connection, making one, or running
/// one statement (PostgreSQL's `statement_timeout`, so a statement past
/// it is cancelled by the server and cannot land later). A database that
/// stops answering altogether is given up by TCP within about twice as
/// long.
#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    /// Connections at most.
    pub size: usize,
    /// The deadline of each step.
    pub timeout: Duration,
}

impl PoolLimits {
    /// The deadline unless configured: long enough for a database under
    /// load, short enough that a request held by a locked table or a lost
    /// server is answered `store_unavailable` before its client gives up.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

/// The rule a refusal at the deadline names.
const DEADLINE: &str = "the store's deadline ([store] timeout_secs)";

impl PostgresStore {
    /// Connects with a libpq-style URL or key=value string and brings the
    /// schema up to date. Its connection, keepalive and statement
    /// deadlines come from `limits`, replacing any in the string but a
    /// shorter `connect_timeout`.
    pub async fn connect(url: &str, limits: PoolLimits) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::Unavailable(format!("invalid PostgreSQL connection string: {e}"))
        })?;
        bound_network(&mut config, limits.timeout);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // Not `Clean`: its `RESET ALL` would drop the deadline.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let (timeout, statement_timeout) = (
            limits.timeout,
            format!("SET statement_timeout = {}", limits.timeout.as_millis()),
        );
        let pool = Pool::builder(manager)
            .max_size(limits.size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(limits.timeout))
            .create_timeout(Some(limits.timeout))
            // Set per session rather than as a startup option, which
            // connection poolers such as PgBouncer refuse; bounded itself,
            // as the pool's create timeout ends before this runs (a pooler
            // may take a login and then hold its first statement).
            .post_create(Hook::async_fn(move |client, _| {
                let set = statement_timeout.clone();
                Box::pin(async move {
                    match tokio::time::timeout(timeout, client.batch_execute(&set)).await {
                        Ok(done) => done.map_err(HookError::Backend),
                        Err(_) => Err(HookError::message(format!(
                            "a new PostgreSQL connection took no statement within {DEADLINE}"
                        ))),
                    }
                })
            }))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            StoreError::Unavailable(match e {
                PoolError::Timeout(TimeoutType::Wait) => {
                    format!("no PostgreSQL connection came free within {DEADLINE}")
                }
                PoolError::Timeout(TimeoutType::Create) => {
                    format!("no PostgreSQL connection could be made within {DEADLINE}")
                }
                e => e.to_string(),
            })
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error)?;
        // A migration may rewrite a large table, and waits for another
        // node's to end: a start is not held to a request's deadline.
        tx.batch_execute("SET LOCAL statement_timeout = 0")
            .await
            .map_err(error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(error)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            .await
            .map_err(error)?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await
            .map_err(error)?
            .get(0);
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if current > known {
            return Err(schema_too_new(current, known));
        }
        for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
            tx.batch_execute(migration.sql).await.map_err(error)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&migration.version],
            )
            .await
            .map_err(error)?;
        }
        tx.commit().await.map_err(error)
    }
}

fn error(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(e.to_string()),
        Some(code) if *code == SqlState::QUERY_CANCELED => StoreError::Unavailable(format!(
            "a statement was cancelled, by {DEADLINE} or by an administrator: {}",
            e.as_db_error().map_or("", |db| db.message())
        )),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// Gives up a connection whose server stopped answering: sent data
/// unacknowledged for `timeout` (TCP_USER_TIMEOUT), or an idle
/// connection whose keepalive probes go unanswered. Without these a lost
/// server holds a call for the kernel's default, minutes to hours.
fn bound_network(config: &mut tokio_postgres::Config, timeout: Duration) {
    // A connection string's own, shorter per-address timeout is kept:
    // with several hosts it lets the next one be tried within the deadline.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    config
        .tcp_user_timeout(timeout)
        .keepalives(true)
        .keepalives_idle(timeout)
        .keepalives_interval((timeout / 4).max(Duration::from_secs(1)))
        .keepalives_retries(3);
}

fn key_row(row: &Row) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        name: row.get(0),
        key_type: row.get(1),
        state: records::state(row.get(2))?,
        latest_version: records::version(row.get(3))?,
        min_decryption_version: records::version(row.get(4))?,
        exportable: row.get(5),
        rotate_every_secs: row.get(6),
        created_at: row.get(7),
        rotated_at: row.get(8),
        destroy_at: row.get(9),
        revision: row.get(10),
    })
}

fn version_row(row: &Row) -> Result<VersionRecord, StoreError> {
    Ok(VersionRecord {
        version: records::version(row.get(0))?,
        created_at: row.get(1),
        wrapped_material: row.get(2),
        public_key: row.get(3),
        encryptions_reserved: records::count(row.get(4))?,
    })
}

fn token_row(row: &Row) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        info: TokenInfo {
            id: row.get(0),
            role: records::role(row.get(2))?,
            grants: records::grants(row.get(3))?,
            description: row.get(4),
            created_at: row.get(5),
            expires_at: row.get(6),
            revoked_at: row.get(7),
        },
        hash: row.get(1),
    })
}

/// Inserts a version, if the store's root key is still the one its
/// material is wrapped under: the check value is read under a share lock,
/// which waits for a root key change under way to end.
async fn insert_version(
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
    number: i64,
    version: &NewVersion,
) -> Result<(), StoreError> {
    let check = tx
        .query_opt(
            "SELECT value FROM settings WHERE name = $1 FOR SHARE",
            &[&ROOT_KEY_CHECK_SETTING],
        )
        .await
        .map_err(error)?;
    if check.as_ref().map(|row| row.get::<_, &[u8]>(0)) != Some(version.wrapped_under.as_slice()) {
        return Err(StoreError::RootKeyChanged);
    }
    tx.execute(
        "INSERT INTO key_versions (key_name, version, created_at, wrapped_material, public_key) VALUES ($1, $2, $3, $4, $5)",
        &[&name, &number, &version.created_at, &version.wrapped_material, &version.public_key],
    )
    .await
    .map_err(error)?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    fn concurrency(&self) -> Option<usize> {
        Some(self.pool.status().max_size)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute("SELECT 1", &[])
            .await
            .map(|_| ())
            .map_err(error)
    }

    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT value FROM settings WHERE name = $1", &[&name])
            .await
            .map_err(error)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn init_setting(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &value],
            )
            .await
            .map_err(error)?;
        Ok(client
            .query_one("SELECT value FROM settings WHERE name = $1", &[&name])
            .await
            .map_err(error)?
            .get(0))
    }

    async fn put_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                &[&name, &value],
            )
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn create_key(&self, key: &KeyRecord, first: &NewVersion) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error)?;
        tx.execute(
            &format!("INSERT INTO keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
            &[
                &key.name,
                &key.key_type,
                &key.state.as_str(),
                &i64::from(key.latest_version),
                &i64::from(key.min_decryption_version),
                &key.exportable,
                &key.rotate_every_secs,
                &key.created_at,
                &key.rotated_at,
                &key.destroy_at,
                &key.revision,
            ],
        )
        .await
        .map_err(error)?;
        insert_version(&tx, &key.name, 1, first).await?;
        tx.commit().await.map_err(error)
    }

    async fn key(&self, name: &str) -> Result<Option<KeyRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE name = $1"))
            .await
            .map_err(error)?;
        client
            .query_opt(&statement, &[&name])
            .await
            .map_err(error)?
            .as_ref()
            .map(key_row)
            .transpose()
    }

    async fn list_keys(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE name > $1 ORDER BY name LIMIT $2"),
                &[&after.unwrap_or(""), &i64::from(limit)],
            )
            .await
            .map_err(error)?;
        rows.iter().map(key_row).collect()
    }

    async fn version(&self, name: &str, version: u32) -> Result<Option<VersionRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM key_versions WHERE key_name = $1 AND version = $2"
            ))
            .await
            .map_err(error)?;
        client
            .query_opt(&statement, &[&name, &i64::from(version)])
            .await
            .map_err(error)?
            .as_ref()
            .map(version_row)
            .transpose()
    }

    async fn add_version(
        &self,
        name: &str,
        version: &NewVersion,
        expected_latest: Option<u32>,
    ) -> Result<AddedVersion, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error)?;
        let Some(row) = tx
            .query_opt(
                "SELECT latest_version, state FROM keys WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await
            .map_err(error)?
        else {
            return Ok(AddedVersion::NoSuchKey);
        };
        let (latest, state) = (records::version(row.get(0))?, records::state(row.get(1))?);
        if let Some(refused) = records::refuse_new_version(state, latest, expected_latest) {
            return Ok(refused);
        }
        let number = match records::next_version(latest) {
            Ok(number) => i64::from(number),
            Err(none_left) => return Ok(none_left),
        };
        insert_version(&tx, name, number, version).await?;
        tx.execute(
            "UPDATE keys SET latest_version = $1, rotated_at = $2, revision = revision + 1 WHERE name = $3",
            &[&number, &version.created_at, &name],
        )
        .await
        .map_err(error)?;
        tx.commit().await.map_err(error)?;
        records::version(number).map(AddedVersion::Added)
    }

    async fn due_for_destruction(
        &self,
        now: i64,
        after: Option<&Due>,
        limit: u32,
    ) -> Result<Vec<Due>, StoreError> {
        let (at, name) = after.map_or((i64::MIN, ""), |d| (d.destroy_at, d.name.as_str()));
        let rows = self
            .client()
            .await?
            .query(
                "SELECT destroy_at, name FROM keys WHERE destroy_at <= $1 AND (destroy_at, name) > ($2, $3) \
                 ORDER BY destroy_at, name LIMIT $4",
                &[&now, &at, &name, &i64::from(limit)],
            )
            .await
            .map_err(error)?;
        Ok(rows
            .iter()
            .map(|r| Due {
                destroy_at: r.get(0),
                name: r.get(1),
            })
            .collect())
    }

    async fn update_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        let changed = self
            .client()
            .await?
            .execute(
                "UPDATE keys SET state = $1, min_decryption_version = $2, rotate_every_secs = $3, destroy_at = $4, \
                 revision = revision + 1 WHERE name = $5 AND revision = $6",
                &[
                    &key.state.as_str(),
                    &i64::from(key.min_decryption_version),
                    &key.rotate_every_secs,
                    &key.destroy_at,
                    &key.name,
                    &key.revision,
                ],
            )
            .await
            .map_err(error)?;
        Ok(changed == 1)
    }

    async fn destroy_key(&self, name: &str, revision: i64) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error)?;
        let changed = tx
            .execute(
                "UPDATE keys SET state = 'destroyed', destroy_at = NULL, revision = revision + 1 WHERE name = $1 AND revision = $2",
                &[&name, &revision],
            )
            .await
            .map_err(error)?;
        if changed == 1 {
            tx.execute(
                "UPDATE key_versions SET wrapped_material = NULL WHERE key_name = $1",
                &[&name],
            )
            .await
            .map_err(error)?;
        }
        tx.commit().await.map_err(error)?;
        Ok(changed == 1)
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                &format!(
                    "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                &[
                    &token.info.id,
                    &token.hash,
                    &token.info.role.as_str(),
                    &records::grants_json(&token.info.grants),
                    &token.info.description,
                    &token.info.created_at,
                    &token.info.expires_at,
                    &token.info.revoked_at,
                ],
            )
            .await
            .map(drop)
            .map_err(error)
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"))
            .await
            .map_err(error)?;
        client
            .query_opt(&statement, &[&id])
            .await
            .map_err(error)?
            .as_ref()
            .map(token_row)
            .transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"),
                &[],
            )
            .await
            .map_err(error)?;
        rows.iter().map(token_row).collect()
    }

    async fn revoke_token(&self, id: &str, at: i64) -> Result<Revocation, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error)?;
        // The target's row and every unrevoked officer token's, locked in
        // one pass in id order (no two revocations wait on each other in
        // turn): revocations on any node take turns here, and each sees the
        // one before it once that commits.
        let unrevoked = tx
            .query(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE revoked_at IS NULL \
                     AND (id = $1 OR role = $2) ORDER BY id FOR UPDATE"
                ),
                &[&id, &Role::Officer.as_str()],
            )
            .await
            .map_err(error)?
            .iter()
            .map(token_row)
            .collect::<Result<Vec<_>, _>>()?;
        let revocation = Revocation::of(id, at, &unrevoked);
        if revocation != Revocation::Revoked {
            return Ok(revocation);
        }
        tx.execute(
            "UPDATE tokens SET revoked_at = $1, hash = ''::bytea WHERE id = $2",
            &[&at, &id],
        )
        .await
        .map_err(error)?;
        tx.commit().await.map_err(error)?;
        Ok(Revocation::Revoked)
    }

    async fn change_root_key(&self, change: RootKeyChange) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error)?;
        // Every node is stopped for a change of root key; one left running
        // waits for the change at most its store deadline, then is refused.
        // A node holding a lock for long makes the change fail, not hang.
        // Rewrapping every row is not held to a request's deadline.
        tx.batch_execute(
            "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = '30s'; LOCK TABLE settings, key_versions, tokens IN EXCLUSIVE MODE",
        )
        .await
        .map_err(error)?;
        let rewrap = |what: Wrapped<'_>, wrapped: &[u8]| {
            (change.rewrap)(what, wrapped)
                .map_err(|why| StoreError::Corrupt(format!("{what} {why}")))
        };
        let versions = tx
            .query(records::REWRAPPED_VERSIONS, &[])
            .await
            .map_err(error)?;
        for row in &versions {
            let (name, version): (&str, i64) = (row.get(0), row.get(1));
            let material = Wrapped::Material {
                key: name,
                key_type: records::key_type_of(name, row.get(3))?,
                version: Some(records::version(version)?),
            };
            let rewrapped = rewrap(material, row.get(2))?;
            tx.execute(
                "UPDATE key_versions SET wrapped_material = $3 WHERE key_name = $1 AND version = $2",
                &[&name, &version, &rewrapped],
            )
            .await
            .map_err(error)?;
        }
        for &name in change.wrapped_settings {
            let value = tx
                .query_opt("SELECT value FROM settings WHERE name = $1", &[&name])
                .await
                .map_err(error)?;
            if let Some(value) = value {
                let rewrapped = rewrap(Wrapped::Setting(name), value.get(0))?;
                tx.execute(
                    "UPDATE settings SET value = $2 WHERE name = $1",
                    &[&name, &rewrapped],
                )
                .await
                .map_err(error)?;
            }
        }
        let tokens = tx
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id"),
                &[],
            )
            .await
            .map_err(error)?;
        for row in &tokens {
            let token = token_row(row)?;
            let id = &token.info.id;
            let rebound = (change.rebind_token)(&token)
                .map_err(|why| StoreError::Corrupt(format!("token {id} {why}")))?;
            if let Some(hash) = rebound {
                tx.execute("UPDATE tokens SET hash = $2 WHERE id = $1", &[id, &hash])
                    .await
                    .map_err(error)?;
            }
        }
        for (name, value) in &change.settings {
            match value {
                Some(value) => tx.execute(
                    "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                    &[name, value],
                ).await,
                None => tx.execute("DELETE FROM settings WHERE name = $1", &[name]).await,
            }
            .map_err(error)?;
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::CommitUnknown(e.to_string()))?;
        Ok(versions.len() as u64)
    }

    async fn reserve_encryptions(
        &self,
        name: &str,
        version: u32,
        count: u64,
        limit: u64,
    ) -> Result<Reservation, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error)?;
        let version = i64::from(version);
        let reserved: i64 = tx
            .query_one(
                "SELECT encryptions_reserved FROM key_versions WHERE key_name = $1 AND version = $2 FOR UPDATE",
                &[&name, &version],
            )
            .await
            .map_err(error)?
            .get(0);
        let reserved = records::count(reserved)?;
        let granted = count.min(limit.saturating_sub(reserved));
        let total = reserved + granted;
        if granted > 0 {
            tx.execute(
                "UPDATE key_versions SET encryptions_reserved = $1 WHERE key_name = $2 AND version = $3",
                &[&records::stored_count(total), &name, &version],
            )
            .await
            .map_err(error)?;
        }
        tx.commit().await.map_err(error)?;
        Ok(Reservation { granted, total })
    }
}
