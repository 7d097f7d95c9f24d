//! Patient consents as access grants (issue 5): what an R4 `Consent` of scope
//! `patient-privacy` grants, and to whom. A consent counts only when `status = active` and now
//! lies inside `provision.period`; it grants its actors the levels it names (READ_BASIC,
//! READ_FULL, WRITE, DELETE) on the classes it names, minus its nested deny provisions.
//!
//! The grants are expressed as SMART `patient/` scopes for the consenting patient, so that a
//! clinician's effective access is plain scope arithmetic: the token's scopes, taken to the
//! patient level, intersected with [`consented_scopes`]. The resource server then confines
//! the request to that patient as it does for patient tokens.
//!
//! What scopes cannot say — a `dataPeriod`, denied security labels, denied instances — is kept
//! as a [`Residual`] that the resource server ANDs into searches and checks on reads.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::scope::{Scope, Scopes};

/// The CodeSystem of CuraNet's grant levels (`provision.action` codes).
pub const GRANT_LEVEL_SYSTEM: &str = "https://curanet.in/fhir/CodeSystem/consent-grant-level";

/// What READ_BASIC covers: demographics, allergies, medications and immunizations.
pub const READ_BASIC_TYPES: [&str; 5] = [
    "Patient",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Immunization",
];

/// A level a consent grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GrantLevel {
    /// Read and search the [`READ_BASIC_TYPES`].
    ReadBasic,
    /// Read and search the whole compartment.
    ReadFull,
    /// Create and update (and patch).
    Write,
    /// Delete.
    Delete,
}

impl GrantLevel {
    /// The level of a `provision.action` code.
    pub fn parse(code: &str) -> Option<GrantLevel> {
        match code {
            "READ_BASIC" => Some(GrantLevel::ReadBasic),
            "READ_FULL" => Some(GrantLevel::ReadFull),
            "WRITE" => Some(GrantLevel::Write),
            "DELETE" => Some(GrantLevel::Delete),
            _ => None,
        }
    }

    /// The SMART `patient/` scopes of this level, for `class` (a resource type) or every type.
    fn scopes(self, class: Option<&str>) -> Vec<String> {
        let on = |t: &str, letters: &str| format!("patient/{t}.{letters}");
        match (self, class) {
            (GrantLevel::ReadBasic, None) => READ_BASIC_TYPES.iter().map(|t| on(t, "rs")).collect(),
            (GrantLevel::ReadBasic, Some(t)) if READ_BASIC_TYPES.contains(&t) => vec![on(t, "rs")],
            (GrantLevel::ReadBasic, Some(_)) => Vec::new(),
            (GrantLevel::ReadFull, class) => vec![on(class.unwrap_or("*"), "rs")],
            (GrantLevel::Write, class) => vec![on(class.unwrap_or("*"), "cu")],
            (GrantLevel::Delete, class) => vec![on(class.unwrap_or("*"), "d")],
        }
    }
}

/// Why a Consent resource cannot be read as a grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConsentError(pub String);

/// The purpose code of break-the-glass access (`v3-ActReason#BTG`).
pub const BREAK_THE_GLASS: &str = "BTG";

/// A nested `deny` provision: what it takes away, from whom (no actors: from everyone).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Denial {
    pub actors: BTreeSet<String>,
    /// Resource types withheld.
    pub classes: BTreeSet<String>,
    /// Resources carrying one of these `(system, code)` security labels are withheld.
    pub security_labels: BTreeSet<(String, String)>,
    /// Resources withheld by reference (`data.reference`, `Type/id`).
    pub data: BTreeSet<String>,
}

