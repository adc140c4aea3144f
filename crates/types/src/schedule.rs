//! Schedules: a function invoked asynchronously on a cron expression or a fixed rate.
//!
//! What a user sends ([`CreateScheduleRequest`]), what the store keeps ([`ScheduleRecord`]) and
//! what the API answers ([`ScheduleView`]). Parsing of cron expressions and time zones lives
//! in the engine (it needs a time zone database); the rate form is parsed here because it
//! needs nothing but arithmetic.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::EpochMillis;

/// Longest schedule name (EventBridge Scheduler's limit).
pub const MAX_SCHEDULE_NAME_LEN: usize = 64;
/// Most schedules on one server.
pub const MAX_SCHEDULES: usize = 1000;
/// The time zone of a cron schedule created without one.
pub const DEFAULT_TIMEZONE: &str = "UTC";
/// `source` of every scheduled event.
pub const EVENT_SOURCE: &str = "holactl.scheduler";
/// `detail-type` of every scheduled event.
pub const EVENT_DETAIL_TYPE: &str = "Scheduled Event";

/// `POST /api/v1/schedules`. Exactly one of `cron` and `rate` is given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateScheduleRequest {
    /// Schedule name: `[A-Za-z0-9._-]{1,64}`.
    pub name: String,
    /// The function to invoke.
    pub function: String,
    /// `$LATEST` (default), a version number or an alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// A 5-field cron expression (`minute hour day-of-month month day-of-week`), with or
    /// without a `cron(…)` wrapper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A fixed rate: `rate(5 minutes)` or just `5 minutes`; units minute(s), hour(s), day(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// IANA time zone of a cron expression (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The event to send instead of the scheduled-event envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A schedule as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// Schedule name.
    pub name: String,
    /// The function it invokes.
    pub function: String,
    /// The qualifier it invokes, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// Normalized expression: `cron(0 2 * * *)` or `rate(5 minutes)`.
    pub expression: String,
    /// IANA time zone the cron fields are read in.
    pub timezone: String,
    /// Replaces the scheduled-event envelope when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Paused schedules do not fire.
    pub paused: bool,
    /// When the next fire is due; `None` while paused.
    pub next_fire_at: Option<EpochMillis>,
    /// The scheduled time of the last fire (the current time for `run`).
    #[serde(default)]
    pub last_fire_at: Option<EpochMillis>,
    /// The execution the last fire started.
    #[serde(default)]
    pub last_execution_id: Option<String>,
    /// Why the last fire could not be queued (e.g. the function was deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// A fire claimed but not yet known to be queued: retried (with the same idempotency key)
    /// until it is, so a crash between the claim and the enqueue loses nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingFire>,
    /// Creation time; rate schedules count their periods from it.
    pub created_at: EpochMillis,
    /// Last change.
    pub updated_at: EpochMillis,
}

/// A fire that won the compare-and-set but may not have been queued yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFire {
    /// The scheduled time being fired.
    pub scheduled_at: EpochMillis,
    /// When it was claimed.
    pub claimed_at: EpochMillis,
}

/// A schedule as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleView {
    /// ARN-like id, also the `resources` entry of its events.
    pub arn: String,
    /// Schedule name.
    pub name: String,
    /// The function it invokes.
    pub function: String,
    /// The qualifier it invokes, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// `cron(…)` or `rate(…)`.
    pub expression: String,
    /// IANA time zone of the cron fields.
    pub timezone: String,
    /// The event sent instead of the scheduled-event envelope, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Whether it is paused.
    pub paused: bool,
    /// When the next fire is due (`null` while paused).
    pub next_fire_at: Option<EpochMillis>,
    /// The scheduled time of the last fire.
    pub last_fire_at: Option<EpochMillis>,
    /// The execution the last fire started.
    pub last_execution_id: Option<String>,
    /// Why the last fire could not be queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: EpochMillis,
    /// Last change.
    pub updated_at: EpochMillis,
}

/// `GET /api/v1/schedules`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleList {
    /// Every schedule, by name.
    pub schedules: Vec<ScheduleView>,
}

