//! Prescribing: a MedicationRequest (`active`, `order`) with its dosage as a timing and the
//! quantity for the whole course (`dose × times a day × days`), built in
//! [`crate::model::medication_request`]. A plain create, so it queues offline.

use serde::{Deserialize, Serialize};

use crate::model::{self, Order, Saved};
use crate::{DesktopError, FhirClient, Result};

/// What the prescriber enters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RxInput {
    /// The medication, as free text (`Amoxicillin 500 mg capsule`).
    pub medication: String,
    /// One dose.
    pub dose: f64,
    /// The dose's unit (`capsule`, `tablet`, `ml`).
    pub dose_unit: String,
    /// Doses a day.
    pub times_per_day: u32,
    /// Days of treatment.
    pub duration_days: u32,
    /// The dosage in the prescriber's words; generated when absent.
    #[serde(default)]
    pub instructions: Option<String>,
}

/// The dosage in words when the prescriber wrote none: "1 capsule 3 times a day for 5 days".
pub fn default_instructions(rx: &RxInput) -> String {
    let times = match rx.times_per_day {
        1 => "once a day".to_string(),
        2 => "twice a day".to_string(),
        n => format!("{n} times a day"),
    };
    let days = if rx.duration_days == 1 {
        "1 day".to_string()
    } else {
        format!("{} days", rx.duration_days)
    };
    format!("{} {} {times} for {days}", rx.dose, rx.dose_unit.trim())
}

/// Prescribes for `patient_id`, signed by `user` (`Practitioner/x`).
pub async fn prescribe(
    client: &FhirClient,
    user: &str,
    patient_id: &str,
    rx: &RxInput,
) -> Result<Saved> {
    if rx.medication.trim().is_empty() || rx.dose_unit.trim().is_empty() {
        return Err(DesktopError::Invalid(
            "a prescription names the medication and the dose's unit".into(),
        ));
    }
    let instructions = rx
        .instructions
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| default_instructions(rx));
    let now = model::now();
    let request = model::medication_request(&Order {
        patient: patient_id,
        requester: user,
        medication: rx.medication.trim(),
        dose: rx.dose,
        dose_unit: rx.dose_unit.trim(),
        times_per_day: rx.times_per_day,
        days: rx.duration_days,
        instructions: &instructions,
        authored_on: &now,
    })?;
    Ok(client.create(request).await?.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_say_how_much_how_often_how_long() {
        let rx = RxInput {
            medication: "Amoxicillin 500 mg".into(),
            dose: 1.0,
            dose_unit: "capsule".into(),
            times_per_day: 3,
            duration_days: 5,
            instructions: None,
        };
        assert_eq!(
            default_instructions(&rx),
            "1 capsule 3 times a day for 5 days"
        );
        let rx = RxInput {
            times_per_day: 2,
            duration_days: 1,
            dose: 0.5,
            ..rx
        };
        assert_eq!(
            default_instructions(&rx),
            "0.5 capsule twice a day for 1 day"
        );
    }
}
