//! [`AuthStore`] against a real SQLite file and a real PostgreSQL database: every method, the
//! uniqueness rules, and the single-use operations raced by concurrent tasks. Each scenario runs
//! on both engines; without PostgreSQL the PostgreSQL half says so and skips (unless
//! `CURANET_REQUIRE_POSTGRES=1`).

use std::path::PathBuf;
use std::sync::Arc;

use curanet_storage::testing::ThrowawayPostgres;
use curanet_storage::{
    AccountStatus, AuthStore, AuthorizationCode, Channel, ClientKind, CodePurpose, CodeTake,
    FailureScope, LaunchContext, LoginFailure, NewAccount, NewGrant, NewSecurityEvent, NewSession,
    NewVerificationCode, OAuthClient, Role, Rotation, SigningKeyRecord, Store, StoreError,
    StoreOptions, open_with_auth,
};
use serde_json::json;

/// A fixed "now" (2026-01-01T00:00:00Z) in microseconds; tests move time by adding to it.
const NOW: i64 = 1_767_225_600_000_000;
const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// One engine's store for one test.
struct Db {
    store: Arc<dyn Store>,
    auth: Arc<dyn AuthStore>,
    pg: Option<ThrowawayPostgres>,
    dir: Option<PathBuf>,
}

impl Db {
    async fn sqlite(label: &str) -> Db {
        let dir = std::env::temp_dir().join(format!("curanet-{label}-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", dir.join("db.sqlite").display());
        let (store, auth) = open_with_auth(&url, &StoreOptions::default())
            .await
            .expect("open SQLite");
        Db {
            store,
            auth,
            pg: None,
            dir: Some(dir),
        }
    }

    async fn postgres(label: &str) -> Option<Db> {
        let pg = ThrowawayPostgres::create(label).await?;
        let (store, auth) = open_with_auth(&pg.url, &StoreOptions::default())
            .await
            .expect("open PostgreSQL");
        Some(Db {
            store,
            auth,
            pg: Some(pg),
            dir: None,
        })
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some(pg) = self.pg {
            pg.drop_database().await;
        }
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs a scenario `async fn name(Arc<dyn AuthStore>)` as two tests, `name::sqlite` and
/// `name::postgres`.
macro_rules! on_both_engines {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::Db::sqlite(stringify!($name)).await;
                super::$name(db.auth.clone()).await;
                db.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = super::Db::postgres(stringify!($name)).await else {
                    return;
                };
                super::$name(db.auth.clone()).await;
                db.finish().await;
            }
        }
    )+};
}

on_both_engines!(
    accounts,
    two_factor_and_lockout,
    verification_codes,
    sessions,
    clients,
    authorization_codes,
    codes_taken_concurrently,
    refresh_tokens,
    refresh_rotation_raced,
    launch_contexts,
    signing_keys,
    client_assertion_jtis,
    login_failures_and_events,
    purge,
);

fn new_account(id: &str, email: Option<&str>, phone: Option<&str>) -> NewAccount {
    NewAccount {
        id: id.to_string(),
        role: Role::Patient,
        email: email.map(str::to_string),
        phone: phone.map(str::to_string),
        email_verified: false,
        phone_verified: false,
        password_hash: Some(format!("$argon2id$v=19$hash-of-{id}")),
        fhir_user: None,
        status: AccountStatus::Active,
        created_at: NOW,
    }
}

fn client(client_id: &str) -> OAuthClient {
    OAuthClient {
        client_id: client_id.to_string(),
        name: format!("App {client_id}"),
        kind: ClientKind::Public,
        secret_hash: None,
        redirect_uris: vec![format!("https://{client_id}.example/callback")],
        jwks: None,
        jwks_url: None,
        scope: "launch/patient patient/*.rs openid fhirUser offline_access".to_string(),
        allowed_origins: vec![format!("https://{client_id}.example")],
        created_by: None,
        created_at: NOW,
    }
}

fn code(code_hash: &str, client_id: &str, account_id: &str, expires_at: i64) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: code_hash.to_string(),
        client_id: client_id.to_string(),
        account_id: account_id.to_string(),
        redirect_uri: format!("https://{client_id}.example/callback"),
        scope: "launch/patient patient/Observation.rs openid".to_string(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_string(),
        context: json!({"patient": "p1", "need_patient_banner": true}),
        nonce: Some("n-0S6_WzA2Mj".to_string()),
        session_id: None,
        created_at: NOW,
        expires_at,
    }
}

/// An account `a1` and a client `app`, which grants need.
async fn account_and_client(s: &dyn AuthStore) {
    s.create_account(new_account("a1", Some("asha@example.in"), None))
        .await
        .unwrap();
    s.register_client(client("app")).await.unwrap();
}

/// A grant of `a1` to `app`.
async fn grant(s: &dyn AuthStore, session_id: Option<&str>) -> curanet_storage::Grant {
    s.create_grant(NewGrant {
        client_id: "app".to_string(),
        account_id: "a1".to_string(),
        scope: "patient/*.rs offline_access".to_string(),
        context: json!({"patient": "p1"}),
        session_id: session_id.map(str::to_string),
        created_at: NOW,
    })
    .await
    .unwrap()
}

fn duplicate_of(result: Result<(), StoreError>) -> &'static str {
    match result {
        Err(StoreError::Duplicate { what }) => what,
        other => panic!("expected a duplicate, got {other:?}"),
    }
}

