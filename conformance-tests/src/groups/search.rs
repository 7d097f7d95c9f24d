//! Type-level search: every parameter type, prefixes, modifiers, OR/AND, paging, totals,
//! `_sort`, `_summary=count`, strict/lenient handling, POST `_search`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Request, unique};
use crate::{Client, Outcome, cases, ensure};

cases!("search";
    token_identifier_with_and_without_system,
    string_is_prefix_case_and_accent_insensitive,
    string_exact_and_contains,
    date_prefixes_follow_ranges,
    reference_in_every_form,
    token_not_and_missing,
    quantity_with_prefix_and_unit,
    comma_is_or_repetition_is_and,
    paging_visits_every_match_once,
    last_updated_and_sort,
    unknown_parameters_reported_or_refused,
    summary_count_gives_only_the_total,
    post_search_matches_get,
    invalid_values_are_400,
    updates_and_deletes_change_results,
    id_parameter,
    capability_statement_lists_search_parameters,
    chained_parameters_follow_references,
    has_finds_resources_by_what_refers_to_them,
    include_and_revinclude_add_related_resources,
    include_iterate_follows_included_resources,
    sort_by_parameters_pages_in_order,
    composite_parameters_match_within_one_tuple,
    token_text_of_type_and_reference_identifier,
    uri_above_and_below,
    ucum_quantities_compare_in_canonical_units,
    summary_and_elements_return_marked_subsets,
    narrative_text_search,
    previous_links_page_backward,
    system_level_search_over_types,
);

async fn sort_by_parameters_pages_in_order(c: Client) -> Outcome {
    let family = format!("Sorted{}", unique());
    let mut by_birth = Vec::new();
    for (gender, birth) in [
        ("male", Some("1990-01-01")),
        ("female", Some("1970-05-05")),
        ("male", Some("1980-03-03")),
        ("female", None),
    ] {
        let mut p = patient(&family);
        p["gender"] = json!(gender);
        if let Some(b) = birth {
            p["birthDate"] = json!(b);
        }
        by_birth.push((birth, gender, create(&c, p).await?));
    }
    let id_of = |b: Option<&str>| {
        by_birth
            .iter()
            .find(|x| x.0 == b)
            .map(|x| x.2.clone())
            .unwrap_or_default()
    };
    let asc = ids(&search(&c, &format!("Patient?family={family}&_sort=birthdate")).await?);
    let want_asc = vec![
        id_of(Some("1970-05-05")),
        id_of(Some("1980-03-03")),
        id_of(Some("1990-01-01")),
        id_of(None),
    ];
    ensure!(asc == want_asc, "_sort=birthdate (missing last): {asc:?}");
    let desc = ids(&search(&c, &format!("Patient?family={family}&_sort=-birthdate")).await?);
    let want_desc = vec![
        id_of(Some("1990-01-01")),
        id_of(Some("1980-03-03")),
        id_of(Some("1970-05-05")),
        id_of(None),
    ];
    ensure!(desc == want_desc, "_sort=-birthdate: {desc:?}");
    let two = ids(&search(
        &c,
        &format!("Patient?family={family}&_sort=gender,-birthdate"),
    )
    .await?);
    let want_two = vec![
        id_of(Some("1970-05-05")),
        id_of(None),
        id_of(Some("1990-01-01")),
        id_of(Some("1980-03-03")),
    ];
    ensure!(two == want_two, "_sort=gender,-birthdate: {two:?}");
    // Paging one at a time keeps the order.
    let mut url = format!("Patient?family={family}&_sort=-birthdate&_count=1");
    let mut paged = Vec::new();
    for _ in 0..10 {
        let b = search(&c, &url).await?;
        paged.extend(ids(&b));
        match b["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
        {
            Some(l) => url = l["url"].as_str().unwrap_or_default().to_string(),
            None => break,
        }
    }
    ensure!(paged == want_desc, "paged sort: {paged:?}");
    Ok(())
}

/// An Organization, a Patient of it, an Encounter of the Patient and an Observation of both,
/// all marked with a unique text; returns (marker, org, patient, encounter, observation) ids.
async fn small_graph(c: &Client) -> Result<(String, String, String, String, String), String> {
    let u = unique();
    let org = create(
        c,
        json!({"resourceType": "Organization", "name": format!("Clinic{u}")}),
    )
    .await?;
    let pat = create(
        c,
        json!({"resourceType": "Patient", "name": [{"family": format!("Graph{u}")}],
        "managingOrganization": {"reference": format!("Organization/{org}")}}),
    )
    .await?;
    let enc = create(
        c,
        json!({"resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": format!("Patient/{pat}")}}),
    )
    .await?;
    let obs = create(c, json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "urn:test:graph", "code": u}]},
        "subject": {"reference": format!("Patient/{pat}")}, "encounter": {"reference": format!("Encounter/{enc}")}})).await?;
    Ok((u, org, pat, enc, obs))
}

