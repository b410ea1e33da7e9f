//! The group-commit writer: one thread takes every event waiting, chains
//! them, signs a checkpoint, writes and syncs once, then acknowledges the
//! whole batch. A request is answered only after its event is durable.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use metrics::{counter, gauge, histogram};
use tokio::sync::oneshot;

use crate::anchor::{Anchor, Anchoring};
use crate::chain::{self, Hash};
use crate::event::{now, Checkpoint, Event, Link, Record};
use crate::segment::{self, file_name};
use crate::AuditError;

/// Events a batch takes at most.
const MAX_BATCH: usize = 4096;
/// Events that may wait for the writer before requests are refused.
const QUEUE: usize = 65536;
/// How long a batch waits at most for the events of requests under way: a
/// flush costs a signature and an fsync whatever its size (see
/// BENCHMARKS.md).
const LINGER: Duration = Duration::from_millis(2);
/// The `reason` label values of `fipsguard_audit_failures_total`.
const FAILURE_REASONS: [&str; 7] = [
    "read_only",
    "removed",
    "io",
    "signing",
    "rotation",
    "module",
    "anchor",
];
/// How often a failing log is retried.
const RETRY: Duration = Duration::from_secs(1);
/// How long a new writer waits for the one before it to let go of the
/// directory.
const HOLD_WAIT: Duration = Duration::from_secs(2);

/// Where and how the log is written.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The directory of segment files (created 0700 if missing).
    pub dir: PathBuf,
    /// Start a new file beyond this size.
    pub max_file_bytes: u64,
    /// Start a new file after this long.
    pub max_file_age: Duration,
    /// Also copy every durable line to stdout, for log shippers.
    pub copy_to_stdout: bool,
    /// Save the latest checkpoint to the [`Anchor`] at least this often
    /// (besides startup and shutdown).
    pub anchor_every: Duration,
    /// Start even though the log falls short of its anchor, recording the
    /// gap in the log: once, by an operator who has kept the evidence.
    pub accept_gap: bool,
}

impl AuditConfig {
    /// Defaults: 64 MiB or one day per file, no copy, anchored every minute.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            max_file_bytes: 64 << 20,
            max_file_age: Duration::from_secs(24 * 3600),
            copy_to_stdout: false,
            anchor_every: Duration::from_secs(60),
            accept_gap: false,
        }
    }
}

/// Signs checkpoints with the audit key (ECDSA P-256, SHA-256).
pub trait Signer: Send + 'static {
    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Result<Signed, String>;
}

/// A checkpoint signature and the key version that made it.
pub struct Signed {
    /// The key's name.
    pub key: String,
    /// Its version.
    pub key_version: u32,
    /// DER signature.
    pub signature: Vec<u8>,
}

/// The state of the log, for health and status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// Events are being made durable.
    pub writable: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The current file.
    pub segment: String,
    /// The last durable record.
    pub last_seq: u64,
    /// The last durable checkpoint: kept outside the host, it lets
    /// `fipsguard audit verify --expect-checkpoint` show later that the
    /// log still holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Link>,
}

type Ack = oneshot::Sender<Result<(), AuditError>>;

// Events travel by value: boxing them would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Job {
    Event(Event, Ack),
    /// A failed self-test, recorded outside the chain.
    SelfTestFailure(Event, Ack),
    Close(Ack),
}

/// The audit log of a running process; clones are handles on the same log.
#[derive(Clone)]
pub struct AuditLog {
    jobs: SyncSender<Job>,
    shared: Arc<Shared>,
}

/// What the writer thread and request handlers share.
#[derive(Default)]
struct Shared {
    failing: AtomicBool,
    /// Why it fails, and since when.
    failure: Mutex<Option<(String, String)>>,
    refused: AtomicU64,
    last_seq: AtomicU64,
    checkpoint: Mutex<Option<Link>>,
    segment: Mutex<String>,
    /// Requests under way whose events are still to come (see [`Expected`]).
    expected: AtomicUsize,
    /// The writer thread, woken when the last expected event has come.
    writer: OnceLock<std::thread::Thread>,
}