async fn accounts(s: Arc<dyn AuthStore>) {
    let s = &*s;
    s.create_account(new_account(
        "a1",
        Some("asha@example.in"),
        Some("+919800000001"),
    ))
    .await
    .unwrap();
    // Without email or phone, any number of accounts (NULL is not a duplicate).
    s.create_account(new_account("a2", None, None))
        .await
        .unwrap();
    s.create_account(new_account("a3", None, None))
        .await
        .unwrap();

    let taken = |id, email: Option<&str>, phone: Option<&str>| {
        let account = new_account(id, email, phone);
        async move { duplicate_of(s.create_account(account).await) }
    };
    assert_eq!(taken("b", Some("asha@example.in"), None).await, "email");
    assert_eq!(taken("b", None, Some("+919800000001")).await, "phone");
    assert_eq!(
        taken("a2", Some("new@example.in"), None).await,
        "account id"
    );
    assert!(s.get_account("b").await.unwrap().is_none());

    let a = s.get_account("a1").await.unwrap().unwrap();
    assert_eq!(a.role, Role::Patient);
    assert_eq!(a.email.as_deref(), Some("asha@example.in"));
    assert_eq!(a.phone.as_deref(), Some("+919800000001"));
    assert!(!a.email_verified && !a.phone_verified);
    assert_eq!(
        a.password_hash.as_deref(),
        Some("$argon2id$v=19$hash-of-a1")
    );
    assert_eq!(a.status, AccountStatus::Active);
    assert_eq!((a.failed_logins, a.locked_until), (0, None));
    assert!(a.totp_secret.is_none() && a.recovery_code_hashes.is_empty());
    assert_eq!((a.created_at, a.updated_at), (NOW, NOW));
    // Debug output never shows the password hash.
    assert!(!format!("{a:?}").contains("argon2"));
    assert_eq!(
        s.get_account_by_email("asha@example.in").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        s.get_account_by_phone("+919800000001").await.unwrap(),
        Some(a.clone())
    );
    assert!(
        s.get_account_by_email("ASHA@example.in")
            .await
            .unwrap()
            .is_none()
    );

    let later = NOW + HOUR;
    assert!(
        s.set_password_hash("a1", "$argon2id$new", later)
            .await
            .unwrap()
    );
    assert!(s.set_verified("a1", Channel::Email, later).await.unwrap());
    assert!(s.set_verified("a1", Channel::Phone, later).await.unwrap());
    assert!(s.set_fhir_user("a1", "Patient/p1", later).await.unwrap());
    assert!(
        s.set_status("a2", AccountStatus::PendingApproval, later)
            .await
            .unwrap()
    );
    let a = s.get_account("a1").await.unwrap().unwrap();
    assert_eq!(a.password_hash.as_deref(), Some("$argon2id$new"));
    assert!(a.email_verified && a.phone_verified);
    assert_eq!(a.fhir_user.as_deref(), Some("Patient/p1"));
    assert_eq!(a.updated_at, later);
    assert!(!s.set_password_hash("nobody", "x", later).await.unwrap());
    assert!(
        !s.set_status("nobody", AccountStatus::Active, later)
            .await
            .unwrap()
    );

    let ids = |accounts: Vec<curanet_storage::Account>| {
        accounts.into_iter().map(|a| a.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s.list_accounts(None, None, 10).await.unwrap()),
        ["a1", "a2", "a3"]
    );
    assert_eq!(
        ids(s.list_accounts(None, Some("a1"), 1).await.unwrap()),
        ["a2"]
    );
    assert_eq!(
        ids(s
            .list_accounts(Some(AccountStatus::PendingApproval), None, 10)
            .await
            .unwrap()),
        ["a2"]
    );
    assert_eq!(
        ids(s
            .list_accounts(Some(AccountStatus::Active), Some("a1"), 10)
            .await
            .unwrap()),
        ["a3"]
    );
}

