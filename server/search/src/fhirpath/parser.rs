//! The FHIRPath syntax tree and a precedence-climbing parser over the tokens of [`super::lexer`].

use std::sync::Arc;

use serde_json::{Number, Value};

use super::FhirPathError;
use super::lexer::{Tok, Token, tokenize};

/// An expression node.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    /// A string, number, boolean or date/time literal (or a constant `%ucum`-like variable).
    Literal(Literal),
    /// `{}`.
    Empty,
    /// An identifier starting a path: the focus itself when it is of that type
    /// (`Observation` on an Observation), otherwise the child element of that name.
    Ident(String),
    /// `target.name`.
    Member(Box<Expr>, String),
    /// `target.fn(args)` or `fn(args)` (then applied to the focus).
    Call {
        target: Option<Box<Expr>>,
        func: Func,
        args: Vec<Expr>,
    },
    /// `ofType(T)`, `as(T)`, `is(T)` and the `as` / `is` operators.
    TypeOp {
        target: Option<Box<Expr>>,
        op: TypeOp,
        spec: TypeSpec,
    },
    /// `target[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `$this`.
    This,
    /// `$index`.
    IndexVar,
    /// `%resource` / `%rootResource`.
    Resource,
    /// `%context`.
    Context,
    /// Unary minus.
    Neg(Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// Parsed but not evaluated (always empty): quantity literals, `$total`.
    Unsupported,
}

/// A literal value, shared (not copied) by every evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Literal {
    pub(crate) value: Arc<Value>,
    /// The FHIRPath System type (`String`, `Integer`, `Decimal`, `Boolean`, `Date`, `DateTime`, `Time`).
    pub(crate) type_name: &'static str,
}

/// The three type operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeOp {
    /// `ofType(T)`: keep the items of type T.
    OfType,
    /// `as T` / `as(T)`: same filter (lenient: also on several items).
    As,
    /// `is T` / `is(T)`: a Boolean for a single item.
    Is,
}

/// A type specifier, optionally qualified with `FHIR.` or `System.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeSpec {
    pub(crate) namespace: Option<Namespace>,
    pub(crate) name: String,
}

/// The namespace of a qualified type specifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Namespace {
    Fhir,
    System,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Union,
    And,
    Or,
    Xor,
    Implies,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    Add,
    Sub,
    Mul,
    Div,
    IntDiv,
    Mod,
    Concat,
}

/// The functions the parser accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Where,
    Select,
    Repeat,
    Exists,
    All,
    Empty,
    Count,
    First,
    Last,
    Tail,
    Single,
    Skip,
    Take,
    Distinct,
    IsDistinct,
    Union,
    Combine,
    Intersect,
    Exclude,
    SubsetOf,
    SupersetOf,
    AllTrue,
    AnyTrue,
    AllFalse,
    AnyFalse,
    Not,
    Iif,
    StartsWith,
    EndsWith,
    Contains,
    Lower,
    Upper,
    Length,
    Trace,
    Children,
    Descendants,
    HasValue,
    Extension,
    Resolve,
    /// A known FHIRPath/FHIR function this evaluator does not implement: evaluates to empty.
    Unsupported,
}

