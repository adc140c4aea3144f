//! Usage metering ("pay per use"): what each execution is charged, the per-function, per-day
//! aggregates the store keeps, and the priced report the API answers.
//!
//! Amounts are kept as integers where they are summed (billed milliseconds, MB-milliseconds),
//! so totals are exact however many executions are added; GB-seconds and cost are derived
//! only when a report is made.

use serde::{Deserialize, Serialize};

use crate::{EpochMillis, ExecutionRecord};

/// AWS Lambda's public list price per request (x86): $0.20 per 1M requests.
pub const AWS_PRICE_PER_REQUEST: f64 = 0.000_000_2;
/// AWS Lambda's public list price per GB-second (x86, first tier).
pub const AWS_PRICE_PER_GB_SECOND: f64 = 0.000_016_666_7;
/// How the default prices are named in reports.
pub const AWS_PRICE_SOURCE: &str = "AWS Lambda public list prices (x86)";
/// How configured prices are named in reports.
pub const CONFIGURED_PRICE_SOURCE: &str = "configured prices";

const MS_PER_DAY: i64 = 86_400_000;

/// Duration rounded up to the billing granularity (1 ms), at least 1 ms.
pub fn billed_ms(duration_ms: f64) -> u64 {
    if duration_ms.is_finite() && duration_ms > 0.0 {
        (duration_ms.ceil() as u64).max(1)
    } else {
        1
    }
}

/// MB-milliseconds of one execution: the exact integer GB-seconds are derived from.
pub fn mb_ms(billed_ms: u64, memory_mb: u32) -> u64 {
    billed_ms.saturating_mul(u64::from(memory_mb))
}

/// GB-seconds from MB-milliseconds: `billed_ms / 1000 × memory_mb / 1024`.
pub fn gb_seconds(mb_ms: u64) -> f64 {
    mb_ms as f64 / 1000.0 / 1024.0
}

/// The UTC day (days since 1970-01-01) a time falls on.
pub fn epoch_day(at: EpochMillis) -> i64 {
    at.div_euclid(MS_PER_DAY)
}

/// A UTC day (days since 1970-01-01) as `YYYY-MM-DD`.
pub fn day_string(day: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// What one execution is charged, as the store aggregates it (and keeps it, on NATS).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// Function name.
    pub function: String,
    /// UTC day (days since the epoch) of the execution's end.
    pub day: i64,
    /// Billed milliseconds.
    pub billed_ms: u64,
    /// Billed milliseconds × memory MB.
    pub mb_ms: u64,
}

impl Charge {
    /// The charge of a record: only a final record with a billed duration is charged (one
    /// that never ran, such as a cancelled pending one, costs nothing).
    pub fn of(record: &ExecutionRecord) -> Option<Charge> {
        if !record.status.is_final() {
            return None;
        }
        let billed = record.billed_duration_ms?;
        Some(Charge {
            function: record.function.clone(),
            day: epoch_day(record.ended_at.unwrap_or(record.created_at)),
            billed_ms: billed,
            mb_ms: mb_ms(billed, record.memory_mb),
        })
    }
}

/// One function's usage on one UTC day, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayUsage {
    /// Function name.
    pub function: String,
    /// UTC day, days since the epoch.
    pub day: i64,
    /// Charged executions.
    pub requests: u64,
    /// Sum of billed milliseconds.
    pub billed_ms: u64,
    /// Sum of billed milliseconds × memory MB.
    pub mb_ms: u64,
}

/// Prices a report is made at, USD.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    /// Per request.
    pub per_request: f64,
    /// Per GB-second.
    pub per_gb_second: f64,
    /// Where the prices come from.
    pub source: String,
}

impl Default for Prices {
    fn default() -> Self {
        Prices::new(AWS_PRICE_PER_REQUEST, AWS_PRICE_PER_GB_SECOND)
    }
}

impl Prices {
    /// Prices named after their source: AWS's list prices when they are the defaults.
    pub fn new(per_request: f64, per_gb_second: f64) -> Prices {
        let aws = per_request == AWS_PRICE_PER_REQUEST && per_gb_second == AWS_PRICE_PER_GB_SECOND;
        Prices {
            per_request,
            per_gb_second,
            source: if aws {
                AWS_PRICE_SOURCE
            } else {
                CONFIGURED_PRICE_SOURCE
            }
            .to_owned(),
        }
    }

    /// Cost of `requests` requests using `gb_seconds`.
    pub fn cost(&self, requests: u64, gb_seconds: f64) -> f64 {
        requests as f64 * self.per_request + gb_seconds * self.per_gb_second
    }
}

/// One line of a usage report: a function on a day, or the total.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageLine {
    /// Function name (absent on the total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// UTC day `YYYY-MM-DD` (absent on the total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// Charged executions.
    pub requests: u64,
    /// Sum of billed milliseconds.
    pub billed_ms: u64,
    /// GB-seconds.
    pub gb_seconds: f64,
    /// Cost at the report's prices, USD.
    pub cost: f64,
}

impl UsageLine {
    fn priced(
        function: Option<String>,
        day: Option<String>,
        u: (u64, u64, u64),
        p: &Prices,
    ) -> Self {
        let (requests, billed_ms, mb_ms) = u;
        let gb = gb_seconds(mb_ms);
        UsageLine {
            function,
            day,
            requests,
            billed_ms,
            gb_seconds: gb,
            cost: p.cost(requests, gb),
        }
    }
}

