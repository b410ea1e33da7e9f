//! Where the log stood, kept outside its directory.
//!
//! A log alone cannot show that its newest files, or its newest flushes
//! with their checkpoints, were removed: what is left still verifies. The
//! writer therefore saves its latest checkpoint somewhere else (the server
//! uses its key store) at startup, at least every
//! [`AuditConfig::anchor_every`](crate::AuditConfig), and at shutdown, and
//! compares it with the log on the next start: a log that ends before the
//! saved checkpoint, or holds another record there, does not start.

use crate::Link;

/// Keeps the latest checkpoint of one log outside its directory.
pub trait Anchor: Send + 'static {
    /// The checkpoint saved last, if any.
    fn load(&self) -> Result<Option<Link>, String>;

    /// Saves `checkpoint`, replacing the one before.
    fn save(&self, checkpoint: &Link) -> Result<(), String>;
}

/// How the log found on disk falls short of the saved checkpoint, if it does.
pub(crate) fn gap(saved: &Link, found: Option<&Link>) -> Option<String> {
    let saved_at = format!("checkpoint {} of {}", saved.seq, saved.file);
    match found {
        None => Some(format!(
            "the anchor outside the log names {saved_at}, but the directory holds no audit record: the log was removed"
        )),
        Some(found) if found.seq < saved.seq => Some(format!(
            "the log ends at checkpoint {} of {}, but the anchor outside the log names {saved_at}: records were removed",
            found.seq, found.file
        )),
        Some(found) if found.seq == saved.seq && found.hash != saved.hash => Some(format!(
            "the log's {saved_at} is not the one the anchor outside the log names: the log was replaced"
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::gap;
    use crate::Link;

    fn link(seq: u64, hash: &str) -> Link {
        Link {
            file: "audit-00000000000000000001.jsonl".into(),
            seq,
            hash: hash.into(),
        }
    }

    #[test]
    fn a_log_behind_or_beside_its_anchor_has_a_gap() {
        let saved = link(10, "aa");
        assert_eq!(gap(&saved, Some(&link(10, "aa"))), None);
        assert_eq!(gap(&saved, Some(&link(12, "bb"))), None);
        let removed = gap(&saved, Some(&link(8, "cc"))).unwrap();
        assert!(removed.contains("records were removed"), "{removed}");
        let replaced = gap(&saved, Some(&link(10, "dd"))).unwrap();
        assert!(replaced.contains("the log was replaced"), "{replaced}");
        let gone = gap(&saved, None).unwrap();
        assert!(gone.contains("the log was removed"), "{gone}");
    }
}
