//! What the window shows at all times: signed out, online, syncing (with progress) or offline,
//! and since when; who is signed in where; how many writes wait for the server and how many of
//! them conflict. The FHIR client reports every request to a [`StatusTracker`]; the shell
//! subscribes and forwards each change to the UI (event `status`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The link to the server, as the window shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// Nobody is signed in.
    SignedOut,
    /// The server answers.
    Online,
    /// The server answers and the worklist or the outbox is being synced.
    Syncing,
    /// The server cannot be reached: reads come from the cache, writes are queued.
    Offline,
}

/// How the signed-in user works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// A doctor (or any other clinician): patients, charts, prescriptions.
    Hospital,
    /// A pharmacist: the prescription queue and dispensing.
    Pharmacy,
}

/// The signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Their FHIR resource (`Practitioner/x`).
    pub reference: String,
    /// Their name, for the title bar.
    pub name: String,
    /// Which screens they get.
    pub mode: Mode,
}

/// Where a sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncProgress {
    /// Steps done (patients synced).
    pub done: usize,
    /// Steps in all.
    pub total: usize,
}

/// The status the window shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The link.
    pub state: State,
    /// Since when the state holds (RFC 3339): when the link dropped, when it came back.
    pub since: String,
    /// The server's FHIR base, when signed in.
    pub server: Option<String>,
    /// Who is signed in.
    pub user: Option<User>,
    /// While syncing: how far.
    pub progress: Option<SyncProgress>,
    /// Writes waiting for the server (the outbox), conflicts included.
    pub pending: usize,
    /// Writes the server's newer version conflicts with, waiting for the user.
    pub conflicts: usize,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Status {
    /// Nobody signed in, from now.
    pub fn signed_out() -> Status {
        Status {
            state: State::SignedOut,
            since: now(),
            server: None,
            user: None,
            progress: None,
            pending: 0,
            conflicts: 0,
        }
    }
}

/// Keeps the current [`Status`] and publishes its changes. Cheap to clone (shared inside).
///
/// Only real changes are published (a new state, progress while syncing, new counts): every
/// request reports to the tracker, and the UI should not be woken for each of them.
#[derive(Clone)]
pub struct StatusTracker {
    sender: Arc<watch::Sender<Status>>,
}

impl Default for StatusTracker {
    fn default() -> Self {
        StatusTracker::new()
    }
}

impl StatusTracker {
    /// A tracker that starts signed out.
    pub fn new() -> StatusTracker {
        StatusTracker {
            sender: Arc::new(watch::Sender::new(Status::signed_out())),
        }
    }

    /// The current status.
    pub fn get(&self) -> Status {
        self.sender.borrow().clone()
    }

    /// A receiver that sees every published change.
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.sender.subscribe()
    }

    /// Applies `change` and publishes the result when it differs.
    fn update(&self, change: impl FnOnce(&mut Status)) {
        self.sender.send_if_modified(|status| {
            let before = status.clone();
            change(status);
            *status != before
        });
    }

    /// Someone signed in at `server` (the link is taken as up until a request says otherwise).
    pub fn signed_in(&self, server: &str, user: &User) {
        self.update(|s| {
            *s = Status {
                state: State::Online,
                since: now(),
                server: Some(server.to_string()),
                user: Some(user.clone()),
                progress: None,
                pending: s.pending,
                conflicts: s.conflicts,
            }
        });
    }

    /// Nobody is signed in any more.
    pub fn signed_out(&self) {
        self.update(|s| *s = Status::signed_out());
    }

    /// The server answered a request (whatever it said): back online if it was offline.
    pub fn reachable(&self) {
        self.update(|s| {
            if s.state == State::Offline {
                s.state = State::Online;
                s.since = now();
            }
        });
    }

    /// A request could not reach the server: offline, since this first failure.
    pub fn unreachable(&self) {
        self.update(|s| {
            if matches!(s.state, State::Online | State::Syncing) {
                s.state = State::Offline;
                s.since = now();
                s.progress = None;
            }
        });
    }

    /// A sync started or moved on (while the server answers: offline, the link says more).
    pub fn syncing(&self, done: usize, total: usize) {
        self.update(|s| {
            if !matches!(s.state, State::Online | State::Syncing) {
                return;
            }
            if s.state != State::Syncing {
                s.state = State::Syncing;
                s.since = now();
            }
            s.progress = Some(SyncProgress { done, total });
        });
    }

    /// A sync ended: online again (unless the link dropped meanwhile).
    pub fn synced(&self) {
        self.update(|s| {
            s.progress = None;
            if s.state == State::Syncing {
                s.state = State::Online;
                s.since = now();
            }
        });
    }

    /// The outbox now holds `pending` writes, `conflicts` of them conflicting.
    pub fn counts(&self, pending: usize, conflicts: usize) {
        self.update(|s| {
            s.pending = pending;
            s.conflicts = conflicts;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            reference: "Practitioner/1".into(),
            name: "Meera Iyer".into(),
            mode: Mode::Hospital,
        }
    }

    #[test]
    fn the_status_is_camel_case_json() {
        let tracker = StatusTracker::new();
        tracker.signed_in("http://h/fhir", &user());
        tracker.syncing(1, 3);
        let json = serde_json::to_value(tracker.get()).unwrap();
        assert_eq!(json["state"], "syncing");
        assert_eq!(json["progress"]["done"], 1);
        assert_eq!(json["user"]["mode"], "hospital");
        assert_eq!(json["pending"], 0);
        assert!(
            chrono::DateTime::parse_from_rfc3339(json["since"].as_str().unwrap()).is_ok(),
            "{json}"
        );
        assert_eq!(
            serde_json::to_value(Status::signed_out()).unwrap()["state"],
            "signedOut"
        );
    }

    #[test]
    fn only_changes_are_published_and_offline_keeps_its_first_failure() {
        let tracker = StatusTracker::new();
        tracker.signed_in("http://h/fhir", &user());
        let mut seen = tracker.subscribe();
        seen.mark_unchanged();
        tracker.reachable();
        assert!(!seen.has_changed().unwrap(), "online stays online");
        tracker.unreachable();
        assert!(seen.has_changed().unwrap());
        let first = seen.borrow_and_update().clone();
        assert_eq!(first.state, State::Offline);
        tracker.unreachable();
        assert!(
            !seen.has_changed().unwrap(),
            "offline since the first failure"
        );
        tracker.reachable();
        assert_eq!(seen.borrow_and_update().state, State::Online);
        tracker.syncing(0, 2);
        tracker.syncing(1, 2);
        assert_eq!(
            seen.borrow_and_update().progress,
            Some(SyncProgress { done: 1, total: 2 })
        );
        tracker.synced();
        let done = seen.borrow_and_update().clone();
        assert_eq!((done.state, done.progress), (State::Online, None));
        tracker.signed_out();
        tracker.syncing(0, 1);
        assert_eq!(tracker.get().state, State::SignedOut);
    }
}
