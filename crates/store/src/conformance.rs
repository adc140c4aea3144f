//! Behaviour every store backend must show. Each backend's tests call these checks against a
//! fresh instance; a failing check panics with what differed.

use bytes::Bytes;
use holactl_types::{ExecutionRecord, ExecutionStatus, Trigger};

use crate::{BlobStore, ExecutionQuery, ExecutionStore, Kv, StoreError, StoredLog};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Key/value semantics: create-if-absent, compare-and-set, delete, prefix listing.
pub async fn kv(kv: &dyn Kv) {
    assert!(kv.get("functions/a").await.unwrap().is_none());
    let r1 = kv.create("functions/a", b("1")).await.unwrap();
    assert!(matches!(
        kv.create("functions/a", b("x")).await,
        Err(StoreError::Conflict { .. })
    ));
    let got = kv.get("functions/a").await.unwrap().unwrap();
    assert_eq!((got.value, got.revision), (b("1"), r1));

    let r2 = kv.update("functions/a", b("2"), r1).await.unwrap();
    assert!(r2 > r1);
    assert!(matches!(
        kv.update("functions/a", b("3"), r1).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        kv.update("functions/missing", b("3"), r1).await,
        Err(StoreError::Conflict { .. })
    ));
    let r3 = kv.put("functions/b", b("b")).await.unwrap();
    assert!(r3 > r2);
    kv.put("functionsX", b("no")).await.unwrap();
    kv.put("other/c", b("c")).await.unwrap();

    let listed: Vec<String> = kv
        .list("functions/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, vec!["functions/a", "functions/b"]);

    assert!(matches!(
        kv.delete("functions/a", Some(r1)).await,
        Err(StoreError::Conflict { .. })
    ));
    kv.delete("functions/a", Some(r2)).await.unwrap();
    assert!(matches!(
        kv.delete("functions/a", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(kv.get("functions/a").await.unwrap().is_none());
    // A deleted key can be created again.
    kv.create("functions/a", b("again")).await.unwrap();
}

/// How long a watch may take to report a change here (generous: these checks are about what
/// is reported; the cluster tests hold the NATS backend to its one-second promise).
const WATCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// The next event of `watch`, which must come within `deadline`.
pub async fn next_event_within(
    watch: &mut crate::KvWatch,
    deadline: std::time::Duration,
) -> crate::KvEvent {
    match tokio::time::timeout(deadline, watch.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the watch ended"),
        Err(_) => panic!("no watch event within {deadline:?}"),
    }
}

async fn next_event(watch: &mut crate::KvWatch) -> crate::KvEvent {
    next_event_within(watch, WATCH_DEADLINE).await
}

/// Watches: changes under the prefix after the watch started, in order, with their values and
/// revisions; deletions; nothing outside the prefix; dropping one watch leaves others running.
pub async fn kv_watch(kv: &dyn Kv) {
    use crate::KvEvent;
    kv.put("cfg/before", b("0")).await.unwrap();
    let mut w = kv.watch("cfg/").await.unwrap();
    let other = kv.watch("cfg/").await.unwrap();
    drop(other);

    let r1 = kv.create("cfg/a", b("1")).await.unwrap();
    kv.put("cfgX", b("no")).await.unwrap();
    kv.put("other/cfg/a", b("no")).await.unwrap();
    let r2 = kv.update("cfg/a", b("2"), r1).await.unwrap();
    // A failed compare-and-set changes nothing, so it is not seen.
    assert!(kv.update("cfg/a", b("x"), r1).await.is_err());
    kv.delete("cfg/a", None).await.unwrap();
    let r4 = kv.put("cfg/deep/b", b("b")).await.unwrap();

    assert_eq!(
        next_event(&mut w).await,
        KvEvent::Put {
            key: "cfg/a".into(),
            entry: crate::Entry {
                value: b("1"),
                revision: r1
            }
        }
    );
    assert_eq!(
        next_event(&mut w).await,
        KvEvent::Put {
            key: "cfg/a".into(),
            entry: crate::Entry {
                value: b("2"),
                revision: r2
            }
        }
    );
    match next_event(&mut w).await {
        KvEvent::Delete { key, revision } => {
            assert_eq!(key, "cfg/a");
            assert!(revision > r2 && revision < r4, "{revision} in ({r2}, {r4})");
        }
        other => panic!("expected the deletion, got {other:?}"),
    }
    assert_eq!(
        next_event(&mut w).await,
        KvEvent::Put {
            key: "cfg/deep/b".into(),
            entry: crate::Entry {
                value: b("b"),
                revision: r4
            }
        }
    );
    // Nothing else was announced.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), w.next())
            .await
            .is_err(),
        "an unexpected event"
    );
}

pub(crate) fn record(id: &str, function: &str, created_at: i64) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_owned(),
        function: function.to_owned(),
        version: "$LATEST".to_owned(),
        status: ExecutionStatus::Running,
        trigger: Trigger::Invoke,
        created_at,
        started_at: Some(created_at),
        ended_at: None,
        duration_ms: None,
        billed_duration_ms: None,
        init_duration_ms: None,
        cold_start: true,
        memory_mb: 512,
        attempts: 1,
        result: None,
        result_truncated: false,
        error: None,
        log_bytes: 0,
        log_truncated: false,
    }
}

/// Execution records: upsert, read-your-writes for background writes, newest-first listing
/// with pagination, every id oldest first, logs, initial records written only once.
pub async fn executions(store: &dyn ExecutionStore) {
    store.record(record("e1", "f", 1), None).await.unwrap();
    store.record_later(record("e2", "g", 2), None);
    let mut e3 = record("e3", "f", 3);
    store.record_later(e3.clone(), None);
    // Background writes are visible to the next read.
    assert_eq!(store.get("e2").await.unwrap().unwrap().function, "g");
    e3.status = ExecutionStatus::Complete;
    store
        .record(
            e3,
            Some(StoredLog {
                data: b"hello\n".to_vec(),
                truncated: true,
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get("e3").await.unwrap().unwrap().status,
        ExecutionStatus::Complete
    );
    assert!(store.get("nope").await.unwrap().is_none());

    let ids = |v: Vec<ExecutionRecord>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let all = store
        .list(ExecutionQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(all), vec!["e3", "e2", "e1"]);
    let f = store
        .list(ExecutionQuery {
            function: Some("f".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(f), vec!["e3"]);
    let page2 = store
        .list(ExecutionQuery {
            function: Some("f".into()),
            before: Some("e3".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(ids(page2), vec!["e1"]);

    let log = store.log("e3").await.unwrap().unwrap();
    assert_eq!(log.data, b"hello\n");
    assert!(log.truncated);
    assert!(store.log("e1").await.unwrap().is_none());

    // The initial record of an accepted event never replaces one already there (a node that
    // ran the event may have written first); a first one is stored.
    let mut initial = record("e3", "f", 3);
    initial.status = ExecutionStatus::Pending;
    initial.attempts = 0;
    assert!(crate::is_initial(&initial));
    store.record(initial.clone(), None).await.unwrap();
    store.record_later(initial.clone(), None);
    assert_eq!(
        store.get("e3").await.unwrap().unwrap().status,
        ExecutionStatus::Complete
    );
    initial.id = "e4".into();
    store.record_later(initial, None);
    assert_eq!(
        store.get("e4").await.unwrap().unwrap().status,
        ExecutionStatus::Pending
    );
    store.flush("e4").await.unwrap();
    assert_eq!(store.ids().await.unwrap(), ["e1", "e2", "e3", "e4"]);
}

/// Content addressing: the address is the sha256, puts are idempotent, bad addresses miss.
pub async fn blobs(blobs: &dyn BlobStore) {
    let sha = blobs.put(b("package")).await.unwrap();
    assert_eq!(sha, crate::sha256_hex(b"package"));
    assert_eq!(blobs.put(b("package")).await.unwrap(), sha);
    assert!(blobs.contains(&sha).await.unwrap());
    assert_eq!(blobs.get(&sha).await.unwrap().unwrap(), b("package"));
    let missing = crate::sha256_hex(b"other");
    assert!(!blobs.contains(&missing).await.unwrap());
    assert!(blobs.get(&missing).await.unwrap().is_none());
    assert!(blobs.get("../../etc/passwd").await.unwrap().is_none());
    let second = blobs.put(b("another package")).await.unwrap();
    let mut both = vec![sha, second];
    both.sort();
    assert_eq!(blobs.list().await.unwrap(), both);
}

fn msg(id: &str, at: i64) -> crate::NewMessage {
    crate::NewMessage {
        id: id.to_owned(),
        payload: b(id),
        not_before: at,
        enqueued_at: at,
    }
}

/// Work queues: ordering, leases and their expiry (redelivery), ack with a lost lease, retry
/// with delay, dead letters, replay, purge, removal, depth.
pub async fn queues(q: &dyn crate::WorkQueue) {
    q.enqueue("a", msg("m1", 0)).await.unwrap();
    q.enqueue("a", msg("m2", 5)).await.unwrap();
    q.enqueue("a", msg("m1", 0)).await.unwrap(); // same id: no duplicate
    q.enqueue("b", msg("other", 0)).await.unwrap();
    let d = q.depth("a", 1).await.unwrap();
    assert_eq!((d.ready, d.delayed, d.in_flight), (1, 1, 0));

    // Only visible messages are leased, oldest first.
    let l = q.lease("a", 10, 100, 1).await.unwrap();
    assert_eq!(
        l.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec!["m1"]
    );
    assert_eq!(l[0].attempts, 1);
    assert_eq!(l[0].payload, b("m1"));
    assert!(q.lease("a", 10, 100, 2).await.unwrap().is_empty());
    assert_eq!(q.depth("a", 2).await.unwrap().in_flight, 1);

    // An expired lease is redelivered; the old token no longer acks.
    let batch = q.lease("a", 10, 100, 101).await.unwrap();
    assert_eq!(batch.len(), 2);
    let again = batch.iter().find(|m| m.id == "m1").unwrap();
    assert_eq!(again.attempts, 2);
    let m2 = batch.iter().find(|m| m.id == "m2").unwrap();
    q.ack("a", "m2", &m2.token).await.unwrap();
    assert!(matches!(
        q.ack("a", "m1", &l[0].token).await,
        Err(StoreError::Conflict { .. })
    ));
    // Retry with delay, then dead-letter on the next delivery.
    q.retry("a", "m1", &again.token, 500).await.unwrap();
    assert_eq!(q.depth("a", 200).await.unwrap().delayed, 1);
    let third = q.lease("a", 10, 100, 600).await.unwrap();
    assert_eq!(third.len(), 1);
    let m1 = &third[0];
    assert_eq!((m1.id.as_str(), m1.attempts), ("m1", 3));
    q.dead_letter("a", "m1", &m1.token, "boom", 650)
        .await
        .unwrap();
    let d = q.depth("a", 700).await.unwrap();
    assert_eq!((d.ready, d.delayed, d.in_flight, d.dead), (0, 0, 0, 1));
    let dead = q.dead("a", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempts, dead[0].reason.as_str()), (3, "boom"));
    assert_eq!(dead[0].payload, b("m1"));

    // Replay makes it a fresh delivery chain.
    assert_eq!(q.replay_dead("a", None, 800).await.unwrap(), 1);
    let replayed = q.lease("a", 10, 100, 800).await.unwrap();
    assert_eq!((replayed[0].id.as_str(), replayed[0].attempts), ("m1", 1));
    assert!(q.remove("a", "m1").await.unwrap());
    assert!(!q.remove("a", "m1").await.unwrap());

    // Purge.
    q.enqueue("a", msg("m3", 0)).await.unwrap();
    let l = q.lease("a", 1, 100, 900).await.unwrap();
    q.dead_letter("a", "m3", &l[0].token, "x", 900)
        .await
        .unwrap();
    assert_eq!(q.purge_dead("a", None, Some(100)).await.unwrap(), 0);
    assert_eq!(q.purge_dead("a", None, None).await.unwrap(), 1);
    // Queues are independent.
    assert_eq!(q.depth("b", 0).await.unwrap().ready, 1);

    // Depths by prefix: only queues holding something, live or dead.
    q.enqueue("p/x", msg("x1", 0)).await.unwrap();
    q.enqueue("p/x", msg("x2", 50)).await.unwrap();
    q.enqueue("p/y", msg("y1", 0)).await.unwrap();
    q.enqueue("pz", msg("z1", 0)).await.unwrap();
    let l = q.lease("p/y", 1, 100, 10).await.unwrap();
    q.dead_letter("p/y", "y1", &l[0].token, "x", 10)
        .await
        .unwrap();
    let all = q.depths("p/", 20).await.unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), vec!["p/x", "p/y"]);
    let x = all["p/x"];
    assert_eq!((x.ready, x.delayed, x.in_flight, x.dead), (1, 1, 0, 0));
    assert_eq!(x.oldest_ready_age_ms, 20);
    assert_eq!(all["p/y"].dead, 1);
    assert!(q.depths("none/", 20).await.unwrap().is_empty());
}

/// Leases held by someone else: an extended lease keeps a message away from other consumers,
/// a stale token can neither extend, retry, dead-letter nor ack (and changes nothing), a
/// removed message cannot be acked, dead letters are listed oldest first and replayed or
/// purged by id, and an acked id can be queued again.
pub async fn queue_leases(q: &dyn crate::WorkQueue) {
    let conflict = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Conflict { .. }));
    q.enqueue("l", msg("m1", 0)).await.unwrap();
    let first = q.lease("l", 1, 100, 0).await.unwrap();
    let t1 = first[0].token.clone();
    q.extend("l", "m1", &t1, 300).await.unwrap();
    assert!(q.lease("l", 10, 100, 150).await.unwrap().is_empty());
    assert_eq!(q.depth("l", 150).await.unwrap().in_flight, 1);
    let second = q.lease("l", 10, 100, 300).await.unwrap();
    assert_eq!((second.len(), second[0].attempts), (1, 2));
    let t2 = second[0].token.clone();
    assert_ne!(t1, t2);
    assert!(conflict(q.extend("l", "m1", &t1, 10_000).await));
    assert!(conflict(q.retry("l", "m1", &t1, 0).await));
    assert!(conflict(q.dead_letter("l", "m1", &t1, "stale", 301).await));
    assert!(conflict(q.ack("l", "m1", &t1).await));
    let d = q.depth("l", 301).await.unwrap();
    assert_eq!((d.in_flight, d.dead), (1, 0));
    q.retry("l", "m1", &t2, 1000).await.unwrap();
    assert_eq!(q.depth("l", 500).await.unwrap().delayed, 1);
    assert!(q.remove("l", "m1").await.unwrap());
    assert!(conflict(q.ack("l", "m1", &t2).await));
    assert_eq!(q.depth("l", 2000).await.unwrap(), Default::default());

    q.enqueue("l", msg("d1", 0)).await.unwrap();
    q.enqueue("l", msg("d2", 0)).await.unwrap();
    let both = q.lease("l", 10, 100, 0).await.unwrap();
    assert_eq!(both.len(), 2);
    for m in &both {
        let (at, reason) = if m.id == "d1" { (10, "r1") } else { (20, "r2") };
        q.dead_letter("l", &m.id, &m.token, reason, at)
            .await
            .unwrap();
    }
    let oldest = q.dead("l", 1).await.unwrap();
    assert_eq!(
        (
            oldest.len(),
            oldest[0].id.as_str(),
            oldest[0].died_at,
            oldest[0].reason.as_str()
        ),
        (1, "d1", 10, "r1")
    );
    assert_eq!(oldest[0].queue, "l");
    assert_eq!(
        q.replay_dead("l", Some(vec!["d2".into(), "nope".into()]), 50)
            .await
            .unwrap(),
        1
    );
    let replayed = q.lease("l", 10, 100, 50).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(
        (
            replayed[0].id.as_str(),
            replayed[0].attempts,
            replayed[0].enqueued_at
        ),
        ("d2", 1, 50)
    );
    assert_eq!(
        q.purge_dead("l", Some(vec!["d1".into()]), None)
            .await
            .unwrap(),
        1
    );
    assert!(q.dead("l", 10).await.unwrap().is_empty());

    // An acked id is forgotten: queuing it again delivers it again.
    q.ack("l", "d2", &replayed[0].token).await.unwrap();
    q.enqueue("l", msg("d2", 60)).await.unwrap();
    let again = q.lease("l", 10, 100, 60).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1));
}

/// Dump and restore (export and import): a dump lists live and dead messages of the queues
/// under a prefix with their state, leases dropped; restoring it into another store gives the
/// same dump, and the messages behave there as they did (visibility, attempts, dead letters);
/// restoring an id the queue holds changes nothing.
pub async fn queue_dump(from: &dyn crate::WorkQueue, to: &dyn crate::WorkQueue) {
    use crate::{Death, StoredMessage};
    from.enqueue("async/f", msg("ready", 10)).await.unwrap();
    from.enqueue("async/f", msg("later", 500)).await.unwrap();
    from.enqueue("async/f", msg("leased", 5)).await.unwrap();
    from.enqueue("async/f", msg("dies", 1)).await.unwrap();
    from.enqueue("async/g", msg("g1", 1)).await.unwrap();
    from.enqueue("other", msg("o1", 1)).await.unwrap();
    let leased = from.lease("async/f", 2, 100, 20).await.unwrap();
    let ids: Vec<&str> = leased.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["dies", "leased"]);
    from.dead_letter("async/f", "dies", &leased[0].token, "boom", 30)
        .await
        .unwrap();

    let dump = from.dump("async/").await.unwrap();
    let want = |queue: &str, id: &str, enq: i64, vis: i64, attempts: u32, dead: Option<Death>| {
        StoredMessage {
            queue: queue.into(),
            id: id.into(),
            payload: b(id),
            enqueued_at: enq,
            visible_at: vis,
            attempts,
            dead,
        }
    };
    let death = Death {
        died_at: 30,
        reason: "boom".into(),
    };
    assert_eq!(
        dump,
        vec![
            want("async/f", "dies", 1, 30, 1, Some(death)),
            want("async/f", "later", 500, 500, 0, None),
            want("async/f", "leased", 5, 120, 1, None),
            want("async/f", "ready", 10, 10, 0, None),
            want("async/g", "g1", 1, 1, 0, None),
        ]
    );

    for m in dump.clone() {
        assert!(to.restore(m).await.unwrap());
    }
    for m in dump.clone() {
        assert!(!to.restore(m).await.unwrap(), "a second restore is a no-op");
    }
    assert_eq!(to.dump("").await.unwrap(), dump);
    // A restored message with the id of a dead one (or the reverse) is not written either.
    let mut revived = dump[0].clone();
    revived.dead = None;
    assert!(!to.restore(revived).await.unwrap());

    let d = to.depth("async/f", 100).await.unwrap();
    assert_eq!((d.ready, d.delayed, d.in_flight, d.dead), (1, 2, 0, 1));
    let got = to.lease("async/f", 10, 100, 200).await.unwrap();
    let got: Vec<(&str, u32)> = got.iter().map(|l| (l.id.as_str(), l.attempts)).collect();
    assert_eq!(got, [("ready", 1), ("leased", 2)]);
    assert_eq!(to.dead("async/f", 10).await.unwrap()[0].reason, "boom");
}

