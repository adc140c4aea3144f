//! `holactl lambda trigger create|list|get|enable|disable|delete`: event-source mappings that
//! feed a queue's messages to a function in batches.

use clap::Subcommand;
use holactl_types::queue::{CreateTriggerRequest, TriggerView};

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `trigger` subcommands.
#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Map a queue to a function: its messages are delivered in SQS-shaped batches.
    Create {
        /// Source queue.
        #[arg(long)]
        queue: String,
        /// Target function, NAME or NAME:QUALIFIER.
        #[arg(long)]
        function: String,
        /// Most records per invocation (1–10000, default 10).
        #[arg(long)]
        batch_size: Option<u32>,
        /// How long to gather records for a fuller batch (0–300 s; `1s`, `2m` or seconds).
        #[arg(long, value_parser = parse_seconds, value_name = "DURATION")]
        batch_window: Option<u32>,
        /// Retries of a failed record before it goes to the queue's DLQ (0–10000, default 3).
        #[arg(long)]
        max_retries: Option<u32>,
        /// Records older than this go to the DLQ (60 s–14 d; `6h` or seconds; default 14 d).
        #[arg(long, value_parser = parse_seconds, value_name = "DURATION")]
        max_record_age: Option<u32>,
        /// Split a failing batch in halves to isolate the failing record.
        #[arg(long)]
        bisect_on_error: bool,
        /// Most batches in flight at once (1–10, default 1).
        #[arg(long)]
        parallelization: Option<u32>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List triggers.
    List,
    /// Show a trigger.
    Get {
        /// Trigger id.
        id: String,
    },
    /// Start delivering.
    Enable {
        /// Trigger id.
        id: String,
    },
    /// Stop delivering (batches in flight finish; messages stay queued).
    Disable {
        /// Trigger id.
        id: String,
    },
    /// Delete a trigger.
    Delete {
        /// Trigger id.
        id: String,
    },
}

/// Seconds from `90`, `90s`, `2m`, `6h` or `1d`.
fn parse_seconds(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u32 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30, 30s, 5m, 6h or 1d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit is one of s, m, h, d")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too long"))
}

fn print(g: &GlobalOpts, t: &TriggerView, verb: &str) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        output::json(t)
    } else {
        println!(
            "Trigger {} {verb}: {} → {} ({})",
            t.trigger.id, t.trigger.queue, t.trigger.function, t.state
        );
        Ok(())
    }
}

/// Runs a `trigger` subcommand.
pub async fn run(g: &GlobalOpts, cmd: TriggerCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        TriggerCommand::Create {
            queue,
            function,
            batch_size,
            batch_window,
            max_retries,
            max_record_age,
            bisect_on_error,
            parallelization,
            disabled,
        } => {
            let t = client
                .create_trigger(&CreateTriggerRequest {
                    queue,
                    function,
                    batch_size,
                    batch_window_s: batch_window,
                    max_retries,
                    max_record_age_s: max_record_age,
                    bisect_on_error: Some(bisect_on_error),
                    parallelization,
                    enabled: Some(!disabled),
                })
                .await?;
            print(g, &t, "created")?;
        }
        TriggerCommand::List => {
            let list = client.list_triggers().await?;
            if g.output == OutputFormat::Json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .triggers
                    .iter()
                    .map(|v| {
                        let t = &v.trigger;
                        vec![
                            t.id.clone(),
                            t.queue.clone(),
                            t.function.clone(),
                            v.state.clone(),
                            t.batch_size.to_string(),
                            format!("{}s", t.batch_window_s),
                            t.max_retries.to_string(),
                            if t.bisect_on_error { "yes" } else { "no" }.to_owned(),
                            t.parallelization.to_string(),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "ID", "QUEUE", "FUNCTION", "STATE", "BATCH", "WINDOW", "RETRIES", "BISECT",
                        "PARALLEL",
                    ],
                    &rows,
                )?;
            }
        }
        TriggerCommand::Get { id } => output::json(&client.get_trigger(&id).await?)?,
        TriggerCommand::Enable { id } => {
            print(g, &client.set_trigger_enabled(&id, true).await?, "enabled")?
        }
        TriggerCommand::Disable { id } => print(
            g,
            &client.set_trigger_enabled(&id, false).await?,
            "disabled",
        )?,
        TriggerCommand::Delete { id } => {
            client.delete_trigger(&id).await?;
            println!("Trigger {id} deleted");
        }
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::parse_seconds;

    #[test]
    fn durations() {
        assert_eq!(parse_seconds("1s"), Ok(1));
        assert_eq!(parse_seconds("21600"), Ok(21600));
        assert_eq!(parse_seconds("6h"), Ok(21600));
        assert_eq!(parse_seconds("2m"), Ok(120));
        assert_eq!(parse_seconds("14d"), Ok(1_209_600));
        assert!(parse_seconds("1.5s").is_err());
        assert!(parse_seconds("5x").is_err());
        assert!(parse_seconds("").is_err());
    }
}
