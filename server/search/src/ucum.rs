//! Canonical UCUM units for quantities whose conversion is a plain factor (mg ↔ g, mmol/L ↔
//! mol/L, cm ↔ m, min ↔ s ...), so `5.4|http://unitsofmeasure.org|mg` finds `0.0054 g`.
//! Units with offsets (°C, °F) or without a simple factor are left as written.

/// The UCUM code system.
pub const SYSTEM: &str = "http://unitsofmeasure.org";

/// Suffix of the index parameter that holds canonical values (`value-quantity:canonical`).
pub const CANONICAL_SUFFIX: &str = ":canonical";

/// (unit, canonical unit, factor to the canonical unit).
const UNITS: &[(&str, &str, f64)] = &[
    // mass
    ("kg", "g", 1e3),
    ("g", "g", 1.0),
    ("mg", "g", 1e-3),
    ("ug", "g", 1e-6),
    ("ng", "g", 1e-9),
    ("pg", "g", 1e-12),
    ("[lb_av]", "g", 453.592_37),
    ("[oz_av]", "g", 28.349_523_125),
    // length
    ("km", "m", 1e3),
    ("m", "m", 1.0),
    ("cm", "m", 1e-2),
    ("mm", "m", 1e-3),
    ("um", "m", 1e-6),
    ("[in_i]", "m", 0.0254),
    ("[ft_i]", "m", 0.3048),
    // volume
    ("L", "L", 1.0),
    ("l", "L", 1.0),
    ("dL", "L", 1e-1),
    ("mL", "L", 1e-3),
    ("uL", "L", 1e-6),
    // time
    ("ms", "s", 1e-3),
    ("s", "s", 1.0),
    ("min", "s", 60.0),
    ("h", "s", 3600.0),
    ("d", "s", 86_400.0),
    ("wk", "s", 604_800.0),
    // amount of substance per volume
    ("mol/L", "mol/L", 1.0),
    ("mmol/L", "mol/L", 1e-3),
    ("umol/L", "mol/L", 1e-6),
    ("nmol/L", "mol/L", 1e-9),
    ("pmol/L", "mol/L", 1e-12),
    // mass per volume
    ("g/L", "g/L", 1.0),
    ("g/dL", "g/L", 10.0),
    ("mg/dL", "g/L", 1e-2),
    ("mg/L", "g/L", 1e-3),
    ("mg/mL", "g/L", 1.0),
    ("ug/L", "g/L", 1e-6),
    ("ug/dL", "g/L", 1e-5),
    ("ug/mL", "g/L", 1e-3),
    ("ng/mL", "g/L", 1e-6),
    ("pg/mL", "g/L", 1e-9),
    // pressure
    ("mm[Hg]", "Pa", 133.322_387_415),
    ("kPa", "Pa", 1e3),
    ("Pa", "Pa", 1.0),
];

/// The canonical unit of a UCUM code and the factor that converts a value to it.
pub fn canonical(code: &str) -> Option<(&'static str, f64)> {
    UNITS
        .iter()
        .find(|(unit, _, _)| *unit == code)
        .map(|(_, canon, factor)| (*canon, *factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_by_factor() {
        assert_eq!(canonical("mg"), Some(("g", 1e-3)));
        assert_eq!(canonical("mmol/L"), Some(("mol/L", 1e-3)));
        assert_eq!(canonical("cm"), Some(("m", 1e-2)));
        assert_eq!(canonical("Cel"), None);
        // The same multiplication on both sides keeps equal quantities equal.
        let (_, f) = canonical("mg").unwrap();
        let (_, g) = canonical("g").unwrap();
        assert!((5.4 * f - 0.0054 * g).abs() < 1e-15);
    }
}
