//! Peers: the same no-op workload on other local Lambda emulators, in the same run.
//!
//! Installed on demand (once; later runs reuse them) under `<target dir>/bench-peers/`, which is
//! git-ignored with the rest of `target/` (`HOLA_BENCH_PEERS_DIR` picks another place):
//!
//! - **serverless-offline 13.9.0** on **serverless 3.40.0** (`npm install --prefix …`; version
//!   14 of the plugin needs serverless 4). A generated service with a Python 3.11 and a Node.js
//!   20 no-op function; the bench calls its Lambda Invoke API, `POST
//!   /2015-03-31/functions/{name}/invocations` on the lambda port. Python handlers run in a
//!   `python3 invoke.py` child process per instance (started through `sh -c`; events and
//!   results are JSON lines on its stdin/stdout), `python3` being the real `python3.11` the
//!   holactl runtime uses (a symlink put first on `PATH`, not the pyenv shim); Node.js handlers
//!   run in worker threads of the serverless process. Cold starts: a second start with
//!   `--reloadHandler`, which makes every invoke create a new instance.
//! - **lambda-local 2.2.0** (npm): `--watch PORT` serves `POST /` with `{"event": …}` and runs
//!   the handler inside its own Node.js process (CommonJS only in that mode). It has no
//!   instances and so no cold start; its documented one-shot CLI run (`-e event.json`) is shown
//!   in that column instead.
//! - **cargo-lambda** (PyPI, `--no-deps`: the `ziglang` dependency only serves cross-builds):
//!   `cargo lambda watch --only-lambda-apis` emulates the Invoke API and the Runtime API on one
//!   port and leaves starting the function to us. Its Runtime API lives under `/.rt`
//!   (`AWS_LAMBDA_RUNTIME_API=http://host:port/.rt`), which the prebuilt no-op runtime (it takes
//!   `host:port`, like AWS) cannot reach, so the bench builds a copy of `crates/testfn`'s source
//!   with that prefix in its two paths (std only: `cargo build --offline`, no crate download).
//!   Concurrency 16 runs 16 runtime processes. No cold start of its own: in its normal mode it
//!   builds and starts the function with cargo on the first invoke.
//!
//! Each peer is measured like holactl: warm calls one at a time on one keep-alive connection
//! with the same client, and 16 callers on their own connections (after an untimed second at
//! c=16, so that the peer's instances exist). A peer that cannot be installed or started gives
//! a row saying why; the bench goes on.
//!
//! # Layout
//! - `mod.rs`: the run over all peers, the processes and samples they share, the report.
//! - `install.rs`: the cache dir and the on-demand installs (npm, pip).
//! - `serverless_offline.rs`, `lambda_local.rs`, `cargo_lambda.rs`: one peer each.

mod cargo_lambda;
mod install;
mod lambda_local;
mod serverless_offline;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use holactl::client::Client;

use crate::memory::{self, Mem};
use crate::{fmt_ms, ms, pct, sorted, Target};

use cargo_lambda::cargo_lambda;
use install::{install_npm, peers_dir, real_python311, tail};
use lambda_local::lambda_local;
use serverless_offline::serverless_offline;

const SERVERLESS: &str = "3.40.0";
const SERVERLESS_OFFLINE: &str = "13.9.0";
const LAMBDA_LOCAL: &str = "2.2.0";
const CARGO_LAMBDA: &str = "1.9.2";

/// How much to measure.
pub(crate) struct Settings {
    pub(crate) warmup: usize,
    pub(crate) warm: usize,
    pub(crate) cold: usize,
    pub(crate) settle: Duration,
    pub(crate) throughput: Duration,
}

/// One peer on one handler.
pub(crate) struct PeerRow {
    peer: String,
    /// The holactl fixture it compares with.
    handler: &'static str,
    outcome: anyhow::Result<PeerNumbers>,
}

