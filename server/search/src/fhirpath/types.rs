//! FHIR type knowledge: element types from the R4 definitions, the type hierarchy and type tests.

use std::sync::{Arc, OnceLock};

use curanet_fhir_profiles::{Definitions, TypeDefinition};
use serde_json::Value;

use super::parser::{Namespace, TypeSpec};

/// The shared R4 definitions, loaded once per process.
pub(crate) fn defs() -> &'static Definitions {
    static DEFS: OnceLock<Arc<Definitions>> = OnceLock::new();
    DEFS.get_or_init(Definitions::shared)
}

/// The FHIR primitive type names, as they appear (capitalised) in choice property names.
const PRIMITIVES: &[&str] = &[
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
    "xhtml",
];

/// Complex types that specialise BackboneElement rather than Element in R4.
const BACKBONE_TYPES: &[&str] = &[
    "Dosage",
    "ElementDefinition",
    "MarketingStatus",
    "Population",
    "ProdCharacteristic",
    "ProductShelfLife",
    "SubstanceAmount",
    "Timing",
];

/// The type named by the suffix of a choice property (`Quantity` → `Quantity`,
/// `DateTime` → `dateTime`), when it is a known FHIR data type.
pub(crate) fn choice_suffix_type(suffix: &str) -> Option<&'static str> {
    let mut chars = suffix.chars();
    let first = chars.next()?;
    if !first.is_ascii_uppercase() {
        return None;
    }
    let rest = chars.as_str();
    if let Some(p) = PRIMITIVES
        .iter()
        .find(|p| p.as_bytes()[0] == first.to_ascii_lowercase() as u8 && &p[1..] == rest)
    {
        return Some(p);
    }
    let def = defs().type_definition(suffix)?;
    (def.kind != curanet_fhir_profiles::TypeKind::Resource).then_some(def.name.as_str())
}

/// The type of a child element from the definitions, and where its own children are defined.
pub(crate) fn child_type(
    def: &'static TypeDefinition,
    parent_path: &str,
    property: &str,
) -> (Option<&'static str>, Scope) {
    let Some(child) = def.child(parent_path, property) else {
        return (None, Scope::Untyped);
    };
    let element = def.element(child.element);
    if let Some(target) = &element.content_reference {
        return (
            Some("BackboneElement"),
            Scope::Backbone(def, target.as_str()),
        );
    }
    if let Some(type_code) = &child.type_code {
        return (Some(type_code.as_str()), Scope::Typed);
    }
    let type_name = element
        .types
        .first()
        .map_or("BackboneElement", String::as_str);
    (Some(type_name), Scope::Backbone(def, element.path.as_str()))
}

/// Whether the definitions declare `property` under `parent_path` as a choice (`value[x]`) element.
pub(crate) fn choice_type(
    def: &'static TypeDefinition,
    parent_path: &str,
    property: &str,
) -> Option<&'static str> {
    let child = def.child(parent_path, property)?;
    if !def.element(child.element).path.ends_with("[x]") {
        return None;
    }
    child.type_code.as_deref()
}

/// Where the children of an item are described.
#[derive(Clone, Copy)]
pub(crate) enum Scope {
    /// By the definition of the item's type name (or nowhere, for primitives and System values).
    Typed,
    /// By an inline (backbone) element of a type: the definition and the element path.
    Backbone(&'static TypeDefinition, &'static str),
    /// Unknown: children are navigated by JSON shape only.
    Untyped,
    /// The pseudo-resource returned by `resolve()`: it has no children.
    Resolved,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Typed => f.write_str("Typed"),
            Scope::Backbone(_, path) => write!(f, "Backbone({path})"),
            Scope::Untyped => f.write_str("Untyped"),
            Scope::Resolved => f.write_str("Resolved"),
        }
    }
}

/// The FHIRPath System type a FHIR or System type name maps to.
fn system_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "boolean" | "Boolean" => "Boolean",
        "string" | "code" | "id" | "markdown" | "uri" | "url" | "canonical" | "oid" | "uuid"
        | "base64Binary" | "xhtml" | "String" => "String",
        "integer" | "positiveInt" | "unsignedInt" | "Integer" => "Integer",
        "decimal" | "Decimal" => "Decimal",
        "date" | "Date" => "Date",
        "dateTime" | "instant" | "DateTime" => "DateTime",
        "time" | "Time" => "Time",
        _ => return None,
    })
}

fn is_system_name(name: &str) -> bool {
    matches!(
        name,
        "Boolean" | "String" | "Integer" | "Decimal" | "Date" | "DateTime" | "Time"
    )
}

/// The base type of a FHIR type (`code` → `string`, `Age` → `Quantity`, `Patient` → `DomainResource`).
fn fhir_parent(name: &str) -> Option<&'static str> {
    Some(match name {
        "Resource" | "Element" => return None,
        _ if is_system_name(name) => return None,
        "DomainResource" | "Bundle" | "Binary" | "Parameters" => "Resource",
        "code" | "id" | "markdown" => "string",
        "url" | "canonical" | "oid" | "uuid" => "uri",
        "positiveInt" | "unsignedInt" => "integer",
        "Age" | "Count" | "Distance" | "Duration" | "MoneyQuantity" | "SimpleQuantity" => {
            "Quantity"
        }
        _ if BACKBONE_TYPES.contains(&name) => "BackboneElement",
        _ if defs().is_resource_type(name) => "DomainResource",
        _ => "Element",
    })
}

