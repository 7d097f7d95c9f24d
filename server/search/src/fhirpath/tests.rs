//! Evaluation tests: every construct on small resources, every R4 search expression, Synthea data.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use curanet_fhir_profiles::{Definitions, SearchParamType};
use serde_json::{Value, json};

use super::{Expression, Item};

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"lastUpdated": "2024-01-01T00:00:00Z", "tag": [{"system": "s", "code": "t"}]},
        "extension": [
            {"url": "http://x/race", "valueString": "r"},
            {"url": "http://x/eth", "valueCodeableConcept": {"text": "e"}}
        ],
        "identifier": [
            {"system": "urn:hid", "value": "HID-1"},
            {"system": "urn:mrn", "value": "M1"}
        ],
        "active": true,
        "name": [
            {"use": "official", "family": "Rao", "given": ["Asha", "K"], "_given": [null, {"extension": []}]},
            {"use": "nickname", "given": ["Ash"]}
        ],
        "telecom": [{"system": "phone", "value": "123"}, {"system": "email", "value": "a@b"}],
        "gender": "female",
        "birthDate": "1980-01-01",
        "deceasedBoolean": false,
        "managingOrganization": {"reference": "Organization/o1"},
        "generalPractitioner": [
            {"reference": "Practitioner/pr1"},
            {"reference": "http://ex.org/fhir/Organization/o2/_history/3"},
            {"reference": "urn:uuid:0c3b"},
            {"reference": "#c1"},
            {"type": "Practitioner", "display": "typed only"}
        ],
        "contained": [{"resourceType": "Practitioner", "id": "c1", "name": [{"family": "Contained"}]}],
        "contact": [{"name": {"family": "C"}, "telecom": [{"system": "phone", "value": "9"}]}]
    })
}

fn observation() -> Value {
    // The number is parsed from text so that its exact form (176.50) is kept.
    serde_json::from_str(
        r#"{
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}], "text": "Height"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2020-01-01T10:00:00Z",
        "valueQuantity": {"value": 176.50, "unit": "cm"},
        "component": [
            {"code": {"text": "a"}, "valueCodeableConcept": {"text": "x"}},
            {"code": {"text": "b"}, "valueQuantity": {"value": 1}},
            {"code": {"text": "c"}, "valueString": "s"}
        ]
    }"#,
    )
    .unwrap()
}

fn condition() -> Value {
    json!({
        "resourceType": "Condition",
        "code": {"text": "c"},
        "onsetAge": {"value": 50, "unit": "a"},
        "abatementString": "gone"
    })
}

fn encounter() -> Value {
    json!({"resourceType": "Encounter", "classHistory": [{"class": {"code": "x"}}]})
}

fn widget() -> Value {
    json!({
        "resourceType": "Widget",
        "valueQuantity": {"value": 1},
        "valueHistory": "h",
        "flag": true,
        "n": 1.5,
        "part": {"label": "p"}
    })
}

fn bundle() -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "document",
        "entry": [
            {"resource": {"resourceType": "Composition", "id": "c"}},
            {"resource": {"resourceType": "Patient", "id": "p"}}
        ]
    })
}

fn questionnaire() -> Value {
    json!({
        "resourceType": "Questionnaire",
        "item": [{"linkId": "1", "type": "group", "item": [
            {"linkId": "1.1", "type": "string", "item": [{"linkId": "1.1.1", "type": "string"}]}
        ]}]
    })
}

fn eval<'a>(text: &str, resource: &'a Value) -> Vec<Item<'a>> {
    Expression::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .evaluate(resource)
}

fn values(text: &str, resource: &Value) -> Value {
    Value::Array(
        eval(text, resource)
            .iter()
            .map(|i| i.value().clone())
            .collect(),
    )
}

fn type_names(text: &str, resource: &Value) -> Vec<String> {
    eval(text, resource)
        .iter()
        .map(|i| i.type_name().unwrap_or("?").to_string())
        .collect()
}

