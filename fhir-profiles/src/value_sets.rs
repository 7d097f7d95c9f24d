//! The codes of the value sets bound with strength `required`.

use std::collections::{HashMap, HashSet};

/// An expanded value set: the (system, code) pairs it contains.
#[derive(Debug, Default, Clone)]
pub struct ValueSetCodes {
    codes: HashSet<(String, String)>,
    bare_codes: HashSet<String>,
    systems: HashSet<String>,
}

impl ValueSetCodes {
    pub(crate) fn insert(&mut self, system: &str, code: &str) {
        self.codes.insert((system.to_string(), code.to_string()));
        self.bare_codes.insert(code.to_string());
        self.systems.insert(system.to_string());
    }

    /// Whether a `code` (without a system, as in a `code` element) is in the value set.
    pub fn contains_code(&self, code: &str) -> bool {
        self.bare_codes.contains(code)
    }

    /// Whether the (system, code) pair is in the value set.
    pub fn contains(&self, system: &str, code: &str) -> bool {
        self.codes.contains(&(system.to_string(), code.to_string()))
    }

    /// Whether the value set draws codes from `system`.
    pub fn has_system(&self, system: &str) -> bool {
        self.systems.contains(system)
    }

    /// Number of codes in the expansion.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the expansion is empty.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

/// A CodeSystem's concepts, flattened (nested concepts included).
pub(crate) type CodeSystemConcepts = HashMap<String, Vec<String>>;
