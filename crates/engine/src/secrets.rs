//! Secrets: encrypted at rest with ChaCha20-Poly1305 (the secret's name is the associated data,
//! so a ciphertext cannot be moved to another name), under a master key from
//! `HOLACTL_MASTER_KEY` (64 hex characters) or a key file created at first start
//! (`<data-dir>/master.key`, mode 0600). Values reach instances as environment variables and
//! are never returned by the API.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use holactl_store::StoreError;
use holactl_types::api::SecretView;
use holactl_types::function::validate_secret_name;
use holactl_types::limits::MAX_SECRET_BYTES;
use holactl_types::FunctionConfig;
use serde::{Deserialize, Serialize};

use crate::functions::{decode, encode};
use crate::{now_ms, Engine, EngineError};

const SECRET_PREFIX: &str = "secrets/";
/// The key file inside the data dir.
pub const MASTER_KEY_FILE: &str = "master.key";
/// Environment variable that carries the master key (hex).
pub const MASTER_KEY_ENV: &str = "HOLACTL_MASTER_KEY";
/// What a masked secret looks like in logs.
pub const MASK: &str = "****";

/// A secret as stored.
#[derive(Clone, Serialize, Deserialize)]
struct StoredSecret {
    name: String,
    version: u32,
    created_at: i64,
    updated_at: i64,
    nonce: String,
    ciphertext: String,
}

fn secret_key(name: &str) -> String {
    format!("{SECRET_PREFIX}{name}")
}

/// The master key: from the environment, else the key file (created if missing).
pub fn load_master_key(data_dir: &Path) -> Result<[u8; 32], EngineError> {
    let parse = |hex_key: &str, from: &str| -> Result<[u8; 32], EngineError> {
        hex::decode(hex_key.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                EngineError::Internal(format!("{from} must hold 64 hex characters (32 bytes)"))
            })
    };
    if let Ok(key) = std::env::var(MASTER_KEY_ENV) {
        return parse(&key, MASTER_KEY_ENV);
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => return parse(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EngineError::Internal(format!("{}: {e}", path.display()))),
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| EngineError::Internal(e.to_string()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| EngineError::Internal(format!("{}: {e}", path.display())))?;
    file.write_all(format!("{}\n", hex::encode(key)).as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| EngineError::Internal(format!("{}: {e}", path.display())))?;
    Ok(key)
}

/// Where a value encrypted under the master key proves, at every start, that the key is the
/// one the stored secrets were written with.
const KEY_CHECK: &str = "secrets-key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"holactl master key check";

/// Whether `key` opens the stored check value: `None` when there is none yet.
async fn key_matches(
    kv: &dyn holactl_store::Kv,
    key: &[u8; 32],
) -> Result<Option<bool>, EngineError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(entry) = kv.get(KEY_CHECK).await? else {
        return Ok(None);
    };
    let stored: StoredSecret = decode(&entry.value)?;
    let nonce = b64.decode(&stored.nonce).unwrap_or_default();
    let ciphertext = b64.decode(&stored.ciphertext).unwrap_or_default();
    Ok(Some(
        nonce.len() == 12
            && cipher(key)
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: KEY_CHECK.as_bytes(),
                    },
                )
                .is_ok_and(|p| p == KEY_CHECK_PLAINTEXT),
    ))
}

/// The master key of a cluster node. Every node must hold the same key, so a node never
/// invents one when the cluster already has secrets' check value: it takes
/// `HOLACTL_MASTER_KEY`, else `<data>/master.key`, else refuses to start. Only the first node
/// of a new cluster creates a key (in its key file), which the operator then gives the others.
pub async fn cluster_master_key(
    kv: &dyn holactl_store::Kv,
    data_dir: &Path,
    namespace: &str,
) -> Result<[u8; 32], EngineError> {
    let configured =
        std::env::var_os(MASTER_KEY_ENV).is_some() || data_dir.join(MASTER_KEY_FILE).is_file();
    if !configured && kv.get(KEY_CHECK).await?.is_some() {
        return Err(EngineError::Internal(format!(
            "this node has no master key, and the cluster (NATS namespace {namespace:?}) \
             already has one: start every node with the same {MASTER_KEY_ENV} (64 hex \
             characters), or copy {MASTER_KEY_FILE} from the first node's data dir into this \
             node's"
        )));
    }
    let key = load_master_key(data_dir)?;
    if key_matches(kv, &key).await? == Some(false) {
        return Err(EngineError::Internal(format!(
            "this node's master key ({MASTER_KEY_ENV} or {}) is not the cluster's (NATS \
             namespace {namespace:?}): every node must start with the same key",
            data_dir.join(MASTER_KEY_FILE).display()
        )));
    }
    verify_master_key(kv, &key).await?;
    Ok(key)
}