/// Compares with FHIRPath equality, so that `176.50` (exact text) equals `json!(176.5)`.
fn check(resource: &Value, cases: &[(&str, Value)]) {
    for (text, expected) in cases {
        let actual = values(text, resource);
        assert!(
            super::compare::equal(&actual, expected),
            "{text}: got {actual}, expected {expected}"
        );
    }
}

#[test]
fn paths_filters_and_functions_on_a_patient() {
    let p = patient();
    check(
        &p,
        &[
            ("Patient.name.given", json!(["Asha", "K", "Ash"])),
            ("name.given", json!(["Asha", "K", "Ash"])),
            ("Observation.code", json!([])),
            ("Patient.nothing", json!([])),
            ("Resource.id", json!(["p1"])),
            ("DomainResource.id", json!(["p1"])),
            ("Resource.meta.tag.code", json!(["t"])),
            (
                "Patient.name.where(use = 'official').family",
                json!(["Rao"]),
            ),
            (
                "Patient.name.where(use='official' and family='Rao').use",
                json!(["official"]),
            ),
            (
                "Patient.telecom.where(system='email')",
                json!([{"system": "email", "value": "a@b"}]),
            ),
            (
                "Patient.telecom.where(system='phone' or system='email').count()",
                json!([2]),
            ),
            (
                "Patient.telecom.where(system!='phone').value",
                json!(["a@b"]),
            ),
            (
                "Patient.identifier.where(system = 'urn:hid').value",
                json!(["HID-1"]),
            ),
            ("Patient.name.first().given", json!(["Asha", "K"])),
            ("Patient.name.given.first()", json!(["Asha"])),
            ("Patient.name.given.last()", json!(["Ash"])),
            ("Patient.name.given.tail()", json!(["K", "Ash"])),
            ("Patient.name.given.skip(1).take(1)", json!(["K"])),
            ("Patient.name.given.single()", json!([])),
            ("Patient.gender.single()", json!(["female"])),
            ("Patient.name[1].given", json!(["Ash"])),
            ("Patient.name.given[2]", json!(["Ash"])),
            ("Patient.name.given[5]", json!([])),
            ("Patient.name.exists()", json!([true])),
            ("Patient.name.exists(use = 'nickname')", json!([true])),
            ("Patient.name.exists(use = 'maiden')", json!([false])),
            ("Patient.photo.exists()", json!([false])),
            ("Patient.photo.empty()", json!([true])),
            ("Patient.name.empty()", json!([false])),
            ("Patient.name.all(given.exists())", json!([true])),
            ("Patient.name.all(family.exists())", json!([false])),
            ("Patient.name.count()", json!([2])),
            ("Patient.name.given.count() > 2", json!([true])),
            (
                "Patient.deceased.exists() and Patient.deceased != false",
                json!([false]),
            ),
            ("Patient.deceased", json!([false])),
            ("Patient.deceased.ofType(boolean)", json!([false])),
            ("Patient.deceased.ofType(dateTime)", json!([])),
            ("Patient.active = true", json!([true])),
            ("Patient.active.not()", json!([false])),
            ("Patient.gender = 'female'", json!([true])),
            ("Patient.gender != 'female'", json!([false])),
            ("Patient.gender = 'male'", json!([false])),
            ("Patient.nothing = 'x'", json!([])),
            ("Patient.nothing != 'x'", json!([])),
            ("Patient.gender ~ 'FEMALE'", json!([true])),
            ("Patient.gender !~ 'FEMALE'", json!([false])),
            ("Patient.name.given contains 'K'", json!([true])),
            ("'K' in Patient.name.given", json!([true])),
            ("'Z' in Patient.name.given", json!([false])),
            (
                "Patient.name.given | Patient.name.given",
                json!(["Asha", "K", "Ash"]),
            ),
            (
                "Patient.name.given.union(Patient.gender)",
                json!(["Asha", "K", "Ash", "female"]),
            ),
            (
                "Patient.name.given.combine(Patient.name.given).count()",
                json!([6]),
            ),
            ("Patient.name.given.intersect('K' | 'Z')", json!(["K"])),
            ("Patient.name.given.exclude('K')", json!(["Asha", "Ash"])),
            ("Patient.name.given.distinct().count()", json!([3])),
            ("Patient.name.given.isDistinct()", json!([true])),
            ("('K').subsetOf(Patient.name.given)", json!([true])),
            ("Patient.name.given.supersetOf('Z')", json!([false])),
            (
                "Patient.name.where($this.use = 'nickname').given",
                json!(["Ash"]),
            ),
            ("Patient.name.select(given.first())", json!(["Asha", "Ash"])),
            ("Patient.name.given.where($index = 1)", json!(["K"])),
            ("Patient.contact.telecom.value", json!(["9"])),
            (
                "Patient.contact.descendants().ofType(ContactPoint).value",
                json!(["9"]),
            ),
            (
                "Patient.contact.children().ofType(HumanName).family",
                json!(["C"]),
            ),
            ("%resource.id", json!(["p1"])),
            ("%context.gender", json!(["female"])),
            ("Patient.birthDate < @1990-01-01", json!([true])),
            ("Patient.birthDate >= @1980-01-01", json!([true])),
            ("Patient.birthDate > @1990-01", json!([])),
            ("Patient.birthDate = @1980-01-01", json!([true])),
            ("Patient.birthDate is date", json!([true])),
            ("Patient.birthDate is dateTime", json!([false])),
            ("Patient.birthDate is System.Date", json!([true])),
            ("Patient.gender is code", json!([true])),
            ("Patient.gender is string", json!([true])),
            ("Patient.gender.is(FHIR.string)", json!([true])),
            ("Patient.name is HumanName", json!([])),
            ("Patient.name.first() is HumanName", json!([true])),
            ("Patient.name.ofType(HumanName).family", json!(["Rao"])),
            ("Patient.name.ofType(Quantity)", json!([])),
            ("Patient is Resource", json!([true])),
            ("Patient.gender.startsWith('fe')", json!([true])),
            ("Patient.gender.endsWith('le')", json!([true])),
            ("Patient.gender.contains('mal')", json!([true])),
            ("Patient.name.given.startsWith('As')", json!([])),
            ("Patient.gender.upper()", json!(["FEMALE"])),
            ("Patient.gender.upper().lower()", json!(["female"])),
            ("Patient.gender.length()", json!([6])),
            ("Patient.gender.hasValue()", json!([true])),
            ("Patient.name.first().hasValue()", json!([false])),
            ("iif(Patient.active, 'yes', 'no')", json!(["yes"])),
            ("Patient.gender.iif($this = 'male', 'm', 'f')", json!(["f"])),
            ("Patient.name.given.trace('x')", json!(["Asha", "K", "Ash"])),
            ("Patient.name.given.memberOf('http://vs')", json!([])),
            ("Patient.identifier.value.matches('HID-.*')", json!([])),
            ("Patient.telecom.where(value = 123)", json!([])),
        ],
    );
}

