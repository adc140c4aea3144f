//! [`BlobStore`] on a JetStream object store: objects named by their hex sha256, chunked by
//! the client (so packages far above the server's max payload fit), each chunk replicated as
//! the bucket is.

use async_nats::jetstream::{self, object_store, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use crate::{is_sha256_hex, sha256_hex, BlobStore, StoreError};

/// Code packages in one object store bucket.
pub(super) struct NatsBlobStore {
    store: object_store::ObjectStore,
    name: String,
}

impl NatsBlobStore {
    /// Opens bucket `name`, creating it when missing.
    pub async fn open(
        js: &jetstream::Context,
        name: &str,
        replicas: usize,
    ) -> Result<Self, StoreError> {
        let store = match js.get_object_store(name).await {
            Ok(store) => store,
            Err(_) => match js
                .create_object_store(object_store::Config {
                    bucket: name.to_owned(),
                    description: Some("holactl code packages".to_owned()),
                    storage: stream::StorageType::File,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
            {
                Ok(store) => store,
                Err(create) => js.get_object_store(name).await.map_err(|_| {
                    StoreError::Unavailable(format!("creating object store {name}: {create}"))
                })?,
            },
        };
        Ok(NatsBlobStore {
            store,
            name: name.to_owned(),
        })
    }

    fn unavailable(&self, what: &str, err: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!("{what} in object store {}: {err}", self.name))
    }
}

#[async_trait]
impl BlobStore for NatsBlobStore {
    async fn put(&self, bytes: Bytes) -> Result<String, StoreError> {
        let sha = sha256_hex(&bytes);
        if self.contains(&sha).await? {
            return Ok(sha);
        }
        let mut reader: &[u8] = &bytes;
        self.store
            .put(sha.as_str(), &mut reader)
            .await
            .map_err(|e| self.unavailable(&format!("storing {sha}"), e))?;
        Ok(sha)
    }

    async fn get(&self, sha256: &str) -> Result<Option<Bytes>, StoreError> {
        if !is_sha256_hex(sha256) {
            return Ok(None);
        }
        let mut object = match self.store.get(sha256).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.unavailable(&format!("reading {sha256}"), e)),
        };
        let mut out = Vec::with_capacity(object.info().size);
        object
            .read_to_end(&mut out)
            .await
            .map_err(|e| self.unavailable(&format!("reading {sha256}"), e))?;
        // The address is the content: never hand out bytes that do not match it.
        if sha256_hex(&out) != sha256 {
            return Err(self.unavailable(&format!("reading {sha256}"), "content does not match"));
        }
        Ok(Some(Bytes::from(out)))
    }

    async fn contains(&self, sha256: &str) -> Result<bool, StoreError> {
        if !is_sha256_hex(sha256) {
            return Ok(false);
        }
        match self.store.info(sha256).await {
            Ok(info) => Ok(!info.deleted),
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.unavailable(&format!("looking up {sha256}"), e)),
        }
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut objects = self
            .store
            .list()
            .await
            .map_err(|e| self.unavailable("listing", e))?;
        let mut out = Vec::new();
        while let Some(info) = objects.next().await {
            let info = info.map_err(|e| self.unavailable("listing", e))?;
            if !info.deleted && is_sha256_hex(&info.name) {
                out.push(info.name);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}
