//! `holactl lambda versions NAME` and `holactl lambda version get|delete NAME VERSION`.

use clap::{Args, Subcommand};
use holactl_types::api::VersionView;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `versions` options.
#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// Function name.
    pub name: String,
}

/// `version` subcommands.
#[derive(Debug, Subcommand)]
pub enum VersionCommand {
    /// Show one version.
    Get {
        /// Function name.
        name: String,
        /// Version number or $LATEST.
        version: String,
    },
    /// Delete a published version (refused while an alias points to it).
    Delete {
        /// Function name.
        name: String,
        /// Version number.
        version: String,
    },
}

fn rows(versions: &[VersionView]) -> Vec<Vec<String>> {
    versions
        .iter()
        .map(|v| {
            vec![
                v.version.clone(),
                v.config.runtime.to_string(),
                format!("{} MB", v.config.memory_mb),
                v.code.sha256[..12].to_owned(),
                output::time(v.created_at),
                v.description.clone(),
            ]
        })
        .collect()
}

const HEADER: [&str; 6] = [
    "VERSION",
    "RUNTIME",
    "MEMORY",
    "CODE",
    "CREATED",
    "DESCRIPTION",
];

/// Lists `$LATEST` and the published versions.
pub async fn list(g: &GlobalOpts, args: VersionsArgs) -> anyhow::Result<Outcome> {
    let list = g.client()?.list_versions(&args.name).await?;
    if g.output == OutputFormat::Json {
        output::json(&list)?;
    } else {
        output::table(&HEADER, &rows(&list.versions))?;
    }
    Ok(Outcome::Success)
}

/// Runs a `version` subcommand.
pub async fn run(g: &GlobalOpts, cmd: VersionCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        VersionCommand::Get { name, version } => {
            let v = client.get_version(&name, &version).await?;
            if g.output == OutputFormat::Json {
                output::json(&v)?;
            } else {
                output::table(&HEADER, &rows(std::slice::from_ref(&v)))?;
            }
        }
        VersionCommand::Delete { name, version } => {
            client.delete_version(&name, &version).await?;
            println!("Deleted {name}:{version}");
        }
    }
    Ok(Outcome::Success)
}