#[test]
fn extensions_and_resolve() {
    let p = patient();
    check(
        &p,
        &[
            ("Patient.extension('http://x/race').value", json!(["r"])),
            (
                "Patient.extension('http://x/race').value.ofType(string)",
                json!(["r"]),
            ),
            (
                "Patient.extension('http://x/eth').value.ofType(CodeableConcept).text",
                json!(["e"]),
            ),
            ("Patient.extension('http://x/none')", json!([])),
            ("Patient.extension.value.ofType(string)", json!(["r"])),
            ("extension('http://x/race').exists()", json!([true])),
            (
                "Patient.managingOrganization.where(resolve() is Organization)",
                json!([{"reference": "Organization/o1"}]),
            ),
            (
                "Patient.generalPractitioner.where(resolve() is Practitioner)",
                json!([
                    {"reference": "Practitioner/pr1"},
                    {"reference": "#c1"},
                    {"type": "Practitioner", "display": "typed only"}
                ]),
            ),
            (
                "Patient.generalPractitioner.where(resolve() is Organization)",
                json!([{"reference": "http://ex.org/fhir/Organization/o2/_history/3"}]),
            ),
            (
                "Patient.generalPractitioner.where(resolve() is Patient)",
                json!([]),
            ),
            (
                "Patient.generalPractitioner.resolve().name.family",
                json!(["Contained"]),
            ),
            ("Patient.managingOrganization.resolve().name", json!([])),
            (
                "Patient.managingOrganization.resolve() is Resource",
                json!([true]),
            ),
        ],
    );
    let resolved = eval("Patient.generalPractitioner.resolve()", &p);
    let kinds: Vec<_> = resolved.iter().map(|i| i.type_name().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Practitioner",
            "Organization",
            "Practitioner",
            "Practitioner"
        ]
    );
}

