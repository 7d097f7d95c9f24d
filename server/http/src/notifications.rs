//! Notifications to patients about their consents: an in-app `Communication` (listed with
//! `GET /fhir/Communication?recipient=Patient/{id}`) written through the engine, and a mail to
//! the verified email address of the patient's account through the account mailer. Neither
//! can fail the operation that caused it: failures are logged (without the text, which is
//! about someone's health record).

use std::sync::Arc;

use curanet_auth::accounts::{Mail, Mailer};
use curanet_auth::consent_workflow::Event;
use curanet_auth::consent_workflow::{Notice, display_name, fhir_user_reference};
use curanet_engine::Engine;
use curanet_storage::AuthStore;
use serde_json::Value;

use crate::server::unix_now;

/// Sends consent notifications.
pub struct Notifier {
    engine: Engine,
    accounts: Arc<dyn AuthStore>,
    mailer: Arc<dyn Mailer>,
    /// The FHIR base, for the engine's links.
    base: String,
}

impl Notifier {
    /// A notifier writing through `engine` and mailing through `mailer`.
    pub fn new(
        engine: Engine,
        accounts: Arc<dyn AuthStore>,
        mailer: Arc<dyn Mailer>,
        base: String,
    ) -> Notifier {
        Notifier {
            engine,
            accounts,
            mailer,
            base,
        }
    }

    /// How a notice names `reference` (a Practitioner, PractitionerRole or Organization): its
    /// name when the resource has one, else the reference itself.
    pub async fn who(&self, reference: &str) -> String {
        let reference = fhir_user_reference(reference).unwrap_or_else(|| reference.to_string());
        let Some((ty, id)) = reference.split_once('/') else {
            return reference;
        };
        let resource = match self.engine.read(ty, id).await {
            Ok(v) => v.resource(),
            Err(_) => None,
        };
        // A PractitionerRole has no name of its own: its practitioner's.
        let resource = match resource {
            Some(role) if ty == "PractitionerRole" => {
                match role["practitioner"]["reference"].as_str() {
                    Some(p) => return Box::pin(self.who(p)).await,
                    None => Some(role),
                }
            }
            other => other,
        };
        resource
            .as_ref()
            .and_then(display_name)
            .unwrap_or(reference)
    }

    /// Tells the patient that `event` happened to `consent` (as written), naming its actor.
    pub async fn tell(&self, event: Event, consent: &Value) {
        let actor = consent["provision"]["actor"][0]["reference"]["reference"]
            .as_str()
            .unwrap_or_default();
        let who = self.who(actor).await;
        self.send(Notice::new(event, consent, &who)).await;
    }

    /// Records `notice` in the app and mails it in the background (a slow relay never delays
    /// the answer).
    pub async fn send(&self, notice: Notice) {
        let communication = notice.communication(unix_now());
        if let Err(e) = self
            .engine
            .create(
                "Communication",
                communication.to_string().as_bytes(),
                None,
                &self.base,
            )
            .await
        {
            tracing::error!(error = %e, consent = %notice.consent, event = notice.event.code(), "could not record a consent notification");
        }
        let accounts = self.accounts.clone();
        let mailer = self.mailer.clone();
        tokio::spawn(async move { mail(accounts.as_ref(), mailer.as_ref(), &notice).await });
    }
}

/// Mails `notice` to the patient's account, when it has a verified email address.
async fn mail(accounts: &dyn AuthStore, mailer: &dyn Mailer, notice: &Notice) {
    let owner = format!("Patient/{}", notice.patient);
    let account = match accounts.get_account_by_fhir_user(&owner).await {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, consent = %notice.consent, "could not look up the patient's account for a consent notification");
            return;
        }
    };
    let Some(to) = account.email.filter(|_| account.email_verified) else {
        return;
    };
    let message = Mail {
        to,
        subject: format!("CuraNet: {}", notice.event.title()),
        body: notice.mail_body(),
    };
    if let Err(e) = mailer.send(message).await {
        tracing::warn!(error = %e, account = %account.id, event = notice.event.code(), "consent notification mail not sent");
    }
}
