//! CuraNet's Health ID (`HID-YYYY-XXXXXXXX`) on Patient and Practitioner.
//!
//! The check symbol is verified here with an implementation written from the NamingSystem's
//! description, independent of the server's.

use serde_json::{Value, json};

use super::fixtures::{observation, patient};
use crate::{Client, Outcome, cases, ensure};

const SYSTEM: &str = "https://curanet.in/fhir/sid/health-id";
const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

cases!("health-id";
    patient_gets_a_valid_health_id,
    practitioner_gets_a_valid_health_id,
    other_types_get_none,
    client_supplied_valid_id_is_kept,
    malformed_or_mistyped_id_is_422,
    duplicate_id_is_409,
    update_keeps_the_id_when_omitted,
    update_cannot_change_the_id,
    naming_system_is_served,
);

/// Luhn mod 32 as the NamingSystem describes it: from the right, double every second value
/// starting with the rightmost of the twelve (year digits + seven symbols).
fn check_symbol(payload: &str) -> char {
    let mut sum = 0;
    for (i, ch) in payload.chars().rev().enumerate() {
        let v = ALPHABET.find(ch).unwrap_or(0) as u32;
        let v = if i % 2 == 0 { v * 2 } else { v };
        sum += v / 32 + v % 32;
    }
    ALPHABET.as_bytes()[((32 - sum % 32) % 32) as usize] as char
}

fn is_valid(hid: &str) -> bool {
    let b = hid.as_bytes();
    hid.len() == 17
        && hid.starts_with("HID-")
        && b[8] == b'-'
        && hid[4..8].chars().all(|c| c.is_ascii_digit())
        && hid[9..].chars().all(|c| ALPHABET.contains(c))
        && check_symbol(&format!("{}{}", &hid[4..8], &hid[9..16]))
            == hid.chars().last().unwrap_or(' ')
}

fn make(year: &str, body: &str) -> String {
    format!(
        "HID-{year}-{body}{}",
        check_symbol(&format!("{year}{body}"))
    )
}

fn health_ids(resource: &Value) -> Vec<String> {
    resource["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["system"] == SYSTEM)
        .filter_map(|i| i["value"].as_str().map(String::from))
        .collect()
}

fn random_body() -> String {
    let u = uuid::Uuid::new_v4();
    u.as_bytes()
        .iter()
        .take(7)
        .map(|b| ALPHABET.as_bytes()[(*b % 32) as usize] as char)
        .collect()
}

async fn patient_gets_a_valid_health_id(c: Client) -> Outcome {
    let r = c.create(&patient()).await?;
    r.expect(201)?;
    let ids = health_ids(&r.json);
    ensure!(ids.len() == 1, "Health IDs: {ids:?}");
    ensure!(
        is_valid(&ids[0]),
        "{} fails the format or check symbol",
        ids[0]
    );
    let year = chrono::Utc::now().format("%Y").to_string();
    ensure!(ids[0][4..8] == year, "{} is not of the year {year}", ids[0]);
    Ok(())
}

async fn practitioner_gets_a_valid_health_id(c: Client) -> Outcome {
    let r = c
        .create(&json!({"resourceType": "Practitioner", "name": [{"family": "Menon"}]}))
        .await?;
    r.expect(201)?;
    let ids = health_ids(&r.json);
    ensure!(ids.len() == 1 && is_valid(&ids[0]), "Health IDs: {ids:?}");
    Ok(())
}

async fn other_types_get_none(c: Client) -> Outcome {
    let r = c.create(&observation()).await?;
    r.expect(201)?;
    ensure!(
        r.json.get("identifier").is_none(),
        "an Observation got identifiers: {}",
        r.text
    );
    Ok(())
}

async fn client_supplied_valid_id_is_kept(c: Client) -> Outcome {
    let hid = make("2019", &random_body());
    let mut p = patient();
    p["identifier"] = json!([{"system": SYSTEM, "value": hid.to_lowercase()}]);
    let r = c.create(&p).await?;
    r.expect(201)?;
    ensure!(
        health_ids(&r.json) == [hid.clone()],
        "kept {:?}, sent {hid}",
        health_ids(&r.json)
    );
    Ok(())
}

async fn malformed_or_mistyped_id_is_422(c: Client) -> Outcome {
    let good = make("2024", &random_body());
    let last = good.chars().last().unwrap_or('0');
    let wrong_check = ALPHABET.chars().find(|&ch| ch != last).unwrap_or('1');
    let mistyped = format!("{}{wrong_check}", &good[..16]);
    for bad in [
        "HID-2024-1234",
        "PAT-2024-12345678",
        "HID-2024-1234567I",
        mistyped.as_str(),
    ] {
        let mut p = patient();
        p["identifier"] = json!([{"system": SYSTEM, "value": bad}]);
        let r = c.create(&p).await?;
        r.expect_outcome(422)?;
        ensure!(
            r.text.contains("identifier"),
            "{bad}: issue not located: {}",
            r.text
        );
    }
    Ok(())
}

async fn duplicate_id_is_409(c: Client) -> Outcome {
    let first = c.create(&patient()).await?;
    let hid = health_ids(&first.json).pop().ok_or("no Health ID")?;
    let mut p = patient();
    p["identifier"] = json!([{"system": SYSTEM, "value": hid}]);
    let r = c.create(&p).await?;
    r.expect_outcome(409)?;
    Ok(())
}

async fn update_keeps_the_id_when_omitted(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let hid = health_ids(&created.json);
    let mut p = created.json.clone();
    p.as_object_mut().map(|o| o.remove("identifier"));
    p["active"] = json!(true);
    let r = c.update(&p).await?;
    r.expect(200)?;
    ensure!(
        health_ids(&r.json) == hid,
        "Health ID after update: {:?} (was {hid:?})",
        health_ids(&r.json)
    );
    Ok(())
}

async fn update_cannot_change_the_id(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let mut p = created.json.clone();
    p["identifier"] = json!([{"system": SYSTEM, "value": make("2020", &random_body())}]);
    c.update(&p).await?.expect_outcome(422)?;
    let read = c.get(&format!("Patient/{}", created.id())).await?;
    ensure!(
        health_ids(&read.json) == health_ids(&created.json),
        "the Health ID changed"
    );
    Ok(())
}

async fn naming_system_is_served(c: Client) -> Outcome {
    let r = c.get("NamingSystem/curanet-health-id").await?;
    r.expect(200)?;
    ensure!(
        r.json["uniqueId"][0]["value"] == SYSTEM,
        "uniqueId {}",
        r.json["uniqueId"]
    );
    ensure!(r.json["kind"] == "identifier", "kind {}", r.json["kind"]);
    Ok(())
}