impl Shared {
    fn failure(&self) -> AuditError {
        let failure = self.failure.lock().expect("not poisoned");
        AuditError::Unavailable(
            failure
                .as_ref()
                .map_or_else(String::new, |(e, _)| e.clone()),
        )
    }
}

impl AuditLog {
    /// Continues the chain found in `config.dir` (or starts one) in a new
    /// file, writes `first` durably, and starts the writer thread. With an
    /// `anchor`, a log that falls short of it does not open (unless
    /// `config.accept_gap`), and the new checkpoint is saved to it.
    pub fn open(
        config: AuditConfig,
        signer: Box<dyn Signer>,
        anchor: Option<Box<dyn Anchor>>,
        first: Vec<Event>,
    ) -> Result<Self, String> {
        let mut writer = Writer::start(config, signer, anchor)?;
        writer.append(first).map_err(|(_, e)| e)?;
        writer.save_anchor()?;
        gauge!("fipsguard_audit_writable").set(1.0);
        // Every failure series exists from the start, so alerts on its
        // increase see the first one.
        for reason in FAILURE_REASONS {
            counter!("fipsguard_audit_failures_total", "reason" => reason).increment(0);
        }
        let shared = writer.shared.clone();
        let (jobs, queue) = mpsc::sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("fipsguard-audit".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        let _ = shared.writer.set(thread.thread().clone());
        Ok(Self { jobs, shared })
    }

    /// Refuses a request at once while the log cannot be written (fail
    /// closed), counting it for the outage's record.
    pub fn check(&self) -> Result<(), AuditError> {
        let writable = self.writable();
        if writable.is_err() {
            self.shared.refused.fetch_add(1, Ordering::Relaxed);
        }
        writable
    }

    /// Whether the log can be written now; nothing is counted.
    fn writable(&self) -> Result<(), AuditError> {
        match self.shared.failing.load(Ordering::Acquire) {
            true => Err(self.shared.failure()),
            false => Ok(()),
        }
    }

    /// Returns once `event` is durable.
    pub async fn record(&self, event: Event) -> Result<(), AuditError> {
        durable(self.enqueue(event)?).await
    }

    /// Returns once a request's closing `event` is durable; refused, it
    /// counts as a refused request (a change's intent, written before, does
    /// not: each request counts once).
    pub async fn record_request(&self, event: Event) -> Result<(), AuditError> {
        self.check()?;
        self.record(event).await
    }

    /// Queues `event` for the writer; the receiver hears when it is durable.
    /// Refused while the log cannot be written, uncounted: only requests
    /// count as refused (a TLS reload or a held destruction is not one).
    fn enqueue(&self, event: Event) -> Result<Answer, AuditError> {
        self.writable()?;
        let (ack, done) = oneshot::channel();
        self.submit(Job::Event(event, ack))?;
        Ok(done)
    }

    /// Announces a request whose event will follow, so that the batch in
    /// the making waits for it rather than syncing without it. The event
    /// is given to [`Expected::record`]; dropping the guard withdraws it.
    pub fn expect(&self) -> Expected {
        self.shared.expected.fetch_add(1, Ordering::AcqRel);
        Expected { log: self.clone() }
    }

    /// Records a failed self-test run once the module is in its error state.
    ///
    /// The module then refuses to hash or sign, so the record cannot join
    /// the chain: it is written and synced as the file's last line, marked
    /// as outside the chain, and `audit verify` reports it as such. It is
    /// evidence of when the module stopped, not tamper-evident (the alert
    /// on `fipsguard_selftest_passed` is the signal to act on). Nothing is
    /// served after it: every request needs the module, or this log.
    pub async fn record_self_test_failure(
        &self,
        trigger: &str,
        tests: usize,
        failed: &str,
    ) -> Result<(), AuditError> {
        let event = Event::SelfTest {
            trigger: trigger.to_owned(),
            passed: false,
            tests,
            failed: Some(failed.to_owned()),
        };
        let (ack, done) = oneshot::channel();
        self.submit(Job::SelfTestFailure(event, ack))?;
        durable(done).await
    }

    /// Writes the shutdown record and a final checkpoint, then stops the writer.
    pub async fn close(&self) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.submit(Job::Close(ack))?;
        durable(done).await
    }

