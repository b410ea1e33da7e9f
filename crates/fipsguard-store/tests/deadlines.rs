//! A PostgreSQL store's calls end within its deadline: a statement held
//! by a lock is cancelled by the server, a call waiting for a connection
//! or for one to be made gives up, and a cancelled call's connection
//! serves the next one.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, TableLock};
use fipsguard_core::{Store, StoreError};
use fipsguard_store::{PoolLimits, PostgresStore};

const DEADLINE: Duration = Duration::from_secs(1);

/// A PostgreSQL store with one connection and a one-second deadline
/// (and the backend that keeps its schema), its tokens table locked by
/// another connection.
async fn locked_tokens() -> Option<(Backend, Arc<PostgresStore>, TableLock)> {
    let backend = common::postgres().await?;
    let url = backend.postgres_url().unwrap();
    let limits = PoolLimits {
        size: 1,
        timeout: DEADLINE,
    };
    let store = Arc::new(PostgresStore::connect(url, limits).await.unwrap());
    let lock = TableLock::take(url, "tokens").await;
    Some((backend, store, lock))
}

fn unavailable(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(StoreError::Unavailable(why)) => why,
        other => panic!("expected the store unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_held_past_the_deadline_is_cancelled_and_its_connection_serves_again() {
    let Some((_backend, store, lock)) = locked_tokens().await else {
        return;
    };
    let asked = Instant::now();
    let read = tokio::time::timeout(10 * DEADLINE, store.token("absent"))
        .await
        .expect("the read ended");
    let waited = asked.elapsed();
    let why = unavailable(read);
    assert!(
        why.contains("[store] timeout_secs") && why.contains("cancelled"),
        "{why}"
    );
    assert!(
        (DEADLINE..3 * DEADLINE).contains(&waited),
        "ended after {waited:?}"
    );
    lock.release().await;
    let again = tokio::time::timeout(5 * DEADLINE, store.token("absent")).await;
    assert!(
        again
            .expect("the one connection is free")
            .unwrap()
            .is_none(),
        "read again"
    );
}

/// Five calls on one connection while a table is locked: the first is
/// cancelled at the deadline, those still waiting for the connection
/// give up at theirs, so all end within about two deadlines instead of
/// one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_for_a_connection_give_up_at_the_deadline() {
    let Some((_backend, store, lock)) = locked_tokens().await else {
        return;
    };
    let asked = Instant::now();
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { unavailable(store.token("absent").await) })
        })
        .collect();
    let mut reasons = Vec::new();
    for call in calls {
        let ended = tokio::time::timeout(10 * DEADLINE, call).await;
        reasons.push(ended.expect("the call ended").unwrap());
    }
    let waited = asked.elapsed();
    lock.release().await;
    assert!(waited < 4 * DEADLINE, "all ended after {waited:?}");
    assert!(
        reasons
            .iter()
            .any(|why| why.contains("no PostgreSQL connection came free")
                && why.contains("[store] timeout_secs")),
        "{reasons:?}"
    );
}

/// A server that takes the connection and never answers (overloaded, or
/// not PostgreSQL): opening the store fails within the deadline, naming
/// it, instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_fails_the_start_within_the_deadline() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("host=127.0.0.1 port={port} user=postgres dbname=test");
    let limits = PoolLimits {
        size: 1,
        timeout: DEADLINE,
    };
    let asked = Instant::now();
    let opened = tokio::time::timeout(10 * DEADLINE, PostgresStore::connect(&url, limits))
        .await
        .expect("the start ended");
    let waited = asked.elapsed();
    let why = unavailable(opened.map(drop));
    assert!(
        why.contains("no PostgreSQL connection could be made") && why.contains("timeout_secs"),
        "{why}"
    );
    assert!(waited < 3 * DEADLINE, "ended after {waited:?}");
    drop(silent);
}
