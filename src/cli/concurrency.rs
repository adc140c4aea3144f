//! `holactl lambda concurrency set|get|delete`.

use clap::{Args, Subcommand};
use holactl_types::concurrency::FunctionConcurrency;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `concurrency` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConcurrencyCommand {
    /// Set a function's reserved and provisioned concurrency.
    Set(SetArgs),
    /// Show a function's concurrency settings.
    Get {
        /// Function name.
        name: String,
    },
    /// Clear a function's concurrency settings.
    Delete {
        /// Function name.
        name: String,
    },
}

/// `concurrency set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Function name.
    pub name: String,
    /// The most instances running at once (0 disables the function).
    #[arg(long)]
    pub reserved: Option<u32>,
    /// Instances of `$LATEST` kept initialised.
    #[arg(long)]
    pub provisioned: Option<u32>,
}

fn print(g: &GlobalOpts, name: &str, c: &FunctionConcurrency) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(c);
    }
    let show = |n: Option<u32>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    output::table(
        &["FUNCTION", "RESERVED", "PROVISIONED"],
        &[vec![name.to_owned(), show(c.reserved), show(c.provisioned)]],
    )
}

/// Runs a `concurrency` subcommand.
pub async fn run(g: &GlobalOpts, cmd: ConcurrencyCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        ConcurrencyCommand::Set(a) => {
            let req = FunctionConcurrency {
                reserved: a.reserved,
                provisioned: a.provisioned,
            };
            let view = client.set_concurrency(&a.name, &req).await?;
            print(g, &a.name, &view)?;
        }
        ConcurrencyCommand::Get { name } => {
            let view = client.get_concurrency(&name).await?;
            print(g, &name, &view)?;
        }
        ConcurrencyCommand::Delete { name } => {
            client.delete_concurrency(&name).await?;
            println!("Cleared concurrency settings of {name}");
        }
    }
    Ok(Outcome::Success)
}
