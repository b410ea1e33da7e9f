//! Every request leaves evidence: the audit layer records one event per
//! request (and, for changes, one before the change), and answers only once
//! the event is durable. If the log cannot be written, requests are refused
//! (fail closed). The events, the chain and the writer are in
//! `fipsguard-audit`; this module connects them to requests and to the
//! audit key in the key store.

pub mod unauthenticated;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use fipsguard_audit::{
    Anchor, AuditError, AuditLog, Event, Expected, Link, Outcome, RequestEvent, Signed, Signer,
};
use fipsguard_core::auth::is_token_id;
use fipsguard_core::kms::{CreateKey, SignInput};
use fipsguard_core::name::KeyName;
use fipsguard_core::{
    DestructionOutcome, KeyState, KeyType, Kms, KmsError, LifecycleWitness, Principal,
    RotationOutcome,
};
use fipsguard_crypto::sign::SigningKeyType;
use tokio::runtime::Handle;

use crate::error::ApiError;
use crate::layers::{HandOff, RequestContext};
use crate::listener::Peer;
use crate::state::AppState;

/// The key that signs checkpoints: ECDSA P-256, wrapped under the root KEK
/// like any key; its public key is exported with `GET
/// /v1/keys/fipsguard-audit/public-key`.
pub const AUDIT_KEY: &str = "fipsguard-audit";

/// Routes that are not audited: unauthenticated, read-only, touching no key.
const UNAUDITED: [&str; 2] = ["/v1/health", "/v1/openapi.json"];

/// Creates the audit key on first use (any node may; a concurrent creation
/// by another node is fine). One already there must be what the log signs
/// with: an active ECDSA P-256 key.
pub async fn ensure_audit_key(kms: &Kms) -> Result<(), String> {
    let key_type = KeyType::Signing(SigningKeyType::EcdsaP256);
    match kms.create_key(CreateKey::new(AUDIT_KEY, key_type)).await {
        Ok(_) => Ok(()),
        Err(KmsError::KeyExists(_)) => {
            let key = kms
                .get_key(AUDIT_KEY)
                .await
                .map_err(|e| format!("cannot read the audit key {AUDIT_KEY}: {e}"))?;
            match (key.key_type == key_type.as_str(), key.state) {
                (true, KeyState::Active) if key.destroy_at.is_some() => Err(format!(
                    "the key {AUDIT_KEY} has a destruction scheduled, which no node of this release makes: the store was changed by hand"
                )),
                (true, KeyState::Active) => Ok(()),
                _ => Err(format!(
                    "the key {AUDIT_KEY} is {} and {}: the audit log signs only with an active {} key of that name (see docs/audit.md)",
                    key.key_type,
                    key.state.as_str(),
                    key_type.as_str()
                )),
            }
        }
        Err(e) => Err(format!("cannot create the audit key {AUDIT_KEY}: {e}")),
    }
}

/// Records the changes the service makes to keys on its own (scheduled
/// destructions, rotations at the encryption limit) in the audit log: the
/// intent durably before the change (a log that cannot take it holds the
/// change), then how it ended. Given to the core before the log opens, so
/// that no such change goes unrecorded meanwhile (they are held until
/// [`serve`](Self::serve)); holds the state weakly, as the core it is
/// given to belongs to that state.
#[derive(Default)]
pub struct LifecycleRecords(std::sync::OnceLock<std::sync::Weak<AppState>>);

impl LifecycleRecords {
    /// Records in `state`'s audit log from now on.
    pub fn serve(&self, state: &Arc<AppState>) {
        let _ = self.0.set(Arc::downgrade(state));
    }

    async fn record(&self, event: Event) -> Result<(), String> {
        let state = self.0.get().ok_or("the audit log is not open yet")?;
        let state = state.upgrade().ok_or("the service is stopping")?;
        let audit = state.audit.as_ref().ok_or("the audit log is off")?;
        audit.record(event).await.map_err(|e| e.to_string())
    }

    /// Records a change's intent; a log that cannot take it holds the
    /// change, which `held` names in the error log line.
    async fn record_intent(&self, event: Event, key: &str, held: &str) -> Result<(), String> {
        let recorded = self.record(event).await;
        if let Err(e) = &recorded {
            tracing::error!(key, error = %e, "{held}: the audit log cannot record it");
        }
        recorded
    }

