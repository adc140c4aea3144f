//! Export and import of a whole store (`holactl lambda export|import`): moving a platform from
//! one backend to another (an embedded data dir into a NATS cluster, a cluster back into a
//! data dir), or keeping a copy.
//!
//! # Archive
//! A gzip-compressed tar whose entries come in the order an import writes them:
//! - `manifest.json`: format name and version, when and from which backend it was made.
//! - `blobs/<sha256>`: each code package, as stored.
//! - `executions/<n>.jsonl`: execution records with their logs, oldest first, up to
//!   [`EXECUTIONS_PER_FILE`] per file.
//! - `messages.jsonl`: every queued message (async invocations, queue messages, webhook
//!   deliveries), live and dead, with its attempts and times. Leases are not carried.
//! - `kv.jsonl`: every metadata key (functions, versions, aliases, triggers, schedules, users,
//!   tokens, secrets still encrypted under the master key, settings) but the prefixes the
//!   caller names as describing the nodes running now ([`ExportOptions::transient`]).
//! - `end.json`: how many of each there are, so a cut archive is told from a whole one.
//!
//! An import reads the archive twice: first to check all of it (format, every JSON line,
//! every blob's content against its name, the counts) and writes nothing if anything is
//! wrong; then to write, metadata last, so a function appears only once its code, history and
//! queued events are there. Every write is idempotent (blobs are content-addressed, records
//! upserted, messages restored by id, keys put), so an import stopped halfway is finished by
//! running it again.

use std::io::{Read, Write};
use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures_util::StreamExt;
use holactl_types::ExecutionRecord;
use serde::{Deserialize, Serialize};

use crate::{is_sha256_hex, sha256_hex, Death, StoreError, StoredLog, StoredMessage, Stores};

/// The `format` of an archive's manifest.
pub const FORMAT: &str = "holactl-export";
/// The newest archive version this build writes and reads.
pub const VERSION: u32 = 1;
/// Execution records per `executions/<n>.jsonl` entry.
pub const EXECUTIONS_PER_FILE: usize = 1000;

const MANIFEST: &str = "manifest.json";
const END: &str = "end.json";
const KV: &str = "kv.jsonl";
const MESSAGES: &str = "messages.jsonl";
const BLOBS_DIR: &str = "blobs/";
const EXECUTIONS_DIR: &str = "executions/";

/// Why an export or import failed; [`TransferError::code`] is stable.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The file is not a whole, well-formed archive.
    #[error("archive_invalid: {0}")]
    Invalid(String),
    /// The archive was written by a newer holactl, or is another format.
    #[error("archive_unsupported: {0}")]
    Unsupported(String),
    /// The target store already holds a platform.
    #[error(
        "target_not_empty: the target store already holds {keys} keys (e.g. {example:?}); \
         import into an empty store (before starting its nodes), or pass --force to write \
         the archive over what is there"
    )]
    TargetNotEmpty {
        /// How many keys it holds.
        keys: usize,
        /// One of them.
        example: String,
    },
    /// Reading or writing the archive file failed.
    #[error("io_error: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The store failed before anything was written to the target.
    #[error("store_unavailable: {0}")]
    Store(#[from] StoreError),
    /// The store failed while the import was writing.
    #[error(
        "import_incomplete: {source}; written so far: {written}. Imports are idempotent: run \
         the same import again with --force to finish it"
    )]
    Incomplete {
        /// What reached the target.
        written: Counts,
        /// The failure.
        source: StoreError,
    },
}