async fn two_factor_and_lockout(store: Arc<dyn AuthStore>) {
    let s = &*store;
    s.create_account(new_account("a1", Some("asha@example.in"), None))
        .await
        .unwrap();
    // Off: no time step is accepted.
    assert!(!s.accept_totp_step("a1", 100).await.unwrap());

    let sealed = vec![1u8, 0, 255, 42, 7];
    let codes = vec!["h1".to_string(), "h2".to_string()];
    assert!(
        s.set_totp("a1", Some(sealed.clone()), codes.clone(), NOW)
            .await
            .unwrap()
    );
    let a = s.get_account("a1").await.unwrap().unwrap();
    assert_eq!(a.totp_secret.as_deref(), Some(sealed.as_slice()));
    assert_eq!(a.recovery_code_hashes, codes);
    assert!(!format!("{a:?}").contains("h1"));

    assert!(s.accept_totp_step("a1", 100).await.unwrap());
    assert!(!s.accept_totp_step("a1", 100).await.unwrap(), "replay");
    assert!(!s.accept_totp_step("a1", 99).await.unwrap(), "older step");
    assert!(s.accept_totp_step("a1", 101).await.unwrap());
    assert_eq!(
        s.get_account("a1").await.unwrap().unwrap().totp_last_step,
        Some(101)
    );

    assert!(s.use_recovery_code("a1", "h2", NOW).await.unwrap());
    assert!(!s.use_recovery_code("a1", "h2", NOW).await.unwrap(), "used");
    assert!(!s.use_recovery_code("a1", "h9", NOW).await.unwrap());
    assert!(!s.use_recovery_code("nobody", "h1", NOW).await.unwrap());
    assert_eq!(
        s.get_account("a1")
            .await
            .unwrap()
            .unwrap()
            .recovery_code_hashes,
        ["h1"]
    );
    assert!(
        s.set_recovery_codes("a1", vec!["h3".to_string()], NOW)
            .await
            .unwrap()
    );
    assert!(s.use_recovery_code("a1", "h3", NOW).await.unwrap());

    // Turning it off forgets the secret and the last step; a new secret starts again.
    assert!(s.set_totp("a1", None, Vec::new(), NOW).await.unwrap());
    let a = s.get_account("a1").await.unwrap().unwrap();
    assert_eq!((a.totp_secret, a.totp_last_step), (None, None));
    assert!(!s.accept_totp_step("a1", 200).await.unwrap());
    assert!(
        s.set_totp("a1", Some(sealed), Vec::new(), NOW)
            .await
            .unwrap()
    );
    assert!(s.accept_totp_step("a1", 50).await.unwrap());

    // Concurrent checks of one code: exactly one passes.
    let wins = race(8, |_| {
        let s = store.clone();
        async move { s.accept_totp_step("a1", 60).await.unwrap() }
    })
    .await;
    assert_eq!(wins.iter().filter(|w| **w).count(), 1);

    for expected in 1..=3 {
        assert_eq!(
            s.increment_failed_logins("a1", NOW).await.unwrap(),
            Some(expected)
        );
    }
    assert_eq!(
        s.increment_failed_logins("nobody", NOW).await.unwrap(),
        None
    );
    assert!(s.lock_account("a1", NOW + 15 * MINUTE, NOW).await.unwrap());
    let a = s.get_account("a1").await.unwrap().unwrap();
    assert_eq!(
        (a.failed_logins, a.locked_until),
        (3, Some(NOW + 15 * MINUTE))
    );
    assert!(s.reset_failed_logins("a1", NOW).await.unwrap());
    let a = s.get_account("a1").await.unwrap().unwrap();
    assert_eq!((a.failed_logins, a.locked_until), (0, None));
}

