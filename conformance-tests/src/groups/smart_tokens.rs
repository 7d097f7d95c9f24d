//! SMART refresh tokens, introspection and revocation (checklist cases 36–45 of
//! `shared/reference/smart-consent-abdm-audit.md` §7).

use crate::smart::{Browser, Decision, TokenReply, launch, patient_launch, post_form, random};
use crate::{Client, Outcome, cases, ensure};

cases!("smart-tokens";
    refresh_without_scope_keeps_the_grant,
    refresh_with_a_subset_narrows,
    refresh_asking_for_more_is_invalid_scope,
    random_refresh_token_is_refused,
    refresh_token_of_another_client_is_refused,
    reused_refresh_token_revokes_the_whole_grant,
    no_refresh_token_without_offline_access,
    introspection_of_an_active_token_matches_the_token_response,
    introspection_of_garbage_says_only_inactive,
    revocation_by_the_patient_ends_every_token,
    revocation_endpoint_ends_the_grant,
);

/// A refresh by the public app, with `scope` when given.
async fn refresh(c: &Client, token: &str, scope: Option<&str>) -> Result<TokenReply, String> {
    let s = c.smart()?;
    let mut pairs = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", s.app.client_id.as_str()),
    ];
    if let Some(scope) = scope {
        pairs.push(("scope", scope));
    }
    post_form(&c.oauth("token"), &pairs, None, &[]).await
}

/// Whether the access token is still accepted by the introspection endpoint.
async fn active(c: &Client, token: &str) -> Result<bool, String> {
    let reply = post_form(&c.oauth("introspect"), &[("token", token)], None, &[]).await?;
    ensure!(reply.status == 200, "introspection: HTTP {}", reply.status);
    Ok(reply.json["active"] == true)
}

