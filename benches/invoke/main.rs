//! End-to-end invoke benchmark: `cargo bench --bench invoke`.
//!
//! Starts the real `holactl lambda serve` on a free loopback port with a fresh data dir,
//! deploys three no-op functions (Python 3.11, Node.js 20, and the std-only Rust runtime of
//! `crates/testfn` as a `provided` function) and measures through the HTTP API with the typed
//! client ([`holactl::client::Client`], one keep-alive connection, requests one at a time):
//!
//! - warm invoke latency per runtime, next to a bare loopback HTTP round trip to a trivial
//!   hyper server in this process answering `{}` (same client, same request);
//! - cold starts per runtime, forced by changing the function's environment (`PATCH`) before
//!   each sample, next to the bare start of the interpreter itself;
//! - asynchronous invocations, throughput at concurrency 1, 16 and 64, and the same functions
//!   at the `process` isolation level;
//! - memory ([`memory`]): the server's RSS idle and with warm instances, and each warm
//!   instance's processes next to the bare interpreter idling;
//! - peers ([`peers`]): the same no-op workload on serverless-offline, lambda-local and
//!   cargo-lambda, installed on demand under `target/bench-peers/`.
//!
//! The Rust runtime is built first with `cargo build --release -p holactl-testfn` (a no-op when
//! up to date) and taken from the same target directory as the `holactl` binary under test.
//!
//! Sample counts can be changed with `HOLA_BENCH_WARM` (default 2000), `HOLA_BENCH_WARMUP`
//! (100) and `HOLA_BENCH_COLD` (30); `HOLA_BENCH_MEMORY_MB` sets the functions' memory size
//! (the server's default otherwise; the CPU share of an instance follows it) and
//! `HOLA_BENCH_SETTLE_MS` (100) the pause between stopping the previous instance and a measured
//! cold start. `HOLA_BENCH_MEMORY=0` skips the memory section, `HOLA_BENCH_PEERS=0` the peers.
//! The server inherits the environment, so e.g. `HOLACTL_ISOLATION=process` selects its
//! isolation level.
//!
//! # Layout
//! - `main.rs`: fixtures, the latency, cold-start, throughput and async measurements, the report.
//! - `server.rs`: the server under test, the no-op runtime build, the loopback baseline.
//! - `memory.rs`: RSS/PSS of the server and of warm instances (`/proc`, cgroups).
//! - `peers/`: installing and driving the peer emulators, one file per peer.

mod direct;
#[path = "../common/entry.rs"]
mod entry;
mod memory;
mod peers;
mod server;
#[path = "../common/stats.rs"]
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bytes::Bytes;
use holactl::client::{Client, Invoked};
use holactl_types::api::{headers as h, CreateFunctionRequest, UpdateFunctionRequest};
use http_body_util::BodyExt;

use server::{build_noop_runtime, start_loopback, start_server};
use stats::{fmt_ms, ms, pct, sorted};

