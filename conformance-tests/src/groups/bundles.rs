//! Batch and transaction Bundles, and the conditional writes (create, update, delete).

use reqwest::Method;
use serde_json::{Value, json};

use super::fixtures::json_patch_binary;
use crate::client::unique;
use crate::{Client, Outcome, cases, ensure};

cases!("bundles";
    transaction_resolves_urn_uuid_references,
    transaction_is_all_or_nothing,
    transaction_processes_delete_post_put_get_in_order,
    transaction_resolves_conditional_references,
    transaction_stale_if_match_commits_nothing,
    batch_answers_each_entry_on_its_own,
    conditional_create_returns_the_existing_match,
    concurrent_conditional_creates_make_one_resource,
    bundle_type_must_be_batch_or_transaction,
    conditional_update_creates_then_updates_the_match,
    concurrent_conditional_updates_make_one_resource,
    conditional_delete_removes_every_match,
    conditional_delete_of_too_many_deletes_nothing,
    transaction_patch_failure_rolls_back_everything,
);

async fn post_bundle(c: &Client, bundle: &Value) -> Result<crate::Reply, String> {
    c.write(Method::POST, "", bundle, vec![]).await
}

fn statuses(reply: &crate::Reply) -> Vec<String> {
    reply.json["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["response"]["status"].as_str().unwrap_or("").to_string())
        .collect()
}

fn location_id(reply: &crate::Reply, i: usize) -> String {
    let loc = reply.json["entry"][i]["response"]["location"]
        .as_str()
        .unwrap_or("");
    loc.split("/_history")
        .next()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

async fn count(c: &Client, query: &str) -> Result<u64, String> {
    let r = c.get(&format!("{query}&_summary=count")).await?;
    r.expect(200)?;
    Ok(r.json["total"].as_u64().unwrap_or(u64::MAX))
}

async fn transaction_resolves_urn_uuid_references(c: Client) -> Outcome {
    let pu = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001", "resource": {"resourceType": "Observation", "status": "final",
            "code": {"text": "x"}, "subject": {"reference": pu}}, "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": pu, "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]}, "request": {"method": "POST", "url": "Patient"}}
    ]});
    let r = post_bundle(&c, &tx).await?;
    r.expect(200)?;
    ensure!(
        r.json["type"] == "transaction-response",
        "type {}",
        r.json["type"]
    );
    ensure!(
        statuses(&r) == ["201 Created", "201 Created"],
        "statuses {:?}",
        statuses(&r)
    );
    let (obs_id, patient_id) = (location_id(&r, 0), location_id(&r, 1));
    let obs = c.get(&format!("Observation/{obs_id}")).await?;
    ensure!(
        obs.json["subject"]["reference"] == format!("Patient/{patient_id}"),
        "subject {}",
        obs.json["subject"]
    );
    c.get(&format!("Patient/{patient_id}")).await?.expect(200)?;
    Ok(())
}

async fn transaction_is_all_or_nothing(c: Client) -> Outcome {
    let family = format!("Atomic{}", unique());
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": family}]}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}}, "request": {"method": "POST", "url": "Observation"}}
    ]});
    let r = post_bundle(&c, &tx).await?;
    ensure!(matches!(r.status, 400 | 422), "HTTP {}", r.status);
    ensure!(
        r.json["resourceType"] == "OperationOutcome" && r.text.contains("entry 1"),
        "outcome does not name entry 1: {}",
        r.text
    );
    ensure!(
        count(&c, &format!("Patient?family={family}")).await? == 0,
        "the valid entry was committed"
    );
    Ok(())
}

async fn transaction_processes_delete_post_put_get_in_order(c: Client) -> Outcome {
    let family = format!("Order{}", unique());
    let doomed = c
        .create(&json!({"resourceType": "Patient", "name": [{"family": family}]}))
        .await?;
    let put_id = format!("put-{}", unique());
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": format!("Patient?family={family}")}},
        {"resource": {"resourceType": "Patient", "id": put_id, "name": [{"family": family}]}, "request": {"method": "PUT", "url": format!("Patient/{put_id}")}},
        {"resource": {"resourceType": "Patient", "name": [{"family": family}]}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "DELETE", "url": format!("Patient/{}", doomed.id())}}
    ]});
    let r = post_bundle(&c, &tx).await?;
    r.expect(200)?;
    ensure!(
        statuses(&r)[1..] == ["201 Created", "201 Created", "204 No Content"],
        "statuses {:?}",
        statuses(&r)
    );
    let found = &r.json["entry"][0]["resource"];
    ensure!(
        found["total"] == 2,
        "the GET ran before the writes: {found}"
    );
    Ok(())
}

