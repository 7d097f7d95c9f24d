//! History at instance, type and system level: order, deletes, `_since`, `_at`, `_count`, paging.

use serde_json::{Value, json};

use super::fixtures::patient;
use crate::client::unique;
use crate::{Client, Outcome, cases, ensure};

cases!("history";
    instance_history_lists_versions_newest_first,
    instance_history_shows_deletes,
    type_history_pages_with_next_links,
    system_history_includes_new_writes,
    since_filters_versions,
    at_returns_the_version_current_then,
    history_of_unknown_resource_is_404,
    invalid_since_is_400,
);

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

async fn three_versions(c: &Client) -> Result<String, String> {
    let created = c.create(&patient()).await?;
    created.expect(201)?;
    let mut p = created.json.clone();
    for n in 0..2 {
        p["active"] = json!(n == 0);
        c.update(&p).await?.expect(200)?;
    }
    Ok(created.id())
}

async fn instance_history_lists_versions_newest_first(c: Client) -> Outcome {
    let id = three_versions(&c).await?;
    let r = c.get(&format!("Patient/{id}/_history")).await?;
    r.expect(200)?;
    ensure!(
        r.json["resourceType"] == "Bundle" && r.json["type"] == "history",
        "not a history Bundle"
    );
    let versions: Vec<String> = entries(&r.json)
        .iter()
        .map(|e| {
            e["resource"]["meta"]["versionId"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    ensure!(versions == ["3", "2", "1"], "versions {versions:?}");
    let first = &entries(&r.json)[0];
    ensure!(
        first["request"]["method"] == "PUT",
        "request.method {}",
        first["request"]["method"]
    );
    ensure!(
        entries(&r.json)[2]["request"]["method"] == "POST",
        "first version not a POST"
    );
    ensure!(
        first["fullUrl"]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("Patient/{id}")),
        "fullUrl {}",
        first["fullUrl"]
    );
    Ok(())
}

async fn instance_history_shows_deletes(c: Client) -> Outcome {
    let id = three_versions(&c).await?;
    c.delete(&format!("Patient/{id}")).await?;
    let r = c.get(&format!("Patient/{id}/_history")).await?;
    r.expect(200)?;
    let e = entries(&r.json);
    ensure!(e.len() == 4, "{} entries", e.len());
    ensure!(
        e[0]["request"]["method"] == "DELETE" && e[0].get("resource").is_none(),
        "newest entry: {}",
        e[0]
    );
    Ok(())
}

async fn type_history_pages_with_next_links(c: Client) -> Outcome {
    // A type nobody else writes in this suite, so the pages hold only this check's versions.
    let tag = unique();
    for n in 0..5 {
        c.create(&json!({"resourceType": "Basic", "code": {"text": format!("{tag}-{n}")}}))
            .await?
            .expect(201)?;
    }
    let mut url = "Basic/_history?_count=2".to_string();
    let mut seen = Vec::new();
    for _ in 0..100 {
        let r = c.get(&url).await?;
        r.expect(200)?;
        let page = entries(&r.json);
        ensure!(page.len() <= 2, "_count=2 gave {} entries", page.len());
        for e in &page {
            seen.push(format!(
                "{}/{}",
                e["resource"]["id"], e["resource"]["meta"]["versionId"]
            ));
        }
        let next = r.json["link"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next");
        match next {
            Some(l) => url = l["url"].as_str().unwrap_or_default().to_string(),
            None => break,
        }
    }
    let mine = seen.len();
    let mut unique_seen = seen.clone();
    unique_seen.sort();
    unique_seen.dedup();
    ensure!(unique_seen.len() == mine, "paging repeated entries");
    ensure!(mine >= 5, "paging found only {mine} versions");
    Ok(())
}

async fn system_history_includes_new_writes(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let r = c.get("_history?_count=50").await?;
    r.expect(200)?;
    ensure!(r.json["type"] == "history", "not a history Bundle");
    ensure!(
        entries(&r.json)
            .iter()
            .any(|e| e["resource"]["id"] == created.json["id"]),
        "new Patient not in system history"
    );
    Ok(())
}

async fn since_filters_versions(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let id = created.id();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mark = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut p = created.json.clone();
    p["active"] = json!(true);
    c.update(&p).await?.expect(200)?;
    let r = c
        .get(&format!(
            "Patient/{id}/_history?_since={}",
            mark.replace('+', "%2B")
        ))
        .await?;
    r.expect(200)?;
    let versions: Vec<Value> = entries(&r.json)
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].clone())
        .collect();
    ensure!(versions == [json!("2")], "_since gave {versions:?}");
    Ok(())
}

async fn at_returns_the_version_current_then(c: Client) -> Outcome {
    let created = c.create(&patient()).await?;
    let id = created.id();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut p = created.json.clone();
    p["active"] = json!(true);
    let v2 = c.update(&p).await?;
    v2.expect(200)?;
    // Version 1 alone was current at the second it was written.
    let t1 = created.json["meta"]["lastUpdated"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let second = format!("{}Z", &t1[..19]);
    let r = c
        .get(&format!("Patient/{id}/_history?_at={second}"))
        .await?;
    r.expect(200)?;
    let versions: Vec<Value> = entries(&r.json)
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].clone())
        .collect();
    ensure!(versions == [json!("1")], "_at={second} gave {versions:?}");
    Ok(())
}

async fn history_of_unknown_resource_is_404(c: Client) -> Outcome {
    c.get(&format!("Patient/none-{}/_history", unique()))
        .await?
        .expect_outcome(404)?;
    Ok(())
}

async fn invalid_since_is_400(c: Client) -> Outcome {
    c.get("Patient/_history?_since=yesterday")
        .await?
        .expect_outcome(400)?;
    Ok(())
}