    /// The log's state.
    pub fn health(&self) -> Health {
        let failure = self.shared.failure.lock().expect("not poisoned");
        Health {
            writable: !self.shared.failing.load(Ordering::Acquire),
            error: failure.as_ref().map(|(e, _)| e.clone()),
            segment: self.shared.segment.lock().expect("not poisoned").clone(),
            last_seq: self.shared.last_seq.load(Ordering::Relaxed),
            checkpoint: self.shared.checkpoint.lock().expect("not poisoned").clone(),
        }
    }

    fn submit(&self, job: Job) -> Result<(), AuditError> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => AuditError::Backlog(QUEUE),
            TrySendError::Disconnected(_) => AuditError::Closed,
        })
    }
}

/// A request under way whose event is still to come. It holds a handle
/// on the log, so a request's future can keep it without borrowing.
pub struct Expected {
    log: AuditLog,
}

impl Expected {
    /// Returns once `event` is durable.
    pub async fn record(self, event: Event) -> Result<(), AuditError> {
        // A request's own event: refused, it counts as a refused request.
        let queued = self.log.check().and_then(|()| self.log.enqueue(event));
        // Withdrawn only now that the event is queued, so the writer
        // never takes "none expected" for "all arrived" too early.
        drop(self);
        durable(queued?).await
    }
}

/// Where the writer's answer for a job arrives (the other end of an [`Ack`]).
type Answer = oneshot::Receiver<Result<(), AuditError>>;

/// Waits for the writer's answer; a writer gone without one is closed.
async fn durable(answer: Answer) -> Result<(), AuditError> {
    answer.await.unwrap_or(Err(AuditError::Closed))
}

impl Drop for Expected {
    fn drop(&mut self) {
        let shared = &self.log.shared;
        if shared.expected.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(writer) = shared.writer.get() {
                writer.unpark();
            }
        }
    }
}

/// What made the current file unusable.
enum FileState {
    Ours,
    ReadOnly,
    Gone,
}

struct Writer {
    config: AuditConfig,
    signer: Box<dyn Signer>,
    shared: Arc<Shared>,
    file: File,
    path: PathBuf,
    identity: (u64, u64),
    opened: Instant,
    /// Bytes of the file known durable.
    durable_len: u64,
    /// The last sequence number used (a crashed run's unacknowledged tail included).
    seq: u64,
    /// The last durable checkpoint, which the next record chains to.
    checkpoint: Option<Link>,
    hash: Hash,
    /// The first record of a new file, written with the next batch.
    segment_start: Option<Event>,
    /// A record outside the chain ends the current file: the next batch
    /// starts a new one.
    file_closed: bool,
    buffer: Vec<u8>,
    /// Where the latest checkpoint is saved outside the log.
    anchoring: Option<Anchoring>,
    /// The directory, locked for this writer alone until it closes.
    holding: Option<File>,
}

