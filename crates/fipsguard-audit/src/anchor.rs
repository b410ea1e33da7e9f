//! Where the log stood, kept outside its directory.
//!
//! A log alone cannot show that its newest files, or its newest flushes
//! with their checkpoints, were removed: what is left still verifies. The
//! writer therefore saves its latest checkpoint somewhere else (the server
//! uses its key store) at startup, within
//! [`AuditConfig::anchor_every`](crate::AuditConfig) of every flush, and at
//! shutdown, and compares it with the log on the next start: a log that
//! ends before the saved checkpoint, or does not hold it, does not start.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::Link;

/// Keeps the latest checkpoint of one log outside its directory.
pub trait Anchor: Send + 'static {
    /// The checkpoint saved last, if any.
    fn load(&self) -> Result<Option<Link>, String>;

    /// Saves `checkpoint`, replacing the one before.
    fn save(&self, checkpoint: &Link) -> Result<(), String>;
}

/// An anchor, and what this writer knows it holds.
pub(crate) struct Anchoring {
    anchor: Box<dyn Anchor>,
    /// The checkpoint it holds, as this writer last read or saved it.
    held: Option<Link>,
    /// The checkpoint of a save that failed: it may have landed all the same.
    attempted: Option<Link>,
    /// An unreadable anchor was accepted at the start: the first save replaces it.
    replace_unreadable: bool,
    saved_at: Instant,
}

impl Anchoring {
    /// Compares the log in `dir`, whose last checkpoint is `found`, with
    /// the anchor; returns the anchoring and the reason the new run's
    /// first record gives. `Err` for a gap not accepted (fail closed).
    pub fn start(
        anchor: Box<dyn Anchor>,
        dir: &Path,
        found: Option<&Link>,
        accept_gap: bool,
    ) -> Result<(Self, String), String> {
        let loaded = anchor.load();
        let gap = match &loaded {
            Ok(Some(saved)) => gap(saved, found, |saved| holds(dir, saved)),
            Ok(None) if found.is_some() => {
                tracing::warn!("the audit log has no anchor outside it yet (a new node name, or the anchor was removed): one is saved now");
                Ok(
                    "startup without an anchor: a new node name, or the anchor was removed"
                        .to_owned(),
                )
            }
            Ok(None) => Ok("startup".to_owned()),
            Err(e) => Err(format!("the anchor outside the log cannot be read ({e})")),
        };
        let reason = match gap {
            Ok(reason) => reason,
            Err(gap) if accept_gap => format!("startup accepting a gap: {gap}"),
            Err(gap) => return Err(format!(
                "{gap}. Keep the audit directory as evidence (docs/runbooks/audit-failure.md), then start `fipsguard serve` once with --audit-accept-gap to continue, the gap recorded in the log"
            )),
        };
        let anchoring = Self {
            anchor,
            replace_unreadable: loaded.is_err(),
            held: loaded.ok().flatten(),
            attempted: None,
            saved_at: Instant::now(),
        };
        Ok((anchoring, reason))
    }

    /// Saves `checkpoint`, unless the anchor holds something this writer
    /// did not put there: another log saving under the same name.
    pub fn save(&mut self, checkpoint: &Link) -> Result<(), String> {
        self.saved_at = Instant::now();
        if self.held.as_ref() == Some(checkpoint) {
            return Ok(());
        }
        // Read, then written: not atomic, so a clash is reported within a
        // save or two rather than prevented.
        let stored = match self.anchor.load() {
            Ok(stored) => stored,
            Err(_) if self.replace_unreadable => self.held.clone(),
            Err(e) => return Err(format!("cannot read it back: {e}")),
        };
        if stored != self.held && stored != self.attempted {
            return Err(format!(
                "the anchor holds {}, which this log did not save: another node's log saves under the same name (give each node its own [audit] node)",
                stored.map_or_else(|| "nothing".to_owned(), |link| describe(&link))
            ));
        }
        if let Err(e) = self.anchor.save(checkpoint) {
            self.held = stored;
            self.attempted = Some(checkpoint.clone());
            return Err(e);
        }
        self.held = Some(checkpoint.clone());
        self.attempted = None;
        self.replace_unreadable = false;
        Ok(())
    }

