//! What every request passes through: a request id, the audit log, one
//! log line, HTTP metrics; and the answers for unknown routes and methods.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use fipsguard_core::Principal;
use tower::{Layer, Service};

use crate::audit::{is_change, refusal, Answer, Audited, Counted, Recording, Subject};
use crate::error::ApiError;
use crate::state::AppState;

/// What the layers know of a request: its id, its route, when it came, and where
/// authentication leaves the caller, and the handler what it acted on, for
/// the log line and the audit record. Shared as an `Arc<RequestContext>`
/// extension (an answer's own extensions would cost allocations for every
/// answer; only refusals carry one, their error code).
pub struct RequestContext {
    /// The request id.
    pub id: RequestId,
    /// The matched route template, if a route matched.
    matched: Option<MatchedPath>,
    /// When the request reached the layers (its time in the log line and
    /// the audit record).
    pub started: Instant,
    /// The authenticated caller.
    pub actor: OnceLock<Principal>,
    /// What the handler acted on, beyond what the path names.
    pub subject: OnceLock<Subject>,
    /// Set once a change's intent goes to the audit log: where the change
    /// is handed if its request is dropped (see [`RequestFuture`]'s `Drop`).
    pub hand_off: OnceLock<HandOff>,
}

/// Where a change whose request is dropped mid-way goes on.
pub struct HandOff {
    /// Counts the change among those a stop waits for, from its intent on
    /// and wherever it runs (HTTP/2 requests run on tasks of their own,
    /// which may drop it after their connection has ended).
    pub changes: tokio_util::task::task_tracker::TaskTrackerToken,
    /// The runtime to go on in (a drop may come from outside it).
    pub runtime: tokio::runtime::Handle,
}

impl RequestContext {
    /// The matched route template (`unmatched` for none).
    pub fn route(&self) -> &str {
        self.matched
            .as_ref()
            .map_or("unmatched", MatchedPath::as_str)
    }
}

/// A request id unique within this process and across restarts: a random
/// prefix drawn once, then a counter, written `PREFIX-COUNTER` in hex.
/// Its text is written once, by hand: every answer carries it, and
/// `format!` would cost more than the rest of the request log.
#[derive(Clone, Copy)]
pub struct RequestId {
    text: [u8; ID_LEN],
    len: usize,
}

/// The prefix's 8 hex digits, a dash, and at most 16 for the counter.
const ID_LEN: usize = 8 + 1 + 16;

impl RequestId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self::numbered(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    fn numbered(counter: u64) -> Self {
        let mut text = [0; ID_LEN];
        text[..8].copy_from_slice(id_prefix());
        text[8] = b'-';
        let digits = (u64::BITS - counter.leading_zeros()).div_ceil(4).max(1) as usize;
        for (i, byte) in text[9..9 + digits].iter_mut().enumerate() {
            let nibble = (counter >> (4 * (digits - 1 - i))) & 0xf;
            *byte = b"0123456789abcdef"[nibble as usize];
        }
        Self {
            text,
            len: 9 + digits,
        }
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..self.len]).expect("hex digits and a dash")
    }
}

/// This process's request id prefix: random, or taken from the clock if
/// the module cannot draw (it then refuses every operation anyway).
fn id_prefix() -> &'static [u8; 8] {
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let drawn = fipsguard_crypto::random::bytes(4).ok();
        let bytes = drawn
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .unwrap_or_else(|| {
                let since_epoch = std::time::UNIX_EPOCH.elapsed().unwrap_or_default();
                since_epoch.subsec_nanos().to_be_bytes()
            });
        let mut digits = [0; 8];
        hex::encode_to_slice(bytes, &mut digits).expect("4 bytes are 8 hex digits");
        digits
    })
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The layer around every route: the request log, and inside it the audit
/// log (so that its refusals are logged too). Written out rather than made
/// of `from_fn` middleware, each of which boxes the rest of the route
/// again for every request.
#[derive(Clone)]
pub struct RequestLayer(pub Arc<AppState>);

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            state: self.0.clone(),
        }
    }
}

/// A route behind [`RequestLayer`].
#[derive(Clone)]
pub struct RequestService<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Service<Request> for RequestService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin + Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RequestFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let logged = Logged::begin(&mut request);
        // Refused before the route is called: no evidence, no handler.
        let stage = match Audited::begin(&self.state, &logged.context, &request) {
            Ok(audited) => Stage::Route(self.inner.call(request), Some(audited)),
            Err(e) => Stage::Answered(Some(refusal(e))),
        };
        RequestFuture {
            logged: Some(logged),
            stage,
            handed_on: false,
        }
    }
}

/// A request on its way through [`RequestService`]. Written out rather
/// than as an `async` block, which the router would box once more and
/// which would be copied whole at each step; only an audited answer's
/// wait for its event is boxed.
pub struct RequestFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin + Send + 'static,
{
    /// `None` once answered.
    logged: Option<Logged>,
    stage: Stage<F>,
    /// Handed to a task of its own once already: never again.
    handed_on: bool,
}

/// Where a request is. Unboxed: a request goes through its stages in
/// place, and a box would cost every request an allocation.
#[allow(clippy::large_enum_variant)]
enum Stage<F> {
    /// Its route runs (the audit log's part is taken once it answers).
    Route(F, Option<Audited>),
    /// Its answer waits for its audit event to be durable.
    Recording(Recording),
    /// Answered without its route (taken once given).
    Answered(Option<Response>),
}

