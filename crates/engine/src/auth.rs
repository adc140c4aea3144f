//! The admin token: created on first start, only its hash kept in the store, the token itself
//! written once to `<data-dir>/admin.token` (mode 0600).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bytes::Bytes;
use holactl_store::{Kv, StoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::EngineError;

const ADMIN_KEY: &str = "auth/admin-token-sha256";

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
    if let Some(entry) = kv.get(ADMIN_KEY).await? {
        return entry
            .value
            .as_ref()
            .try_into()
            .map_err(|_| EngineError::Internal("stored admin token hash is corrupt".into()));
    }
    let token = new_token()?;
    let digest = hash(&token);
    let path = data_dir.join(TOKEN_FILE);
    // Write the file before the hash: a crash between the two leaves a file whose token is
    // not accepted yet, and the next start replaces it.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| EngineError::Internal(format!("{}: {e}", path.display())))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| EngineError::Internal(format!("{}: {e}", path.display())))?;
    match kv.create(ADMIN_KEY, Bytes::copy_from_slice(&digest)).await {
        Ok(_) => Ok(digest),
        Err(StoreError::Conflict { .. }) => Box::pin(ensure_admin_token(kv, data_dir)).await,
        Err(e) => Err(e.into()),
    }
}

/// Compares a presented token with the admin hash in constant time.
pub fn verify(admin_hash: &[u8; 32], presented: &str) -> bool {
    hash(presented).ct_eq(admin_hash).into()
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
}
