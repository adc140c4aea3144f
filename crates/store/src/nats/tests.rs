//! The conformance suite and the cluster races, against a real `nats-server`.
//!
//! One server (JetStream, file storage in a temporary directory) is started per test binary
//! on a free loopback port; every test opens its own namespace on it, so tests run in
//! parallel without seeing each other. The server is not optional: without `nats-server`
//! these tests fail and say how to install it.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;

use super::testing::{free_port, NatsServer};
use super::{NatsAuth, NatsOptions, NatsStore};
use crate::{conformance, KvEvent, NewMessage, StoreError, Stores};

fn server() -> &'static NatsServer {
    static SERVER: OnceLock<NatsServer> = OnceLock::new();
    SERVER.get_or_init(NatsServer::start)
}

/// A namespace no other test uses.
fn namespace() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A node of a fresh platform on the shared server.
async fn open() -> (String, Stores) {
    let ns = namespace();
    let stores = node(&ns).await;
    (ns, stores)
}

/// Another node of the platform `ns` (its own connection).
async fn node(ns: &str) -> Stores {
    NatsStore::connect(
        server().url(),
        NatsOptions {
            namespace: ns.to_owned(),
            ..Default::default()
        },
    )
    .await
    .expect("connecting to the test nats-server")
}

#[tokio::test]
async fn kv_conformance() {
    let (_, stores) = open().await;
    assert_eq!(stores.backend, "nats");
    conformance::kv(stores.kv.as_ref()).await;
}

#[tokio::test]
async fn kv_watch_conformance() {
    let (_, stores) = open().await;
    conformance::kv_watch(stores.kv.as_ref()).await;
}

#[tokio::test]
async fn execution_conformance() {
    let (_, stores) = open().await;
    conformance::executions(stores.executions.as_ref()).await;
}

#[tokio::test]
async fn usage_conformance() {
    let (_, stores) = open().await;
    conformance::usage(stores.executions.as_ref()).await;
}

#[tokio::test]
async fn queue_conformance() {
    let (_, stores) = open().await;
    conformance::queues(stores.queues.as_ref()).await;
}

#[tokio::test]
async fn queue_lease_conformance() {
    let (_, stores) = open().await;
    conformance::queue_leases(stores.queues.as_ref()).await;
}

#[tokio::test]
async fn queue_dump_conformance() {
    let (_, from) = open().await;
    let (_, to) = open().await;
    conformance::queue_dump(from.queues.as_ref(), to.queues.as_ref()).await;
}

#[tokio::test]
async fn blob_conformance() {
    let (_, stores) = open().await;
    conformance::blobs(stores.blobs.as_ref()).await;
}

#[tokio::test]
async fn keys_of_any_shape_round_trip_and_audit_lists_with_the_rest() {
    let (_, stores) = open().await;
    let kv = stores.kv.as_ref();
    let keys = [
        "a//b",
        "audit/2025-01-01T00:00:00.000Z-1",
        "audit/2025-01-01T00:00:00.000Z-2",
        "aliases/f/prod",
        "versions/f/$LATEST",
        "x.y z/ü*>",
    ];
    for key in keys {
        kv.put(key, Bytes::from(key.to_owned())).await.unwrap();
    }
    let all: Vec<String> = kv
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut sorted = keys.map(str::to_owned).to_vec();
    sorted.sort();
    assert_eq!(all, sorted);
    let a: Vec<String> = kv
        .list("a")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(a, sorted[..4].to_vec());
    let audit = kv.list("audit/").await.unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(
        kv.get("x.y z/ü*>").await.unwrap().unwrap().value,
        Bytes::from_static("x.y z/ü*>".as_bytes())
    );
}