/// A function under test.
struct Fixture {
    /// Row label.
    label: &'static str,
    /// Function name on the server.
    name: &'static str,
    runtime: &'static str,
    handler: &'static str,
    /// Files of the package: (path, contents, executable).
    files: Vec<(&'static str, Vec<u8>, bool)>,
    /// The bare start it is compared with: (label, program, args).
    bare: (&'static str, &'static str, &'static [&'static str]),
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// A progress line on stderr (the tables go to stdout).
fn progress(since: Instant, section: &str) {
    eprintln!("bench: {section} ({:.1} s)", since.elapsed().as_secs_f64());
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

fn fixtures(noop: &Path) -> anyhow::Result<Vec<Fixture>> {
    Ok(vec![
        Fixture {
            label: "python3.11",
            name: "bench-python",
            runtime: "python3.11",
            handler: "lambda_function.handler",
            files: vec![(
                "lambda_function.py",
                b"def handler(e, c):\n    return {}\n".to_vec(),
                false,
            )],
            bare: (
                "`python3.11 -c pass`",
                "/usr/bin/python3.11",
                &["-c", "pass"],
            ),
        },
        Fixture {
            label: "nodejs20.x",
            name: "bench-node",
            runtime: "nodejs20.x",
            handler: "index.handler",
            files: vec![(
                "index.mjs",
                b"export const handler = async () => ({});\n".to_vec(),
                false,
            )],
            bare: ("`node -e 0`", "/usr/bin/node", &["-e", "0"]),
        },
        Fixture {
            label: "provided (Rust noop)",
            name: "bench-rust",
            runtime: "provided.al2023",
            handler: "bootstrap",
            files: vec![(
                "bootstrap",
                std::fs::read(noop).with_context(|| format!("reading {}", noop.display()))?,
                true,
            )],
            bare: ("spawn `/bin/true`", "/bin/true", &[]),
        },
    ])
}

/// Deploys `fx` and returns its memory size (MB).
async fn deploy(
    client: &Client,
    fx: &Fixture,
    dir: &Path,
    memory_mb: Option<u32>,
) -> anyhow::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let src = dir.join(fx.name);
    std::fs::create_dir_all(&src)?;
    for (path, content, exec) in &fx.files {
        let file = src.join(path);
        std::fs::write(&file, content)?;
        let mode = if *exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))?;
    }
    let zip = holactl::package::zip_dir(&src)?;
    let code = client.upload_code(Bytes::from(zip), |_| {}).await?;
    let created = client
        .create_function(&CreateFunctionRequest {
            name: fx.name.to_owned(),
            code_sha256: code.code.sha256.clone(),
            runtime: Some(fx.runtime.to_owned()),
            handler: Some(fx.handler.to_owned()),
            memory_mb,
            environment: Some(environment(None)),
            ..Default::default()
        })
        .await?;
    Ok(created.config.memory_mb)
}

fn environment(generation: Option<usize>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([("NOOP_MODE".to_owned(), "empty".to_owned())]);
    if let Some(g) = generation {
        env.insert("BENCH_GENERATION".to_owned(), g.to_string());
    }
    env
}

fn header_ms(invoked: &Invoked, name: &str) -> anyhow::Result<f64> {
    invoked
        .answer
        .header(name)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {name} header"))
}

async fn invoke_ok(client: &Client, name: &str) -> anyhow::Result<(Duration, Invoked)> {
    let start = Instant::now();
    let invoked = client
        .invoke(name, Bytes::from_static(b"{}"), false)
        .await?;
    let elapsed = start.elapsed();
    ensure!(
        invoked.answer.status.is_success() && invoked.error_code().is_none(),
        "{name} failed: {} {}",
        invoked.answer.status,
        String::from_utf8_lossy(&invoked.answer.body)
    );
    Ok((elapsed, invoked))
}

/// Warm samples: client latency (ms) and, when `server_timed` (a holactl function, not the
/// loopback baseline), the server-reported handler duration (ms).
async fn warm(
    client: &Client,
    name: &str,
    warmup: usize,
    n: usize,
    server_timed: bool,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    for _ in 0..warmup {
        invoke_ok(client, name).await?;
    }
    let mut latency = Vec::with_capacity(n);
    let mut duration = Vec::with_capacity(n);
    for _ in 0..n {
        let (elapsed, invoked) = invoke_ok(client, name).await?;
        latency.push(ms(elapsed));
        if server_timed {
            ensure!(!invoked.cold_start(), "{name}: unexpected cold start");
            duration.push(header_ms(&invoked, h::DURATION_MS)?);
        }
    }
    Ok((latency, duration))
}

/// Cold samples of one function. Each: change the environment (a new instance key, so the warm
/// instance is stopped), wait `settle`, run one bare start of the program it is compared with
/// (so that load from other processes hits both alike), then invoke.
async fn cold(
    client: &Client,
    fx: &Fixture,
    n: usize,
    settle: Duration,
) -> anyhow::Result<ColdSamples> {
    let (_, program, args) = fx.bare;
    let mut samples = ColdSamples::default();
    for generation in 0..n {
        client
            .update_function(
                fx.name,
                &UpdateFunctionRequest {
                    environment: Some(environment(Some(generation))),
                    ..Default::default()
                },
            )
            .await?;
        // The update stops the previous instance. Cold starts are sporadic in real use, so leave
        // the server a moment: the old instance's teardown finishes and whatever the server
        // prepares ahead of demand is back, instead of measuring back-to-back starts.
        tokio::time::sleep(settle).await;
        samples.bare.push(bare_start(program, args)?);
        let (elapsed, invoked) = invoke_ok(client, fx.name).await?;
        ensure!(invoked.cold_start(), "{}: expected a cold start", fx.name);
        samples.latency.push(ms(elapsed));
        samples.init.push(header_ms(&invoked, h::INIT_DURATION_MS)?);
    }
    samples.latency = sorted(samples.latency);
    samples.init = sorted(samples.init);
    samples.bare = sorted(samples.bare);
    Ok(samples)
}

