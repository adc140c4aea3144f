//! Functions and their code: upload, create, update, read, delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use holactl_store::{is_sha256_hex, sha256_hex, StoreError};
use holactl_types::api::{
    CodeUploaded, CreateFunctionRequest, FunctionView, RuntimeResolution, UpdateFunctionRequest,
};
use holactl_types::function::{validate_function_name, CodeRef};
use holactl_types::limits::{MAX_CODE_ZIP_BYTES, MAX_FUNCTIONS};
use holactl_types::version::{AliasRecord, VersionRecord, LATEST};
use holactl_types::{FunctionConfig, FunctionRecord, RuntimeFamily};
use serde::{Deserialize, Serialize};

use crate::code::CodeError;
use crate::{now_ms, Engine, EngineError, FunctionEntry, Runnable};

pub(crate) const FUNCTION_PREFIX: &str = "functions/";
pub(crate) const VERSION_PREFIX: &str = "versions/";
pub(crate) const ALIAS_PREFIX: &str = "aliases/";
const CODE_PREFIX: &str = "code/";
/// Attempts of an update that races other updates.
const UPDATE_ATTEMPTS: usize = 5;

pub(crate) fn function_key(name: &str) -> String {
    format!("{FUNCTION_PREFIX}{name}")
}

/// The part of an instance key that comes from configuration.
fn config_key(c: &FunctionConfig) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

/// What the store keeps about an uploaded package.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CodeMeta {
    size: u64,
    unpacked_size: u64,
    files: u64,
    has_bootstrap: bool,
}

/// Serializes a stored value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Bytes, EngineError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| EngineError::Internal(e.to_string()))
}

/// Deserializes a stored value.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, EngineError> {
    serde_json::from_slice(bytes).map_err(|e| EngineError::Internal(format!("corrupt record: {e}")))
}

impl Engine {
    pub(crate) async fn load_functions(&self) -> Result<(), EngineError> {
        let kv = &self.inner.stores.kv;
        let mut records = BTreeMap::new();
        for (key, entry) in kv.list(FUNCTION_PREFIX).await? {
            match decode::<FunctionRecord>(&entry.value) {
                Ok(record) => {
                    records.insert(record.name.clone(), record);
                }
                Err(e) => tracing::error!(key, error = %e, "skipping unreadable function record"),
            }
        }
        let mut versions: BTreeMap<String, BTreeMap<u32, VersionRecord>> = BTreeMap::new();
        for (key, entry) in kv.list(VERSION_PREFIX).await? {
            match decode::<VersionRecord>(&entry.value) {
                Ok(v) if records.contains_key(&v.function) => {
                    versions
                        .entry(v.function.clone())
                        .or_default()
                        .insert(v.version, v);
                }
                Ok(v) => {
                    // Left behind by a delete interrupted by a crash (unless another node
                    // created the function since it was listed).
                    if self.function_gone(&v.function).await {
                        let _ = kv.delete(&key, None).await;
                    }
                }
                Err(e) => tracing::error!(key, error = %e, "skipping unreadable version"),
            }
        }
        let mut aliases: BTreeMap<String, BTreeMap<String, AliasRecord>> = BTreeMap::new();
        for (key, entry) in kv.list(ALIAS_PREFIX).await? {
            match decode::<AliasRecord>(&entry.value) {
                Ok(a) if records.contains_key(&a.function) => {
                    aliases
                        .entry(a.function.clone())
                        .or_default()
                        .insert(a.name.clone(), a);
                }
                Ok(a) => {
                    if self.function_gone(&a.function).await {
                        let _ = kv.delete(&key, None).await;
                    }
                }
                Err(e) => tracing::error!(key, error = %e, "skipping unreadable alias"),
            }
        }
        let mut loaded = Vec::new();
        for (name, record) in records {
            let v = versions.remove(&name).unwrap_or_default();
            let a = aliases.remove(&name).unwrap_or_default();
            loaded.push(self.entry_for(record, v, a));
        }
        let mut functions = self
            .inner
            .functions
            .write()
            .map_err(|_| EngineError::Internal("lock poisoned".into()))?;
        for entry in loaded {
            functions.insert(entry.record.name.clone(), Arc::new(entry));
        }
        Ok(())
    }

    /// Whether `name` has no record in the store now: what a sweep of records left behind
    /// by an interrupted delete checks before removing one, since in a cluster the function
    /// may have been created by another node after this node listed or cached functions.
    /// A store error counts as "not gone" (nothing is removed on doubt).
    pub(crate) async fn function_gone(&self, name: &str) -> bool {
        matches!(
            self.inner.stores.kv.get(&function_key(name)).await,
            Ok(None)
        )
    }

