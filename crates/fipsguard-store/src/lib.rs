//! Store backends for fipsguard: SQLite, the embedded default (WAL,
//! synchronous=FULL), and PostgreSQL for many nodes. Both keep the schema as
//! numbered migrations embedded in the binary and apply them on open.

mod postgres;
mod records;
mod sqlite;

pub use postgres::{PoolLimits, PostgresStore};
pub use sqlite::SqliteStore;

/// A numbered schema change.
struct Migration {
    version: i64,
    sql: &'static str,
}

/// What a store schema newer than this build looks like to an operator.
fn schema_too_new(found: i64, known: i64) -> fipsguard_core::StoreError {
    fipsguard_core::StoreError::Corrupt(format!(
        "the store's schema is at version {found}, newer than this fipsguard knows ({known}); upgrade fipsguard"
    ))
}
