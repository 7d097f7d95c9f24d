//! SMART discovery (checklist cases 1–5 of `shared/reference/smart-consent-abdm-audit.md` §7):
//! the `.well-known/smart-configuration` document under the FHIR base, CORS on it and on
//! `metadata`, OpenID Connect discovery under the issuer, and the JWKS.

use serde_json::Value;

use crate::{Client, Outcome, cases, ensure};

cases!("smart-discovery";
    well_known_is_json_with_the_required_fields,
    well_known_is_json_whatever_the_accept_header,
    well_known_and_metadata_allow_any_origin,
    capabilities_cover_the_certification_list,
    openid_configuration_and_jwks_serve_rs256_keys,
    listed_system_scopes_are_granted_to_a_backend,
    capability_statement_names_the_oauth_endpoints,
);

/// The CapabilityStatement (read without a token) declares SMART-on-FHIR security whose
/// `oauth-uris` agree with the well-known document.
async fn capability_statement_names_the_oauth_endpoints(c: Client) -> Outcome {
    let metadata = c.anonymous().get("metadata").await?;
    metadata.expect(200)?;
    let security = &metadata.json["rest"][0]["security"];
    let smart = security["service"][0]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|code| code["code"] == "SMART-on-FHIR");
    ensure!(
        smart,
        "rest.security.service is not SMART-on-FHIR: {security}"
    );
    let uris = security["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| {
            e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
        })
        .ok_or(format!("no oauth-uris extension: {security}"))?;
    let named = |name: &str| {
        uris["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"] == name)
            .and_then(|e| e["valueUri"].as_str())
            .map(str::to_string)
    };
    let well_known = c.anonymous().get(".well-known/smart-configuration").await?;
    for (name, field) in [
        ("token", "token_endpoint"),
        ("authorize", "authorization_endpoint"),
    ] {
        ensure!(
            named(name).as_deref() == well_known.json[field].as_str(),
            "oauth-uris {name} = {:?}, well-known {field} = {}",
            named(name),
            well_known.json[field]
        );
    }
    Ok(())
}

/// Every `(field, url)` of a discovery document that names an endpoint.
fn urls(doc: &Value) -> Vec<(String, Value)> {
    doc.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.ends_with("_endpoint") || *k == "jwks_uri" || *k == "issuer")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `GET url` as a plain HTTP client does: no token, only the headers given (no `Accept` unless
/// one is given).
async fn fetch(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String, String, Value), String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = http.get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let reply = request
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = reply.status().as_u16();
    let header = |name: &str| {
        reply
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let content_type = header("content-type");
    let allow_origin = header("access-control-allow-origin");
    let bytes = reply.bytes().await.map_err(|e| e.to_string())?;
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, content_type, allow_origin, json))
}

/// The SMART configuration URL.
fn well_known(c: &Client) -> String {
    format!("{}/.well-known/smart-configuration", c.base())
}

/// The SMART configuration, fetched without `Accept`; fails unless it is 200 JSON.
async fn smart_configuration(c: &Client) -> Result<Value, String> {
    let (status, content_type, _, json) = fetch(&well_known(c), &[]).await?;
    ensure!(status == 200, "HTTP {status}");
    ensure!(
        content_type.starts_with("application/json"),
        "Content-Type '{content_type}'"
    );
    ensure!(json.is_object(), "not a JSON object");
    Ok(json)
}

/// The strings of an array field (fails when it is not an array of strings).
fn strings(doc: &Value, field: &str) -> Result<Vec<String>, String> {
    let items = doc[field]
        .as_array()
        .ok_or_else(|| format!("{field} is not an array: {}", doc[field]))?;
    items
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{field} holds a non-string: {v}"))
        })
        .collect()
}

async fn well_known_is_json_with_the_required_fields(c: Client) -> Outcome {
    let doc = smart_configuration(&c).await?;
    for field in ["authorization_endpoint", "token_endpoint"] {
        ensure!(doc[field].is_string(), "{field} missing: {doc}");
    }
    let grants = strings(&doc, "grant_types_supported")?;
    for grant in ["authorization_code", "client_credentials"] {
        ensure!(
            grants.iter().any(|g| g == grant),
            "grant_types_supported lacks {grant}: {grants:?}"
        );
    }
    let capabilities = strings(&doc, "capabilities")?;
    ensure!(!capabilities.is_empty(), "no capabilities");
    let methods = strings(&doc, "code_challenge_methods_supported")?;
    ensure!(
        methods.iter().any(|m| m == "S256"),
        "S256 not supported: {methods:?}"
    );
    ensure!(
        !methods.iter().any(|m| m == "plain"),
        "plain PKCE advertised: {methods:?}"
    );
    let urls = urls(&doc);
    ensure!(urls.len() >= 3, "too few endpoint URLs: {urls:?}");
    for (field, url) in urls {
        let text = url
            .as_str()
            .ok_or_else(|| format!("{field} is not a string: {url}"))?;
        ensure!(
            (text.starts_with("https://") || text.starts_with("http://"))
                && text.len() > "https://".len(),
            "{field} is not an absolute URL: {text}"
        );
    }
    Ok(())
}

async fn well_known_is_json_whatever_the_accept_header(c: Client) -> Outcome {
    for accept in ["application/fhir+xml", "text/html", "application/json"] {
        let (status, content_type, _, json) = fetch(&well_known(&c), &[("accept", accept)]).await?;
        ensure!(status == 200, "Accept {accept}: HTTP {status}");
        ensure!(
            content_type.starts_with("application/json"),
            "Accept {accept}: Content-Type '{content_type}'"
        );
        ensure!(
            json["token_endpoint"].is_string(),
            "Accept {accept}: not the discovery document: {json}"
        );
    }
    Ok(())
}

