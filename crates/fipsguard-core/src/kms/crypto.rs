//! Cryptographic operations under managed keys.

use std::sync::Arc;
use std::time::Instant;

use fipsguard_crypto::digest::HashAlgorithm;
use fipsguard_crypto::sign::{verify as verify_message, verify_digest, SignatureScheme};
use fipsguard_crypto::{random, SecretBytes};

use super::lifecycle::Rotation;
use super::{key_type_of, Kms};
use crate::cache::{within_refresh_wait, CachedVersion};
use crate::ciphertext::{self, additional_data, Ciphertext};
use crate::context::EncryptionContext;
use crate::error::{DecryptError, KmsError, Result};
use crate::key_type::{KeyType, UsableKey};
use crate::lifecycle::KeyState;
use crate::name::KeyName;
use crate::store::{KeyRecord, Reservation};

/// Most items a batch request may carry.
pub const MAX_BATCH: usize = 1000;
/// Most random bytes one request may ask for.
pub const MAX_RANDOM: usize = 1024;

/// A data key for envelope encryption: use `plaintext` locally, store
/// `ciphertext` beside the data, forget `plaintext`.
#[derive(Debug)]
pub struct DataKey {
    /// The key itself (zeroized on drop).
    pub plaintext: SecretBytes,
    /// The key encrypted under the managed key (`fg:v…`).
    pub ciphertext: String,
}

/// What to sign or verify: the message, or its digest under the scheme's hash.
#[derive(Clone, Copy)]
pub enum SignInput<'a> {
    /// The message itself.
    Message(&'a [u8]),
    /// A digest the caller computed, and the hash it used (which must be
    /// the scheme's).
    Digest(HashAlgorithm, &'a [u8]),
}

impl std::fmt::Debug for SignInput<'_> {
    /// Lengths only: what is signed may be confidential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Message(m) => write!(f, "Message([{} bytes])", m.len()),
            Self::Digest(hash, d) => write!(f, "Digest({}, [{} bytes])", hash.name(), d.len()),
        }
    }
}

/// A signature and the key version that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The version that signed.
    pub version: u32,
    /// The scheme used.
    pub scheme: SignatureScheme,
    /// The signature bytes.
    pub bytes: Vec<u8>,
}

/// A MAC tag and the key version that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacTag {
    /// The version that computed it.
    pub version: u32,
    /// The tag bytes.
    pub bytes: Vec<u8>,
}

impl Kms {
    /// Encrypts up to `max_plaintext` bytes under the key's newest version.
    pub async fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<String> {
        if plaintext.len() > self.config.max_plaintext {
            return Err(KmsError::InvalidRequest(format!(
                "plaintext is larger than {} bytes; encrypt large data locally with a data key",
                self.config.max_plaintext
            )));
        }
        let name = KeyName::new(name)?;
        let (record, _) = self
            .protecting(&name, "encrypt", |t| t == KeyType::Aes256Gcm)
            .await?;
        let (version, cached) = self.take_encryption(&name, &record).await?;
        let UsableKey::Aes(key) = &cached.key else {
            unreachable!("checked to be AES")
        };
        ciphertext::seal(key, &name, version, context, plaintext)
    }

    /// Decrypts a ciphertext made by [`encrypt`](Self::encrypt) under this key and context.
    pub async fn decrypt(
        &self,
        name: &str,
        ciphertext: &str,
        context: &EncryptionContext,
    ) -> Result<SecretBytes> {
        self.decrypt_asked_at(name, ciphertext, context, Instant::now())
            .await
    }

    /// [`Kms::decrypt`] for a request made at `asked`, whose ciphertext the
    /// key's record as read since then knows the version of.
    async fn decrypt_asked_at(
        &self,
        name: &str,
        ciphertext: &str,
        context: &EncryptionContext,
        asked: Instant,
    ) -> Result<SecretBytes> {
        let name = KeyName::new(name)?;
        let parsed = Ciphertext::parse(ciphertext)?;
        if parsed.key_name != name.as_str() {
            return Err(DecryptError::WrongKey {
                expected: name.to_string(),
                actual: parsed.key_name,
            }
            .into());
        }
        let record = self
            .processing(&name, parsed.version, asked, "decrypt", |t| {
                t == KeyType::Aes256Gcm
            })
            .await?;
        if parsed.context_fingerprint != context.fingerprint()? {
            return Err(DecryptError::ContextMismatch.into());
        }
        let cached = self
            .usable(&name, key_type_of(&record)?, parsed.version)
            .await?;
        let UsableKey::Aes(key) = &cached.key else {
            unreachable!("checked to be AES")
        };
        let mut buffer = SecretBytes::new(parsed.sealed);
        let len = key
            .open_in_place(
                &parsed.iv,
                &additional_data(&name, parsed.version, context),
                buffer.expose_secret_mut(),
            )
            .map_err(|_| DecryptError::Tampered)?
            .len();
        buffer.truncate(len);
        Ok(buffer)
    }