    /// Records how a change ended; `what` names it in the error log line.
    async fn record_end(&self, event: Event, key: &str, what: &str) {
        if let Err(e) = self.record(event).await {
            tracing::error!(key, error = %e, "the end of {what} could not be recorded in the audit log");
        }
    }
}

#[async_trait::async_trait]
impl LifecycleWitness for LifecycleRecords {
    async fn before_destruction(&self, key: &str, due_at: i64) -> Result<(), String> {
        // It signs the log: recording its end would wait on itself.
        if key == AUDIT_KEY {
            return Err("the audit key is never destroyed while it signs the log".into());
        }
        let event = destruction(key, due_at, Outcome::Intent, None);
        self.record_intent(event, key, "a due destruction is held")
            .await
    }

    async fn after_destruction(&self, key: &str, due_at: i64, outcome: DestructionOutcome) {
        let (outcome, error) = match outcome {
            DestructionOutcome::Destroyed => {
                tracing::info!(key, "key destroyed as scheduled");
                (Outcome::Success, None)
            }
            DestructionOutcome::NotDone(why) => (Outcome::Rejected, Some(why.to_owned())),
            DestructionOutcome::Failed(why) => (Outcome::Failure, Some(why)),
        };
        let event = destruction(key, due_at, outcome, error);
        self.record_end(event, key, "a scheduled destruction").await;
    }

    async fn before_rotation(&self, key: &str, limited: u32) -> Result<(), String> {
        let event = rotation(key, limited, Outcome::Intent, None, None);
        self.record_intent(event, key, "a rotation at the encryption limit is held")
            .await
    }

    async fn after_rotation(&self, key: &str, limited: u32, outcome: RotationOutcome) {
        let event = match outcome {
            RotationOutcome::Rotated(new_version) => {
                tracing::info!(
                    key,
                    version = limited,
                    new_version,
                    "key rotated at its version's encryption limit"
                );
                rotation(key, limited, Outcome::Success, Some(new_version), None)
            }
            RotationOutcome::NotDone(why) => {
                rotation(key, limited, Outcome::Rejected, None, Some(why.to_owned()))
            }
            RotationOutcome::Failed(why) => {
                rotation(key, limited, Outcome::Failure, None, Some(why))
            }
        };
        self.record_end(event, key, "a rotation at the encryption limit")
            .await;
    }
}

/// A scheduled destruction's record.
fn destruction(key: &str, due_at: i64, outcome: Outcome, error: Option<String>) -> Event {
    Event::KeyDestruction {
        key: key.to_owned(),
        due: fipsguard_audit::unix_time(due_at),
        outcome,
        error,
    }
}

/// A rotation at the encryption limit's record.
fn rotation(
    key: &str,
    version: u32,
    outcome: Outcome,
    new_version: Option<u32>,
    error: Option<String>,
) -> Event {
    Event::KeyRotation {
        key: key.to_owned(),
        version,
        outcome,
        new_version,
        error,
    }
}

