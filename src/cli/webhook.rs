//! `holactl lambda webhook create|list|get|delete|rotate-secret`. Secrets are read from stdin
//! or a file, never from the command line, and never printed.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use holactl_types::webhook::{CreateWebhookRequest, WebhookScheme, WebhookView};

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `webhook` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create a signed webhook URL (/hooks/ID) that invokes a function asynchronously.
    Create(CreateArgs),
    /// List webhooks.
    List,
    /// Show a webhook (never its secret).
    Get {
        /// Webhook name.
        name: String,
    },
    /// Delete a webhook; its URL answers 404 at once.
    Delete {
        /// Webhook name.
        name: String,
    },
    /// Replace a webhook's secret; deliveries signed with the old one are refused from now on.
    RotateSecret {
        /// Webhook name.
        name: String,
        #[command(flatten)]
        secret: SecretSource,
    },
}

/// How deliveries are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// X-Hub-Signature-256: sha256=HMAC(secret, body); replays by X-GitHub-Delivery.
    Github,
    /// Stripe-Signature: t=UNIX,v1=HMAC(secret, "t.body").
    Stripe,
    /// X-Hola-Signature: sha256=HMAC(secret, "timestamp.body") and X-Hola-Timestamp: UNIX.
    #[value(name = "hmac-sha256")]
    HmacSha256,
}

impl From<SchemeArg> for WebhookScheme {
    fn from(s: SchemeArg) -> Self {
        match s {
            SchemeArg::Github => WebhookScheme::Github,
            SchemeArg::Stripe => WebhookScheme::Stripe,
            SchemeArg::HmacSha256 => WebhookScheme::HmacSha256,
        }
    }
}

/// Where the secret comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SecretSource {
    /// Read the shared secret from stdin (one trailing newline is dropped).
    #[arg(long)]
    pub secret_from_stdin: bool,
    /// Read the shared secret from this file.
    #[arg(long)]
    pub secret_from_file: Option<PathBuf>,
}

impl SecretSource {
    fn read(self) -> anyhow::Result<String> {
        // `read_value` reads stdin when no file is given.
        super::secret::read_value(self.secret_from_file)
    }
}

/// `webhook create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Webhook name.
    pub name: String,
    /// Function to invoke.
    #[arg(long)]
    pub function: String,
    /// Version or alias to invoke (default $LATEST).
    #[arg(long)]
    pub qualifier: Option<String>,
    /// How deliveries are signed.
    #[arg(long, value_enum)]
    pub scheme: SchemeArg,
    #[command(flatten)]
    pub secret: SecretSource,
    /// Seconds a signed timestamp may be from the server's clock (stripe, hmac-sha256).
    #[arg(long, value_name = "SECONDS")]
    pub tolerance: Option<u32>,
}

fn url(g: &GlobalOpts, view: &WebhookView) -> String {
    format!("{}{}", g.endpoint.trim_end_matches('/'), view.path)
}

fn print_one(g: &GlobalOpts, view: &WebhookView) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(view);
    }
    let mut rows = vec![
        ("Name", view.name.clone()),
        ("URL", url(g, view)),
        ("Function", view.function.clone()),
    ];
    if let Some(q) = &view.qualifier {
        rows.push(("Qualifier", q.clone()));
    }
    rows.push(("Scheme", view.scheme.to_string()));
    if view.scheme.has_timestamp() {
        rows.push(("Tolerance", format!("{} s", view.tolerance_s)));
    }
    rows.push(("Secret version", view.secret_version.to_string()));
    rows.push(("Created", output::time(view.created_at)));
    rows.push(("Updated", output::time(view.updated_at)));
    for (key, value) in rows {
        println!("{:<16}{value}", format!("{key}:"));
    }
    Ok(())
}

/// Runs a `webhook` subcommand.
pub async fn run(g: &GlobalOpts, cmd: WebhookCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        WebhookCommand::Create(a) => {
            let secret = a.secret.read()?;
            let view = client
                .create_webhook(&CreateWebhookRequest {
                    name: a.name,
                    function: a.function,
                    qualifier: a.qualifier,
                    scheme: a.scheme.into(),
                    secret,
                    tolerance_s: a.tolerance,
                })
                .await?;
            if g.output == OutputFormat::Json {
                output::json(&view)?;
            } else {
                println!(
                    "Webhook {} created: {} deliveries to {} invoke {} asynchronously",
                    view.name,
                    view.scheme,
                    url(g, &view),
                    view.function
                );
            }
        }
        WebhookCommand::List => {
            let list = client.list_webhooks().await?;
            if g.output == OutputFormat::Json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .webhooks
                    .iter()
                    .map(|w| {
                        let target = match &w.qualifier {
                            Some(q) => format!("{}:{q}", w.function),
                            None => w.function.clone(),
                        };
                        vec![
                            w.name.clone(),
                            target,
                            w.scheme.to_string(),
                            w.path.clone(),
                            output::time(w.updated_at),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "FUNCTION", "SCHEME", "PATH", "UPDATED"], &rows)?;
            }
        }
        WebhookCommand::Get { name } => {
            let view = client.get_webhook(&name).await?;
            print_one(g, &view)?;
        }
        WebhookCommand::Delete { name } => {
            client.delete_webhook(&name).await?;
            println!("Deleted webhook {name}");
        }
        WebhookCommand::RotateSecret { name, secret } => {
            let secret = secret.read()?;
            let view = client.rotate_webhook_secret(&name, secret).await?;
            println!(
                "Webhook {} secret rotated (version {})",
                view.name, view.secret_version
            );
        }
    }
    Ok(Outcome::Success)
}
