//! The facade the Tauri shell calls (see the desktop contract): one [`Desktop`] per app, over
//! one data directory. It signs in through the system browser and keeps the session in the
//! secret store (restored at the next start), opens the signed-in account's encrypted cache,
//! tracks the status the window shows, syncs the outbox and the recently opened patients (on
//! demand and in the background), and signs out: revokes, wipes the cache, forgets the secrets.
//!
//! Layout of the data directory: `secrets.enc` and `secrets.key` (see `secrets`), `last-server`
//! (the server signed in to last, to prefill the sign-in form: not a secret) and
//! `accounts/{account}/cache.db` (the cache, sealed with the account's key).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::session::{self, Endpoints, OnTokens, Session, SignIn, Tokens};
use crate::status::{Mode, Status, StatusTracker, User};
use crate::{Cache, DesktopError, FhirClient, Resolution, Result, SecretStore};

/// The desktop app's OAuth client id (a public client with the redirect
/// `http://127.0.0.1/callback`, any port).
pub const CLIENT_ID: &str = "curanet-desktop";
/// What the desktop asks for: the user's own access, who they are, and a refresh token.
pub const SCOPES: &str = "user/*.cruds openid fhirUser offline_access";
/// The bound of each account's cache.
const CACHE_BYTES: i64 = 256 * 1024 * 1024;
/// How long the sign-in page may stay open before the sign-in is given up.
const SIGN_IN_WAIT: Duration = Duration::from_secs(15 * 60);
/// The secret holding the session.
const SESSION_SECRET: &str = "session";
/// The file holding the server signed in to last.
const LAST_SERVER_FILE: &str = "last-server";
/// Every how many background rounds the worklist is synced while online (10 s × 30: 5 min).
const WORKLIST_EVERY_ROUNDS: u32 = 30;

/// How a [`Desktop`] is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep the secrets' key in the OS keyring when one answers (else always in a key file).
    pub keyring: bool,
    /// How often the background loop runs: probes the server while offline, replays the
    /// outbox while online.
    pub poll_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keyring: true,
            poll_every: Duration::from_secs(10),
        }
    }
}

/// A sign-in under way: open `authorize_url` (the server's sign-in page), then
/// [`Desktop::finish_sign_in`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInStarted {
    /// The server's sign-in page for this app.
    pub authorize_url: String,
}

/// A write the server's newer version conflicts with, for the user to resolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// Its place in the outbox (what [`Desktop::resolve`] takes).
    pub seq: i64,
    pub resource_type: String,
    pub id: String,
    /// The version written on this machine.
    pub mine: Value,
    /// The server's version.
    pub theirs: Option<Value>,
}

/// The session as kept in the secret store.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    server: String,
    client_id: String,
    endpoints: Endpoints,
    tokens: Tokens,
    user: User,
    account: String,
}

/// The signed-in account.
struct Account {
    server: String,
    user: User,
    client: FhirClient,
    session: Session,
}

/// The desktop app's core. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Desktop {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    secrets: SecretStore,
    http: reqwest::Client,
    status: StatusTracker,
    /// Never held across an await.
    account: RwLock<Option<Arc<Account>>>,
    /// The sign-in under way and its server.
    sign_in: tokio::sync::Mutex<Option<(String, SignIn)>>,
    /// One sync at a time (the user's and the background's).
    syncing: tokio::sync::Mutex<()>,
    /// An account was just signed in or restored: the background loop probes the server and
    /// syncs the worklist at its next round.
    fresh: AtomicBool,
}

