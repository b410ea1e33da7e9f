//! Encrypt latency against the number of keys in SQLite, with a cold and a
//! warm cache. `bench/scale.sh` runs it at 1,000 and 1,000,000 keys.
//!
//! usage: scale KEYS DATABASE   (keys already in DATABASE are reused)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fipsguard_core::kms::{CreateKey, KmsConfig};
use fipsguard_core::{EncryptionContext, KeyType, Kms, RootKekSource, Store};
use fipsguard_store::SqliteStore;

const SAMPLES: usize = 1000;
const CREATORS: usize = 8;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let keys: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: scale KEYS DATABASE");
    let database = PathBuf::from(args.next().expect("usage: scale KEYS DATABASE"));
    let key_file = database.with_extension("key");
    if !key_file.exists() {
        fipsguard_core::root::create_key_file(&key_file).unwrap();
    }
    let root = RootKekSource::KeyFile(key_file);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&database).await.unwrap());

    let kms = Arc::new(
        Kms::open(store.clone(), &root, KmsConfig::default())
            .await
            .unwrap(),
    );
    let existing = count_keys(&kms).await;
    let started = Instant::now();
    create_keys(&kms, existing, keys).await;
    if keys > existing {
        let secs = started.elapsed().as_secs_f64();
        println!(
            "created {} keys in {secs:.1} s ({:.0} keys/s)",
            keys - existing,
            (keys - existing) as f64 / secs
        );
    }

    // Cold: a fresh service (empty cache) touching keys it has never seen.
    let cold_kms = Kms::open(store.clone(), &root, KmsConfig::default())
        .await
        .unwrap();
    let names: Vec<String> = (0..SAMPLES).map(|i| key_name(i * keys / SAMPLES)).collect();
    let cold = time_each(&names, |name| encrypt(&cold_kms, name)).await;
    // Warm: the same keys again, now cached.
    let warm = time_each(&names, |name| encrypt(&cold_kms, name)).await;
    report(keys, "cold cache", cold);
    report(keys, "warm cache", warm);
}

fn key_name(i: usize) -> String {
    format!("scale-{i:08}")
}

async fn count_keys(kms: &Kms) -> usize {
    let mut count = 0;
    let mut after = None;
    loop {
        let page = kms.list_keys(after.as_deref(), 1000).await.unwrap();
        count += page.keys.len();
        match page.next {
            Some(next) => after = Some(next),
            None => return count,
        }
    }
}

async fn create_keys(kms: &Arc<Kms>, from: usize, to: usize) {
    let tasks: Vec<_> = (0..CREATORS)
        .map(|worker| {
            let kms = kms.clone();
            tokio::spawn(async move {
                for i in (from + worker..to).step_by(CREATORS) {
                    kms.create_key(CreateKey::new(&key_name(i), KeyType::Aes256Gcm))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn encrypt(kms: &Kms, name: &str) {
    kms.encrypt(name, &[0u8; 1024], &EncryptionContext::empty())
        .await
        .unwrap();
}

async fn time_each<'a, F, Fut>(names: &'a [String], mut op: F) -> Vec<Duration>
where
    F: FnMut(&'a str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(names.len());
    for name in names {
        let started = Instant::now();
        op(name).await;
        times.push(started.elapsed());
    }
    times
}

fn report(keys: usize, label: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "{keys:>9} keys  {label:<10}  p50 {:>8.1} us  p99 {:>8.1} us",
        at(0.5),
        at(0.99)
    );
}
