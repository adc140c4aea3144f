//! `holactl lambda audit [--function F] [--since 1h|RFC3339]`.

use clap::Args;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `audit` options.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this function's changes.
    #[arg(long)]
    pub function: Option<String>,
    /// Only changes since: a duration ago (`30m`, `2h`, `7d`) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// Parses `--since` into epoch milliseconds.
pub fn parse_since(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    let bad = || {
        anyhow::anyhow!(
            "INVALID_INPUT: --since {s:?} is neither a duration (30m, 2h, 7d) nor an RFC 3339 time"
        )
    };
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    Ok(now_ms - n * ms)
}

/// Prints the audit trail, oldest first.
pub async fn run(g: &GlobalOpts, args: AuditArgs) -> anyhow::Result<Outcome> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, now))
        .transpose()?;
    let list = g
        .client()?
        .audit(args.function.as_deref(), since, args.limit.clamp(1, 10_000))
        .await?;
    if g.output == OutputFormat::Json {
        output::json(&list)?;
        return Ok(Outcome::Success);
    }
    let rows: Vec<Vec<String>> = list
        .entries
        .iter()
        .map(|e| {
            vec![
                output::time(e.at),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone(),
            ]
        })
        .collect();
    output::table(&["TIME", "ACTOR", "ACTION", "TARGET"], &rows)?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    #[test]
    fn since_forms() {
        assert_eq!(
            super::parse_since("2h", 10_000_000).unwrap(),
            10_000_000 - 7_200_000
        );
        assert_eq!(super::parse_since("1970-01-01T00:00:01Z", 0).unwrap(), 1000);
        assert!(super::parse_since("soon", 0).is_err());
        assert!(super::parse_since("5y", 0).is_err());
    }
}
