//! Key lifecycle operations: create, read, list, rotate, configure, the
//! state transitions, scheduled and forced destruction, public keys.

use std::sync::Arc;

use super::{key_type_of, stored_record, Clock, DestructionSweep, Kms};
use crate::cache::{Cache, CachedVersion};
use crate::error::{DecryptError, KmsError, Result};
use crate::key_type::{KeyType, Purpose};
use crate::lifecycle::KeyState;
use crate::name::KeyName;
use crate::store::{AddedVersion, KeyRecord, NewVersion, Store, StoreError, Wrapped};

/// Days a scheduled destruction waits by default, and the allowed range.
pub const DEFAULT_DESTROY_DAYS: u32 = 7;
/// The destruction windows an officer may choose, in days.
pub const DESTROY_DAYS: std::ops::RangeInclusive<u32> = 1..=30;
/// Most keys one page lists.
pub const MAX_PAGE: u32 = 1000;
/// Times an update is retried when another writer got there first.
const UPDATE_ATTEMPTS: usize = 16;

/// What `create_key` needs.
#[derive(Debug, Clone)]
pub struct CreateKey {
    /// The new key's name.
    pub name: String,
    /// Its type.
    pub key_type: KeyType,
    /// Start active (the default) or pre-active (activate later).
    pub active: bool,
    /// Whether material may ever leave the service (fixed at creation).
    pub exportable: bool,
    /// Cryptoperiod in seconds, if any.
    pub rotate_every_secs: Option<i64>,
}

impl CreateKey {
    /// An active, non-exportable key without a cryptoperiod.
    pub fn new(name: &str, key_type: KeyType) -> Self {
        Self {
            name: name.to_owned(),
            key_type,
            active: true,
            exportable: false,
            rotate_every_secs: None,
        }
    }
}

/// Changes `configure_key` may make; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ConfigureKey {
    /// New minimum decryption version (1..=latest).
    pub min_decryption_version: Option<u32>,
    /// New cryptoperiod: `Some(None)` removes it.
    pub rotate_every_secs: Option<Option<i64>>,
}

/// A key's metadata as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyMetadata {
    /// Name.
    pub name: String,
    /// Type, e.g. `aes256-gcm`.
    pub key_type: String,
    /// What the key is for.
    pub purpose: Purpose,
    /// Lifecycle state.
    pub state: KeyState,
    /// Newest version.
    pub latest_version: u32,
    /// Oldest version that still decrypts or verifies.
    pub min_decryption_version: u32,
    /// Whether material may leave the service.
    pub exportable: bool,
    /// Cryptoperiod in seconds.
    pub rotate_every_secs: Option<i64>,
    /// Whether the cryptoperiod has passed since the last rotation.
    pub rotation_overdue: bool,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Time of the newest version, Unix seconds.
    pub rotated_at: i64,
    /// When a scheduled destruction takes effect, Unix seconds.
    pub destroy_at: Option<i64>,
}

/// One page of a key listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    /// The keys, in name order.
    pub keys: Vec<KeyMetadata>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A public key in both encodings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublicKey {
    /// The version it belongs to.
    pub version: u32,
    /// SubjectPublicKeyInfo DER.
    pub der: Vec<u8>,
    /// The same as PEM.
    pub pem: String,
}

