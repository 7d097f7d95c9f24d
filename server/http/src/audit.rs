//! The audit trail of the FHIR API: every `/fhir` interaction (allowed or refused, 401 and 403
//! included; not the public CapabilityStatement and discovery document) is recorded as a
//! BALP-shaped record (`curanet_auth::audit`), stored in the audit log's blocks (see
//! `curanet_storage::AuditStore`), searchable as AuditEvents (`AuditEvent?patient=`) and chained
//! by hash so that a changed, removed or reordered record is detected by `curanet audit verify`.
//! Sign-ins and sign-outs through the account API (`/api/auth/login`, `/api/auth/logout`) are
//! recorded too (DCM 110114 with 110122/110123), from the answer alone.
//!
//! The layer ([`RecordLayer`]) notes what the request asked and what it got, and writes the
//! record's JSON straight into the block gathering in memory (sharded by thread, bounded: when
//! full, the request waits, nothing is dropped). A background writer takes what gathered every
//! 50 ms and stores it as one linked block every second (or once 4,096 records wait), in one
//! transaction. So a crash loses at most the last second of read records; a write's record
//! rides in the write's own transaction; graceful shutdown ([`Recorder::close`]) stores
//! everything gathered. AuditEvents are append-only: creating, updating, patching or deleting
//! one through the API (also inside a Bundle) is refused for everyone (403).

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use curanet_auth::audit::{
    Broken, ConsentAlert, GENESIS, Link, Recorded, RestEvent, RestView, SignInEvent, TokenView,
    audit_event, check_block, check_link, decode_record, log_record, push_record, push_rest,
    record_hash,
};
use curanet_auth::scope::Interaction;
use curanet_engine::EngineError;
use curanet_fhir::Instant;
use curanet_fhir::IssueType;
use curanet_fhir::bundle::{Link as BundleLink, bundle_text, entry_text};
use curanet_storage::{
    AuditBatch, AuditColumn, AuditId, AuditMatch, AuditQuery, AuditStore, AuditTime,
    Method as StoreMethod, Store, StoreError, StoredAudit, StoredVersion, WRITE_AUDIT, WriteAudit,
    WriteOutcome,
};
use serde_json::Value;
use smallvec::SmallVec;
use tokio::sync::{Notify, oneshot};
use tower_http::request_id::RequestId;

use crate::access::{ConsentBasis, Target, VerifiedAccess, classify};
use crate::app::AppState;
use crate::error::ApiError;

/// Records waiting to be written, at most.
const QUEUE: usize = 65_536;
/// Records written in one block, at most.
const BATCH: usize = 4_096;
/// Longest a record waits in memory before it is written (the crash window).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Largest answer body looked into (for the patient of a read, or the reason of a failure).
const PEEK_BYTES: u64 = 1024 * 1024;
/// Shards of the records gathering in memory: requests on different threads rarely meet on a
/// lock.
const SHARDS: usize = 8;

/// The handle requests use to record (cheap to clone).
#[derive(Clone)]
pub struct Recorder {
    gathering: Arc<Gathering>,
    store: Arc<dyn AuditStore>,
    control: Arc<Control>,
}

/// The records not yet taken by the writer: each request writes its record's JSON straight
/// into a shard's block (no message and no wake-up per record: a channel's receiver woken by
/// every request cost a saturated server more than storing the records).
struct Gathering {
    shards: Vec<Mutex<AuditBatch>>,
    /// Records in the shards.
    queued: AtomicUsize,
    /// Signalled when the writer took the shards' records (for requests waiting for room).
    taken: Notify,
}

impl Gathering {
    /// A shard's lock, also after a request panicked holding it: a record is added whole or
    /// not at all.
    fn shard(&self, i: usize) -> MutexGuard<'_, AuditBatch> {
        self.shards[i % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves everything gathered to the end of `block`.
    fn take_into(&self, block: &mut AuditBatch) {
        let before = block.len();
        for i in 0..SHARDS {
            let taken = std::mem::take(&mut *self.shard(i));
            block.append(taken);
        }
        self.queued
            .fetch_sub(block.len() - before, Ordering::AcqRel);
        self.taken.notify_waiters();
    }
}

/// This thread's shard: request threads are spread over the shards once, when first used.
fn shard_of_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SHARD.with(|s| *s)
}

struct Control {
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Recorder {
    /// Starts the background writer over the audit log.
    pub fn start(store: Arc<dyn AuditStore>) -> Recorder {
        let gathering = Arc::new(Gathering {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            queued: AtomicUsize::new(0),
            taken: Notify::new(),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(writer(store.clone(), gathering.clone(), stopped));
        Recorder {
            gathering,
            store,
            control: Arc::new(Control {
                stop: Mutex::new(Some(stop)),
                task: tokio::sync::Mutex::new(Some(task)),
            }),
        }
    }

    /// The audit log (for AuditEvent reads and searches).
    pub fn store(&self) -> &dyn AuditStore {
        self.store.as_ref()
    }

    /// Adds a record to the block gathering (`push` writes it into this thread's shard); waits
    /// only while [`QUEUE`] records are waiting.
    async fn submit(&self, push: impl FnOnce(&mut AuditBatch)) {
        let g = &self.gathering;
        while g.queued.load(Ordering::Acquire) >= QUEUE {
            let taken = g.taken.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            if g.queued.load(Ordering::Acquire) < QUEUE {
                break;
            }
            taken.await;
        }
        push(&mut g.shard(shard_of_thread()));
        g.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// Writes everything gathered and stops the writer (graceful shutdown).
    pub async fn close(&self) {
        let stop = self
            .control
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        if let Some(task) = self.control.task.lock().await.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the audit writer failed");
        }
    }
}

/// How often the writer takes what requests gathered.
const DRAIN_INTERVAL: Duration = Duration::from_millis(50);

/// The background writer: takes the gathered records every [`DRAIN_INTERVAL`] and stores them
/// as one block once [`BATCH`] are waiting, at least every [`FLUSH_INTERVAL`] (also when none
/// are: writes' records, committed with their writes, are linked then).
async fn writer(
    store: Arc<dyn AuditStore>,
    gathering: Arc<Gathering>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut batch = AuditBatch::new();
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flushed = std::time::Instant::now();
    loop {
        let stopping = tokio::select! {
            _ = &mut stopped => true,
            _ = tick.tick() => false,
        };
        gathering.take_into(&mut batch);
        if stopping || batch.len() >= BATCH || flushed.elapsed() + DRAIN_INTERVAL >= FLUSH_INTERVAL
        {
            flush(store.as_ref(), std::mem::take(&mut batch)).await;
            flushed = std::time::Instant::now();
        }
        if stopping {
            return;
        }
    }
}

/// Stores a block, linked (after the writes' records waiting to be linked), in one
/// transaction. A failure is logged and the block retried a few times.
async fn flush(store: &dyn AuditStore, batch: AuditBatch) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.append_audit_batch(batch.clone(), hash_aside).await {
            Ok(_) => return,
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, attempt, "storing audit records failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "audit records LOST: storing them failed");
                return;
            }
        }
    }
}

