//! The resource server's decisions: what a verified token may do with one FHIR request.
//!
//! Only system-level (backend) scopes are honoured for now: patient- and user-level tokens come
//! with the authorization-code flow and consents, and are refused until then.

use crate::scope::{Conditions, Decision, Interaction, Level, OperationTarget, Scopes};

/// Why a token cannot be used on the FHIR API at all, whatever the request.
pub fn unsupported_token(scopes: &Scopes) -> Option<String> {
    let levels: Vec<&str> = [Level::Patient, Level::User]
        .into_iter()
        .filter(|l| scopes.has_level(*l))
        .map(Level::as_str)
        .collect();
    if levels.is_empty() {
        return None;
    }
    Some(format!(
        "{}-level scopes are not honoured yet (they arrive with the authorization-code flow and consents); use a backend token with system/ scopes",
        levels.join(" and ")
    ))
}

/// What the token's `system/` scopes permit for `interaction` on `resource_type` (`*` = every type).
pub fn authorize_request(
    scopes: &Scopes,
    interaction: Interaction,
    resource_type: &str,
) -> Decision {
    scopes.decide(Level::System, resource_type, interaction)
}

/// What the token's `system/` scopes permit for invoking operation `name` on `target`.
pub fn authorize_operation(scopes: &Scopes, name: &str, target: OperationTarget<'_>) -> Decision {
    scopes.decide_operation(Level::System, name, target)
}

/// The scope that would permit `interaction` on `resource_type`, for the 403 message.
pub fn missing_scope(interaction: Interaction, resource_type: &str) -> String {
    match interaction.permission() {
        Some(p) => format!("system/{resource_type}.{}", p.letter()),
        None => format!("system/{resource_type}.*"),
    }
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
    fn each_interaction_needs_its_letter() {
        let s = scopes("system/Patient.rs");
        for i in [
            Interaction::Read,
            Interaction::Vread,
            Interaction::HistoryInstance,
            Interaction::SearchType,
            Interaction::HistoryType,
        ] {
            assert!(
                authorize_request(&s, i, "Patient").is_unrestricted(),
                "{i:?}"
            );
        }
        for i in [
            Interaction::Create,
            Interaction::Update,
            Interaction::Patch,
            Interaction::Delete,
        ] {
            assert!(authorize_request(&s, i, "Patient").is_denied(), "{i:?}");
        }
        assert!(authorize_request(&s, Interaction::SearchType, "Observation").is_denied());
        assert!(authorize_request(&s, Interaction::SearchSystem, "*").is_denied());
        assert!(
            authorize_request(&scopes("system/*.cruds"), Interaction::SearchSystem, "*")
                .is_unrestricted()
        );
        assert_eq!(
            missing_scope(Interaction::Create, "Patient"),
            "system/Patient.c"
        );
    }

    #[test]
    fn granular_scopes_give_one_set_or_none() {
        let one = authorize_request(
            &scopes("system/Observation.rs?category=laboratory"),
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
            Interaction::SearchType,
            "Observation",
        );
        assert_eq!(single_condition_set(&two), None);
        assert_eq!(single_condition_set(&Decision::Denied), None);
    }

    #[test]
    fn patient_and_user_tokens_are_refused() {
        assert!(unsupported_token(&scopes("system/*.rs")).is_none());
        assert!(unsupported_token(&scopes("patient/*.rs")).is_some());
        assert!(unsupported_token(&scopes("user/Patient.r system/*.rs")).is_some());
    }
}
