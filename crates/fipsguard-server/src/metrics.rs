//! Prometheus metrics under `fipsguard_`. Labels are bounded sets (operation
//! names, error codes, rule ids, states, self-test names): never a key name,
//! token id or anything a caller chooses.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::StatusCode;
use fipsguard_core::{Kms, KmsError};
use fipsguard_crypto::module::{self, State};
use fipsguard_crypto::selftest::SelfTestReport;
use metrics::{counter, gauge, histogram, Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// The process-wide recorder (one per process, shared by every server in it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
                    ],
                )
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder can only exist if the embedding program set one.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// How often recorded latencies are folded into their buckets.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds the latencies recorded since the last run into their histogram
/// buckets, every `every`. The recorder keeps each sample until then (or
/// until a scrape), so without this a server nobody scrapes would grow by
/// every operation it serves: some 16 bytes each, over half a gigabyte
/// an hour at 10,000 operations a second.
pub fn spawn_upkeep(every: Duration) -> tokio::task::JoinHandle<()> {
    let handle = handle();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// Records one cryptographic operation: count by outcome, latency, and the
/// failure families the service level indicators need. The outcome is
/// `success`, `rejected` (the request was wrong: bad input, wrong context,
/// refused algorithm, key state) or `failure` (the service failed: module
/// error state, store, root key), so SLI M1 is not moved by client bugs.
pub fn record_operation(op: &'static str, elapsed: Duration, error: Option<&KmsError>) {
    use fipsguard_crypto::Error as Crypto;
    let outcome = match error {
        None => "success",
        Some(KmsError::Store(_) | KmsError::RootKek(_)) => "failure",
        Some(KmsError::Crypto(
            Crypto::ErrorState { .. } | Crypto::Module(_) | Crypto::PairwiseConsistency { .. },
        )) => "failure",
        Some(_) => "rejected",
    };
    count_operation(op, outcome, elapsed);
    if let Some(error) = error {
        record_failure(error);
    }
}

// The series every request moves, by label values, kept per thread: with
// labels not known at compile time, `counter!` and `histogram!` build a
// key and look it up in the registry on every call, several times the
// cost of the count itself. The label sets are bounded, and so the maps.
// A handle taken before `handle()` installs the recorder would count
// nothing for the thread's life: requests reach these only through the
// router `start` builds after installing it. The labels are the code's
// own, never a caller's, so they need no hash that resists collisions.
thread_local! {
    static OPERATIONS: RefCell<LabelMap<OperationLabels, (Counter, Histogram)>> =
        RefCell::default();
    static REQUESTS: RefCell<LabelMap<Box<str>, [Option<Counter>; 3]>> = RefCell::default();
}

type LabelMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// An operation's name and outcome.
type OperationLabels = (&'static str, &'static str);

/// Records a batch whose every item was refused for its own reasons (each
/// counted in its family already): rejected, with no error of its own.
pub fn record_rejected_batch(op: &'static str, elapsed: Duration) {
    count_operation(op, "rejected", elapsed);
}

fn count_operation(op: &'static str, outcome: &'static str, elapsed: Duration) {
    OPERATIONS.with_borrow_mut(|handles| {
        let (count, latency) = handles.entry((op, outcome)).or_insert_with(|| {
            (
                counter!("fipsguard_crypto_operations_total", "op" => op, "outcome" => outcome),
                histogram!("fipsguard_crypto_operation_duration_seconds", "op" => op),
            )
        });
        count.increment(1);
        latency.record(elapsed.as_secs_f64());
    });
}

/// Counts an HTTP request by route template and status class: `2xx`,
/// `4xx` (any other answer below 500), `5xx`.
pub fn record_request(route: &str, status: StatusCode) {
    const CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];
    let class = match status.as_u16() {
        200..=299 => 0,
        code if code < 500 => 1,
        _ => 2,
    };
    REQUESTS.with_borrow_mut(|handles| {
        let counters = match handles.get_mut(route) {
            Some(counters) => counters,
            None => handles.entry(route.into()).or_default(),
        };
        counters[class]
            .get_or_insert_with(|| {
                counter!("fipsguard_http_requests_total", "route" => route.to_owned(), "status" => CLASSES[class])
            })
            .increment(1);
    });
}

