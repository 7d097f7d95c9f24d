//! AuditEvents of the FHIR REST API in the shape of IHE Basic Audit Log Patterns (BALP), and the
//! hash chain that makes the stored audit trail tamper-evident. Plain functions: the `http` crate
//! gathers what a request did ([`RestView`], borrowed; [`RestEvent`] owned) and stores the
//! result; nothing here knows HTTP or SQL.
//!
//! Records are stored compactly ([`Recorded`], its JSON the record's body in the audit log, with
//! the search columns derived from it: [`log_record`]) and turned into AuditEvents when read
//! ([`audit_event`]). The chain: record `n` carries `hash_n = SHA-256(hash_{n-1} ‖ "\n" ‖
//! position ‖ "\n" ‖ body)` (hex, [`record_hash`]), starting from [`GENESIS`]; changing a body,
//! a position or a search column (checked against the body), or removing or reordering records,
//! breaks the link at that record ([`check_record`]). AuditEvent resources of the earlier
//! storage are chained over their canonical JSON ([`canonical_json`], [`check_link`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use curanet_storage::{AuditBatch, AuditKey, AuditRecord, StoredBlock};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The previous hash of the first record in the chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const BALP_ENTITY_TYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const AUTHZ_SUBTYPE: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType";
/// Identifier system of OAuth client ids in agents.
pub const CLIENT_ID_SYSTEM: &str = "https://curanet.in/fhir/sid/oauth-client";
/// Identifier system of account ids (token subjects) in agents.
pub const ACCOUNT_SYSTEM: &str = "https://curanet.in/fhir/sid/account";

/// The token behind a request: who and which app (never the token itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAgent {
    /// `sub`: the account id, or the client id for backend services.
    pub subject: String,
    /// `client_id`.
    pub client_id: String,
    /// `fhirUser` (`Practitioner/1`, or an absolute URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// `jti`, recorded as the agent's policy `urn:ietf:params:oauth:jti:<jti>` (BALP).
    pub jti: String,
}

/// One FHIR REST interaction as the server saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RestEvent {
    /// When it happened (FHIR instant).
    pub recorded: String,
    /// The `restful-interaction` code: `read`, `vread`, `search-type`, `create`, `operation`, ...
    pub interaction: String,
    /// The resource type addressed, if any.
    pub resource_type: Option<String>,
    /// The resource id addressed (or created), if any.
    pub id: Option<String>,
    /// The version addressed or written, if known.
    pub version: Option<String>,
    /// The operation's name without `$`, for `operation`.
    pub operation: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Why it failed (the OperationOutcome's text), for failures.
    pub outcome_desc: Option<String>,
    /// The verified token, if the request had one.
    pub token: Option<TokenAgent>,
    /// The peer's IP address.
    pub peer: Option<String>,
    /// The request id (`X-Request-Id`).
    pub request_id: Option<String>,
    /// The raw query of a search (the URL's query string, or a `_search` form body).
    pub query: Option<String>,
    /// Ids of the patients the request was about.
    pub patients: Vec<String>,
    /// The Consents that permitted it (ids).
    pub consents: Vec<String>,
    /// Whether a break-the-glass grant permitted it.
    pub break_glass: bool,
    /// This server (the FHIR base URL), the `source.observer`.
    pub server: String,
}

impl RestEvent {
    /// Runs `f` on the record borrowed.
    pub fn with_view<T>(&self, f: impl FnOnce(&RestView<'_>) -> T) -> T {
        let patients: Vec<&str> = self.patients.iter().map(String::as_str).collect();
        let consents: Vec<&str> = self.consents.iter().map(String::as_str).collect();
        f(&RestView {
            recorded: &self.recorded,
            interaction: &self.interaction,
            resource_type: self.resource_type.as_deref(),
            id: self.id.as_deref(),
            version: self.version.as_deref(),
            operation: self.operation.as_deref(),
            status: self.status,
            outcome_desc: self.outcome_desc.as_deref(),
            token: self.token.as_ref().map(TokenAgent::view),
            peer: self.peer.as_deref(),
            request_id: self.request_id.as_deref(),
            query: self.query.as_deref(),
            patients: &patients,
            consents: &consents,
            break_glass: self.break_glass,
            server: &self.server,
        })
    }
}

impl TokenAgent {
    fn view(&self) -> TokenView<'_> {
        TokenView {
            subject: &self.subject,
            client_id: &self.client_id,
            fhir_user: self.fhir_user.as_deref(),
            jti: &self.jti,
        }
    }
}

impl TokenView<'_> {
    /// The token owned.
    pub fn to_agent(&self) -> TokenAgent {
        TokenAgent {
            subject: self.subject.to_string(),
            client_id: self.client_id.to_string(),
            fhir_user: self.fhir_user.map(str::to_string),
            jti: self.jti.to_string(),
        }
    }
}

/// A REST interaction's record borrowed from wherever its parts live: the request path writes
/// it into the log without copying them into a [`RestEvent`] first (every request does this).
#[derive(Debug, Clone, Copy, Default)]
pub struct RestView<'a> {
    /// When it happened (FHIR instant).
    pub recorded: &'a str,
    /// The `restful-interaction` code.
    pub interaction: &'a str,
    /// The resource type addressed, if any.
    pub resource_type: Option<&'a str>,
    /// The resource id addressed (or created), if any.
    pub id: Option<&'a str>,
    /// The version addressed or written, if known.
    pub version: Option<&'a str>,
    /// The operation's name without `$`, for `operation`.
    pub operation: Option<&'a str>,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Why it failed, for failures.
    pub outcome_desc: Option<&'a str>,
    /// The verified token, if the request had one.
    pub token: Option<TokenView<'a>>,
    /// The peer's IP address.
    pub peer: Option<&'a str>,
    /// The request id.
    pub request_id: Option<&'a str>,
    /// The raw query of a search.
    pub query: Option<&'a str>,
    /// Ids of the patients the request was about.
    pub patients: &'a [&'a str],
    /// The Consents that permitted it.
    pub consents: &'a [&'a str],
    /// Whether a break-the-glass grant permitted it.
    pub break_glass: bool,
    /// This server (the FHIR base URL).
    pub server: &'a str,
}

/// The token behind a request, borrowed ([`TokenAgent`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenView<'a> {
    /// `sub`.
    pub subject: &'a str,
    /// `client_id`.
    pub client_id: &'a str,
    /// `fhirUser`.
    pub fhir_user: Option<&'a str>,
    /// `jti`.
    pub jti: &'a str,
}

