//! The patients' consents as the resource server consults them on every clinician's request:
//! each patient's active Consents, the patients whose active Consents name a requester, and the
//! references that name a requester (their Practitioner, PractitionerRoles and Organizations).
//!
//! All three are cached, and every change to a Consent, PractitionerRole or Practitioner
//! empties the caches before the write is acknowledged here, and as soon as the change is
//! announced on the others (PostgreSQL `LISTEN/NOTIFY`, through the store's change watchers).
//! Whether a cached consent is in force is decided per request from its status and period, so
//! expiry needs no invalidation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use curanet_auth::consent::{
    ConsentGrant, PatientAccess, effective_scopes, next_change, patient_access,
};
use curanet_auth::scope::Scopes;
use curanet_engine::{Engine, EngineError};
use curanet_storage::Change;
use moka::sync::Cache;
use serde_json::Value;

/// Most Consents read for one patient or one requester (more are refused, not ignored).
const MAX_CONSENTS: usize = 1000;
/// Entries kept in each cache.
const CAPACITY: u64 = 100_000;
/// A safety net only: entries are invalidated on change, not by age.
const TIME_TO_LIVE: Duration = Duration::from_secs(600);

/// The cached consents and requester references.
pub struct ConsentRegistry {
    /// Active Consents by patient id.
    by_patient: Cache<String, Arc<Vec<ConsentGrant>>>,
    /// Active Consents naming any of a requester's references, by those references.
    by_requester: Cache<String, Arc<Vec<ConsentGrant>>>,
    /// A requester's references by fhirUser (`Practitioner/1`).
    references: Cache<String, Arc<Vec<String>>>,
    /// What one token may do with one patient's records, by (token id, patient id).
    decisions: Cache<(String, String), Arc<Decided>>,
    /// Bumped by every invalidation, so a load that raced one does not stay cached.
    generation: AtomicU64,
}

/// A cache bounded in entries, with a time to live as a safety net.
fn bounded<K, V>() -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(CAPACITY)
        .time_to_live(TIME_TO_LIVE)
        .build()
}

impl Default for ConsentRegistry {
    fn default() -> Self {
        ConsentRegistry {
            by_patient: bounded(),
            by_requester: bounded(),
            references: bounded(),
            decisions: bounded(),
            generation: AtomicU64::new(0),
        }
    }
}

/// What the consents in force grant one token on one patient's records.
#[derive(Debug)]
pub struct Decided {
    /// What the consents grant (`None`: no consent in force names the requester).
    pub access: Option<PatientAccess>,
    /// The token's scopes intersected with the consented ones, at patient level.
    pub scopes: Scopes,
    /// When the decision may change by time alone (a period starts or ends).
    pub valid_until: Option<i64>,
}

/// Why consents could not be read.
pub type Result<T> = std::result::Result<T, EngineError>;

impl ConsentRegistry {
    /// A registry that forgets what changes in `engine`'s store.
    pub fn watching(engine: &Engine) -> Arc<ConsentRegistry> {
        let registry = Arc::new(ConsentRegistry::default());
        let weak = Arc::downgrade(&registry);
        engine.store().watch(Arc::new(move |change| {
            if let Some(registry) = weak.upgrade() {
                registry.changed(change);
            }
        }));
        registry
    }