    /// Makes sure package `code` is unpacked on this node. In a cluster the upload reached
    /// one node; the others fetch the zip from the shared blob store on first use (or when a
    /// function using it changes) and unpack it into their own cache.
    pub(crate) async fn ensure_code(&self, code: &CodeRef) -> Result<(), EngineError> {
        if self.inner.code.contains(&code.sha256) {
            return Ok(());
        }
        let zip = self
            .inner
            .stores
            .blobs
            .get(&code.sha256)
            .await?
            .ok_or_else(|| {
                EngineError::Internal(format!("code package {} is not in the store", code.sha256))
            })?;
        let cache = self.inner.code.clone();
        let sha = code.sha256.clone();
        tokio::task::spawn_blocking(move || {
            if sha256_hex(&zip) != sha {
                return Err(EngineError::Internal(format!(
                    "the stored code package {sha} does not match its sha256"
                )));
            }
            cache
                .insert(&sha, &zip)
                .map_err(|e| EngineError::Internal(format!("unpacking code {sha}: {e}")))
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        Ok(())
    }

    /// What runs for `$LATEST` or a version.
    pub(crate) fn runnable(
        &self,
        name: &str,
        version: Option<u32>,
        config: &FunctionConfig,
        code: &CodeRef,
        key: String,
    ) -> Arc<Runnable> {
        Arc::new(Runnable {
            name: name.to_owned(),
            version: version.map_or_else(|| LATEST.to_owned(), |v| v.to_string()),
            config: config.clone(),
            code: code.clone(),
            instance_key: key,
            arn: self.function_arn(name),
        })
    }

    pub(crate) fn entry_for(
        &self,
        record: FunctionRecord,
        versions: BTreeMap<u32, VersionRecord>,
        aliases: BTreeMap<String, AliasRecord>,
    ) -> FunctionEntry {
        let resolution = self.resolution(&record.config);
        let latest = self.runnable(
            &record.name,
            None,
            &record.config,
            &record.code,
            format!("{LATEST}|{}", record.instance_key()),
        );
        let versions = versions
            .into_iter()
            .map(|(n, v)| {
                let key = format!("{n}|{}|{}", v.code.sha256, config_key(&v.config));
                let run = self.runnable(&v.function, Some(n), &v.config, &v.code, key);
                (n, (Arc::new(v), run))
            })
            .collect();
        FunctionEntry {
            record,
            resolution,
            latest,
            versions,
            aliases,
        }
    }
    fn resolution(&self, config: &FunctionConfig) -> RuntimeResolution {
        let catalog = &self.inner.catalog;
        match catalog.resolve(
            &config.runtime,
            std::path::Path::new("/"),
            catalog.runtime_dir(),
        ) {
            Ok(r) => RuntimeResolution {
                interpreter: r.interpreter.as_ref().map(|i| i.path.display().to_string()),
                interpreter_version: r.interpreter.map(|i| i.version_string),
                note: r.note,
            },
            Err(e) => RuntimeResolution {
                interpreter: None,
                interpreter_version: None,
                note: Some(e.to_string()),
            },
        }
    }

    pub(crate) fn function_entry(&self, name: &str) -> Result<Arc<FunctionEntry>, EngineError> {
        self.inner
            .functions
            .read()
            .map_err(|_| EngineError::Internal("lock poisoned".into()))?
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::FunctionNotFound(name.to_owned()))
    }

    pub(crate) fn cache_function(
        &self,
        entry: FunctionEntry,
    ) -> Result<Arc<FunctionEntry>, EngineError> {
        let entry = Arc::new(entry);
        self.inner
            .functions
            .write()
            .map_err(|_| EngineError::Internal("lock poisoned".into()))?
            .insert(entry.record.name.clone(), entry.clone());
        Ok(entry)
    }

    pub(crate) fn view(&self, entry: &FunctionEntry) -> FunctionView {
        let r = &entry.record;
        FunctionView {
            name: r.name.clone(),
            version: "$LATEST".to_owned(),
            arn: self.function_arn(&r.name),
            config: r.config.clone(),
            code: r.code.clone(),
            runtime_resolution: entry.resolution.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    /// `arn:aws:lambda:{region}:{account}:function:{name}`.
    pub fn function_arn(&self, name: &str) -> String {
        let c = &self.inner.config;
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            c.region, c.account_id
        )
    }

    /// Validates, unpacks and stores a zipped code package; returns its content address.
    pub async fn upload_code(&self, zip: Bytes) -> Result<CodeUploaded, EngineError> {
        if zip.len() > MAX_CODE_ZIP_BYTES {
            return Err(EngineError::PayloadTooLarge {
                what: "code package",
                size: zip.len(),
                limit: MAX_CODE_ZIP_BYTES,
            });
        }
        let cache = self.inner.code.clone();
        let (sha, stats, has_bootstrap) = {
            let zip = zip.clone();
            tokio::task::spawn_blocking(move || {
                let sha = sha256_hex(&zip);
                let stats = cache.insert(&sha, &zip)?;
                let bootstrap = cache.path(&sha).join("bootstrap");
                let has_bootstrap = std::fs::metadata(&bootstrap)
                    .map(|m| {
                        use std::os::unix::fs::PermissionsExt;
                        m.is_file() && m.permissions().mode() & 0o111 != 0
                    })
                    .unwrap_or(false);
                Ok::<_, CodeError>((sha, stats, has_bootstrap))
            })
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|e| match e {
                CodeError::Invalid(m) => EngineError::invalid("code", m),
                CodeError::Io(e) => EngineError::Internal(e.to_string()),
            })?
        };
        let size = zip.len() as u64;
        self.inner.stores.blobs.put(zip).await?;
        let meta = CodeMeta {
            size,
            unpacked_size: stats.unpacked_size,
            files: stats.files,
            has_bootstrap,
        };
        self.inner
            .stores
            .kv
            .put(&format!("{CODE_PREFIX}{sha}"), encode(&meta)?)
            .await?;
        Ok(CodeUploaded {
            code: CodeRef {
                sha256: sha,
                size,
                unpacked_size: stats.unpacked_size,
            },
            files: stats.files,
        })
    }

    /// Whether a package with this content address is stored.
    pub async fn has_code(&self, sha256: &str) -> Result<bool, EngineError> {
        Ok(is_sha256_hex(sha256)
            && self
                .inner
                .stores
                .kv
                .get(&format!("{CODE_PREFIX}{sha256}"))
                .await?
                .is_some())
    }

    async fn code_ref(
        &self,
        sha256: &str,
        config: &FunctionConfig,
    ) -> Result<CodeRef, EngineError> {
        let missing = || {
            EngineError::invalid(
                "code_sha256",
                format!("no uploaded package {sha256:?}; upload it with POST /api/v1/code"),
            )
        };
        if !is_sha256_hex(sha256) {
            return Err(missing());
        }
        let entry = self
            .inner
            .stores
            .kv
            .get(&format!("{CODE_PREFIX}{sha256}"))
            .await?
            .ok_or_else(missing)?;
        let meta: CodeMeta = decode(&entry.value)?;
        if config.runtime.family() == RuntimeFamily::Provided && !meta.has_bootstrap {
            return Err(EngineError::invalid(
                "code",
                format!(
                    "runtime {} needs an executable file named 'bootstrap' at the package root",
                    config.runtime
                ),
            ));
        }
        Ok(CodeRef {
            sha256: sha256.to_owned(),
            size: meta.size,
            unpacked_size: meta.unpacked_size,
        })
    }

    /// Creates a function; `CONFLICT` if the name is taken.
    pub async fn create_function(
        &self,
        actor: &str,
        req: CreateFunctionRequest,
    ) -> Result<FunctionView, EngineError> {
        validate_function_name(&req.name)?;
        let config = req.config_patch().into_new_config()?;
        let code = self.code_ref(&req.code_sha256, &config).await?;
        self.check_secrets_exist(&config).await?;
        let count = self
            .inner
            .functions
            .read()
            .map_err(|_| EngineError::Internal("lock poisoned".into()))?
            .len();
        if count >= MAX_FUNCTIONS {
            return Err(EngineError::LimitExceeded(format!(
                "a project holds at most {MAX_FUNCTIONS} functions"
            )));
        }
        let now = now_ms();
        let record = FunctionRecord {
            name: req.name.clone(),
            config,
            code,
            created_at: now,
            updated_at: now,
            last_version: 0,
        };
        match self
            .inner
            .stores
            .kv
            .create(&function_key(&record.name), encode(&record)?)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(EngineError::Conflict(format!(
                    "function {:?} already exists",
                    record.name
                )))
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(function = %record.name, runtime = %record.config.runtime, "function created");
        let entry =
            self.cache_function(self.entry_for(record, BTreeMap::new(), BTreeMap::new()))?;
        let view = self.view(&entry);
        self.audit(
            actor,
            "function.create",
            Some(&view.name),
            &view.name,
            None,
            Some(&view),
        )
        .await;
        Ok(view)
    }

    /// Changes a function's `$LATEST` code and/or configuration.
    pub async fn update_function(
        &self,
        actor: &str,
        name: &str,
        req: UpdateFunctionRequest,
    ) -> Result<FunctionView, EngineError> {
        let patch = req.config_patch();
        if patch.is_empty() && req.code_sha256.is_none() {
            return Err(EngineError::invalid("body", "nothing to update"));
        }
        for _ in 0..UPDATE_ATTEMPTS {
            let before = self.function_entry(name)?;
            let stored = self
                .inner
                .stores
                .kv
                .get(&function_key(name))
                .await?
                .ok_or_else(|| EngineError::FunctionNotFound(name.to_owned()))?;
            let mut record: FunctionRecord = decode(&stored.value)?;
            record.config = patch.clone().apply(&record.config)?;
            let sha = req
                .code_sha256
                .clone()
                .unwrap_or_else(|| record.code.sha256.clone());
            record.code = self.code_ref(&sha, &record.config).await?;
            self.check_secrets_exist(&record.config).await?;
            record.updated_at = now_ms();
            match self
                .inner
                .stores
                .kv
                .update(&function_key(name), encode(&record)?, stored.revision)
                .await
            {
                Ok(_) => {
                    tracing::info!(function = %name, "function updated");
                    let entry = self.replace_latest(name, record)?;
                    self.inner.pool.purge_key(name, &before.latest.instance_key);
                    let view = self.view(&entry);
                    let before_view = self.view(&before);
                    self.audit(
                        actor,
                        "function.update",
                        Some(name),
                        name,
                        Some(&before_view),
                        Some(&view),
                    )
                    .await;
                    return Ok(view);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!(
            "function {name:?} is being changed concurrently; try again"
        )))
    }

    /// Swaps in a new `$LATEST` record, keeping versions and aliases.
    fn replace_latest(
        &self,
        name: &str,
        record: FunctionRecord,
    ) -> Result<Arc<FunctionEntry>, EngineError> {
        let current = self.function_entry(name)?;
        let versions = current
            .versions
            .iter()
            .map(|(n, (v, _))| (*n, (**v).clone()))
            .collect();
        self.cache_function(self.entry_for(record, versions, current.aliases.clone()))
    }

    /// One function.
    pub fn get_function(&self, name: &str) -> Result<FunctionView, EngineError> {
        Ok(self.view(self.function_entry(name)?.as_ref()))
    }

    /// Every function, by name.
    pub fn list_functions(&self) -> Result<Vec<FunctionView>, EngineError> {
        let functions = self
            .inner
            .functions
            .read()
            .map_err(|_| EngineError::Internal("lock poisoned".into()))?;
        let mut views: Vec<FunctionView> = functions.values().map(|e| self.view(e)).collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(views)
    }

    /// Deletes a function with its versions and aliases, and stops its warm instances. Its
    /// executions stay queryable.
    pub async fn delete_function(&self, actor: &str, name: &str) -> Result<(), EngineError> {
        let before = self.function_entry(name)?;
        let kv = &self.inner.stores.kv;
        match kv.delete(&function_key(name), None).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(EngineError::FunctionNotFound(name.to_owned()))
            }
            Err(e) => return Err(e.into()),
        }
        // Versions and aliases of a function that no longer exists are ignored (and removed)
        // at the next start if a crash interrupts this.
        for n in before.versions.keys() {
            let _ = kv
                .delete(&crate::versions::version_key(name, *n), None)
                .await;
        }
        for alias in before.aliases.keys() {
            let _ = kv
                .delete(&crate::versions::alias_key(name, alias), None)
                .await;
        }
        if let Ok(mut functions) = self.inner.functions.write() {
            functions.remove(name);
        }
        let _ = self.forget_concurrency(name).await;
        self.forget_policies(name).await;
        self.inner.pool.purge(name);
        tracing::info!(function = %name, "function deleted");
        let before_view = self.view(&before);
        self.audit(
            actor,
            "function.delete",
            Some(name),
            name,
            Some(&before_view),
            None,
        )
        .await;
        Ok(())
    }
}
