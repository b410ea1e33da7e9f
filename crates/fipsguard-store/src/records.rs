//! Conversions between stored integers/text and the core's records, shared
//! by both backends.

use fipsguard_core::auth::{Grant, Role};
use fipsguard_core::{AddedVersion, KeyState, StoreError};

/// Columns of `keys`, in the order both backends read them.
pub const KEY_COLUMNS: &str =
    "name, key_type, state, latest_version, min_decryption_version, exportable, \
     rotate_every_secs, created_at, rotated_at, destroy_at, revision";

/// Columns of `key_versions`, in the order both backends read them.
pub const VERSION_COLUMNS: &str =
    "version, created_at, wrapped_material, public_key, encryptions_reserved";

/// Why a new version may not be added, if it may not: the key is
/// destroyed or compromised, or, for a rotation at the encryption limit
/// (`expected_latest`), it is no longer active or another writer already
/// moved past the version the caller expected to be latest.
pub fn refuse_new_version(
    state: KeyState,
    latest: u32,
    expected_latest: Option<u32>,
) -> Option<AddedVersion> {
    let refused = matches!(state, KeyState::Destroyed | KeyState::Compromised)
        || expected_latest.is_some_and(|expected| expected != latest || state != KeyState::Active);
    refused.then_some(AddedVersion::Refused { state, latest })
}

/// The number a key's next version gets after `latest`, or why it gets
/// none: a key has at most 2^32 - 1 versions.
pub fn next_version(latest: u32) -> Result<u32, AddedVersion> {
    latest.checked_add(1).ok_or(AddedVersion::NoneLeft)
}

/// Columns of `tokens`, in the order both backends read them.
pub const TOKEN_COLUMNS: &str =
    "id, hash, role, grants, description, created_at, expires_at, revoked_at";

pub fn role(text: &str) -> Result<Role, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown role {text:?}")))
}

pub fn grants(json: &str) -> Result<Vec<Grant>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("unreadable grants: {e}")))
}

pub fn grants_json(grants: &[Grant]) -> String {
    serde_json::to_string(grants).expect("grants always serialize")
}

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

/// What a change of root key wraps again: every version's material not
/// destroyed, with its key's type (none for a version without its key), in
/// key order.
pub const REWRAPPED_VERSIONS: &str =
    "SELECT v.key_name, v.version, v.wrapped_material, k.key_type FROM key_versions v \
     LEFT JOIN keys k ON k.name = v.key_name \
     WHERE v.wrapped_material IS NOT NULL ORDER BY v.key_name, v.version";

/// The type of the key a version belongs to, as a change of root key reads
/// it; a version without its key is refused, not left under the old key.
pub fn key_type_of<'a>(key: &str, key_type: Option<&'a str>) -> Result<&'a str, StoreError> {
    key_type.ok_or_else(|| StoreError::Corrupt(format!("versions of {key} have no key")))
}
