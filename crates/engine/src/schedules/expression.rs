//! Schedule expressions and the time arithmetic of firing, as pure functions of the instants
//! they are given (never the wall clock), so every rule is unit-tested with fixed times.
//!
//! - [`Expression`]: a 5-field cron expression read in an IANA time zone, or a fixed rate.
//! - [`plan`]: what the scheduler does with a schedule at an instant, including the
//!   missed-fire policy: however many ticks were missed, a schedule fires once, for the
//!   first tick it missed, and its next fire is the first tick after now.

use croner::parser::{CronParser, Seconds, Year};
use holactl_types::schedule::{Rate, ScheduleRecord, DEFAULT_TIMEZONE};
use holactl_types::{EpochMillis, ValidationError};
use jiff::tz::TimeZone;

/// When a fire is claimed but not seen queued for this long, another tick retries it.
pub const PENDING_GRACE_MS: i64 = 10_000;

/// A parsed schedule expression.
#[derive(Clone, Debug)]
pub enum Expression {
    /// A 5-field cron expression in a time zone.
    Cron {
        /// The parsed pattern.
        cron: Box<croner::Cron>,
        /// The fields as the user wrote them, whitespace collapsed.
        fields: String,
        /// The time zone name.
        zone: String,
        /// The time zone.
        tz: TimeZone,
    },
    /// A fixed rate, counted from the schedule's creation.
    Rate(Rate),
}

fn invalid(field: &str, message: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message)
}

/// Strips a `cron(…)` wrapper.
fn unwrap_cron(s: &str) -> Result<&str, ValidationError> {
    let t = s.trim();
    match t.strip_prefix("cron(").or_else(|| t.strip_prefix("CRON(")) {
        Some(rest) => rest
            .strip_suffix(')')
            .ok_or_else(|| invalid("cron", format!("{s:?}: missing ')'"))),
        None => Ok(t),
    }
}

/// Whether `s` is written as `rate(…)`.
fn is_rate(s: &str) -> bool {
    let t = s.trim_start();
    t.len() >= 5 && t[..5].eq_ignore_ascii_case("rate(")
}

/// Parses a 5-field cron expression (minute, hour, day of month, month, day of week).
fn parse_cron(s: &str) -> Result<(croner::Cron, String), ValidationError> {
    let fields = unwrap_cron(s)?.split_whitespace().collect::<Vec<_>>();
    if fields.len() != 5 && !(fields.len() == 1 && fields[0].starts_with('@')) {
        return Err(invalid(
            "cron",
            format!(
                "{s:?} has {} fields; a cron expression has 5: minute hour day-of-month month \
                 day-of-week (e.g. \"0 2 * * *\")",
                fields.len()
            ),
        ));
    }
    let fields = fields.join(" ");
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(&fields)
        .map_err(|e| invalid("cron", format!("{s:?} is not a valid cron expression: {e}")))?;
    Ok((cron, fields))
}

/// Looks up an IANA time zone name.
pub fn parse_timezone(name: &str) -> Result<TimeZone, ValidationError> {
    if name.is_empty() || name.len() > 64 {
        return Err(invalid("timezone", "must be an IANA time zone name"));
    }
    TimeZone::get(name).map_err(|_| {
        invalid(
            "timezone",
            format!("{name:?} is not a known IANA time zone (e.g. \"Europe/Madrid\", \"UTC\")"),
        )
    })
}

