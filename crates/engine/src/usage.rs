//! Usage metering: the per-function, per-day aggregates the store keeps on every execution
//! write, priced at the configured (by default AWS's public x86 list) prices.

use holactl_store::UsageQuery;
use holactl_types::usage::{epoch_day, Prices, UsageReport};

use crate::{Engine, EngineError};

/// Parses a `since` bound into epoch milliseconds: epoch milliseconds, a duration ago
/// (`30m`, `12h`, `7d`) or an RFC 3339 time.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, EngineError> {
    let bad = || {
        EngineError::invalid(
            "since",
            format!("{s:?} is neither a duration (30m, 12h, 7d), an RFC 3339 time nor epoch milliseconds"),
        )
    };
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = s.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms)
        .and_then(|ago| now_ms.checked_sub(ago))
        .ok_or_else(bad)
}

impl Engine {
    /// The prices usage is reported at.
    pub fn prices(&self) -> Prices {
        Prices::new(
            self.inner.config.price_per_request,
            self.inner.config.price_per_gb_second,
        )
    }

    /// Usage per function and UTC day, priced. `since` (see [`parse_since`]) selects whole
    /// days: the day it falls on and later.
    pub async fn usage(
        &self,
        since: Option<&str>,
        function: Option<&str>,
    ) -> Result<UsageReport, EngineError> {
        self.usage_of(since, function, |_| true).await
    }

    /// [`Engine::usage`] of the functions `include` accepts (the caller's projects).
    pub async fn usage_of(
        &self,
        since: Option<&str>,
        function: Option<&str>,
        include: impl Fn(&str) -> bool,
    ) -> Result<UsageReport, EngineError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let since_day = since
            .filter(|s| !s.is_empty())
            .map(|s| parse_since(s, now).map(epoch_day))
            .transpose()?;
        let function = function.filter(|f| !f.is_empty()).map(str::to_owned);
        let days = self
            .inner
            .stores
            .executions
            .usage(UsageQuery {
                function: function.clone(),
                since_day,
            })
            .await?
            .into_iter()
            .filter(|d| include(&d.function))
            .collect();
        Ok(UsageReport::build(days, self.prices(), since_day, function))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_forms() {
        assert_eq!(
            parse_since("2h", 10_000_000).unwrap(),
            10_000_000 - 7_200_000
        );
        assert_eq!(parse_since("7d", 0).unwrap(), -7 * 86_400_000);
        assert_eq!(parse_since("1970-01-01T00:00:01Z", 0).unwrap(), 1000);
        assert_eq!(parse_since("1234", 0).unwrap(), 1234);
        for bad in ["garbage", "5y", "d", "", "99999999999999999999d"] {
            assert!(parse_since(bad, 0).is_err(), "{bad}");
        }
    }
}