/// Counts a failure in its family (decrypt failures by reason, refusals by
/// rule, key access errors): of a whole operation, or of one batch item.
pub fn record_failure(error: &KmsError) {
    match error {
        KmsError::Decrypt(e) => {
            counter!("fipsguard_decrypt_failures_total", "reason" => e.code()).increment(1)
        }
        KmsError::Crypto(fipsguard_crypto::Error::NotApproved(rule)) => {
            counter!("fipsguard_refused_requests_total", "rule" => rule.rule_id()).increment(1)
        }
        KmsError::KeyNotFound(_)
        | KmsError::StateForbids { .. }
        | KmsError::Store(_)
        | KmsError::RootKek(_)
        | KmsError::VersionNotFound { .. } => {
            counter!("fipsguard_key_access_errors_total", "reason" => error.code()).increment(1)
        }
        _ => {}
    }
}

/// Records a refused request (authentication or authorization).
pub fn record_access_refusal(code: &'static str) {
    counter!("fipsguard_key_access_errors_total", "reason" => code).increment(1);
}

/// Counts `n` requests refused without an authenticated caller beyond
/// the audit log's budget for recording them one by one.
pub fn record_counted_refusals(n: u64) {
    counter!("fipsguard_audit_counted_refusals_total").increment(n);
}

/// Records a request refused because its audit event could not be made durable.
pub fn record_audit_refusal(code: &'static str) {
    count_audit_refusals(code, 1);
}

/// Adds `n` refusals (0 creates the series, so alerts see the first one).
pub fn count_audit_refusals(code: &'static str, n: u64) {
    counter!("fipsguard_audit_refused_requests_total", "reason" => code).increment(n);
}

/// When the client certificates' revocation list passes its nextUpdate:
/// every client certificate is refused from then until a newer list is
/// loaded (SIGHUP).
pub fn record_client_crl_next_update(unix_seconds: i64) {
    gauge!("fipsguard_tls_client_crl_next_update_timestamp_seconds").set(unix_seconds as f64);
}

/// Creates the series of TLS reloads and of the connections they cut at
/// zero, so that an alert sees the first one.
pub fn init_tls_reloads() {
    for outcome in ["ok", "failed"] {
        counter!("fipsguard_tls_reloads_total", "outcome" => outcome).increment(0);
    }
    for reason in fipsguard_crypto::tls::ClientRefused::REASONS {
        counter!("fipsguard_tls_clients_cut_total", "reason" => reason).increment(0);
    }
    gauge!("fipsguard_tls_last_reload_failed").set(0.0);
}

/// Records a reload of the TLS files (`ok` or `failed`); a failure is
/// also held (`fipsguard_tls_last_reload_failed` 1) until one succeeds.
pub fn record_tls_reload(outcome: &'static str) {
    // The gauge first: whoever sees the count sees the state it left.
    gauge!("fipsguard_tls_last_reload_failed").set(f64::from(u8::from(outcome == "failed")));
    counter!("fipsguard_tls_reloads_total", "outcome" => outcome).increment(1);
}

/// Records an open connection cut because the TLS configuration in force
/// refuses its client certificate, by `reason` (`ClientRefused::reason`).
pub fn record_tls_client_cut(reason: &'static str) {
    counter!("fipsguard_tls_clients_cut_total", "reason" => reason).increment(1);
}

/// Records a failed TLS handshake.
pub fn record_tls_failure(reason: &'static str) {
    counter!("fipsguard_tls_handshake_failures_total", "reason" => reason).increment(1);
}

/// Publishes the module's state and its self-test results.
pub fn record_module() {
    let report = module::latest_report();
    for result in &report.results {
        gauge!("fipsguard_selftest_passed", "test" => result.name)
            .set(f64::from(u8::from(result.passed)));
    }
    gauge!("fipsguard_module_fips_mode").set(f64::from(u8::from(report.fips_mode())));
    gauge!("fipsguard_module_error_state").set(f64::from(u8::from(matches!(
        module::state(),
        State::Error { .. }
    ))));
}

