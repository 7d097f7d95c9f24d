//! The SMART App Launch 2.2 scope grammar and what a set of scopes permits.
//!
//! Choices this module makes (SAL = SMART App Launch 2.2, scopes-and-launch-context):
//!
//! - **Permission letters.** v2 letters are `c r u d s`, in that order, each at most once. Any
//!   other spelling (`.dus`, `.rr`, `.R`, `.x`, `.reads`) is a parse error. SAL lets a server
//!   ignore, replace or reject such scopes. We reject them: a client then learns at once
//!   (`invalid_scope`) instead of getting a grant it did not mean to ask for.
//! - **v1 forms.** `.read` = `rs`, `.write` = `cud`, `.*` = `cruds`. The scope remembers that it
//!   was written in v1 form and displays in v1 form again while its letters still match one of
//!   the three v1 keywords. After narrowing (say `.read` against a pre-authorisation of `.r`) it
//!   falls back to v2 letters.
//! - **Granular parameters.** They come after `?` as `name=value` pairs joined by `&`. Names are
//!   search-parameter names (letters, digits, `_ - . :`). Values are percent-decoded; `+` stays
//!   a plus sign because the scope string is no form body (the HTTP layer has already decoded the
//!   form). After decoding, a value reads like a decoded search-URL value: FHIR syntax such as `,`
//!   (OR) keeps its meaning. Exact duplicate pairs are dropped. Several pairs are ANDed; several
//!   scopes on the same type are ORed. Parameters are accepted on v1 forms and on `*` too.
//!   A caller that cannot apply a parameter (unknown name, unsupported modifier) must deny, never
//!   drop it: dropping a condition widens the access.
//! - **Resource types.** `*` or `[A-Z][A-Za-z0-9]*`. The type is not checked against the FHIR
//!   definitions: this crate does not know them, and an unknown type simply matches nothing.
//! - **Other scopes.** Tokens outside the clinical prefixes are kept as [`Scope::Other`] because
//!   servers ignore what they do not know. This covers custom `__x` scopes, URIs, the
//!   `http://smarthealthit.org/fhir/scopes/` URI form, a malformed `launch/...`, `Patient/...`.
//!   A token with a character that RFC 6749 §3.3 does not allow (`"`, `\`, controls, non-ASCII)
//!   is an error whatever it looks like.
//! - **Levels.** `system/` scopes apply only to backend services. `user/` scopes apply to any
//!   user-facing token (the consent layer limits them to what the user may see). `patient/`
//!   scopes apply only when a patient is in context, and the caller confines them to that
//!   patient's compartment. See [`ScopeContext`].
//! - **Interactions.** SAL maps `c` to create; `r` to read, vread and history-instance; `u` to
//!   update (upsert included) and patch; `d` to delete; `s` to search-type, search-system,
//!   history-type and history-system. A conditional interaction also runs a search, so the caller
//!   checks [`Interaction::SearchType`] too. Operations follow [`operation_rule`].
//! - **Granular writes.** For create, the new resource must match one of the returned sets. For
//!   update and patch, both the old and the new version must match, so that nobody can move a
//!   resource into or out of what the scope covers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// One AND-set of granular search parameters: `(name, decoded value)` pairs.
pub type Conditions = Vec<(String, String)>;

/// Why scopes could not be parsed (the token endpoint answers `invalid_scope`).
///
/// A plain reason type like the others of this crate; `AuthError` is the crate's error enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeError {
    /// One or more scopes break the grammar; all of them are listed.
    Malformed(Vec<Malformed>),
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Malformed(list) => {
                let plural = if list.len() == 1 { "" } else { "s" };
                write!(f, "malformed scope{plural}: ")?;
                for (i, m) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{m}")?;
                }
                Ok(())
            }
        }
    }
}

/// One scope as written that does not follow the grammar, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The scope exactly as the client wrote it.
    pub scope: String,
    /// What is wrong with it.
    pub defect: Defect,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' ({})", self.scope, self.defect)
    }
}

/// What is wrong with a malformed scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// The scope is empty.
    Empty,
    /// A character outside the RFC 6749 scope-token set (`"`, `\`, controls, non-ASCII).
    InvalidCharacter,
    /// Nothing between the `/` and the `.`.
    MissingResourceType,
    /// The resource type is neither `*` nor `[A-Z][A-Za-z0-9]*`.
    InvalidResourceType(String),
    /// No `.` or nothing after it.
    MissingPermissions,
    /// Not `read`, `write`, `*`, nor `c r u d s` in order with no repeats.
    InvalidPermissions(String),
    /// A `?` with nothing after it.
    EmptyParameters,
    /// A granular pair that is not `name=value` with a valid name and a non-empty value.
    InvalidParameter(String),
    /// A value with a broken `%` escape, or that does not decode to UTF-8.
    InvalidPercentEncoding(String),
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::Empty => write!(f, "empty scope"),
            Defect::InvalidCharacter => {
                write!(f, "contains a character not allowed in a scope")
            }
            Defect::MissingResourceType => write!(f, "no resource type"),
            Defect::InvalidResourceType(t) => {
                write!(f, "'{t}' is not a resource type or '*'")
            }
            Defect::MissingPermissions => write!(f, "no permissions after '.'"),
            Defect::InvalidPermissions(p) => write!(
                f,
                "'{p}' is not 'read', 'write', '*' or the letters c r u d s in this order, each at most once"
            ),
            Defect::EmptyParameters => write!(f, "nothing after '?'"),
            Defect::InvalidParameter(p) => {
                write!(f, "'{p}' is not a name=value search parameter")
            }
            Defect::InvalidPercentEncoding(v) => write!(f, "'{v}' has a broken %-escape"),
        }
    }
}

/// The kind of access a clinical scope delegates: `patient/`, `user/` or `system/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// `patient/`: data of the patient in context.
    Patient,
    /// `user/`: data the signed-in user may see.
    User,
    /// `system/`: data a backend service was authorised for.
    System,
}

impl Level {
    /// The three levels.
    pub const ALL: [Level; 3] = [Level::Patient, Level::User, Level::System];

    /// The prefix as written, without the slash.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Patient => "patient",
            Level::User => "user",
            Level::System => "system",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of token is being checked, and so which clinical scope levels apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeContext {
    /// A backend service acting for itself: only `system/` scopes.
    Backend,
    /// A user-facing app with no patient in context: only `user/` scopes.
    User,
    /// A user-facing app with a patient in context: `patient/` scopes (confined by the caller
    /// to that patient's compartment) and `user/` scopes.
    UserWithPatient,
}

impl ScopeContext {
    /// The levels whose scopes apply, most confined first.
    pub fn levels(self) -> &'static [Level] {
        match self {
            ScopeContext::Backend => &[Level::System],
            ScopeContext::User => &[Level::User],
            ScopeContext::UserWithPatient => &[Level::Patient, Level::User],
        }
    }
}

/// One SMART permission letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// `c`
    Create,
    /// `r`
    Read,
    /// `u`
    Update,
    /// `d`
    Delete,
    /// `s`
    Search,
}

impl Permission {
    /// Every letter, in the order the grammar requires.
    pub const ALL: [Permission; 5] = [
        Permission::Create,
        Permission::Read,
        Permission::Update,
        Permission::Delete,
        Permission::Search,
    ];

    /// The v2 letter.
    pub fn letter(self) -> char {
        match self {
            Permission::Create => 'c',
            Permission::Read => 'r',
            Permission::Update => 'u',
            Permission::Delete => 'd',
            Permission::Search => 's',
        }
    }

    fn bit(self) -> u8 {
        match self {
            Permission::Create => 1,
            Permission::Read => 2,
            Permission::Update => 4,
            Permission::Delete => 8,
            Permission::Search => 16,
        }
    }
}

/// A set of permission letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// No letter.
    pub const NONE: Permissions = Permissions(0);
    /// `rs`, the meaning of v1 `.read`.
    pub const READ: Permissions = Permissions(2 | 16);
    /// `cud`, the meaning of v1 `.write`.
    pub const WRITE: Permissions = Permissions(1 | 4 | 8);
    /// `cruds`, the meaning of v1 `.*`.
    pub const ALL: Permissions = Permissions(31);

    /// The set of the given letters.
    pub fn of(letters: &[Permission]) -> Permissions {
        Permissions(letters.iter().fold(0, |acc, p| acc | p.bit()))
    }

    /// Parses v2 letters: `c r u d s` in this order, each at most once, at least one.
    pub fn parse_v2(text: &str) -> Option<Permissions> {
        let mut bits = 0u8;
        let mut next = 0; // index in Permission::ALL the next letter may start from
        for ch in text.chars() {
            let pos = Permission::ALL[next..]
                .iter()
                .position(|p| p.letter() == ch)?;
            bits |= Permission::ALL[next + pos].bit();
            next += pos + 1;
        }
        (bits != 0).then_some(Permissions(bits))
    }

    /// Whether the letter is in the set.
    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Whether every letter of `other` is in the set.
    pub fn includes(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// The letters in both sets.
    pub fn intersection(self, other: Permissions) -> Permissions {
        Permissions(self.0 & other.0)
    }

    /// Whether the set has no letter.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The letters, in grammar order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    /// The v1 keyword with exactly these letters, if there is one.
    pub fn v1_keyword(self) -> Option<&'static str> {
        match self {
            Permissions::READ => Some("read"),
            Permissions::WRITE => Some("write"),
            Permissions::ALL => Some("*"),
            _ => None,
        }
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.iter().try_for_each(|p| write!(f, "{}", p.letter()))
    }
}

/// How the permissions of a clinical scope were written, so that a grant echoes the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syntax {
    /// `.read`, `.write` or `.*`.
    V1,
    /// Letters `c r u d s`.
    V2,
}

/// The resource types a clinical scope names: one type or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceTarget {
    /// `*`: every type, including types the server adds later.
    Any,
    /// One resource type.
    Type(String),
}

impl ResourceTarget {
    /// Whether a resource of this type is covered (`*` as the type asks about every type).
    pub fn matches(&self, resource_type: &str) -> bool {
        match self {
            ResourceTarget::Any => true,
            ResourceTarget::Type(t) => t == resource_type,
        }
    }

