//! `fipsguard audit verify`: needs no secret, only the audit public key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::chain::{CheckpointId, Hash};
use crate::segment::{self, Change, Scan};

/// A log that verified.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Files read, in chain order.
    pub files: Vec<PathBuf>,
    /// Records verified.
    pub records: u64,
    /// Signed checkpoints among them.
    pub checkpoints: u64,
    /// First and last sequence numbers.
    pub first_seq: u64,
    /// The last record, a checkpoint.
    pub last_seq: u64,
    /// What an auditor should know that is not a failure.
    pub notes: Vec<String>,
}

/// The first record that does not verify, and why.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// The file.
    pub file: PathBuf,
    /// Line number (1-based; 0 for the file as a whole).
    pub line: usize,
    /// The record's sequence number, where it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl Failure {
    pub(crate) fn at(file: &Path, line: usize, seq: Option<u64>, reason: String) -> Self {
        Self {
            file: file.to_owned(),
            line,
            seq,
            reason: printable(&reason),
        }
    }
}

/// Text read from a log, made safe to print: a control character (an escape
/// sequence, a line break) written into a record is shown escaped, so a
/// forged record cannot rewrite the verifier's report on a terminal.
pub(crate) fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            printable(&self.file.display().to_string()),
            self.line
        )?;
        if let Some(seq) = self.seq {
            write!(f, " (record {seq})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Verifies a segment file, or every segment in a directory, with the audit
/// public keys (SubjectPublicKeyInfo DER; any of them may have signed).
pub fn verify(log: &Path, public_keys: &[Vec<u8>]) -> Result<Report, Failure> {
    verify_each_checkpoint(log, public_keys, &mut |_, _| {})
}

/// As [`verify`], calling `each` with every checkpoint's sequence number
/// and hash as the files are read.
fn verify_each_checkpoint(
    log: &Path,
    public_keys: &[Vec<u8>],
    each: &mut dyn FnMut(u64, &Hash),
) -> Result<Report, Failure> {
    let files = files_of(log)?;
    if files.is_empty() {
        return Err(Failure::at(
            log,
            0,
            None,
            "no audit segment files (audit-*.jsonl)".into(),
        ));
    }
    let mut report = Report {
        files: files.clone(),
        records: 0,
        checkpoints: 0,
        first_seq: 0,
        last_seq: 0,
        notes: Vec::new(),
    };
    let mut previous: Option<(&Path, Scan)> = None;
    // Changes begun and not yet seen to end, by what they change: where
    // each began, in order. Two may overlap (a process ended mid-change and
    // the next began it again, or a request left its destruction running
    // while another began it): an outcome ends the latest, so a change
    // whose process ended is the one called out.
    let mut unfinished: std::collections::HashMap<Change, Vec<u64>> = Default::default();
    for (index, file) in files.iter().enumerate() {
        let scan = segment::scan_with(file, Some(public_keys), each)?;
        // A file created but never written (a rotation that failed, or a
        // crash right after it) holds nothing; the next file's link shows
        // nothing was lost. Last, it is a writer that has not restarted.
        if scan.records == 0 && !scan.torn && index + 1 < files.len() {
            report.notes.push(format!(
                "{}: empty, passed over: a file started but never written",
                file.display()
            ));
            continue;
        }
        if scan.records == 0 {
            let reason = "no complete record: the file is empty or truncated";
            return Err(Failure::at(file, 1, None, reason.into()));
        }
        match &previous {
            None => note_start(&mut report, file, &scan),
            Some((before, earlier)) => link(before, earlier, file, &scan, &mut report.notes)?,
        }
        report.notes.extend(scan.remarks.iter().cloned());
        for (seq, change, outcome) in &scan.changes {
            if *outcome == crate::Outcome::Intent {
                unfinished.entry(change.clone()).or_default().push(*seq);
            } else if let Some(begun) = unfinished.get_mut(change) {
                begun.pop();
                if begun.is_empty() {
                    unfinished.remove(change);
                }
            }
        }
        report.records += scan.records;
        report.checkpoints += scan.checkpoints;
        report.last_seq = scan.last_seq;
        previous = Some((file, scan));
    }
    let mut unfinished: Vec<_> = unfinished
        .into_iter()
        .flat_map(|(change, begun)| begun.into_iter().map(move |seq| (change.clone(), seq)))
        .collect();
    unfinished.sort_by_key(|(_, begun)| *begun);
    for (change, begun) in unfinished {
        report.notes.push(change.unfinished(begun));
    }
    if log.is_dir() {
        note_set_aside(log, &mut report.notes);
    }
    let (file, last) = previous.expect("at least one file");
    if last.unsigned_tail > 0 || last.torn {
        return Err(Failure::at(
            file,
            last.line_after_checkpoint,
            None,
            format!(
                "the log ends after its last checkpoint ({}) with {} unsigned record(s){}: its tail was truncated, or the writer stopped abruptly and has not restarted; everything up to the checkpoint verifies",
                last.checkpoint.map_or(0, |(seq, _)| seq),
                last.unsigned_tail,
                if last.torn { " and a partial line" } else { "" }
            ),
        ));
    }
    // Notes repeat file names and record fields, which whoever can write
    // the directory chooses: shown, never obeyed by a terminal.
    for note in &mut report.notes {
        *note = printable(note);
    }
    Ok(report)
}

/// As [`verify`], and the log must hold `checkpoint`, as recorded
/// outside it earlier (from `GET /v1/status`): a log cut back before it,
/// or another log, fails though it verifies.
pub fn verify_holding(
    log: &Path,
    public_keys: &[Vec<u8>],
    checkpoint: &CheckpointId,
) -> Result<Report, Failure> {
    let (report, held) = watching_for(checkpoint, |each| {
        verify_each_checkpoint(log, public_keys, each)
    })?;
    if held {
        return Ok(report);
    }
    let seq = checkpoint.seq;
    Err(Failure::at(
        log,
        0,
        Some(seq),
        format!("the log does not hold checkpoint {seq} with the hash recorded for it: records were removed since, the file that held it was archived, or this is another log"),
    ))
}

/// Whether the segment file holds `checkpoint`; signatures are not checked.
pub(crate) fn holds_checkpoint(file: &Path, checkpoint: &CheckpointId) -> Result<bool, Failure> {
    watching_for(checkpoint, |each| segment::scan_with(file, None, each)).map(|(_, held)| held)
}

/// Runs `scan`, which reports each checkpoint it reads, and tells whether
/// one of them was `checkpoint`.
fn watching_for<T>(
    checkpoint: &CheckpointId,
    scan: impl FnOnce(&mut dyn FnMut(u64, &Hash)) -> Result<T, Failure>,
) -> Result<(T, bool), Failure> {
    let mut held = false;
    let scanned = scan(&mut |seq, hash| {
        held |= seq == checkpoint.seq && *hash == checkpoint.hash;
    })?;
    Ok((scanned, held))
}

/// The segment files of `log`: itself, or those of the directory it is.
fn files_of(log: &Path) -> Result<Vec<PathBuf>, Failure> {
    if log.is_dir() {
        segment::list(log).map_err(|e| Failure::at(log, 0, None, format!("cannot list: {e}")))
    } else {
        Ok(vec![log.to_owned()])
    }
}

/// Files a restart set aside (`.incomplete`: a run stopped before its
/// first checkpoint), which are not part of the chain.
fn note_set_aside(dir: &Path, notes: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut aside: Vec<_> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "incomplete"))
        .collect();
    aside.sort();
    for path in aside {
        notes.push(format!(
            "{}: set aside at a restart, not verified: a run stopped before its first checkpoint, so nothing in it was acknowledged",
            path.display()
        ));
    }
}