impl Expression {
    /// Parses what a user sent: exactly one of `cron` and `rate`, and a time zone for cron. A
    /// `cron` written as `rate(…)` is taken as a rate.
    pub fn parse(
        cron: Option<&str>,
        rate: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<Expression, ValidationError> {
        let (cron, rate) = match (cron, rate) {
            (Some(c), None) if is_rate(c) => (None, Some(c)),
            other => other,
        };
        match (cron, rate) {
            (Some(_), Some(_)) => Err(invalid("cron", "give either cron or rate, not both")),
            (None, None) => Err(invalid(
                "cron",
                "give a cron expression (e.g. \"0 2 * * *\") or a rate (e.g. \"rate(5 minutes)\")",
            )),
            (None, Some(r)) => {
                let rate = Rate::parse(r)?;
                if timezone.is_some_and(|z| z != DEFAULT_TIMEZONE) {
                    return Err(invalid(
                        "timezone",
                        "applies to cron expressions only; a rate counts fixed periods",
                    ));
                }
                Ok(Expression::Rate(rate))
            }
            (Some(c), None) => {
                let (cron, fields) = parse_cron(c)?;
                let zone = timezone.unwrap_or(DEFAULT_TIMEZONE);
                let tz = parse_timezone(zone)?;
                // The database's spelling (`europe/madrid` → `Europe/Madrid`).
                let zone = tz.iana_name().unwrap_or(zone).to_owned();
                Ok(Expression::Cron {
                    cron: Box::new(cron),
                    fields,
                    zone,
                    tz,
                })
            }
        }
    }

    /// Parses a stored expression (`cron(…)` or `rate(…)`) and its time zone.
    pub fn from_stored(expression: &str, timezone: &str) -> Result<Expression, ValidationError> {
        if is_rate(expression) {
            Expression::parse(None, Some(expression), None)
        } else {
            Expression::parse(Some(expression), None, Some(timezone))
        }
    }

    /// The normalized form: `cron(0 2 * * *)` or `rate(5 minutes)`.
    pub fn normalized(&self) -> String {
        match self {
            Expression::Cron { fields, .. } => format!("cron({fields})"),
            Expression::Rate(rate) => rate.to_string(),
        }
    }

    /// The time zone shown and stored (`UTC` for rates).
    pub fn timezone(&self) -> &str {
        match self {
            Expression::Cron { zone, .. } => zone,
            Expression::Rate(_) => DEFAULT_TIMEZONE,
        }
    }

    /// The first fire strictly after `after`. Rates count whole periods from `anchor` (the
    /// schedule's creation); cron ignores it. `None` when the expression never fires again.
    pub fn next_after(&self, anchor: EpochMillis, after: EpochMillis) -> Option<EpochMillis> {
        match self {
            Expression::Rate(rate) => Some(rate.next_after(anchor, after)),
            Expression::Cron { cron, tz, .. } => {
                let start = jiff::Timestamp::from_millisecond(after)
                    .ok()?
                    .to_zoned(tz.clone());
                let next = cron.find_next_occurrence(&start, false).ok()?;
                let ms = next.timestamp().as_millisecond();
                // Cron resolves to whole minutes; a start inside a minute must not yield it.
                (ms > after).then_some(ms)
            }
        }
    }
}

/// What the scheduler does with one schedule at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing is due.
    Wait,
    /// Fire the tick due at `scheduled_at` (once, however late) and move the schedule to
    /// `next_fire_at`, the first tick after now.
    Fire {
        /// The tick being fired.
        scheduled_at: EpochMillis,
        /// The first tick after now, if any.
        next_fire_at: Option<EpochMillis>,
    },
    /// A claimed fire was not seen queued within [`PENDING_GRACE_MS`]: queue it again with the
    /// same idempotency key.
    Retry {
        /// The tick being fired.
        scheduled_at: EpochMillis,
    },
    /// An active schedule without a next fire: give it one (or none, if it never fires again).
    Reschedule {
        /// The first tick after now, if any.
        next_fire_at: Option<EpochMillis>,
    },
}

/// Decides what to do with `record` at `now`; `next_after(t)` is the schedule's first tick
/// strictly after `t`.
pub fn plan(
    record: &ScheduleRecord,
    now: EpochMillis,
    next_after: impl Fn(EpochMillis) -> Option<EpochMillis>,
) -> Plan {
    if let Some(pending) = record.pending {
        // A fire in flight is finished first, paused or not: it was already claimed.
        return if now - pending.claimed_at >= PENDING_GRACE_MS {
            Plan::Retry {
                scheduled_at: pending.scheduled_at,
            }
        } else {
            Plan::Wait
        };
    }
    if record.paused {
        return Plan::Wait;
    }
    match record.next_fire_at {
        Some(due) if due <= now => Plan::Fire {
            scheduled_at: due,
            next_fire_at: next_after(now),
        },
        Some(_) => Plan::Wait,
        None => match next_after(now) {
            Some(next) => Plan::Reschedule {
                next_fire_at: Some(next),
            },
            None => Plan::Wait,
        },
    }
}