/// Name, function, minimum and maximum argument count.
const FUNCTIONS: &[(&str, Func, usize, usize)] = &[
    ("where", Func::Where, 1, 1),
    ("select", Func::Select, 1, 1),
    ("repeat", Func::Repeat, 1, 1),
    ("exists", Func::Exists, 0, 1),
    ("all", Func::All, 1, 1),
    ("empty", Func::Empty, 0, 0),
    ("count", Func::Count, 0, 0),
    ("first", Func::First, 0, 0),
    ("last", Func::Last, 0, 0),
    ("tail", Func::Tail, 0, 0),
    ("single", Func::Single, 0, 0),
    ("skip", Func::Skip, 1, 1),
    ("take", Func::Take, 1, 1),
    ("distinct", Func::Distinct, 0, 0),
    ("isDistinct", Func::IsDistinct, 0, 0),
    ("union", Func::Union, 1, 1),
    ("combine", Func::Combine, 1, 1),
    ("intersect", Func::Intersect, 1, 1),
    ("exclude", Func::Exclude, 1, 1),
    ("subsetOf", Func::SubsetOf, 1, 1),
    ("supersetOf", Func::SupersetOf, 1, 1),
    ("allTrue", Func::AllTrue, 0, 0),
    ("anyTrue", Func::AnyTrue, 0, 0),
    ("allFalse", Func::AllFalse, 0, 0),
    ("anyFalse", Func::AnyFalse, 0, 0),
    ("not", Func::Not, 0, 0),
    ("iif", Func::Iif, 2, 3),
    ("startsWith", Func::StartsWith, 1, 1),
    ("endsWith", Func::EndsWith, 1, 1),
    ("contains", Func::Contains, 1, 1),
    ("lower", Func::Lower, 0, 0),
    ("upper", Func::Upper, 0, 0),
    ("length", Func::Length, 0, 0),
    ("trace", Func::Trace, 1, 2),
    ("children", Func::Children, 0, 0),
    ("descendants", Func::Descendants, 0, 0),
    ("hasValue", Func::HasValue, 0, 0),
    ("extension", Func::Extension, 1, 1),
    ("resolve", Func::Resolve, 0, 0),
    // Parsed, evaluated to empty (see the module documentation).
    ("memberOf", Func::Unsupported, 1, 1),
    ("subsumes", Func::Unsupported, 1, 1),
    ("subsumedBy", Func::Unsupported, 1, 1),
    ("conformsTo", Func::Unsupported, 1, 1),
    ("htmlChecks", Func::Unsupported, 0, 0),
    ("elementDefinition", Func::Unsupported, 0, 0),
    ("slice", Func::Unsupported, 2, 2),
    ("checkModifiers", Func::Unsupported, 1, 1),
    ("getValue", Func::Unsupported, 0, 0),
    ("aggregate", Func::Unsupported, 1, 2),
    ("matches", Func::Unsupported, 1, 1),
    ("replaceMatches", Func::Unsupported, 2, 2),
    ("replace", Func::Unsupported, 2, 2),
    ("indexOf", Func::Unsupported, 1, 1),
    ("substring", Func::Unsupported, 1, 2),
    ("toChars", Func::Unsupported, 0, 0),
    ("toBoolean", Func::Unsupported, 0, 0),
    ("convertsToBoolean", Func::Unsupported, 0, 0),
    ("toInteger", Func::Unsupported, 0, 0),
    ("convertsToInteger", Func::Unsupported, 0, 0),
    ("toDecimal", Func::Unsupported, 0, 0),
    ("convertsToDecimal", Func::Unsupported, 0, 0),
    ("toString", Func::Unsupported, 0, 0),
    ("convertsToString", Func::Unsupported, 0, 0),
    ("toDate", Func::Unsupported, 0, 0),
    ("convertsToDate", Func::Unsupported, 0, 0),
    ("toDateTime", Func::Unsupported, 0, 0),
    ("convertsToDateTime", Func::Unsupported, 0, 0),
    ("toTime", Func::Unsupported, 0, 0),
    ("convertsToTime", Func::Unsupported, 0, 0),
    ("toQuantity", Func::Unsupported, 0, 1),
    ("convertsToQuantity", Func::Unsupported, 0, 1),
    ("now", Func::Unsupported, 0, 0),
    ("today", Func::Unsupported, 0, 0),
    ("timeOfDay", Func::Unsupported, 0, 0),
];

/// Calendar-duration keywords that may follow a number to form a quantity literal.
const CALENDAR_UNITS: &[&str] = &[
    "year",
    "years",
    "month",
    "months",
    "week",
    "weeks",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
];

/// Parses a complete expression.
pub(crate) fn parse(text: &str) -> Result<Expr, FhirPathError> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        next: 0,
    };
    let expr = parser.expression(0)?;
    match parser.peek() {
        Tok::Eof => Ok(expr),
        _ => Err(parser.error("unexpected token after the end of the expression")),
    }
}

