//! PATCH: JSON Patch (RFC 6902) and FHIRPath Patch, on an instance, conditionally, and inside
//! batch and transaction Bundles.

use reqwest::Method;
use serde_json::{Value, json};

use super::fixtures::{json_patch_binary, patient};
use crate::client::unique;
use crate::{Client, Outcome, Reply, cases, ensure};

cases!("patch";
    json_patch_replace_add_remove_round_trip,
    json_patch_failed_test_is_422_and_changes_nothing,
    fhirpath_patch_add,
    fhirpath_patch_insert,
    fhirpath_patch_delete,
    fhirpath_patch_replace,
    fhirpath_patch_move,
    fhirpath_patch_where_path,
    patch_with_stale_if_match_is_412,
    concurrent_patches_all_apply,
    patch_making_the_resource_invalid_is_422,
    patch_of_unknown_resource_is_404,
    patch_with_unsupported_content_type_is_415,
    patch_changing_the_id_is_400,
    metadata_declares_patch,
    conditional_patch_changes_the_single_match,
    conditional_patch_of_none_is_404_and_of_several_412,
    conditional_patch_honours_if_match,
    patch_entries_in_transaction_and_batch,
);

/// Creates `resource` and returns its id.
async fn created(c: &Client, resource: &Value) -> Result<String, String> {
    let r = c.create(resource).await?;
    r.expect(201)?;
    Ok(r.id())
}

async fn json_patch(
    c: &Client,
    path: &str,
    ops: Value,
    mut headers: Vec<(&str, String)>,
) -> Result<Reply, String> {
    headers.push(("content-type", "application/json-patch+json".into()));
    c.write_raw(
        Method::PATCH,
        path,
        serde_json::to_vec(&ops).expect("json"),
        headers,
    )
    .await
}

/// One FHIRPath Patch `operation` parameter: type, path and further parts.
fn op(kind: &str, path: &str, parts: Value) -> Value {
    let mut all = vec![
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "path", "valueString": path}),
    ];
    all.extend(parts.as_array().cloned().unwrap_or_default());
    json!({"name": "operation", "part": all})
}

async fn fhir_patch(c: &Client, path: &str, ops: Vec<Value>) -> Result<Reply, String> {
    let body = json!({"resourceType": "Parameters", "parameter": ops});
    c.write(Method::PATCH, path, &body, vec![]).await
}

/// Fails unless a patch answered 200 with version `version`, and a read shows the same.
async fn expect_patched(c: &Client, r: &Reply, path: &str, version: &str) -> Result<Value, String> {
    r.expect(200)?;
    ensure!(
        r.version_id() == version,
        "patch answered version {}, expected {version}",
        r.version_id()
    );
    ensure!(
        r.header("etag") == format!("W/\"{version}\""),
        "ETag {}",
        r.header("etag")
    );
    let read = c.get(path).await?;
    read.expect(200)?;
    ensure!(
        read.version_id() == version,
        "read gives version {}",
        read.version_id()
    );
    Ok(read.json)
}

/// Fails unless the resource is still at `version` (a refused patch changed nothing).
async fn expect_unchanged(c: &Client, path: &str, version: &str) -> Outcome {
    let read = c.get(path).await?;
    read.expect(200)?;
    ensure!(
        read.version_id() == version,
        "a refused patch changed the resource: version {}",
        read.version_id()
    );
    Ok(())
}

async fn json_patch_replace_add_remove_round_trip(c: Client) -> Outcome {
    let id = created(&c, &patient()).await?;
    let path = format!("Patient/{id}");
    let r = json_patch(
        &c,
        &path,
        json!([
            {"op": "replace", "path": "/gender", "value": "male"},
            {"op": "add", "path": "/active", "value": true},
            {"op": "add", "path": "/name/0/given/-", "value": "Kumari"},
            {"op": "remove", "path": "/birthDate"}
        ]),
        vec![],
    )
    .await?;
    let read = expect_patched(&c, &r, &path, "2").await?;
    ensure!(
        r.json["gender"] == "male" && read["gender"] == "male",
        "gender: {}",
        read["gender"]
    );
    ensure!(read["active"] == true, "active: {}", read["active"]);
    ensure!(
        read["name"][0]["given"] == json!(["Asha", "Kumari"]),
        "given: {}",
        read["name"][0]["given"]
    );
    ensure!(
        read.get("birthDate").is_none(),
        "birthDate still present: {}",
        read["birthDate"]
    );
    Ok(())
}

