//! The commands the UI invokes (names and shapes: desktop/ui/src/api.ts). Each one takes the
//! signed-in client from the core's `Desktop` and calls one core function.

use curanet_desktop_core::{
    Desktop, Resolution, Status, appointments, chart, consents, encounters, model::Saved, patients,
    pharmacy, prescriptions, vitals,
};
use tauri::{Manager, State, WebviewUrl, WebviewWindowBuilder};

use crate::error::CommandResult;

/// The label of the window that shows the server's sign-in pages.
const SIGN_IN_WINDOW: &str = "sign-in";

/// Every command, for `invoke_handler`.
pub fn handler<R: tauri::Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static
{
    tauri::generate_handler![
        ui_ready,
        status,
        last_server,
        sign_in,
        sign_out,
        sync_now,
        find_patients,
        request_consent,
        pending_consents,
        open_chart,
        record_vital,
        start_encounter,
        add_note,
        prescribe,
        verify_observation,
        appointments_today,
        appointment_action,
        pharmacy_queue,
        lookup_prescriptions,
        dispense,
        set_prescription_status,
        dispense_history,
        conflicts,
        resolve_conflict,
    ]
}

/// The UI calls this once its first screen has rendered: the end of a cold start (the log
/// line is what `curanet-bench desktop-start` waits for).
#[tauri::command]
fn ui_ready() {
    let ms = crate::STARTED
        .get()
        .map(|t| t.elapsed().as_millis())
        .unwrap_or_default();
    tracing::info!(ms, "window interactive");
}

#[tauri::command]
fn status(desktop: State<'_, Desktop>) -> Status {
    desktop.status()
}

#[tauri::command]
fn last_server(desktop: State<'_, Desktop>) -> Option<String> {
    desktop.last_server()
}

/// Opens the server's own sign-in page in a window of its own (the app never sees the
/// password); the code comes back to the core's loopback redirect.
#[tauri::command]
async fn sign_in<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    desktop: State<'_, Desktop>,
    server: String,
) -> CommandResult<Status> {
    let started = desktop.begin_sign_in(&server).await?;
    let url = started
        .authorize_url
        .parse()
        .map_err(|e| crate::error::CommandError {
            code: "protocol",
            message: format!("the server's authorization URL: {e}"),
        })?;
    if let Some(old) = app.get_webview_window(SIGN_IN_WINDOW) {
        old.close()?;
    }
    let window = WebviewWindowBuilder::new(&app, SIGN_IN_WINDOW, WebviewUrl::External(url))
        .title("Sign in to CuraNet")
        .inner_size(520.0, 720.0)
        .build()?;
    let signed_in = desktop.finish_sign_in().await;
    window.close()?;
    Ok(signed_in?)
}

#[tauri::command]
async fn sign_out(desktop: State<'_, Desktop>) -> CommandResult<Status> {
    Ok(desktop.sign_out().await?)
}

#[tauri::command]
async fn sync_now(desktop: State<'_, Desktop>) -> CommandResult<Status> {
    Ok(desktop.sync_now().await?)
}

#[tauri::command]
async fn find_patients(
    desktop: State<'_, Desktop>,
    query: String,
) -> CommandResult<Vec<patients::PatientSummary>> {
    let (client, _) = desktop.signed_in()?;
    Ok(patients::find_patients(&client, &query).await?)
}

#[tauri::command]
async fn request_consent(
    desktop: State<'_, Desktop>,
    patient_id: String,
    days: u32,
) -> CommandResult<consents::ConsentSummary> {
    let (client, _) = desktop.signed_in()?;
    Ok(consents::request_consent(&client, &patient_id, days).await?)
}

#[tauri::command]
async fn pending_consents(
    desktop: State<'_, Desktop>,
) -> CommandResult<Vec<consents::ConsentSummary>> {
    let (client, user) = desktop.signed_in()?;
    Ok(consents::pending_consents(&client, &user).await?)
}

#[tauri::command]
async fn open_chart(
    desktop: State<'_, Desktop>,
    patient_id: String,
) -> CommandResult<chart::Chart> {
    let (client, _) = desktop.signed_in()?;
    let opened = chart::open_chart(&client, &patient_id).await?;
    desktop.opened(&patient_id).await?;
    Ok(opened)
}