async fn transaction_resolves_conditional_references(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let p = c
        .create(
            &json!({"resourceType": "Patient", "identifier": [{"system": system, "value": "1"}]}),
        )
        .await?;
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": format!("Patient?identifier={system}|1")}}, "request": {"method": "POST", "url": "Observation"}}
    ]});
    let r = post_bundle(&c, &tx).await?;
    r.expect(200)?;
    let obs = c
        .get(&format!("Observation/{}", location_id(&r, 0)))
        .await?;
    ensure!(
        obs.json["subject"]["reference"] == format!("Patient/{}", p.id()),
        "subject {}",
        obs.json["subject"]
    );
    let missing = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "subject": {"reference": format!("Patient?identifier={system}|nobody")}}, "request": {"method": "POST", "url": "Observation"}}
    ]});
    let r = post_bundle(&c, &missing).await?;
    ensure!(
        r.status == 412 || r.status == 404 || r.status == 400,
        "unresolvable conditional reference: HTTP {}",
        r.status
    );
    Ok(())
}

async fn transaction_stale_if_match_commits_nothing(c: Client) -> Outcome {
    let family = format!("Stale{}", unique());
    let p = c
        .create(&json!({"resourceType": "Patient", "name": [{"family": "S"}]}))
        .await?;
    let mut changed = p.json.clone();
    changed["active"] = json!(true);
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": family}]}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": changed, "request": {"method": "PUT", "url": format!("Patient/{}", p.id()), "ifMatch": "W/\"7\""}}
    ]});
    let r = post_bundle(&c, &tx).await?;
    r.expect_outcome(412)?;
    ensure!(
        count(&c, &format!("Patient?family={family}")).await? == 0,
        "a stale transaction committed its create"
    );
    Ok(())
}

async fn batch_answers_each_entry_on_its_own(c: Client) -> Outcome {
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Batch"}]}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}}, "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": format!("Patient/none-{}", unique())}}
    ]});
    let r = post_bundle(&c, &batch).await?;
    r.expect(200)?;
    ensure!(
        r.json["type"] == "batch-response",
        "type {}",
        r.json["type"]
    );
    let s = statuses(&r);
    ensure!(
        s[0].starts_with("201") && s[1].starts_with("422") && s[2].starts_with("404"),
        "statuses {s:?}"
    );
    ensure!(
        r.json["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome",
        "no outcome for the failed entry"
    );
    Ok(())
}

async fn conditional_create_returns_the_existing_match(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let body = json!({"resourceType": "Patient", "identifier": [{"system": system, "value": "7"}]});
    let header = vec![("if-none-exist", format!("identifier={system}|7"))];
    let first = c
        .write(Method::POST, "Patient", &body, header.clone())
        .await?;
    first.expect(201)?;
    let second = c.write(Method::POST, "Patient", &body, header).await?;
    second.expect(200)?;
    ensure!(second.id() == first.id(), "a second resource was created");
    Ok(())
}