async fn json_patch_failed_test_is_422_and_changes_nothing(c: Client) -> Outcome {
    let id = created(&c, &patient()).await?;
    let path = format!("Patient/{id}");
    let r = json_patch(
        &c,
        &path,
        json!([
            {"op": "replace", "path": "/gender", "value": "male"},
            {"op": "test", "path": "/birthDate", "value": "1999-01-01"}
        ]),
        vec![],
    )
    .await?;
    r.expect_outcome(422)?;
    let r = json_patch(
        &c,
        &path,
        json!([{"op": "remove", "path": "/telecom"}]),
        vec![],
    )
    .await?;
    r.expect_outcome(422)?;
    expect_unchanged(&c, &path, "1").await?;
    let read = c.get(&path).await?;
    ensure!(read.json["gender"] == "female", "gender changed");
    Ok(())
}

async fn fhirpath_patch_add(c: Client) -> Outcome {
    let id = created(&c, &patient()).await?;
    let path = format!("Patient/{id}");
    let r = fhir_patch(
        &c,
        &path,
        vec![
            op(
                "add",
                "Patient",
                json!([
                    {"name": "name", "valueString": "telecom"},
                    {"name": "value", "valueContactPoint": {"system": "phone", "value": "+91 98450 00000"}}
                ]),
            ),
            op(
                "add",
                "Patient.name[0]",
                json!([
                    {"name": "name", "valueString": "given"},
                    {"name": "value", "valueString": "Kumari"}
                ]),
            ),
            op(
                "add",
                "Patient",
                json!([
                    {"name": "name", "valueString": "identifier"},
                    {"name": "value", "part": [
                        {"name": "system", "valueUri": "urn:example:mrn"},
                        {"name": "value", "valueString": "MRN-1"}
                    ]}
                ]),
            ),
        ],
    )
    .await?;
    let read = expect_patched(&c, &r, &path, "2").await?;
    ensure!(
        read["telecom"] == json!([{"system": "phone", "value": "+91 98450 00000"}]),
        "telecom: {}",
        read["telecom"]
    );
    ensure!(
        read["name"][0]["given"] == json!(["Asha", "Kumari"]),
        "given: {}",
        read["name"][0]["given"]
    );
    // Appended after the Health ID every person is given.
    let identifiers = read["identifier"].as_array().cloned().unwrap_or_default();
    ensure!(
        identifiers.len() == 2
            && identifiers[1] == json!({"system": "urn:example:mrn", "value": "MRN-1"}),
        "identifier: {}",
        read["identifier"]
    );
    Ok(())
}

async fn fhirpath_patch_insert(c: Client) -> Outcome {
    let id = created(&c, &patient()).await?;
    let path = format!("Patient/{id}");
    let original = c.get(&path).await?.json["name"][0].clone();
    let r = fhir_patch(
        &c,
        &path,
        vec![op(
            "insert",
            "Patient.name",
            json!([
                {"name": "index", "valueInteger": 0},
                {"name": "value", "valueHumanName": {"use": "nickname", "given": ["Ashu"]}}
            ]),
        )],
    )
    .await?;
    let read = expect_patched(&c, &r, &path, "2").await?;
    ensure!(
        read["name"] == json!([{"use": "nickname", "given": ["Ashu"]}, original]),
        "name: {}",
        read["name"]
    );
    Ok(())
}

async fn fhirpath_patch_delete(c: Client) -> Outcome {
    let id = created(&c, &patient()).await?;
    let path = format!("Patient/{id}");
    let r = fhir_patch(
        &c,
        &path,
        vec![
            op("delete", "Patient.birthDate", json!([])),
            // Deleting what is not there is not an error.
            op("delete", "Patient.photo", json!([])),
        ],
    )
    .await?;
    let read = expect_patched(&c, &r, &path, "2").await?;
    ensure!(
        read.get("birthDate").is_none(),
        "birthDate still present: {}",
        read["birthDate"]
    );
    ensure!(read["gender"] == "female", "gender lost");
    Ok(())
}

