//! Functions: the manifest a user writes, the validated configuration, the stored record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::limits::*;
use crate::EpochMillis;

/// The language family of a runtime identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeFamily {
    /// `python3.x`: our Python bootstrap calls `module.function(event, context)`.
    Python,
    /// `nodejsNN.x` / `nodeNN`: our Node.js bootstrap calls `file.export(event, context)`.
    Node,
    /// `provided`, `provided.al2`, `provided.al2023`: the package's own executable `bootstrap`.
    Provided,
}

/// A runtime identifier as the user wrote it (`python3.11`, `nodejs20.x`, `node18`, `provided`),
/// parsed into its family and requested version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Runtime {
    id: String,
    family: RuntimeFamily,
    /// Python: (3, minor); Node: (major, 0); provided: (0, 0).
    version: (u32, u32),
}

impl Runtime {
    /// Parses a runtime identifier.
    pub fn parse(id: &str) -> Result<Runtime, ValidationError> {
        let bad = || {
            ValidationError::new(
                "runtime",
                format!(
                    "unknown runtime {id:?}; expected python3.X, nodejsNN.x, nodeNN or provided"
                ),
            )
        };
        if let Some(minor) = id.strip_prefix("python3.") {
            let minor: u32 = minor.parse().map_err(|_| bad())?;
            return Ok(Runtime {
                id: id.to_owned(),
                family: RuntimeFamily::Python,
                version: (3, minor),
            });
        }
        let node_major = id
            .strip_prefix("nodejs")
            .and_then(|rest| rest.strip_suffix(".x"))
            .or_else(|| id.strip_prefix("node"));
        if let Some(major) = node_major {
            let major: u32 = major.parse().map_err(|_| bad())?;
            if major < 10 {
                return Err(bad());
            }
            return Ok(Runtime {
                id: id.to_owned(),
                family: RuntimeFamily::Node,
                version: (major, 0),
            });
        }
        if matches!(id, "provided" | "provided.al2" | "provided.al2023") {
            return Ok(Runtime {
                id: id.to_owned(),
                family: RuntimeFamily::Provided,
                version: (0, 0),
            });
        }
        Err(bad())
    }

    /// The identifier as written.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The family.
    pub fn family(&self) -> RuntimeFamily {
        self.family
    }

    /// The requested version: Python `(3, minor)`, Node `(major, 0)`.
    pub fn version(&self) -> (u32, u32) {
        self.version
    }

    /// The handler a new function of this runtime gets when none is given.
    pub fn default_handler(&self) -> &'static str {
        match self.family {
            RuntimeFamily::Python => "lambda_function.lambda_handler",
            RuntimeFamily::Node => "index.handler",
            RuntimeFamily::Provided => "function.handler",
        }
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)
    }
}

impl Serialize for Runtime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id)
    }
}

impl<'de> Deserialize<'de> for Runtime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        Runtime::parse(&id).map_err(serde::de::Error::custom)
    }
}

/// What a function's instances may reach on the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Only their own loopback (where the Runtime API lives): no outbound connections.
    #[default]
    Isolated,
    /// The host's network: outbound connections allowed.
    Host,
}

impl Network {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Isolated => "isolated",
            Network::Host => "host",
        }
    }

    /// Parses the wire form.
    pub fn parse(s: &str) -> Result<Network, ValidationError> {
        match s {
            "isolated" => Ok(Network::Isolated),
            "host" => Ok(Network::Host),
            _ => Err(ValidationError::new(
                "network",
                format!("unknown network mode {s:?}; expected isolated or host"),
            )),
        }
    }
}

/// What happens to failed asynchronous invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AsyncConfig {
    /// Retries after the first attempt (0–2).
    pub max_retry_attempts: u32,
    /// Events older than this (seconds, 60–21600) are not run again but dead-lettered.
    pub max_event_age_s: u32,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        AsyncConfig {
            max_retry_attempts: DEFAULT_MAX_RETRY_ATTEMPTS,
            max_event_age_s: MAX_EVENT_AGE_S,
        }
    }
}