/// [`record_hash`] of a block (about a millisecond for a full one) without stalling the
/// requests queued on this worker thread: they move to another while it hashes.
fn hash_aside(previous: &str, block: i64, body: &str) -> String {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| record_hash(previous, block, body))
    } else {
        record_hash(previous, block, body)
    }
}

/// The elements that say whom a record is about; the rest of the resource is skipped unparsed.
#[derive(serde::Deserialize)]
struct About {
    patient: Option<Value>,
    subject: Option<Value>,
    beneficiary: Option<Value>,
}

/// The patients a resource (JSON text) is about: its `patient`, `subject` or `beneficiary` when
/// they are Patient references. Parsed on the request path, so that no answer body is kept
/// waiting in the queue.
fn patients_in(resource: &[u8]) -> Vec<String> {
    let Ok(about) = serde_json::from_slice::<About>(resource) else {
        return Vec::new();
    };
    [about.patient, about.subject, about.beneficiary]
        .iter()
        .flatten()
        .filter_map(|r| r.get("reference")?.as_str())
        .filter_map(patient_id)
        .collect()
}

/// `p1` of `Patient/p1`, `http://x/fhir/Patient/p1` or `Patient/p1/_history/2`.
fn patient_id(reference: &str) -> Option<String> {
    let (before, rest) = reference.rsplit_once("Patient/")?;
    if !(before.is_empty() || before.ends_with('/')) {
        return None;
    }
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

/// Whether `path` (below the server root) is audited: `/fhir` except the public documents.
fn audited(path: &str) -> bool {
    (path == "/fhir" || path.starts_with("/fhir/"))
        && path != "/fhir/metadata"
        && !path.starts_with("/fhir/.well-known/")
}

/// Marks a request that would write an AuditEvent, for [`append_only_guard`].
#[derive(Debug, Clone, Copy)]
struct WritesAuditEvent;

/// A request that may write, as [`record`] saw it: the record its write is to carry, completed
/// by [`append_only_guard`] (which knows the token) and shared back with `record`.
#[derive(Clone)]
struct WriteSlot {
    event: Arc<RestEvent>,
    audit: Arc<Mutex<Option<Arc<WriteAudit>>>>,
}

/// The middleware inside the token check: refuses what [`record`] marked as writing an
/// AuditEvent (after the token was checked, so the refusal's record names the user), and runs
/// a request that may write with its audit record ready for the store ([`WRITE_AUDIT`]): the
/// write's transaction then carries the record.
pub async fn append_only_guard(request: Request, next: Next) -> Response {
    if request.extensions().get::<WritesAuditEvent>().is_some() {
        return append_only();
    }
    let Some(slot) = request.extensions().get::<WriteSlot>().cloned() else {
        return next.run(request).await;
    };
    let mut event = (*slot.event).clone();
    if let Some(access) = request.extensions().get::<VerifiedAccess>() {
        add_token(&mut event, &access.claims);
    }
    if let Some(basis) = request.extensions().get::<ConsentBasis>() {
        add_consent(&mut event, basis);
    }
    let audit = Arc::new(WriteAudit::new(move |outcomes| {
        log_record(&Recorded::Rest(written(&event, outcomes)))
    }));
    *slot.audit.lock().expect("audit slot lock") = Some(audit.clone());
    WRITE_AUDIT.scope(audit, next.run(request)).await
}

/// A write's record once the write is done: the resource and version written, 201 for a
/// create, else 200 (the write committed, so the request succeeded).
fn written(event: &RestEvent, outcomes: &[WriteOutcome]) -> RestEvent {
    let mut event = event.clone();
    event.status = 200;
    if let [outcome] = outcomes {
        let version = match outcome {
            WriteOutcome::Written { version, created } => {
                if *created {
                    event.status = 201;
                }
                Some(version)
            }
            WriteOutcome::Existing { version } => Some(version),
            _ => None,
        };
        if let Some(v) = version {
            event.id.get_or_insert_with(|| v.id.clone());
            if event.resource_type.is_none() {
                event.resource_type = Some(v.resource_type.clone());
            }
            if event.interaction != "delete" {
                event.version = Some(v.version.to_string());
            }
        }
    }
    event
}

/// The token's user, app and patient in a record.
fn add_token(event: &mut RestEvent, claims: &curanet_auth::token::AccessClaims) {
    if let Some(patient) = &claims.patient {
        event.patients.push(patient.clone());
    }
    event.token = Some(token_view(claims).to_agent());
}

/// The token's user and app, borrowed.
fn token_view(claims: &curanet_auth::token::AccessClaims) -> TokenView<'_> {
    TokenView {
        subject: &claims.sub,
        client_id: &claims.client_id,
        fhir_user: claims.fhir_user.as_deref(),
        jti: &claims.jti,
    }
}

/// What consent decided, in a record: the patient, the Consents, break-the-glass.
fn add_consent(event: &mut RestEvent, basis: &ConsentBasis) {
    if let Some(patient) = &basis.patient {
        event.patients.push(patient.clone());
    }
    event.consents.extend(basis.consents.iter().cloned());
    event.break_glass |= basis.break_glass;
}

/// 403: AuditEvents are written by the server alone.
fn append_only() -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        IssueType::Forbidden,
        "AuditEvents are append-only and written by the server alone: they cannot be created, \
         updated, patched or deleted through the API",
    )
    .into_response()
}

/// Whether a request would write an AuditEvent (outside a Bundle).
fn writes_audit_event(target: &Target) -> bool {
    match target {
        Target::Interaction(i, ty, _) | Target::Conditional(i, ty) => {
            ty == "AuditEvent"
                && matches!(
                    i,
                    Interaction::Create
                        | Interaction::Update
                        | Interaction::Patch
                        | Interaction::Delete
                )
        }
        Target::Operation(name, Some(ty), _) => {
            ty == "AuditEvent" && matches!(name.as_str(), "meta-add" | "meta-delete")
        }
        _ => false,
    }
}

/// Whether a Bundle's entries would write an AuditEvent.
fn bundle_writes_audit_event(bundle: &Value) -> bool {
    let Some(entries) = bundle.get("entry").and_then(Value::as_array) else {
        return false;
    };
    entries.iter().any(|e| {
        let method = e["request"]["method"].as_str().unwrap_or("");
        if method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD") {
            return false;
        }
        let url = e["request"]["url"].as_str().unwrap_or("");
        let path = url.split('?').next().unwrap_or("");
        let path = path.rsplit_once("/fhir/").map_or(path, |(_, p)| p);
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        // Any write under AuditEvent/ (also `$meta-add`; not a `_search`), or an AuditEvent
        // body anywhere.
        (first == "AuditEvent" && !path.ends_with("/_search"))
            || e["resource"]["resourceType"] == "AuditEvent"
    })
}