#[test]
fn choice_types() {
    let o = observation();
    check(
        &o,
        &[
            (
                "Observation.value as Quantity",
                json!([{"value": 176.50, "unit": "cm"}]),
            ),
            ("(Observation.value as Quantity).unit", json!(["cm"])),
            ("Observation.value.as(Quantity).unit", json!(["cm"])),
            ("Observation.value.ofType(Quantity).unit", json!(["cm"])),
            ("Observation.value as CodeableConcept", json!([])),
            ("Observation.value.ofType(CodeableConcept)", json!([])),
            ("Observation.value is Quantity", json!([true])),
            ("Observation.value is FHIR.Quantity", json!([true])),
            ("Observation.value.is(string)", json!([false])),
            ("Observation.valueQuantity.unit", json!(["cm"])),
            (
                "Observation.component.value.ofType(Quantity)",
                json!([{"value": 1}]),
            ),
            (
                "Observation.component.value.ofType(CodeableConcept).text",
                json!(["x"]),
            ),
            ("Observation.component.value.ofType(string)", json!(["s"])),
            ("Observation.component.value.count()", json!([3])),
            (
                "(Observation.value.ofType(string)) | (Observation.component.value.ofType(CodeableConcept)).text",
                json!(["x"]),
            ),
            (
                "Observation.component.where(code.text = 'b').value",
                json!([{"value": 1}]),
            ),
            (
                "Observation.effective.ofType(dateTime)",
                json!(["2020-01-01T10:00:00Z"]),
            ),
            (
                "Observation.effective.ofType(DateTime)",
                json!(["2020-01-01T10:00:00Z"]),
            ),
            ("Observation.effective.ofType(Period)", json!([])),
            (
                "Observation.subject.where(resolve() is Patient)",
                json!([{"reference": "Patient/p1"}]),
            ),
            (
                "Observation.code.coding.where(system = %loinc).code",
                json!(["8302-2"]),
            ),
            ("Observation.value.value > 100", json!([true])),
            ("Observation.value.value = 176.5", json!([true])),
            ("Observation.value.value < 176.49", json!([false])),
            (
                "Observation.effective > @2019-12-31T00:00:00Z",
                json!([true]),
            ),
        ],
    );
    // The decimal keeps its exact text.
    let value = eval("(Observation.value as Quantity).value", &o);
    assert_eq!(value[0].value().to_string(), "176.50");
    assert_eq!(type_names("Observation.value", &o), ["Quantity"]);
    assert_eq!(type_names("Observation.value.value", &o), ["decimal"]);
    assert_eq!(type_names("Observation.code", &o), ["CodeableConcept"]);
    assert_eq!(type_names("Observation.status", &o), ["code"]);
    assert_eq!(
        type_names("Observation.component", &o),
        ["BackboneElement"; 3]
    );
    assert_eq!(
        type_names("Observation.component.code", &o),
        ["CodeableConcept"; 3]
    );
    assert_eq!(
        type_names("Observation.component.value", &o),
        ["CodeableConcept", "Quantity", "string"]
    );
    assert_eq!(type_names("Observation.effective", &o), ["dateTime"]);

    let c = condition();
    check(
        &c,
        &[
            (
                "Condition.onset.as(Age)",
                json!([{"value": 50, "unit": "a"}]),
            ),
            (
                "Condition.onset.ofType(Age) | Condition.onset.ofType(Range)",
                json!([{"value": 50, "unit": "a"}]),
            ),
            ("Condition.onset.ofType(Quantity).value", json!([50])),
            ("Condition.onset.ofType(Range)", json!([])),
            ("Condition.onset is Age", json!([true])),
            ("Condition.abatement.ofType(string)", json!(["gone"])),
            (
                "Condition.abatement.ofType(dateTime) | Condition.abatement.ofType(Period)",
                json!([]),
            ),
        ],
    );
    assert_eq!(type_names("Condition.onset", &c), ["Age"]);

    // `class` must not pick up `classHistory`.
    let e = encounter();
    check(
        &e,
        &[
            ("Encounter.class", json!([])),
            ("Encounter.classHistory.class.code", json!(["x"])),
        ],
    );
}

