//! `holactl lambda dlq list|show|replay|purge NAME`.

use clap::Subcommand;
use holactl_types::api::ReplayRequest;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List a function's dead-lettered events.
    List {
        /// Function name.
        name: String,
    },
    /// Show one dead-lettered event with its payload and last error.
    Show {
        /// Function name.
        name: String,
        /// Entry id.
        id: String,
    },
    /// Run dead-lettered events again, each as a new execution.
    Replay {
        /// Function name.
        name: String,
        /// Only this entry.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        /// Every entry.
        #[arg(long)]
        all: bool,
    },
    /// Delete dead-lettered events.
    Purge {
        /// Function name.
        name: String,
        /// Only this entry.
        #[arg(long)]
        id: Option<String>,
    },
}

/// Runs a `dlq` subcommand.
pub async fn run(g: &GlobalOpts, cmd: DlqCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        DlqCommand::List { name } => {
            let list = client.dead_letters(&name).await?;
            if g.output == OutputFormat::Json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .entries
                    .iter()
                    .map(|d| {
                        vec![
                            d.id.clone(),
                            d.attempts.to_string(),
                            output::time(d.died_at),
                            output::time(d.expires_at),
                            d.reason.chars().take(60).collect(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "ATTEMPTS", "DIED", "EXPIRES", "LAST ERROR"], &rows)?;
            }
        }
        DlqCommand::Show { name, id } => output::json(&client.dead_letter(&name, &id).await?)?,
        DlqCommand::Replay { name, id, all } => {
            let req = ReplayRequest {
                ids: id.map(|i| vec![i]),
                all,
            };
            let result = client.replay_dead_letters(&name, &req).await?;
            if g.output == OutputFormat::Json {
                output::json(&result)?;
            } else {
                for (dead, new) in &result.replayed {
                    println!("{dead} → execution {new}");
                }
                println!("Replayed {} event(s)", result.replayed.len());
            }
        }
        DlqCommand::Purge { name, id } => {
            let result = client.purge_dead_letters(&name, id.as_deref()).await?;
            println!("Purged {} event(s)", result.purged);
        }
    }
    Ok(Outcome::Success)
}
