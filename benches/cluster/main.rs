//! Cluster benchmark: `cargo bench --bench cluster`.
//!
//! Measures sync and async invocation throughput and latency of a no-op Python 3.11 function
//! (`def handler(e, c): return {}`) on three setups, in the same run:
//!
//! 1. one node with the embedded store (the baseline);
//! 2. one node on NATS (`serve --nats nats://127.0.0.1:PORT`, a fresh `--nats-namespace`);
//! 3. three nodes on NATS sharing one namespace, each with its own data dir and port, all with
//!    the same `HOLACTL_MASTER_KEY`; the admin token is the one the first node created.
//!
//! The bench starts one `nats-server -js` on a free port with its storage in a temp dir; without
//! `nats-server` (in `/usr/sbin`, `/usr/bin`, `/usr/local/bin` or on `PATH`) it says so and measures the baseline
//! only. Per setup, through the HTTP API with the typed client ([`holactl::client::Client`]):
//!
//! - sync latency at concurrency 1: `HOLA_BENCH_SYNC` (500) invokes after `HOLA_BENCH_WARMUP`
//!   (100) warm-up invokes per node, one keep-alive connection per node, requests going round
//!   robin over the nodes;
//! - sync throughput: `HOLA_BENCH_CONCURRENCY` (16) callers, caller `i` on node `i % nodes`,
//!   each on its own keep-alive connection, back to back for `HOLA_BENCH_THROUGHPUT_SECS` (5)
//!   seconds after one untimed second at the same concurrency (which starts the instances);
//! - async: `HOLA_BENCH_ASYNC` (1000) `X-Invocation-Type: Event` invokes from the same number of
//!   concurrent senders, round robin over the nodes; accepted per second (until the last 202),
//!   completed per second (from the first send until the nodes' `holactl_invocations_total`
//!   have grown by the number of events, polled every 50 ms) and the end-to-end latency of an
//!   event from its execution record (`ended_at − created_at`), each record read through the
//!   node that accepted it. Records still `pending` 5 s after every event ran are counted as
//!   stale (on a cluster, the accepting node's `pending` write can land after the final record
//!   another node wrote).
//!
//! The async phase fails after `HOLA_BENCH_ASYNC_TIMEOUT_SECS` (180) without every event run.
//! Isolation: `HOLA_BENCH_ISOLATION` (default `process`; `default` leaves it to the server).
//! `HOLA_BENCH_NATS=0` skips the NATS setups. Progress lines go to stderr, the tables to stdout.
//! Every node and the nats-server are stopped at the end, also on error.

#[path = "../common/entry.rs"]
mod entry;
mod procs;
#[path = "../common/stats.rs"]
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bytes::Bytes;
use futures_util::StreamExt;
use holactl::client::Client;
use holactl_types::api::CreateFunctionRequest;
use holactl_types::ExecutionStatus;

use holactl_store::nats::testing::{find_nats_server, NatsServer};
use procs::{descendants_cpu, machine_cpu, process_cpu, Node, Store};
use stats::{fmt_ms, ms, pct, sorted};

/// The function every setup runs.
const FUNCTION: &str = "bench-noop";
const HANDLER: &[u8] = b"def handler(e, c):\n    return {}\n";
/// How long an execution record may lag behind its event having run.
const RECORD_GRACE: Duration = Duration::from_secs(5);

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Whether an optional section is on: everything but `0`, `false`, `no` or `off`.
fn env_enabled(name: &str) -> bool {
    std::env::var(name).map_or(true, |v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "no" | "off"
        )
    })
}

/// A progress line on stderr (the tables go to stdout).
fn progress(since: Instant, what: &str) {
    eprintln!("bench: {what} ({:.1} s)", since.elapsed().as_secs_f64());
}