/// What an infix token means.
enum Infix {
    Binary(BinOp),
    Type(TypeOp),
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.next].tok
    }

    fn peek_at(&self, offset: usize) -> &Tok {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.next + offset).min(last)].tok
    }

    fn position(&self) -> usize {
        self.tokens[self.next].pos
    }

    fn advance(&mut self) -> Tok {
        let tok = self.tokens[self.next].tok.clone();
        if self.next + 1 < self.tokens.len() {
            self.next += 1;
        }
        tok
    }

    fn error(&self, message: &str) -> FhirPathError {
        FhirPathError::Syntax {
            position: self.position(),
            message: message.to_string(),
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), FhirPathError> {
        if self.peek() == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.error(&format!("expected {what}")))
        }
    }

    /// The infix operator at the cursor and its precedence (higher binds tighter).
    fn infix(&self) -> Option<(Infix, u8)> {
        use BinOp::*;
        let binary = |op, prec| Some((Infix::Binary(op), prec));
        match self.peek() {
            Tok::Ident(word) => match word.as_str() {
                "implies" => binary(Implies, 1),
                "or" => binary(Or, 2),
                "xor" => binary(Xor, 2),
                "and" => binary(And, 3),
                "in" => binary(In, 4),
                "contains" => binary(Contains, 4),
                "is" => Some((Infix::Type(TypeOp::Is), 8)),
                "as" => Some((Infix::Type(TypeOp::As), 8)),
                "div" => binary(IntDiv, 10),
                "mod" => binary(Mod, 10),
                _ => None,
            },
            Tok::Eq => binary(Eq, 5),
            Tok::Ne => binary(Ne, 5),
            Tok::Equiv => binary(Equiv, 5),
            Tok::NotEquiv => binary(NotEquiv, 5),
            Tok::Lt => binary(Lt, 6),
            Tok::Le => binary(Le, 6),
            Tok::Gt => binary(Gt, 6),
            Tok::Ge => binary(Ge, 6),
            Tok::Pipe => binary(Union, 7),
            Tok::Plus => binary(Add, 9),
            Tok::Minus => binary(Sub, 9),
            Tok::Amp => binary(Concat, 9),
            Tok::Star => binary(Mul, 10),
            Tok::Slash => binary(Div, 10),
            _ => None,
        }
    }

    /// Precedence climbing: every binary operator is left-associative.
    fn expression(&mut self, min_prec: u8) -> Result<Expr, FhirPathError> {
        let mut lhs = self.unary()?;
        while let Some((infix, prec)) = self.infix() {
            if prec < min_prec {
                break;
            }
            self.advance();
            lhs = match infix {
                Infix::Type(op) => Expr::TypeOp {
                    target: Some(Box::new(lhs)),
                    op,
                    spec: self.type_spec()?,
                },
                Infix::Binary(op) => {
                    let rhs = self.expression(prec + 1)?;
                    Expr::Binary(op, Box::new(lhs), Box::new(rhs))
                }
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, FhirPathError> {
        match self.peek() {
            Tok::Minus => {
                self.advance();
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Tok::Plus => {
                self.advance();
                self.unary()
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Expr, FhirPathError> {
        let mut expr = self.term()?;
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.advance();
                    expr = self.invocation(Some(expr))?;
                }
                Tok::LBracket => {
                    self.advance();
                    let index = self.expression(0)?;
                    self.expect(&Tok::RBracket, "']'")?;
                    expr = Expr::Index(Box::new(expr), Box::new(index));
                }
                _ => return Ok(expr),
            }
        }
    }

    /// A member or function call after `.` (or at the start of a term when `target` is `None`).
    fn invocation(&mut self, target: Option<Expr>) -> Result<Expr, FhirPathError> {
        let position = self.position();
        let name = match self.advance() {
            Tok::Ident(name) | Tok::Delimited(name) => name,
            _ => {
                return Err(FhirPathError::Syntax {
                    position,
                    message: "expected an element or function name".into(),
                });
            }
        };
        if self.peek() == &Tok::LParen {
            self.advance();
            return self.call(target, name, position);
        }
        Ok(match target {
            Some(target) => Expr::Member(Box::new(target), name),
            None => Expr::Ident(name),
        })
    }

    /// A function call; the cursor is after `(`.
    fn call(
        &mut self,
        target: Option<Expr>,
        name: String,
        position: usize,
    ) -> Result<Expr, FhirPathError> {
        let target = target.map(Box::new);
        let type_op = match name.as_str() {
            "ofType" => Some(TypeOp::OfType),
            "as" => Some(TypeOp::As),
            "is" => Some(TypeOp::Is),
            _ => None,
        };
        if let Some(op) = type_op {
            let spec = self.type_spec()?;
            self.expect(&Tok::RParen, "')' after the type name")?;
            return Ok(Expr::TypeOp { target, op, spec });
        }
        let Some(&(_, func, min, max)) = FUNCTIONS.iter().find(|(n, ..)| *n == name) else {
            return Err(FhirPathError::UnknownFunction { name, position });
        };
        let mut args = Vec::new();
        if self.peek() != &Tok::RParen {
            loop {
                args.push(self.expression(0)?);
                if self.peek() == &Tok::Comma {
                    self.advance();
                } else {
                    break;
                }
            }
        }
        self.expect(&Tok::RParen, "',' or ')'")?;
        if args.len() < min || args.len() > max {
            return Err(FhirPathError::Arity {
                name,
                position,
                got: args.len(),
            });
        }
        Ok(Expr::Call { target, func, args })
    }

    /// `Name`, `FHIR.Name` or `System.Name`.
    fn type_spec(&mut self) -> Result<TypeSpec, FhirPathError> {
        let first = match self.advance() {
            Tok::Ident(name) | Tok::Delimited(name) => name,
            _ => return Err(self.error("expected a type name")),
        };
        let namespace = match first.as_str() {
            "FHIR" => Some(Namespace::Fhir),
            "System" => Some(Namespace::System),
            _ => None,
        };
        if let Some(namespace) = namespace
            && self.peek() == &Tok::Dot
            && matches!(self.peek_at(1), Tok::Ident(_) | Tok::Delimited(_))
        {
            self.advance();
            let (Tok::Ident(name) | Tok::Delimited(name)) = self.advance() else {
                unreachable!("checked above");
            };
            return Ok(TypeSpec {
                namespace: Some(namespace),
                name,
            });
        }
        Ok(TypeSpec {
            namespace: None,
            name: first,
        })
    }

    fn term(&mut self) -> Result<Expr, FhirPathError> {
        let position = self.position();
        match self.peek().clone() {
            Tok::Ident(word) if (word == "true" || word == "false") => {
                if self.peek_at(1) == &Tok::LParen {
                    return self.invocation(None);
                }
                self.advance();
                Ok(Expr::Literal(Literal {
                    value: Arc::new(Value::Bool(word == "true")),
                    type_name: "Boolean",
                }))
            }
            Tok::Ident(_) | Tok::Delimited(_) => self.invocation(None),
            Tok::Str(s) => {
                self.advance();
                Ok(literal(Value::String(s), "String"))
            }
            Tok::Number(text) => {
                self.advance();
                // A quantity literal: `5 'mg'` or `3 days`.
                match self.peek() {
                    Tok::Str(_) => {
                        self.advance();
                        return Ok(Expr::Unsupported);
                    }
                    Tok::Ident(unit) if CALENDAR_UNITS.contains(&unit.as_str()) => {
                        self.advance();
                        return Ok(Expr::Unsupported);
                    }
                    _ => {}
                }
                let number: Number = text.parse().map_err(|_| FhirPathError::Syntax {
                    position,
                    message: format!("invalid number '{text}'"),
                })?;
                let type_name = if text.contains('.') {
                    "Decimal"
                } else {
                    "Integer"
                };
                Ok(literal(Value::Number(number), type_name))
            }
            Tok::DateTime(text) => {
                self.advance();
                let type_name = if text.starts_with('T') {
                    "Time"
                } else if text.contains('T') {
                    "DateTime"
                } else {
                    "Date"
                };
                let text = text.strip_prefix('T').unwrap_or(&text).to_string();
                Ok(literal(Value::String(text), type_name))
            }
            Tok::Var(name) => {
                self.advance();
                variable(&name, position)
            }
            Tok::Special(name) => {
                self.advance();
                match name.as_str() {
                    "this" => Ok(Expr::This),
                    "index" => Ok(Expr::IndexVar),
                    "total" => Ok(Expr::Unsupported),
                    _ => Err(FhirPathError::Syntax {
                        position,
                        message: format!("unknown special variable '${name}'"),
                    }),
                }
            }
            Tok::LParen => {
                self.advance();
                let inner = self.expression(0)?;
                self.expect(&Tok::RParen, "')'")?;
                Ok(inner)
            }
            Tok::LBrace => {
                self.advance();
                self.expect(
                    &Tok::RBrace,
                    "'}' (only the empty collection '{}' is allowed)",
                )?;
                Ok(Expr::Empty)
            }
            _ => Err(self.error("expected an expression")),
        }
    }
}

fn literal(value: Value, type_name: &'static str) -> Expr {
    Expr::Literal(Literal {
        value: Arc::new(value),
        type_name,
    })
}

/// `%resource`, `%context` and the constants FHIR defines.
fn variable(name: &str, position: usize) -> Result<Expr, FhirPathError> {
    let constant = |s: &str| Ok(literal(Value::String(s.to_string()), "String"));
    match name {
        "resource" | "rootResource" => Ok(Expr::Resource),
        "context" => Ok(Expr::Context),
        "ucum" => constant("http://unitsofmeasure.org"),
        "sct" => constant("http://snomed.info/sct"),
        "loinc" => constant("http://loinc.org"),
        _ => {
            if let Some(vs) = name.strip_prefix("vs-") {
                constant(&format!("http://hl7.org/fhir/ValueSet/{vs}"))
            } else if let Some(ext) = name.strip_prefix("ext-") {
                constant(&format!("http://hl7.org/fhir/StructureDefinition/{ext}"))
            } else {
                Err(FhirPathError::UnknownVariable {
                    name: name.to_string(),
                    position,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact rendering of the tree, to check precedence and shapes.
    fn show(e: &Expr) -> String {
        match e {
            Expr::Literal(l) => format!("{}:{}", l.value, l.type_name),
            Expr::Empty => "{}".into(),
            Expr::Ident(n) => n.clone(),
            Expr::Member(t, n) => format!("{}.{n}", show(t)),
            Expr::Call { target, func, args } => {
                let args: Vec<String> = args.iter().map(show).collect();
                let target = target.as_ref().map(|t| show(t) + ".").unwrap_or_default();
                format!("{target}{func:?}({})", args.join(","))
            }
            Expr::TypeOp { target, op, spec } => {
                let target = target.as_ref().map(|t| show(t)).unwrap_or_default();
                let ns = match spec.namespace {
                    Some(Namespace::Fhir) => "FHIR.",
                    Some(Namespace::System) => "System.",
                    None => "",
                };
                format!("({target} {op:?} {ns}{})", spec.name)
            }
            Expr::Index(t, i) => format!("{}[{}]", show(t), show(i)),
            Expr::This => "$this".into(),
            Expr::IndexVar => "$index".into(),
            Expr::Resource => "%resource".into(),
            Expr::Context => "%context".into(),
            Expr::Neg(e) => format!("-{}", show(e)),
            Expr::Binary(op, l, r) => format!("({} {op:?} {})", show(l), show(r)),
            Expr::Unsupported => "unsupported".into(),
        }
    }

    #[test]
    fn shapes_and_precedence() {
        let cases = [
            ("Patient.name.given", "Patient.name.given"),
            ("a | b | c", "((a Union b) Union c)"),
            (
                "a = 'x' and b != 1 or c",
                "(((a Eq \"x\":String) And (b Ne 1:Integer)) Or c)",
            ),
            ("a and b implies c xor d", "((a And b) Implies (c Xor d))"),
            (
                "Observation.value as Quantity",
                "(Observation.value As Quantity)",
            ),
            (
                "(Observation.value as Quantity).unit",
                "(Observation.value As Quantity).unit",
            ),
            ("a as Quantity | b", "((a As Quantity) Union b)"),
            ("x.as(FHIR.Age)", "(x As FHIR.Age)"),
            ("x is System.String", "(x Is System.String)"),
            (
                "x.where(resolve() is Patient)",
                "x.Where((Resolve() Is Patient))",
            ),
            (
                "Bundle.entry[0].resource",
                "Bundle.entry[0:Integer].resource",
            ),
            (
                "a.exists() and a != false",
                "(a.Exists() And (a Ne false:Boolean))",
            ),
            ("1 + 2 * 3", "(1:Integer Add (2:Integer Mul 3:Integer))"),
            ("-a.b", "-a.b"),
            ("a < b = c", "((a Lt b) Eq c)"),
            ("a in b and c contains d", "((a In b) And (c Contains d))"),
            ("%resource.x", "%resource.x"),
            ("%ucum", "\"http://unitsofmeasure.org\":String"),
            ("`div`.x", "div.x"),
            ("{}", "{}"),
            (
                "@2020-01-01 | @T10:00",
                "(\"2020-01-01\":Date Union \"10:00\":Time)",
            ),
            ("5 'mg'", "unsupported"),
            ("x.contains('a')", "x.Contains(\"a\":String)"),
            ("iif(a, b)", "Iif(a,b)"),
            (
                "a.memberOf('http://x')",
                "a.Unsupported(\"http://x\":String)",
            ),
            ("$this.x", "$this.x"),
            ("true.not()", "true:Boolean.Not()"),
        ];
        for (text, expected) in cases {
            let expr = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(show(&expr), expected, "{text}");
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            ("a.", "syntax"),
            ("a.where(", "syntax"),
            ("(a", "syntax"),
            ("a b", "syntax"),
            ("a.frobnicate()", "unknown FHIRPath function"),
            ("a.where()", "argument"),
            ("a.first(1)", "argument"),
            ("%nope", "unknown FHIRPath environment variable"),
            ("a is", "syntax"),
            ("a.ofType('x')", "syntax"),
            ("{1}", "syntax"),
            ("$nope", "syntax"),
        ];
        for (text, fragment) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(fragment), "{text}: {err}");
        }
    }
}