#[tokio::test]
async fn every_node_sees_the_same_store() {
    let (ns, a) = open().await;
    let b = node(&ns).await;
    let mut watch = b.kv.watch("functions/").await.unwrap();
    let rev =
        a.kv.put("functions/f", Bytes::from_static(b"1"))
            .await
            .unwrap();
    // A change on one node reaches another node's watch within a second.
    match conformance::next_event_within(&mut watch, Duration::from_secs(1)).await {
        KvEvent::Put { key, entry } => {
            assert_eq!((key.as_str(), entry.revision), ("functions/f", rev))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        b.kv.get("functions/f").await.unwrap().unwrap().revision,
        rev
    );
    let sha = a.blobs.put(Bytes::from_static(b"code")).await.unwrap();
    assert!(b.blobs.contains(&sha).await.unwrap());

    // Another platform on the same server sees none of it.
    let (_, other) = open().await;
    assert!(other.kv.get("functions/f").await.unwrap().is_none());
    assert!(!other.blobs.contains(&sha).await.unwrap());
}

#[tokio::test]
async fn compare_and_set_races_between_nodes_have_one_winner() {
    let (ns, a) = open().await;
    let b = node(&ns).await;
    let mut revision =
        a.kv.create("counter", Bytes::from_static(b"0"))
            .await
            .unwrap();
    for round in 0..20 {
        let value = Bytes::from(round.to_string());
        let (ra, rb) = tokio::join!(
            a.kv.update("counter", value.clone(), revision),
            b.kv.update("counter", value.clone(), revision)
        );
        let won: Vec<u64> = [&ra, &rb]
            .into_iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {ra:?} / {rb:?}");
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(matches!(e, StoreError::Conflict { .. }), "{e:?}");
            }
        }
        revision = won[0];
    }
    for round in 0..10 {
        let key = format!("claims/{round}");
        let (ra, rb) = tokio::join!(
            a.kv.create(&key, Bytes::from_static(b"a")),
            b.kv.create(&key, Bytes::from_static(b"b"))
        );
        assert!(ra.is_ok() != rb.is_ok(), "round {round}: {ra:?} / {rb:?}");
    }
}

#[tokio::test]
async fn consumers_on_two_nodes_never_hold_the_same_message() {
    let (ns, a) = open().await;
    let b = node(&ns).await;
    const N: usize = 60;
    for i in 0..N {
        a.queues
            .enqueue(
                "async/f",
                NewMessage {
                    id: format!("m{i:03}"),
                    payload: Bytes::from(format!("p{i}")),
                    not_before: 0,
                    enqueued_at: i as i64,
                },
            )
            .await
            .unwrap();
    }
    // Both nodes lease at the same instant with a lease that outlives the test: no message
    // may be handed to both.
    let drain = |stores: Stores| async move {
        let mut got = Vec::new();
        loop {
            let batch = stores
                .queues
                .lease("async/f", 4, 60_000, 1_000)
                .await
                .unwrap();
            if batch.is_empty() {
                return got;
            }
            got.extend(batch.into_iter().map(|m| (m.id, m.attempts)));
        }
    };
    let (from_a, from_b) = tokio::join!(drain(a.clone()), drain(b.clone()));
    let ids_a: BTreeSet<_> = from_a.iter().map(|(id, _)| id.clone()).collect();
    let ids_b: BTreeSet<_> = from_b.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids_a.len(), from_a.len(), "a leased a message twice");
    assert_eq!(ids_b.len(), from_b.len(), "b leased a message twice");
    assert!(
        ids_a.is_disjoint(&ids_b),
        "both held {:?}",
        ids_a.intersection(&ids_b).collect::<Vec<_>>()
    );
    assert_eq!(ids_a.len() + ids_b.len(), N);
    assert!(from_a
        .iter()
        .chain(&from_b)
        .all(|(_, attempts)| *attempts == 1));
    let depth = b.queues.depth("async/f", 1_000).await.unwrap();
    assert_eq!((depth.ready, depth.in_flight), (0, N as u64));
    // Once the leases run out, the messages are deliverable again, on any node.
    assert_eq!(
        a.queues
            .lease("async/f", 100, 1_000, 61_000)
            .await
            .unwrap()
            .len(),
        N
    );
}

