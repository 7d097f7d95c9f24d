//! Validation of a resource against the R4 definitions: known types and elements, choice types,
//! JSON kinds and primitive formats, cardinality, no empty values, and required bindings.
//!
//! FHIRPath invariants other than "no empty elements" (ele-1) are not evaluated.

use std::sync::Arc;

use curanet_fhir_profiles::{Definitions, Max, TypeDefinition, TypeKind};
use serde_json::{Map, Value};

use crate::outcome::{Issue, IssueType};
use crate::primitives;

/// Stop collecting after this many issues: enough to fix a resource, bounded for a hostile one.
const MAX_ISSUES: usize = 100;

/// Validates resources against the loaded definitions.
#[derive(Clone)]
pub struct Validator {
    defs: Arc<Definitions>,
}

struct Walk<'a> {
    defs: &'a Definitions,
    issues: Vec<Issue>,
}

impl Validator {
    /// A validator over the given definitions.
    pub fn new(defs: Arc<Definitions>) -> Self {
        Self { defs }
    }

    /// The definitions this validator enforces.
    pub fn definitions(&self) -> &Arc<Definitions> {
        &self.defs
    }

    /// Every problem found in `resource` (empty when valid).
    pub fn validate(&self, resource: &Value) -> Vec<Issue> {
        let mut walk = Walk {
            defs: &self.defs,
            issues: Vec::new(),
        };
        walk.resource(resource, None);
        if walk.issues.len() > MAX_ISSUES {
            walk.issues.truncate(MAX_ISSUES);
            walk.issues.push(Issue::error(
                IssueType::TooLong,
                format!("more than {MAX_ISSUES} issues; the rest are not listed"),
            ));
        }
        walk.issues
    }
}

