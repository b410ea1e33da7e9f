//! Bounded in-memory caches: key metadata and tokens for a short time (so
//! every node sees state changes within that time), and unwrapped,
//! ready-to-use key versions (immutable once created). Evicted entries drop
//! their key objects, which AWS-LC wipes.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, RandomState};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::error::Result;
use crate::key_type::UsableKey;
use crate::name::KeyName;
use crate::store::StoreError;

/// A key version ready for use, with its share of reserved encryptions.
pub(crate) struct CachedVersion {
    pub key: UsableKey,
    /// The public key its private key makes (asymmetric keys): what
    /// verification and export use, never the stored copy.
    pub own_public_key: Option<Vec<u8>>,
    pub encryptions: Allowance,
    /// Held while a new block of encryptions is reserved (ahead, or by
    /// requests that find the allowance empty), so that they make one store
    /// write between them, not one each. A request that waits longer than
    /// the refresh wait reserves only its own encryption. Never held
    /// across a rotation.
    pub reserving: tokio::sync::Mutex<()>,
}

impl CachedVersion {
    /// The public key of `name`'s `version`, which this is: the one its
    /// private key makes.
    pub fn public_key(&self, name: &KeyName, version: u32) -> Result<&[u8]> {
        self.own_public_key.as_deref().ok_or_else(|| {
            StoreError::Corrupt(format!("key {name} version {version} has no public key")).into()
        })
    }
}

/// Encryptions this process may still perform under a version: counts
/// reserved durably in the store but not yet used. Lost on restart, which
/// only ever under-uses the limit. Taken without a lock: every encryption
/// takes one, on whichever worker serves it.
#[derive(Default)]
pub(crate) struct Allowance {
    remaining: AtomicU64,
    /// Set once the store granted less than asked: the version reached its
    /// limit, and nothing more will be granted.
    at_limit: AtomicBool,
}

impl Allowance {
    /// Takes one encryption, returning how many are left after it; `None`
    /// when none was left to take.
    pub fn take_one(&self) -> Option<u64> {
        self.remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .ok()
            .map(|before| before - 1)
    }

    /// How many are left now.
    pub fn left(&self) -> u64 {
        self.remaining.load(Ordering::Acquire)
    }

    /// Adds encryptions newly reserved in the store.
    pub fn add(&self, count: u64) {
        self.remaining.fetch_add(count, Ordering::AcqRel);
    }

    /// Records that the store will grant no more.
    pub fn reached_limit(&self) {
        self.at_limit.store(true, Ordering::Release);
    }

    /// Whether the store will grant no more.
    pub fn at_limit(&self) -> bool {
        self.at_limit.load(Ordering::Acquire)
    }
}

/// An LRU cache whose entries may also age out (then ordered by when they
/// were last read from the store, not last used), and in which a change made
/// on this node wins over every store read that began before it: a read
/// takes a [`Ticket`] first, and its result is kept only if nothing was
/// forgotten since. Without that, a read racing a revocation or a
/// destruction could put the old state back after the change.
pub(crate) struct Cache<K: Hash + Eq, V> {
    inner: Mutex<Entries<K, V>>,
    ttl: Option<Duration>,
}

struct Entries<K: Hash + Eq, V> {
    lru: LruCache<K, (V, Instant)>,
    /// Counts forgets; a ticket from an older count is void.
    generation: u64,
}

/// Taken before a store read whose result may go into a [`Cache`]: the
/// generation it was taken in, and when, so that an entry ages from the
/// moment its read began (a slow store must not stretch the time another
/// node's change takes to be seen here).
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    generation: u64,
    taken: Instant,
}

/// What a [`Cache`] holds for a key.
pub(crate) enum Lookup<V> {
    Fresh(V),
    /// An entry too old to trust, with what it said.
    Stale(V),
    Absent,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    /// `ttl: None` keeps entries until evicted or forgotten.
    pub fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("at least 1");
        Self {
            inner: Mutex::new(Entries {
                lru: LruCache::new(capacity),
                generation: 0,
            }),
            ttl,
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Lookup<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries();
        // An entry that ages out is put again by the read that follows,
        // which makes it the most recent: a hit need not relink the list
        // (writes to the entry's and its neighbours' lines, which the
        // workers then pass back and forth) to keep the ones in use.
        let found = match self.ttl {
            Some(_) => entries.lru.peek(key),
            None => entries.lru.get(key),
        };
        match found {
            Some((value, at)) if self.fresh_since(*at) => Lookup::Fresh(value.clone()),
            Some((value, _)) => Lookup::Stale(value.clone()),
            None => Lookup::Absent,
        }
    }