#[tokio::test]
async fn big_blobs_and_logs_are_chunked() {
    let (_, stores) = open().await;
    // Above the server's 1 MB max payload.
    let blob: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let sha = stores.blobs.put(Bytes::from(blob.clone())).await.unwrap();
    assert_eq!(
        stores.blobs.get(&sha).await.unwrap().unwrap(),
        Bytes::from(blob)
    );

    let log: Vec<u8> = (0..(2 * 1024 * 1024 + 17) as u32)
        .map(|i| (i % 13) as u8 + b'a')
        .collect();
    let record: holactl_types::ExecutionRecord = serde_json::from_value(serde_json::json!({
        "id": "big", "function": "f", "version": "$LATEST", "status": "complete",
        "trigger": "invoke", "created_at": 1, "cold_start": false, "memory_mb": 128,
        "attempts": 1, "log_bytes": log.len()
    }))
    .unwrap();
    stores
        .executions
        .record(
            record,
            Some(crate::StoredLog {
                data: log.clone(),
                truncated: false,
            }),
        )
        .await
        .unwrap();
    let stored = stores.executions.log("big").await.unwrap().unwrap();
    assert_eq!(stored.data.len(), log.len());
    assert!(stored.data == log && !stored.truncated);
}

#[tokio::test]
async fn data_outlives_the_connection() {
    let (ns, a) = open().await;
    a.kv.put("k", Bytes::from_static(b"v")).await.unwrap();
    conformance::usage(a.executions.as_ref()).await;
    let usage = a.executions.usage(Default::default()).await.unwrap();
    drop(a);
    let b = node(&ns).await;
    assert_eq!(
        b.kv.get("k").await.unwrap().unwrap().value,
        Bytes::from_static(b"v")
    );
    assert_eq!(b.executions.usage(Default::default()).await.unwrap(), usage);
}

#[tokio::test]
async fn bad_options_are_refused() {
    for options in [
        NatsOptions {
            namespace: "has.dot".into(),
            ..Default::default()
        },
        NatsOptions {
            replicas: 0,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            NatsStore::connect(server().url(), options).await,
            Err(StoreError::Unavailable(_))
        ));
    }
    let err = NatsStore::connect(
        &format!("nats://127.0.0.1:{}", free_port()),
        NatsOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("connecting to NATS"), "{err}");
}