fn included(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap_or(""),
                e["resource"]["id"].as_str().unwrap_or("")
            )
        })
        .collect()
}

async fn chained_parameters_follow_references(c: Client) -> Outcome {
    let (u, _, _, _, obs) = small_graph(&c).await?;
    for q in [
        format!("Observation?subject.name=graph{u}"),
        format!("Observation?subject:Patient.family=Graph{u}"),
        format!("Observation?patient.organization.name=clinic{u}"),
        format!("Observation?encounter.subject:Patient.family:exact=Graph{u}"),
    ] {
        ensure!(ids(&search(&c, &q).await?) == [obs.clone()], "{q}");
    }
    ensure!(
        count(&c, &format!("Observation?subject.name=nobody{u}")).await? == 0,
        "chain matched a wrong name"
    );
    Ok(())
}

async fn has_finds_resources_by_what_refers_to_them(c: Client) -> Outcome {
    let (u, _, pat, enc, _) = small_graph(&c).await?;
    let found = ids(&search(
        &c,
        &format!("Patient?_has:Observation:subject:code=urn:test:graph|{u}"),
    )
    .await?);
    ensure!(found == [pat.clone()], "_has: {found:?}");
    let nested = ids(&search(
        &c,
        &format!("Patient?_has:Encounter:patient:_has:Observation:encounter:code={u}"),
    )
    .await?);
    ensure!(nested == [pat], "nested _has: {nested:?}");
    let enc_found = ids(&search(
        &c,
        &format!("Encounter?_has:Observation:encounter:code={u}"),
    )
    .await?);
    ensure!(enc_found == [enc], "_has on Encounter: {enc_found:?}");
    ensure!(
        count(
            &c,
            &format!("Patient?_has:Observation:subject:code=none{u}")
        )
        .await?
            == 0,
        "_has matched nothing expected"
    );
    Ok(())
}

async fn include_and_revinclude_add_related_resources(c: Client) -> Outcome {
    let (u, _, pat, _, obs) = small_graph(&c).await?;
    let b = search(
        &c,
        &format!("Observation?code={u}&_include=Observation:subject"),
    )
    .await?;
    ensure!(ids(&b) == [obs.clone()], "matches {:?}", ids(&b));
    ensure!(
        included(&b) == [format!("Patient/{pat}")],
        "_include: {:?}",
        included(&b)
    );
    ensure!(
        b["total"] == 1,
        "includes must not count in total: {}",
        b["total"]
    );
    let none = search(
        &c,
        &format!("Observation?code={u}&_include=Observation:subject:Group"),
    )
    .await?;
    ensure!(
        included(&none).is_empty(),
        "typed _include added {:?}",
        included(&none)
    );
    let rev = search(
        &c,
        &format!("Patient?_id={pat}&_revinclude=Observation:subject"),
    )
    .await?;
    ensure!(
        included(&rev) == [format!("Observation/{obs}")],
        "_revinclude: {:?}",
        included(&rev)
    );
    Ok(())
}

async fn include_iterate_follows_included_resources(c: Client) -> Outcome {
    let (u, org, pat, _, _) = small_graph(&c).await?;
    let b = search(&c, &format!("Observation?code={u}&_include=Observation:subject&_include:iterate=Patient:organization")).await?;
    let mut got = included(&b);
    got.sort();
    let mut want = vec![format!("Organization/{org}"), format!("Patient/{pat}")];
    want.sort();
    ensure!(got == want, "_include:iterate: {got:?}");
    Ok(())
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

async fn search(c: &Client, query: &str) -> Result<Value, String> {
    let r = c.get(query).await?;
    r.expect(200)?;
    if r.json["type"] != "searchset" {
        return Err(format!("{query}: not a searchset: {}", r.text));
    }
    Ok(r.json.clone())
}

async fn count(c: &Client, query: &str) -> Result<usize, String> {
    Ok(ids(&search(c, query).await?).len())
}

async fn create(c: &Client, resource: Value) -> Result<String, String> {
    let r = c.create(&resource).await?;
    r.expect(201)?;
    Ok(r.id())
}

fn patient(family: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family}]})
}