    pub fn fresh<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.get(key) {
            Lookup::Fresh(value) => Some(value),
            Lookup::Stale(_) | Lookup::Absent => None,
        }
    }

    /// The entry for `key` if it is fresh and its read began at or after
    /// `since`.
    pub fn read_since<Q>(&self, key: &Q, since: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries();
        let (value, at) = entries.lru.peek(key)?;
        (self.fresh_since(*at) && *at >= since).then(|| value.clone())
    }

    /// Whether an entry whose read began at `at` is still fresh.
    fn fresh_since(&self, at: Instant) -> bool {
        self.ttl.is_none_or(|ttl| at.elapsed() < ttl)
    }

    pub fn ticket(&self) -> Ticket {
        Ticket {
            generation: self.entries().generation,
            taken: Instant::now(),
        }
    }

    /// Keeps `value` unless something was forgotten since `ticket` was taken.
    pub fn put(&self, ticket: Ticket, key: K, value: V) {
        let mut entries = self.entries();
        if entries.generation == ticket.generation {
            entries.lru.put(key, (value, ticket.taken));
        }
    }

    /// Like [`put`](Self::put), but an entry already there (another
    /// request's, which others may be using) stays and is returned instead.
    pub fn keep(&self, ticket: Ticket, key: K, value: V) -> V {
        let mut entries = self.entries();
        if entries.generation != ticket.generation {
            return value;
        }
        if let Some((existing, _)) = entries.lru.get(&key) {
            return existing.clone();
        }
        entries.lru.put(key, (value.clone(), ticket.taken));
        value
    }

    /// Forgets `key` after a change on this node. Reads under way are
    /// voided too, so only changes, never requests, may call this: any
    /// caller voids the reads of every key.
    pub fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries();
        entries.generation += 1;
        entries.lru.pop(key);
    }

    /// Drops `key`'s entry so the next request reads it again, leaving
    /// reads under way alone: for requests that find an entry out of date.
    pub fn evict<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries().lru.pop(key);
    }

    /// Forgets every entry `doomed` picks after a change on this node
    /// (reads under way voided, as by [`forget`](Self::forget)).
    pub fn forget_where(&self, doomed: impl Fn(&K) -> bool)
    where
        K: Clone,
    {
        let mut entries = self.entries();
        entries.generation += 1;
        let keys: Vec<K> = entries
            .lru
            .iter()
            .filter(|(key, _)| doomed(key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            entries.lru.pop(&key);
        }
    }

    /// How many entries are held now.
    pub fn len(&self) -> usize {
        self.entries().lru.len()
    }

    /// The keys held now.
    pub fn keys(&self) -> Vec<K>
    where
        K: Clone,
    {
        self.entries()
            .lru
            .iter()
            .map(|(key, _)| key.clone())
            .collect()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a request waits for another's store round trip for the same
/// entry before making its own: long enough for a healthy store, short
/// enough that a failing or slow one does not line requests up behind it.
const REFRESH_WAIT: Duration = Duration::from_millis(200);

/// Waits for `turn` (a lock, a permit) no longer than [`REFRESH_WAIT`];
/// `None` means the caller goes ahead without it.
pub(crate) async fn within_refresh_wait<T>(
    turn: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::time::timeout(REFRESH_WAIT, turn).await.ok()
}

/// Locks that make concurrent misses of one cache entry wait for a single
/// store round trip instead of each making its own: under load, an entry
/// that expires is wanted by every request in flight at that moment.
/// Entries share a lock by a hash seeded per process (so nobody outside can
/// aim many entries at one lock), from a fixed set whatever the number of
/// keys.
pub(crate) struct Refreshes {
    stripes: [tokio::sync::Mutex<()>; REFRESH_STRIPES],
    seed: RandomState,
}

const REFRESH_STRIPES: usize = 64;

impl Refreshes {
    pub fn new() -> Self {
        Self {
            stripes: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            seed: RandomState::new(),
        }
    }

    /// Waits (within [`REFRESH_WAIT`]) for the refresh of `entry`'s stripe
    /// to be this caller's.
    pub async fn lock(&self, entry: impl Hash) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let stripe = &self.stripes[self.seed.hash_one(entry) as usize % REFRESH_STRIPES];
        within_refresh_wait(stripe.lock()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowance_gives_each_encryption_once_across_threads() {
        const COUNT: u64 = 200_000;
        let allowance = Allowance::default();
        assert_eq!(allowance.take_one(), None);
        allowance.add(COUNT);
        let start = std::sync::Barrier::new(4);
        let mut lefts: Vec<u64> = std::thread::scope(|scope| {
            let take_all = || {
                start.wait();
                std::iter::from_fn(|| allowance.take_one()).collect::<Vec<_>>()
            };
            let takers: Vec<_> = (0..4).map(|_| scope.spawn(take_all)).collect();
            takers.into_iter().flat_map(|t| t.join().unwrap()).collect()
        });
        lefts.sort_unstable();
        assert_eq!(
            lefts,
            (0..COUNT).collect::<Vec<u64>>(),
            "each count taken once"
        );
        assert_eq!((allowance.left(), allowance.take_one()), (0, None));
    }

    #[test]
    fn a_read_begun_before_a_forget_does_not_put_the_old_state_back() {
        let cache = Cache::new(8, None);
        let ticket = cache.ticket();
        cache.forget("token-1"); // the revocation lands while the read is out
        cache.put(ticket, "token-1".to_owned(), "live");
        assert!(matches!(cache.get("token-1"), Lookup::Absent));

        let ticket = cache.ticket();
        cache.put(ticket, "token-1".to_owned(), "revoked");
        assert_eq!(cache.fresh("token-1"), Some("revoked"));
    }

    #[test]
    fn an_entry_ages_from_when_its_read_began() {
        let ttl = Duration::from_millis(50);
        let cache = Cache::new(8, Some(ttl));
        let ticket = cache.ticket();
        std::thread::sleep(ttl); // a store that answers slowly
        cache.put(ticket, "token-1".to_owned(), "live");
        assert!(matches!(cache.get("token-1"), Lookup::Stale("live")));
    }

    #[test]
    fn an_eviction_by_a_request_voids_no_read() {
        let cache = Cache::new(8, None);
        cache.put(cache.ticket(), "key-a".to_owned(), 1);
        let ticket = cache.ticket();
        cache.evict("key-a");
        assert!(matches!(cache.get("key-a"), Lookup::Absent));
        cache.put(ticket, "key-b".to_owned(), 2);
        assert_eq!(cache.fresh("key-b"), Some(2));
    }

    #[test]
    fn keep_returns_the_entry_already_there() {
        let cache = Cache::new(8, None);
        let (first, second) = (cache.ticket(), cache.ticket());
        assert_eq!(cache.keep(first, "version".to_owned(), 1), 1);
        assert_eq!(cache.keep(second, "version".to_owned(), 2), 1);
        let stale = cache.ticket();
        cache.forget("version");
        assert_eq!(cache.keep(stale, "version".to_owned(), 3), 3);
        assert!(matches!(cache.get("version"), Lookup::Absent));
    }

    #[test]
    fn entries_age_into_stale_and_keep_their_value() {
        let cache = Cache::new(8, Some(Duration::ZERO));
        cache.put(cache.ticket(), "key".to_owned(), 1);
        assert!(matches!(cache.get("key"), Lookup::Stale(1)));
        assert!(matches!(cache.get("other"), Lookup::Absent));
    }

    #[test]
    fn a_full_cache_evicts_by_last_use_or_for_ageing_entries_by_last_read() {
        let fill = |cache: &Cache<String, u32>| {
            for (key, value) in [("a", 1), ("b", 2)] {
                cache.put(cache.ticket(), key.to_owned(), value);
            }
            assert_eq!(cache.fresh("a"), Some(1));
            cache.put(cache.ticket(), "c".to_owned(), 3);
            cache.keys()
        };
        let mut kept = fill(&Cache::new(2, None));
        kept.sort();
        assert_eq!(kept, ["a", "c"], "used since, so kept");
        let mut kept = fill(&Cache::new(2, Some(Duration::from_secs(60))));
        kept.sort();
        assert_eq!(kept, ["b", "c"], "read from the store first, so evicted");
    }

    #[test]
    fn forget_where_drops_every_match_and_keeps_the_rest() {
        let cache = Cache::new(8, None);
        for entry in [("a", 1), ("a", 2), ("b", 1)] {
            cache.put(cache.ticket(), (entry.0.to_owned(), entry.1), ());
        }
        cache.forget_where(|(name, _)| name == "a");
        assert!(cache.fresh(&("a".to_owned(), 1)).is_none());
        assert!(cache.fresh(&("a".to_owned(), 2)).is_none());
        assert!(cache.fresh(&("b".to_owned(), 1)).is_some());
    }

    #[tokio::test]
    async fn a_refresh_held_too_long_lets_the_next_caller_go_ahead_alone() {
        let refreshes = Refreshes::new();
        let held = refreshes.lock("token-1").await;
        assert!(held.is_some());
        // Same entry, same stripe: the wait ends, unlocked, instead of
        // queueing behind a store that does not answer.
        assert!(refreshes.lock("token-1").await.is_none());
        drop(held);
        assert!(refreshes.lock("token-1").await.is_some());
    }
}
