//! Reads the vendored, compressed definition bundles into the typed index.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::Deserialize;

use crate::elements::{ElementDefinition, Max, TypeDefinition, TypeKind};
use crate::search_parameters::{SearchParamType, SearchParameter};
use crate::value_sets::{CodeSystemConcepts, ValueSetCodes};
use crate::{Definitions, DefinitionsError, PatientCompartment};

const RESOURCES: &[u8] = include_bytes!("../definitions/profiles-resources.json.gz");
const TYPES: &[u8] = include_bytes!("../definitions/profiles-types.json.gz");
const SEARCH_PARAMETERS: &[u8] = include_bytes!("../definitions/search-parameters.json.gz");
const COMPARTMENT: &[u8] = include_bytes!("../definitions/compartmentdefinition-patient.json.gz");
const VALUE_SETS: &[u8] = include_bytes!("../definitions/valuesets.json.gz");

/// Only the fields of the definition resources that the index needs; serde skips the rest.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Raw {
    resource_type: String,
    id: String,
    url: String,
    kind: String,
    #[serde(rename = "abstract")]
    is_abstract: bool,
    derivation: String,
    snapshot: Option<Snapshot>,
    // SearchParameter
    code: String,
    base: Lenient<Vec<String>>,
    #[serde(rename = "type")]
    type_: Lenient<String>,
    expression: Option<String>,
    target: Lenient<Vec<String>>,
    component: Vec<RawComponent>,
    description: String,
    // ValueSet / CodeSystem
    compose: Option<Compose>,
    concept: Vec<Concept>,
    // CompartmentDefinition
    resource: Lenient<Vec<CompartmentResource>>,
    // Bundle
    entry: Vec<Entry>,
}

/// A field whose shape differs between resource types sharing `Raw` (e.g. `OperationDefinition.base`
/// is a string, `SearchParameter.base` a list): taken when it has the expected shape, else defaulted.
#[derive(Default)]
struct Lenient<T>(T);

impl<'de, T: serde::de::DeserializeOwned + Default> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(Lenient(serde_json::from_value(value).unwrap_or_default()))
    }
}

