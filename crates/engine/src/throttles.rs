//! Throttles per function and minute, so reports over a window (`metrics --since 1h`, alerts)
//! count the throttles of that window rather than everything since the server started.
//! Throttled invocations leave no execution record; these counts live in memory for a day.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::metrics::Metrics;
use crate::Engine;

/// Minutes of history kept per function.
const KEPT_MINUTES: i64 = 24 * 60;

/// Per function: (minute since the epoch, throttles in it), oldest first.
#[derive(Debug, Default)]
pub(crate) struct ThrottleLog {
    minutes: Mutex<HashMap<String, VecDeque<(i64, u64)>>>,
}

impl ThrottleLog {
    /// Counts one throttle of `function` at `now_ms`.
    pub fn add(&self, function: &str, now_ms: i64) {
        let minute = now_ms.div_euclid(60_000);
        let Ok(mut all) = self.minutes.lock() else {
            return;
        };
        let q = all.entry(function.to_owned()).or_default();
        match q.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => q.push_back((minute, 1)),
        }
        while q.front().is_some_and(|(m, _)| *m <= minute - KEPT_MINUTES) {
            q.pop_front();
        }
    }

    /// Throttles of `function` from the minute holding `since_ms` on.
    pub fn since(&self, function: &str, since_ms: i64) -> u64 {
        let minute = since_ms.div_euclid(60_000);
        self.minutes
            .lock()
            .ok()
            .and_then(|all| {
                all.get(function)
                    .map(|q| q.iter().filter(|(m, _)| *m >= minute).map(|(_, n)| n).sum())
            })
            .unwrap_or(0)
    }
}

impl Engine {
    /// Counts a throttled invocation of `function`: the metric and the per-minute log.
    pub(crate) fn note_throttle(&self, function: &str) {
        self.inner
            .metrics
            .throttles
            .get_or_create(&Metrics::function(function))
            .inc();
        self.inner.throttle_log.add(function, crate::now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_window_and_forgets_after_a_day() {
        let log = ThrottleLog::default();
        let min = 60_000;
        log.add("f", 10 * min + 5);
        log.add("f", 10 * min + 59_999);
        log.add("f", 12 * min);
        log.add("g", 12 * min);
        assert_eq!(log.since("f", 0), 3);
        assert_eq!(log.since("f", 11 * min), 1);
        // The window starts at the minute that holds `since`.
        assert_eq!(log.since("f", 10 * min + 30_000), 3);
        assert_eq!(log.since("g", 0), 1);
        assert_eq!(log.since("h", 0), 0);
        log.add("f", (10 + KEPT_MINUTES) * min);
        assert_eq!(log.since("f", 0), 2, "the minute a day old is gone");
    }
}