/// An R4 Consent read as an access grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentGrant {
    /// The Consent's id.
    pub id: String,
    /// `Patient/{id}` reference of the consenting patient (its id).
    pub patient: String,
    /// `status`.
    pub status: String,
    /// `provision.period` in Unix seconds (`None` = open).
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// `provision.actor.reference`s: `Practitioner/…`, `PractitionerRole/…`, `Organization/…`,
    /// `Device/…` (a registered app).
    pub actors: BTreeSet<String>,
    /// The levels granted.
    pub levels: BTreeSet<GrantLevel>,
    /// `provision.class` resource types (empty = every type the levels allow).
    pub classes: BTreeSet<String>,
    /// Nested deny provisions.
    pub denials: Vec<Denial>,
    /// `provision.purpose` codes (e.g. `TREAT`, `BTG`).
    pub purposes: BTreeSet<String>,
    /// `provision.dataPeriod` (FHIR dateTimes as written): only records dated inside it.
    pub data_period: Option<(Option<String>, Option<String>)>,
}

impl ConsentGrant {
    /// Reads a Consent resource. Fields a grant cannot do without (patient, a permit
    /// provision, at least one level) are errors; unknown action codes are ignored.
    pub fn from_resource(consent: &Value) -> Result<ConsentGrant, ConsentError> {
        let fail = |m: &str| ConsentError(m.to_string());
        if consent["resourceType"] != "Consent" {
            return Err(fail("not a Consent"));
        }
        let patient = consent["patient"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("Patient/"))
            .ok_or_else(|| fail("Consent.patient must reference the Patient"))?
            .to_string();
        let provision = &consent["provision"];
        if provision["type"] != "permit" {
            return Err(fail("the root provision must be a permit"));
        }
        let levels: BTreeSet<GrantLevel> = codings(&provision["action"])
            .filter(|(system, _)| *system == GRANT_LEVEL_SYSTEM)
            .filter_map(|(_, code)| GrantLevel::parse(code))
            .collect();
        if levels.is_empty() {
            return Err(fail("the provision grants no level (provision.action)"));
        }
        let denials = provision["provision"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["type"] == "deny")
            .map(|p| Denial {
                actors: actor_references(p),
                classes: classes(p),
                security_labels: p["securityLabel"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        Some((
                            c["system"].as_str()?.to_string(),
                            c["code"].as_str()?.to_string(),
                        ))
                    })
                    .collect(),
                data: p["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d["reference"]["reference"].as_str().map(str::to_string))
                    .collect(),
            })
            .collect();
        let period = &provision["dataPeriod"];
        let data_period = period.is_object().then(|| {
            let at = |k: &str| period[k].as_str().map(str::to_string);
            (at("start"), at("end"))
        });
        Ok(ConsentGrant {
            id: consent["id"].as_str().unwrap_or_default().to_string(),
            // `provision.purpose` is a list of Codings (not CodeableConcepts).
            purposes: provision["purpose"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["code"].as_str().map(str::to_string))
                .collect(),
            data_period,
            patient,
            status: consent["status"].as_str().unwrap_or_default().to_string(),
            start: instant(&provision["period"]["start"]),
            end: instant(&provision["period"]["end"]),
            actors: actor_references(provision),
            levels,
            classes: classes(provision),
            denials,
        })
    }

    /// Whether the consent is in force at `now`: active, and inside its period.
    pub fn in_force(&self, now: i64) -> bool {
        self.status == "active"
            && self.start.is_none_or(|s| s <= now)
            && self.end.is_none_or(|e| now < e)
    }

    /// Whether one of `requester`'s references is an actor of this consent.
    pub fn names(&self, requester: &[String]) -> bool {
        requester.iter().any(|r| self.actors.contains(r))
    }

    /// The deny provisions that apply to `requester`.
    fn denials_for<'a>(&'a self, requester: &'a [String]) -> impl Iterator<Item = &'a Denial> {
        self.denials
            .iter()
            .filter(|d| d.actors.is_empty() || requester.iter().any(|r| d.actors.contains(r)))
    }

