//! `holactl lambda deploy NAME --source DIR|ZIP`: create or update a function.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use holactl_types::api::{CreateFunctionRequest, UpdateFunctionRequest};
use holactl_types::function::Network;
use holactl_types::FunctionManifest;
use indicatif::{ProgressBar, ProgressStyle};

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// The manifest file read from a source directory.
pub const MANIFEST: &str = "hola.toml";

/// `deploy` options.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Function name.
    pub name: String,
    /// A directory (zipped here) or a .zip file.
    #[arg(long)]
    pub source: PathBuf,
    /// Configuration (each flag overrides the manifest).
    #[command(flatten)]
    pub config: ConfigFlags,
    /// Bind secret SECRET as environment variable ENV (repeatable; added to the manifest's).
    #[arg(long = "secret", value_name = "ENV=SECRET")]
    pub secrets: Vec<String>,
    /// Environment variable KEY=VALUE (repeatable; added to the manifest's).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

/// Configuration flags shared by `deploy` and `update`.
#[derive(Debug, Args)]
pub struct ConfigFlags {
    /// Runtime: python3.X, nodejsNN.x, nodeNN, provided.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Handler.
    #[arg(long)]
    pub handler: Option<String>,
    /// Memory size, MB (512–4096).
    #[arg(long)]
    pub memory: Option<u32>,
    /// Timeout, seconds (1–900).
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Size of /tmp, MB (512–10240; memory-backed, counts toward memory).
    #[arg(long = "ephemeral-storage", value_name = "MB")]
    pub ephemeral_storage: Option<u32>,
    /// Network reach: isolated (default, no outbound connections) or host.
    #[arg(long, value_parser = parse_network)]
    pub network: Option<Network>,
}

/// Reads `hola.toml` from `dir`, if present.
pub fn read_manifest(dir: &Path) -> anyhow::Result<Option<FunctionManifest>> {
    let path = dir.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("INVALID_INPUT: {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Parses `--network`.
pub fn parse_network(s: &str) -> Result<Network, String> {
    Network::parse(s).map_err(|e| e.message)
}

/// Parses repeated `KEY=VALUE` flags.
pub fn parse_env(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("INVALID_INPUT: --env {p:?} is not KEY=VALUE"),
        })
        .collect()
}

/// The package bytes and manifest of a source (directory or zip).
pub fn load_source(source: &Path) -> anyhow::Result<(Vec<u8>, Option<FunctionManifest>)> {
    let meta = std::fs::metadata(source)
        .map_err(|e| anyhow::anyhow!("INVALID_INPUT: --source {}: {e}", source.display()))?;
    if meta.is_dir() {
        let manifest = read_manifest(source)?;
        let zip = crate::package::zip_dir(source)?;
        Ok((zip, manifest))
    } else {
        let zip = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
        Ok((zip, None))
    }
}

/// Uploads `zip` unless the server already has it; returns its sha256.
pub async fn upload(client: &crate::client::Client, zip: Vec<u8>) -> anyhow::Result<String> {
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&zip))
    };
    if client.has_code(&sha).await? {
        eprintln!("Code unchanged on the server ({})", &sha[..12]);
        return Ok(sha);
    }
    let total = zip.len() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("Uploading {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = bar.clone();
    let uploaded = client
        .upload_code(Bytes::from(zip), move |sent| progress.set_position(sent))
        .await;
    bar.finish_and_clear();
    let uploaded = uploaded?;
    eprintln!(
        "Uploaded {} ({} files, {} unpacked)",
        output::bytes(uploaded.code.size),
        uploaded.files,
        output::bytes(uploaded.code.unpacked_size)
    );
    Ok(uploaded.code.sha256)
}

/// Creates or updates the function.
pub async fn run(g: &GlobalOpts, args: DeployArgs) -> anyhow::Result<Outcome> {
    let (zip, manifest) = load_source(&args.source)?;
    let manifest = manifest.unwrap_or_default();
    let has_manifest_env = !manifest.environment.is_empty();
    let mut environment = manifest.environment.clone();
    environment.extend(parse_env(&args.env)?);
    let send_env = has_manifest_env || !args.env.is_empty();
    let send_secrets = !manifest.secrets.is_empty() || !args.secrets.is_empty();
    let mut secrets = manifest.secrets.clone();
    secrets.extend(parse_env(&args.secrets)?);

    let client = g.client()?;
    let existing = client.find_function(&args.name).await?;
    let sha = upload(&client, zip).await?;
    let c = args.config;
    let runtime = c.runtime.or(manifest.runtime);
    let handler = c.handler.or(manifest.handler);
    let memory_mb = c.memory.or(manifest.memory_mb);
    let timeout_s = c.timeout.or(manifest.timeout_s);
    let description = c.description.or(manifest.description);
    let ephemeral_storage_mb = c.ephemeral_storage.or(manifest.ephemeral_storage_mb);
    let network = c.network.or(manifest.network);
    let view = match existing {
        Some(_) => {
            client
                .update_function(
                    &args.name,
                    &UpdateFunctionRequest {
                        code_sha256: Some(sha),
                        runtime,
                        handler,
                        memory_mb,
                        timeout_s,
                        environment: send_env.then_some(environment),
                        description,
                        ephemeral_storage_mb,
                        network,
                        secrets: send_secrets.then_some(secrets),
                        ..Default::default()
                    },
                )
                .await?
        }
        None => {
            if runtime.is_none() {
                bail!("INVALID_INPUT: no runtime: pass --runtime or set runtime in {MANIFEST}");
            }
            client
                .create_function(&CreateFunctionRequest {
                    name: args.name.clone(),
                    code_sha256: sha,
                    runtime,
                    handler,
                    memory_mb,
                    timeout_s,
                    environment: send_env.then_some(environment),
                    description,
                    ephemeral_storage_mb,
                    network,
                    secrets: send_secrets.then_some(secrets),
                    ..Default::default()
                })
                .await?
        }
    };
    if g.output == OutputFormat::Json {
        output::json(&view)?;
    } else {
        println!(
            "Deployed {} ({}, handler {}, {} MB, {} s, network {}), code {}",
            view.name,
            view.config.runtime,
            view.config.handler,
            view.config.memory_mb,
            view.config.timeout_s,
            view.config.network.as_str(),
            &view.code.sha256[..12]
        );
        if let Some(note) = &view.runtime_resolution.note {
            println!("Note: {note}");
        }
    }
    Ok(Outcome::Success)
}
