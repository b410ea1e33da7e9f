//! Segment files: their names, their lines, and reading one back.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::chain::{self, Hash};
use crate::event::{Event, Outcome, Record};
use crate::Failure;

/// The file a segment starting at `first_seq` lives in: names sort in chain order.
pub(crate) fn file_name(first_seq: u64) -> String {
    format!("audit-{first_seq:020}.jsonl")
}

/// The segment files in `dir`, in chain order.
pub fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("audit-") && name.ends_with(".jsonl") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Appends a record's line to `out` and returns its hash; on failure
/// `out` is left as it was.
pub(crate) fn encode(
    record: &Record,
    previous: &Hash,
    out: &mut Vec<u8>,
) -> Result<Hash, fipsguard_crypto::Error> {
    let line = out.len();
    out.extend_from_slice(b"{\"record\":");
    let start = out.len();
    serde_json::to_writer(&mut *out, record).expect("records serialize");
    let hash = chain::next(previous, &out[start..]).inspect_err(|_| out.truncate(line))?;
    out.extend_from_slice(b",\"hash\":\"");
    out.extend_from_slice(&chain::hex_bytes(&hash));
    out.extend_from_slice(b"\"}\n");
    Ok(hash)
}

/// What an error-state record carries instead of a hash.
const OUTSIDE_CHAIN: &str =
    "the module is in its error state and can no longer hash or sign: this record is outside the chain";

/// Appends the line of a record written in the module's error state: no
/// hash, no signature (the module that makes them has stopped).
pub(crate) fn encode_outside_chain(record: &Record, out: &mut Vec<u8>) {
    let bytes = serde_json::to_vec(record).expect("records serialize");
    out.extend_from_slice(b"{\"record\":");
    out.extend_from_slice(&bytes);
    out.extend_from_slice(b",\"unprotected\":\"");
    out.extend_from_slice(OUTSIDE_CHAIN.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow)]
    record: &'a RawValue,
    #[serde(default)]
    hash: Option<&'a str>,
    #[serde(default)]
    unprotected: Option<&'a str>,
}

/// What reading one file found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The checkpoint the file continues from, as its first record states.
    pub continues: Option<crate::Link>,
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// Sequence number of the last complete record.
    pub last_seq: u64,
    /// The last checkpoint: its sequence number and hash.
    pub checkpoint: Option<(u64, Hash)>,
    /// Complete records.
    pub records: u64,
    /// Checkpoints among them.
    pub checkpoints: u64,
    /// Complete records after the last checkpoint.
    pub unsigned_tail: u64,
    /// The file ends in a partial line.
    pub torn: bool,
    /// Line number just after the last checkpoint.
    pub line_after_checkpoint: usize,
    /// The record written outside the chain when the module entered its
    /// error state: always the file's last.
    pub outside_chain: Option<u64>,
    /// Every change recorded before it is made (`root_key_change`,
    /// `key_destruction`, `key_rotation`, a change request's `intent`) that
    /// a checkpoint signs: its number, what it
    /// changes and its outcome, in order, so that an intent with no outcome
    /// after it shows across files.
    pub changes: Vec<(u64, Change, Outcome)>,
    /// Outages and unusual new files, for the report; those after the
    /// file's last checkpoint say that nothing signs them.
    pub remarks: Vec<String>,
}

/// A segment's bytes. Only a regular file is one: a FIFO or a device (a
/// name pointed at `/dev/zero`) would never end or fill the memory.
fn read_segment(path: &Path) -> std::io::Result<Vec<u8>> {
    // Looked at before it is opened: opening a FIFO waits for a writer.
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(bytes)
}

/// Reads one segment, checking every record's sequence number and hash and,
/// given public keys (SubjectPublicKeyInfo DER), every checkpoint's signature.
pub(crate) fn scan(path: &Path, public_keys: Option<&[Vec<u8>]>) -> Result<Scan, Failure> {
    scan_with(path, public_keys, &mut |_, _| {})
}