/// Opens the log with the audit key and its anchor in the store (under
/// `node`, by default the host name and directory), writing `first` durably.
pub async fn open(
    kms: &Arc<Kms>,
    config: fipsguard_audit::AuditConfig,
    node: Option<String>,
    first: Vec<Event>,
) -> Result<AuditLog, String> {
    ensure_audit_key(kms).await?;
    let core = FromWriter {
        kms: kms.clone(),
        runtime: Handle::current(),
    };
    let signer = KmsSigner(core.clone());
    let anchor = StoreAnchor {
        core,
        node: node.unwrap_or_else(|| default_node(&config.dir)),
    };
    for code in AuditError::CODES {
        crate::metrics::count_audit_refusals(code, 0);
    }
    crate::metrics::record_counted_refusals(0);
    let dir = config.dir.clone();
    let anchor: Box<dyn Anchor> = Box::new(anchor);
    tokio::task::spawn_blocking(move || {
        AuditLog::open(config, Box::new(signer), Some(anchor), first)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot open the audit log in {}: {e}", dir.display()))
}

/// The key management core as the writer's thread reaches it: that
/// thread is not the runtime's, so it waits for the core's futures.
#[derive(Clone)]
struct FromWriter {
    kms: Arc<Kms>,
    runtime: Handle,
}

/// The longest a flush waits for its checkpoint's signature (the audit
/// key's record may need a store read): a key store that does not answer
/// sooner fails the flush, so requests are refused (fail closed) instead
/// of held for as long as it hangs.
const SIGNATURE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Signs checkpoints with the audit key.
struct KmsSigner(FromWriter);

impl Signer for KmsSigner {
    fn sign(&self, message: &[u8]) -> Result<Signed, String> {
        let FromWriter { kms, runtime } = &self.0;
        let signing = kms.sign(AUDIT_KEY, SignInput::Message(message), None);
        // The timer is made inside the runtime, the only place it can be.
        let signature = runtime
            .block_on(async { tokio::time::timeout(SIGNATURE_WAIT, signing).await })
            .map_err(|_| {
                format!(
                    "no answer within {} s: the key store is slow or unreachable",
                    SIGNATURE_WAIT.as_secs()
                )
            })
            .and_then(|signed| signed.map_err(|e| e.to_string()))
            .map_err(|e| format!("cannot sign a checkpoint with {AUDIT_KEY}: {e}"))?;
        Ok(Signed {
            key: AUDIT_KEY.to_owned(),
            key_version: signature.version,
            signature: signature.bytes,
        })
    }
}

/// Keeps the log's latest checkpoint in the key store, out of reach of
/// whoever can only write the audit directory.
struct StoreAnchor {
    core: FromWriter,
    node: String,
}

impl Anchor for StoreAnchor {
    fn load(&self) -> Result<Option<Link>, String> {
        let FromWriter { kms, runtime } = &self.core;
        let saved = runtime
            .block_on(kms.audit_anchor(&self.node))
            .map_err(|e| e.to_string())?;
        saved
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("the audit anchor of {} is unreadable: {e}", self.node))
            })
            .transpose()
    }

    fn save(&self, checkpoint: &Link) -> Result<(), String> {
        let bytes = serde_json::to_vec(checkpoint).map_err(|e| e.to_string())?;
        let FromWriter { kms, runtime } = &self.core;
        runtime
            .block_on(kms.save_audit_anchor(&self.node, &bytes))
            .map_err(|e| e.to_string())
    }
}

/// This host's name and the log's directory as configured (made absolute,
/// links not resolved, so the name is the same before and after the
/// directory exists): nodes sharing a store keep apart anchors.
fn default_node(dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|e| {
        // Nodes with one audit path would then share an anchor and refuse
        // each other's logs, under a name that does not say why.
        tracing::warn!(error = %e, "the host name is unreadable: the audit anchor is saved under the directory alone; set [audit] node (FIPSGUARD_AUDIT_NODE) on hosts that share a store");
        String::new()
    });
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    format!("{}:{}", host.trim(), dir.display())
}

/// What a handler tells the audit log about the key or token it acted on,
/// beyond what the path names: a key version, a created key or token
/// (given to [`Caller::acted_on`](crate::auth::Caller::acted_on)).
#[derive(Clone, Default)]
pub struct Subject {
    key: Option<String>,
    key_version: Option<u32>,
    from_version: Option<u32>,
    token: Option<String>,
}

impl Subject {
    /// The key version an operation used.
    pub fn version(version: u32) -> Self {
        Self {
            key_version: Some(version),
            ..Self::default()
        }
    }

    /// The version a ciphertext names, if it names one.
    pub fn ciphertext(text: &str) -> Self {
        Self {
            key_version: fipsguard_core::ciphertext::key_version(text),
            ..Self::default()
        }
    }

    /// A rewrap: the version its ciphertext names, if it names one, and
    /// the version of the ciphertext it made, if it made one.
    pub fn rewrap(from: &str, to: Option<&str>) -> Self {
        Self {
            key_version: to.and_then(fipsguard_core::ciphertext::key_version),
            from_version: fipsguard_core::ciphertext::key_version(from),
            ..Self::default()
        }
    }

