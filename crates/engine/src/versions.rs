//! Versions and aliases: `publish` snapshots `$LATEST` into an immutable, numbered version;
//! aliases name a version and may send a weighted share of traffic to a second one.

use std::sync::Arc;

use holactl_store::StoreError;
use holactl_types::api::{AliasView, SetAliasRequest, ShiftAliasRequest, VersionView};
use holactl_types::limits::MAX_VERSIONS_PER_FUNCTION;
use holactl_types::version::{
    validate_alias_name, weight_from_percent, AliasRecord, Routing, VersionRecord, LATEST,
};
use holactl_types::FunctionRecord;

use crate::functions::{decode, encode, function_key};
use crate::{now_ms, Engine, EngineError, FunctionEntry};

/// Store key of a version.
pub(crate) fn version_key(function: &str, version: u32) -> String {
    format!(
        "{}{function}/{version:010}",
        crate::functions::VERSION_PREFIX
    )
}

/// Store key of an alias.
pub(crate) fn alias_key(function: &str, alias: &str) -> String {
    format!("{}{function}/{alias}", crate::functions::ALIAS_PREFIX)
}

impl Engine {
    fn version_view(&self, v: &VersionRecord) -> VersionView {
        VersionView {
            function: v.function.clone(),
            version: v.version.to_string(),
            arn: format!("{}:{}", self.function_arn(&v.function), v.version),
            description: v.description.clone(),
            config: v.config.clone(),
            code: v.code.clone(),
            created_at: v.created_at,
        }
    }

    fn latest_view(&self, f: &FunctionEntry) -> VersionView {
        VersionView {
            function: f.record.name.clone(),
            version: LATEST.to_owned(),
            arn: format!("{}:{LATEST}", self.function_arn(&f.record.name)),
            description: f.record.config.description.clone(),
            config: f.record.config.clone(),
            code: f.record.code.clone(),
            created_at: f.record.updated_at,
        }
    }

    fn alias_view(&self, a: &AliasRecord) -> AliasView {
        AliasView {
            arn: format!("{}:{}", self.function_arn(&a.function), a.name),
            alias: a.clone(),
        }
    }

    /// Replaces the in-memory entry of `name` by `edit` applied to a copy of it.
    fn edit_entry(
        &self,
        name: &str,
        edit: impl FnOnce(&mut FunctionRecord, &mut Vec<VersionRecord>, &mut Vec<AliasRecord>),
    ) -> Result<Arc<FunctionEntry>, EngineError> {
        let current = self.function_entry(name)?;
        let mut record = current.record.clone();
        let mut versions: Vec<VersionRecord> = current
            .versions
            .values()
            .map(|(v, _)| (**v).clone())
            .collect();
        let mut aliases: Vec<AliasRecord> = current.aliases.values().cloned().collect();
        edit(&mut record, &mut versions, &mut aliases);
        let entry = self.entry_for(
            record,
            versions.into_iter().map(|v| (v.version, v)).collect(),
            aliases.into_iter().map(|a| (a.name.clone(), a)).collect(),
        );
        self.cache_function(entry)
    }

