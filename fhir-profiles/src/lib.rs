//! The FHIR R4 (4.0.1) definitions that CuraNet serves and enforces, loaded once into an index.
//!
//! The official definitions are vendored compressed under `definitions/`; CuraNet's own conformance
//! resources (the Health ID NamingSystem, ...) live under `curanet/`. [`Definitions::load`] builds the
//! typed index the rest of the server uses: element trees, search parameters, the Patient
//! compartment and the codes of every required binding.

mod compartment;
mod elements;
mod loader;
mod search_parameters;
mod value_sets;

pub use compartment::PatientCompartment;
pub use elements::{Child, ElementDefinition, Max, TypeDefinition, TypeKind};
pub use search_parameters::{SearchParamType, SearchParameter};
pub use value_sets::ValueSetCodes;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The FHIR version these definitions describe.
pub const FHIR_VERSION: &str = "4.0.1";

/// Errors while loading the vendored definitions (a build defect, never a user error).
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    #[error("cannot decompress {file}: {source}")]
    Decompress {
        file: &'static str,
        source: std::io::Error,
    },
    #[error("cannot parse {file}: {source}")]
    Parse {
        file: &'static str,
        source: serde_json::Error,
    },
}

/// The loaded index of every definition the server enforces.
#[derive(Debug)]
pub struct Definitions {
    types: HashMap<String, TypeDefinition>,
    resource_types: Vec<String>,
    search_parameters: HashMap<String, Vec<SearchParameter>>,
    compartment: PatientCompartment,
    value_sets: HashMap<String, ValueSetCodes>,
}

impl Definitions {
    /// Loads and indexes the vendored definitions (decompression and parsing run on two threads).
    pub fn load() -> Result<Self, DefinitionsError> {
        loader::load()
    }

    /// The process-wide shared index, loaded on first use.
    pub fn shared() -> Arc<Definitions> {
        static SHARED: OnceLock<Arc<Definitions>> = OnceLock::new();
        SHARED
            .get_or_init(|| Arc::new(Definitions::load().expect("vendored FHIR definitions load")))
            .clone()
    }

    /// The definition of a resource, complex or primitive type by name (`Patient`, `HumanName`, `date`).
    pub fn type_definition(&self, name: &str) -> Option<&TypeDefinition> {
        self.types.get(name)
    }

    /// Whether `name` is a concrete (non-abstract) resource type.
    pub fn is_resource_type(&self, name: &str) -> bool {
        self.resource_types
            .binary_search_by(|t| t.as_str().cmp(name))
            .is_ok()
    }

    /// Every concrete resource type, sorted by name.
    pub fn resource_types(&self) -> &[String] {
        &self.resource_types
    }

    /// The search parameters that apply to a resource type (its own and those of Resource/DomainResource).
    pub fn search_parameters(&self, resource_type: &str) -> &[SearchParameter] {
        self.search_parameters
            .get(resource_type)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The Patient compartment definition.
    pub fn patient_compartment(&self) -> &PatientCompartment {
        &self.compartment
    }

    /// The codes of a required-binding value set, when it can be expanded from the definitions.
    pub fn value_set(&self, url: &str) -> Option<&ValueSetCodes> {
        let url = url.split('|').next().unwrap_or(url);
        self.value_sets.get(url)
    }
}

/// CuraNet's own conformance resources (JSON), served by the server and documented in the README.
pub mod curanet {
    /// The system URI of the CuraNet Health ID identifier.
    pub const HEALTH_ID_SYSTEM: &str = "https://curanet.in/fhir/sid/health-id";

    /// The NamingSystem that documents the Health ID format and its check algorithm.
    pub const HEALTH_ID_NAMING_SYSTEM: &str =
        include_str!("../curanet/NamingSystem-health-id.json");

    /// The CodeSystem of consent grant levels (READ_BASIC, READ_FULL, WRITE, DELETE).
    pub const CONSENT_GRANT_LEVELS: &str =
        include_str!("../curanet/CodeSystem-consent-grant-level.json");

    /// The ValueSet of every consent grant level.
    pub const CONSENT_GRANT_LEVEL_VALUE_SET: &str =
        include_str!("../curanet/ValueSet-consent-grant-level.json");

    /// The CuraNetConsent profile of Consent.
    pub const CONSENT_PROFILE: &str =
        include_str!("../curanet/StructureDefinition-curanet-consent.json");

    /// The extension holding a clinician's message with a consent request.
    pub const CONSENT_REQUEST_MESSAGE: &str =
        include_str!("../curanet/StructureDefinition-consent-request-message.json");