async fn concurrent_conditional_creates_make_one_resource(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let body =
        json!({"resourceType": "Patient", "identifier": [{"system": system, "value": "race"}]});
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (c, body, system) = (c.clone(), body.clone(), system.clone());
            tokio::spawn(async move {
                c.write(
                    Method::POST,
                    "Patient",
                    &body,
                    vec![("if-none-exist", format!("identifier={system}|race"))],
                )
                .await
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = Vec::new();
    for t in tasks {
        let r = t.await.map_err(|e| e.to_string())??;
        ensure!(
            r.status == 201 || r.status == 200,
            "HTTP {}: {}",
            r.status,
            r.text
        );
        created += usize::from(r.status == 201);
        ids.push(r.id());
    }
    ids.dedup();
    ensure!(
        created == 1 && ids.len() == 1,
        "{created} created, ids {ids:?}"
    );
    ensure!(
        count(&c, &format!("Patient?identifier={system}|race")).await? == 1,
        "more than one resource exists"
    );
    Ok(())
}

async fn bundle_type_must_be_batch_or_transaction(c: Client) -> Outcome {
    let r = post_bundle(&c, &json!({"resourceType": "Bundle", "type": "collection"})).await?;
    r.expect_outcome(400)?;
    Ok(())
}

/// A Patient with one identifier.
fn identified(system: &str, value: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": system, "value": value}]})
}

async fn conditional_update_creates_then_updates_the_match(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let query = format!("Patient?identifier={system}|1");
    let mut body = identified(&system, "1");
    let first = c.write(Method::PUT, &query, &body, vec![]).await?;
    first.expect(201)?;
    body["active"] = json!(true);
    let second = c.write(Method::PUT, &query, &body, vec![]).await?;
    second.expect(200)?;
    ensure!(
        second.id() == first.id() && second.version_id() == "2",
        "second update: id {} version {} (first id {})",
        second.id(),
        second.version_id(),
        first.id()
    );
    // A body naming another resource than the match is refused.
    body["id"] = json!(format!("other-{}", unique()));
    c.write(Method::PUT, &query, &body, vec![])
        .await?
        .expect_outcome(400)?;
    // Several matches: 412, nothing written.
    c.create(&identified(&system, "1")).await?.expect(201)?;
    body["id"] = json!(first.id());
    c.write(Method::PUT, &query, &body, vec![])
        .await?
        .expect_outcome(412)?;
    let read = c.get(&format!("Patient/{}", first.id())).await?;
    ensure!(read.version_id() == "2", "version {}", read.version_id());
    // In a transaction the same rules apply: an update of the (new) single match.
    let other = format!("urn:test:{}", unique());
    let tx = |active: bool| {
        let mut r = identified(&other, "t");
        r["active"] = json!(active);
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": r, "request": {"method": "PUT", "url": format!("Patient?identifier={other}|t")}}
        ]})
    };
    let r = post_bundle(&c, &tx(false)).await?;
    r.expect(200)?;
    ensure!(
        statuses(&r) == ["201 Created"],
        "statuses {:?}",
        statuses(&r)
    );
    let created = location_id(&r, 0);
    let r = post_bundle(&c, &tx(true)).await?;
    r.expect(200)?;
    ensure!(
        statuses(&r) == ["200 OK"] && location_id(&r, 0) == created,
        "second transaction: {:?} {}",
        statuses(&r),
        location_id(&r, 0)
    );
    Ok(())
}

async fn concurrent_conditional_updates_make_one_resource(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let query = format!("Patient?identifier={system}|race");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (c, query, body) = (c.clone(), query.clone(), identified(&system, "race"));
            tokio::spawn(async move { c.write(Method::PUT, &query, &body, vec![]).await })
        })
        .collect();
    let mut ids = Vec::new();
    let mut versions = Vec::new();
    for t in tasks {
        let r = t.await.map_err(|e| e.to_string())??;
        ensure!(
            r.status == 201 || r.status == 200,
            "HTTP {}: {}",
            r.status,
            r.text
        );
        ids.push(r.id());
        versions.push(r.version_id().parse::<u32>().unwrap_or(0));
    }
    ids.sort();
    ids.dedup();
    versions.sort();
    ensure!(ids.len() == 1, "several resources: {ids:?}");
    ensure!(
        versions == (1..=8).collect::<Vec<_>>(),
        "versions {versions:?}"
    );
    ensure!(
        count(&c, &query).await? == 1,
        "more than one resource exists"
    );
    Ok(())
}

