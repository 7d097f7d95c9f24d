//! The day's appointments of the signed-in clinician, and what they do with one: confirm it
//! (`booked`), mark it done (`fulfilled`) or cancel it (`cancelled`), each an update of the
//! Appointment (queued offline like any write).
//!
//! The server narrows a clinician's Appointment search to patients who consented; an
//! appointment of anyone else is not listed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consents::cached_name;
use crate::model::{Saved, opt_str, reference_id, str_of};
use crate::{FhirClient, Result};

/// An appointment as the UI lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    /// The Appointment's id.
    pub id: String,
    /// The patient's id.
    pub patient_id: Option<String>,
    /// Their name, when known.
    pub patient_name: Option<String>,
    /// Start.
    pub start: Option<String>,
    /// End.
    pub end: Option<String>,
    /// `proposed`, `booked`, `fulfilled`, `cancelled`, ...
    pub status: String,
    /// What it is for.
    pub description: Option<String>,
}

/// What the clinician does with an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AppointmentAction {
    /// Confirm it: `booked`.
    Confirm,
    /// The patient was seen: `fulfilled`.
    Complete,
    /// Call it off: `cancelled`.
    Cancel,
}

impl AppointmentAction {
    /// The Appointment status it leads to.
    pub fn status(self) -> &'static str {
        match self {
            AppointmentAction::Confirm => "booked",
            AppointmentAction::Complete => "fulfilled",
            AppointmentAction::Cancel => "cancelled",
        }
    }
}

/// The patient participant of an Appointment: their id and the reference's display.
fn patient_participant(appointment: &Value) -> Option<(String, Option<String>)> {
    appointment["participant"].as_array()?.iter().find_map(|p| {
        let id = reference_id(&p["actor"], "Patient")?;
        Some((id, opt_str(&p["actor"]["display"])))
    })
}

/// An Appointment as the UI lists it; `patient_name` when the caller knows better than the
/// participant's display.
pub fn appointment(resource: &Value, patient_name: Option<String>) -> Appointment {
    let participant = patient_participant(resource);
    Appointment {
        id: str_of(&resource["id"]),
        patient_name: patient_name.or_else(|| participant.as_ref().and_then(|p| p.1.clone())),
        patient_id: participant.map(|p| p.0),
        start: opt_str(&resource["start"]),
        end: opt_str(&resource["end"]),
        status: str_of(&resource["status"]),
        description: opt_str(&resource["description"])
            .or_else(|| crate::model::concept_text(&resource["appointmentType"])),
    }
}

/// Today's appointments (the local calendar day) where `user` (`Practitioner/x`) takes part,
/// by start time.
pub async fn appointments_today(client: &FhirClient, user: &str) -> Result<Vec<Appointment>> {
    let today = chrono::Local::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let found = client
        .search(
            "Appointment",
            &[("actor", user), ("date", &today), ("_count", "200")],
        )
        .await?;
    let mut out = Vec::with_capacity(found.matches.len());
    for resource in &found.matches {
        let name = match patient_participant(resource) {
            Some((id, _)) => cached_name(client, &id).await?,
            None => None,
        };
        out.push(appointment(resource, name));
    }
    out.sort_by(|a, b| a.start.cmp(&b.start));
    Ok(out)
}

/// Confirms, completes or cancels an appointment.
pub async fn appointment_action(
    client: &FhirClient,
    appointment_id: &str,
    action: AppointmentAction,
) -> Result<Saved> {
    let mut resource = client.read("Appointment", appointment_id).await?.resource;
    resource["status"] = Value::String(action.status().into());
    Ok(client.update(resource).await?.into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_appointment_names_its_patient() {
        let a = json!({"resourceType": "Appointment", "id": "ap1", "status": "proposed",
            "start": "2026-12-05T10:00:00Z", "description": "Review",
            "participant": [
                {"actor": {"reference": "Practitioner/d1"}, "status": "accepted"},
                {"actor": {"reference": "Patient/p1", "display": "Asha Rao"}, "status": "accepted"}]});
        let view = appointment(&a, None);
        assert_eq!(view.patient_id.as_deref(), Some("p1"));
        assert_eq!(view.patient_name.as_deref(), Some("Asha Rao"));
        assert_eq!(
            appointment(&a, Some("A. Rao".into()))
                .patient_name
                .as_deref(),
            Some("A. Rao")
        );
        assert_eq!(AppointmentAction::Complete.status(), "fulfilled");
        let action: AppointmentAction = serde_json::from_value(json!("cancel")).unwrap();
        assert_eq!(action.status(), "cancelled");
    }
}
