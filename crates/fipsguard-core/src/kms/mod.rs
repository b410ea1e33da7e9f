//! The key management service: one async function per operation. HTTP, CLI
//! and any compatibility front end call these; none re-implements them.

mod anchor;
mod crypto;
mod lifecycle;
mod tokens;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crypto::{DataKey, MacTag, SignInput, Signature};
pub use crypto::{MAX_BATCH, MAX_RANDOM};
pub use lifecycle::{
    ConfigureKey, CreateKey, DestructionOutcome, KeyMetadata, LifecycleWitness, Page, PublicKey,
    RotationOutcome, DEFAULT_DESTROY_DAYS, DESTROY_DAYS, MAX_PAGE,
};
pub use tokens::{CreateToken, MAX_GRANTS, TOKEN_TTL_SECS};

use lifecycle::Destruction;

use crate::auth::KnownToken;
use crate::cache::{Allowance, Cache, CachedVersion, Lookup, Refreshes};
use crate::error::{KmsError, Result};
use crate::key_type::KeyType;
use crate::lifecycle::KeyState;
use crate::name::KeyName;
use crate::root::{RootKek, RootKekSource, UnboundValues};
use crate::store::{KeyRecord, RebindToken, Store, StoreError, Wrapped};

/// Most encryptions under one AES-GCM key with random 96-bit IVs
/// (SP 800-38D, section 8.3).
pub const GCM_RANDOM_IV_LIMIT: u64 = 1 << 32;

/// Store reads of never-seen token ids that may run at once, at most (and
/// on a store that does not bound its calls): a flood of guesses costs
/// the store this many reads at a time, no more (a lookup that cannot
/// have a turn within the refresh wait is refused).
const UNKNOWN_TOKEN_READS: usize = 16;

/// [`UNKNOWN_TOKEN_READS`] on a store that serves `concurrency` calls at
/// once: a quarter of them at most (at least one), so that guesses read
/// while the store is slow leave the rest to keys, known tokens and the
/// audit key's checkpoint signatures.
fn unknown_token_reads(concurrency: Option<usize>) -> usize {
    concurrency.map_or(UNKNOWN_TOKEN_READS, |calls| {
        (calls / 4).clamp(1, UNKNOWN_TOKEN_READS)
    })
}

/// The largest plaintext `encrypt` accepts by default; larger data goes
/// through data keys.
pub const MAX_PLAINTEXT: usize = 64 * 1024;

/// Encryptions reserved per store write, by default.
const RESERVATION_BLOCK: u64 = 4096;

/// Tunables of the service.
#[derive(Debug, Clone)]
pub struct KmsConfig {
    /// Largest plaintext `encrypt` accepts; larger data goes through data keys.
    pub max_plaintext: usize,
    /// Hard limit of encryptions per AES-GCM key version (SP 800-38D, 8.3:
    /// 2^32 invocations with random IVs).
    pub encryption_limit: u64,
    /// A version's reserved encryptions at which the key rotates by itself.
    pub rotate_at: u64,
    /// Encryptions reserved per store write.
    pub reservation_block: u64,
    /// Key versions (and metadata entries) kept in memory.
    pub cache_capacity: usize,
    /// How long metadata is trusted before it is read again: the time
    /// another node may take to see a state change.
    pub metadata_ttl: Duration,
    /// Longest lifetime a new token may have, in seconds; tokens asked for
    /// without one get it. `None` allows tokens that never expire. The
    /// first officer token is exempt (it is revoked once named officers
    /// exist).
    pub max_token_ttl_secs: Option<i64>,
}

impl Default for KmsConfig {
    fn default() -> Self {
        Self {
            max_plaintext: MAX_PLAINTEXT,
            encryption_limit: 0,
            rotate_at: 0,
            reservation_block: 0,
            cache_capacity: 10_000,
            metadata_ttl: Duration::from_secs(1),
            max_token_ttl_secs: None,
        }
        .with_encryption_limit(GCM_RANDOM_IV_LIMIT)
    }
}