async fn verification_codes(store: Arc<dyn AuthStore>) {
    let s = &*store;
    s.create_account(new_account("a1", Some("asha@example.in"), None))
        .await
        .unwrap();
    s.create_account(new_account("a2", Some("ravi@example.in"), None))
        .await
        .unwrap();
    let issue = |account: &str, purpose, hash: &str, expires_at| NewVerificationCode {
        account_id: account.to_string(),
        purpose,
        code_hash: hash.to_string(),
        created_at: NOW,
        expires_at,
    };
    let later = NOW + 10 * MINUTE;
    s.create_verification_code(issue("a1", CodePurpose::Email, "c1", later))
        .await
        .unwrap();
    // The same short code for another account: both work, each for its own account.
    s.create_verification_code(issue("a2", CodePurpose::Email, "c1", later))
        .await
        .unwrap();

    let take = |purpose, hash: &'static str, account: Option<&'static str>, now| async move {
        s.take_verification_code(purpose, hash, account, now)
            .await
            .unwrap()
    };
    assert_eq!(take(CodePurpose::Email, "c9", Some("a1"), NOW).await, None);
    assert_eq!(take(CodePurpose::Phone, "c1", Some("a1"), NOW).await, None);
    assert_eq!(
        take(CodePurpose::Email, "c1", Some("a1"), NOW).await,
        Some("a1".to_string())
    );
    assert_eq!(
        take(CodePurpose::Email, "c1", Some("a1"), NOW).await,
        None,
        "single use"
    );
    assert_eq!(
        take(CodePurpose::Email, "c1", Some("a2"), NOW).await,
        Some("a2".to_string())
    );

    // Expired.
    s.create_verification_code(issue("a1", CodePurpose::Phone, "p1", NOW + MINUTE))
        .await
        .unwrap();
    assert_eq!(
        take(CodePurpose::Phone, "p1", Some("a1"), NOW + MINUTE).await,
        None
    );

    // A newer code of the same purpose replaces the older one.
    s.create_verification_code(issue("a1", CodePurpose::PasswordReset, "r1", later))
        .await
        .unwrap();
    s.create_verification_code(issue("a1", CodePurpose::PasswordReset, "r2", later))
        .await
        .unwrap();
    assert_eq!(
        take(CodePurpose::PasswordReset, "r1", None, NOW).await,
        None
    );
    // A long reset token is looked up without the account.
    assert_eq!(
        take(CodePurpose::PasswordReset, "r2", None, NOW).await,
        Some("a1".to_string())
    );

    // Raced: exactly one take wins.
    s.create_verification_code(issue("a1", CodePurpose::PasswordReset, "r3", later))
        .await
        .unwrap();
    let wins = race(8, |_| {
        let s = store.clone();
        async move {
            s.take_verification_code(CodePurpose::PasswordReset, "r3", None, NOW)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(wins.iter().flatten().count(), 1, "{wins:?}");
}

async fn sessions(s: Arc<dyn AuthStore>) {
    let s = &*s;
    account_and_client(s).await;
    s.create_account(new_account("a2", None, None))
        .await
        .unwrap();
    let start = |id: &str, account: &str, created_at| NewSession {
        id: id.to_string(),
        account_id: account.to_string(),
        device: Some("Firefox on Linux".to_string()),
        ip: Some("203.0.113.7".to_string()),
        created_at,
        expires_at: created_at + 30 * 24 * HOUR,
    };
    s.create_session(start("s1", "a1", NOW)).await.unwrap();
    s.create_session(start("s2", "a1", NOW + SECOND))
        .await
        .unwrap();
    s.create_session(start("s3", "a1", NOW + 2 * SECOND))
        .await
        .unwrap();
    s.create_session(start("t1", "a2", NOW)).await.unwrap();
    assert_eq!(
        duplicate_of(s.create_session(start("s1", "a2", NOW)).await),
        "session id"
    );

    let s1 = s.get_session("s1").await.unwrap().unwrap();
    assert_eq!(s1.account_id, "a1");
    assert_eq!(s1.device.as_deref(), Some("Firefox on Linux"));
    assert_eq!(
        (s1.created_at, s1.last_seen, s1.revoked_at),
        (NOW, NOW, None)
    );
    assert!(s1.is_active(NOW) && !s1.is_active(s1.expires_at));
    assert!(s.get_session("nope").await.unwrap().is_none());

    // Most recently seen first; touching moves a session up and may change its IP.
    let ids = |sessions: Vec<curanet_storage::Session>| {
        sessions.into_iter().map(|s| s.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s.list_sessions("a1", NOW + MINUTE).await.unwrap()),
        ["s3", "s2", "s1"]
    );
    assert!(
        s.touch_session("s1", Some("198.51.100.1"), NOW + MINUTE)
            .await
            .unwrap()
    );
    assert!(
        s.touch_session("s2", None, NOW + 30 * SECOND)
            .await
            .unwrap()
    );
    let s1 = s.get_session("s1").await.unwrap().unwrap();
    assert_eq!(
        (s1.last_seen, s1.ip.as_deref()),
        (NOW + MINUTE, Some("198.51.100.1"))
    );
    assert_eq!(
        s.get_session("s2").await.unwrap().unwrap().ip.as_deref(),
        Some("203.0.113.7")
    );
    assert_eq!(
        ids(s.list_sessions("a1", NOW + MINUTE).await.unwrap()),
        ["s1", "s2", "s3"]
    );

    // Revoking: only the owner's, once; an `online_access` grant ends with its session.
    let online = grant(s, Some("s1")).await;
    let offline = grant(s, None).await;
    assert!(!s.revoke_session("a2", "s1", NOW).await.unwrap());
    assert!(s.revoke_session("a1", "s1", NOW + HOUR).await.unwrap());
    assert!(!s.revoke_session("a1", "s1", NOW + HOUR).await.unwrap());
    assert!(!s.touch_session("s1", None, NOW + HOUR).await.unwrap());
    assert_eq!(
        s.get_session("s1").await.unwrap().unwrap().revoked_at,
        Some(NOW + HOUR)
    );
    let grant_of = |id: String| async move { s.get_grant(&id).await.unwrap().unwrap() };
    assert_eq!(grant_of(online.id).await.revoked_at, Some(NOW + HOUR));
    assert_eq!(grant_of(offline.id.clone()).await.revoked_at, None);

    // Signing out everywhere else.
    assert_eq!(
        s.revoke_sessions("a1", Some("s3"), NOW + HOUR)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ids(s.list_sessions("a1", NOW + HOUR).await.unwrap()),
        ["s3"]
    );
    assert_eq!(
        ids(s.list_sessions("a2", NOW + HOUR).await.unwrap()),
        ["t1"]
    );
    assert_eq!(s.revoke_sessions("a1", None, NOW + HOUR).await.unwrap(), 1);
    assert!(s.list_sessions("a1", NOW + HOUR).await.unwrap().is_empty());
    assert_eq!(grant_of(offline.id).await.revoked_at, None);

    // Expired sessions are not listed and cannot be touched.
    let expired_at = NOW + 30 * 24 * HOUR;
    assert!(s.list_sessions("a2", expired_at).await.unwrap().is_empty());
    assert!(!s.touch_session("t1", None, expired_at).await.unwrap());
}

async fn clients(s: Arc<dyn AuthStore>) {
    let s = &*s;
    s.register_client(client("zeta")).await.unwrap();
    let backend = OAuthClient {
        kind: ClientKind::Backend,
        jwks: Some(
            json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "x": "AQ", "y": "Ag"}]}),
        ),
        jwks_url: Some("https://lab.example/jwks.json".to_string()),
        scope: "system/Observation.rs".to_string(),
        redirect_uris: Vec::new(),
        created_by: Some("admin1".to_string()),
        ..client("alpha")
    };
    s.register_client(backend.clone()).await.unwrap();
    let secret = OAuthClient {
        kind: ClientKind::ConfidentialSymmetric,
        secret_hash: Some("sha256:abcd".to_string()),
        ..client("zeta")
    };
    assert_eq!(duplicate_of(s.register_client(secret).await), "client_id");

    assert_eq!(s.get_client("alpha").await.unwrap(), Some(backend.clone()));
    assert_eq!(s.get_client("zeta").await.unwrap(), Some(client("zeta")));
    assert!(s.get_client("nope").await.unwrap().is_none());
    let all = s.list_clients().await.unwrap();
    assert_eq!(all, [backend, client("zeta")]);
}

