//! The authorization request of SMART App Launch (`/oauth/authorize`): its validation, the
//! choices the consent page offers, and what the approval grants. Plain functions over the
//! request, the client and the account; the Authority looks the records up and stores the code.

use curanet_storage::{Account, ClientKind, LaunchContext, OAuthClient, Role};
use serde_json::{Map, Value, json};

use crate::pkce::CodeChallenge;
use crate::roles;
use crate::scope::{Level, ResourceTarget, Scope, Scopes};

/// How long an authorization code may wait for its exchange (SMART: "around one minute").
pub const CODE_LIFETIME_SECONDS: i64 = 60;

/// The parameters of an authorization request, each at most once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub aud: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub launch: Option<String>,
    pub nonce: Option<String>,
    /// Names of parameters sent more than once.
    pub repeated: Vec<String>,
}

/// The request's parameter names, in the order the forms carry them.
pub const PARAMETER_NAMES: [&str; 10] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "launch",
    "nonce",
];

impl AuthorizeParams {
    /// Reads the query or form pairs (other names are ignored; `resource` stands for `aud`).
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut p = AuthorizeParams::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "response_type" => &mut p.response_type,
                "client_id" => &mut p.client_id,
                "redirect_uri" => &mut p.redirect_uri,
                "scope" => &mut p.scope,
                "state" => &mut p.state,
                "aud" | "resource" => &mut p.aud,
                "code_challenge" => &mut p.code_challenge,
                "code_challenge_method" => &mut p.code_challenge_method,
                "launch" => &mut p.launch,
                "nonce" => &mut p.nonce,
                _ => continue,
            };
            if slot.is_some() {
                p.repeated.push(name.clone());
            }
            *slot = Some(value.clone());
        }
        p
    }

    /// The parameters as pairs (for the hidden fields of the login and consent forms).
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let values = [
            &self.response_type,
            &self.client_id,
            &self.redirect_uri,
            &self.scope,
            &self.state,
            &self.aud,
            &self.code_challenge,
            &self.code_challenge_method,
            &self.launch,
            &self.nonce,
        ];
        PARAMETER_NAMES
            .iter()
            .zip(values)
            .filter_map(|(name, value)| value.as_deref().map(|v| (*name, v)))
            .collect()
    }
}

/// Why an authorization request fails.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: an error page, never a redirect
    /// (RFC 6749 §4.1.2.1).
    NoRedirect(String),
    /// Sent back to the client's (registered) redirect URI with `error` and the `state`.
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

impl AuthorizeError {
    /// The URL to send the browser to, for the redirect kind.
    pub fn redirect_url(&self) -> Option<String> {
        match self {
            AuthorizeError::NoRedirect(_) => None,
            AuthorizeError::Redirect {
                redirect_uri,
                error,
                description,
                state,
            } => {
                let mut query = vec![("error", *error), ("error_description", description)];
                if let Some(state) = state {
                    query.push(("state", state));
                }
                Some(with_query(redirect_uri, &query))
            }
        }
    }

    /// What the error page or redirect says.
    pub fn description(&self) -> &str {
        match self {
            AuthorizeError::NoRedirect(d) | AuthorizeError::Redirect { description: d, .. } => d,
        }
    }
}

/// `uri` with `pairs` appended to its query.
pub fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = uri.to_string();
    let mut separator = if uri.contains('?') { '&' } else { '?' };
    for (name, value) in pairs {
        out.push(separator);
        out.push_str(name);
        out.push('=');
        out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
        separator = '&';
    }
    out
}

/// A request that passed validation: who asks, for what, and where the answer goes.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The parameters as received (the forms carry them on).
    pub params: AuthorizeParams,
    /// The registered client.
    pub client: OAuthClient,
    /// The registered redirect URI the request named.
    pub redirect_uri: String,
    /// The requested scopes the client is registered for.
    pub scopes: Scopes,
    pub state: Option<String>,
    pub code_challenge: CodeChallenge,
    pub nonce: Option<String>,
    /// The EHR launch the request names.
    pub launch: Option<LaunchContext>,
}