async fn fhirpath_patch_replace(c: Client) -> Outcome {
    let id = created(&c, &patient()).await?;
    let path = format!("Patient/{id}");
    let r = fhir_patch(
        &c,
        &path,
        vec![
            op(
                "replace",
                "Patient.gender",
                json!([{"name": "value", "valueCode": "other"}]),
            ),
            op(
                "replace",
                "Patient.name.first().given[0]",
                json!([{"name": "value", "valueString": "Aasha"}]),
            ),
        ],
    )
    .await?;
    let read = expect_patched(&c, &r, &path, "2").await?;
    ensure!(read["gender"] == "other", "gender: {}", read["gender"]);
    ensure!(
        read["name"][0]["given"] == json!(["Aasha"]),
        "given: {}",
        read["name"][0]["given"]
    );
    Ok(())
}

async fn fhirpath_patch_move(c: Client) -> Outcome {
    let mut p = patient();
    p["name"] = json!([{"family": "A"}, {"family": "B"}, {"family": "C"}]);
    let id = created(&c, &p).await?;
    let path = format!("Patient/{id}");
    let r = fhir_patch(
        &c,
        &path,
        vec![op(
            "move",
            "Patient.name",
            json!([
                {"name": "source", "valueInteger": 0},
                {"name": "destination", "valueInteger": 2}
            ]),
        )],
    )
    .await?;
    let read = expect_patched(&c, &r, &path, "2").await?;
    ensure!(
        read["name"] == json!([{"family": "B"}, {"family": "C"}, {"family": "A"}]),
        "name: {}",
        read["name"]
    );
    Ok(())
}

async fn fhirpath_patch_where_path(c: Client) -> Outcome {
    let mut p = patient();
    p["telecom"] = json!([
        {"system": "phone", "value": "+91 98450 00000"},
        {"system": "email", "value": "old@example.org"}
    ]);
    let id = created(&c, &p).await?;
    let path = format!("Patient/{id}");
    let r = fhir_patch(
        &c,
        &path,
        vec![
            op(
                "replace",
                "Patient.telecom.where(system='email').value",
                json!([{"name": "value", "valueString": "new@example.org"}]),
            ),
            op("delete", "Patient.telecom.where(system='fax')", json!([])),
        ],
    )
    .await?;
    let read = expect_patched(&c, &r, &path, "2").await?;
    ensure!(
        read["telecom"]
            == json!([
                {"system": "phone", "value": "+91 98450 00000"},
                {"system": "email", "value": "new@example.org"}
            ]),
        "telecom: {}",
        read["telecom"]
    );
    // A path matching several elements cannot be replaced.
    let r = fhir_patch(
        &c,
        &path,
        vec![op(
            "replace",
            "Patient.telecom.value",
            json!([{"name": "value", "valueString": "x"}]),
        )],
    )
    .await?;
    r.expect_outcome(422)?;
    expect_unchanged(&c, &path, "2").await
}

async fn patch_with_stale_if_match_is_412(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    created.expect(201)?;
    let id = created.id();
    let path = format!("Patient/{id}");
    let mut p = created.json.clone();
    p["active"] = json!(true);
    c.update(&p).await?.expect(200)?;
    let ops = json!([{"op": "replace", "path": "/gender", "value": "male"}]);
    let r = json_patch(&c, &path, ops.clone(), vec![("if-match", "W/\"1\"".into())]).await?;
    r.expect_outcome(412)?;
    expect_unchanged(&c, &path, "2").await?;
    let r = json_patch(&c, &path, ops, vec![("if-match", "W/\"2\"".into())]).await?;
    expect_patched(&c, &r, &path, "3").await?;
    Ok(())
}

/// Patches without If-Match that race each other are re-applied, never lost.
async fn concurrent_patches_all_apply(c: Client) -> Outcome {
    let id = created(&c, &patient()).await?;
    let path = format!("Patient/{id}");
    let names = ["P1", "P2", "P3", "P4"];
    let replies = futures::future::join_all(names.iter().map(|n| {
        json_patch(
            &c,
            &path,
            json!([{"op": "add", "path": "/name/0/given/-", "value": n}]),
            vec![],
        )
    }))
    .await;
    for r in replies {
        r?.expect(200)?;
    }
    let read = c.get(&path).await?;
    ensure!(read.version_id() == "5", "version {}", read.version_id());
    let given = read.json["name"][0]["given"].to_string();
    ensure!(
        names.iter().all(|n| given.contains(&format!("\"{n}\""))),
        "a patch was lost: given {given}"
    );
    Ok(())
}

