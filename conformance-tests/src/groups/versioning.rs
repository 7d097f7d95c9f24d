//! vread, If-Match, conditional read.

use reqwest::Method;
use serde_json::json;

use super::fixtures::patient;
use crate::{Client, Outcome, cases, ensure};

cases!("versioning";
    vread_returns_each_version,
    vread_of_a_delete_is_410_and_unknown_version_404,
    if_match_current_version_succeeds,
    if_match_stale_version_is_412,
    delete_with_stale_if_match_is_412,
    if_none_match_current_is_304,
    if_none_match_old_version_is_200,
    if_modified_since_is_304_when_unchanged,
    last_updated_grows_with_each_version,
);

async fn two_versions(c: &Client) -> Result<(String, serde_json::Value), String> {
    let created = c.create(&patient()).await?;
    created.expect(201)?;
    let mut p = created.json.clone();
    p["active"] = json!(false);
    let updated = c.update(&p).await?;
    updated.expect(200)?;
    Ok((created.id(), updated.json))
}

async fn vread_returns_each_version(c: Client) -> Outcome {
    let (id, _) = two_versions(&c).await?;
    let v1 = c.get(&format!("Patient/{id}/_history/1")).await?;
    v1.expect(200)?;
    ensure!(
        v1.version_id() == "1" && v1.json.get("active").is_none(),
        "v1: {}",
        v1.text
    );
    ensure!(
        v1.header("etag") == "W/\"1\"",
        "v1 ETag {}",
        v1.header("etag")
    );
    let v2 = c.get(&format!("Patient/{id}/_history/2")).await?;
    ensure!(
        v2.version_id() == "2" && v2.json["active"] == false,
        "v2: {}",
        v2.text
    );
    Ok(())
}

async fn vread_of_a_delete_is_410_and_unknown_version_404(c: Client) -> Outcome {
    let (id, _) = two_versions(&c).await?;
    c.delete(&format!("Patient/{id}")).await?;
    c.get(&format!("Patient/{id}/_history/3"))
        .await?
        .expect_outcome(410)?;
    c.get(&format!("Patient/{id}/_history/2"))
        .await?
        .expect(200)?;
    c.get(&format!("Patient/{id}/_history/99"))
        .await?
        .expect_outcome(404)?;
    Ok(())
}

async fn if_match_current_version_succeeds(c: Client) -> Outcome {
    let (id, current) = two_versions(&c).await?;
    let r = c
        .write(
            Method::PUT,
            &format!("Patient/{id}"),
            &current,
            vec![("if-match", "W/\"2\"".into())],
        )
        .await?;
    r.expect(200)?;
    ensure!(r.version_id() == "3", "version {}", r.version_id());
    Ok(())
}

async fn if_match_stale_version_is_412(c: Client) -> Outcome {
    let (id, current) = two_versions(&c).await?;
    let r = c
        .write(
            Method::PUT,
            &format!("Patient/{id}"),
            &current,
            vec![("if-match", "W/\"1\"".into())],
        )
        .await?;
    r.expect_outcome(412)?;
    let read = c.get(&format!("Patient/{id}")).await?;
    ensure!(
        read.version_id() == "2",
        "a refused update changed the resource"
    );
    Ok(())
}

async fn delete_with_stale_if_match_is_412(c: Client) -> Outcome {
    let (id, _) = two_versions(&c).await?;
    let r = c
        .send(crate::client::Request {
            method: Method::DELETE,
            path: &format!("Patient/{id}"),
            body: None,
            headers: vec![("if-match", "W/\"1\"".into())],
        })
        .await?;
    r.expect_outcome(412)?;
    c.get(&format!("Patient/{id}")).await?.expect(200)?;
    Ok(())
}

async fn if_none_match_current_is_304(c: Client) -> Outcome {
    let (id, _) = two_versions(&c).await?;
    let r = c
        .get_with(
            &format!("Patient/{id}"),
            vec![("if-none-match", "W/\"2\"".into())],
        )
        .await?;
    r.expect(304)?;
    ensure!(r.text.is_empty(), "304 with a body");
    Ok(())
}

async fn if_none_match_old_version_is_200(c: Client) -> Outcome {
    let (id, _) = two_versions(&c).await?;
    let r = c
        .get_with(
            &format!("Patient/{id}"),
            vec![("if-none-match", "W/\"1\"".into())],
        )
        .await?;
    r.expect(200)?;
    Ok(())
}

async fn if_modified_since_is_304_when_unchanged(c: Client) -> Outcome {
    let (id, _) = two_versions(&c).await?;
    let later =
        httpdate::fmt_http_date(std::time::SystemTime::now() + std::time::Duration::from_secs(60));
    let r = c
        .get_with(&format!("Patient/{id}"), vec![("if-modified-since", later)])
        .await?;
    r.expect(304)?;
    let earlier = httpdate::fmt_http_date(
        std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
    );
    let r = c
        .get_with(
            &format!("Patient/{id}"),
            vec![("if-modified-since", earlier)],
        )
        .await?;
    r.expect(200)?;
    Ok(())
}

async fn last_updated_grows_with_each_version(c: Client) -> Outcome {
    let (id, _) = two_versions(&c).await?;
    let v1 = c.get(&format!("Patient/{id}/_history/1")).await?;
    let v2 = c.get(&format!("Patient/{id}/_history/2")).await?;
    let t = |r: &crate::Reply| {
        chrono::DateTime::parse_from_rfc3339(r.json["meta"]["lastUpdated"].as_str().unwrap_or(""))
    };
    let (a, b) = (
        t(&v1).map_err(|e| e.to_string())?,
        t(&v2).map_err(|e| e.to_string())?,
    );
    ensure!(b > a, "lastUpdated did not grow: {a} then {b}");
    Ok(())
}
