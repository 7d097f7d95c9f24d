//! The FHIR client of the desktop app: reads go through the local cache. A cached copy is
//! revalidated with `If-None-Match` (a 304 keeps it), served stale when the server cannot be
//! reached, and evicted — with everything of its patient — when the server says it no longer
//! exists or is no longer shared (403, 404, 410: consent revoked or expired).
//!
//! Every request is reported to the status tracker (if any): an answer means online, a server
//! that cannot be reached means offline. With a signed-in [`Session`] the access token is renewed
//! silently before it expires, and once when the server refuses it (401).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, ETAG, IF_NONE_MATCH};
use serde_json::Value;

use crate::cache::{Cache, patient_of};
use crate::session::Session;
use crate::status::StatusTracker;
use crate::{DesktopError, Result};

const FHIR_JSON: &str = "application/fhir+json";

/// How fresh a read's answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Just sent by the server.
    Fresh,
    /// The cached copy, confirmed unchanged by the server (304).
    Confirmed,
    /// The cached copy, the server being unreachable; last confirmed at this Unix time.
    Stale { since: i64 },
}

/// A resource read, and how fresh it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub resource: Value,
    pub freshness: Freshness,
}

/// How requests are authorized.
#[derive(Clone)]
enum Auth {
    /// No token (an open server).
    None,
    /// A fixed bearer token.
    Bearer(String),
    /// A signed-in session, renewed silently.
    Session(Session),
}

/// A FHIR server, through the local cache.
#[derive(Clone)]
pub struct FhirClient {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    cache: Cache,
    status: Option<StatusTracker>,
}

/// The HTTP client of the desktop: a server that does not answer the connection within
/// seconds is taken as unreachable.
pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| DesktopError::Protocol(e.to_string()))
}

/// What became of a request.
enum Sent {
    /// The server answered (whatever it said).
    Answer(reqwest::Response),
    /// The server could not be reached.
    Unreachable(reqwest::Error),
}

impl FhirClient {
    /// A client of the FHIR base `base`, sending `token` (if any) as a bearer token.
    pub fn new(base: &str, token: Option<String>, cache: Cache) -> Result<FhirClient> {
        Ok(FhirClient {
            http: http_client()?,
            base: base.trim_end_matches('/').to_string(),
            auth: token.map_or(Auth::None, Auth::Bearer),
            cache,
            status: None,
        })
    }

    /// A client of the FHIR base `base` for a signed-in `session` (its token renewed silently).
    pub fn with_session(base: &str, session: Session, cache: Cache) -> Result<FhirClient> {
        let mut client = FhirClient::new(base, None, cache)?;
        client.auth = Auth::Session(session);
        Ok(client)
    }

    /// The same client, reporting every request and outbox change to `status`.
    pub fn tracking(mut self, status: StatusTracker) -> FhirClient {
        self.status = Some(status);
        self
    }

    /// The FHIR base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The local cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Whether the server answers (`GET metadata`); the status follows.
    pub async fn probe(&self) -> bool {
        matches!(
            self.send(self.request(reqwest::Method::GET, "metadata"))
                .await,
            Ok(Sent::Answer(_))
        )
    }

    /// Publishes the outbox's counts to the status (if tracked).
    pub async fn publish_counts(&self) -> Result<()> {
        if let Some(status) = &self.status {
            let (pending, conflicts) = self.cache.outbox().counts().await?;
            status.counts(pending, conflicts);
        }
        Ok(())
    }

