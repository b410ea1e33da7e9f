//! The storage interface the key management core needs, and the records it
//! stores. Backends (SQLite, PostgreSQL) live in `fipsguard-store`; every
//! method is one atomic transaction, and updates are conditional on the
//! key's revision so concurrent writers never lose an update.

use std::sync::Arc;

use async_trait::async_trait;

use crate::auth::{Role, TokenRecord};
use crate::lifecycle::KeyState;

/// A failure of the store itself (not of a request).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the operation.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (e.g. the key exists already).
    #[error("store conflict: {0}")]
    Conflict(String),
    /// The store holds data fipsguard cannot read (wrong schema, corruption).
    #[error("store data is not readable: {0}")]
    Corrupt(String),
    /// Nothing was written: the store's root key was changed since this
    /// node opened it, so what it wrapped no one could unwrap.
    #[error("the store's root key was changed (fipsguard rekey) after this node started: restart it with the new root key; nothing was written")]
    RootKeyChanged,
    /// The store failed while committing: whether the change was made is
    /// not known.
    #[error("the store failed while committing, so whether the change was made is not known: {0}")]
    CommitUnknown(String),
}

/// The setting that holds the root key's check value (a random key
/// wrapped under it), which a change of root key replaces.
pub const ROOT_KEY_CHECK_SETTING: &str = "root_kek_check";

/// A key's metadata as stored. Material lives in its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's name.
    pub name: String,
    /// The key type's name (`KeyType::as_str`).
    pub key_type: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// The newest version (versions run 1..=latest).
    pub latest_version: u32,
    /// The oldest version that may still decrypt or verify.
    pub min_decryption_version: u32,
    /// Whether material may ever leave the service.
    pub exportable: bool,
    /// Cryptoperiod: rotate at least this often, in seconds.
    pub rotate_every_secs: Option<i64>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Time of the newest version, Unix seconds.
    pub rotated_at: i64,
    /// When a scheduled destruction takes effect, Unix seconds.
    pub destroy_at: Option<i64>,
    /// Bumped by every change; updates name the revision they read.
    pub revision: i64,
}

/// One version of a key as stored. `Debug` shows sizes, not bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// Version number, from 1.
    pub version: u32,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Key material wrapped under the root KEK; `None` once destroyed.
    pub wrapped_material: Option<Vec<u8>>,
    /// Public key (SubjectPublicKeyInfo DER) of asymmetric keys.
    pub public_key: Option<Vec<u8>>,
    /// Encryptions reserved so far (an upper bound on those performed).
    pub encryptions_reserved: u64,
}

impl std::fmt::Debug for VersionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionRecord")
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .field(
                "wrapped_material",
                &self
                    .wrapped_material
                    .as_ref()
                    .map(|m| format!("[{} bytes]", m.len())),
            )
            .field(
                "public_key",
                &self
                    .public_key
                    .as_ref()
                    .map(|k| format!("[{} bytes]", k.len())),
            )
            .field("encryptions_reserved", &self.encryptions_reserved)
            .finish()
    }
}

/// A key due for destruction. Sweeps page through them by time, then
/// name, each page starting after the last one's end: a key that cannot be
/// destroyed stays due, and must not come back at the front of every page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// When its destruction is due, Unix seconds.
    pub destroy_at: i64,
    /// The key's name as stored.
    pub name: String,
}

/// A version to append.
#[derive(Clone)]
pub struct NewVersion {
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Key material wrapped under the root KEK.
    pub wrapped_material: Vec<u8>,
    /// Public key of asymmetric keys.
    pub public_key: Option<Vec<u8>>,
    /// The check value of the root key the material is wrapped under: the
    /// store writes the version only while [`ROOT_KEY_CHECK_SETTING`]
    /// holds it, in the same transaction (else `RootKeyChanged`).
    pub wrapped_under: Vec<u8>,
}

/// What [`Store::add_version`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddedVersion {
    /// The version was added with this number.
    Added(u32),
    /// No key has this name.
    NoSuchKey,
    /// Nothing was added: the key has 2^32 - 1 versions, the most one can
    /// have (its version numbers are 32 bits).
    NoneLeft,
    /// Nothing was added: the key's state forbids new versions (destroyed or
    /// compromised), or its latest version is no longer the one expected.
    Refused {
        /// The key's state.
        state: KeyState,
        /// The key's latest version.
        latest: u32,
    },
}

/// A block of encryptions granted by [`Store::reserve_encryptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// How many encryptions were granted (0 once the limit is reached).
    pub granted: u64,
    /// The version's reserved total after this grant.
    pub total: u64,
}

/// What [`Store::revoke_token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The token is revoked.
    Revoked,
    /// No unrevoked token has the id.
    NotFound,
    /// Kept: it is the only officer token live at the time.
    LastOfficer,
}

impl Revocation {
    /// What revoking `id` at `at` does, given the unrevoked tokens that are
    /// `id` or an officer's, as read under the store's lock (a `Revoked`
    /// answer is for the store to carry out). A token whose row was
    /// altered authenticates no one, so it is not the live officer that
    /// lets the last one be revoked.
    pub fn of(id: &str, at: i64, unrevoked: &[TokenRecord]) -> Self {
        let live_officer =
            |t: &TokenRecord| t.info.role == Role::Officer && t.info.is_live(at) && !t.is_altered();
        match unrevoked.iter().find(|t| t.info.id == id) {
            None => Self::NotFound,
            Some(target)
                if live_officer(target)
                    && !unrevoked.iter().any(|t| t.info.id != id && live_officer(t)) =>
            {
                Self::LastOfficer
            }
            Some(_) => Self::Revoked,
        }
    }
}

