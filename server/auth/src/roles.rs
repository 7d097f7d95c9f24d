//! What each account role may ever be granted: the ceiling that requested SMART scopes are
//! intersected with, whoever asks (a third-party app or CuraNet's own clients). Consents narrow
//! clinicians further at request time; roles only bound what a token can carry.

use curanet_storage::Role;

use crate::scope::{Scope, Scopes};

/// Scopes about identity, launch context and refresh, which every role may be granted.
const IDENTITY_AND_CONTEXT: &str =
    "openid fhirUser profile launch launch/patient launch/encounter offline_access online_access";

/// The clinical scopes of a role (both levels where the role acts at both).
fn clinical_ceiling(role: Role) -> &'static str {
    match role {
        // A patient reads everything in their compartment, and writes their consents and the
        // demographics of their own Patient resource.
        Role::Patient => "patient/*.rs patient/Consent.cu patient/Patient.u",
        Role::Doctor | Role::Admin => "patient/*.cruds user/*.cruds",
        // Pharmacy staff see what dispensing needs and record dispenses; they update a
        // prescription's status (completed, on hold with a reason) but never write a new one.
        Role::Pharmacist => {
            "patient/Patient.rs patient/MedicationRequest.rus patient/MedicationDispense.cruds \
             patient/Medication.rs patient/AllergyIntolerance.rs \
             user/Patient.rs user/MedicationRequest.rus user/MedicationDispense.cruds \
             user/Medication.rs user/AllergyIntolerance.rs user/Organization.rs \
             user/Practitioner.rs user/PractitionerRole.rs"
        }
    }
}

/// Everything a role may be granted.
pub fn ceiling(role: Role) -> Scopes {
    let text = format!("{} {IDENTITY_AND_CONTEXT}", clinical_ceiling(role));
    Scopes::parse(&text).expect("the role ceilings are valid scopes")
}

/// The part of `requested` that an account of `role` may be granted. A patient's `user/`
/// scopes become `patient/` scopes: a patient acting as a user still sees only their own record.
pub fn grantable(role: Role, requested: &Scopes) -> Scopes {
    let requested: Scopes = if role == Role::Patient {
        at_patient_level(requested)
    } else {
        requested.clone()
    };
    requested.intersect(&ceiling(role))
}

/// The scopes with every `user/X.p` as `patient/X.p` (the others unchanged): what a user-level
/// grant means for one patient's records.
pub fn at_patient_level(scopes: &Scopes) -> Scopes {
    scopes.iter().map(patient_level).collect()
}

/// `user/X.p` as `patient/X.p`; any other scope unchanged.
fn patient_level(scope: &Scope) -> Scope {
    let text = scope.to_string();
    match text.strip_prefix("user/") {
        Some(rest) => Scope::parse(&format!("patient/{rest}")).unwrap_or_else(|_| scope.clone()),
        None => scope.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(role: Role, requested: &str) -> String {
        grantable(role, &Scopes::parse(requested).unwrap()).to_string()
    }

    #[test]
    fn each_role_is_bounded_by_its_ceiling() {
        let cases = [
            (
                Role::Patient,
                "patient/*.rs openid fhirUser",
                "patient/*.rs openid fhirUser",
            ),
            (
                Role::Patient,
                "patient/Observation.cruds",
                "patient/Observation.rs",
            ),
            (
                Role::Patient,
                "user/Observation.rs",
                "patient/Observation.rs",
            ),
            (Role::Patient, "system/*.rs", ""),
            (Role::Doctor, "user/*.cruds launch", "user/*.cruds launch"),
            (Role::Doctor, "system/Patient.rs", ""),
            (Role::Pharmacist, "user/Observation.rs", ""),
            (
                Role::Pharmacist,
                "user/MedicationDispense.cruds user/MedicationRequest.cruds",
                "user/MedicationDispense.cruds user/MedicationRequest.rus",
            ),
            (
                Role::Admin,
                "user/*.rs offline_access",
                "user/*.rs offline_access",
            ),
        ];
        for (role, requested, expected) in cases {
            assert_eq!(
                granted(role, requested),
                expected,
                "{role:?} asking {requested}"
            );
        }
    }

    #[test]
    fn granular_scopes_stay_granular() {
        let text = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
        assert_eq!(granted(Role::Patient, text), text);
    }
}