    /// A key and its newest version.
    pub fn key(name: &str, version: u32) -> Self {
        Self {
            key: Some(name.to_owned()),
            key_version: Some(version),
            ..Self::default()
        }
    }

    /// A key named in a request's body (one it asked to create), if the
    /// name is a key name: anything else stays out of the log.
    pub fn named(name: &str) -> Self {
        Self {
            key: KeyName::is_valid(name).then(|| name.to_owned()),
            ..Self::default()
        }
    }

    /// A token (by id).
    pub fn token(id: &str) -> Self {
        Self {
            token: Some(id.to_owned()),
            ..Self::default()
        }
    }
}

/// The error code of a refused or failed request (or of a batch's first
/// failed item), for the audit record.
#[derive(Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponseParts for ErrorCode {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// Marks an answer without an authenticated caller that was counted
/// beyond the budget, not recorded one by one: its request line goes to
/// debug if the request was refused (4xx), so that a flood fills neither
/// the audit disk nor the log; a failure of the service stays at info.
#[derive(Clone, Copy)]
pub(crate) struct Counted;

/// How a batch answered 200 went, for the audit record (an answer's
/// extension): its items, how many failed, and the first failure's code.
/// One whose every item failed did nothing, and is recorded `rejected`.
#[derive(Clone, Copy, Default)]
pub struct BatchTally {
    /// Items in the batch.
    pub items: u32,
    /// Items that failed.
    pub failed: u32,
    /// The first failed item's error code.
    pub first_error: Option<ErrorCode>,
}

/// Changes to keys and tokens: audited before they are made (see
/// [`fipsguard_audit::is_change`]), and logged at info even when they
/// succeed.
pub fn is_change(method: &Method, route: &str) -> bool {
    fipsguard_audit::is_change(method.as_str(), route)
}

/// The request as the audit log sees it, before the handler runs.
fn describe(
    method: &Method,
    uri: &Uri,
    extensions: &axum::http::Extensions,
    context: &RequestContext,
) -> RequestEvent {
    let named = |prefix: &str, valid: fn(&str) -> bool| {
        context
            .route()
            .starts_with(prefix)
            .then(|| path_parameter(uri.path(), valid))
            .flatten()
    };
    let peer = extensions.get::<Peer>();
    RequestEvent {
        request_id: context.id.as_str().to_owned(),
        outcome: Outcome::Intent,
        method: method.to_string(),
        route: context.route().to_owned(),
        key: named("/v1/keys/{name}", KeyName::is_valid),
        key_version: None,
        from_version: None,
        actor: None,
        role: None,
        client: peer.map(|p| p.address.to_string()),
        client_certificate: peer.and_then(|p| p.certificate.as_deref().map(str::to_owned)),
        status: None,
        error: None,
        micros: None,
        token: named("/v1/tokens/{id}", is_token_id),
        items: None,
        failed_items: None,
    }
}

/// The key name or token id a path names, decoded as the router decodes it
/// (so `%70ayments` is recorded as `payments`, the key it reaches), and
/// only if `valid`: anything else (a whole token pasted as an id, kilobytes
/// of junk) fails the request and stays out of the log.
fn path_parameter(path: &str, valid: fn(&str) -> bool) -> Option<String> {
    let segment = path.split('/').nth(3)?;
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?;
    valid(&decoded).then(|| decoded.into_owned())
}

/// A request on its way through the audit log: described before the
/// handler runs, recorded with its outcome once answered. `None` when the
/// log is off or the route is not audited.
pub(crate) struct Audited(Option<Pending>);

/// An audited request's event, waiting for its outcome.
struct Pending {
    event: RequestEvent,
    log: Recorder,
    unauthenticated: Arc<unauthenticated::Budget>,
}

/// How an answered request's event reaches the log.
enum Recorder {
    /// Announced before the handler runs, so that the batch in the making
    /// waits for it.
    Expected(Expected),
    /// Not announced: a change waits mid-way for its intent to be durable
    /// (record_intent), and an on-demand self-test for its run's record;
    /// expecting their final event from the start would hold that batch
    /// for the whole linger, waiting on itself.
    Later(AuditLog),
}