#[tokio::test]
async fn buckets_are_created_with_their_replicas_and_retention() {
    let ns = namespace();
    let options = NatsOptions {
        namespace: ns.clone(),
        execution_ttl: Duration::from_secs(3600),
        ..Default::default()
    };
    NatsStore::connect(server().url(), options.clone())
        .await
        .unwrap();
    // A second node finds them and uses them as they are.
    NatsStore::connect(server().url(), options).await.unwrap();
    let client = async_nats::connect(server().url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let day = 86_400;
    for (stream, max_age) in [
        (format!("KV_{ns}_kv"), 0),
        (format!("KV_{ns}_audit"), 0),
        (format!("KV_{ns}_queue"), 0),
        (format!("KV_{ns}_dead"), 14 * day),
        (format!("KV_{ns}_executions"), 3600),
        (format!("KV_{ns}_logs"), 3600),
        (format!("KV_{ns}_charges"), 400 * day),
        (format!("OBJ_{ns}_blobs"), 0),
    ] {
        let mut s = js.get_stream(&stream).await.unwrap();
        let info = s.info().await.unwrap();
        assert_eq!(
            info.config.num_replicas,
            super::DEFAULT_REPLICAS,
            "{stream}"
        );
        assert_eq!(
            info.config.max_age,
            Duration::from_secs(max_age),
            "{stream}"
        );
    }
}

#[tokio::test]
async fn export_embedded_import_nats() {
    let (src, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let from = crate::embedded::EmbeddedStore::open(src.path()).unwrap();
    let (_, to) = open().await;
    crate::transfer::tests::round_trip(&from, &to, dir.path()).await;
}

#[tokio::test]
async fn export_nats_import_embedded() {
    let (dst, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, from) = open().await;
    let to = crate::embedded::EmbeddedStore::open(dst.path()).unwrap();
    crate::transfer::tests::round_trip(&from, &to, dir.path()).await;
}

async fn connect_with(server: &NatsServer, auth: NatsAuth) -> Result<Stores, StoreError> {
    NatsStore::connect(
        server.url(),
        NatsOptions {
            namespace: namespace(),
            auth,
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn user_and_password() {
    let server = NatsServer::start_with(&["--user", "holactl", "--pass", "s3cret"]);
    let refused = connect_with(&server, NatsAuth::default())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().to_lowercase().contains("auth"),
        "{refused}"
    );
    let wrong = NatsAuth {
        user_password: Some(("holactl".into(), "nope".into())),
        ..Default::default()
    };
    assert!(connect_with(&server, wrong).await.is_err());
    let right = NatsAuth {
        user_password: Some(("holactl".into(), "s3cret".into())),
        ..Default::default()
    };
    let stores = connect_with(&server, right).await.unwrap();
    stores.kv.put("a", Bytes::from_static(b"1")).await.unwrap();
    // The password never shows in a debug print.
    let shown = format!(
        "{:?}",
        NatsAuth {
            user_password: Some(("holactl".into(), "s3cret".into())),
            token: Some("tok3n".into()),
            ..Default::default()
        }
    );
    assert!(
        !shown.contains("s3cret") && !shown.contains("tok3n"),
        "{shown}"
    );
}

#[tokio::test]
async fn token() {
    let server = NatsServer::start_with(&["--auth", "tok3n"]);
    assert!(connect_with(&server, NatsAuth::default()).await.is_err());
    let auth = NatsAuth {
        token: Some("tok3n".into()),
        ..Default::default()
    };
    connect_with(&server, auth).await.unwrap();
}

/// A CA and a server certificate for 127.0.0.1, made with the `openssl` command.
fn certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("running openssl (Debian: apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=holactl test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[tokio::test]
async fn tls_verified_against_a_ca_file() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let file = |name: &str| certs.path().join(name);
    let (cert, key) = (file("server.pem"), file("server.key"));
    let server = NatsServer::start_with(&[
        "--tls",
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
    ]);
    // Not trusted by the system's roots.
    let untrusted = NatsAuth {
        tls: true,
        ..Default::default()
    };
    assert!(connect_with(&server, untrusted).await.is_err());
    let trusted = NatsAuth {
        tls_ca: Some(file("ca.pem")),
        ..Default::default()
    };
    let stores = connect_with(&server, trusted).await.unwrap();
    stores.kv.put("a", Bytes::from_static(b"1")).await.unwrap();
    let missing = NatsAuth {
        tls_ca: Some(file("nope.pem")),
        ..Default::default()
    };
    let err = connect_with(&server, missing).await.unwrap_err();
    assert!(err.to_string().contains("nope.pem"), "{err}");
}

/// Settled messages leave nothing in the queue's stream (no deletion markers for scans to
/// walk): a queue that has seen many messages scans as fast as a new one.
#[tokio::test]
async fn settled_messages_leave_nothing_behind() {
    let (ns, stores) = open().await;
    let q = &stores.queues;
    for i in 0..6 {
        let id = format!("m{i}");
        q.enqueue(
            "async/f",
            NewMessage {
                id: id.clone(),
                payload: Bytes::from(id),
                not_before: 0,
                enqueued_at: 0,
            },
        )
        .await
        .unwrap();
    }
    let leased = q.lease("async/f", 6, 1_000, 1).await.unwrap();
    assert_eq!(leased.len(), 6);
    q.ack("async/f", &leased[0].id, &leased[0].token)
        .await
        .unwrap();
    q.ack("async/f", &leased[1].id, &leased[1].token)
        .await
        .unwrap();
    assert!(q.remove("async/f", &leased[2].id).await.unwrap());
    for l in &leased[3..] {
        q.dead_letter("async/f", &l.id, &l.token, "boom", 2)
            .await
            .unwrap();
    }
    assert_eq!(
        q.replay_dead("async/f", Some(vec![leased[3].id.clone()]), 3)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        q.purge_dead("async/f", Some(vec![leased[4].id.clone()]), None)
            .await
            .unwrap(),
        1
    );

    let client = async_nats::connect(server().url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let count = |what: &'static str| {
        let js = js.clone();
        let name = format!("KV_{ns}_{what}");
        async move {
            js.get_stream(&name)
                .await
                .unwrap()
                .info()
                .await
                .unwrap()
                .state
                .messages
        }
    };
    // Live: the replayed one; dead: the one neither replayed nor purged.
    assert_eq!(count("queue").await, 1);
    assert_eq!(count("dead").await, 1);
}
