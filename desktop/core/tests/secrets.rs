//! The secret store (the file kept when no keyring answers, as on CI) and encryption at rest:
//! secrets round-trip and survive a reopening, a wrong key does not open them, the files are the
//! user's alone, a wipe forgets everything; the cache's SQLite files never hold a patient's name
//! in plain text, and another key does not read them.

mod common;

use common::scratch;
use curanet_desktop_core::outbox::Method;
use curanet_desktop_core::{Backend, Cache, SecretKey, SecretStore};
use serde_json::{Value, json};

/// Whether any of the files of `dir` whose name starts with `prefix` holds `text`.
fn files_hold(dir: &std::path::Path, prefix: &str, text: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .any(|p| {
            let bytes = std::fs::read(&p).unwrap();
            bytes.windows(text.len()).any(|w| w == text.as_bytes())
        })
}

#[tokio::test]
async fn secrets_round_trip_in_the_sealed_file_and_a_wipe_forgets_them() {
    let dir = scratch("secrets");
    let store = SecretStore::without_keyring(&dir).unwrap();
    assert_eq!(store.backend(), Backend::File);
    assert_eq!(store.get::<Value>("session").unwrap(), None);
    let session = json!({"server": "http://h/fhir", "accessToken": "tok-7f3a9c"});
    store.put("session", &session).unwrap();
    let key = store.cache_key("acct-1").unwrap();
    assert!(!files_hold(&dir, "secrets", "tok-7f3a9c"), "sealed");

    // Reopened: the same secrets, the same cache key.
    let again = SecretStore::without_keyring(&dir).unwrap();
    assert_eq!(again.get::<Value>("session").unwrap(), Some(session));
    let sealed = key.seal(b"x", b"ctx").unwrap();
    assert_eq!(
        again
            .cache_key("acct-1")
            .unwrap()
            .open(&sealed, b"ctx")
            .unwrap(),
        b"x"
    );
    assert!(
        again
            .cache_key("acct-2")
            .unwrap()
            .open(&sealed, b"ctx")
            .is_err()
    );

    // The user's alone.
    #[cfg(unix)]
    for file in ["secrets.enc", "secrets.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // A wipe forgets everything, and the old file no longer opens with the new key.
    let old = std::fs::read(store.path()).unwrap();
    store.wipe().await.unwrap();
    assert!(!store.path().exists());
    assert_eq!(store.get::<Value>("session").unwrap(), None);
    std::fs::write(store.path(), &old).unwrap();
    let after = SecretStore::without_keyring(&dir).unwrap();
    assert!(
        after.get::<Value>("session").is_err(),
        "the old key is gone"
    );
    // Which does not block a new sign-in: the unreadable file is replaced.
    after.put("session", &json!({"n": 2})).unwrap();
    assert_eq!(
        after.get::<Value>("session").unwrap(),
        Some(json!({"n": 2}))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_wrong_key_does_not_open_the_secrets() {
    let dir = scratch("secrets-wrong-key");
    let store = SecretStore::without_keyring(&dir).unwrap();
    store.put("session", &json!({"token": "t"})).unwrap();
    std::fs::write(dir.join("secrets.key"), [7u8; 32]).unwrap();
    let other = SecretStore::without_keyring(&dir).unwrap();
    let e = other.get::<Value>("session").unwrap_err();
    assert_eq!(e.code(), "secrets", "{e}");
    std::fs::write(dir.join("secrets.key"), b"short").unwrap();
    assert!(SecretStore::without_keyring(&dir).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_a_keyring_the_store_falls_back_to_the_file_silently() {
    // On CI there is no secret service: `open` must still work (with the key in a file there;
    // on a desktop with a keyring, in the keyring).
    let dir = scratch("secrets-open");
    let store = SecretStore::open(&dir).await.unwrap();
    store.put("probe", &1).unwrap();
    assert_eq!(store.get::<i32>("probe").unwrap(), Some(1));
    if store.backend() == Backend::File {
        assert!(dir.join("secrets.key").exists());
    }
    store.wipe().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_cache_is_encrypted_at_rest() {
    let dir = scratch("sealed-cache");
    let path = dir.join("cache.db");
    let key = SecretKey::random();
    let patient = json!({"resourceType": "Patient", "id": "p1",
        "name": [{"family": "Raghunathan", "given": ["Kavya"]}]});
    let note = json!({"resourceType": "Observation", "id": "local-1", "status": "final",
        "code": {"text": "Sunitha's glucose"}, "subject": {"reference": "Patient/p1"}});
    {
        let cache = Cache::open_sealed(&path, "acct-1", key.clone(), 1_000_000)
            .await
            .unwrap();
        cache.put(&patient, Some("W/\"1\"")).await.unwrap();
        cache
            .outbox()
            .push(Method::Create, &note, None)
            .await
            .unwrap();
        assert_eq!(
            cache.get("Patient", "p1").await.unwrap().unwrap().resource,
            patient
        );
        // Lookups still work on the plain columns.
        assert_eq!(cache.of_patient("p1").await.unwrap(), vec![patient.clone()]);
        assert_eq!(cache.outbox().pending().await.unwrap()[0].resource, note);
        cache.close().await;
    }
    for name in ["Raghunathan", "Kavya", "Sunitha"] {
        assert!(!files_hold(&dir, "cache.db", name), "{name} in plain text");
    }

    // Reopened with the same key: readable; with another: nothing opens.
    let same = Cache::open_sealed(&path, "acct-1", key, 1_000_000)
        .await
        .unwrap();
    assert!(same.get("Patient", "p1").await.unwrap().is_some());
    same.close().await;
    let other = Cache::open_sealed(&path, "acct-1", SecretKey::random(), 1_000_000)
        .await
        .unwrap();
    assert_eq!(other.get("Patient", "p1").await.unwrap(), None);
    assert!(other.outbox().pending().await.unwrap().is_empty());
    other.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