/// What a request was, as the audit record names it (borrowed from the request).
struct Asked<'a> {
    interaction: &'static str,
    resource_type: Option<&'a str>,
    id: Option<&'a str>,
    version: Option<&'a str>,
    operation: Option<&'a str>,
    query: Option<&'a str>,
    patients: SmallVec<[Cow<'a, str>; 2]>,
}

fn asked<'a>(target: &'a Target, path: &'a str, query: Option<&'a str>) -> Asked<'a> {
    let mut a = Asked {
        interaction: "operation",
        resource_type: None,
        id: None,
        version: None,
        operation: None,
        query: None,
        patients: SmallVec::new(),
    };
    match target {
        Target::Interaction(i, ty, id) => {
            a.interaction = i.code();
            a.resource_type = (ty != "*").then_some(ty.as_str());
            a.id = id.as_deref();
            if *i == Interaction::Vread {
                a.version = path.rsplit('/').next();
            }
        }
        Target::Conditional(i, ty) => {
            a.interaction = i.code();
            a.resource_type = Some(ty);
            a.query = query;
        }
        Target::Operation(name, ty, id) => {
            a.operation = Some(name);
            a.resource_type = ty.as_deref();
            a.id = id.as_deref();
        }
        Target::Bundle => a.interaction = "transaction",
        Target::Public | Target::Unknown | Target::NoRoute => {
            let mut segments = path.split('/').filter(|s| !s.is_empty());
            a.resource_type = segments.next();
            a.id = segments.next();
        }
    }
    let searching =
        matches!(a.interaction, "search-type" | "search-system") || a.operation == Some("lastn");
    if searching {
        a.query = Some(query.unwrap_or(""));
    }
    if a.resource_type == Some("Patient")
        && let Some(id) = a.id
    {
        a.patients.push(Cow::Borrowed(id));
    }
    if let Some(q) = query {
        let owned = |v: &str| Cow::Owned(v.to_string());
        for (name, value) in form_urlencoded::parse(q.as_bytes()) {
            let name = name.split(':').next().unwrap_or("");
            match name {
                "patient" => a.patients.extend(
                    value
                        .split(',')
                        .map(|v| patient_id(v).unwrap_or_else(|| v.to_string()))
                        .filter(|v| !v.is_empty() && !v.contains('/'))
                        .map(Cow::Owned),
                ),
                "subject" => a
                    .patients
                    .extend(value.split(',').filter_map(patient_id).map(Cow::Owned)),
                "_id" if a.resource_type == Some("Patient") => {
                    a.patients.extend(value.split(',').map(owned));
                }
                _ => {}
            }
        }
    }
    a
}

/// The body of a response, when it is small and its size known; the response rebuilt.
async fn peek(response: Response) -> (Response, Option<Bytes>) {
    let small = response
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= PEEK_BYTES);
    if !small {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, PEEK_BYTES as usize).await {
        Ok(bytes) => (
            Response::from_parts(parts, Body::from(bytes.clone())),
            Some(bytes),
        ),
        Err(_) => (Response::from_parts(parts, Body::empty()), None),
    }
}