async fn conditional_delete_removes_every_match(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = c.create(&identified(&system, "gone")).await?;
        r.expect(201)?;
        ids.push(r.id());
    }
    let keep = c.create(&identified(&system, "kept")).await?;
    keep.expect(201)?;
    let r = c
        .delete(&format!("Patient?identifier={system}|gone"))
        .await?;
    r.expect(200)?;
    for id in &ids {
        c.get(&format!("Patient/{id}")).await?.expect_outcome(410)?;
    }
    c.get(&format!("Patient/{}", keep.id()))
        .await?
        .expect(200)?;
    // Nothing left to match: not an error.
    c.delete(&format!("Patient?identifier={system}|gone"))
        .await?
        .expect(200)?;
    // In a transaction: every match goes, together with the other entries.
    let family = format!("Del{}", unique());
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": format!("Patient?identifier={system}|kept")}},
        {"resource": {"resourceType": "Patient", "name": [{"family": family}]}, "request": {"method": "POST", "url": "Patient"}}
    ]});
    let r = post_bundle(&c, &tx).await?;
    r.expect(200)?;
    ensure!(
        statuses(&r) == ["204 No Content", "201 Created"],
        "statuses {:?}",
        statuses(&r)
    );
    c.get(&format!("Patient/{}", keep.id()))
        .await?
        .expect_outcome(410)?;
    let meta = c.get("metadata").await?;
    let patient = meta.json["rest"][0]["resource"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["type"] == "Patient")
        .cloned()
        .unwrap_or_default();
    ensure!(
        patient["conditionalDelete"] == "multiple",
        "conditionalDelete {}",
        patient["conditionalDelete"]
    );
    Ok(())
}

/// CuraNet deletes at most 100 resources in one conditional delete; more is 412, nothing deleted.
async fn conditional_delete_of_too_many_deletes_nothing(c: Client) -> Outcome {
    let system = format!("urn:test:{}", unique());
    let entries: Vec<Value> = (0..101)
        .map(|_| json!({"resource": identified(&system, "many"), "request": {"method": "POST", "url": "Patient"}}))
        .collect();
    post_bundle(
        &c,
        &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
    )
    .await?
    .expect(200)?;
    let query = format!("Patient?identifier={system}|many");
    let r = c.delete(&query).await?;
    r.expect_outcome(412)?;
    ensure!(
        r.text.contains("more than 100"),
        "the outcome does not say why: {}",
        r.text
    );
    ensure!(
        count(&c, &query).await? == 101,
        "a refused conditional delete deleted something"
    );
    Ok(())
}

async fn transaction_patch_failure_rolls_back_everything(c: Client) -> Outcome {
    let family = format!("PatchTx{}", unique());
    let target = c
        .create(&json!({"resourceType": "Patient", "name": [{"family": "T"}], "gender": "female"}))
        .await?;
    target.expect(201)?;
    let path = format!("Patient/{}", target.id());
    let tx = |patch: Value, if_match: Option<&str>| {
        let mut request = json!({"method": "PATCH", "url": path});
        if let Some(tag) = if_match {
            request["ifMatch"] = json!(tag);
        }
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "name": [{"family": family}]}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": json_patch_binary(&patch), "request": request}
        ]})
    };
    // A patch whose result does not validate: 422 naming entry 1, the create undone.
    let bad = json!([{"op": "replace", "path": "/gender", "value": "bogus"}]);
    let r = post_bundle(&c, &tx(bad, None)).await?;
    r.expect_outcome(422)?;
    ensure!(
        r.text.contains("entry 1"),
        "outcome does not name entry 1: {}",
        r.text
    );
    // A stale ifMatch: 412 naming entry 1.
    let fine = json!([{"op": "replace", "path": "/gender", "value": "male"}]);
    let r = post_bundle(&c, &tx(fine.clone(), Some("W/\"5\""))).await?;
    r.expect_outcome(412)?;
    ensure!(
        r.text.contains("entry 1"),
        "outcome does not name entry 1: {}",
        r.text
    );
    // A patch of a resource that does not exist: 404.
    let mut missing = tx(fine, None);
    missing["entry"][1]["request"]["url"] = json!(format!("Patient/none-{}", unique()));
    post_bundle(&c, &missing).await?.expect_outcome(404)?;
    ensure!(
        count(&c, &format!("Patient?family={family}")).await? == 0,
        "a failed transaction committed its create"
    );
    let read = c.get(&path).await?;
    ensure!(
        read.version_id() == "1" && read.json["gender"] == "female",
        "a failed transaction patched the resource: {}",
        read.text
    );
    Ok(())
}