#[test]
fn untyped_items_match_by_json_shape() {
    let w = widget();
    check(
        &w,
        &[
            ("Widget.value", json!([{"value": 1}])),
            ("Widget.value.ofType(Quantity).value", json!([1])),
            ("Widget.flag.ofType(boolean)", json!([true])),
            ("Widget.flag is Boolean", json!([true])),
            ("Widget.n.ofType(decimal)", json!([1.5])),
            ("Widget.n.ofType(integer)", json!([])),
            ("Widget.part.ofType(HumanName)", json!([])),
            ("Widget.part.label", json!(["p"])),
        ],
    );
    assert_eq!(type_names("Widget.value", &w), ["Quantity"]);
    assert_eq!(type_names("Widget.flag", &w), ["?"]);
}

#[test]
fn bundles_and_recursive_elements() {
    let b = bundle();
    check(
        &b,
        &[
            ("Bundle.entry[0].resource.id", json!(["c"])),
            ("Bundle.entry.resource.ofType(Patient).id", json!(["p"])),
            (
                "Bundle.entry.resource.where($this is Composition).id",
                json!(["c"]),
            ),
            ("Bundle.entry.resource is Patient", json!([])),
        ],
    );
    assert_eq!(type_names("Bundle.entry[0].resource", &b), ["Composition"]);

    let q = questionnaire();
    check(
        &q,
        &[
            ("Questionnaire.item.item.item.linkId", json!(["1.1.1"])),
            (
                "Questionnaire.repeat(item).linkId",
                json!(["1", "1.1", "1.1.1"]),
            ),
        ],
    );
    assert_eq!(
        type_names("Questionnaire.item.item.item.linkId", &q),
        ["string"]
    );
    assert_eq!(type_names("Questionnaire.item.item.type", &q), ["code"]);
}