impl RestView<'_> {
    /// The record owned (what a write's transaction carries).
    pub fn to_event(&self) -> RestEvent {
        let owned = |s: Option<&str>| s.map(str::to_string);
        RestEvent {
            recorded: self.recorded.to_string(),
            interaction: self.interaction.to_string(),
            resource_type: owned(self.resource_type),
            id: owned(self.id),
            version: owned(self.version),
            operation: owned(self.operation),
            status: self.status,
            outcome_desc: owned(self.outcome_desc),
            token: self.token.map(|t| t.to_agent()),
            peer: owned(self.peer),
            request_id: owned(self.request_id),
            query: owned(self.query),
            patients: self.patients.iter().map(|p| p.to_string()).collect(),
            consents: self.consents.iter().map(|c| c.to_string()).collect(),
            break_glass: self.break_glass,
            server: self.server.to_string(),
        }
    }
}

/// Writes a REST record's JSON (compact, the `kind` tag first; what [`Recorded`] reads back)
/// to `out`. Written by hand rather than through serde's tagged-enum serializer, which cost
/// every request twice as much (it escapes each key and goes through a map).
pub fn write_rest(v: &RestView<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"kind":"rest","recorded":"#);
    json_str(out, v.recorded);
    out.extend_from_slice(br#","interaction":"#);
    json_str(out, v.interaction);
    json_opt(out, br#","resource_type":"#, v.resource_type);
    json_opt(out, br#","id":"#, v.id);
    json_opt(out, br#","version":"#, v.version);
    json_opt(out, br#","operation":"#, v.operation);
    out.extend_from_slice(br#","status":"#);
    out.extend_from_slice(itoa::Buffer::new().format(v.status).as_bytes());
    json_opt(out, br#","outcome_desc":"#, v.outcome_desc);
    if let Some(t) = &v.token {
        out.extend_from_slice(br#","token":{"subject":"#);
        json_str(out, t.subject);
        out.extend_from_slice(br#","client_id":"#);
        json_str(out, t.client_id);
        json_opt(out, br#","fhir_user":"#, t.fhir_user);
        out.extend_from_slice(br#","jti":"#);
        json_str(out, t.jti);
        out.push(b'}');
    }
    json_opt(out, br#","peer":"#, v.peer);
    json_opt(out, br#","request_id":"#, v.request_id);
    json_opt(out, br#","query":"#, v.query);
    json_list(out, br#","patients":"#, v.patients);
    json_list(out, br#","consents":"#, v.consents);
    if v.break_glass {
        out.extend_from_slice(br#","break_glass":true"#);
    }
    out.extend_from_slice(br#","server":"#);
    json_str(out, v.server);
    out.push(b'}');
}

/// A JSON string: copied as it is when nothing in it needs escaping (ids, codes, URLs), else
/// escaped by serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // A fold without early exit: the compiler checks many bytes at a time.
    let plain = !s.bytes().fold(false, |esc, b| {
        esc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Serializing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn json_opt(out: &mut Vec<u8>, key: &[u8], value: Option<&str>) {
    if let Some(v) = value {
        out.extend_from_slice(key);
        json_str(out, v);
    }
}

fn json_list(out: &mut Vec<u8>, key: &[u8], values: &[&str]) {
    if values.is_empty() {
        return;
    }
    out.extend_from_slice(key);
    for (i, v) in values.iter().enumerate() {
        out.push(if i == 0 { b'[' } else { b',' });
        json_str(out, v);
    }
    out.push(b']');
}

/// The AuditEvent `action` of a `restful-interaction` code: C, R, U, D or E.
pub fn action(interaction: &str) -> &'static str {
    match interaction {
        "create" => "C",
        "read" | "vread" | "history-instance" | "history-type" | "history-system"
        | "capabilities" => "R",
        "update" | "patch" => "U",
        "delete" => "D",
        _ => "E",
    }
}

/// The AuditEvent `outcome` of an HTTP status: `0` success, `4` minor failure (a client error),
/// `8` serious failure (a denial — 401, 403 — or a server error).
pub fn outcome(status: u16) -> &'static str {
    match status {
        0..=399 => "0",
        401 | 403 => "8",
        400..=499 => "4",
        _ => "8",
    }
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// `Patient/{id}` unless it already is a reference.
fn patient_reference(id: &str) -> String {
    if id.contains('/') {
        id.to_string()
    } else {
        format!("Patient/{id}")
    }
}

/// The BALP-shaped AuditEvent of a REST interaction.
pub fn rest_audit_event(event: &RestEvent) -> Value {
    let action = action(&event.interaction);
    let network = |address: &str| json!({"address": address, "type": "2"});
    // BALP: on reads the server is the source of the data and the client its destination; on
    // queries and writes the client is the source.
    let (client_role, server_role) = if action == "R" {
        (
            coding(DCM, "110152", "Destination Role ID"),
            coding(DCM, "110153", "Source Role ID"),
        )
    } else {
        (
            coding(DCM, "110153", "Source Role ID"),
            coding(DCM, "110152", "Destination Role ID"),
        )
    };
    let mut agents = Vec::new();
    let mut user = Map::new();
    user.insert(
        "type".into(),
        json!({"coding": [coding(PARTICIPATION, "IRCP", "information recipient")]}),
    );
    match &event.token {
        Some(token) => {
            let who = match &token.fhir_user {
                Some(fhir_user) => json!({"reference": fhir_user}),
                None => json!({"identifier": {"system": ACCOUNT_SYSTEM, "value": token.subject}}),
            };
            user.insert("who".into(), who);
            user.insert("altId".into(), json!(token.subject));
        }
        None => {
            user.insert("name".into(), json!("unauthenticated"));
        }
    }
    user.insert("requestor".into(), json!(true));
    if event.break_glass {
        user.insert("purposeOfUse".into(), json!([break_glass()]));
    }
    if let Some(token) = &event.token
        && !token.jti.is_empty()
    {
        user.insert(
            "policy".into(),
            json!([format!("urn:ietf:params:oauth:jti:{}", token.jti)]),
        );
    }
    if let Some(peer) = &event.peer {
        user.insert("network".into(), network(peer));
    }
    agents.push(Value::Object(user));
    if let Some(token) = &event.token {
        let mut client = json!({
            "type": {"coding": [client_role]},
            "who": {"identifier": {"system": CLIENT_ID_SYSTEM, "value": token.client_id}},
            "requestor": false,
        });
        if let Some(peer) = &event.peer {
            client["network"] = network(peer);
        }
        agents.push(client);
    }
    agents.push(json!({
        "type": {"coding": [server_role]},
        "who": {"identifier": {"value": event.server}, "display": "CuraNet FHIR server"},
        "requestor": false,
        "network": {"address": event.server, "type": "5"},
    }));

    let mut entities = Vec::new();
    let mut patients: Vec<String> = event
        .patients
        .iter()
        .map(|p| patient_reference(p))
        .collect();
    patients.sort();
    patients.dedup();
    for patient in patients {
        entities.push(json!({
            "what": {"reference": patient},
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "1", "Patient"),
        }));
    }
    if let (Some(ty), Some(id)) = (&event.resource_type, &event.id) {
        let reference = match &event.version {
            Some(v) => format!("{ty}/{id}/_history/{v}"),
            None => format!("{ty}/{id}"),
        };
        let mut data = json!({
            "what": {"reference": reference},
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
        });
        if let Some(op) = &event.operation {
            data["description"] = json!(format!("${op}"));
        }
        entities.push(data);
    } else if let Some(op) = &event.operation {
        entities.push(json!({
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "description": format!(
                "${op} on {}",
                event.resource_type.as_deref().unwrap_or("the server")
            ),
        }));
    }
    for consent in &event.consents {
        entities.push(consent_entity(consent));
    }
    if let Some(query) = &event.query {
        let mut q = json!({
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "24", "Query"),
            "query": STANDARD.encode(query.as_bytes()),
        });
        if let Some(ty) = &event.resource_type {
            q["description"] = json!(ty);
        }
        entities.push(q);
    }
    if let Some(request_id) = &event.request_id {
        entities.push(json!({
            "what": {"identifier": {"value": request_id}},
            "type": coding(BALP_ENTITY_TYPE, "XrequestId", "X-Request-Id"),
        }));
    }

    let mut audit = json!({
        "resourceType": "AuditEvent",
        "type": coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation"),
        "subtype": [{"system": RESTFUL_INTERACTION, "code": event.interaction}],
        "action": action,
        "recorded": event.recorded,
        "outcome": outcome(event.status),
        "agent": agents,
        "source": {
            "site": "CuraNet",
            "observer": {"identifier": {"value": event.server}, "display": "CuraNet FHIR server"},
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        },
    });
    if event.break_glass {
        audit["purposeOfEvent"] = json!([break_glass()]);
    }
    if outcome(event.status) != "0" {
        let desc = match &event.outcome_desc {
            Some(d) if !d.is_empty() => format!("HTTP {}: {d}", event.status),
            _ => format!("HTTP {}", event.status),
        };
        audit["outcomeDesc"] = json!(desc);
    }
    if !entities.is_empty() {
        audit["entity"] = Value::Array(entities);
    }
    audit
}

/// The break-the-glass purpose (v3-ActReason BTG).
fn break_glass() -> Value {
    json!({"coding": [coding(ACT_REASON, "BTG", "break the glass")]})
}

/// The entity of a Consent that decided a request.
fn consent_entity(id: &str) -> Value {
    json!({
        "what": {"reference": format!("Consent/{id}")},
        "type": coding(RESOURCE_TYPES, "Consent", "Consent"),
    })
}

/// A request that consent refused: the BALP AuthZ-Consent security alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsentAlert {
    /// When it happened (FHIR instant).
    pub recorded: String,
    /// The patient whose consent refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The Consents consulted (ids).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<String>,
    /// Why consent refused.
    pub refusal: String,
    /// The token of the request refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenAgent>,
    /// The peer's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The request id (`X-Request-Id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// This server (the FHIR base URL).
    pub server: String,
}

/// The AuthZ-Consent security alert of a consent refusal (BALP AuthZconsent): DCM 110113
/// "Security Alert", subtype `AuthZ-Consent`, action E, outcome 8 with the refusal, and the
/// patient, the Consents and the token (its jti) as entities.
pub fn consent_alert_event(alert: &ConsentAlert) -> Value {
    let mut user = Map::new();
    match &alert.token {
        Some(token) => {
            let who = match &token.fhir_user {
                Some(fhir_user) => json!({"reference": fhir_user}),
                None => json!({"identifier": {"system": ACCOUNT_SYSTEM, "value": token.subject}}),
            };
            user.insert("who".into(), who);
            user.insert("altId".into(), json!(token.subject));
        }
        None => {
            user.insert("name".into(), json!("unauthenticated"));
        }
    }
    user.insert("requestor".into(), json!(true));
    if let Some(peer) = &alert.peer {
        user.insert("network".into(), json!({"address": peer, "type": "2"}));
    }
    let mut entities = Vec::new();
    if let Some(patient) = &alert.patient {
        entities.push(json!({
            "what": {"reference": patient_reference(patient)},
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "1", "Patient"),
        }));
    }
    for consent in &alert.consents {
        entities.push(consent_entity(consent));
    }
    if let Some(token) = &alert.token {
        entities.push(json!({
            "what": {"identifier": {"value": token.jti}},
            "type": coding(BALP_ENTITY_TYPE, "OAuth-token", "OAuth Token"),
            "description": "the access token's jti",
        }));
    }
    if let Some(request_id) = &alert.request_id {
        entities.push(json!({
            "what": {"identifier": {"value": request_id}},
            "type": coding(BALP_ENTITY_TYPE, "XrequestId", "X-Request-Id"),
        }));
    }
    let mut audit = json!({
        "resourceType": "AuditEvent",
        "type": coding(DCM, "110113", "Security Alert"),
        "subtype": [coding(AUTHZ_SUBTYPE, "AuthZ-Consent", "Authorization Decision using Roles and Consent")],
        "action": "E",
        "recorded": alert.recorded,
        "outcome": "8",
        "outcomeDesc": alert.refusal,
        "agent": [
            Value::Object(user),
            {
                "type": {"coding": [coding(DCM, "110150", "Application")]},
                "who": {"identifier": {"value": alert.server}, "display": "CuraNet FHIR server"},
                "requestor": false,
                "network": {"address": alert.server, "type": "5"},
            },
        ],
        "source": {
            "site": "CuraNet",
            "observer": {"identifier": {"value": alert.server}, "display": "CuraNet FHIR server"},
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        },
    });
    if !entities.is_empty() {
        audit["entity"] = Value::Array(entities);
    }
    audit
}

/// A record as the audit log stores it (its JSON, written by [`write_record`], is the record's
/// body).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
// The large variant is the common one: boxing it would cost every request an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Recorded {
    /// A FHIR interaction.
    Rest(RestEvent),
    /// A sign-in or sign-out.
    SignIn(SignInEvent),
    /// A consent refusal's security alert.
    ConsentAlert(ConsentAlert),
}

impl Recorded {
    fn recorded(&self) -> &str {
        match self {
            Recorded::Rest(e) => &e.recorded,
            Recorded::SignIn(e) => &e.recorded,
            Recorded::ConsentAlert(e) => &e.recorded,
        }
    }
}

/// The AuditEvent of a stored record: built from its body, with its id in the log and the
/// recorded time as `meta.lastUpdated`. `None` when the body is not a record.
pub fn audit_event(id: &str, body: &str) -> Option<Value> {
    let recorded: Recorded = serde_json::from_str(body).ok()?;
    let mut ae = match &recorded {
        Recorded::Rest(e) => rest_audit_event(e),
        Recorded::SignIn(e) => sign_in_audit_event(e),
        Recorded::ConsentAlert(e) => consent_alert_event(e),
    };
    let map = ae.as_object_mut()?;
    // `resourceType`, `id` and `meta` first, as every stored resource has them.
    let mut out = Map::with_capacity(map.len() + 2);
    out.insert("resourceType".into(), json!("AuditEvent"));
    out.insert("id".into(), json!(id));
    out.insert(
        "meta".into(),
        json!({"versionId": "1", "lastUpdated": recorded.recorded()}),
    );
    for (k, v) in std::mem::take(map) {
        if k != "resourceType" {
            out.insert(k, v);
        }
    }
    Some(Value::Object(out))
}

/// The audit log's row of a record: the search columns and the body. The columns say what
/// the AuditEvent built from the body says (`type`, `subtype`, `action`, `outcome`, the user's
/// `who` and `altId`, the patients, the resource), derived without building it: this runs for
/// every request.
pub fn log_record(recorded: &Recorded) -> AuditRecord {
    let mut body = Vec::new();
    write_record(recorded, &mut body);
    // Every record is written as JSON (UTF-8).
    columns(recorded, String::from_utf8(body).unwrap_or_default())
}

/// Writes a record's JSON (compact, one line, tagged with its `kind`) to `out`.
pub fn write_record(recorded: &Recorded, out: &mut Vec<u8>) {
    /// The records serde writes (rare: sign-ins and consent alerts).
    #[derive(Serialize)]
    #[serde(tag = "kind", rename_all = "kebab-case")]
    enum Other<'a> {
        SignIn(&'a SignInEvent),
        ConsentAlert(&'a ConsentAlert),
    }
    let other = match recorded {
        Recorded::Rest(e) => return e.with_view(|v| write_rest(v, out)),
        Recorded::SignIn(e) => Other::SignIn(e),
        Recorded::ConsentAlert(e) => Other::ConsentAlert(e),
    };
    // Serializing into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &other);
}

/// The search columns of a stored record's JSON (its `body` left empty: the caller has the
/// text); `None` when the text is not a record. The log's decoder
/// ([`curanet_storage::DecodeRecord`]).
pub fn decode_record(text: &str) -> Option<AuditRecord> {
    let recorded: Recorded = serde_json::from_str(text).ok()?;
    Some(columns(&recorded, String::new()))
}

/// Adds a record to a block of the log: its JSON written straight into the block's body, its
/// keys (patients, agent, altId: what [`log_record`]'s columns say, computed without
/// allocating) counted. `recorded_us` is its `recorded` in µs since the epoch (what the text
/// parses to; the caller made both from one clock reading).
pub fn push_record(batch: &mut AuditBatch, recorded: &Recorded, recorded_us: i64) {
    let write = |body: &mut Vec<u8>| {
        write_record(recorded, body);
        true
    };
    match recorded {
        Recorded::Rest(e) => e.with_view(|v| push_rest(batch, v, recorded_us)),
        Recorded::SignIn(e) => {
            let keys = block_keys(sign_in_patient_id(e), e.fhir_user.as_deref(), None);
            batch.push(recorded_us, keys, write);
        }
        Recorded::ConsentAlert(e) => {
            let (agent, alt_id) = user_of(&e.token);
            batch.push(
                recorded_us,
                block_keys(e.patient.as_deref(), agent, alt_id),
                write,
            );
        }
    }
}

/// [`push_record`] of a REST record borrowed (the request path).
pub fn push_rest(batch: &mut AuditBatch, view: &RestView<'_>, recorded_us: i64) {
    let keys = block_keys(
        view.patients.iter().copied(),
        view.token.and_then(|t| t.fhir_user),
        view.token.map(|t| t.subject),
    );
    batch.push(recorded_us, keys, |body| {
        write_rest(view, body);
        true
    });
}

/// A record's keys in its block: its patients' ids, the user's `who` reference and `altId`, as
/// [`columns`] derives them.
fn block_keys<'a>(
    patients: impl IntoIterator<Item = &'a str, IntoIter: Clone>,
    agent: Option<&'a str>,
    alt_id: Option<&'a str>,
) -> impl Iterator<Item = (AuditKey, &'a str)> + Clone {
    patients
        .into_iter()
        .filter_map(patient_key)
        .map(|p| (AuditKey::Patient, p))
        .chain(agent.map(|a| (AuditKey::Agent, a)))
        .chain(alt_id.map(|a| (AuditKey::AltId, a)))
}

/// The user's `who` reference and `altId` of a token.
fn user_of(token: &Option<TokenAgent>) -> (Option<&str>, Option<&str>) {
    match token {
        Some(t) => (t.fhir_user.as_deref(), Some(t.subject.as_str())),
        None => (None, None),
    }
}

/// The patient id a record's patient stands for: an id, or the id of a `Patient/` reference
/// (other references name no patient).
fn patient_key(p: &str) -> Option<&str> {
    if p.contains('/') {
        p.strip_prefix("Patient/")
    } else {
        Some(p)
    }
}

fn columns(recorded: &Recorded, body: String) -> AuditRecord {
    let code = |system: &str, code: &str| format!("{system}|{code}");
    let user = |token: &Option<TokenAgent>| {
        let (agent, alt_id) = user_of(token);
        (agent.map(str::to_string), alt_id.map(str::to_string))
    };
    let patient_ids = |ids: &mut dyn Iterator<Item = &String>| -> Vec<String> {
        let mut ids: Vec<String> = ids
            .filter_map(|p| patient_key(p).map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let (kind, subtype, action, outcome, (agent, alt_id), patients, entity) = match recorded {
        Recorded::Rest(e) => (
            code(AUDIT_EVENT_TYPE, "rest"),
            code(RESTFUL_INTERACTION, &e.interaction),
            self::action(&e.interaction),
            self::outcome(e.status),
            user(&e.token),
            patient_ids(&mut e.patients.iter()),
            match (&e.resource_type, &e.id) {
                (Some(ty), Some(id)) => Some(format!("{ty}/{id}")),
                _ => None,
            },
        ),
        Recorded::SignIn(e) => (
            code(DCM, "110114"),
            code(DCM, if e.logout { "110123" } else { "110122" }),
            "E",
            self::outcome(e.status),
            (e.fhir_user.clone(), None),
            sign_in_patient(e).into_iter().collect(),
            None,
        ),
        Recorded::ConsentAlert(e) => (
            code(DCM, "110113"),
            code(AUTHZ_SUBTYPE, "AuthZ-Consent"),
            "E",
            "8",
            user(&e.token),
            patient_ids(&mut e.patient.iter()),
            None,
        ),
    };
    AuditRecord {
        recorded: chrono::DateTime::parse_from_rfc3339(recorded.recorded())
            .map(|t| t.timestamp_micros())
            .unwrap_or(0),
        patients,
        agent,
        alt_id,
        kind,
        subtype,
        action: action.to_string(),
        outcome: outcome.to_string(),
        entity,
        body,
    }
}

/// The patient who signed in (their `fhirUser` is `Patient/{id}`), if a patient did.
fn sign_in_patient(event: &SignInEvent) -> Option<String> {
    sign_in_patient_id(event).map(str::to_string)
}

fn sign_in_patient_id(event: &SignInEvent) -> Option<&str> {
    event
        .fhir_user
        .as_deref()
        .and_then(|u| u.rsplit_once("Patient/"))
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// The hash of a block of the log chained to `previous`: SHA-256 of `previous ‖ "\n" ‖ block ‖
/// "\n" ‖ body`, hex (a block of one record: the link the record had in the 0012 log).
pub fn record_hash(previous: &str, block: i64, body: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(b"\n");
    hasher.update(block.to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(body.as_bytes());
    data_encoding::HEXLOWER.encode(&hasher.finalize())
}

/// Checks a linked block of the log against the hash before it: its link, its hash over number
/// and body, and its stored summary (time range, number of records, keys) against the records
/// of its body. The hash the next block must continue from.
pub fn check_block(previous: &str, stored: &StoredBlock) -> Result<String, Broken> {
    let Some((_, prev_hash, hash)) = &stored.link else {
        return Err(Broken::Missing);
    };
    if prev_hash != previous {
        return Err(Broken::Sequence {
            expected_prev: previous.to_string(),
        });
    }
    if &record_hash(previous, stored.block, &stored.body) != hash {
        return Err(Broken::Content);
    }
    let mut rebuilt = AuditBatch::new();
    for text in stored.body.split('\n') {
        let Some(record) = decode_record(text) else {
            return Err(Broken::Content);
        };
        rebuilt.push(record.recorded, record.keys(), |b| {
            b.extend_from_slice(text.as_bytes());
            true
        });
    }
    if rebuilt.summary() != stored.summary {
        return Err(Broken::Columns);
    }
    Ok(hash.clone())
}

/// A sign-in or sign-out through the account API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SignInEvent {
    /// When it happened (FHIR instant).
    pub recorded: String,
    /// A sign-out (DCM 110123) rather than a sign-in (110122).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub logout: bool,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Why it failed, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_desc: Option<String>,
    /// Who signed in (`fhirUser`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// The peer's IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The request id (`X-Request-Id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// This server (the FHIR base URL).
    pub server: String,
}

/// The AuditEvent of a sign-in or sign-out: DCM 110114 "User Authentication" with subtype
/// 110122 "Login" or 110123 "Logout" (the R4 AuditEvent scenarios). A patient's own sign-ins
/// carry them as the patient entity, so they list with `AuditEvent?patient=`.
pub fn sign_in_audit_event(event: &SignInEvent) -> Value {
    let mut user = Map::new();
    match &event.fhir_user {
        Some(fhir_user) => user.insert("who".into(), json!({"reference": fhir_user})),
        None => user.insert("name".into(), json!("unidentified")),
    };
    user.insert("requestor".into(), json!(true));
    if let Some(peer) = &event.peer {
        user.insert("network".into(), json!({"address": peer, "type": "2"}));
    }
    let subtype = if event.logout {
        coding(DCM, "110123", "Logout")
    } else {
        coding(DCM, "110122", "Login")
    };
    let mut audit = json!({
        "resourceType": "AuditEvent",
        "type": coding(DCM, "110114", "User Authentication"),
        "subtype": [subtype],
        "action": "E",
        "recorded": event.recorded,
        "outcome": outcome(event.status),
        "agent": [
            Value::Object(user),
            {
                "type": {"coding": [coding(DCM, "110150", "Application")]},
                "who": {"identifier": {"value": event.server}, "display": "CuraNet FHIR server"},
                "requestor": false,
                "network": {"address": event.server, "type": "5"},
            },
        ],
        "source": {
            "site": "CuraNet",
            "observer": {"identifier": {"value": event.server}, "display": "CuraNet FHIR server"},
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        },
    });
    if outcome(event.status) != "0" {
        audit["outcomeDesc"] = json!(match &event.outcome_desc {
            Some(d) if !d.is_empty() => format!("HTTP {}: {d}", event.status),
            _ => format!("HTTP {}", event.status),
        });
    }
    let mut entities = Vec::new();
    if let Some(patient) = sign_in_patient(event) {
        entities.push(json!({
            "what": {"reference": format!("Patient/{patient}")},
            "type": coding(ENTITY_TYPE, "1", "Person"),
            "role": coding(OBJECT_ROLE, "1", "Patient"),
        }));
    }
    if let Some(request_id) = &event.request_id {
        entities.push(json!({
            "what": {"identifier": {"value": request_id}},
            "type": coding(BALP_ENTITY_TYPE, "XrequestId", "X-Request-Id"),
        }));
    }
    if !entities.is_empty() {
        audit["entity"] = Value::Array(entities);
    }
    audit
}

/// The JSON text of `value` with the keys of every object sorted (by their UTF-8 bytes) and no
/// whitespace: the same resource always gives the same text, whatever order it was stored in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The canonical text of a stored resource's JSON text; `None` when it is not JSON.
pub fn canonical_text(stored: &str) -> Option<String> {
    serde_json::from_str::<Value>(stored)
        .ok()
        .map(|v| canonical_json(&v))
}

/// The hash of a record chained to `previous` (hex SHA-256 of `previous ‖ "\n" ‖ canonical`).
pub fn link_hash(previous: &str, canonical: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    data_encoding::HEXLOWER.encode(&hasher.finalize())
}

/// One stored link of the chain, as read back for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link<'a> {
    pub seq: i64,
    pub resource_id: &'a str,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

/// Why a link does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// The link does not continue the one before it (a record was removed or reordered).
    Sequence { expected_prev: String },
    /// The AuditEvent the link names is gone (deleted from the database).
    Missing,
    /// The AuditEvent's content no longer gives the hash stored for it (it was changed).
    Content,
    /// A log block's stored summary (time range, count, patients, agents) no longer matches
    /// its records.
    Columns,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Sequence { .. } => {
                f.write_str("does not continue the previous record (removed or reordered)")
            }
            Broken::Missing => f.write_str("the AuditEvent is missing"),
            Broken::Content => f.write_str("the AuditEvent's content was changed"),
            Broken::Columns => {
                f.write_str("its search columns were changed (they no longer match the record)")
            }
        }
    }
}

/// Checks one link against the hash of the link before it and the record's stored JSON text
/// (`None` when the record is gone); the hash the next link must continue from.
pub fn check_link(previous: &str, link: &Link<'_>, stored: Option<&str>) -> Result<String, Broken> {
    if link.prev_hash != previous {
        return Err(Broken::Sequence {
            expected_prev: previous.to_string(),
        });
    }
    let Some(stored) = stored else {
        return Err(Broken::Missing);
    };
    let canonical = canonical_text(stored).ok_or(Broken::Content)?;
    if link_hash(previous, &canonical) != link.hash {
        return Err(Broken::Content);
    }
    Ok(link.hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> TokenAgent {
        TokenAgent {
            subject: "acct-1".into(),
            client_id: "app-1".into(),
            fhir_user: Some("Practitioner/d1".into()),
            jti: "jti-123".into(),
        }
    }

    fn read_event() -> RestEvent {
        RestEvent {
            recorded: "2026-01-02T03:04:05.678Z".into(),
            interaction: "read".into(),
            resource_type: Some("Observation".into()),
            id: Some("o1".into()),
            status: 200,
            token: Some(token()),
            peer: Some("127.0.0.1".into()),
            request_id: Some("req-1".into()),
            patients: vec!["p1".into()],
            server: "http://curanet.test/fhir".into(),
            ..RestEvent::default()
        }
    }

    fn entity_with_role<'a>(ae: &'a Value, role: &str) -> Option<&'a Value> {
        ae["entity"]
            .as_array()?
            .iter()
            .find(|e| e["role"]["code"] == role)
    }

    #[test]
    fn actions_and_outcomes() {
        for (i, a) in [
            ("create", "C"),
            ("read", "R"),
            ("vread", "R"),
            ("history-instance", "R"),
            ("update", "U"),
            ("patch", "U"),
            ("delete", "D"),
            ("search-type", "E"),
            ("search-system", "E"),
            ("operation", "E"),
            ("transaction", "E"),
        ] {
            assert_eq!(action(i), a, "{i}");
        }
        for (s, o) in [
            (200, "0"),
            (201, "0"),
            (304, "0"),
            (400, "4"),
            (404, "4"),
            (410, "4"),
            (401, "8"),
            (403, "8"),
            (500, "8"),
            (503, "8"),
        ] {
            assert_eq!(outcome(s), o, "{s}");
        }
    }

    #[test]
    fn read_is_balp_shaped() {
        let ae = rest_audit_event(&read_event());
        assert_eq!(ae["resourceType"], "AuditEvent");
        assert_eq!(ae["type"]["code"], "rest");
        assert_eq!(ae["type"]["system"], AUDIT_EVENT_TYPE);
        assert_eq!(ae["subtype"][0]["system"], RESTFUL_INTERACTION);
        assert_eq!(ae["subtype"][0]["code"], "read");
        assert_eq!(ae["action"], "R");
        assert_eq!(ae["outcome"], "0");
        assert!(ae.get("outcomeDesc").is_none());
        let agents = ae["agent"].as_array().unwrap();
        assert_eq!(agents.len(), 3);
        assert_eq!(agents[0]["who"]["reference"], "Practitioner/d1");
        assert_eq!(agents[0]["requestor"], true);
        assert_eq!(agents[0]["policy"][0], "urn:ietf:params:oauth:jti:jti-123");
        assert_eq!(agents[0]["network"]["address"], "127.0.0.1");
        assert_eq!(agents[1]["who"]["identifier"]["value"], "app-1");
        assert_eq!(agents[1]["type"]["coding"][0]["code"], "110152");
        assert_eq!(agents[1]["requestor"], false);
        assert_eq!(agents[2]["type"]["coding"][0]["code"], "110153");
        assert_eq!(
            ae["source"]["observer"]["identifier"]["value"],
            "http://curanet.test/fhir"
        );
        let patient = entity_with_role(&ae, "1").unwrap();
        assert_eq!(patient["what"]["reference"], "Patient/p1");
        let data = entity_with_role(&ae, "4").unwrap();
        assert_eq!(data["what"]["reference"], "Observation/o1");
        let request = ae["entity"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"]["code"] == "XrequestId")
            .unwrap();
        assert_eq!(request["what"]["identifier"]["value"], "req-1");
        // The token's jti only: no other token material.
        assert!(!ae.to_string().contains("Bearer"));
    }

    #[test]
    fn search_records_the_query_and_denials_say_why() {
        let ae = rest_audit_event(&RestEvent {
            interaction: "search-type".into(),
            id: None,
            query: Some("patient=p1&code=1234-5".into()),
            status: 403,
            outcome_desc: Some("the token's scopes do not permit search-type".into()),
            ..read_event()
        });
        assert_eq!(ae["action"], "E");
        assert_eq!(ae["outcome"], "8");
        assert!(ae["outcomeDesc"].as_str().unwrap().contains("HTTP 403"));
        // On queries the client is the source.
        assert_eq!(ae["agent"][1]["type"]["coding"][0]["code"], "110153");
        let query = entity_with_role(&ae, "24").unwrap();
        let decoded = STANDARD.decode(query["query"].as_str().unwrap()).unwrap();
        assert_eq!(decoded, b"patient=p1&code=1234-5");
        assert!(
            query.get("name").is_none(),
            "sev-1: name or query, not both"
        );
        assert!(entity_with_role(&ae, "4").is_none());
    }

    #[test]
    fn unauthenticated_and_backend_agents() {
        let ae = rest_audit_event(&RestEvent {
            token: None,
            status: 401,
            ..read_event()
        });
        let agents = ae["agent"].as_array().unwrap();
        assert_eq!(agents.len(), 2, "user and server, no client");
        assert_eq!(agents[0]["name"], "unauthenticated");
        assert!(agents[0].get("who").is_none());
        assert_eq!(ae["outcome"], "8");

        let ae = rest_audit_event(&RestEvent {
            token: Some(TokenAgent {
                fhir_user: None,
                subject: "bulk".into(),
                ..token()
            }),
            ..read_event()
        });
        assert_eq!(ae["agent"][0]["who"]["identifier"]["value"], "bulk");
    }

    #[test]
    fn writes_name_the_version() {
        let ae = rest_audit_event(&RestEvent {
            interaction: "update".into(),
            version: Some("3".into()),
            ..read_event()
        });
        assert_eq!(ae["action"], "U");
        assert_eq!(
            entity_with_role(&ae, "4").unwrap()["what"]["reference"],
            "Observation/o1/_history/3"
        );
    }

    #[test]
    fn sign_ins_and_outs() {
        let ae = sign_in_audit_event(&SignInEvent {
            recorded: "2026-01-02T03:04:05.678Z".into(),
            status: 200,
            fhir_user: Some("Patient/p1".into()),
            peer: Some("10.1.2.3".into()),
            request_id: Some("r".into()),
            server: "http://curanet.test/fhir".into(),
            ..SignInEvent::default()
        });
        assert_eq!(ae["type"]["code"], "110114");
        assert_eq!(ae["subtype"][0]["code"], "110122");
        assert_eq!(ae["outcome"], "0");
        assert_eq!(ae["agent"][0]["who"]["reference"], "Patient/p1");
        assert_eq!(ae["entity"][0]["what"]["reference"], "Patient/p1");
        let ae = sign_in_audit_event(&SignInEvent {
            logout: true,
            status: 401,
            outcome_desc: Some("invalid_credentials".into()),
            server: "http://curanet.test/fhir".into(),
            ..SignInEvent::default()
        });
        assert_eq!(ae["subtype"][0]["code"], "110123");
        assert_eq!(ae["outcome"], "8");
        assert_eq!(ae["agent"][0]["name"], "unidentified");
        assert!(ae.get("entity").is_none());
    }

    #[test]
    fn consents_and_break_the_glass_are_recorded() {
        let ae = rest_audit_event(&RestEvent {
            consents: vec!["c1".into()],
            break_glass: true,
            ..read_event()
        });
        let consent = ae["entity"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"]["code"] == "Consent")
            .unwrap();
        assert_eq!(consent["what"]["reference"], "Consent/c1");
        assert_eq!(consent["type"]["system"], RESOURCE_TYPES);
        assert_eq!(
            ae["agent"][0]["purposeOfUse"][0]["coding"][0]["code"],
            "BTG"
        );
        assert_eq!(
            ae["agent"][0]["purposeOfUse"][0]["coding"][0]["system"],
            ACT_REASON
        );
        assert_eq!(ae["purposeOfEvent"][0]["coding"][0]["code"], "BTG");
        // Without them, nothing of the kind.
        let plain = rest_audit_event(&read_event());
        assert!(plain.get("purposeOfEvent").is_none());
        assert!(plain["agent"][0].get("purposeOfUse").is_none());

        let alert = consent_alert_event(&ConsentAlert {
            recorded: "2026-01-02T03:04:05.678Z".into(),
            patient: Some("p1".into()),
            consents: vec!["c2".into()],
            refusal: "Consent denied access to this user".into(),
            token: Some(token()),
            server: "http://curanet.test/fhir".into(),
            ..ConsentAlert::default()
        });
        assert_eq!(alert["type"]["system"], DCM);
        assert_eq!(alert["type"]["code"], "110113");
        assert_eq!(alert["subtype"][0]["code"], "AuthZ-Consent");
        assert_eq!(alert["action"], "E");
        assert_eq!(alert["outcome"], "8");
        assert_eq!(alert["outcomeDesc"], "Consent denied access to this user");
        let entities = alert["entity"].as_array().unwrap();
        assert_eq!(entities[0]["what"]["reference"], "Patient/p1");
        assert_eq!(entities[1]["what"]["reference"], "Consent/c2");
        assert_eq!(entities[2]["what"]["identifier"]["value"], "jti-123");
    }

    #[test]
    fn rest_records_are_written_as_they_read_back() {
        let full = RestEvent {
            recorded: "2026-01-02T03:04:05.678Z".into(),
            interaction: "search-type".into(),
            resource_type: Some("Observation".into()),
            id: Some("o1".into()),
            version: Some("2".into()),
            operation: Some("lastn".into()),
            status: 403,
            outcome_desc: Some("no \"consent\" \\ here\n\ttab \u{1} é ☃".into()),
            token: Some(token()),
            peer: Some("::1".into()),
            request_id: Some("r-1".into()),
            query: Some("code=a%20b&name=\"x\"".into()),
            patients: vec!["p1".into(), "Patient/p2".into()],
            consents: vec!["c1".into(), "c2".into()],
            break_glass: true,
            server: "http://curanet.test/fhir".into(),
        };
        let bare = RestEvent {
            recorded: "2026-01-02T03:04:05.678Z".into(),
            interaction: "read".into(),
            status: 200,
            server: "http://curanet.test/fhir".into(),
            token: Some(TokenAgent {
                fhir_user: None,
                ..token()
            }),
            ..RestEvent::default()
        };
        for event in [full, bare] {
            let mut body = Vec::new();
            write_record(&Recorded::Rest(event.clone()), &mut body);
            let text = std::str::from_utf8(&body).unwrap();
            assert!(text.starts_with(r#"{"kind":"rest","#), "{text}");
            assert!(!text.contains('\n'), "{text}");
            // Valid JSON, and every field comes back.
            let back: Recorded = serde_json::from_str(text).unwrap();
            assert_eq!(back, Recorded::Rest(event.clone()));
            // Borrowed and owned write the same text.
            let mut again = Vec::new();
            event.with_view(|v| {
                assert_eq!(v.to_event(), event);
                write_rest(v, &mut again);
            });
            assert_eq!(again, body);
        }
    }

    #[test]
    fn log_records_carry_their_search_columns_and_read_back() {
        let event = Recorded::Rest(RestEvent {
            patients: vec!["p1".into(), "Patient/p1".into(), "Patient/p2".into()],
            version: Some("3".into()),
            ..read_event()
        });
        let record = log_record(&event);
        assert_eq!(record.patients, vec!["p1".to_string(), "p2".to_string()]);
        assert_eq!(record.agent.as_deref(), Some("Practitioner/d1"));
        assert_eq!(record.alt_id.as_deref(), Some("acct-1"));
        assert_eq!(record.kind, format!("{AUDIT_EVENT_TYPE}|rest"));
        assert_eq!(record.subtype, format!("{RESTFUL_INTERACTION}|read"));
        assert_eq!(
            (record.action.as_str(), record.outcome.as_str()),
            ("R", "0")
        );
        assert_eq!(record.entity.as_deref(), Some("Observation/o1"));
        assert_eq!(record.recorded, 1_767_323_045_678_000);
        let ae = audit_event("42", &record.body).unwrap();
        assert_eq!(ae["id"], "42");
        assert_eq!(ae["meta"]["lastUpdated"], "2026-01-02T03:04:05.678Z");
        let mut expected = rest_audit_event(match &event {
            Recorded::Rest(e) => e,
            _ => unreachable!(),
        });
        expected["id"] = json!("42");
        expected["meta"] = ae["meta"].clone();
        assert_eq!(ae, expected);
        // Decoded from its text, the columns come back.
        let decoded = decode_record(&record.body).unwrap();
        assert_eq!(
            decoded,
            AuditRecord {
                body: String::new(),
                ..record.clone()
            }
        );

        // A block: the records pushed straight from the events, with the keys the columns say.
        let mut batch = AuditBatch::new();
        let alert = Recorded::ConsentAlert(ConsentAlert {
            recorded: "2026-01-02T03:04:06.000Z".into(),
            patient: Some("p3".into()),
            refusal: "no".into(),
            token: Some(token()),
            ..ConsentAlert::default()
        });
        let sign_in = Recorded::SignIn(SignInEvent {
            recorded: "2026-01-02T03:04:07.000Z".into(),
            status: 200,
            fhir_user: Some("Patient/p4".into()),
            ..SignInEvent::default()
        });
        for r in [&event, &alert, &sign_in] {
            push_record(&mut batch, r, log_record(r).recorded);
        }
        let (body, summary) = batch.clone().into_parts();
        assert_eq!(body.lines().count(), 3);
        let keys: Vec<&str> = summary.keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "agent|Patient/p4",
                "agent|Practitioner/d1",
                "altid|acct-1",
                "patient|p1",
                "patient|p2",
                "patient|p3",
                "patient|p4"
            ]
        );

        // The chain over block number and body, and the summary checked against the records.
        let block = |number: i64, previous: &str| StoredBlock {
            block: number,
            link: Some((
                1,
                previous.to_string(),
                record_hash(previous, number, &body),
            )),
            body: body.clone(),
            summary: summary.clone(),
        };
        let stored = block(5, GENESIS);
        let next = check_block(GENESIS, &stored).unwrap();
        assert_eq!(next.len(), 64);
        let moved = StoredBlock {
            block: 6,
            ..stored.clone()
        };
        assert_eq!(check_block(GENESIS, &moved), Err(Broken::Content));
        let mut changed = stored.clone();
        changed.body = changed.body.replace("o1", "o2");
        assert_eq!(check_block(GENESIS, &changed), Err(Broken::Content));
        let mut relisted = stored.clone();
        relisted.summary.keys.retain(|(k, _)| k != "patient|p2");
        assert_eq!(check_block(GENESIS, &relisted), Err(Broken::Columns));
        let mut retimed = stored.clone();
        retimed.summary.first_recorded = 0;
        assert_eq!(check_block(GENESIS, &retimed), Err(Broken::Columns));
        assert!(matches!(
            check_block(&next, &stored),
            Err(Broken::Sequence { .. })
        ));
    }

    #[test]
    fn canonical_json_sorts_keys_and_keeps_values() {
        let a: Value =
            serde_json::from_str(r#"{"b":1.50,"a":{"y":[2,{"d":1,"c":"x"}],"x":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":null,"y":[2,{"c":"x","d":1}]},"b":1.50}"#
        );
        let b: Value =
            serde_json::from_str(r#"{ "a": {"x":null, "y":[2,{"c":"x","d":1}]}, "b":1.50 }"#)
                .unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_text("{\"k\":\"é\\n\"}").unwrap(),
            "{\"k\":\"é\\n\"}"
        );
    }

    #[test]
    fn the_chain_detects_changes_removals_and_reordering() {
        let records = [
            r#"{"resourceType":"AuditEvent","id":"a"}"#,
            r#"{"resourceType":"AuditEvent","id":"b"}"#,
            r#"{"resourceType":"AuditEvent","id":"c"}"#,
        ];
        let mut hashes = vec![GENESIS.to_string()];
        for r in &records {
            let h = link_hash(hashes.last().unwrap(), &canonical_text(r).unwrap());
            hashes.push(h);
        }
        let ids = ["a", "b", "c"];
        let link = |i: usize| Link {
            seq: i as i64 + 1,
            resource_id: ids[i],
            prev_hash: &hashes[i],
            hash: &hashes[i + 1],
        };
        // Intact.
        let mut prev = GENESIS.to_string();
        for (i, r) in records.iter().enumerate() {
            prev = check_link(&prev, &link(i), Some(r)).unwrap();
        }
        assert_eq!(prev, hashes[3]);
        // Key order does not matter.
        assert!(
            check_link(
                GENESIS,
                &link(0),
                Some(r#"{"id":"a","resourceType":"AuditEvent"}"#)
            )
            .is_ok()
        );
        // A changed record.
        assert_eq!(
            check_link(
                GENESIS,
                &link(0),
                Some(r#"{"resourceType":"AuditEvent","id":"z"}"#)
            ),
            Err(Broken::Content)
        );
        // A missing record.
        assert_eq!(check_link(GENESIS, &link(0), None), Err(Broken::Missing));
        // A removed link: record c right after a.
        assert!(matches!(
            check_link(&hashes[1], &link(2), Some(records[2])),
            Err(Broken::Sequence { .. })
        ));
        // The hash depends on the previous one.
        assert_ne!(link_hash(GENESIS, "x"), link_hash(&hashes[1], "x"));
        assert_eq!(link_hash(GENESIS, "x").len(), 64);
    }
}
