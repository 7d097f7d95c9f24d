//! Operations: `Patient/[id]/$everything` (compartment, referenced resources, `_type`, `_since`,
//! paging, errors, POST and type level) and `Observation/$lastn` (newest per code, `max`, `code`,
//! `category` and patient restrictions, paging), and `$meta`, `$meta-add`, `$meta-delete`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Request, unique};
use crate::{Client, Outcome, cases, ensure};

cases!("operations";
    everything_returns_compartment_and_referenced,
    everything_type_filter,
    everything_since,
    everything_paging_visits_everything_once,
    everything_unknown_deleted_and_other_types,
    everything_post_and_type_level,
    lastn_newest_per_code,
    lastn_code_restriction,
    lastn_category_restriction,
    lastn_patient_restriction,
    lastn_errors_and_capabilities,
    meta_add_and_delete_write_versions,
    meta_lists_what_is_in_use,
);

async fn create(c: &Client, resource: Value) -> Result<String, String> {
    let r = c.create(&resource).await?;
    r.expect(201)?;
    Ok(r.id())
}

async fn searchset(c: &Client, path: &str) -> Result<Value, String> {
    let r = c.get(path).await?;
    r.expect(200)?;
    if r.json["type"] != "searchset" {
        return Err(format!("{path}: not a searchset: {}", r.text));
    }
    Ok(r.json.clone())
}

/// `Type/id` of the entries with this search mode, in Bundle order.
fn refs(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode)
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap_or(""),
                e["resource"]["id"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(String::from)
}

/// Percent-encodes a query value (instants carry `+` and `:`).
fn enc(v: &str) -> String {
    v.replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
        .replace('|', "%7C")
}

fn patient_json(family: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family}]})
}

fn observation(patient: &str, system: &str, code: &str, date: Option<&str>) -> Value {
    let mut o = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": format!("Patient/{patient}")}});
    if let Some(d) = date {
        o["effectiveDateTime"] = json!(d);
    }
    o
}

fn with_category(mut o: Value, category: &str) -> Value {
    o["category"] = json!([{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": category
    }]}]);
    o
}

/// A patient with an Observation, an Encounter and a Condition, a Practitioner who performed
/// the Observation and took part in the Encounter, an Organization managing the patient and a
/// Location of the Encounter; and another patient with an Observation by the same Practitioner.
struct World {
    patient: String,
    observation: String,
    encounter: String,
    condition: String,
    practitioner: String,
    organization: String,
    location: String,
    other_patient: String,
    other_observation: String,
}

async fn world(c: &Client) -> Result<World, String> {
    let u = unique();
    let practitioner = create(
        c,
        json!({"resourceType": "Practitioner", "name": [{"family": format!("Doc{u}")}]}),
    )
    .await?;
    let organization = create(
        c,
        json!({"resourceType": "Organization", "name": format!("Org{u}")}),
    )
    .await?;
    let location = create(
        c,
        json!({"resourceType": "Location", "name": format!("Ward{u}")}),
    )
    .await?;
    let mut p = patient_json(&format!("Every{u}"));
    p["managingOrganization"] = json!({"reference": format!("Organization/{organization}")});
    let patient = create(c, p).await?;
    let mut o = observation(&patient, "urn:test:everything", &u, Some("2024-01-01"));
    o["performer"] = json!([{"reference": format!("Practitioner/{practitioner}")}]);
    let observation_id = create(c, o).await?;
    let encounter = create(
        c,
        json!({"resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": format!("Patient/{patient}")},
        "participant": [{"individual": {"reference": format!("Practitioner/{practitioner}")}}],
        "location": [{"location": {"reference": format!("Location/{location}")}}]}),
    )
    .await?;
    let condition = create(
        c,
        json!({"resourceType": "Condition", "code": {"text": format!("Fever{u}")},
        "subject": {"reference": format!("Patient/{patient}")}}),
    )
    .await?;
    let other_patient = create(c, patient_json(&format!("Other{u}"))).await?;
    let mut o = observation(&other_patient, "urn:test:everything", &u, None);
    o["performer"] = json!([{"reference": format!("Practitioner/{practitioner}")}]);
    let other_observation = create(c, o).await?;
    Ok(World {
        patient,
        observation: observation_id,
        encounter,
        condition,
        practitioner,
        organization,
        location,
        other_patient,
        other_observation,
    })
}