impl<F> Future for RequestFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin + Send + 'static,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Self { logged, stage, .. } = self.get_mut();
        let context = &logged
            .as_ref()
            .expect("a request's future polled after its answer")
            .context;
        let response = loop {
            match stage {
                Stage::Route(route, audited) => {
                    let Ok(response) = ready!(Pin::new(route).poll(cx));
                    let audited = audited.take().expect("a route answers once");
                    match audited.answer(response, context) {
                        Answer::Now(response) => break response,
                        Answer::Recording(recording) => *stage = Stage::Recording(recording),
                    }
                }
                Stage::Recording(recording) => break ready!(recording.as_mut().poll(cx)),
                Stage::Answered(response) => break response.take().expect("answered once"),
            }
        };
        let logged = logged.take().expect("answered once");
        Poll::Ready(Ok(logged.finish(response)))
    }
}

/// A change whose intent is on record runs to its end, closing record and
/// log line included, if its client goes away mid-way (its connection
/// closed, this future dropped): handed to a task of its own, which
/// shutdown waits for. Half made, the change would leave its intent on
/// record without the outcome that follows it. Nothing else is handed
/// on: a request dropped before its intent has changed nothing.
impl<F> Drop for RequestFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin + Send + 'static,
{
    fn drop(&mut self) {
        let Some(logged) = self
            .logged
            .take_if(|logged| logged.context.hand_off.get().is_some())
        else {
            return;
        };
        let id = logged.context.id;
        if self.handed_on {
            // The runtime is shutting down, or the stop stopped waiting.
            tracing::warn!(request_id = %id, "a change was cut off before its end: its outcome is not on record");
            return;
        }
        if std::thread::panicking() {
            tracing::error!(request_id = %id, "a change failed (panicked) after its intent was recorded: its outcome is not on record");
            return;
        }
        tracing::info!(request_id = %id, "a change's request was dropped mid-way (its client gone or its connection closed): the change runs to its end");
        let hand_off = logged.context.hand_off.get().expect("checked above");
        let changes = hand_off.changes.task_tracker().clone();
        let runtime = hand_off.runtime.clone();
        let stage = std::mem::replace(&mut self.stage, Stage::Answered(None));
        // On a runtime that is shutting down it is dropped at once, and
        // not handed on again.
        changes.spawn_on(
            RequestFuture {
                logged: Some(logged),
                stage,
                handed_on: true,
            },
            &runtime,
        );
    }
}

/// A request on its way through the request log: it gets an id (echoed as
/// `x-request-id`), and once answered one log line with its outcome and
/// the caller's token id (never the token), and a count. Failures and
/// changes to keys and tokens log at info; successful cryptographic
/// operations at debug (a line per success costs a third of the
/// throughput; the audit log is the durable record of each), as do
/// refusals (4xx) without an authenticated caller counted beyond the
/// audit log's budget (a flood's).
struct Logged {
    context: Arc<RequestContext>,
    method: Method,
}

impl Logged {
    fn begin(request: &mut Request) -> Self {
        let context = Arc::new(RequestContext {
            id: RequestId::next(),
            matched: request.extensions().get::<MatchedPath>().cloned(),
            started: Instant::now(),
            actor: OnceLock::new(),
            subject: OnceLock::new(),
            hand_off: OnceLock::new(),
        });
        request.extensions_mut().insert(context.clone());
        Self {
            context,
            method: request.method().clone(),
        }
    }

    fn finish(self, mut response: Response) -> Response {
        let Self { context, method } = self;
        let (id, route, status) = (context.id, context.route(), response.status());
        if let Ok(value) = HeaderValue::from_str(id.as_str()) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        let actor = context.actor.get().map_or("-", Principal::token_id);
        let micros = context.started.elapsed().as_micros() as u64;
        match status.as_u16() {
            code if status.is_client_error()
                && response.extensions().get::<Counted>().is_some() =>
            {
                tracing::debug!(request_id = %id, %method, route = %route, status = code, actor, micros, "request");
            }
            200..=299 if is_change(&method, route) => {
                tracing::info!(request_id = %id, %method, route = %route, status = status.as_u16(), actor, micros, "request");
            }
            200..=299 => {
                tracing::debug!(request_id = %id, %method, route = %route, status = status.as_u16(), actor, micros, "request");
            }
            code => {
                tracing::info!(request_id = %id, %method, route = %route, status = code, actor, micros, "request");
            }
        }
        crate::metrics::record_request(route, status);
        response
    }
}

/// The answer's header that carries the request id; a constant, as a
/// name given as text is copied for every answer.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /v1/openapi.json",
    )
}

/// Known routes, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /v1/openapi.json",
    )
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn a_request_id_is_the_prefix_and_the_counter_in_hex() {
        let prefix = RequestId::numbered(0).to_string()[..9].to_owned();
        assert!(prefix.ends_with('-'), "{prefix}");
        assert!(
            prefix[..8].bytes().all(|b| b.is_ascii_hexdigit()),
            "{prefix}"
        );
        for (counter, hex) in [
            (0, "0"),
            (15, "f"),
            (16, "10"),
            (0x1f3, "1f3"),
            (u64::MAX, "ffffffffffffffff"),
        ] {
            assert_eq!(
                RequestId::numbered(counter).to_string(),
                format!("{prefix}{hex}")
            );
        }
    }
}