/// The text of an OperationOutcome answer's first issue.
fn outcome_text(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let issue = v.get("issue")?.get(0)?;
    issue
        .get("diagnostics")
        .or_else(|| issue.get("details").and_then(|d| d.get("text")))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `(id, version)` of `.../Type/id/_history/n`.
fn location_version(location: &str) -> Option<(String, String)> {
    let segments: Vec<&str> = location.split('/').collect();
    let at = segments.iter().rposition(|s| *s == "_history")?;
    Some((
        segments.get(at.checked_sub(1)?)?.to_string(),
        segments.get(at + 1)?.to_string(),
    ))
}

/// The audit trail's layer (outside the token check): [`record`] around every route. Written
/// out rather than `from_fn`, which boxes the rest of the stack once more for every request.
#[derive(Clone)]
pub struct RecordLayer {
    state: AppState,
}

impl RecordLayer {
    /// The layer recording into `state`'s audit trail.
    pub fn new(state: AppState) -> Self {
        RecordLayer { state }
    }
}

impl<S> tower::Layer<S> for RecordLayer {
    type Service = Recording<S>;

    fn layer(&self, inner: S) -> Recording<S> {
        Recording {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A route with its requests recorded ([`RecordLayer`]).
#[derive(Clone)]
pub struct Recording<S> {
    inner: S,
    state: AppState,
}

impl<S> tower::Service<Request> for Recording<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service polled ready answers this request; its clone waits for the next.
        let ready = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, ready);
        let state = self.state.clone();
        Box::pin(async move { Ok(record(state, request, ready).await) })
    }
}

/// Runs the rest of the stack (a service already polled ready).
async fn run<S>(mut next: S, request: Request) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    match next.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Marks writes of AuditEvents for refusal, runs the request, and records it. The record is
/// written into the log straight from the request, the answer and the token (borrowed,
/// [`RestView`]): this runs for every FHIR request.
async fn record<S>(state: AppState, request: Request, next: S) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    let path = request.uri().path();
    if request.method() == Method::POST && matches!(path, "/api/auth/login" | "/api/auth/logout") {
        let logout = path.ends_with("logout");
        return record_sign_in(state, request, next, logout).await;
    }
    if !audited(path) {
        return run(next, request).await;
    }
    let (recorded, recorded_us) = now();
    let uri = request.uri().clone();
    let method = request.method().clone();
    let origin = origin(&state, &request);
    let peer = origin.peer.map(PeerText::of);
    let below = uri.path().strip_prefix("/fhir").unwrap_or("");
    let target = classify(&method, below);
    let mut form = None;
    let mut interaction_override = None;
    let mut request = request;
    let refused = if writes_audit_event(&target) {
        true
    } else if target == Target::Bundle || (method == Method::POST && below.ends_with("_search")) {
        // A Bundle is checked for AuditEvent writes (and named batch or transaction); a
        // `_search` form is the search's query. Both are read here and passed on.
        let (parts, body) = request.into_parts();
        let bytes = match crate::handlers::read_body(&state, body).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        let mut refused = false;
        if target == Target::Bundle {
            if let Ok(bundle) = serde_json::from_slice::<Value>(&bytes) {
                refused = bundle_writes_audit_event(&bundle);
                if bundle["type"] == "batch" {
                    interaction_override = Some("batch");
                }
            }
        } else if let Ok(body) = std::str::from_utf8(&bytes) {
            form = Some(match uri.query() {
                Some(q) if !q.is_empty() && !body.is_empty() => format!("{q}&{body}"),
                Some(q) if body.is_empty() => q.to_string(),
                _ => body.to_string(),
            });
        }
        request = Request::from_parts(parts, Body::from(bytes));
        refused
    } else {
        false
    };
    let mut asked = asked(&target, below, form.as_deref().or(uri.query()));
    if let Some(i) = interaction_override {
        asked.interaction = i;
    }
    if refused {
        request.extensions_mut().insert(WritesAuditEvent);
    }
    let asked_patients: SmallVec<[&str; 4]> = asked.patients.iter().map(|p| p.as_ref()).collect();
    let event = RestView {
        recorded: recorded.as_str(),
        interaction: asked.interaction,
        resource_type: asked.resource_type,
        id: asked.id,
        version: asked.version,
        operation: asked.operation,
        peer: peer.as_ref().map(PeerText::as_str),
        request_id: origin.request_id(),
        query: asked.query,
        patients: &asked_patients,
        server: &origin.server,
        ..RestView::default()
    };
    // Anything but a read may write: its record rides in the write's transaction.
    let slot = (method != Method::GET && method != Method::HEAD).then(|| WriteSlot {
        event: Arc::new(event.to_event()),
        audit: Arc::default(),
    });
    if let Some(slot) = &slot {
        request.extensions_mut().insert(slot.clone());
    }
    let response = run(next, request).await;
    let audited_with_write = slot.is_some_and(|s| {
        s.audit
            .lock()
            .expect("audit slot lock")
            .as_ref()
            .is_some_and(|a| a.written())
    });
    let (response, answer) = finish(&event, response).await;
    let access = response.extensions().get::<VerifiedAccess>();
    let basis = response.extensions().get::<ConsentBasis>();
    // The patients: those the request named, the token's, the one whose consent decided, and
    // those of the record read.
    let mut patients: SmallVec<[&str; 4]> = asked_patients.iter().copied().collect();
    patients.extend(access.and_then(|a| a.claims.patient.as_deref()));
    patients.extend(basis.and_then(|b| b.patient.as_deref()));
    patients.extend(answer.patients.iter().map(String::as_str));
    let consents: SmallVec<[&str; 2]> = basis
        .map(|b| b.consents.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let event = RestView {
        id: event.id.or(answer.id.as_deref()),
        version: answer.version.as_deref().or(event.version),
        status: response.status().as_u16(),
        outcome_desc: answer.outcome_desc.as_deref(),
        token: access.map(|a| token_view(&a.claims)),
        patients: &patients,
        consents: &consents,
        break_glass: basis.is_some_and(|b| b.break_glass),
        ..event
    };
    let alert = basis.and_then(|basis| consent_alert(&event, basis));
    if !audited_with_write {
        state
            .audit
            .submit(|batch| push_rest(batch, &event, recorded_us))
            .await;
    }
    if let Some(alert) = alert {
        let alert = Recorded::ConsentAlert(alert);
        state
            .audit
            .submit(|batch| push_record(batch, &alert, recorded_us))
            .await;
    }
    // The record's borrows of the answer end here.
    drop((patients, consents));
    response
}

/// The AuthZ-Consent security alert of a request consent refused (none when it did not).
fn consent_alert(event: &RestView<'_>, basis: &ConsentBasis) -> Option<ConsentAlert> {
    let refusal = basis.refusal.clone()?;
    Some(ConsentAlert {
        recorded: event.recorded.to_string(),
        patient: basis.patient.clone(),
        consents: basis.consents.clone(),
        refusal,
        token: event.token.map(|t| t.to_agent()),
        peer: event.peer.map(str::to_string),
        request_id: event.request_id.map(str::to_string),
        server: event.server.to_string(),
    })
}

/// What the answer adds to a record besides the token and what consent decided: the resource
/// and version written or addressed, the patients of a record read, the reason of a failure.
#[derive(Default)]
struct Answer {
    id: Option<String>,
    version: Option<String>,
    patients: Vec<String>,
    outcome_desc: Option<String>,
}

/// Reads what the answer adds to a record (`asked`: the record as the request made it).
async fn finish(asked: &RestView<'_>, mut response: Response) -> (Response, Answer) {
    let status = response.status();
    let mut answer = Answer::default();
    if status.is_success() {
        let headers = response.headers();
        if let Some((id, version)) = headers
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(location_version)
        {
            answer.id = Some(id);
            answer.version = Some(version);
        } else if (matches!(asked.interaction, "update" | "patch")
            || (asked.operation.is_some() && asked.id.is_some()))
            && let Some(etag) = headers.get(header::ETAG).and_then(|e| e.to_str().ok())
        {
            // An update, a patch or an operation on an instance names the version it left.
            answer.version = Some(etag.trim_start_matches("W/").trim_matches('"').to_string());
        }
    }
    // The patient of a record read comes from the answer, unless the request already says who
    // it is about: a patient's token (its compartment holds the record) or the patient whose
    // consent permitted the read. Parsing the answer cost more than building the record.
    let extensions = response.extensions();
    let patient_known = !asked.patients.is_empty()
        || extensions
            .get::<VerifiedAccess>()
            .is_some_and(|a| a.claims.patient.is_some())
        || extensions
            .get::<ConsentBasis>()
            .is_some_and(|b| b.patient.is_some());
    let read_of_record = status == StatusCode::OK
        && !patient_known
        && matches!(asked.interaction, "read" | "vread")
        && !matches!(asked.resource_type, Some("Patient" | "AuditEvent"));
    if read_of_record || status.is_client_error() || status.is_server_error() {
        let (r, body) = peek(response).await;
        response = r;
        if read_of_record {
            if let Some(body) = body {
                answer.patients = patients_in(&body);
            }
        } else {
            answer.outcome_desc = body.as_deref().and_then(outcome_text);
        }
    }
    (response, answer)
}

/// A FHIR instant with milliseconds in UTC (`2026-01-02T03:04:05.678Z`), written without
/// allocating.
struct Stamp([u8; 24]);

impl Stamp {
    fn of(t: chrono::DateTime<chrono::Utc>) -> Stamp {
        use chrono::{Datelike, Timelike};
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, t.year().clamp(0, 9999) as u32);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        // A leap second's nanoseconds run past 10^9: kept in the second's last millisecond.
        put(17, 2, t.second());
        put(20, 3, t.timestamp_subsec_millis().min(999));
        Stamp(b)
    }

    fn as_str(&self) -> &str {
        // Digits and ASCII punctuation only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// An IP address as text, written without allocating.
struct PeerText {
    text: [u8; 45],
    len: usize,
}

impl PeerText {
    fn of(ip: IpAddr) -> PeerText {
        use std::io::Write as _;
        let mut text = [0; 45];
        let mut rest = &mut text[..];
        // The longest IPv6 text (45 characters) fits.
        let _ = write!(rest, "{ip}");
        let len = 45 - rest.len();
        PeerText { text, len }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..self.len]).unwrap_or_default()
    }
}

