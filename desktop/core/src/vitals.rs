//! Vital signs: the four series the chart draws (blood pressure, glucose, weight, heart rate,
//! by LOINC), recording one, and verifying what a patient reported themselves.
//!
//! **Self-reported:** an Observation one of whose `performer`s is a Patient (or a
//! RelatedPerson) was reported by the patient's side, not measured by a clinician. Patient apps
//! record such readings `preliminary`; they wait in the chart's `unverified` list until a
//! clinician accepts them (`final`) or rejects them (`entered-in-error`). Only verified (or
//! clinician-recorded) readings are drawn in the series.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{
    self, Amount, LOINC, Measured, clinical_time, code_in, number, reference_id, str_of,
};
use crate::{DesktopError, FhirClient, Result};

/// LOINC of the blood pressure panel and its components.
const BP_PANEL: [&str; 2] = ["85354-9", "55284-4"];
const SYSTOLIC: &str = "8480-6";
const DIASTOLIC: &str = "8462-4";

/// A kind of vital sign the chart draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VitalKind {
    /// Systolic over diastolic, mmHg (the LOINC 85354-9 panel).
    BloodPressure,
    /// Blood glucose, mg/dL (LOINC 2339-0 or 15074-8).
    Glucose,
    /// Body weight, kg (LOINC 29463-7).
    Weight,
    /// Heart rate, beats a minute (LOINC 8867-4).
    HeartRate,
}

impl VitalKind {
    /// Every kind, in the chart's order.
    pub const ALL: [VitalKind; 4] = [
        VitalKind::BloodPressure,
        VitalKind::Glucose,
        VitalKind::Weight,
        VitalKind::HeartRate,
    ];

    /// The LOINC codes of this kind; the first is the one recorded.
    fn codes(self) -> &'static [&'static str] {
        match self {
            VitalKind::BloodPressure => &BP_PANEL,
            VitalKind::Glucose => &["2339-0", "15074-8"],
            VitalKind::Weight => &["29463-7"],
            VitalKind::HeartRate => &["8867-4"],
        }
    }

    /// The LOINC display of the recorded code.
    fn display(self) -> &'static str {
        match self {
            VitalKind::BloodPressure => "Blood pressure panel with all children optional",
            VitalKind::Glucose => "Glucose [Mass/volume] in Blood",
            VitalKind::Weight => "Body weight",
            VitalKind::HeartRate => "Heart rate",
        }
    }

    /// The label shown.
    pub fn label(self) -> &'static str {
        match self {
            VitalKind::BloodPressure => "Blood pressure",
            VitalKind::Glucose => "Blood glucose",
            VitalKind::Weight => "Weight",
            VitalKind::HeartRate => "Heart rate",
        }
    }

    /// The unit shown, and its UCUM code.
    pub fn unit(self) -> (&'static str, &'static str) {
        match self {
            VitalKind::BloodPressure => ("mmHg", "mm[Hg]"),
            VitalKind::Glucose => ("mg/dL", "mg/dL"),
            VitalKind::Weight => ("kg", "kg"),
            VitalKind::HeartRate => ("/min", "/min"),
        }
    }

    /// The kind of an Observation, by its LOINC code.
    pub fn of(observation: &Value) -> Option<VitalKind> {
        VitalKind::ALL
            .into_iter()
            .find(|k| code_in(&observation["code"], LOINC, k.codes()).is_some())
    }
}

/// One reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VitalPoint {
    /// The Observation's id (a `local-…` id while queued).
    pub id: String,
    /// What was measured.
    pub kind: VitalKind,
    /// When.
    pub time: String,
    /// The value (systolic for blood pressure).
    pub value: f64,
    /// Diastolic, for blood pressure.
    pub value2: Option<f64>,
    /// The unit.
    pub unit: String,
    /// Reported by the patient's side (see the module doc).
    pub self_reported: bool,
    /// The Observation's status.
    pub status: String,
    /// Queued offline, not on the server yet.
    pub pending: bool,
}

/// One kind's readings, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VitalSeries {
    /// What was measured.
    pub kind: VitalKind,
    /// Its label.
    pub label: String,
    /// Its unit.
    pub unit: String,
    /// The readings.
    pub points: Vec<VitalPoint>,
}

/// A reading to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VitalInput {
    /// What was measured.
    pub kind: VitalKind,
    /// The value (systolic for blood pressure).
    pub value: f64,
    /// Diastolic, for blood pressure.
    #[serde(default)]
    pub value2: Option<f64>,
    /// When (RFC 3339); now when absent.
    #[serde(default)]
    pub time: Option<String>,
}

