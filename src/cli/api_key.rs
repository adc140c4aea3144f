//! `holactl lambda api-key create|list|revoke`: API keys for routes created with
//! `--auth api-key`. The key is printed once; the server keeps only its hash.

use clap::Subcommand;
use holactl_types::gateway::{CreateApiKeyRequest, Throttle};

use super::route::ApiArg;
use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `api-key` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; it is shown this once.
    Create {
        /// A name for people.
        name: String,
        #[command(flatten)]
        api: ApiArg,
        /// Throttling of this key: requests per second (with --burst).
        #[arg(long, requires = "burst")]
        rate: Option<f64>,
        /// Throttling of this key: requests at once (with --rate).
        #[arg(long, requires = "rate")]
        burst: Option<u32>,
    },
    /// List an API's keys (never the keys themselves).
    List(ApiArg),
    /// Revoke a key by id: refused from now on.
    Revoke {
        /// Key id.
        id: String,
        #[command(flatten)]
        api: ApiArg,
    },
}

/// Runs an `api-key` subcommand.
pub async fn run(g: &GlobalOpts, cmd: ApiKeyCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        ApiKeyCommand::Create {
            name,
            api,
            rate,
            burst,
        } => {
            let throttle = match (rate, burst) {
                (Some(rate), Some(burst)) => Some(Throttle { rate, burst }),
                _ => None,
            };
            let created = client
                .create_api_key(&api.api, &CreateApiKeyRequest { name, throttle })
                .await?;
            if g.output == OutputFormat::Json {
                output::json(&created)?;
            } else {
                eprintln!(
                    "API key {} ({}) created for API {}; send it in the x-api-key header. It is not shown again:",
                    created.view.name, created.view.id, created.view.api
                );
                println!("{}", created.key);
            }
        }
        ApiKeyCommand::List(a) => {
            let list = client.list_api_keys(&a.api).await?;
            if g.output == OutputFormat::Json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.clone(),
                            k.name.clone(),
                            format!("{}…", k.prefix),
                            k.throttle
                                .map(|t| format!("{}/s burst {}", t.rate, t.burst))
                                .unwrap_or_else(|| "-".into()),
                            k.revoked_at
                                .map(|t| format!("revoked {}", output::time(t)))
                                .unwrap_or_else(|| "active".into()),
                        ]
                    })
                    .collect();
                output::table(&["ID", "NAME", "PREFIX", "THROTTLE", "STATE"], &rows)?;
            }
        }
        ApiKeyCommand::Revoke { id, api } => {
            let view = client.revoke_api_key(&api.api, &id).await?;
            println!(
                "Revoked API key {} ({}) of API {}",
                view.id, view.name, view.api
            );
        }
    }
    Ok(Outcome::Success)
}