    /// Whether every type `other` names is covered.
    pub fn covers(&self, other: &ResourceTarget) -> bool {
        match (self, other) {
            (ResourceTarget::Any, _) => true,
            (ResourceTarget::Type(a), ResourceTarget::Type(b)) => a == b,
            (ResourceTarget::Type(_), ResourceTarget::Any) => false,
        }
    }

    /// The types both cover, if any.
    fn intersection(&self, other: &ResourceTarget) -> Option<ResourceTarget> {
        match (self, other) {
            (ResourceTarget::Any, t) | (t, ResourceTarget::Any) => Some(t.clone()),
            (ResourceTarget::Type(a), ResourceTarget::Type(b)) => {
                (a == b).then(|| ResourceTarget::Type(a.clone()))
            }
        }
    }
}

impl fmt::Display for ResourceTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceTarget::Any => f.write_str("*"),
            ResourceTarget::Type(t) => f.write_str(t),
        }
    }
}

/// A clinical scope: `(patient|user|system)/(Type|*).(permissions)[?name=value(&name=value)*]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClinicalScope {
    level: Level,
    target: ResourceTarget,
    permissions: Permissions,
    syntax: Syntax,
    params: Conditions,
}

impl ClinicalScope {
    /// `patient/`, `user/` or `system/`.
    pub fn level(&self) -> Level {
        self.level
    }

    /// The type named, or `*`.
    pub fn target(&self) -> &ResourceTarget {
        &self.target
    }

    /// The permission letters (v1 forms already translated).
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }

    /// Whether the permissions were written in v1 or v2 form.
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// The granular parameters (ANDed), values percent-decoded, in written order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// Whether everything this scope permits, `other` permits too (`other` ⊇ `self`).
    pub fn is_covered_by(&self, other: &ClinicalScope) -> bool {
        other.covers(self)
    }

    /// Whether everything `other` permits, this scope permits too.
    pub fn covers(&self, other: &ClinicalScope) -> bool {
        self.level == other.level
            && self.target.covers(&other.target)
            && self.permissions.includes(other.permissions)
            // Fewer conditions means more resources: ours must all be among theirs.
            && self.params.iter().all(|p| other.params.contains(p))
    }

    /// What both scopes permit, as one scope in this scope's syntax; `None` if nothing.
    pub fn intersection(&self, other: &ClinicalScope) -> Option<ClinicalScope> {
        if self.level != other.level {
            return None;
        }
        let target = self.target.intersection(&other.target)?;
        let permissions = self.permissions.intersection(other.permissions);
        if permissions.is_empty() {
            return None;
        }
        let mut params = self.params.clone();
        for p in &other.params {
            if !params.contains(p) {
                params.push(p.clone());
            }
        }
        Some(ClinicalScope {
            level: self.level,
            target,
            permissions,
            syntax: self.syntax,
            params,
        })
    }

    fn param_set(&self) -> BTreeSet<(String, String)> {
        self.params.iter().cloned().collect()
    }

    fn same_meaning(&self, other: &ClinicalScope) -> bool {
        self.level == other.level
            && self.target == other.target
            && self.permissions == other.permissions
            && self.param_set() == other.param_set()
    }
}

impl fmt::Display for ClinicalScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}.", self.level, self.target)?;
        match (self.syntax, self.permissions.v1_keyword()) {
            (Syntax::V1, Some(keyword)) => f.write_str(keyword)?,
            _ => write!(f, "{}", self.permissions)?,
        }
        for (i, (name, value)) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            write!(f, "{name}=")?;
            write_encoded(f, value)?;
        }
        Ok(())
    }
}

/// One scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `patient/...`, `user/...` or `system/...`.
    Clinical(ClinicalScope),
    /// `launch`: an EHR launch, whose context comes from the `launch` parameter.
    Launch,
    /// `launch/patient`: a patient must be in context.
    LaunchPatient,
    /// `launch/encounter`: an encounter must be in context.
    LaunchEncounter,
    /// `launch/<lowercasetype>[?role=<uri>]`: context returned in `fhirContext`.
    LaunchContext {
        /// The lower-case resource type, e.g. `imagingstudy`.
        resource: String,
        /// The decoded `role`, if given.
        role: Option<String>,
    },
    /// `openid`
    OpenId,
    /// `fhirUser`
    FhirUser,
    /// `profile` (OpenID Connect; SMART v1 apps still ask for it)
    Profile,
    /// `offline_access`: a refresh token that outlives the session.
    OfflineAccess,
    /// `online_access`: a refresh token usable while the user is online.
    OnlineAccess,
    /// Any other scope, kept as written and otherwise ignored.
    Other(String),
}

impl Scope {
    /// Parses one scope.
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        parse_token(text).map_err(|defect| {
            ScopeError::Malformed(vec![Malformed {
                scope: text.to_string(),
                defect,
            }])
        })
    }

    /// The clinical scope inside, if it is one.
    pub fn as_clinical(&self) -> Option<&ClinicalScope> {
        match self {
            Scope::Clinical(c) => Some(c),
            _ => None,
        }
    }

    /// Whether both scopes permit the same (v1 and v2 forms, and parameter order, do not count).
    pub fn same_meaning(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Clinical(a), Scope::Clinical(b)) => a.same_meaning(b),
            _ => self == other,
        }
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Clinical(c) => c.fmt(f),
            Scope::Launch => f.write_str("launch"),
            Scope::LaunchPatient => f.write_str("launch/patient"),
            Scope::LaunchEncounter => f.write_str("launch/encounter"),
            Scope::LaunchContext { resource, role } => {
                write!(f, "launch/{resource}")?;
                if let Some(role) = role {
                    f.write_str("?role=")?;
                    write_encoded(f, role)?;
                }
                Ok(())
            }
            Scope::OpenId => f.write_str("openid"),
            Scope::FhirUser => f.write_str("fhirUser"),
            Scope::Profile => f.write_str("profile"),
            Scope::OfflineAccess => f.write_str("offline_access"),
            Scope::OnlineAccess => f.write_str("online_access"),
            Scope::Other(s) => f.write_str(s),
        }
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

fn parse_token(text: &str) -> Result<Scope, Defect> {
    if text.is_empty() {
        return Err(Defect::Empty);
    }
    if !text.bytes().all(is_scope_char) {
        return Err(Defect::InvalidCharacter);
    }
    let simple = match text {
        "launch" => Some(Scope::Launch),
        "launch/patient" => Some(Scope::LaunchPatient),
        "launch/encounter" => Some(Scope::LaunchEncounter),
        "openid" => Some(Scope::OpenId),
        "fhirUser" => Some(Scope::FhirUser),
        "profile" => Some(Scope::Profile),
        "offline_access" => Some(Scope::OfflineAccess),
        "online_access" => Some(Scope::OnlineAccess),
        _ => None,
    };
    if let Some(scope) = simple {
        return Ok(scope);
    }
    if let Some(rest) = text.strip_prefix("launch/") {
        // A launch scope we cannot read is unknown, not an error: the server ignores it.
        return Ok(parse_launch_context(rest).unwrap_or_else(|| Scope::Other(text.to_string())));
    }
    for level in Level::ALL {
        if let Some(rest) = text
            .strip_prefix(level.as_str())
            .and_then(|r| r.strip_prefix('/'))
        {
            return parse_clinical(level, rest).map(Scope::Clinical);
        }
    }
    Ok(Scope::Other(text.to_string()))
}