/// Whether `actual` is `wanted` or one of its specialisations in the FHIR type hierarchy.
pub(crate) fn fhir_is_a(actual: &str, wanted: &str) -> bool {
    let mut current = actual;
    loop {
        if current == wanted {
            return true;
        }
        match fhir_parent(current) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
}

/// Whether an item of FHIR or System type `actual` matches a type specifier.
///
/// Unqualified names are FHIR types first (with the hierarchy: `Age` is a `Quantity`, `Patient`
/// is a `Resource`); a System name (`DateTime`, `String`, ...) matches the FHIR primitives that map
/// to it (`dateTime` and `instant` are `DateTime`), and a System-typed literal matches the FHIR
/// primitive names that map to its type.
pub(crate) fn type_matches(actual: &str, spec: &TypeSpec) -> bool {
    let wanted = spec.name.as_str();
    match spec.namespace {
        Some(Namespace::System) => system_type(actual) == Some(wanted) && is_system_name(wanted),
        Some(Namespace::Fhir) => fhir_is_a(actual, wanted),
        None => {
            fhir_is_a(actual, wanted)
                || (is_system_name(wanted) && system_type(actual) == Some(wanted))
                || (is_system_name(actual) && system_type(wanted) == Some(actual))
        }
    }
}

/// The type an untyped JSON value clearly has: a JSON boolean is a `boolean`, a number an
/// `integer` or `decimal` (by its text), a string a `string`; objects have no inferable type.
pub(crate) fn shape_type(value: &Value) -> Option<&'static str> {
    match value {
        Value::Bool(_) => Some("boolean"),
        Value::Number(n) => {
            let text = n.as_str();
            Some(if text.contains(['.', 'e', 'E']) {
                "decimal"
            } else {
                "integer"
            })
        }
        Value::String(_) => Some("string"),
        _ => None,
    }
}

/// Whether the type is a date/time type (FHIR or System), compared as partial date/times.
pub(crate) fn is_temporal(name: &str) -> bool {
    matches!(system_type(name), Some("Date" | "DateTime" | "Time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> TypeSpec {
        let (namespace, name) = match text.split_once('.') {
            Some(("FHIR", n)) => (Some(Namespace::Fhir), n),
            Some(("System", n)) => (Some(Namespace::System), n),
            _ => (None, text),
        };
        TypeSpec {
            namespace,
            name: name.to_string(),
        }
    }

    #[test]
    fn type_matching() {
        let cases = [
            ("Quantity", "Quantity", true),
            ("Age", "Quantity", true),
            ("Quantity", "Age", false),
            ("Patient", "Patient", true),
            ("Patient", "Resource", true),
            ("Patient", "DomainResource", true),
            ("Bundle", "DomainResource", false),
            ("Bundle", "Resource", true),
            ("Patient", "Observation", false),
            ("code", "string", true),
            ("string", "code", false),
            ("dateTime", "DateTime", true),
            ("instant", "DateTime", true),
            ("dateTime", "System.DateTime", true),
            ("dateTime", "FHIR.DateTime", false),
            ("date", "dateTime", false),
            ("String", "string", true),
            ("Boolean", "boolean", true),
            ("boolean", "Boolean", true),
            ("HumanName", "Element", true),
            ("BackboneElement", "Element", true),
            ("Timing", "BackboneElement", true),
            ("CodeableConcept", "Quantity", false),
            ("Reference", "FHIR.Reference", true),
            ("canonical", "uri", true),
            ("uri", "string", false),
        ];
        for (actual, wanted, expected) in cases {
            assert_eq!(
                type_matches(actual, &spec(wanted)),
                expected,
                "{actual} is {wanted}"
            );
        }
    }

    #[test]
    fn choice_suffixes() {
        assert_eq!(choice_suffix_type("Quantity"), Some("Quantity"));
        assert_eq!(choice_suffix_type("DateTime"), Some("dateTime"));
        assert_eq!(choice_suffix_type("String"), Some("string"));
        assert_eq!(choice_suffix_type("Base64Binary"), Some("base64Binary"));
        assert_eq!(choice_suffix_type("History"), None);
        assert_eq!(choice_suffix_type("Patient"), None);
        assert_eq!(choice_suffix_type("quantity"), None);
        assert_eq!(choice_suffix_type(""), None);
    }

    #[test]
    fn definitions_give_element_types() {
        let obs = defs().type_definition("Observation").unwrap();
        assert_eq!(
            child_type(obs, "Observation", "code").0,
            Some("CodeableConcept")
        );
        assert_eq!(child_type(obs, "Observation", "status").0, Some("code"));
        assert!(matches!(
            child_type(obs, "Observation", "component"),
            (
                Some("BackboneElement"),
                Scope::Backbone(_, "Observation.component")
            )
        ));
        assert_eq!(
            choice_type(obs, "Observation", "valueQuantity"),
            Some("Quantity")
        );
        assert_eq!(choice_type(obs, "Observation", "code"), None);
        let enc = defs().type_definition("Encounter").unwrap();
        assert_eq!(choice_type(enc, "Encounter", "classHistory"), None);
        let q = defs().type_definition("Questionnaire").unwrap();
        assert!(matches!(
            child_type(q, "Questionnaire.item", "item"),
            (_, Scope::Backbone(_, "Questionnaire.item"))
        ));
    }
}
