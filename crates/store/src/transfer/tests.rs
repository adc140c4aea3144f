use std::path::{Path, PathBuf};

use bytes::Bytes;
use holactl_types::ExecutionStatus;

use super::*;
use crate::embedded::EmbeddedStore;
use crate::{ExecutionQuery, NewMessage, UsageQuery};

/// What these tests treat as node state (as the engine names its own).
fn transient() -> Vec<String> {
    vec!["nodes/".to_owned()]
}

fn export_options() -> ExportOptions {
    ExportOptions {
        transient: transient(),
        ..Default::default()
    }
}

fn import_options(force: bool) -> ImportOptions {
    ImportOptions {
        force,
        transient: transient(),
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Fills `stores` with one of everything an archive carries, and a node heartbeat.
pub(crate) async fn populate(stores: &Stores) {
    stores
        .kv
        .put("functions/f", b("{\"name\":\"f\"}"))
        .await
        .unwrap();
    stores.kv.put("secrets/s", b("sealed")).await.unwrap();
    stores.kv.put("nodes/n1", b("heartbeat")).await.unwrap();
    stores.blobs.put(b("package one")).await.unwrap();
    stores
        .blobs
        .put(Bytes::from(vec![7u8; 300_000]))
        .await
        .unwrap();
    for i in 0..5 {
        let mut r = crate::conformance::record(&format!("e{i}"), "f", 1_000 + i);
        r.status = ExecutionStatus::Complete;
        r.ended_at = Some(1_010 + i);
        r.billed_duration_ms = Some(10);
        let log = (i % 2 == 0).then(|| StoredLog {
            data: format!("log {i}\n").into_bytes(),
            truncated: i == 4,
        });
        stores.executions.record(r, log).await.unwrap();
    }
    let q = &stores.queues;
    for (id, at) in [("m1", 10), ("m2", 20), ("m3", 5_000_000_000_000)] {
        q.enqueue(
            "async/f",
            NewMessage {
                id: id.into(),
                payload: b(id),
                not_before: at,
                enqueued_at: at,
            },
        )
        .await
        .unwrap();
    }
    let leased = q.lease("async/f", 1, 100, 30).await.unwrap();
    q.dead_letter("async/f", &leased[0].id, &leased[0].token, "boom", 40)
        .await
        .unwrap();
}

/// What a store holds, as an archive sees it.
async fn contents(
    stores: &Stores,
) -> (
    Vec<(String, Bytes)>,
    Vec<String>,
    Vec<(String, Option<StoredLog>)>,
    Vec<StoredMessage>,
    Vec<holactl_types::usage::DayUsage>,
) {
    let kv = stores
        .kv
        .list("")
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !super::transient(&transient(), k))
        .map(|(k, e)| (k, e.value))
        .collect();
    let mut executions = Vec::new();
    for r in stores
        .executions
        .list(ExecutionQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
    {
        let log = stores.executions.log(&r.id).await.unwrap();
        executions.push((r.id, log));
    }
    let usage = stores
        .executions
        .usage(UsageQuery::default())
        .await
        .unwrap();
    (
        kv,
        stores.blobs.list().await.unwrap(),
        executions,
        stores.queues.dump("").await.unwrap(),
        usage,
    )
}

async fn export_to(stores: &Stores, path: &Path) -> Counts {
    let file = std::fs::File::create(path).unwrap();
    let (_, counts) = export(stores, file, export_options(), &mut |_| {})
        .await
        .unwrap();
    counts
}

/// Exports `from` (populated), imports into `to` (empty) and compares what both hold.
pub(crate) async fn round_trip(from: &Stores, to: &Stores, dir: &Path) {
    populate(from).await;
    let path = dir.join("export.tar.gz");
    let counts = export_to(from, &path).await;
    assert_eq!(
        counts,
        Counts {
            keys: 2,
            blobs: 2,
            blob_bytes: 300_011,
            messages: 2,
            dead_messages: 1,
            executions: 5,
            logs: 3,
        }
    );
    let mut sections = Vec::new();
    let (manifest, written) = import(to, &path, import_options(false), &mut |s| {
        if sections.last() != Some(&s.section) {
            sections.push(s.section);
        }
    })
    .await
    .unwrap();
    assert_eq!(manifest.source, from.backend);
    assert_eq!(written, counts);
    assert_eq!(
        sections,
        ["checking", "blobs", "executions", "messages", "keys"]
    );
    assert_eq!(contents(to).await, contents(from).await);
    assert!(to.kv.get("nodes/n1").await.unwrap().is_none());

    // A second import is refused without --force and changes nothing with it.
    let again = import(to, &path, import_options(false), &mut |_| {}).await;
    assert!(
        matches!(again, Err(TransferError::TargetNotEmpty { keys: 2, .. })),
        "{again:?}"
    );
    import(to, &path, import_options(true), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(contents(to).await, contents(from).await);
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn embedded_round_trip() {
    let (a, b_, dir) = (temp(), temp(), temp());
    let from = EmbeddedStore::open(a.path()).unwrap();
    let to = EmbeddedStore::open(b_.path()).unwrap();
    round_trip(&from, &to, dir.path()).await;
}

#[tokio::test]
async fn without_executions() {
    let (a, b_, dir) = (temp(), temp(), temp());
    let from = EmbeddedStore::open(a.path()).unwrap();
    populate(&from).await;
    let path = dir.path().join("x.tar.gz");
    let file = std::fs::File::create(&path).unwrap();
    let (_, counts) = export(
        &from,
        file,
        ExportOptions {
            executions: false,
            ..export_options()
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!((counts.executions, counts.keys), (0, 2));
    let to = EmbeddedStore::open(b_.path()).unwrap();
    import(&to, &path, import_options(false), &mut |_| {})
        .await
        .unwrap();
    assert!(to
        .executions
        .list(ExecutionQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
    assert_eq!(to.queues.dump("").await.unwrap().len(), 3);
}

/// Rewrites the archive at `path` into `out`, passing each entry through `edit` (`None`
/// drops it).
fn rewrite(path: &Path, out: &Path, mut edit: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) {
    let mut archive = tar::Archive::new(GzDecoder::new(std::fs::File::open(path).unwrap()));
    let mut w = Writer {
        tar: tar::Builder::new(GzEncoder::new(
            std::fs::File::create(out).unwrap(),
            flate2::Compression::fast(),
        )),
        mtime: 0,
    };
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if let Some(data) = edit(&name, data) {
            w.append(&name, &data).unwrap();
        }
    }
    w.tar.into_inner().unwrap().finish().unwrap();
}

/// Bad archives are refused with their code, and nothing reaches the target.
#[tokio::test]
async fn bad_archives_write_nothing() {
    let (a, b_, dir) = (temp(), temp(), temp());
    let from = EmbeddedStore::open(a.path()).unwrap();
    populate(&from).await;
    let good = dir.path().join("good.tar.gz");
    export_to(&from, &good).await;
    let to = EmbeddedStore::open(b_.path()).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let mut cases: Vec<(&str, PathBuf, &str)> = Vec::new();
    let at = |name: &str| dir.path().join(name);
    std::fs::write(at("cut"), &bytes[..bytes.len() * 2 / 3]).unwrap();
    cases.push(("cut", at("cut"), "archive_invalid"));
    std::fs::write(at("noise"), b"not an archive at all").unwrap();
    cases.push(("noise", at("noise"), "archive_invalid"));
    rewrite(&good, &at("no-end"), |name, d| (name != END).then_some(d));
    cases.push(("no end", at("no-end"), "archive_invalid"));
    rewrite(&good, &at("blob"), |name, mut d| {
        if name.starts_with(BLOBS_DIR) {
            d[0] ^= 1;
        }
        Some(d)
    });
    cases.push(("blob content", at("blob"), "archive_invalid"));
    rewrite(&good, &at("json"), |name, mut d| {
        if name == KV {
            d.extend_from_slice(b"{\"key\": 1}\n");
        }
        Some(d)
    });
    cases.push(("bad line", at("json"), "archive_invalid"));
    rewrite(&good, &at("count"), |name, d| {
        (name != MESSAGES).then_some(d).or(Some(Vec::new()))
    });
    cases.push(("counts", at("count"), "archive_invalid"));
    rewrite(&good, &at("newer"), |name, d| {
        if name != MANIFEST {
            return Some(d);
        }
        let mut m: Manifest = serde_json::from_slice(&d).unwrap();
        m.version = VERSION + 1;
        Some(serde_json::to_vec(&m).unwrap())
    });
    cases.push(("newer", at("newer"), "archive_unsupported"));
    std::fs::write(at("missing"), b"").unwrap();
    cases.push(("empty file", at("missing"), "archive_invalid"));

    for (what, path, code) in cases {
        let err = import(&to, &path, import_options(false), &mut |_| {})
            .await
            .expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err}");
        assert!(err.to_string().starts_with(code), "{what}: {err}");
        let (kv, blobs, executions, messages, _) = contents(&to).await;
        assert!(
            kv.is_empty() && blobs.is_empty() && executions.is_empty() && messages.is_empty(),
            "{what}: something was written"
        );
    }
    let missing = import(
        &to,
        &dir.path().join("nope"),
        import_options(false),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), "io_error");
}