#[derive(Deserialize)]
struct Entry {
    resource: Raw,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Snapshot {
    element: Vec<RawElement>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawElement {
    path: String,
    min: u32,
    max: String,
    #[serde(rename = "type")]
    types: Vec<RawType>,
    binding: Option<RawBinding>,
    content_reference: Option<String>,
    is_summary: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawType {
    code: String,
    extension: Vec<RawExtension>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawExtension {
    url: String,
    value_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawBinding {
    strength: String,
    value_set: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawComponent {
    definition: String,
    expression: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Compose {
    include: Vec<Include>,
    exclude: Vec<Include>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Include {
    system: Option<String>,
    concept: Vec<Concept>,
    value_set: Vec<String>,
    filter: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Concept {
    code: String,
    concept: Vec<Concept>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CompartmentResource {
    code: String,
    param: Vec<String>,
}

fn parse(file: &'static str, gz: &[u8]) -> Result<Raw, DefinitionsError> {
    let mut text = Vec::with_capacity(gz.len() * 11);
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut text)
        .map_err(|source| DefinitionsError::Decompress { file, source })?;
    serde_json::from_slice(&text).map_err(|source| DefinitionsError::Parse { file, source })
}

pub(crate) fn load() -> Result<Definitions, DefinitionsError> {
    // The resource profiles are by far the largest file: parse them beside everything else.
    let (resources, rest) = std::thread::scope(|s| {
        let big = s.spawn(|| parse("profiles-resources.json.gz", RESOURCES));
        let rest = (|| {
            Ok::<_, DefinitionsError>((
                parse("profiles-types.json.gz", TYPES)?,
                parse("search-parameters.json.gz", SEARCH_PARAMETERS)?,
                parse("compartmentdefinition-patient.json.gz", COMPARTMENT)?,
                parse("valuesets.json.gz", VALUE_SETS)?,
            ))
        })();
        (big.join().expect("definition parser thread"), rest)
    });
    let resources = resources?;
    let (types_bundle, search_bundle, compartment, value_set_bundle) = rest?;

    let mut types = HashMap::new();
    let mut resource_types = Vec::new();
    let mut required: HashSet<String> = HashSet::new();
    for entry in types_bundle.entry.into_iter().chain(resources.entry) {
        let sd = entry.resource;
        // Constraints (SimpleQuantity, MoneyQuantity, vital-signs profiles) are not base types.
        if sd.resource_type != "StructureDefinition" || sd.derivation == "constraint" {
            continue;
        }
        let kind = match sd.kind.as_str() {
            "primitive-type" => TypeKind::Primitive,
            "complex-type" => TypeKind::Complex,
            "resource" => TypeKind::Resource,
            _ => continue,
        };
        let elements: Vec<ElementDefinition> = sd
            .snapshot
            .map(|s| s.element)
            .unwrap_or_default()
            .into_iter()
            .map(|el| element(el, &mut required))
            .collect();
        if kind == TypeKind::Resource && !sd.is_abstract {
            resource_types.push(sd.id.clone());
        }
        types.insert(
            sd.id.clone(),
            TypeDefinition::new(sd.id, kind, sd.is_abstract, elements),
        );
    }
    resource_types.sort();

    let search_parameters = search_parameters(search_bundle, &resource_types);
    let compartment = PatientCompartment::new(
        compartment
            .resource
            .0
            .into_iter()
            .filter(|r| !r.param.is_empty())
            .map(|r| (r.code, r.param))
            .collect(),
    );
    let value_sets = value_sets(value_set_bundle, &required);

    Ok(Definitions {
        types,
        resource_types,
        search_parameters,
        compartment,
        value_sets,
    })
}

fn element(raw: RawElement, required: &mut HashSet<String>) -> ElementDefinition {
    let max = match raw.max.as_str() {
        "0" => Max::Zero,
        "1" | "" => Max::One,
        _ => Max::Unbounded,
    };
    let types = raw.types.into_iter().map(type_code).collect();
    let required_binding = raw
        .binding
        .filter(|b| b.strength == "required")
        .and_then(|b| b.value_set)
        .map(|vs| vs.split('|').next().unwrap_or(&vs).to_string());
    if let Some(vs) = &required_binding {
        required.insert(vs.clone());
    }
    ElementDefinition {
        path: raw.path,
        min: raw.min,
        max,
        types,
        required_binding,
        content_reference: raw
            .content_reference
            .map(|r| r.trim_start_matches('#').to_string()),
        is_summary: raw.is_summary,
    }
}

/// Maps FHIRPath system types (used for `id`, `url` and primitive values) to FHIR type names.
fn type_code(t: RawType) -> String {
    if let Some(fhir_type) = t
        .extension
        .iter()
        .find(|e| e.url.ends_with("structuredefinition-fhir-type"))
        .and_then(|e| e.value_url.clone())
    {
        return fhir_type;
    }
    match t.code.strip_prefix("http://hl7.org/fhirpath/System.") {
        Some("String") => "string".into(),
        Some("Boolean") => "boolean".into(),
        Some("Integer") => "integer".into(),
        Some("Decimal") => "decimal".into(),
        Some("Date") => "date".into(),
        Some("DateTime") => "dateTime".into(),
        Some("Time") => "time".into(),
        Some(other) => other.to_lowercase(),
        None => t.code,
    }
}

fn search_parameters(
    bundle: Raw,
    resource_types: &[String],
) -> HashMap<String, Vec<SearchParameter>> {
    let mut by_type: HashMap<String, Vec<SearchParameter>> = HashMap::new();
    for entry in bundle.entry {
        let sp = entry.resource;
        if sp.resource_type != "SearchParameter" {
            continue;
        }
        let Some(kind) = SearchParamType::parse(&sp.type_.0) else {
            continue;
        };
        let param = SearchParameter {
            url: sp.url,
            code: sp.code,
            kind,
            expression: sp.expression,
            targets: sp.target.0,
            components: sp
                .component
                .into_iter()
                .map(|c| (c.definition, c.expression))
                .collect(),
            description: sp.description,
        };
        for base in &sp.base.0 {
            if base == "Resource" || base == "DomainResource" {
                for t in resource_types {
                    by_type.entry(t.clone()).or_default().push(param.clone());
                }
            } else {
                by_type.entry(base.clone()).or_default().push(param.clone());
            }
        }
    }
    for params in by_type.values_mut() {
        params.sort_by(|a, b| a.code.cmp(&b.code));
        params.dedup_by(|a, b| a.code == b.code);
    }
    by_type
}

fn flatten(concepts: &[Concept], out: &mut Vec<String>) {
    for c in concepts {
        out.push(c.code.clone());
        flatten(&c.concept, out);
    }
}

fn value_sets(bundle: Raw, required: &HashSet<String>) -> HashMap<String, ValueSetCodes> {
    let mut code_systems: CodeSystemConcepts = HashMap::new();
    let mut value_sets = HashMap::new();
    for entry in bundle.entry {
        let r = entry.resource;
        match r.resource_type.as_str() {
            "CodeSystem" => {
                let mut codes = Vec::new();
                flatten(&r.concept, &mut codes);
                code_systems.insert(r.url, codes);
            }
            "ValueSet" if required.contains(&r.url) => {
                if let Some(compose) = r.compose {
                    value_sets.insert(r.url, compose);
                }
            }
            _ => {}
        }
    }
    value_sets
        .into_iter()
        .filter_map(|(url, compose)| expand(&compose, &code_systems).map(|codes| (url, codes)))
        .collect()
}

/// Expands a compose clause; `None` when it cannot be expanded exactly from the definitions
/// (filters, external code systems such as UCUM or BCP-13), in which case the binding is not enforced.
fn expand(compose: &Compose, code_systems: &CodeSystemConcepts) -> Option<ValueSetCodes> {
    if !compose.exclude.is_empty() {
        return None;
    }
    let mut codes = ValueSetCodes::default();
    for include in &compose.include {
        if !include.filter.is_empty() || !include.value_set.is_empty() {
            return None;
        }
        let system = include.system.as_deref()?;
        if include.concept.is_empty() {
            for code in code_systems.get(system)? {
                codes.insert(system, code);
            }
        } else {
            let mut list = Vec::new();
            flatten(&include.concept, &mut list);
            for code in list {
                codes.insert(system, &code);
            }
        }
    }
    (!codes.is_empty()).then_some(codes)
}