impl Walk<'_> {
    fn push(&mut self, code: IssueType, at: &str, msg: impl Into<String>) {
        if self.issues.len() <= MAX_ISSUES {
            self.issues.push(Issue::error(code, msg).at(at));
        }
    }

    /// A resource at `expr` (`None` for the root: the expression starts with its type).
    fn resource(&mut self, value: &Value, expr: Option<&str>) {
        let Some(obj) = value.as_object() else {
            self.push(
                IssueType::Structure,
                expr.unwrap_or("Resource"),
                "a resource must be a JSON object",
            );
            return;
        };
        let Some(rt) = obj.get("resourceType").and_then(Value::as_str) else {
            self.push(
                IssueType::Required,
                expr.unwrap_or("Resource"),
                "resourceType is missing",
            );
            return;
        };
        let here = expr.map(str::to_string).unwrap_or_else(|| rt.to_string());
        let td = match self.defs.type_definition(rt) {
            Some(td) if td.kind == TypeKind::Resource && !td.is_abstract => td,
            _ => {
                self.push(
                    IssueType::NotSupported,
                    &here,
                    format!("unknown resourceType '{rt}'"),
                );
                return;
            }
        };
        self.object(td, rt, obj, &here, true);
    }

    /// The properties of an object whose definition is the element `def_path` of `td`.
    fn object(
        &mut self,
        td: &TypeDefinition,
        def_path: &str,
        obj: &Map<String, Value>,
        expr: &str,
        is_resource: bool,
    ) {
        if obj.is_empty() && !is_resource {
            self.push(
                IssueType::Invalid,
                expr,
                "an element must have a value or children (ele-1): empty objects are not allowed",
            );
        }
        for (key, value) in obj {
            if is_resource && key == "resourceType" {
                continue;
            }
            let (name, is_extension_part) = match key.strip_prefix('_') {
                Some(n) => (n, true),
                None => (key.as_str(), false),
            };
            let at = format!("{expr}.{name}");
            let Some(child) = td.child(def_path, name) else {
                self.push(
                    IssueType::Structure,
                    &at,
                    format!("unknown element '{key}' for {def_path}"),
                );
                continue;
            };
            let el = td.element(child.element);
            if el.max == Max::Zero {
                self.push(
                    IssueType::Structure,
                    &at,
                    format!("'{key}' is not allowed here"),
                );
                continue;
            }
            // Elements with inline children are objects of this same type definition.
            let target: Target = if let Some(reference) = &el.content_reference {
                Target::Inline(reference)
            } else if let Some(t) = &child.type_code {
                Target::Type(t)
            } else {
                Target::Inline(&el.path)
            };
            let primitive = matches!(target, Target::Type(t) if self.is_primitive(t));
            if is_extension_part && !primitive {
                self.push(
                    IssueType::Structure,
                    &at,
                    format!("'{key}' is only allowed for primitive elements"),
                );
                continue;
            }
            let partner_present = obj.contains_key(&if is_extension_part {
                name.to_string()
            } else {
                format!("_{name}")
            });
            match (el.max, value) {
                (Max::Unbounded, Value::Array(items)) => {
                    if items.is_empty() {
                        self.push(IssueType::Invalid, &at, "empty arrays are not allowed");
                    }
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("{at}[{i}]");
                        if item.is_null() && primitive && partner_present {
                            continue; // a null paired with a value or extension in the `_name` array
                        }
                        self.value(
                            td,
                            &target,
                            el.required_binding.as_deref(),
                            item,
                            &at,
                            is_extension_part,
                        );
                    }
                }
                (Max::Unbounded, _) => {
                    self.push(
                        IssueType::Structure,
                        &at,
                        format!("'{key}' must be a JSON array (max cardinality *)"),
                    );
                }
                (_, Value::Array(_)) => {
                    self.push(
                        IssueType::Structure,
                        &at,
                        format!("'{key}' must not be an array (max cardinality 1)"),
                    );
                }
                _ => self.value(
                    td,
                    &target,
                    el.required_binding.as_deref(),
                    value,
                    &at,
                    is_extension_part,
                ),
            }
        }
        self.required_children(td, def_path, obj, expr);
    }

    fn is_primitive(&self, type_code: &str) -> bool {
        self.defs
            .type_definition(type_code)
            .is_some_and(|t| t.kind == TypeKind::Primitive)
    }

    fn required_children(
        &mut self,
        td: &TypeDefinition,
        def_path: &str,
        obj: &Map<String, Value>,
        expr: &str,
    ) {
        let missing: Vec<String> = td
            .child_elements(def_path)
            .filter(|el| el.min > 0)
            .filter_map(|el| {
                let name = el.name();
                let present = match name.strip_suffix("[x]") {
                    Some(prefix) => obj.keys().any(|k| {
                        let k = k.strip_prefix('_').unwrap_or(k);
                        k.starts_with(prefix) && td.child(def_path, k).is_some()
                    }),
                    None => obj.contains_key(name) || obj.contains_key(&format!("_{name}")),
                };
                (!present).then(|| name.to_string())
            })
            .collect();
        for name in missing {
            self.push(
                IssueType::Required,
                &format!("{expr}.{name}"),
                format!("'{name}' is required (min cardinality 1) but missing"),
            );
        }
    }

    fn value(
        &mut self,
        td: &TypeDefinition,
        target: &Target,
        binding: Option<&str>,
        value: &Value,
        at: &str,
        is_extension_part: bool,
    ) {
        if value.is_null() {
            self.push(
                IssueType::Invalid,
                at,
                "null is not allowed (omit the element instead)",
            );
            return;
        }
        match *target {
            Target::Inline(path) => match value.as_object() {
                Some(obj) => self.object(td, path, obj, at, false),
                None => self.push(IssueType::Structure, at, "expected a JSON object"),
            },
            Target::Type("Resource") => self.resource(value, Some(at)),
            Target::Type(t) => {
                let Some(type_def) = self.defs.type_definition(t) else {
                    return; // a type the definitions do not describe: nothing to check against
                };
                if type_def.kind == TypeKind::Primitive && !is_extension_part {
                    if let Some(problem) = primitives::check(t, value) {
                        self.push(IssueType::Value, at, problem);
                    } else if let (Some(vs), Some(code)) = (binding, value.as_str()) {
                        self.check_code(vs, None, code, at);
                    }
                    return;
                }
                let Some(obj) = value.as_object() else {
                    self.push(
                        IssueType::Structure,
                        at,
                        format!("expected a JSON object ({t})"),
                    );
                    return;
                };
                if type_def.kind == TypeKind::Primitive {
                    // `_name`: the primitive's id and extensions, never its value.
                    if obj.contains_key("value") {
                        self.push(
                            IssueType::Structure,
                            &format!("{at}.value"),
                            "unknown element 'value'",
                        );
                    }
                }
                self.object(type_def, t, obj, at, false);
                if let Some(vs) = binding {
                    self.check_codings(t, vs, obj, at);
                }
            }
        }
    }

    fn check_codings(&mut self, type_code: &str, vs: &str, obj: &Map<String, Value>, at: &str) {
        let codings: Vec<(usize, &Map<String, Value>)> = match type_code {
            "Coding" => vec![(0, obj)],
            "CodeableConcept" => obj
                .get("coding")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .enumerate()
                        .filter_map(|(i, c)| Some((i, c.as_object()?)))
                        .collect()
                })
                .unwrap_or_default(),
            _ => return,
        };
        for (i, coding) in codings {
            if let (Some(system), Some(code)) = (
                coding.get("system").and_then(Value::as_str),
                coding.get("code").and_then(Value::as_str),
            ) {
                let at = if type_code == "Coding" {
                    at.to_string()
                } else {
                    format!("{at}.coding[{i}]")
                };
                self.check_code(vs, Some(system), code, &at);
            }
        }
    }

    fn check_code(&mut self, vs_url: &str, system: Option<&str>, code: &str, at: &str) {
        let Some(vs) = self.defs.value_set(vs_url) else {
            return; // not expandable from the definitions (UCUM, BCP-13, ...): not enforced
        };
        let ok = match system {
            None => vs.contains_code(code),
            // A coding from another system may sit beside one from the bound value set.
            Some(s) => !vs.has_system(s) || vs.contains(s, code),
        };
        if !ok {
            self.push(
                IssueType::CodeInvalid,
                at,
                format!("'{code}' is not in the required value set {vs_url}"),
            );
        }
    }
}

