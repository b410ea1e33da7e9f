//! Bounded in-memory caches: key metadata for a short time (so every node
//! sees state changes within that time), and unwrapped, ready-to-use key
//! versions (immutable once created). Evicted entries drop their key
//! objects, which AWS-LC wipes.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::key_type::UsableKey;
use crate::store::KeyRecord;

/// A key version ready for use, with its share of reserved encryptions.
pub(crate) struct CachedVersion {
    pub key: UsableKey,
    pub encryptions: Mutex<Allowance>,
    /// Held while a new block of encryptions is reserved, so that the
    /// requests that find the allowance empty together make one store
    /// write between them, not one each.
    pub reserving: tokio::sync::Mutex<()>,
}

/// Encryptions this process may still perform under a version: counts
/// reserved durably in the store but not yet used. Lost on restart, which
/// only ever under-uses the limit.
#[derive(Default)]
pub(crate) struct Allowance {
    pub remaining: u64,
}

pub(crate) struct KeyCache {
    metadata: Mutex<LruCache<String, (KeyRecord, Instant)>>,
    versions: Mutex<LruCache<(String, u32), Arc<CachedVersion>>>,
    metadata_ttl: Duration,
}

impl KeyCache {
    pub fn new(capacity: usize, metadata_ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("at least 1");
        Self {
            metadata: Mutex::new(LruCache::new(capacity)),
            versions: Mutex::new(LruCache::new(capacity)),
            metadata_ttl,
        }
    }

    pub fn metadata(&self, name: &str) -> Option<KeyRecord> {
        let mut cache = lock(&self.metadata);
        match cache.get(name) {
            Some((record, at)) if at.elapsed() < self.metadata_ttl => Some(record.clone()),
            Some(_) => {
                cache.pop(name);
                None
            }
            None => None,
        }
    }

    pub fn put_metadata(&self, record: KeyRecord) {
        lock(&self.metadata).put(record.name.clone(), (record, Instant::now()));
    }

    /// Forgets a key after a change on this node, and its versions after a
    /// destruction.
    pub fn invalidate(&self, name: &str, versions_too: bool) {
        lock(&self.metadata).pop(name);
        if versions_too {
            let mut versions = lock(&self.versions);
            let doomed: Vec<_> = versions
                .iter()
                .filter(|((n, _), _)| n == name)
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                versions.pop(&k);
            }
        }
    }

    pub fn version(&self, name: &str, version: u32) -> Option<Arc<CachedVersion>> {
        lock(&self.versions)
            .get(&(name.to_owned(), version))
            .cloned()
    }

    pub fn put_version(&self, name: &str, version: u32, cached: Arc<CachedVersion>) {
        lock(&self.versions).put((name.to_owned(), version), cached);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Locks that make concurrent misses of one cache entry wait for a single
/// store round trip instead of each making its own: under load, an entry
/// that expires is wanted by every request in flight at that moment.
/// Entries share a lock by hash (a fixed set, whatever the number of keys).
pub(crate) struct Refreshes([tokio::sync::Mutex<()>; REFRESH_STRIPES]);

const REFRESH_STRIPES: usize = 64;

impl Refreshes {
    pub fn new() -> Self {
        Self(std::array::from_fn(|_| tokio::sync::Mutex::new(())))
    }

    /// Waits for the refresh of `entry`'s stripe to be this caller's.
    pub async fn lock(&self, entry: impl Hash) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        entry.hash(&mut hasher);
        self.0[hasher.finish() as usize % REFRESH_STRIPES]
            .lock()
            .await
    }
}