/// The current time as a FHIR instant (milliseconds, UTC) and as µs since the epoch (the same
/// millisecond: what the instant parses back to).
fn now() -> (Stamp, i64) {
    let t = chrono::Utc::now();
    (Stamp::of(t), t.timestamp_millis().saturating_mul(1000))
}

/// Where a request came from and which server answered it.
struct Origin<'s> {
    request_id: Option<HeaderValue>,
    peer: Option<IpAddr>,
    /// This server's FHIR base.
    server: Cow<'s, str>,
}

impl Origin<'_> {
    fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref().and_then(|id| id.to_str().ok())
    }
}

/// The request id, the peer's IP address and this server's FHIR base.
fn origin<'s>(state: &'s AppState, request: &Request) -> Origin<'s> {
    Origin {
        request_id: request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.header_value().clone()),
        peer: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip()),
        server: match &state.base_url {
            Some(b) => Cow::Borrowed(b),
            None => {
                let host = request
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                Cow::Owned(["http://", host, "/fhir"].concat())
            }
        },
    }
}

/// Records a sign-in (`POST /api/auth/login`) or sign-out (`/api/auth/logout`). Only the
/// answer's `fhirUser` (or `error_description`) is read: never the request (it holds the
/// password or refresh token) nor the tokens of the answer.
async fn record_sign_in<S>(state: AppState, request: Request, next: S, logout: bool) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    let (recorded, recorded_us) = now();
    let origin = origin(&state, &request);
    let (request_id, peer, server) = (
        origin.request_id().map(str::to_string),
        origin.peer.map(|ip| ip.to_string()),
        origin.server.into_owned(),
    );
    let (response, body) = peek(run(next, request).await).await;
    let answer: Option<Value> = body.and_then(|b| serde_json::from_slice(&b).ok());
    let field = |name: &str| {
        answer
            .as_ref()
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let status = response.status();
    let event = SignInEvent {
        recorded: recorded.as_str().to_string(),
        logout,
        status: status.as_u16(),
        outcome_desc: (!status.is_success())
            .then(|| field("error_description").or_else(|| field("error")))
            .flatten(),
        fhir_user: status.is_success().then(|| field("fhirUser")).flatten(),
        peer,
        request_id,
        server,
    };
    let event = Recorded::SignIn(event);
    state
        .audit
        .submit(|batch| push_record(batch, &event, recorded_us))
        .await;
    response
}

/// The current version of a resource: AuditEvents from the audit log, everything else from
/// the engine.
pub async fn read_current(
    state: &AppState,
    resource_type: &str,
    id: &str,
) -> Result<StoredVersion, EngineError> {
    if resource_type != "AuditEvent" {
        return state.engine.read(resource_type, id).await;
    }
    let not_found = || EngineError::NotFound(format!("AuditEvent/{id}"));
    // Anything but a record's id names no record (and is never sent to the database).
    let audit_id = id.parse::<AuditId>().map_err(|_| not_found())?;
    let stored = state
        .audit
        .store()
        .audit_record(audit_id, decode_record)
        .await
        .map_err(EngineError::Store)?
        .ok_or_else(not_found)?;
    as_version(&stored).ok_or_else(not_found)
}

/// A version of a resource: AuditEvents have only their first.
pub async fn read_version(
    state: &AppState,
    resource_type: &str,
    id: &str,
    version: &str,
) -> Result<StoredVersion, EngineError> {
    if resource_type != "AuditEvent" {
        return state.engine.vread(resource_type, id, version).await;
    }
    if version != "1" {
        return Err(EngineError::NotFound(format!(
            "AuditEvent/{id}/_history/{version}"
        )));
    }
    read_current(state, resource_type, id).await
}

/// A stored record as the version of an AuditEvent (`None` when its body is not a record).
fn as_version(stored: &StoredAudit) -> Option<StoredVersion> {
    let id = stored.id.to_string();
    let ae = audit_event(&id, &stored.record.body)?;
    Some(StoredVersion {
        resource_type: "AuditEvent".into(),
        id,
        version: 1,
        last_updated: Instant(stored.record.recorded),
        deleted: false,
        method: StoreMethod::Post,
        content: Some(ae.to_string()),
        seq: stored.id.block,
    })
}

/// Search results per page by default, and at most.
const DEFAULT_COUNT: u32 = 50;
const MAX_COUNT: u32 = 1_000;

/// `GET /fhir/AuditEvent?...`: a search of the audit log as a `searchset` Bundle.
pub async fn search(
    state: &AppState,
    base: &str,
    pairs: &[(String, String)],
) -> Result<String, ApiError> {
    let (query, applied) = parse_search(pairs, base)?;
    let count = query.count;
    let page = state
        .audit
        .store()
        .search_audit(query, decode_record)
        .await
        .map_err(|e| ApiError::from(EngineError::Store(e)))?;
    let link = |cursor: Option<String>| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &applied {
            s.append_pair(k, v);
        }
        s.append_pair("_count", &count.to_string());
        if let Some(c) = cursor {
            s.append_pair("_cursor", &c);
        }
        format!("{base}/AuditEvent?{}", s.finish())
    };
    let mut links = vec![
        BundleLink {
            relation: "self",
            url: link(None),
        },
        BundleLink {
            relation: "first",
            url: link(None),
        },
    ];
    if page.more
        && let Some(last) = page.records.last()
    {
        links.push(BundleLink {
            relation: "next",
            url: link(Some(format!("{}.{}", last.record.recorded, last.id))),
        });
    }
    let entries: Vec<String> = page
        .records
        .iter()
        .filter_map(as_version)
        .map(|v| {
            entry_text(
                &format!("{base}/AuditEvent/{}", v.id),
                v.content.as_deref(),
                Some("match"),
            )
        })
        .collect();
    Ok(bundle_text("searchset", page.total, &links, &entries))
}

/// 400 naming a search parameter.
fn bad_parameter(name: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        IssueType::NotSupported,
        format!("AuditEvent search parameter {name}: {why}"),
    )
}

