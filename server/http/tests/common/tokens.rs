//! Access tokens minted with the server's own signing keys: patient- and user-level tokens for
//! tests, without going through a login. Start the server with [`server_args`] (a fixed
//! key-encryption key and public base URL), then [`Minter::open`] the same database: it loads the
//! signing keys the server stored and signs tokens the server accepts.

use curanet_auth::Authority;
use curanet_auth::discovery::Endpoints;
use curanet_auth::keys::KeyEncryptionKey;
use curanet_auth::token::{AccessGrant, TokenKind, mint_access_token};

/// The key-encryption key the server and the minter share (32 bytes, base64).
pub const KEK: &str = "Y3VyYW5ldC10ZXN0LWtleS1lbmNyeXB0aW9uLWtleSE=";

/// The server's public root in these tests (issuer); the FHIR base is `{ISSUER}/fhir`.
pub const ISSUER: &str = "http://curanet.test";

/// Arguments for `Process::start` so that minted tokens verify: the key-encryption key and the
/// base URL (issuer and audience), plus `extra`.
pub fn server_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--key-encryption-key",
        KEK,
        "--base-url",
        "http://curanet.test/fhir",
    ];
    args.extend_from_slice(extra);
    args
}

/// Signs access tokens with the signing keys stored in a server's database.
pub struct Minter {
    authority: Authority,
}

/// The current Unix time.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Minter {
    /// Loads the keys of the server on `database_url` (started with [`server_args`]).
    pub async fn open(database_url: &str) -> Minter {
        let (_store, auth) = curanet_storage::open_with_auth(
            database_url,
            &curanet_storage::StoreOptions::default(),
        )
        .await
        .expect("open the server's database");
        let kek = KeyEncryptionKey::from_base64(KEK).expect("a valid key-encryption key");
        let authority = Authority::start(auth, Endpoints::new(ISSUER), kek, now())
            .await
            .expect("load the server's signing keys");
        Minter { authority }
    }

    /// An access token (user kind, one hour) for account `subject` with `scope`, the patient in
    /// context and the user's FHIR resource.
    pub fn token(
        &self,
        subject: &str,
        scope: &str,
        patient: Option<&str>,
        fhir_user: Option<&str>,
    ) -> String {
        let grant = AccessGrant {
            issuer: ISSUER.into(),
            audience: format!("{ISSUER}/fhir"),
            subject: subject.into(),
            client_id: "test-app".into(),
            scope: scope.into(),
            patient: patient.map(str::to_string),
            fhir_user: fhir_user.map(str::to_string),
            ..AccessGrant::default()
        };
        mint_access_token(&self.authority.ring(), &grant, TokenKind::User, 3600, now())
            .expect("mint an access token")
            .token
    }

    /// A patient's token: `scope` with `patient` in context and `fhirUser` = `Patient/{patient}`.
    pub fn patient(&self, patient: &str, scope: &str) -> String {
        self.token(
            &format!("acct-{patient}"),
            scope,
            Some(patient),
            Some(&format!("Patient/{patient}")),
        )
    }

    /// A clinician's token: `user/` scopes, no patient in context.
    pub fn user(&self, practitioner: &str, scope: &str) -> String {
        self.token(
            &format!("acct-{practitioner}"),
            scope,
            None,
            Some(&format!("Practitioner/{practitioner}")),
        )
    }
}