async fn everything_returns_compartment_and_referenced(c: Client) -> Outcome {
    let w = world(&c).await?;
    let b = searchset(&c, &format!("Patient/{}/$everything", w.patient)).await?;
    let matches = sorted(refs(&b, "match"));
    let want = sorted(vec![
        format!("Patient/{}", w.patient),
        format!("Observation/{}", w.observation),
        format!("Encounter/{}", w.encounter),
        format!("Condition/{}", w.condition),
    ]);
    ensure!(matches == want, "matches {matches:?}, expected {want:?}");
    let included = sorted(refs(&b, "include"));
    let want_included = sorted(vec![
        format!("Practitioner/{}", w.practitioner),
        format!("Organization/{}", w.organization),
        format!("Location/{}", w.location),
    ]);
    ensure!(
        included == want_included,
        "referenced {included:?}, expected {want_included:?}"
    );
    let text = b.to_string();
    ensure!(
        !text.contains(&w.other_patient) && !text.contains(&w.other_observation),
        "another patient's data is in the result"
    );
    ensure!(b["total"] == 4, "total {} (matches only)", b["total"]);
    Ok(())
}

async fn everything_type_filter(c: Client) -> Outcome {
    let w = world(&c).await?;
    let b = searchset(
        &c,
        &format!(
            "Patient/{}/$everything?_type=Observation,Condition",
            w.patient
        ),
    )
    .await?;
    let got = sorted(refs(&b, "match"));
    let want = sorted(vec![
        format!("Observation/{}", w.observation),
        format!("Condition/{}", w.condition),
    ]);
    ensure!(got == want, "_type=Observation,Condition: {got:?}");
    ensure!(
        refs(&b, "include").is_empty(),
        "_type left referenced resources in: {:?}",
        refs(&b, "include")
    );
    let b = searchset(
        &c,
        &format!(
            "Patient/{}/$everything?_type=Practitioner&_type=Patient",
            w.patient
        ),
    )
    .await?;
    ensure!(
        refs(&b, "match") == [format!("Patient/{}", w.patient)]
            && refs(&b, "include") == [format!("Practitioner/{}", w.practitioner)],
        "_type=Practitioner&_type=Patient: {:?} {:?}",
        refs(&b, "match"),
        refs(&b, "include")
    );
    c.get(&format!("Patient/{}/$everything?_type=Bogus", w.patient))
        .await?
        .expect_outcome(400)?;
    Ok(())
}

