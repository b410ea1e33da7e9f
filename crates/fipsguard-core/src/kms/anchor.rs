//! Where each node's audit log stood, kept in the store: out of reach of
//! whoever can only write the log's directory, it shows at the node's next
//! start that the newest audit records were removed (see docs/audit.md).

use super::Kms;
use crate::error::Result;

/// The setting that holds `node`'s audit anchor.
fn setting(node: &str) -> String {
    format!("audit_anchor:{node}")
}

impl Kms {
    /// The audit anchor `node` saved last, if any.
    pub async fn audit_anchor(&self, node: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.store.setting(&setting(node)).await?)
    }

    /// Saves `node`'s audit anchor, replacing the one before.
    pub async fn save_audit_anchor(&self, node: &str, anchor: &[u8]) -> Result<()> {
        Ok(self.store.put_setting(&setting(node), anchor).await?)
    }
}