async fn authorization_codes(s: Arc<dyn AuthStore>) {
    let s = &*s;
    account_and_client(s).await;
    s.register_client(client("other")).await.unwrap();
    let issued = code("h1", "app", "a1", NOW + MINUTE);
    s.insert_authorization_code(issued.clone()).await.unwrap();
    assert_eq!(
        duplicate_of(s.insert_authorization_code(issued.clone()).await),
        "authorization code"
    );

    // Another client cannot use (or spend) the code.
    assert_eq!(
        s.take_authorization_code("h1", "other", NOW).await.unwrap(),
        CodeTake::WrongClient
    );
    let CodeTake::Taken {
        code: taken,
        grant: first,
    } = s
        .take_authorization_code("h1", "app", NOW + SECOND)
        .await
        .unwrap()
    else {
        panic!("the code should be taken");
    };
    assert_eq!(*taken, issued);
    assert_eq!(
        (first.client_id.as_str(), first.account_id.as_str()),
        ("app", "a1")
    );
    assert_eq!(first.scope, issued.scope);
    assert_eq!(first.context, issued.context);
    assert_eq!((first.created_at, first.revoked_at), (NOW + SECOND, None));
    assert_eq!(
        s.get_grant(&first.id).await.unwrap().as_ref(),
        Some(&*first)
    );

    // A second exchange names the grant so the caller can revoke it.
    assert_eq!(
        s.take_authorization_code("h1", "app", NOW + 2 * SECOND)
            .await
            .unwrap(),
        CodeTake::AlreadyUsed {
            grant_id: first.id.clone()
        }
    );

    s.insert_authorization_code(code("h2", "app", "a1", NOW + MINUTE))
        .await
        .unwrap();
    assert_eq!(
        s.take_authorization_code("h2", "app", NOW + MINUTE)
            .await
            .unwrap(),
        CodeTake::Expired
    );
    assert_eq!(
        s.take_authorization_code("nope", "app", NOW).await.unwrap(),
        CodeTake::Unknown
    );

    // The grants of the account, newest first; revoked ones drop out.
    let second = grant(s, None).await;
    let listed: Vec<String> = s
        .list_grants("a1")
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(listed, [first.id.clone(), second.id.clone()]);
    assert!(s.revoke_grant(&first.id, NOW + HOUR).await.unwrap());
    assert!(!s.revoke_grant(&first.id, NOW + HOUR).await.unwrap());
    assert!(!s.revoke_grant("nope", NOW).await.unwrap());
    assert_eq!(
        s.get_grant(&first.id).await.unwrap().unwrap().revoked_at,
        Some(NOW + HOUR)
    );
    let listed: Vec<String> = s
        .list_grants("a1")
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(listed, [second.id]);
}

/// Runs `n` tasks at once and collects what each returned.
async fn race<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let work = task(i);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.expect("task"));
    }
    results
}