/// Fails to open a store whose secrets were written under another master key, instead of
/// starting and failing every instance that needs one (or mixing two keys in the store).
pub async fn verify_master_key(
    kv: &dyn holactl_store::Kv,
    key: &[u8; 32],
) -> Result<(), EngineError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match key_matches(kv, key).await? {
        Some(true) => return Ok(()),
        Some(false) => {
            return Err(EngineError::Internal(format!(
                "the master key ({MASTER_KEY_ENV} or {MASTER_KEY_FILE}) is not the one this \
                 data dir's secrets were encrypted with; start with the original key"
            )))
        }
        None => {}
    }
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| EngineError::Internal(e.to_string()))?;
    let ciphertext = cipher(key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: KEY_CHECK_PLAINTEXT,
                aad: KEY_CHECK.as_bytes(),
            },
        )
        .map_err(|_| EngineError::Internal("encryption failed".into()))?;
    let now = now_ms();
    let check = StoredSecret {
        name: KEY_CHECK.to_owned(),
        version: 1,
        created_at: now,
        updated_at: now,
        nonce: b64.encode(nonce),
        ciphertext: b64.encode(ciphertext),
    };
    match kv.create(KEY_CHECK, encode(&check)?).await {
        Ok(_) => Ok(()),
        // Another node (or start) wrote it first: its key must be ours too.
        Err(StoreError::Conflict { .. }) => Box::pin(verify_master_key(kv, key)).await,
        Err(e) => Err(e.into()),
    }
}

fn cipher(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(key))
}

/// A value encrypted under the master key: base64 nonce and ciphertext, as stored.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Sealed {
    pub nonce: String,
    pub ciphertext: String,
}

/// Encrypts `plain` under `key` with a fresh nonce, bound to `aad` (what the value belongs
/// to), for other features that keep secrets at rest (webhook secrets).
pub(crate) fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Sealed, EngineError> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| EngineError::Internal(e.to_string()))?;
    let ciphertext = cipher(key)
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| EngineError::Internal("encryption failed".into()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Sealed {
        nonce: b64.encode(nonce),
        ciphertext: b64.encode(ciphertext),
    })
}

/// Decrypts what [`seal`] made with the same `key` and `aad`.
pub(crate) fn unseal(key: &[u8; 32], aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, EngineError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let corrupt = || EngineError::Internal("corrupt sealed value".into());
    let nonce = b64.decode(&sealed.nonce).map_err(|_| corrupt())?;
    let ciphertext = b64.decode(&sealed.ciphertext).map_err(|_| corrupt())?;
    if nonce.len() != 12 {
        return Err(corrupt());
    }
    cipher(key)
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad,
            },
        )
        .map_err(|_| EngineError::Internal("cannot decrypt with this master key".into()))
}