fn default_ephemeral_storage() -> u32 {
    DEFAULT_EPHEMERAL_STORAGE_MB
}

/// What a user writes in `hola.toml`; every field optional so flags can fill the gaps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionManifest {
    /// Function name (the CLI's NAME argument wins).
    pub name: Option<String>,
    /// Runtime identifier.
    pub runtime: Option<String>,
    /// Handler, e.g. `lambda_function.lambda_handler`.
    pub handler: Option<String>,
    /// Memory size, MB.
    pub memory_mb: Option<u32>,
    /// Timeout, seconds.
    pub timeout_s: Option<u32>,
    /// Free text.
    pub description: Option<String>,
    /// Size of `/tmp`, MB.
    pub ephemeral_storage_mb: Option<u32>,
    /// `isolated` (default) or `host`.
    pub network: Option<Network>,
    /// Environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Secrets bound as environment variables: variable name → secret name.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// The validated, normalized configuration of a function: what is stored and run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionConfig {
    /// Runtime.
    pub runtime: Runtime,
    /// Handler string handed to the runtime as `_HANDLER`.
    pub handler: String,
    /// Memory size, MB.
    pub memory_mb: u32,
    /// Timeout, seconds.
    pub timeout_s: u32,
    /// Function's own environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Size of `/tmp`, MB (memory-backed: it counts toward the function's memory).
    #[serde(default = "default_ephemeral_storage")]
    pub ephemeral_storage_mb: u32,
    /// Network reach of the instances.
    #[serde(default)]
    pub network: Network,
    /// Secrets bound as environment variables: variable name → secret name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// Retries and event age of asynchronous invocations.
    #[serde(default, rename = "async")]
    pub async_config: AsyncConfig,
}

/// Optional configuration fields, as in a create or update request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    /// New runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// New handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// New memory size, MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// New timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// Replaces all environment variables when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New `/tmp` size, MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_mb: Option<u32>,
    /// New network mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Replaces all secret bindings when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<BTreeMap<String, String>>,
    /// New async retry count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_attempts: Option<u32>,
    /// New maximum event age, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_age_s: Option<u32>,
}