impl AuthorizationRequest {
    /// A redirect error for this request.
    pub fn error(&self, error: &'static str, description: impl Into<String>) -> AuthorizeError {
        AuthorizeError::Redirect {
            redirect_uri: self.redirect_uri.clone(),
            error,
            description: description.into(),
            state: self.state.clone(),
        }
    }

    /// Whether the app needs a patient in context (`launch/patient`, or patient/ scopes).
    pub fn needs_patient(&self) -> bool {
        self.scopes.launch_patient() || self.scopes.has_level(Level::Patient)
    }
}

/// Validates `params` for the `client` they name (looked up by the caller), the FHIR base the
/// tokens will be for, and the EHR launch the `launch` value resolved to.
pub fn validate(
    params: AuthorizeParams,
    client: Option<OAuthClient>,
    fhir_base: &str,
    launch: Option<LaunchContext>,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let client = match (params.client_id.as_deref(), client) {
        (None | Some(""), _) => {
            return Err(AuthorizeError::NoRedirect("client_id is required".into()));
        }
        (Some(_), None) => return Err(AuthorizeError::NoRedirect("unknown client_id".into())),
        (Some(_), Some(c)) if c.kind == ClientKind::Backend => {
            return Err(AuthorizeError::NoRedirect(
                "this client is a backend service: it uses client_credentials, not the authorization endpoint".into(),
            ));
        }
        (Some(_), Some(c)) => c,
    };
    let redirect_uri = match params.redirect_uri.as_deref() {
        None => {
            return Err(AuthorizeError::NoRedirect(
                "redirect_uri is required".into(),
            ));
        }
        Some(uri)
            if client
                .redirect_uris
                .iter()
                .any(|r| crate::registration::redirect_matches(r, uri)) =>
        {
            uri.to_string()
        }
        Some(_) => {
            return Err(AuthorizeError::NoRedirect(
                "redirect_uri is not registered for this client".into(),
            ));
        }
    };
    if params
        .repeated
        .iter()
        .any(|n| n == "client_id" || n == "redirect_uri")
    {
        return Err(AuthorizeError::NoRedirect(
            "client_id and redirect_uri must be sent once".into(),
        ));
    }
    let state = params.state.clone();
    let fail = |error: &'static str, description: String| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description,
        state: state.clone(),
    };
    if let Some(name) = params.repeated.first() {
        return Err(fail(
            "invalid_request",
            format!("the parameter '{name}' is repeated"),
        ));
    }
    if params.response_type.as_deref() != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "response_type must be code".into(),
        ));
    }
    if state.as_deref().is_none_or(str::is_empty) {
        return Err(fail("invalid_request", "state is required".into()));
    }
    match params.aud.as_deref() {
        Some(aud) if aud.trim_end_matches('/') == fhir_base => {}
        Some(_) => {
            return Err(fail(
                "invalid_request",
                format!("aud must be this server's FHIR base URL, {fhir_base}"),
            ));
        }
        None => return Err(fail("invalid_request", "aud is required".into())),
    }
    let code_challenge = CodeChallenge::parse(
        params.code_challenge.as_deref(),
        params.code_challenge_method.as_deref(),
    )
    .map_err(|e| {
        fail(
            "invalid_request",
            format!("PKCE with S256 is required: {e}"),
        )
    })?;
    let requested = Scopes::parse(params.scope.as_deref().unwrap_or_default())
        .map_err(|e| fail("invalid_scope", format!("malformed scope: {e}")))?;
    let registered = Scopes::parse(&client.scope).unwrap_or_default();
    let scopes = requested.intersect(&with_identity_scopes(&registered));
    if scopes.is_empty() {
        return Err(fail(
            "invalid_scope",
            "none of the requested scopes is registered for this client".into(),
        ));
    }
    let launch = match (params.launch.as_deref(), launch) {
        (None, _) => None,
        (Some(_), Some(launch)) => Some(launch),
        (Some(_), None) => {
            return Err(fail(
                "invalid_request",
                "the launch value is unknown, used or expired".into(),
            ));
        }
    };
    if launch.is_some() && !scopes.launch() {
        return Err(fail(
            "invalid_scope",
            "an EHR launch must request the launch scope".into(),
        ));
    }
    Ok(AuthorizationRequest {
        nonce: params.nonce.clone(),
        params,
        client,
        redirect_uri,
        scopes,
        state,
        code_challenge,
        launch,
    })
}

