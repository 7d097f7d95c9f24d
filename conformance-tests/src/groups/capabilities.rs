//! `GET /metadata`: the CapabilityStatement.

use crate::{Client, Outcome, cases, ensure};

cases!("capabilities";
    metadata_is_an_r4_capability_statement,
    metadata_lists_every_resource_type,
    metadata_tolerates_fhir_version_in_accept,
    metadata_needs_no_body_content_type,
);

async fn metadata_is_an_r4_capability_statement(c: Client) -> Outcome {
    let r = c.get("metadata").await?;
    r.expect(200)?;
    ensure!(
        r.json["resourceType"] == "CapabilityStatement",
        "not a CapabilityStatement"
    );
    ensure!(
        r.json["fhirVersion"] == "4.0.1",
        "fhirVersion is {}",
        r.json["fhirVersion"]
    );
    ensure!(r.json["kind"] == "instance", "kind is {}", r.json["kind"]);
    ensure!(
        r.json["status"] == "active",
        "status is {}",
        r.json["status"]
    );
    let formats = r.json["format"].to_string();
    ensure!(
        formats.contains("json"),
        "format does not list json: {formats}"
    );
    ensure!(
        r.header("content-type")
            .starts_with("application/fhir+json"),
        "content-type {}",
        r.header("content-type")
    );
    Ok(())
}

async fn metadata_lists_every_resource_type(c: Client) -> Outcome {
    let r = c.get("metadata").await?;
    let resources = r.json["rest"][0]["resource"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        resources.len() >= 140,
        "only {} resource types listed",
        resources.len()
    );
    for t in [
        "Patient",
        "Observation",
        "Encounter",
        "MedicationRequest",
        "MedicationDispense",
        "Consent",
        "Appointment",
        "AllergyIntolerance",
        "DiagnosticReport",
        "DocumentReference",
        "AuditEvent",
    ] {
        let entry = resources
            .iter()
            .find(|e| e["type"] == t)
            .ok_or(format!("{t} not listed"))?;
        let interactions = entry["interaction"].to_string();
        // A server may keep AuditEvents append-only (its own records): reading them is enough.
        let expected: &[&str] = if t == "AuditEvent" {
            &["read", "search-type"]
        } else {
            &[
                "read",
                "vread",
                "update",
                "delete",
                "create",
                "history-instance",
            ]
        };
        for i in expected {
            ensure!(
                interactions.contains(&format!("\"{i}\"")),
                "{t} lacks interaction {i}"
            );
        }
    }
    Ok(())
}

async fn metadata_tolerates_fhir_version_in_accept(c: Client) -> Outcome {
    let r = c
        .get_with(
            "metadata",
            vec![("accept", "application/fhir+json; fhirVersion=4.0".into())],
        )
        .await?;
    r.expect(200)?;
    let r = c
        .get_with("metadata", vec![("accept", "application/json".into())])
        .await?;
    r.expect(200)?;
    ensure!(
        r.json["resourceType"] == "CapabilityStatement",
        "application/json accept"
    );
    Ok(())
}

async fn metadata_needs_no_body_content_type(c: Client) -> Outcome {
    let r = c.get("metadata?_pretty=true").await?;
    r.expect(200)?;
    ensure!(r.text.contains('\n'), "_pretty=true did not indent");
    Ok(())
}