#[tauri::command]
async fn record_vital(
    desktop: State<'_, Desktop>,
    patient_id: String,
    vital: vitals::VitalInput,
) -> CommandResult<Saved> {
    let (client, user) = desktop.signed_in()?;
    Ok(vitals::record_vital(&client, &user, &patient_id, &vital).await?)
}

#[tauri::command]
async fn start_encounter(
    desktop: State<'_, Desktop>,
    patient_id: String,
    reason: String,
) -> CommandResult<Saved> {
    let (client, user) = desktop.signed_in()?;
    Ok(encounters::start_encounter(&client, &user, &patient_id, &reason).await?)
}

#[tauri::command]
async fn add_note(
    desktop: State<'_, Desktop>,
    patient_id: String,
    encounter_id: Option<String>,
    text: String,
) -> CommandResult<Saved> {
    let (client, user) = desktop.signed_in()?;
    Ok(encounters::add_note(&client, &user, &patient_id, encounter_id.as_deref(), &text).await?)
}

#[tauri::command]
async fn prescribe(
    desktop: State<'_, Desktop>,
    patient_id: String,
    rx: prescriptions::RxInput,
) -> CommandResult<Saved> {
    let (client, user) = desktop.signed_in()?;
    Ok(prescriptions::prescribe(&client, &user, &patient_id, &rx).await?)
}

#[tauri::command]
async fn verify_observation(
    desktop: State<'_, Desktop>,
    observation_id: String,
    accept: bool,
) -> CommandResult<Saved> {
    let (client, _) = desktop.signed_in()?;
    Ok(vitals::verify_observation(&client, &observation_id, accept).await?)
}

#[tauri::command]
async fn appointments_today(
    desktop: State<'_, Desktop>,
) -> CommandResult<Vec<appointments::Appointment>> {
    let (client, user) = desktop.signed_in()?;
    Ok(appointments::appointments_today(&client, &user).await?)
}

#[tauri::command]
async fn appointment_action(
    desktop: State<'_, Desktop>,
    appointment_id: String,
    action: appointments::AppointmentAction,
) -> CommandResult<Saved> {
    let (client, _) = desktop.signed_in()?;
    Ok(appointments::appointment_action(&client, &appointment_id, action).await?)
}

#[tauri::command]
async fn pharmacy_queue(desktop: State<'_, Desktop>) -> CommandResult<Vec<pharmacy::Prescription>> {
    let (client, _) = desktop.signed_in()?;
    Ok(pharmacy::pharmacy_queue(&client).await?)
}

#[tauri::command]
async fn lookup_prescriptions(
    desktop: State<'_, Desktop>,
    query: String,
) -> CommandResult<Vec<pharmacy::Prescription>> {
    let (client, _) = desktop.signed_in()?;
    Ok(pharmacy::lookup_prescriptions(&client, &query).await?)
}

#[tauri::command]
async fn dispense(
    desktop: State<'_, Desktop>,
    prescription_id: String,
    d: pharmacy::DispenseInput,
) -> CommandResult<Saved> {
    let (client, user) = desktop.signed_in()?;
    Ok(pharmacy::dispense(&client, &user, &prescription_id, &d).await?)
}

#[tauri::command]
async fn set_prescription_status(
    desktop: State<'_, Desktop>,
    prescription_id: String,
    status: pharmacy::PrescriptionStatus,
    reason: Option<String>,
) -> CommandResult<Saved> {
    let (client, _) = desktop.signed_in()?;
    Ok(
        pharmacy::set_prescription_status(&client, &prescription_id, status, reason.as_deref())
            .await?,
    )
}

#[tauri::command]
async fn dispense_history(desktop: State<'_, Desktop>) -> CommandResult<Vec<pharmacy::Dispense>> {
    let (client, user) = desktop.signed_in()?;
    Ok(pharmacy::dispense_history(&client, &user).await?)
}

#[tauri::command]
async fn conflicts(
    desktop: State<'_, Desktop>,
) -> CommandResult<Vec<curanet_desktop_core::Conflict>> {
    Ok(desktop.conflicts().await?)
}

#[tauri::command]
async fn resolve_conflict(
    desktop: State<'_, Desktop>,
    seq: i64,
    resolution: Resolution,
) -> CommandResult<Status> {
    Ok(desktop.resolve(seq, resolution).await?)
}