async fn token_identifier_with_and_without_system(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let mut p = patient("Token");
    p["identifier"] = json!([{"system": system, "value": "MRN-1"}]);
    let id = create(&c, p).await?;
    let b = search(&c, &format!("Patient?identifier={system}|MRN-1")).await?;
    ensure!(ids(&b) == [id.clone()], "system|code: {:?}", ids(&b));
    ensure!(b["total"] == 1, "total {}", b["total"]);
    ensure!(
        b["entry"][0]["fullUrl"]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("Patient/{id}")),
        "fullUrl"
    );
    ensure!(
        count(&c, &format!("Patient?identifier={system}|")).await? == 1,
        "system| form"
    );
    ensure!(
        count(&c, &format!("Patient?identifier={system}|MRN-2")).await? == 0,
        "wrong code matched"
    );
    ensure!(
        count(
            &c,
            &format!("Patient?identifier=urn:other|MRN-1&identifier={system}|")
        )
        .await?
            == 0,
        "AND of two systems matched"
    );
    Ok(())
}

async fn string_is_prefix_case_and_accent_insensitive(c: Client) -> Outcome {
    let u = unique();
    let id = create(&c, patient(&format!("Émile{u}"))).await?;
    for q in [
        format!("emile{u}"),
        format!("EMILE{}", &u[..4]),
        format!("Émile{u}"),
    ] {
        let found = ids(&search(&c, &format!("Patient?family={q}")).await?);
        ensure!(found == [id.clone()], "family={q}: {found:?}");
    }
    ensure!(
        count(&c, &format!("Patient?family=mile{u}")).await? == 0,
        "prefix match is not contains"
    );
    ensure!(
        count(&c, &format!("Patient?name=emile{u}")).await? == 1,
        "name covers family"
    );
    Ok(())
}

async fn string_exact_and_contains(c: Client) -> Outcome {
    let u = unique();
    create(&c, patient(&format!("Émile{u}"))).await?;
    ensure!(
        count(&c, &format!("Patient?family:exact=Émile{u}")).await? == 1,
        ":exact same text"
    );
    ensure!(
        count(&c, &format!("Patient?family:exact=emile{u}")).await? == 0,
        ":exact is case-sensitive"
    );
    ensure!(
        count(&c, &format!("Patient?family:contains=MILE{u}")).await? == 1,
        ":contains"
    );
    Ok(())
}

async fn date_prefixes_follow_ranges(c: Client) -> Outcome {
    let family = format!("Dates{}", unique());
    for d in ["1980-01-01", "1990-06-15", "2000-12-31"] {
        let mut p = patient(&family);
        p["birthDate"] = json!(d);
        create(&c, p).await?;
    }
    for (q, want) in [
        ("1990", 1),
        ("1990-06", 1),
        ("ge1990", 2),
        ("gt1990", 1),
        ("lt1990", 1),
        ("le1990-06-15", 2),
        ("ne1990", 2),
        ("sa1990-06-15", 1),
        ("eb1990-06-15", 1),
        ("1990-06-15T00:00:00Z", 0),
    ] {
        let got = count(&c, &format!("Patient?family={family}&birthdate={q}")).await?;
        ensure!(got == want, "birthdate={q}: {got} matches, expected {want}");
    }
    Ok(())
}

async fn reference_in_every_form(c: Client) -> Outcome {
    let pid = create(&c, patient("Ref")).await?;
    let oid = create(
        &c,
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "ref"},
        "subject": {"reference": format!("Patient/{pid}")}}),
    )
    .await?;
    let base = c.base().to_string();
    for q in [
        format!("Observation?subject=Patient/{pid}"),
        format!("Observation?patient={pid}"),
        format!("Observation?patient=Patient/{pid}"),
        format!("Observation?subject:Patient={pid}"),
        format!("Observation?subject={base}/Patient/{pid}"),
    ] {
        ensure!(ids(&search(&c, &q).await?) == [oid.clone()], "{q}");
    }
    ensure!(
        count(&c, &format!("Observation?subject=Group/{pid}")).await? == 0,
        "wrong target type matched"
    );
    Ok(())
}

