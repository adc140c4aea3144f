//! `holactl lambda alias set|get|list|delete|shift`.

use clap::{Args, Subcommand};
use holactl_types::api::{AliasView, RoutingRequest, SetAliasRequest, ShiftAliasRequest};

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `alias` subcommands.
#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Create an alias or point it at a version.
    Set(SetArgs),
    /// Show an alias.
    Get(NameArgs),
    /// List a function's aliases.
    List {
        /// Function name.
        name: String,
    },
    /// Delete an alias.
    Delete(NameArgs),
    /// Send a share of an alias's traffic to another version (100 completes the shift).
    Shift(ShiftArgs),
}

/// Function and alias.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// Function name.
    pub name: String,
    /// Alias name.
    #[arg(long)]
    pub alias: String,
}

/// `alias set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Function name.
    pub name: String,
    /// Alias name.
    #[arg(long)]
    pub alias: String,
    /// Version the alias points to.
    #[arg(long)]
    pub version: u32,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// A second version getting `--weight` percent of the traffic.
    #[arg(long, requires = "weight")]
    pub routing_version: Option<u32>,
    /// Percent of traffic to `--routing-version`.
    #[arg(long)]
    pub weight: Option<f64>,
}

/// `alias shift`.
#[derive(Debug, Args)]
pub struct ShiftArgs {
    /// Function name.
    pub name: String,
    /// Alias name.
    #[arg(long)]
    pub alias: String,
    /// Version receiving the traffic.
    #[arg(long)]
    pub to: u32,
    /// Percent of traffic to send to `--to` (0–100).
    #[arg(long)]
    pub weight: f64,
}

fn print(g: &GlobalOpts, aliases: &[AliasView]) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(&aliases);
    }
    let rows: Vec<Vec<String>> = aliases
        .iter()
        .map(|a| {
            let a = &a.alias;
            let routing = match &a.routing {
                Some(r) => format!(
                    "{}% → {}, {:.1}% → {}",
                    format_percent(1.0 - r.weight),
                    a.version,
                    r.weight * 100.0,
                    r.version
                ),
                None => format!("100% → {}", a.version),
            };
            vec![
                a.name.clone(),
                a.version.to_string(),
                routing,
                a.description.clone(),
            ]
        })
        .collect();
    output::table(&["ALIAS", "VERSION", "TRAFFIC", "DESCRIPTION"], &rows)
}

fn format_percent(fraction: f64) -> String {
    format!("{:.1}", fraction * 100.0)
}

/// Runs an `alias` subcommand.
pub async fn run(g: &GlobalOpts, cmd: AliasCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        AliasCommand::Set(a) => {
            let req = SetAliasRequest {
                version: a.version,
                description: a.description,
                routing: match (a.routing_version, a.weight) {
                    (Some(version), Some(weight)) => Some(RoutingRequest { version, weight }),
                    _ => None,
                },
            };
            let view = client.set_alias(&a.name, &a.alias, &req).await?;
            print(g, &[view])?;
        }
        AliasCommand::Get(a) => print(g, &[client.get_alias(&a.name, &a.alias).await?])?,
        AliasCommand::List { name } => print(g, &client.list_aliases(&name).await?.aliases)?,
        AliasCommand::Delete(a) => {
            client.delete_alias(&a.name, &a.alias).await?;
            println!("Deleted alias {}:{}", a.name, a.alias);
        }
        AliasCommand::Shift(a) => {
            let req = ShiftAliasRequest {
                to: a.to,
                weight: a.weight,
            };
            let view = client.shift_alias(&a.name, &a.alias, &req).await?;
            print(g, &[view])?;
        }
    }
    Ok(Outcome::Success)
}