    /// The bearer token to send, if any (a session's, renewed first when about to expire).
    async fn token(&self) -> Result<Option<String>> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Bearer(token) => Ok(Some(token.clone())),
            Auth::Session(session) => Ok(Some(session.access_token().await?)),
        }
    }

    /// Sends `request` with the bearer token; a 401 renews the session's token and sends it
    /// once more.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Sent> {
        let token = self.token().await?;
        let again = request.try_clone();
        let first = match &token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let answer = self.attempt(first).await?;
        let Sent::Answer(response) = answer else {
            return Ok(answer);
        };
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(Sent::Answer(response));
        }
        let (Auth::Session(session), Some(token), Some(again)) = (&self.auth, token, again) else {
            return Ok(Sent::Answer(response));
        };
        match session.renew_after_refusal(&token).await? {
            Some(renewed) => self.attempt(again.bearer_auth(renewed)).await,
            None => Ok(Sent::Answer(response)),
        }
    }

    /// Sends `request` once and reports to the status whether the server answered.
    async fn attempt(&self, request: reqwest::RequestBuilder) -> Result<Sent> {
        match request.send().await {
            Ok(response) => {
                if let Some(status) = &self.status {
                    status.reachable();
                }
                Ok(Sent::Answer(response))
            }
            Err(e) if unreachable(&e) => {
                if let Some(status) = &self.status {
                    status.unreachable();
                }
                Ok(Sent::Unreachable(e))
            }
            Err(e) => Err(DesktopError::Protocol(e.to_string())),
        }
    }

    /// The cached copy at once (for the first paint, before [`FhirClient::read`] revalidates).
    pub async fn cached(&self, resource_type: &str, id: &str) -> Result<Option<Value>> {
        Ok(self.cache.get(resource_type, id).await?.map(|c| c.resource))
    }

    /// Reads `resource_type/id`: from the server, revalidating the cached copy, or from the
    /// cache when the server cannot be reached.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Read> {
        let reference = format!("{resource_type}/{id}");
        let cached = self.cache.get(resource_type, id).await?;
        let mut request = self.request(reqwest::Method::GET, &reference);
        if let Some(etag) = cached.as_ref().and_then(|c| c.etag.as_deref()) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = match self.send(request).await? {
            Sent::Answer(r) => r,
            // Unreachable (or timed out): what we have, marked stale.
            Sent::Unreachable(e) => {
                tracing::info!(%reference, error = %e, "offline: serving the cached copy");
                return match cached {
                    Some(c) => Ok(Read {
                        resource: c.resource,
                        freshness: Freshness::Stale {
                            since: c.fetched_at,
                        },
                    }),
                    None => Err(DesktopError::Offline(reference)),
                };
            }
        };
        let status = response.status();
        match status {
            StatusCode::NOT_MODIFIED => match cached {
                Some(c) => {
                    self.cache.confirmed(resource_type, id).await?;
                    Ok(Read {
                        resource: c.resource,
                        freshness: Freshness::Confirmed,
                    })
                }
                None => Err(DesktopError::Protocol(format!(
                    "{reference}: 304 without a cached copy"
                ))),
            },
            s if s.is_success() => Ok(Read {
                resource: self.stored(response).await?,
                freshness: Freshness::Fresh,
            }),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::GONE => {
                // Gone or no longer shared: nothing of it may stay on this machine.
                self.cache.remove(resource_type, id).await?;
                let patient = match cached.as_ref().and_then(|c| patient_of(&c.resource)) {
                    Some(p) => Some(p),
                    None => (resource_type == "Patient").then(|| id.to_string()),
                };
                if let Some(patient) = patient {
                    let evicted = self.cache.evict_patient(&patient).await?;
                    tracing::info!(%reference, %patient, evicted, "no longer available: the patient's cached data is evicted");
                }
                Err(DesktopError::NotAvailable(reference))
            }
            _ => Err(Self::refused(response).await),
        }
    }
}

/// What became of a write.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// The server stored it: its answer.
    Sent(Value),
    /// The server could not be reached: queued (readable from the cache meanwhile).
    Queued { seq: i64, resource: Value },
}

/// What a replay of the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Writes the server stored.
    pub sent: usize,
    /// Writes parked as conflicts (412), waiting for the user.
    pub conflicts: usize,
    /// Writes still queued (the server became unreachable again, or conflicts).
    pub remaining: usize,
}