/// The registered scopes plus those every app may ask for (identity, launch, refresh); a
/// registration lists the data an app may reach, not these.
fn with_identity_scopes(registered: &Scopes) -> Scopes {
    let extra = Scopes::parse(
        "openid fhirUser profile launch launch/patient launch/encounter offline_access online_access",
    )
    .expect("valid scopes");
    registered.iter().chain(extra.iter()).cloned().collect()
}

/// One checkbox of the consent page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeChoice {
    /// The scope it grants.
    pub scope: String,
    /// What it means, in words.
    pub label: String,
    /// Checked at first (what the app asked for).
    pub checked: bool,
    /// A narrower alternative offered beside a resource-level scope.
    pub narrower: bool,
}

/// Observation categories (http://terminology.hl7.org/CodeSystem/observation-category).
const OBSERVATION_CATEGORIES: [(&str, &str); 9] = [
    ("laboratory", "laboratory results"),
    ("vital-signs", "vital signs"),
    ("social-history", "social history"),
    ("survey", "surveys"),
    ("exam", "examination findings"),
    ("imaging", "imaging results"),
    ("procedure", "procedure results"),
    ("therapy", "therapy observations"),
    ("activity", "activity observations"),
];

/// Condition categories (http://terminology.hl7.org/CodeSystem/condition-category).
const CONDITION_CATEGORIES: [(&str, &str); 2] = [
    ("problem-list-item", "problem list"),
    ("encounter-diagnosis", "encounter diagnoses"),
];

/// What the consent page offers an account of `role`: the grantable clinical scopes of the
/// request, each resource-level Observation or Condition scope followed by its category
/// sub-scopes (so a patient can share only some categories), then `offline_access` /
/// `online_access`. Identity and launch scopes are not choices: they come with the approval.
pub fn consent_choices(request: &AuthorizationRequest, role: Role) -> Vec<ScopeChoice> {
    let grantable = roles::grantable(role, &request.scopes);
    let mut out = Vec::new();
    for scope in grantable.iter() {
        match scope {
            Scope::Clinical(c) => {
                out.push(ScopeChoice {
                    scope: scope.to_string(),
                    label: describe(
                        c.level(),
                        c.target(),
                        &c.permissions().to_string(),
                        c.params(),
                    ),
                    checked: true,
                    narrower: false,
                });
                let categories: &[(&str, &str)] = match c.target() {
                    ResourceTarget::Type(t) if c.params().is_empty() && t == "Observation" => {
                        &OBSERVATION_CATEGORIES
                    }
                    ResourceTarget::Type(t) if c.params().is_empty() && t == "Condition" => {
                        &CONDITION_CATEGORIES
                    }
                    _ => &[],
                };
                let system = match c.target() {
                    ResourceTarget::Type(t) if t == "Condition" => {
                        "http://terminology.hl7.org/CodeSystem/condition-category"
                    }
                    _ => "http://terminology.hl7.org/CodeSystem/observation-category",
                };
                for (code, words) in categories {
                    let text = format!("{scope}?category={system}|{code}");
                    if let Ok(narrow) = Scope::parse(&text) {
                        out.push(ScopeChoice {
                            scope: narrow.to_string(),
                            label: format!("only {words}"),
                            checked: false,
                            narrower: true,
                        });
                    }
                }
            }
            Scope::OfflineAccess => out.push(ScopeChoice {
                scope: scope.to_string(),
                label: "stay connected when I am not using the app (offline access)".into(),
                checked: true,
                narrower: false,
            }),
            Scope::OnlineAccess => out.push(ScopeChoice {
                scope: scope.to_string(),
                label: "stay connected while I am signed in (online access)".into(),
                checked: true,
                narrower: false,
            }),
            _ => {}
        }
    }
    out
}

