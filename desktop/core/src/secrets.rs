//! Where the app keeps its secrets: the session (server, client id, tokens) and each account's
//! cache key. They are one small JSON document sealed with AES-256-GCM in `secrets.enc` in the
//! app's data directory (mode 0600). The key of that file is kept in the OS keyring when one
//! answers (secret service, keychain, credential manager); otherwise in `secrets.key` beside it
//! (mode 0600, random per install).
//!
//! Why the keyring holds the file's key rather than the tokens themselves: some keyrings bound a
//! secret's size (2.5 KB on Windows) and a session with its cache keys can outgrow it; a 32-byte
//! key always fits, and the protection is the same (without the keyring's key the file is
//! noise). The place of the key is chosen once per install: a key file, once written, stays in
//! use, so a keyring that stops answering never locks the user out of a session kept in the file,
//! and one that fails never breaks sign-in (the file is used instead).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use zeroize::Zeroize;

use crate::{DesktopError, Result};

/// Bytes of a key (AES-256).
const KEY_BYTES: usize = 32;
/// Bytes of a nonce (96 bits, random per message).
const NONCE_BYTES: usize = 12;
/// The first byte of everything sealed: the format, so that it can change later.
const FORMAT_V1: u8 = 1;
/// The sealed secrets.
const SECRETS_FILE: &str = "secrets.enc";
/// The secrets' key when no keyring answers.
const KEY_FILE: &str = "secrets.key";
/// The keyring service name under which the secrets' key is kept.
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
const KEYRING_SERVICE: &str = "CuraNet Desktop";
/// How long the keyring may take to answer before the file is used instead (a secret service
/// that is installed but locked may wait for a prompt nobody sees).
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
const KEYRING_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn secrets_error(e: impl std::fmt::Display) -> DesktopError {
    DesktopError::Secrets(e.to_string())
}

/// A 256-bit AES-GCM key: the secrets file's key, or an account's cache key. Its bytes are
/// wiped from memory when it is dropped and never printed.
#[derive(Clone)]
pub struct SecretKey([u8; KEY_BYTES]);

impl SecretKey {
    /// A new random key.
    pub fn random() -> SecretKey {
        SecretKey(rand::random())
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey> {
        let bytes: [u8; KEY_BYTES] = bytes
            .try_into()
            .map_err(|_| secrets_error(format!("a key is {KEY_BYTES} bytes")))?;
        Ok(SecretKey(bytes))
    }

    /// The key as base64 (to keep it in the keyring or the secrets).
    fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn from_base64(text: &str) -> Result<SecretKey> {
        let mut bytes = STANDARD.decode(text.trim()).map_err(secrets_error)?;
        let key = SecretKey::from_bytes(&bytes);
        bytes.zeroize();
        key
    }

    fn cipher(&self) -> Result<Aes256Gcm> {
        Aes256Gcm::new_from_slice(&self.0).map_err(secrets_error)
    }

    /// Encrypts `plaintext`, bound to `context` (associated data that opening must give again:
    /// a sealed value moved to another context does not open).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        // A random 96-bit nonce per message: a cache seals far fewer than the 2^32 messages
        // one key allows with random nonces.
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let ciphertext = self
            .cipher()?
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| secrets_error("encryption failed"))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts what [`SecretKey::seal`] produced with the same key and `context`; a wrong key or
    /// altered data is an error.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let Some((&FORMAT_V1, rest)) = sealed.split_first() else {
            return Err(secrets_error("unknown sealed format"));
        };
        if rest.len() < NONCE_BYTES {
            return Err(secrets_error("sealed data is truncated"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce
            .try_into()
            .map_err(|_| secrets_error("sealed data is truncated"))?;
        self.cipher()?
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| secrets_error("cannot open: wrong key or altered data"))
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Where the secrets' key is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The OS keyring.
    Keyring,
    /// `secrets.key` in the data directory (no keyring answered).
    File,
}

/// The app's secrets in one data directory. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct SecretStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    backend: Backend,
    /// The secrets' key; replaced when the store is wiped. The lock also serialises the
    /// read-modify-write of the secrets file.
    key: Mutex<SecretKey>,
}

