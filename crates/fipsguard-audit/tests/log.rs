//! The audit log end to end: a real writer on real files, then the
//! verifier against every kind of tampering.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fipsguard_audit::{
    verify, Anchor, AuditConfig, AuditError, AuditLog, Event, Link, Outcome, RequestEvent, Signed,
    Signer,
};
use fipsguard_crypto::sign::{SignatureScheme, SigningKey, SigningKeyType};

struct KeySigner(SigningKey);

impl Signer for KeySigner {
    fn sign(&self, message: &[u8]) -> Result<Signed, String> {
        let signature = self
            .0
            .sign(SignatureScheme::EcdsaP256Sha256, message)
            .map_err(|e| e.to_string())?;
        Ok(Signed {
            key: "audit".into(),
            key_version: 1,
            signature,
        })
    }
}

/// A fresh P-256 key: the signer and its public key.
fn audit_key() -> (Box<dyn Signer>, Vec<u8>) {
    let (signer, public, _) = audit_key_material();
    (signer, public)
}

/// A fresh key, also as PKCS#8 to make another signer with the same key.
fn audit_key_material() -> (Box<dyn Signer>, Vec<u8>, fipsguard_crypto::SecretBytes) {
    assert!(fipsguard_crypto::module::power_up().passed());
    let key = SigningKey::generate(SigningKeyType::EcdsaP256).unwrap();
    let public = key.public_key_der().unwrap();
    let pkcs8 = key.to_pkcs8().unwrap();
    (Box::new(KeySigner(key)), public, pkcs8)
}

fn signer_from(pkcs8: &fipsguard_crypto::SecretBytes) -> Box<dyn Signer> {
    let key = SigningKey::from_pkcs8(SigningKeyType::EcdsaP256, pkcs8.expose_secret()).unwrap();
    Box::new(KeySigner(key))
}

