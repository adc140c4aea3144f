//! The admin token: created on first start, only its hash kept in the store, the token itself
//! written once to `<data-dir>/admin.token` (mode 0600). In a cluster it is created once per
//! cluster, by the first node to start, and only that node has the file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bytes::Bytes;
use holactl_store::{Kv, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::EngineError;

const ADMIN_KEY: &str = "auth/admin-token-sha256";
/// Which node created the admin token (cluster mode): a [`TokenOrigin`].
const ORIGIN_KEY: &str = "auth/admin-token-origin";
/// A token written but whose hash is not stored yet.
const PENDING_TOKEN_FILE: &str = "admin.token.new";

/// File name of the admin token inside the data dir.
pub const TOKEN_FILE: &str = "admin.token";

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn new_token() -> Result<String, EngineError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| EngineError::Internal(e.to_string()))?;
    Ok(format!("hola_{}", hex::encode(bytes)))
}

/// Ensures an admin token exists; returns its hash. Creates one (and the token file) on
/// first start.
pub async fn ensure_admin_token(kv: &dyn Kv, data_dir: &Path) -> Result<[u8; 32], EngineError> {
    Ok(ensure_admin_token_as(kv, data_dir, None).await?.hash)
}

/// The admin token as a node found it at start.
#[derive(Clone, Debug)]
pub struct AdminToken {
    /// Its sha256.
    pub hash: [u8; 32],
    /// Where the token itself can be read: this node's file, or (cluster mode) the node
    /// that created it; `None` when that node did not say.
    pub origin: Option<TokenOrigin>,
}

/// Which node created the admin token and where it wrote it (`auth/admin-token-origin`), so
/// the other nodes of a cluster can tell an operator where to look.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenOrigin {
    /// The creating node's id.
    pub node: String,
    /// Its API address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The token file on that node.
    pub path: String,
}

/// Like [`ensure_admin_token`], for a node (`Some((id, address))` in cluster mode): only the
/// node whose `create` wins writes `admin.token`; the others learn the hash, and where the
/// token is, from the store.
///
/// The token is written to `admin.token.new` first, renamed to `admin.token` once its hash
/// is stored: a node that loses the race leaves no token file behind, and a crash between
/// the two is finished at the next start (the pending file's hash is the stored one).
pub async fn ensure_admin_token_as(
    kv: &dyn Kv,
    data_dir: &Path,
    node: Option<(&str, Option<&str>)>,
) -> Result<AdminToken, EngineError> {
    let path = data_dir.join(TOKEN_FILE);
    let pending = data_dir.join(PENDING_TOKEN_FILE);
    let local_origin = || TokenOrigin {
        node: node.map_or_else(|| "this node".to_owned(), |(id, _)| id.to_owned()),
        address: node.and_then(|(_, a)| a.map(str::to_owned)),
        path: path.display().to_string(),
    };
    if let Some(entry) = kv.get(ADMIN_KEY).await? {
        let digest: [u8; 32] = entry
            .value
            .as_ref()
            .try_into()
            .map_err(|_| EngineError::Internal("stored admin token hash is corrupt".into()))?;
        // Finish a creation interrupted between storing the hash and renaming the file.
        if let Ok(text) = std::fs::read_to_string(&pending) {
            if hash(text.trim()) == digest {
                std::fs::rename(&pending, &path)
                    .map_err(|e| EngineError::Internal(format!("{}: {e}", path.display())))?;
            } else {
                let _ = std::fs::remove_file(&pending);
            }
        }
        let origin = if path.is_file() {
            Some(local_origin())
        } else {
            match kv.get(ORIGIN_KEY).await? {
                Some(e) => serde_json::from_slice(&e.value).ok(),
                None => None,
            }
        };
        return Ok(AdminToken {
            hash: digest,
            origin,
        });
    }
    let token = new_token()?;
    let digest = hash(&token);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&pending)
        .map_err(|e| EngineError::Internal(format!("{}: {e}", pending.display())))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| EngineError::Internal(format!("{}: {e}", pending.display())))?;
    match kv.create(ADMIN_KEY, Bytes::copy_from_slice(&digest)).await {
        Ok(_) => {
            std::fs::rename(&pending, &path)
                .map_err(|e| EngineError::Internal(format!("{}: {e}", path.display())))?;
            let origin = local_origin();
            if node.is_some() {
                // Best effort: only used to tell operators where the token is.
                if let Ok(bytes) = serde_json::to_vec(&origin) {
                    let _ = kv.put(ORIGIN_KEY, Bytes::from(bytes)).await;
                }
            }
            Ok(AdminToken {
                hash: digest,
                origin: Some(origin),
            })
        }
        Err(StoreError::Conflict { .. }) => {
            // Another node created it first: its token is the one.
            let _ = std::fs::remove_file(&pending);
            Box::pin(ensure_admin_token_as(kv, data_dir, node)).await
        }
        Err(e) => {
            let _ = std::fs::remove_file(&pending);
            Err(e.into())
        }
    }
}

