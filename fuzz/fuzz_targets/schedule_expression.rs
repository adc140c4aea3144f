//! Schedule expressions: `cron\ntimezone` or `rate`; parsing and computing the next fires
//! never panic.
#![no_main]

use holactl_engine::schedules::expression::Expression;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let first = parts.next().unwrap_or_default();
    let zone = parts.next();
    for expr in [
        Expression::parse(Some(first), None, zone),
        Expression::parse(None, Some(first), None),
    ]
    .into_iter()
    .flatten()
    {
        let now = 1_795_000_000_000;
        if let Some(next) = expr.next_after(now, now) {
            assert!(next > now);
            let _ = expr.next_after(now, next);
        }
        let _ = Expression::from_stored(&expr.normalized(), expr.timezone());
    }
});