/// What a request's answer needs before it is given.
pub(crate) enum Answer {
    /// Nothing: it is given now.
    Now(Response),
    /// Its event to be durable.
    Recording(Recording),
}

/// An answer waiting for its event to be durable (or refused if it cannot be).
pub(crate) type Recording = Pin<Box<dyn Future<Output = Response> + Send>>;

impl Audited {
    /// Describes `request` for the log if it is to be recorded; a refusal
    /// if the log cannot take it (fail closed: the handler must not run).
    pub(crate) fn begin(
        state: &AppState,
        context: &RequestContext,
        request: &Request,
    ) -> Result<Self, AuditError> {
        let route = context.route();
        let Some(audit) = state.audit.as_ref().filter(|_| !UNAUDITED.contains(&route)) else {
            return Ok(Self(None));
        };
        audit.check()?;
        let method = request.method();
        let log = if is_change(method, route) || route == "/v1/selftest" {
            Recorder::Later(audit.clone())
        } else {
            Recorder::Expected(audit.expect())
        };
        Ok(Self(Some(Pending {
            event: describe(method, request.uri(), request.extensions(), context),
            log,
            unauthenticated: state.unauthenticated.clone(),
        })))
    }

    /// The handler's `response`, once its event is durable. If the event
    /// cannot be made durable the answer is withheld and a refusal given
    /// instead (any change the handler made stands; its intent is on record).
    pub(crate) fn answer(self, response: Response, context: &RequestContext) -> Answer {
        let Some(Pending {
            mut event,
            log,
            unauthenticated,
        }) = self.0
        else {
            return Answer::Now(response);
        };
        complete(&mut event, &response, context);
        // Without an authenticated caller, beyond the budget: counted
        // instead (its expected event withdrawn with `log`); it did
        // nothing, and its answer needs no evidence first.
        if event.actor.is_none() && !unauthenticated.admit(event.client.as_deref()) {
            let mut response = response;
            response.extensions_mut().insert(Counted);
            return Answer::Now(response);
        }
        Answer::Recording(Box::pin(async move {
            let recorded = match log {
                Recorder::Expected(expected) => expected.record(Event::Request(event)).await,
                Recorder::Later(log) => log.record_request(Event::Request(event)).await,
            };
            match recorded {
                Ok(()) => response,
                // Refused already, as its intent could not be recorded
                // (and counted then).
                Err(_) if refused_by_the_log(&response) => response,
                // The result (a ciphertext, a key change's answer) is
                // withheld: no evidence, no answer.
                Err(e) => refusal(e),
            }
        }))
    }
}

/// Records the refusals counted beyond the budget for recording them one
/// by one, if there are any; counts that cannot be recorded are kept for
/// the next try.
pub async fn record_counted_refusals(state: &AppState) {
    let Some(audit) = state.audit.as_ref() else {
        return;
    };
    let Some(counts) = state.unauthenticated.take() else {
        return;
    };
    let event = counts.event(state.unauthenticated.grouping());
    if let Err(e) = audit.record(event).await {
        tracing::warn!(error = %e, refusals = counts.count, "the count of requests refused without an authenticated caller could not be recorded; kept for the next try");
        state.unauthenticated.restore(counts);
    }
}

/// Records the counted refusals every [`unauthenticated::RECORDED_EVERY`]
/// until `stop`. Stopped between records, never aborted in one: counts
/// taken for a record that was cut off would be neither recorded nor put
/// back.
pub fn spawn_counted_refusals(
    state: Arc<AppState>,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(unauthenticated::RECORDED_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is at once
        loop {
            tokio::select! {
                _ = tick.tick() => record_counted_refusals(&state).await,
                () = stop.cancelled() => return,
            }
        }
    })
}

/// Whether `response` is a refusal for want of the audit log.
fn refused_by_the_log(response: &Response) -> bool {
    response
        .extensions()
        .get::<ErrorCode>()
        .is_some_and(|code| AuditError::CODES.contains(&code.0))
}

