//! Confining `patient/` scopes to the patient in context: which resources count as that
//! patient's records, and what each interaction must then check.
//!
//! The Patient CompartmentDefinition (R4) lists, per type, the reference search parameters that
//! put a resource in a patient's compartment (`fhir-profiles` loads it; callers pass the list in,
//! this crate knows no definitions). A patient token is confined to the records **about** the
//! patient: the one parameter that names whom the record is about (`patient`, else `subject`,
//! else `beneficiary`, `individual`, `member`, `actor`, else the first listed). The other
//! parameters (`performer`, `author`, `asserter`, `recorder`, ...) name resources the patient
//! took part in but that may be about someone else; they do not open them. One parameter per type
//! also lets a search be narrowed by one `param=Patient/{id}` pair, so a search returns exactly
//! what reads of the same resources allow.
//!
//! - `Patient` is confined by its id: only `Patient/{patient}` itself.
//! - A type outside the compartment with a `patient` reference parameter (Device, Contract,
//!   GuidanceResponse) is confined by it like a compartment type.
//! - Types that may hold patient data but that no parameter ties to a patient ([`UNCONFINABLE`]:
//!   Binary, Bundle, ...) are read by id only (their ids are unguessable and reached through the
//!   patient's records, e.g. a DocumentReference's attachment); searching them is refused.
//! - Every other type is shared data (Practitioner, Organization, Location, Medication, ...):
//!   read and searched as the scopes allow, never written with a patient token.

use crate::scope::Interaction;

/// Types that may hold patient data without a search parameter that ties them to one patient.
pub const UNCONFINABLE: &[&str] = &[
    "Binary",
    "Bundle",
    "EnrollmentResponse",
    "Linkage",
    "MessageHeader",
    "PaymentNotice",
    "PaymentReconciliation",
    "VerificationResult",
];

/// The compartment parameters that name whom a record is about, most specific first.
const ABOUT: [&str; 6] = [
    "patient",
    "subject",
    "beneficiary",
    "individual",
    "member",
    "actor",
];

/// How a resource type is tied to a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confinement {
    /// `Patient`: only the patient's own resource, by id.
    Owner,
    /// The reference search parameter naming the patient the record is about.
    Param(String),
    /// Shared data, about no one patient.
    Shared,
    /// May hold patient data, but nothing ties it to a patient: read by id only.
    Unconfinable,
}

/// How `resource_type` is confined, from its compartment parameters (empty: not in the Patient
/// compartment) and whether it has a `patient` reference search parameter.
pub fn confinement(
    resource_type: &str,
    compartment_params: &[String],
    has_patient_param: bool,
) -> Confinement {
    if resource_type == "Patient" {
        return Confinement::Owner;
    }
    if let Some(first) = compartment_params.first() {
        let about = ABOUT
            .iter()
            .find(|p| compartment_params.iter().any(|c| c == *p))
            .map_or_else(|| first.clone(), |p| (*p).to_string());
        return Confinement::Param(about);
    }
    if has_patient_param {
        return Confinement::Param("patient".into());
    }
    if UNCONFINABLE.contains(&resource_type) {
        return Confinement::Unconfinable;
    }
    Confinement::Shared
}

impl Confinement {
    /// The search pair that keeps only the patient's records: `_id={patient}` for Patient,
    /// `{param}=Patient/{patient}` otherwise; `None` for types that are not confined.
    pub fn pair(&self, patient: &str) -> Option<(String, String)> {
        match self {
            Confinement::Owner => Some(("_id".into(), patient.into())),
            Confinement::Param(p) => Some((p.clone(), format!("Patient/{patient}"))),
            Confinement::Shared | Confinement::Unconfinable => None,
        }
    }

    /// Whether the type is tied to patients (its resources belong to one patient or another).
    pub fn is_confined(&self) -> bool {
        matches!(self, Confinement::Owner | Confinement::Param(_))
    }
}

/// Whether the references a resource has at its confining parameter (`(type, id)` pairs) make
/// it the patient's. To read it, one of them must name `Patient/{patient}`: the same test a
/// search narrowed by `{param}=Patient/{patient}` applies, so reads and searches agree. To write
/// it (`exclusive`), none may name another Patient either: a patient cannot put a record about
/// someone else into the store (an Appointment with another patient as actor, say).
pub fn names_patient<'a>(
    references: impl IntoIterator<Item = (&'a str, &'a str)>,
    patient: &str,
    exclusive: bool,
) -> bool {
    let mut named = false;
    for (ty, id) in references {
        if ty == "Patient" {
            if id == patient {
                named = true;
            } else if exclusive {
                return false;
            }
        }
    }
    named
}