/// `value ÷ base`, e.g. `1.42×`.
fn ratio(value: f64, base: f64) -> String {
    if value.is_nan() || base.is_nan() || base == 0.0 {
        "–".to_owned()
    } else {
        format!("{:.2}×", value / base)
    }
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// What every setup shares.
struct Bench {
    holactl: PathBuf,
    zip: Bytes,
    settings: Settings,
    total: Instant,
}

/// Knobs of one run.
struct Settings {
    warmup: usize,
    sync: usize,
    concurrency: usize,
    throughput: Duration,
    events: usize,
    async_timeout: Duration,
    isolation: Option<String>,
}

/// What one setup measured.
struct Row {
    label: String,
    nodes: usize,
    store: String,
    isolation: String,
    /// Sync latency at concurrency 1 (ms, sorted).
    sync: Vec<f64>,
    /// The same through the first node only (ms, sorted; empty with one node).
    sync_one: Vec<f64>,
    /// Sync invocations per second at `concurrency`, and their latency (ms, sorted).
    rate: f64,
    rate_latency: Vec<f64>,
    /// Async: accepted per second, completed per second (records), end-to-end latency and
    /// accept → start (ms, sorted).
    accepted: f64,
    /// Latency of each accept (202), ms, sorted.
    accept_latency: Vec<f64>,
    completed: f64,
    e2e: Vec<f64>,
    wait: Vec<f64>,
    /// Records still `pending` `RECORD_GRACE` after every event ran.
    stale: usize,
    /// CPU over the timed sync phase at `concurrency` and over the async phase (first send
    /// until every event ran).
    cpu_sync: Cpu,
    cpu_async: Cpu,
    /// Per node: async runs (from its metrics), async workers at the end, instances at the end.
    runs: Vec<u64>,
    workers: Vec<u64>,
    instances: Vec<u64>,
}

/// CPU seconds used over a phase: the nodes' server processes, their instances (every process
/// below a node), the nats-server, this bench (the load generator) and the whole machine
/// (also anything else running), with the phase's wall time.
#[derive(Clone, Copy, Default)]
struct Cpu {
    nodes: f64,
    instances: f64,
    nats: f64,
    bench: f64,
    machine: f64,
    wall: f64,
}

/// Where CPU is counted: the nodes' pids and the nats-server's.
struct Meter {
    nodes: Vec<u32>,
    nats: Option<u32>,
}

/// A reading of a [`Meter`].
struct Reading {
    cpu: Cpu,
    /// Each process below a node, by pid.
    below: BTreeMap<u32, f64>,
    at: Instant,
}

impl Meter {
    fn now(&self) -> Reading {
        Reading {
            cpu: Cpu {
                nodes: self.nodes.iter().map(|&p| process_cpu(p)).sum(),
                instances: 0.0,
                nats: self.nats.map_or(0.0, process_cpu),
                bench: process_cpu(std::process::id()),
                machine: machine_cpu(),
                wall: 0.0,
            },
            below: descendants_cpu(&self.nodes),
            at: Instant::now(),
        }
    }

    fn since(&self, before: &Reading) -> Cpu {
        let after = self.now();
        // Processes started during the phase count from zero; those gone are not counted.
        let instances = after
            .below
            .iter()
            .map(|(pid, cpu)| cpu - before.below.get(pid).copied().unwrap_or(0.0))
            .sum();
        Cpu {
            nodes: after.cpu.nodes - before.cpu.nodes,
            instances,
            nats: after.cpu.nats - before.cpu.nats,
            bench: after.cpu.bench - before.cpu.bench,
            machine: after.cpu.machine - before.cpu.machine,
            wall: before.at.elapsed().as_secs_f64(),
        }
    }
}

/// Sum of the samples of metric `name` whose labels contain `label` in a Prometheus text.
fn metric(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A metric of [`FUNCTION`] on one node.
async fn node_metric(client: &Client, name: &str) -> anyhow::Result<u64> {
    let label = format!("function=\"{FUNCTION}\"");
    Ok(metric(&client.metrics().await?, name, &label))
}

/// The function's async queue by state, as a node reports it.
async fn queue_depths(client: &Client) -> anyhow::Result<String> {
    let text = client.metrics().await?;
    let queue = format!("queue=\"async/{FUNCTION}\"");
    Ok(["ready", "delayed", "in_flight", "dead"]
        .iter()
        .map(|state| {
            let label = format!("{queue},state=\"{state}\"");
            format!(
                "{state} {}",
                metric(&text, "holactl_queue_messages", &label)
            )
        })
        .collect::<Vec<_>>()
        .join(", "))
}

/// The no-op package, zipped.
fn package(dir: &Path) -> anyhow::Result<Bytes> {
    let src = dir.join("src");
    std::fs::create_dir_all(&src)?;
    std::fs::write(src.join("lambda_function.py"), HANDLER)?;
    Ok(Bytes::from(holactl::package::zip_dir(&src)?))
}

/// Deploys the function through the first node and waits until every node has it.
async fn deploy(clients: &[Client], zip: &Bytes) -> anyhow::Result<()> {
    let first = &clients[0];
    let code = first.upload_code(zip.clone(), |_| {}).await?;
    first
        .create_function(&CreateFunctionRequest {
            name: FUNCTION.to_owned(),
            code_sha256: code.code.sha256.clone(),
            runtime: Some("python3.11".to_owned()),
            handler: Some("lambda_function.handler".to_owned()),
            ..Default::default()
        })
        .await?;
    for (i, client) in clients.iter().enumerate().skip(1) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.find_function(FUNCTION).await?.is_none() {
            ensure!(
                Instant::now() < deadline,
                "the function did not reach node {} within 10 s",
                i + 1
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// One sync invoke, checked; its latency (ms).
async fn invoke(client: &Client) -> anyhow::Result<f64> {
    let start = Instant::now();
    let invoked = client
        .invoke(FUNCTION, Bytes::from_static(b"{}"), false)
        .await?;
    let elapsed = ms(start.elapsed());
    ensure!(
        invoked.answer.status.is_success() && invoked.error_code().is_none(),
        "invoke through {}: {} {}",
        client.endpoint(),
        invoked.answer.status,
        String::from_utf8_lossy(&invoked.answer.body)
    );
    Ok(elapsed)
}

/// `concurrency` callers (caller `i` on node `i % nodes`, each with its own connection)
/// invoking back to back for `duration`: the latencies (ms) of the calls.
async fn load(
    clients: &[Client],
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Vec<f64>> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let caller = clients[i % clients.len()].clone_fresh()?;
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while started.elapsed() < duration {
                samples.push(invoke(&caller).await?);
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

/// Measures one setup whose nodes are running.
async fn measure(
    label: &str,
    nodes: &[Node],
    nats: Option<u32>,
    bench: &Bench,
) -> anyhow::Result<Row> {
    let (settings, total) = (&bench.settings, bench.total);
    let meter = Meter {
        nodes: nodes.iter().map(Node::pid).collect(),
        nats,
    };
    let clients: Vec<Client> = nodes.iter().map(|n| n.client.clone()).collect();
    let health = clients[0].health().await?;
    deploy(&clients, &bench.zip).await.context("deploying")?;

    progress(total, &format!("{label}: sync, concurrency 1"));
    for client in &clients {
        for _ in 0..settings.warmup {
            invoke(client).await?;
        }
    }
    let mut sync = Vec::with_capacity(settings.sync);
    for i in 0..settings.sync {
        sync.push(invoke(&clients[i % clients.len()]).await?);
    }
    // With several nodes, the same through the first node only: what round robin over
    // processes costs, apart from what being a member of a cluster costs.
    let mut sync_one = Vec::new();
    if clients.len() > 1 {
        for _ in 0..settings.sync {
            sync_one.push(invoke(&clients[0]).await?);
        }
    }

    progress(
        total,
        &format!("{label}: sync, concurrency {}", settings.concurrency),
    );
    load(&clients, settings.concurrency, Duration::from_secs(1)).await?;
    let cpu = meter.now();
    let started = Instant::now();
    let rate_latency = load(&clients, settings.concurrency, settings.throughput).await?;
    let rate = rate_latency.len() as f64 / started.elapsed().as_secs_f64();
    let cpu_sync = meter.since(&cpu);

    progress(
        total,
        &format!(
            "{label}: async, {} events from {} senders",
            settings.events, settings.concurrency
        ),
    );
    let mut runs_before = Vec::new();
    for client in &clients {
        runs_before.push(node_metric(client, "holactl_invocations_total").await?);
    }
    let senders: Vec<Client> = clients
        .iter()
        .map(Client::clone_fresh)
        .collect::<Result<_, _>>()?;
    let cpu = meter.now();
    let started = Instant::now();
    let mut accepts: Vec<(usize, String, f64)> = futures_util::stream::iter(0..settings.events)
        .map(|i| {
            let client = senders[i % senders.len()].clone();
            async move {
                let sent = Instant::now();
                let record = client
                    .invoke_async(FUNCTION, Bytes::from_static(b"{}"), None)
                    .await?;
                Ok::<_, anyhow::Error>((i, record.id, ms(sent.elapsed())))
            }
        })
        .buffer_unordered(settings.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let accepted_in = started.elapsed();
    // In sending order: event `i` was accepted by node `i % nodes`.
    accepts.sort_by_key(|(i, _, _)| *i);
    let accept_latency = sorted(accepts.iter().map(|(_, _, l)| *l).collect());
    let ids: Vec<String> = accepts.into_iter().map(|(_, id, _)| id).collect();
    progress(
        total,
        &format!(
            "{label}: {} accepted in {:.2} s, waiting for completion",
            ids.len(),
            accepted_in.as_secs_f64()
        ),
    );
    // Completion is counted from the nodes' metrics (final invocations of the function, summed
    // over the nodes): on a cluster an execution record can stay `pending` although its event
    // ran (see `stale`), so the records cannot tell when everything is done.
    let deadline = Instant::now() + settings.async_timeout;
    let runs = loop {
        let mut runs = Vec::with_capacity(clients.len());
        for (client, before) in clients.iter().zip(&runs_before) {
            runs.push(node_metric(client, "holactl_invocations_total").await? - before);
        }
        if runs.iter().sum::<u64>() >= ids.len() as u64 {
            break runs;
        }
        if Instant::now() > deadline {
            let queue = queue_depths(&clients[0]).await.unwrap_or_default();
            anyhow::bail!(
                "{} of {} events ran within {:?} (per node: {runs:?}; queue on node 1: {queue})",
                runs.iter().sum::<u64>(),
                ids.len(),
                settings.async_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let completed_in = started.elapsed();
    let cpu_async = meter.since(&cpu);
    progress(
        total,
        &format!(
            "{label}: {} ran in {:.2} s, reading their records",
            ids.len(),
            completed_in.as_secs_f64()
        ),
    );
    // The records, each read through the node that accepted it (a read waits for the writes
    // that node queued before it). One still not final `RECORD_GRACE` after every event ran is
    // stale.
    let grace = Instant::now() + RECORD_GRACE;
    let mut records = Vec::with_capacity(ids.len());
    let mut stale = 0;
    for (i, id) in ids.iter().enumerate() {
        let client = &clients[i % clients.len()];
        loop {
            let r = client.get_execution(id).await?;
            if r.status.is_final() {
                ensure!(
                    r.status == ExecutionStatus::Complete,
                    "async {id} ended {:?}",
                    r.status
                );
                records.push(r);
                break;
            }
            if Instant::now() > grace {
                stale += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let e2e = sorted(
        records
            .iter()
            .filter_map(|r| r.ended_at.map(|e| e.saturating_sub(r.created_at) as f64))
            .collect(),
    );
    let wait = sorted(
        records
            .iter()
            .filter_map(|r| r.started_at.map(|s| s.saturating_sub(r.created_at) as f64))
            .collect(),
    );
    let mut workers = Vec::new();
    let mut instances = Vec::new();
    for client in &clients {
        workers.push(node_metric(client, "holactl_async_workers").await?);
        instances.push(client.health().await?.instances.values().sum());
    }
    Ok(Row {
        label: label.to_owned(),
        nodes: nodes.len(),
        store: health.store,
        isolation: health.isolation,
        sync: sorted(sync),
        sync_one: sorted(sync_one),
        rate,
        rate_latency: sorted(rate_latency),
        accepted: ids.len() as f64 / accepted_in.as_secs_f64(),
        accept_latency,
        completed: ids.len() as f64 / completed_in.as_secs_f64(),
        e2e,
        stale,
        cpu_sync,
        cpu_async,
        wait,
        runs,
        workers,
        instances,
    })
}

/// Starts `count` nodes on `store` (the first creates the admin token, the others use it),
/// measures them, and stops them.
async fn setup(
    label: &str,
    count: usize,
    store: &Store<'_>,
    nats: Option<u32>,
    dir: &Path,
    bench: &Bench,
) -> anyhow::Result<Row> {
    progress(bench.total, &format!("{label}: starting {count} node(s)"));
    let mut nodes: Vec<Node> = Vec::with_capacity(count);
    for i in 0..count {
        let token = nodes.first().map(|n| n.token.clone());
        let node = Node::start(
            &bench.holactl,
            &dir.join(format!("node{}", i + 1)),
            store,
            bench.settings.isolation.as_deref(),
            token.as_deref(),
        )
        .await
        .with_context(|| format!("starting node {}", i + 1))?;
        nodes.push(node);
    }
    let row = measure(label, &nodes, nats, bench).await;
    if row.is_err() {
        for (i, n) in nodes.iter().enumerate() {
            eprintln!(
                "bench: {label}, node {} log (tail):\n{}",
                i + 1,
                n.log_tail()
            );
        }
    }
    progress(bench.total, &format!("{label}: stopping"));
    drop(nodes);
    row
}

/// Some random hex (a v4 UUID is 122 random bits).
fn random_hex(uuids: usize) -> String {
    (0..uuids)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect()
}

async fn run() -> anyhow::Result<()> {
    let total = Instant::now();
    let load_start = load_average();
    let isolation = match std::env::var("HOLA_BENCH_ISOLATION") {
        Ok(v) if v == "default" => None,
        Ok(v) if !v.is_empty() => Some(v),
        _ => Some("process".to_owned()),
    };
    let settings = Settings {
        warmup: env_count("HOLA_BENCH_WARMUP", 100),
        sync: env_count("HOLA_BENCH_SYNC", 500),
        concurrency: env_count("HOLA_BENCH_CONCURRENCY", 16),
        throughput: Duration::from_secs(env_count("HOLA_BENCH_THROUGHPUT_SECS", 5) as u64),
        events: env_count("HOLA_BENCH_ASYNC", 1000),
        async_timeout: Duration::from_secs(env_count("HOLA_BENCH_ASYNC_TIMEOUT_SECS", 180) as u64),
        isolation,
    };
    let holactl = PathBuf::from(env!("CARGO_BIN_EXE_holactl"));
    let tmp = tempfile::Builder::new()
        .prefix("holactl-bench-cluster-")
        .tempdir()?;
    let bench = Bench {
        zip: package(tmp.path())?,
        holactl,
        settings,
        total,
    };

    let mut rows: Vec<Result<Row, String>> = Vec::new();
    let baseline = setup(
        "embedded, 1 node",
        1,
        &Store::Embedded,
        None,
        &tmp.path().join("embedded"),
        &bench,
    )
    .await
    .context("the embedded baseline")?;
    rows.push(Ok(baseline));

    let mut nats_note = String::new();
    // The nodes of a setup are stopped inside `setup`, before this is dropped.
    let mut nats: Option<NatsServer> = None;
    if !env_enabled("HOLA_BENCH_NATS") {
        nats_note = "NATS setups skipped (HOLA_BENCH_NATS=0).".to_owned();
    } else if let Some(binary) = find_nats_server() {
        progress(total, &format!("starting {}", binary.display()));
        nats = Some(NatsServer::try_start_with(&[])?);
    } else {
        nats_note =
            "nats-server not found (neither in /usr/sbin, /usr/bin, /usr/local/bin nor on PATH; \
                     Debian: `apt-get install nats-server`): NATS setups skipped."
                .to_owned();
        eprintln!("bench: {nats_note}");
    }
    if let Some(nats) = &nats {
        // The same master key on every node of a cluster.
        let master_key = random_hex(2);
        for (label, count) in [("NATS, 1 node", 1usize), ("NATS, 3 nodes", 3)] {
            let namespace = format!("bench{}", &random_hex(1)[..12]);
            let store = Store::Nats {
                url: nats.url(),
                namespace: &namespace,
                master_key: &master_key,
            };
            let dir = tmp.path().join(format!("nats-{count}"));
            let row = setup(label, count, &store, Some(nats.pid()), &dir, &bench).await;
            rows.push(row.map_err(|e| {
                eprintln!("bench: {label} failed: {e:#}");
                format!("{label}: failed: {e:#}")
            }));
        }
    }
    let nats_version = nats.as_ref().map(NatsServer::version);
    drop(nats);
    report(&rows, &bench, &load_start, nats_version, &nats_note);
    Ok(())
}

fn report(
    rows: &[Result<Row, String>],
    bench: &Bench,
    load_start: &str,
    nats_version: Option<String>,
    nats_note: &str,
) {
    let (settings, total) = (&bench.settings, bench.total);
    let ok: Vec<&Row> = rows.iter().filter_map(|r| r.as_ref().ok()).collect();
    let Some(base) = ok.first() else {
        return;
    };
    let c = settings.concurrency;
    println!();
    println!("## holactl cluster benchmark");
    println!();
    println!(
        "nproc {}, 1-min load average {load_start} at the start and {} at the end; isolation \
         `{}`; a no-op Python 3.11 function (`def handler(e, c): return {{}}`, default memory); \
         {}; holactl {}. Sync c=1: {} invokes after {} warm-up invokes per node, one keep-alive \
         connection per node, round robin over the nodes. Sync c={c}: {c} callers (caller i on \
         node i mod nodes, each on its own connection) for {} s after 1 untimed second. Async: \
         {} events (`X-Invocation-Type: Event`) from {c} concurrent senders, round robin over \
         the nodes; accepted/s until the last 202; completed/s from the first send until the \
         nodes' `holactl_invocations_total` counted every event (polled every 50 ms); \
         end-to-end = `ended_at − created_at` of the execution records (whole ms), over the \
         records that were final.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        base.isolation,
        match &nats_version {
            Some(v) => format!("one {v} with JetStream (`-js`, file storage in a temp dir)"),
            None => "no nats-server".to_owned(),
        },
        env!("CARGO_PKG_VERSION"),
        settings.sync,
        settings.warmup,
        settings.throughput.as_secs(),
        settings.events,
    );
    if !nats_note.is_empty() {
        println!();
        println!("{nats_note}");
    }
    println!();
    println!(
        "| setup | sync c=1 p50 | sync c=1 p99 | sync c={c} req/s | c={c} p50 | c={c} p99 \
         | async accepted/s | async completed/s | async end-to-end p50 | async end-to-end p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        match row {
            Ok(r) => println!(
                "| {} | {} | {} | {:.0} | {} | {} | {:.0} | {:.0} | {} | {} |",
                r.label,
                fmt_ms(pct(&r.sync, 50.0)),
                fmt_ms(pct(&r.sync, 99.0)),
                r.rate,
                fmt_ms(pct(&r.rate_latency, 50.0)),
                fmt_ms(pct(&r.rate_latency, 99.0)),
                r.accepted,
                r.completed,
                fmt_ms(pct(&r.e2e, 50.0)),
                fmt_ms(pct(&r.e2e, 99.0)),
            ),
            Err(e) => println!(
                "| {} | – | – | – | – | – | – | – | – | – |",
                e.replace('\n', " ")
            ),
        }
    }
    println!();
    println!(
        "Against the embedded baseline of this run (medians; latency ratios above 1 are slower, \
         throughput ratios below 1 are slower):"
    );
    println!();
    println!(
        "| setup | sync c=1 p50 | sync c={c} req/s | c={c} p50 | async accepted/s \
         | async completed/s | async end-to-end p50 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &ok {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            ratio(pct(&r.sync, 50.0), pct(&base.sync, 50.0)),
            ratio(r.rate, base.rate),
            ratio(pct(&r.rate_latency, 50.0), pct(&base.rate_latency, 50.0)),
            ratio(r.accepted, base.accepted),
            ratio(r.completed, base.completed),
            ratio(pct(&r.e2e, 50.0), pct(&base.e2e, 50.0)),
        );
    }
    println!();
    println!(
        "Per node after the async burst: events it ran (its `holactl_invocations_total`), its \
         async workers (`holactl_async_workers`, autoscaled) and its instances; accept → start \
         is `started_at − created_at`; stale records: still `pending` {} s after every event \
         had run. Sync c=1 through node 1 only: the same number of invokes, all through the \
         first node (for comparison with the round robin of the main table).",
        RECORD_GRACE.as_secs()
    );
    println!();
    println!(
        "| setup | store | async runs per node | async workers per node | instances per node \
         | accept (202) latency p50 / p99 | accept → start p50 / p99 | stale records \
         | sync c=1 p50 / p99 through node 1 only |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" / ");
    for r in &ok {
        println!(
            "| {} | {} ({} node{}) | {} | {} | {} | {} / {} | {} / {} | {} of {} | {} |",
            r.label,
            r.store,
            r.nodes,
            if r.nodes == 1 { "" } else { "s" },
            join(&r.runs),
            join(&r.workers),
            join(&r.instances),
            fmt_ms(pct(&r.accept_latency, 50.0)),
            fmt_ms(pct(&r.accept_latency, 99.0)),
            fmt_ms(pct(&r.wait, 50.0)),
            fmt_ms(pct(&r.wait, 99.0)),
            r.stale,
            settings.events,
            if r.sync_one.is_empty() {
                "–".to_owned()
            } else {
                format!(
                    "{} / {}",
                    fmt_ms(pct(&r.sync_one, 50.0)),
                    fmt_ms(pct(&r.sync_one, 99.0))
                )
            },
        );
    }
    println!();
    println!(
        "CPU seconds per 1,000 invocations in the timed sync phase at c={c} and in the async \
         phase (first send until every event ran): the nodes' server processes, their \
         instances (every process below a node: the Python runtimes, pre-warmed ones included), \
         the nats-server, this bench (the load generator); machine busy = CPU time of the whole \
         machine (anything else running included) over the phase's wall time, out of {} cores.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!();
    println!("| setup | phase | nodes | instances | nats-server | bench client | machine busy |");
    println!("|---|---|---|---|---|---|---|");
    for r in &ok {
        for (phase, cpu, n) in [
            (
                format!("sync c={c}"),
                &r.cpu_sync,
                r.rate_latency.len() as f64,
            ),
            ("async".to_owned(), &r.cpu_async, settings.events as f64),
        ] {
            let per_k = |v: f64| format!("{:.2} s", v * 1000.0 / n.max(1.0));
            println!(
                "| {} | {phase} | {} | {} | {} | {} | {:.2} cores |",
                r.label,
                per_k(cpu.nodes),
                per_k(cpu.instances),
                if r.store == "nats" {
                    per_k(cpu.nats)
                } else {
                    "–".to_owned()
                },
                per_k(cpu.bench),
                cpu.machine / cpu.wall.max(1e-9),
            );
        }
    }
    println!();
    println!("total run time {:.1} s", total.elapsed().as_secs_f64());
}

fn main() -> std::process::ExitCode {
    entry::main(run)
}