/// `<lowercasetype>[?role=<value>]`.
fn parse_launch_context(rest: &str) -> Option<Scope> {
    let (resource, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    if resource.is_empty() || !resource.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let role = match query {
        None => None,
        Some(q) => {
            let value = q.strip_prefix("role=")?;
            if value.is_empty() || value.contains('&') {
                return None;
            }
            Some(percent_decode(value)?)
        }
    };
    Some(Scope::LaunchContext {
        resource: resource.to_string(),
        role,
    })
}

fn parse_clinical(level: Level, rest: &str) -> Result<ClinicalScope, Defect> {
    let (body, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (resource, letters) = body.split_once('.').ok_or(if body.is_empty() {
        Defect::MissingResourceType
    } else {
        Defect::MissingPermissions
    })?;
    let target = match resource {
        "" => return Err(Defect::MissingResourceType),
        "*" => ResourceTarget::Any,
        t if is_resource_type(t) => ResourceTarget::Type(t.to_string()),
        t => return Err(Defect::InvalidResourceType(t.to_string())),
    };
    let (permissions, syntax) = match letters {
        "" => return Err(Defect::MissingPermissions),
        "read" => (Permissions::READ, Syntax::V1),
        "write" => (Permissions::WRITE, Syntax::V1),
        "*" => (Permissions::ALL, Syntax::V1),
        v2 => (
            Permissions::parse_v2(v2).ok_or_else(|| Defect::InvalidPermissions(v2.to_string()))?,
            Syntax::V2,
        ),
    };
    let params = match query {
        None => Vec::new(),
        Some(q) => parse_params(q)?,
    };
    Ok(ClinicalScope {
        level,
        target,
        permissions,
        syntax,
        params,
    })
}

fn is_resource_type(t: &str) -> bool {
    let mut bytes = t.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase()) && bytes.all(|b| b.is_ascii_alphanumeric())
}

/// A search-parameter name, possibly with a modifier or chain: `[A-Za-z_][A-Za-z0-9_.:-]*`.
fn is_param_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

fn parse_params(query: &str) -> Result<Conditions, Defect> {
    if query.is_empty() {
        return Err(Defect::EmptyParameters);
    }
    let mut params: Conditions = Vec::new();
    for pair in query.split('&') {
        let invalid = || Defect::InvalidParameter(pair.to_string());
        let (name, raw) = pair.split_once('=').ok_or_else(invalid)?;
        if !is_param_name(name) || raw.is_empty() {
            return Err(invalid());
        }
        let value =
            percent_decode(raw).ok_or_else(|| Defect::InvalidPercentEncoding(raw.to_string()))?;
        let pair = (name.to_string(), value);
        if !params.contains(&pair) {
            params.push(pair);
        }
    }
    Ok(params)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |j: usize| {
                bytes
                    .get(j)
                    .and_then(|b| (*b as char).to_digit(16))
                    .map(|d| d as u8)
            };
            out.push(hex(i + 1)? << 4 | hex(i + 2)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Writes a decoded value so that it parses back to itself inside one scope token.
fn write_encoded(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    for b in value.bytes() {
        if is_scope_char(b) && b != b'%' && b != b'&' {
            write!(f, "{}", b as char)?;
        } else {
            write!(f, "%{b:02X}")?;
        }
    }
    Ok(())
}

/// A FHIR interaction, as far as scopes are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    /// `POST [type]` (a conditional create also needs [`Interaction::SearchType`]).
    Create,
    /// `GET [type]/[id]`
    Read,
    /// `GET [type]/[id]/_history/[vid]`
    Vread,
    /// `GET [type]/[id]/_history`
    HistoryInstance,
    /// `GET [type]/_history`
    HistoryType,
    /// `GET /_history`, decided per type returned.
    HistorySystem,
    /// `PUT [type]/[id]`, also when it creates the resource (SAL: `u` includes upsert).
    Update,
    /// `PATCH [type]/[id]`
    Patch,
    /// `DELETE [type]/[id]`
    Delete,
    /// `GET [type]?...`
    SearchType,
    /// `GET /?...`, decided per type returned.
    SearchSystem,
    /// `$operation`: always denied by [`Scopes::decide`]; see [`operation_rule`].
    Operation,
}

impl Interaction {
    /// Every interaction.
    pub const ALL: [Interaction; 12] = [
        Interaction::Create,
        Interaction::Read,
        Interaction::Vread,
        Interaction::HistoryInstance,
        Interaction::HistoryType,
        Interaction::HistorySystem,
        Interaction::Update,
        Interaction::Patch,
        Interaction::Delete,
        Interaction::SearchType,
        Interaction::SearchSystem,
        Interaction::Operation,
    ];

    /// The FHIR code (restful-interaction code system).
    pub fn code(self) -> &'static str {
        match self {
            Interaction::Create => "create",
            Interaction::Read => "read",
            Interaction::Vread => "vread",
            Interaction::HistoryInstance => "history-instance",
            Interaction::HistoryType => "history-type",
            Interaction::HistorySystem => "history-system",
            Interaction::Update => "update",
            Interaction::Patch => "patch",
            Interaction::Delete => "delete",
            Interaction::SearchType => "search-type",
            Interaction::SearchSystem => "search-system",
            Interaction::Operation => "operation",
        }
    }

    /// The SMART letter that permits it; `None` for operations, which have their own rules.
    pub fn permission(self) -> Option<Permission> {
        match self {
            Interaction::Create => Some(Permission::Create),
            Interaction::Read | Interaction::Vread | Interaction::HistoryInstance => {
                Some(Permission::Read)
            }
            Interaction::Update | Interaction::Patch => Some(Permission::Update),
            Interaction::Delete => Some(Permission::Delete),
            Interaction::SearchType
            | Interaction::SearchSystem
            | Interaction::HistoryType
            | Interaction::HistorySystem => Some(Permission::Search),
            Interaction::Operation => None,
        }
    }
}

/// Where an operation is invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationTarget<'a> {
    /// `[base]/$name`
    System,
    /// `[base]/[type]/$name`
    Type(&'a str),
    /// `[base]/[type]/[id]/$name`
    Instance(&'a str),
}

/// What an operation needs from the scopes, beyond a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationRule {
    /// Interactions needed on the type it is invoked on (at system level: on `*`, i.e. every
    /// type). Empty means a valid token is enough.
    pub on_target: &'static [Interaction],
    /// Interactions needed on each type of resource it returns. The caller keeps only the
    /// resources that [`Scopes::decide_all`] allows for their type.
    pub on_results: &'static [Interaction],
}

/// The scope rule of an operation (`name` with or without `$`); `None` = unknown here, deny.
///
/// - `$validate` on a type checks only the body, so a valid token is enough. On an instance it
///   reads the stored resource, so it needs read.
/// - `$meta` lists tags: on an instance that is a read; on a type or the system it is a search
///   over every resource of that type (or of every type).
/// - `$meta-add` / `$meta-delete` change the instance and return its meta: read and update.
/// - `$everything` reads its focal resource (or searches the type) and returns many types. Each
///   returned type needs read and search, because the result is both a search and a read of each
///   resource.
/// - `$lastn` is a search of its type, and its results are filtered like one.
/// - `$export` returns each type like a search that also reads every resource.
/// - Any other operation is denied: we cannot tell what it touches.
pub fn operation_rule(name: &str, target: OperationTarget<'_>) -> Option<OperationRule> {
    use Interaction::{Read, SearchSystem, SearchType, Update};
    use OperationTarget::{Instance, System, Type};
    const NOTHING: &[Interaction] = &[];
    const READ_AND_SEARCH: &[Interaction] = &[Read, SearchType];
    let name = name.strip_prefix('$').unwrap_or(name);
    let (on_target, on_results): (&'static [Interaction], &'static [Interaction]) =
        match (name, target) {
            ("validate", Type(_)) => (NOTHING, NOTHING),
            ("validate", Instance(_)) => (&[Read], NOTHING),
            ("meta", System) => (&[SearchSystem], NOTHING),
            ("meta", Type(_)) => (&[SearchType], NOTHING),
            ("meta", Instance(_)) => (&[Read], NOTHING),
            ("meta-add" | "meta-delete", Instance(_)) => (&[Read, Update], NOTHING),
            ("everything", Instance(_)) => (&[Read], READ_AND_SEARCH),
            ("everything", Type(_)) => (&[SearchType], READ_AND_SEARCH),
            ("lastn", Type(_)) => (&[SearchType], &[SearchType]),
            ("export", System) => (NOTHING, READ_AND_SEARCH),
            ("export", Type(_)) => (&[SearchType], READ_AND_SEARCH),
            ("export", Instance(_)) => (&[Read], READ_AND_SEARCH),
            _ => return None,
        };
    Some(OperationRule {
        on_target,
        on_results,
    })
}

/// What the scopes permit for one type and interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No applicable scope covers it.
    Denied,
    /// Every resource of the type.
    Unrestricted,
    /// Only resources matching at least one of these AND-sets of search parameters. Never
    /// empty, no set is empty, and no set includes another (that one would add nothing).
    Restricted(Vec<Conditions>),
}

impl Decision {
    /// Whether nothing is permitted.
    pub fn is_denied(&self) -> bool {
        matches!(self, Decision::Denied)
    }

    /// Whether everything is permitted.
    pub fn is_unrestricted(&self) -> bool {
        matches!(self, Decision::Unrestricted)
    }

    /// `None` = denied; `Some(vec![vec![]])` = unrestricted; otherwise an OR of AND-sets that
    /// the caller ANDs into the query.
    pub fn into_filter(self) -> Option<Vec<Conditions>> {
        match self {
            Decision::Denied => None,
            Decision::Unrestricted => Some(vec![Vec::new()]),
            Decision::Restricted(sets) => Some(sets),
        }
    }

    /// What both decisions permit: the AND of two ORs, spread out into one OR of AND-sets.
    pub fn and(&self, other: &Decision) -> Decision {
        match (self, other) {
            (Decision::Denied, _) | (_, Decision::Denied) => Decision::Denied,
            (Decision::Unrestricted, d) | (d, Decision::Unrestricted) => d.clone(),
            (Decision::Restricted(a), Decision::Restricted(b)) => {
                Decision::from_sets(a.iter().flat_map(|x| {
                    b.iter()
                        .map(move |y| x.iter().chain(y).cloned().collect::<BTreeSet<_>>())
                }))
            }
        }
    }

    /// The OR of AND-sets, simplified: no set means denied; an empty set means unrestricted.
    fn from_sets(sets: impl IntoIterator<Item = BTreeSet<(String, String)>>) -> Decision {
        let sets: BTreeSet<BTreeSet<(String, String)>> = sets.into_iter().collect();
        if sets.is_empty() {
            return Decision::Denied;
        }
        if sets.iter().any(BTreeSet::is_empty) {
            return Decision::Unrestricted;
        }
        // A set that includes another matches fewer resources: the OR does not need it.
        let minimal = sets
            .iter()
            .filter(|s| !sets.iter().any(|o| o != *s && o.is_subset(s)))
            .map(|s| s.iter().cloned().collect())
            .collect();
        Decision::Restricted(minimal)
    }
}

/// Decisions for every type at once, for system-level searches and multi-type results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDecisions {
    /// Types some scope names, with their decision (wildcard scopes included).
    pub named: BTreeMap<String, Decision>,
    /// The decision for every type not in `named` (wildcard scopes only).
    pub others: Decision,
}

impl TypeDecisions {
    /// The decision for one type.
    pub fn for_type(&self, resource_type: &str) -> &Decision {
        self.named.get(resource_type).unwrap_or(&self.others)
    }
}

