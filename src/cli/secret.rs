//! `holactl lambda secret set|list|delete`. Values are read from stdin or a file, never from
//! the command line (where `ps` and shell history would see them), and never printed.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `secret` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create or rotate a secret; the value comes from stdin (or --from-file).
    Set {
        /// Secret name.
        name: String,
        /// Read the value from this file instead of stdin.
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// List secrets (names and versions only).
    List,
    /// Delete a secret (refused while a function binds it).
    Delete {
        /// Secret name.
        name: String,
    },
}

/// Reads a secret value, dropping one trailing newline (as `echo value |` adds).
pub(super) fn read_value(from_file: Option<PathBuf>) -> anyhow::Result<String> {
    let mut value = String::new();
    match from_file {
        Some(path) => {
            value = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("Enter the secret value, then Ctrl-D:");
            }
            std::io::stdin()
                .read_to_string(&mut value)
                .context("reading the value from stdin")?;
        }
    }
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        anyhow::bail!("INVALID_INPUT: the secret value is empty");
    }
    Ok(value)
}

/// Runs a `secret` subcommand.
pub async fn run(g: &GlobalOpts, cmd: SecretCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        SecretCommand::Set { name, from_file } => {
            let value = read_value(from_file)?;
            let view = client.set_secret(&name, value).await?;
            println!("Secret {} set (version {})", view.name, view.version);
        }
        SecretCommand::List => {
            let list = client.list_secrets().await?;
            if g.output == OutputFormat::Json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .secrets
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.version.to_string(),
                            output::time(s.updated_at),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "VERSION", "UPDATED"], &rows)?;
            }
        }
        SecretCommand::Delete { name } => {
            client.delete_secret(&name).await?;
            println!("Deleted secret {name}");
        }
    }
    Ok(Outcome::Success)
}