/// Checks a schedule name: `[A-Za-z0-9._-]{1,64}`.
pub fn validate_schedule_name(name: &str) -> Result<(), ValidationError> {
    if name.is_empty() || name.len() > MAX_SCHEDULE_NAME_LEN {
        return Err(ValidationError::new(
            "name",
            format!("must be 1 to {MAX_SCHEDULE_NAME_LEN} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ValidationError::new(
            "name",
            "may only contain letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

/// The unit of a rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateUnit {
    /// 60 s.
    Minute,
    /// 3600 s.
    Hour,
    /// 86 400 s (a fixed length: rates ignore daylight saving time).
    Day,
}

impl RateUnit {
    fn millis(self) -> i64 {
        match self {
            RateUnit::Minute => 60_000,
            RateUnit::Hour => 3_600_000,
            RateUnit::Day => 86_400_000,
        }
    }

    fn name(self, plural: bool) -> &'static str {
        match (self, plural) {
            (RateUnit::Minute, false) => "minute",
            (RateUnit::Minute, true) => "minutes",
            (RateUnit::Hour, false) => "hour",
            (RateUnit::Hour, true) => "hours",
            (RateUnit::Day, false) => "day",
            (RateUnit::Day, true) => "days",
        }
    }
}

/// A fixed rate: every `value` `unit`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// How many units between fires (≥ 1).
    pub value: u32,
    /// The unit.
    pub unit: RateUnit,
}

/// Largest rate value accepted (about 2700 years in days: anything larger is a typo).
const MAX_RATE_VALUE: u32 = 1_000_000;

impl Rate {
    /// Parses `rate(5 minutes)` or `5 minutes` (singular or plural unit, any case).
    pub fn parse(s: &str) -> Result<Rate, ValidationError> {
        let bad = |m: String| ValidationError::new("rate", m);
        let trimmed = s.trim();
        let inner = match trimmed
            .strip_prefix("rate(")
            .or_else(|| trimmed.strip_prefix("RATE("))
        {
            Some(rest) => rest
                .strip_suffix(')')
                .ok_or_else(|| bad(format!("{s:?}: missing ')'")))?,
            None => trimmed,
        };
        let mut parts = inner.split_whitespace();
        let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(format!(
                "{s:?} is not a rate; write e.g. \"rate(5 minutes)\", \"rate(1 hour)\" or \"rate(2 days)\""
            )));
        };
        let value: u32 = value
            .parse()
            .ok()
            .filter(|v| (1..=MAX_RATE_VALUE).contains(v))
            .ok_or_else(|| {
                bad(format!(
                    "{value:?} is not a whole number from 1 to {MAX_RATE_VALUE}"
                ))
            })?;
        let unit = match unit.to_ascii_lowercase().as_str() {
            "minute" | "minutes" => RateUnit::Minute,
            "hour" | "hours" => RateUnit::Hour,
            "day" | "days" => RateUnit::Day,
            other => {
                return Err(bad(format!(
                    "unknown unit {other:?}; use minute(s), hour(s) or day(s)"
                )))
            }
        };
        Ok(Rate { value, unit })
    }

    /// The period in milliseconds.
    pub fn period_ms(self) -> i64 {
        i64::from(self.value) * self.unit.millis()
    }

    /// The first fire strictly after `after`, counting whole periods from `anchor`; `anchor +
    /// period` when `after` is before the anchor.
    pub fn next_after(self, anchor: EpochMillis, after: EpochMillis) -> EpochMillis {
        let period = self.period_ms();
        if after < anchor {
            return anchor + period;
        }
        let periods = (after - anchor) / period + 1;
        anchor + periods * period
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rate({} {})",
            self.value,
            self.unit.name(self.value != 1)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_normalize() {
        for (input, shown, ms) in [
            ("rate(5 minutes)", "rate(5 minutes)", 300_000),
            ("5 minutes", "rate(5 minutes)", 300_000),
            ("rate(1 minute)", "rate(1 minute)", 60_000),
            ("rate(1 minutes)", "rate(1 minute)", 60_000),
            (" RATE(1 Hour) ", "rate(1 hour)", 3_600_000),
            ("rate(2 days)", "rate(2 days)", 172_800_000),
        ] {
            let rate = Rate::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(rate.to_string(), shown, "{input}");
            assert_eq!(rate.period_ms(), ms, "{input}");
        }
    }

    #[test]
    fn bad_rates_name_the_field() {
        for input in [
            "",
            "rate()",
            "rate(5)",
            "rate(0 minutes)",
            "rate(-1 minutes)",
            "rate(1.5 hours)",
            "rate(5 seconds)",
            "rate(5 minutes",
            "rate(5 minutes extra)",
            "rate(99999999999 days)",
            "every 5 minutes",
        ] {
            let err = Rate::parse(input).expect_err(input);
            assert_eq!(err.field, "rate", "{input}");
        }
    }

    #[test]
    fn rate_fires_on_whole_periods_from_the_anchor() {
        let rate = Rate::parse("rate(5 minutes)").unwrap();
        let anchor = 1_000_000;
        assert_eq!(rate.next_after(anchor, anchor - 1), anchor + 300_000);
        assert_eq!(rate.next_after(anchor, anchor), anchor + 300_000);
        assert_eq!(rate.next_after(anchor, anchor + 299_999), anchor + 300_000);
        assert_eq!(rate.next_after(anchor, anchor + 300_000), anchor + 600_000);
        // After a long downtime: the next period boundary after "now", once.
        assert_eq!(
            rate.next_after(anchor, anchor + 10 * 300_000 + 1),
            anchor + 11 * 300_000
        );
    }

    #[test]
    fn names() {
        assert!(validate_schedule_name("nightly-backup.v2_x").is_ok());
        for bad in ["", "has space", "slash/y", &"x".repeat(65)] {
            assert_eq!(validate_schedule_name(bad).unwrap_err().field, "name");
        }
    }
}