/// When the instance a request names must be one of the patient's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// A read: otherwise 404, as if it did not exist (it may be another patient's).
    ToRead,
    /// A write: otherwise 403; a write to what does not exist is refused too, so that the
    /// answer does not tell another patient's resource from an absent one.
    ToWrite,
    /// An update: the stored version, if there is one, must be the patient's (403 otherwise);
    /// an update that creates is judged by its body.
    ToReplace,
}

/// What confining an allowed interaction to the patient's records requires.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Confined {
    /// ANDed into a search, or into the criteria of a conditional write.
    pub narrow: Option<(String, String)>,
    /// The instance named by the request must be the patient's.
    pub member: Option<Membership>,
    /// The resource in the request body must be the patient's.
    pub body: bool,
}

/// What `interaction` on a type of `confinement` needs under a patient token
/// (`conditional`: a write whose target is given by search criteria); `Err` = refused, why.
///
/// Type and system history and system search span every patient: refused rather than filtered
/// (a patient app searches by type). A patch of a record other than the Patient resource is
/// refused: its result cannot be checked before it is written (use update).
pub fn confine(
    confinement: &Confinement,
    interaction: Interaction,
    conditional: bool,
    patient: &str,
) -> Result<Confined, String> {
    use Interaction::*;
    let narrow = confinement.pair(patient);
    let shown = match confinement {
        Confinement::Owner => "Patient".to_string(),
        _ => "this type".to_string(),
    };
    match (confinement, interaction) {
        (_, SearchSystem | HistorySystem) => Err(
            "a patient-level token cannot search or list history across all types; search one type at a time"
                .into(),
        ),
        (_, Operation) => Err("operations are decided on their own".into()),
        (Confinement::Shared, Read | Vread | HistoryInstance | SearchType | HistoryType) => {
            Ok(Confined::default())
        }
        (Confinement::Unconfinable, Read | Vread | HistoryInstance) => Ok(Confined::default()),
        (Confinement::Unconfinable, SearchType | HistoryType) => Err(
            "nothing ties resources of this type to a patient, so a patient-level token reads them by id only"
                .into(),
        ),
        (Confinement::Shared | Confinement::Unconfinable, _) => Err(
            "a patient-level token writes only the patient's own records, and resources of this type are not about one patient"
                .into(),
        ),
        (_, HistoryType) => Err(format!(
            "the history of {shown} spans every patient; a patient-level token reads the history of one resource at a time"
        )),
        (_, Read | Vread | HistoryInstance) => Ok(Confined {
            narrow: None,
            member: Some(Membership::ToRead),
            body: false,
        }),
        (_, SearchType) => Ok(Confined {
            narrow,
            member: None,
            body: false,
        }),
        (Confinement::Owner, Create) => {
            Err("a patient-level token cannot create Patient resources".into())
        }
        (Confinement::Param(_), Patch) => Err(
            "a patient-level token cannot patch this type: the patched resource could leave the patient's records before it can be checked; use update (PUT)"
                .into(),
        ),
        (_, Create) => Ok(Confined {
            narrow: None,
            member: None,
            body: true,
        }),
        (_, Update | Patch | Delete) if conditional => Ok(Confined {
            narrow,
            member: None,
            body: interaction == Update,
        }),
        (_, Update) => Ok(Confined {
            narrow: None,
            member: Some(Membership::ToReplace),
            body: true,
        }),
        (_, Patch | Delete) => Ok(Confined {
            narrow: None,
            member: Some(Membership::ToWrite),
            body: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_parameter_naming_whom_a_record_is_about() {
        let cases: [(&str, &[&str], bool, Confinement); 11] = [
            ("Patient", &["link"], false, Confinement::Owner),
            (
                "Observation",
                &["subject", "performer"],
                true,
                Confinement::Param("subject".into()),
            ),
            (
                "Condition",
                &["patient", "asserter"],
                true,
                Confinement::Param("patient".into()),
            ),
            (
                "MedicationDispense",
                &["subject", "patient", "receiver"],
                true,
                Confinement::Param("patient".into()),
            ),
            (
                "Coverage",
                &["policy-holder", "subscriber", "beneficiary", "payor"],
                true,
                Confinement::Param("beneficiary".into()),
            ),
            (
                "Appointment",
                &["actor"],
                true,
                Confinement::Param("actor".into()),
            ),
            (
                "Group",
                &["member"],
                false,
                Confinement::Param("member".into()),
            ),
            ("Device", &[], true, Confinement::Param("patient".into())),
            ("Binary", &[], false, Confinement::Unconfinable),
            ("Practitioner", &[], false, Confinement::Shared),
            ("Medication", &[], false, Confinement::Shared),
        ];
        for (ty, compartment, has_patient, expected) in cases {
            assert_eq!(
                confinement(ty, &params(compartment), has_patient),
                expected,
                "{ty}"
            );
        }
        assert_eq!(
            Confinement::Owner.pair("p1"),
            Some(("_id".into(), "p1".into()))
        );
        assert_eq!(
            Confinement::Param("subject".into()).pair("p1"),
            Some(("subject".into(), "Patient/p1".into()))
        );
        assert_eq!(Confinement::Shared.pair("p1"), None);
    }

    #[test]
    fn a_record_is_the_patients_when_it_names_them() {
        for exclusive in [false, true] {
            assert!(names_patient([("Patient", "p1")], "p1", exclusive));
            assert!(names_patient(
                [("Practitioner", "d"), ("Patient", "p1")],
                "p1",
                exclusive
            ));
            assert!(!names_patient([("Patient", "p2")], "p1", exclusive));
            assert!(!names_patient([("Group", "p1")], "p1", exclusive));
            assert!(!names_patient([], "p1", exclusive));
        }
        // A record naming another patient too: readable, not writable.
        let both = [("Patient", "p1"), ("Patient", "p2")];
        assert!(names_patient(both, "p1", false));
        assert!(!names_patient(both, "p1", true));
    }

    #[test]
    fn what_each_interaction_checks() {
        use Interaction::*;
        let obs = Confinement::Param("subject".into());
        let pair = Some(("subject".to_string(), "Patient/p1".to_string()));
        let ok = |narrow: Option<(String, String)>, member, body| Confined {
            narrow,
            member,
            body,
        };
        let cases = [
            (
                &obs,
                Read,
                false,
                Ok(ok(None, Some(Membership::ToRead), false)),
            ),
            (
                &obs,
                Vread,
                false,
                Ok(ok(None, Some(Membership::ToRead), false)),
            ),
            (&obs, SearchType, false, Ok(ok(pair.clone(), None, false))),
            (&obs, Create, false, Ok(ok(None, None, true))),
            (
                &obs,
                Update,
                false,
                Ok(ok(None, Some(Membership::ToReplace), true)),
            ),
            (&obs, Update, true, Ok(ok(pair.clone(), None, true))),
            (&obs, Delete, true, Ok(ok(pair.clone(), None, false))),
            (
                &obs,
                Delete,
                false,
                Ok(ok(None, Some(Membership::ToWrite), false)),
            ),
            (
                &Confinement::Owner,
                Patch,
                false,
                Ok(ok(None, Some(Membership::ToWrite), false)),
            ),
            (
                &Confinement::Shared,
                SearchType,
                false,
                Ok(ok(None, None, false)),
            ),
            (
                &Confinement::Unconfinable,
                Read,
                false,
                Ok(ok(None, None, false)),
            ),
        ];
        for (c, i, conditional, expected) in cases {
            assert_eq!(confine(c, i, conditional, "p1"), expected, "{c:?} {i:?}");
        }
        let refused = [
            (&obs, Patch, false),
            (&obs, Patch, true),
            (&obs, HistoryType, false),
            (&obs, SearchSystem, false),
            (&obs, HistorySystem, false),
            (&Confinement::Owner, Create, false),
            (&Confinement::Shared, Create, false),
            (&Confinement::Shared, Update, false),
            (&Confinement::Shared, Delete, true),
            (&Confinement::Unconfinable, SearchType, false),
            (&Confinement::Unconfinable, Update, false),
        ];
        for (c, i, conditional) in refused {
            assert!(
                confine(c, i, conditional, "p1").is_err(),
                "{c:?} {i:?} {conditional}"
            );
        }
    }
}