/// The audit log query of an AuditEvent search, and the parameters applied (for the links).
fn parse_search(
    pairs: &[(String, String)],
    base: &str,
) -> Result<(AuditQuery, Vec<(String, String)>), ApiError> {
    let mut q = AuditQuery {
        count: DEFAULT_COUNT,
        total: true,
        ..AuditQuery::default()
    };
    let mut applied = Vec::new();
    for (name, value) in pairs {
        if name.contains(':') {
            return Err(bad_parameter(name, "modifiers are not supported"));
        }
        let values = || value.split(',').map(str::trim).filter(|v| !v.is_empty());
        let token = |v: &str| match v.split_once('|') {
            Some((_, code)) => code.to_string(),
            None => v.to_string(),
        };
        let reference = |v: &str| {
            let v = v
                .strip_prefix(base)
                .map_or(v, |r| r.trim_start_matches('/'));
            v.split("/_history/").next().unwrap_or(v).to_string()
        };
        let column = match name.as_str() {
            "_id" => {
                // An id of no record matches nothing (no block has a negative number).
                let none = AuditId {
                    block: -1,
                    index: 0,
                };
                q.ids
                    .push(values().map(|v| v.parse().unwrap_or(none)).collect());
                None
            }
            "patient" => Some((
                AuditColumn::Patient,
                values()
                    .map(|v| {
                        let id = patient_id(v).unwrap_or_else(|| v.to_string());
                        AuditMatch::Exact(id)
                    })
                    .collect::<Vec<_>>(),
            )),
            "agent" => Some((
                AuditColumn::Agent,
                values().map(|v| AuditMatch::Exact(reference(v))).collect(),
            )),
            "altid" => Some((
                AuditColumn::AltId,
                values().map(|v| AuditMatch::Exact(token(v))).collect(),
            )),
            "entity" => Some((
                AuditColumn::Entity,
                values().map(|v| AuditMatch::Exact(reference(v))).collect(),
            )),
            "type" | "subtype" => Some((
                if name == "type" {
                    AuditColumn::Type
                } else {
                    AuditColumn::Subtype
                },
                values()
                    .map(|v| match v.split_once('|') {
                        Some((system, _)) if !system.is_empty() => AuditMatch::Exact(v.to_string()),
                        Some((_, code)) => AuditMatch::Code(code.to_string()),
                        None => AuditMatch::Code(v.to_string()),
                    })
                    .collect(),
            )),
            "action" | "outcome" => Some((
                if name == "action" {
                    AuditColumn::Action
                } else {
                    AuditColumn::Outcome
                },
                values().map(|v| AuditMatch::Exact(token(v))).collect(),
            )),
            "date" => {
                let (prefix, date) = match value.get(..2) {
                    Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &value[2..]),
                    _ => ("eq", value.as_str()),
                };
                let period = curanet_fhir::datetime::parse_date_time(date)
                    .ok_or_else(|| bad_parameter(name, "not a date or dateTime"))?;
                match prefix {
                    "ge" => q.times.push(AuditTime::Ge(period.start)),
                    "gt" => q.times.push(AuditTime::Ge(period.end)),
                    "le" => q.times.push(AuditTime::Lt(period.end)),
                    "lt" => q.times.push(AuditTime::Lt(period.start)),
                    _ => {
                        q.times.push(AuditTime::Ge(period.start));
                        q.times.push(AuditTime::Lt(period.end));
                    }
                }
                None
            }
            "_count" => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| bad_parameter(name, "not a number"))?;
                q.count = n.clamp(1, MAX_COUNT);
                continue;
            }
            "_sort" => {
                q.ascending = match value.as_str() {
                    "date" => true,
                    "-date" => false,
                    _ => return Err(bad_parameter(name, "only date and -date are supported")),
                };
                None
            }
            "_total" => {
                q.total = match value.as_str() {
                    "none" => false,
                    "estimate" | "accurate" => true,
                    _ => return Err(bad_parameter(name, "none, estimate or accurate")),
                };
                None
            }
            "_cursor" => {
                let cursor = value
                    .split_once('.')
                    .and_then(|(r, p)| Some((r.parse().ok()?, p.parse().ok()?)))
                    .ok_or_else(|| bad_parameter(name, "not a cursor of this server"))?;
                q.after = Some(cursor);
                continue;
            }
            "_format" | "_pretty" => continue,
            _ => {
                return Err(bad_parameter(
                    name,
                    "not supported (the audit log is searched by _id, patient, agent, altid, date, type, subtype, action, outcome, entity, _count, _sort and _total)",
                ));
            }
        };
        if let Some((column, matches)) = column {
            if matches.is_empty() {
                return Err(bad_parameter(name, "no value"));
            }
            q.filters.push((column, matches));
        }
        applied.push((name.clone(), value.clone()));
    }
    Ok((q, applied))
}

/// What `curanet audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every link holds; `count` records.
    Intact { count: i64 },
    /// The first link that does not hold.
    Broken {
        seq: i64,
        resource_id: String,
        reason: Broken,
    },
    /// The links end before the head: the last links (and their records' place) were removed.
    Truncated { head: i64, last: i64 },
    /// AuditEvents no link covers (inserted directly, or stored by a server that crashed before
    /// chaining them); `first` is the oldest.
    Unchained { count: i64, first: String },
}

impl std::fmt::Display for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verification::Intact { count } => {
                write!(f, "OK: the audit chain is intact ({count} records)")
            }
            Verification::Broken {
                seq,
                resource_id,
                reason,
            } => write!(
                f,
                "BROKEN at record {seq} (AuditEvent/{resource_id}): {reason}"
            ),
            Verification::Truncated { head, last } => write!(
                f,
                "BROKEN after record {last}: the chain's head names record {head}, so the last \
                 records were removed"
            ),
            Verification::Unchained { count, first } => write!(
                f,
                "BROKEN: {count} AuditEvents are outside the chain, the oldest AuditEvent/{first} \
                 (inserted directly, or stored by a server that crashed before chaining them)"
            ),
        }
    }
}

/// AuditEvents younger than this may be stored but not chained yet by a running server.
const CHAINING_GRACE: Duration = Duration::from_secs(60);

/// Walks both chains: the AuditEvent resources of the earlier storage ([`verify_resources`]),
/// then the audit log ([`verify_log`]).
pub async fn verify(store: &dyn Store, chain: &dyn AuditStore) -> Result<Verification, StoreError> {
    let started = chrono::Utc::now().timestamp_micros();
    let grace = i64::try_from(CHAINING_GRACE.as_micros()).unwrap_or(i64::MAX);
    let before = started.saturating_sub(grace);
    let legacy = match verify_resources(store, chain, before).await? {
        Verification::Intact { count } => count,
        broken => return Ok(broken),
    };
    Ok(match verify_log(chain, before).await? {
        Verification::Intact { count } => Verification::Intact {
            count: count + legacy,
        },
        broken => broken,
    })
}