impl KmsConfig {
    /// Each AES-GCM key version encrypts at most `per_version` times (1 to
    /// 2^32, the SP 800-38D bound and the default): a cryptoperiod counted
    /// in use (SP 800-57 Part 1, 5.3). As by default, the key rotates by
    /// itself once a version's reservations reach all but 1/256 of them;
    /// blocks are at most a sixteenth of that, so that a version serves
    /// many blocks before it rotates.
    pub fn with_encryption_limit(self, per_version: u64) -> Self {
        let rotate_at = per_version - per_version / 256;
        Self {
            encryption_limit: per_version,
            rotate_at,
            reservation_block: (rotate_at / 16).clamp(1, RESERVATION_BLOCK),
            ..self
        }
    }

    /// Refuses settings the service cannot honour, naming the setting.
    pub fn check(&self) -> Result<()> {
        let refused = [
            (
                !(1..=GCM_RANDOM_IV_LIMIT).contains(&self.encryption_limit),
                "encryption_limit must be 1 to 2^32 (SP 800-38D, 8.3)",
            ),
            (
                !(1..=self.encryption_limit).contains(&self.rotate_at),
                "rotate_at must be 1 to encryption_limit",
            ),
            // A block past rotate_at would rotate the key at every reservation.
            (
                !(1..=self.rotate_at).contains(&self.reservation_block),
                "reservation_block must be 1 to rotate_at",
            ),
            // A ciphertext records its plaintext's length in 32 bits.
            (
                u32::try_from(self.max_plaintext).is_err(),
                "max_plaintext must be below 4 GiB",
            ),
        ];
        if let Some((_, rule)) = refused.into_iter().find(|(bad, _)| *bad) {
            return Err(KmsError::InvalidRequest(rule.into()));
        }
        if self
            .max_token_ttl_secs
            .is_some_and(|max| !TOKEN_TTL_SECS.contains(&max))
        {
            return Err(KmsError::InvalidRequest(format!(
                "max_token_ttl_secs must be {} to {} (366 days)",
                TOKEN_TTL_SECS.start(),
                TOKEN_TTL_SECS.end()
            )));
        }
        Ok(())
    }
}

/// The time, as Unix seconds. Injected so tests can move it.
pub trait Clock: Send + Sync {
    /// Now, in Unix seconds.
    fn now(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// What the store answers to [`Kms::probe_store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAnswer {
    /// It answers, under the root key this service holds.
    Current,
    /// It answers, but its root key was changed since this service opened it.
    RootKeyChanged,
    /// It does not answer.
    Unreachable,
}

impl StoreAnswer {
    /// The store answers.
    pub fn reachable(self) -> bool {
        self != Self::Unreachable
    }

