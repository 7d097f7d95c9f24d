//! create, read, update, delete.

use reqwest::Method;
use serde_json::json;

use super::fixtures::{clinical_samples, patient};
use crate::client::unique;
use crate::{Client, Outcome, cases, ensure};

cases!("crud";
    create_returns_201_with_location_etag_and_meta,
    create_assigns_its_own_id,
    read_returns_the_stored_resource,
    update_bumps_the_version,
    update_as_create_with_a_client_id,
    delete_then_read_is_410_gone,
    delete_is_idempotent,
    recreate_after_delete,
    read_unknown_is_404,
    round_trip_keeps_decimals_key_order_and_extensions,
    prefer_return_minimal_and_operation_outcome,
    clinical_resource_types_round_trip,
);

async fn create_returns_201_with_location_etag_and_meta(c: Client) -> Outcome {
    let r = c.create(&patient()).await?;
    r.expect(201)?;
    let id = r.id();
    ensure!(!id.is_empty(), "no id in the created resource");
    let location = r.header("location");
    ensure!(
        location.contains(&format!("Patient/{id}/_history/1")),
        "Location {location}"
    );
    ensure!(r.header("etag") == "W/\"1\"", "ETag {}", r.header("etag"));
    ensure!(!r.header("last-modified").is_empty(), "no Last-Modified");
    ensure!(r.version_id() == "1", "meta.versionId {}", r.version_id());
    ensure!(
        r.json["meta"]["lastUpdated"].is_string(),
        "no meta.lastUpdated"
    );
    Ok(())
}

async fn create_assigns_its_own_id(c: Client) -> Outcome {
    let mut p = patient();
    p["id"] = json!("client-chosen-id");
    let r = c.create(&p).await?;
    r.expect(201)?;
    ensure!(
        r.id() != "client-chosen-id",
        "the server kept the client's id on create"
    );
    Ok(())
}

async fn read_returns_the_stored_resource(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let r = c.get(&format!("Patient/{}", created.id())).await?;
    r.expect(200)?;
    ensure!(
        r.json == created.json,
        "read differs from create: {} vs {}",
        r.text,
        created.text
    );
    ensure!(r.header("etag") == "W/\"1\"", "ETag {}", r.header("etag"));
    ensure!(
        r.header("content-type")
            .starts_with("application/fhir+json"),
        "content-type {}",
        r.header("content-type")
    );
    Ok(())
}

async fn update_bumps_the_version(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let mut p = created.json.clone();
    p["active"] = json!(true);
    let r = c.update(&p).await?;
    r.expect(200)?;
    ensure!(
        r.version_id() == "2",
        "versionId after update: {}",
        r.version_id()
    );
    ensure!(r.header("etag") == "W/\"2\"", "ETag {}", r.header("etag"));
    ensure!(r.json["active"] == true, "update lost the change");
    let read = c.get(&format!("Patient/{}", created.id())).await?;
    ensure!(
        read.json["active"] == true && read.version_id() == "2",
        "read after update: {}",
        read.text
    );
    Ok(())
}

async fn update_as_create_with_a_client_id(c: Client) -> Outcome {
    let id = format!("client-{}", unique());
    let mut p = patient();
    p["id"] = json!(id);
    let r = c.update(&p).await?;
    r.expect(201)?;
    ensure!(
        r.id() == id && r.version_id() == "1",
        "update-as-create: {}",
        r.text
    );
    c.get(&format!("Patient/{id}")).await?.expect(200)?;
    Ok(())
}

async fn delete_then_read_is_410_gone(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let path = format!("Patient/{}", created.id());
    let d = c.delete(&path).await?;
    ensure!(
        matches!(d.status, 200 | 202 | 204),
        "delete answered {}",
        d.status
    );
    c.get(&path).await?.expect_outcome(410)?;
    Ok(())
}

async fn delete_is_idempotent(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let path = format!("Patient/{}", created.id());
    c.delete(&path).await?;
    let again = c.delete(&path).await?;
    ensure!(
        matches!(again.status, 200 | 204),
        "second delete answered {}",
        again.status
    );
    let never = c.delete(&format!("Patient/never-{}", unique())).await?;
    ensure!(
        matches!(never.status, 200 | 204 | 404),
        "delete of unknown answered {}",
        never.status
    );
    Ok(())
}

async fn recreate_after_delete(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let path = format!("Patient/{}", created.id());
    c.delete(&path).await?;
    let r = c.update(&created.json).await?;
    r.expect(201)?;
    ensure!(
        r.version_id() == "3",
        "version after create-delete-update: {}",
        r.version_id()
    );
    c.get(&path).await?.expect(200)?;
    Ok(())
}

async fn read_unknown_is_404(c: Client) -> Outcome {
    c.get(&format!("Patient/unknown-{}", unique()))
        .await?
        .expect_outcome(404)?;
    Ok(())
}

async fn round_trip_keeps_decimals_key_order_and_extensions(c: Client) -> Outcome {
    let body = r#"{"resourceType":"Observation","status":"final","code":{"text":"weight"},"valueQuantity":{"value":72.50,"unit":"kg"},"extension":[{"url":"http://curanet.in/fhir/StructureDefinition/x-test","valueDecimal":0.10}],"component":[{"code":{"text":"a"},"valueQuantity":{"value":1.000}}],"note":[{"text":"z first"}]}"#;
    let r = c
        .write_raw(
            Method::POST,
            "Observation",
            body.as_bytes().to_vec(),
            vec![],
        )
        .await?;
    r.expect(201)?;
    let read = c.get(&format!("Observation/{}", r.id())).await?;
    for exact in ["72.50", "0.10", "1.000"] {
        ensure!(
            read.text.contains(exact),
            "decimal {exact} not kept: {}",
            read.text
        );
    }
    let order = [
        "\"status\"",
        "\"code\"",
        "\"valueQuantity\"",
        "\"extension\"",
        "\"component\"",
        "\"note\"",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| read.text.find(k).unwrap_or(usize::MAX))
        .collect();
    ensure!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "key order changed: {}",
        read.text
    );
    ensure!(read.text.contains("x-test"), "extension dropped");
    Ok(())
}

async fn prefer_return_minimal_and_operation_outcome(c: Client) -> Outcome {
    let r = c
        .write(
            Method::POST,
            "Patient",
            &patient(),
            vec![("prefer", "return=minimal".into())],
        )
        .await?;
    r.expect(201)?;
    ensure!(r.text.is_empty(), "return=minimal sent a body: {}", r.text);
    ensure!(
        !r.header("location").is_empty(),
        "no Location with return=minimal"
    );
    let r = c
        .write(
            Method::POST,
            "Patient",
            &patient(),
            vec![("prefer", "return=OperationOutcome".into())],
        )
        .await?;
    r.expect(201)?;
    ensure!(
        r.json["resourceType"] == "OperationOutcome",
        "return=OperationOutcome sent {}",
        r.text
    );
    Ok(())
}

async fn clinical_resource_types_round_trip(c: Client) -> Outcome {
    for sample in clinical_samples() {
        let rt = sample["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let r = c.create(&sample).await?;
        ensure!(r.status == 201, "{rt}: HTTP {} {}", r.status, r.text);
        let read = c.get(&format!("{rt}/{}", r.id())).await?;
        read.expect(200)?;
        for (k, v) in sample.as_object().into_iter().flatten() {
            ensure!(
                &read.json[k] == v || k == "identifier",
                "{rt}.{k} changed: {} vs {}",
                read.json[k],
                v
            );
        }
    }
    Ok(())
}