fn scopes(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

async fn refresh_without_scope_keeps_the_grant(c: Client) -> Outcome {
    let first = patient_launch(&c).await?;
    let reply = refresh(&c, &first.field("refresh_token"), None).await?;
    ensure!(reply.status == 200, "HTTP {}: {}", reply.status, reply.json);
    ensure!(!reply.field("access_token").is_empty(), "no access_token");
    ensure!(
        reply.field("token_type").eq_ignore_ascii_case("bearer"),
        "token_type"
    );
    ensure!(reply.json["expires_in"].is_i64(), "expires_in not a number");
    let original = first.field("scope");
    let granted = reply.field("scope");
    ensure!(
        scopes(&granted)
            .iter()
            .all(|s| scopes(&original).contains(s)),
        "refreshed scope '{granted}' is not within '{original}'"
    );
    ensure!(
        reply.header("cache-control").contains("no-store"),
        "Cache-Control"
    );
    ensure!(reply.header("pragma").contains("no-cache"), "Pragma");
    ensure!(
        !reply.field("refresh_token").is_empty()
            && reply.field("refresh_token") != first.field("refresh_token"),
        "the refresh token was not rotated"
    );
    Ok(())
}

async fn refresh_with_a_subset_narrows(c: Client) -> Outcome {
    let first = patient_launch(&c).await?;
    let reply = refresh(
        &c,
        &first.field("refresh_token"),
        Some("patient/Patient.rs"),
    )
    .await?;
    ensure!(reply.status == 200, "HTTP {}: {}", reply.status, reply.json);
    ensure!(
        reply.field("scope") == "patient/Patient.rs",
        "scope '{}'",
        reply.field("scope")
    );
    Ok(())
}

async fn refresh_asking_for_more_is_invalid_scope(c: Client) -> Outcome {
    let first = patient_launch(&c).await?;
    let token = first.field("refresh_token");
    let reply = refresh(&c, &token, Some("patient/*.cruds")).await?;
    ensure!(reply.status == 400, "HTTP {}", reply.status);
    ensure!(reply.field("error") == "invalid_scope", "{}", reply.json);
    // A refused request does not spend the token.
    let again = refresh(&c, &token, None).await?;
    ensure!(
        again.status == 200,
        "the token was spent: HTTP {}",
        again.status
    );
    Ok(())
}

async fn random_refresh_token_is_refused(c: Client) -> Outcome {
    let reply = refresh(&c, &random(32), None).await?;
    ensure!(
        reply.status == 400 || reply.status == 401,
        "HTTP {}",
        reply.status
    );
    ensure!(reply.json["access_token"].is_null(), "a token was issued");
    Ok(())
}

async fn refresh_token_of_another_client_is_refused(c: Client) -> Outcome {
    let s = c.smart()?;
    let first = patient_launch(&c).await?;
    let other = &s.confidential_app;
    let reply = post_form(
        &c.oauth("token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first.field("refresh_token")),
        ],
        Some((
            &other.client_id,
            other.secret.as_deref().unwrap_or_default(),
        )),
        &[],
    )
    .await?;
    ensure!(reply.status == 400, "HTTP {}", reply.status);
    ensure!(reply.field("error") == "invalid_grant", "{}", reply.json);
    Ok(())
}

async fn reused_refresh_token_revokes_the_whole_grant(c: Client) -> Outcome {
    let first = patient_launch(&c).await?;
    let old = first.field("refresh_token");
    let second = refresh(&c, &old, None).await?;
    ensure!(
        second.status == 200,
        "first refresh: HTTP {}",
        second.status
    );
    let reuse = refresh(&c, &old, None).await?;
    ensure!(reuse.status == 400, "reuse: HTTP {}", reuse.status);
    ensure!(
        !active(&c, &second.field("access_token")).await?,
        "the newest access token survived the reuse"
    );
    let patient = second.field("patient");
    let read = c
        .with_token(&second.field("access_token"))
        .get(&format!("Patient/{patient}"))
        .await?;
    ensure!(read.status == 401, "a read with it: HTTP {}", read.status);
    let next = refresh(&c, &second.field("refresh_token"), None).await?;
    ensure!(
        next.status == 400,
        "the newest refresh token still works: {}",
        next.status
    );
    Ok(())
}

async fn no_refresh_token_without_offline_access(c: Client) -> Outcome {
    let s = c.smart()?;
    let (_, reply) = launch(
        &c,
        &s.app,
        &s.patient,
        "launch/patient openid fhirUser patient/*.rs",
        &Decision::default(),
    )
    .await?;
    ensure!(
        reply.json["refresh_token"].is_null(),
        "a refresh token without offline_access"
    );
    Ok(())
}

async fn introspection_of_an_active_token_matches_the_token_response(c: Client) -> Outcome {
    let s = c.smart()?;
    let first = patient_launch(&c).await?;
    let reply = post_form(
        &c.oauth("introspect"),
        &[("token", &first.field("access_token"))],
        None,
        &[],
    )
    .await?;
    let j = &reply.json;
    ensure!(reply.status == 200 && j["active"] == true, "{j}");
    ensure!(
        j["client_id"] == s.app.client_id.as_str(),
        "client_id {}",
        j["client_id"]
    );
    ensure!(
        scopes(j["scope"].as_str().unwrap_or_default()).len()
            == scopes(&first.field("scope")).len(),
        "scope {} vs {}",
        j["scope"],
        first.field("scope")
    );
    ensure!(j["exp"].as_i64().is_some(), "exp");
    ensure!(
        j["patient"] == first.json["patient"],
        "patient {}",
        j["patient"]
    );
    let (_, id) = crate::smart::jwt_parts(&first.field("id_token"))?;
    ensure!(
        j["iss"] == id["iss"] && j["sub"] == id["sub"],
        "iss/sub differ from the id_token"
    );
    ensure!(
        j["fhirUser"] == id["fhirUser"],
        "fhirUser {}",
        j["fhirUser"]
    );
    Ok(())
}

async fn introspection_of_garbage_says_only_inactive(c: Client) -> Outcome {
    let reply = post_form(
        &c.oauth("introspect"),
        &[("token", "invalid_token_value")],
        None,
        &[],
    )
    .await?;
    ensure!(reply.status == 200, "HTTP {}", reply.status);
    ensure!(
        reply.json == serde_json::json!({"active": false}),
        "more than active:false: {}",
        reply.json
    );
    Ok(())
}

async fn revocation_by_the_patient_ends_every_token(c: Client) -> Outcome {
    let s = c.smart()?;
    let first = patient_launch(&c).await?;
    let access = first.field("access_token");
    let patient = first.field("patient");
    let read = c
        .with_token(&access)
        .get(&format!("Patient/{patient}"))
        .await?;
    ensure!(
        read.status == 200,
        "before revocation: HTTP {}",
        read.status
    );
    // The patient opens the management page, signs in and revokes the app.
    let browser = Browser::new(&c.root());
    let page = browser.get(&c.oauth("manage")).await?;
    let forms = page.forms();
    let login = forms
        .iter()
        .find(|f| f.has("password"))
        .ok_or("the management page has no sign-in form")?;
    let page = browser
        .submit(
            login,
            &[
                ("identifier", &s.patient.identifier),
                ("password", &s.patient.password),
            ],
            login.buttons.first().map(|(n, v)| (n.as_str(), v.as_str())),
        )
        .await?;
    ensure!(
        page.status == 200,
        "sign-in on the management page: HTTP {}",
        page.status
    );
    let (_, claims) = crate::smart::jwt_parts(&access)?;
    let grant = claims["grant_id"].as_str().unwrap_or_default().to_string();
    let forms = page.forms();
    let revoke = forms
        .iter()
        .find(|f| f.values("grant").contains(&grant))
        .or_else(|| forms.iter().find(|f| f.has("grant")))
        .ok_or("no revoke button for the app")?;
    let page = browser.submit(revoke, &[], None).await?;
    ensure!(page.status == 200, "revoke: HTTP {}", page.status);
    let read = c
        .with_token(&access)
        .get(&format!("Patient/{patient}"))
        .await?;
    ensure!(
        matches!(read.status, 401 | 403 | 404),
        "after revocation: HTTP {}",
        read.status
    );
    let again = refresh(&c, &first.field("refresh_token"), None).await?;
    ensure!(
        again.status == 400 || again.status == 401,
        "refresh: HTTP {}",
        again.status
    );
    ensure!(!active(&c, &access).await?, "introspection still active");
    Ok(())
}

async fn revocation_endpoint_ends_the_grant(c: Client) -> Outcome {
    let s = c.smart()?;
    let first = patient_launch(&c).await?;
    let reply = post_form(
        &c.oauth("revoke"),
        &[
            ("token", &first.field("refresh_token")),
            ("token_type_hint", "refresh_token"),
            ("client_id", &s.app.client_id),
        ],
        None,
        &[],
    )
    .await?;
    ensure!(reply.status == 200, "HTTP {}: {}", reply.status, reply.json);
    ensure!(
        !active(&c, &first.field("access_token")).await?,
        "the access token is still active"
    );
    // An unknown token is answered the same way.
    let unknown = post_form(
        &c.oauth("revoke"),
        &[("token", &random(32)), ("client_id", &s.app.client_id)],
        None,
        &[],
    )
    .await?;
    ensure!(
        unknown.status == 200,
        "unknown token: HTTP {}",
        unknown.status
    );
    Ok(())
}