    /// Publishes `$LATEST` as a new version; an unchanged `$LATEST` returns the last version.
    pub async fn publish_version(
        &self,
        actor: &str,
        name: &str,
        description: Option<String>,
    ) -> Result<(VersionView, bool), EngineError> {
        let kv = &self.inner.stores.kv;
        loop {
            let entry = self.function_entry(name)?;
            let latest = &entry.record;
            if let Some((_, (last, _))) = entry.versions.iter().next_back() {
                if last.code == latest.code && last.config == latest.config {
                    return Ok((self.version_view(last), false));
                }
            }
            if entry.versions.len() >= MAX_VERSIONS_PER_FUNCTION {
                return Err(EngineError::LimitExceeded(format!(
                    "function {name:?} has {MAX_VERSIONS_PER_FUNCTION} versions; delete old ones first"
                )));
            }
            // Take the next number by compare-and-set on the function record.
            let stored = kv
                .get(&function_key(name))
                .await?
                .ok_or_else(|| EngineError::FunctionNotFound(name.to_owned()))?;
            let mut record: FunctionRecord = decode(&stored.value)?;
            if record.code != latest.code || record.config != latest.config {
                // $LATEST changed under us; publish what is stored now.
                tokio::task::yield_now().await;
                continue;
            }
            record.last_version += 1;
            let number = record.last_version;
            match kv
                .update(&function_key(name), encode(&record)?, stored.revision)
                .await
            {
                Ok(_) => {}
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            let version = VersionRecord {
                function: name.to_owned(),
                version: number,
                description: description.clone().unwrap_or_default(),
                config: record.config.clone(),
                code: record.code.clone(),
                created_at: now_ms(),
            };
            kv.create(&version_key(name, number), encode(&version)?)
                .await?;
            let published = version.clone();
            self.edit_entry(name, |r, versions, _| {
                r.last_version = number;
                versions.push(published);
            })?;
            let view = self.version_view(&version);
            tracing::info!(function = %name, version = number, "version published");
            self.audit(
                actor,
                "version.publish",
                Some(name),
                &format!("{name}:{number}"),
                None,
                Some(&view),
            )
            .await;
            return Ok((view, true));
        }
    }

    /// `$LATEST` and every published version.
    pub fn list_versions(&self, name: &str) -> Result<Vec<VersionView>, EngineError> {
        let entry = self.function_entry(name)?;
        let mut out = vec![self.latest_view(&entry)];
        out.extend(entry.versions.values().map(|(v, _)| self.version_view(v)));
        Ok(out)
    }

    /// One version (`$LATEST` or a number).
    pub fn get_version(&self, name: &str, version: &str) -> Result<VersionView, EngineError> {
        let entry = self.function_entry(name)?;
        if version == LATEST {
            return Ok(self.latest_view(&entry));
        }
        let n = parse_version(version)?;
        entry
            .versions
            .get(&n)
            .map(|(v, _)| self.version_view(v))
            .ok_or_else(|| version_not_found(name, n))
    }

    /// Deletes a published version; `CONFLICT` while an alias points to it.
    pub async fn delete_version(
        &self,
        actor: &str,
        name: &str,
        version: &str,
    ) -> Result<(), EngineError> {
        if version == LATEST {
            return Err(EngineError::invalid(
                "version",
                "$LATEST cannot be deleted; delete the function",
            ));
        }
        let n = parse_version(version)?;
        let entry = self.function_entry(name)?;
        let (record, _) = entry
            .versions
            .get(&n)
            .ok_or_else(|| version_not_found(name, n))?;
        if let Some(alias) = entry.aliases.values().find(|a| a.targets().any(|t| t == n)) {
            return Err(EngineError::Conflict(format!(
                "version {n} is used by alias {:?}; move the alias first",
                alias.name
            )));
        }
        match self
            .inner
            .stores
            .kv
            .delete(&version_key(name, n), None)
            .await
        {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let key = entry
            .versions
            .get(&n)
            .map(|(_, run)| run.instance_key.clone());
        self.edit_entry(name, |_, versions, _| versions.retain(|v| v.version != n))?;
        if let Some(key) = key {
            self.inner.pool.purge_key(name, &key);
        }
        let before = self.version_view(record);
        self.audit(
            actor,
            "version.delete",
            Some(name),
            &format!("{name}:{n}"),
            Some(&before),
            None,
        )
        .await;
        Ok(())
    }

    fn check_version_exists(&self, entry: &FunctionEntry, n: u32) -> Result<(), EngineError> {
        if entry.versions.contains_key(&n) {
            Ok(())
        } else {
            Err(version_not_found(&entry.record.name, n))
        }
    }

    async fn store_alias(
        &self,
        actor: &str,
        action: &str,
        before: Option<AliasRecord>,
        alias: AliasRecord,
    ) -> Result<AliasView, EngineError> {
        let name = alias.function.clone();
        self.inner
            .stores
            .kv
            .put(&alias_key(&name, &alias.name), encode(&alias)?)
            .await?;
        let stored = alias.clone();
        self.edit_entry(&name, |_, _, aliases| {
            aliases.retain(|a| a.name != stored.name);
            aliases.push(stored);
        })?;
        let view = self.alias_view(&alias);
        let before = before.map(|b| self.alias_view(&b));
        tracing::info!(function = %name, alias = %alias.name, version = alias.version, routing = ?alias.routing, "{action}");
        self.audit(
            actor,
            action,
            Some(&name),
            &format!("{name}:{}", alias.name),
            before.as_ref(),
            Some(&view),
        )
        .await;
        Ok(view)
    }

    /// Creates an alias or repoints it.
    pub async fn set_alias(
        &self,
        actor: &str,
        name: &str,
        alias: &str,
        req: SetAliasRequest,
    ) -> Result<AliasView, EngineError> {
        validate_alias_name(alias)?;
        let entry = self.function_entry(name)?;
        self.check_version_exists(&entry, req.version)?;
        let routing = match req.routing {
            Some(r) => {
                self.check_version_exists(&entry, r.version)?;
                let weight = weight_from_percent(r.weight)?;
                (r.version != req.version && weight > 0.0).then_some(Routing {
                    version: r.version,
                    weight,
                })
            }
            None => None,
        };
        let before = entry.aliases.get(alias).cloned();
        let now = now_ms();
        let record = AliasRecord {
            function: name.to_owned(),
            name: alias.to_owned(),
            version: req.version,
            routing,
            description: req
                .description
                .or_else(|| before.as_ref().map(|b| b.description.clone()))
                .unwrap_or_default(),
            created_at: before.as_ref().map_or(now, |b| b.created_at),
            updated_at: now,
        };
        self.store_alias(actor, "alias.set", before, record).await
    }

    /// Sends `weight` percent of the alias's traffic to version `to`; 100 makes `to` the
    /// alias's version.
    pub async fn shift_alias(
        &self,
        actor: &str,
        name: &str,
        alias: &str,
        req: ShiftAliasRequest,
    ) -> Result<AliasView, EngineError> {
        let entry = self.function_entry(name)?;
        let before = entry
            .aliases
            .get(alias)
            .cloned()
            .ok_or_else(|| alias_not_found(name, alias))?;
        self.check_version_exists(&entry, req.to)?;
        let weight = weight_from_percent(req.weight)?;
        let mut record = before.clone();
        if weight >= 1.0 || req.to == record.version {
            if weight >= 1.0 {
                record.version = req.to;
            }
            record.routing = None;
        } else if weight == 0.0 {
            record.routing = None;
        } else {
            record.routing = Some(Routing {
                version: req.to,
                weight,
            });
        }
        record.updated_at = now_ms();
        self.store_alias(actor, "alias.shift", Some(before), record)
            .await
    }

    /// One alias.
    pub fn get_alias(&self, name: &str, alias: &str) -> Result<AliasView, EngineError> {
        let entry = self.function_entry(name)?;
        entry
            .aliases
            .get(alias)
            .map(|a| self.alias_view(a))
            .ok_or_else(|| alias_not_found(name, alias))
    }

    /// Every alias of a function.
    pub fn list_aliases(&self, name: &str) -> Result<Vec<AliasView>, EngineError> {
        let entry = self.function_entry(name)?;
        Ok(entry.aliases.values().map(|a| self.alias_view(a)).collect())
    }

    /// Deletes an alias.
    pub async fn delete_alias(
        &self,
        actor: &str,
        name: &str,
        alias: &str,
    ) -> Result<(), EngineError> {
        let entry = self.function_entry(name)?;
        let before = entry
            .aliases
            .get(alias)
            .cloned()
            .ok_or_else(|| alias_not_found(name, alias))?;
        match self
            .inner
            .stores
            .kv
            .delete(&alias_key(name, alias), None)
            .await
        {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.edit_entry(name, |_, _, aliases| aliases.retain(|a| a.name != alias))?;
        self.forget_alias_policy(name, alias).await;
        let view = self.alias_view(&before);
        self.audit(
            actor,
            "alias.delete",
            Some(name),
            &format!("{name}:{alias}"),
            Some(&view),
            None,
        )
        .await;
        Ok(())
    }
}

fn parse_version(s: &str) -> Result<u32, EngineError> {
    s.parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| EngineError::invalid("version", format!("{s:?} is not a version number")))
}

fn version_not_found(name: &str, n: u32) -> EngineError {
    EngineError::ResourceNotFound(format!("function {name:?} has no version {n}"))
}

fn alias_not_found(name: &str, alias: &str) -> EngineError {
    EngineError::ResourceNotFound(format!("function {name:?} has no alias {alias:?}"))
}