    /// Decrypts and encrypts again under the newest version, without
    /// releasing the plaintext.
    pub async fn rewrap(
        &self,
        name: &str,
        ciphertext: &str,
        context: &EncryptionContext,
    ) -> Result<String> {
        let plaintext = self.decrypt(name, ciphertext, context).await?;
        self.encrypt(name, plaintext.expose_secret(), context).await
    }

    /// Generates a data key of `len` bytes (16-64) and returns it with its
    /// encryption under the key.
    pub async fn generate_data_key(
        &self,
        name: &str,
        len: usize,
        context: &EncryptionContext,
    ) -> Result<DataKey> {
        if !(16..=64).contains(&len) {
            return Err(KmsError::InvalidRequest("data keys are 16-64 bytes".into()));
        }
        let plaintext = random::secret(len)?;
        let ciphertext = self
            .encrypt(name, plaintext.expose_secret(), context)
            .await?;
        Ok(DataKey {
            plaintext,
            ciphertext,
        })
    }

    /// Generates a data key and returns only its encryption, for a holder
    /// that will decrypt it later.
    pub async fn generate_wrapped_data_key(
        &self,
        name: &str,
        len: usize,
        context: &EncryptionContext,
    ) -> Result<String> {
        Ok(self.generate_data_key(name, len, context).await?.ciphertext)
    }

    /// Signs with the newest version; `scheme` defaults to the key type's.
    pub async fn sign(
        &self,
        name: &str,
        input: SignInput<'_>,
        scheme: Option<SignatureScheme>,
    ) -> Result<Signature> {
        let name = KeyName::new(name)?;
        let (record, key_type) = self
            .protecting(&name, "sign", |t| matches!(t, KeyType::Signing(_)))
            .await?;
        let scheme = scheme
            .or(key_type.default_scheme())
            .expect("signing keys have a scheme");
        let cached = self.usable(&name, key_type, record.latest_version).await?;
        let UsableKey::Sign(key) = &cached.key else {
            unreachable!("checked to be a signing key")
        };
        let bytes = match input {
            SignInput::Message(message) => key.sign(scheme, message)?,
            SignInput::Digest(hash, digest) => {
                key.sign_digest(digest_scheme(scheme, hash)?, digest)?
            }
        };
        Ok(Signature {
            version: record.latest_version,
            scheme,
            bytes,
        })
    }