async fn codes_taken_concurrently(s: Arc<dyn AuthStore>) {
    account_and_client(&*s).await;
    for round in 0..5 {
        let hash = format!("race-{round}");
        s.insert_authorization_code(code(&hash, "app", "a1", NOW + MINUTE))
            .await
            .unwrap();
        let outcomes = race(8, |_| {
            let (s, hash) = (s.clone(), hash.clone());
            async move { s.take_authorization_code(&hash, "app", NOW).await.unwrap() }
        })
        .await;
        let winners: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                CodeTake::Taken { grant, .. } => Some(grant.id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "exactly one exchange wins: {outcomes:?}");
        for outcome in &outcomes {
            match outcome {
                CodeTake::Taken { .. } => {}
                CodeTake::AlreadyUsed { grant_id } => assert_eq!(grant_id, &winners[0]),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(s.get_grant(&winners[0]).await.unwrap().is_some());
    }
}

async fn refresh_tokens(s: Arc<dyn AuthStore>) {
    let s = &*s;
    account_and_client(s).await;
    s.register_client(client("other")).await.unwrap();
    let g = grant(s, None).await;
    s.insert_refresh_token("r1", &g.id, None, NOW)
        .await
        .unwrap();
    assert_eq!(
        duplicate_of(s.insert_refresh_token("r1", &g.id, None, NOW).await),
        "refresh token"
    );
    let (token, found) = s.find_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!(
        (token.grant_id.as_str(), token.used_at, token.replaced_by),
        (g.id.as_str(), None, None)
    );
    assert_eq!(found, g);
    assert!(s.find_refresh_token("nope").await.unwrap().is_none());

    // Bound to its client: another client changes nothing.
    assert_eq!(
        s.rotate_refresh_token("r1", "other", "x", None, NOW)
            .await
            .unwrap(),
        Rotation::WrongClient
    );
    assert_eq!(
        s.rotate_refresh_token("r1", "app", "r2", Some(NOW + 24 * HOUR), NOW + MINUTE)
            .await
            .unwrap(),
        Rotation::Rotated { grant: g.clone() }
    );
    let (old, _) = s.find_refresh_token("r1").await.unwrap().unwrap();
    assert_eq!(
        (old.used_at, old.replaced_by.as_deref()),
        (Some(NOW + MINUTE), Some("r2"))
    );
    let (new, _) = s.find_refresh_token("r2").await.unwrap().unwrap();
    assert_eq!(
        (new.created_at, new.expires_at, new.used_at),
        (NOW + MINUTE, Some(NOW + 24 * HOUR), None)
    );

    // The old token again: reuse, reported with the grant to revoke.
    assert_eq!(
        s.rotate_refresh_token("r1", "app", "r3", None, NOW + 2 * MINUTE)
            .await
            .unwrap(),
        Rotation::Reused {
            grant_id: g.id.clone()
        }
    );
    assert!(s.find_refresh_token("r3").await.unwrap().is_none());
    assert_eq!(
        s.rotate_refresh_token("nope", "app", "r3", None, NOW)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    assert_eq!(
        s.rotate_refresh_token("r2", "app", "r3", None, NOW + 24 * HOUR)
            .await
            .unwrap(),
        Rotation::Expired {
            grant_id: g.id.clone()
        }
    );

    // Revoking the grant ends its tokens.
    assert_eq!(
        s.rotate_refresh_token("r2", "app", "r3", None, NOW + HOUR)
            .await
            .unwrap(),
        Rotation::Rotated { grant: g.clone() }
    );
    assert!(s.revoke_grant(&g.id, NOW + 2 * HOUR).await.unwrap());
    assert_eq!(
        s.rotate_refresh_token("r3", "app", "r4", None, NOW + 3 * HOUR)
            .await
            .unwrap(),
        Rotation::Revoked {
            grant_id: g.id.clone()
        }
    );
    let (_, revoked) = s.find_refresh_token("r3").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(NOW + 2 * HOUR));
}

async fn refresh_rotation_raced(s: Arc<dyn AuthStore>) {
    account_and_client(&*s).await;
    let g = grant(&*s, None).await;
    s.insert_refresh_token("r0", &g.id, None, NOW)
        .await
        .unwrap();
    let mut current = "r0".to_string();
    for round in 1..=5 {
        let outcomes = race(6, |i| {
            let (s, old) = (s.clone(), current.clone());
            async move {
                let new = format!("r{round}-{i}");
                let outcome = s
                    .rotate_refresh_token(&old, "app", &new, None, NOW + round)
                    .await
                    .unwrap();
                (new, outcome)
            }
        })
        .await;
        let winners: Vec<&String> = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Rotation::Rotated { .. }))
            .map(|(new, _)| new)
            .collect();
        assert_eq!(winners.len(), 1, "exactly one rotation wins: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|(_, o)| matches!(o, Rotation::Rotated { .. } | Rotation::Reused { .. }))
        );
        let (old, _) = s.find_refresh_token(&current).await.unwrap().unwrap();
        assert_eq!(old.replaced_by.as_ref(), Some(winners[0]));
        current = winners[0].clone();
    }
    // Racing a rotation with a revocation: afterwards no token of the grant works.
    let (s2, token) = (s.clone(), current.clone());
    let rotate = tokio::spawn(async move {
        s2.rotate_refresh_token(&token, "app", "last", None, NOW + HOUR)
            .await
            .unwrap()
    });
    assert!(s.revoke_grant(&g.id, NOW + HOUR).await.unwrap());
    let _ = rotate.await.unwrap();
    for token in [current.as_str(), "last"] {
        if let Some((_, grant)) = s.find_refresh_token(token).await.unwrap() {
            assert!(grant.revoked_at.is_some());
            assert!(!matches!(
                s.rotate_refresh_token(token, "app", "again", None, NOW + 2 * HOUR)
                    .await
                    .unwrap(),
                Rotation::Rotated { .. }
            ));
        }
    }
}