/// The associated data of the secrets file: its name, so that a sealed cache body can never be
/// passed off as the secrets or the other way round.
const SECRETS_CONTEXT: &[u8] = b"curanet-desktop/secrets";

impl SecretStore {
    /// The store of `dir` (created if needed), with its key in the OS keyring when one answers,
    /// else in a key file.
    pub async fn open(dir: &Path) -> Result<SecretStore> {
        fs::create_dir_all(dir).map_err(secrets_error)?;
        if !dir.join(KEY_FILE).exists()
            && let Some(key) = os_keyring::key(dir).await
        {
            return Ok(SecretStore::with(dir, Backend::Keyring, key));
        }
        SecretStore::without_keyring(dir)
    }

    /// The store of `dir` (created if needed) with its key in a key file, whatever keyring the
    /// system has (for tests, and for users who prefer it).
    pub fn without_keyring(dir: &Path) -> Result<SecretStore> {
        fs::create_dir_all(dir).map_err(secrets_error)?;
        let path = dir.join(KEY_FILE);
        let key = match fs::read(&path) {
            Ok(bytes) => SecretKey::from_bytes(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SecretKey::random();
                write_private(&path, &key.0)?;
                key
            }
            Err(e) => return Err(secrets_error(e)),
        };
        Ok(SecretStore::with(dir, Backend::File, key))
    }

    fn with(dir: &Path, backend: Backend, key: SecretKey) -> SecretStore {
        SecretStore {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                backend,
                key: Mutex::new(key),
            }),
        }
    }

    /// Where the secrets' key is kept.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The sealed secrets file (for tests and diagnostics).
    pub fn path(&self) -> PathBuf {
        self.inner.dir.join(SECRETS_FILE)
    }

    fn key(&self) -> Result<std::sync::MutexGuard<'_, SecretKey>> {
        self.inner
            .key
            .lock()
            .map_err(|_| secrets_error("the secret store's lock is poisoned"))
    }

    /// All secrets, opened with `key`; none when the file does not exist.
    fn load(&self, key: &SecretKey) -> Result<BTreeMap<String, Value>> {
        let sealed = match fs::read(self.path()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(secrets_error(e)),
        };
        let mut plain = key.open(&sealed, SECRETS_CONTEXT)?;
        let secrets = serde_json::from_slice(&plain).map_err(secrets_error);
        plain.zeroize();
        secrets
    }

    fn save(&self, key: &SecretKey, secrets: &BTreeMap<String, Value>) -> Result<()> {
        let mut plain = serde_json::to_vec(secrets).map_err(secrets_error)?;
        let sealed = key.seal(&plain, SECRETS_CONTEXT);
        plain.zeroize();
        write_private(&self.path(), &sealed?)
    }

    /// The secret `name`, if kept. A file that does not open (another key, altered) is an error.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let key = self.key()?;
        match self.load(&key)?.remove(name) {
            Some(value) => Ok(Some(serde_json::from_value(value).map_err(secrets_error)?)),
            None => Ok(None),
        }
    }

    /// Keeps `value` as the secret `name` (replacing it).
    pub fn put<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let key = self.key()?;
        // A file that no longer opens (its key was lost with the keyring) is replaced rather
        // than blocking every later sign-in.
        let mut secrets = self.load(&key).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the secrets file does not open: starting a new one");
            BTreeMap::new()
        });
        secrets.insert(
            name.to_string(),
            serde_json::to_value(value).map_err(secrets_error)?,
        );
        self.save(&key, &secrets)
    }

    /// Forgets the secret `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        let key = self.key()?;
        let mut secrets = self.load(&key)?;
        if secrets.remove(name).is_some() {
            self.save(&key, &secrets)?;
        }
        Ok(())
    }

    /// The cache key of `account`, made (random) and kept on first use.
    pub fn cache_key(&self, account: &str) -> Result<SecretKey> {
        let name = format!("cache-key/{account}");
        if let Some(text) = self.get::<String>(&name)? {
            return SecretKey::from_base64(&text);
        }
        let key = SecretKey::random();
        self.put(&name, &key.to_base64())?;
        Ok(key)
    }

    /// Forgets every secret (sign-out): the file is deleted and its key replaced, so that a
    /// copy of the old file left on the disk no longer opens.
    pub async fn wipe(&self) -> Result<()> {
        {
            let _key = self.key()?;
            match fs::remove_file(self.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(secrets_error(e)),
            }
        }
        let fresh = SecretKey::random();
        match self.inner.backend {
            Backend::File => write_private(&self.inner.dir.join(KEY_FILE), &fresh.0)?,
            // The secrets are gone already: a keyring that fails now only keeps an old key
            // that opens nothing.
            Backend::Keyring => {
                if let Err(e) = os_keyring::replace(&self.inner.dir, &fresh).await {
                    tracing::warn!(error = %e, "the keyring kept the old secrets' key");
                    return Ok(());
                }
            }
        }
        *self.key()? = fresh;
        Ok(())
    }
}