/// The idempotency key of the fire of `name` at `scheduled_at`: the same tick is queued at
/// most once, however many nodes or retries try.
pub fn fire_key(name: &str, scheduled_at: EpochMillis) -> String {
    format!("schedule:{name}:{scheduled_at}")
}

/// RFC 3339 UTC time, whole seconds.
pub fn rfc3339(ms: EpochMillis) -> String {
    jiff::Timestamp::from_second(ms.div_euclid(1000))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use holactl_types::schedule::PendingFire;

    /// Epoch ms of an RFC 3339 instant.
    fn at(s: &str) -> EpochMillis {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn cron(expr: &str, tz: &str) -> Expression {
        Expression::parse(Some(expr), None, Some(tz)).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn next(e: &Expression, after: &str) -> String {
        rfc3339(e.next_after(0, at(after)).expect("fires"))
    }

    #[test]
    fn every_minute_fires_on_the_next_minute_boundary() {
        let e = cron("* * * * *", "UTC");
        assert_eq!(next(&e, "2025-01-01T10:00:00Z"), "2025-01-01T10:01:00Z");
        assert_eq!(next(&e, "2025-01-01T10:00:59.999Z"), "2025-01-01T10:01:00Z");
        assert_eq!(next(&e, "2025-01-01T10:00:00.001Z"), "2025-01-01T10:01:00Z");
        assert_eq!(next(&e, "2025-01-01T23:59:30Z"), "2025-01-02T00:00:00Z");
    }

    #[test]
    fn nightly_in_utc_and_in_a_time_zone() {
        let utc = cron("0 2 * * *", "UTC");
        assert_eq!(next(&utc, "2025-01-01T10:00:00Z"), "2025-01-02T02:00:00Z");
        // Madrid is UTC+1 in winter and UTC+2 in summer: 02:00 local is 01:00 or 00:00 UTC.
        let madrid = cron("0 2 * * *", "europe/madrid");
        assert_eq!(madrid.timezone(), "Europe/Madrid");
        assert_eq!(
            next(&madrid, "2025-01-01T10:00:00Z"),
            "2025-01-02T01:00:00Z"
        );
        assert_eq!(
            next(&madrid, "2025-07-01T10:00:00Z"),
            "2025-07-02T00:00:00Z"
        );
    }

    #[test]
    fn daylight_saving_transitions() {
        let e = cron("30 2 * * *", "Europe/Madrid");
        let fires = |from: &str, n: usize| {
            let mut t = at(from);
            (0..n)
                .map(|_| {
                    t = e.next_after(0, t).expect("fires");
                    rfc3339(t)
                })
                .collect::<Vec<_>>()
        };
        // 2025-03-30: Madrid skips 02:00-03:00. 02:30 that day fires once, when the clock
        // jumps to 03:00 CEST (01:00 UTC).
        assert_eq!(
            fires("2025-03-28T12:00:00Z", 3),
            [
                "2025-03-29T01:30:00Z",
                "2025-03-30T01:00:00Z",
                "2025-03-31T00:30:00Z"
            ]
        );
        // 2025-10-26: Madrid repeats 02:00-03:00. 02:30 fires once, at its first occurrence.
        assert_eq!(
            fires("2025-10-25T12:00:00Z", 2),
            ["2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"]
        );
        // An every-30-minutes expression keeps firing through the repeated hour.
        let e = cron("*/30 * * * *", "Europe/Madrid");
        let mut t = at("2025-10-26T00:00:00Z");
        let mut seen = Vec::new();
        for _ in 0..4 {
            t = e.next_after(0, t).expect("fires");
            seen.push(rfc3339(t));
        }
        assert_eq!(
            seen,
            [
                "2025-10-26T00:30:00Z",
                "2025-10-26T01:00:00Z",
                "2025-10-26T01:30:00Z",
                "2025-10-26T02:00:00Z"
            ]
        );
    }

    #[test]
    fn fields_names_steps_and_lists() {
        // Monday to Friday at 09:15 (2025-01-04 is a Saturday).
        let e = cron("15 9 * * MON-FRI", "UTC");
        assert_eq!(next(&e, "2025-01-04T00:00:00Z"), "2025-01-06T09:15:00Z");
        let e = cron("*/15 * * * *", "UTC");
        assert_eq!(next(&e, "2025-01-01T10:16:00Z"), "2025-01-01T10:30:00Z");
        let e = cron("0 0 1 jan,jul *", "UTC");
        assert_eq!(next(&e, "2025-02-01T00:00:00Z"), "2025-07-01T00:00:00Z");
        // Sunday is 0 and 7.
        let sun0 = cron("0 12 * * 0", "UTC");
        let sun7 = cron("0 12 * * 7", "UTC");
        assert_eq!(
            next(&sun0, "2025-01-01T00:00:00Z"),
            next(&sun7, "2025-01-01T00:00:00Z")
        );
        // Both day fields restricted: either matches (Vixie cron). 2025-01-13 is a Monday.
        let e = cron("0 0 15 * MON", "UTC");
        assert_eq!(next(&e, "2025-01-10T00:00:00Z"), "2025-01-13T00:00:00Z");
        assert_eq!(next(&e, "2025-01-13T00:00:00Z"), "2025-01-15T00:00:00Z");
        // Nicknames and extensions.
        assert_eq!(
            next(&cron("@daily", "UTC"), "2025-01-01T10:00:00Z"),
            "2025-01-02T00:00:00Z"
        );
        assert_eq!(
            next(&cron("0 12 L * *", "UTC"), "2025-02-01T00:00:00Z"),
            "2025-02-28T12:00:00Z"
        );
        // Wrapped as cron(…), as EventBridge writes it.
        let wrapped = cron("cron(0  2 * * *)", "UTC");
        assert_eq!(wrapped.normalized(), "cron(0 2 * * *)");
    }

    #[test]
    fn rates_and_their_form_in_the_cron_field() {
        let e = Expression::parse(Some("rate(5 minutes)"), None, None).unwrap();
        assert_eq!(e.normalized(), "rate(5 minutes)");
        let created = at("2025-01-01T10:00:20Z");
        assert_eq!(
            e.next_after(created, created).map(rfc3339).as_deref(),
            Some("2025-01-01T10:05:20Z")
        );
        let e = Expression::from_stored("rate(2 days)", "UTC").unwrap();
        assert_eq!(e.next_after(0, 0), Some(2 * 86_400_000));
    }

    #[test]
    fn invalid_input_names_the_field() {
        let field = |cron: Option<&str>, rate: Option<&str>, tz: Option<&str>| {
            Expression::parse(cron, rate, tz).unwrap_err().field
        };
        for bad in [
            "",
            "* * * *",
            "* * * * * *",
            "0 0 0 * * * 2025",
            "60 * * * *",
            "* 24 * * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 8",
            "x * * * *",
            "*/0 * * * *",
            "cron(* * * * *",
        ] {
            assert_eq!(field(Some(bad), None, None), "cron", "{bad:?}");
        }
        assert_eq!(field(None, Some("rate(0 minutes)"), None), "rate");
        assert_eq!(field(Some("rate(5 fortnights)"), None, None), "rate");
        assert_eq!(field(None, None, None), "cron");
        assert_eq!(field(Some("* * * * *"), Some("rate(1 hour)"), None), "cron");
        assert_eq!(
            field(Some("* * * * *"), None, Some("Mars/Olympus")),
            "timezone"
        );
        assert_eq!(field(Some("* * * * *"), None, Some("")), "timezone");
        assert_eq!(
            field(None, Some("rate(1 hour)"), Some("Europe/Madrid")),
            "timezone"
        );
    }

    #[test]
    fn a_cron_that_never_matches_never_fires() {
        let e = cron("0 0 30 2 *", "UTC");
        assert_eq!(e.next_after(0, at("2025-01-01T00:00:00Z")), None);
    }

    #[test]
    fn garbage_never_panics() {
        let alphabet = [
            "*", "/", "-", ",", "L", "W", "#", "?", "0", "7", "59", "99", " ", "MON", "@", "x",
            "(", ")", "rate(", "cron(", "days",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            if let Ok(e) = Expression::parse(Some(&s), None, None) {
                let _ = e.next_after(0, at("2025-01-01T00:00:00Z"));
            }
        }
    }

    fn record(paused: bool, next: Option<EpochMillis>) -> ScheduleRecord {
        ScheduleRecord {
            name: "nightly".into(),
            function: "hello".into(),
            qualifier: None,
            expression: "cron(0 2 * * *)".into(),
            timezone: "UTC".into(),
            payload: None,
            description: String::new(),
            paused,
            next_fire_at: next,
            last_fire_at: None,
            last_execution_id: None,
            last_error: None,
            pending: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn plan_fires_a_due_tick_and_waits_otherwise() {
        let e = cron("0 2 * * *", "UTC");
        let due = at("2025-01-02T02:00:00Z");
        let r = record(false, Some(due));
        let nx = |t| e.next_after(0, t);
        assert_eq!(plan(&r, due - 1, nx), Plan::Wait);
        assert_eq!(
            plan(&r, due + 300, nx),
            Plan::Fire {
                scheduled_at: due,
                next_fire_at: Some(at("2025-01-03T02:00:00Z")),
            }
        );
        assert_eq!(plan(&record(true, Some(due)), due + 300, nx), Plan::Wait);
        assert_eq!(
            plan(&record(false, None), due + 300, nx),
            Plan::Reschedule {
                next_fire_at: Some(at("2025-01-03T02:00:00Z"))
            }
        );
    }

    #[test]
    fn missed_ticks_fire_once_after_downtime() {
        // Down from just before the 2 January tick until the 5 January noon: three ticks
        // missed; one fire (for the first), and the next fire is the 6 January tick.
        let e = cron("0 2 * * *", "UTC");
        let first_missed = at("2025-01-02T02:00:00Z");
        let back = at("2025-01-05T12:00:00Z");
        let mut r = record(false, Some(first_missed));
        let nx = |t| e.next_after(0, t);
        let Plan::Fire {
            scheduled_at,
            next_fire_at,
        } = plan(&r, back, nx)
        else {
            panic!("expected a fire");
        };
        assert_eq!(scheduled_at, first_missed);
        assert_eq!(next_fire_at, Some(at("2025-01-06T02:00:00Z")));
        // Once the claim is recorded, nothing else fires until the next tick.
        r.next_fire_at = next_fire_at;
        for t in [back, back + 1000, at("2025-01-06T01:59:59Z")] {
            assert_eq!(plan(&r, t, nx), Plan::Wait);
        }
        // The same for a rate.
        let rate = Expression::parse(None, Some("rate(1 hour)"), None).unwrap();
        let created = at("2025-01-01T00:00:00Z");
        let mut r = record(false, Some(at("2025-01-01T01:00:00Z")));
        r.created_at = created;
        assert_eq!(
            plan(&r, at("2025-01-01T05:30:00Z"), |t| rate
                .next_after(created, t)),
            Plan::Fire {
                scheduled_at: at("2025-01-01T01:00:00Z"),
                next_fire_at: Some(at("2025-01-01T06:00:00Z")),
            }
        );
    }

    #[test]
    fn a_claimed_fire_is_retried_after_the_grace_period() {
        let e = cron("0 2 * * *", "UTC");
        let due = at("2025-01-02T02:00:00Z");
        let mut r = record(true, Some(at("2025-01-03T02:00:00Z")));
        r.pending = Some(PendingFire {
            scheduled_at: due,
            claimed_at: due + 100,
        });
        let nx = |t| e.next_after(0, t);
        assert_eq!(plan(&r, due + 100 + PENDING_GRACE_MS - 1, nx), Plan::Wait);
        assert_eq!(
            plan(&r, due + 100 + PENDING_GRACE_MS, nx),
            Plan::Retry { scheduled_at: due }
        );
        assert_eq!(fire_key("nightly", due), format!("schedule:nightly:{due}"));
    }

    #[test]
    fn a_tz_database_is_built_in_for_hosts_without_one() {
        let db = jiff::tz::TimeZoneDatabase::bundled();
        assert!(db.get("Europe/Madrid").is_ok());
        assert!(db.get("America/New_York").is_ok());
    }

    #[test]
    fn times_are_rfc3339_utc_whole_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(at("2025-06-01T02:00:00.750Z")),
            "2025-06-01T02:00:00Z"
        );
    }
}