/// Walks the audit log's chain from the first block to the head (as it was when the walk
/// began), checking each block's link, hash and stored summary against its records, then looks
/// for blocks left unlinked since before `before` (a running server links writes' records within
/// about a second).
async fn verify_log(chain: &dyn AuditStore, before: i64) -> Result<Verification, StoreError> {
    let (head, head_hash) = chain.audit_log_head().await?;
    let mut previous = GENESIS.to_string();
    let mut after = 0;
    let mut count = 0;
    'walk: loop {
        let blocks = chain.audit_log_links(after, 100).await?;
        if blocks.is_empty() {
            break;
        }
        for b in &blocks {
            let seq = b.link.as_ref().map_or(0, |l| l.0);
            if seq > head {
                break 'walk;
            }
            let broken = |reason| Verification::Broken {
                seq,
                resource_id: AuditId::first(b.block).to_string(),
                reason,
            };
            match check_block(&previous, b) {
                Ok(next) => previous = next,
                Err(reason) => return Ok(broken(reason)),
            }
            if seq != after + 1 {
                return Ok(broken(Broken::Sequence {
                    expected_prev: previous,
                }));
            }
            after = seq;
            count += i64::from(b.summary.records);
        }
    }
    if after != head || (head > 0 && previous != head_hash) {
        return Ok(Verification::Truncated { head, last: after });
    }
    let (unlinked, first) = chain.unlinked_audit_records(before).await?;
    if unlinked > 0 {
        return Ok(Verification::Unchained {
            count: unlinked,
            first: first.map(|id| id.to_string()).unwrap_or_default(),
        });
    }
    Ok(Verification::Intact { count })
}

