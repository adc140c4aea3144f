//! `holactl lambda logs NAME [--execution ID]`.

use clap::Args;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `logs` options.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Function name.
    pub name: String,
    /// Only this execution's log.
    #[arg(long)]
    pub execution: Option<String>,
    /// How many recent executions to show (oldest first).
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Keep printing the logs of new executions as they finish (Ctrl-C to stop).
    #[arg(short, long, conflicts_with = "execution")]
    pub follow: bool,
}

/// Prints the function's logs, Lambda style (START / output / END / REPORT).
pub async fn run(g: &GlobalOpts, args: LogsArgs) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    let ids: Vec<String> = match &args.execution {
        Some(id) => vec![id.clone()],
        None => {
            // Fail with FUNCTION_NOT_FOUND for unknown names rather than printing nothing.
            client.get_function(&args.name).await?;
            let mut list = client
                .list_executions(Some(&args.name), args.limit.clamp(1, 1000))
                .await?
                .executions;
            list.reverse();
            list.into_iter().map(|e| e.id).collect()
        }
    };
    let mut logs = Vec::new();
    for id in ids {
        let log = client.execution_logs(&id).await?;
        if log.function != args.name {
            anyhow::bail!(
                "EXECUTION_NOT_FOUND: execution {id} does not belong to function {}",
                args.name
            );
        }
        logs.push(log);
    }
    let mut seen: std::collections::HashSet<String> =
        logs.iter().map(|l| l.execution_id.clone()).collect();
    if g.output == OutputFormat::Json {
        output::json(&logs)?;
    } else {
        for log in logs {
            print!("{}", log.log);
        }
    }
    if !args.follow {
        return Ok(Outcome::Success);
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(Outcome::Success),
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
        let mut fresh = client
            .list_executions(Some(&args.name), 100)
            .await?
            .executions;
        fresh.retain(|e| e.status.is_final() && !seen.contains(&e.id));
        fresh.reverse();
        for e in fresh {
            let log = client.execution_logs(&e.id).await?;
            seen.insert(e.id);
            if g.output == OutputFormat::Json {
                println!("{}", serde_json::to_string(&log)?);
            } else {
                print!("{}", log.log);
            }
            use std::io::Write;
            std::io::stdout().flush()?;
        }
    }
}