    /// Whether the store's root key is the one this service holds; `None`
    /// while the store does not answer, when no one can tell.
    pub fn root_key_current(self) -> Option<bool> {
        match self {
            Self::Current => Some(true),
            Self::RootKeyChanged => Some(false),
            Self::Unreachable => None,
        }
    }
}

/// The key management service over one store.
pub struct Kms {
    store: Arc<dyn Store>,
    root: RootKek,
    config: KmsConfig,
    clock: Arc<dyn Clock>,
    tokens: Arc<crate::auth::TokenHasher>,
    /// Key records, trusted for the metadata TTL (shared with destructions
    /// under way, see [`lifecycle::Shredder`]).
    records: Arc<Cache<String, Arc<KeyRecord>>>,
    /// Unwrapped versions, kept until evicted or destroyed (shared likewise).
    versions: Arc<Cache<(String, u32), Arc<CachedVersion>>>,
    /// Token records by id, trusted for the metadata TTL.
    token_records: Cache<String, Arc<KnownToken>>,
    /// Ids the store does not know (mostly guesses), remembered for the
    /// metadata TTL apart from real tokens, so that guesses never evict them.
    unknown_tokens: Cache<String, ()>,
    /// Store reads of ids not seen before that may run at once; a turn is
    /// kept by its read, not by the request that asked.
    unknown_token_reads: Arc<tokio::sync::Semaphore>,
    /// Concurrent misses of one stale key record, key version or known
    /// token wait (a while) for one store read between them; each kind has
    /// its own locks, so holding one never waits on another kind's.
    key_refreshes: Refreshes,
    version_refreshes: Refreshes,
    token_refreshes: Refreshes,
    /// Rotations at one key's encryption limit take turns (see `rotate`),
    /// on the same striped locks, waited for a while only, as refreshes.
    rotation_turns: Refreshes,
    /// Told of the changes the service makes on its own (see
    /// [`Kms::witness_lifecycle`]).
    witness: std::sync::OnceLock<Arc<dyn LifecycleWitness>>,
    /// Carries destructions out, on a task of its own when witnessed.
    shredder: Arc<lifecycle::Shredder>,
    /// Witnessed destructions and rotations under way, each on a task of
    /// its own.
    unattended: tokio_util::task::TaskTracker,
}

/// The key's record as stored.
async fn stored_record(store: &dyn Store, name: &KeyName) -> Result<KeyRecord> {
    store
        .key(name.as_str())
        .await?
        .ok_or_else(|| KmsError::KeyNotFound(name.to_string()))
}

impl Kms {
    /// Opens the service: checks the store answers and the root KEK is the
    /// store's own.
    pub async fn open(
        store: Arc<dyn Store>,
        root: &RootKekSource,
        config: KmsConfig,
    ) -> Result<Self> {
        Self::open_with_clock(store, root, config, Arc::new(SystemClock)).await
    }

    /// Changes the store's root key to the one `new` names, in one
    /// transaction (docs/key-ceremony.md). This service, and any other node
    /// still running, go on with the old key: stop them all first.
    pub async fn change_root_key(&self, new: &RootKekSource) -> Result<u64> {
        let (tokens, earlier_release) = (self.tokens.clone(), self.root.takes_unbound());
        let rebind_token: RebindToken =
            Arc::new(move |record| tokens.rebind(record, earlier_release));
        self.root
            .change(self.store.as_ref(), new, rebind_token)
            .await
    }

    /// Whether [`change_root_key`](Self::change_root_key) binds a store an
    /// earlier release wrote (opened with [`UnboundValues::AcceptToRebind`]
    /// and found to be such a store).
    pub fn binds_earlier_release(&self) -> bool {
        self.root.takes_unbound()
    }

    /// [`open`](Self::open) for [`change_root_key`](Self::change_root_key)
    /// alone: with [`UnboundValues::AcceptToRebind`], a store an earlier
    /// release wrote is opened as it is, for the change to bind it.
    pub async fn open_to_rekey(
        store: Arc<dyn Store>,
        root: &RootKekSource,
        config: KmsConfig,
        unbound: UnboundValues,
    ) -> Result<Self> {
        Self::open_taking(store, root, config, Arc::new(SystemClock), unbound).await
    }

    /// [`open`](Self::open) with a clock of the caller's choice.
    pub async fn open_with_clock(
        store: Arc<dyn Store>,
        root: &RootKekSource,
        config: KmsConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        Self::open_taking(store, root, config, clock, UnboundValues::Refuse).await
    }