/// As [`scan`], calling `each_checkpoint` with every checkpoint's
/// sequence number and hash.
pub(crate) fn scan_with(
    path: &Path,
    public_keys: Option<&[Vec<u8>]>,
    each_checkpoint: &mut dyn FnMut(u64, &Hash),
) -> Result<Scan, Failure> {
    let bytes =
        read_segment(path).map_err(|e| Failure::at(path, 0, None, format!("cannot read: {e}")))?;
    let mut scan = Scan::default();
    // What records say before a checkpoint signs them: anyone may have
    // written a tail that none does.
    let (mut unsigned_remarks, mut unsigned_changes) = (Vec::new(), Vec::new());
    let mut previous = chain::GENESIS;
    let lines = bytes.split_inclusive(|b| *b == b'\n').enumerate();
    for (index, line) in lines {
        let number = index + 1;
        if !line.ends_with(b"\n") {
            scan.torn = true;
            break;
        }
        let fail = |seq: Option<u64>, reason: String| Failure::at(path, number, seq, reason);
        if let Some(seq) = scan.outside_chain {
            return Err(fail(None, format!("a record follows record {seq}, which was written in the module's error state: nothing can follow one, so this was added")));
        }
        let parsed: Line<'_> = serde_json::from_slice(line)
            .map_err(|e| fail(None, format!("not a valid record line ({e}): damaged")))?;
        let record = read_record(parsed.record.get())
            .map_err(|e| fail(None, format!("not a valid record ({e}): damaged")))?;
        let (record_seq, event) = match &record {
            Read::Known(record) => (record.seq, Some(&record.event)),
            Read::Unknown(placed) => (placed.seq, None),
        };
        let seq = Some(record_seq);
        if index == 0 {
            let Some(Event::Segment { continues, .. }) = event else {
                return Err(fail(
                    seq,
                    "the first record of a file must start a segment".into(),
                ));
            };
            previous = match continues {
                None if record_seq == 1 => chain::GENESIS,
                None => return Err(fail(seq, "a new chain must start at record 1".into())),
                Some(link) => chain::from_hex(&link.hash)
                    .ok_or_else(|| fail(seq, "the segment's link is not a hash".into()))?,
            };
            scan.continues = continues.clone();
            scan.first_seq = record_seq;
        } else if Some(record_seq) != scan.last_seq.checked_add(1) {
            let expected = match scan.last_seq.checked_add(1) {
                Some(next) => format!("record {next}"),
                None => format!("nothing after record {}", scan.last_seq),
            };
            return Err(fail(
                seq,
                format!(
                    "expected {expected} here, found {record_seq}: records were removed, inserted or reordered"
                ),
            ));
        }
        if parsed.unprotected.is_some() {
            let remark = outside_chain(&record).map_err(|reason| fail(seq, reason))?;
            scan.remarks
                .push(format!("{}:{number}: {remark}", path.display()));
            scan.outside_chain = Some(record_seq);
            scan.records += 1;
            scan.last_seq = record_seq;
            continue;
        }
        let hash = chain::next(&previous, parsed.record.get().as_bytes())
            .map_err(|e| fail(seq, format!("cannot hash: {e}")))?;
        if parsed.hash.and_then(chain::from_hex) != Some(hash) {
            return Err(fail(
                seq,
                "the record does not match its hash: altered or forged".into(),
            ));
        }
        if let Some(Event::Checkpoint(checkpoint)) = event {
            check_checkpoint(checkpoint, scan.last_seq, &previous, public_keys)
                .map_err(|reason| fail(seq, reason))?;
            scan.checkpoint = Some((record_seq, hash));
            each_checkpoint(record_seq, &hash);
            scan.checkpoints += 1;
            scan.unsigned_tail = 0;
            scan.line_after_checkpoint = number + 1;
            scan.remarks.append(&mut unsigned_remarks);
            scan.changes.append(&mut unsigned_changes);
        } else {
            scan.unsigned_tail += 1;
        }
        match event {
            Some(Event::RootKeyChange { outcome, .. }) => {
                unsigned_changes.push((record_seq, Change::RootKey, *outcome));
            }
            Some(Event::KeyDestruction { key, outcome, .. }) => {
                let change = Change::KeyDestruction(key.clone());
                unsigned_changes.push((record_seq, change, *outcome));
            }
            Some(Event::KeyRotation {
                key,
                version,
                outcome,
                ..
            }) => {
                let change = Change::KeyRotation(key.clone(), *version);
                unsigned_changes.push((record_seq, change, *outcome));
            }
            // A change's intent and its closing record.
            Some(Event::Request(request)) if crate::is_change(&request.method, &request.route) => {
                let change = Change::Request(request.request_id.clone());
                unsigned_changes.push((record_seq, change, request.outcome));
            }
            _ => {}
        }
        if let Some(remark) = remark(&record) {
            unsigned_remarks.push(format!("{}:{number}: {remark}", path.display()));
        }
        scan.records += 1;
        scan.last_seq = record_seq;
        previous = hash;
    }
    scan.remarks
        .extend(unsigned_remarks.into_iter().map(|remark| {
            format!("{remark} (after the file's last checkpoint: nothing signs it, not evidence)")
        }));
    Ok(scan)
}