async fn token_not_and_missing(c: Client) -> Outcome {
    let code = format!("urn:test:{}|c", unique());
    let (system, value) = code.split_once('|').unwrap_or_default();
    for status in ["final", "amended"] {
        create(
            &c,
            json!({"resourceType": "Observation", "status": status,
            "code": {"coding": [{"system": system, "code": value}]}}),
        )
        .await?;
    }
    ensure!(
        count(&c, &format!("Observation?code={code}")).await? == 2,
        "both by code"
    );
    ensure!(
        count(&c, &format!("Observation?code={code}&status:not=final")).await? == 1,
        ":not"
    );
    ensure!(
        count(&c, &format!("Observation?code={code}&subject:missing=true")).await? == 2,
        ":missing=true"
    );
    ensure!(
        count(&c, &format!("Observation?code={code}&status:missing=false")).await? == 2,
        ":missing=false"
    );
    Ok(())
}

async fn quantity_with_prefix_and_unit(c: Client) -> Outcome {
    let code = format!("urn:test:{}|hr", unique());
    let (system, value) = code.split_once('|').unwrap_or_default();
    for v in [60, 72, 95] {
        create(&c, json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": system, "code": value}]},
            "valueQuantity": {"value": v, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})).await?;
    }
    for (q, want) in [
        ("72", 1),
        ("gt70", 2),
        ("le72", 2),
        ("gt70|http://unitsofmeasure.org|/min", 2),
        ("gt70||mg", 0),
        ("ap70", 1),
    ] {
        let got = count(&c, &format!("Observation?code={code}&value-quantity={q}")).await?;
        ensure!(got == want, "value-quantity={q}: {got}, expected {want}");
    }
    Ok(())
}

async fn comma_is_or_repetition_is_and(c: Client) -> Outcome {
    let family = format!("Or{}", unique());
    for g in ["male", "female", "other"] {
        let mut p = patient(&family);
        p["gender"] = json!(g);
        create(&c, p).await?;
    }
    ensure!(
        count(&c, &format!("Patient?family={family}&gender=male,female")).await? == 2,
        "OR"
    );
    ensure!(
        count(
            &c,
            &format!("Patient?family={family}&gender=male&gender=female")
        )
        .await?
            == 0,
        "AND"
    );
    Ok(())
}

async fn paging_visits_every_match_once(c: Client) -> Outcome {
    let family = format!("Page{}", unique());
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(create(&c, patient(&family)).await?);
    }
    let mut url = format!("Patient?family={family}&_count=2");
    let mut seen = Vec::new();
    for _ in 0..10 {
        let b = search(&c, &url).await?;
        ensure!(b["total"] == 5, "total {}", b["total"]);
        let page = ids(&b);
        ensure!(page.len() <= 2, "page of {}", page.len());
        seen.extend(page);
        // A write between pages must not shift what the cursor sees.
        create(&c, patient("Unrelated")).await?;
        match b["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
        {
            Some(l) => url = l["url"].as_str().unwrap_or_default().to_string(),
            None => break,
        }
    }
    seen.sort();
    created.sort();
    ensure!(seen == created, "paging saw {seen:?}, created {created:?}");
    Ok(())
}

async fn last_updated_and_sort(c: Client) -> Outcome {
    let family = format!("Sort{}", unique());
    let first = create(&c, patient(&family)).await?;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = create(&c, patient(&family)).await?;
    let desc = ids(&search(&c, &format!("Patient?family={family}&_sort=-_lastUpdated")).await?);
    ensure!(
        desc == [second.clone(), first.clone()],
        "-_lastUpdated: {desc:?}"
    );
    let asc = ids(&search(&c, &format!("Patient?family={family}&_sort=_lastUpdated")).await?);
    ensure!(asc == [first, second], "_lastUpdated: {asc:?}");
    ensure!(
        count(
            &c,
            &format!("Patient?family={family}&_lastUpdated=gt2020-01-01")
        )
        .await?
            == 2,
        "_lastUpdated=gt"
    );
    ensure!(
        count(
            &c,
            &format!("Patient?family={family}&_lastUpdated=lt2020-01-01")
        )
        .await?
            == 0,
        "_lastUpdated=lt"
    );
    Ok(())
}

