//! The element tree of a resource or data type, indexed for validation.

use std::collections::HashMap;

/// What kind of type a definition describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    /// A primitive (`string`, `date`, ...): a JSON scalar plus an optional `_name` element.
    Primitive,
    /// A complex data type (`HumanName`, `CodeableConcept`, ...).
    Complex,
    /// A resource (`Patient`, `Observation`, ...).
    Resource,
}

/// The upper cardinality of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Max {
    /// `max = 0`: the element is prohibited.
    Zero,
    /// `max = 1`: a single value, never a JSON array.
    One,
    /// `max = *` (or any number above 1): a JSON array.
    Unbounded,
}

/// One element of a type's snapshot.
#[derive(Debug, Clone)]
pub struct ElementDefinition {
    /// Full path, e.g. `Observation.component.code` or `Observation.value[x]`.
    pub path: String,
    /// Minimum cardinality.
    pub min: u32,
    /// Maximum cardinality.
    pub max: Max,
    /// Allowed type codes (several for a choice element); FHIRPath system types are mapped to FHIR names.
    pub types: Vec<String>,
    /// The value set URL of a required binding, if any.
    pub required_binding: Option<String>,
    /// For elements defined by reference to another (`#Questionnaire.item`), the target path.
    pub content_reference: Option<String>,
    /// Whether the element is part of the summary view (`_summary=true`).
    pub is_summary: bool,
}

impl ElementDefinition {
    /// The element's own name (last path segment, with `[x]` for a choice).
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// Whether elements below this one are defined inline (BackboneElement / Element children).
    pub fn has_inline_children(&self) -> bool {
        self.content_reference.is_none()
            && self.types.len() == 1
            && matches!(self.types[0].as_str(), "BackboneElement" | "Element")
    }
}

/// A JSON property name resolved against a parent element.
#[derive(Debug, Clone)]
pub struct Child {
    /// Index of the element in the type's snapshot.
    pub element: usize,
    /// For choice elements, the type selected by the property name (`valueQuantity` → `Quantity`);
    /// otherwise the element's single type (`None` for inline backbone elements).
    pub type_code: Option<String>,
}

/// The definition of a resource or data type.
#[derive(Debug)]
pub struct TypeDefinition {
    /// Type name (`Patient`).
    pub name: String,
    /// Primitive, complex type or resource.
    pub kind: TypeKind,
    /// Abstract types (Resource, DomainResource, Element, BackboneElement) cannot be instantiated.
    pub is_abstract: bool,
    elements: Vec<ElementDefinition>,
    /// parent path → JSON property name → child.
    children: HashMap<String, HashMap<String, Child>>,
}

impl TypeDefinition {
    pub(crate) fn new(
        name: String,
        kind: TypeKind,
        is_abstract: bool,
        elements: Vec<ElementDefinition>,
    ) -> Self {
        let mut children: HashMap<String, HashMap<String, Child>> = HashMap::new();
        for (index, el) in elements.iter().enumerate() {
            let Some((parent, name)) = el.path.rsplit_once('.') else {
                continue;
            };
            let siblings = children.entry(parent.to_string()).or_default();
            if let Some(prefix) = name.strip_suffix("[x]") {
                for t in &el.types {
                    let key = format!("{prefix}{}{}", t[..1].to_uppercase(), &t[1..]);
                    siblings.insert(
                        key,
                        Child {
                            element: index,
                            type_code: Some(t.clone()),
                        },
                    );
                }
            } else {
                let type_code = match el.types.as_slice() {
                    [single] if !el.has_inline_children() => Some(single.clone()),
                    _ => None,
                };
                siblings.insert(
                    name.to_string(),
                    Child {
                        element: index,
                        type_code,
                    },
                );
            }
        }
        TypeDefinition {
            name,
            kind,
            is_abstract,
            elements,
            children,
        }
    }

    /// Resolves a JSON property name under `parent_path` (choice names such as `valueQuantity` included).
    pub fn child(&self, parent_path: &str, property: &str) -> Option<&Child> {
        self.children.get(parent_path)?.get(property)
    }

    /// Iterates the distinct child elements of `parent_path` (each choice element once).
    pub fn child_elements<'a>(
        &'a self,
        parent_path: &str,
    ) -> impl Iterator<Item = &'a ElementDefinition> + 'a {
        let prefix_len = parent_path.len();
        let parent = parent_path.to_string();
        self.elements.iter().filter(move |el| {
            el.path.len() > prefix_len + 1
                && el.path.starts_with(parent.as_str())
                && el.path.as_bytes()[prefix_len] == b'.'
                && !el.path[prefix_len + 1..].contains('.')
        })
    }

    /// The element at an index returned by [`TypeDefinition::child`].
    pub fn element(&self, index: usize) -> &ElementDefinition {
        &self.elements[index]
    }

    /// Every element of the snapshot.
    pub fn elements(&self) -> &[ElementDefinition] {
        &self.elements
    }
}
