//! The resource server's decisions: what a verified token may do with one FHIR request.
//!
//! - **Levels.** A token's `system/`, `user/` and `patient/` scopes are each a *level*
//!   ([`token_levels`]). `system/` and `user/` scopes are enforced alike: their letters and their
//!   granular conditions, on every type; patients' consents narrow people's tokens further
//!   (applied by the resource server before these decisions). `patient/`
//!   scopes need the token's `patient` (else every request is refused) and are confined to that
//!   patient's records ([`crate::compartment`]).
//! - **Mixed tokens.** A request is decided by each level the token has, and allowed when one
//!   of them allows it: the union. A level that allows it without narrowing wins; reads allowed
//!   only in narrowed form by several levels pass when any of them passes; a search that several
//!   levels allow only in differently narrowed forms is refused, because one search cannot
//!   express their union (split it, or use a token with one level).

use crate::scope::{Conditions, Decision, Interaction, Level, OperationTarget, Scopes};

/// The levels a token's clinical scopes use, widest first (`system`, `user`, `patient`).
///
/// `Err` explains why the token cannot be used at all: `patient/` scopes without a patient in
/// context, or no clinical scope.
pub fn token_levels(scopes: &Scopes, patient: Option<&str>) -> Result<Vec<Level>, String> {
    let levels: Vec<Level> = [Level::System, Level::User, Level::Patient]
        .into_iter()
        .filter(|l| scopes.has_level(*l))
        .collect();
    if levels.contains(&Level::Patient) && patient.is_none_or(str::is_empty) {
        return Err(
            "the token has patient/ scopes but no patient in context: patient-level access is confined to one patient's records, so the token must name the patient (request launch/patient)"
                .into(),
        );
    }
    if levels.is_empty() {
        return Err("the token has no patient/, user/ or system/ scopes".into());
    }
    Ok(levels)
}

/// What the token's scopes of `level` permit for `interaction` on `resource_type` (`*` = every
/// type).
pub fn authorize_request(
    scopes: &Scopes,
    level: Level,
    interaction: Interaction,
    resource_type: &str,
) -> Decision {
    scopes.decide(level, resource_type, interaction)
}

/// What the token's scopes of `level` permit for invoking operation `name` on `target`.
pub fn authorize_operation(
    scopes: &Scopes,
    level: Level,
    name: &str,
    target: OperationTarget<'_>,
) -> Decision {
    scopes.decide_operation(level, name, target)
}

/// The scope (one per level, joined by "or") that would permit `interaction` on
/// `resource_type`, for the 403 message.
pub fn missing_scope(levels: &[Level], interaction: Interaction, resource_type: &str) -> String {
    let letters = match interaction.permission() {
        Some(p) => p.letter().to_string(),
        None => "*".to_string(),
    };
    let levels = if levels.is_empty() {
        &[Level::System][..]
    } else {
        levels
    };
    levels
        .iter()
        .map(|l| format!("{l}/{resource_type}.{letters}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The one AND-set a restricted search is narrowed by; `None` when the decision is an OR of
/// several sets, which one search URL cannot express (the caller denies rather than widen).
pub fn single_condition_set(decision: &Decision) -> Option<Conditions> {
    match decision {
        Decision::Unrestricted => Some(Vec::new()),
        Decision::Restricted(sets) if sets.len() == 1 => Some(sets[0].clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(text: &str) -> Scopes {
        Scopes::parse(text).unwrap()
    }

    #[test]
    fn each_interaction_needs_its_letter_at_its_level() {
        let s = scopes("system/Patient.rs");
        for i in [
            Interaction::Read,
            Interaction::Vread,
            Interaction::HistoryInstance,
            Interaction::SearchType,
            Interaction::HistoryType,
        ] {
            assert!(
                authorize_request(&s, Level::System, i, "Patient").is_unrestricted(),
                "{i:?}"
            );
            assert!(
                authorize_request(&s, Level::User, i, "Patient").is_denied(),
                "{i:?}"
            );
        }
        for i in [
            Interaction::Create,
            Interaction::Update,
            Interaction::Patch,
            Interaction::Delete,
        ] {
            assert!(
                authorize_request(&s, Level::System, i, "Patient").is_denied(),
                "{i:?}"
            );
        }
        let user = scopes("user/*.cruds patient/Observation.r");
        assert!(
            authorize_request(&user, Level::User, Interaction::Delete, "Condition")
                .is_unrestricted()
        );
        assert!(
            authorize_request(
                &user,
                Level::Patient,
                Interaction::SearchType,
                "Observation"
            )
            .is_denied()
        );
        assert!(
            authorize_request(&user, Level::Patient, Interaction::Read, "Observation")
                .is_unrestricted()
        );
        assert_eq!(
            missing_scope(&[Level::System], Interaction::Create, "Patient"),
            "system/Patient.c"
        );
        assert_eq!(
            missing_scope(
                &[Level::User, Level::Patient],
                Interaction::SearchType,
                "Condition"
            ),
            "user/Condition.s or patient/Condition.s"
        );
    }

    #[test]
    fn v1_scopes_read_and_search() {
        let s = scopes("patient/Observation.read");
        for i in [Interaction::Read, Interaction::SearchType] {
            assert!(authorize_request(&s, Level::Patient, i, "Observation").is_unrestricted());
        }
        assert!(
            authorize_request(&s, Level::Patient, Interaction::Create, "Observation").is_denied()
        );
    }

    #[test]
    fn granular_scopes_give_one_set_or_none() {
        let one = authorize_request(
            &scopes("patient/Observation.rs?category=laboratory"),
            Level::Patient,
            Interaction::SearchType,
            "Observation",
        );
        assert_eq!(
            single_condition_set(&one),
            Some(vec![("category".into(), "laboratory".into())])
        );
        let two = authorize_request(
            &scopes(
                "system/Observation.rs?category=laboratory system/Observation.rs?category=vital-signs",
            ),
            Level::System,
            Interaction::SearchType,
            "Observation",
        );
        assert_eq!(single_condition_set(&two), None);
        assert_eq!(single_condition_set(&Decision::Denied), None);
    }

    #[test]
    fn levels_of_a_token() {
        let levels = |s: &str, p: Option<&str>| token_levels(&scopes(s), p);
        assert_eq!(levels("system/*.rs", None), Ok(vec![Level::System]));
        assert_eq!(
            levels("patient/*.rs openid", Some("p1")),
            Ok(vec![Level::Patient])
        );
        assert_eq!(
            levels("patient/*.rs user/Practitioner.rs", Some("p1")),
            Ok(vec![Level::User, Level::Patient])
        );
        assert_eq!(levels("user/*.rs", None), Ok(vec![Level::User]));
        let e = levels("patient/*.rs", None).unwrap_err();
        assert!(e.contains("no patient in context"), "{e}");
        assert!(levels("patient/*.rs", Some("")).is_err());
        assert!(levels("user/*.rs patient/Observation.rs", None).is_err());
        assert!(levels("openid fhirUser", None).is_err());
    }
}