async fn patch_making_the_resource_invalid_is_422(c: Client) -> Outcome {
    let id = created(&c, &patient()).await?;
    let path = format!("Patient/{id}");
    let r = fhir_patch(
        &c,
        &path,
        vec![op(
            "replace",
            "Patient.gender",
            json!([{"name": "value", "valueCode": "bogus"}]),
        )],
    )
    .await?;
    r.expect_outcome(422)?;
    ensure!(
        r.has_issue_at("Patient.gender"),
        "no issue at Patient.gender: {}",
        r.text
    );
    let r = json_patch(
        &c,
        &path,
        json!([{"op": "add", "path": "/birthDate", "value": "yesterday"}]),
        vec![],
    )
    .await?;
    r.expect_outcome(422)?;
    expect_unchanged(&c, &path, "1").await
}

async fn patch_of_unknown_resource_is_404(c: Client) -> Outcome {
    let path = format!("Patient/nope-{}", crate::client::unique());
    let r = json_patch(
        &c,
        &path,
        json!([{"op": "replace", "path": "/gender", "value": "male"}]),
        vec![],
    )
    .await?;
    r.expect_outcome(404)?;
    let r = fhir_patch(
        &c,
        &path,
        vec![op("delete", "Patient.birthDate", json!([]))],
    )
    .await?;
    r.expect_outcome(404)?;
    Ok(())
}

async fn patch_with_unsupported_content_type_is_415(c: Client) -> Outcome {
    let id = created(&c, &patient()).await?;
    let path = format!("Patient/{id}");
    for ct in ["application/xml-patch+xml", "text/plain"] {
        let r = c
            .write_raw(
                Method::PATCH,
                &path,
                b"[]".to_vec(),
                vec![("content-type", ct.into())],
            )
            .await?;
        r.expect_outcome(415)?;
    }
    expect_unchanged(&c, &path, "1").await
}

async fn patch_changing_the_id_is_400(c: Client) -> Outcome {
    let id = created(&c, &patient()).await?;
    let path = format!("Patient/{id}");
    let r = json_patch(
        &c,
        &path,
        json!([{"op": "replace", "path": "/id", "value": "someone-else"}]),
        vec![],
    )
    .await?;
    r.expect_outcome(400)?;
    let r = fhir_patch(&c, &path, vec![op("delete", "Patient.id", json!([]))]).await?;
    r.expect_outcome(400)?;
    // A malformed patch document is a 400 too.
    let r = json_patch(&c, &path, json!({"op": "remove"}), vec![]).await?;
    r.expect_outcome(400)?;
    expect_unchanged(&c, &path, "1").await
}