    /// What this consent withholds from `requester` beyond types and interactions.
    fn residual_for(&self, requester: &[String]) -> Residual {
        let mut residual = Residual {
            data_period: self.data_period.clone(),
            ..Residual::default()
        };
        for d in self.denials_for(requester) {
            residual
                .denied_labels
                .extend(d.security_labels.iter().cloned());
            residual.denied.extend(d.data.iter().cloned());
        }
        residual
    }

    /// The SMART `patient/` scopes this consent grants `requester` (nothing when it does not
    /// name them, or classes denied to them).
    fn scopes_for(&self, requester: &[String]) -> Vec<String> {
        if !self.names(requester) {
            return Vec::new();
        }
        // A denial by label or instance only leaves its classes to the residual.
        let denied: BTreeSet<&str> = self
            .denials_for(requester)
            .filter(|d| d.security_labels.is_empty() && d.data.is_empty())
            .flat_map(|d| d.classes.iter().map(String::as_str))
            .collect();
        let mut out = Vec::new();
        for level in &self.levels {
            if self.classes.is_empty() && denied.is_empty() {
                out.extend(level.scopes(None));
                continue;
            }
            // A denial of some classes turns "every type" into the listed types minus them;
            // with no list, every type but the denied ones is not expressible as scopes, so the
            // grant keeps only what READ_BASIC names (the safe side).
            let classes: Vec<&str> = if self.classes.is_empty() {
                READ_BASIC_TYPES.to_vec()
            } else {
                self.classes.iter().map(String::as_str).collect()
            };
            for class in classes.into_iter().filter(|c| !denied.contains(c)) {
                out.extend(level.scopes(Some(class)));
            }
        }
        out
    }
}

/// What one patient's consents in force grant one requester.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientAccess {
    /// The `patient/` scopes granted on the patient's records.
    pub scopes: Scopes,
    /// The Consents that grant them.
    pub consents: Vec<String>,
    /// Whether one of them is a break-the-glass grant.
    pub break_glass: bool,
    /// What the scopes cannot express, ANDed into every read and search.
    pub residual: Residual,
}

/// Restrictions beyond resource types and interactions: the consents' `dataPeriod` and their
/// deny provisions by security label and by instance. Several consents' residuals are combined
/// by taking all their restrictions (the safe side: a record must satisfy every one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Residual {
    /// Records must be dated inside this period (start, end; inclusive dates).
    pub data_period: Option<(Option<String>, Option<String>)>,
    /// Records carrying one of these security labels are withheld.
    pub denied_labels: BTreeSet<(String, String)>,
    /// Records withheld by reference (`Type/id`).
    pub denied: BTreeSet<String>,
}

impl Residual {
    /// Whether nothing beyond the scopes restricts the access.
    pub fn is_empty(&self) -> bool {
        self.data_period.is_none() && self.denied_labels.is_empty() && self.denied.is_empty()
    }

    /// The search parameters that confine a read or search of `resource_type` to what the
    /// residual allows; `None` when no record of that type can satisfy it (it carries no date
    /// to compare with the data period).
    pub fn pairs(&self, resource_type: &str) -> Option<Vec<(String, String)>> {
        let mut pairs = Vec::new();
        if let Some((start, end)) = &self.data_period
            && resource_type != "Patient"
        {
            let param = clinical_date_param(resource_type)?;
            if let Some(start) = start {
                pairs.push((param.to_string(), format!("ge{start}")));
            }
            if let Some(end) = end {
                pairs.push((param.to_string(), format!("le{end}")));
            }
        }
        for (system, code) in &self.denied_labels {
            pairs.push(("_security:not".into(), format!("{system}|{code}")));
        }
        let ids: Vec<&str> = self
            .denied
            .iter()
            .filter_map(|r| r.strip_prefix(resource_type)?.strip_prefix('/'))
            .collect();
        if !ids.is_empty() {
            pairs.push(("_id:not".into(), ids.join(",")));
        }
        Some(pairs)
    }