impl Writer {
    fn start(
        config: AuditConfig,
        signer: Box<dyn Signer>,
        anchor: Option<Box<dyn Anchor>>,
    ) -> Result<Self, String> {
        create_dir(&config.dir)?;
        let holding = hold(&config.dir)?;
        let (checkpoint, seq) = resume(&config.dir)?;
        let (anchoring, reason) = match anchor {
            Some(anchor) => {
                let (anchoring, reason) =
                    Anchoring::start(anchor, &config.dir, checkpoint.as_ref(), config.accept_gap)?;
                (Some(anchoring), reason)
            }
            None => (None, "startup".to_owned()),
        };
        let hash = match &checkpoint {
            Some(link) => chain::from_hex(&link.hash).expect("read from a checked record"),
            None => chain::GENESIS,
        };
        let (file, path) = create_segment(&config.dir, seq + 1)?;
        let mut writer = Self {
            identity: identity(&file)?,
            config,
            signer,
            shared: Arc::default(),
            file,
            path,
            opened: Instant::now(),
            durable_len: 0,
            seq,
            checkpoint,
            hash,
            segment_start: None,
            file_closed: false,
            buffer: Vec::new(),
            anchoring,
            holding: Some(holding),
        };
        writer.begin_segment(&reason);
        Ok(writer)
    }

    /// Saves the latest checkpoint to the anchor.
    fn save_anchor(&mut self) -> Result<(), String> {
        let (Some(anchoring), Some(checkpoint)) = (&mut self.anchoring, &self.checkpoint) else {
            return Ok(());
        };
        anchoring
            .save(checkpoint)
            .map_err(|e| format!("cannot save the audit anchor: {e}"))
    }

    /// How long until the anchor is due (`None`: up to date, or none).
    fn anchor_due_in(&self) -> Option<Duration> {
        let anchoring = self.anchoring.as_ref()?;
        anchoring.due_in(self.checkpoint.as_ref(), self.config.anchor_every)
    }

    /// Saves the anchor when it is due (or `now`). A failure is counted
    /// and logged, not refused: the log itself is still durable.
    fn anchor_if_due(&mut self, now: bool) {
        if !self
            .anchor_due_in()
            .is_some_and(|left| now || left.is_zero())
        {
            return;
        }
        if let Err(error) = self.save_anchor() {
            tracing::error!(error = %error, "the audit anchor was not saved: removing the newest records would go unnoticed at the next start");
            counter!("fipsguard_audit_failures_total", "reason" => "anchor").increment(1);
        }
    }

    /// Starts a new file, continuing the chain from the last checkpoint.
    fn new_segment(&mut self, reason: &str) -> Result<(), String> {
        // Nothing can be hashed or signed in the module's error state: a
        // file made now would stay empty, and an empty newest file does not
        // verify. The log ends where the error-state record closed it.
        if let fipsguard_crypto::module::State::Error { failed_test } =
            fipsguard_crypto::module::state()
        {
            return Err(format!(
                "the module is in its error state ({failed_test}): no new audit file until a restart passes its self-tests"
            ));
        }
        let (file, path) = create_segment(&self.config.dir, self.seq + 1)?;
        self.identity = identity(&file)?;
        self.file = file;
        self.path = path;
        self.opened = Instant::now();
        self.durable_len = 0;
        self.file_closed = false;
        self.begin_segment(reason);
        Ok(())
    }

    fn begin_segment(&mut self, reason: &str) {
        self.segment_start = Some(Event::Segment {
            continues: self.checkpoint.clone(),
            reason: reason.to_owned(),
        });
        *self.shared.segment.lock().expect("not poisoned") = self.file_name();
    }

    fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn run(mut self, queue: Receiver<Job>) {
        loop {
            let failing = self.shared.failing.load(Ordering::Acquire);
            let first = if failing {
                match queue.recv_timeout(RETRY) {
                    Ok(job) => Some(job),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else if let Some(left) = self.anchor_due_in() {
                // A checkpoint not yet anchored is, even if no request follows.
                match queue.recv_timeout(left) {
                    Ok(job) => Some(job),
                    Err(RecvTimeoutError::Timeout) => {
                        self.anchor_if_due(false);
                        None
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match queue.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return,
                }
            };
            if failing {
                self.recover();
            }
            let Some(first) = first else { continue };
            let mut batch = vec![first];
            drain(&queue, &mut batch);
            self.gather(&queue, &mut batch);
            if self.handle(batch) {
                return;
            }
        }
    }

    /// Lets the batch take the events of requests already under way, for
    /// at most [`LINGER`]: a busy log then syncs once for all of them, while
    /// a lone request, with nothing else under way, is flushed at once.
    /// The writer sleeps until the last expected event is queued (its
    /// sender wakes it) rather than waking for each one.
    fn gather(&self, queue: &Receiver<Job>, batch: &mut Vec<Job>) {
        let deadline = Instant::now() + LINGER;
        while batch.len() < MAX_BATCH && self.shared.expected.load(Ordering::Acquire) > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            std::thread::park_timeout(left);
            drain(queue, batch);
        }
        drain(queue, batch);
    }

    /// Writes one batch and answers its waiters; true once closed.
    fn handle(&mut self, batch: Vec<Job>) -> bool {
        let mut events = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let mut close = None;
        let mut failures = Vec::new();
        for job in batch {
            match job {
                Job::Event(event, ack) => {
                    events.push(event);
                    acks.push(ack);
                }
                Job::SelfTestFailure(event, ack) => failures.push((event, ack)),
                Job::Close(ack) => close = Some(ack),
            }
        }
        for (event, ack) in failures {
            let _ = ack.send(self.write_outside_chain(event));
        }
        if close.is_some() {
            events.push(Event::Shutdown {});
        }
        if events.is_empty() {
            return false;
        }
        let result = if self.shared.failing.load(Ordering::Acquire) {
            self.shared
                .refused
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            Err(self.shared.failure())
        } else {
            self.write(events)
        };
        for ack in acks {
            let _ = ack.send(result.clone());
        }
        // After the answers, which need not wait for the store; before the
        // close's, so the last checkpoint is anchored when the server exits.
        if result.is_ok() {
            self.anchor_if_due(close.is_some());
        }
        match close {
            Some(ack) => {
                // Let go first: whoever waits on the close may open it next.
                self.holding = None;
                let _ = ack.send(result);
                true
            }
            None => false,
        }
    }

    fn write(&mut self, events: Vec<Event>) -> Result<(), AuditError> {
        let rotate = self.file_closed
            || self.durable_len >= self.config.max_file_bytes
            || self.opened.elapsed() >= self.config.max_file_age;
        if rotate {
            self.new_segment("rotation")
                .map_err(|e| self.fail("rotation", e))?;
        }
        self.append(events)
            .map_err(|(reason, e)| self.fail(reason, e))
    }

    /// Chains `events`, adds a signed checkpoint, writes and syncs them.
    fn append(&mut self, events: Vec<Event>) -> Result<(), (&'static str, String)> {
        let started = Instant::now();
        let count = events.len() as u64;
        let (mut seq, mut hash) = (self.seq, self.hash);
        let mut buffer = std::mem::take(&mut self.buffer);
        // The records of a batch are written together, at one time.
        let time = now();
        for event in self.segment_start.iter().cloned().chain(events) {
            seq += 1;
            let record = Record {
                seq,
                time: time.clone(),
                event,
            };
            hash = segment::encode(&record, &hash, &mut buffer)
                .map_err(|e| ("module", e.to_string()))?;
        }
        let signed = self
            .signer
            .sign(&chain::checkpoint_message(seq, &hash))
            .map_err(|e| ("signing", e))?;
        let checkpoint = Checkpoint {
            covers: seq,
            chain: chain::to_hex(&hash),
            key: signed.key,
            key_version: signed.key_version,
            signature: base64::engine::general_purpose::STANDARD.encode(signed.signature),
        };
        seq += 1;
        let record = Record {
            seq,
            time,
            event: Event::Checkpoint(checkpoint),
        };
        hash =
            segment::encode(&record, &hash, &mut buffer).map_err(|e| ("module", e.to_string()))?;
        let written = self.write_durably(&buffer);
        buffer.clear();
        self.buffer = buffer;
        written?;
        // Durable: only now does the chain move on.
        self.segment_start = None;
        self.seq = seq;
        self.hash = hash;
        self.checkpoint = Some(Link {
            file: self.file_name(),
            seq,
            hash: chain::to_hex(&hash),
        });
        self.shared.last_seq.store(seq, Ordering::Relaxed);
        self.shared
            .checkpoint
            .lock()
            .expect("not poisoned")
            .clone_from(&self.checkpoint);
        counter!("fipsguard_audit_events_total").increment(count);
        histogram!("fipsguard_audit_flush_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        gauge!("fipsguard_audit_last_sequence").set(seq as f64);
        Ok(())
    }

    /// Writes one record without hash or signature as the file's last line
    /// (see [`AuditLog::record_self_test_failure`]).
    fn write_outside_chain(&mut self, event: Event) -> Result<(), AuditError> {
        if self.segment_start.is_some() {
            // The file holds no record yet, and its first must be chained.
            return Err(AuditError::Unavailable(format!(
                "{} holds no chained record to follow",
                self.path.display()
            )));
        }
        let record = Record {
            seq: self.seq + 1,
            time: now(),
            event,
        };
        let mut line = Vec::new();
        segment::encode_outside_chain(&record, &mut line);
        self.write_durably(&line)
            .map_err(|(_, e)| AuditError::Unavailable(e))?;
        self.seq = record.seq;
        self.file_closed = true;
        self.shared.last_seq.store(self.seq, Ordering::Relaxed);
        Ok(())
    }

    fn write_durably(&mut self, bytes: &[u8]) -> Result<(), (&'static str, String)> {
        match self.file_state() {
            FileState::Ours => {}
            FileState::ReadOnly => {
                return Err((
                    "read_only",
                    format!("{} was made read-only", self.path.display()),
                ))
            }
            FileState::Gone => {
                return Err((
                    "removed",
                    format!("{} was removed or replaced", self.path.display()),
                ))
            }
        }
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| ("io", format!("cannot write {}: {e}", self.path.display())))?;
        self.durable_len += bytes.len() as u64;
        if self.config.copy_to_stdout {
            let _ = std::io::stdout().lock().write_all(bytes);
        }
        Ok(())
    }

    fn file_state(&self) -> FileState {
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) != self.identity => FileState::Gone,
            Ok(m) if m.permissions().mode() & 0o200 == 0 => FileState::ReadOnly,
            Ok(_) => FileState::Ours,
            Err(_) => FileState::Gone,
        }
    }