async fn everything_since(c: Client) -> Outcome {
    let u = unique();
    let patient = create(&c, patient_json(&format!("Since{u}"))).await?;
    create(
        &c,
        observation(&patient, "urn:test:since", "old", Some("2024-01-01")),
    )
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = c
        .create(&observation(
            &patient,
            "urn:test:since",
            "new",
            Some("2024-01-02"),
        ))
        .await?;
    r.expect(201)?;
    let newer = r.id();
    let since = r.json["meta"]["lastUpdated"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let b = searchset(
        &c,
        &format!("Patient/{patient}/$everything?_since={}", enc(&since)),
    )
    .await?;
    let got = refs(&b, "match");
    ensure!(
        got == [format!("Observation/{newer}")],
        "_since={since}: {got:?}"
    );
    let all = searchset(
        &c,
        &format!("Patient/{patient}/$everything?_since=2000-01-01T00:00:00Z"),
    )
    .await?;
    ensure!(
        refs(&all, "match").len() == 3,
        "_since in the past: {:?}",
        refs(&all, "match")
    );
    c.get(&format!("Patient/{patient}/$everything?_since=yesterday"))
        .await?
        .expect_outcome(400)?;
    Ok(())
}

async fn everything_paging_visits_everything_once(c: Client) -> Outcome {
    let u = unique();
    let practitioner = create(
        &c,
        json!({"resourceType": "Practitioner", "name": [{"family": format!("Pager{u}")}]}),
    )
    .await?;
    let patient = create(&c, patient_json(&format!("Paged{u}"))).await?;
    let mut want = vec![
        format!("Patient/{patient}"),
        format!("Practitioner/{practitioner}"),
    ];
    for i in 0..3 {
        let mut o = observation(&patient, "urn:test:paging", &format!("c{i}"), None);
        o["performer"] = json!([{"reference": format!("Practitioner/{practitioner}")}]);
        want.push(format!("Observation/{}", create(&c, o).await?));
    }
    for i in 0..2 {
        let id = create(
            &c,
            json!({"resourceType": "Condition", "code": {"text": format!("C{i}{u}")},
            "subject": {"reference": format!("Patient/{patient}")}}),
        )
        .await?;
        want.push(format!("Condition/{id}"));
    }
    let other = create(&c, patient_json(&format!("Bystander{u}"))).await?;
    let mut url = format!("Patient/{patient}/$everything?_count=2");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        ensure!(pages <= 10, "more than 10 pages");
        let b = searchset(&c, &url).await?;
        let entries: Vec<String> = [refs(&b, "match"), refs(&b, "include")].concat();
        ensure!(entries.len() <= 2, "page of {}", entries.len());
        // Bundle order is resource type, then id.
        let in_order: Vec<String> = b["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["resource"]["resourceType"].as_str().map(String::from))
            .collect();
        ensure!(
            in_order.windows(2).all(|w| w[0] <= w[1]),
            "page not in type order: {in_order:?}"
        );
        seen.extend(entries);
        // Writes between pages (elsewhere) must not shift what the cursor sees.
        create(&c, observation(&other, "urn:test:paging", "noise", None)).await?;
        match next_link(&b) {
            Some(next) => url = next,
            None => break,
        }
    }
    ensure!(pages == 4, "7 entries in pages of 2 took {pages} pages");
    let mut unique_seen = seen.clone();
    unique_seen.sort();
    unique_seen.dedup();
    ensure!(
        unique_seen.len() == seen.len(),
        "an entry came twice: {seen:?}"
    );
    ensure!(
        unique_seen == sorted(want.clone()),
        "paging saw {unique_seen:?}, expected {:?}",
        sorted(want)
    );
    Ok(())
}

async fn everything_unknown_deleted_and_other_types(c: Client) -> Outcome {
    c.get(&format!("Patient/nobody{}/$everything", unique()))
        .await?
        .expect_outcome(404)?;
    let patient = create(&c, patient_json(&format!("Gone{}", unique()))).await?;
    c.delete(&format!("Patient/{patient}")).await?;
    c.get(&format!("Patient/{patient}/$everything"))
        .await?
        .expect_outcome(410)?;
    let obs = create(
        &c,
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
    )
    .await?;
    c.get(&format!("Observation/{obs}/$everything"))
        .await?
        .expect_outcome(404)?;
    c.get("Bogus/1/$everything").await?.expect_outcome(404)?;
    Ok(())
}

async fn everything_post_and_type_level(c: Client) -> Outcome {
    let w = world(&c).await?;
    let get = searchset(&c, &format!("Patient/{}/$everything", w.patient)).await?;
    let post = c
        .send(Request {
            method: Method::POST,
            path: &format!("Patient/{}/$everything", w.patient),
            body: None,
            headers: vec![],
        })
        .await?;
    post.expect(200)?;
    ensure!(
        sorted(refs(&post.json, "match")) == sorted(refs(&get, "match")),
        "POST without a body differs from GET"
    );
    let params = json!({"resourceType": "Parameters",
        "parameter": [{"name": "_type", "valueString": "Condition"}]});
    let post = c
        .write(
            Method::POST,
            &format!("Patient/{}/$everything", w.patient),
            &params,
            vec![],
        )
        .await?;
    post.expect(200)?;
    ensure!(
        refs(&post.json, "match") == [format!("Condition/{}", w.condition)],
        "POST with Parameters _type=Condition: {}",
        post.text
    );
    // Type level: every patient's compartment, paged.
    let b = searchset(&c, "Patient/$everything?_count=3").await?;
    let first = [refs(&b, "match"), refs(&b, "include")].concat();
    ensure!(
        first.len() == 3,
        "type-level first page has {} entries",
        first.len()
    );
    let next = next_link(&b).ok_or("type-level $everything has no next link")?;
    let b2 = searchset(&c, &next).await?;
    let second = [refs(&b2, "match"), refs(&b2, "include")].concat();
    ensure!(
        !second.is_empty() && second.iter().all(|r| !first.contains(r)),
        "second page {second:?} repeats the first {first:?}"
    );
    let ours = searchset(
        &c,
        &format!(
            "Patient/$everything?_type=Condition&_since={}",
            enc("2000-01-01T00:00:00Z")
        ),
    )
    .await?;
    ensure!(
        refs(&ours, "match")
            .iter()
            .all(|r| r.starts_with("Condition/")),
        "type-level _type"
    );
    Ok(())
}

/// Observations of one patient: code A at three dates, code B at two; returns
/// (system, patient, [a1, a2, a3] oldest first, [b1, b2] oldest first).
async fn two_codes(c: &Client) -> Result<(String, String, Vec<String>, Vec<String>), String> {
    let u = unique();
    let system = format!("urn:test:lastn:{u}");
    let patient = create(c, patient_json(&format!("Last{u}"))).await?;
    let mut a = Vec::new();
    // Created out of date order: ranking is by effective date, not by creation.
    for d in ["2024-02-01", "2024-03-01T08:30:00+05:30", "2024-01-01"] {
        a.push((
            d,
            create(c, observation(&patient, &system, "A", Some(d))).await?,
        ));
    }
    a.sort();
    let mut b = Vec::new();
    for d in ["2023-05-05T10:00:00Z", "2023-06-06"] {
        b.push(create(c, observation(&patient, &system, "B", Some(d))).await?);
    }
    Ok((
        system,
        patient,
        a.into_iter().map(|(_, id)| id).collect(),
        b,
    ))
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .filter_map(|e| e["resource"]["id"].as_str().map(String::from))
        .collect()
}

async fn lastn_newest_per_code(c: Client) -> Outcome {
    let (_, patient, a, b) = two_codes(&c).await?;
    let one = ids(&searchset(&c, &format!("Observation/$lastn?patient={patient}")).await?);
    ensure!(
        one == [a[2].clone(), b[1].clone()],
        "max=1 (default): {one:?}, expected newest A then newest B"
    );
    let two = ids(&searchset(
        &c,
        &format!("Observation/$lastn?max=2&patient=Patient/{patient}"),
    )
    .await?);
    let want = vec![a[2].clone(), a[1].clone(), b[1].clone(), b[0].clone()];
    ensure!(two == want, "max=2: {two:?}, expected {want:?}");
    let all = ids(&searchset(
        &c,
        &format!("Observation/$lastn?max=10&subject=Patient/{patient}"),
    )
    .await?);
    ensure!(all.len() == 5, "max=10: {all:?}");
    // Paging one at a time keeps the order.
    let mut url = format!("Observation/$lastn?max=2&patient={patient}&_count=1");
    let mut paged = Vec::new();
    for _ in 0..10 {
        let page = searchset(&c, &url).await?;
        ensure!(page["total"] == 4, "total {}", page["total"]);
        paged.extend(ids(&page));
        match next_link(&page) {
            Some(next) => url = next,
            None => break,
        }
    }
    ensure!(paged == want, "paged: {paged:?}, expected {want:?}");
    Ok(())
}

async fn lastn_code_restriction(c: Client) -> Outcome {
    let (system, patient, a, b) = two_codes(&c).await?;
    let only_a = ids(&searchset(
        &c,
        &format!(
            "Observation/$lastn?max=2&patient={patient}&code={}",
            enc(&format!("{system}|A"))
        ),
    )
    .await?);
    ensure!(
        only_a == [a[2].clone(), a[1].clone()],
        "code=A max=2: {only_a:?}"
    );
    let both = ids(&searchset(
        &c,
        &format!(
            "Observation/$lastn?patient={patient}&code={},{}",
            enc(&format!("{system}|A")),
            enc(&format!("{system}|B"))
        ),
    )
    .await?);
    ensure!(both == [a[2].clone(), b[1].clone()], "code=A,B: {both:?}");
    let no_system =
        ids(&searchset(&c, &format!("Observation/$lastn?patient={patient}&code=B")).await?);
    ensure!(no_system == [b[1].clone()], "code=B: {no_system:?}");
    let none = ids(&searchset(
        &c,
        &format!(
            "Observation/$lastn?patient={patient}&code={}",
            enc(&format!("{system}|C"))
        ),
    )
    .await?);
    ensure!(none.is_empty(), "code=C: {none:?}");
    Ok(())
}

async fn lastn_category_restriction(c: Client) -> Outcome {
    let u = unique();
    let system = format!("urn:test:lastn:{u}");
    let patient = create(&c, patient_json(&format!("Cat{u}"))).await?;
    let mut made = Vec::new();
    for (category, date) in [
        ("vital-signs", "2024-01-01"),
        ("vital-signs", "2024-03-01"),
        ("laboratory", "2024-02-01"),
        ("laboratory", "2024-04-01"),
    ] {
        let o = with_category(observation(&patient, &system, "A", Some(date)), category);
        made.push(create(&c, o).await?);
    }
    // The newest of all is laboratory: vital signs are ranked among themselves.
    let vital = ids(&searchset(
        &c,
        &format!("Observation/$lastn?patient={patient}&category=vital-signs"),
    )
    .await?);
    ensure!(
        vital == [made[1].clone()],
        "category=vital-signs: {vital:?}"
    );
    let lab = ids(&searchset(
        &c,
        &format!(
            "Observation/$lastn?patient={patient}&max=2&category={}",
            enc("http://terminology.hl7.org/CodeSystem/observation-category|laboratory")
        ),
    )
    .await?);
    ensure!(
        lab == [made[3].clone(), made[2].clone()],
        "category=laboratory max=2: {lab:?}"
    );
    let any = ids(&searchset(&c, &format!("Observation/$lastn?patient={patient}")).await?);
    ensure!(any == [made[3].clone()], "no category: {any:?}");
    Ok(())
}

async fn lastn_patient_restriction(c: Client) -> Outcome {
    let u = unique();
    let system = format!("urn:test:lastn:{u}");
    let code = enc(&format!("{system}|A"));
    let mut newest = Vec::new();
    let mut patients = Vec::new();
    for n in 0..2 {
        let patient = create(&c, patient_json(&format!("Pat{n}{u}"))).await?;
        create(&c, observation(&patient, &system, "A", Some("2024-01-01"))).await?;
        newest.push(
            create(
                &c,
                observation(&patient, &system, "A", Some(&format!("2024-0{}-01", 5 + n))),
            )
            .await?,
        );
        patients.push(patient);
    }
    let first = ids(&searchset(
        &c,
        &format!("Observation/$lastn?patient={}&code={code}", patients[0]),
    )
    .await?);
    ensure!(first == [newest[0].clone()], "patient 1: {first:?}");
    let second = ids(&searchset(
        &c,
        &format!(
            "Observation/$lastn?subject=Patient/{}&code={code}",
            patients[1]
        ),
    )
    .await?);
    ensure!(second == [newest[1].clone()], "patient 2: {second:?}");
    let everyone = ids(&searchset(&c, &format!("Observation/$lastn?code={code}")).await?);
    ensure!(
        everyone == [newest[1].clone(), newest[0].clone()],
        "no patient: newest of each patient expected, got {everyone:?}"
    );
    Ok(())
}

async fn lastn_errors_and_capabilities(c: Client) -> Outcome {
    for q in ["max=0", "max=many", "max=-1"] {
        c.get(&format!("Observation/$lastn?{q}"))
            .await?
            .expect_outcome(400)?;
    }
    c.get("Patient/$lastn").await?.expect_outcome(404)?;
    c.get("Bogus/$lastn").await?.expect_outcome(404)?;
    let r = c.get("metadata").await?;
    let ops_of = |t: &str| {
        r.json["rest"][0]["resource"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["type"] == t)
            .map(|e| e["operation"].to_string())
            .unwrap_or_default()
    };
    ensure!(
        ops_of("Patient").contains("Patient-everything"),
        "Patient operations: {}",
        ops_of("Patient")
    );
    ensure!(
        ops_of("Observation").contains("Observation-lastn"),
        "Observation operations: {}",
        ops_of("Observation")
    );
    Ok(())
}

/// The `return` Meta of a `$meta` operation's `Parameters`.
fn returned_meta(r: &crate::Reply) -> Result<Value, String> {
    r.expect(200)?;
    ensure!(
        r.json["resourceType"] == "Parameters" && r.json["parameter"][0]["name"] == "return",
        "not a Parameters with a return: {}",
        r.text
    );
    Ok(r.json["parameter"][0]["valueMeta"].clone())
}

fn meta_parameters(meta: Value) -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": meta}]})
}

