//! The Patient compartment: which resources belong to a patient, through which search parameters.

use std::collections::HashMap;

/// The Patient CompartmentDefinition as a lookup table.
#[derive(Debug, Default)]
pub struct PatientCompartment {
    params: HashMap<String, Vec<String>>,
}

impl PatientCompartment {
    pub(crate) fn new(params: HashMap<String, Vec<String>>) -> Self {
        Self { params }
    }

    /// The search parameters that link `resource_type` to a patient (empty: not in the compartment).
    pub fn params(&self, resource_type: &str) -> &[String] {
        self.params
            .get(resource_type)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The resource types that can belong to a patient's compartment.
    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.params.keys().map(String::as_str)
    }
}