    async fn open_taking(
        store: Arc<dyn Store>,
        root: &RootKekSource,
        config: KmsConfig,
        clock: Arc<dyn Clock>,
        unbound: UnboundValues,
    ) -> Result<Self> {
        config.check()?;
        store.ping().await?;
        let root = RootKek::open(root, store.as_ref(), unbound).await?;
        let tokens = Arc::new(Self::token_hasher(store.as_ref(), &root).await?);
        let (capacity, ttl) = (config.cache_capacity, Some(config.metadata_ttl));
        let records = Arc::new(Cache::new(capacity, ttl));
        let versions = Arc::new(Cache::new(capacity, None));
        let guess_reads = unknown_token_reads(store.concurrency());
        let shredder = lifecycle::Shredder {
            store: store.clone(),
            clock: clock.clone(),
            records: Arc::clone(&records),
            versions: Arc::clone(&versions),
        };
        Ok(Self {
            store,
            root,
            config,
            clock,
            tokens,
            records,
            versions,
            token_records: Cache::new(capacity, ttl),
            unknown_tokens: Cache::new(capacity, ttl),
            unknown_token_reads: Arc::new(tokio::sync::Semaphore::new(guess_reads)),
            key_refreshes: Refreshes::new(),
            version_refreshes: Refreshes::new(),
            token_refreshes: Refreshes::new(),
            rotation_turns: Refreshes::new(),
            witness: std::sync::OnceLock::new(),
            shredder: Arc::new(shredder),
            unattended: tokio_util::task::TaskTracker::new(),
        })
    }

    /// Has `witness` hear of every scheduled destruction and every
    /// rotation at the encryption limit from now on, and hold each while
    /// it cannot record it. Each witnessed change runs as a task of its
    /// own, which ends whether or not the request that set it off still
    /// waits (its client gone): the witness heard of it, and must hear how
    /// it ended. Set once; `false` if one was set.
    pub fn witness_lifecycle(&self, witness: Arc<dyn LifecycleWitness>) -> bool {
        self.witness.set(witness).is_ok()
    }

    /// Waits, until `deadline` at most, for the witnessed destructions and
    /// rotations under way to end (a stopping server, before its witness
    /// closes); `false` if some had not.
    pub async fn finish_unattended(&self, deadline: tokio::time::Instant) -> bool {
        self.unattended.close();
        tokio::time::timeout_at(deadline, self.unattended.wait())
            .await
            .is_ok()
    }