    /// Verifies a signature made by `version` of the key. `Ok(false)` means
    /// it does not verify; errors mean the request could not be checked.
    pub async fn verify(
        &self,
        name: &str,
        version: u32,
        input: SignInput<'_>,
        scheme: Option<SignatureScheme>,
        signature: &[u8],
    ) -> Result<bool> {
        let name = KeyName::new(name)?;
        let record = self
            .processing(&name, version, Instant::now(), "verify", |t| {
                matches!(t, KeyType::Signing(_))
            })
            .await?;
        let key_type = key_type_of(&record)?;
        let scheme = scheme
            .or(key_type.default_scheme())
            .expect("signing keys have a scheme");
        let usable = self.usable(&name, key_type, version).await?;
        let public_key = usable.public_key(&name, version)?;
        let outcome = match input {
            SignInput::Message(message) => verify_message(scheme, public_key, message, signature),
            SignInput::Digest(hash, digest) => {
                verify_digest(digest_scheme(scheme, hash)?, public_key, digest, signature)
            }
        };
        match outcome {
            Ok(()) => Ok(true),
            Err(fipsguard_crypto::Error::VerificationFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Computes a MAC with the newest version.
    pub async fn mac(&self, name: &str, data: &[u8]) -> Result<MacTag> {
        let name = KeyName::new(name)?;
        let (record, key_type) = self
            .protecting(&name, "generate a MAC", |t| matches!(t, KeyType::Hmac(_)))
            .await?;
        let cached = self.usable(&name, key_type, record.latest_version).await?;
        let UsableKey::Mac(key) = &cached.key else {
            unreachable!("checked to be an HMAC key")
        };
        Ok(MacTag {
            version: record.latest_version,
            bytes: key.sign(data)?,
        })
    }

    /// Verifies a MAC made by `version` of the key, in constant time.
    pub async fn mac_verify(
        &self,
        name: &str,
        version: u32,
        data: &[u8],
        tag: &[u8],
    ) -> Result<bool> {
        let name = KeyName::new(name)?;
        let record = self
            .processing(&name, version, Instant::now(), "verify a MAC", |t| {
                matches!(t, KeyType::Hmac(_))
            })
            .await?;
        let cached = self.usable(&name, key_type_of(&record)?, version).await?;
        let UsableKey::Mac(key) = &cached.key else {
            unreachable!("checked to be an HMAC key")
        };
        match key.verify(data, tag) {
            Ok(()) => Ok(true),
            Err(fipsguard_crypto::Error::VerificationFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Random bytes from the module's DRBG (1-1024).
    pub fn random(&self, len: usize) -> Result<SecretBytes> {
        if !(1..=MAX_RANDOM).contains(&len) {
            return Err(KmsError::InvalidRequest(format!(
                "random requests are 1-{MAX_RANDOM} bytes"
            )));
        }
        Ok(random::secret(len)?)
    }

    /// Encrypts up to 1000 items; each has its own result.
    pub async fn encrypt_batch(
        &self,
        name: &str,
        items: &[(SecretBytes, EncryptionContext)],
    ) -> Result<Vec<Result<String>>> {
        each(items, |(plaintext, context)| {
            self.encrypt(name, plaintext.expose_secret(), context)
        })
        .await
    }

    /// Decrypts up to 1000 items; each has its own result.
    pub async fn decrypt_batch(
        &self,
        name: &str,
        items: &[(String, EncryptionContext)],
    ) -> Result<Vec<Result<SecretBytes>>> {
        // Every ciphertext existed when the batch came: one read of the key
        // since then knows every version they can name.
        let asked = Instant::now();
        each(items, |(ciphertext, context)| {
            self.decrypt_asked_at(name, ciphertext, context, asked)
        })
        .await
    }

    /// Signs up to 1000 inputs; each has its own result.
    pub async fn sign_batch(
        &self,
        name: &str,
        items: &[SignInput<'_>],
        scheme: Option<SignatureScheme>,
    ) -> Result<Vec<Result<Signature>>> {
        each(items, |input| self.sign(name, *input, scheme)).await
    }

    /// The record of a key that may protect new data with an operation its
    /// type offers.
    async fn protecting(
        &self,
        name: &KeyName,
        operation: &'static str,
        offers: impl Fn(KeyType) -> bool,
    ) -> Result<(Arc<KeyRecord>, KeyType)> {
        let record = self.record(name).await?;
        let key_type = self.offering(&record, operation, offers)?;
        if !record.state.may_protect() {
            return Err(KmsError::StateForbids {
                name: record.name.clone(),
                state: record.state,
                operation,
            });
        }
        Ok((record, key_type))
    }

    /// The record of a key whose `version` may process protected data, for
    /// a request made at `asked`.
    async fn processing(
        &self,
        name: &KeyName,
        version: u32,
        asked: Instant,
        operation: &'static str,
        offers: impl Fn(KeyType) -> bool,
    ) -> Result<Arc<KeyRecord>> {
        let mut record = self.record(name).await?;
        if version > record.latest_version {
            // Another node may have rotated since this one cached the key
            // (or the caller made the version up).
            record = self.record_read_since(name, asked).await?;
        }
        self.offering(&record, operation, offers)?;
        match record.state {
            KeyState::Destroyed => return Err(DecryptError::VersionDestroyed(version).into()),
            state if !state.may_process() => {
                return Err(KmsError::StateForbids {
                    name: record.name.clone(),
                    state,
                    operation,
                })
            }
            _ => {}
        }
        if version > record.latest_version {
            return Err(KmsError::VersionNotFound {
                name: record.name.clone(),
                version,
            });
        }
        if version < record.min_decryption_version {
            return Err(DecryptError::VersionTooOld {
                version,
                min: record.min_decryption_version,
            }
            .into());
        }
        Ok(record)
    }

    fn offering(
        &self,
        record: &KeyRecord,
        operation: &'static str,
        offers: impl Fn(KeyType) -> bool,
    ) -> Result<KeyType> {
        let key_type = key_type_of(record)?;
        match offers(key_type) {
            true => Ok(key_type),
            false => Err(KmsError::WrongKeyType {
                name: record.name.clone(),
                key_type: key_type.as_str(),
                operation,
            }),
        }
    }

    /// Takes one encryption from the newest version's allowance. The next
    /// block is reserved in the store while a quarter of this one is left,
    /// or else by the request that finds the allowance empty. A version
    /// whose reserved total crosses `rotate_at` rotates the key; one that
    /// reached the hard limit hands over to the next version. Reservations
    /// are durable before use, so no restart or crash can let a version
    /// pass the limit.
    async fn take_encryption(
        &self,
        name: &KeyName,
        record: &KeyRecord,
    ) -> Result<(u32, Arc<CachedVersion>)> {
        let mut version = record.latest_version;
        for _ in 0..2 {
            let cached = self.usable(name, KeyType::Aes256Gcm, version).await?;
            if let Some(left) = cached.encryptions.take_one() {
                // Exactly one take leaves the mark, so one request reserves.
                if left == self.reserve_ahead_at() {
                    self.reserve_ahead(name, version, &cached).await;
                }
                return Ok((version, cached));
            }
            if !cached.encryptions.at_limit() && self.refill(name, version, &cached).await? {
                return Ok((version, cached));
            }
            version = self.rotate(name, Rotation::AtLimit(version)).await?;
        }
        Err(KmsError::EncryptionLimit {
            name: name.to_string(),
            version,
            limit: self.config.encryption_limit,
        })
    }

    /// What is left of a version's allowance when the next block is
    /// reserved: a quarter of a block.
    fn reserve_ahead_at(&self) -> u64 {
        self.config.reservation_block / 4
    }

    /// Whether a version with `left` encryptions should have its next block
    /// reserved now: a quarter or less left, and the store has more.
    fn next_block_due(&self, cached: &CachedVersion, left: u64) -> bool {
        left <= self.reserve_ahead_at() && !cached.encryptions.at_limit()
    }

    /// Reserves the next block for the allowance; best effort, as the
    /// request that empties the allowance reserves (and reports a failing
    /// store) anyway.
    async fn reserve_next_block(
        &self,
        name: &KeyName,
        version: u32,
        cached: &CachedVersion,
    ) -> Option<Reservation> {
        let block = self.config.reservation_block;
        self.reserve_block(name, version, cached, block, 0)
            .await
            .ok()
    }

    /// Reserves the next block while a quarter of this one is left, so that
    /// requests under a busy key do not all wait for a store write when it
    /// runs out: one request per block waits for it instead. Skipped while
    /// another request reserves.
    async fn reserve_ahead(&self, name: &KeyName, version: u32, cached: &CachedVersion) {
        let reservation = {
            let Ok(_reserving) = cached.reserving.try_lock() else {
                return;
            };
            // Another request may have reserved between the take and the lock.
            if !self.next_block_due(cached, cached.encryptions.left()) {
                return;
            }
            self.reserve_next_block(name, version, cached).await
        };
        if let Some(reservation) = reservation {
            self.rotate_if_due(name, version, &reservation).await;
        }
    }

    /// For a request that found the allowance empty: takes one encryption
    /// once it holds the version's reservation lock, from what the request
    /// before it reserved, or from a block it reserves itself. Requests
    /// queued for the lock take from a new block one by one, under the
    /// lock, where the fast path's mark is not seen: the one that leaves a
    /// quarter of it reserves the next block here. Without the lock (the
    /// store answers slower than the refresh wait) a request reserves only
    /// its own encryption, so that requests that stop waiting together do
    /// not each take a block of the version's budget. `false` once the
    /// version reached its hard limit.
    async fn refill(&self, name: &KeyName, version: u32, cached: &CachedVersion) -> Result<bool> {
        let reserving = within_refresh_wait(cached.reserving.lock()).await;
        let reservation = match cached.encryptions.take_one() {
            Some(left) if reserving.is_some() && self.next_block_due(cached, left) => {
                self.reserve_next_block(name, version, cached).await
            }
            Some(_) => None,
            // The holder before found the limit: nothing more to ask for.
            None if cached.encryptions.at_limit() => return Ok(false),
            None => {
                let block = self.config.reservation_block;
                let count = if reserving.is_some() { block } else { 1 };
                let reservation = self.reserve_block(name, version, cached, count, 1).await?;
                if reservation.granted == 0 {
                    return Ok(false);
                }
                Some(reservation)
            }
        };
        drop(reserving);
        if let Some(reservation) = reservation {
            self.rotate_if_due(name, version, &reservation).await;
        }
        Ok(true)
    }

    /// Reserves `count` more encryptions under `version` in the store and
    /// adds them to the allowance, less the `taken` the caller uses at
    /// once. A grant short of `count` means the version reached its limit.
    async fn reserve_block(
        &self,
        name: &KeyName,
        version: u32,
        cached: &CachedVersion,
        count: u64,
        taken: u64,
    ) -> Result<Reservation> {
        let reservation = self
            .store
            .reserve_encryptions(name.as_str(), version, count, self.config.encryption_limit)
            .await?;
        cached
            .encryptions
            .add(reservation.granted.saturating_sub(taken));
        // After the last grant is in the allowance: a request that sees the
        // flag and an empty allowance hands over to the next version.
        if reservation.granted < count {
            cached.encryptions.reached_limit();
        }
        Ok(reservation)
    }

    /// Rotates the key once a reservation brought the version's total to
    /// `rotate_at`, or found it at the hard limit (its last encryptions are
    /// in the allowance, and the next version can take over now). Best
    /// effort, and never under the version's reservation lock: the next
    /// reservation tries again, and the hard limit holds either way.
    async fn rotate_if_due(&self, name: &KeyName, version: u32, reservation: &Reservation) {
        if reservation.granted == 0 || reservation.total >= self.config.rotate_at {
            let _ = self.rotate(name, Rotation::AtLimit(version)).await;
        }
    }
}

/// Checks a digest was made with the hash the scheme signs with.
fn digest_scheme(scheme: SignatureScheme, hash: HashAlgorithm) -> Result<SignatureScheme> {
    match scheme.hash() {
        Some(expected) if expected == hash => Ok(scheme),
        Some(expected) => Err(KmsError::InvalidRequest(format!(
            "the digest is {} but {} signs {} digests",
            hash.name(),
            scheme.name(),
            expected.name()
        ))),
        None => Ok(scheme), // the boundary refuses it, naming its rule
    }
}

/// Runs `op` on each item of a batch of 1-1000, keeping each result. The
/// first item the service fails fails the whole batch: the items after it
/// would most likely fail the same way, each only after its own wait (a
/// store that does not answer), and the batch is to be tried again whole.
async fn each<'a, I, T, F, Fut>(items: &'a [I], op: F) -> Result<Vec<Result<T>>>
where
    F: Fn(&'a I) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    if !(1..=MAX_BATCH).contains(&items.len()) {
        return Err(KmsError::InvalidRequest(format!(
            "a batch holds 1-{MAX_BATCH} items"
        )));
    }
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        match op(item).await {
            Err(e) if e.is_service_failure() => return Err(e),
            result => results.push(result),
        }
        // A batch of 1000 signatures takes a while: let other requests
        // (health checks among them) run between items.
        tokio::task::yield_now().await;
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[tokio::test]
    async fn a_batch_stops_at_the_first_item_the_service_fails() {
        let tried = std::sync::atomic::AtomicUsize::new(0);
        let items = [1, 2, 3, 4];
        let result = each(&items, |item| {
            tried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                match item {
                    2 => Err(KmsError::KeyNotFound("k".into())),
                    3 => Err(StoreError::Unavailable("no answer".into()).into()),
                    _ => Ok(*item),
                }
            }
        })
        .await;
        assert!(
            matches!(result, Err(KmsError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
        assert_eq!(tried.into_inner(), 3, "the item after it is not tried");

        // Items refused for their own reasons are answered one by one.
        let results = each(&items, |item| async move {
            match item {
                2 => Err(KmsError::KeyNotFound("k".into())),
                _ => Ok(*item),
            }
        })
        .await
        .unwrap();
        assert_eq!(results.len(), 4);
        assert!(matches!(results[1], Err(KmsError::KeyNotFound(_))));
    }
}