impl TransferError {
    /// The stable code (the text before the first colon of the message).
    pub fn code(&self) -> &'static str {
        match self {
            TransferError::Invalid(_) => "archive_invalid",
            TransferError::Unsupported(_) => "archive_unsupported",
            TransferError::TargetNotEmpty { .. } => "target_not_empty",
            TransferError::Io { .. } => "io_error",
            TransferError::Store(_) => "store_unavailable",
            TransferError::Incomplete { .. } => "import_incomplete",
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TransferError {
    let context = context.into();
    move |source| TransferError::Io { context, source }
}

/// What an archive holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Metadata keys.
    pub keys: u64,
    /// Code packages.
    pub blobs: u64,
    /// Their total size.
    pub blob_bytes: u64,
    /// Queued messages, live.
    pub messages: u64,
    /// Dead-lettered messages.
    pub dead_messages: u64,
    /// Execution records.
    pub executions: u64,
    /// Captured logs among them.
    pub logs: u64,
}

impl Counts {
    /// Counts a code package of `len` bytes.
    fn add_blob(&mut self, len: usize) {
        self.blobs += 1;
        self.blob_bytes += len as u64;
    }

    /// Counts a queued message, live or dead-lettered.
    fn add_message(&mut self, dead: bool) {
        if dead {
            self.dead_messages += 1;
        } else {
            self.messages += 1;
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} keys, {} code packages ({}), {} queued messages, {} dead letters, {} \
             executions ({} logs)",
            self.keys,
            self.blobs,
            holactl_types::units::bytes(self.blob_bytes),
            self.messages,
            self.dead_messages,
            self.executions,
            self.logs
        )
    }
}

/// The first entry of an archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The archive version ([`VERSION`] when written by this build).
    pub version: u32,
    /// When it was made (epoch ms).
    pub created_at: i64,
    /// The backend it was exported from (`embedded`, `nats`).
    pub source: String,
    /// The holactl version that made it.
    pub holactl_version: String,
}

/// Where an export or import is, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// `checking`, `blobs`, `executions`, `messages`, `keys`.
    pub section: &'static str,
    /// Items of the section done.
    pub done: u64,
    /// Items in the section, when known.
    pub total: Option<u64>,
}

/// What an export includes.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Execution records and logs (history); off makes a smaller archive of the platform's
    /// definition, code and queued work.
    pub executions: bool,
    /// Key prefixes left out: state of the nodes running now rather than of the platform
    /// (the engine names them: heartbeats, concurrency slots, cancel requests).
    pub transient: Vec<String>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            executions: true,
            transient: Vec::new(),
        }
    }
}

/// How an import treats its target.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Write into a store that already holds keys (the archive's keys replace theirs).
    pub force: bool,
    /// Key prefixes not counted when deciding whether the target is empty (as
    /// [`ExportOptions::transient`]).
    pub transient: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct KvLine {
    key: String,
    /// Base64.
    value: String,
}

#[derive(Serialize, Deserialize)]
struct MessageLine {
    queue: String,
    id: String,
    /// Base64.
    payload: String,
    enqueued_at: i64,
    visible_at: i64,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dead: Option<DeathLine>,
}

#[derive(Serialize, Deserialize)]
struct DeathLine {
    died_at: i64,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct ExecutionLine {
    record: ExecutionRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log: Option<LogLine>,
}

#[derive(Serialize, Deserialize)]
struct LogLine {
    /// Base64.
    data: String,
    truncated: bool,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn transient(prefixes: &[String], key: &str) -> bool {
    prefixes.iter().any(|p| key.starts_with(p.as_str()))
}

struct Writer<W: Write> {
    tar: tar::Builder<GzEncoder<W>>,
    mtime: u64,
}

impl<W: Write> Writer<W> {
    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), TransferError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar
            .append_data(&mut header, path, data)
            .map_err(io(format!("writing {path}")))
    }

    fn append_json(&mut self, path: &str, value: &impl Serialize) -> Result<(), TransferError> {
        let mut data = serde_json::to_vec_pretty(value)
            .map_err(|e| TransferError::Invalid(format!("encoding {path}: {e}")))?;
        data.push(b'\n');
        self.append(path, &data)
    }

