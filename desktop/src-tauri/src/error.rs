//! How errors cross to the UI: `{code, message}`, the code from the core's error.

use curanet_desktop_core::DesktopError;
use serde::Serialize;

/// An error as the UI receives it (a rejected `invoke`).
#[derive(Debug, Serialize)]
pub struct CommandError {
    /// A stable code the UI can branch on (`offline`, `not_signed_in`, `conflict`, ...).
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
}

impl From<DesktopError> for CommandError {
    fn from(e: DesktopError) -> Self {
        CommandError {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<tauri::Error> for CommandError {
    fn from(e: tauri::Error) -> Self {
        CommandError {
            code: "window",
            message: e.to_string(),
        }
    }
}

/// What every command returns.
pub type CommandResult<T> = Result<T, CommandError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_keep_their_code() {
        let e = CommandError::from(DesktopError::NotSignedIn("nobody is signed in".into()));
        assert_eq!(e.code, "not_signed_in");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "not_signed_in");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}