/// `GET /api/v1/usage`: usage per function and UTC day, priced, with the total.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// First day included (`YYYY-MM-DD`), when filtered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The function filtered on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Prices used.
    pub prices: Prices,
    /// Per function and day, by day then function.
    pub rows: Vec<UsageLine>,
    /// Sum of every row.
    pub total: UsageLine,
}

impl UsageReport {
    /// Prices stored aggregates. The total is made from the exact integer sums, not by adding
    /// rounded row costs.
    pub fn build(
        mut days: Vec<DayUsage>,
        prices: Prices,
        since_day: Option<i64>,
        function: Option<String>,
    ) -> UsageReport {
        days.sort_by(|a, b| (a.day, &a.function).cmp(&(b.day, &b.function)));
        let mut sum = (0u64, 0u64, 0u64);
        let rows = days
            .into_iter()
            .map(|d| {
                sum.0 += d.requests;
                sum.1 += d.billed_ms;
                sum.2 += d.mb_ms;
                UsageLine::priced(
                    Some(d.function),
                    Some(day_string(d.day)),
                    (d.requests, d.billed_ms, d.mb_ms),
                    &prices,
                )
            })
            .collect();
        let total = UsageLine::priced(None, None, sum, &prices);
        UsageReport {
            since: since_day.map(day_string),
            function,
            prices,
            rows,
            total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExecutionStatus, Trigger};

    #[test]
    fn rounding_is_up_to_one_ms() {
        assert_eq!(billed_ms(0.01), 1);
        assert_eq!(billed_ms(1.0), 1);
        assert_eq!(billed_ms(1.0001), 2);
        assert_eq!(billed_ms(99.5), 100);
        assert_eq!(billed_ms(0.0), 1);
        assert_eq!(billed_ms(f64::NAN), 1);
    }

    #[test]
    fn gb_seconds_and_cost() {
        // 1 s at 1024 MB is one GB-second.
        assert_eq!(gb_seconds(mb_ms(1000, 1024)), 1.0);
        // 100 ms at 128 MB is 0.0125 GB-s.
        assert!((gb_seconds(mb_ms(100, 128)) - 0.0125).abs() < 1e-12);
        let p = Prices::default();
        assert_eq!(p.source, AWS_PRICE_SOURCE);
        // 1M requests of 1 s at 1 GB: $0.20 + 1M × $0.0000166667.
        let cost = p.cost(1_000_000, 1_000_000.0);
        assert!((cost - (0.20 + 16.6667)).abs() < 1e-9, "{cost}");
        assert_eq!(Prices::new(1.0, 2.0).source, CONFIGURED_PRICE_SOURCE);
        assert_eq!(Prices::new(1.0, 2.0).cost(3, 0.5), 4.0);
    }

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(epoch_day(MS_PER_DAY - 1), 0);
        assert_eq!(epoch_day(-1), -1);
        assert_eq!(day_string(-1), "1969-12-31");
        // 2024-02-29 is day 19782.
        assert_eq!(day_string(19_782), "2024-02-29");
        assert_eq!(day_string(20_415), "2025-11-23");
    }

    fn record(status: ExecutionStatus, billed: Option<u64>) -> ExecutionRecord {
        ExecutionRecord {
            id: "e".into(),
            function: "f".into(),
            version: "$LATEST".into(),
            status,
            trigger: Trigger::Invoke,
            created_at: 5,
            started_at: None,
            ended_at: Some(MS_PER_DAY + 5),
            duration_ms: None,
            billed_duration_ms: billed,
            init_duration_ms: None,
            cold_start: false,
            memory_mb: 256,
            attempts: 1,
            result: None,
            result_truncated: false,
            error: None,
            log_bytes: 0,
            log_truncated: false,
        }
    }

    #[test]
    fn only_final_billed_records_are_charged() {
        assert_eq!(Charge::of(&record(ExecutionStatus::Running, Some(3))), None);
        assert_eq!(Charge::of(&record(ExecutionStatus::Cancelled, None)), None);
        let c = Charge::of(&record(ExecutionStatus::Failed, Some(3))).unwrap();
        assert_eq!((c.day, c.billed_ms, c.mb_ms), (1, 3, 768));
    }

    #[test]
    fn report_totals_are_exact_sums() {
        let day = |function: &str, day, requests, billed_ms| DayUsage {
            function: function.into(),
            day,
            requests,
            billed_ms,
            mb_ms: billed_ms * 128,
        };
        let r = UsageReport::build(
            vec![day("b", 1, 2, 10), day("a", 1, 1, 5), day("a", 0, 4, 20)],
            Prices::default(),
            Some(0),
            None,
        );
        let order: Vec<_> = r
            .rows
            .iter()
            .map(|l| (l.day.clone().unwrap(), l.function.clone().unwrap()))
            .collect();
        assert_eq!(
            order,
            vec![
                ("1970-01-01".to_owned(), "a".to_owned()),
                ("1970-01-02".into(), "a".into()),
                ("1970-01-02".into(), "b".into())
            ]
        );
        assert_eq!((r.total.requests, r.total.billed_ms), (7, 35));
        assert!((r.total.gb_seconds - 35.0 * 128.0 / 1024.0 / 1000.0).abs() < 1e-15);
        assert_eq!(r.since.as_deref(), Some("1970-01-01"));
    }
}