/// Whether a list of codings holds `system|code`.
fn has_coding(list: &Value, system: &str, code: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .any(|c| c["system"] == system && c["code"] == code)
}

async fn meta_add_and_delete_write_versions(c: Client) -> Outcome {
    let tag_system = format!("urn:test:{}", unique());
    let confidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
    let profile = format!("http://example.org/fhir/StructureDefinition/p-{}", unique());
    let id = create(
        &c,
        json!({"resourceType": "Patient", "meta": {"tag": [{"system": tag_system, "code": "old"}]}}),
    )
    .await?;
    let path = format!("Patient/{id}");
    let meta = returned_meta(&c.get(&format!("{path}/$meta")).await?)?;
    ensure!(
        meta["versionId"] == "1" && has_coding(&meta["tag"], &tag_system, "old"),
        "$meta of version 1: {meta}"
    );
    let add = meta_parameters(json!({
        "tag": [{"system": tag_system, "code": "vip", "display": "VIP"}, {"system": tag_system, "code": "old"}],
        "security": [{"system": confidentiality, "code": "R"}],
        "profile": [profile]
    }));
    let r = c
        .write(Method::POST, &format!("{path}/$meta-add"), &add, vec![])
        .await?;
    let meta = returned_meta(&r)?;
    ensure!(
        meta["versionId"] == "2"
            && meta["tag"].as_array().map(Vec::len) == Some(2)
            && has_coding(&meta["tag"], &tag_system, "vip")
            && has_coding(&meta["security"], confidentiality, "R")
            && meta["profile"] == json!([profile]),
        "$meta-add answered {meta}"
    );
    let read = c.get(&path).await?;
    ensure!(
        read.version_id() == "2" && has_coding(&read.json["meta"]["tag"], &tag_system, "vip"),
        "read after $meta-add: {}",
        read.text
    );
    // Adding what is there already writes nothing.
    let r = c
        .write(Method::POST, &format!("{path}/$meta-add"), &add, vec![])
        .await?;
    ensure!(
        returned_meta(&r)?["versionId"] == "2",
        "a no-op $meta-add wrote a version: {}",
        r.text
    );
    let delete = meta_parameters(
        json!({"tag": [{"system": tag_system, "code": "vip"}], "profile": [profile]}),
    );
    let r = c
        .write(
            Method::POST,
            &format!("{path}/$meta-delete"),
            &delete,
            vec![],
        )
        .await?;
    let meta = returned_meta(&r)?;
    ensure!(
        meta["versionId"] == "3"
            && !has_coding(&meta["tag"], &tag_system, "vip")
            && has_coding(&meta["tag"], &tag_system, "old")
            && has_coding(&meta["security"], confidentiality, "R")
            && meta.get("profile").is_none(),
        "$meta-delete answered {meta}"
    );
    let history = c.get(&format!("{path}/_history")).await?;
    history.expect(200)?;
    ensure!(
        history.json["entry"].as_array().map(Vec::len) == Some(3),
        "history does not show both meta changes: {}",
        history.text
    );
    // Errors: not a Parameters (400), unknown resource (404), deleted (410).
    c.write(
        Method::POST,
        &format!("{path}/$meta-add"),
        &json!({"resourceType": "Patient"}),
        vec![],
    )
    .await?
    .expect_outcome(400)?;
    c.write(
        Method::POST,
        &format!("Patient/none-{}/$meta-add", unique()),
        &add,
        vec![],
    )
    .await?
    .expect_outcome(404)?;
    c.delete(&path).await?;
    c.get(&format!("{path}/$meta")).await?.expect_outcome(410)?;
    Ok(())
}