fn request(n: usize) -> Event {
    Event::Request(RequestEvent {
        request_id: format!("r-{n}"),
        outcome: Outcome::Success,
        method: "POST".into(),
        route: "/v1/keys/{name}/encrypt".into(),
        key: Some("payments".into()),
        key_version: Some(1),
        from_version: None,
        actor: Some("0123456789abcdef".into()),
        role: Some("user".into()),
        client: Some("127.0.0.1:5000".into()),
        client_certificate: None,
        status: Some(200),
        error: None,
        micros: Some(42),
        token: None,
        items: None,
        failed_items: None,
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `events` requests, ten at a time concurrently (so batches form), then closes.
fn write_log(config: AuditConfig, signer: Box<dyn Signer>, events: usize) {
    write_anchored_log(config, signer, None, events).unwrap();
}

/// As [`write_log`], with an anchor; `Err` when the log does not open.
fn write_anchored_log(
    config: AuditConfig,
    signer: Box<dyn Signer>,
    anchor: Option<Box<dyn Anchor>>,
    events: usize,
) -> Result<(), String> {
    runtime().block_on(async {
        let log = Arc::new(AuditLog::open(config, signer, anchor, vec![])?);
        for chunk in (0..events).collect::<Vec<_>>().chunks(10) {
            let mut writes = tokio::task::JoinSet::new();
            for n in chunk.iter().copied() {
                let log = log.clone();
                writes.spawn(async move { log.record(request(n)).await });
            }
            for result in writes.join_all().await {
                result.unwrap();
            }
        }
        log.close().await.unwrap();
        Ok(())
    })
}

fn single_file(dir: &Path) -> PathBuf {
    let files = fipsguard_audit::segments(dir).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

/// A log of 30 requests in one file, verified, and its public key.
fn written() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (signer, public) = audit_key();
    write_log(AuditConfig::new(dir.path().to_owned()), signer, 30);
    let file = single_file(dir.path());
    (dir, file, public)
}

#[test]
fn a_written_log_verifies_with_the_public_key() {
    let (dir, file, public) = written();
    let report = verify(dir.path(), std::slice::from_ref(&public)).unwrap();
    // A segment start, 30 requests, the shutdown, and a checkpoint per flush.
    assert!(
        report.records >= 33 && report.checkpoints >= 2,
        "{report:?}"
    );
    assert_eq!(report.first_seq, 1);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    let as_file = verify(&file, &[public]).unwrap();
    assert_eq!(as_file.records, report.records);
}

/// The failure's line and reason, for a tampered log.
fn failure(dir: &Path, public: &[u8]) -> fipsguard_audit::Failure {
    match verify(dir, &[public.to_vec()]) {
        Ok(report) => panic!("tampering not detected: {report:?}"),
        Err(failure) => failure,
    }
}

/// A file of the log replaced by a link to a device or by a FIFO is
/// refused as not a regular file: neither read without end nor waited on.
#[test]
fn a_file_replaced_by_a_device_or_a_fifo_is_refused_not_read() {
    let (dir, file, public) = written();
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    let refused = failure(dir.path(), &public);
    assert!(
        refused.to_string().contains("not a regular file"),
        "{refused}"
    );
    std::fs::remove_file(&file).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&file)
        .status()
        .unwrap();
    assert!(made.success());
    let refused = failure(dir.path(), &public);
    assert!(
        refused.to_string().contains("not a regular file"),
        "{refused}"
    );
}

#[test]
fn altering_one_byte_is_found_at_its_record() {
    let (dir, file, public) = written();
    let mut all = lines(&file);
    // A request in the middle (batches vary, so find one by content).
    let target = all
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("payments"))
        .nth(9)
        .unwrap()
        .0;
    all[target] = all[target].replacen("payments", "paymentz", 1);
    write_lines(&file, &all);
    let f = failure(dir.path(), &public);
    assert_eq!(f.line, target + 1, "{f}");
    assert!(f.reason.contains("does not match its hash"), "{f}");
}

#[test]
fn a_deleted_record_is_found() {
    let (dir, file, public) = written();
    let mut all = lines(&file);
    all.remove(5);
    write_lines(&file, &all);
    let f = failure(dir.path(), &public);
    assert_eq!(f.line, 6, "{f}");
    assert!(f.reason.contains("expected record 6"), "{f}");
}

#[test]
fn swapped_records_are_found() {
    let (dir, file, public) = written();
    let mut all = lines(&file);
    all.swap(3, 4);
    write_lines(&file, &all);
    let f = failure(dir.path(), &public);
    assert_eq!(f.line, 4, "{f}");
    assert!(f.reason.contains("removed, inserted or reordered"), "{f}");
}

#[test]
fn a_truncated_tail_is_found() {
    let (dir, file, public) = written();
    // Cut inside the last line, and separately drop the final checkpoint.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 20]).unwrap();
    let f = failure(dir.path(), &public);
    assert!(f.reason.contains("partial line"), "{f}");
    let mut all = lines(&std::path::PathBuf::from(&file));
    all.pop();
    write_lines(&file, &all);
    let f = failure(dir.path(), &public);
    assert!(f.reason.contains("ends after its last checkpoint"), "{f}");
    assert_eq!(
        f.line,
        all.len(),
        "points at the first unsigned record: {f}"
    );
}

#[test]
fn an_inserted_forged_record_is_found() {
    let (dir, file, public) = written();
    let mut all = lines(&file);
    // A forger who copies a real line's shape but not the chain.
    let forged = all[7].replace("r-", "forged-");
    all.insert(8, forged);
    write_lines(&file, &all);
    let f = failure(dir.path(), &public);
    assert_eq!(f.line, 9, "{f}");
}

#[test]
fn a_log_rechained_under_another_key_is_refused() {
    let (dir, _file, public) = written();
    // The same writer, another key: every hash is right, no signature is ours.
    let other = tempfile::tempdir().unwrap();
    let (forger, _) = audit_key();
    write_log(AuditConfig::new(other.path().to_owned()), forger, 30);
    let forged = single_file(other.path());
    let target = single_file(dir.path());
    std::fs::copy(&forged, &target).unwrap();
    let f = failure(dir.path(), &public);
    assert!(
        f.reason
            .contains("does not verify with the given public key"),
        "{f}"
    );
    let first_checkpoint = lines(&target)
        .iter()
        .position(|l| l.contains("\"kind\":\"checkpoint\""))
        .unwrap();
    assert_eq!(f.line, first_checkpoint + 1, "{f}");
}

#[test]
fn rotation_continues_the_chain_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, public) = audit_key();
    let mut config = AuditConfig::new(dir.path().to_owned());
    config.max_file_bytes = 4096;
    write_log(config, signer, 200);
    let files = fipsguard_audit::segments(dir.path()).unwrap();
    assert!(files.len() >= 5, "{files:?}");
    let report = verify(dir.path(), std::slice::from_ref(&public)).unwrap();
    assert_eq!(report.files.len(), files.len());
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    // Each file on its own verifies too, noting where it continues from.
    let middle = verify(&files[2], std::slice::from_ref(&public)).unwrap();
    assert!(
        middle.notes[0].contains("continues the chain"),
        "{:?}",
        middle.notes
    );
    // An empty file between two (a rotation that failed after creating
    // it) holds nothing: passed over, with a note. Last, it fails.
    let name = |file: &PathBuf| file.file_name().unwrap().to_str().unwrap().to_owned();
    let empty = files[2].with_file_name(format!(
        "{}-empty.jsonl",
        name(&files[2]).trim_end_matches(".jsonl")
    ));
    std::fs::write(&empty, b"").unwrap();
    noted(dir.path(), &public, &["empty, passed over"]);
    std::fs::remove_file(&empty).unwrap();
    let last = files[files.len() - 1].with_file_name("audit-99999999999999999999.jsonl");
    std::fs::write(&last, b"").unwrap();
    let f = failure(dir.path(), &public);
    assert!(f.reason.contains("no complete record"), "{f}");
    std::fs::remove_file(&last).unwrap();

    // A missing file in the middle breaks the link.
    std::fs::remove_file(&files[2]).unwrap();
    let f = failure(dir.path(), &public);
    assert_eq!(f.file, files[3]);
    assert!(f.reason.contains("a segment is missing"), "{f}");
}