    /// The extension holding why emergency (break-the-glass) access was claimed.
    pub const CONSENT_BREAK_GLASS_REASON: &str =
        include_str!("../curanet/StructureDefinition-consent-break-glass-reason.json");

    /// The extension holding why a patient revoked a consent.
    pub const CONSENT_REVOCATION_REASON: &str =
        include_str!("../curanet/StructureDefinition-consent-revocation-reason.json");

    /// The CodeSystem of the consent notifications to patients (Communication.category).
    pub const CONSENT_NOTIFICATIONS: &str =
        include_str!("../curanet/CodeSystem-consent-notification.json");

    /// All of CuraNet's own conformance resources, as JSON texts.
    pub fn resources() -> [&'static str; 8] {
        [
            HEALTH_ID_NAMING_SYSTEM,
            CONSENT_GRANT_LEVELS,
            CONSENT_GRANT_LEVEL_VALUE_SET,
            CONSENT_PROFILE,
            CONSENT_REQUEST_MESSAGE,
            CONSENT_BREAK_GLASS_REASON,
            CONSENT_REVOCATION_REASON,
            CONSENT_NOTIFICATIONS,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_every_concrete_resource_type() {
        let defs = Definitions::shared();
        assert_eq!(defs.resource_types().len(), 147);
        assert!(defs.is_resource_type("Patient"));
        assert!(defs.is_resource_type("Observation"));
        assert!(!defs.is_resource_type("DomainResource"));
        assert!(!defs.is_resource_type("HumanName"));
    }

    #[test]
    fn indexes_children_and_choice_types() {
        let defs = Definitions::shared();
        let obs = defs.type_definition("Observation").unwrap();
        let status = obs.child("Observation", "status").unwrap();
        assert_eq!(status.type_code.as_deref(), Some("code"));
        let el = obs.element(status.element);
        assert_eq!((el.min, el.max), (1, Max::One));
        assert!(el.required_binding.is_some());
        let vq = obs.child("Observation", "valueQuantity").unwrap();
        assert_eq!(vq.type_code.as_deref(), Some("Quantity"));
        assert!(obs.child("Observation", "valueBogus").is_none());
        let comp = obs.child("Observation", "component").unwrap();
        assert_eq!(obs.element(comp.element).max, Max::Unbounded);
        assert!(obs.child("Observation.component", "code").is_some());
    }

    #[test]
    fn content_references_point_to_their_target() {
        let defs = Definitions::shared();
        let q = defs.type_definition("Questionnaire").unwrap();
        let item = q.child("Questionnaire.item", "item").unwrap();
        assert_eq!(
            q.element(item.element).content_reference.as_deref(),
            Some("Questionnaire.item")
        );
    }

    #[test]
    fn expands_required_value_sets() {
        let defs = Definitions::shared();
        let vs = defs
            .value_set("http://hl7.org/fhir/ValueSet/observation-status|4.0.1")
            .unwrap();
        assert!(vs.contains_code("final"));
        assert!(!vs.contains_code("bogus"));
        let gender = defs
            .value_set("http://hl7.org/fhir/ValueSet/administrative-gender")
            .unwrap();
        assert!(gender.contains("http://hl7.org/fhir/administrative-gender", "female"));
    }

    #[test]
    fn search_parameters_and_compartment() {
        let defs = Definitions::shared();
        let obs = defs.search_parameters("Observation");
        assert!(
            obs.iter()
                .any(|p| p.code == "code" && p.kind == SearchParamType::Token)
        );
        assert!(obs.iter().any(|p| p.code == "_id"));
        let total: usize = defs
            .resource_types()
            .iter()
            .map(|t| defs.search_parameters(t).len())
            .sum();
        assert!(total > 1300, "{total}");
        assert!(
            defs.patient_compartment()
                .params("Observation")
                .contains(&"subject".to_string())
        );
        assert!(defs.patient_compartment().params("Organization").is_empty());
    }

    #[test]
    fn curanet_resources_are_json_with_ids_and_canonical_urls() {
        let types: Vec<String> = curanet::resources()
            .iter()
            .map(|text| {
                let v: serde_json::Value = serde_json::from_str(text).unwrap();
                assert!(
                    v["id"]
                        .as_str()
                        .is_some_and(|id| id.starts_with("curanet-"))
                );
                if v["resourceType"] != "NamingSystem" {
                    let url = v["url"].as_str().unwrap();
                    assert!(url.starts_with("https://curanet.in/fhir/"), "{url}");
                }
                v["resourceType"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            types,
            [
                "NamingSystem",
                "CodeSystem",
                "ValueSet",
                "StructureDefinition",
                "StructureDefinition",
                "StructureDefinition",
                "StructureDefinition",
                "CodeSystem"
            ]
        );
    }
}