/// Records one run of the self-test suite (power-up, periodic or on
/// demand) and publishes the module's state after it.
pub fn record_self_test_run(trigger: &'static str, report: &SelfTestReport) {
    let outcome = if report.passed() { "passed" } else { "failed" };
    counter!("fipsguard_selftest_runs_total", "trigger" => trigger, "outcome" => outcome)
        .increment(1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    gauge!("fipsguard_selftest_last_run_timestamp_seconds").set(now.as_secs_f64());
    histogram!("fipsguard_selftest_duration_seconds")
        .record(Duration::from_micros(report.total_micros).as_secs_f64());
    record_module();
}

/// Creates every self-test run series at zero, so alerts on an increase
/// see the first failure.
pub fn init_self_test_runs() {
    for trigger in ["power-up", "periodic", "on-demand"] {
        for outcome in ["passed", "failed"] {
            counter!("fipsguard_selftest_runs_total", "trigger" => trigger, "outcome" => outcome)
                .increment(0);
        }
    }
}

/// Publishes whether the root of trust and the store answer (SLI M5): the
/// root key is checked by unwrapping the store's check value at start, so
/// a running service holds it until a `rekey` replaces the store's; both
/// as the latest store probe (at most a second old) found them. A store
/// that does not answer cannot tell of the root key, which keeps the value
/// last known.
pub(crate) async fn record_availability(state: &AppState) {
    let answer = state.store_probe.answer(&state.kms).await;
    let as_gauge = |yes: bool| f64::from(u8::from(yes));
    gauge!("fipsguard_store_reachable").set(as_gauge(answer.reachable()));
    if let Some(current) = answer.root_key_current() {
        gauge!("fipsguard_root_key_available").set(as_gauge(current));
    }
}

/// Publishes key counts by state and overdue rotations, refreshed by the
/// server every minute (listing every key is too slow for each scrape).
pub async fn record_keys(kms: &Kms) -> Result<(), KmsError> {
    let mut by_state = std::collections::BTreeMap::new();
    let mut overdue = 0u64;
    let mut after = None;
    loop {
        let page = kms
            .list_keys(after.as_deref(), fipsguard_core::kms::MAX_PAGE)
            .await?;
        for key in &page.keys {
            *by_state.entry(key.state.as_str()).or_insert(0u64) += 1;
            overdue += u64::from(key.rotation_overdue);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    for state in fipsguard_core::KeyState::ALL {
        gauge!("fipsguard_keys", "state" => state.as_str())
            .set(by_state.get(state.as_str()).copied().unwrap_or(0) as f64);
    }
    gauge!("fipsguard_keys_rotation_overdue").set(overdue as f64);
    Ok(())
}

/// Key versions whose material the node holds.
pub fn record_cached_versions(kms: &Kms) {
    gauge!("fipsguard_key_versions_cached").set(kms.cached_versions() as f64);
}

/// The exposition, with the module's state as of now.
pub fn render() -> String {
    record_module();
    handle().render()
}

/// What a scrape answers: the exposition, with the store's state as the
/// latest probe found it (shared with health, so a scrape adds at most one
/// probe a second).
pub(crate) async fn scrape(state: &AppState) -> impl axum::response::IntoResponse {
    record_availability(state).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        render(),
    )
}

/// Serves `GET /metrics` over plain HTTP on `listener`, without a token,
/// until the returned task is aborted.
pub fn serve_plain(
    listener: tokio::net::TcpListener,
    state: &std::sync::Arc<AppState>,
) -> tokio::task::JoinHandle<()> {
    use axum::response::IntoResponse;
    use axum::routing::get;
    if let Ok(bound) = listener.local_addr() {
        tracing::info!(%bound, "metrics on plain HTTP, no token");
    }
    // A scraper's connection outlives the aborted listener task: it must
    // not keep a stopped server's state, nor probe its store.
    let state = std::sync::Arc::downgrade(state);
    let app = axum::Router::new().route(
        "/metrics",
        get(|| async move {
            match state.upgrade() {
                Some(state) => scrape(&state).await.into_response(),
                None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    })
}
