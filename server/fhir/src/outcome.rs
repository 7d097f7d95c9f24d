//! OperationOutcome: the FHIR way to say what went wrong (or right).

use serde_json::{Value, json};

/// Issue severity (`OperationOutcome.issue.severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueSeverity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl IssueSeverity {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Information => "information",
        }
    }
}

/// Issue type (`OperationOutcome.issue.code`, value set issue-type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    CodeInvalid,
    Security,
    Login,
    Forbidden,
    NotFound,
    Deleted,
    NotSupported,
    Duplicate,
    Conflict,
    Processing,
    BusinessRule,
    TooLong,
    Exception,
    Informational,
}

impl IssueType {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Structure => "structure",
            Self::Required => "required",
            Self::Value => "value",
            Self::Invariant => "invariant",
            Self::CodeInvalid => "code-invalid",
            Self::Security => "security",
            Self::Login => "login",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::Deleted => "deleted",
            Self::NotSupported => "not-supported",
            Self::Duplicate => "duplicate",
            Self::Conflict => "conflict",
            Self::Processing => "processing",
            Self::BusinessRule => "business-rule",
            Self::TooLong => "too-long",
            Self::Exception => "exception",
            Self::Informational => "informational",
        }
    }
}

/// One issue: what, how bad, and where (a FHIRPath expression such as `Observation.status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: IssueSeverity,
    pub code: IssueType,
    pub diagnostics: String,
    pub expression: Option<String>,
}

impl Issue {
    /// An error issue.
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: IssueSeverity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    /// An informational issue.
    pub fn information(diagnostics: impl Into<String>) -> Self {
        Self {
            severity: IssueSeverity::Information,
            code: IssueType::Informational,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    /// A warning issue.
    pub fn warning(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: IssueSeverity::Warning,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    /// The same issue, located at `expression`.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    /// Whether this issue makes the resource unacceptable.
    pub fn is_error(&self) -> bool {
        matches!(self.severity, IssueSeverity::Error | IssueSeverity::Fatal)
    }
}

/// A list of issues, rendered as an OperationOutcome resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationOutcome {
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    /// An outcome with a single issue.
    pub fn single(issue: Issue) -> Self {
        Self {
            issues: vec![issue],
        }
    }

    /// The OperationOutcome resource as JSON.
    pub fn to_json(&self) -> Value {
        let issues: Vec<Value> = if self.issues.is_empty() {
            vec![
                json!({"severity": "information", "code": "informational", "diagnostics": "All OK"}),
            ]
        } else {
            self.issues
                .iter()
                .map(|i| {
                    let mut v = json!({
                        "severity": i.severity.code(),
                        "code": i.code.code(),
                        "diagnostics": i.diagnostics,
                    });
                    if let Some(e) = &i.expression {
                        v["expression"] = json!([e]);
                    }
                    v
                })
                .collect()
        };
        json!({"resourceType": "OperationOutcome", "issue": issues})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_issues_with_expressions() {
        let oo = OperationOutcome::single(
            Issue::error(IssueType::CodeInvalid, "bad code").at("Observation.status"),
        );
        let v = oo.to_json();
        assert_eq!(v["issue"][0]["code"], "code-invalid");
        assert_eq!(v["issue"][0]["expression"][0], "Observation.status");
        assert_eq!(
            OperationOutcome::default().to_json()["issue"][0]["severity"],
            "information"
        );
    }
}