    /// Enters the failing state: requests are refused until `recover` succeeds.
    fn fail(&self, reason: &'static str, error: String) -> AuditError {
        tracing::error!(reason, error = %error, "audit log write failed: refusing operations until it can be written");
        counter!("fipsguard_audit_failures_total", "reason" => reason).increment(1);
        gauge!("fipsguard_audit_writable").set(0.0);
        let mut failure = self.shared.failure.lock().expect("not poisoned");
        let since = failure
            .as_ref()
            .map_or_else(now, |(_, since)| since.clone());
        *failure = Some((error, since));
        self.shared.failing.store(true, Ordering::Release);
        AuditError::Unavailable(failure.as_ref().map(|(e, _)| e.clone()).unwrap_or_default())
    }

    /// Retries a failing log: drops any partial batch, or starts a new file
    /// if the old one is gone, then records the outage.
    fn recover(&mut self) {
        let attempt = match self.file_state() {
            FileState::ReadOnly => return,
            FileState::Ours if self.file_closed => {
                self.new_segment("the previous file ended with a record outside the chain")
            }
            FileState::Ours => self
                .file
                .set_len(self.durable_len)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| format!("cannot repair {}: {e}", self.path.display())),
            FileState::Gone => self.new_segment("the previous file was removed or replaced"),
        };
        if let Err(e) = attempt {
            let mut failure = self.shared.failure.lock().expect("not poisoned");
            if let Some((error, _)) = failure.as_mut() {
                *error = e;
            }
            return;
        }
        let (error, since) = self
            .shared
            .failure
            .lock()
            .expect("not poisoned")
            .clone()
            .unwrap_or_default();
        // Read, and taken off only once recorded: a try that fails leaves
        // the whole outage's count for the next.
        let refused = self.shared.refused.load(Ordering::Relaxed);
        if self
            .append(vec![Event::Outage {
                error,
                since,
                refused,
            }])
            .is_ok()
        {
            self.shared.refused.fetch_sub(refused, Ordering::Relaxed);
            *self.shared.failure.lock().expect("not poisoned") = None;
            self.shared.failing.store(false, Ordering::Release);
            gauge!("fipsguard_audit_writable").set(1.0);
            tracing::info!(refused, "audit log writable again");
        }
    }
}

