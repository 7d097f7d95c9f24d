//! Encounters and notes: a clinician starts an ambulatory encounter with a patient and writes
//! notes into the record (as DocumentReferences; why in [`crate::model::progress_note`]).
//! Both are plain creates, so they queue offline like any write.

use crate::model::{self, Saved};
use crate::{DesktopError, FhirClient, Result};

/// Starts an ambulatory encounter (`in-progress`, class `AMB`) of `patient_id` with `user`
/// (`Practitioner/x`), for `reason`.
pub async fn start_encounter(
    client: &FhirClient,
    user: &str,
    patient_id: &str,
    reason: &str,
) -> Result<Saved> {
    let encounter = model::ambulatory_encounter(patient_id, user, reason, &model::now())?;
    Ok(client.create(encounter).await?.into())
}

/// Adds a note by `user` to the record of `patient_id`, within `encounter_id` if given.
pub async fn add_note(
    client: &FhirClient,
    user: &str,
    patient_id: &str,
    encounter_id: Option<&str>,
    text: &str,
) -> Result<Saved> {
    if text.trim().is_empty() {
        return Err(DesktopError::Invalid("the note is empty".into()));
    }
    let note = model::progress_note(patient_id, user, encounter_id, text, &model::now())?;
    Ok(client.create(note).await?.into())
}