/// What a change recorded before it is made changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Change {
    /// The store's root key.
    RootKey,
    /// The key of this name, destroyed as scheduled.
    KeyDestruction(String),
    /// The key of this name, rotated as this version reached its limit.
    KeyRotation(String, u32),
    /// What the API request of this id changes (a key, a token).
    Request(String),
}

impl Change {
    /// The note for a change begun at record `begun` whose outcome no file
    /// given records.
    pub(crate) fn unfinished(&self, begun: u64) -> String {
        let (what, tells) = match self {
            Self::RootKey => (
                "a change of the root key".to_owned(),
                "whichever root key opens the store tells".to_owned(),
            ),
            Self::KeyDestruction(key) => (
                format!("the scheduled destruction of key {key:?}"),
                "the key's state in the store tells".to_owned(),
            ),
            Self::KeyRotation(key, version) => (
                format!(
                    "the rotation of key {key:?} at the encryption limit of its version {version}"
                ),
                format!(
                    "whether the key has a version {} in the store tells",
                    u64::from(*version) + 1
                ),
            ),
            Self::Request(id) => (
                format!("the change request {id:?}"),
                "the state of the key or token it names tells".to_owned(),
            ),
        };
        format!(
            "record {begun}: {what} began, and no outcome follows it in the files verified: unless it is in a file not given, the process ended mid-change or could not record the outcome, and {tells} whether it was made"
        )
    }
}

/// A record as this version reads it.
enum Read {
    /// Of a kind it knows.
    Known(Box<Record>),
    /// Of a kind a newer version wrote: placed and hashed, not read.
    Unknown(Placed),
}

/// What every record has, whatever its kind.
#[derive(Deserialize)]
struct Placed {
    seq: u64,
    kind: String,
}

/// Reads a record; one of a kind this version does not know is taken by
/// its place alone, while a known kind must read in full.
fn read_record(raw: &str) -> Result<Read, serde_json::Error> {
    serde_json::from_str(raw)
        .map(|r| Read::Known(Box::new(r)))
        .or_else(|e| match serde_json::from_str::<Placed>(raw) {
            Ok(placed) if !Event::KINDS.contains(&placed.kind.as_str()) => {
                Ok(Read::Unknown(placed))
            }
            _ => Err(e),
        })
}