#[derive(Default)]
struct PeerNumbers {
    /// Sorted warm latencies (ms).
    warm: Vec<f64>,
    /// Calls per second, p50, p99 at concurrency 16.
    c16: Option<(f64, f64, f64)>,
    /// What a cold sample is, and the sorted samples (ms).
    cold: Option<(&'static str, Vec<f64>)>,
    memory: Option<PeerMemory>,
    how: String,
}

/// The peer's own process and, where it has some, its instances' processes.
struct PeerMemory {
    process: &'static str,
    server: Mem,
    instances: usize,
    per_instance: Option<Mem>,
}

/// holactl's numbers for one fixture, from the same run.
pub(crate) struct Reference {
    pub(crate) warm_p50: f64,
    pub(crate) warm_p99: f64,
    pub(crate) c16: Option<f64>,
    /// Client-side first-invoke latency p50 of the cold samples.
    pub(crate) cold_p50: f64,
}

/// Installs what it can and measures every peer.
pub(crate) async fn run(holactl: &Path, s: &Settings) -> Vec<PeerRow> {
    let dir = match peers_dir(holactl) {
        Ok(d) => d,
        Err(e) => {
            let why = format!("{e:#}");
            return ["serverless-offline", "lambda-local", "cargo-lambda"]
                .into_iter()
                .map(|peer| PeerRow {
                    peer: peer.to_owned(),
                    handler: "–",
                    outcome: Err(anyhow!("{why}")),
                })
                .collect();
        }
    };
    let python = real_python311();
    let npm = install_npm(&dir).map_err(|e| format!("{e:#}"));
    let mut rows = Vec::new();

    eprintln!("bench: peers: serverless-offline");
    let sls = format!("serverless-offline {SERVERLESS_OFFLINE} (serverless {SERVERLESS})");
    match (&npm, &python) {
        (Ok(nm), Ok(py)) => rows.extend(serverless_offline(&dir, nm, py, &sls, s).await),
        (Err(e), _) => {
            for handler in ["python3.11", "nodejs20.x"] {
                rows.push(PeerRow {
                    peer: sls.clone(),
                    handler,
                    outcome: Err(anyhow!("npm install failed: {e}")),
                });
            }
        }
        (_, Err(e)) => {
            for handler in ["python3.11", "nodejs20.x"] {
                rows.push(PeerRow {
                    peer: sls.clone(),
                    handler,
                    outcome: Err(anyhow!("{e:#}")),
                });
            }
        }
    }

    eprintln!("bench: peers: lambda-local");
    let local = format!("lambda-local {LAMBDA_LOCAL}");
    rows.push(PeerRow {
        peer: local,
        handler: "nodejs20.x",
        outcome: match &npm {
            Ok(nm) => lambda_local(&dir, nm, s).await,
            Err(e) => Err(anyhow!("npm install failed: {e}")),
        },
    });

    eprintln!("bench: peers: cargo-lambda");
    let outcome = match &python {
        Ok(py) => cargo_lambda(&dir, py, s).await,
        Err(e) => Err(anyhow!("{e:#}")),
    };
    rows.push(PeerRow {
        peer: format!("cargo-lambda {CARGO_LAMBDA}"),
        handler: "provided (Rust noop)",
        outcome,
    });
    rows
}

/// A peer's process group, stopped when dropped.
struct PeerProcess {
    child: Child,
    log: PathBuf,
}

impl PeerProcess {
    fn spawn(mut cmd: Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = std::fs::File::create(&log)?;
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        Ok(PeerProcess { child, log })
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(i32::MAX)
    }