async fn launch_contexts(s: Arc<dyn AuthStore>) {
    let s = &*s;
    let launch = LaunchContext {
        id: "l1".to_string(),
        patient: Some("p1".to_string()),
        encounter: Some("e1".to_string()),
        fhir_context: Some(json!([{"reference": "Appointment/ap1"}])),
        created_by: "doc1".to_string(),
        created_at: NOW,
        expires_at: NOW + 5 * MINUTE,
    };
    s.create_launch_context(launch.clone()).await.unwrap();
    assert_eq!(
        duplicate_of(s.create_launch_context(launch.clone()).await),
        "launch id"
    );
    assert_eq!(
        s.get_launch_context("l1", NOW).await.unwrap(),
        Some(launch.clone())
    );
    assert_eq!(
        s.get_launch_context("l1", NOW).await.unwrap(),
        Some(launch.clone()),
        "reading does not use it"
    );
    assert_eq!(
        s.take_launch_context("l1", NOW).await.unwrap(),
        Some(launch.clone())
    );
    assert_eq!(s.take_launch_context("l1", NOW).await.unwrap(), None);
    assert_eq!(s.get_launch_context("l1", NOW).await.unwrap(), None);

    let bare = LaunchContext {
        id: "l2".to_string(),
        encounter: None,
        fhir_context: None,
        ..launch
    };
    s.create_launch_context(bare.clone()).await.unwrap();
    assert_eq!(s.get_launch_context("l2", NOW).await.unwrap(), Some(bare));
    assert_eq!(
        s.take_launch_context("l2", NOW + 5 * MINUTE).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(s.take_launch_context("nope", NOW).await.unwrap(), None);
}

async fn signing_keys(s: Arc<dyn AuthStore>) {
    let s = &*s;
    let key = |kid: &str, created_at| SigningKeyRecord {
        kid: kid.to_string(),
        algorithm: "RS256".to_string(),
        public_jwk: json!({"kty": "RSA", "kid": kid, "n": "0vx7", "e": "AQAB"}),
        private_key: vec![1, 2, 3, 0, 255],
        created_at,
        retire_at: None,
    };
    s.insert_signing_key(key("k1", NOW)).await.unwrap();
    s.insert_signing_key(key("k2", NOW + HOUR)).await.unwrap();
    assert_eq!(
        duplicate_of(s.insert_signing_key(key("k1", NOW)).await),
        "kid"
    );
    assert_eq!(
        s.list_signing_keys().await.unwrap(),
        [key("k2", NOW + HOUR), key("k1", NOW)]
    );
    assert!(!format!("{:?}", key("k1", NOW)).contains("255"));

    assert!(
        s.retire_signing_key("k1", Some(NOW + 2 * HOUR))
            .await
            .unwrap()
    );
    assert!(!s.retire_signing_key("nope", Some(NOW)).await.unwrap());
    let keys = s.list_signing_keys().await.unwrap();
    assert_eq!(keys[1].retire_at, Some(NOW + 2 * HOUR));
    assert!(s.delete_signing_key("k1").await.unwrap());
    assert!(!s.delete_signing_key("k1").await.unwrap());
    assert_eq!(
        s.list_signing_keys().await.unwrap(),
        [key("k2", NOW + HOUR)]
    );
}

async fn client_assertion_jtis(store: Arc<dyn AuthStore>) {
    let s = &*store;
    let exp = NOW + 5 * MINUTE;
    assert!(
        s.record_client_assertion_jti("lab", "j1", exp, NOW)
            .await
            .unwrap()
    );
    assert!(
        !s.record_client_assertion_jti("lab", "j1", exp, NOW + MINUTE)
            .await
            .unwrap(),
        "replay"
    );
    assert!(
        s.record_client_assertion_jti("pharmacy", "j1", exp, NOW)
            .await
            .unwrap(),
        "another client's jti"
    );
    // Once the assertion has expired its jti is forgotten (its `exp` refuses it anyway).
    assert!(
        s.record_client_assertion_jti("lab", "j1", exp + 5 * MINUTE, exp)
            .await
            .unwrap()
    );

    let outcomes = race(8, |_| {
        let s = store.clone();
        async move {
            s.record_client_assertion_jti("lab", "raced", exp, NOW)
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(outcomes.iter().filter(|new| **new).count(), 1);
}

async fn login_failures_and_events(s: Arc<dyn AuthStore>) {
    let s = &*s;
    let fail = |subject: Option<&str>, ip: &str, at| LoginFailure {
        subject: subject.map(str::to_string),
        ip: Some(ip.to_string()),
        at,
    };
    for minute in 0..5 {
        s.record_login_failure(fail(Some("a1"), "203.0.113.7", NOW + minute * MINUTE))
            .await
            .unwrap();
    }
    s.record_login_failure(fail(Some("ghost@example.in"), "203.0.113.7", NOW))
        .await
        .unwrap();
    s.record_login_failure(fail(None, "198.51.100.1", NOW))
        .await
        .unwrap();
    let count = |scope, since| async move { s.count_login_failures(scope, since).await.unwrap() };
    let subject = |x: &str| FailureScope::Subject(x.to_string());
    let ip = |x: &str| FailureScope::Ip(x.to_string());
    assert_eq!(count(subject("a1"), NOW).await, 5);
    assert_eq!(count(subject("a1"), NOW + 3 * MINUTE).await, 2);
    assert_eq!(count(subject("a1"), NOW + 5 * MINUTE).await, 0);
    assert_eq!(count(subject("ghost@example.in"), NOW).await, 1);
    assert_eq!(count(ip("203.0.113.7"), NOW).await, 6);
    assert_eq!(count(ip("203.0.113.7"), NOW + MINUTE).await, 4);
    assert_eq!(count(ip("198.51.100.1"), NOW).await, 1);
    assert_eq!(count(ip("192.0.2.1"), NOW).await, 0);

    let event = |kind: &str, account: Option<&str>, at| NewSecurityEvent {
        at,
        kind: kind.to_string(),
        account_id: account.map(str::to_string),
        ip: Some("203.0.113.7".to_string()),
        detail: json!({"reason": kind, "attempt": 3}),
    };
    let mut ids = Vec::new();
    for (i, (kind, account)) in [
        ("login_failed", Some("a1")),
        ("locked", Some("a1")),
        ("login_failed", None),
        ("login", Some("a2")),
        ("totp_enabled", Some("a1")),
    ]
    .into_iter()
    .enumerate()
    {
        let at = NOW + i64::try_from(i).unwrap() * SECOND;
        ids.push(
            s.append_security_event(event(kind, account, at))
                .await
                .unwrap(),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let kinds = |events: Vec<curanet_storage::SecurityEvent>| {
        events.into_iter().map(|e| e.kind).collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(s.list_security_events(None, None, 10).await.unwrap()),
        [
            "totp_enabled",
            "login",
            "login_failed",
            "locked",
            "login_failed"
        ]
    );
    let mine = s.list_security_events(Some("a1"), None, 2).await.unwrap();
    assert_eq!(kinds(mine.clone()), ["totp_enabled", "locked"]);
    assert_eq!(
        mine[0].detail,
        json!({"reason": "totp_enabled", "attempt": 3})
    );
    assert_eq!(
        (mine[0].at, mine[0].ip.as_deref()),
        (NOW + 4 * SECOND, Some("203.0.113.7"))
    );
    assert_eq!(
        kinds(
            s.list_security_events(Some("a1"), Some(mine[1].id), 10)
                .await
                .unwrap()
        ),
        ["login_failed"]
    );
}

async fn purge(s: Arc<dyn AuthStore>) {
    let s = &*s;
    account_and_client(s).await;
    let day = 24 * HOUR;
    // Ended long ago: an expired code, a used refresh token, a revoked session, old failures.
    s.insert_authorization_code(code("old", "app", "a1", NOW - 2 * day))
        .await
        .unwrap();
    s.insert_authorization_code(code("fresh", "app", "a1", NOW + MINUTE))
        .await
        .unwrap();
    let g = grant(s, None).await;
    s.insert_refresh_token("r1", &g.id, None, NOW - 3 * day)
        .await
        .unwrap();
    s.rotate_refresh_token("r1", "app", "r2", None, NOW - 2 * day)
        .await
        .unwrap();
    s.create_verification_code(NewVerificationCode {
        account_id: "a1".to_string(),
        purpose: CodePurpose::Email,
        code_hash: "v".to_string(),
        created_at: NOW - 3 * day,
        expires_at: NOW - 2 * day,
    })
    .await
    .unwrap();
    s.create_session(NewSession {
        id: "s-old".to_string(),
        account_id: "a1".to_string(),
        device: None,
        ip: None,
        created_at: NOW - 3 * day,
        expires_at: NOW - 2 * day,
    })
    .await
    .unwrap();
    s.create_session(NewSession {
        id: "s-live".to_string(),
        account_id: "a1".to_string(),
        device: None,
        ip: None,
        created_at: NOW,
        expires_at: NOW + day,
    })
    .await
    .unwrap();
    s.record_login_failure(LoginFailure {
        subject: Some("a1".to_string()),
        ip: None,
        at: NOW - 2 * day,
    })
    .await
    .unwrap();
    s.record_client_assertion_jti("lab", "j", NOW - 2 * day, NOW - 3 * day)
        .await
        .unwrap();
    s.create_launch_context(LaunchContext {
        id: "l".to_string(),
        patient: None,
        encounter: None,
        fhir_context: None,
        created_by: "a1".to_string(),
        created_at: NOW - 3 * day,
        expires_at: NOW - 2 * day,
    })
    .await
    .unwrap();

    // code, refresh token, verification code, session, failure, jti, launch.
    assert_eq!(s.purge_expired(NOW - day).await.unwrap(), 7);
    assert_eq!(s.purge_expired(NOW - day).await.unwrap(), 0);
    assert_eq!(
        s.take_authorization_code("old", "app", NOW).await.unwrap(),
        CodeTake::Unknown
    );
    assert!(matches!(
        s.take_authorization_code("fresh", "app", NOW)
            .await
            .unwrap(),
        CodeTake::Taken { .. }
    ));
    assert!(s.find_refresh_token("r1").await.unwrap().is_none());
    assert!(s.find_refresh_token("r2").await.unwrap().is_some());
    assert!(s.get_session("s-old").await.unwrap().is_none());
    assert!(s.get_session("s-live").await.unwrap().is_some());
    assert_eq!(
        s.count_login_failures(FailureScope::Subject("a1".to_string()), 0)
            .await
            .unwrap(),
        0
    );
    assert!(s.get_grant(&g.id).await.unwrap().is_some(), "grants stay");
}

/// Auth writes share SQLite's writer with resource writes: mixed in one group commit, a failing
/// auth write (a taken email) undoes only itself, and everything is on disk after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_resource_writes_share_the_sqlite_writer() {
    let db = Db::sqlite("mixed").await;
    db.auth
        .create_account(new_account("taken", Some("taken@example.in"), None))
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..40 {
        let (store, auth) = (db.store.clone(), db.auth.clone());
        handles.push(tokio::spawn(async move {
            match i % 3 {
                0 => {
                    let put = curanet_storage::PutOp {
                        resource_type: "Basic".to_string(),
                        id: format!("b{i}"),
                        resource: json!({"resourceType": "Basic", "id": format!("b{i}")}),
                        precondition: curanet_storage::Precondition::None,
                        identity: None,
                        indexing: None,
                        new_id: false,
                    };
                    store
                        .write(vec![curanet_storage::WriteOp::Put(put)])
                        .await
                        .map(|_| ())
                }
                1 => {
                    auth.create_account(new_account(&format!("a{i}"), None, None))
                        .await
                }
                _ => {
                    let duplicate = new_account(&format!("d{i}"), Some("taken@example.in"), None);
                    assert_eq!(duplicate_of(auth.create_account(duplicate).await), "email");
                    Ok(())
                }
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let path = db.dir.clone().unwrap().join("db.sqlite");
    db.store.close().await;

    let (store, auth) = open_with_auth(
        &format!("sqlite:{}", path.display()),
        &StoreOptions::default(),
    )
    .await
    .unwrap();
    for i in 0..40 {
        match i % 3 {
            0 => assert!(
                store
                    .read("Basic", &format!("b{i}"))
                    .await
                    .unwrap()
                    .is_some()
            ),
            1 => assert!(auth.get_account(&format!("a{i}")).await.unwrap().is_some()),
            _ => assert!(auth.get_account(&format!("d{i}")).await.unwrap().is_none()),
        }
    }
    Db {
        store,
        auth,
        pg: None,
        dir: db.dir,
    }
    .finish()
    .await;
}