async fn metadata_declares_patch(c: Client) -> Outcome {
    let r = c.get("metadata").await?;
    r.expect(200)?;
    let formats = r.json["patchFormat"].to_string();
    ensure!(
        formats.contains("application/json-patch+json")
            && formats.contains("application/fhir+json"),
        "patchFormat: {formats}"
    );
    let patient = r.json["rest"][0]["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["type"] == "Patient")
        .ok_or("Patient not listed")?;
    ensure!(
        patient["interaction"].to_string().contains("\"patch\""),
        "Patient lacks interaction patch"
    );
    Ok(())
}

/// A Patient carrying the identifier `system|value`; returns its id.
async fn identified(c: &Client, system: &str, value: &str) -> Result<String, String> {
    let mut p = patient();
    p["identifier"] = json!([{"system": system, "value": value}]);
    created(c, &p).await
}

async fn conditional_patch_changes_the_single_match(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let id = identified(&c, &system, "1").await?;
    let path = format!("Patient/{id}");
    let query = format!("Patient?identifier={system}|1");
    let r = json_patch(
        &c,
        &query,
        json!([{"op": "replace", "path": "/gender", "value": "male"}]),
        vec![],
    )
    .await?;
    let read = expect_patched(&c, &r, &path, "2").await?;
    ensure!(r.id() == id, "patched {} instead of {id}", r.id());
    ensure!(read["gender"] == "male", "gender {}", read["gender"]);
    let r = fhir_patch(
        &c,
        &query,
        vec![op(
            "add",
            "Patient",
            json!([{"name": "name", "valueString": "active"}, {"name": "value", "valueBoolean": true}]),
        )],
    )
    .await?;
    let read = expect_patched(&c, &r, &path, "3").await?;
    ensure!(read["active"] == true, "active {}", read["active"]);
    Ok(())
}

async fn conditional_patch_of_none_is_404_and_of_several_412(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let ops = json!([{"op": "replace", "path": "/gender", "value": "male"}]);
    let r = json_patch(
        &c,
        &format!("Patient?identifier={system}|nobody"),
        ops.clone(),
        vec![],
    )
    .await?;
    r.expect_outcome(404)?;
    let first = identified(&c, &system, "twin").await?;
    let second = identified(&c, &system, "twin").await?;
    let r = json_patch(
        &c,
        &format!("Patient?identifier={system}|twin"),
        ops,
        vec![],
    )
    .await?;
    r.expect_outcome(412)?;
    for id in [first, second] {
        expect_unchanged(&c, &format!("Patient/{id}"), "1").await?;
    }
    // Without criteria a conditional patch is refused, not applied to every Patient.
    let r = c
        .write_raw(
            Method::PATCH,
            "Patient",
            b"[]".to_vec(),
            vec![("content-type", "application/json-patch+json".into())],
        )
        .await?;
    r.expect_outcome(400)?;
    Ok(())
}

async fn conditional_patch_honours_if_match(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let id = identified(&c, &system, "1").await?;
    let path = format!("Patient/{id}");
    let query = format!("Patient?identifier={system}|1");
    let ops = json!([{"op": "replace", "path": "/gender", "value": "other"}]);
    let r = json_patch(
        &c,
        &query,
        ops.clone(),
        vec![("if-match", "W/\"9\"".into())],
    )
    .await?;
    r.expect_outcome(412)?;
    expect_unchanged(&c, &path, "1").await?;
    let r = json_patch(&c, &query, ops, vec![("if-match", "W/\"1\"".into())]).await?;
    let read = expect_patched(&c, &r, &path, "2").await?;
    ensure!(read["gender"] == "other", "gender {}", read["gender"]);
    Ok(())
}

/// PATCH entries: a Binary holding a JSON Patch on an instance URL, a FHIRPath Patch
/// `Parameters` on a conditional URL; in a transaction (with `ifMatch`) and in a batch.
async fn patch_entries_in_transaction_and_batch(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let id = identified(&c, &system, "1").await?;
    let path = format!("Patient/{id}");
    let fhirpath_add_active = json!({"resourceType": "Parameters", "parameter": [op(
        "add",
        "Patient",
        json!([{"name": "name", "valueString": "active"}, {"name": "value", "valueBoolean": true}]),
    )]});
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": json_patch_binary(&json!([{"op": "replace", "path": "/gender", "value": "male"}])),
         "request": {"method": "PATCH", "url": path, "ifMatch": "W/\"1\""}},
        {"resource": fhirpath_add_active,
         "request": {"method": "PATCH", "url": format!("Patient?identifier={system}|1")}}
    ]});
    let r = c.write(Method::POST, "", &tx, vec![]).await?;
    r.expect(200)?;
    let entries = r.json["entry"].as_array().cloned().unwrap_or_default();
    ensure!(entries.len() == 2, "{} response entries", entries.len());
    for (e, version) in entries.iter().zip(["2", "3"]) {
        ensure!(
            e["response"]["status"]
                .as_str()
                .unwrap_or("")
                .starts_with("200")
                && e["response"]["etag"] == format!("W/\"{version}\""),
            "response {}",
            e["response"]
        );
    }
    let read = c.get(&path).await?;
    ensure!(
        read.version_id() == "3" && read.json["gender"] == "male" && read.json["active"] == true,
        "after the transaction: {}",
        read.text
    );
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": json_patch_binary(&json!([{"op": "replace", "path": "/gender", "value": "female"}])),
         "request": {"method": "PATCH", "url": path}},
        {"resource": json_patch_binary(&json!([{"op": "replace", "path": "/gender", "value": "female"}])),
         "request": {"method": "PATCH", "url": format!("Patient/none-{}", unique())}}
    ]});
    let r = c.write(Method::POST, "", &batch, vec![]).await?;
    r.expect(200)?;
    let status = |i: usize| {
        r.json["entry"][i]["response"]["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    ensure!(
        status(0).starts_with("200") && status(1).starts_with("404"),
        "batch statuses {} and {}",
        status(0),
        status(1)
    );
    let read = c.get(&path).await?;
    ensure!(
        read.version_id() == "4" && read.json["gender"] == "female",
        "after the batch: {}",
        read.text
    );
    Ok(())
}
