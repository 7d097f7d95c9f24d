//! Validation of writes against the R4 definitions, and `$validate`.

use reqwest::Method;
use serde_json::{Value, json};

use super::fixtures::{observation, patient};
use crate::{Client, Outcome, cases, ensure};

cases!("validation";
    invalid_required_code_is_422_at_its_path,
    unknown_element_is_422,
    wrong_json_type_is_422,
    cardinality_is_enforced,
    missing_required_element_is_422,
    empty_values_are_422,
    malformed_primitives_are_422,
    invalid_choice_type_is_422,
    every_issue_is_listed,
    invalid_contained_resource_is_422,
    refused_writes_store_nothing,
    validate_operation_reports_without_storing,
    validate_instance_checks_the_stored_resource,
);

/// Posts `resource` and expects a 422 OperationOutcome with an issue at `expression`.
async fn refused_at(c: &Client, resource: Value, expression: &str) -> Outcome {
    let r = c.create(&resource).await?;
    r.expect_outcome(422)?;
    ensure!(
        r.has_issue_at(expression),
        "no issue at {expression}: {}",
        r.text
    );
    Ok(())
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

async fn invalid_required_code_is_422_at_its_path(c: Client) -> Outcome {
    refused_at(
        &c,
        with(observation(), "status", json!("bogus")),
        "Observation.status",
    )
    .await?;
    refused_at(
        &c,
        with(patient(), "gender", json!("woman")),
        "Patient.gender",
    )
    .await
}

async fn unknown_element_is_422(c: Client) -> Outcome {
    refused_at(
        &c,
        with(patient(), "favouriteColour", json!("blue")),
        "Patient.favouriteColour",
    )
    .await
}

async fn wrong_json_type_is_422(c: Client) -> Outcome {
    refused_at(
        &c,
        with(patient(), "birthDate", json!(1985)),
        "Patient.birthDate",
    )
    .await?;
    refused_at(
        &c,
        with(patient(), "active", json!("yes")),
        "Patient.active",
    )
    .await?;
    refused_at(
        &c,
        with(observation(), "valueQuantity", json!({"value": "72"})),
        "Observation.valueQuantity.value",
    )
    .await
}

async fn cardinality_is_enforced(c: Client) -> Outcome {
    refused_at(
        &c,
        with(patient(), "name", json!({"family": "X"})),
        "Patient.name",
    )
    .await?;
    refused_at(
        &c,
        with(patient(), "gender", json!(["female"])),
        "Patient.gender",
    )
    .await
}

async fn missing_required_element_is_422(c: Client) -> Outcome {
    let mut obs = observation();
    obs.as_object_mut().map(|o| o.remove("code"));
    refused_at(&c, obs, "Observation.code").await
}

async fn empty_values_are_422(c: Client) -> Outcome {
    refused_at(&c, with(patient(), "name", json!([])), "Patient.name").await?;
    refused_at(&c, with(patient(), "name", json!([{}])), "Patient.name[0]").await?;
    refused_at(&c, with(patient(), "gender", json!("")), "Patient.gender").await?;
    refused_at(&c, with(patient(), "active", Value::Null), "Patient.active").await
}

async fn malformed_primitives_are_422(c: Client) -> Outcome {
    refused_at(
        &c,
        with(patient(), "birthDate", json!("1985-02-30")),
        "Patient.birthDate",
    )
    .await?;
    refused_at(
        &c,
        with(observation(), "issued", json!("2024-01-01")),
        "Observation.issued",
    )
    .await?;
    refused_at(
        &c,
        with(
            observation(),
            "effectiveDateTime",
            json!("2024-01-01T10:00:00"),
        ),
        "Observation.effectiveDateTime",
    )
    .await?;
    refused_at(
        &c,
        with(patient(), "multipleBirthInteger", json!(1.5)),
        "Patient.multipleBirthInteger",
    )
    .await
}

async fn invalid_choice_type_is_422(c: Client) -> Outcome {
    refused_at(
        &c,
        with(observation(), "valueBogus", json!(1)),
        "Observation.valueBogus",
    )
    .await
}

async fn every_issue_is_listed(c: Client) -> Outcome {
    let bad = json!({"resourceType": "Observation", "status": "nope", "issued": "later", "foo": 1});
    let r = c.create(&bad).await?;
    r.expect_outcome(422)?;
    for at in [
        "Observation.status",
        "Observation.issued",
        "Observation.foo",
        "Observation.code",
    ] {
        ensure!(r.has_issue_at(at), "no issue at {at}: {}", r.text);
    }
    Ok(())
}

async fn invalid_contained_resource_is_422(c: Client) -> Outcome {
    let p = with(
        patient(),
        "contained",
        json!([{"resourceType": "Observation", "id": "o", "status": "bad", "code": {"text": "x"}}]),
    );
    let r = c.create(&p).await?;
    r.expect_outcome(422)?;
    ensure!(
        r.text.contains("status"),
        "contained error not located: {}",
        r.text
    );
    Ok(())
}

async fn refused_writes_store_nothing(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let mut p = created.json.clone();
    p["gender"] = json!("bogus");
    c.update(&p).await?.expect_outcome(422)?;
    let read = c.get(&format!("Patient/{}", created.id())).await?;
    ensure!(
        read.version_id() == "1" && read.json["gender"] == "female",
        "refused update changed data: {}",
        read.text
    );
    Ok(())
}

async fn validate_operation_reports_without_storing(c: Client) -> Outcome {
    let ok = c
        .write(
            Method::POST,
            "Observation/$validate",
            &observation(),
            vec![],
        )
        .await?;
    ok.expect(200)?;
    ensure!(
        ok.json["resourceType"] == "OperationOutcome",
        "not an OperationOutcome"
    );
    ensure!(
        !ok.text.contains("\"error\""),
        "valid resource reported errors: {}",
        ok.text
    );
    let bad = c
        .write(
            Method::POST,
            "Observation/$validate",
            &with(observation(), "status", json!("x")),
            vec![],
        )
        .await?;
    ensure!(
        bad.status == 200 || bad.status == 422 || bad.status == 400,
        "invalid resource: HTTP {}",
        bad.status
    );
    ensure!(
        bad.has_issue_at("Observation.status"),
        "no issue at Observation.status: {}",
        bad.text
    );
    let params = json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": with(observation(), "status", json!("x"))}]});
    let wrapped = c
        .write(Method::POST, "Observation/$validate", &params, vec![])
        .await?;
    ensure!(
        wrapped.has_issue_at("Observation.status"),
        "Parameters form not validated: {}",
        wrapped.text
    );
    Ok(())
}

async fn validate_instance_checks_the_stored_resource(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let r = c
        .get(&format!("Patient/{}/$validate", created.id()))
        .await?;
    r.expect(200)?;
    ensure!(
        !r.text.contains("\"error\""),
        "stored resource reported errors: {}",
        r.text
    );
    Ok(())
}