/// Walks the chain of AuditEvent resources (stored before the audit log existed) from the first
/// link to the head, checking each link against the stored AuditEvent, then looks for
/// AuditEvents stored before `before` outside the chain.
async fn verify_resources(
    store: &dyn Store,
    chain: &dyn AuditStore,
    before: i64,
) -> Result<Verification, StoreError> {
    let (head, head_hash) = chain.audit_head().await?;
    let mut previous = GENESIS.to_string();
    let mut after = 0;
    let mut count = 0;
    'walk: loop {
        let links = chain.audit_links(after, 1000).await?;
        if links.is_empty() {
            break;
        }
        for l in &links {
            if l.seq > head {
                break 'walk;
            }
            let stored = store.read("AuditEvent", &l.resource_id).await?;
            let content = stored.as_ref().and_then(|v| v.content.as_deref());
            let link = Link {
                seq: l.seq,
                resource_id: &l.resource_id,
                prev_hash: &l.prev_hash,
                hash: &l.hash,
            };
            match check_link(&previous, &link, content) {
                Ok(next) => previous = next,
                Err(reason) => {
                    return Ok(Verification::Broken {
                        seq: l.seq,
                        resource_id: l.resource_id.clone(),
                        reason,
                    });
                }
            }
            if l.seq != after + 1 {
                return Ok(Verification::Broken {
                    seq: l.seq,
                    resource_id: l.resource_id.clone(),
                    reason: Broken::Sequence {
                        expected_prev: previous,
                    },
                });
            }
            after = l.seq;
            count += 1;
        }
    }
    if after != head || (head > 0 && previous != head_hash) {
        return Ok(Verification::Truncated { head, last: after });
    }
    let (unchained, ids) = chain.unchained_audit_events(before, 1).await?;
    if unchained > 0 {
        return Ok(Verification::Unchained {
            count: unchained,
            first: ids.into_iter().next().unwrap_or_default(),
        });
    }
    Ok(Verification::Intact { count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use curanet_auth::audit::TokenAgent;

    #[test]
    fn built_events_conform_to_r4() {
        let validator = curanet_fhir::Validator::new(curanet_fhir::Definitions::shared());
        let token = TokenAgent {
            subject: "acct-1".into(),
            client_id: "app".into(),
            fhir_user: Some("Practitioner/d1".into()),
            jti: "abc".into(),
        };
        let base = RestEvent {
            recorded: "2026-01-02T03:04:05.678Z".into(),
            interaction: "read".into(),
            resource_type: Some("Observation".into()),
            id: Some("o1".into()),
            status: 200,
            token: Some(token),
            peer: Some("10.0.0.1".into()),
            request_id: Some("r1".into()),
            patients: vec!["p1".into()],
            server: "http://curanet.test/fhir".into(),
            ..RestEvent::default()
        };
        let events = [
            base.clone(),
            RestEvent {
                interaction: "search-type".into(),
                id: None,
                query: Some("patient=p1".into()),
                ..base.clone()
            },
            RestEvent {
                status: 403,
                outcome_desc: Some("no".into()),
                ..base.clone()
            },
            RestEvent {
                status: 401,
                token: None,
                peer: None,
                ..base.clone()
            },
            RestEvent {
                interaction: "operation".into(),
                operation: Some("everything".into()),
                resource_type: Some("Patient".into()),
                id: Some("p1".into()),
                ..base.clone()
            },
            RestEvent {
                interaction: "operation".into(),
                operation: Some("meta".into()),
                resource_type: None,
                id: None,
                ..base.clone()
            },
            RestEvent {
                interaction: "update".into(),
                version: Some("2".into()),
                ..base.clone()
            },
            RestEvent {
                consents: vec!["c1".into(), "c2".into()],
                break_glass: true,
                ..base.clone()
            },
        ];
        let alert = ConsentAlert {
            recorded: "2026-01-02T03:04:05.678Z".into(),
            patient: Some("p1".into()),
            consents: vec!["c1".into()],
            refusal: "no active consent for this practitioner".into(),
            token: base.token.clone(),
            peer: Some("10.0.0.1".into()),
            request_id: Some("r1".into()),
            server: "http://curanet.test/fhir".into(),
        };
        let sign_ins = [
            SignInEvent {
                recorded: "2026-01-02T03:04:05.678Z".into(),
                status: 200,
                fhir_user: Some("Patient/p1".into()),
                peer: Some("10.0.0.1".into()),
                request_id: Some("r2".into()),
                server: "http://curanet.test/fhir".into(),
                ..SignInEvent::default()
            },
            SignInEvent {
                recorded: "2026-01-02T03:04:05.678Z".into(),
                logout: true,
                status: 401,
                outcome_desc: Some("invalid_credentials".into()),
                server: "http://curanet.test/fhir".into(),
                ..SignInEvent::default()
            },
        ];
        // Built as they are read back: from the body the log stores, with id and meta.
        let built = events
            .into_iter()
            .map(Recorded::Rest)
            .chain(sign_ins.into_iter().map(Recorded::SignIn))
            .chain([Recorded::ConsentAlert(alert)])
            .map(|r| audit_event("7", &log_record(&r).body).unwrap());
        for ae in built {
            let errors: Vec<_> = validator
                .validate(&ae)
                .into_iter()
                .filter(curanet_fhir::Issue::is_error)
                .collect();
            assert!(errors.is_empty(), "{ae}: {errors:?}");
        }
    }

    #[test]
    fn consent_decisions_and_writes_complete_the_record() {
        let event = RestEvent {
            recorded: "2026-01-02T03:04:05.678Z".into(),
            interaction: "read".into(),
            resource_type: Some("Observation".into()),
            id: Some("o1".into()),
            status: 200,
            token: Some(TokenAgent {
                subject: "acct-1".into(),
                client_id: "app".into(),
                fhir_user: Some("Practitioner/d1".into()),
                jti: "jti-9".into(),
            }),
            request_id: Some("r1".into()),
            server: "http://curanet.test/fhir".into(),
            ..RestEvent::default()
        };
        let permitted = ConsentBasis {
            patient: Some("p1".into()),
            consents: vec!["c1".into()],
            break_glass: true,
            refusal: None,
        };
        let mut e = event.clone();
        add_consent(&mut e, &permitted);
        assert_eq!(e.patients, vec!["p1".to_string()]);
        assert_eq!(e.consents, vec!["c1".to_string()]);
        assert!(e.break_glass);
        assert!(e.with_view(|v| consent_alert(v, &permitted)).is_none());
        let refused = ConsentBasis {
            patient: Some("p1".into()),
            consents: Vec::new(),
            break_glass: false,
            refusal: Some("no active consent".into()),
        };
        let alert = event.with_view(|v| consent_alert(v, &refused)).unwrap();
        assert_eq!(alert.refusal, "no active consent");
        assert_eq!(alert.patient.as_deref(), Some("p1"));
        assert_eq!(alert.token.as_ref().unwrap().jti, "jti-9");
        let record = log_record(&Recorded::ConsentAlert(alert));
        assert_eq!(record.patients, vec!["p1".to_string()]);
        assert!(record.subtype.ends_with("|AuthZ-Consent"));
        assert_eq!(record.outcome, "8");

        // A write's record names what was written, 201 for a create.
        let version = |created| WriteOutcome::Written {
            version: StoredVersion {
                resource_type: "Observation".into(),
                id: "o2".into(),
                version: 4,
                last_updated: Instant(0),
                deleted: false,
                method: StoreMethod::Put,
                content: None,
                seq: 1,
            },
            created,
        };
        let create = RestEvent {
            interaction: "create".into(),
            id: None,
            ..event.clone()
        };
        let w = written(&create, &[version(true)]);
        assert_eq!((w.status, w.id.as_deref()), (201, Some("o2")));
        assert_eq!(w.version.as_deref(), Some("4"));
        let op = RestEvent {
            interaction: "operation".into(),
            operation: Some("approve".into()),
            ..event.clone()
        };
        let w = written(&op, &[version(false)]);
        assert_eq!((w.status, w.version.as_deref()), (200, Some("4")));
        let delete = RestEvent {
            interaction: "delete".into(),
            ..event
        };
        assert_eq!(written(&delete, &[version(false)]).version, None);
    }

    #[test]
    fn patient_references() {
        assert_eq!(patient_id("Patient/p1").as_deref(), Some("p1"));
        assert_eq!(
            patient_id("http://x/fhir/Patient/p1/_history/2").as_deref(),
            Some("p1")
        );
        assert_eq!(patient_id("Group/g1"), None);
        let obs = br#"{"resourceType": "Observation", "code": {"text": "x"},
            "subject": {"reference": "Patient/p9"}, "performer": [{"reference": "Patient/p8"}]}"#;
        assert_eq!(patients_in(obs), vec!["p9".to_string()]);
        let group = br#"{"subject": {"reference": "Group/g1"}, "patient": [1]}"#;
        assert!(patients_in(group).is_empty());
    }

    #[test]
    fn what_is_audited_and_refused() {
        assert!(audited("/fhir/Patient/1"));
        assert!(audited("/fhir"));
        assert!(!audited("/fhir/metadata"));
        assert!(!audited("/fhir/.well-known/smart-configuration"));
        assert!(!audited("/oauth/token"));
        for (m, p) in [
            (Method::POST, "/AuditEvent"),
            (Method::PUT, "/AuditEvent/1"),
            (Method::PUT, "/AuditEvent"),
            (Method::PATCH, "/AuditEvent/1"),
            (Method::DELETE, "/AuditEvent/1"),
            (Method::DELETE, "/AuditEvent"),
            (Method::POST, "/AuditEvent/1/$meta-add"),
        ] {
            assert!(writes_audit_event(&classify(&m, p)), "{m} {p}");
        }
        for (m, p) in [
            (Method::GET, "/AuditEvent/1"),
            (Method::GET, "/AuditEvent"),
            (Method::POST, "/AuditEvent/_search"),
            (Method::PUT, "/Patient/1"),
        ] {
            assert!(!writes_audit_event(&classify(&m, p)), "{m} {p}");
        }
        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": "AuditEvent/1"}},
            {"request": {"method": "POST", "url": "AuditEvent/_search"}},
        ]});
        assert!(!bundle_writes_audit_event(&bundle));
        for (method, url) in [
            ("DELETE", "AuditEvent/1"),
            ("PUT", "http://x/fhir/AuditEvent/1"),
            ("POST", "AuditEvent"),
        ] {
            let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"request": {"method": "GET", "url": "Patient/1"}},
                {"request": {"method": method, "url": url}},
            ]});
            assert!(bundle_writes_audit_event(&bundle), "{method} {url}");
        }
    }

    #[test]
    fn what_a_request_asked() {
        let search = classify(&Method::GET, "/Observation");
        let a = asked(&search, "/Observation", Some("patient=Patient/p1&code=x"));
        assert_eq!(a.interaction, "search-type");
        assert_eq!(a.query, Some("patient=Patient/p1&code=x"));
        assert_eq!(a.patients.as_slice(), ["p1"]);
        let a = asked(
            &search,
            "/Observation",
            Some("subject=Patient%2Fp3,Group/g"),
        );
        assert_eq!(a.patients.as_slice(), ["p3"]);
        let read = classify(&Method::GET, "/Patient/p2");
        let a = asked(&read, "/Patient/p2", None);
        assert_eq!(a.interaction, "read");
        assert_eq!(a.patients.as_slice(), ["p2"]);
        assert!(a.query.is_none());
        let vread = classify(&Method::GET, "/Observation/o1/_history/3");
        let a = asked(&vread, "/Observation/o1/_history/3", None);
        assert_eq!(a.interaction, "vread");
        assert_eq!(a.version, Some("3"));
        assert_eq!(
            location_version("http://h/fhir/Observation/o9/_history/1"),
            Some(("o9".to_string(), "1".to_string()))
        );
    }

    #[test]
    fn instants_and_addresses_as_text() {
        use chrono::TimeZone;
        for ms in [0, 1_767_323_045_678, 4_102_444_799_999, 951_782_400_001] {
            let t = chrono::Utc.timestamp_millis_opt(ms).unwrap();
            assert_eq!(
                Stamp::of(t).as_str(),
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
        }
        for ip in [
            "127.0.0.1",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(PeerText::of(ip).as_str(), ip.to_string());
        }
    }
}