impl ConfigPatch {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == ConfigPatch::default()
    }

    /// Builds a full configuration from defaults plus this patch, validating it.
    pub fn into_new_config(self) -> Result<FunctionConfig, ValidationError> {
        let runtime_id = self
            .runtime
            .as_deref()
            .ok_or_else(|| ValidationError::new("runtime", "is required"))?;
        let runtime = Runtime::parse(runtime_id)?;
        let config = FunctionConfig {
            handler: self
                .handler
                .unwrap_or_else(|| runtime.default_handler().to_owned()),
            runtime,
            memory_mb: self.memory_mb.unwrap_or(DEFAULT_MEMORY_MB),
            timeout_s: self.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S),
            environment: self.environment.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            ephemeral_storage_mb: self
                .ephemeral_storage_mb
                .unwrap_or(DEFAULT_EPHEMERAL_STORAGE_MB),
            network: self.network.unwrap_or_default(),
            secrets: self.secrets.unwrap_or_default(),
            async_config: AsyncConfig {
                max_retry_attempts: self
                    .max_retry_attempts
                    .unwrap_or(DEFAULT_MAX_RETRY_ATTEMPTS),
                max_event_age_s: self.max_event_age_s.unwrap_or(MAX_EVENT_AGE_S),
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// Applies this patch on top of `base`, validating the result.
    pub fn apply(self, base: &FunctionConfig) -> Result<FunctionConfig, ValidationError> {
        let mut next = base.clone();
        if let Some(runtime) = self.runtime {
            next.runtime = Runtime::parse(&runtime)?;
        }
        if let Some(handler) = self.handler {
            next.handler = handler;
        }
        if let Some(memory) = self.memory_mb {
            next.memory_mb = memory;
        }
        if let Some(timeout) = self.timeout_s {
            next.timeout_s = timeout;
        }
        if let Some(env) = self.environment {
            next.environment = env;
        }
        if let Some(description) = self.description {
            next.description = description;
        }
        if let Some(size) = self.ephemeral_storage_mb {
            next.ephemeral_storage_mb = size;
        }
        if let Some(network) = self.network {
            next.network = network;
        }
        if let Some(secrets) = self.secrets {
            next.secrets = secrets;
        }
        if let Some(n) = self.max_retry_attempts {
            next.async_config.max_retry_attempts = n;
        }
        if let Some(age) = self.max_event_age_s {
            next.async_config.max_event_age_s = age;
        }
        next.validate()?;
        Ok(next)
    }
}

/// Environment variables the platform sets itself; a function may not override them.
pub const RESERVED_ENV_VARS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_MAX_CONCURRENCY",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

impl FunctionConfig {
    /// Checks every field against the limits in [`crate::limits`].
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_handler(&self.runtime, &self.handler)?;
        if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&self.memory_mb) {
            return Err(ValidationError::new(
                "memory_mb",
                format!(
                    "{} is outside {MIN_MEMORY_MB}..={MAX_MEMORY_MB} MB",
                    self.memory_mb
                ),
            ));
        }
        if !(MIN_TIMEOUT_S..=MAX_TIMEOUT_S).contains(&self.timeout_s) {
            return Err(ValidationError::new(
                "timeout_s",
                format!(
                    "{} is outside {MIN_TIMEOUT_S}..={MAX_TIMEOUT_S} seconds",
                    self.timeout_s
                ),
            ));
        }
        if !(MIN_EPHEMERAL_STORAGE_MB..=MAX_EPHEMERAL_STORAGE_MB)
            .contains(&self.ephemeral_storage_mb)
        {
            return Err(ValidationError::new(
                "ephemeral_storage_mb",
                format!(
                    "{} is outside {MIN_EPHEMERAL_STORAGE_MB}..={MAX_EPHEMERAL_STORAGE_MB} MB",
                    self.ephemeral_storage_mb
                ),
            ));
        }
        if self.async_config.max_retry_attempts > MAX_RETRY_ATTEMPTS {
            return Err(ValidationError::new(
                "max_retry_attempts",
                format!("must be 0 to {MAX_RETRY_ATTEMPTS}"),
            ));
        }
        if !(MIN_EVENT_AGE_S..=MAX_EVENT_AGE_S).contains(&self.async_config.max_event_age_s) {
            return Err(ValidationError::new(
                "max_event_age_s",
                format!("must be {MIN_EVENT_AGE_S} to {MAX_EVENT_AGE_S} seconds"),
            ));
        }
        if self.description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(ValidationError::new(
                "description",
                format!("longer than {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
        validate_environment(&self.environment)?;
        validate_secret_bindings(&self.secrets, &self.environment)
    }
}

fn validate_handler(runtime: &Runtime, handler: &str) -> Result<(), ValidationError> {
    let bad = |message: &str| ValidationError::new("handler", message.to_owned());
    if handler.is_empty() {
        return Err(bad("must not be empty"));
    }
    if handler.len() > MAX_HANDLER_LEN {
        return Err(bad("longer than 128 characters"));
    }
    if !handler
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '$'))
    {
        return Err(bad("may only contain letters, digits and . _ - / $"));
    }
    if handler.split('/').any(|part| part == "..") || handler.starts_with('/') {
        return Err(bad("must be a path inside the package"));
    }
    if runtime.family() != RuntimeFamily::Provided {
        match handler.rsplit_once('.') {
            Some((module, function)) if !module.is_empty() && !function.is_empty() => {}
            _ => return Err(bad("must look like module.function")),
        }
    }
    Ok(())
}

fn validate_environment(env: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    let mut total = 0;
    for (key, value) in env {
        let field = format!("environment.{key}");
        validate_env_name(&field, key)?;
        if value.contains('\0') {
            return Err(ValidationError::new(field, "must not contain NUL"));
        }
        total += key.len() + value.len();
    }
    if total > MAX_ENVIRONMENT_BYTES {
        return Err(ValidationError::new(
            "environment",
            format!("{total} bytes in total; the limit is {MAX_ENVIRONMENT_BYTES}"),
        ));
    }
    Ok(())
}

