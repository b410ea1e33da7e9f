//! A server nobody scrapes must not grow with the operations it serves:
//! the recorder keeps every latency sample until it is folded into its
//! histogram bucket. Alone in its own process, so that the resident size
//! measured is this test's.

use std::time::Duration;

use fipsguard_server::metrics;

/// Samples recorded between two upkeeps, and how many times.
const PER_ROUND: u64 = 200_000;
const ROUNDS: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_samples_are_folded_into_buckets_without_a_scrape() {
    let upkeep = metrics::spawn_upkeep(Duration::from_millis(20));
    let before = resident_bytes();
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            metrics::record_operation("encrypt", Duration::from_micros(3), None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grown = resident_bytes().saturating_sub(before);
    upkeep.abort();
    // Kept until a scrape, these samples took 33 MB here; folded, 1 MB.
    assert!(
        grown < 8 << 20,
        "resident size grew by {grown} bytes over {} samples",
        PER_ROUND * ROUNDS
    );
    // Folded, they are counted. Samples written while a fold detaches
    // their block can be missed (the recorder's own race: at most a block
    // of 64 per fold), so a few may be.
    let exposition = metrics::render();
    let counted: u64 = exposition
        .lines()
        .find_map(|l| {
            l.strip_prefix("fipsguard_crypto_operation_duration_seconds_count{op=\"encrypt\"} ")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no latency count in {exposition}"));
    let recorded = PER_ROUND * ROUNDS;
    assert!(
        counted <= recorded && counted >= recorded - recorded / 1000,
        "{counted} of {recorded} samples counted"
    );
}

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}