#[test]
fn literals_and_operators() {
    let r = json!({"resourceType": "Basic"});
    check(
        &r,
        &[
            ("'a' + 'b'", json!(["ab"])),
            ("'a' & {}", json!(["a"])),
            ("'it\\'s'", json!(["it's"])),
            ("1 + 2 * 3", json!([7])),
            ("(1 + 2) * 3", json!([9])),
            ("7 div 2", json!([3])),
            ("7 mod 2", json!([1])),
            ("7 / 2", json!([])),
            ("1.5 + 1", json!([])),
            ("-(1.50)", json!([-1.50])),
            ("-5 + 2", json!([-3])),
            ("1 = 1.0", json!([true])),
            ("1.10 = 1.1", json!([true])),
            ("2 < 10", json!([true])),
            ("'2' < '10'", json!([false])),
            ("true xor false", json!([true])),
            ("true xor true", json!([false])),
            ("true implies {}", json!([])),
            ("false implies {}", json!([true])),
            ("{} implies true", json!([true])),
            ("{} or true", json!([true])),
            ("{} or false", json!([])),
            ("{} and false", json!([false])),
            ("{} and true", json!([])),
            ("true and true", json!([true])),
            ("{}.empty()", json!([true])),
            ("{}.not()", json!([])),
            ("(1 | 2 | 1).count()", json!([2])),
            ("(1 | 2) = (1 | 2)", json!([true])),
            ("(1 | 2) = (2 | 1)", json!([false])),
            ("(1 | 2) ~ (2 | 1)", json!([true])),
            ("(1 | 2) = 1", json!([false])),
            ("@2020-01-01T10:00 is DateTime", json!([true])),
            ("@T10:00 is Time", json!([true])),
            ("5 'mg'", json!([])),
            ("3 days", json!([])),
            ("$total", json!([])),
            ("%ucum", json!(["http://unitsofmeasure.org"])),
            (
                "%`vs-administrative-gender`",
                json!(["http://hl7.org/fhir/ValueSet/administrative-gender"]),
            ),
            ("true.not()", json!([false])),
            ("(1 | 2 | 3).where($this > 1)", json!([2, 3])),
            ("(1 | 2 | 3).select($this * 2)", json!([2, 4, 6])),
            (
                "(1 | 2 | 3).where($this > 1).exists() // trailing comment",
                json!([true]),
            ),
            ("/* c */ 'x'.length()", json!([1])),
            ("(true | false).allTrue()", json!([false])),
            ("(true | false).anyTrue()", json!([true])),
            ("(false | false).allFalse()", json!([true])),
            ("(true | true).anyFalse()", json!([false])),
            ("'abc' is String", json!([true])),
            ("'abc' is string", json!([true])),
            ("1 is Integer", json!([true])),
            ("1.0 is Decimal", json!([true])),
            ("1 is Decimal", json!([false])),
        ],
    );
}

#[test]
fn composite_components_evaluate_on_items() {
    let o = observation();
    let base = Expression::parse("Observation | Observation.component").unwrap();
    let code = Expression::parse("code").unwrap();
    let value = Expression::parse("value.ofType(Quantity)").unwrap();
    let chromosome = Expression::parse("%resource.status").unwrap();
    let mut pairs = Vec::new();
    for item in base.evaluate(&o) {
        let codes = code.evaluate_on(&item, &o);
        let values = value.evaluate_on(&item, &o);
        assert_eq!(chromosome.evaluate_on(&item, &o)[0].value(), "final");
        if let ([c], [v]) = (codes.as_slice(), values.as_slice()) {
            pairs.push((c.value()["text"].clone(), v.value()["value"].clone()));
        }
    }
    let pairs = Value::Array(pairs.into_iter().map(|(c, v)| json!([c, v])).collect());
    assert!(
        super::compare::equal(&pairs, &json!([["Height", 176.5], ["b", 1]])),
        "{pairs}"
    );
}

#[test]
fn expressions_are_shareable_and_print_their_text() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expression>();
    let e = Expression::parse("Patient.name").unwrap();
    assert_eq!(e.to_string(), "Patient.name");
    assert_eq!(e.text(), "Patient.name");
}

/// Every distinct expression of the R4 search parameters (and of their composite components).
fn r4_expressions() -> BTreeSet<String> {
    let defs = Definitions::shared();
    let mut all = BTreeSet::new();
    for resource_type in defs.resource_types() {
        for param in defs.search_parameters(resource_type) {
            all.extend(param.expression.clone());
            all.extend(param.components.iter().map(|(_, e)| e.clone()));
        }
    }
    all
}

