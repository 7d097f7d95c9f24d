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
//! Not wired into the request path yet: the decision hook is
//! [`ConsentPolicy`](crate::access::ConsentPolicy).

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

/// A nested `deny` provision: what it takes away, from whom (no actors: from everyone).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Denial {
    pub actors: BTreeSet<String>,
    pub classes: BTreeSet<String>,
}

/// An R4 Consent read as an access grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentGrant {
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
            })
            .collect();
        Ok(ConsentGrant {
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

    /// The SMART `patient/` scopes this consent grants `requester` (nothing when it does not
    /// name them, or classes denied to them).
    fn scopes_for(&self, requester: &[String]) -> Vec<String> {
        if !self.names(requester) {
            return Vec::new();
        }
        let denied: BTreeSet<&str> = self
            .denials
            .iter()
            .filter(|d| d.actors.is_empty() || requester.iter().any(|r| d.actors.contains(r)))
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

/// The `patient/` scopes the consents in force at `now` grant `requester` (their references:
/// fhirUser, PractitionerRoles, Organizations, the app) on their patients' records.
pub fn consented_scopes(grants: &[ConsentGrant], requester: &[String], now: i64) -> Scopes {
    grants
        .iter()
        .filter(|g| g.in_force(now))
        .flat_map(|g| g.scopes_for(requester))
        .filter_map(|text| Scope::parse(&text).ok())
        .collect()
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

fn actor_references(provision: &Value) -> BTreeSet<String> {
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
    fn malformed_consents_are_errors() {
        let mut c = consent("active", &["READ_FULL"], &[], json!({}));
        c["provision"]["type"] = json!("deny");
        assert!(ConsentGrant::from_resource(&c).is_err());
        let none = consent("active", &["ALL_OF_IT"], &[], json!({}));
        assert!(ConsentGrant::from_resource(&none).is_err());
        assert!(ConsentGrant::from_resource(&json!({"resourceType": "Patient"})).is_err());
    }
}
