//! What an emergency share link shows: the slice of the patient's record its sections name, as
//! a FHIR `collection` Bundle read through the engine with patient-scoped searches, and the same
//! slice as an accessible HTML page. The link rules themselves are in
//! [`curanet_auth::sharing`]; the handlers in `handlers/emergency.rs`.
//!
//! Every search names the patient (`patient=Patient/{id}`) and its section's conditions, so
//! nothing outside the chosen sections is ever read. The Patient is cut down to name, birth
//! date, gender and the Health ID (plus `contact` with the emergency-contact section).

use std::fmt::Write;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use curanet_auth::password::Pepper;
use curanet_auth::sharing::{Opened, Section, ShareLinks};
use curanet_engine::{Engine, EngineError};
use curanet_fhir_profiles::curanet::HEALTH_ID_SYSTEM;
use curanet_storage::AuthStore;
use serde_json::{Map, Value, json};

use crate::pages::{escape, layout};

/// The share-link service of a server: links kept beside the accounts, passcodes hashed with
/// the accounts' password pepper.
pub fn service(pepper: Pepper, store: Arc<dyn AuthStore>) -> Arc<ShareLinks> {
    Arc::new(ShareLinks::new(store, pepper))
}

/// Matches read per search (an emergency summary has far fewer).
const SECTION_LIMIT: u32 = 200;
/// LOINC codes of an ABO and Rh blood group result: 882-1 (ABO and Rh group), 883-9 (ABO
/// group), 10331-7 (Rh type).
pub const BLOOD_GROUP_CODES: [&str; 3] = ["882-1", "883-9", "10331-7"];
const LOINC: &str = "http://loinc.org";

/// One patient-scoped search of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionQuery {
    pub resource_type: &'static str,
    pub pairs: Vec<(String, String)>,
}

/// The searches that make up a section of `patient_id`'s record. Emergency contacts also come
/// from `Patient.contact`, which [`patient_summary`] keeps for that section.
pub fn section_queries(section: Section, patient_id: &str) -> Vec<SectionQuery> {
    let query = |resource_type: &'static str, conditions: &[(&str, &str)]| {
        let mut pairs = vec![("patient".to_string(), format!("Patient/{patient_id}"))];
        pairs.extend(
            conditions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        if !pairs.iter().any(|(k, _)| k == "_count") {
            pairs.push(("_count".into(), SECTION_LIMIT.to_string()));
        }
        SectionQuery {
            resource_type,
            pairs,
        }
    };
    let blood_codes = BLOOD_GROUP_CODES
        .iter()
        .map(|c| format!("{LOINC}|{c}"))
        .collect::<Vec<_>>()
        .join(",");
    match section {
        Section::Allergies => vec![query(
            "AllergyIntolerance",
            &[("clinical-status", "active")],
        )],
        Section::Medications => vec![
            query(
                "MedicationRequest",
                &[
                    ("status", "active"),
                    ("_include", "MedicationRequest:medication"),
                ],
            ),
            query(
                "MedicationStatement",
                &[
                    ("status", "active"),
                    ("_include", "MedicationStatement:medication"),
                ],
            ),
        ],
        Section::Conditions => vec![query(
            "Condition",
            &[("clinical-status", "active,recurrence,relapse")],
        )],
        Section::EmergencyContact => vec![query("RelatedPerson", &[("active:not", "false")])],
        Section::BloodGroup => vec![query(
            "Observation",
            &[
                ("code", blood_codes.as_str()),
                ("status", "final,amended,corrected"),
                ("_sort", "-date"),
                ("_count", "1"),
            ],
        )],
    }
}

/// The Patient as a link shows it: id, name, birth date, gender, the Health ID, and the
/// contacts when `contacts` is set.
pub fn patient_summary(patient: &Value, contacts: bool) -> Value {
    let mut out = Map::new();
    out.insert("resourceType".into(), json!("Patient"));
    for key in ["id", "name", "gender", "birthDate"] {
        if let Some(v) = patient.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let health_ids: Vec<Value> = patient["identifier"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter(|i| i["system"] == HEALTH_ID_SYSTEM)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if !health_ids.is_empty() {
        out.insert("identifier".into(), Value::Array(health_ids));
    }
    if contacts && let Some(c) = patient.get("contact") {
        out.insert("contact".into(), c.clone());
    }
    Value::Object(out)
}

/// The slice of an opened link as a `collection` Bundle: the Patient first, then each section's
/// resources in the order of [`Section::ALL`].
pub async fn slice(engine: &Engine, opened: &Opened, base: &str) -> Result<Value, EngineError> {
    let patient = engine.read("Patient", &opened.patient_id).await?;
    let patient = patient
        .resource()
        .filter(|_| !patient.deleted)
        .ok_or_else(|| EngineError::Gone(format!("Patient/{}", opened.patient_id)))?;
    let contacts = opened.sections.contains(&Section::EmergencyContact);
    let mut entries = vec![entry(base, patient_summary(&patient, contacts))];
    for section in &opened.sections {
        for query in section_queries(*section, &opened.patient_id) {
            let result = engine
                .search(query.resource_type, &query.pairs, base, true)
                .await?;
            let page = result.page;
            for version in page.resources.iter().chain(page.included.iter()) {
                if let Some(resource) = version.resource() {
                    entries.push(entry(base, resource));
                }
            }
        }
    }
    Ok(json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "meta": {"tag": [{
            "system": "https://curanet.in/fhir/CodeSystem/emergency-share",
            "code": "emergency-link",
            "display": "Shared by the patient with an emergency link"
        }]},
        "entry": entries,
    }))
}

