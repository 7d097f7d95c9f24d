//! The account service on a real SQLite store with a controlled clock: codes and reset tokens
//! expire, locks expire and double, unknown identifiers are throttled like accounts.

use std::sync::{Arc, Mutex};

use curanet_storage::{AuthStore, Role};

use super::*;
use crate::discovery::Endpoints;

const T0: i64 = 1_800_000_000;
const PASSWORD: &str = "correct horse battery";

#[derive(Default)]
struct Outbox {
    mail: Mutex<Vec<Mail>>,
    sms: Mutex<Vec<(String, String)>>,
}

struct TestMailer(Arc<Outbox>);

#[async_trait::async_trait]
impl Mailer for TestMailer {
    async fn send(&self, mail: Mail) -> Result<(), SendError> {
        self.0.mail.lock().unwrap().push(mail);
        Ok(())
    }
}

struct TestSms(Arc<Outbox>);

#[async_trait::async_trait]
impl SmsSender for TestSms {
    async fn send(&self, to: &str, text: &str) -> Result<(), SendError> {
        self.0.sms.lock().unwrap().push((to.into(), text.into()));
        Ok(())
    }
}

struct TestDirectory(Mutex<u32>);

#[async_trait::async_trait]
impl Directory for TestDirectory {
    async fn create_patient(&self, _: &Person) -> Result<String, DirectoryError> {
        let mut n = self.0.lock().unwrap();
        *n += 1;
        Ok(format!("Patient/p{n}"))
    }

    async fn create_practitioner(
        &self,
        _: &Person,
        _: Role,
        _: Option<&str>,
    ) -> Result<String, DirectoryError> {
        let mut n = self.0.lock().unwrap();
        *n += 1;
        Ok(format!("Practitioner/d{n}"))
    }
}