fn finished(
    id: &str,
    function: &str,
    ended_at: i64,
    billed: u64,
    memory_mb: u32,
) -> ExecutionRecord {
    let mut r = record(id, function, ended_at);
    r.status = ExecutionStatus::Complete;
    r.ended_at = Some(ended_at);
    r.billed_duration_ms = Some(billed);
    r.memory_mb = memory_mb;
    r
}

/// Usage aggregates: only final billed records count, each execution once however often it
/// is written (pending → running → final, rewrites, a retry that changes the charge), per
/// function and UTC day, with function and day filters.
pub async fn usage(store: &dyn ExecutionStore) {
    use crate::UsageQuery;
    use holactl_types::usage::DayUsage;
    const DAY: i64 = 86_400_000;

    // u1: written pending/running, then final three times (sync and background writes).
    let mut pending = record("u1", "f", 10);
    pending.status = ExecutionStatus::Pending;
    store.record(pending, None).await.unwrap();
    store.record_later(record("u1", "f", 10), None);
    store.record_later(finished("u1", "f", 20, 7, 128), None);
    store
        .record(finished("u1", "f", 20, 7, 128), None)
        .await
        .unwrap();
    store.record_later(finished("u1", "f", 20, 7, 128), None);
    // u2: another function, next day.
    store
        .record(finished("u2", "g", DAY + 5, 100, 1024), None)
        .await
        .unwrap();
    // u3: a running record costs nothing yet.
    store.record(record("u3", "f", 30), None).await.unwrap();
    // u4: counted, then rewritten with a different charge (a retry): only the last counts.
    store.record_later(finished("u4", "f", 40, 50, 256), None);
    store.record_later(finished("u4", "f", 41, 3, 256), None);
    // u5: counted, then back to pending (a retry queued): no longer charged.
    store.record_later(finished("u5", "f", 50, 1000, 256), None);
    let mut retry = record("u5", "f", 50);
    retry.status = ExecutionStatus::Pending;
    store.record_later(retry, None);
    // u6: cancelled before it ran: final but not billed.
    let mut cancelled = record("u6", "f", 60);
    cancelled.status = ExecutionStatus::Cancelled;
    store.record_later(cancelled, None);

    let all = store.usage(UsageQuery::default()).await.unwrap();
    let f0 = DayUsage {
        function: "f".into(),
        day: 0,
        requests: 2,
        billed_ms: 10,
        mb_ms: 7 * 128 + 3 * 256,
    };
    let g1 = DayUsage {
        function: "g".into(),
        day: 1,
        requests: 1,
        billed_ms: 100,
        mb_ms: 100 * 1024,
    };
    assert_eq!(all, vec![f0.clone(), g1.clone()]);
    let only_f = store
        .usage(UsageQuery {
            function: Some("f".into()),
            since_day: None,
        })
        .await
        .unwrap();
    assert_eq!(only_f, vec![f0]);
    let since = store
        .usage(UsageQuery {
            function: None,
            since_day: Some(1),
        })
        .await
        .unwrap();
    assert_eq!(since, vec![g1]);
    assert!(store
        .usage(UsageQuery {
            function: Some("nope".into()),
            since_day: None,
        })
        .await
        .unwrap()
        .is_empty());

    // The aggregates equal the sum over the records.
    let records = store
        .list(ExecutionQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let charged: Vec<_> = records
        .iter()
        .filter_map(holactl_types::usage::Charge::of)
        .collect();
    assert_eq!(
        charged.len() as u64,
        all.iter().map(|d| d.requests).sum::<u64>()
    );
    assert_eq!(
        charged.iter().map(|c| c.mb_ms).sum::<u64>(),
        all.iter().map(|d| d.mb_ms).sum::<u64>()
    );
}