    fn add(&mut self, other: Residual) {
        // Both periods must hold: the later start and the earlier end (ISO dates and
        // dateTimes order as text).
        self.data_period = match (self.data_period.take(), other.data_period) {
            (Some((s1, e1)), Some((s2, e2))) => Some((s1.max(s2), min_some(e1, e2))),
            (a, b) => a.or(b),
        };
        self.denied_labels.extend(other.denied_labels);
        self.denied.extend(other.denied);
    }
}

fn min_some(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The search parameter holding a record's clinical date, for consents' `dataPeriod`.
pub fn clinical_date_param(resource_type: &str) -> Option<&'static str> {
    Some(match resource_type {
        "Observation"
        | "Encounter"
        | "AllergyIntolerance"
        | "DiagnosticReport"
        | "Procedure"
        | "Immunization"
        | "DocumentReference"
        | "Appointment"
        | "CarePlan"
        | "Composition"
        | "ClinicalImpression"
        | "FamilyMemberHistory"
        | "RiskAssessment"
        | "CareTeam"
        | "EpisodeOfCare"
        | "Flag"
        | "List"
        | "Communication"
        | "Consent" => "date",
        "Condition" => "recorded-date",
        "MedicationRequest" => "authoredon",
        "MedicationDispense" => "whenhandedover",
        "MedicationStatement" => "effective",
        "MedicationAdministration" => "effective-time",
        "ServiceRequest" => "authored",
        "Specimen" => "collected",
        "ImagingStudy" => "started",
        "Media" => "created",
        _ => return None,
    })
}

/// What the consents in force at `now` grant `requester` (their references: fhirUser,
/// PractitionerRoles, Organizations, the app) on one patient's records; `None` when no consent
/// in force names them.
pub fn patient_access(
    grants: &[ConsentGrant],
    requester: &[String],
    now: i64,
) -> Option<PatientAccess> {
    let mut access: Option<PatientAccess> = None;
    for grant in grants
        .iter()
        .filter(|g| g.in_force(now) && g.names(requester))
    {
        let scopes: Scopes = grant
            .scopes_for(requester)
            .iter()
            .filter_map(|text| Scope::parse(text).ok())
            .collect();
        let residual = grant.residual_for(requester);
        let entry = access.get_or_insert_with(|| PatientAccess {
            scopes: Scopes::default(),
            consents: Vec::new(),
            break_glass: false,
            residual: Residual::default(),
        });
        entry.scopes = entry
            .scopes
            .iter()
            .cloned()
            .chain(scopes.iter().cloned())
            .collect();
        entry.consents.push(grant.id.clone());
        entry.break_glass |= grant.purposes.contains(BREAK_THE_GLASS);
        entry.residual.add(residual);
    }
    access
}

/// When the answer of [`patient_access`] for these grants can next change by time alone: the
/// earliest period start or end after `now` (`None`: never, until a consent changes).
pub fn next_change(grants: &[ConsentGrant], now: i64) -> Option<i64> {
    grants
        .iter()
        .filter(|g| g.status == "active")
        .flat_map(|g| [g.start, g.end])
        .flatten()
        .filter(|t| *t > now)
        .min()
}

/// The `patient/` scopes the consents in force at `now` grant `requester` on their patients'
/// records (empty when none names them).
pub fn consented_scopes(grants: &[ConsentGrant], requester: &[String], now: i64) -> Scopes {
    patient_access(grants, requester, now)
        .map(|a| a.scopes)
        .unwrap_or_default()
}

/// A clinician's effective access to one patient: their token's `user/` and `patient/` scopes
/// taken to the patient level, intersected with what the consents grant.
pub fn effective_scopes(token: &Scopes, consented: &Scopes) -> Scopes {
    crate::roles::at_patient_level(token).intersect(consented)
}

/// `(system, code)` of every coding of every CodeableConcept in `concepts`.
fn codings(concepts: &Value) -> impl Iterator<Item = (&str, &str)> {
    concepts
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .filter_map(|c| Some((c["system"].as_str()?, c["code"].as_str()?)))
}