fn note_start(report: &mut Report, file: &Path, scan: &Scan) {
    report.first_seq = scan.first_seq;
    if let Some(link) = &scan.continues {
        report.notes.push(format!(
            "{} continues the chain from record {} of {}, which was not given: records before {} are not covered",
            file.display(),
            link.seq,
            link.file,
            scan.first_seq
        ));
    }
}

/// Checks that `file` continues the chain exactly where `before` was last
/// signed; records after that checkpoint were never acknowledged.
fn link(
    before: &Path,
    earlier: &Scan,
    file: &Path,
    scan: &Scan,
    notes: &mut Vec<String>,
) -> Result<(), Failure> {
    let fail = |reason: String| Failure::at(file, 1, Some(scan.first_seq), reason);
    let Some(link) = &scan.continues else {
        return Err(fail("starts a new chain in the middle of the log".into()));
    };
    let Some((seq, hash)) = earlier.checkpoint else {
        return Err(fail(format!(
            "{} has no checkpoint to continue from",
            before.display()
        )));
    };
    if link.id() != Some(CheckpointId { seq, hash }) {
        return Err(fail(format!(
            "continues from record {}, but the last checkpoint of {} is record {seq}: a segment is missing or was cut",
            link.seq,
            before.display()
        )));
    }
    if Some(scan.first_seq) != earlier.last_seq.checked_add(1) {
        return Err(fail(format!(
            "starts at record {}, but {} ends at record {}: records are missing",
            scan.first_seq,
            before.display(),
            earlier.last_seq
        )));
    }
    if earlier.unsigned_tail > 0 || earlier.torn {
        notes.push(format!(
            "{} has {} record(s){} after its last checkpoint: written when the server stopped abruptly, never acknowledged to a client, not evidence",
            before.display(),
            earlier.unsigned_tail,
            if earlier.torn { " and a partial line" } else { "" }
        ));
    }
    Ok(())
}
