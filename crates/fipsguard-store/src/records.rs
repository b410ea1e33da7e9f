//! Conversions between stored integers/text and the core's records, shared
//! by both backends.

use fipsguard_core::{KeyState, StoreError};

/// Columns of `keys`, in the order both backends read them.
pub const KEY_COLUMNS: &str =
    "name, key_type, state, latest_version, min_decryption_version, exportable, \
     rotate_every_secs, created_at, rotated_at, destroy_at, revision";

/// Columns of `key_versions`, in the order both backends read them.
pub const VERSION_COLUMNS: &str =
    "version, created_at, wrapped_material, public_key, encryptions_reserved";

pub fn state(text: &str) -> Result<KeyState, StoreError> {
    text.parse().map_err(StoreError::Corrupt)
}

pub fn version(stored: i64) -> Result<u32, StoreError> {
    u32::try_from(stored).map_err(|_| StoreError::Corrupt(format!("version {stored} out of range")))
}

pub fn count(stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| StoreError::Corrupt(format!("count {stored} out of range")))
}

/// Counts are kept as signed 64-bit integers in both databases.
pub fn stored_count(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