async fn meta_lists_what_is_in_use(c: Client) -> Outcome {
    let tag_system = format!("urn:test:{}", unique());
    let profile = format!("http://example.org/fhir/StructureDefinition/o-{}", unique());
    let mut obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "meta"},
        "meta": {"tag": [{"system": tag_system, "code": "obs"}], "profile": [profile]}});
    let obs_id = create(&c, obs.clone()).await?;
    create(
        &c,
        json!({"resourceType": "Patient", "meta": {"tag": [{"system": tag_system, "code": "pat"}]}}),
    )
    .await?;
    let type_level = returned_meta(&c.get("Observation/$meta").await?)?;
    ensure!(
        has_coding(&type_level["tag"], &tag_system, "obs")
            && !has_coding(&type_level["tag"], &tag_system, "pat")
            && type_level["profile"].to_string().contains(&profile),
        "Observation/$meta: {type_level}"
    );
    for r in [
        c.get("$meta").await?,
        c.write(
            Method::POST,
            "$meta",
            &json!({"resourceType": "Parameters"}),
            vec![],
        )
        .await?,
    ] {
        let system_level = returned_meta(&r)?;
        ensure!(
            has_coding(&system_level["tag"], &tag_system, "obs")
                && has_coding(&system_level["tag"], &tag_system, "pat"),
            "$meta: {system_level}"
        );
    }
    // What a newer version drops, or a delete removes, is no longer in use.
    obs["id"] = json!(obs_id);
    obs["meta"] = json!({"tag": [{"system": tag_system, "code": "obs2"}]});
    c.update(&obs).await?.expect(200)?;
    let type_level = returned_meta(&c.get("Observation/$meta").await?)?;
    ensure!(
        has_coding(&type_level["tag"], &tag_system, "obs2")
            && !has_coding(&type_level["tag"], &tag_system, "obs")
            && !type_level.to_string().contains(&profile),
        "Observation/$meta after the update: {type_level}"
    );
    c.delete(&format!("Observation/{obs_id}")).await?;
    let type_level = returned_meta(&c.get("Observation/$meta").await?)?;
    ensure!(
        !has_coding(&type_level["tag"], &tag_system, "obs2"),
        "a deleted resource's tag is still listed: {type_level}"
    );
    c.get("Bogus/$meta").await?.expect_outcome(404)?;
    let r = c.get("metadata").await?;
    let patient_ops = r.json["rest"][0]["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["type"] == "Patient")
        .map(|e| e["operation"].to_string())
        .unwrap_or_default();
    ensure!(
        [
            "Resource-meta\"",
            "Resource-meta-add",
            "Resource-meta-delete"
        ]
        .iter()
        .all(|d| patient_ops.contains(d)),
        "Patient operations: {patient_ops}"
    );
    Ok(())
}
