//! Cluster behaviour against a real `nats-server`: several connections (as several nodes)
//! racing for the same schedule tick. The server is started on a free loopback port with its
//! storage in a temporary directory and killed at the end; without `nats-server` the test
//! fails and says how to install it.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use holactl_store::nats::{NatsOptions, NatsStore};
use holactl_store::Kv;
use holactl_types::schedule::ScheduleRecord;

use crate::functions::encode;
use crate::schedules::scheduler::claim_due;
use crate::schedules::SCHEDULE_PREFIX;

struct Nats {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nats() -> Nats {
    let binary = [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file())
    .unwrap_or_else(|| {
        panic!(
            "nats-server is not installed, and this test needs a real one: install it \
                 (Debian/Ubuntu: `apt-get install nats-server`)"
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Nats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _dir: dir,
    }
}

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
    let nats = start_nats();
    let options = NatsOptions {
        namespace: "claims".into(),
        ..Default::default()
    };
    let mut nodes: Vec<Arc<dyn Kv>> = Vec::new();
    for _ in 0..3 {
        nodes.push(
            NatsStore::connect(&nats.url, options.clone())
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