/// How the user resolves a conflict (JSON: `"keepMine"`, `"takeTheirs"` or `{"merged": {..}}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resolution {
    /// Replay my version over the server's.
    KeepMine,
    /// Drop my change and keep the server's version.
    TakeTheirs,
    /// Replay this version (merged by hand).
    Merged(Value),
}

/// Whether a transport error means the server cannot be reached (queue, do not fail).
fn unreachable(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request()
}

/// The weak ETag of a resource's `meta.versionId`.
fn etag_of(resource: &Value) -> Option<String> {
    resource["meta"]["versionId"]
        .as_str()
        .map(|v| format!("W/\"{v}\""))
}

/// A local id for a resource created offline, unique on this machine.
fn local_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "local-{}-{n}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

impl FhirClient {
    /// A request to `{base}/{path}` for FHIR JSON (the token is added when it is sent).
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/{path}", self.base))
            .header(ACCEPT, FHIR_JSON)
    }

    /// The resource of a successful answer, cached.
    async fn stored(&self, response: reqwest::Response) -> Result<Value> {
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|e| e.to_str().ok())
            .map(str::to_string);
        let resource: Value = response
            .json()
            .await
            .map_err(|e| DesktopError::Protocol(e.to_string()))?;
        self.cache.put(&resource, etag.as_deref()).await?;
        Ok(resource)
    }

    async fn refused(response: reqwest::Response) -> DesktopError {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        DesktopError::Refused {
            status,
            message: text.chars().take(500).collect(),
        }
    }

    /// Creates `resource` on the server, or queues it with a local id when the server cannot be
    /// reached.
    pub async fn create(&self, mut resource: Value) -> Result<Written> {
        let ty = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(o) = resource.as_object_mut() {
            o.remove("id");
        }
        let request = self
            .request(reqwest::Method::POST, &ty)
            .header(reqwest::header::CONTENT_TYPE, FHIR_JSON)
            .body(resource.to_string());
        match self.send(request).await? {
            Sent::Answer(r) if r.status().is_success() => Ok(Written::Sent(self.stored(r).await?)),
            Sent::Answer(r) => Err(Self::refused(r).await),
            Sent::Unreachable(_) => {
                resource["id"] = Value::String(local_id());
                self.cache.put(&resource, None).await?;
                let seq = self
                    .cache
                    .outbox()
                    .push(crate::outbox::Method::Create, &resource, None)
                    .await?;
                self.publish_counts().await?;
                Ok(Written::Queued { seq, resource })
            }
        }
    }

    /// Updates `resource` on the server with `If-Match` on the version it was made from (its
    /// `meta.versionId`), or queues it when the server cannot be reached. A version the server
    /// has moved past is a `Refused { status: 412 }`.
    pub async fn update(&self, resource: Value) -> Result<Written> {
        let ty = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let id = resource["id"].as_str().unwrap_or_default().to_string();
        let outbox = self.cache.outbox();
        if id.starts_with("local-") {
            // Not on the server yet: the queued create carries the change.
            self.cache.put(&resource, None).await?;
            let seq = outbox.replace_create(&id, &resource).await?;
            self.publish_counts().await?;
            return Ok(Written::Queued { seq, resource });
        }
        let if_match = etag_of(&resource);
        let mut request = self
            .request(reqwest::Method::PUT, &format!("{ty}/{id}"))
            .header(reqwest::header::CONTENT_TYPE, FHIR_JSON)
            .body(resource.to_string());
        if let Some(tag) = &if_match {
            request = request.header(reqwest::header::IF_MATCH, tag);
        }
        match self.send(request).await? {
            Sent::Answer(r) if r.status().is_success() => Ok(Written::Sent(self.stored(r).await?)),
            Sent::Answer(r) => Err(Self::refused(r).await),
            Sent::Unreachable(_) => {
                self.cache.put(&resource, None).await?;
                let seq = outbox
                    .push(
                        crate::outbox::Method::Update,
                        &resource,
                        if_match.as_deref(),
                    )
                    .await?;
                self.publish_counts().await?;
                Ok(Written::Queued { seq, resource })
            }
        }
    }

    /// Replays the outbox in order. Stops (leaving the rest queued) when the server cannot be
    /// reached; parks conflicts; a write the server refuses otherwise stays queued and is
    /// reported by the error.
    pub async fn sync(&self) -> Result<SyncReport> {
        let replayed = self.replay().await;
        self.publish_counts().await?;
        replayed
    }

    async fn replay(&self) -> Result<SyncReport> {
        let outbox = self.cache.outbox();
        let mut report = SyncReport::default();
        let mut last = 0;
        // Each write is read again just before it is sent: an earlier one may have rewritten
        // its references.
        while let Some(p) = outbox
            .pending()
            .await?
            .into_iter()
            .find(|p| p.seq > last && p.conflict.is_none())
        {
            last = p.seq;
            let (method, path) = match p.method {
                crate::outbox::Method::Create => (reqwest::Method::POST, p.resource_type.clone()),
                crate::outbox::Method::Update => (
                    reqwest::Method::PUT,
                    format!("{}/{}", p.resource_type, p.id),
                ),
            };
            let mut body = p.resource.clone();
            if p.method == crate::outbox::Method::Create
                && let Some(o) = body.as_object_mut()
            {
                o.remove("id");
            }
            let mut request = self
                .request(method, &path)
                .header(reqwest::header::CONTENT_TYPE, FHIR_JSON)
                .body(body.to_string());
            if let Some(tag) = &p.if_match {
                request = request.header(reqwest::header::IF_MATCH, tag);
            }
            let response = match self.send(request).await? {
                Sent::Answer(r) => r,
                Sent::Unreachable(_) => break,
            };
            if response.status() == StatusCode::PRECONDITION_FAILED {
                let current = self.request(
                    reqwest::Method::GET,
                    &format!("{}/{}", p.resource_type, p.id),
                );
                let theirs = match self.send(current).await? {
                    Sent::Answer(r) if r.status().is_success() => self.stored(r).await?,
                    Sent::Answer(r) => return Err(Self::refused(r).await),
                    Sent::Unreachable(_) => break,
                };
                outbox.conflicted(p.seq, &theirs).await?;
                report.conflicts += 1;
                continue;
            }
            if !response.status().is_success() {
                return Err(Self::refused(response).await);
            }
            let stored = self.stored(response).await?;
            if p.method == crate::outbox::Method::Create
                && let Some(server_id) = stored["id"].as_str()
            {
                // The local id is replaced everywhere: the cache and later queued writes.
                self.cache.remove(&p.resource_type, &p.id).await?;
                outbox
                    .rewrite_references(
                        &format!("{}/{}", p.resource_type, p.id),
                        &format!("{}/{server_id}", p.resource_type),
                    )
                    .await?;
            }
            outbox.done(p.seq).await?;
            report.sent += 1;
        }
        report.remaining = outbox.pending().await?.len();
        Ok(report)
    }

    /// Resolves a parked conflict; the write (if kept) is replayed by the next [`FhirClient::sync`].
    pub async fn resolve(&self, seq: i64, resolution: Resolution) -> Result<()> {
        let outbox = self.cache.outbox();
        let Some(p) = outbox.pending().await?.into_iter().find(|p| p.seq == seq) else {
            return Ok(());
        };
        let Some(theirs) = p.conflict else {
            return Ok(());
        };
        let their_tag = etag_of(&theirs).unwrap_or_default();
        match resolution {
            Resolution::TakeTheirs => {
                self.cache.put(&theirs, Some(&their_tag)).await?;
                outbox.done(seq).await?;
            }
            Resolution::KeepMine => outbox.replace(seq, &p.resource, &their_tag).await?,
            Resolution::Merged(merged) => outbox.replace(seq, &merged, &their_tag).await?,
        }
        self.publish_counts().await
    }
}