/// A set of scopes, in the order first written, without two of the same meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Parses a space-separated scope string; every malformed scope is named in the error.
    pub fn parse(text: &str) -> Result<Scopes, ScopeError> {
        let mut scopes = Vec::new();
        let mut malformed = Vec::new();
        // Lenient about runs of whitespace; RFC 6749 says one space, clients send more.
        for token in text.split_ascii_whitespace() {
            match parse_token(token) {
                Ok(scope) => scopes.push(scope),
                Err(defect) => malformed.push(Malformed {
                    scope: token.to_string(),
                    defect,
                }),
            }
        }
        if malformed.is_empty() {
            Ok(scopes.into_iter().collect())
        } else {
            Err(ScopeError::Malformed(malformed))
        }
    }

    /// The scopes, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Scope> {
        self.0.iter()
    }

    /// How many scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no scope.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a scope with the same meaning is in the set.
    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.iter().any(|s| s.same_meaning(scope))
    }

    /// The clinical scopes.
    pub fn clinical(&self) -> impl Iterator<Item = &ClinicalScope> {
        self.0.iter().filter_map(Scope::as_clinical)
    }

    /// Whether some clinical scope has this level.
    pub fn has_level(&self, level: Level) -> bool {
        self.clinical().any(|c| c.level == level)
    }

    /// `launch` (EHR launch).
    pub fn launch(&self) -> bool {
        self.0.contains(&Scope::Launch)
    }

    /// `launch/patient`.
    pub fn launch_patient(&self) -> bool {
        self.0.contains(&Scope::LaunchPatient)
    }

    /// `launch/encounter`.
    pub fn launch_encounter(&self) -> bool {
        self.0.contains(&Scope::LaunchEncounter)
    }

    /// The other `launch/<type>` scopes: (lower-case type, role).
    pub fn launch_contexts(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().filter_map(|s| match s {
            Scope::LaunchContext { resource, role } => Some((resource.as_str(), role.as_deref())),
            _ => None,
        })
    }

    /// `openid`.
    pub fn openid(&self) -> bool {
        self.0.contains(&Scope::OpenId)
    }

    /// `fhirUser`.
    pub fn fhir_user(&self) -> bool {
        self.0.contains(&Scope::FhirUser)
    }

    /// `profile`.
    pub fn profile(&self) -> bool {
        self.0.contains(&Scope::Profile)
    }

    /// `offline_access`.
    pub fn offline_access(&self) -> bool {
        self.0.contains(&Scope::OfflineAccess)
    }

    /// `online_access`.
    pub fn online_access(&self) -> bool {
        self.0.contains(&Scope::OnlineAccess)
    }

    /// Whether a refresh token may be issued (`offline_access` or `online_access`).
    pub fn allows_refresh(&self) -> bool {
        self.offline_access() || self.online_access()
    }

    /// The same set without clinical scopes of other levels (e.g. those a [`ScopeContext`] ignores).
    pub fn only_levels(&self, levels: &[Level]) -> Scopes {
        Scopes(
            self.0
                .iter()
                .filter(|s| s.as_clinical().is_none_or(|c| levels.contains(&c.level)))
                .cloned()
                .collect(),
        )
    }

    /// What `level` scopes permit for `interaction` on `resource_type` (`*` = every type).
    pub fn decide(&self, level: Level, resource_type: &str, interaction: Interaction) -> Decision {
        let Some(letter) = interaction.permission() else {
            return Decision::Denied;
        };
        Decision::from_sets(
            self.clinical()
                .filter(|c| {
                    c.level == level
                        && c.permissions.contains(letter)
                        && c.target.matches(resource_type)
                })
                .map(ClinicalScope::param_set),
        )
    }

    /// What `level` scopes permit when every one of `interactions` is needed (none: unrestricted).
    pub fn decide_all(
        &self,
        level: Level,
        resource_type: &str,
        interactions: &[Interaction],
    ) -> Decision {
        interactions.iter().fold(Decision::Unrestricted, |acc, i| {
            acc.and(&self.decide(level, resource_type, *i))
        })
    }

    /// [`Scopes::decide_all`] for every type at once.
    pub fn decisions_by_type(&self, level: Level, interactions: &[Interaction]) -> TypeDecisions {
        let named: BTreeSet<&str> = self
            .clinical()
            .filter(|c| c.level == level)
            .filter_map(|c| match &c.target {
                ResourceTarget::Type(t) => Some(t.as_str()),
                ResourceTarget::Any => None,
            })
            .collect();
        TypeDecisions {
            named: named
                .into_iter()
                .map(|t| (t.to_string(), self.decide_all(level, t, interactions)))
                .collect(),
            // No scope names a type called `*`, so only wildcard scopes answer.
            others: self.decide_all(level, "*", interactions),
        }
    }

    /// What `level` scopes permit for invoking an operation on its target (see [`operation_rule`]).
    pub fn decide_operation(
        &self,
        level: Level,
        name: &str,
        target: OperationTarget<'_>,
    ) -> Decision {
        let Some(rule) = operation_rule(name, target) else {
            return Decision::Denied;
        };
        let resource_type = match target {
            OperationTarget::System => "*",
            OperationTarget::Type(t) | OperationTarget::Instance(t) => t,
        };
        self.decide_all(level, resource_type, rule.on_target)
    }

    /// Whether any level of `context` could permit it: if not, the answer is 403 at once.
    pub fn may_attempt(
        &self,
        context: ScopeContext,
        resource_type: &str,
        interaction: Interaction,
    ) -> bool {
        context
            .levels()
            .iter()
            .any(|level| !self.decide(*level, resource_type, interaction).is_denied())
    }

    /// The requested scopes narrowed to what `allowed` permits, in the request's syntax.
    ///
    /// A clinical scope becomes its intersection with each allowed scope of the same level
    /// (`system/*.cruds` against `system/Patient.rs` gives `system/Patient.rs`); pieces another
    /// piece of the same request covers are dropped. Other scopes stay only if `allowed`
    /// has them too.
    pub fn intersect(&self, allowed: &Scopes) -> Scopes {
        let mut out = Vec::new();
        for scope in &self.0 {
            match scope {
                Scope::Clinical(requested) => {
                    let pieces: Vec<ClinicalScope> = allowed
                        .clinical()
                        .filter_map(|a| requested.intersection(a))
                        .collect();
                    for (i, piece) in pieces.iter().enumerate() {
                        let redundant = pieces.iter().enumerate().any(|(j, other)| {
                            j != i && other.covers(piece) && (j < i || !piece.covers(other))
                        });
                        if !redundant {
                            out.push(Scope::Clinical(piece.clone()));
                        }
                    }
                }
                other if allowed.contains(other) => out.push(other.clone()),
                _ => {}
            }
        }
        out.into_iter().collect()
    }

    /// Whether this set asks for nothing beyond `original` (a refresh may narrow, never widen).
    ///
    /// A clinical scope passes when, for each of its letters, one original scope of the same
    /// level has that letter, covers its type and has no condition it lacks. Splitting the
    /// letters lets `.rs` pass against `.r` plus `.s`. Other scopes must be in `original`.
    pub fn is_subset_of(&self, original: &Scopes) -> bool {
        self.0.iter().all(|scope| match scope {
            Scope::Clinical(c) => c.permissions.iter().all(|letter| {
                original.clinical().any(|o| {
                    o.level == c.level
                        && o.permissions.contains(letter)
                        && o.target.covers(&c.target)
                        && o.params.iter().all(|p| c.params.contains(p))
                })
            }),
            other => original.contains(other),
        })
    }
}

impl FromIterator<Scope> for Scopes {
    /// Keeps the first of scopes with the same meaning.
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes: Vec<Scope> = Vec::new();
        for scope in iter {
            if !scopes.iter().any(|s| s.same_meaning(&scope)) {
                scopes.push(scope);
            }
        }
        Scopes(scopes)
    }
}

impl<'a> IntoIterator for &'a Scopes {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromStr for Scopes {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scopes::parse(s)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{scope}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Scopes::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Interaction as I;
    use Level::{Patient, System};