impl Kms {
    /// Creates a key and its first version.
    pub async fn create_key(&self, request: CreateKey) -> Result<KeyMetadata> {
        let name = KeyName::new(&request.name)?;
        check_cryptoperiod(request.rotate_every_secs)?;
        let now = self.now();
        let first = self.new_version(&name, request.key_type, now)?;
        let record = KeyRecord {
            name: name.to_string(),
            key_type: request.key_type.as_str().to_owned(),
            state: if request.active {
                KeyState::Active
            } else {
                KeyState::PreActive
            },
            latest_version: 1,
            min_decryption_version: 1,
            exportable: request.exportable,
            rotate_every_secs: request.rotate_every_secs,
            created_at: now,
            rotated_at: now,
            destroy_at: None,
            revision: 1,
        };
        match self.store.create_key(&record, &first).await {
            Ok(()) => Ok(self.metadata(&record)),
            Err(StoreError::Conflict(_)) => Err(KmsError::KeyExists(name.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a key's metadata.
    pub async fn get_key(&self, name: &str) -> Result<KeyMetadata> {
        let name = KeyName::new(name)?;
        let record = self.record(&name).await?;
        Ok(self.metadata(&record))
    }

    /// Lists keys in name order, `limit` (1-1000) at a time.
    pub async fn list_keys(&self, after: Option<&str>, limit: u32) -> Result<Page> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(KmsError::InvalidRequest(format!(
                "page size must be 1-{MAX_PAGE}"
            )));
        }
        let records = self.store.list_keys(after, limit).await?;
        let next = (records.len() == limit as usize)
            .then(|| records.last().map(|r| r.name.clone()))
            .flatten();
        Ok(Page {
            keys: records.iter().map(|r| self.metadata(r)).collect(),
            next,
        })
    }

    /// Adds a version; new protection uses it from now on. Destroyed and
    /// compromised keys get no new versions.
    pub async fn rotate_key(&self, name: &str) -> Result<KeyMetadata> {
        let name = KeyName::new(name)?;
        self.rotate(&name, Rotation::Requested).await?;
        self.get_key(name.as_str()).await
    }

    /// Adds a version unless the state forbids it or, for the encryption
    /// limit, another writer rotated first; returns the key's latest
    /// version after.
    pub(super) async fn rotate(&self, name: &KeyName, rotation: Rotation) -> Result<u32> {
        // Requests that reach a version's limit together all ask, and take
        // turns: mostly the first adds the version (and has it witnessed),
        // and the rest find it added, without a key made (and a rotation
        // recorded) for nothing. Not always: a turn is waited for a while
        // only, and the store lets one add it.
        let (expected_latest, _turn) = match rotation {
            Rotation::Requested => (None, None),
            Rotation::AtLimit(version) => {
                (Some(version), self.rotation_turns.lock(name.as_str()).await)
            }
        };
        let record = self.fresh_record(name).await?;
        if expected_latest.is_some_and(|v| record.latest_version > v) && record.state.may_protect()
        {
            self.records.evict(name.as_str());
            return Ok(record.latest_version);
        }
        let version = self.new_version(name, key_type_of(&record)?, self.now())?;
        let added = match (rotation, self.witness.get()) {
            (Rotation::AtLimit(limited), Some(witness)) => {
                let (witness, store, name) = (witness.clone(), self.store.clone(), name.clone());
                self.run_unattended(async move {
                    add_version_witnessed(witness.as_ref(), store.as_ref(), &name, limited, version)
                        .await
                })
                .await?
            }
            _ => {
                self.store
                    .add_version(name.as_str(), &version, expected_latest)
                    .await?
            }
        };
        match added {
            AddedVersion::Added(number) => {
                self.forget_record(name);
                Ok(number)
            }
            AddedVersion::NoSuchKey => Err(KmsError::KeyNotFound(name.to_string())),
            AddedVersion::NoneLeft => Err(KmsError::VersionsExhausted(name.to_string())),
            // An encryption's rotation, on a node whose cached record still
            // said active: the key gets no version to encrypt under (the
            // store checks the state in the same transaction).
            AddedVersion::Refused { state, .. }
                if expected_latest.is_some() && !state.may_protect() =>
            {
                Err(KmsError::StateForbids {
                    name: name.to_string(),
                    state,
                    operation: "encrypt",
                })
            }
            // Another writer rotated first: its version is as good as ours
            // (and the cached record, which does not have it, is dropped).
            AddedVersion::Refused { state, latest }
                if !matches!(state, KeyState::Destroyed | KeyState::Compromised) =>
            {
                self.records.evict(name.as_str());
                Ok(latest)
            }
            AddedVersion::Refused { state, .. } => Err(KmsError::StateForbids {
                name: name.to_string(),
                state,
                operation: "rotate",
            }),
        }
    }

    /// Changes the minimum decryption version or the cryptoperiod.
    pub async fn configure_key(&self, name: &str, change: ConfigureKey) -> Result<KeyMetadata> {
        if let Some(period) = change.rotate_every_secs {
            check_cryptoperiod(period)?;
        }
        self.update(name, |record| {
            if record.state == KeyState::Destroyed {
                return Err(KmsError::StateForbids {
                    name: record.name.clone(),
                    state: record.state,
                    operation: "configure",
                });
            }
            if let Some(min) = change.min_decryption_version {
                if !(1..=record.latest_version).contains(&min) {
                    return Err(KmsError::InvalidRequest(format!(
                        "min_decryption_version must be 1-{} (the latest version)",
                        record.latest_version
                    )));
                }
                record.min_decryption_version = min;
            }
            if let Some(period) = change.rotate_every_secs {
                record.rotate_every_secs = period;
            }
            Ok(())
        })
        .await
    }

    /// Pre-active to active.
    pub async fn activate_key(&self, name: &str) -> Result<KeyMetadata> {
        self.transition(name, KeyState::Active).await
    }

    /// Active to deactivated: stops protecting, still processes.
    pub async fn deactivate_key(&self, name: &str) -> Result<KeyMetadata> {
        self.transition(name, KeyState::Deactivated).await
    }

    /// Marks the key compromised: stops protecting, still processes so data
    /// can be recovered and re-protected under another key.
    pub async fn compromise_key(&self, name: &str) -> Result<KeyMetadata> {
        self.transition(name, KeyState::Compromised).await
    }

    /// Schedules destruction `days` (1-30, default 7) from now. The key must
    /// not be active: deactivate it first.
    pub async fn schedule_destroy(&self, name: &str, days: Option<u32>) -> Result<KeyMetadata> {
        let days = days.unwrap_or(DEFAULT_DESTROY_DAYS);
        if !DESTROY_DAYS.contains(&days) {
            return Err(KmsError::InvalidRequest(format!(
                "the destruction window is {}-{} days",
                DESTROY_DAYS.start(),
                DESTROY_DAYS.end()
            )));
        }
        let at = self.now() + i64::from(days) * 86_400;
        self.update(name, |record| {
            self.refuse_if_due(record, "put off a destruction whose time has come")?;
            if !record.state.may_schedule_destroy() {
                return Err(KmsError::StateForbids {
                    name: record.name.clone(),
                    state: record.state,
                    operation: "schedule destruction (deactivate the key first)",
                });
            }
            record.destroy_at = Some(at);
            Ok(())
        })
        .await
    }

    /// Cancels a scheduled destruction that is not due yet.
    pub async fn cancel_destroy(&self, name: &str) -> Result<KeyMetadata> {
        self.update(name, |record| {
            self.refuse_if_due(record, "cancel a destruction whose time has come")?;
            if record.state == KeyState::Destroyed {
                return Err(KmsError::StateForbids {
                    name: record.name.clone(),
                    state: record.state,
                    operation: "cancel a destruction carried out already",
                });
            }
            match record.destroy_at.take() {
                Some(_) => Ok(()),
                None => Err(KmsError::InvalidRequest(format!(
                    "key {:?} has no destruction scheduled",
                    record.name
                ))),
            }
        })
        .await
    }

    /// A destruction whose time has come is carried out (by the next sweep
    /// or request), never cancelled or put off: the schedule was the
    /// promise.
    fn refuse_if_due(&self, record: &KeyRecord, operation: &'static str) -> Result<()> {
        match self.destroy_due(record) {
            true => Err(KmsError::StateForbids {
                name: record.name.clone(),
                state: record.state,
                operation,
            }),
            false => Ok(()),
        }
    }

    /// Destroys the key now, whatever its state (an officer's decision):
    /// every version's material is deleted; metadata stays.
    pub async fn destroy_key_now(&self, name: &str) -> Result<KeyMetadata> {
        let name = KeyName::new(name)?;
        let record = self.fresh_record(&name).await?;
        if record.state == KeyState::Destroyed {
            return Err(KmsError::IllegalTransition {
                name: name.to_string(),
                from: record.state,
                to: KeyState::Destroyed,
            });
        }
        let record = self.destroy(&name, record, Destruction::Forced).await?;
        Ok(self.metadata(&record))
    }

    /// Carries out every scheduled destruction whose time has come. Servers
    /// call this periodically; reads of a due key also destroy it first.
    /// A key that cannot be destroyed now is reported once and left for
    /// the next sweep; the others are still destroyed. `Err` only when the
    /// due keys cannot be listed.
    pub async fn destroy_due_keys(&self) -> Result<DestructionSweep> {
        let mut sweep = DestructionSweep::default();
        let mut after = None;
        loop {
            let due = self
                .store
                .due_for_destruction(self.now(), after.as_ref(), MAX_PAGE)
                .await?;
            let last_page = due.len() < MAX_PAGE as usize;
            for key in &due {
                match self.destroy_if_due(&key.name).await {
                    Ok(true) => sweep.destroyed += 1,
                    Ok(false) => {}
                    Err(e) => sweep.failed.push((key.name.clone(), e)),
                }
            }
            // A key that failed stays due: the next page starts after it.
            if last_page {
                return Ok(sweep);
            }
            after = due.into_iter().last();
        }
    }

    /// Destroys the due key `name`; `false` if it turned out not to be due.
    async fn destroy_if_due(&self, name: &str) -> Result<bool> {
        let name = KeyName::new(name)?;
        // The turn a request that finds the key due takes too, so that
        // mostly one of them carries the destruction out (and tells its
        // witness) and the other finds it done. Not always: a turn is
        // waited for a while only, and a request that goes leaves it while
        // its destruction runs on. The store lets one delete; the other's
        // outcome says it was done meanwhile.
        let _turn = self.key_refreshes.lock(name.as_str()).await;
        let record = self.fresh_record(&name).await?;
        let record = self.destroy(&name, record, Destruction::Scheduled).await?;
        Ok(record.state == KeyState::Destroyed)
    }

    /// The public key of an asymmetric key's version (latest if `None`).
    pub async fn public_key(&self, name: &str, version: Option<u32>) -> Result<PublicKey> {
        let key_name = KeyName::new(name)?;
        let record = self.record(&key_name).await?;
        let key_type = key_type_of(&record)?;
        if !matches!(key_type, KeyType::Signing(_)) {
            return Err(KmsError::WrongKeyType {
                name: record.name.clone(),
                key_type: key_type.as_str(),
                operation: "have a public key",
            });
        }
        if record.state == KeyState::Destroyed {
            return Err(KmsError::StateForbids {
                name: record.name.clone(),
                state: record.state,
                operation: "public key export",
            });
        }
        let version = version.unwrap_or(record.latest_version);
        // Retired below the minimum, as verify refuses it: not handed out
        // for others to verify with either.
        if version < record.min_decryption_version {
            return Err(DecryptError::VersionTooOld {
                version,
                min: record.min_decryption_version,
            }
            .into());
        }
        // From the material, checked against the stored copy: a public key
        // put into the store by someone else would verify their signatures.
        let usable = self.usable(&key_name, key_type, version).await?;
        let der = usable.public_key(&key_name, version)?.to_vec();
        Ok(PublicKey {
            version,
            pem: pem("PUBLIC KEY", &der),
            der,
        })
    }

    pub(super) fn metadata(&self, record: &KeyRecord) -> KeyMetadata {
        let purpose = key_type_of(record).map_or(Purpose::EncryptDecrypt, KeyType::purpose);
        KeyMetadata {
            name: record.name.clone(),
            key_type: record.key_type.clone(),
            purpose,
            state: record.state,
            latest_version: record.latest_version,
            min_decryption_version: record.min_decryption_version,
            exportable: record.exportable,
            rotate_every_secs: record.rotate_every_secs,
            rotation_overdue: record.state.may_protect()
                && record
                    .rotate_every_secs
                    .is_some_and(|period| self.now() - record.rotated_at > period),
            created_at: record.created_at,
            rotated_at: record.rotated_at,
            destroy_at: record.destroy_at,
        }
    }

    /// New material for key `name`, wrapped under the root key bound to
    /// the key, marked with the root key: after a `rekey` the store
    /// refuses what a node still running with the old key would write,
    /// which no one holding the new key could read.
    fn new_version(&self, name: &KeyName, key_type: KeyType, now: i64) -> Result<NewVersion> {
        let material = key_type.generate()?;
        let place = Wrapped::Material {
            key: name.as_str(),
            key_type: key_type.as_str(),
            version: None,
        };
        Ok(NewVersion {
            created_at: now,
            wrapped_material: self.root.wrap(place, &material.secret)?,
            public_key: material.public_key,
            wrapped_under: self.root.check().to_vec(),
        })
    }

    async fn transition(&self, name: &str, to: KeyState) -> Result<KeyMetadata> {
        self.update(name, |record| {
            if !record.state.can_become(to) || to == KeyState::Destroyed {
                return Err(KmsError::IllegalTransition {
                    name: record.name.clone(),
                    from: record.state,
                    to,
                });
            }
            if to == KeyState::Active && record.destroy_at.is_some() {
                return Err(KmsError::StateForbids {
                    name: record.name.clone(),
                    state: record.state,
                    operation: "activation while a destruction is scheduled (cancel it first)",
                });
            }
            record.state = to;
            Ok(())
        })
        .await
    }

    /// Reads the key fresh from the store, applies `change`, and writes it
    /// back if nobody else changed it meanwhile (else tries again).
    async fn update(
        &self,
        name: &str,
        change: impl Fn(&mut KeyRecord) -> Result<()>,
    ) -> Result<KeyMetadata> {
        let name = KeyName::new(name)?;
        for _ in 0..UPDATE_ATTEMPTS {
            let mut record = self.fresh_record(&name).await?;
            change(&mut record)?;
            if self.store.update_key(&record).await? {
                self.forget_record(&name);
                record.revision += 1;
                return Ok(self.metadata(&record));
            }
        }
        Err(StoreError::Conflict(format!("key {name:?} kept changing; try again")).into())
    }

    /// Deletes every version's material and marks the key destroyed. A
    /// scheduled destruction re-checks on every attempt that it is still
    /// due, so a concurrent cancellation wins; its witness, if any, hears
    /// of it first and may hold it, and then hears how it ended. A
    /// witnessed one runs as a task of its own, which ends whether or not
    /// the request that found the key due still waits (its client gone):
    /// the witness has recorded the intent, and must hear the outcome.
    pub(super) async fn destroy(
        &self,
        name: &KeyName,
        record: KeyRecord,
        kind: Destruction,
    ) -> Result<KeyRecord> {
        let witness = match kind {
            Destruction::Scheduled if self.destroy_due(&record) => self.witness.get(),
            Destruction::Scheduled | Destruction::Forced => None,
        };
        let Some(witness) = witness.cloned() else {
            return Ok(self.shredder.shred(name, record, kind).await?.0);
        };
        let (shredder, name) = (self.shredder.clone(), name.clone());
        self.run_unattended(async move {
            shredder
                .shred_witnessed(witness.as_ref(), &name, record)
                .await
        })
        .await
    }

    /// Runs a witnessed change on a task of its own, which a stop waits for
    /// (see [`Kms::witness_lifecycle`]): once its witness heard of it, it
    /// must run to its end and be heard of again, whether or not the
    /// caller still waits. A panic in it is the caller's, as if it had run
    /// there; the task is cancelled only by a runtime shutting down.
    async fn run_unattended<T: Send + 'static>(
        &self,
        change: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        joined(self.unattended.spawn(change).await)
    }
}

/// What a task of the service's own ended with: its result; its panic,
/// resumed as if it had run in the caller; or, cancelled by a runtime
/// shutting down, the service stopping.
pub(super) fn joined<T>(
    ended: std::result::Result<Result<T>, tokio::task::JoinError>,
) -> Result<T> {
    match ended {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(StoreError::Unavailable("the service is stopping".into()).into()),
    }
}

/// Adds `version` after `limited`, the version that reached its encryption
/// limit, between the witness's hearing of the rotation (which may hold
/// it) and its hearing how it ended.
async fn add_version_witnessed(
    witness: &dyn LifecycleWitness,
    store: &dyn Store,
    name: &KeyName,
    limited: u32,
    version: NewVersion,
) -> Result<AddedVersion> {
    witness
        .before_rotation(name.as_str(), limited)
        .await
        .map_err(|why| KmsError::RotationHeld {
            name: name.to_string(),
            why,
        })?;
    let added = store
        .add_version(name.as_str(), &version, Some(limited))
        .await;
    let outcome = match &added {
        Ok(AddedVersion::Added(number)) => RotationOutcome::Rotated(*number),
        Ok(AddedVersion::Refused { state, .. }) if state.may_protect() => {
            RotationOutcome::NotDone("rotated meanwhile, by another request or node")
        }
        Ok(AddedVersion::Refused { .. }) => RotationOutcome::NotDone("the key is no longer active"),
        Ok(AddedVersion::NoSuchKey) => RotationOutcome::NotDone("the key is gone"),
        Ok(AddedVersion::NoneLeft) => {
            RotationOutcome::NotDone("the key has as many versions as a key can have")
        }
        Err(e) => RotationOutcome::Failed(e.to_string()),
    };
    witness
        .after_rotation(name.as_str(), limited, outcome)
        .await;
    Ok(added?)
}

/// What carrying out a destruction needs, shared with the service's own
/// fields, so that a witnessed one can run as a task of its own.
pub(super) struct Shredder {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub records: Arc<Cache<String, Arc<KeyRecord>>>,
    pub versions: Arc<Cache<(String, u32), Arc<CachedVersion>>>,
}

impl Shredder {
    /// Whether `record`'s scheduled destruction has come.
    pub fn due(&self, record: &KeyRecord) -> bool {
        record.destroy_at.is_some_and(|at| at <= self.clock.now())
    }