/// Writes `bytes` to `path` readable by the user alone, replacing it whole (a crash never
/// leaves half a file).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(secrets_error)?;
    file.write_all(bytes).map_err(secrets_error)?;
    file.sync_all().map_err(secrets_error)?;
    drop(file);
    fs::rename(&tmp, path).map_err(secrets_error)
}

/// The OS keyring, through the `keyring` crate: one entry per data directory holding the
/// secrets' key. Its calls block (D-Bus on Linux), so they run on the blocking pool with a
/// bounded wait.
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
mod os_keyring {
    use std::path::Path;

    use super::{KEYRING_SERVICE, KEYRING_WAIT, SecretKey, secrets_error};
    use crate::Result;

    fn entry(dir: &Path) -> keyring::Result<keyring::Entry> {
        keyring::Entry::new(KEYRING_SERVICE, &dir.display().to_string())
    }

    async fn blocking<T: Send + 'static>(
        work: impl FnOnce() -> keyring::Result<T> + Send + 'static,
    ) -> Option<keyring::Result<T>> {
        match tokio::time::timeout(KEYRING_WAIT, tokio::task::spawn_blocking(work)).await {
            Ok(Ok(answer)) => Some(answer),
            _ => None,
        }
    }

    /// The secrets' key kept in the keyring for `dir` (made there on first use); `None` when
    /// no keyring answers.
    pub(super) async fn key(dir: &Path) -> Option<SecretKey> {
        let dir = dir.to_path_buf();
        let answer = blocking(move || {
            let entry = entry(&dir)?;
            match entry.get_password() {
                Ok(text) => Ok(SecretKey::from_base64(&text).ok()),
                Err(keyring::Error::NoEntry) => {
                    let key = SecretKey::random();
                    entry.set_password(&key.to_base64())?;
                    Ok(Some(key))
                }
                Err(e) => Err(e),
            }
        })
        .await;
        match answer {
            Some(Ok(key)) => key,
            Some(Err(e)) => {
                tracing::info!(error = %e, "no OS keyring: the secrets' key is kept in a file");
                None
            }
            None => {
                tracing::info!("the OS keyring did not answer: the secrets' key is kept in a file");
                None
            }
        }
    }

    /// Replaces the key kept for `dir`.
    pub(super) async fn replace(dir: &Path, key: &SecretKey) -> Result<()> {
        let dir = dir.to_path_buf();
        let text = key.to_base64();
        match blocking(move || entry(&dir)?.set_password(&text)).await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(secrets_error(e)),
            None => Err(secrets_error("the OS keyring did not answer")),
        }
    }
}

/// No OS keyring on this system: the key file is always used.
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
mod os_keyring {
    use std::path::Path;

    use super::SecretKey;
    use crate::Result;

    pub(super) async fn key(_dir: &Path) -> Option<SecretKey> {
        None
    }

    pub(super) async fn replace(_dir: &Path, _key: &SecretKey) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_context() {
        let key = SecretKey::random();
        let sealed = key.seal(b"Asha Rao", b"ctx").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"Asha"));
        assert_eq!(key.open(&sealed, b"ctx").unwrap(), b"Asha Rao");
        assert!(key.open(&sealed, b"other").is_err());
        assert!(SecretKey::random().open(&sealed, b"ctx").is_err());
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(key.open(&altered, b"ctx").is_err());
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
    }
}
