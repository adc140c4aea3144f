//! `holactl lambda queue create|list|get|delete|send|receive|ack|dlq`.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::Context;
use clap::Subcommand;
use holactl_types::api::ReplayRequest;
use holactl_types::queue::{CreateQueueRequest, ReceiveRequest, SendMessageRequest};

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `queue` subcommands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a queue.
    Create {
        /// Queue name (letters, digits, '-', '_'; at most 80).
        name: String,
        /// Default visibility timeout of `receive`, seconds (0–43200).
        #[arg(long, value_name = "SECONDS")]
        visibility_timeout: Option<u32>,
        /// Default delivery delay of sent messages, seconds (0–900).
        #[arg(long, value_name = "SECONDS")]
        delay: Option<u32>,
    },
    /// List queues with their message counts.
    List,
    /// Show a queue and its message counts.
    Get {
        /// Queue name.
        name: String,
    },
    /// Delete a queue with its messages (refused while a trigger reads from it).
    Delete {
        /// Queue name.
        name: String,
    },
    /// Send a message; the body is the argument, or stdin when absent.
    Send {
        /// Queue name.
        name: String,
        /// Message body (at most 256 KB); read from stdin when absent.
        body: Option<String>,
        /// Delivery delay, seconds (0–900).
        #[arg(long, value_name = "SECONDS")]
        delay: Option<u32>,
        /// A message attribute, KEY=VALUE (repeatable).
        #[arg(long = "attribute", value_name = "KEY=VALUE")]
        attributes: Vec<String>,
    },
    /// Receive messages; they stay hidden for the visibility timeout unless acked.
    Receive {
        /// Queue name.
        name: String,
        /// Most messages (1–10).
        #[arg(long, default_value_t = 1)]
        max: u32,
        /// How long they stay hidden from other consumers, seconds.
        #[arg(long, value_name = "SECONDS")]
        visibility_timeout: Option<u32>,
        /// Delete (ack) each message once printed.
        #[arg(long)]
        ack: bool,
    },
    /// Delete (acknowledge) a received message.
    Ack {
        /// Queue name.
        name: String,
        /// Message id.
        id: String,
        /// The receipt handle the receive gave.
        #[arg(long)]
        receipt: String,
    },
    /// List a queue's dead-lettered messages, or replay or purge them.
    Dlq {
        /// Queue name.
        name: String,
        /// Move them back into the queue (all, or --id).
        #[arg(long, conflicts_with = "purge")]
        replay: bool,
        /// Delete them (all, or --id).
        #[arg(long)]
        purge: bool,
        /// Only this message.
        #[arg(long)]
        id: Option<String>,
    },
}

fn parse_attributes(raw: &[String]) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut out = BTreeMap::new();
    for a in raw {
        let (k, v) = a
            .split_once('=')
            .with_context(|| format!("INVALID_INPUT: attribute {a:?} is not KEY=VALUE"))?;
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(Some(out))
}

/// Runs a `queue` subcommand.
pub async fn run(g: &GlobalOpts, cmd: QueueCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        QueueCommand::Create {
            name,
            visibility_timeout,
            delay,
        } => {
            let q = client
                .create_queue(&CreateQueueRequest {
                    name,
                    visibility_timeout_s: visibility_timeout,
                    delay_seconds: delay,
                })
                .await?;
            if g.output == OutputFormat::Json {
                output::json(&q)?;
            } else {
                println!("Queue {} created ({})", q.name, q.arn);
            }
        }
        QueueCommand::List => {
            let list = client.list_queues().await?;
            if g.output == OutputFormat::Json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .queues
                    .iter()
                    .map(|q| {
                        vec![
                            q.name.clone(),
                            q.depth.ready.to_string(),
                            q.depth.delayed.to_string(),
                            q.depth.in_flight.to_string(),
                            q.depth.dead.to_string(),
                            format!("{:.1}s", q.depth.oldest_age_ms as f64 / 1000.0),
                        ]
                    })
                    .collect();
                output::table(
                    &["NAME", "READY", "DELAYED", "IN FLIGHT", "DEAD", "OLDEST"],
                    &rows,
                )?;
            }
        }
        QueueCommand::Get { name } => output::json(&client.get_queue(&name).await?)?,
        QueueCommand::Delete { name } => {
            client.delete_queue(&name).await?;
            println!("Queue {name} deleted");
        }
        QueueCommand::Send {
            name,
            body,
            delay,
            attributes,
        } => {
            let body = match body {
                Some(b) => b,
                None => {
                    let mut b = String::new();
                    std::io::stdin()
                        .read_to_string(&mut b)
                        .context("reading the message body from stdin")?;
                    b
                }
            };
            let sent = client
                .send_message(
                    &name,
                    &SendMessageRequest {
                        body,
                        delay_seconds: delay,
                        attributes: parse_attributes(&attributes)?,
                    },
                )
                .await?;
            if g.output == OutputFormat::Json {
                output::json(&sent)?;
            } else {
                println!("{}", sent.message_id);
            }
        }
        QueueCommand::Receive {
            name,
            max,
            visibility_timeout,
            ack,
        } => {
            let got = client
                .receive_messages(
                    &name,
                    &ReceiveRequest {
                        max: Some(max),
                        visibility_timeout_s: visibility_timeout,
                    },
                )
                .await?;
            if g.output == OutputFormat::Json {
                output::json(&got)?;
            } else {
                let rows: Vec<Vec<String>> = got
                    .messages
                    .iter()
                    .map(|m| {
                        vec![
                            m.message_id.clone(),
                            m.attributes
                                .get("ApproximateReceiveCount")
                                .cloned()
                                .unwrap_or_default(),
                            m.receipt_handle.clone(),
                            m.body.chars().take(60).collect(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "RECEIVES", "RECEIPT", "BODY"], &rows)?;
            }
            if ack {
                for m in &got.messages {
                    client
                        .delete_message(&name, &m.message_id, &m.receipt_handle)
                        .await?;
                }
            }
        }
        QueueCommand::Ack { name, id, receipt } => {
            client.delete_message(&name, &id, &receipt).await?;
            println!("Message {id} deleted");
        }
        QueueCommand::Dlq {
            name,
            replay,
            purge,
            id,
        } => {
            if id.is_some() && !replay && !purge {
                anyhow::bail!("INVALID_INPUT: --id goes with --replay or --purge");
            }
            if replay {
                let req = ReplayRequest {
                    all: id.is_none(),
                    ids: id.map(|i| vec![i]),
                };
                let r = client.replay_queue_dead_letters(&name, &req).await?;
                println!("Replayed {} message(s)", r.count);
            } else if purge {
                let r = client
                    .purge_queue_dead_letters(&name, id.as_deref())
                    .await?;
                println!("Purged {} message(s)", r.purged);
            } else {
                let list = client.queue_dead_letters(&name).await?;
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
                                d.body.chars().take(30).collect(),
                                d.reason.chars().take(60).collect(),
                            ]
                        })
                        .collect();
                    output::table(&["ID", "ATTEMPTS", "DIED", "BODY", "LAST ERROR"], &rows)?;
                }
            }
        }
    }
    Ok(Outcome::Success)
}