    /// Drops the material of the versions of `name` held unwrapped.
    pub fn forget_versions(&self, name: &KeyName) {
        self.versions.forget_where(|(key, _)| key == name.as_str());
    }

    /// [`shred`](Self::shred) a due key, between the witness's hearing of
    /// the destruction and its hearing how it ended.
    async fn shred_witnessed(
        &self,
        witness: &dyn LifecycleWitness,
        name: &KeyName,
        record: KeyRecord,
    ) -> Result<KeyRecord> {
        let due_at = record.destroy_at.unwrap_or_default();
        witness
            .before_destruction(name.as_str(), due_at)
            .await
            .map_err(|why| KmsError::DestructionHeld {
                name: name.to_string(),
                why,
            })?;
        let result = self.shred(name, record, Destruction::Scheduled).await;
        let outcome = match &result {
            Ok((_, true)) => DestructionOutcome::Destroyed,
            Ok((record, false)) if record.state == KeyState::Destroyed => {
                DestructionOutcome::NotDone("destroyed meanwhile, by another request or node")
            }
            Ok(_) => DestructionOutcome::NotDone("no longer due: cancelled or put off meanwhile"),
            Err(e) => DestructionOutcome::Failed(e.to_string()),
        };
        witness
            .after_destruction(name.as_str(), due_at, outcome)
            .await;
        Ok(result?.0)
    }

