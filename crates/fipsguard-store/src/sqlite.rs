//! SQLite: the embedded default. One connection in WAL mode with
//! synchronous=FULL (a commit is on disk before it returns), used from a
//! blocking thread; writers across processes take SQLite's write lock with
//! `BEGIN IMMEDIATE` and wait for each other.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fipsguard_core::auth::{Role, TokenInfo, TokenRecord};
use fipsguard_core::{
    AddedVersion, Due, KeyRecord, NewVersion, Reservation, Revocation, RootKeyChange, Store,
    StoreError, VersionRecord, Wrapped, ROOT_KEY_CHECK_SETTING,
};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::records::{self, KEY_COLUMNS, TOKEN_COLUMNS, VERSION_COLUMNS};
use crate::{schema_too_new, Migration};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/sqlite/0001_keys.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/sqlite/0002_tokens.sql"),
    },
];

/// A SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        let connection = tokio::task::spawn_blocking(move || -> Result<Connection, StoreError> {
            let configure = |c: &Connection| -> rusqlite::Result<()> {
                c.busy_timeout(std::time::Duration::from_secs(30))?;
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "FULL")?;
                c.pragma_update(None, "foreign_keys", "ON")?;
                // Overwrite deleted content, so destroyed key material does
                // not linger in free pages.
                c.pragma_update(None, "secure_delete", "ON")
            };
            ensure_private(&path)?;
            let mut connection = Connection::open(&path).map_err(error)?;
            configure(&connection).map_err(error)?;
            migrate(&mut connection)?;
            Ok(connection)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on the connection in a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
        .map_err(error)
    }
}

/// Creates the database file readable and writable by its owner alone,
/// whatever the umask (SQLite gives its `-wal` and `-shm` files the same
/// mode), and refuses one that other users may open: it holds the wrapped
/// keys and the tokens' hashes. Its group may read it (a backup agent).
fn ensure_private(path: &Path) -> Result<(), StoreError> {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => Ok(()),
        // A crash may leave the -wal file (the newest transactions) and the
        // -shm file behind, which SQLite reuses as they are.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            ["", "-wal", "-shm"].into_iter().try_for_each(|suffix| {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                refuse_if_open_to_all(Path::new(&file))
            })
        }
        Err(e) => Err(StoreError::Unavailable(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// Refuses `file`, if it exists, when any user may open it.
fn refuse_if_open_to_all(file: &Path) -> Result<(), StoreError> {
    let mode = match std::fs::metadata(file) {
        Ok(metadata) => metadata.permissions().mode(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Unavailable(format!(
                "cannot read {}: {e}",
                file.display()
            )))
        }
    };
    if mode & 0o007 == 0 {
        return Ok(());
    }
    Err(StoreError::Unavailable(format!(
        "{} may be opened by any user (mode {:o}), and the store holds the wrapped keys and the tokens' hashes: `chmod o-rwx` the database and its -wal and -shm files (600, or 640 for a backup group), then start again",
        file.display(),
        mode & 0o777
    )))
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(error)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        .map_err(error)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(error)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(schema_too_new(current, known));
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(migration.sql).map_err(error)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, strftime('%s','now'))",
            [migration.version],
        )
        .map_err(error)?;
    }
    tx.commit().map_err(error)
}

fn error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(e.to_string())
        }
        rusqlite::Error::FromSqlConversionFailure(_, _, inner) => {
            match inner.downcast::<StoreError>() {
                Ok(store_error) => *store_error,
                Err(other) => StoreError::Corrupt(other.to_string()),
            }
        }
        rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Wraps a record conversion error so it can travel through rusqlite.
fn convert<T>(result: Result<T, StoreError>) -> rusqlite::Result<T> {
    result.map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn key_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        name: row.get(0)?,
        key_type: row.get(1)?,
        state: convert(records::state(&row.get::<_, String>(2)?))?,
        latest_version: convert(records::version(row.get(3)?))?,
        min_decryption_version: convert(records::version(row.get(4)?))?,
        exportable: row.get(5)?,
        rotate_every_secs: row.get(6)?,
        created_at: row.get(7)?,
        rotated_at: row.get(8)?,
        destroy_at: row.get(9)?,
        revision: row.get(10)?,
    })
}

fn version_row(row: &Row<'_>) -> rusqlite::Result<VersionRecord> {
    Ok(VersionRecord {
        version: convert(records::version(row.get(0)?))?,
        created_at: row.get(1)?,
        wrapped_material: row.get(2)?,
        public_key: row.get(3)?,
        encryptions_reserved: convert(records::count(row.get(4)?))?,
    })
}

fn token_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        info: TokenInfo {
            id: row.get(0)?,
            role: convert(records::role(&row.get::<_, String>(2)?))?,
            grants: convert(records::grants(&row.get::<_, String>(3)?))?,
            description: row.get(4)?,
            created_at: row.get(5)?,
            expires_at: row.get(6)?,
            revoked_at: row.get(7)?,
        },
        hash: row.get(1)?,
    })
}

