//! `holactl lambda schedule create|list|get|pause|resume|run|delete`.

use clap::{Args, Subcommand};
use holactl_types::schedule::{CreateScheduleRequest, ScheduleView};
use holactl_types::version::split_qualified;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a schedule that invokes a function asynchronously.
    Create(CreateArgs),
    /// List schedules.
    List,
    /// Show a schedule.
    Get {
        /// Schedule name.
        name: String,
    },
    /// Stop a schedule from firing until it is resumed.
    Pause {
        /// Schedule name.
        name: String,
    },
    /// Resume a paused schedule from its next tick (ticks missed while paused are skipped).
    Resume {
        /// Schedule name.
        name: String,
    },
    /// Fire a schedule now, once, without changing its next fire.
    Run {
        /// Schedule name.
        name: String,
    },
    /// Delete a schedule.
    Delete {
        /// Schedule name.
        name: String,
    },
}

/// `schedule create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Schedule name: letters, digits, '-', '_' and '.', up to 64.
    pub name: String,
    /// Function to invoke (`NAME` or `NAME:QUALIFIER`).
    #[arg(long)]
    pub function: String,
    /// Version number, alias or $LATEST to invoke.
    #[arg(long)]
    pub qualifier: Option<String>,
    /// 5-field cron expression: "minute hour day-of-month month day-of-week" (e.g.
    /// "0 2 * * *"); "rate(5 minutes)" is also taken here.
    #[arg(long, required_unless_present = "rate", conflicts_with = "rate")]
    pub cron: Option<String>,
    /// Fixed rate: "rate(5 minutes)", "rate(1 hour)", "rate(2 days)" (or "5 minutes").
    #[arg(long)]
    pub rate: Option<String>,
    /// IANA time zone of the cron fields (default UTC), e.g. Europe/Madrid.
    #[arg(long)]
    pub timezone: Option<String>,
    /// Event to send instead of the scheduled-event envelope: JSON, @file or @- (stdin).
    #[arg(long)]
    pub payload: Option<String>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
}

fn time_or_dash(ms: Option<i64>) -> String {
    ms.map(output::time).unwrap_or_else(|| "-".to_owned())
}

fn target(s: &ScheduleView) -> String {
    match &s.qualifier {
        Some(q) => format!("{}:{q}", s.function),
        None => s.function.clone(),
    }
}

fn print_list(g: &GlobalOpts, schedules: &[ScheduleView]) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(&schedules);
    }
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                target(s),
                s.expression.clone(),
                s.timezone.clone(),
                if s.paused { "paused" } else { "active" }.to_owned(),
                time_or_dash(s.next_fire_at),
                time_or_dash(s.last_fire_at),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME",
            "FUNCTION",
            "EXPRESSION",
            "TIMEZONE",
            "STATE",
            "NEXT FIRE (UTC)",
            "LAST FIRE (UTC)",
        ],
        &rows,
    )
}

fn print_one(g: &GlobalOpts, s: &ScheduleView) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(s);
    }
    println!("Schedule:        {}", s.name);
    println!("ARN:             {}", s.arn);
    println!("Function:        {}", target(s));
    println!("Expression:      {}", s.expression);
    println!("Time zone:       {}", s.timezone);
    println!(
        "State:           {}",
        if s.paused { "paused" } else { "active" }
    );
    println!("Next fire:       {}", time_or_dash(s.next_fire_at));
    println!("Last fire:       {}", time_or_dash(s.last_fire_at));
    println!(
        "Last execution:  {}",
        s.last_execution_id.as_deref().unwrap_or("-")
    );
    if let Some(e) = &s.last_error {
        println!("Last error:      {e}");
    }
    match &s.payload {
        Some(p) => println!("Payload:         {p}"),
        None => println!("Payload:         (scheduled event)"),
    }
    if !s.description.is_empty() {
        println!("Description:     {}", s.description);
    }
    Ok(())
}

/// Runs a `schedule` subcommand.
pub async fn run(g: &GlobalOpts, cmd: ScheduleCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        ScheduleCommand::Create(a) => {
            let (function, qualifier) = match split_qualified(&a.function) {
                (f, Some(q)) if a.qualifier.is_none() => (f.to_owned(), Some(q.to_owned())),
                _ => (a.function.clone(), a.qualifier),
            };
            let payload = match &a.payload {
                Some(p) => Some(serde_json::from_slice(&super::invoke::read_payload(p)?)?),
                None => None,
            };
            let req = CreateScheduleRequest {
                name: a.name,
                function,
                qualifier,
                cron: a.cron,
                rate: a.rate,
                timezone: a.timezone,
                payload,
                description: a.description,
            };
            print_one(g, &client.create_schedule(&req).await?)?;
        }
        ScheduleCommand::List => print_list(g, &client.list_schedules().await?.schedules)?,
        ScheduleCommand::Get { name } => print_one(g, &client.get_schedule(&name).await?)?,
        ScheduleCommand::Pause { name } => print_one(g, &client.pause_schedule(&name).await?)?,
        ScheduleCommand::Resume { name } => print_one(g, &client.resume_schedule(&name).await?)?,
        ScheduleCommand::Run { name } => {
            let execution = client.run_schedule(&name).await?;
            if g.output == OutputFormat::Json {
                output::json(&execution)?;
            } else {
                println!(
                    "Fired schedule {name}: execution {} of {} (see `holactl lambda executions get {}`)",
                    execution.id, execution.function, execution.id
                );
            }
        }
        ScheduleCommand::Delete { name } => {
            client.delete_schedule(&name).await?;
            println!("Deleted schedule {name}");
        }
    }
    Ok(Outcome::Success)
}
