//! Batch and transaction Bundles, and conditional create.

use reqwest::Method;
use serde_json::{Value, json};

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