/// The account key of `reference` at `server`: a digest, so that neither appears in paths.
fn account_id(server: &str, reference: &str) -> String {
    let digest = Sha256::digest(format!("{server}\n{reference}").as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// `Practitioner/x` of `http://host/fhir/Practitioner/x` (the fhirUser claim may be absolute).
fn relative_reference(fhir_user: &str) -> String {
    let parts: Vec<&str> = fhir_user
        .trim_end_matches('/')
        .rsplit('/')
        .take(2)
        .collect();
    match parts.as_slice() {
        [id, ty] => format!("{ty}/{id}"),
        _ => fhir_user.to_string(),
    }
}

/// A person's name as written in a Practitioner or Patient.
fn display_name(resource: &Value) -> Option<String> {
    let name = &resource["name"][0];
    if let Some(text) = name["text"].as_str().filter(|t| !t.trim().is_empty()) {
        return Some(text.to_string());
    }
    let mut words: Vec<&str> = name["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    words.extend(name["family"].as_str());
    (!words.is_empty()).then(|| words.join(" "))
}

fn io_error(e: std::io::Error) -> DesktopError {
    DesktopError::Secrets(e.to_string())
}

impl Desktop {
    /// Opens the app's core over `data_dir` (created if needed): restores the last session
    /// from the secret store and opens that account's cache, then starts the background loop.
    /// Works offline; a secret store that does not open means signed out.
    pub async fn open(data_dir: &Path) -> Result<Desktop> {
        Desktop::open_with(data_dir, Options::default()).await
    }

    /// [`Desktop::open`] with `options`.
    pub async fn open_with(data_dir: &Path, options: Options) -> Result<Desktop> {
        std::fs::create_dir_all(data_dir).map_err(io_error)?;
        let secrets = if options.keyring {
            SecretStore::open(data_dir).await?
        } else {
            SecretStore::without_keyring(data_dir)?
        };
        let desktop = Desktop {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                secrets,
                http: crate::client::http_client()?,
                status: StatusTracker::new(),
                account: RwLock::new(None),
                sign_in: tokio::sync::Mutex::new(None),
                syncing: tokio::sync::Mutex::new(()),
                fresh: AtomicBool::new(false),
            }),
        };
        match desktop.inner.secrets.get::<StoredSession>(SESSION_SECRET) {
            Ok(Some(stored)) => match desktop.connect(&stored).await {
                Ok(account) => desktop.install(account).await?,
                Err(e) => {
                    tracing::warn!(error = %e, "the last session's cache does not open: signed out")
                }
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the stored session does not open: signed out"),
        }
        background(Arc::downgrade(&desktop.inner), options.poll_every);
        Ok(desktop)
    }

    /// The status the window shows.
    pub fn status(&self) -> Status {
        self.inner.status.get()
    }

    /// Every change of the status (the shell forwards them to the UI as `status` events).
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.inner.status.subscribe()
    }

    /// The server signed in to last (to prefill the sign-in form), even after a sign-out.
    pub fn last_server(&self) -> Option<String> {
        std::fs::read_to_string(self.inner.data_dir.join(LAST_SERVER_FILE))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// The signed-in user.
    pub fn user(&self) -> Option<User> {
        self.account().map(|a| a.user.clone())
    }

    /// The FHIR client of the signed-in account.
    pub fn client(&self) -> Result<FhirClient> {
        self.account()
            .map(|a| a.client.clone())
            .ok_or_else(|| DesktopError::NotSignedIn("nobody is signed in".into()))
    }

    /// The signed-in account's FHIR client and reference (`Practitioner/x`): what every screen
    /// needs to read and write as that user.
    pub fn signed_in(&self) -> Result<(FhirClient, String)> {
        self.account()
            .map(|a| (a.client.clone(), a.user.reference.clone()))
            .ok_or_else(|| DesktopError::NotSignedIn("nobody is signed in".into()))
    }

    fn account(&self) -> Option<Arc<Account>> {
        self.inner.account.read().ok().and_then(|a| a.clone())
    }

    fn set_account(&self, account: Option<Arc<Account>>) {
        if let Ok(mut slot) = self.inner.account.write() {
            *slot = account;
        }
    }

    /// Starts signing in at the FHIR base `server`: the answer's `authorize_url` is the server's
    /// sign-in page, to open in a browser; then [`Desktop::finish_sign_in`].
    pub async fn begin_sign_in(&self, server: &str) -> Result<SignInStarted> {
        let server = server.trim().trim_end_matches('/').to_string();
        let sign_in = session::begin(&self.inner.http, &server, CLIENT_ID, SCOPES).await?;
        if let Err(e) = std::fs::write(self.inner.data_dir.join(LAST_SERVER_FILE), &server) {
            tracing::warn!(error = %e, "the last server could not be kept");
        }
        let started = SignInStarted {
            authorize_url: sign_in.authorize_url.clone(),
        };
        // A sign-in started before is given up (its loopback listener closes).
        *self.inner.sign_in.lock().await = Some((server, sign_in));
        Ok(started)
    }

    /// Waits for the browser to come back from the sign-in page, keeps the session, works out
    /// who signed in (name, hospital or pharmacy) and opens their cache.
    pub async fn finish_sign_in(&self) -> Result<Status> {
        let (server, sign_in) = self
            .inner
            .sign_in
            .lock()
            .await
            .take()
            .ok_or_else(|| DesktopError::NotSignedIn("no sign-in was started".into()))?;
        let endpoints = sign_in.endpoints().clone();
        let tokens = sign_in.finish(&self.inner.http, SIGN_IN_WAIT).await?;
        let reference = relative_reference(tokens.fhir_user.as_deref().ok_or_else(|| {
            DesktopError::Protocol("the server did not say who signed in (fhirUser)".into())
        })?);
        let mut stored = StoredSession {
            account: account_id(&server, &reference),
            server,
            client_id: CLIENT_ID.to_string(),
            endpoints,
            tokens,
            user: User {
                name: reference.clone(),
                reference,
                mode: Mode::Hospital,
            },
        };
        // Kept before the user is looked up: a renewal on the way stores its tokens.
        self.inner.secrets.put(SESSION_SECRET, &stored)?;
        let account = self.connect(&stored).await?;
        stored.user = who(&account.client, &stored.user.reference).await;
        stored.tokens = account.session.tokens().await.unwrap_or(stored.tokens);
        self.inner.secrets.put(SESSION_SECRET, &stored)?;
        let account = Arc::new(Account {
            server: account.server.clone(),
            user: stored.user.clone(),
            client: account.client.clone(),
            session: account.session.clone(),
        });
        self.install(account).await?;
        Ok(self.status())
    }

    /// The account of a stored session: its session, its cache (sealed with its key).
    async fn connect(&self, stored: &StoredSession) -> Result<Arc<Account>> {
        let key = self.inner.secrets.cache_key(&stored.account)?;
        let dir = self.inner.data_dir.join("accounts").join(&stored.account);
        std::fs::create_dir_all(&dir).map_err(io_error)?;
        let cache =
            Cache::open_sealed(&dir.join("cache.db"), &stored.account, key, CACHE_BYTES).await?;
        let weak = Arc::downgrade(&self.inner);
        let on_tokens: OnTokens = Arc::new(move |tokens: Option<&Tokens>| {
            if let Some(inner) = weak.upgrade() {
                Desktop { inner }.tokens_changed(tokens);
            }
        });
        let session = Session::new(
            self.inner.http.clone(),
            stored.endpoints.clone(),
            &stored.client_id,
            stored.tokens.clone(),
            on_tokens,
        );
        let client = FhirClient::with_session(&stored.server, session.clone(), cache)?
            .tracking(self.inner.status.clone());
        Ok(Arc::new(Account {
            server: stored.server.clone(),
            user: stored.user.clone(),
            client,
            session,
        }))
    }

    /// Makes `account` the signed-in one.
    async fn install(&self, account: Arc<Account>) -> Result<()> {
        self.inner.status.signed_in(&account.server, &account.user);
        let client = account.client.clone();
        self.set_account(Some(account));
        self.inner.fresh.store(true, Ordering::SeqCst);
        client.publish_counts().await
    }

    /// A renewal changed the session's tokens (keep them), or the session ended (forget it).
    fn tokens_changed(&self, tokens: Option<&Tokens>) {
        let kept = match tokens {
            Some(tokens) => self
                .inner
                .secrets
                .get::<StoredSession>(SESSION_SECRET)
                .and_then(|stored| match stored {
                    Some(mut stored) => {
                        stored.tokens = tokens.clone();
                        self.inner.secrets.put(SESSION_SECRET, &stored)
                    }
                    None => Ok(()),
                }),
            None => {
                self.set_account(None);
                self.inner.status.signed_out();
                self.inner.secrets.remove(SESSION_SECRET)
            }
        };
        if let Err(e) = kept {
            tracing::warn!(error = %e, "the session's change could not be kept");
        }
    }

    /// Signs out: writes still queued get a last chance to reach the server, the grant is
    /// revoked, the cache (every account's) is deleted and the secrets are forgotten. The local
    /// part always happens, even offline (the revocation is then logged as failed).
    pub async fn sign_out(&self) -> Result<Status> {
        *self.inner.sign_in.lock().await = None;
        let account = self.account();
        self.set_account(None);
        if let Some(account) = account {
            let _one_sync = self.inner.syncing.lock().await;
            match account.client.cache().outbox().counts().await {
                Ok((pending, _)) if pending > 0 => {
                    if let Err(e) = account.client.sync().await {
                        tracing::warn!(error = %e, "writes queued at sign-out were not all sent");
                    }
                }
                _ => {}
            }
            if let Err(e) = account.session.end().await {
                tracing::warn!(error = %e, "the session could not be revoked at the server");
            }
            let cache = account.client.cache();
            cache.wipe().await?;
            cache.close().await;
        }
        match std::fs::remove_dir_all(self.inner.data_dir.join("accounts")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e)),
        }
        self.inner.secrets.wipe().await?;
        self.inner.status.signed_out();
        Ok(self.status())
    }

    /// Records that the user opened `patient`'s chart: the worklist sync keeps the recently
    /// opened patients current.
    pub async fn opened(&self, patient: &str) -> Result<()> {
        self.client()?.cache().opened(patient).await
    }

    /// Syncs now: replays the outbox, then brings the recently opened patients' records up to
    /// date (each only what changed since its last sync), with progress in the status.
    pub async fn sync_now(&self) -> Result<Status> {
        let client = self.client()?;
        let _one_sync = self.inner.syncing.lock().await;
        if self.status().state == crate::State::Offline && !client.probe().await {
            return Ok(self.status());
        }
        if let Err(e) = client.sync().await {
            // The write stays queued (the status counts it); the worklist still syncs.
            tracing::warn!(error = %e, "a queued write was refused");
        }
        let cache = client.cache();
        let worklist = cache.recent_patients().await?;
        let total = worklist.len();
        let status = &self.inner.status;
        if total > 0 {
            status.syncing(0, total);
        }
        for (done, (patient, since)) in worklist.iter().enumerate() {
            match client
                .sync_patients(std::slice::from_ref(patient), since.as_deref(), &|_| {})
                .await
            {
                Ok(report) if report.evicted.contains(patient) => {
                    cache.forget_patient(patient).await?;
                }
                Ok(report) => {
                    if let Some(since) = &report.since {
                        cache.synced(patient, since).await?;
                    }
                }
                // The link dropped: the status says so; the rest waits for the next sync.
                Err(DesktopError::Offline(_)) => break,
                Err(e) => tracing::warn!(error = %e, %patient, "a patient's sync failed"),
            }
            status.syncing(done + 1, total);
        }
        status.synced();
        Ok(self.status())
    }

    /// The writes waiting for the user: the server's newer version conflicts with them.
    pub async fn conflicts(&self) -> Result<Vec<Conflict>> {
        Ok(self
            .client()?
            .cache()
            .outbox()
            .pending()
            .await?
            .into_iter()
            .filter(|p| p.conflict.is_some())
            .map(|p| Conflict {
                seq: p.seq,
                resource_type: p.resource_type,
                id: p.id,
                mine: p.resource,
                theirs: p.conflict,
            })
            .collect())
    }

    /// Resolves the conflict `seq`; a write kept (mine or merged) is replayed at once when the
    /// server answers.
    pub async fn resolve(&self, seq: i64, resolution: Resolution) -> Result<Status> {
        let client = self.client()?;
        client.resolve(seq, resolution).await?;
        let _one_sync = self.inner.syncing.lock().await;
        client.sync().await?;
        Ok(self.status())
    }

    /// One round of the background loop: probes the server while offline (and first thing
    /// after a sign-in); once it answers, replays the outbox when writes wait, and syncs the
    /// worklist when the link came back, after a sign-in, or when it is time.
    async fn background_round(&self, round: u32) {
        let Ok(client) = self.client() else {
            return;
        };
        let fresh = self.inner.fresh.swap(false, Ordering::SeqCst);
        let was_offline = self.status().state == crate::State::Offline;
        if (was_offline || fresh) && !client.probe().await {
            return;
        }
        if was_offline || fresh || round.is_multiple_of(WORKLIST_EVERY_ROUNDS) {
            if let Err(e) = self.sync_now().await {
                tracing::warn!(error = %e, "the background sync failed");
            }
            return;
        }
        let pending = client
            .cache()
            .outbox()
            .counts()
            .await
            .map_or(0, |(pending, conflicts)| pending - conflicts);
        if pending > 0 {
            let _one_sync = self.inner.syncing.lock().await;
            if let Err(e) = client.sync().await {
                tracing::warn!(error = %e, "the outbox replay failed");
            }
        }
    }
}

