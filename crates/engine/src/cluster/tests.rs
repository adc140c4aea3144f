//! Cluster behaviour against a real `nats-server`: several connections (as several nodes)
//! racing for the same schedule tick. The server is started on a free loopback port with its
//! storage in a temporary directory and killed at the end; without `nats-server` the test
//! fails and says how to install it.

use std::sync::Arc;
use std::time::Duration;

use holactl_store::nats::testing::NatsServer;
use holactl_store::nats::{NatsOptions, NatsStore};
use holactl_store::Kv;
use holactl_types::schedule::ScheduleRecord;

use crate::functions::encode;
use crate::schedules::scheduler::claim_due;
use crate::schedules::SCHEDULE_PREFIX;

fn schedule(name: &str, next_fire_at: i64) -> ScheduleRecord {
    ScheduleRecord {
        name: name.into(),
        function: "hello".into(),
        qualifier: None,
        expression: "cron(* * * * *)".into(),
        timezone: "UTC".into(),
        payload: None,
        description: String::new(),
        paused: false,
        next_fire_at: Some(next_fire_at),
        last_fire_at: None,
        last_execution_id: None,
        last_error: None,
        pending: None,
        created_at: 0,
        updated_at: 0,
    }
}

/// Three nodes (three connections) pass over the same due schedules at once, twenty ticks in
/// a row: each tick of each schedule is claimed by exactly one of them, and every pass ends
/// promptly although its listing races the others' writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_tick_is_claimed_by_one_node() {
    let nats = NatsServer::start();
    let options = NatsOptions {
        namespace: "claims".into(),
        ..Default::default()
    };
    let mut nodes: Vec<Arc<dyn Kv>> = Vec::new();
    for _ in 0..3 {
        nodes.push(
            NatsStore::connect(nats.url(), options.clone())
                .await
                .unwrap()
                .kv,
        );
    }
    // 2025-01-01T00:00:00Z, then every minute.
    let start = 1_735_689_600_000;
    for name in ["a", "b", "c", "d"] {
        nodes[0]
            .create(
                &format!("{SCHEDULE_PREFIX}{name}"),
                encode(&schedule(name, start)).unwrap(),
            )
            .await
            .unwrap();
    }
    let mut claimed = std::collections::BTreeMap::new();
    for tick in 0..20i64 {
        let now = start + tick * 60_000 + 500;
        let passes: Vec<_> = nodes
            .iter()
            .map(|kv| {
                let kv = kv.clone();
                // A listing racing the other passes' writes must end (nats-server 2.9
                // over-counts pending messages then; see the store's `Bucket::scan`).
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_secs(10), claim_due(kv.as_ref(), now))
                        .await
                        .expect("a scheduler pass ends")
                        .expect("a scheduler pass")
                })
            })
            .collect();
        for pass in passes {
            for c in pass.await.unwrap() {
                *claimed
                    .entry((c.record.name.clone(), c.scheduled_at))
                    .or_insert(0) += 1;
                // Settle the fire as the node would after queueing it.
                let key = format!("{SCHEDULE_PREFIX}{}", c.record.name);
                let entry = nodes[0].get(&key).await.unwrap().unwrap();
                let mut r: ScheduleRecord = crate::functions::decode(&entry.value).unwrap();
                r.pending = None;
                nodes[0]
                    .update(&key, encode(&r).unwrap(), entry.revision)
                    .await
                    .unwrap();
            }
        }
    }
    assert_eq!(
        claimed.len(),
        4 * 20,
        "every tick of every schedule claimed"
    );
    assert!(
        claimed.values().all(|n| *n == 1),
        "a tick claimed twice: {claimed:?}"
    );
}
