//! `holactl lambda metrics NAME [--since 1h]`: invocations, error rate, duration percentiles
//! split cold vs warm, cold-start rate, throttles and errors by code over a window.

use clap::Args;
use holactl_types::observability::DurationPercentiles;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `metrics` options.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Function name.
    pub name: String,
    /// Window start: a duration ago (`30m`, `1h`, `7d`), an RFC 3339 time or epoch ms.
    #[arg(long, default_value = "1h")]
    pub since: String,
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1} ms"))
        .unwrap_or_else(|| "-".to_owned())
}

fn row(label: &str, p: &DurationPercentiles) -> Vec<String> {
    vec![
        label.to_owned(),
        p.count.to_string(),
        ms(p.p50_ms),
        ms(p.p95_ms),
        ms(p.p99_ms),
    ]
}

/// Prints a function's metrics.
pub async fn run(g: &GlobalOpts, args: MetricsArgs) -> anyhow::Result<Outcome> {
    let m = g
        .client()?
        .function_metrics(&args.name, Some(&args.since))
        .await?;
    if g.output == OutputFormat::Json {
        output::json(&m)?;
        return Ok(Outcome::Success);
    }
    println!(
        "{} since {} ({} in progress)",
        m.function,
        output::time(m.since),
        m.in_progress
    );
    println!("Invocations:      {}", m.invocations);
    println!(
        "Errors:           {} ({:.2} %)",
        m.errors,
        m.error_rate * 100.0
    );
    println!(
        "Cold starts:      {} ({:.2} %)",
        m.cold_starts,
        m.cold_start_rate * 100.0
    );
    println!(
        "Throttles:        {} (since the server started)",
        m.throttles
    );
    println!();
    output::table(
        &["DURATION", "COUNT", "P50", "P95", "P99"],
        &[
            row("all", &m.duration.all),
            row("cold", &m.duration.cold),
            row("warm", &m.duration.warm),
        ],
    )?;
    if !m.errors_by_code.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = m
            .errors_by_code
            .iter()
            .map(|(code, n)| vec![code.clone(), n.to_string()])
            .collect();
        output::table(&["ERROR CODE", "COUNT"], &rows)?;
    }
    Ok(Outcome::Success)
}