async fn well_known_and_metadata_allow_any_origin(c: Client) -> Outcome {
    let origin = "https://app.example";
    let metadata = format!("{}/metadata", c.base());
    for url in [well_known(&c), metadata] {
        let (status, _, allowed, _) =
            fetch(&url, &[("origin", origin), ("accept", "application/json")]).await?;
        ensure!(status == 200, "{url}: HTTP {status} without a token");
        ensure!(
            allowed == origin || allowed == "*",
            "{url}: Access-Control-Allow-Origin is '{allowed}' for {origin}"
        );
        // The preflight a browser sends first (any origin, no token).
        let http = reqwest::Client::new();
        let preflight = http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .map_err(|e| format!("OPTIONS {url}: {e}"))?;
        let status = preflight.status().as_u16();
        let allowed = preflight
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        ensure!(
            (200..300).contains(&status) && (allowed == origin || allowed == "*"),
            "preflight of {url}: HTTP {status}, Access-Control-Allow-Origin '{allowed}'"
        );
    }
    Ok(())
}

async fn capabilities_cover_the_certification_list(c: Client) -> Outcome {
    let doc = smart_configuration(&c).await?;
    let capabilities = strings(&doc, "capabilities")?;
    let missing: Vec<&str> = [
        "launch-standalone",
        "launch-ehr",
        "authorize-post",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "sso-openid-connect",
        "context-standalone-patient",
        "context-ehr-patient",
        "permission-offline",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
    ]
    .into_iter()
    .filter(|needed| !capabilities.iter().any(|c| c == needed))
    .collect();
    ensure!(missing.is_empty(), "capabilities lack {missing:?}");
    for field in ["issuer", "jwks_uri"] {
        ensure!(
            doc[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} missing although sso-openid-connect is listed"
        );
    }
    let methods = strings(&doc, "token_endpoint_auth_methods_supported")?;
    ensure!(
        methods.iter().any(|m| m == "private_key_jwt"),
        "token_endpoint_auth_methods_supported lacks private_key_jwt: {methods:?}"
    );
    let algs = strings(&doc, "token_endpoint_auth_signing_alg_values_supported")?;
    ensure!(
        algs.iter().any(|a| a == "RS384" || a == "ES384"),
        "neither RS384 nor ES384 in token_endpoint_auth_signing_alg_values_supported: {algs:?}"
    );
    Ok(())
}

async fn openid_configuration_and_jwks_serve_rs256_keys(c: Client) -> Outcome {
    let smart = smart_configuration(&c).await?;
    let issuer = smart["issuer"]
        .as_str()
        .ok_or("the SMART configuration has no issuer")?
        .trim_end_matches('/')
        .to_string();
    let url = format!("{issuer}/.well-known/openid-configuration");
    let (status, content_type, _, oidc) = fetch(&url, &[]).await?;
    ensure!(status == 200, "{url}: HTTP {status}");
    ensure!(
        content_type.starts_with("application/json"),
        "{url}: Content-Type '{content_type}'"
    );
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        ensure!(
            !oidc[field].is_null(),
            "{field} missing from the OpenID configuration"
        );
    }
    ensure!(
        oidc["issuer"].as_str().map(|s| s.trim_end_matches('/')) == Some(issuer.as_str()),
        "OpenID issuer {} differs from the SMART issuer {issuer}",
        oidc["issuer"]
    );
    let algs = strings(&oidc, "id_token_signing_alg_values_supported")?;
    ensure!(
        algs.iter().any(|a| a == "RS256"),
        "id_token_signing_alg_values_supported lacks RS256: {algs:?}"
    );
    let jwks_uri = oidc["jwks_uri"].as_str().ok_or("jwks_uri not a string")?;
    let (status, _, _, jwks) = fetch(jwks_uri, &[]).await?;
    ensure!(status == 200, "{jwks_uri}: HTTP {status}");
    let keys = jwks["keys"]
        .as_array()
        .ok_or_else(|| format!("no keys[] in the JWKS: {jwks}"))?;
    ensure!(
        keys.iter().any(|k| k["kty"] == "RSA"
            && k["n"].as_str().is_some_and(|n| !n.is_empty())
            && k["e"].as_str().is_some_and(|e| !e.is_empty())),
        "no RSA key with n and e in the JWKS: {jwks}"
    );
    ensure!(
        !keys
            .iter()
            .any(|k| !k["d"].is_null() || !k["p"].is_null() || !k["q"].is_null()),
        "the JWKS publishes private key material"
    );
    Ok(())
}

/// A server SHALL support every scope it lists in `scopes_supported`: each `system/` one is
/// granted to the backend service (registered for `system/*.cruds`) exactly as asked.
async fn listed_system_scopes_are_granted_to_a_backend(c: Client) -> Outcome {
    let doc = smart_configuration(&c).await?;
    let listed = strings(&doc, "scopes_supported")?;
    let system: Vec<&String> = listed.iter().filter(|s| s.starts_with("system/")).collect();
    ensure!(
        !system.is_empty(),
        "scopes_supported lists no system/ scope although client_credentials is supported"
    );
    let s = c.smart()?;
    let token_url = doc["token_endpoint"].as_str().unwrap_or_default();
    for scope in system {
        let assertion =
            crate::smart::client_assertion(&s.backend, token_url, serde_json::json!({}))?;
        let reply = crate::smart::post_form(
            token_url,
            &[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
            ],
            None,
            &[],
        )
        .await?;
        ensure!(
            reply.status == 200,
            "{scope}: HTTP {} {}",
            reply.status,
            reply.json
        );
        ensure!(
            reply.field("scope") == *scope,
            "asked for {scope}, granted '{}'",
            reply.field("scope")
        );
    }
    Ok(())
}