/// The background loop: a round every `every` for as long as the desktop is open.
fn background(inner: Weak<Inner>, every: Duration) {
    tokio::spawn(async move {
        let mut round: u32 = 0;
        loop {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            Desktop { inner }.background_round(round).await;
            round = round.wrapping_add(1);
            tokio::time::sleep(every).await;
        }
    });
}

/// Who signed in: their name from their resource, and pharmacy mode when one of their
/// PractitionerRoles is a pharmacist's. What cannot be read leaves the defaults (the reference
/// as the name, hospital mode).
async fn who(client: &FhirClient, reference: &str) -> User {
    let mut user = User {
        reference: reference.to_string(),
        name: reference.to_string(),
        mode: Mode::Hospital,
    };
    let Some((resource_type, id)) = reference.split_once('/') else {
        return user;
    };
    match client.read(resource_type, id).await {
        Ok(read) => {
            if let Some(name) = display_name(&read.resource) {
                user.name = name;
            }
        }
        Err(e) => tracing::warn!(error = %e, "the signed-in user's resource could not be read"),
    }
    if resource_type == "Practitioner" {
        match client
            .search("PractitionerRole", &[("practitioner", reference)])
            .await
        {
            Ok(roles) => {
                let pharmacist = roles.matches.iter().any(|role| {
                    role["code"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
                        .any(|coding| coding["code"] == "pharmacist")
                });
                if pharmacist {
                    user.mode = Mode::Pharmacy;
                }
            }
            Err(e) => tracing::warn!(error = %e, "the signed-in user's roles could not be read"),
        }
    }
    user
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn references_and_names() {
        assert_eq!(
            relative_reference("http://h:1/fhir/Practitioner/abc"),
            "Practitioner/abc"
        );
        assert_eq!(relative_reference("Practitioner/abc"), "Practitioner/abc");
        assert_eq!(
            display_name(&json!({"name": [{"given": ["Meera"], "family": "Iyer"}]})).as_deref(),
            Some("Meera Iyer")
        );
        assert_eq!(display_name(&json!({})), None);
        assert_ne!(
            account_id("http://a/fhir", "Practitioner/1"),
            account_id("http://b/fhir", "Practitioner/1")
        );
    }

    #[test]
    fn resolutions_and_conflicts_are_the_contracts_json() {
        let r: Resolution = serde_json::from_value(json!("keepMine")).unwrap();
        assert_eq!(r, Resolution::KeepMine);
        let r: Resolution = serde_json::from_value(json!({"merged": {"a": 1}})).unwrap();
        assert_eq!(r, Resolution::Merged(json!({"a": 1})));
        let c = Conflict {
            seq: 1,
            resource_type: "Patient".into(),
            id: "p".into(),
            mine: json!({}),
            theirs: None,
        };
        assert_eq!(serde_json::to_value(c).unwrap()["resourceType"], "Patient");
    }
}