    fn append_lines<T: Serialize>(&mut self, path: &str, lines: &[T]) -> Result<(), TransferError> {
        let mut data = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut data, line)
                .map_err(|e| TransferError::Invalid(format!("encoding {path}: {e}")))?;
            data.push(b'\n');
        }
        self.append(path, &data)
    }
}

/// Writes everything `stores` holds to `out` as an archive; returns `out` (the whole gzip
/// stream written, not yet synced) and what the archive holds. Reads go through the store's
/// ordinary calls: for a point-in-time copy nothing may write meanwhile.
pub async fn export<W: Write>(
    stores: &Stores,
    out: W,
    options: ExportOptions,
    progress: &mut dyn FnMut(Step),
) -> Result<(W, Counts), TransferError> {
    let mut w = Writer {
        tar: tar::Builder::new(GzEncoder::new(out, flate2::Compression::default())),
        mtime: (now_ms() / 1000).max(0) as u64,
    };
    let mut counts = Counts::default();
    w.append_json(
        MANIFEST,
        &Manifest {
            format: FORMAT.to_owned(),
            version: VERSION,
            created_at: now_ms(),
            source: stores.backend.to_owned(),
            holactl_version: env!("CARGO_PKG_VERSION").to_owned(),
        },
    )?;

    let shas = stores.blobs.list().await?;
    let total = Some(shas.len() as u64);
    progress(Step {
        section: "blobs",
        done: 0,
        total,
    });
    for sha in &shas {
        // Listed but gone meanwhile: nothing refers to it any more.
        let Some(bytes) = stores.blobs.get(sha).await? else {
            continue;
        };
        w.append(&format!("{BLOBS_DIR}{sha}"), &bytes)?;
        counts.add_blob(bytes.len());
        progress(Step {
            section: "blobs",
            done: counts.blobs,
            total,
        });
    }

    if options.executions {
        // Oldest first, so an import inserts them in their order; records read a chunk at a
        // time (one that expired meanwhile is skipped).
        let ids = stores.executions.ids().await?;
        let total = Some(ids.len() as u64);
        progress(Step {
            section: "executions",
            done: 0,
            total,
        });
        for (n, chunk) in ids.chunks(EXECUTIONS_PER_FILE).enumerate() {
            let mut lines = Vec::with_capacity(chunk.len());
            for id in chunk {
                let Some(record) = stores.executions.get(id).await? else {
                    continue;
                };
                let log = stores.executions.log(id).await?.map(|l| {
                    counts.logs += 1;
                    LogLine {
                        data: b64().encode(&l.data),
                        truncated: l.truncated,
                    }
                });
                lines.push(ExecutionLine { record, log });
            }
            w.append_lines(&format!("{EXECUTIONS_DIR}{:06}.jsonl", n + 1), &lines)?;
            counts.executions += lines.len() as u64;
            progress(Step {
                section: "executions",
                done: (n * EXECUTIONS_PER_FILE + chunk.len()) as u64,
                total,
            });
        }
    }

    let messages = stores.queues.dump("").await?;
    let lines: Vec<MessageLine> = messages
        .into_iter()
        .map(|m| {
            counts.add_message(m.dead.is_some());
            MessageLine {
                queue: m.queue,
                id: m.id,
                payload: b64().encode(&m.payload),
                enqueued_at: m.enqueued_at,
                visible_at: m.visible_at,
                attempts: m.attempts,
                dead: m.dead.map(|d| DeathLine {
                    died_at: d.died_at,
                    reason: d.reason,
                }),
            }
        })
        .collect();
    w.append_lines(MESSAGES, &lines)?;
    progress(Step {
        section: "messages",
        done: lines.len() as u64,
        total: Some(lines.len() as u64),
    });

    let lines: Vec<KvLine> = stores
        .kv
        .list("")
        .await?
        .into_iter()
        .filter(|(key, _)| !transient(&options.transient, key))
        .map(|(key, entry)| KvLine {
            key,
            value: b64().encode(&entry.value),
        })
        .collect();
    counts.keys = lines.len() as u64;
    w.append_lines(KV, &lines)?;
    progress(Step {
        section: "keys",
        done: counts.keys,
        total: Some(counts.keys),
    });

    w.append_json(END, &counts)?;
    let out = w
        .tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(io("finishing the archive"))?;
    Ok((out, counts))
}