fn validate_env_name(field: &str, key: &str) -> Result<(), ValidationError> {
    let mut chars = key.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !valid_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ValidationError::new(
            field,
            "names must match [A-Za-z_][A-Za-z0-9_]*",
        ));
    }
    if RESERVED_ENV_VARS.contains(&key) {
        return Err(ValidationError::new(field, "is reserved by the platform"));
    }
    Ok(())
}

fn validate_secret_bindings(
    secrets: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Result<(), ValidationError> {
    for (var, secret) in secrets {
        let field = format!("secrets.{var}");
        validate_env_name(&field, var)?;
        if env.contains_key(var) {
            return Err(ValidationError::new(
                field,
                "is also a plain environment variable",
            ));
        }
        validate_secret_name(secret).map_err(|e| ValidationError::new(field, e.message))?;
    }
    Ok(())
}

/// Checks a secret name: `[A-Za-z0-9_.-]{1,128}`.
pub fn validate_secret_name(name: &str) -> Result<(), ValidationError> {
    if name.is_empty() || name.len() > MAX_SECRET_NAME_LEN {
        return Err(ValidationError::new(
            "secret",
            format!("names must be 1 to {MAX_SECRET_NAME_LEN} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ValidationError::new(
            "secret",
            "names may only contain letters, digits, '_', '-' and '.'",
        ));
    }
    Ok(())
}

/// Checks a name of `[A-Za-z0-9_-]{1,max}` (functions, queues, webhooks, aliases), naming
/// `field` in the error.
pub fn validate_name(field: &str, name: &str, max: usize) -> Result<(), ValidationError> {
    if name.is_empty() || name.len() > max {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ValidationError::new(
            field,
            "may only contain letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

/// Checks a function name: `[A-Za-z0-9_-]{1,64}`, as Lambda.
pub fn validate_function_name(name: &str) -> Result<(), ValidationError> {
    validate_name("name", name, MAX_FUNCTION_NAME_LEN)
}

/// A reference to a content-addressed code package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRef {
    /// Hex sha256 of the zip.
    pub sha256: String,
    /// Zip size, bytes.
    pub size: u64,
    /// Unpacked size, bytes.
    pub unpacked_size: u64,
}

/// A function as stored: its `$LATEST` configuration and code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// Name, unique.
    pub name: String,
    /// Configuration.
    pub config: FunctionConfig,
    /// Code package.
    pub code: CodeRef,
    /// Creation time.
    pub created_at: EpochMillis,
    /// Last change.
    pub updated_at: EpochMillis,
    /// The number of the last published version (0: none yet).
    #[serde(default)]
    pub last_version: u32,
}

impl FunctionRecord {
    /// A key that changes whenever anything an instance depends on changes: instances started
    /// for one key are never reused for another.
    pub fn instance_key(&self) -> String {
        let c = &self.config;
        let env: Vec<String> = c
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{:?}|{}",
            self.code.sha256,
            c.runtime,
            c.handler,
            c.memory_mb,
            c.timeout_s,
            c.ephemeral_storage_mb,
            c.network.as_str(),
            c.secrets,
            env.join("\u{0}")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(runtime: &str) -> ConfigPatch {
        ConfigPatch {
            runtime: Some(runtime.into()),
            ..Default::default()
        }
    }

    #[test]
    fn parses_runtimes() {
        let py = Runtime::parse("python3.11").unwrap();
        assert_eq!(
            (py.family(), py.version()),
            (RuntimeFamily::Python, (3, 11))
        );
        for (id, major) in [("nodejs18.x", 18), ("node20", 20), ("nodejs22.x", 22)] {
            let r = Runtime::parse(id).unwrap();
            assert_eq!(
                (r.family(), r.version().0),
                (RuntimeFamily::Node, major),
                "{id}"
            );
        }
        assert_eq!(
            Runtime::parse("provided.al2023").unwrap().family(),
            RuntimeFamily::Provided
        );
        for bad in [
            "",
            "python",
            "python3.",
            "python3.x",
            "node",
            "nodejs18",
            "java17",
            "go1.x",
        ] {
            let err = Runtime::parse(bad).unwrap_err();
            assert_eq!(err.field, "runtime", "{bad}");
        }
    }

    #[test]
    fn defaults_are_applied() {
        let c = patch("python3.11").into_new_config().unwrap();
        assert_eq!(c.handler, "lambda_function.lambda_handler");
        assert_eq!(c.memory_mb, DEFAULT_MEMORY_MB);
        assert_eq!(c.timeout_s, DEFAULT_TIMEOUT_S);
    }

    #[test]
    fn bounds_name_the_field() {
        let cases = [
            (
                ConfigPatch {
                    memory_mb: Some(128),
                    ..patch("node20")
                },
                "memory_mb",
            ),
            (
                ConfigPatch {
                    memory_mb: Some(4097),
                    ..patch("node20")
                },
                "memory_mb",
            ),
            (
                ConfigPatch {
                    timeout_s: Some(0),
                    ..patch("node20")
                },
                "timeout_s",
            ),
            (
                ConfigPatch {
                    timeout_s: Some(901),
                    ..patch("node20")
                },
                "timeout_s",
            ),
            (
                ConfigPatch {
                    handler: Some("nodot".into()),
                    ..patch("node20")
                },
                "handler",
            ),
            (
                ConfigPatch {
                    handler: Some("../x.y".into()),
                    ..patch("node20")
                },
                "handler",
            ),
            (
                ConfigPatch {
                    handler: Some("a b.c".into()),
                    ..patch("node20")
                },
                "handler",
            ),
            (
                ConfigPatch {
                    runtime: None,
                    ..Default::default()
                },
                "runtime",
            ),
        ];
        for (p, field) in cases {
            assert_eq!(p.into_new_config().unwrap_err().field, field);
        }
        let mut env = BTreeMap::new();
        env.insert("1BAD".to_owned(), "x".to_owned());
        let p = ConfigPatch {
            environment: Some(env),
            ..patch("node20")
        };
        assert_eq!(p.into_new_config().unwrap_err().field, "environment.1BAD");
        let mut env = BTreeMap::new();
        env.insert("AWS_LAMBDA_RUNTIME_API".to_owned(), "x".to_owned());
        let p = ConfigPatch {
            environment: Some(env),
            ..patch("node20")
        };
        assert!(p.into_new_config().is_err());
        let mut env = BTreeMap::new();
        env.insert("BIG".to_owned(), "x".repeat(5000));
        let p = ConfigPatch {
            environment: Some(env),
            ..patch("node20")
        };
        assert_eq!(p.into_new_config().unwrap_err().field, "environment");
    }

    #[test]
    fn provided_handler_needs_no_dot() {
        let p = ConfigPatch {
            handler: Some("bootstrap".into()),
            ..patch("provided")
        };
        assert!(p.into_new_config().is_ok());
    }

    #[test]
    fn patch_applies_on_top() {
        let base = patch("python3.11").into_new_config().unwrap();
        let next = ConfigPatch {
            timeout_s: Some(3),
            ..Default::default()
        }
        .apply(&base)
        .unwrap();
        assert_eq!(next.timeout_s, 3);
        assert_eq!(next.handler, base.handler);
        assert!(ConfigPatch {
            memory_mb: Some(1),
            ..Default::default()
        }
        .apply(&base)
        .is_err());
    }

    #[test]
    fn names() {
        for ok in ["a", "hello-world_2", &"x".repeat(64)] {
            assert!(validate_function_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ü", &"x".repeat(65), "a.b"] {
            assert_eq!(
                validate_function_name(bad).unwrap_err().field,
                "name",
                "{bad}"
            );
        }
    }
}