/// Whether an Observation was reported by the patient's side.
pub fn self_reported(observation: &Value) -> bool {
    observation["performer"].as_array().is_some_and(|ps| {
        ps.iter().any(|p| {
            reference_id(p, "Patient").is_some() || reference_id(p, "RelatedPerson").is_some()
        })
    })
}

/// The value of a component coded `loinc`.
fn component(observation: &Value, loinc: &str) -> Option<(f64, Option<String>)> {
    observation["component"]
        .as_array()?
        .iter()
        .find(|c| model::has_code(&c["code"], LOINC, loinc))
        .and_then(|c| {
            let q = &c["valueQuantity"];
            Some((number(&q["value"])?, model::opt_str(&q["unit"])))
        })
}

/// A reading of an Observation, if it is a vital sign with a value; `pending` tells queued
/// writes (`(resourceType, id)`).
pub fn vital_point(observation: &Value, pending: &HashSet<(String, String)>) -> Option<VitalPoint> {
    let kind = VitalKind::of(observation)?;
    let status = str_of(&observation["status"]);
    if matches!(status.as_str(), "entered-in-error" | "cancelled") {
        return None;
    }
    let (value, value2, unit) = if kind == VitalKind::BloodPressure {
        let (systolic, unit) = component(observation, SYSTOLIC)?;
        let diastolic = component(observation, DIASTOLIC).map(|(v, _)| v);
        (systolic, diastolic, unit)
    } else {
        let q = &observation["valueQuantity"];
        (number(&q["value"])?, None, model::opt_str(&q["unit"]))
    };
    let id = str_of(&observation["id"]);
    Some(VitalPoint {
        pending: pending.contains(&("Observation".to_string(), id.clone())),
        id,
        kind,
        time: clinical_time(observation).unwrap_or_default(),
        value,
        value2,
        unit: unit.unwrap_or_else(|| kind.unit().0.to_string()),
        self_reported: self_reported(observation),
        status,
    })
}

/// Whether a reading waits for a clinician: self-reported and still `preliminary`.
pub fn unverified(point: &VitalPoint) -> bool {
    point.self_reported && point.status == "preliminary"
}

/// The chart's series (every kind, in order, each oldest first) and the readings waiting for
/// verification, from a patient's resources.
pub fn series(
    resources: &[Value],
    pending: &HashSet<(String, String)>,
) -> (Vec<VitalSeries>, Vec<VitalPoint>) {
    let mut points: Vec<VitalPoint> = resources
        .iter()
        .filter(|r| r["resourceType"] == "Observation")
        .filter_map(|o| vital_point(o, pending))
        .collect();
    points.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    let (waiting, drawn): (Vec<VitalPoint>, Vec<VitalPoint>) =
        points.into_iter().partition(unverified);
    let series = VitalKind::ALL
        .into_iter()
        .map(|kind| VitalSeries {
            kind,
            label: kind.label().to_string(),
            unit: kind.unit().0.to_string(),
            points: drawn.iter().filter(|p| p.kind == kind).cloned().collect(),
        })
        .collect();
    (series, waiting)
}

/// The vital-signs Observation of a reading (see [`model::vital_signs`]).
pub fn vital_observation(
    patient_id: &str,
    performer: &str,
    vital: &VitalInput,
    now: &str,
) -> Result<Value> {
    let valid = |v: f64| v.is_finite() && v > 0.0;
    if !valid(vital.value) {
        return Err(DesktopError::Invalid(format!(
            "{} must be a positive number",
            vital.kind.label()
        )));
    }
    let time = vital.time.as_deref().unwrap_or(now);
    let (unit, code) = vital.kind.unit();
    let amount = |value| Amount {
        value,
        unit,
        code: Some(code),
    };
    let loinc = (vital.kind.codes()[0], vital.kind.display());
    if vital.kind == VitalKind::BloodPressure {
        let diastolic = vital.value2.filter(|v| valid(*v)).ok_or_else(|| {
            DesktopError::Invalid("a blood pressure needs the diastolic value too".into())
        })?;
        model::vital_signs(
            patient_id,
            performer,
            loinc,
            time,
            None,
            &[
                Measured {
                    loinc: SYSTOLIC,
                    display: "Systolic blood pressure",
                    amount: amount(vital.value),
                },
                Measured {
                    loinc: DIASTOLIC,
                    display: "Diastolic blood pressure",
                    amount: amount(diastolic),
                },
            ],
        )
    } else {
        model::vital_signs(
            patient_id,
            performer,
            loinc,
            time,
            Some(amount(vital.value)),
            &[],
        )
    }
}

