//! The search parameters the R4 definitions declare.

/// The type of a search parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SearchParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl SearchParamType {
    pub(crate) fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "number" => Self::Number,
            "date" => Self::Date,
            "string" => Self::String,
            "token" => Self::Token,
            "reference" => Self::Reference,
            "composite" => Self::Composite,
            "quantity" => Self::Quantity,
            "uri" => Self::Uri,
            "special" => Self::Special,
            _ => return None,
        })
    }

    /// The FHIR code of the type (`token`, `date`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Date => "date",
            Self::String => "string",
            Self::Token => "token",
            Self::Reference => "reference",
            Self::Composite => "composite",
            Self::Quantity => "quantity",
            Self::Uri => "uri",
            Self::Special => "special",
        }
    }
}

/// One search parameter, as it applies to one resource type.
#[derive(Debug, Clone)]
pub struct SearchParameter {
    /// The canonical URL of the SearchParameter resource.
    pub url: String,
    /// The name used in URLs (`code`, `patient`, `_id`).
    pub code: String,
    /// The parameter's type.
    pub kind: SearchParamType,
    /// The FHIRPath expression (shared across the bases it names).
    pub expression: Option<String>,
    /// For reference parameters, the resource types it may point to.
    pub targets: Vec<String>,
    /// For composite parameters, the component definitions' URLs and expressions.
    pub components: Vec<(String, String)>,
    /// The human-readable description.
    pub description: String,
}