    /// Waits until `port` accepts connections.
    async fn wait_port(&mut self, port: u16, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("exited ({status}): {}", tail(&self.log, 5));
            }
            if Instant::now() > deadline {
                bail!("not listening after {timeout:?}: {}", tail(&self.log, 5));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PeerProcess {
    /// SIGTERM to its process group (the peer and the interpreters it started), then SIGKILL.
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let group = Pid::from_raw(self.pid());
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A process of ours, killed when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Warm samples: `warmup` calls, then `n` timed ones, one at a time on one connection.
async fn warm(client: &Client, target: &Target, s: &Settings) -> anyhow::Result<Vec<f64>> {
    for _ in 0..s.warmup {
        target.call(client).await?;
    }
    let mut v = Vec::with_capacity(s.warm);
    for _ in 0..s.warm {
        let t = Instant::now();
        target.call(client).await?;
        v.push(ms(t.elapsed()));
    }
    Ok(sorted(v))
}

fn post(path: &str, body: &'static [u8]) -> Target {
    Target::Post {
        path: path.to_owned(),
        body: Bytes::from_static(body),
    }
}

/// The memory of a peer's process, and of the instances under it: the child process subtrees
/// holding a process whose command line contains `marker`.
fn peer_memory(process: &'static str, pid: i32, marker: Option<&str>) -> Option<PeerMemory> {
    let server = memory::proc_mem(pid)?;
    let mut instances = Vec::new();
    if let Some(marker) = marker {
        let map = memory::children_map();
        for &child in map.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            let pids = memory::subtree(&map, child);
            if pids
                .iter()
                .any(|&p| memory::cmdline(p).iter().any(|a| a.contains(marker)))
            {
                instances.push(
                    pids.iter()
                        .filter_map(|&p| memory::proc_mem(p))
                        .sum::<Mem>(),
                );
            }
        }
    }
    let per_instance = (!instances.is_empty()).then(|| {
        let mut rss: Vec<u64> = instances.iter().map(|m| m.rss_kb).collect();
        let pss: Option<Vec<u64>> = instances.iter().map(|m| m.pss_kb).collect();
        rss.sort_unstable();
        Mem {
            rss_kb: rss[(rss.len() - 1) / 2],
            pss_kb: pss.map(|mut p| {
                p.sort_unstable();
                p[(p.len() - 1) / 2]
            }),
        }
    });
    Some(PeerMemory {
        process,
        server,
        instances: instances.len(),
        per_instance,
    })
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".to_owned()
    }
}

/// Prints the peers' tables beside holactl's numbers of the same run.
pub(crate) fn report(rows: &[PeerRow], refs: &BTreeMap<&str, Reference>, warm_n: usize) {
    println!("### Peers (same run)");
    println!();
    println!(
        "The same no-op handlers on local Lambda emulators, after holactl's sections (its servers \
         stopped). Warm: {warm_n} sequential calls on one keep-alive connection with the same \
         client; c=16: 16 callers, each on its own connection, for the same time as holactl's \
         throughput rows but after an untimed second at c=16 that starts the peer's instances \
         (holactl's c=16 row counts its on-demand starts); holactl's value of this run in \
         parentheses. Ratios above 1 favour holactl."
    );
    println!();
    println!(
        "| peer | handler | warm p50 (holactl) | peer ÷ holactl | warm p99 (holactl) | c=16 \
         calls/s (holactl) | holactl ÷ peer | cold start p50 (holactl first invoke p50) | how |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let r = refs.get(row.handler);
        let n = match &row.outcome {
            Ok(n) => n,
            Err(e) => {
                let why = format!("{e:#}").replace('|', "\\|").replace('\n', " ");
                println!(
                    "| {} | {} | not run: {why} | – | – | – | – | – | – |",
                    row.peer, row.handler
                );
                continue;
            }
        };
        let p50 = pct(&n.warm, 50.0);
        let p99 = pct(&n.warm, 99.0);
        let with_ref = |v: String, r: Option<String>| match r {
            Some(r) => format!("{v} ({r})"),
            None => v,
        };
        let c16 = match n.c16 {
            Some((rate, _, _)) => with_ref(
                format!("{rate:.0}"),
                r.and_then(|r| r.c16).map(|c| format!("{c:.0}")),
            ),
            None => "–".to_owned(),
        };
        let c16_ratio = match (n.c16, r.and_then(|r| r.c16)) {
            (Some((rate, _, _)), Some(hola)) => ratio(hola, rate),
            _ => "–".to_owned(),
        };
        let cold = match &n.cold {
            Some((what, samples)) => format!(
                "{}: {}",
                what,
                with_ref(fmt_ms(pct(samples, 50.0)), r.map(|r| fmt_ms(r.cold_p50)))
            ),
            None => "–".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {c16} | {c16_ratio} | {cold} | {} |",
            row.peer,
            row.handler,
            with_ref(fmt_ms(p50), r.map(|r| fmt_ms(r.warm_p50))),
            r.map_or_else(|| "–".to_owned(), |r| ratio(p50, r.warm_p50)),
            with_ref(fmt_ms(p99), r.map(|r| fmt_ms(r.warm_p99))),
            n.how,
        );
    }
    let memory: Vec<(&PeerRow, &PeerMemory)> = rows
        .iter()
        .filter_map(|r| Some((r, r.outcome.as_ref().ok()?.memory.as_ref()?)))
        .collect();
    if memory.is_empty() {
        return;
    }
    println!();
    println!(
        "Peers' memory after their warm runs (serverless-offline: after the c=16 Python run, \
         before any Node.js invoke; its instances are the `sh` + `python3 invoke.py` children)."
    );
    println!();
    println!("| peer | process | RSS | PSS | instances | per instance RSS | per instance PSS |");
    println!("|---|---|---|---|---|---|---|");
    for (row, m) in memory {
        let opt = |v: Option<u64>| v.map_or_else(|| "–".to_owned(), memory::mb);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.peer,
            m.process,
            memory::mb(m.server.rss_kb),
            opt(m.server.pss_kb),
            m.instances,
            opt(m.per_instance.map(|p| p.rss_kb)),
            opt(m.per_instance.and_then(|p| p.pss_kb)),
        );
    }
}