/// Fills in what a request's answer tells the log: outcome, status, time,
/// error code, what the handler acted on, and who called.
fn complete(event: &mut RequestEvent, response: &Response, context: &RequestContext) {
    let status = response.status();
    event.outcome = match status.as_u16() {
        200..=399 => Outcome::Success,
        400..=499 => Outcome::Rejected,
        _ => Outcome::Failure,
    };
    event.status = Some(status.as_u16());
    event.micros = Some(context.started.elapsed().as_micros() as u64);
    event.error = response
        .extensions()
        .get::<ErrorCode>()
        .map(|c| c.0.to_owned());
    if let Some(tally) = response.extensions().get::<BatchTally>() {
        event.items = Some(tally.items);
        event.failed_items = Some(tally.failed);
        event.error = tally.first_error.map(|c| c.0.to_owned());
        if tally.failed == tally.items {
            event.outcome = Outcome::Rejected;
        }
    }
    if let Some(subject) = context.subject.get() {
        event.key = subject.key.clone().or(event.key.take());
        event.key_version = subject.key_version;
        event.from_version = subject.from_version;
        event.token = subject.token.clone().or(event.token.take());
    }
    if let Some(caller) = context.actor.get() {
        attribute(event, caller);
    }
}

/// The route of the caller's own token.
const OWN_TOKEN: &str = "/v1/tokens/self";

/// Records the intent of a change by an authenticated caller, before the
/// handler makes it; refuses the change if that cannot be made durable.
pub async fn record_intent(
    state: &AppState,
    parts: &axum::http::request::Parts,
    caller: &Principal,
) -> Result<(), ApiError> {
    let (Some(audit), Some(context)) = (
        state.audit.as_ref(),
        parts.extensions.get::<Arc<RequestContext>>(),
    ) else {
        return Ok(());
    };
    if !is_change(&parts.method, context.route()) {
        return Ok(());
    }
    let mut event = describe(&parts.method, &parts.uri, &parts.extensions, context);
    attribute(&mut event, caller);
    // Before the intent can be on record: from then on the change runs to
    // its end whether or not its client waits.
    let _ = context.hand_off.set(HandOff {
        changes: state.changes.token(),
        runtime: tokio::runtime::Handle::current(),
    });
    audit
        .record(Event::Request(event))
        .await
        .map_err(ApiError::from)
}

/// Names the caller (its token id, never the token) in `event`, and as
/// the token a request on the caller's own token concerns, as a path names
/// the one revoked by id.
fn attribute(event: &mut RequestEvent, caller: &Principal) {
    event.actor = Some(caller.token_id().to_owned());
    event.role = Some(caller.role().as_str().to_owned());
    if event.route == OWN_TOKEN {
        event.token = event.actor.clone();
    }
}

/// The answer to a request the audit log cannot take.
pub(crate) fn refusal(error: AuditError) -> Response {
    ApiError::from(error).into_response()
}

impl From<AuditError> for ApiError {
    /// In the module's error state the log cannot hash or sign either; the
    /// error state is then the cause to name.
    fn from(error: AuditError) -> Self {
        use fipsguard_crypto::module::{self, State};
        if let State::Error { failed_test } = module::state() {
            let cause = fipsguard_crypto::Error::ErrorState { failed_test };
            return KmsError::Crypto(cause).into();
        }
        crate::metrics::record_audit_refusal(error.code());
        let message = match &error {
            AuditError::Unavailable(_) => format!(
                "{}; operations are refused until it can",
                crate::api::system::AUDIT_FAILURE_ELSEWHERE
            ),
            other => other.to_string(),
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.code(), message)
    }
}

#[cfg(test)]
mod tests {
    use fipsguard_core::LifecycleWitness;

    use super::{LifecycleRecords, AUDIT_KEY};

    #[tokio::test]
    async fn unattended_changes_wait_for_the_log_and_the_audit_key_never_goes() {
        let records = LifecycleRecords::default();
        let held = records.before_destruction("archive", 0).await.unwrap_err();
        assert!(held.contains("not open yet"), "{held}");
        let held = records.before_rotation("archive", 1).await.unwrap_err();
        assert!(held.contains("not open yet"), "{held}");
        let never = records.before_destruction(AUDIT_KEY, 0).await.unwrap_err();
        assert!(never.contains("never destroyed"), "{never}");
    }
}