#[test]
fn a_restart_after_a_crash_continues_from_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, public, pkcs8) = audit_key_material();
    write_log(AuditConfig::new(dir.path().to_owned()), signer, 20);
    // A crash mid-write leaves records without their checkpoint and a partial line.
    let file = single_file(dir.path());
    let all = lines(&file);
    let mut torn = std::fs::read(&file).unwrap();
    torn.truncate(torn.len() - all.last().unwrap().len() - 1); // drop the shutdown's checkpoint
    torn.extend_from_slice(b"{\"record\":{\"seq\":99");
    std::fs::write(&file, torn).unwrap();
    write_log(
        AuditConfig::new(dir.path().to_owned()),
        signer_from(&pkcs8),
        5,
    );
    let report = verify(dir.path(), std::slice::from_ref(&public)).unwrap();
    assert_eq!(report.files.len(), 2);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("never acknowledged")),
        "{:?}",
        report.notes
    );

    // A newest file without any checkpoint (a run killed before its first
    // flush) is set aside at the next start, and verify names it.
    let newest = fipsguard_audit::segments(dir.path())
        .unwrap()
        .pop()
        .unwrap();
    let mut first_line = lines(&newest).swap_remove(0);
    first_line.push('\n');
    let killed = newest.with_file_name("audit-99999999999999999990.jsonl");
    std::fs::write(&killed, first_line).unwrap();
    write_log(
        AuditConfig::new(dir.path().to_owned()),
        signer_from(&pkcs8),
        1,
    );
    assert!(!killed.exists());
    noted(
        dir.path(),
        &public,
        &[
            "audit-99999999999999999990.incomplete",
            "set aside at a restart",
        ],
    );
}

/// Polls `log` until it is writable again, for at most ten seconds.
async fn until_writable(log: &AuditLog) {
    for _ in 0..100 {
        if log.health().writable {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the log did not recover: {:?}", log.health());
}

#[test]
fn a_read_only_log_refuses_until_it_is_writable_again() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, public) = audit_key();
    runtime().block_on(async {
        let log = open_log(dir.path(), signer);
        log.record(request(1)).await.unwrap();
        let file = single_file(dir.path());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        let refused = log.record(request(2)).await.unwrap_err();
        assert!(
            matches!(&refused, AuditError::Unavailable(e) if e.contains("read-only")),
            "{refused}"
        );
        assert_eq!(refused.code(), "audit_unavailable");
        assert!(!log.health().writable);
        // Fail closed: refused at once while failing, without waiting on
        // the writer. Requests (a check, an expected event) count as
        // refused; other events (a TLS reload, say) are refused uncounted.
        assert!(log.check().is_err());
        assert!(log.expect().record(request(3)).await.is_err());
        let reload = Event::TlsReload {
            loaded: true,
            certificate: None,
            error: None,
        };
        assert!(log.record(reload).await.is_err());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        until_writable(&log).await;
        log.record(request(4)).await.unwrap();
        log.close().await.unwrap();
    });
    noted(
        dir.path(),
        &public,
        &["could not be written", "2 request(s) were refused"],
    );
    let text = std::fs::read_to_string(single_file(dir.path())).unwrap();
    assert!(text.contains("\"r-1\"") && text.contains("\"r-4\""));
    assert!(
        !text.contains("\"r-2\"") && !text.contains("\"r-3\""),
        "refused events are not in the log"
    );
}

#[test]
fn a_removed_log_file_refuses_then_continues_in_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, public) = audit_key();
    runtime().block_on(async {
        let log = open_log(dir.path(), signer);
        log.record(request(1)).await.unwrap();
        std::fs::remove_file(single_file(dir.path())).unwrap();
        let refused = log.record(request(2)).await.unwrap_err();
        assert!(
            matches!(&refused, AuditError::Unavailable(e) if e.contains("removed")),
            "{refused}"
        );
        until_writable(&log).await;
        log.record(request(3)).await.unwrap();
        log.close().await.unwrap();
    });
    // What is left verifies, and says where it continues from and why.
    let report = verify(dir.path(), &[public]).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("was not given")),
        "{:?}",
        report.notes
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("removed or replaced")),
        "{:?}",
        report.notes
    );
}

