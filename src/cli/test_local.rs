//! `holactl lambda test --local DIR [--event FILE]`: run a function from a directory through
//! the same sandbox and Runtime API as the server, with a throwaway engine and no server.

use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use holactl_engine::{Engine, EngineConfig, InvokeRequest};
use holactl_types::api::CreateFunctionRequest;
use holactl_types::Trigger;

use super::{deploy, output, GlobalOpts, Outcome, OutputFormat};

/// `test` options.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The function's directory.
    #[arg(long = "local", value_name = "DIR")]
    pub dir: PathBuf,
    /// Event file (default: DIR/event.json if present, else `{}`).
    #[arg(long)]
    pub event: Option<PathBuf>,
    /// Runtime (overrides the manifest).
    #[arg(long)]
    pub runtime: Option<String>,
    /// Handler (overrides the manifest).
    #[arg(long)]
    pub handler: Option<String>,
    /// Timeout, seconds (overrides the manifest).
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Memory size, MB (overrides the manifest).
    #[arg(long)]
    pub memory: Option<u32>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

/// Runs the function once and prints result, init time and duration.
pub async fn run(g: &GlobalOpts, args: TestArgs) -> anyhow::Result<Outcome> {
    let (zip, manifest) = deploy::load_source(&args.dir)?;
    let manifest = manifest.unwrap_or_default();
    let event_path = args
        .event
        .clone()
        .or_else(|| Some(args.dir.join("event.json")).filter(|p| p.is_file()));
    let event = match &event_path {
        Some(p) => std::fs::read(p)
            .map_err(|e| anyhow::anyhow!("INVALID_INPUT: --event {}: {e}", p.display()))?,
        None => b"{}".to_vec(),
    };
    if serde_json::from_slice::<serde_json::Value>(&event).is_err() {
        anyhow::bail!("INVALID_INPUT: the event is not valid JSON");
    }
    let mut environment = manifest.environment.clone();
    environment.extend(deploy::parse_env(&args.env)?);

    let scratch = tempfile::tempdir().context("creating a scratch data dir")?;
    let init_program = std::env::current_exe()?;
    let mut config = EngineConfig::new(scratch.path().to_owned(), init_program);
    config.isolation = std::env::var("HOLACTL_ISOLATION")
        .ok()
        .and_then(|l| l.parse().ok());
    let engine = Engine::open(config).await?;
    let code = engine.upload_code(Bytes::from(zip)).await?;
    let name = manifest
        .name
        .clone()
        .unwrap_or_else(|| "local-test".to_owned());
    if !manifest.secrets.is_empty() {
        anyhow::bail!(
            "INVALID_INPUT: secrets are not available in a local test; pass values with --env"
        );
    }
    engine
        .create_function(
            "local",
            CreateFunctionRequest {
                name: name.clone(),
                code_sha256: code.code.sha256,
                runtime: args.runtime.or(manifest.runtime),
                handler: args.handler.or(manifest.handler),
                memory_mb: args.memory.or(manifest.memory_mb),
                timeout_s: args.timeout.or(manifest.timeout_s),
                environment: Some(environment),
                description: manifest.description,
                ephemeral_storage_mb: manifest.ephemeral_storage_mb,
                network: manifest.network,
                secrets: None,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code(), e.public_message()))?;
    let out = engine
        .invoke(
            &name,
            InvokeRequest::new(Bytes::from(event), Trigger::Local),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code(), e.public_message()))?;
    let log = engine
        .execution_logs(&out.record.id)
        .await
        .map(|l| l.log)
        .unwrap_or_default();
    engine.shutdown();
    let r = &out.record;
    if g.output == OutputFormat::Json {
        output::json(&serde_json::json!({
            "execution": r,
            "result": serde_json::from_slice::<serde_json::Value>(&out.body).ok(),
            "log": log,
        }))?;
    } else {
        eprint!("{log}");
        println!("{}", output::pretty_body(&out.body));
        eprintln!(
            "status {} · init {} · duration {:.2} ms (billed {} ms) · {} MB",
            r.status.as_str(),
            r.init_duration_ms
                .map(|i| format!("{i:.2} ms"))
                .unwrap_or_else(|| "-".into()),
            r.duration_ms.unwrap_or(0.0),
            r.billed_duration_ms.unwrap_or(0),
            r.memory_mb
        );
    }
    match &r.error {
        Some(err) => {
            eprintln!("error: {}: {}", err.code, err.message);
            Ok(Outcome::Failed)
        }
        None => Ok(Outcome::Success),
    }
}