/// Records a reading measured by `user` (`Practitioner/x`): a `final` vital-signs
/// Observation, sent now or queued offline (then it shows in the chart as pending).
pub async fn record_vital(
    client: &FhirClient,
    user: &str,
    patient_id: &str,
    vital: &VitalInput,
) -> Result<model::Saved> {
    let observation = vital_observation(patient_id, user, vital, &model::now())?;
    Ok(client.create(observation).await?.into())
}

/// Verifies a self-reported reading: accepted, it becomes `final`; rejected,
/// `entered-in-error` (kept, as FHIR keeps what was recorded, but no longer drawn).
pub async fn verify_observation(
    client: &FhirClient,
    observation_id: &str,
    accept: bool,
) -> Result<model::Saved> {
    let mut observation = client.read("Observation", observation_id).await?.resource;
    observation["status"] = Value::String(if accept { "final" } else { "entered-in-error" }.into());
    Ok(client.update(observation).await?.into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bp(id: &str, time: &str, sys: f64, dia: f64, performer: &str, status: &str) -> Value {
        let mut o = vital_observation(
            "p1",
            performer,
            &VitalInput {
                kind: VitalKind::BloodPressure,
                value: sys,
                value2: Some(dia),
                time: Some(time.into()),
            },
            time,
        )
        .unwrap();
        o["id"] = json!(id);
        o["status"] = json!(status);
        o
    }

    #[test]
    fn readings_fall_into_series_and_self_reports_wait() {
        let weight = json!({"resourceType": "Observation", "id": "w1", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
            "effectiveDateTime": "2026-12-01T08:00:00Z",
            "valueQuantity": {"value": 61.5, "unit": "kg"}});
        let resources = vec![
            bp(
                "b2",
                "2026-12-03T08:00:00Z",
                130.0,
                85.0,
                "Practitioner/d",
                "final",
            ),
            bp(
                "b1",
                "2026-12-02T08:00:00Z",
                128.0,
                84.0,
                "Practitioner/d",
                "final",
            ),
            bp(
                "b3",
                "2026-12-04T08:00:00Z",
                150.0,
                95.0,
                "Patient/p1",
                "preliminary",
            ),
            bp(
                "b4",
                "2026-12-04T09:00:00Z",
                1.0,
                1.0,
                "Practitioner/d",
                "entered-in-error",
            ),
            weight,
        ];
        let pending = HashSet::from([("Observation".to_string(), "b2".to_string())]);
        let (series, waiting) = series(&resources, &pending);
        assert_eq!(series.len(), 4);
        let bp_series = &series[0];
        assert_eq!(bp_series.kind, VitalKind::BloodPressure);
        let ids: Vec<&str> = bp_series.points.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["b1", "b2"]);
        assert_eq!(bp_series.points[0].value, 128.0);
        assert_eq!(bp_series.points[0].value2, Some(84.0));
        assert_eq!(bp_series.points[0].unit, "mmHg");
        assert!(bp_series.points[1].pending && !bp_series.points[0].pending);
        assert_eq!(series[2].points[0].value, 61.5);
        assert_eq!(waiting.len(), 1);
        assert!(waiting[0].self_reported);
        assert_eq!(waiting[0].id, "b3");
        let ui = serde_json::to_value(&series[0]).unwrap();
        assert_eq!(ui["kind"], "bloodPressure");
        assert_eq!(ui["points"][0]["selfReported"], false);
    }

    #[test]
    fn a_blood_pressure_needs_both_values() {
        let input = VitalInput {
            kind: VitalKind::BloodPressure,
            value: 120.0,
            value2: None,
            time: None,
        };
        assert!(matches!(
            vital_observation("p1", "Practitioner/d", &input, "2026-12-05T10:00:00Z"),
            Err(DesktopError::Invalid(_))
        ));
        let pulse = vital_observation(
            "p1",
            "Practitioner/d",
            &VitalInput {
                kind: VitalKind::HeartRate,
                value: 72.0,
                value2: None,
                time: None,
            },
            "2026-12-05T10:00:00Z",
        )
        .unwrap();
        assert_eq!(pulse["valueQuantity"]["code"], "/min");
        assert_eq!(pulse["effectiveDateTime"], "2026-12-05T10:00:00Z");
        let input: VitalInput =
            serde_json::from_value(json!({"kind": "glucose", "value": 110})).unwrap();
        assert_eq!((input.kind, input.value2), (VitalKind::Glucose, None));
    }
}