    /// How long until `checkpoint`, newer than what the anchor holds, is
    /// due to be saved; `None` when the anchor is up to date.
    pub fn due_in(&self, checkpoint: Option<&Link>, every: Duration) -> Option<Duration> {
        (checkpoint != self.held.as_ref()).then(|| every.saturating_sub(self.saved_at.elapsed()))
    }
}

fn describe(link: &Link) -> String {
    format!("checkpoint {} of {}", link.seq, link.file)
}

/// How the log found on disk (its last checkpoint) falls short of the
/// saved checkpoint: `holds` tells whether the log still holds it.
fn gap(
    saved: &Link,
    found: Option<&Link>,
    holds: impl FnOnce(&Link) -> Result<bool, String>,
) -> Result<String, String> {
    let saved_at = describe(saved);
    let clash = "or another node's log saves its anchor under the same name";
    let found = found.ok_or_else(|| format!(
        "the anchor outside the log names {saved_at}, but the directory holds no audit record: the log was removed ({clash})"
    ))?;
    if found.seq < saved.seq {
        return Err(format!(
            "the log ends at {}, but the anchor outside the log names {saved_at}: records were removed ({clash})",
            describe(found)
        ));
    }
    if found == saved {
        return Ok("startup".to_owned());
    }
    match holds(saved) {
        Ok(true) => Ok("startup".to_owned()),
        Ok(false) => Err(format!(
            "the log does not hold {saved_at}, which the anchor outside the log names: the log was replaced ({clash})"
        )),
        Err(e) => Err(format!(
            "the anchor outside the log names {saved_at}, which cannot be read ({e}): the log was replaced, or that file archived while it was the newest"
        )),
    }
}

/// Whether the file `saved` names, in `dir`, holds that checkpoint.
fn holds(dir: &Path, saved: &Link) -> Result<bool, String> {
    if saved.file.contains('/') || saved.file.starts_with('.') {
        return Ok(false);
    }
    let checkpoint = saved.id().ok_or("its hash is not 64 hexadecimal digits")?;
    crate::verify::holds_checkpoint(&dir.join(&saved.file), &checkpoint)
        .map_err(|failure| failure.to_string())
}

#[cfg(test)]
mod tests {
    use super::{gap, holds};
    use crate::Link;

    fn link(seq: u64, hash: &str) -> Link {
        Link {
            file: "audit-00000000000000000001.jsonl".into(),
            seq,
            hash: hash.into(),
        }
    }

    #[test]
    fn a_log_behind_beside_or_without_its_anchor_has_a_gap() {
        let saved = link(10, "aa");
        let unread = |_: &Link| -> Result<bool, String> { panic!("not read") };
        assert!(gap(&saved, Some(&link(10, "aa")), unread).is_ok());
        assert!(gap(&saved, Some(&link(12, "bb")), |_| Ok(true)).is_ok());
        let replaced = gap(&saved, Some(&link(12, "bb")), |_| Ok(false)).unwrap_err();
        assert!(replaced.contains("the log was replaced"), "{replaced}");
        let missing = gap(&saved, Some(&link(12, "bb")), |_| Err("gone".into())).unwrap_err();
        assert!(missing.contains("cannot be read (gone)"), "{missing}");
        let removed = gap(&saved, Some(&link(8, "cc")), unread).unwrap_err();
        assert!(removed.contains("records were removed"), "{removed}");
        let rewritten = gap(&saved, Some(&link(10, "dd")), |_| Ok(false)).unwrap_err();
        assert!(rewritten.contains("the log was replaced"), "{rewritten}");
        let gone = gap(&saved, None, unread).unwrap_err();
        assert!(gone.contains("the log was removed"), "{gone}");
    }

    #[test]
    fn a_saved_checkpoint_whose_hash_is_not_hex_is_unreadable_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let unreadable = holds(dir.path(), &link(10, "not hex")).unwrap_err();
        assert!(
            unreadable.contains("not 64 hexadecimal digits"),
            "{unreadable}"
        );
        let message = gap(&link(10, "not hex"), Some(&link(12, "bb")), |saved| {
            holds(dir.path(), saved)
        })
        .unwrap_err();
        assert!(message.contains("cannot be read"), "{message}");
    }
}
