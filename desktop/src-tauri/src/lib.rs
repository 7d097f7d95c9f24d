//! CuraNet Desktop's Tauri shell: the window, the commands the UI invokes (each a few lines
//! calling `curanet-desktop-core`), and the `status` event. Everything with logic is in the core.

mod commands;
mod error;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use curanet_desktop_core::Desktop;
use tauri::{Emitter, Manager};

/// When the app started (for the cold-start figure).
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Where the app keeps its data: `CURANET_DESKTOP_DATA_DIR` (tests, several accounts side by
/// side), else the platform's app data directory.
fn data_dir(app: &tauri::App) -> Result<PathBuf, Box<dyn std::error::Error>> {
    match std::env::var_os("CURANET_DESKTOP_DATA_DIR") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(app.path().app_data_dir()?),
    }
}

/// Opens the local state, forwards status changes to the window as `status` events.
fn setup<R: tauri::Runtime>(
    app: &mut tauri::App<R>,
    dir: PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let desktop = tauri::async_runtime::block_on(Desktop::open(&dir))?;
    let mut changes = desktop.subscribe();
    let handle = app.handle().clone();
    tauri::async_runtime::spawn(async move {
        while changes.changed().await.is_ok() {
            let status = changes.borrow_and_update().clone();
            if let Err(e) = handle.emit("status", status) {
                tracing::warn!(error = %e, "the status event did not reach the window");
            }
        }
    });
    app.manage(desktop);
    Ok(())
}

/// Runs the app.
pub fn run() {
    STARTED.get_or_init(Instant::now);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    tauri::Builder::default()
        .invoke_handler(commands::handler())
        .setup(|app| {
            let dir = data_dir(app)?;
            setup(app, dir)
        })
        .run(tauri::generate_context!())
        .expect("CuraNet Desktop failed to start");
}

#[cfg(test)]
mod tests {
    //! The commands through Tauri's IPC with the mock runtime (no window needed): answers reach
    //! the UI as JSON in the contract's shapes, errors as `{code, message}`.

    use curanet_desktop_core::Desktop;
    use serde_json::{Value, json};
    use tauri::Manager;
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{INVOKE_KEY, get_ipc_response, mock_builder, mock_context, noop_assets};
    use tauri::webview::InvokeRequest;

    fn invoke(
        webview: &tauri::WebviewWindow<tauri::test::MockRuntime>,
        cmd: &str,
        args: Value,
    ) -> Result<Value, Value> {
        get_ipc_response(
            webview,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                // App commands are allowed from the app's own origin only (on Linux this one).
                url: "tauri://localhost".parse().expect("a URL"),
                body: InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.into(),
            },
        )
        .map(|body| body.deserialize::<Value>().expect("JSON"))
    }

    #[test]
    fn commands_answer_in_the_contract_and_errors_cross_as_code_and_message() {
        let dir = std::env::temp_dir().join(format!("curanet-shell-{}", std::process::id()));
        let app = mock_builder()
            .invoke_handler(super::commands::handler())
            .build(mock_context(noop_assets()))
            .expect("the app builds");
        let desktop = tauri::async_runtime::block_on(Desktop::open(&dir)).expect("local state");
        app.manage(desktop);
        let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("a window");

        let status = invoke(&webview, "status", json!({})).expect("status");
        assert_eq!(status["state"], "signedOut");
        assert!(status["user"].is_null());
        assert_eq!(invoke(&webview, "last_server", json!({})), Ok(Value::Null));

        let refused = invoke(&webview, "open_chart", json!({"patientId": "p1"}))
            .expect_err("nobody is signed in");
        assert_eq!(refused["code"], "not_signed_in");
        assert!(refused["message"].as_str().is_some_and(|m| !m.is_empty()));

        let bad = invoke(&webview, "sign_in", json!({"server": "not a url"}))
            .expect_err("no server there");
        assert!(bad["code"].is_string(), "{bad}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