/// One entry of an archive, decoded.
enum Item {
    Manifest(Manifest),
    Blob(Bytes),
    Executions(Vec<(ExecutionRecord, Option<StoredLog>)>),
    Messages(Vec<StoredMessage>),
    Keys(Vec<(String, Bytes)>),
    End(Counts),
}

fn invalid(entry: &str, what: impl std::fmt::Display) -> TransferError {
    TransferError::Invalid(format!("{entry}: {what}"))
}

fn decode_b64(entry: &str, line: usize, text: &str) -> Result<Bytes, TransferError> {
    b64()
        .decode(text)
        .map(Bytes::from)
        .map_err(|e| invalid(entry, format!("line {line}: bad base64: {e}")))
}

fn parse_lines<T: serde::de::DeserializeOwned>(
    entry: &str,
    data: &[u8],
) -> Result<Vec<T>, TransferError> {
    data.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| {
            serde_json::from_slice(line).map_err(|e| invalid(entry, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

fn decode_entry(path: &str, data: Vec<u8>) -> Result<Item, TransferError> {
    if path == MANIFEST {
        return serde_json::from_slice(&data)
            .map(Item::Manifest)
            .map_err(|e| invalid(path, e));
    }
    if path == END {
        return serde_json::from_slice(&data)
            .map(Item::End)
            .map_err(|e| invalid(path, e));
    }
    if let Some(sha) = path.strip_prefix(BLOBS_DIR) {
        if !is_sha256_hex(sha) {
            return Err(invalid(path, "a blob's name must be its sha256 (hex)"));
        }
        if sha256_hex(&data) != sha {
            return Err(invalid(path, "content does not match its sha256"));
        }
        return Ok(Item::Blob(Bytes::from(data)));
    }
    if path.starts_with(EXECUTIONS_DIR) && path.ends_with(".jsonl") {
        let mut out = Vec::new();
        for (i, line) in parse_lines::<ExecutionLine>(path, &data)?
            .into_iter()
            .enumerate()
        {
            let log = match line.log {
                Some(l) => Some(StoredLog {
                    data: decode_b64(path, i + 1, &l.data)?.to_vec(),
                    truncated: l.truncated,
                }),
                None => None,
            };
            out.push((line.record, log));
        }
        return Ok(Item::Executions(out));
    }
    if path == MESSAGES {
        let mut out = Vec::new();
        for (i, m) in parse_lines::<MessageLine>(path, &data)?
            .into_iter()
            .enumerate()
        {
            out.push(StoredMessage {
                payload: decode_b64(path, i + 1, &m.payload)?,
                queue: m.queue,
                id: m.id,
                enqueued_at: m.enqueued_at,
                visible_at: m.visible_at,
                attempts: m.attempts,
                dead: m.dead.map(|d| Death {
                    died_at: d.died_at,
                    reason: d.reason,
                }),
            });
        }
        return Ok(Item::Messages(out));
    }
    if path == KV {
        let mut out = Vec::new();
        for (i, line) in parse_lines::<KvLine>(path, &data)?.into_iter().enumerate() {
            out.push((line.key, decode_b64(path, i + 1, &line.value)?));
        }
        return Ok(Item::Keys(out));
    }
    Err(invalid(path, "not an entry of a holactl export"))
}

/// Reads the archive at `path` entry by entry, decoded, handing each to `each`; checks the
/// manifest comes first and `end.json` last.
fn read_archive(
    path: &Path,
    mut each: impl FnMut(&str, Item) -> Result<(), TransferError>,
) -> Result<(), TransferError> {
    let file = std::fs::File::open(path).map_err(io(format!("opening {}", path.display())))?;
    let mut archive = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(file)));
    let not_archive = |e: std::io::Error| {
        TransferError::Invalid(format!(
            "{} is not a whole holactl export (gzip-compressed tar): {e}",
            path.display()
        ))
    };
    let mut first = true;
    let mut ended = false;
    for entry in archive.entries().map_err(not_archive)? {
        let mut entry = entry.map_err(not_archive)?;
        let name = entry
            .path()
            .map_err(not_archive)?
            .to_string_lossy()
            .into_owned();
        // The header's size is the archive's word: reserve no more than a chunk up front.
        let mut data = Vec::with_capacity(entry.size().min(1 << 20) as usize);
        entry.read_to_end(&mut data).map_err(not_archive)?;
        if ended {
            return Err(invalid(&name, "an entry after end.json"));
        }
        let item = decode_entry(&name, data)?;
        match (&item, first) {
            (Item::Manifest(m), true) => {
                if m.format != FORMAT {
                    return Err(TransferError::Unsupported(format!(
                        "the archive's format is {:?}, not {FORMAT:?}",
                        m.format
                    )));
                }
                if m.version > VERSION {
                    return Err(TransferError::Unsupported(format!(
                        "the archive is version {} (this holactl reads up to {VERSION}): \
                         import it with holactl {} or later",
                        m.version, m.holactl_version
                    )));
                }
            }
            (Item::Manifest(_), false) => return Err(invalid(&name, "a second manifest")),
            (_, true) => {
                return Err(TransferError::Invalid(format!(
                    "{} does not start with {MANIFEST}: not a holactl export",
                    path.display()
                )))
            }
            (Item::End(_), false) => ended = true,
            _ => {}
        }
        first = false;
        each(&name, item)?;
    }
    if first {
        return Err(TransferError::Invalid(format!(
            "{} is empty: not a holactl export",
            path.display()
        )));
    }
    if !ended {
        return Err(TransferError::Invalid(format!(
            "{} ends early (no {END}): it was cut short",
            path.display()
        )));
    }
    Ok(())
}

/// Reads the whole archive at `path` and checks it (format, every entry, the counts against
/// `end.json`) without writing anything; returns its manifest and counts.
pub fn check(
    path: &Path,
    progress: &mut dyn FnMut(Step),
) -> Result<(Manifest, Counts), TransferError> {
    let mut manifest = None;
    let mut seen = Counts::default();
    let mut declared = None;
    let mut done = 0;
    read_archive(path, |_, item| {
        match item {
            Item::Manifest(m) => manifest = Some(m),
            Item::Blob(bytes) => {
                seen.add_blob(bytes.len());
            }
            Item::Executions(records) => {
                seen.executions += records.len() as u64;
                seen.logs += records.iter().filter(|(_, log)| log.is_some()).count() as u64;
            }
            Item::Messages(messages) => {
                for m in &messages {
                    seen.add_message(m.dead.is_some());
                }
            }
            Item::Keys(keys) => seen.keys += keys.len() as u64,
            Item::End(counts) => declared = Some(counts),
        }
        done += 1;
        progress(Step {
            section: "checking",
            done,
            total: None,
        });
        Ok(())
    })?;
    let (Some(manifest), Some(declared)) = (manifest, declared) else {
        return Err(TransferError::Invalid(format!(
            "{} lacks its manifest or end",
            path.display()
        )));
    };
    if declared != seen {
        return Err(TransferError::Invalid(format!(
            "{} holds {seen}, but its end.json says {declared}",
            path.display()
        )));
    }
    Ok((manifest, seen))
}

/// Checks the archive at `path` ([`check`]), then writes it into `stores`: code, executions,
/// queued messages, then metadata. Refuses a target that already holds keys unless
/// `options.force`.
pub async fn import(
    stores: &Stores,
    path: &Path,
    options: ImportOptions,
    progress: &mut dyn FnMut(Step),
) -> Result<(Manifest, Counts), TransferError> {
    // Reading and hashing the whole archive is blocking work: off the async workers, its
    // progress passed back as it goes.
    let (steps_tx, mut steps) = tokio::sync::mpsc::unbounded_channel();
    let checked = {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            check(&path, &mut |step| {
                let _ = steps_tx.send(step);
            })
        })
    };
    while let Some(step) = steps.recv().await {
        progress(step);
    }
    let (manifest, total) = checked
        .await
        .map_err(|e| TransferError::Invalid(format!("checking the archive stopped: {e}")))??;
    if !options.force {
        let held: Vec<String> = stores
            .kv
            .list("")
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| !transient(&options.transient, key))
            .collect();
        if let Some(example) = held.first() {
            return Err(TransferError::TargetNotEmpty {
                keys: held.len(),
                example: example.clone(),
            });
        }
    }
    // The archive is read synchronously; its decoded entries are written one at a time.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Item, TransferError>>(2);
    let path = path.to_owned();
    let reader = tokio::task::spawn_blocking(move || {
        let result = read_archive(&path, |_, item| {
            tx.blocking_send(Ok(item))
                .map_err(|_| TransferError::Invalid("import stopped".into()))
        });
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let mut written = Counts::default();
    while let Some(item) = rx.recv().await {
        let result = write_item(stores, item?, &total, &mut written, progress).await;
        if let Err(source) = result {
            drop(rx);
            let _ = reader.await;
            return Err(TransferError::Incomplete { written, source });
        }
    }
    let _ = reader.await;
    Ok((manifest, written))
}

async fn write_item(
    stores: &Stores,
    item: Item,
    total: &Counts,
    written: &mut Counts,
    progress: &mut dyn FnMut(Step),
) -> Result<(), StoreError> {
    match item {
        Item::Manifest(_) | Item::End(_) => {}
        Item::Blob(bytes) => {
            let len = bytes.len();
            stores.blobs.put(bytes).await?;
            written.add_blob(len);
            progress(Step {
                section: "blobs",
                done: written.blobs,
                total: Some(total.blobs),
            });
        }
        Item::Executions(records) => {
            // In order, in the background (one group commit on the embedded store, parallel
            // lanes on NATS), then read back: a background write that failed is only logged.
            let n = records.len();
            let ids: Vec<String> = records.iter().map(|(r, _)| r.id.clone()).collect();
            for (i, (record, log)) in records.into_iter().enumerate() {
                written.logs += u64::from(log.is_some());
                if i + 1 == n {
                    stores.executions.record(record, log).await?;
                } else {
                    stores.executions.record_later(record, log);
                }
            }
            let found: Vec<Result<Option<ExecutionRecord>, StoreError>> =
                futures_util::stream::iter(&ids)
                    .map(|id| stores.executions.get(id))
                    .buffered(16)
                    .collect()
                    .await;
            for (id, record) in ids.iter().zip(found) {
                if record?.is_none() {
                    return Err(StoreError::Unavailable(format!(
                        "execution {id} was not stored"
                    )));
                }
            }
            written.executions += n as u64;
            progress(Step {
                section: "executions",
                done: written.executions,
                total: Some(total.executions),
            });
        }
        Item::Messages(messages) => {
            for m in messages {
                let dead = m.dead.is_some();
                stores.queues.restore(m).await?;
                written.add_message(dead);
            }
            progress(Step {
                section: "messages",
                done: written.messages + written.dead_messages,
                total: Some(total.messages + total.dead_messages),
            });
        }
        Item::Keys(keys) => {
            for (key, value) in keys {
                stores.kv.put(&key, value).await?;
                written.keys += 1;
            }
            progress(Step {
                section: "keys",
                done: written.keys,
                total: Some(total.keys),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
