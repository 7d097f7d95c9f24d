//! The discovery documents: SMART's `.well-known/smart-configuration` (served under the FHIR
//! base) and OpenID Connect's `.well-known/openid-configuration` (under the issuer). Every URL is
//! absolute, built from the server's public root URL.

use serde_json::{Value, json};

/// Where the authorization server's endpoints live, relative to the public root URL.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The issuer: the server's public root (`https://curanet.example`), no trailing slash.
    pub issuer: String,
    /// The FHIR base (`{issuer}/fhir`).
    pub fhir_base: String,
}

impl Endpoints {
    /// The endpoints of a server whose public root URL is `root`.
    pub fn new(root: &str) -> Self {
        let issuer = root.trim_end_matches('/').to_string();
        Self {
            fhir_base: format!("{issuer}/fhir"),
            issuer,
        }
    }

    /// `{issuer}/oauth/authorize`.
    pub fn authorize(&self) -> String {
        format!("{}/oauth/authorize", self.issuer)
    }

    /// `{issuer}/oauth/token`.
    pub fn token(&self) -> String {
        format!("{}/oauth/token", self.issuer)
    }

    /// `{issuer}/oauth/introspect`.
    pub fn introspect(&self) -> String {
        format!("{}/oauth/introspect", self.issuer)
    }

    /// `{issuer}/oauth/revoke`.
    pub fn revoke(&self) -> String {
        format!("{}/oauth/revoke", self.issuer)
    }

    /// `{issuer}/oauth/jwks`.
    pub fn jwks(&self) -> String {
        format!("{}/oauth/jwks", self.issuer)
    }

    /// `{issuer}/oauth/register` (RFC 7591).
    pub fn register(&self) -> String {
        format!("{}/oauth/register", self.issuer)
    }

    /// `{issuer}/oauth/manage`: where a user reviews and revokes the apps they authorised.
    pub fn manage(&self) -> String {
        format!("{}/oauth/manage", self.issuer)
    }
}

/// What the server supports, as SMART capability strings (App Launch 2.2 §conformance).
pub const CAPABILITIES: &[&str] = &[
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-banner",
    "context-style",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
];

/// The scopes a client may ask for (besides `patient/`, `user/`, `system/` clinical scopes).
const SCOPES: &[&str] = &[
    "openid",
    "fhirUser",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
    "patient/*.cruds",
    "user/*.cruds",
    "system/*.cruds",
    "patient/*.read",
    "user/*.read",
    "patient/*.rs",
    "user/*.rs",
    "system/*.rs",
];

/// `GET {fhir_base}/.well-known/smart-configuration`.
pub fn smart_configuration(endpoints: &Endpoints) -> Value {
    json!({
        "issuer": endpoints.issuer,
        "jwks_uri": endpoints.jwks(),
        "authorization_endpoint": endpoints.authorize(),
        "token_endpoint": endpoints.token(),
        "introspection_endpoint": endpoints.introspect(),
        "revocation_endpoint": endpoints.revoke(),
        "registration_endpoint": endpoints.register(),
        "management_endpoint": endpoints.manage(),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": SCOPES,
        "capabilities": CAPABILITIES,
    })
}

/// `GET {issuer}/.well-known/openid-configuration`.
pub fn openid_configuration(endpoints: &Endpoints) -> Value {
    json!({
        "issuer": endpoints.issuer,
        "authorization_endpoint": endpoints.authorize(),
        "token_endpoint": endpoints.token(),
        "jwks_uri": endpoints.jwks(),
        "registration_endpoint": endpoints.register(),
        "introspection_endpoint": endpoints.introspect(),
        "revocation_endpoint": endpoints.revoke(),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "scopes_supported": ["openid", "fhirUser", "profile", "offline_access"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "fhirUser", "nonce"],
        "code_challenge_methods_supported": ["S256"],
    })
}

/// The `rest.security` of the CapabilityStatement: SMART-on-FHIR with the OAuth endpoints in
/// the `oauth-uris` extension (discovery by CapabilityStatement is deprecated in SMART 2, but
/// older clients still read it).
pub fn capability_security(endpoints: &Endpoints) -> Value {
    let uri = |name: &str, url: String| json!({"url": name, "valueUri": url});
    json!({
        "cors": true,
        "service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR"
        }], "text": "OAuth 2 with SMART App Launch 2.2 (see .well-known/smart-configuration)"}],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                uri("token", endpoints.token()),
                uri("authorize", endpoints.authorize()),
                uri("introspect", endpoints.introspect()),
                uri("revoke", endpoints.revoke()),
                uri("register", endpoints.register()),
                uri("manage", endpoints.manage()),
            ]
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(v: &Value) -> Vec<String> {
        v.as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.ends_with("endpoint") || *k == "jwks_uri" || *k == "issuer")
            .map(|(_, u)| u.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn smart_configuration_has_what_clients_need() {
        let e = Endpoints::new("http://127.0.0.1:8080/");
        let c = smart_configuration(&e);
        assert_eq!(e.fhir_base, "http://127.0.0.1:8080/fhir");
        assert_eq!(c["token_endpoint"], "http://127.0.0.1:8080/oauth/token");
        assert!(
            urls(&c)
                .iter()
                .all(|u| u.starts_with("http://127.0.0.1:8080"))
        );
        let methods = c["code_challenge_methods_supported"].as_array().unwrap();
        assert!(methods.contains(&json!("S256")) && !methods.contains(&json!("plain")));
        let caps: Vec<&str> = c["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for needed in [
            "launch-standalone",
            "launch-ehr",
            "sso-openid-connect",
            "permission-v1",
            "permission-v2",
            "client-confidential-asymmetric",
        ] {
            assert!(caps.contains(&needed), "{needed}");
        }
    }

    #[test]
    fn openid_configuration_has_the_required_fields() {
        let c = openid_configuration(&Endpoints::new("https://curanet.example"));
        for field in [
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "response_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported",
        ] {
            assert!(c.get(field).is_some(), "{field}");
        }
        assert_eq!(c["id_token_signing_alg_values_supported"][0], "RS256");
    }
}
