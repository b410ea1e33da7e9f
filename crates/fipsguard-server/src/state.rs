//! What every handler shares.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fipsguard_core::Kms;
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
    /// Whether the store answers, as health and metrics report it.
    pub store_probe: StoreProbe,
}

/// Whether the store answers, probed at most once per [`StoreProbe::FRESH_FOR`]
/// however many ask: `/v1/health` is open to anyone, and each probe takes
/// SQLite's one connection or one of the PostgreSQL pool's from the
/// requests. Callers that come during a probe wait for its answer.
#[derive(Default)]
pub struct StoreProbe {
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl StoreProbe {
    /// How long a probe's answer stands.
    pub const FRESH_FOR: Duration = Duration::from_secs(1);

    /// The latest answer, or a new probe's once it is older than
    /// [`FRESH_FOR`](Self::FRESH_FOR); each probe's time is recorded.
    pub async fn reachable(&self, kms: &Kms) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, reachable)) = *last {
            if at.elapsed() < Self::FRESH_FOR {
                return reachable;
            }
        }
        let started = Instant::now();
        let reachable = kms.store_reachable().await;
        histogram!("fipsguard_store_probe_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        *last = Some((Instant::now(), reachable));
        reachable
    }
}