/// The `actor.reference`s of a provision (`Practitioner/1`, `Organization/2`, ...).
pub fn actor_references(provision: &Value) -> BTreeSet<String> {
    provision["actor"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["reference"]["reference"].as_str().map(str::to_string))
        .collect()
}

/// `provision.class` codes that name resource types.
fn classes(provision: &Value) -> BTreeSet<String> {
    provision["class"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["system"]
                .as_str()
                .is_none_or(|s| s == "http://hl7.org/fhir/resource-types")
        })
        .filter_map(|c| c["code"].as_str().map(str::to_string))
        .collect()
}

/// A FHIR dateTime as Unix seconds (a bare date is its midnight UTC).
fn instant(value: &Value) -> Option<i64> {
    let text = value.as_str()?;
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000; // 2027-01-15

    fn consent(status: &str, levels: &[&str], classes: &[&str], period: Value) -> Value {
        json!({
            "resourceType": "Consent",
            "status": status,
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/p1"},
            "provision": {
                "type": "permit",
                "period": period,
                "actor": [{"role": {"coding": [{"code": "IRCP"}]}, "reference": {"reference": "Practitioner/d1"}}],
                "action": [{"coding": levels.iter().map(|l| json!({"system": GRANT_LEVEL_SYSTEM, "code": l})).collect::<Vec<_>>()}],
                "class": classes.iter().map(|c| json!({"system": "http://hl7.org/fhir/resource-types", "code": c})).collect::<Vec<_>>(),
            }
        })
    }

    fn scopes_of(c: &Value, who: &str) -> String {
        let grant = ConsentGrant::from_resource(c).unwrap();
        consented_scopes(&[grant], &[who.to_string()], NOW).to_string()
    }

    #[test]
    fn only_active_consents_inside_their_period_grant_anything() {
        let cases = [
            ("active", json!({}), "patient/*.rs"),
            ("proposed", json!({}), ""),
            ("rejected", json!({}), ""),
            ("inactive", json!({}), ""),
            ("draft", json!({}), ""),
            ("entered-in-error", json!({}), ""),
            ("active", json!({"end": "2027-01-01T00:00:00Z"}), ""),
            ("active", json!({"start": "2027-02-01"}), ""),
            (
                "active",
                json!({"start": "2027-01-01", "end": "2027-02-01"}),
                "patient/*.rs",
            ),
        ];
        for (status, period, expected) in cases {
            let c = consent(status, &["READ_FULL"], &[], period.clone());
            assert_eq!(
                scopes_of(&c, "Practitioner/d1"),
                expected,
                "{status} {period}"
            );
        }
    }

    #[test]
    fn levels_map_to_patient_scopes() {
        let c = consent("active", &["READ_BASIC"], &[], json!({}));
        assert_eq!(
            scopes_of(&c, "Practitioner/d1"),
            "patient/Patient.rs patient/AllergyIntolerance.rs patient/MedicationRequest.rs patient/MedicationStatement.rs patient/Immunization.rs"
        );
        let c = consent(
            "active",
            &["READ_FULL", "WRITE"],
            &["Observation"],
            json!({}),
        );
        assert_eq!(
            scopes_of(&c, "Practitioner/d1"),
            "patient/Observation.rs patient/Observation.cu"
        );
        let c = consent("active", &["READ_BASIC"], &["Observation"], json!({}));
        assert_eq!(
            scopes_of(&c, "Practitioner/d1"),
            "",
            "READ_BASIC never reaches Observations"
        );
    }

    #[test]
    fn a_consent_grants_only_its_actors() {
        let c = consent("active", &["READ_FULL"], &[], json!({}));
        assert_eq!(scopes_of(&c, "Practitioner/other"), "");
    }

    #[test]
    fn deny_provisions_take_classes_away() {
        let mut c = consent(
            "active",
            &["READ_FULL"],
            &["Observation", "Condition"],
            json!({}),
        );
        c["provision"]["provision"] = json!([{
            "type": "deny",
            "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Condition"}],
        }]);
        assert_eq!(scopes_of(&c, "Practitioner/d1"), "patient/Observation.rs");
    }

    #[test]
    fn effective_access_is_the_token_intersected_with_the_consents() {
        let c = consent("active", &["READ_BASIC"], &[], json!({}));
        let grant = ConsentGrant::from_resource(&c).unwrap();
        let consented = consented_scopes(&[grant], &["Practitioner/d1".into()], NOW);
        let token = Scopes::parse("user/*.cruds openid").unwrap();
        let effective = effective_scopes(&token, &consented);
        assert!(
            effective
                .to_string()
                .contains("patient/AllergyIntolerance.rs")
        );
        assert!(!effective.to_string().contains("Observation"));
        let narrow = Scopes::parse("user/AllergyIntolerance.r").unwrap();
        assert_eq!(
            effective_scopes(&narrow, &consented).to_string(),
            "patient/AllergyIntolerance.r"
        );
    }

    #[test]
    fn a_decision_holds_until_the_next_period_boundary() {
        let later = consent(
            "active",
            &["READ_FULL"],
            &[],
            json!({"start": "2027-02-01", "end": "2027-03-01"}),
        );
        let now_in = consent("active", &["READ_FULL"], &[], json!({"end": "2027-01-20"}));
        let grants: Vec<ConsentGrant> = [later, now_in]
            .iter()
            .map(|c| ConsentGrant::from_resource(c).unwrap())
            .collect();
        // 2027-01-20T00:00:00Z comes before 2027-02-01.
        assert_eq!(next_change(&grants, NOW), Some(1_800_403_200));
        assert_eq!(next_change(&grants, 1_900_000_000), None);
    }

    #[test]
    fn residuals_become_search_parameters() {
        let mut c = consent("active", &["READ_FULL"], &[], json!({}));
        c["provision"]["dataPeriod"] = json!({"start": "2024-01-01", "end": "2024-12-31"});
        c["provision"]["provision"] = json!([{"type": "deny",
            "securityLabel": [{"system": "s", "code": "R"}],
            "data": [{"meaning": "instance", "reference": {"reference": "Observation/o1"}}]}]);
        let grant = ConsentGrant::from_resource(&c).unwrap();
        let access = patient_access(&[grant], &["Practitioner/d1".into()], NOW).unwrap();
        let pairs = |t: &str| access.residual.pairs(t);
        assert_eq!(
            pairs("Observation").unwrap(),
            vec![
                ("date".to_string(), "ge2024-01-01".to_string()),
                ("date".into(), "le2024-12-31".into()),
                ("_security:not".into(), "s|R".into()),
                ("_id:not".into(), "o1".into()),
            ]
        );
        assert_eq!(
            pairs("Condition").unwrap()[0],
            ("recorded-date".to_string(), "ge2024-01-01".to_string())
        );
        assert_eq!(
            pairs("Patient").unwrap(),
            vec![("_security:not".to_string(), "s|R".to_string())]
        );
        assert_eq!(
            pairs("Basic"),
            None,
            "no clinical date: not granted under a data period"
        );
        // The label denial takes no class away: the scopes stay whole.
        assert_eq!(access.scopes.to_string(), "patient/*.rs");
    }

    #[test]
    fn malformed_consents_are_errors() {
        let mut c = consent("active", &["READ_FULL"], &[], json!({}));
        c["provision"]["type"] = json!("deny");
        assert!(ConsentGrant::from_resource(&c).is_err());
        let none = consent("active", &["ALL_OF_IT"], &[], json!({}));
        assert!(ConsentGrant::from_resource(&none).is_err());
        assert!(ConsentGrant::from_resource(&json!({"resourceType": "Patient"})).is_err());
    }
}