async fn unknown_parameters_reported_or_refused(c: Client) -> Outcome {
    let family = format!("Lenient{}", unique());
    create(&c, patient(&family)).await?;
    let b = search(&c, &format!("Patient?family={family}&bogus=1")).await?;
    ensure!(ids(&b).len() == 1, "lenient search failed");
    let outcome = b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["search"]["mode"] == "outcome");
    ensure!(
        outcome.is_some_and(|o| o.to_string().contains("bogus")),
        "no OperationOutcome naming bogus: {b}"
    );
    let self_link = b["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["relation"] == "self")
        .cloned()
        .unwrap_or_default();
    ensure!(
        !self_link.to_string().contains("bogus"),
        "self link keeps the ignored parameter: {self_link}"
    );
    let strict = c
        .get_with(
            &format!("Patient?family={family}&bogus=1"),
            vec![("prefer", "handling=strict".into())],
        )
        .await?;
    strict.expect_outcome(400)?;
    ensure!(
        strict.text.contains("bogus"),
        "strict error does not name bogus: {}",
        strict.text
    );
    Ok(())
}

async fn summary_count_gives_only_the_total(c: Client) -> Outcome {
    let family = format!("Count{}", unique());
    for _ in 0..3 {
        create(&c, patient(&family)).await?;
    }
    let b = search(&c, &format!("Patient?family={family}&_summary=count")).await?;
    ensure!(b["total"] == 3 && ids(&b).is_empty(), "_summary=count: {b}");
    Ok(())
}

async fn post_search_matches_get(c: Client) -> Outcome {
    let family = format!("Post{}", unique());
    let id = create(&c, patient(&family)).await?;
    let r = c
        .send(Request {
            method: Method::POST,
            path: "Patient/_search",
            body: Some(format!("family={family}").into_bytes()),
            headers: vec![("content-type", "application/x-www-form-urlencoded".into())],
        })
        .await?;
    r.expect(200)?;
    ensure!(ids(&r.json) == [id], "POST _search: {}", r.text);
    Ok(())
}

async fn invalid_values_are_400(c: Client) -> Outcome {
    c.get("Patient?birthdate=yesterday")
        .await?
        .expect_outcome(400)?;
    c.get("Observation?value-quantity=lots")
        .await?
        .expect_outcome(400)?;
    c.get("Patient?_count=many").await?.expect_outcome(400)?;
    c.get("Bogus?name=x").await?.expect_outcome(404)?;
    Ok(())
}

async fn updates_and_deletes_change_results(c: Client) -> Outcome {
    let old = format!("Old{}", unique());
    let new = format!("New{}", unique());
    let created = c.create(&patient(&old)).await?;
    let mut p = created.json.clone();
    p["name"] = json!([{"family": new}]);
    c.update(&p).await?.expect(200)?;
    ensure!(
        count(&c, &format!("Patient?family={old}")).await? == 0,
        "old value still found"
    );
    ensure!(
        count(&c, &format!("Patient?family={new}")).await? == 1,
        "new value not found"
    );
    c.delete(&format!("Patient/{}", created.id())).await?;
    ensure!(
        count(&c, &format!("Patient?family={new}")).await? == 0,
        "deleted resource found"
    );
    Ok(())
}

async fn id_parameter(c: Client) -> Outcome {
    let a = create(&c, patient("IdA")).await?;
    let b = create(&c, patient("IdB")).await?;
    let mut found = ids(&search(&c, &format!("Patient?_id={a},{b}")).await?);
    found.sort();
    let mut want = vec![a, b];
    want.sort();
    ensure!(found == want, "_id: {found:?}");
    Ok(())
}

