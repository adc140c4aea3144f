//! `holactl lambda update NAME [--memory --timeout --env … --max-retries --max-event-age …]`:
//! change configuration without new code.

use clap::Args;
use holactl_types::api::UpdateFunctionRequest;
use holactl_types::function::Network;

use super::deploy::{parse_env, parse_network};
use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `update` options.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Function name.
    pub name: String,
    /// Handler.
    #[arg(long)]
    pub handler: Option<String>,
    /// Runtime.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Memory size, MB.
    #[arg(long)]
    pub memory: Option<u32>,
    /// Timeout, seconds.
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Size of /tmp, MB.
    #[arg(long = "ephemeral-storage", value_name = "MB")]
    pub ephemeral_storage: Option<u32>,
    /// Network reach: isolated or host.
    #[arg(long, value_parser = parse_network)]
    pub network: Option<Network>,
    /// Replace ALL environment variables with these KEY=VALUE pairs (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Retries of failed async invocations (0–2).
    #[arg(long = "max-retries")]
    pub max_retries: Option<u32>,
    /// Maximum age of an async event, seconds (60–21600).
    #[arg(long = "max-event-age", value_name = "SECONDS")]
    pub max_event_age: Option<u32>,
}

/// Applies the changes.
pub async fn run(g: &GlobalOpts, args: UpdateArgs) -> anyhow::Result<Outcome> {
    let req = UpdateFunctionRequest {
        handler: args.handler,
        runtime: args.runtime,
        memory_mb: args.memory,
        timeout_s: args.timeout,
        description: args.description,
        ephemeral_storage_mb: args.ephemeral_storage,
        network: args.network,
        environment: (!args.env.is_empty())
            .then(|| parse_env(&args.env))
            .transpose()?,
        max_retry_attempts: args.max_retries,
        max_event_age_s: args.max_event_age,
        ..Default::default()
    };
    let view = g.client()?.update_function(&args.name, &req).await?;
    if g.output == OutputFormat::Json {
        output::json(&view)?;
    } else {
        let c = &view.config;
        println!(
            "Updated {}: {} MB, {} s, async retries {}, max event age {} s",
            view.name,
            c.memory_mb,
            c.timeout_s,
            c.async_config.max_retry_attempts,
            c.async_config.max_event_age_s
        );
    }
    Ok(Outcome::Success)
}