/// Wall time (ms) of one run of `program args` with a clean environment.
fn bare_start(program: &str, args: &[&str]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {program}"))?;
    let elapsed = ms(start.elapsed());
    ensure!(status.success(), "{program} failed: {status}");
    Ok(elapsed)
}

/// Sorted cold-start samples of one function.
#[derive(Default)]
struct ColdSamples {
    latency: Vec<f64>,
    init: Vec<f64>,
    bare: Vec<f64>,
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

struct WarmRow {
    label: String,
    latency: Vec<f64>,
    /// Server-reported handler durations (none for the loopback baseline).
    duration: Vec<f64>,
    /// Per-sample client latency minus server-reported duration.
    outside: Vec<f64>,
}

async fn run() -> anyhow::Result<()> {
    let total = Instant::now();
    let load_start = load_average();
    let warm_n = env_count("HOLA_BENCH_WARM", 2000);
    let warmup = env_count("HOLA_BENCH_WARMUP", 100);
    let cold_n = env_count("HOLA_BENCH_COLD", 30);
    let settle = Duration::from_millis(
        std::env::var("HOLA_BENCH_SETTLE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100),
    );

    let holactl = PathBuf::from(env!("CARGO_BIN_EXE_holactl"));
    let noop = build_noop_runtime(&holactl)?;
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("data");
    let (server, client) = start_server(&holactl, &data_dir, &[]).await?;
    let health = client.health().await?;
    let fixtures = fixtures(&noop)?;
    let memory_mb = std::env::var("HOLA_BENCH_MEMORY_MB")
        .ok()
        .map(|v| v.parse::<u32>())
        .transpose()
        .context("HOLA_BENCH_MEMORY_MB")?;
    let mut memory = 0;
    for fx in &fixtures {
        memory = deploy(&client, fx, tmp.path(), memory_mb)
            .await
            .with_context(|| format!("deploying {}", fx.name))?;
    }

    progress(total, "warm");
    // Warm: loopback baseline first, then each function (its first invoke is the cold one).
    let loopback = start_loopback()?;
    let baseline = Client::new(&format!("http://{loopback}"), Some("x".to_owned()))?;
    let (loop_samples, _) = warm(&baseline, "loopback", warmup, warm_n, false).await?;
    let mut rows = vec![WarmRow {
        label: "bare loopback HTTP (hyper, `{}`)".to_owned(),
        latency: sorted(loop_samples),
        duration: Vec::new(),
        outside: Vec::new(),
    }];
    for fx in &fixtures {
        invoke_ok(&client, fx.name).await?;
        let (latency, duration) = warm(&client, fx.name, warmup, warm_n, true)
            .await
            .with_context(|| format!("warm {}", fx.name))?;
        let outside = latency.iter().zip(&duration).map(|(l, d)| l - d).collect();
        rows.push(WarmRow {
            label: fx.label.to_owned(),
            latency: sorted(latency),
            duration: sorted(duration),
            outside: sorted(outside),
        });
    }

    let direct = direct::measure().context("direct handler calls")?;

    progress(total, "cold starts");
    // Cold starts, interleaved with the bare starts they are compared with.
    let mut cold_rows = Vec::new();
    for fx in &fixtures {
        let samples = cold(&client, fx, cold_n, settle)
            .await
            .with_context(|| format!("cold {}", fx.name))?;
        cold_rows.push(samples);
    }

    progress(total, "async");
    // Asynchronous invocations of the Rust no-op: accepted → completed throughput and the
    // latency from acceptance (202, event on disk) to hand-off to an instance.
    let async_n = env_count("HOLA_BENCH_ASYNC", 2000);
    let async_report = async_throughput(&client, "bench-rust", async_n).await?;
    progress(total, "throughput");
    // Throughput at several concurrencies (one keep-alive connection per concurrent caller).
    let tput_secs = env_count("HOLA_BENCH_THROUGHPUT_SECS", 3) as u64;
    let mut tput_rows = Vec::new();
    for fx in fixtures.iter().filter(|f| f.name != "bench-node") {
        for c in [1usize, 16, 64] {
            let target = Target::Holactl(fx.name.to_owned());
            let (rate, p50, p99) =
                throughput(&client, &target, c, Duration::from_secs(tput_secs)).await?;
            tput_rows.push((fx.label, c, rate, p50, p99));
        }
    }

    drop(server);

    progress(total, "isolation levels");
    // The same functions at the `process` level, in the same run, for what isolation costs.
    let iso_n = env_count("HOLA_BENCH_ISOLATION_COLD", 15);
    let iso_warm = env_count("HOLA_BENCH_ISOLATION_WARM", 500);
    let mut isolation_rows = Vec::new();
    if health.isolation == "namespaces" {
        let pdir = tmp.path().join("data-process");
        let (pserver, pclient) = start_server(&holactl, &pdir, &["--isolation", "process"]).await?;
        let ptmp = tmp.path().join("process-src");
        std::fs::create_dir_all(&ptmp)?;
        for fx in fixtures.iter().filter(|f| f.name != "bench-node") {
            deploy(&pclient, fx, &ptmp, memory_mb).await?;
            invoke_ok(&pclient, fx.name).await?;
            let (latency, _) = warm(&pclient, fx.name, warmup, iso_warm, true).await?;
            let c = cold(&pclient, fx, iso_n, settle).await?;
            isolation_rows.push((fx.label, sorted(latency), c));
        }
        drop(pserver);
    }

    // Memory: a fresh server per function, idle and with provisioned warm instances.
    let memory_on = env_enabled("HOLA_BENCH_MEMORY");
    let instances = env_count("HOLA_BENCH_MEMORY_INSTANCES", 100);
    let mut memory_rows = Vec::new();
    if memory_on {
        for fx in &fixtures {
            progress(total, &format!("memory of {}", fx.label));
            let row = memory::measure(&holactl, &noop, tmp.path(), fx, instances, memory_mb)
                .await
                .with_context(|| format!("memory of {}", fx.label));
            memory_rows.push(row);
        }
    }

    progress(total, "peers");
    // Peers, with nothing of holactl running.
    let peer_rows = if env_enabled("HOLA_BENCH_PEERS") {
        let settings = peers::Settings {
            warmup,
            warm: warm_n,
            cold: cold_n,
            settle,
            throughput: Duration::from_secs(tput_secs),
        };
        Some(peers::run(&holactl, &settings).await)
    } else {
        None
    };

    // Report.
    let loop_p50 = pct(&rows[0].latency, 50.0);
    println!();
    println!("## holactl invoke benchmark");
    println!();
    println!(
        "nproc {}, 1-min load average {load_start} at the start and {} at the end, isolation \
         `{}`, functions of {memory} MB, holactl {}; sequential requests on one keep-alive connection with \
         `holactl::client::Client`; warm: {warm_n} samples after {warmup} warm-up; cold: \
         {cold_n} samples, each {} ms after the previous instance was stopped and right after \
         one bare start (p99 of {cold_n} is the maximum).",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        health.isolation,
        health.version,
        settle.as_millis(),
    );
    println!();
    println!("### Warm invoke");
    println!();
    println!(
        "| target | p50 | p99 | runtime cycle p50 (`x-hola-duration-ms`) | runtime cycle p99 \
         | warm − loopback (p50) | platform overhead p50 (latency − cycle − loopback) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, row) in rows.iter().enumerate() {
        let p50 = pct(&row.latency, 50.0);
        let (cycle, cycle99, minus_loop, overhead) = if i == 0 {
            let none = || "–".to_owned();
            (none(), none(), none(), none())
        } else {
            (
                fmt_ms(pct(&row.duration, 50.0)),
                fmt_ms(pct(&row.duration, 99.0)),
                fmt_ms(p50 - loop_p50),
                fmt_ms(pct(&row.outside, 50.0) - loop_p50),
            )
        };
        println!(
            "| {} | {} | {} | {cycle} | {cycle99} | {minus_loop} | {overhead} |",
            row.label,
            fmt_ms(p50),
            fmt_ms(pct(&row.latency, 99.0)),
        );
    }
    println!();
    println!("### Baseline: direct handler call");
    println!();
    println!(
        "The same no-op handler called in-process by its own interpreter ({} batches of {} \
         calls, median batch): the floor under each warm invoke above.",
        direct::BATCHES,
        direct::CALLS
    );
    println!();
    println!("| handler | per call | warm invoke p50 above | warm invoke ÷ direct call |");
    println!("|---|---|---|---|");
    for d in &direct {
        let warm = rows
            .iter()
            .find(|r| r.label == d.label)
            .map(|r| pct(&r.latency, 50.0))
            .unwrap_or(f64::NAN);
        println!(
            "| {} | {:.3} µs | {} | {:.0}× |",
            d.label,
            d.ns_per_call / 1000.0,
            fmt_ms(warm),
            warm * 1e6 / d.ns_per_call
        );
    }
    println!();
    println!("### Cold start");
    println!();
    println!(
        "| runtime | first invoke p50 | first invoke p99 | init p50 (`x-hola-init-duration-ms`) \
         | init p99 | bare start | bare start p50 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (fx, c) in fixtures.iter().zip(&cold_rows) {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            fx.label,
            fmt_ms(pct(&c.latency, 50.0)),
            fmt_ms(pct(&c.latency, 99.0)),
            fmt_ms(pct(&c.init, 50.0)),
            fmt_ms(pct(&c.init, 99.0)),
            fx.bare.0,
            fmt_ms(pct(&c.bare, 50.0)),
        );
    }
    if !isolation_rows.is_empty() {
        println!();
        println!("### Isolation levels (same run)");
        println!();
        println!(
            "`namespaces` (pid/mount/net/ipc/uts/cgroup namespaces, cgroup, seccomp, read-only \
             root, unprivileged uid; sandboxes prepared ahead of demand) against `process` (own \
             process group, rlimits, clean environment). Cold: init p50 of the cold samples \
             above vs {iso_n} samples at `process`; warm: p50 of the samples above vs \
             {iso_warm} at `process`."
        );
        println!();
        println!(
            "| runtime | cold init p50, namespaces | cold init p50, process | isolation adds (cold) \
             | warm p50, namespaces | warm p50, process | isolation adds (warm) |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (label, warm_process, cold_process) in &isolation_rows {
            let ns_index = fixtures.iter().position(|f| f.label == *label);
            let Some(i) = ns_index else {
                continue;
            };
            let ns_cold = pct(&cold_rows[i].init, 50.0);
            let pr_cold = pct(&cold_process.init, 50.0);
            let ns_warm = pct(&rows[i + 1].latency, 50.0);
            let pr_warm = pct(warm_process, 50.0);
            println!(
                "| {label} | {} | {} | {} | {} | {} | {} |",
                fmt_ms(ns_cold),
                fmt_ms(pr_cold),
                fmt_ms(ns_cold - pr_cold),
                fmt_ms(ns_warm),
                fmt_ms(pr_warm),
                fmt_ms(ns_warm - pr_warm),
            );
        }
    }
    println!();
    println!("### Throughput");
    println!();
    println!(
        "Sync invokes for {tput_secs} s per row, each concurrent caller on its own keep-alive \
         connection (instances started on demand are counted in the first second)."
    );
    println!();
    println!("| function | concurrency | invocations/s | latency p50 | latency p99 |");
    println!("|---|---|---|---|---|");
    for (label, c, rate, p50, p99) in &tput_rows {
        println!(
            "| {label} | {c} | {rate:.0} | {} | {} |",
            fmt_ms(*p50),
            fmt_ms(*p99)
        );
    }
    println!();
    println!("### Asynchronous invocations");
    println!();
    println!("{async_report}");
    println!();
    if memory_on {
        let ok: Vec<memory::MemoryRow> = memory_rows
            .into_iter()
            .filter_map(|r| r.map_err(|e| println!("memory: {e:#}\n")).ok())
            .collect();
        memory::report(&ok);
        println!();
    }
    if let Some(peer_rows) = peer_rows {
        let mut refs = BTreeMap::new();
        for (i, fx) in fixtures.iter().enumerate() {
            let c16 = tput_rows
                .iter()
                .find(|(label, c, ..)| *label == fx.label && *c == 16)
                .map(|(_, _, rate, _, _)| *rate);
            refs.insert(
                fx.label,
                peers::Reference {
                    warm_p50: pct(&rows[i + 1].latency, 50.0),
                    warm_p99: pct(&rows[i + 1].latency, 99.0),
                    c16,
                    cold_p50: pct(&cold_rows[i].latency, 50.0),
                },
            );
        }
        peers::report(&peer_rows, &refs, warm_n);
        println!();
    }
    println!("total run time {:.1} s", total.elapsed().as_secs_f64());
    Ok(())
}

/// What a load loop calls: a holactl function through the API, or a plain `POST` (a peer's
/// endpoint) checked for a 2xx answer without `X-Amz-Function-Error`.
#[derive(Clone)]
enum Target {
    Holactl(String),
    Post { path: String, body: Bytes },
}

impl Target {
    async fn call(&self, client: &Client) -> anyhow::Result<()> {
        match self {
            Target::Holactl(name) => {
                let invoked = client
                    .invoke(name, Bytes::from_static(b"{}"), false)
                    .await?;
                ensure!(
                    invoked.answer.status.is_success() && invoked.error_code().is_none(),
                    "{name}: {} {}",
                    invoked.answer.status,
                    String::from_utf8_lossy(&invoked.answer.body)
                );
            }
            Target::Post { path, body } => {
                let body = http_body_util::Full::new(body.clone())
                    .map_err(|never| match never {})
                    .boxed();
                let answer = client
                    .send(
                        http::Method::POST,
                        path,
                        &[],
                        Some(("application/json", body)),
                    )
                    .await?;
                ensure!(
                    answer.status.is_success() && answer.header("x-amz-function-error").is_none(),
                    "POST {path}: {} {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
                );
            }
        }
        Ok(())
    }
}

/// `concurrency` callers calling `target` back to back for `duration`; returns calls per second
/// and the latency p50/p99 (ms).
async fn throughput(
    client: &Client,
    target: &Target,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(f64, f64, f64)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        // A client of its own: its own connection pool, so each caller keeps one connection.
        let caller = client.clone_fresh()?;
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while started.elapsed() < duration {
                let t = Instant::now();
                target.call(&caller).await?;
                samples.push(ms(t.elapsed()));
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = all.len() as f64;
    let all = sorted(all);
    Ok((n / elapsed, pct(&all, 50.0), pct(&all, 99.0)))
}

/// Sends `n` async invocations (32 at a time), waits for all to complete, and reports
/// accept throughput, accepted → completed throughput, and accept → start latency.
async fn async_throughput(client: &Client, name: &str, n: usize) -> anyhow::Result<String> {
    use futures_util::StreamExt;
    let started = Instant::now();
    let ids: Vec<String> = futures_util::stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            async move {
                client
                    .invoke_async(name, Bytes::from_static(b"{}"), None)
                    .await
                    .map(|r| r.id)
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let accepted_in = started.elapsed();
    let mut records = Vec::with_capacity(n);
    for id in &ids {
        loop {
            let r = client.get_execution(id).await?;
            if r.status.is_final() {
                ensure!(
                    r.status == holactl_types::ExecutionStatus::Complete,
                    "async {id} ended {:?}",
                    r.status
                );
                records.push(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let first = records.iter().map(|r| r.created_at).min().unwrap_or(0);
    let last = records
        .iter()
        .filter_map(|r| r.ended_at)
        .max()
        .unwrap_or(first);
    let span_s = ((last - first).max(1)) as f64 / 1000.0;
    let waits = sorted(
        records
            .iter()
            .filter_map(|r| r.started_at.map(|s| (s - r.created_at) as f64))
            .collect(),
    );
    Ok(format!(
        "| measure | value |\n|---|---|\n\
         | invocations | {n} (Rust no-op, 32 concurrent senders) |\n\
         | accepted (202, durable) per second | {:.0} |\n\
         | accepted → completed per second | {:.0} |\n\
         | accept → start p50 / p99 (ms, whole-ms timestamps) | {:.0} / {:.0} |",
        n as f64 / accepted_in.as_secs_f64(),
        n as f64 / span_s,
        pct(&waits, 50.0),
        pct(&waits, 99.0),
    ))
}

fn main() -> std::process::ExitCode {
    entry::main(run)
}