/// A scope in words, e.g. "read and search your Observation records".
fn describe(
    level: Level,
    target: &ResourceTarget,
    letters: &str,
    params: &[(String, String)],
) -> String {
    let verbs: Vec<&str> = letters
        .chars()
        .filter_map(|l| match l {
            'c' => Some("create"),
            'r' => Some("read"),
            'u' => Some("update"),
            'd' => Some("delete"),
            's' => Some("search"),
            _ => None,
        })
        .collect();
    let verbs = match verbs.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    let what = match target {
        ResourceTarget::Any => "all".to_string(),
        ResourceTarget::Type(t) => t.clone(),
    };
    let whose = match level {
        Level::Patient => "the patient's",
        Level::User => "the",
        Level::System => "all",
    };
    let mut text = format!("{verbs} {whose} {what} records");
    for (name, value) in params {
        text.push_str(&format!(" where {name} is {value}"));
    }
    text
}

/// What the user decided on the consent page.
#[derive(Debug, Clone, Default)]
pub struct Approval {
    /// The scopes checked (values of the choices).
    pub chosen: Vec<String>,
    /// The patient a clinician picked (a Patient id), in a standalone launch.
    pub patient: Option<String>,
}

/// What an approval grants: the scopes and the launch context of the code.
#[derive(Debug, Clone, PartialEq)]
pub struct Granted {
    pub scope: String,
    pub context: Value,
}