/// Where a worklist sync stands (for the progress bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Patients done.
    pub done: usize,
    /// Patients in the worklist.
    pub total: usize,
    /// Resources stored so far.
    pub resources: usize,
}

/// What a worklist sync brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorklistSync {
    /// Resources stored.
    pub resources: usize,
    /// Patients no longer shared with this user (their cached data was evicted).
    pub evicted: Vec<String>,
    /// The server's time when the sync started: pass it as `since` next time.
    pub since: Option<String>,
}

impl FhirClient {
    /// Brings the worklist's patients into the cache: each patient's record
    /// (`Patient/{id}/$everything`, page by page), only what changed after `since` when given.
    /// A patient the server no longer shares is evicted; an unreachable server stops the sync
    /// (what was stored stays).
    pub async fn sync_patients(
        &self,
        patients: &[String],
        since: Option<&str>,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<WorklistSync> {
        let mut report = WorklistSync {
            resources: 0,
            evicted: Vec::new(),
            since: None,
        };
        for (i, patient) in patients.iter().enumerate() {
            let mut query = vec![("_count", "500".to_string())];
            if let Some(s) = since {
                query.push(("_since", s.to_string()));
            }
            let first = format!(
                "{}/Patient/{patient}/$everything?{}",
                self.base,
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&query)
                    .finish()
            );
            let mut next = Some(first);
            while let Some(url) = next.take() {
                let request = self.http.get(&url).header(ACCEPT, FHIR_JSON);
                let response = match self.send(request).await? {
                    Sent::Answer(r) => r,
                    Sent::Unreachable(_) => {
                        return Err(DesktopError::Offline(format!("Patient/{patient}")));
                    }
                };
                match response.status() {
                    StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::GONE => {
                        self.cache.evict_patient(patient).await?;
                        report.evicted.push(patient.clone());
                        break;
                    }
                    s if !s.is_success() => return Err(Self::refused(response).await),
                    _ => {}
                }
                let bundle: Value = response
                    .json()
                    .await
                    .map_err(|e| DesktopError::Protocol(e.to_string()))?;
                if report.since.is_none() {
                    report.since = bundle["meta"]["lastUpdated"].as_str().map(str::to_string);
                }
                let page: Vec<(&Value, Option<String>)> = bundle["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| &e["resource"])
                    .filter(|r| r.is_object() && r["resourceType"] != "OperationOutcome")
                    .map(|r| (r, etag_of(r)))
                    .collect();
                let rows: Vec<(&Value, Option<&str>)> =
                    page.iter().map(|(r, e)| (*r, e.as_deref())).collect();
                self.cache.put_all(&rows).await?;
                report.resources += rows.len();
                next = next_link(&bundle);
            }
            progress(Progress {
                done: i + 1,
                total: patients.len(),
                resources: report.resources,
            });
        }
        Ok(report)
    }
}

/// The `next` link of a search Bundle: where its following page is.
pub(crate) fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_string)
}

/// What the clinical modules' own requests (`search.rs`) need of the client.
impl FhirClient {
    /// Sends a request to `{base}/{path}`, or to `path` itself when it is an absolute URL (a
    /// search's `next` link), through the session (token, renewal, status); `None` when the
    /// server cannot be reached.
    pub(crate) async fn exchange(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<reqwest::Response>> {
        let mut request = if path.starts_with("http://") || path.starts_with("https://") {
            self.http.request(method, path).header(ACCEPT, FHIR_JSON)
        } else {
            self.request(method, path)
        };
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, FHIR_JSON)
                .body(body.to_string());
        }
        match self.send(request).await? {
            Sent::Answer(response) => Ok(Some(response)),
            Sent::Unreachable(_) => Ok(None),
        }
    }

    /// The error of an answer the server refused.
    pub(crate) async fn refusal(response: reqwest::Response) -> DesktopError {
        Self::refused(response).await
    }
}