fn entry(base: &str, resource: Value) -> Value {
    let url = format!(
        "{base}/{}/{}",
        resource["resourceType"].as_str().unwrap_or_default(),
        resource["id"].as_str().unwrap_or_default()
    );
    json!({"fullUrl": url, "resource": resource})
}

/// Whether the Accept header prefers an HTML page to JSON (browsers); ties go to JSON.
pub fn prefers_html(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (mut html, mut json) = (0.0_f32, 0.0_f32);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "application/fhir+json" | "application/json" | "application/*" | "*/*" => {
                json = json.max(q)
            }
            _ => {}
        }
    }
    html > 0.0 && html > json
}

/// A CodeableConcept as text: its `text`, else the first coding's display or code.
fn concept(value: &Value) -> Option<String> {
    if let Some(t) = value["text"].as_str() {
        return Some(t.to_string());
    }
    value["coding"].as_array()?.iter().find_map(|c| {
        c["display"]
            .as_str()
            .or_else(|| c["code"].as_str())
            .map(str::to_string)
    })
}

/// A HumanName as text.
fn human_name(name: &Value) -> Option<String> {
    if let Some(t) = name["text"].as_str() {
        return Some(t.to_string());
    }
    let mut words: Vec<&str> = name["given"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(f) = name["family"].as_str() {
        words.push(f);
    }
    (!words.is_empty()).then(|| words.join(" "))
}

/// Telecom values as "phone: +91…, email: …".
fn telecoms(value: &Value) -> Option<String> {
    let items: Vec<String> = value["telecom"]
        .as_array()?
        .iter()
        .filter_map(|t| {
            let v = t["value"].as_str()?;
            Some(match t["system"].as_str() {
                Some(s) => format!("{s}: {v}"),
                None => v.to_string(),
            })
        })
        .collect();
    (!items.is_empty()).then(|| items.join(", "))
}

/// The medication of a request or statement: its concept, or the included Medication's code.
fn medication(resource: &Value, bundle: &[&Value]) -> String {
    if let Some(text) = concept(&resource["medicationCodeableConcept"]) {
        return text;
    }
    let reference = resource["medicationReference"]["reference"]
        .as_str()
        .unwrap_or_default();
    bundle
        .iter()
        .find(|m| {
            m["resourceType"] == "Medication"
                && format!("Medication/{}", m["id"].as_str().unwrap_or_default()) == reference
        })
        .and_then(|m| concept(&m["code"]))
        .or_else(|| {
            resource["medicationReference"]["display"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Unnamed medication".into())
}

/// One list item: a bold main text and details separated by " · ".
fn item(main: &str, details: &[Option<String>]) -> String {
    let details: Vec<String> = details.iter().flatten().map(|d| escape(d)).collect();
    if details.is_empty() {
        format!("<li><strong>{}</strong></li>\n", escape(main))
    } else {
        format!(
            "<li><strong>{}</strong> · {}</li>\n",
            escape(main),
            details.join(" · ")
        )
    }
}

/// The items of a section from the Bundle's resources.
fn section_items(section: Section, resources: &[&Value]) -> Vec<String> {
    let of = |t: &'static str| resources.iter().filter(move |r| r["resourceType"] == t);
    let mut items = Vec::new();
    match section {
        Section::Allergies => {
            for a in of("AllergyIntolerance") {
                let reactions: Vec<String> = a["reaction"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|r| r["manifestation"].as_array().into_iter().flatten())
                    .filter_map(concept)
                    .collect();
                items.push(item(
                    &concept(&a["code"]).unwrap_or_else(|| "Unnamed allergy".into()),
                    &[
                        a["criticality"]
                            .as_str()
                            .map(|c| format!("criticality {c}")),
                        (!reactions.is_empty())
                            .then(|| format!("reaction: {}", reactions.join(", "))),
                    ],
                ));
            }
        }
        Section::Medications => {
            for (t, dosage) in [
                ("MedicationRequest", "dosageInstruction"),
                ("MedicationStatement", "dosage"),
            ] {
                for m in of(t) {
                    items.push(item(
                        &medication(m, resources),
                        &[m[dosage][0]["text"].as_str().map(str::to_string)],
                    ));
                }
            }
        }
        Section::Conditions => {
            for c in of("Condition") {
                items.push(item(
                    &concept(&c["code"]).unwrap_or_else(|| "Unnamed condition".into()),
                    &[c["onsetDateTime"].as_str().map(|d| format!("since {d}"))],
                ));
            }
        }
        Section::EmergencyContact => {
            let patient_contacts = of("Patient")
                .flat_map(|p| p["contact"].as_array().into_iter().flatten())
                .collect::<Vec<_>>();
            let related = of("RelatedPerson").collect::<Vec<_>>();
            for c in patient_contacts {
                let relation = c["relationship"]
                    .as_array()
                    .and_then(|r| r.iter().find_map(concept));
                items.push(item(
                    &human_name(&c["name"]).unwrap_or_else(|| "Unnamed contact".into()),
                    &[relation, telecoms(c)],
                ));
            }
            for r in related {
                let relation = r["relationship"]
                    .as_array()
                    .and_then(|r| r.iter().find_map(concept));
                items.push(item(
                    &r["name"]
                        .as_array()
                        .and_then(|n| n.iter().find_map(human_name))
                        .unwrap_or_else(|| "Unnamed contact".into()),
                    &[relation, telecoms(r)],
                ));
            }
        }
        Section::BloodGroup => {
            for o in of("Observation") {
                let value = concept(&o["valueCodeableConcept"])
                    .or_else(|| o["valueString"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "No value recorded".into());
                items.push(item(
                    &value,
                    &[
                        concept(&o["code"]),
                        o["effectiveDateTime"]
                            .as_str()
                            .map(|d| format!("recorded {d}")),
                    ],
                ));
            }
        }
    }
    items
}

/// "Unix seconds" as "2026-12-05 14:00 UTC".
fn utc(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// The slice as a page: the patient banner, then one labelled section per chosen section.
pub fn page(bundle: &Value, opened: &Opened) -> String {
    let resources: Vec<&Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .collect();
    let mut body = String::new();
    if let Some(patient) = resources.iter().find(|r| r["resourceType"] == "Patient") {
        let name = patient["name"]
            .as_array()
            .and_then(|n| n.iter().find_map(human_name))
            .unwrap_or_else(|| "Name not recorded".into());
        let _ = writeln!(
            body,
            r#"<section aria-labelledby="who"><h2 id="who">{}</h2><dl>"#,
            escape(&name)
        );
        let facts = [
            ("Born", patient["birthDate"].as_str()),
            ("Gender", patient["gender"].as_str()),
            (
                "Health ID",
                patient["identifier"]
                    .as_array()
                    .and_then(|ids| ids.iter().find_map(|i| i["value"].as_str())),
            ),
        ];
        for (term, value) in facts {
            if let Some(v) = value {
                let _ = writeln!(body, "<dt>{term}</dt><dd>{}</dd>", escape(v));
            }
        }
        body.push_str("</dl></section>\n");
    }
    for section in &opened.sections {
        let id = section.as_str().to_ascii_lowercase();
        let items = section_items(*section, &resources);
        let _ = writeln!(
            body,
            r#"<section aria-labelledby="{id}"><h2 id="{id}">{}</h2>"#,
            escape(section.title())
        );
        if items.is_empty() {
            body.push_str("<p>None recorded.</p>\n");
        } else {
            let _ = write!(body, "<ul>\n{}</ul>\n", items.concat());
        }
        body.push_str("</section>\n");
    }
    let _ = writeln!(
        body,
        "<p><small>Shared by the patient{} with CuraNet. This link stops working at {}. \
         Only the sections above were shared; their absence elsewhere says nothing.</small></p>",
        opened
            .label
            .as_deref()
            .map(|l| format!(" (\u{201c}{}\u{201d})", escape(l)))
            .unwrap_or_default(),
        escape(&utc(opened.expires_at))
    );
    layout("Emergency information", &body)
}

/// The passcode form (posted to the page's own URL), with the remaining attempts.
pub fn passcode_page(remaining: i64, wrong: bool) -> String {
    let alert = if wrong {
        format!(
            r#"<p class="alert" role="alert">The passcode is not right. {remaining} attempt{} left.</p>"#,
            if remaining == 1 { "" } else { "s" }
        )
    } else {
        format!("<p>{remaining} attempts left before the link locks.</p>")
    };
    layout(
        "Emergency information",
        &format!(
            r#"<p>The patient protected this information with a passcode. Ask them, or whoever gave you the link, for it.</p>
{alert}
<form method="post">
<label for="passcode">Passcode</label>
<input type="password" id="passcode" name="passcode" autocomplete="off" required minlength="4" maxlength="12" autofocus>
<label for="recipient">Your name and organisation (optional)</label>
<input type="text" id="recipient" name="recipient" maxlength="100" autocomplete="name">
<button type="submit">Show the information</button>
</form>"#
        ),
    )
}

/// The page of an unknown, expired, revoked or locked link (one answer for all).
pub fn not_found_page() -> String {
    layout(
        "This link is not available",
        r#"<p class="alert" role="alert">The link is not valid: it may have expired or been withdrawn by the patient.</p>"#,
    )
}

/// The page shown while other passcode attempts are being checked.
pub fn busy_page() -> String {
    layout(
        "Please try again",
        r#"<p class="alert" role="alert">Other attempts to open this link are being checked. Try again in a moment.</p>"#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, value.parse().unwrap());
        h
    }

    #[test]
    fn browsers_get_html_and_api_clients_json() {
        assert!(prefers_html(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(prefers_html(&accept("text/html")));
        assert!(!prefers_html(&accept("application/fhir+json")));
        assert!(!prefers_html(&accept("*/*")));
        assert!(!prefers_html(&accept("text/html;q=0.5, application/json")));
        assert!(!prefers_html(&accept("text/html, */*")));
        assert!(!prefers_html(&HeaderMap::new()));
    }

    #[test]
    fn every_query_names_the_patient_and_its_section() {
        for section in Section::ALL {
            let queries = section_queries(section, "p1");
            assert!(!queries.is_empty());
            for q in queries {
                assert_eq!(q.pairs[0], ("patient".into(), "Patient/p1".into()));
                assert_eq!(q.pairs.iter().filter(|(k, _)| k == "_count").count(), 1);
            }
        }
        let blood = &section_queries(Section::BloodGroup, "p1")[0];
        assert_eq!(blood.resource_type, "Observation");
        assert!(blood.pairs.contains(&(
            "code".into(),
            "http://loinc.org|882-1,http://loinc.org|883-9,http://loinc.org|10331-7".into()
        )));
        assert!(blood.pairs.contains(&("_count".into(), "1".into())));
        let types: Vec<&str> = section_queries(Section::Medications, "p1")
            .iter()
            .map(|q| q.resource_type)
            .collect();
        assert_eq!(types, ["MedicationRequest", "MedicationStatement"]);
    }

    #[test]
    fn the_patient_keeps_only_what_identifies_them() {
        let patient = json!({
            "resourceType": "Patient", "id": "p1",
            "name": [{"given": ["Asha"], "family": "Rao"}],
            "birthDate": "1990-04-30", "gender": "female",
            "telecom": [{"system": "phone", "value": "+911234"}],
            "address": [{"city": "Pune"}],
            "identifier": [
                {"system": HEALTH_ID_SYSTEM, "value": "HID-1"},
                {"system": "urn:other", "value": "X"}
            ],
            "contact": [{"name": {"text": "Ravi"}}]
        });
        let cut = patient_summary(&patient, false);
        assert_eq!(
            cut["identifier"],
            json!([{"system": HEALTH_ID_SYSTEM, "value": "HID-1"}])
        );
        assert!(cut.get("telecom").is_none() && cut.get("address").is_none());
        assert!(cut.get("contact").is_none());
        assert_eq!(
            patient_summary(&patient, true)["contact"][0]["name"]["text"],
            "Ravi"
        );
    }

    #[test]
    fn the_page_escapes_everything() {
        let bundle = json!({"entry": [
            {"resource": {"resourceType": "Patient", "name": [{"text": "<script>x</script>"}]}},
            {"resource": {"resourceType": "AllergyIntolerance",
                          "code": {"text": "Peanut <b>"}, "criticality": "high"}}
        ]});
        let opened = Opened {
            link_id: "l".into(),
            patient_id: "p".into(),
            sections: vec![Section::Allergies, Section::BloodGroup],
            label: Some("\"trip\"".into()),
            expires_at: 1_800_000_000,
        };
        let html = page(&bundle, &opened);
        assert!(!html.contains("<script>x"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("Peanut &lt;b&gt;"));
        assert!(html.contains(r#"<h2 id="blood_group">Blood group</h2>"#));
        assert!(html.contains("None recorded."));
        assert!(!html.contains("\"trip\""));
        let form = passcode_page(3, true);
        assert!(form.contains(r#"<form method="post">"#));
        assert!(form.contains(r#"<label for="passcode">"#));
        assert!(form.contains("3 attempts left"));
    }
}