/// Checks an approval against what was offered: chosen scopes must be among the choices; the
/// identity and launch scopes of the request come along; the patient in context is the
/// account's own (patients), the EHR launch's, or the one a clinician picked.
pub fn grant(
    request: &AuthorizationRequest,
    account: &Account,
    approval: &Approval,
    style_url: &str,
) -> Result<Granted, String> {
    let offered = consent_choices(request, account.role);
    let mut granted = Vec::new();
    for chosen in &approval.chosen {
        let Some(choice) = offered.iter().find(|c| &c.scope == chosen) else {
            return Err(format!("'{chosen}' was not offered"));
        };
        granted.push(Scope::parse(&choice.scope).map_err(|e| e.to_string())?);
    }
    // Identity and launch scopes come with any approval when the role may hold them.
    for scope in roles::grantable(account.role, &request.scopes).iter() {
        if matches!(
            scope,
            Scope::OpenId
                | Scope::FhirUser
                | Scope::Profile
                | Scope::Launch
                | Scope::LaunchPatient
                | Scope::LaunchEncounter
        ) {
            granted.push(scope.clone());
        }
    }
    let scopes: Scopes = granted.into_iter().collect();
    let mut context = Map::new();
    let patient = match (&request.launch, account.role) {
        (Some(launch), _) => {
            if launch.created_by != account.id {
                return Err("this launch was opened by another user".into());
            }
            if let Some(encounter) = &launch.encounter {
                context.insert("encounter".into(), json!(encounter));
            }
            if let Some(fhir_context) = &launch.fhir_context {
                context.insert("fhirContext".into(), fhir_context.clone());
            }
            context.insert("need_patient_banner".into(), json!(true));
            context.insert("smart_style_url".into(), json!(style_url));
            launch.patient.clone()
        }
        (None, Role::Patient) => account
            .fhir_user
            .as_deref()
            .and_then(|u| u.strip_prefix("Patient/"))
            .map(str::to_string),
        (None, _) => approval.patient.clone().filter(|p| !p.is_empty()),
    };
    let needs_patient = scopes.launch_patient() || scopes.has_level(Level::Patient);
    match patient {
        Some(patient) => {
            context.insert("patient".into(), json!(patient));
            context.entry("need_patient_banner").or_insert(json!(false));
        }
        None if needs_patient => {
            return Err(match account.role {
                Role::Patient => "this account is not linked to a Patient record".into(),
                _ => "choose the patient the app may see".into(),
            });
        }
        None => {}
    }
    Ok(Granted {
        scope: scopes.to_string(),
        context: Value::Object(context),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkce::{generate_verifier, s256_challenge};
    use curanet_storage::AccountStatus;

    const BASE: &str = "http://127.0.0.1:8080/fhir";

    fn client() -> OAuthClient {
        OAuthClient {
            client_id: "app".into(),
            name: "App".into(),
            kind: ClientKind::Public,
            secret_hash: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            jwks: None,
            jwks_url: None,
            scope: "patient/*.rs user/*.rs".into(),
            allowed_origins: vec![],
            created_by: None,
            created_at: 0,
        }
    }

    fn params() -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", "https://app.example/cb"),
            (
                "scope",
                "launch/patient openid fhirUser offline_access patient/*.rs patient/Observation.rs",
            ),
            ("state", "abc-123"),
            ("aud", BASE),
            ("code_challenge", &s256_challenge(&generate_verifier())),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn with(name: &str, value: Option<&str>) -> AuthorizeParams {
        let mut pairs: Vec<(String, String)> =
            params().into_iter().filter(|(k, _)| k != name).collect();
        if let Some(v) = value {
            pairs.push((name.into(), v.into()));
        }
        AuthorizeParams::from_pairs(&pairs)
    }

    fn account(role: Role, fhir_user: Option<&str>) -> Account {
        Account {
            id: "acc-1".into(),
            role,
            email: None,
            phone: None,
            email_verified: true,
            phone_verified: false,
            password_hash: None,
            fhir_user: fhir_user.map(str::to_string),
            status: AccountStatus::parse("active").unwrap(),
            totp_secret: None,
            totp_last_step: None,
            recovery_code_hashes: vec![],
            failed_logins: 0,
            locked_until: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn code_of(result: Result<AuthorizationRequest, AuthorizeError>) -> String {
        match result {
            Ok(_) => "ok".into(),
            Err(AuthorizeError::NoRedirect(_)) => "page".into(),
            Err(AuthorizeError::Redirect { error, state, .. }) => {
                assert_eq!(
                    state.as_deref(),
                    Some("abc-123"),
                    "the state goes back unchanged"
                );
                error.into()
            }
        }
    }

    #[test]
    fn validation_answers_each_defect_as_the_specs_say() {
        let cases: Vec<(AuthorizeParams, Option<OAuthClient>, &str)> = vec![
            (AuthorizeParams::from_pairs(&params()), Some(client()), "ok"),
            (with("client_id", None), Some(client()), "page"),
            (AuthorizeParams::from_pairs(&params()), None, "page"),
            (
                with("redirect_uri", Some("https://evil.example/cb")),
                Some(client()),
                "page",
            ),
            (with("redirect_uri", None), Some(client()), "page"),
            (
                with("response_type", Some("token")),
                Some(client()),
                "unsupported_response_type",
            ),
            (
                with("aud", Some("https://evil.example/fhir")),
                Some(client()),
                "invalid_request",
            ),
            (with("aud", None), Some(client()), "invalid_request"),
            (
                with("code_challenge_method", Some("plain")),
                Some(client()),
                "invalid_request",
            ),
            (
                with("code_challenge", None),
                Some(client()),
                "invalid_request",
            ),
            (
                with("scope", Some("system/*.rs")),
                Some(client()),
                "invalid_scope",
            ),
            (
                with("launch", Some("nope")),
                Some(client()),
                "invalid_request",
            ),
        ];
        for (p, c, expected) in cases {
            let shown = format!("{p:?}");
            assert_eq!(code_of(validate(p, c, BASE, None)), expected, "{shown}");
        }
        let missing_state = with("state", None);
        assert!(matches!(
            validate(missing_state, Some(client()), BASE, None),
            Err(AuthorizeError::Redirect {
                error: "invalid_request",
                state: None,
                ..
            })
        ));
        let mut repeated = params();
        repeated.push(("scope".into(), "patient/*.rs".into()));
        assert_eq!(
            code_of(validate(
                AuthorizeParams::from_pairs(&repeated),
                Some(client()),
                BASE,
                None
            )),
            "invalid_request"
        );
    }

    #[test]
    fn error_redirects_carry_error_and_state() {
        let e = validate(
            with("code_challenge_method", Some("plain")),
            Some(client()),
            BASE,
            None,
        )
        .unwrap_err();
        let url = e.redirect_url().unwrap();
        assert!(
            url.starts_with("https://app.example/cb?error=invalid_request&"),
            "{url}"
        );
        assert!(url.ends_with("&state=abc-123"), "{url}");
    }

    #[test]
    fn patients_choose_among_the_requested_scopes_and_categories() {
        let request = validate(
            AuthorizeParams::from_pairs(&params()),
            Some(client()),
            BASE,
            None,
        )
        .unwrap();
        let choices = consent_choices(&request, Role::Patient);
        let scopes: Vec<&str> = choices.iter().map(|c| c.scope.as_str()).collect();
        assert!(scopes.contains(&"patient/*.rs"));
        assert!(scopes.contains(&"patient/Observation.rs"));
        assert!(scopes.contains(&"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"));
        assert!(scopes.contains(&"offline_access"));
        assert!(
            !scopes.contains(&"openid"),
            "identity scopes are not choices"
        );

        let lab = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
        let approval = Approval {
            chosen: vec![lab.into()],
            patient: None,
        };
        let me = account(Role::Patient, Some("Patient/p1"));
        let granted = grant(&request, &me, &approval, "s").unwrap();
        assert_eq!(
            granted.scope,
            format!("{lab} launch/patient openid fhirUser")
        );
        assert_eq!(granted.context["patient"], "p1");

        let sneaky = Approval {
            chosen: vec!["patient/*.cruds".into()],
            patient: None,
        };
        assert!(grant(&request, &me, &sneaky, "s").is_err());
    }

    #[test]
    fn clinicians_pick_a_patient_in_a_standalone_launch() {
        let request = validate(
            AuthorizeParams::from_pairs(&params()),
            Some(client()),
            BASE,
            None,
        )
        .unwrap();
        let doctor = account(Role::Doctor, Some("Practitioner/d1"));
        let approval = Approval {
            chosen: vec!["patient/*.rs".into()],
            patient: None,
        };
        assert!(grant(&request, &doctor, &approval, "s").is_err());
        let picked = Approval {
            patient: Some("p9".into()),
            ..approval
        };
        assert_eq!(
            grant(&request, &doctor, &picked, "s").unwrap().context["patient"],
            "p9"
        );
    }

    #[test]
    fn an_ehr_launch_supplies_its_context_to_its_own_user_only() {
        let launch = LaunchContext {
            id: "h".into(),
            patient: Some("p5".into()),
            encounter: Some("e5".into()),
            fhir_context: None,
            created_by: "acc-1".into(),
            created_at: 0,
            expires_at: i64::MAX,
        };
        let mut pairs = params();
        pairs.retain(|(k, _)| k != "scope");
        pairs.push(("scope".into(), "launch openid fhirUser patient/*.rs".into()));
        pairs.push(("launch".into(), "xyz".into()));
        let request = validate(
            AuthorizeParams::from_pairs(&pairs),
            Some(client()),
            BASE,
            Some(launch),
        )
        .unwrap();
        let approval = Approval {
            chosen: vec!["patient/*.rs".into()],
            patient: None,
        };
        let doctor = account(Role::Doctor, Some("Practitioner/d1"));
        let granted = grant(&request, &doctor, &approval, "https://x/style").unwrap();
        assert_eq!(granted.context["patient"], "p5");
        assert_eq!(granted.context["encounter"], "e5");
        assert_eq!(granted.context["need_patient_banner"], true);
        let other = Account {
            id: "acc-2".into(),
            ..doctor
        };
        assert!(grant(&request, &other, &approval, "s").is_err());
    }
}
