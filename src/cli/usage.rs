//! `holactl lambda usage [--since 7d|RFC3339] [--function F]`: requests, GB-seconds and cost
//! per function and UTC day.

use clap::Args;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `usage` options.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only the UTC day this falls on and later: a duration ago (`12h`, `7d`) or an RFC 3339
    /// time. Default: everything recorded.
    #[arg(long)]
    pub since: Option<String>,
    /// Only this function's usage.
    #[arg(long)]
    pub function: Option<String>,
}

/// Prints usage per function and day, with a totals row and the prices used.
pub async fn run(g: &GlobalOpts, args: UsageArgs) -> anyhow::Result<Outcome> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let since = args
        .since
        .as_deref()
        .map(|s| super::audit::parse_since(s, now))
        .transpose()?;
    let report = g.client()?.usage(since, args.function.as_deref()).await?;
    if g.output == OutputFormat::Json {
        output::json(&report)?;
        return Ok(Outcome::Success);
    }
    let line = |function: &str, day: &str, l: &holactl_types::usage::UsageLine| {
        vec![
            function.to_owned(),
            day.to_owned(),
            l.requests.to_string(),
            format!("{:.6}", l.gb_seconds),
            format!("${:.6}", l.cost),
        ]
    };
    let mut rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|l| {
            line(
                l.function.as_deref().unwrap_or("-"),
                l.day.as_deref().unwrap_or("-"),
                l,
            )
        })
        .collect();
    rows.push(line("TOTAL", "", &report.total));
    output::table(&["FUNCTION", "DAY", "REQUESTS", "GB-S", "COST"], &rows)?;
    println!(
        "\nPrices: {}: ${} per request (${:.2} per 1M), ${} per GB-second.",
        report.prices.source,
        report.prices.per_request,
        report.prices.per_request * 1_000_000.0,
        report.prices.per_gb_second
    );
    Ok(Outcome::Success)
}