    /// Forgets what a change may have made stale.
    pub fn changed(&self, change: Change<'_>) {
        match change {
            Change::Resource { resource_type, .. }
                if !matches!(
                    resource_type,
                    "Consent" | "PractitionerRole" | "Practitioner"
                ) => {}
            _ => self.clear(),
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.by_patient.invalidate_all();
        self.by_requester.invalidate_all();
        self.references.invalidate_all();
        self.decisions.invalidate_all();
    }

    /// What the token `jti` (with `scopes`, for `references`) may do with `patient`'s records:
    /// decided once, then reused until a consent changes or a period starts or ends.
    pub async fn decide(
        &self,
        engine: &Engine,
        jti: &str,
        scopes: &Scopes,
        references: &[String],
        patient: &str,
    ) -> Result<Arc<Decided>> {
        let key = (jti.to_string(), patient.to_string());
        let now = crate::server::unix_now();
        if let Some(hit) = self.decisions.get(&key)
            && hit.valid_until.is_none_or(|t| now < t)
        {
            return Ok(hit);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let grants = self.of_patient(engine, patient).await?;
        let access = patient_access(&grants, references, now);
        let decided = Arc::new(Decided {
            scopes: access
                .as_ref()
                .map(|a| effective_scopes(scopes, &a.scopes))
                .unwrap_or_default(),
            access,
            valid_until: next_change(&grants, now),
        });
        self.decisions.insert(key.clone(), Arc::clone(&decided));
        if self.generation.load(Ordering::Acquire) != generation {
            self.decisions.invalidate(&key);
        }
        Ok(decided)
    }

    /// The active Consents of `patient` (in force or not: the period is checked per request).
    pub async fn of_patient(
        &self,
        engine: &Engine,
        patient: &str,
    ) -> Result<Arc<Vec<ConsentGrant>>> {
        let pairs = [("patient".to_string(), format!("Patient/{patient}"))];
        self.cached(&self.by_patient, patient.to_string(), || {
            load_grants(engine, &pairs)
        })
        .await
    }

    /// The active Consents that name any of `references` as an actor.
    pub async fn naming(
        &self,
        engine: &Engine,
        references: &[String],
    ) -> Result<Arc<Vec<ConsentGrant>>> {
        let joined = references.join(",");
        let pairs = [("actor".to_string(), joined.clone())];
        self.cached(&self.by_requester, joined, || load_grants(engine, &pairs))
            .await
    }

    /// The references a consent may name the user `fhir_user` (`Practitioner/1` or
    /// `PractitionerRole/2`) by: the user, their PractitionerRoles and those roles'
    /// Organizations (a consent to a whole pharmacy names its Organization).
    pub async fn references(&self, engine: &Engine, fhir_user: &str) -> Result<Arc<Vec<String>>> {
        let key = fhir_user.to_string();
        self.cached(&self.references, key, || {
            requester_references(engine, fhir_user)
        })
        .await
    }

    async fn cached<T, F, Fut>(
        &self,
        cache: &Cache<String, Arc<T>>,
        key: String,
        load: F,
    ) -> Result<Arc<T>>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        if let Some(hit) = cache.get(&key) {
            return Ok(hit);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let value = Arc::new(load().await?);
        cache.insert(key.clone(), Arc::clone(&value));
        // An invalidation while loading may have come before our insert: drop it.
        if self.generation.load(Ordering::Acquire) != generation {
            cache.invalidate(&key);
        }
        Ok(value)
    }
}

/// Every active Consent matching `pairs`, read as grants (malformed ones grant nothing).
async fn load_grants(engine: &Engine, pairs: &[(String, String)]) -> Result<Vec<ConsentGrant>> {
    let mut query = pairs.to_vec();
    query.push(("status".into(), "active".into()));
    query.push(("_count".into(), MAX_CONSENTS.to_string()));
    let result = engine.search("Consent", &query, "", false).await?;
    if result.next_cursor.is_some() {
        return Err(EngineError::BadRequest(format!(
            "more than {MAX_CONSENTS} active consents apply; the request cannot be decided"
        )));
    }
    Ok(result
        .page
        .resources
        .iter()
        .filter_map(|v| v.resource())
        .filter_map(|c: Value| match ConsentGrant::from_resource(&c) {
            Ok(grant) => Some(grant),
            Err(e) => {
                tracing::debug!(consent = ?c.get("id"), reason = %e, "consent grants nothing");
                None
            }
        })
        .collect())
}

/// See [`ConsentRegistry::references`].
async fn requester_references(engine: &Engine, fhir_user: &str) -> Result<Vec<String>> {
    let mut references = vec![fhir_user.to_string()];
    let roles: Vec<Value> = if let Some(id) = fhir_user.strip_prefix("PractitionerRole/") {
        match engine.read("PractitionerRole", id).await {
            Ok(v) => v.resource().into_iter().collect(),
            Err(EngineError::NotFound(_) | EngineError::Gone(_)) => Vec::new(),
            Err(e) => return Err(e),
        }
    } else if fhir_user.starts_with("Practitioner/") {
        let pairs = [
            ("practitioner".to_string(), fhir_user.to_string()),
            ("_count".to_string(), "100".to_string()),
        ];
        let result = engine.search("PractitionerRole", &pairs, "", false).await?;
        result
            .page
            .resources
            .iter()
            .filter_map(|v| v.resource())
            .collect()
    } else {
        Vec::new()
    };
    for role in roles {
        let named = [
            role["id"]
                .as_str()
                .map(|id| format!("PractitionerRole/{id}")),
            role["practitioner"]["reference"]
                .as_str()
                .map(str::to_string),
            role["organization"]["reference"]
                .as_str()
                .map(str::to_string),
        ];
        for reference in named.into_iter().flatten() {
            if !references.contains(&reference) {
                references.push(reference);
            }
        }
    }
    Ok(references)
}