/// Compares a presented token with the admin hash in constant time.
pub fn verify(admin_hash: &[u8; 32], presented: &str) -> bool {
    hash(presented).ct_eq(admin_hash).into()
}

/// The token of an `Authorization: Bearer …` header (the scheme in any case).
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn created_once_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let stores = holactl_store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        let h1 = ensure_admin_token(stores.kv.as_ref(), dir.path())
            .await
            .unwrap();
        let path = dir.path().join(TOKEN_FILE);
        let token = std::fs::read_to_string(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(verify(&h1, token.trim()));
        assert!(!verify(&h1, "hola_wrong"));
        // Second start keeps the same token.
        let h2 = ensure_admin_token(stores.kv.as_ref(), dir.path())
            .await
            .unwrap();
        assert_eq!(h1, h2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
        // Only the hash is stored.
        let stored = stores.kv.get(ADMIN_KEY).await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&stored.value).contains(token.trim()));
    }

    #[tokio::test]
    async fn in_a_cluster_only_the_creating_node_has_the_file() {
        let shared = tempfile::tempdir().unwrap();
        let stores = holactl_store::embedded::EmbeddedStore::open(shared.path()).unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let kv = stores.kv.as_ref();
        let first = ensure_admin_token_as(kv, a.path(), Some(("node-a", Some("http://a:8080"))))
            .await
            .unwrap();
        let second = ensure_admin_token_as(kv, b.path(), Some(("node-b", None)))
            .await
            .unwrap();
        assert_eq!(first.hash, second.hash);
        assert!(a.path().join(TOKEN_FILE).is_file());
        assert!(!b.path().join(TOKEN_FILE).exists());
        assert!(!b.path().join(PENDING_TOKEN_FILE).exists());
        // The other node knows where the token is.
        let origin = second.origin.unwrap();
        assert_eq!(origin.node, "node-a");
        assert_eq!(origin.address.as_deref(), Some("http://a:8080"));
        assert_eq!(origin.path, a.path().join(TOKEN_FILE).display().to_string());
    }

    #[tokio::test]
    async fn a_creation_cut_short_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let stores = holactl_store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        // As if the node died between storing the hash and renaming the file.
        let token = new_token().unwrap();
        std::fs::write(dir.path().join(PENDING_TOKEN_FILE), format!("{token}\n")).unwrap();
        stores
            .kv
            .create(ADMIN_KEY, Bytes::copy_from_slice(&hash(&token)))
            .await
            .unwrap();
        let found = ensure_admin_token(stores.kv.as_ref(), dir.path())
            .await
            .unwrap();
        assert!(verify(&found, &token));
        let file = std::fs::read_to_string(dir.path().join(TOKEN_FILE)).unwrap();
        assert_eq!(file.trim(), token);
        assert!(!dir.path().join(PENDING_TOKEN_FILE).exists());
    }

    #[test]
    fn bearer_header() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Bearer abc ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert("authorization", "bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