/// Turns material wrapped under the root key in use into the same material
/// wrapped under its successor; `Err` says why it cannot, without secrets.
pub type Rewrap = Arc<dyn Fn(Wrapped<'_>, &[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// What a [`Rewrap`] is given.
#[derive(Debug, Clone, Copy)]
pub enum Wrapped<'a> {
    /// A key version's material, bound to its key's name and type.
    Material {
        /// The key's name.
        key: &'a str,
        /// The key's type (`KeyType::as_str`).
        key_type: &'a str,
        /// The version's number (not bound; `None` before the store
        /// numbers a new version).
        version: Option<u32>,
    },
    /// A setting's value.
    Setting(&'a str),
}

impl std::fmt::Display for Wrapped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Material { key, version, .. } => {
                write!(f, "the material of {key}")?;
                version.map_or(Ok(()), |version| write!(f, " version {version}"))
            }
            Self::Setting(name) => write!(f, "the setting {name}"),
        }
    }
}

/// Gives a token whose stored hash an earlier release made (of its secret
/// alone) the hash that binds what it authorizes; `None` for a token whose
/// hash is bound (or cleared by its revocation) already.
pub type RebindToken = Arc<dyn Fn(&TokenRecord) -> Result<Option<Vec<u8>>, String> + Send + Sync>;

/// A change of root key, carried out by [`Store::change_root_key`].
pub struct RootKeyChange {
    /// Applied to every version's material and to each wrapped setting.
    pub rewrap: Rewrap,
    /// Applied to every token.
    pub rebind_token: RebindToken,
    /// The settings whose values are wrapped under the root key.
    pub wrapped_settings: &'static [&'static str],
    /// Settings written as given, `None` deleting one (the passphrase salt).
    pub settings: Vec<(&'static str, Option<Vec<u8>>)>,
}

/// Durable storage of keys and their versions.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// How many calls the store serves at once (a pool's connections);
    /// `None` where calls queue for one connection (SQLite) rather than
    /// take one of a few.
    fn concurrency(&self) -> Option<usize> {
        None
    }

    /// Reads a store-wide setting.
    async fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes a setting unless it exists; returns the value now stored (the
    /// existing one if another writer got there first).
    async fn init_setting(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Writes a setting, replacing any value it had.
    async fn put_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Creates a key with its first version. `Conflict` if the name is
    /// taken, `RootKeyChanged` if the version is wrapped under another root
    /// key than the store's.
    async fn create_key(&self, key: &KeyRecord, first: &NewVersion) -> Result<(), StoreError>;

    /// Reads a key's metadata.
    async fn key(&self, name: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// Lists keys in name order, starting after `after`, at most `limit`.
    async fn list_keys(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<KeyRecord>, StoreError>;

    /// Reads one version.
    async fn version(&self, name: &str, version: u32) -> Result<Option<VersionRecord>, StoreError>;

    /// Appends version `latest + 1` and makes it the latest, atomically,
    /// unless the key is destroyed or compromised, or (with
    /// `expected_latest`, a rotation at the encryption limit) it is not
    /// active or its latest version has moved on. `RootKeyChanged` as for
    /// [`create_key`](Self::create_key).
    async fn add_version(
        &self,
        name: &str,
        version: &NewVersion,
        expected_latest: Option<u32>,
    ) -> Result<AddedVersion, StoreError>;

    /// Keys whose scheduled destruction is due at `now`, by `destroy_at`
    /// and then name (bytewise), those after `after` only, at most `limit`.
    async fn due_for_destruction(
        &self,
        now: i64,
        after: Option<&Due>,
        limit: u32,
    ) -> Result<Vec<Due>, StoreError>;

    /// Replaces the key's mutable fields if its revision is still
    /// `key.revision` (bumping it); `false` if another writer changed it.
    async fn update_key(&self, key: &KeyRecord) -> Result<bool, StoreError>;

    /// Marks the key destroyed and deletes the material of every version,
    /// if its revision is still `revision`; `false` otherwise.
    async fn destroy_key(&self, name: &str, revision: i64) -> Result<bool, StoreError>;

    /// Stores a new token (its hash). `Conflict` if the id is taken.
    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    /// Reads a token by id.
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Every token, revoked ones included, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Marks a token revoked at `at` and clears its hash (so that a
    /// revocation lifted in the database leaves a token that matches
    /// nothing), unless it is the only officer token live at `at`
    /// (unrevoked, unexpired, its row not altered):
    /// checked and written at once, so that revocations on several nodes
    /// together never leave none.
    async fn revoke_token(&self, id: &str, at: i64) -> Result<Revocation, StoreError>;

    /// Carries out `change` in one transaction that keeps other writers
    /// out: every version's material that is not destroyed and each wrapped
    /// setting that exists are replaced by what `rewrap` makes of them, and
    /// every token's hash by what `rebind_token` makes of it, if anything.
    /// Nothing is written if `rewrap` fails for any of them (`Corrupt`,
    /// naming the key and version or the setting); a failed commit is
    /// `CommitUnknown`. Returns how many versions were rewrapped.
    async fn change_root_key(&self, change: RootKeyChange) -> Result<u64, StoreError>;

    /// Durably reserves up to `count` more encryptions under a version,
    /// never letting its total pass `limit`.
    async fn reserve_encryptions(
        &self,
        name: &str,
        version: u32,
        count: u64,
        limit: u64,
    ) -> Result<Reservation, StoreError>;
}
