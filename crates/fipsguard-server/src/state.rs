//! What every handler shares.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fipsguard_core::{Kms, StoreAnswer};
use metrics::histogram;

/// Shared state of a running server.
pub struct AppState {
    /// The key management service (shared with the audit writer, which signs with it).
    pub kms: Arc<Kms>,
    /// The store's kind, for status (`sqlite` or `postgres`).
    pub store_kind: &'static str,
    /// When the server started.
    pub started: Instant,
    /// The audit log; `None` only when configured off.
    pub audit: Option<fipsguard_audit::AuditLog>,
    /// Requests refused without an authenticated caller: the budget for
    /// recording them one by one, and the counts beyond it.
    pub unauthenticated: Arc<crate::audit::unauthenticated::Budget>,
    /// What the store answers, as health and metrics report it.
    pub store_probe: StoreProbe,
    /// Changes whose intent is on record, counted from then on (those
    /// whose request was dropped go on as tasks of their own): a stop
    /// waits for them.
    pub changes: tokio_util::task::TaskTracker,
}

/// What the store answers, probed at most once per [`StoreProbe::FRESH_FOR`]
/// however many ask: `/v1/health` is open to anyone, and each probe takes
/// SQLite's one connection or one of the PostgreSQL pool's from the
/// requests. A probe runs on a task of its own, so a caller that goes away
/// does not cut it short; those that come meanwhile wait for its answer.
#[derive(Default)]
pub struct StoreProbe {
    last: Arc<tokio::sync::Mutex<Option<(Instant, StoreAnswer)>>>,
}

impl StoreProbe {
    /// How long a probe's answer stands.
    pub const FRESH_FOR: Duration = Duration::from_secs(1);
    /// How long a probe may take before the store counts as unreachable.
    pub const TIMEOUT: Duration = Duration::from_secs(2);

    /// The latest answer, or a new probe's once it is older than
    /// [`FRESH_FOR`](Self::FRESH_FOR); each probe's time is recorded.
    pub async fn answer(&self, kms: &Arc<Kms>) -> StoreAnswer {
        let (last, kms) = (self.last.clone(), kms.clone());
        let probe = tokio::spawn(async move {
            let mut last = last.lock().await;
            if let Some((at, answer)) = *last {
                if at.elapsed() < Self::FRESH_FOR {
                    return answer;
                }
            }
            let started = Instant::now();
            let answer = tokio::time::timeout(Self::TIMEOUT, kms.probe_store())
                .await
                .unwrap_or(StoreAnswer::Unreachable);
            histogram!("fipsguard_store_probe_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            *last = Some((Instant::now(), answer));
            answer
        });
        probe.await.unwrap_or(StoreAnswer::Unreachable)
    }
}
