//! `holactl lambda policy get|set|delete FUNCTION [--alias A]`: execution policies, what a
//! function's invocations may do through the platform's internal API.

use clap::{Args, Subcommand};
use holactl_types::policy::{ExecutionPolicy, PolicyView};

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show a function's (or an alias's own) execution policy.
    Get(TargetArgs),
    /// Replace a function's (or an alias's) execution policy with exactly the given grants.
    Set(SetArgs),
    /// Delete a function's policy (nothing allowed) or an alias's (the function's applies).
    Delete(TargetArgs),
}

/// A function, optionally one of its aliases.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Function name.
    pub name: String,
    /// The alias whose own policy is meant.
    #[arg(long)]
    pub alias: Option<String>,
}

/// `policy set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// A function it may invoke: NAME (unqualified only) or NAME:QUALIFIER (repeatable).
    #[arg(long = "invoke", value_name = "FUNCTION")]
    pub invoke: Vec<String>,
    /// A queue it may send messages to (repeatable).
    #[arg(long = "send", value_name = "QUEUE")]
    pub send: Vec<String>,
    /// A secret whose value it may read (repeatable).
    #[arg(long = "read-secret", value_name = "SECRET")]
    pub read_secret: Vec<String>,
}

/// `a, b` or `-`.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

fn print(g: &GlobalOpts, view: &PolicyView) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(view);
    }
    let whose = match &view.alias {
        Some(alias) => format!("{}:{alias}", view.function),
        None => view.function.clone(),
    };
    if !view.set {
        match &view.alias {
            Some(_) => println!(
                "{whose} has no policy of its own: invocations through it use {}'s",
                view.function
            ),
            None => println!("{whose} has no policy: its invocations may do nothing"),
        }
        return Ok(());
    }
    let p = &view.policy;
    output::table(
        &["FUNCTION", "INVOKE", "SEND", "SECRETS"],
        &[vec![
            whose,
            list(&p.invoke),
            list(&p.send),
            list(&p.secrets),
        ]],
    )
}

/// Runs a `policy` subcommand.
pub async fn run(g: &GlobalOpts, cmd: PolicyCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        PolicyCommand::Get(t) => {
            let view = client.get_policy(&t.name, t.alias.as_deref()).await?;
            print(g, &view)?;
        }
        PolicyCommand::Set(a) => {
            let policy = ExecutionPolicy {
                invoke: a.invoke,
                send: a.send,
                secrets: a.read_secret,
            };
            let t = &a.target;
            let view = client
                .set_policy(&t.name, t.alias.as_deref(), &policy)
                .await?;
            print(g, &view)?;
        }
        PolicyCommand::Delete(t) => {
            client.delete_policy(&t.name, t.alias.as_deref()).await?;
            match &t.alias {
                Some(alias) => println!(
                    "Deleted the policy of {}:{alias}; invocations through it use {}'s",
                    t.name, t.name
                ),
                None => println!(
                    "Deleted the policy of {}; its invocations may do nothing",
                    t.name
                ),
            }
        }
    }
    Ok(Outcome::Success)
}
