//! `holactl lambda executions NAME`, `executions get ID`, `executions cancel ID`.

use clap::{Args, Subcommand};
use holactl_types::ExecutionRecord;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `executions` options.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExecutionsArgs {
    /// Show or cancel one execution.
    #[command(subcommand)]
    pub command: Option<ExecutionCommand>,
    /// Function name (lists its executions).
    pub name: Option<String>,
    /// How many (newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// `executions` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExecutionCommand {
    /// Show one execution: status, attempts, timings, result or error.
    Get {
        /// Execution id.
        id: String,
    },
    /// Cancel an execution: a pending one never runs, a running one is stopped.
    Cancel {
        /// Execution id.
        id: String,
    },
}

fn show(g: &GlobalOpts, e: &ExecutionRecord) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(e);
    }
    println!("Execution:  {}", e.id);
    println!("Function:   {} (version {})", e.function, e.version);
    println!("Status:     {}", e.status.as_str());
    println!("Trigger:    {:?}", e.trigger);
    println!("Attempts:   {}", e.attempts);
    println!("Accepted:   {}", output::time(e.created_at));
    if let Some(t) = e.started_at {
        println!("Started:    {}", output::time(t));
    }
    if let Some(t) = e.ended_at {
        println!("Ended:      {}", output::time(t));
    }
    if let Some(d) = e.duration_ms {
        println!(
            "Duration:   {d:.2} ms (billed {} ms){}",
            e.billed_duration_ms.unwrap_or(0),
            e.init_duration_ms
                .map(|i| format!(", cold start, init {i:.2} ms"))
                .unwrap_or_default()
        );
    }
    if let Some(r) = &e.result {
        println!("Result:     {}", r.get());
    }
    if let Some(err) = &e.error {
        println!(
            "Error:      {}: {} ({})",
            err.code, err.message, err.error_type
        );
    }
    Ok(())
}

/// Lists a function's executions, or shows/cancels one.
pub async fn run(g: &GlobalOpts, args: ExecutionsArgs) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match args.command {
        Some(ExecutionCommand::Get { id }) => {
            show(g, &client.get_execution(&id).await?)?;
            return Ok(Outcome::Success);
        }
        Some(ExecutionCommand::Cancel { id }) => {
            let e = client.cancel_execution(&id).await?;
            show(g, &e)?;
            return Ok(Outcome::Success);
        }
        None => {}
    }
    let Some(name) = args.name else {
        anyhow::bail!("INVALID_INPUT: give a function name, or `get ID` / `cancel ID`");
    };
    client.get_function(&name).await?;
    let list = client
        .list_executions(Some(&name), args.limit.clamp(1, 1000))
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
                e.attempts.to_string(),
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
            "ID", "STATUS", "VERSION", "ACCEPTED", "DURATION", "ATTEMPTS", "COLD", "ERROR",
        ],
        &rows,
    )?;
    Ok(Outcome::Success)
}
