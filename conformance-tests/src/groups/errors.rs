//! Client mistakes get the right 4xx status and an OperationOutcome — never a 500.

use reqwest::Method;
use serde_json::json;

use super::fixtures::patient;
use crate::client::{Request, unique};
use crate::{Client, Outcome, cases, ensure};

cases!("errors";
    malformed_json_is_400,
    invalid_utf8_is_400,
    duplicate_keys_are_400,
    absurd_nesting_is_400,
    non_object_body_is_400,
    body_type_must_match_the_url,
    update_id_must_match_the_url,
    update_without_id_is_400,
    unknown_resource_type_is_404,
    invalid_id_in_url_is_400,
    unsupported_content_type_is_415,
    xml_only_accept_is_406,
    format_xml_is_406,
    unsupported_method_is_405,
    unknown_endpoint_is_404,
    malformed_if_match_is_400,
);

async fn raw(c: &Client, path: &str, body: &[u8]) -> Result<crate::Reply, String> {
    c.write_raw(Method::POST, path, body.to_vec(), vec![]).await
}

async fn malformed_json_is_400(c: Client) -> Outcome {
    raw(&c, "Patient", b"{\"resourceType\": \"Patient\",")
        .await?
        .expect_outcome(400)?;
    raw(&c, "Patient", b"").await?.expect_outcome(400)?;
    Ok(())
}

async fn invalid_utf8_is_400(c: Client) -> Outcome {
    raw(
        &c,
        "Patient",
        b"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\xff\xfe\"}]}",
    )
    .await?
    .expect_outcome(400)?;
    Ok(())
}

async fn duplicate_keys_are_400(c: Client) -> Outcome {
    raw(
        &c,
        "Patient",
        br#"{"resourceType":"Patient","gender":"male","gender":"female"}"#,
    )
    .await?
    .expect_outcome(400)?;
    Ok(())
}

async fn absurd_nesting_is_400(c: Client) -> Outcome {
    let deep = format!(
        "{{\"resourceType\":\"Patient\",\"extension\":{}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    raw(&c, "Patient", deep.as_bytes())
        .await?
        .expect_outcome(400)?;
    Ok(())
}

async fn non_object_body_is_400(c: Client) -> Outcome {
    raw(&c, "Patient", b"[1,2,3]").await?.expect_outcome(400)?;
    raw(&c, "Patient", b"{\"name\":[]}")
        .await?
        .expect_outcome(400)?;
    Ok(())
}

async fn body_type_must_match_the_url(c: Client) -> Outcome {
    c.write(Method::POST, "Observation", &patient(), vec![])
        .await?
        .expect_outcome(400)?;
    Ok(())
}

async fn update_id_must_match_the_url(c: Client) -> Outcome {
    let mut p = patient();
    p["id"] = json!("one");
    c.write(Method::PUT, "Patient/another", &p, vec![])
        .await?
        .expect_outcome(400)?;
    Ok(())
}

async fn update_without_id_is_400(c: Client) -> Outcome {
    c.write(
        Method::PUT,
        &format!("Patient/x{}", unique()),
        &patient(),
        vec![],
    )
    .await?
    .expect_outcome(400)?;
    Ok(())
}

async fn unknown_resource_type_is_404(c: Client) -> Outcome {
    c.get("Bogus/1").await?.expect_outcome(404)?;
    c.create(&json!({"resourceType": "Bogus"}))
        .await?
        .expect_outcome(404)?;
    Ok(())
}

async fn invalid_id_in_url_is_400(c: Client) -> Outcome {
    let long = "a".repeat(65);
    let r = c.get(&format!("Patient/{long}")).await?;
    ensure!(
        r.status == 400 || r.status == 404,
        "65-character id: HTTP {}",
        r.status
    );
    ensure!(
        r.json["resourceType"] == "OperationOutcome",
        "no OperationOutcome"
    );
    Ok(())
}

async fn unsupported_content_type_is_415(c: Client) -> Outcome {
    let body = b"<Patient xmlns=\"http://hl7.org/fhir\"/>".to_vec();
    let r = c
        .write_raw(
            Method::POST,
            "Patient",
            body,
            vec![("content-type", "application/fhir+xml".into())],
        )
        .await?;
    r.expect_outcome(415)?;
    Ok(())
}

async fn xml_only_accept_is_406(c: Client) -> Outcome {
    c.get_with("metadata", vec![("accept", "application/fhir+xml".into())])
        .await?
        .expect_outcome(406)?;
    Ok(())
}

async fn format_xml_is_406(c: Client) -> Outcome {
    c.get("metadata?_format=xml").await?.expect_outcome(406)?;
    Ok(())
}

async fn unsupported_method_is_405(c: Client) -> Outcome {
    let r = c
        .send(Request {
            method: Method::DELETE,
            path: "metadata",
            body: None,
            headers: vec![],
        })
        .await?;
    r.expect_outcome(405)?;
    Ok(())
}

async fn unknown_endpoint_is_404(c: Client) -> Outcome {
    let r = c.get("Patient/1/_history/1/extra/parts").await?;
    r.expect_outcome(404)?;
    Ok(())
}

async fn malformed_if_match_is_400(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let r = c
        .write(
            Method::PUT,
            &format!("Patient/{}", created.id()),
            &created.json,
            vec![("if-match", "yesterday".into())],
        )
        .await?;
    ensure!(
        r.status == 400 || r.status == 412,
        "If-Match: yesterday gave HTTP {}",
        r.status
    );
    ensure!(
        r.json["resourceType"] == "OperationOutcome",
        "no OperationOutcome"
    );
    Ok(())
}
