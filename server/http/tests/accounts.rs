//! First-party accounts (`/api/auth`) against the real binary on both engines, with a real SMTP
//! listener capturing the mail: registration and verification, sign-in, tokens (introspection,
//! refresh rotation and reuse), sessions, sign-out, password policy, lockout and back-off,
//! password reset and change, TOTP with recovery codes, admins' required 2FA, admin-created
//! doctors, pharmacists pending approval, `curanet user create`, and security events without
//! secrets.

// The shared fixtures serve several test files; this one does not use all of them.
#[allow(dead_code)]
#[macro_use]
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::mail::MailCatcher;
use common::smart::now;
use common::{Database, Process};
use curanet_auth::totp::{TotpSecret, totp_code};
use curanet_http::testing::TestBackend;
use serde_json::{Value, json};

on_both_backends!(patient_registration_sessions_and_tokens, patient_lifecycle);
on_both_backends!(password_policy_lockout_and_reset, lockout_and_reset);
on_both_backends!(
    two_factor_admins_doctors_and_pharmacists,
    two_factor_and_staff
);

const PASSWORD: &str = "correct horse battery";

/// `--production` refuses to start without a pepper of 16 bytes and a key-encryption key.
#[test]
fn production_mode_needs_a_pepper_and_a_key_encryption_key() {
    let dir = std::env::temp_dir().join(format!("curanet-prod-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("p.db").display());
    let serve = |pepper: Option<&str>, kek: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_curanet"));
        command
            .args([
                "serve",
                "--production",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                &url,
            ])
            .env("RUST_LOG", "error")
            .env("CURANET_REQUIRE_AUTH", "true")
            .env_remove("CURANET_PASSWORD_PEPPER")
            .env_remove("CURANET_KEY_ENCRYPTION_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = pepper {
            command.env("CURANET_PASSWORD_PEPPER", p);
        }
        if let Some(k) = kek {
            command.env("CURANET_KEY_ENCRYPTION_KEY", k);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr)
    };
    let kek = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    assert!(serve(None, Some(kek)).contains("CURANET_PASSWORD_PEPPER"));
    assert!(serve(Some("too short"), Some(kek)).contains("CURANET_PASSWORD_PEPPER"));
    assert!(serve(Some("a pepper of enough bytes"), None).contains("CURANET_KEY_ENCRYPTION_KEY"));
    let _ = std::fs::remove_dir_all(dir);
}

/// A server with its SMTP relay pointed at a [`MailCatcher`].
struct Env {
    server: Process,
    mail: MailCatcher,
    client: reqwest::Client,
}

impl Env {
    async fn start(database_url: &str) -> Env {
        let mail = MailCatcher::start().await;
        let server = Process::start(database_url, &["--smtp-url", &mail.url]).await;
        Env {
            server,
            mail,
            client: reqwest::Client::new(),
        }
    }

    fn root(&self) -> String {
        self.server.base.trim_end_matches("/fhir").to_string()
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/auth/{path}", self.root())
    }

    /// POST JSON, with an optional bearer token: (status, headers, body).
    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .client
            .post(self.api(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(self.api(path));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str, token: &str) -> u16 {
        let r = self
            .client
            .delete(self.api(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// Signs in; (status, body).
    async fn login(&self, identifier: &str, password: &str, code: Option<&str>) -> (u16, Value) {
        let mut body = json!({"identifier": identifier, "password": password});
        if let Some(c) = code {
            body["code"] = json!(c);
        }
        let (status, headers, body) = self.post("login", None, &body).await;
        assert_eq!(
            headers.get("cache-control").and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "login answers are never cached"
        );
        (status, body)
    }

    /// Signs in and expects tokens.
    async fn tokens(&self, identifier: &str, password: &str, code: Option<&str>) -> Value {
        let (status, body) = self.login(identifier, password, code).await;
        assert_eq!(status, 200, "login of {identifier}: {body}");
        body
    }

    async fn introspect(&self, token: &str) -> Value {
        self.client
            .post(format!("{}/oauth/introspect", self.root()))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Registers a patient and proves the email with the mailed token; the account JSON.
    async fn registered_patient(&self, email: &str, password: &str) -> Value {
        let (status, _, account) = self
            .post(
                "register",
                None,
                &json!({
                    "email": email,
                    "password": password,
                    "name": {"given": ["Asha"], "family": "Rao"},
                    "birthDate": "1990-04-30",
                    "gender": "female",
                }),
            )
            .await;
        assert_eq!(status, 201, "{account}");
        let mail = self.mail.nth_to(email, 1).await;
        let (status, _, body) = self
            .post("verify", None, &json!({"token": mail.token()}))
            .await;
        assert_eq!(status, 200, "{body}");
        account
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

async fn patient_lifecycle(backend: TestBackend) {
    let Some(db) = Database::create(backend, "accounts_patient").await else {
        return;
    };
    let env = Env::start(&db.url).await;
    let email = "asha.rao@example.in";

    // Register: the account links to a new Patient; the email is not yet proven.
    let (status, headers, account) = env
        .post(
            "register",
            None,
            &json!({
                "email": "  Asha.Rao@Example.IN ",
                "phone": "+91 98765 43210",
                "password": PASSWORD,
                "name": "Asha Rao",
                "birthDate": "1990-04-30",
                "gender": "female",
            }),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(account["email"], email);
    assert_eq!(account["phone"], "+919876543210");
    assert_eq!(account["role"], "patient");
    assert_eq!(account["emailVerified"], false);
    let fhir_user = s(&account["fhirUser"]).to_string();
    let patient_id = fhir_user.strip_prefix("Patient/").unwrap().to_string();

    // The same email again: 409; a malformed phone: 400.
    let (status, _, body) = env
        .post(
            "register",
            None,
            &json!({"email": email, "password": PASSWORD, "name": "Other Person"}),
        )
        .await;
    assert_eq!((status, s(&body["error"])), (409, "already_registered"));
    let (status, _, body) = env
        .post(
            "register",
            None,
            &json!({"phone": "12", "password": PASSWORD, "name": "X Y"}),
        )
        .await;
    assert_eq!((status, s(&body["error"])), (400, "invalid_request"));
    // Not JSON at all: 400, never 500.
    let r = env
        .client
        .post(env.api("register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Before verification the password is right but the email is unproven.
    let (status, body) = env.login(email, PASSWORD, None).await;
    assert_eq!((status, s(&body["error"])), (403, "unverified"));

    // The verification mail went through real SMTP; its token works once.
    let mail = env.mail.nth_to(email, 1).await;
    assert!(mail.header("subject").unwrap().contains("Confirm"));
    assert!(!mail.data.contains(PASSWORD));
    let token = mail.token();
    assert!(token.len() >= 40, "a long token for email links: {token}");
    let (status, _, body) = env.post("verify", None, &json!({"token": token})).await;
    assert_eq!((status, &body["verified"]), (200, &json!("email")));
    let (status, _, body) = env.post("verify", None, &json!({"token": token})).await;
    assert_eq!((status, s(&body["error"])), (400, "invalid_code"));
    // A wrong SMS code is refused.
    let (status, _, _) = env
        .post(
            "verify",
            None,
            &json!({"phone": "+919876543210", "code": "000000"}),
        )
        .await;
    assert_eq!(status, 400);

    // Sign in: a Bearer access token for the patient's own compartment.
    let t = env.tokens(email, PASSWORD, None).await;
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["expires_in"].as_i64().unwrap() <= 900);
    assert_eq!(t["patient"], patient_id.as_str());
    assert!(s(&t["fhirUser"]).ends_with(&fhir_user));
    assert!(
        s(&t["scope"])
            .split(' ')
            .all(|scope| scope.starts_with("patient/")),
        "{}",
        t["scope"]
    );
    assert!(t["refresh_token"].is_string() && t["session_id"].is_string());
    let access = s(&t["access_token"]).to_string();

    // The token verifies at the authorization server with its context...
    let info = env.introspect(&access).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["scope"], t["scope"]);
    assert_eq!(info["patient"], patient_id.as_str());
    assert!(s(&info["fhirUser"]).ends_with(&fhir_user));
    // ...and reads the patient's own resource, which carries a Health ID and the contacts.
    let r = env
        .client
        .get(format!("{}/Patient/{patient_id}", env.server.base))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let patient: Value = r.json().await.unwrap();
    assert_eq!(patient["birthDate"], "1990-04-30");
    assert_eq!(patient["name"][0]["family"], "Rao");
    assert!(
        patient["identifier"][0]["value"]
            .as_str()
            .unwrap()
            .starts_with("HID-")
    );
    assert!(patient["telecom"].to_string().contains(email));

    // me
    let (status, me) = env.get("me", Some(&access)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], email);
    assert_eq!(me["emailVerified"], true);
    assert_eq!(me["twoFactorEnabled"], false);
    assert!(me.get("password_hash").is_none() && !me.to_string().contains("argon2"));
    let (status, body) = env.get("me", None).await;
    assert_eq!((status, s(&body["error"])), (401, "invalid_token"));
    let (status, _) = env.get("me", Some("not-a-token")).await;
    assert_eq!(status, 401);

    // Refresh rotates; the rotated-out token presented again ends the session.
    let r1 = s(&t["refresh_token"]).to_string();
    let (status, _, t2) = env
        .post("refresh", None, &json!({"refresh_token": r1}))
        .await;
    assert_eq!(status, 200, "{t2}");
    let r2 = s(&t2["refresh_token"]).to_string();
    assert_ne!(r1, r2);
    assert_eq!(t2["session_id"], t["session_id"]);
    assert_eq!(t2["patient"], patient_id.as_str());
    let (status, _, body) = env
        .post("refresh", None, &json!({"refresh_token": r1}))
        .await;
    assert_eq!((status, s(&body["error"])), (401, "invalid_token"));
    let (status, _, _) = env
        .post("refresh", None, &json!({"refresh_token": r2}))
        .await;
    assert_eq!(status, 401, "reuse revoked the whole session");

    // Sessions: two devices, one revoked from the other.
    let phone_login = env
        .post(
            "login",
            None,
            &json!({"phone": "9876543210", "password": PASSWORD, "device": "Pixel 8"}),
        )
        .await;
    // The phone is not verified: phone sign-in is refused.
    assert_eq!(phone_login.0, 403);
    let a = env.tokens(email, PASSWORD, None).await;
    let (_, _, b) = env
        .post(
            "login",
            None,
            &json!({"identifier": email, "password": PASSWORD, "device": "Pixel 8"}),
        )
        .await;
    let access_a = s(&a["access_token"]);
    let (status, list) = env.get("sessions", Some(access_a)).await;
    assert_eq!(status, 200);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{list}");
    let pixel = sessions
        .iter()
        .find(|x| x["device"] == "Pixel 8")
        .expect("the device name is listed");
    assert_eq!(pixel["id"], b["session_id"]);
    assert_eq!(pixel["ip"], "127.0.0.1");
    assert!(pixel["lastSeen"].as_i64().unwrap() > 0);
    assert_eq!(
        env.delete(&format!("sessions/{}", s(&b["session_id"])), access_a)
            .await,
        204
    );
    assert_eq!(
        env.delete(&format!("sessions/{}", s(&b["session_id"])), access_a)
            .await,
        404
    );
    let (status, _, _) = env
        .post(
            "refresh",
            None,
            &json!({"refresh_token": b["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 401, "a revoked session's refresh token is dead");
    let (_, list) = env.get("sessions", Some(access_a)).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);

    // Sign-out ends the session.
    let (status, headers, _) = env
        .post(
            "logout",
            None,
            &json!({"refresh_token": a["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(headers["cache-control"], "no-store");
    let (status, _, _) = env
        .post(
            "refresh",
            None,
            &json!({"refresh_token": a["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 401);
    // ... and its access token with it, at once.
    let info = env.introspect(access_a).await;
    assert_eq!(
        info,
        json!({"active": false}),
        "the access token outlived sign-out"
    );

    // Change password: needs the current one, obeys the policy, ends the other sessions.
    let c = env.tokens(email, PASSWORD, None).await;
    let other = env.tokens(email, PASSWORD, None).await;
    let access_c = s(&c["access_token"]);
    let new_password = "a much better passphrase";
    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new, "session_id": c["session_id"]});
    let (status, _, body) = env
        .post(
            "password/change",
            Some(access_c),
            &change("wrong password!", new_password),
        )
        .await;
    assert_eq!((status, s(&body["error"])), (401, "invalid_credentials"));
    let (status, _, body) = env
        .post(
            "password/change",
            Some(access_c),
            &change(PASSWORD, "short"),
        )
        .await;
    assert_eq!((status, s(&body["error"])), (400, "weak_password"));
    let (status, _, body) = env
        .post(
            "password/change",
            Some(access_c),
            &change(PASSWORD, new_password),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = env
        .post(
            "refresh",
            None,
            &json!({"refresh_token": other["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 401, "other sessions end on a password change");
    let (status, _, _) = env
        .post(
            "refresh",
            None,
            &json!({"refresh_token": c["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 200, "the caller's own session stays");
    assert_eq!(env.login(email, PASSWORD, None).await.0, 401);
    env.tokens(email, new_password, None).await;

    // Security events: recorded, and no secret in them.
    let secrets = [
        PASSWORD.to_string(),
        new_password.to_string(),
        token.clone(),
        r1.clone(),
        r2.clone(),
        access.clone(),
    ];
    let events = security_events(&env, &db.url).await;
    let text = Value::from(events.clone()).to_string();
    for kind in [
        "registered",
        "email_verified",
        "login",
        "refresh_token_reused",
        "session_revoked",
        "logout",
        "password_changed",
        "login_failed",
    ] {
        assert!(
            events.iter().any(|e| e["kind"] == kind),
            "no {kind} event in {text}"
        );
    }
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the security events"
        );
    }
    drop(env);
    db.remove().await;
}

/// The security events as stored (read with the storage layer, on either engine).
async fn security_events(_env: &Env, database_url: &str) -> Vec<Value> {
    let options = curanet_storage::StoreOptions {
        read_cache_bytes: 0,
    };
    let (store, auth) = curanet_storage::open_with_auth(database_url, &options)
        .await
        .unwrap();
    let events = auth.list_security_events(None, None, 1000).await.unwrap();
    store.close().await;
    events
        .into_iter()
        .map(|e| json!({"kind": e.kind, "account": e.account_id, "ip": e.ip, "detail": e.detail}))
        .collect()
}

async fn lockout_and_reset(backend: TestBackend) {
    let Some(db) = Database::create(backend, "accounts_lockout").await else {
        return;
    };
    let env = Env::start(&db.url).await;
    let email = "ravi@example.in";

    // The password policy: length, common passwords, the email itself.
    for (password, why) in [
        ("short", "characters"),
        ("password123", "common"),
        ("ravi@example.in", "email"),
    ] {
        let (status, _, body) = env
            .post(
                "register",
                None,
                &json!({"email": email, "password": password, "name": "Ravi Kumar"}),
            )
            .await;
        assert_eq!(
            (status, s(&body["error"])),
            (400, "weak_password"),
            "{password}"
        );
        assert!(s(&body["error_description"]).contains(why), "{body}");
    }
    env.registered_patient(email, PASSWORD).await;
    let before = env.tokens(email, PASSWORD, None).await;

    // A wrong password and an unknown account answer alike.
    let (status_wrong, wrong) = env.login(email, "not the password", None).await;
    let (status_unknown, unknown) = env
        .login("nobody@example.in", "not the password", None)
        .await;
    assert_eq!((status_wrong, status_unknown), (401, 401));
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"], "invalid_credentials");

    // Failures 2 and 3 pass; then the back-off (1 s, then 2 s), then the lock at 5.
    for identifier in [email, "nobody@example.in"] {
        for _ in 0..2 {
            assert_eq!(env.login(identifier, "not the password", None).await.0, 401);
        }
        let (status, headers, body) = env
            .post(
                "login",
                None,
                &json!({"identifier": identifier, "password": "not the password"}),
            )
            .await;
        assert_eq!(
            (status, s(&body["error"])),
            (429, "slow_down"),
            "{identifier}"
        );
        assert_eq!(headers["retry-after"], "2");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(env.login(identifier, "not the password", None).await.0, 401);
        let (status, headers, _) = env
            .post(
                "login",
                None,
                &json!({"identifier": identifier, "password": "not the password"}),
            )
            .await;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "3");
        tokio::time::sleep(Duration::from_millis(3100)).await;
        assert_eq!(env.login(identifier, "not the password", None).await.0, 401);
        // Locked now: even the right password is refused, for 15 minutes.
        let (status, headers, body) = env
            .post(
                "login",
                None,
                &json!({"identifier": identifier, "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            (status, s(&body["error"])),
            (423, "account_locked"),
            "{identifier}"
        );
        let retry: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((890..=900).contains(&retry), "{retry}");
    }

    // Reset: the same answer for unknown accounts; the mail's token works once.
    let (status, _, known) = env
        .post("password/forgot", None, &json!({"email": email}))
        .await;
    let (status2, _, unknown) = env
        .post(
            "password/forgot",
            None,
            &json!({"email": "nobody@example.in"}),
        )
        .await;
    assert_eq!((status, status2), (202, 202));
    assert_eq!(known, unknown);
    let mail = env.mail.nth_to(email, 2).await;
    assert!(mail.header("subject").unwrap().contains("Reset"));
    let token = mail.token();
    let new_password = "a fresh start at last";
    let (status, _, body) = env
        .post(
            "password/reset",
            None,
            &json!({"token": token, "password": "short"}),
        )
        .await;
    assert_eq!((status, s(&body["error"])), (400, "weak_password"));
    let (status, _, body) = env
        .post(
            "password/reset",
            None,
            &json!({"token": "made-up-token", "password": new_password}),
        )
        .await;
    assert_eq!((status, s(&body["error"])), (400, "invalid_code"));
    let (status, _, body) = env
        .post(
            "password/reset",
            None,
            &json!({"token": token, "password": new_password}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = env
        .post(
            "password/reset",
            None,
            &json!({"token": token, "password": "yet another passphrase"}),
        )
        .await;
    assert_eq!(status, 400, "a reset token works once");
    // The reset ended every session and lifted the lock.
    let (status, _, _) = env
        .post(
            "refresh",
            None,
            &json!({"refresh_token": before["refresh_token"]}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(env.login(email, PASSWORD, None).await.0, 401);
    env.tokens(email, new_password, None).await;

    let events = security_events(&env, &db.url).await;
    let text = Value::from(events.clone()).to_string();
    for kind in ["locked", "password_reset_requested", "password_reset"] {
        assert!(
            events.iter().any(|e| e["kind"] == kind),
            "no {kind}: {text}"
        );
    }
    for secret in [PASSWORD, new_password, token.as_str(), "not the password"] {
        assert!(!text.contains(secret), "a secret in the security events");
    }
    drop(env);
    db.remove().await;
}

/// Runs `curanet user create` with the password from the environment or standard input.
fn user_create(
    database_url: &str,
    args: &[&str],
    password: &str,
    via_stdin: bool,
) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_curanet"));
    command
        .args(["user", "create", "--database-url", database_url])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !via_stdin {
        command.env("CURANET_NEW_PASSWORD", password);
    }
    let mut child = command.spawn().expect("run curanet user create");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        if via_stdin {
            writeln!(stdin, "{password}").unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

/// The current TOTP code `steps` time steps from now.
fn code(secret: &str, steps: i64) -> String {
    let secret = TotpSecret::from_base32(secret).unwrap();
    totp_code(&secret, now() + steps * 30).unwrap()
}

async fn two_factor_and_staff(backend: TestBackend) {
    let Some(db) = Database::create(backend, "accounts_2fa").await else {
        return;
    };
    // The first admin comes from the command line; a weak password is refused.
    let admin_email = "admin@curanet.in";
    let weak = user_create(
        &db.url,
        &["--role", "admin", "--email", admin_email],
        "password123",
        false,
    );
    assert!(!weak.status.success());
    let admin_password = "a long and careful passphrase";
    let out = user_create(
        &db.url,
        &[
            "--role",
            "admin",
            "--email",
            admin_email,
            "--name",
            "Meera Iyer",
        ],
        admin_password,
        true,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The id is the last line (logs, such as the development-pepper warning, come first).
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let admin_id = stdout.trim().lines().last().unwrap_or_default().to_string();
    assert_eq!(admin_id.len(), 36, "the account id is printed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("two-factor"));

    let env = Env::start(&db.url).await;

    // Without 2FA an admin may only enroll.
    let t = env.tokens(admin_email, admin_password, None).await;
    assert_eq!(t["enrollment_required"], true);
    assert_eq!(t["scope"], "curanet:2fa-enrollment");
    assert!(s(&t["fhirUser"]).contains("/Practitioner/"));
    let limited = s(&t["access_token"]).to_string();
    let (status, body) = env.get("me", Some(&limited)).await;
    assert_eq!((status, s(&body["error"])), (403, "forbidden"));
    let (status, _, _) = env
        .post(
            "accounts",
            Some(&limited),
            &json!({"role": "doctor", "email": "d@x.in", "name": "D X"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, headers, enrollment) = env.post("2fa/enroll", Some(&limited), &json!({})).await;
    assert_eq!(status, 200, "{enrollment}");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(s(&enrollment["otpauth_uri"]).starts_with("otpauth://totp/CuraNet:"));
    let secret = s(&enrollment["secret"]).to_string();
    let (status, _, body) = env
        .post(
            "2fa/confirm",
            Some(&limited),
            &json!({"enrollment": enrollment["enrollment"], "code": "000000"}),
        )
        .await;
    assert_eq!((status, s(&body["error"])), (401, "invalid_second_factor"));
    let (status, _, codes) = env
        .post(
            "2fa/confirm",
            Some(&limited),
            &json!({"enrollment": enrollment["enrollment"], "code": code(&secret, 0)}),
        )
        .await;
    assert_eq!(status, 200, "{codes}");
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);

    // Now the admin signs in with a code and gets full tokens.
    let (status, body) = env.login(admin_email, admin_password, None).await;
    assert_eq!((status, s(&body["error"])), (401, "second_factor_required"));
    let admin = env
        .tokens(admin_email, admin_password, Some(&code(&secret, 1)))
        .await;
    assert!(admin.get("enrollment_required").is_none());
    assert_eq!(admin["scope"], "user/*.cruds");
    let admin_token = s(&admin["access_token"]).to_string();
    let (status, me) = env.get("me", Some(&admin_token)).await;
    assert_eq!((status, &me["twoFactorEnabled"]), (200, &json!(true)));
    // Admins cannot turn 2FA off.
    let (status, _, _) = env
        .post(
            "2fa/disable",
            Some(&admin_token),
            &json!({"code": codes["recovery_codes"][0]}),
        )
        .await;
    assert_eq!(status, 403);

    // The admin creates a doctor: active, linked to a Practitioner with a doctor role.
    let (status, _, doctor) = env
        .post(
            "accounts",
            Some(&admin_token),
            &json!({"role": "doctor", "email": "dr.sen@example.in", "password": "doctor's passphrase",
                    "name": {"given": "Arjun", "family": "Sen"}, "gender": "male"}),
        )
        .await;
    assert_eq!(status, 201, "{doctor}");
    assert_eq!(
        (&doctor["status"], &doctor["emailVerified"]),
        (&json!("active"), &json!(true))
    );
    let practitioner = s(&doctor["fhirUser"]).to_string();
    assert!(practitioner.starts_with("Practitioner/"));
    let roles: Value = env
        .client
        .get(format!(
            "{}/PractitionerRole?practitioner={practitioner}",
            env.server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        roles["entry"][0]["resource"]["code"][0]["coding"][0]["code"],
        "doctor"
    );
    let dr = env
        .tokens("dr.sen@example.in", "doctor's passphrase", None)
        .await;
    assert_eq!(dr["scope"], "user/*.cruds");
    assert!(dr.get("patient").is_none());
    let dr_token = s(&dr["access_token"]).to_string();
    let info = env.introspect(&dr_token).await;
    assert_eq!(info["active"], true);
    assert!(s(&info["fhirUser"]).ends_with(&practitioner));

    // Without a password, the new account gets a code by mail to set one.
    let (status, _, nurse) = env
        .post(
            "accounts",
            Some(&admin_token),
            &json!({"role": "doctor", "email": "dr.bose@example.in", "name": "Rina Bose"}),
        )
        .await;
    assert_eq!(status, 201, "{nurse}");
    let mail = env.mail.nth_to("dr.bose@example.in", 1).await;
    assert!(mail.header("subject").unwrap().contains("Set your"));
    assert_eq!(
        env.login("dr.bose@example.in", "anything at all 1", None)
            .await
            .0,
        401
    );
    let (status, _, _) = env
        .post(
            "password/reset",
            None,
            &json!({"token": mail.token(), "password": "my own passphrase"}),
        )
        .await;
    assert_eq!(status, 200);
    env.tokens("dr.bose@example.in", "my own passphrase", None)
        .await;

    // A pharmacist self-registers: pending until an admin approves.
    let (status, _, pharmacist) = env
        .post(
            "register",
            None,
            &json!({"role": "pharmacist", "email": "pharma@example.in", "password": "dispensing with care 7",
                    "name": "Kavya Nair", "pharmacy": "Apollo Pharmacy"}),
        )
        .await;
    assert_eq!(status, 201, "{pharmacist}");
    assert_eq!(pharmacist["status"], "pending_approval");
    // The link in the mail confirms the address (a GET, answered with a small page).
    let mail = env.mail.nth_to("pharma@example.in", 1).await;
    let link = mail
        .body()
        .lines()
        .find(|l| l.contains("/api/auth/verify?token="))
        .expect("a verification link")
        .trim()
        .to_string();
    let page = env.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("confirmed"));
    let again = env.client.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 400, "the link works once");
    let (status, body) = env
        .login("pharma@example.in", "dispensing with care 7", None)
        .await;
    assert_eq!((status, s(&body["error"])), (403, "pending_approval"));
    let approve = format!("accounts/{}/approve", s(&pharmacist["id"]));
    let (status, _, _) = env.post(&approve, Some(&dr_token), &json!({})).await;
    assert_eq!(status, 403, "only admins approve");
    let (status, _, approved) = env.post(&approve, Some(&admin_token), &json!({})).await;
    assert_eq!((status, &approved["status"]), (200, &json!("active")));
    let (status, _, _) = env.post(&approve, Some(&admin_token), &json!({})).await;
    assert_eq!(status, 409);
    let ph = env
        .tokens("pharma@example.in", "dispensing with care 7", None)
        .await;
    assert!(s(&ph["scope"]).contains("user/MedicationDispense.cruds"));
    // The pharmacy Organization exists once, and the pharmacist's role points at it.
    let orgs: Value = env
        .client
        .get(format!(
            "{}/Organization?identifier=https://curanet.in/fhir/sid/pharmacy|apollo-pharmacy",
            env.server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = orgs["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{orgs}");
    assert_eq!(entries[0]["resource"]["name"], "Apollo Pharmacy");

    // A patient with TOTP: the code, a recovery code once, then off again.
    let (status, _, patient) = env
        .post(
            "accounts",
            Some(&admin_token),
            &json!({"role": "patient", "email": "lata@example.in", "password": PASSWORD, "name": "Lata Das"}),
        )
        .await;
    assert_eq!(status, 201, "{patient}");
    let p = env.tokens("lata@example.in", PASSWORD, None).await;
    let p_token = s(&p["access_token"]).to_string();
    let (_, _, enrollment) = env.post("2fa/enroll", Some(&p_token), &json!({})).await;
    let p_secret = s(&enrollment["secret"]).to_string();
    let (status, _, p_codes) = env
        .post(
            "2fa/confirm",
            Some(&p_token),
            &json!({"enrollment": enrollment["enrollment"], "code": code(&p_secret, 0)}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = env.post("2fa/enroll", Some(&p_token), &json!({})).await;
    assert_eq!(status, 409, "already on");
    let (status, body) = env.login("lata@example.in", PASSWORD, None).await;
    assert_eq!((status, s(&body["error"])), (401, "second_factor_required"));
    let recovery = s(&p_codes["recovery_codes"][3]).to_string();
    env.tokens("lata@example.in", PASSWORD, Some(&recovery))
        .await;
    let (status, body) = env
        .login("lata@example.in", PASSWORD, Some(&recovery))
        .await;
    assert_eq!(
        (status, s(&body["error"])),
        (401, "invalid_second_factor"),
        "recovery codes work once"
    );
    let with_code = env
        .tokens("lata@example.in", PASSWORD, Some(&code(&p_secret, 1)))
        .await;
    let p_token = s(&with_code["access_token"]).to_string();
    let (status, body) = env
        .login("lata@example.in", PASSWORD, Some(&code(&p_secret, 1)))
        .await;
    assert_eq!(
        (status, s(&body["error"])),
        (401, "invalid_second_factor"),
        "a TOTP code works once"
    );
    let (status, _, _) = env
        .post("2fa/disable", Some(&p_token), &json!({"code": "123456"}))
        .await;
    assert_eq!(status, 401);
    let (status, _, _) = env
        .post(
            "2fa/disable",
            Some(&p_token),
            &json!({"code": p_codes["recovery_codes"][5]}),
        )
        .await;
    assert_eq!(status, 200);
    env.tokens("lata@example.in", PASSWORD, None).await;

    let events = security_events(&env, &db.url).await;
    let text = Value::from(events.clone()).to_string();
    for kind in [
        "totp_enabled",
        "totp_disabled",
        "recovery_code_used",
        "account_created",
        "approved",
    ] {
        assert!(
            events.iter().any(|e| e["kind"] == kind),
            "no {kind}: {text}"
        );
    }
    for secret in [
        admin_password,
        PASSWORD,
        secret.as_str(),
        p_secret.as_str(),
        recovery.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret in the security events");
    }
    drop(env);
    db.remove().await;
}
