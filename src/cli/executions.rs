//! `holactl lambda executions NAME`.

use clap::Args;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `executions` options.
#[derive(Debug, Args)]
pub struct ExecutionsArgs {
    /// Function name.
    pub name: String,
    /// How many (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// Lists a function's executions.
pub async fn run(g: &GlobalOpts, args: ExecutionsArgs) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    client.get_function(&args.name).await?;
    let list = client
        .list_executions(Some(&args.name), args.limit.clamp(1, 1000))
        .await?;
    if g.output == OutputFormat::Json {
        output::json(&list)?;
        return Ok(Outcome::Success);
    }
    let rows: Vec<Vec<String>> = list
        .executions
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.status.as_str().to_owned(),
                e.version.clone(),
                output::time(e.created_at),
                e.duration_ms
                    .map(|d| format!("{d:.2} ms"))
                    .unwrap_or_default(),
                if e.cold_start { "yes" } else { "no" }.to_owned(),
                e.error
                    .as_ref()
                    .map(|err| err.code.as_str().to_owned())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID", "STATUS", "VERSION", "STARTED", "DURATION", "COLD", "ERROR",
        ],
        &rows,
    )?;
    Ok(Outcome::Success)
}
