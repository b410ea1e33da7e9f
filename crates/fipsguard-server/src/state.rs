//! What every handler shares.

use std::sync::Arc;
use std::time::Instant;

use fipsguard_core::Kms;

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
}