    fn scopes(text: &str) -> Scopes {
        Scopes::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn clinical(text: &str) -> ClinicalScope {
        match Scope::parse(text) {
            Ok(Scope::Clinical(c)) => c,
            other => panic!("{text}: not clinical: {other:?}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Conditions {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// `-` = denied, `*` = unrestricted, else AND-sets `a=1&b=2` joined by ` | ` (OR).
    fn decision(text: &str) -> Decision {
        match text {
            "-" => Decision::Denied,
            "*" => Decision::Unrestricted,
            _ => Decision::Restricted(
                text.split(" | ")
                    .map(|set| {
                        set.split('&')
                            .map(|p| p.split_once('=').expect("name=value"))
                            .map(|(n, v)| (n.to_string(), v.to_string()))
                            .collect()
                    })
                    .collect(),
            ),
        }
    }

    /// The fields of a table row, split at `;` and trimmed.
    fn row(text: &str) -> Vec<&str> {
        text.split(';').map(str::trim).collect()
    }

    fn interaction(code: &str) -> Interaction {
        Interaction::ALL
            .into_iter()
            .find(|i| i.code() == code)
            .unwrap_or_else(|| panic!("no interaction {code}"))
    }

    /// Space-separated interaction codes.
    fn interactions(codes: &str) -> Vec<Interaction> {
        codes.split_whitespace().map(interaction).collect()
    }

    fn level(text: &str) -> Level {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == text)
            .unwrap_or_else(|| panic!("no level {text}"))
    }

    /// `system`, `type T` or `instance T`.
    fn target(text: &str) -> OperationTarget<'_> {
        match text.split_once(' ') {
            None if text == "system" => OperationTarget::System,
            Some(("type", t)) => OperationTarget::Type(t),
            Some(("instance", t)) => OperationTarget::Instance(t),
            _ => panic!("bad target {text}"),
        }
    }

    #[test]
    fn parses_every_clinical_form() {
        // input ; level type letters syntax ; params as a=1&b=2 ; display if not the input
        let cases = [
            "patient/Observation.c ; patient Observation c v2 ; ;",
            "patient/Observation.r ; patient Observation r v2 ; ;",
            "patient/Observation.u ; patient Observation u v2 ; ;",
            "patient/Observation.d ; patient Observation d v2 ; ;",
            "patient/Observation.s ; patient Observation s v2 ; ;",
            "patient/Observation.rs ; patient Observation rs v2 ; ;",
            "user/Patient.cud ; user Patient cud v2 ; ;",
            "user/Patient.cs ; user Patient cs v2 ; ;",
            "user/Patient.rus ; user Patient rus v2 ; ;",
            "system/Patient.cruds ; system Patient cruds v2 ; ;",
            "system/*.cruds ; system * cruds v2 ; ;",
            "user/*.rs ; user * rs v2 ; ;",
            "system/Observation2.r ; system Observation2 r v2 ; ;",
            "patient/Observation.read ; patient Observation rs v1 ; ;",
            "patient/*.write ; patient * cud v1 ; ;",
            "user/Patient.* ; user Patient cruds v1 ; ;",
            "system/*.* ; system * cruds v1 ; ;",
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory ; patient Observation rs v2 ; category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory ;",
            "user/Observation.rs?category=lab&code=http://loinc.org|1234-5 ; user Observation rs v2 ; category=lab&code=http://loinc.org|1234-5 ;",
            // Written order is kept; exact duplicates are dropped; same name twice is an AND.
            "user/Observation.rs?b=2&a=1 ; user Observation rs v2 ; b=2&a=1 ;",
            "user/Observation.rs?a=1&a=1 ; user Observation rs v2 ; a=1 ; user/Observation.rs?a=1",
            "user/Observation.rs?a=1&a=2 ; user Observation rs v2 ; a=1&a=2 ;",
            // Percent-decoding, and re-encoding only what must be (`&` is in the next test).
            "user/Observation.rs?code=a%20b%25 ; user Observation rs v2 ; code=a b% ;",
            "user/Observation.rs?code=x%7Cy ; user Observation rs v2 ; code=x|y ; user/Observation.rs?code=x|y",
            "user/Observation.rs?code=x%7cy ; user Observation rs v2 ; code=x|y ; user/Observation.rs?code=x|y",
            "user/Observation.rs?code=caf%C3%A9 ; user Observation rs v2 ; code=café ;",
            "user/Observation.rs?code=caf%c3%a9 ; user Observation rs v2 ; code=café ; user/Observation.rs?code=caf%C3%A9",
            "user/Observation.rs?code=a+b ; user Observation rs v2 ; code=a+b ;",
            "user/Observation.rs?code=a=b ; user Observation rs v2 ; code=a=b ;",
            "user/Observation.rs?code=a?b ; user Observation rs v2 ; code=a?b ;",
            "user/Observation.rs?code=a,b ; user Observation rs v2 ; code=a,b ;",
            // Parameter names: modifiers, chains, underscores, dashes.
            "user/Observation.rs?code:text=x ; user Observation rs v2 ; code:text=x ;",
            "user/Observation.rs?subject.name=x ; user Observation rs v2 ; subject.name=x ;",
            "user/Observation.rs?_security=R ; user Observation rs v2 ; _security=R ;",
            "user/Observation.rs?value-quantity=5 ; user Observation rs v2 ; value-quantity=5 ;",
            // Parameters on v1 forms and on the wildcard.
            "patient/Observation.read?category=lab ; patient Observation rs v1 ; category=lab ;",
            "patient/*.rs?_security=N ; patient * rs v2 ; _security=N ;",
        ];
        for case in cases {
            let [input, shape, params, display] = row(case)[..] else {
                panic!("bad row {case}");
            };
            let c = clinical(input);
            let [lvl, rtype, letters, syntax] = shape.split(' ').collect::<Vec<_>>()[..] else {
                panic!("bad shape {shape}");
            };
            assert_eq!(c.level(), level(lvl), "{input}");
            assert_eq!(c.target().to_string(), rtype, "{input}");
            let wildcard = matches!(c.target(), ResourceTarget::Any);
            assert_eq!(wildcard, rtype == "*", "{input}");
            assert_eq!(c.permissions().to_string(), letters, "{input}");
            let expected_syntax = if syntax == "v1" {
                Syntax::V1
            } else {
                Syntax::V2
            };
            assert_eq!(c.syntax(), expected_syntax, "{input}");
            let expected_params = if params.is_empty() {
                Vec::new()
            } else {
                decision(params).into_filter().unwrap().remove(0)
            };
            assert_eq!(c.params(), expected_params.as_slice(), "{input}");
            let display = if display.is_empty() { input } else { display };
            assert_eq!(c.to_string(), display, "{input}");
            // The canonical text parses back to the same scope.
            assert_eq!(clinical(display), c, "{input}");
        }
    }

    #[test]
    fn parses_launch_identity_and_other_scopes() {
        let ctx = |r: &str, role: Option<&str>| {
            Some(Scope::LaunchContext {
                resource: r.to_string(),
                role: role.map(str::to_string),
            })
        };
        // (input, parsed; None = kept as `Other`). Each displays as written.
        let cases: Vec<(&str, Option<Scope>)> = vec![
            ("launch", Some(Scope::Launch)),
            ("launch/patient", Some(Scope::LaunchPatient)),
            ("launch/encounter", Some(Scope::LaunchEncounter)),
            ("launch/imagingstudy", ctx("imagingstudy", None)),
            (
                "launch/list?role=https://example.org/at-home",
                ctx("list", Some("https://example.org/at-home")),
            ),
            ("launch/list?role=a%20b", ctx("list", Some("a b"))),
            ("launch/patient?role=x", ctx("patient", Some("x"))),
            ("openid", Some(Scope::OpenId)),
            ("fhirUser", Some(Scope::FhirUser)),
            ("profile", Some(Scope::Profile)),
            ("offline_access", Some(Scope::OfflineAccess)),
            ("online_access", Some(Scope::OnlineAccess)),
            // Unknown: kept as written and ignored.
            ("launch/Patient", None),
            ("launch/", None),
            ("launch/image-study", None),
            ("launch/list?foo=x", None),
            ("launch/list?role=", None),
            ("launch/list?role=a&b=c", None),
            ("launch/list?role=%zz", None),
            ("Patient/Observation.read", None),
            ("patients/Observation.read", None),
            ("patient:Observation.read", None),
            ("patient", None),
            ("system", None),
            ("openID", None),
            ("FHIRUSER", None),
            ("offline-access", None),
            ("__custom", None),
            ("https://example.org/scope", None),
            ("http://smarthealthit.org/fhir/scopes/patient/*.read", None),
        ];
        for (input, expected) in cases {
            let expected = expected.unwrap_or_else(|| Scope::Other(input.to_string()));
            let parsed = Scope::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed, expected, "{input}");
            assert_eq!(parsed.to_string(), input, "{input}");
            assert!(parsed.as_clinical().is_none(), "{input}");
        }
    }

    #[test]
    fn rejects_malformed_scopes() {
        use Defect::*;
        let t = |s: &str| InvalidResourceType(s.to_string());
        let p = |s: &str| InvalidPermissions(s.to_string());
        let q = |s: &str| InvalidParameter(s.to_string());
        let e = |s: &str| InvalidPercentEncoding(s.to_string());
        let cases: Vec<(&str, Defect)> = vec![
            ("", Empty),
            // Characters RFC 6749 does not allow in a scope token.
            ("patient/Observation.rs?code=\"x\"", InvalidCharacter),
            ("a\\b", InvalidCharacter),
            ("pätient/Observation.rs", InvalidCharacter),
            ("openid\u{7f}", InvalidCharacter),
            ("open\u{1}id", InvalidCharacter),
            ("openid fhirUser", InvalidCharacter),
            // Resource type.
            ("patient/", MissingResourceType),
            ("patient/.rs", MissingResourceType),
            ("user/.read", MissingResourceType),
            ("patient/observation.rs", t("observation")),
            ("patient/Obs-ervation.rs", t("Obs-ervation")),
            ("patient/Obs_ervation.rs", t("Obs_ervation")),
            ("patient/**.rs", t("**")),
            ("patient/*Observation.rs", t("*Observation")),
            ("patient/9Obs.rs", t("9Obs")),
            ("system/Patient/1.rs", t("Patient/1")),
            // Permissions.
            ("patient/Observation", MissingPermissions),
            ("patient/*", MissingPermissions),
            ("patient/Observation.", MissingPermissions),
            ("patient/Observation.?a=b", MissingPermissions),
            ("patient/Observation?category=x", MissingPermissions),
            ("patient/Observation.dus", p("dus")),
            ("patient/Observation.sr", p("sr")),
            ("patient/Observation.rc", p("rc")),
            ("patient/Observation.scrud", p("scrud")),
            ("patient/Observation.rr", p("rr")),
            ("patient/Observation.crudsc", p("crudsc")),
            ("patient/Observation.x", p("x")),
            ("patient/Observation.rw", p("rw")),
            ("patient/Observation.rsx", p("rsx")),
            ("patient/Observation.R", p("R")),
            ("patient/Observation.RS", p("RS")),
            ("patient/Observation.READ", p("READ")),
            ("patient/Observation.Read", p("Read")),
            ("patient/Observation.reads", p("reads")),
            ("patient/Observation.writes", p("writes")),
            ("patient/Observation.all", p("all")),
            ("patient/Observation.**", p("**")),
            ("patient/Observation.write*", p("write*")),
            ("patient/Observation.r.s", p("r.s")),
            ("system/*.cruds.", p("cruds.")),
            // Granular parameters.
            ("patient/Observation.rs?", EmptyParameters),
            ("patient/Observation.rs?category", q("category")),
            ("patient/Observation.rs?category=", q("category=")),
            ("patient/Observation.rs?=lab", q("=lab")),
            ("patient/Observation.rs?a=1&", q("")),
            ("patient/Observation.rs?&a=1", q("")),
            ("patient/Observation.rs?a=1&&b=2", q("")),
            ("patient/Observation.rs?a=1&b", q("b")),
            ("patient/Observation.rs?cat%20egory=x", q("cat%20egory=x")),
            ("patient/Observation.rs?cat/egory=x", q("cat/egory=x")),
            ("patient/Observation.rs?:text=x", q(":text=x")),
            ("patient/Observation.rs?.name=x", q(".name=x")),
            ("patient/Observation.rs?-x=1", q("-x=1")),
            ("patient/Observation.rs?9x=1", q("9x=1")),
            ("patient/Observation.rs?code=%", e("%")),
            ("patient/Observation.rs?code=%2", e("%2")),
            ("patient/Observation.rs?code=a%zz", e("a%zz")),
            ("patient/Observation.rs?code=%+1", e("%+1")),
            ("patient/Observation.rs?code=%FF", e("%FF")),
            ("patient/Observation.rs?code=%C3", e("%C3")),
        ];
        for (input, defect) in cases {
            let expected = ScopeError::Malformed(vec![Malformed {
                scope: input.to_string(),
                defect,
            }]);
            assert_eq!(Scope::parse(input), Err(expected.clone()), "{input}");
            assert_eq!(input.parse::<Scope>(), Err(expected), "{input}");
        }
    }

    #[test]
    fn permission_letters_accept_exactly_the_ordered_subsets() {
        // Every string of 1 to 5 letters over c r u d s x: valid exactly when it is a strictly
        // increasing subsequence of "cruds".
        let alphabet = ['c', 'r', 'u', 'd', 's', 'x'];
        let mut words: Vec<String> = vec![String::new()];
        let (mut checked, mut valid) = (0, 0);
        for _ in 0..5 {
            words = words
                .iter()
                .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                .collect();
            for word in &words {
                let positions: Option<Vec<usize>> = word.chars().map(|c| "cruds".find(c)).collect();
                let ordered = positions.is_some_and(|p| p.windows(2).all(|w| w[0] < w[1]));
                let parsed = Permissions::parse_v2(word);
                assert_eq!(parsed.is_some(), ordered, "{word}");
                if let Some(p) = parsed {
                    assert_eq!(p.to_string(), *word);
                    let scope = format!("user/Patient.{word}");
                    assert_eq!(clinical(&scope).to_string(), scope);
                    valid += 1;
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 6 + 36 + 216 + 1296 + 7776);
        assert_eq!(valid, 31, "every non-empty subset of c r u d s, once");
        assert_eq!(Permissions::parse_v2(""), None);
    }

    #[test]
    fn permission_sets() {
        assert_eq!(Permissions::READ.to_string(), "rs");
        assert_eq!(Permissions::WRITE.to_string(), "cud");
        assert_eq!(Permissions::ALL.to_string(), "cruds");
        assert_eq!(Permissions::NONE.to_string(), "");
        assert!(Permissions::NONE.is_empty());
        let sr = Permissions::of(&[Permission::Search, Permission::Read]);
        assert_eq!(sr, Permissions::READ);
        assert!(Permissions::ALL.includes(Permissions::WRITE));
        assert!(!Permissions::READ.includes(Permissions::ALL));
        let none = Permissions::READ.intersection(Permissions::WRITE);
        assert_eq!(none, Permissions::NONE);
        let cu = Permissions::of(&[Permission::Create, Permission::Update]);
        let cases = [
            (Permissions::READ, Some("read")),
            (Permissions::WRITE, Some("write")),
            (Permissions::ALL, Some("*")),
            (Permissions::of(&[Permission::Read]), None),
            (cu, None),
        ];
        for (p, keyword) in cases {
            assert_eq!(p.v1_keyword(), keyword, "{p}");
        }
    }

    #[test]
    fn values_round_trip_through_percent_encoding() {
        let values = [
            "a b",
            "a&b",
            "50%",
            "café",
            "\"q\"",
            "back\\slash",
            "tab\tx",
            "a=b",
            "x|y",
            "ü?&=%",
            "line\nbreak",
            "日本",
        ];
        for value in values {
            let encoded: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
            let c = clinical(&format!("patient/Observation.rs?code={encoded}"));
            assert_eq!(c.params(), pairs(&[("code", value)]).as_slice(), "{value}");
            let display = c.to_string();
            let one_token = display.bytes().all(is_scope_char);
            assert!(one_token, "{value}: {display} is not one scope token");
            assert_eq!(clinical(&display), c, "{value}");
            let launch = Scope::parse(&format!("launch/list?role={encoded}")).unwrap();
            assert_eq!(Scope::parse(&launch.to_string()), Ok(launch), "{value}");
        }
    }

    #[test]
    fn v1_and_v2_forms_mean_the_same() {
        let cases = [
            ("patient/Observation.read", "patient/Observation.rs"),
            ("patient/Observation.write", "patient/Observation.cud"),
            ("patient/Observation.*", "patient/Observation.cruds"),
            ("user/*.read", "user/*.rs"),
            ("user/*.write", "user/*.cud"),
            ("system/*.*", "system/*.cruds"),
            ("system/Patient.read?_tag=x", "system/Patient.rs?_tag=x"),
        ];
        for (v1, v2) in cases {
            let (a, b) = (Scope::parse(v1).unwrap(), Scope::parse(v2).unwrap());
            assert!(a.same_meaning(&b), "{v1} ~ {v2}");
            assert_ne!(a, b, "{v1} remembers its syntax");
            assert_eq!(a.to_string(), v1, "echoed as written");
            assert_eq!(b.to_string(), v2, "echoed as written");
            let (sa, sb) = (scopes(v1), scopes(v2));
            assert!(sa.is_subset_of(&sb) && sb.is_subset_of(&sa), "{v1} ~ {v2}");
            for level in Level::ALL {
                for rt in ["Observation", "Patient", "*"] {
                    for i in Interaction::ALL {
                        let (da, db) = (sa.decide(level, rt, i), sb.decide(level, rt, i));
                        assert_eq!(da, db, "{v1} {level} {rt} {i:?}");
                    }
                }
            }
            // In one set they are the same scope; the first one written wins.
            assert_eq!(scopes(&format!("{v1} {v2}")).to_string(), v1);
            assert_eq!(scopes(&format!("{v2} {v1}")).to_string(), v2);
        }
    }

    #[test]
    fn parses_scope_sets() {
        // input ; canonical display
        let cases = [
            " ;",
            "openid ; openid",
            "launch/patient openid fhirUser offline_access patient/*.rs ; launch/patient openid fhirUser offline_access patient/*.rs",
            "openid   fhirUser\tprofile\n ; openid fhirUser profile",
            "openid openid ; openid",
            "patient/Patient.rs user/Patient.rs ; patient/Patient.rs user/Patient.rs",
            "patient/Patient.rs patient/Patient.rs ; patient/Patient.rs",
            "patient/Patient.read patient/Patient.rs ; patient/Patient.read",
            "patient/Patient.rs?a=1&b=2 patient/Patient.rs?b=2&a=1 ; patient/Patient.rs?a=1&b=2",
            "patient/Patient.rs?a=1 patient/Patient.rs?a=2 ; patient/Patient.rs?a=1 patient/Patient.rs?a=2",
            "patient/Patient.rs?a=x%7Cy patient/Patient.rs?a=x|y ; patient/Patient.rs?a=x|y",
            "patient/Patient.rs patient/Patient.r ; patient/Patient.rs patient/Patient.r",
            "__x launch __x ; __x launch",
        ];
        for case in cases {
            let [input, display] = row(case)[..] else {
                panic!("bad row {case}");
            };
            let parsed = scopes(input);
            assert_eq!(parsed.to_string(), display, "{case:?}");
            assert_eq!(scopes(display), parsed, "{case:?}");
            assert_eq!(display.parse::<Scopes>(), Ok(parsed.clone()), "{case:?}");
            assert_eq!(parsed.len(), parsed.iter().count());
            assert_eq!(parsed.len(), (&parsed).into_iter().count());
            assert_eq!(parsed.is_empty(), display.is_empty());
        }
        // Leading and trailing whitespace of every kind is ignored.
        assert_eq!(scopes("  \t openid \n"), scopes("openid"));
        assert!(scopes(" \t\n ").is_empty());
    }

    #[test]
    fn a_set_names_every_malformed_scope() {
        let text = "openid patient/Observation.dus launch user/.rs __ok system/Patient";
        let err = Scopes::parse(text).unwrap_err();
        let ScopeError::Malformed(list) = &err;
        let named: Vec<&str> = list.iter().map(|m| m.scope.as_str()).collect();
        assert_eq!(
            named,
            ["patient/Observation.dus", "user/.rs", "system/Patient"]
        );
        let message = err.to_string();
        assert!(message.starts_with("malformed scopes: "), "{message}");
        for scope in named {
            assert!(message.contains(&format!("'{scope}'")), "{message}");
        }
        let one = Scopes::parse("openid patient/Observation.dus").unwrap_err();
        assert_eq!(
            one.to_string(),
            "malformed scope: 'patient/Observation.dus' ('dus' is not 'read', 'write', '*' or \
             the letters c r u d s in this order, each at most once)"
        );
    }

    #[test]
    fn helpers_report_launch_identity_and_refresh_scopes() {
        // Flags in order: openid fhirUser profile offline online launch launch/patient
        // launch/encounter ('1' = present).
        let cases = [
            ("", "00000000"),
            ("patient/*.rs", "00000000"),
            ("openid", "10000000"),
            ("fhirUser", "01000000"),
            ("profile", "00100000"),
            ("offline_access", "00010000"),
            ("online_access", "00001000"),
            ("launch", "00000100"),
            ("launch/patient", "00000010"),
            ("launch/encounter", "00000001"),
            ("launch/patient?role=x openID offline-access", "00000000"),
            (
                "openid fhirUser profile offline_access online_access launch launch/patient \
                 launch/encounter",
                "11111111",
            ),
        ];
        for (input, flags) in cases {
            let s = scopes(input);
            let got: String = [
                s.openid(),
                s.fhir_user(),
                s.profile(),
                s.offline_access(),
                s.online_access(),
                s.launch(),
                s.launch_patient(),
                s.launch_encounter(),
            ]
            .iter()
            .map(|b| if *b { '1' } else { '0' })
            .collect();
            assert_eq!(got, flags, "{input}");
            let refresh = flags.as_bytes()[3] == b'1' || flags.as_bytes()[4] == b'1';
            assert_eq!(s.allows_refresh(), refresh, "{input}");
        }
        let s =
            scopes("launch/patient launch/imagingstudy launch/list?role=https://x.org/h openid");
        let contexts: Vec<_> = s.launch_contexts().collect();
        assert_eq!(
            contexts,
            [("imagingstudy", None), ("list", Some("https://x.org/h"))]
        );
    }

    #[test]
    fn levels_of_a_set() {
        let s = scopes("openid patient/Observation.rs user/*.r system/Patient.s __x");
        for level in Level::ALL {
            assert!(s.has_level(level), "{level}");
            let only = s.only_levels(&[level]);
            assert!(only.clinical().all(|c| c.level() == level), "{level}");
            assert_eq!(only.clinical().count(), 1, "{level}");
            assert!(only.openid() && only.contains(&Scope::Other("__x".into())));
        }
        assert!(!scopes("openid").has_level(Patient));
        let with_patient = s.only_levels(ScopeContext::UserWithPatient.levels());
        assert_eq!(
            with_patient.to_string(),
            "openid patient/Observation.rs user/*.r __x"
        );
        let backend = s.only_levels(ScopeContext::Backend.levels());
        assert_eq!(backend.to_string(), "openid system/Patient.s __x");
    }

    #[test]
    fn interactions_map_to_letters() {
        use Permission::*;
        let cases = [
            (I::Create, "create", Some(Create)),
            (I::Read, "read", Some(Read)),
            (I::Vread, "vread", Some(Read)),
            (I::HistoryInstance, "history-instance", Some(Read)),
            (I::HistoryType, "history-type", Some(Search)),
            (I::HistorySystem, "history-system", Some(Search)),
            (I::Update, "update", Some(Update)),
            (I::Patch, "patch", Some(Update)),
            (I::Delete, "delete", Some(Delete)),
            (I::SearchType, "search-type", Some(Search)),
            (I::SearchSystem, "search-system", Some(Search)),
            (I::Operation, "operation", None),
        ];
        assert_eq!(cases.len(), Interaction::ALL.len());
        for (i, code, letter) in cases {
            assert_eq!(i.code(), code);
            assert_eq!(i.permission(), letter, "{code}");
        }
    }

    #[test]
    fn each_letter_permits_exactly_its_interactions() {
        for letter in Permission::ALL {
            let s = scopes(&format!("patient/Observation.{}", letter.letter()));
            for i in Interaction::ALL {
                let expected = if i.permission() == Some(letter) {
                    "*"
                } else {
                    "-"
                };
                let got = s.decide(Patient, "Observation", i);
                assert_eq!(got, decision(expected), "{letter:?} {i:?}");
            }
        }
        // Operations never pass through `decide`, even with every letter.
        let all = scopes("system/*.cruds");
        assert!(all.decide(System, "Patient", I::Operation).is_denied());
    }

    #[test]
    fn decisions() {
        // scopes ; level type interaction ; expected decision (see `decision`)
        let cases = [
            // Type, level and letter must all match (checklist tests 29, 31, 32, 33).
            "patient/Observation.rs ; patient Observation read ; *",
            "patient/Observation.rs ; patient Observation search-type ; *",
            "patient/Observation.rs ; user Observation read ; -",
            "patient/Observation.rs ; system Observation read ; -",
            "patient/Observation.rs ; patient Condition search-type ; -",
            "patient/Observation.rs ; patient Observation create ; -",
            "patient/Observation.rs ; patient Observation update ; -",
            "patient/Observation.r ; patient Observation search-type ; -",
            "patient/Observation.r ; patient Observation read ; *",
            "patient/Observation.read ; patient Observation search-type ; *",
            "patient/Observation.rs user/Observation.r ; user Observation search-type ; -",
            "user/*.cruds ; user Patient delete ; *",
            "system/Patient.rs ; system Patient search-system ; *",
            "system/Patient.rs ; system Patient history-system ; *",
            "system/Patient.rs ; system Observation search-system ; -",
            // Wildcard: every type, and `*` asks about every type at once.
            "patient/*.rs ; patient Condition read ; *",
            "patient/*.rs ; patient SomeFutureType search-type ; *",
            "patient/*.rs ; patient * search-system ; *",
            "patient/Observation.rs ; patient * search-system ; -",
            // Unknown and identity scopes grant nothing.
            "openid fhirUser __all Patient/*.* launch/patient ; patient Patient read ; -",
            " ; patient Patient read ; -",
            // Granular: reads and searches alike (test 30), OR across scopes, AND within one.
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory ; patient Observation search-type ; category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory ; patient Observation read ; category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
            "patient/Observation.rs?category=lab ; patient Condition read ; -",
            "patient/Observation.rs?c=lab patient/Observation.rs?c=vital ; patient Observation search-type ; c=lab | c=vital",
            "patient/Observation.rs?c=lab&code=x ; patient Observation search-type ; c=lab&code=x",
            "patient/Observation.rs?code=x&c=lab patient/Observation.rs?c=vital ; patient Observation search-type ; c=lab&code=x | c=vital",
            // An unrestricted scope absorbs granular ones, also from the wildcard.
            "patient/Observation.rs?c=lab patient/Observation.rs ; patient Observation search-type ; *",
            "patient/*.rs patient/Observation.rs?c=lab ; patient Observation search-type ; *",
            // A set that includes another adds nothing to the OR.
            "patient/Observation.rs?c=lab&code=x patient/Observation.rs?c=lab ; patient Observation search-type ; c=lab",
            // Granular wildcard applies to each type; a named type adds its own OR branch.
            "patient/*.rs?_security=N ; patient Observation read ; _security=N",
            "patient/*.s?a=1 patient/Observation.s?b=2 ; patient Observation search-type ; a=1 | b=2",
            "patient/*.s?a=1 patient/Observation.s?b=2 ; patient Condition search-type ; a=1",
            // Letters are decided one interaction at a time.
            "patient/Observation.r patient/Observation.s?c=lab ; patient Observation read ; *",
            "patient/Observation.r patient/Observation.s?c=lab ; patient Observation search-type ; c=lab",
            "patient/Observation.r patient/Observation.s?c=lab ; patient Observation vread ; *",
            "patient/Observation.r patient/Observation.s?c=lab ; patient Observation history-type ; c=lab",
            // Granular writes: the caller checks the resource against the sets.
            "patient/Observation.cu?c=lab ; patient Observation create ; c=lab",
            "patient/Observation.cu?c=lab ; patient Observation update ; c=lab",
            "patient/Observation.cu?c=lab ; patient Observation patch ; c=lab",
            "patient/Observation.cu?c=lab ; patient Observation delete ; -",
        ];
        for case in cases {
            let [input, question, expected] = row(case)[..] else {
                panic!("bad row {case}");
            };
            let [lvl, rt, code] = question.split(' ').collect::<Vec<_>>()[..] else {
                panic!("bad question {question}");
            };
            let got = scopes(input).decide(level(lvl), rt, interaction(code));
            assert_eq!(got, decision(expected), "{case}");
        }
    }

    #[test]
    fn decision_filters_and_conjunctions() {
        assert_eq!(decision("-").into_filter(), None);
        assert_eq!(decision("*").into_filter(), Some(vec![vec![]]));
        let a1 = Some(vec![pairs(&[("a", "1")])]);
        assert_eq!(decision("a=1").into_filter(), a1);
        assert!(decision("-").is_denied() && !decision("-").is_unrestricted());
        assert!(decision("*").is_unrestricted() && !decision("*").is_denied());
        assert!(!decision("a=1").is_denied() && !decision("a=1").is_unrestricted());

        // (x, y, x AND y) in `decision` notation; AND is checked both ways round.
        let cases = [
            ("-", "*", "-"),
            ("a=1", "-", "-"),
            ("*", "*", "*"),
            ("*", "a=1", "a=1"),
            ("a=1", "a=1", "a=1"),
            ("a=1", "b=2", "a=1&b=2"),
            ("a=1 | b=2", "c=3", "a=1&c=3 | b=2&c=3"),
            (
                "a=1 | b=2",
                "c=3 | d=4",
                "a=1&c=3 | a=1&d=4 | b=2&c=3 | b=2&d=4",
            ),
            // (a OR b) AND a = a.
            ("a=1 | b=2", "a=1", "a=1"),
        ];
        for (x, y, expected) in cases {
            let (x, y) = (decision(x), decision(y));
            assert_eq!(x.and(&y), decision(expected), "{x:?} AND {y:?}");
            assert_eq!(y.and(&x), decision(expected), "{y:?} AND {x:?}");
        }
    }

    #[test]
    fn decide_all_needs_every_interaction() {
        // scopes ; interactions all needed on Observation at patient level ; decision
        let cases = [
            " ; ; *",
            "patient/Observation.rs ; read search-type ; *",
            "patient/Observation.r ; read search-type ; -",
            "patient/Observation.s ; read search-type ; -",
            "patient/Observation.r?c=lab patient/Observation.s ; read search-type ; c=lab",
            "patient/Observation.r?a=1 patient/Observation.s?b=2 ; read search-type ; a=1&b=2",
            "patient/Observation.r?a=1 patient/Observation.rs ; read search-type ; *",
            "patient/Observation.rus ; read update ; *",
        ];
        for case in cases {
            let [input, needed, expected] = row(case)[..] else {
                panic!("bad row {case}");
            };
            let got = scopes(input).decide_all(Patient, "Observation", &interactions(needed));
            assert_eq!(got, decision(expected), "{case}");
        }
    }

    #[test]
    fn decisions_for_every_type() {
        let s =
            scopes("patient/*.s?a=1 patient/Observation.s patient/Condition.r user/Encounter.s");
        let d = s.decisions_by_type(Patient, &[I::SearchType]);
        let named: Vec<&str> = d.named.keys().map(String::as_str).collect();
        assert_eq!(named, ["Condition", "Observation"]);
        assert_eq!(d.for_type("Observation"), &decision("*"));
        assert_eq!(d.for_type("Condition"), &decision("a=1"));
        assert_eq!(d.for_type("Encounter"), &decision("a=1"));
        assert_eq!(d.others, decision("a=1"));

        let d = scopes("system/Patient.rs").decisions_by_type(System, &[I::Read, I::SearchType]);
        assert_eq!(d.for_type("Patient"), &decision("*"));
        assert_eq!(d.for_type("Observation"), &decision("-"));
        assert!(d.others.is_denied());
    }

    #[test]
    fn operation_rules() {
        // name ; target ; needed on the target ; needed on each returned type (- = unknown)
        let cases = [
            "validate ; type Observation ; ;",
            "$validate ; type Observation ; ;",
            "validate ; instance Observation ; read ;",
            "validate ; system ; -",
            "meta ; system ; search-system ;",
            "meta ; type Patient ; search-type ;",
            "$meta ; instance Patient ; read ;",
            "meta-add ; instance Patient ; read update ;",
            "meta-delete ; instance Patient ; read update ;",
            "meta-add ; type Patient ; -",
            "meta-delete ; system ; -",
            "everything ; instance Patient ; read ; read search-type",
            "everything ; type Patient ; search-type ; read search-type",
            "everything ; system ; -",
            "lastn ; type Observation ; search-type ; search-type",
            "lastn ; instance Observation ; -",
            "export ; system ; ; read search-type",
            "export ; type Patient ; search-type ; read search-type",
            "export ; instance Group ; read ; read search-type",
            "frobnicate ; instance Patient ; -",
            "$$meta ; instance Patient ; -",
            " ; system ; -",
            "META ; instance Patient ; -",
        ];
        for case in cases {
            let fields = row(case);
            let rule = operation_rule(fields[0], target(fields[1]));
            match fields[2..] {
                ["-"] => assert_eq!(rule, None, "{case}"),
                [on_target, on_results] => {
                    let rule = rule.unwrap_or_else(|| panic!("{case}: no rule"));
                    assert_eq!(rule.on_target, interactions(on_target), "{case}");
                    assert_eq!(rule.on_results, interactions(on_results), "{case}");
                }
                _ => panic!("bad row {case}"),
            }
        }
    }

    #[test]
    fn operation_decisions() {
        // scopes ; operation and target, at patient level ; decision
        let cases = [
            " ; $validate type Observation ; *",
            "patient/Observation.s ; $validate instance Observation ; -",
            "patient/Observation.r ; $validate instance Observation ; *",
            "patient/Observation.r?a=1 ; $validate instance Observation ; a=1",
            "patient/Observation.rs ; $meta system ; -",
            "patient/*.rs ; $meta system ; *",
            "patient/Observation.s ; $meta type Observation ; *",
            "patient/Observation.r ; $meta instance Observation ; *",
            "patient/Observation.rs ; $meta-add instance Observation ; -",
            "patient/Observation.u ; $meta-add instance Observation ; -",
            "patient/Observation.rus ; $meta-delete instance Observation ; *",
            "patient/Patient.r ; $everything instance Patient ; *",
            "patient/Observation.rs ; $everything instance Patient ; -",
            "patient/Observation.s?c=lab ; $lastn type Observation ; c=lab",
            "patient/*.cruds ; $frobnicate instance Patient ; -",
            "user/Patient.r ; $everything instance Patient ; -",
        ];
        for case in cases {
            let [input, call, expected] = row(case)[..] else {
                panic!("bad row {case}");
            };
            let (name, on) = call.split_once(' ').unwrap();
            let got = scopes(input).decide_operation(Patient, name, target(on));
            assert_eq!(got, decision(expected), "{case}");
        }
    }

    #[test]
    fn contexts_pick_levels() {
        use ScopeContext::*;
        assert_eq!(Backend.levels(), [System]);
        assert_eq!(ScopeContext::User.levels(), [Level::User]);
        assert_eq!(UserWithPatient.levels(), [Patient, Level::User]);
        let cases = [
            ("patient/*.rs", Backend, false),
            ("user/*.rs", Backend, false),
            ("system/Patient.rs", Backend, true),
            ("patient/*.rs", ScopeContext::User, false),
            ("system/*.cruds", ScopeContext::User, false),
            ("user/Patient.r", ScopeContext::User, true),
            ("patient/*.rs", UserWithPatient, true),
            ("user/Patient.r", UserWithPatient, true),
            ("system/*.cruds", UserWithPatient, false),
            ("patient/Observation.r", UserWithPatient, false),
            ("patient/Patient.r?_id=1", UserWithPatient, true),
        ];
        for (input, ctx, expected) in cases {
            let got = scopes(input).may_attempt(ctx, "Patient", I::Read);
            assert_eq!(got, expected, "{input} {ctx:?}");
        }
    }

    #[test]
    fn narrowing_to_a_pre_authorisation() {
        // requested ; pre-authorised ; granted
        let cases = [
            // Checklist test 56.
            "system/*.cruds ; system/Patient.rs ; system/Patient.rs",
            "system/*.cruds ; system/Patient.rs system/Observation.r ; system/Patient.rs system/Observation.r",
            "system/*.cruds ; system/*.rs system/Patient.rs ; system/*.rs",
            "system/*.cruds ; system/Patient.rs system/*.rs ; system/*.rs",
            "system/*.rs ; system/*.rs system/*.read ; system/*.rs",
            "system/Patient.rs ; system/*.cruds ; system/Patient.rs",
            "system/Patient.rs ; ;",
            // The request's syntax is kept while it still fits v1.
            "patient/Observation.read ; patient/*.* ; patient/Observation.read",
            "patient/*.* ; patient/Observation.rs ; patient/Observation.read",
            "patient/Observation.read ; patient/Observation.r ; patient/Observation.r",
            "patient/Observation.rs ; patient/Observation.read ; patient/Observation.rs",
            // Nothing in common.
            "patient/Observation.rs ; user/Observation.rs ;",
            "patient/Observation.rs ; patient/Condition.rs ;",
            "patient/Observation.cu ; patient/Observation.rs ;",
            // Granular conditions from both sides are ANDed.
            "patient/Observation.rs?c=lab ; patient/Observation.rs ; patient/Observation.rs?c=lab",
            "patient/Observation.rs ; patient/Observation.rs?c=lab ; patient/Observation.rs?c=lab",
            "patient/Observation.rs?c=lab ; patient/*.rs?_security=N ; patient/Observation.rs?c=lab&_security=N",
            "patient/Observation.rs ; patient/Observation.r patient/Observation.s?c=lab ; patient/Observation.r patient/Observation.s?c=lab",
            // Non-clinical scopes stay only when pre-authorised.
            "openid fhirUser offline_access launch/patient __x ; openid launch/patient patient/*.rs ; openid launch/patient",
            "__x online_access ; __x ; __x",
            "launch/list?role=a ; launch/list?role=b ;",
            // Order of the request; duplicates by meaning removed.
            "patient/*.rs launch/patient ; launch/patient patient/Observation.rs patient/Condition.rs ; patient/Observation.rs patient/Condition.rs launch/patient",
            "patient/*.rs patient/Observation.rs ; patient/Observation.rs ; patient/Observation.rs",
        ];
        for case in cases {
            let [requested, allowed, expected] = row(case)[..] else {
                panic!("bad row {case}");
            };
            let (r, a) = (scopes(requested), scopes(allowed));
            let got = r.intersect(&a);
            assert_eq!(got.to_string(), expected, "{case}");
            assert!(got.is_subset_of(&r), "{case}: not within the request");
            assert!(
                got.is_subset_of(&a),
                "{case}: not within the pre-authorisation"
            );
        }
    }

    #[test]
    fn subsets_for_refresh() {
        // asked for on refresh ; original grant ; allowed
        let cases = [
            "openid patient/*.rs offline_access ; openid patient/*.rs offline_access ; true",
            " ; openid ; true",
            " ; ; true",
            "patient/Observation.rs ; patient/*.rs ; true",
            "patient/*.rs ; patient/Observation.rs ; false",
            "patient/*.rs ; patient/Observation.rs patient/Condition.rs ; false",
            "patient/Observation.read ; patient/Observation.rs ; true",
            "patient/Observation.rs ; patient/Observation.read ; true",
            "patient/Observation.rs ; patient/Observation.r patient/Observation.s ; true",
            "patient/Observation.rs ; patient/Observation.r ; false",
            "patient/Observation.r ; patient/Observation.rs ; true",
            "system/*.cruds ; system/*.rs ; false",
            "patient/Observation.rs ; user/Observation.rs ; false",
            "user/Observation.rs ; patient/Observation.rs ; false",
            // Granular: more conditions is narrower.
            "patient/Observation.rs?c=lab ; patient/Observation.rs ; true",
            "patient/Observation.rs ; patient/Observation.rs?c=lab ; false",
            "patient/Observation.rs?c=lab&code=x ; patient/Observation.rs?c=lab ; true",
            "patient/Observation.rs?c=lab ; patient/Observation.rs?c=lab&code=x ; false",
            "patient/Observation.rs?c=vital ; patient/Observation.rs?c=lab ; false",
            "patient/*.rs?c=lab ; patient/*.rs ; true",
            "patient/Observation.rs?c=lab ; patient/*.rs?c=lab ; true",
            "patient/Observation.rs ; patient/Observation.r patient/Observation.s?c=lab ; false",
            // Non-clinical scopes must have been granted.
            "openid offline_access ; openid fhirUser offline_access patient/*.rs ; true",
            "offline_access ; openid online_access ; false",
            "launch/patient ; launch/patient openid ; true",
            "__x ; openid ; false",
            "__x ; __x ; true",
        ];
        for case in cases {
            let [requested, original, expected] = row(case)[..] else {
                panic!("bad row {case}");
            };
            let got = scopes(requested).is_subset_of(&scopes(original));
            assert_eq!(got.to_string(), expected, "{case}");
        }
    }

    #[test]
    fn clinical_cover_and_intersection() {
        // (wider?, narrower?, whether the first covers the second)
        let cases = [
            ("patient/*.cruds", "patient/Observation.rs?a=1", true),
            ("patient/Observation.rs", "patient/Observation.rs", true),
            ("patient/Observation.rs", "patient/Observation.rs?a=1", true),
            (
                "patient/Observation.rs?a=1",
                "patient/Observation.rs",
                false,
            ),
            ("patient/Observation.r", "patient/Observation.rs", false),
            ("patient/Observation.rs", "patient/*.rs", false),
            ("user/*.cruds", "patient/Observation.r", false),
        ];
        for (wide, narrow, expected) in cases {
            let (w, n) = (clinical(wide), clinical(narrow));
            assert_eq!(w.covers(&n), expected, "{wide} ⊇ {narrow}");
            assert_eq!(n.is_covered_by(&w), expected, "{narrow} ⊆ {wide}");
            if expected {
                // The intersection with a wider scope is the narrow one, in its syntax.
                assert_eq!(n.intersection(&w), Some(n.clone()), "{narrow} ∩ {wide}");
            }
        }
    }

    #[test]
    fn scopes_serialise_as_one_string() {
        let s = scopes("openid patient/Observation.read launch/patient");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"openid patient/Observation.read launch/patient\"");
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), s);
        let err = serde_json::from_str::<Scopes>("\"patient/Observation.dus\"").unwrap_err();
        assert!(err.to_string().contains("patient/Observation.dus"), "{err}");
    }
}