/// Inserts a version, if the store's root key is still the one its
/// material is wrapped under (the caller's write transaction keeps a root
/// key change out meanwhile).
fn insert_version(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    number: u32,
    version: &NewVersion,
) -> rusqlite::Result<usize> {
    let check: Option<Vec<u8>> = tx
        .query_row(
            "SELECT value FROM settings WHERE name = ?1",
            [ROOT_KEY_CHECK_SETTING],
            |r| r.get(0),
        )
        .optional()?;
    if check.as_ref() != Some(&version.wrapped_under) {
        return convert(Err(StoreError::RootKeyChanged));
    }
    tx.execute(
        "INSERT INTO key_versions (key_name, version, created_at, wrapped_material, public_key) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![name, number, version.created_at, version.wrapped_material, version.public_key],
    )
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_owned();
        self.run(move |c| {
            c.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }

    async fn init_setting(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)",
                params![name, value],
            )?;
            let stored =
                tx.query_row("SELECT value FROM settings WHERE name = ?1", [&name], |r| {
                    r.get(0)
                })?;
            tx.commit()?;
            Ok(stored)
        })
        .await
    }

    async fn put_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.run(move |c| {
            c.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
            .map(drop)
        })
        .await
    }

    async fn create_key(&self, key: &KeyRecord, first: &NewVersion) -> Result<(), StoreError> {
        let (key, first) = (key.clone(), first.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                &format!("INSERT INTO keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    key.name,
                    key.key_type,
                    key.state.as_str(),
                    key.latest_version,
                    key.min_decryption_version,
                    key.exportable,
                    key.rotate_every_secs,
                    key.created_at,
                    key.rotated_at,
                    key.destroy_at,
                    key.revision
                ],
            )?;
            insert_version(&tx, &key.name, 1, &first)?;
            tx.commit()
        })
        .await
    }

    async fn key(&self, name: &str) -> Result<Option<KeyRecord>, StoreError> {
        let name = name.to_owned();
        self.run(move |c| {
            c.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE name = ?1"))?
                .query_row([name], key_row)
                .optional()
        })
        .await
    }

    async fn list_keys(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        self.run(move |c| {
            c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM keys WHERE name > ?1 ORDER BY name LIMIT ?2"
            ))?
            .query_map(params![after, limit], key_row)?
            .collect()
        })
        .await
    }

    async fn version(&self, name: &str, version: u32) -> Result<Option<VersionRecord>, StoreError> {
        let name = name.to_owned();
        self.run(move |c| {
            c.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM key_versions WHERE key_name = ?1 AND version = ?2"
            ))?
            .query_row(params![name, version], version_row)
            .optional()
        })
        .await
    }

    async fn add_version(
        &self,
        name: &str,
        version: &NewVersion,
        expected_latest: Option<u32>,
    ) -> Result<AddedVersion, StoreError> {
        let (name, version) = (name.to_owned(), version.clone());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<(i64, String)> = tx
                .query_row("SELECT latest_version, state FROM keys WHERE name = ?1", [&name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let Some((latest, state)) = current else { return Ok(AddedVersion::NoSuchKey) };
            let (latest, state) = (convert(records::version(latest))?, convert(records::state(&state))?);
            if let Some(refused) = records::refuse_new_version(state, latest, expected_latest) {
                return Ok(refused);
            }
            let number = match records::next_version(latest) {
                Ok(number) => number,
                Err(none_left) => return Ok(none_left),
            };
            insert_version(&tx, &name, number, &version)?;
            tx.execute(
                "UPDATE keys SET latest_version = ?1, rotated_at = ?2, revision = revision + 1 WHERE name = ?3",
                params![number, version.created_at, name],
            )?;
            tx.commit()?;
            Ok(AddedVersion::Added(number))
        })
        .await
    }

    async fn due_for_destruction(
        &self,
        now: i64,
        after: Option<&Due>,
        limit: u32,
    ) -> Result<Vec<Due>, StoreError> {
        let (at, name) = after.map_or((i64::MIN, String::new()), |d| {
            (d.destroy_at, d.name.clone())
        });
        self.run(move |c| {
            c.prepare_cached(
                "SELECT destroy_at, name FROM keys WHERE destroy_at <= ?1 AND (destroy_at, name) > (?2, ?3) \
                 ORDER BY destroy_at, name LIMIT ?4",
            )?
            .query_map(params![now, at, name, limit], |r| {
                Ok(Due {
                    destroy_at: r.get(0)?,
                    name: r.get(1)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn update_key(&self, key: &KeyRecord) -> Result<bool, StoreError> {
        let key = key.clone();
        self.run(move |c| {
            let changed = c.execute(
                "UPDATE keys SET state = ?1, min_decryption_version = ?2, rotate_every_secs = ?3, destroy_at = ?4, \
                 revision = revision + 1 WHERE name = ?5 AND revision = ?6",
                params![
                    key.state.as_str(),
                    key.min_decryption_version,
                    key.rotate_every_secs,
                    key.destroy_at,
                    key.name,
                    key.revision
                ],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn destroy_key(&self, name: &str, revision: i64) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "UPDATE keys SET state = 'destroyed', destroy_at = NULL, revision = revision + 1 \
                 WHERE name = ?1 AND revision = ?2",
                params![name, revision],
            )?;
            if changed == 1 {
                tx.execute(
                    "UPDATE key_versions SET wrapped_material = NULL WHERE key_name = ?1",
                    [&name],
                )?;
            }
            tx.commit()?;
            if changed == 1 {
                // Best effort, without waiting for readers: push the
                // overwritten pages from the WAL into the database file.
                let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
            Ok(changed == 1)
        })
        .await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.run(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    token.info.id,
                    token.hash,
                    token.info.role.as_str(),
                    records::grants_json(&token.info.grants),
                    token.info.description,
                    token.info.created_at,
                    token.info.expires_at,
                    token.info.revoked_at
                ],
            )
            .map(drop)
        })
        .await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"))?
                .query_row([id], token_row)
                .optional()
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.run(|c| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
            ))?
            .query_map([], token_row)?
            .collect()
        })
        .await
    }

    async fn revoke_token(&self, id: &str, at: i64) -> Result<Revocation, StoreError> {
        let id = id.to_owned();
        self.run(move |c| {
            // Immediate: the check and the write see no other writer between.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let unrevoked = tx
                .prepare(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE revoked_at IS NULL \
                     AND (id = ?1 OR role = ?2)"
                ))?
                .query_map(params![id, Role::Officer.as_str()], token_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let revocation = Revocation::of(&id, at, &unrevoked);
            if revocation != Revocation::Revoked {
                return Ok(revocation);
            }
            tx.execute(
                "UPDATE tokens SET revoked_at = ?1, hash = X'' WHERE id = ?2",
                params![at, id],
            )?;
            tx.commit()?;
            Ok(Revocation::Revoked)
        })
        .await
    }

    async fn change_root_key(&self, change: RootKeyChange) -> Result<u64, StoreError> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rewrap = |what: Wrapped<'_>, wrapped: &[u8]| {
                convert((change.rewrap)(what, wrapped).map_err(|why| StoreError::Corrupt(format!("{what} {why}"))))
            };
            let versions = tx
                .prepare(records::REWRAPPED_VERSIONS)?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, Option<String>>(3)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for (name, version, wrapped, key_type) in &versions {
                let material = Wrapped::Material {
                    key: name,
                    key_type: convert(records::key_type_of(name, key_type.as_deref()))?,
                    version: Some(convert(records::version(*version))?),
                };
                tx.execute(
                    "UPDATE key_versions SET wrapped_material = ?3 WHERE key_name = ?1 AND version = ?2",
                    params![name, version, rewrap(material, wrapped)?],
                )?;
            }
            for name in change.wrapped_settings {
                let value: Option<Vec<u8>> = tx
                    .query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0))
                    .optional()?;
                if let Some(value) = value {
                    tx.execute(
                        "UPDATE settings SET value = ?2 WHERE name = ?1",
                        params![name, rewrap(Wrapped::Setting(name), &value)?],
                    )?;
                }
            }
            let tokens = tx
                .prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id"))?
                .query_map([], token_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for token in &tokens {
                let id = &token.info.id;
                let rebound = (change.rebind_token)(token)
                    .map_err(|why| StoreError::Corrupt(format!("token {id} {why}")));
                if let Some(hash) = convert(rebound)? {
                    tx.execute("UPDATE tokens SET hash = ?2 WHERE id = ?1", params![id, hash])?;
                }
            }
            for (name, value) in &change.settings {
                match value {
                    Some(value) => tx.execute(
                        "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                        params![name, value],
                    )?,
                    None => tx.execute("DELETE FROM settings WHERE name = ?1", [name])?,
                };
            }
            // A commit that fails once its frames are written may stand.
            convert(tx.commit().map_err(|e| StoreError::CommitUnknown(e.to_string())))?;
            Ok(versions.len() as u64)
        })
        .await
    }

    async fn reserve_encryptions(
        &self,
        name: &str,
        version: u32,
        count: u64,
        limit: u64,
    ) -> Result<Reservation, StoreError> {
        let name = name.to_owned();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let reserved: i64 = tx.query_row(
                "SELECT encryptions_reserved FROM key_versions WHERE key_name = ?1 AND version = ?2",
                params![name, version],
                |r| r.get(0),
            )?;
            let reserved = convert(records::count(reserved))?;
            let granted = count.min(limit.saturating_sub(reserved));
            let total = reserved + granted;
            if granted > 0 {
                tx.execute(
                    "UPDATE key_versions SET encryptions_reserved = ?1 WHERE key_name = ?2 AND version = ?3",
                    params![records::stored_count(total), name, version],
                )?;
            }
            tx.commit()?;
            Ok(Reservation { granted, total })
        })
        .await
    }
}
