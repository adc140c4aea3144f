//! `holactl lambda update NAME [--memory --timeout --env … --max-retries --max-event-age …]`:
//! change configuration without new code.

use clap::Args;
use holactl_types::api::UpdateFunctionRequest;

use super::deploy::{parse_env, ConfigFlags};
use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `update` options.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Function name.
    pub name: String,
    /// Configuration changes.
    #[command(flatten)]
    pub config: ConfigFlags,
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
        handler: args.config.handler,
        runtime: args.config.runtime,
        memory_mb: args.config.memory,
        timeout_s: args.config.timeout,
        description: args.config.description,
        ephemeral_storage_mb: args.config.ephemeral_storage,
        network: args.config.network,
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