    /// What the store answers now: whether it does, and whether its root
    /// key is still the one this service opened it with (a `rekey` since
    /// leaves this node unable to write keys until restarted).
    pub async fn probe_store(&self) -> StoreAnswer {
        match self.root.ensure_current(self.store.as_ref()).await {
            Ok(()) => StoreAnswer::Current,
            Err(KmsError::Store(crate::store::StoreError::RootKeyChanged)) => {
                StoreAnswer::RootKeyChanged
            }
            Err(_) => StoreAnswer::Unreachable,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The key's record: from the cache while fresh, else from the store. A
    /// destruction whose time has come is carried out here.
    async fn record(&self, name: &KeyName) -> Result<Arc<KeyRecord>> {
        let cached = || {
            self.records
                .fresh(name.as_str())
                .filter(|record| !self.destroy_due(record))
        };
        if let Some(record) = cached() {
            return Ok(record);
        }
        let _refresh = self.key_refreshes.lock(name.as_str()).await;
        if let Some(record) = cached() {
            return Ok(record); // another request refreshed it meanwhile
        }
        self.reload_record(name).await
    }

    /// The key's record as read after `since`: what a request that began
    /// then and names a version the key's cached record lacks (made up, or
    /// made by a rotation on another node since) is judged by. Reads go one
    /// at a time per key, and one that began after `since` serves every
    /// request waiting for it: a flood of made-up versions holds one store
    /// connection per key, not one each.
    async fn record_read_since(&self, name: &KeyName, since: Instant) -> Result<Arc<KeyRecord>> {
        let _refresh = self.key_refreshes.lock(name.as_str()).await;
        let read = self
            .records
            .read_since(name.as_str(), since)
            .filter(|record| !self.destroy_due(record));
        match read {
            Some(record) => Ok(record),
            None => self.reload_record(name).await,
        }
    }

    /// The key's record read again from the store, and cached unless a
    /// change on this node came meanwhile. A destruction whose time has
    /// come is carried out here.
    async fn reload_record(&self, name: &KeyName) -> Result<Arc<KeyRecord>> {
        let known_destroyed = matches!(
            self.records.get(name.as_str()),
            Lookup::Stale(record) | Lookup::Fresh(record) if record.state == KeyState::Destroyed
        );
        let ticket = self.records.ticket();
        let record = self.fresh_record(name).await?;
        let record = Arc::new(self.destroy(name, record, Destruction::Scheduled).await?);
        if record.state == KeyState::Destroyed && !known_destroyed {
            // Destroyed elsewhere: drop any material this node holds, and
            // void loads under way (once per destruction seen: a scan of
            // every cached version).
            self.forget_versions(name);
        }
        self.records
            .put(ticket, name.as_str().to_owned(), record.clone());
        Ok(record)
    }

    /// The key's record read from the store, bypassing the cache: for
    /// changes, which must start from the current revision.
    async fn fresh_record(&self, name: &KeyName) -> Result<KeyRecord> {
        stored_record(self.store.as_ref(), name).await
    }

    fn destroy_due(&self, record: &KeyRecord) -> bool {
        self.shredder.due(record)
    }

    /// A version ready for use: from the cache, else unwrapped from the store.
    async fn usable(
        &self,
        name: &KeyName,
        key_type: KeyType,
        version: u32,
    ) -> Result<Arc<CachedVersion>> {
        let entry = (name.as_str().to_owned(), version);
        if let Some(cached) = self.versions.fresh(&entry) {
            return Ok(cached);
        }
        let _refresh = self.version_refreshes.lock(&entry).await;
        if let Some(cached) = self.versions.fresh(&entry) {
            return Ok(cached);
        }
        let ticket = self.versions.ticket();
        let record = self
            .store
            .version(name.as_str(), version)
            .await?
            .ok_or_else(|| KmsError::VersionNotFound {
                name: name.to_string(),
                version,
            })?;
        let wrapped = record.wrapped_material.ok_or(KmsError::Decrypt(
            crate::error::DecryptError::VersionDestroyed(version),
        ))?;
        let place = Wrapped::Material {
            key: name.as_str(),
            key_type: key_type.as_str(),
            version: Some(version),
        };
        let material = match self.root.unwrap(place, &wrapped) {
            Ok(material) => material,
            Err(e) => {
                // A changed root key explains it better than corruption.
                self.root.ensure_current(self.store.as_ref()).await?;
                return Err(e);
            }
        };
        let key = key_type.load(&material)?;
        // The stored public key is a copy for readers of the store: one
        // that is not the material's own was put there by someone else.
        let public_key = key.public_key()?;
        if record.public_key != public_key {
            return Err(StoreError::Corrupt(format!(
                "the stored public key of key {name} version {version} is not its own: the store was changed outside fipsguard"
            ))
            .into());
        }
        let cached = Arc::new(CachedVersion {
            key,
            own_public_key: public_key,
            encryptions: Allowance::default(),
            reserving: tokio::sync::Mutex::new(()),
        });
        // Not kept if the key was destroyed meanwhile: its material must
        // go. If another request loaded it first, its entry (and its
        // share of reserved encryptions) is the one everybody uses.
        Ok(self.versions.keep(ticket, entry, cached))
    }

    /// Forgets a key's cached record after a change on this node, so the
    /// next request reads the change.
    fn forget_record(&self, name: &KeyName) {
        self.records.forget(name.as_str());
    }

    /// Drops the material of a destroyed key's versions.
    fn forget_versions(&self, name: &KeyName) {
        self.shredder.forget_versions(name);
    }

    /// Key versions whose material this node holds unwrapped.
    pub fn cached_versions(&self) -> usize {
        self.versions.len()
    }

    /// Drops the material this node holds of keys destroyed since it was
    /// loaded: a destruction on another node (or by another node's sweep)
    /// reaches this one only through the store, and a key nobody asks for
    /// again would otherwise stay in memory until evicted. Each key with
    /// cached versions is read again; one that cannot be read is skipped
    /// (and counted) so that it holds up none of the others.
    pub async fn forget_destroyed_material(&self) -> MaterialSweep {
        let names: std::collections::BTreeSet<String> = self
            .versions
            .keys()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let mut sweep = MaterialSweep::default();
        for name in names {
            let Ok(name) = KeyName::new(&name) else {
                continue; // cached only under checked names
            };
            match self.reload_record(&name).await {
                Ok(record) if record.state != KeyState::Destroyed => {}
                Ok(_) | Err(KmsError::KeyNotFound(_)) => {
                    self.forget_versions(&name);
                    sweep.forgotten += 1;
                }
                Err(_) => sweep.unreadable += 1,
            }
        }
        sweep
    }
}

/// What [`Kms::destroy_due_keys`] did.
#[derive(Debug, Default)]
pub struct DestructionSweep {
    /// Keys destroyed.
    pub destroyed: usize,
    /// Due keys that could not be destroyed now, and why.
    pub failed: Vec<(String, KmsError)>,
}

/// What [`Kms::forget_destroyed_material`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MaterialSweep {
    /// Keys found destroyed whose material was dropped.
    pub forgotten: usize,
    /// Keys whose record could not be read (their material is kept).
    pub unreadable: usize,
}

fn key_type_of(record: &KeyRecord) -> Result<KeyType> {
    record.key_type.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_read_a_quarter_of_a_bounded_store_at_most() {
        let reads = [None, Some(1), Some(8), Some(16), Some(1000)].map(unknown_token_reads);
        assert_eq!(reads, [16, 1, 2, 4, 16]);
    }

    #[test]
    fn a_limit_per_version_scales_the_rotation_point_and_the_blocks() {
        let limits = |c: KmsConfig| (c.encryption_limit, c.rotate_at, c.reservation_block);
        let default = KmsConfig::default();
        assert_eq!(
            limits(default.clone().with_encryption_limit(GCM_RANDOM_IV_LIMIT)),
            limits(default.clone()),
            "the SP 800-38D bound is the default"
        );
        assert_eq!(
            limits(default.clone()),
            (1 << 32, (1 << 32) - (1 << 24), RESERVATION_BLOCK),
            "2^32 encryptions, rotating 2^24 before them, blocks of 4096"
        );
        for (per_version, expected) in [
            (1_000_000, (1_000_000, 996_094, 4096)),
            (64, (64, 64, 4)),
            (1, (1, 1, 1)),
        ] {
            let config = default.clone().with_encryption_limit(per_version);
            config.check().unwrap();
            assert_eq!(limits(config), expected);
        }
        assert!(default.with_encryption_limit(0).check().is_err());
    }

    #[test]
    fn each_setting_out_of_range_is_refused_by_name() {
        assert!(KmsConfig::default().check().is_ok());
        type Case = (fn(&mut KmsConfig), &'static str);
        let cases: [Case; 7] = [
            (|c| c.encryption_limit = 0, "encryption_limit"),
            (|c| c.encryption_limit = (1 << 32) + 1, "encryption_limit"),
            (|c| c.rotate_at = 0, "rotate_at"),
            (|c| c.rotate_at = GCM_RANDOM_IV_LIMIT + 1, "rotate_at"),
            (|c| c.reservation_block = 0, "reservation_block"),
            (
                |c| c.reservation_block = c.rotate_at + 1,
                "reservation_block",
            ),
            (|c| c.max_plaintext = 1 << 32, "max_plaintext"),
        ];
        for (change, setting) in cases {
            let mut config = KmsConfig::default();
            change(&mut config);
            match config.check() {
                Err(KmsError::InvalidRequest(m)) => assert!(m.starts_with(setting), "{m}"),
                other => panic!("{setting}: {other:?}"),
            }
        }
    }
}