/// A log whose last record is a failed self-test written outside the chain
/// (as in the module's error state), its public key, and the key to restart with.
fn ended_by_a_self_test_failure() -> (tempfile::TempDir, Vec<u8>, fipsguard_crypto::SecretBytes) {
    let dir = tempfile::tempdir().unwrap();
    let (signer, public, pkcs8) = audit_key_material();
    runtime().block_on(async {
        let log = open_log(dir.path(), signer);
        log.record(request(1)).await.unwrap();
        log.record_self_test_failure("periodic", 24, "hmac-sha-512")
            .await
            .unwrap();
    });
    (dir, public, pkcs8)
}

#[test]
fn a_self_test_failure_is_recorded_outside_the_chain_and_reported() {
    let (dir, public, _) = ended_by_a_self_test_failure();
    let last = lines(&single_file(dir.path())).pop().unwrap();
    assert!(
        last.contains(r#""passed":false"#) && last.contains("hmac-sha-512"),
        "{last}"
    );
    assert!(!last.contains(r#""hash""#), "{last}");
    let report = verify(dir.path(), std::slice::from_ref(&public)).unwrap();
    assert!(
        report.notes.iter().any(
            |n| n.contains("periodic self-test run failed (hmac-sha-512)")
                && n.contains("not tamper-evident")
        ),
        "{:?}",
        report.notes
    );
    // Opening (segment start, checkpoint), the request and its checkpoint, the failure.
    assert_eq!(report.last_seq, 5, "{report:?}");
}

#[test]
fn a_restart_after_a_self_test_failure_continues_the_chain_in_a_new_file() {
    let (dir, public, pkcs8) = ended_by_a_self_test_failure();
    write_log(
        AuditConfig::new(dir.path().to_owned()),
        signer_from(&pkcs8),
        3,
    );
    assert_eq!(fipsguard_audit::segments(dir.path()).unwrap().len(), 2);
    let report = verify(dir.path(), &[public]).unwrap();
    assert!(report.last_seq > 5, "{report:?}");
}

#[test]
fn records_outside_the_chain_cannot_be_forged_or_followed() {
    let (dir, public, _) = ended_by_a_self_test_failure();
    let file = single_file(dir.path());
    let all = lines(&file);
    let failure_line = all.last().unwrap().clone();

    // Anything but a failed self-test outside the chain is a forgery.
    let mut forged = all.clone();
    *forged.last_mut().unwrap() = failure_line.replace(r#""passed":false"#, r#""passed":true"#);
    write_lines(&file, &forged);
    let f = failure(dir.path(), &public);
    assert!(f.reason.contains("only a failed self-test"), "{f}");

    // Nothing can follow one: the module stopped with it.
    let mut followed = all.clone();
    followed.push(failure_line.replace(r#""seq":5"#, r#""seq":6"#));
    write_lines(&file, &followed);
    let f = failure(dir.path(), &public);
    assert_eq!(f.line, 6, "{f}");
    assert!(f.reason.contains("follows record 5"), "{f}");

    // What a record outside the chain says is shown, never obeyed by a terminal.
    let mut rewritten = all.clone();
    *rewritten.last_mut().unwrap() = failure_line.replace("hmac-sha-512", r"\u001b[2J\nforged");
    write_lines(&file, &rewritten);
    let report = verify(dir.path(), &[public]).unwrap();
    let note = report.notes.iter().find(|n| n.contains("forged")).unwrap();
    assert!(!note.contains(['\u{1b}', '\n']), "{note}");
    assert!(note.contains(r"\u{1b}[2J\nforged"), "{note}");
}

/// An anchor kept in a file outside the log's directory.
struct FileAnchor(PathBuf);

impl Anchor for FileAnchor {
    fn load(&self) -> Result<Option<Link>, String> {
        match std::fs::read(&self.0) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Whole or not at all, as a store writes: a test reading the anchor
    /// while the writer saves it never sees half a value.
    fn save(&self, checkpoint: &Link) -> Result<(), String> {
        let partial = self.0.with_extension("partial");
        std::fs::write(&partial, serde_json::to_vec(checkpoint).unwrap())
            .and_then(|()| std::fs::rename(&partial, &self.0))
            .map_err(|e| e.to_string())
    }
}

#[test]
fn removing_the_newest_file_is_found_at_the_next_start() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, public, pkcs8) = audit_key_material();
    let anchor = || Some(Box::new(FileAnchor(outside.path().join("anchor"))) as Box<dyn Anchor>);
    let config = || AuditConfig::new(dir.path().to_owned());
    for _ in 0..2 {
        write_anchored_log(config(), signer_from(&pkcs8), anchor(), 5).unwrap();
    }
    let files = fipsguard_audit::segments(dir.path()).unwrap();
    assert_eq!(files.len(), 2);
    std::fs::remove_file(&files[1]).unwrap();
    // What is left verifies on its own: only the anchor tells.
    verify(dir.path(), std::slice::from_ref(&public)).unwrap();
    let error = write_anchored_log(config(), signer_from(&pkcs8), anchor(), 1).unwrap_err();
    assert!(error.contains("records were removed"), "{error}");
    assert!(error.contains("--audit-accept-gap"), "{error}");
    assert_eq!(
        fipsguard_audit::segments(dir.path()).unwrap().len(),
        1,
        "nothing written"
    );

    // Removing everything is found too.
    std::fs::rename(&files[0], outside.path().join("kept")).unwrap();
    let error = write_anchored_log(config(), signer_from(&pkcs8), anchor(), 1).unwrap_err();
    assert!(error.contains("the log was removed"), "{error}");
    std::fs::rename(outside.path().join("kept"), &files[0]).unwrap();

    // An operator who kept the evidence accepts the gap once; the log says so.
    let accepting = AuditConfig {
        accept_gap: true,
        ..config()
    };
    write_anchored_log(accepting, signer_from(&pkcs8), anchor(), 1).unwrap();
    noted(
        dir.path(),
        &public,
        &["accepting a gap", "records were removed"],
    );
    write_anchored_log(config(), signer_from(&pkcs8), anchor(), 1).unwrap();
}

#[test]
fn an_anchor_is_not_fooled_by_another_log_nor_shared_with_one() {
    let (dir, other, outside) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (_, public, pkcs8) = audit_key_material();
    let anchor_file = outside.path().join("anchor");
    let anchor = || Some(Box::new(FileAnchor(anchor_file.clone())) as Box<dyn Anchor>);
    let plain = |path: &Path| AuditConfig::new(path.to_owned());
    let accepting = |path: &Path| AuditConfig {
        accept_gap: true,
        ..AuditConfig::new(path.to_owned())
    };
    // One run: start, one request, stop; `Err` when it does not start.
    let start = |config: AuditConfig| write_anchored_log(config, signer_from(&pkcs8), anchor(), 1);

    // Another log under the same name (another node, same audit key) does
    // not start: it does not hold the anchored checkpoint.
    let first = runtime().block_on(async {
        let log = AuditLog::open(plain(dir.path()), signer_from(&pkcs8), anchor(), vec![]).unwrap();
        log.record(request(1)).await.unwrap();
        log
    });
    let error = start(plain(other.path())).unwrap_err();
    assert!(
        error.contains("the log was removed") && error.contains("same name"),
        "{error}"
    );
    // Started anyway, it takes the anchor over; the first log's next save
    // finds what it did not write, and leaves it.
    start(accepting(other.path())).unwrap();
    let taken = anchored(&anchor_file);
    runtime().block_on(async { first.close().await.unwrap() });
    assert_eq!(
        anchored(&anchor_file),
        taken,
        "the first log did not overwrite it"
    );
    let error = start(plain(dir.path())).unwrap_err();
    assert!(
        error.contains("the log was replaced") && error.contains("same name"),
        "{error}"
    );
    start(accepting(dir.path())).unwrap();

    // A longer log put in its place (copied from another node) does not
    // hold the anchored checkpoint: refused, though it verifies.
    let kept = outside.path().join("kept");
    std::fs::rename(dir.path(), &kept).unwrap();
    write_anchored_log(plain(other.path()), signer_from(&pkcs8), None, 40).unwrap();
    copy_dir(other.path(), dir.path());
    let report = verify(dir.path(), std::slice::from_ref(&public)).unwrap();
    assert!(report.last_seq > anchored(&anchor_file).seq, "{report:?}");
    let error = start(plain(dir.path())).unwrap_err();
    assert!(error.contains("the log was replaced"), "{error}");
    std::fs::remove_dir_all(dir.path()).unwrap();
    std::fs::rename(&kept, dir.path()).unwrap();

    // An anchor that cannot be read stops the start, unless accepted.
    std::fs::write(&anchor_file, b"{not json").unwrap();
    let error = start(plain(dir.path())).unwrap_err();
    assert!(error.contains("cannot be read"), "{error}");
    start(accepting(dir.path())).unwrap();
    start(plain(dir.path())).unwrap();

    // Without an anchor, a log with records starts, and says so.
    std::fs::remove_file(&anchor_file).unwrap();
    start(plain(dir.path())).unwrap();
    noted(dir.path(), &public, &["startup without an anchor"]);
}

/// An anchor whose next save lands, then reports a failure (a timeout).
struct Flaky(FileAnchor, Arc<std::sync::atomic::AtomicBool>);

impl Anchor for Flaky {
    fn load(&self) -> Result<Option<Link>, String> {
        self.0.load()
    }

    fn save(&self, checkpoint: &Link) -> Result<(), String> {
        self.0.save(checkpoint)?;
        match self.1.swap(false, std::sync::atomic::Ordering::SeqCst) {
            true => Err("timed out".into()),
            false => Ok(()),
        }
    }
}

#[test]
fn a_save_that_landed_though_it_failed_is_not_taken_for_another_log() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (signer, _) = audit_key();
    let anchor_file = outside.path().join("anchor");
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let config = AuditConfig {
        anchor_every: Duration::ZERO,
        ..AuditConfig::new(dir.path().to_owned())
    };
    runtime().block_on(async {
        let anchor = Flaky(FileAnchor(anchor_file.clone()), fail.clone());
        let log = AuditLog::open(config, signer, Some(Box::new(anchor)), vec![]).unwrap();
        log.record(request(1)).await.unwrap();
        fail.store(true, std::sync::atomic::Ordering::SeqCst);
        log.record(request(2)).await.unwrap();
        log.record(request(3)).await.unwrap();
        assert!(
            anchor_catches_up(&anchor_file, &log).await,
            "the anchor moves on"
        );
        log.close().await.unwrap();
    });
    assert!(
        !fail.load(std::sync::atomic::Ordering::SeqCst),
        "the failure happened"
    );
}

#[test]
fn a_checkpoint_is_anchored_while_the_log_is_idle() {
    let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (signer, _) = audit_key();
    let anchor_file = outside.path().join("anchor");
    let config = AuditConfig {
        anchor_every: Duration::from_secs(2),
        ..AuditConfig::new(dir.path().to_owned())
    };
    runtime().block_on(async {
        let anchor = Box::new(FileAnchor(anchor_file.clone()));
        let log = AuditLog::open(config, signer, Some(anchor), vec![]).unwrap();
        let opened = anchored(&anchor_file).seq;
        for n in 0..3 {
            log.record(request(n)).await.unwrap();
        }
        assert_eq!(anchored(&anchor_file).seq, opened, "not yet due");
        assert!(
            anchor_catches_up(&anchor_file, &log).await,
            "anchored with no request to wait for"
        );
        log.close().await.unwrap();
    });
}

/// The checkpoint the anchor file holds.
fn anchored(file: &Path) -> Link {
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

/// Whether the anchor file comes to hold the log's last checkpoint within
/// ten seconds (it is saved after the answers, on the writer's time).
async fn anchor_catches_up(file: &Path, log: &AuditLog) -> bool {
    for _ in 0..200 {
        if anchored(file).seq == log.health().last_seq {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// Verifies the log in `dir` and checks that one note mentions every part.
fn noted(dir: &Path, public: &[u8], parts: &[&str]) -> fipsguard_audit::Report {
    let report = verify(dir, &[public.to_vec()]).unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| parts.iter().all(|part| n.contains(part))),
        "{parts:?}: {:?}",
        report.notes
    );
    report
}

/// A log in `dir`, without an anchor.
fn open_log(dir: &Path, signer: Box<dyn Signer>) -> AuditLog {
    AuditLog::open(AuditConfig::new(dir.to_owned()), signer, None, vec![]).unwrap()
}

#[test]
fn one_writer_at_a_time_holds_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, public, pkcs8) = audit_key_material();
    let config = || AuditConfig::new(dir.path().to_owned());
    runtime().block_on(async {
        let first = AuditLog::open(config(), signer, None, vec![]).unwrap();
        first.record(request(1)).await.unwrap();
        let error = AuditLog::open(config(), signer_from(&pkcs8), None, vec![])
            .err()
            .expect("a second writer is refused");
        assert!(
            error.contains("being written by another process"),
            "{error}"
        );
        first.record(request(2)).await.unwrap();
        first.close().await.unwrap();
        // Closed, it lets the next writer in at once.
        let next = AuditLog::open(config(), signer_from(&pkcs8), None, vec![]).unwrap();
        next.record(request(3)).await.unwrap();
        next.close().await.unwrap();
    });
    let report = verify(dir.path(), &[public]).unwrap();
    assert_eq!(report.notes, Vec::<String>::new(), "{report:?}");
}

/// Lines for `records` (record JSON texts, numbered on from `seq`), each
/// chained to the one before from `previous` as the writer chains them,
/// and a checkpoint over the last, signed with `pkcs8`: what a writer
/// holding the key appends.
fn chained_lines(
    records: &[String],
    previous: &[u8],
    seq: u64,
    pkcs8: &fipsguard_crypto::SecretBytes,
) -> String {
    use base64::Engine;
    use fipsguard_crypto::digest::{digest, HashAlgorithm};
    let chained = |previous: &[u8], record: &str| {
        let input = [b"fipsguard-audit-v1\0", previous, record.as_bytes()].concat();
        digest(HashAlgorithm::Sha256, &input).unwrap()
    };
    let (mut lines, mut previous) = (String::new(), previous.to_vec());
    let mut push = |record: &str, previous: &mut Vec<u8>| {
        let hash = chained(previous, record);
        lines += &format!(
            "{{\"record\":{record},\"hash\":\"{}\"}}\n",
            hex::encode(&hash)
        );
        *previous = hash;
    };
    for record in records {
        push(record, &mut previous);
    }
    let covers = seq + records.len() as u64;
    let message = [
        &b"fipsguard-audit-checkpoint-v1\0"[..],
        &covers.to_be_bytes(),
        &previous,
    ]
    .concat();
    let signed = signer_from(pkcs8).sign(&message).unwrap();
    let checkpoint = format!(
        r#"{{"seq":{},"time":"2027-01-01T00:00:00Z","kind":"checkpoint","covers":{covers},"chain":"{}","key":"audit","key_version":1,"signature":"{}"}}"#,
        covers + 1,
        hex::encode(&previous),
        base64::engine::general_purpose::STANDARD.encode(&signed.signature)
    );
    push(&checkpoint, &mut previous);
    lines
}

/// Records of a kind a newer version writes, and the checkpoint that signs
/// them, appended as such a writer would: an older verifier checks their
/// place and hash and says it did not read them. Altered (with the hash
/// made again, or not), or a known kind that does not read, is refused.
#[test]
fn records_of_unknown_kinds_are_verified_by_place_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public, pkcs8) = audit_key_material();
    write_log(
        AuditConfig::new(dir.path().to_owned()),
        signer_from(&pkcs8),
        3,
    );
    let file = single_file(dir.path());
    let text = std::fs::read_to_string(&file).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let seq = last["record"]["seq"].as_u64().unwrap();
    let previous = hex::decode(last["hash"].as_str().unwrap()).unwrap();
    let record = |kind: &str, detail: &str| {
        format!(
            r#"{{"seq":{},"time":"2027-01-01T00:00:00Z","kind":"{kind}","detail":"{detail}"}}"#,
            seq + 1
        )
    };
    let appended = chained_lines(&[record("from_the_future", "kept")], &previous, seq, &pkcs8);
    std::fs::write(&file, text.clone() + &appended).unwrap();
    noted(
        dir.path(),
        &public,
        &[
            &format!("record {}", seq + 1),
            "\"from_the_future\"",
            "its place and hash were verified",
        ],
    );

    let altered = appended.replacen("kept", "lost", 1);
    for (tampered, why) in [
        (altered, "altered or forged"),
        (
            // Chained again without the key: the old checkpoint no longer matches.
            chained_lines(&[record("from_the_future", "lost")], &previous, seq, &pkcs8)
                .lines()
                .next()
                .unwrap()
                .to_owned()
                + "\n"
                + appended.lines().nth(1).unwrap()
                + "\n",
            "altered or forged",
        ),
        (
            chained_lines(&[record("request", "kept")], &previous, seq, &pkcs8),
            "damaged",
        ),
    ] {
        std::fs::write(&file, text.clone() + &tampered).unwrap();
        let refused = failure(dir.path(), &public);
        assert!(refused.reason.contains(why), "{why}: {}", refused.reason);
    }
}

/// The notes `audit verify` makes of changes begun with no outcome, in a
/// log of `events` alone.
fn unfinished_changes(events: Vec<Event>) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let (signer, public) = audit_key();
    runtime().block_on(async {
        let log = open_log(dir.path(), signer);
        for event in events {
            log.record(event).await.unwrap();
        }
        log.close().await.unwrap();
    });
    let report = verify(dir.path(), &[public]).unwrap();
    let notes = report.notes.into_iter();
    notes
        .filter(|n| n.contains("no outcome follows it"))
        .collect()
}

/// A root key change whose outcome was never recorded (the process ended
/// mid-change) is called out; one with its outcome is not.
#[test]
fn a_root_key_change_without_an_outcome_is_called_out() {
    let change = |outcome| Event::RootKeyChange {
        store: "sqlite".into(),
        source: "key_file".into(),
        binds_earlier_release: false,
        outcome,
        versions: (outcome == Outcome::Success).then_some(2),
        error: None,
    };
    for (events, called_out) in [
        (
            vec![change(Outcome::Intent), change(Outcome::Success)],
            false,
        ),
        (vec![change(Outcome::Intent)], true),
        (
            vec![
                change(Outcome::Intent),
                change(Outcome::Intent),
                change(Outcome::Failure),
            ],
            true,
        ),
    ] {
        let noted = unfinished_changes(events);
        assert_eq!(noted.len(), usize::from(called_out), "{noted:?}");
    }
}

/// A scheduled destruction whose outcome was never recorded is called
/// out, key by key: another key's outcome does not end it.
#[test]
fn a_key_destruction_without_an_outcome_is_called_out() {
    let destruction = |key: &str, outcome| Event::KeyDestruction {
        key: key.into(),
        due: "2027-01-01T00:00:00Z".into(),
        outcome,
        error: None,
    };
    let noted = unfinished_changes(vec![
        destruction("a", Outcome::Intent),
        destruction("b", Outcome::Intent),
        destruction("b", Outcome::Success),
        destruction("c", Outcome::Intent),
        destruction("c", Outcome::Rejected),
    ]);
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert!(
        noted[0].contains("the scheduled destruction of key \"a\""),
        "{noted:?}"
    );
    // Interleaved, each ends its own; two of one key overlapping (a
    // request gone while its destruction ran on, and another that found
    // the key due meanwhile) end with their two outcomes.
    let noted = unfinished_changes(vec![
        destruction("a", Outcome::Intent),
        destruction("b", Outcome::Intent),
        destruction("a", Outcome::Intent),
        destruction("a", Outcome::Success),
        destruction("b", Outcome::Success),
        destruction("a", Outcome::Rejected),
    ]);
    assert!(noted.is_empty(), "{noted:?}");
    // A process that ended mid-destruction, and the next that began it
    // again and finished: the first is called out, not the second.
    let first_alone = unfinished_changes(vec![destruction("a", Outcome::Intent)]);
    let begun_again = unfinished_changes(vec![
        destruction("a", Outcome::Intent),
        destruction("a", Outcome::Intent),
        destruction("a", Outcome::Success),
    ]);
    assert_eq!(begun_again, first_alone);
}

/// A rotation at the encryption limit whose outcome was never recorded is
/// called out by key and version: another version's outcome does not end
/// it, nor another key's.
#[test]
fn a_key_rotation_without_an_outcome_is_called_out() {
    let rotation = |key: &str, version, outcome, new_version| Event::KeyRotation {
        key: key.into(),
        version,
        outcome,
        new_version,
        error: None,
    };
    // Matched by key alone, the outcome would end the latest intent (the
    // version 1's) and leave the version 2's.
    let noted = unfinished_changes(vec![
        rotation("a", 2, Outcome::Intent, None),
        rotation("a", 1, Outcome::Intent, None),
        rotation("b", 1, Outcome::Success, Some(2)),
        rotation("a", 2, Outcome::Success, Some(3)),
        rotation("c", 4, Outcome::Intent, None),
        rotation("c", 4, Outcome::Rejected, None),
    ]);
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert!(
        noted[0].contains("the rotation of key \"a\" at the encryption limit of its version 1"),
        "{noted:?}"
    );
}

/// A change request whose outcome was never recorded is called out by its
/// request id; a request's outcome ends its own intent only, and requests
/// that are no changes (no intent) leave nothing to call out.
#[test]
fn a_change_request_without_an_outcome_is_called_out() {
    let change = |id: &str, outcome| {
        let Event::Request(mut event) = request(0) else {
            unreachable!("a request event")
        };
        (event.request_id, event.outcome) = (id.into(), outcome);
        event.route = "/v1/keys/{name}/rotate".into();
        Event::Request(event)
    };
    let noted = unfinished_changes(vec![
        change("a-1", Outcome::Intent),
        change("a-2", Outcome::Intent),
        request(3),
        change("a-2", Outcome::Rejected),
        change("a-4", Outcome::Intent),
        change("a-4", Outcome::Success),
    ]);
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert!(noted[0].contains("the change request \"a-1\""), "{noted:?}");
}

/// What records after a file's last checkpoint say (a writer killed
/// mid-flush, or anyone who can write the file) is noted as signed by
/// nothing, and a root key change there is not taken as begun.
#[test]
fn what_records_after_a_files_last_checkpoint_say_is_not_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public, pkcs8) = audit_key_material();
    let config = || AuditConfig::new(dir.path().to_owned());
    write_log(config(), signer_from(&pkcs8), 2);
    let file = single_file(dir.path());
    let text = std::fs::read_to_string(&file).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let seq = last["record"]["seq"].as_u64().unwrap();
    let previous = hex::decode(last["hash"].as_str().unwrap()).unwrap();
    let records = [
        format!(
            r#"{{"seq":{},"time":"2027-01-01T00:00:00Z","kind":"root_key_change","store":"sqlite","source":"key_file","outcome":"intent"}}"#,
            seq + 1
        ),
        format!(
            r#"{{"seq":{},"time":"2027-01-01T00:00:00Z","kind":"from_the_future"}}"#,
            seq + 2
        ),
    ];
    let signed = chained_lines(&records, &previous, seq, &pkcs8);
    // Without the checkpoint that would sign them.
    let unsigned: String = signed.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text + &unsigned).unwrap();
    write_log(config(), signer_from(&pkcs8), 1);
    let report = noted(
        dir.path(),
        &public,
        &["from_the_future", "nothing signs it, not evidence"],
    );
    assert!(
        !report
            .notes
            .iter()
            .any(|n| n.contains("no outcome follows it")),
        "{:?}",
        report.notes
    );
}