/// Moves every waiting job into `batch`, up to `MAX_BATCH`.
fn drain(queue: &Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create the audit directory {}: {e}", dir.display()))
}

/// Locks `dir` for one writer: a second process on the same log (`init`
/// or `rekey` beside a server still running, two servers given one
/// directory) would fork its chain. The lock goes with the process, however
/// it ends. A writer that is ending (a server stopping, a log dropped
/// without a close) is given [`HOLD_WAIT`] to let go.
fn hold(dir: &Path) -> Result<File, String> {
    use rustix::fs::{flock, FlockOperation};
    let handle = File::open(dir)
        .map_err(|e| format!("cannot open the audit directory {}: {e}", dir.display()))?;
    let deadline = Instant::now() + HOLD_WAIT;
    loop {
        match flock(&handle, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(handle),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => return Err(format!(
                "the audit directory {} is being written by another process (a server still running?): stop it first",
                dir.display()
            )),
            Err(e) => {
                return Err(format!(
                    "cannot lock the audit directory {}: {e} (it must be on a file system with flock: local, or NFS with locking)",
                    dir.display()
                ))
            }
        }
    }
}

/// Where the chain in `dir` stands: its last checkpoint and the highest
/// sequence number used. A last file without any checkpoint (a run killed
/// before its first flush) is set aside as `.incomplete`; a damaged one
/// stops the start (fail closed).
fn resume(dir: &Path) -> Result<(Option<Link>, u64), String> {
    let files = segment::list(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for path in files.iter().rev() {
        let scan = segment::scan(path, None).map_err(|failure| {
            format!("the audit log is damaged: {failure}; run `fipsguard audit verify`, keep the evidence, and move the damaged file out of {} to start a new chain", dir.display())
        })?;
        let Some((seq, hash)) = scan.checkpoint else {
            let aside = path.with_extension("incomplete");
            std::fs::rename(path, &aside)
                .map_err(|e| format!("cannot set aside {}: {e}", path.display()))?;
            tracing::warn!(file = %aside.display(), "audit file without a checkpoint set aside");
            continue;
        };
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let link = Link {
            file,
            seq,
            hash: chain::to_hex(&hash),
        };
        return Ok((Some(link), scan.last_seq));
    }
    Ok((None, 0))
}

/// A new segment file (never an existing one), made durable in its
/// directory. One that cannot be is removed again, so that a failed
/// rotation leaves no empty file behind.
fn create_segment(dir: &Path, first_seq: u64) -> Result<(File, PathBuf), String> {
    let path = dir.join(file_name(first_seq));
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        // Best effort: verification passes over an empty file anyway.
        let _ = std::fs::remove_file(&path);
        return Err(format!("cannot sync {}: {e}", dir.display()));
    }
    Ok((file, path))
}

fn identity(file: &File) -> Result<(u64, u64), String> {
    let m = file
        .metadata()
        .map_err(|e| format!("cannot stat the audit file: {e}"))?;
    Ok((m.dev(), m.ino()))
}