/// Accepts a record outside the chain only for what the module's error
/// state leaves no other way to record, a failed self-test; describes it.
fn outside_chain(record: &Read) -> Result<String, String> {
    let Read::Known(record) = record else {
        return Err(
            "only a failed self-test may be recorded outside the chain: this record was forged"
                .into(),
        );
    };
    match &record.event {
        Event::SelfTest { trigger, passed: false, failed, .. } => Ok(format!(
            "record {}: a {trigger} self-test run failed ({}) at {} and the module entered its error state; the record is outside the chain (not tamper-evident), and nothing was served after it",
            record.seq,
            failed.as_deref().unwrap_or("unnamed test"),
            record.time
        )),
        _ => Err("only a failed self-test may be recorded outside the chain: this record was forged".into()),
    }
}

/// What an auditor should see in the report: outages, changes of the
/// root key, files started for a reason other than startup or rotation,
/// and records of kinds this version does not know.
fn remark(record: &Read) -> Option<String> {
    let record = match record {
        Read::Known(record) => record,
        Read::Unknown(Placed { seq, kind }) => {
            return Some(format!(
                "record {seq}: of a kind this fipsguard does not know ({kind:?}, written by a newer version?): its place and hash were verified, its content was not read"
            ))
        }
    };
    match &record.event {
        Event::RootKeyChange {
            outcome,
            versions,
            source,
            binds_earlier_release,
            error,
            ..
        } => {
            let to = format!("to a {}", source.replace('_', " "));
            let (binding, bound) = if *binds_earlier_release {
                (
                    " that binds a store an earlier release wrote",
                    ", binding a store an earlier release wrote",
                )
            } else {
                ("", "")
            };
            Some(match outcome {
                Outcome::Success => format!(
                    "record {}: the root key was changed {to} ({} key version(s) wrapped again){bound}",
                    record.seq,
                    versions.unwrap_or(0)
                ),
                Outcome::Intent => format!(
                    "record {}: a change of the root key {to}{binding} began (its outcome follows, unless the process ended first)",
                    record.seq
                ),
                _ => format!(
                    "record {}: a change of the root key {to}{binding} failed: {}",
                    record.seq,
                    error.as_deref().unwrap_or("no reason recorded")
                ),
            })
        }
        Event::Outage { error, since, refused } => Some(format!(
            "record {}: the log could not be written from {since} to {} ({error}); {refused} request(s) were refused meanwhile",
            record.seq, record.time
        )),
        Event::UnauthenticatedRefusals {
            since,
            count,
            clients,
            ..
        } => Some(format!(
            "record {}: {count} request(s) refused without an authenticated caller from {since} to {} were counted, not recorded one by one{}",
            record.seq,
            record.time,
            clients.first().map_or(String::new(), |most| format!(
                " (most from {}: {})",
                most.client, most.count
            ))
        )),
        Event::Segment { reason, .. } if reason != "startup" && reason != "rotation" => {
            Some(format!("record {}: a new file was started: {reason}", record.seq))
        }
        _ => None,
    }
}

fn check_checkpoint(
    checkpoint: &crate::Checkpoint,
    previous_seq: u64,
    previous: &Hash,
    public_keys: Option<&[Vec<u8>]>,
) -> Result<(), String> {
    use base64::Engine;
    use fipsguard_crypto::sign::{verify, SignatureScheme};
    if checkpoint.covers != previous_seq || chain::from_hex(&checkpoint.chain) != Some(*previous) {
        return Err("the checkpoint does not cover the record before it".into());
    }
    let Some(keys) = public_keys else {
        return Ok(());
    };
    let signature = base64::engine::general_purpose::STANDARD
        .decode(&checkpoint.signature)
        .map_err(|_| "the checkpoint's signature is not base64".to_owned())?;
    let message = chain::checkpoint_message(checkpoint.covers, previous);
    let signed = keys
        .iter()
        .any(|key| verify(SignatureScheme::EcdsaP256Sha256, key, &message, &signature).is_ok());
    if signed {
        Ok(())
    } else {
        Err(format!(
            "the checkpoint's signature ({} version {}) does not verify with the given public key: the chain was rewritten or signed by another key",
            checkpoint.key, checkpoint.key_version
        ))
    }
}
