//! Token buckets, in memory: one per route and one per API key, keyed by a string. A request
//! takes one token from each bucket that applies, or from none. In a cluster each node keeps
//! its own buckets with its share of every limit ([`share`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use holactl_types::gateway::Throttle;

/// Node `index`'s part of `limit` when `nodes` nodes share it: the rate divided among them,
/// the burst split so the parts add up to it (at least one request each).
pub(crate) fn share(limit: Throttle, index: u32, nodes: u32) -> Throttle {
    if nodes <= 1 {
        return limit;
    }
    Throttle {
        rate: limit.rate / f64::from(nodes),
        burst: crate::cluster::share_of(limit.burst, index, nodes).max(1),
    }
}

/// One bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// The bucket refilled to `now` under `limit`.
    fn refilled(self, limit: &Throttle, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        Bucket {
            tokens: (self.tokens + elapsed * limit.rate).min(f64::from(limit.burst)),
            last: now,
        }
    }
}

/// Every bucket of the gateway.
#[derive(Debug, Default)]
pub(crate) struct Buckets {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Buckets {
    /// Takes one token from each of `limits` (all or none). `Err` carries how long until
    /// every bucket has a token again (the `Retry-After`).
    pub fn take(&self, limits: &[(&str, &Throttle)], now: Instant) -> Result<(), Duration> {
        if limits.is_empty() {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let mut wait = Duration::ZERO;
        let mut next = Vec::with_capacity(limits.len());
        for (key, limit) in limits {
            let bucket = buckets
                .get(*key)
                .copied()
                .unwrap_or(Bucket {
                    tokens: f64::from(limit.burst),
                    last: now,
                })
                .refilled(limit, now);
            if bucket.tokens < 1.0 {
                wait = wait.max(Duration::from_secs_f64((1.0 - bucket.tokens) / limit.rate));
            }
            next.push(((*key).to_owned(), bucket));
        }
        let allowed = wait.is_zero();
        for (key, mut bucket) in next {
            if allowed {
                bucket.tokens -= 1.0;
            }
            buckets.insert(key, bucket);
        }
        if allowed {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Keeps of API `api`'s buckets only those in `live` (the routes and active keys it has
    /// now): a deleted or revoked one starts afresh if it comes back.
    pub fn retain_api(&self, api: &str, live: &std::collections::HashSet<String>) {
        let prefix = format!("{api}/");
        if let Ok(mut buckets) = self.buckets.lock() {
            buckets.retain(|k, _| !k.starts_with(&prefix) || live.contains(k));
        }
    }
}

/// The bucket of route `id` of API `api`.
pub(crate) fn route_bucket(api: &str, id: &str) -> String {
    format!("{api}/route/{id}")
}

/// The bucket of API key `id` of API `api`.
pub(crate) fn key_bucket(api: &str, id: &str) -> String {
    format!("{api}/key/{id}")
}

impl Buckets {}

/// `Retry-After` in whole seconds (at least 1).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let b = Buckets::default();
        let limit = Throttle {
            rate: 2.0,
            burst: 3,
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take(&[("r", &limit)], t0).is_ok());
        }
        let wait = b.take(&[("r", &limit)], t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert_eq!(retry_after_secs(wait), 1);
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.take(&[("r", &limit)], t1).is_ok());
        assert!(b.take(&[("r", &limit)], t1).is_err());
        // Never more than the burst, however long it rested.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.take(&[("r", &limit)], t2).is_ok());
        }
        assert!(b.take(&[("r", &limit)], t2).is_err());
    }

    #[test]
    fn all_or_nothing_across_buckets() {
        let b = Buckets::default();
        let route = Throttle {
            rate: 1.0,
            burst: 10,
        };
        let key = Throttle {
            rate: 1.0,
            burst: 1,
        };
        let (r, k) = (route_bucket("a", "r"), key_bucket("a", "k"));
        let t0 = Instant::now();
        assert!(b
            .take(&[(r.as_str(), &route), (k.as_str(), &key)], t0)
            .is_ok());
        // The key's bucket is empty: the route's token is not spent either.
        assert!(b
            .take(&[(r.as_str(), &route), (k.as_str(), &key)], t0)
            .is_err());
        for _ in 0..9 {
            assert!(b.take(&[(r.as_str(), &route)], t0).is_ok());
        }
        assert!(b.take(&[(r.as_str(), &route)], t0).is_err());
        // The route is gone from API a (its key stays): its bucket is dropped.
        b.retain_api("a", &[k.clone()].into_iter().collect());
        assert!(b.take(&[(r.as_str(), &route)], t0).is_ok());
    }

    #[test]
    fn a_cluster_shares_a_limit() {
        let limit = Throttle {
            rate: 10.0,
            burst: 5,
        };
        assert_eq!(share(limit, 0, 1), limit);
        let thirds: Vec<Throttle> = (0..3).map(|i| share(limit, i, 3)).collect();
        assert!((thirds[0].rate - 10.0 / 3.0).abs() < 1e-9);
        assert_eq!(thirds.iter().map(|t| t.burst).sum::<u32>(), 5);
        assert_eq!(share(limit, 7, 8).burst, 1);
    }
}