struct Fixture {
    dir: std::path::PathBuf,
    store: Arc<dyn curanet_storage::Store>,
    accounts: Accounts,
    outbox: Arc<Outbox>,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "curanet-accounts-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("accounts.db").display());
        let (store, auth) = curanet_storage::open_with_auth(&url, &Default::default())
            .await
            .unwrap();
        let kek = KeyEncryptionKey::from_base64(&KeyEncryptionKey::generate_base64()).unwrap();
        let authority = Arc::new(
            Authority::start(
                auth.clone(),
                Endpoints::new("http://t.test"),
                kek.clone(),
                T0,
            )
            .await
            .unwrap(),
        );
        let outbox = Arc::new(Outbox::default());
        let accounts = Accounts::start(
            auth as Arc<dyn AuthStore>,
            authority,
            Pepper::new(b"a test pepper of enough bytes".to_vec()).unwrap(),
            kek,
            Arc::new(TestDirectory(Mutex::new(0))),
            Arc::new(TestMailer(outbox.clone())),
            Arc::new(TestSms(outbox.clone())),
            T0,
        )
        .await
        .unwrap();
        Fixture {
            dir,
            store,
            accounts,
            outbox,
        }
    }

    async fn stop(self) {
        self.store.close().await;
        let _ = std::fs::remove_dir_all(self.dir);
    }

    /// The token of the last mail to `to`.
    async fn last_token(&self, to: &str) -> String {
        self.token_after(to, 0).await
    }

    /// The token of the last mail to `to` among those after the first `before` (waits for
    /// mail sent in the background).
    async fn token_after(&self, to: &str, before: usize) -> String {
        for _ in 0..200 {
            let found = self
                .outbox
                .mail
                .lock()
                .unwrap()
                .iter()
                .skip(before)
                .rev()
                .find(|m| m.to == to)
                .map(|m| m.body.clone());
            if let Some(body) = found {
                let start = body.find("Code: ").unwrap() + "Code: ".len();
                return body[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("no mail to {to}");
    }

    fn mail_count(&self) -> usize {
        self.outbox.mail.lock().unwrap().len()
    }

    async fn register(&self, email: &str, phone: Option<&str>, now: i64) {
        self.accounts
            .register(
                Registration {
                    email: Some(email.into()),
                    phone: phone.map(str::to_string),
                    password: PASSWORD.into(),
                    person: Person {
                        family: Some("Rao".into()),
                        ..Person::default()
                    },
                    ..Registration::default()
                },
                now,
            )
            .await
            .unwrap();
    }

    async fn sign_in(&self, who: &str, password: &str, now: i64) -> Result<SignedIn, AccountError> {
        self.accounts
            .sign_in(
                SignIn {
                    identifier: who.into(),
                    password: password.into(),
                    ..SignIn::default()
                },
                now,
            )
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_codes_and_reset_tokens_expire() {
    let f = Fixture::new().await;
    let email = "asha@example.in";
    f.register(email, Some("+919876543210"), T0).await;

    // The SMS code has six digits and lives 15 minutes.
    let sms = f.outbox.sms.lock().unwrap().last().unwrap().1.clone();
    let code: String = sms.chars().take(6).collect();
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{sms}");
    assert!(matches!(
        f.accounts
            .verify_phone("+919876543210", &code, None, T0 + policy::SMS_CODE_SECONDS)
            .await,
        Err(AccountError::InvalidCode)
    ));

    // The email token lives 30 minutes.
    let token = f.last_token(email).await;
    let late = T0 + policy::EMAIL_CODE_SECONDS;
    assert!(matches!(
        f.accounts.verify_email(&token, None, late).await,
        Err(AccountError::InvalidCode)
    ));
    f.accounts.resend_verification(email, late).await.unwrap();
    let fresh = f.last_token(email).await;
    assert_ne!(fresh, token);
    f.accounts
        .verify_email(&fresh, None, late + 60)
        .await
        .unwrap();

    // The reset token lives 30 minutes and works once.
    let t1 = T0 + 3600;
    let before = f.mail_count();
    f.accounts.forgot_password(email, None, t1).await.unwrap();
    let reset = f.token_after(email, before).await;
    assert!(matches!(
        f.accounts
            .reset_password(
                &reset,
                "a new passphrase here",
                None,
                t1 + policy::RESET_TOKEN_SECONDS
            )
            .await,
        Err(AccountError::InvalidCode)
    ));
    f.accounts
        .forgot_password(email, None, t1 + 1)
        .await
        .unwrap();
    let reset = f.token_after(email, before + 1).await;
    f.accounts
        .reset_password(&reset, "a new passphrase here", None, t1 + 29 * 60)
        .await
        .unwrap();
    assert!(matches!(
        f.accounts
            .reset_password(&reset, "another new passphrase", None, t1 + 29 * 60)
            .await,
        Err(AccountError::InvalidCode)
    ));
    // An unknown identifier sends nothing and answers the same.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let before = f.mail_count();
    f.accounts
        .forgot_password("nobody@example.in", None, t1)
        .await
        .unwrap();
    assert_eq!(f.mail_count(), before);
    f.stop().await;
}

/// Fails `n` times from `now`, each attempt just after the back-off of the one before; the
/// time after the last.
async fn fail(f: &Fixture, who: &str, n: usize, mut now: i64) -> i64 {
    for _ in 0..n {
        let result = f.sign_in(who, "wrong password", now).await;
        assert!(
            matches!(result, Err(AccountError::InvalidCredentials)),
            "{result:?} at {now}"
        );
        now += policy::MAX_BACKOFF_SECONDS;
    }
    now
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_expire_and_double_and_unknown_identifiers_lock_alike() {
    let f = Fixture::new().await;
    let email = "ravi@example.in";
    f.register(email, None, T0).await;
    let token = f.last_token(email).await;
    f.accounts.verify_email(&token, None, T0).await.unwrap();

    for who in [email, "nobody@example.in"] {
        // The back-off: right after the third failure the next attempt must wait a second.
        let now = fail(&f, who, 3, T0 + 100).await;
        let last = now - policy::MAX_BACKOFF_SECONDS;
        assert!(matches!(
            f.sign_in(who, "wrong password", last).await,
            Err(AccountError::SlowDown { retry_after: 2 })
        ));
        // The fifth failure locks for 15 minutes, even the right password.
        let now = fail(&f, who, 2, now).await;
        let locked_at = now - policy::MAX_BACKOFF_SECONDS;
        assert!(
            matches!(
                f.sign_in(who, PASSWORD, locked_at + 1).await,
                Err(AccountError::Locked { retry_after }) if retry_after > 800
            ),
            "{who}"
        );
        assert!(matches!(
            f.sign_in(who, PASSWORD, locked_at + policy::FIRST_LOCK_SECONDS - 1)
                .await,
            Err(AccountError::Locked { .. })
        ));
        // After it, five more failures lock for 30 minutes.
        let after = locked_at + policy::FIRST_LOCK_SECONDS;
        let now = fail(&f, who, 5, after).await;
        let second = now - policy::MAX_BACKOFF_SECONDS;
        match f.sign_in(who, PASSWORD, second + 1).await {
            Err(AccountError::Locked { retry_after }) => {
                assert!(retry_after > policy::FIRST_LOCK_SECONDS, "{retry_after}")
            }
            other => panic!("{who}: {other:?}"),
        }
        // Once it is over, the right password works (and clears the count).
        let open = second + 2 * policy::FIRST_LOCK_SECONDS;
        let result = f.sign_in(who, PASSWORD, open).await;
        if who == email {
            let signed_in = result.unwrap();
            assert!(!signed_in.enrollment_only);
            let account = f.accounts.account(&signed_in.account.id).await.unwrap();
            assert_eq!(account.failed_logins, 0);
            assert_eq!(account.locked_until, None);
        } else {
            assert!(matches!(result, Err(AccountError::InvalidCredentials)));
        }
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_and_sessions_end() {
    let f = Fixture::new().await;
    let email = "lata@example.in";
    f.register(email, None, T0).await;
    let token = f.last_token(email).await;
    f.accounts.verify_email(&token, None, T0).await.unwrap();
    let signed_in = f.sign_in(email, PASSWORD, T0).await.unwrap();
    let tokens = f.accounts.issue_tokens(&signed_in, T0).await.unwrap();
    assert_eq!(tokens.patient.as_deref(), Some("p1"));
    assert_eq!(
        tokens.fhir_user.as_deref(),
        Some("http://t.test/fhir/Patient/p1")
    );
    assert_eq!(tokens.expires_in, policy::ACCESS_TOKEN_SECONDS);
    let caller = f
        .accounts
        .authenticate(&tokens.access_token, T0 + 10)
        .await
        .unwrap();
    assert!(!caller.enrollment_only);
    // The access token expires (beyond the leeway).
    assert!(
        f.accounts
            .authenticate(&tokens.access_token, T0 + policy::ACCESS_TOKEN_SECONDS + 60)
            .await
            .is_err()
    );
    let next = f
        .accounts
        .refresh(&tokens.refresh_token, None, T0 + 100)
        .await
        .unwrap();
    assert!(matches!(
        f.accounts
            .refresh(&tokens.refresh_token, None, T0 + 101)
            .await,
        Err(AccountError::InvalidToken)
    ));
    assert!(matches!(
        f.accounts
            .refresh(&next.refresh_token, None, T0 + 102)
            .await,
        Err(AccountError::InvalidToken)
    ));
    assert!(
        f.accounts
            .session(&signed_in.session_token, T0 + 103)
            .await
            .is_err()
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_codes_are_limited_and_messages_on_request_too() {
    let f = Fixture::new().await;
    let phone = "+919812345678";
    f.accounts
        .register(
            Registration {
                phone: Some("98123 45678".into()),
                password: PASSWORD.into(),
                person: Person {
                    given: vec!["Kiran".into()],
                    ..Person::default()
                },
                ..Registration::default()
            },
            T0,
        )
        .await
        .unwrap();
    let sms = || f.outbox.sms.lock().unwrap().last().unwrap().clone();
    let (to, text) = sms();
    assert_eq!(to, phone);
    let code: String = text.chars().take(6).collect();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert!(matches!(
            f.accounts.verify_phone(phone, wrong, None, T0 + 1).await,
            Err(AccountError::InvalidCode)
        ));
    }
    assert!(matches!(
        f.accounts.verify_phone(phone, &code, None, T0 + 2).await,
        Err(AccountError::SlowDown { .. })
    ));
    // Unverified phones cannot sign in yet.
    assert!(matches!(
        f.sign_in(phone, PASSWORD, T0 + 3).await,
        Err(AccountError::Unverified)
    ));
    // Until the quarter hour is over even the right code is refused; then a new code works.
    f.accounts
        .verify_phone(phone, &code, None, T0 + 14 * 60 + 59)
        .await
        .unwrap_err();
    let later = T0 + 15 * 60 + 2;
    f.accounts.resend_verification(phone, later).await.unwrap();
    let code: String = sms().1.chars().take(6).collect();
    f.accounts
        .verify_phone(phone, &code, None, later + 1)
        .await
        .unwrap();
    f.sign_in("9812345678", PASSWORD, later + 2).await.unwrap();

    // Reset links: at most five an hour per account, silently.
    let email = "mail@example.in";
    f.register(email, None, T0).await;
    let count = || {
        f.outbox
            .mail
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to == email)
            .count()
    };
    for i in 0..7 {
        f.accounts
            .forgot_password(email, None, T0 + i)
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(count(), 1 + policy::MESSAGES_PER_HOUR as usize);
    f.accounts
        .forgot_password(email, None, T0 + 3601)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(count(), 2 + policy::MESSAGES_PER_HOUR as usize);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_with_old_parameters_are_replaced_at_sign_in() {
    let f = Fixture::new().await;
    let email = "old@example.in";
    f.register(email, None, T0).await;
    let token = f.last_token(email).await;
    f.accounts.verify_email(&token, None, T0).await.unwrap();
    let id = f.sign_in(email, PASSWORD, T0).await.unwrap().account.id;
    // A hash with weaker parameters (as if made by an older release), same pepper.
    let weak = {
        use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
        let params = Params::new(8 * 1024, 1, 1, None).unwrap();
        Argon2::new_with_secret(
            b"a test pepper of enough bytes",
            Algorithm::Argon2id,
            Version::V0x13,
            params,
        )
        .unwrap()
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string()
    };
    f.accounts
        .store
        .set_password_hash(&id, &weak, T0 * MICROS)
        .await
        .unwrap();
    f.sign_in(email, PASSWORD, T0 + 1).await.unwrap();
    let stored = f
        .accounts
        .account(&id)
        .await
        .unwrap()
        .password_hash
        .unwrap();
    assert!(stored.contains("m=19456,t=2,p=1"), "{stored}");
    f.sign_in(email, PASSWORD, T0 + 2).await.unwrap();
    f.stop().await;
}
