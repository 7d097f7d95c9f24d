//! The server-rendered pages of the authorization server: sign-in, consent (with the patient
//! picker), the app management page and error pages. Plain HTML forms that work without
//! JavaScript, with labels, fieldsets and alerts for keyboard and screen-reader users; every
//! value is escaped.

use std::fmt::Write;

use curanet_auth::authorize::ScopeChoice;

/// `text` with the HTML special characters escaped (for element content and attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body`.
pub(crate) fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · CuraNet</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #1f2328; line-height: 1.5; }}
label {{ display: block; margin-top: .75rem; font-weight: 600; }}
input[type=text], input[type=email], input[type=password] {{ width: 100%; padding: .5rem; font-size: 1rem; }}
fieldset {{ margin-top: 1rem; border: 1px solid #d0d7de; border-radius: 6px; }}
fieldset label {{ font-weight: normal; display: flex; gap: .5rem; align-items: baseline; }}
.narrower {{ margin-left: 1.75rem; }}
.alert {{ border-left: 4px solid #b00020; padding: .5rem 1rem; background: #fdecea; }}
button {{ margin-top: 1rem; margin-right: .5rem; padding: .5rem 1.25rem; font-size: 1rem; }}
:focus-visible {{ outline: 3px solid #0b6e4f; outline-offset: 2px; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// Hidden inputs carrying `pairs` (the authorization request) and the CSRF token on.
fn hidden(pairs: &[(&str, &str)], csrf: &str) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        let _ = writeln!(
            out,
            r#"<input type="hidden" name="{}" value="{}">"#,
            escape(name),
            escape(value)
        );
    }
    let _ = writeln!(
        out,
        r#"<input type="hidden" name="csrf" value="{}">"#,
        escape(csrf)
    );
    out
}

/// An alert paragraph, announced by screen readers, when there is a message.
fn alert(message: Option<&str>) -> String {
    message
        .map(|m| format!(r#"<p class="alert" role="alert">{}</p>"#, escape(m)))
        .unwrap_or_default()
}

/// What the sign-in form needs.
pub struct SignInForm<'a> {
    /// Where the form posts (`/oauth/authorize`, `/oauth/manage`).
    pub action: &'a str,
    /// Who is asking, shown in the heading ("Sign in to continue to ...").
    pub purpose: &'a str,
    /// Hidden pairs to carry on.
    pub pairs: &'a [(&'a str, &'a str)],
    pub csrf: &'a str,
    /// The identifier typed before (kept when the code is asked for).
    pub identifier: &'a str,
    /// Whether to show the authenticator-code field.
    pub ask_code: bool,
    pub error: Option<&'a str>,
}

/// The sign-in page.
pub fn sign_in(form: &SignInForm<'_>) -> String {
    let code = if form.ask_code {
        r#"<label for="second_factor">Authenticator code or recovery code</label>
<input type="text" id="second_factor" name="second_factor" inputmode="numeric" autocomplete="one-time-code" required autofocus>"#
    } else {
        ""
    };
    let password_focus = if form.ask_code { "" } else { " autofocus" };
    let body = format!(
        r#"<p>{purpose}</p>
{alert}
<form method="post" action="{action}">
{hidden}<input type="hidden" name="action" value="login">
<label for="identifier">Email or phone</label>
<input type="text" id="identifier" name="identifier" value="{identifier}" autocomplete="username" required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required{password_focus}>
{code}
<button type="submit">Sign in</button>
</form>"#,
        purpose = escape(form.purpose),
        alert = alert(form.error),
        action = escape(form.action),
        hidden = hidden(form.pairs, form.csrf),
        identifier = escape(form.identifier),
    );
    layout("Sign in", &body)
}

/// A patient a clinician may pick.
pub struct PatientOption {
    pub id: String,
    pub label: String,
}

/// What the consent page needs.
pub struct ConsentForm<'a> {
    pub app_name: &'a str,
    pub user_name: &'a str,
    pub pairs: &'a [(&'a str, &'a str)],
    pub csrf: &'a str,
    pub choices: &'a [ScopeChoice],
    /// Whether the clinician must pick the patient (standalone launch).
    pub pick_patient: bool,
    /// The picker's search text and its matches.
    pub patient_query: &'a str,
    pub patients: &'a [PatientOption],
    pub error: Option<&'a str>,
}

/// The consent page: which of the requested permissions to grant, and for clinicians in a
/// standalone launch, which patient.
pub fn consent(form: &ConsentForm<'_>) -> String {
    let mut choices = String::new();
    for (i, choice) in form.choices.iter().enumerate() {
        let _ = writeln!(
            choices,
            r#"<label class="{class}" for="grant-{i}"><input type="checkbox" id="grant-{i}" name="grant" value="{value}"{checked}> <span>{label} <code>{value}</code></span></label>"#,
            class = if choice.narrower { "narrower" } else { "" },
            value = escape(&choice.scope),
            checked = if choice.checked { " checked" } else { "" },
            label = escape(&choice.label),
        );
    }
    let picker = if form.pick_patient {
        let mut options = String::new();
        for (i, p) in form.patients.iter().enumerate() {
            let _ = writeln!(
                options,
                r#"<label for="patient-{i}"><input type="radio" id="patient-{i}" name="patient" value="{id}"{checked}> {label}</label>"#,
                id = escape(&p.id),
                label = escape(&p.label),
                checked = if form.patients.len() == 1 {
                    " checked"
                } else {
                    ""
                },
            );
        }
        format!(
            r#"<fieldset>
<legend>Patient</legend>
<label for="patient_query">Find by name, Health ID (HID-…) or patient id</label>
<input type="text" id="patient_query" name="patient_query" value="{query}">
<button type="submit" name="action" value="find">Find patient</button>
{options}</fieldset>"#,
            query = escape(form.patient_query),
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<p>Signed in as <strong>{user}</strong>.</p>
<p><strong>{app}</strong> asks for access. Choose what to share; you can revoke it at any time.</p>
{alert}
<form method="post" action="/oauth/authorize">
{hidden}{picker}
<fieldset>
<legend>Permissions</legend>
{choices}</fieldset>
<button type="submit" name="action" value="approve">Allow</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>"#,
        user = escape(form.user_name),
        app = escape(form.app_name),
        alert = alert(form.error),
        hidden = hidden(form.pairs, form.csrf),
    );
    layout("Allow access", &body)
}

/// One app a user authorised, on the management page.
pub struct AppRow {
    pub grant_id: String,
    pub app_name: String,
    pub scope: String,
    pub since: String,
}

/// The management page: the apps the user authorised, each with a revoke button.
pub fn manage(user_name: &str, csrf: &str, apps: &[AppRow], notice: Option<&str>) -> String {
    let mut rows = String::new();
    for app in apps {
        let _ = writeln!(
            rows,
            r#"<tr><td>{name}</td><td><code>{scope}</code></td><td>{since}</td><td><form method="post" action="/oauth/manage">{hidden}<input type="hidden" name="action" value="revoke"><input type="hidden" name="grant" value="{id}"><button type="submit" aria-label="Revoke access of {name}">Revoke</button></form></td></tr>"#,
            name = escape(&app.app_name),
            scope = escape(&app.scope),
            since = escape(&app.since),
            id = escape(&app.grant_id),
            hidden = hidden(&[], csrf),
        );
    }
    let table = if apps.is_empty() {
        "<p>No app has access to your data.</p>".to_string()
    } else {
        format!(
            r#"<table><caption>Apps with access</caption><thead><tr><th scope="col">App</th><th scope="col">Permissions</th><th scope="col">Since</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead><tbody>
{rows}</tbody></table>"#
        )
    };
    let notice = notice
        .map(|n| format!(r#"<p role="status">{}</p>"#, escape(n)))
        .unwrap_or_default();
    layout(
        "Connected apps",
        &format!(
            "<p>Signed in as <strong>{}</strong>.</p>\n{notice}\n{table}",
            escape(user_name)
        ),
    )
}

/// An error page (no redirect was safe).
pub fn error(message: &str) -> String {
    layout(
        "The request cannot be completed",
        &format!(
            r#"<p class="alert" role="alert">{}</p><p>Return to the app and try again.</p>"#,
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_break_out() {
        assert_eq!(
            escape(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        let page = error("<img src=x onerror=alert(1)>");
        assert!(!page.contains("<img"));
    }

    #[test]
    fn forms_carry_the_request_and_the_csrf_token() {
        let page = sign_in(&SignInForm {
            action: "/oauth/authorize",
            purpose: "Sign in",
            pairs: &[("state", "a\"b")],
            csrf: "tok",
            identifier: "",
            ask_code: false,
            error: None,
        });
        assert!(page.contains(r#"name="state" value="a&quot;b""#));
        assert!(page.contains(r#"name="csrf" value="tok""#));
        assert!(page.contains(r#"<label for="password">"#));
        assert!(!page.contains("second_factor"));
    }
}