#[test]
fn every_r4_search_expression_parses() {
    let all = r4_expressions();
    let failures: Vec<String> = all
        .iter()
        .filter_map(|text| {
            Expression::parse(text)
                .err()
                .map(|e| format!("{text}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    println!("parsed {} distinct R4 search expressions", all.len());
    assert!(all.len() > 1300, "{}", all.len());
}

/// Empty resources of every type: every applicable expression evaluates without panicking.
#[test]
fn every_r4_search_expression_evaluates_on_minimal_resources() {
    let defs = Definitions::shared();
    for resource_type in defs.resource_types() {
        let resource = json!({"resourceType": resource_type, "id": "x"});
        for param in defs.search_parameters(resource_type) {
            let Some(text) = &param.expression else {
                continue;
            };
            let items = Expression::parse(text).unwrap().evaluate(&resource);
            if param.code == "_id" {
                assert_eq!(items.len(), 1, "{resource_type}._id");
            } else if param.kind != SearchParamType::Composite {
                // Only a Boolean `false` (`Patient.deceased.exists() and ...`) may come out.
                assert!(
                    items.iter().all(|i| i.value() == &Value::Bool(false)),
                    "{resource_type}.{}: {text}",
                    param.code
                );
            }
        }
    }
}

fn synthea_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea")
}

/// Loads a few Synthea bundles, rewriting `urn:uuid:` references to `Type/id` as a server does
/// when it processes a transaction (so that `resolve()` can tell the target type).
fn synthea_resources(files: usize) -> Option<Vec<Value>> {
    let dir = synthea_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths.into_iter().take(files) {
        let bundle: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
        let targets: HashMap<String, String> = entries
            .iter()
            .filter_map(|e| {
                let r = &e["resource"];
                Some((
                    e["fullUrl"].as_str()?.to_string(),
                    format!("{}/{}", r["resourceType"].as_str()?, r["id"].as_str()?),
                ))
            })
            .collect();
        for entry in entries {
            let mut resource = entry["resource"].clone();
            rewrite_references(&mut resource, &targets);
            out.push(resource);
        }
    }
    Some(out)
}

fn rewrite_references(value: &mut Value, targets: &HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("reference")
                && let Some(target) = targets.get(r.as_str())
            {
                *r = target.clone();
            }
            for v in map.values_mut() {
                rewrite_references(v, targets);
            }
        }
        Value::Array(values) => values
            .iter_mut()
            .for_each(|v| rewrite_references(v, targets)),
        _ => {}
    }
}

#[test]
fn r4_search_expressions_on_synthea_resources() {
    let Some(resources) = synthea_resources(4) else {
        println!("skipped: no Synthea data at {}", synthea_dir().display());
        return;
    };
    let defs = Definitions::shared();
    let mut parsed: HashMap<&str, Expression> = HashMap::new();
    for resource in &resources {
        let rt = resource["resourceType"].as_str().unwrap();
        for param in defs.search_parameters(rt) {
            for text in param
                .expression
                .iter()
                .chain(param.components.iter().map(|(_, e)| e))
            {
                parsed
                    .entry(text.as_str())
                    .or_insert_with(|| Expression::parse(text).unwrap());
            }
        }
    }

    let started = Instant::now();
    let (mut evaluations, mut items_found) = (0usize, 0usize);
    // (resource type, param code) → number of resources where the param found something.
    let mut hits: HashMap<(String, String), usize> = HashMap::new();
    for resource in &resources {
        let rt = resource["resourceType"].as_str().unwrap();
        for param in defs.search_parameters(rt) {
            let Some(text) = &param.expression else {
                continue;
            };
            let items = parsed[text.as_str()].evaluate(resource);
            evaluations += 1;
            items_found += items.len();
            if !items.is_empty() {
                *hits
                    .entry((rt.to_string(), param.code.clone()))
                    .or_default() += 1;
            }
            for item in &items {
                for (_, component) in &param.components {
                    parsed[component.as_str()].evaluate_on(item, resource);
                }
            }
            check_synthea_param(rt, &param.code, resource, &items);
        }
    }
    println!(
        "{} resources, {evaluations} evaluations, {items_found} items in {:?}",
        resources.len(),
        started.elapsed()
    );
    // The spot-checked parameters found values in the data.
    for (rt, code) in [
        ("Patient", "name"),
        ("Patient", "birthdate"),
        ("Patient", "phone"),
        ("Patient", "gender"),
        ("Observation", "code"),
        ("Observation", "value-quantity"),
        ("Observation", "value-concept"),
        ("Observation", "patient"),
        ("Observation", "date"),
        ("Observation", "combo-code-value-quantity"),
        ("Encounter", "date"),
        ("Encounter", "patient"),
        ("Condition", "onset-date"),
        ("Claim", "patient"),
        ("Immunization", "vaccine-code"),
    ] {
        assert!(
            hits.get(&(rt.to_string(), code.to_string()))
                .copied()
                .unwrap_or(0)
                > 0,
            "{rt}.{code} never matched"
        );
    }
}

/// Known values of some parameters, computed independently from the JSON.
fn check_synthea_param(rt: &str, code: &str, resource: &Value, items: &[Item<'_>]) {
    let values: Vec<&Value> = items.iter().map(Item::value).collect();
    let types: Vec<&str> = items.iter().map(|i| i.type_name().unwrap_or("?")).collect();
    let as_array = |key: &str| -> Vec<&Value> {
        resource[key]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    };
    let single = |key: &str| -> Vec<&Value> { resource.get(key).into_iter().collect() };
    let ctx = format!("{rt}.{code} on {}", resource["id"]);
    match (rt, code) {
        ("Patient", "name") => {
            assert_eq!(values, as_array("name"), "{ctx}");
            assert!(types.iter().all(|t| *t == "HumanName"), "{ctx}");
        }
        ("Patient", "birthdate") => {
            assert_eq!(values, single("birthDate"), "{ctx}");
            assert!(types.iter().all(|t| *t == "date"), "{ctx}");
        }
        ("Patient", "phone") => {
            let expected: Vec<&Value> = as_array("telecom")
                .into_iter()
                .filter(|t| t["system"] == "phone")
                .collect();
            assert_eq!(values, expected, "{ctx}");
        }
        ("Patient", "gender") => assert_eq!(values, single("gender"), "{ctx}"),
        ("Patient" | "Observation" | "Encounter", "_id") => {
            assert_eq!(values, single("id"), "{ctx}");
            // The R4 definitions give `Resource.id` the FHIR type `string`.
            assert_eq!(types, ["string"], "{ctx}");
        }
        ("Observation", "code") => {
            assert_eq!(values, single("code"), "{ctx}");
            assert_eq!(types, ["CodeableConcept"], "{ctx}");
        }
        ("Observation", "value-quantity") => {
            assert_eq!(values, single("valueQuantity"), "{ctx}");
            assert!(types.iter().all(|t| *t == "Quantity"), "{ctx}");
        }
        ("Observation", "value-concept") => {
            assert_eq!(values, single("valueCodeableConcept"), "{ctx}");
            assert!(types.iter().all(|t| *t == "CodeableConcept"), "{ctx}");
        }
        ("Observation", "component-value-quantity") => {
            let expected: Vec<&Value> = as_array("component")
                .into_iter()
                .filter_map(|c| c.get("valueQuantity"))
                .collect();
            assert_eq!(values, expected, "{ctx}");
        }
        ("Observation" | "Encounter" | "Condition", "patient" | "subject") => {
            assert_eq!(values, single("subject"), "{ctx}");
            assert!(
                values
                    .iter()
                    .all(|v| v["reference"].as_str().unwrap().starts_with("Patient/")),
                "{ctx}"
            );
        }
        ("Observation", "date") => {
            let expected: Vec<&Value> =
                ["effectiveDateTime", "effectivePeriod", "effectiveInstant"]
                    .iter()
                    .filter_map(|k| resource.get(*k))
                    .collect();
            assert_eq!(values, expected, "{ctx}");
        }
        ("Encounter", "date") => {
            assert_eq!(values, single("period"), "{ctx}");
            assert_eq!(types, ["Period"], "{ctx}");
        }
        ("Condition", "onset-date") => {
            let expected: Vec<&Value> = ["onsetDateTime", "onsetPeriod"]
                .iter()
                .filter_map(|k| resource.get(*k))
                .collect();
            assert_eq!(values, expected, "{ctx}");
        }
        ("Claim", "patient") => assert_eq!(values, single("patient"), "{ctx}"),
        ("Immunization", "vaccine-code") => assert_eq!(values, single("vaccineCode"), "{ctx}"),
        _ => {}
    }
}
