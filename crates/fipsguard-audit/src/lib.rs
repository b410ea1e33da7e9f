//! The tamper-evident audit log (see docs/audit.md).
//!
//! Every event becomes one JSON line `{"record": {...}, "hash": "<hex>"}`.
//! The hash chains it to everything before it:
//!
//! ```text
//! hash(n) = SHA-256("fipsguard-audit-v1\0" || hash(n-1) || record bytes)
//! ```
//!
//! where the record bytes are exactly as written (serde_json's compact
//! encoding, fields in declared order): that is the canonical encoding.
//! Each durable flush ends with a checkpoint record carrying an ECDSA P-256
//! signature over the hash before it, so whoever holds only the public key
//! can tell that nothing was altered, removed, reordered or forged up to the
//! last checkpoint. Files ("segments") rotate by size and age; each starts
//! with a record naming the checkpoint it continues from.

mod anchor;
mod chain;
mod event;
mod segment;
mod verify;
mod writer;

pub use anchor::Anchor;
pub use chain::{CheckpointId, Hash, GENESIS};
pub use event::{
    is_change, now, unix_time, Checkpoint, ClientCount, Event, Link, Outcome, Record, RequestEvent,
};
pub use segment::list as segments;
pub use verify::{verify, verify_holding, Failure, Report};
pub use writer::{AuditConfig, AuditLog, Expected, Health, Signed, Signer};

/// Why an event could not be made durable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuditError {
    /// The log cannot be written; operations are refused until it can.
    #[error("the audit log cannot be written ({0}); operations are refused until it can")]
    Unavailable(String),
    /// More events are waiting than the writer holds.
    #[error("the audit writer is behind (more than {0} events waiting); try again")]
    Backlog(usize),
    /// The log was closed (the server is stopping).
    #[error("the audit log is closed")]
    Closed,
}

impl AuditError {
    /// Every error's [`code`](Self::code).
    pub const CODES: [&'static str; 3] = ["audit_unavailable", "audit_backlog", "audit_closed"];

    /// A stable code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => Self::CODES[0],
            Self::Backlog(_) => Self::CODES[1],
            Self::Closed => Self::CODES[2],
        }
    }
}