async fn capability_statement_lists_search_parameters(c: Client) -> Outcome {
    let r = c.get("metadata").await?;
    let patient = r.json["rest"][0]["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["type"] == "Patient")
        .cloned()
        .ok_or("no Patient")?;
    let params = patient["searchParam"].to_string();
    for p in [
        "\"name\"",
        "\"identifier\"",
        "\"birthdate\"",
        "\"_id\"",
        "\"_lastUpdated\"",
    ] {
        ensure!(params.contains(p), "Patient searchParam lacks {p}");
    }
    ensure!(
        patient["interaction"].to_string().contains("search-type"),
        "no search-type interaction"
    );
    Ok(())
}

fn blood_pressure(subject: &str, systolic: f64, diastolic: f64) -> Value {
    let loinc = |code: &str, display: &str| json!({"coding": [{"system": "http://loinc.org", "code": code, "display": display}]});
    let mmhg = |v: f64| json!({"value": v, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"});
    json!({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "Blood Pressure Panel"},
        "subject": {"reference": subject},
        "component": [
            {"code": loinc("8480-6", "Systolic"), "valueQuantity": mmhg(systolic)},
            {"code": loinc("8462-4", "Diastolic"), "valueQuantity": mmhg(diastolic)}
        ]
    })
}

async fn composite_parameters_match_within_one_tuple(c: Client) -> Outcome {
    let subject = format!("Patient/composite-{}", unique());
    let high = create(&c, blood_pressure(&subject, 150.0, 95.0)).await?;
    let normal = create(&c, blood_pressure(&subject, 118.0, 76.0)).await?;
    let q = |v: &str| format!("Observation?subject={subject}&component-code-value-quantity={v}");
    let got = ids(&search(&c, &q("http://loinc.org|8480-6$gt140")).await?);
    ensure!(got == [high.clone()], "systolic > 140: {got:?}");
    // 95 is a diastolic value: it must not pair with the systolic code.
    let got = ids(&search(&c, &q("http://loinc.org|8480-6$ge90&_count=5")).await?);
    ensure!(got.len() == 2, "systolic >= 90 (both): {got:?}");
    let got = ids(&search(&c, &q("http://loinc.org|8462-4$gt100")).await?);
    ensure!(got.is_empty(), "diastolic > 100 matched {got:?}");
    let got = ids(&search(&c, &q("http://loinc.org|8462-4$lt80")).await?);
    ensure!(got == [normal.clone()], "diastolic < 80: {got:?}");
    // Comma = either tuple.
    let got = ids(&search(
        &c,
        &q("http://loinc.org|8480-6$gt140,http://loinc.org|8462-4$lt80"),
    )
    .await?);
    ensure!(got.len() == 2, "two tuples OR'd: {got:?}");
    let r = c.get(&q("http://loinc.org|8480-6")).await?;
    r.expect_outcome(400)?;
    Ok(())
}

async fn token_text_of_type_and_reference_identifier(c: Client) -> Outcome {
    let u = unique();
    let subject = format!("Patient/text-{u}");
    let obs = create(&c, blood_pressure(&subject, 120.0, 80.0)).await?;
    let got = ids(&search(
        &c,
        &format!("Observation?subject={subject}&code:text=pressure panel"),
    )
    .await?);
    ensure!(
        got == [obs.clone()],
        "code:text on CodeableConcept.text: {got:?}"
    );
    let got = ids(&search(
        &c,
        &format!("Observation?subject={subject}&code:text=glucose"),
    )
    .await?);
    ensure!(got.is_empty(), "code:text matched {got:?}");
    let got = ids(&search(
        &c,
        &format!("Observation?subject={subject}&component-code:text=diastolic"),
    )
    .await?);
    ensure!(
        got == [obs],
        "component-code:text on Coding.display: {got:?}"
    );

    let mut p = patient(&format!("OfType{u}"));
    p["identifier"] = json!([{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": "urn:mrn", "value": format!("MR-{u}")}]);
    let pid = create(&c, p).await?;
    let got = ids(&search(
        &c,
        &format!(
            "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MR-{u}"
        ),
    )
    .await?);
    ensure!(got == [pid], ":of-type: {got:?}");
    let got = ids(&search(
        &c,
        &format!(
            "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|DL|MR-{u}"
        ),
    )
    .await?);
    ensure!(got.is_empty(), ":of-type with another type matched {got:?}");

    let id = create(
        &c,
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"identifier": {"system": "urn:health-id", "value": format!("HID-{u}")}}}),
    )
    .await?;
    let got = ids(&search(
        &c,
        &format!("Observation?subject:identifier=urn:health-id|HID-{u}"),
    )
    .await?);
    ensure!(got == [id], "subject:identifier: {got:?}");
    Ok(())
}

async fn uri_above_and_below(c: Client) -> Outcome {
    let u = unique();
    let url = format!("http://example.org/{u}/fhir/ValueSet/blood");
    let id = create(
        &c,
        json!({"resourceType": "ValueSet", "status": "draft", "url": url}),
    )
    .await?;
    ensure!(
        ids(&search(&c, &format!("ValueSet?url={url}")).await?) == [id.clone()],
        "exact"
    );
    let got = ids(&search(
        &c,
        &format!("ValueSet?url:below=http://example.org/{u}/fhir/"),
    )
    .await?);
    ensure!(got == [id.clone()], ":below: {got:?}");
    let got = ids(&search(&c, &format!("ValueSet?url:above={url}/_history/3")).await?);
    ensure!(got == [id], ":above: {got:?}");
    let got = ids(&search(
        &c,
        &format!("ValueSet?url:above=http://example.org/{u}/fhir"),
    )
    .await?);
    ensure!(got.is_empty(), ":above of a shorter URL matched {got:?}");
    Ok(())
}

async fn ucum_quantities_compare_in_canonical_units(c: Client) -> Outcome {
    let subject = format!("Patient/ucum-{}", unique());
    let id = create(&c, json!({"resourceType": "Observation", "status": "final", "code": {"text": "dose"},
        "subject": {"reference": subject},
        "valueQuantity": {"value": 5400, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}})).await?;
    let q = |v: &str| format!("Observation?subject={subject}&value-quantity={v}");
    for hit in [
        "5400|http://unitsofmeasure.org|mg",
        "5.4|http://unitsofmeasure.org|g",
        "gt5|http://unitsofmeasure.org|g",
        "5400||mg",
    ] {
        let got = ids(&search(&c, &q(hit)).await?);
        ensure!(got == [id.clone()], "{hit}: {got:?}");
    }
    for miss in [
        "lt5|http://unitsofmeasure.org|g",
        "5.4|http://unitsofmeasure.org|mg",
        "5.4|http://unitsofmeasure.org|kg",
    ] {
        let got = ids(&search(&c, &q(miss)).await?);
        ensure!(got.is_empty(), "{miss} matched {got:?}");
    }
    Ok(())
}

fn subsetted(resource: &Value) -> bool {
    resource["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["code"] == "SUBSETTED")
}

async fn summary_and_elements_return_marked_subsets(c: Client) -> Outcome {
    let family = format!("Subset{}", unique());
    let mut p = patient(&family);
    p["text"] = json!({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">A patient</div>"});
    p["birthDate"] = json!("1980-02-03");
    p["contact"] = json!([{"name": {"family": "Kin"}}]);
    let id = create(&c, p).await?;
    let first = |b: &Value| b["entry"][0]["resource"].clone();
    let r = first(&search(&c, &format!("Patient?family={family}&_summary=true")).await?);
    ensure!(
        r["name"].is_array() && r["birthDate"] == "1980-02-03",
        "summary lost summary elements: {r}"
    );
    ensure!(
        r.get("contact").is_none() && r.get("text").is_none(),
        "summary kept non-summary elements: {r}"
    );
    ensure!(subsetted(&r), "summary not tagged SUBSETTED: {r}");
    let r = first(&search(&c, &format!("Patient?family={family}&_summary=text")).await?);
    ensure!(
        r["text"]["div"].is_string() && r.get("name").is_none(),
        "_summary=text: {r}"
    );
    let r = first(&search(&c, &format!("Patient?family={family}&_summary=data")).await?);
    ensure!(
        r.get("text").is_none() && r["contact"].is_array(),
        "_summary=data: {r}"
    );
    let b = search(&c, &format!("Patient?family={family}&_elements=birthDate")).await?;
    let r = first(&b);
    ensure!(
        r["birthDate"] == "1980-02-03" && r.get("name").is_none() && subsetted(&r),
        "_elements: {r}"
    );
    let self_link = b["link"][0]["url"].as_str().unwrap_or_default();
    ensure!(
        self_link.contains("_elements=birthDate"),
        "self link lost _elements: {self_link}"
    );
    let read = c.get(&format!("Patient/{id}?_elements=name")).await?;
    read.expect(200)?;
    ensure!(
        read.json["name"].is_array()
            && read.json.get("birthDate").is_none()
            && subsetted(&read.json),
        "read with _elements: {}",
        read.text
    );
    let full = c.get(&format!("Patient/{id}")).await?;
    ensure!(
        !subsetted(&full.json) && full.json["contact"].is_array(),
        "the stored resource changed: {}",
        full.text
    );
    Ok(())
}

async fn narrative_text_search(c: Client) -> Outcome {
    let word = format!("zq{}", unique().replace('-', ""));
    let mut p = patient("Narrative");
    p["text"] = json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Allergic to <b>{word}</b> &amp; dust</p></div>")});
    let id = create(&c, p).await?;
    let got = ids(&search(&c, &format!("Patient?_text={word}")).await?);
    ensure!(got == [id.clone()], "_text: {got:?}");
    let got = ids(&search(
        &c,
        &format!("Patient?_text={} %26 dust", word.to_uppercase()),
    )
    .await?);
    ensure!(got == [id], "_text ignores case and markup: {got:?}");
    Ok(())
}

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str().map(String::from))
}

async fn previous_links_page_backward(c: Client) -> Outcome {
    let family = format!("Back{}", unique());
    for birth in ["1971", "1972", "1973", "1974", "1975"] {
        let mut p = patient(&family);
        p["birthDate"] = json!(birth);
        create(&c, p).await?;
    }
    for sort in ["", "&_sort=-birthdate"] {
        let mut url = format!("Patient?family={family}&_count=2{sort}");
        let mut forward = Vec::new();
        let mut last = Value::Null;
        for _ in 0..5 {
            let b = search(&c, &url).await?;
            ensure!(link(&b, "first").is_some(), "no first link");
            if forward.is_empty() {
                ensure!(
                    link(&b, "previous").is_none(),
                    "the first page has a previous link"
                );
            }
            forward.push(ids(&b));
            last = b.clone();
            match link(&b, "next") {
                Some(next) => url = next,
                None => break,
            }
        }
        ensure!(forward.len() == 3, "{sort}: pages {forward:?}");
        let mut backward = vec![ids(&last)];
        let mut page = last;
        while let Some(prev) = link(&page, "previous") {
            page = search(&c, &prev).await?;
            backward.push(ids(&page));
            ensure!(backward.len() <= 5, "previous links loop");
        }
        backward.reverse();
        ensure!(
            backward == forward,
            "{sort}: backward {backward:?} != forward {forward:?}"
        );
    }
    Ok(())
}

async fn system_level_search_over_types(c: Client) -> Outcome {
    let u = unique();
    let tag = |v: &mut Value| {
        v["meta"] = json!({"tag": [{"system": "urn:conformance", "code": format!("sys-{u}")}]})
    };
    let mut p = patient("System");
    tag(&mut p);
    let pid = create(&c, p).await?;
    let mut o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}});
    tag(&mut o);
    let oid = create(&c, o.clone()).await?;
    let oid2 = create(&c, o).await?;
    let base = c.base().to_string();
    let b = search(
        &c,
        &format!("{base}?_tag=urn:conformance|sys-{u}&_type=Patient,Observation"),
    )
    .await?;
    let mut got = ids(&b);
    got.sort();
    let mut want = vec![pid.clone(), oid.clone(), oid2.clone()];
    want.sort();
    ensure!(
        got == want && b["total"] == 3,
        "_type=Patient,Observation: {got:?} total {}",
        b["total"]
    );
    let got = ids(&search(&c, &format!("{base}?_id={pid}")).await?);
    ensure!(got == [pid.clone()], "system _id without _type: {got:?}");
    // Paging across the types visits each match once.
    let mut url = format!("{base}?_tag=urn:conformance|sys-{u}&_type=Patient,Observation&_count=1");
    let mut seen = Vec::new();
    for _ in 0..6 {
        let b = search(&c, &url).await?;
        seen.extend(ids(&b));
        match link(&b, "next") {
            Some(next) => url = next,
            None => break,
        }
    }
    seen.sort();
    ensure!(seen == want, "system paging saw {seen:?}");
    // A parameter that one of the types lacks is reported, not half-applied.
    let b = search(
        &c,
        &format!("{base}?_type=Patient,Observation&_tag=urn:conformance|sys-{u}&family=System"),
    )
    .await?;
    ensure!(
        ids(&b).len() == 3 && b.to_string().contains("family"),
        "family reported: {b}"
    );
    let form = c
        .send(Request {
            method: Method::POST,
            path: "_search",
            headers: vec![("content-type", "application/x-www-form-urlencoded".into())],
            body: Some(format!("_type=Observation&_tag=urn:conformance|sys-{u}").into_bytes()),
        })
        .await?;
    form.expect(200)?;
    ensure!(ids(&form.json).len() == 2, "POST _search: {}", form.text);
    Ok(())
}