fn view(s: &StoredSecret) -> SecretView {
    SecretView {
        name: s.name.clone(),
        version: s.version,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

impl Engine {
    /// Creates or replaces a secret.
    pub async fn set_secret(
        &self,
        actor: &str,
        name: &str,
        value: &str,
    ) -> Result<SecretView, EngineError> {
        validate_secret_name(name)?;
        if value.is_empty() || value.len() > MAX_SECRET_BYTES {
            return Err(EngineError::invalid(
                "value",
                format!("must be 1 to {MAX_SECRET_BYTES} bytes"),
            ));
        }
        let kv = &self.inner.stores.kv;
        let existing = kv.get(&secret_key(name)).await?;
        let previous: Option<StoredSecret> =
            existing.as_ref().map(|e| decode(&e.value)).transpose()?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| EngineError::Internal(e.to_string()))?;
        let ciphertext = cipher(&self.inner.master_key)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| EngineError::Internal("encryption failed".into()))?;
        let now = now_ms();
        let b64 = base64::engine::general_purpose::STANDARD;
        let stored = StoredSecret {
            name: name.to_owned(),
            version: previous.as_ref().map_or(1, |p| p.version + 1),
            created_at: previous.as_ref().map_or(now, |p| p.created_at),
            updated_at: now,
            nonce: b64.encode(nonce),
            ciphertext: b64.encode(ciphertext),
        };
        let bytes = encode(&stored)?;
        let written = match &existing {
            Some(e) => kv.update(&secret_key(name), bytes, e.revision).await,
            None => kv.create(&secret_key(name), bytes).await,
        };
        match written {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(EngineError::Conflict(format!(
                    "secret {name:?} changed concurrently; try again"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let after = view(&stored);
        let before = previous.as_ref().map(view);
        self.audit(
            actor,
            "secret.set",
            None,
            &format!("secret {name}"),
            before.as_ref(),
            Some(&after),
        )
        .await;
        Ok(after)
    }

    /// Secrets (names and versions, never values).
    pub async fn list_secrets(&self) -> Result<Vec<SecretView>, EngineError> {
        let mut out = Vec::new();
        for (_, e) in self.inner.stores.kv.list(SECRET_PREFIX).await? {
            out.push(view(&decode::<StoredSecret>(&e.value)?));
        }
        Ok(out)
    }

    /// Deletes a secret; `CONFLICT` while a function binds it.
    pub async fn delete_secret(&self, actor: &str, name: &str) -> Result<(), EngineError> {
        let users: Vec<String> = {
            let functions = self
                .inner
                .functions
                .read()
                .map_err(|_| EngineError::Internal("lock poisoned".into()))?;
            let mut users = Vec::new();
            for f in functions.values() {
                if f.record.config.secrets.values().any(|s| s == name) {
                    users.push(f.record.name.clone());
                }
                for (n, (v, _)) in &f.versions {
                    if v.config.secrets.values().any(|s| s == name) {
                        users.push(format!("{}:{n}", f.record.name));
                    }
                }
            }
            users
        };
        if !users.is_empty() {
            return Err(EngineError::Conflict(format!(
                "secret {name:?} is bound by {}",
                users.join(", ")
            )));
        }
        let kv = &self.inner.stores.kv;
        let before = kv
            .get(&secret_key(name))
            .await?
            .map(|e| decode::<StoredSecret>(&e.value))
            .transpose()?
            .ok_or_else(|| {
                EngineError::ResourceNotFound(format!("secret {name:?} does not exist"))
            })?;
        match kv.delete(&secret_key(name), None).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.audit(
            actor,
            "secret.delete",
            None,
            &format!("secret {name}"),
            Some(&view(&before)),
            None,
        )
        .await;
        Ok(())
    }

    /// Whether secret `name` exists (one key read).
    pub async fn secret_exists(&self, name: &str) -> Result<bool, EngineError> {
        Ok(self.inner.stores.kv.get(&secret_key(name)).await?.is_some())
    }

    /// Fails with `INVALID_INPUT` when a binding names a secret that does not exist.
    pub(crate) async fn check_secrets_exist(
        &self,
        config: &FunctionConfig,
    ) -> Result<(), EngineError> {
        for (var, secret) in &config.secrets {
            if !self.secret_exists(secret).await? {
                return Err(EngineError::invalid(
                    &format!("secrets.{var}"),
                    format!("secret {secret:?} does not exist; create it with `holactl lambda secret set {secret}`"),
                ));
            }
        }
        Ok(())
    }

    /// The plaintext values of a function's bound secrets, as (variable, value).
    pub(crate) async fn resolve_secrets(
        &self,
        config: &FunctionConfig,
    ) -> Result<Vec<(String, String)>, EngineError> {
        let mut out = Vec::with_capacity(config.secrets.len());
        for (var, name) in &config.secrets {
            let value = self.secret_value(name).await?.ok_or_else(|| {
                EngineError::ResourceNotFound(format!(
                    "secret {name:?} bound to {var} does not exist"
                ))
            })?;
            out.push((var.clone(), value));
        }
        Ok(out)
    }

    /// The plaintext value of secret `name`, `None` when it does not exist.
    pub(crate) async fn secret_value(&self, name: &str) -> Result<Option<String>, EngineError> {
        let Some(stored) = self
            .inner
            .stores
            .kv
            .get(&secret_key(name))
            .await?
            .map(|e| decode::<StoredSecret>(&e.value))
            .transpose()?
        else {
            return Ok(None);
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce = b64
            .decode(&stored.nonce)
            .map_err(|_| EngineError::Internal("corrupt secret".into()))?;
        let ciphertext = b64
            .decode(&stored.ciphertext)
            .map_err(|_| EngineError::Internal("corrupt secret".into()))?;
        if nonce.len() != 12 {
            return Err(EngineError::Internal("corrupt secret".into()));
        }
        let plain = cipher(&self.inner.master_key)
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| {
                EngineError::Internal(format!(
                    "secret {name:?} cannot be decrypted with this master key"
                ))
            })?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| EngineError::Internal("secret is not UTF-8".into()))
    }
}

/// Replaces every occurrence of each secret value in `log` with [`MASK`].
pub fn mask(log: &mut Vec<u8>, secrets: &[String]) {
    for secret in secrets {
        let needle = secret.as_bytes();
        // Very short values would mask ordinary text; they are not worth hiding this way.
        if needle.len() < 4 {
            continue;
        }
        let mut out = Vec::with_capacity(log.len());
        let mut i = 0;
        while i < log.len() {
            if log[i..].starts_with(needle) {
                out.extend_from_slice(MASK.as_bytes());
                i += needle.len();
            } else {
                out.push(log[i]);
                i += 1;
            }
        }
        *log = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values() {
        let mut log = b"pw=hunter22 and hunter22 again; ab stays".to_vec();
        mask(&mut log, &["hunter22".into(), "ab".into()]);
        assert_eq!(log, b"pw=**** and **** again; ab stays");
    }

    #[test]
    fn master_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_master_key(dir.path()).unwrap();
        let b = load_master_key(dir.path()).unwrap();
        assert_eq!(a, b);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn ciphertext_is_bound_to_the_name() {
        let key = [7u8; 32];
        let nonce = [1u8; 12];
        let c = cipher(&key)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: b"v",
                    aad: b"a",
                },
            )
            .unwrap();
        assert!(cipher(&key)
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &c, aad: b"b" })
            .is_err());
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_aad() {
        let key = [9u8; 32];
        let sealed = seal(&key, b"webhook/x", b"hunter22").unwrap();
        assert!(!sealed.ciphertext.contains("hunter22"));
        assert_eq!(unseal(&key, b"webhook/x", &sealed).unwrap(), b"hunter22");
        assert!(unseal(&key, b"webhook/y", &sealed).is_err());
        assert!(unseal(&[8u8; 32], b"webhook/x", &sealed).is_err());
    }

    #[tokio::test]
    async fn a_cluster_node_needs_the_clusters_master_key() {
        let shared = tempfile::tempdir().unwrap();
        let stores = holactl_store::embedded::EmbeddedStore::open(shared.path()).unwrap();
        let kv = stores.kv.as_ref();
        // The first node of a new cluster creates a key (in its key file).
        let first = tempfile::tempdir().unwrap();
        let key = cluster_master_key(kv, first.path(), "ns").await.unwrap();
        // A node without a key refuses, saying how to give it one.
        let bare = tempfile::tempdir().unwrap();
        let err = cluster_master_key(kv, bare.path(), "ns").await.unwrap_err();
        assert!(
            err.to_string().contains("this node has no master key"),
            "{err}"
        );
        assert!(!bare.path().join(MASTER_KEY_FILE).exists());
        // A node with another key refuses.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join(MASTER_KEY_FILE), hex::encode([7u8; 32])).unwrap();
        let err = cluster_master_key(kv, other.path(), "ns")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is not the cluster's"), "{err}");
        // A node given the same key joins.
        let same = tempfile::tempdir().unwrap();
        std::fs::write(same.path().join(MASTER_KEY_FILE), hex::encode(key)).unwrap();
        assert_eq!(
            cluster_master_key(kv, same.path(), "ns").await.unwrap(),
            key
        );
    }
}
