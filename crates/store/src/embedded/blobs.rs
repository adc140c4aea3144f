//! Content-addressed blobs as files named by their sha256.

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{is_sha256_hex, sha256_hex, BlobStore, StoreError};

/// Blobs under one directory, written atomically (temp file, fsync, rename).
#[derive(Debug)]
pub struct FsBlobStore {
    dir: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating) the directory.
    pub fn open(dir: PathBuf) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&dir).map_err(StoreError::unavailable)?;
        Ok(FsBlobStore { dir })
    }

    fn path(&self, sha256: &str) -> Result<PathBuf, StoreError> {
        if !is_sha256_hex(sha256) {
            return Err(StoreError::NotFound(sha256.to_owned()));
        }
        Ok(self.dir.join(sha256))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, bytes: Bytes) -> Result<String, StoreError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let sha = sha256_hex(&bytes);
            let path = dir.join(&sha);
            if path.exists() {
                return Ok(sha);
            }
            let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(StoreError::unavailable)?;
            tmp.write_all(&bytes).map_err(StoreError::unavailable)?;
            tmp.as_file().sync_all().map_err(StoreError::unavailable)?;
            tmp.persist(&path).map_err(StoreError::unavailable)?;
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(StoreError::unavailable)?;
            Ok(sha)
        })
        .await
        .map_err(StoreError::unavailable)?
    }

    async fn get(&self, sha256: &str) -> Result<Option<Bytes>, StoreError> {
        let path = match self.path(sha256) {
            Ok(p) => p,
            Err(_) => return Ok(None),
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    async fn contains(&self, sha256: &str) -> Result<bool, StoreError> {
        match self.path(sha256) {
            Ok(p) => Ok(tokio::fs::try_exists(p).await.unwrap_or(false)),
            Err(_) => Ok(false),
        }
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(StoreError::unavailable)? {
                let name = entry.map_err(StoreError::unavailable)?.file_name();
                // Temp files of writes in progress have other names.
                if let Some(name) = name.to_str().filter(|n| is_sha256_hex(n)) {
                    out.push(name.to_owned());
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(StoreError::unavailable)?
    }
}