/// What the value of an element is checked against.
enum Target<'a> {
    /// Children defined inline at this path of the same type definition (BackboneElement, contentReference).
    Inline(&'a str),
    /// A named type (primitive, complex type, or `Resource`).
    Type(&'a str),
}

#[cfg(test)]
mod tests {

    /// CuraNet's own conformance resources (installed at every start) are valid R4.
    #[test]
    fn curanet_conformance_resources_are_valid() {
        let validator = Validator::new(Definitions::shared());
        for text in curanet_fhir_profiles::curanet::resources() {
            let resource: serde_json::Value = serde_json::from_str(text).unwrap();
            let errors: Vec<Issue> = validator
                .validate(&resource)
                .into_iter()
                .filter(Issue::is_error)
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", resource["id"]);
        }
    }
    use super::*;
    use serde_json::json;

    fn issues(v: Value) -> Vec<Issue> {
        Validator::new(Definitions::shared()).validate(&v)
    }

    fn expressions(v: Value) -> Vec<String> {
        issues(v).into_iter().filter_map(|i| i.expression).collect()
    }

    #[test]
    fn valid_resources_pass() {
        let obs = json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "valueQuantity": {"value": 72, "unit": "/min"},
            "effectiveDateTime": "2024-03-05T10:00:00+05:30",
            "component": [{"code": {"text": "x"}, "valueString": "y"}],
            "extension": [{"url": "http://example.org/x", "valueBoolean": true}]
        });
        assert_eq!(issues(obs), vec![]);
        let patient = json!({
            "resourceType": "Patient",
            "name": [{"given": ["A", null], "_given": [null, {"extension": [{"url": "http://e.org", "valueString": "v"}]}]}],
            "gender": "female",
            "birthDate": "1980",
            "contained": [{"resourceType": "Organization", "id": "o1", "name": "X"}]
        });
        assert_eq!(issues(patient), vec![]);
        let q = json!({"resourceType": "Questionnaire", "status": "draft",
            "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string"}]}]});
        assert_eq!(issues(q), vec![]);
    }

    #[test]
    fn reports_every_problem_with_its_location() {
        let got = expressions(json!({
            "resourceType": "Observation",
            "status": "bogus",
            "valueBogus": 1,
            "subject": [],
            "issued": "yesterday",
            "note": {"text": "x"},
            "focus": [{"reference": ""}]
        }));
        for want in [
            "Observation.status",
            "Observation.valueBogus",
            "Observation.subject",
            "Observation.issued",
            "Observation.note",
            "Observation.focus[0].reference",
            "Observation.code",
        ] {
            assert!(got.contains(&want.to_string()), "missing {want} in {got:?}");
        }
    }

    #[test]
    fn unknown_types_and_bad_shapes() {
        assert_eq!(
            issues(json!({"resourceType": "Bogus"}))[0].code,
            IssueType::NotSupported
        );
        assert_eq!(
            issues(json!({"resourceType": "DomainResource"}))[0].code,
            IssueType::NotSupported
        );
        assert_eq!(issues(json!([1]))[0].code, IssueType::Structure);
        assert_eq!(issues(json!({"resourceType": "Patient"})), vec![]);
        let got = expressions(
            json!({"resourceType": "Patient", "active": null, "name": [{}], "gender": "x"}),
        );
        assert!(got.contains(&"Patient.active".to_string()));
        assert!(got.contains(&"Patient.name[0]".to_string()));
        assert!(got.contains(&"Patient.gender".to_string()));
    }

    #[test]
    fn codings_checked_only_for_the_bound_system() {
        let ok = json!({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
            "clinicalStatus": {"coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"},
                {"system": "http://example.org/local", "code": "whatever"}]}});
        assert_eq!(issues(ok), vec![]);
        let bad = json!({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/1"},
            "clinicalStatus": {"coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "nope"}]}});
        assert_eq!(
            expressions(bad),
            vec!["AllergyIntolerance.clinicalStatus.coding[0]".to_string()]
        );
    }

    #[test]
    fn nested_resources_are_validated() {
        let got = expressions(json!({"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": {"resourceType": "Observation", "status": "nope", "code": {"text": "x"}}}]}));
        assert_eq!(got, vec!["Bundle.entry[0].resource.status".to_string()]);
    }
}
