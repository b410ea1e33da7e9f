//! What every handler shares.

use std::time::Instant;

use fipsguard_core::Kms;

/// Shared state of a running server.
pub struct AppState {
    /// The key management service.
    pub kms: Kms,
    /// The store's kind, for status (`sqlite` or `postgres`).
    pub store_kind: &'static str,
    /// When the server started.
    pub started: Instant,
}