    /// Deletes the key's material (a few attempts, should the record
    /// change meanwhile): the record as the attempts left it, and whether
    /// this call destroyed the key.
    async fn shred(
        &self,
        name: &KeyName,
        mut record: KeyRecord,
        kind: Destruction,
    ) -> Result<(KeyRecord, bool)> {
        for _ in 0..UPDATE_ATTEMPTS {
            if record.state == KeyState::Destroyed
                || (kind == Destruction::Scheduled && !self.due(&record))
            {
                return Ok((record, false));
            }
            if self
                .store
                .destroy_key(name.as_str(), record.revision)
                .await?
            {
                self.records.forget(name.as_str());
                self.forget_versions(name);
                record.state = KeyState::Destroyed;
                record.destroy_at = None;
                record.revision += 1;
                return Ok((record, true));
            }
            record = stored_record(self.store.as_ref(), name).await?;
        }
        Err(StoreError::Conflict(format!("key {name:?} kept changing; try again")).into())
    }
}

/// Hears of every change to a key the service makes on its own, no
/// officer asking: a destruction a schedule carries out (whether a sweep
/// or a request found the key due), and a rotation at a version's
/// encryption limit. Before each is made, so that it can hold it, and how
/// it ended. The service's audit log is one: it records the change durably
/// first, and a log that cannot be written holds it, so no key is shredded
/// or rotated unattended without evidence.
#[async_trait::async_trait]
pub trait LifecycleWitness: Send + Sync {
    /// The key `key`, due at `due_at` (Unix seconds), is about to be
    /// destroyed. An error holds the destruction: the key stays due, keeps
    /// its material, and an operation that reads it is refused
    /// (`destruction_held`) until it can go ahead.
    async fn before_destruction(&self, key: &str, due_at: i64) -> std::result::Result<(), String>;
    /// How the destruction `before_destruction` heard of ended.
    async fn after_destruction(&self, key: &str, due_at: i64, outcome: DestructionOutcome);
    /// The key `key` is about to get a new version, as its version
    /// `limited` reached (or neared) its encryption limit. An error holds
    /// the rotation: the key keeps encrypting under `limited` while it has
    /// encryptions left, and is then refused (`rotation_held`).
    async fn before_rotation(&self, key: &str, limited: u32) -> std::result::Result<(), String>;
    /// How the rotation `before_rotation` heard of ended.
    async fn after_rotation(&self, key: &str, limited: u32, outcome: RotationOutcome);
}

/// How a scheduled destruction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestructionOutcome {
    /// Every version's material is deleted.
    Destroyed,
    /// Nothing was destroyed here, for this reason.
    NotDone(&'static str),
    /// The store failed; the key stays due.
    Failed(String),
}

/// How a rotation at the encryption limit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The key has this new version, which new encryptions use.
    Rotated(u32),
    /// No version was added here, for this reason.
    NotDone(&'static str),
    /// The store failed: the next encryption that finds the limit tries
    /// again. A failure that came after the store committed leaves the
    /// version added; the key's versions tell.
    Failed(String),
}

/// Why a key gets a new version.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rotation {
    /// An officer rotates it.
    Requested,
    /// This version's encryptions near or reached the limit; if another
    /// writer rotated first, its version serves.
    AtLimit(u32),
}

/// Why a key is being destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Destruction {
    /// Its scheduled time has come (and must still have come).
    Scheduled,
    /// An officer destroys it now.
    Forced,
}

fn check_cryptoperiod(period: Option<i64>) -> Result<()> {
    match period {
        Some(secs) if secs < 3600 => Err(KmsError::InvalidRequest(
            "rotate_every must be at least one hour".into(),
        )),
        _ => Ok(()),
    }
}

/// PEM armour (RFC 7468) around DER.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
