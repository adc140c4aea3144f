//! Memory: the platform's own and each warm instance's, next to the bare interpreter idling.
//!
//! For each fixture a fresh server (so nothing of the latency sections is left in it):
//!
//! 1. its RSS one second after it is healthy, before any function exists, alone and with the
//!    sandboxes it prepares ahead of demand (children of the server holding only
//!    `sandbox-init` processes);
//! 2. its RSS after the function is deployed, with no instance;
//! 3. `PUT /api/v1/functions/{name}/concurrency` with `{"provisioned": N}` (N = 100 by default,
//!    the API's maximum), then waiting until `GET /api/v1/workers/status` counts N idle
//!    instances; the server's RSS then, and every instance's processes: an instance is a child
//!    of the server whose process subtree holds a process other than `sandbox-init` (at the
//!    `namespaces` level: `sandbox-init`, the sandbox's pid 1 reaper, and the runtime).
//!
//! RSS counts every resident page a process maps, shared or not; PSS (from
//! `/proc/<pid>/smaps_rollup`) divides each shared page among the processes mapping it, so a
//! sum of PSS over processes is what they cost together. The baseline, the bare interpreter
//! idling (`python3.11 -c "import sys; sys.stdin.read()"`, `node -e "setInterval(…)"`, or for
//! `provided` the no-op runtime itself blocked on `GET …/next` against a listener that never
//! answers), is started while the N instances run, so that its shared pages are shared as
//! widely as theirs. The instance's memory cgroup usage (`memory.usage_in_bytes` on cgroup v1,
//! `memory.current` on v2) is reported as well: it also holds the instance's tmpfs root and the
//! page cache it was first to read, and none of the shared interpreter pages of later
//! instances.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use holactl::client::Client;
use holactl_types::concurrency::FunctionConcurrency;

use crate::server::start_server;
use crate::{deploy, Fixture};

/// Memory of a process or a group of processes, in KiB.
#[derive(Clone, Copy, Default)]
pub(crate) struct Mem {
    pub(crate) rss_kb: u64,
    /// `None` without `/proc/<pid>/smaps_rollup`.
    pub(crate) pss_kb: Option<u64>,
}

impl std::ops::Add for Mem {
    type Output = Mem;
    fn add(self, other: Mem) -> Mem {
        Mem {
            rss_kb: self.rss_kb + other.rss_kb,
            pss_kb: self.pss_kb.zip(other.pss_kb).map(|(a, b)| a + b),
        }
    }
}

impl std::iter::Sum for Mem {
    fn sum<I: Iterator<Item = Mem>>(iter: I) -> Mem {
        iter.fold(
            Mem {
                rss_kb: 0,
                pss_kb: Some(0),
            },
            |a, b| a + b,
        )
    }
}

/// Memory of one process; `None` when it is gone.
pub(crate) fn proc_mem(pid: i32) -> Option<Mem> {
    if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        let field = |name: &str| {
            rollup.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        };
        if let Some(rss_kb) = field("Rss:") {
            return Some(Mem {
                rss_kb,
                pss_kb: field("Pss:"),
            });
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status.lines().find_map(|l| {
        l.strip_prefix("VmRSS:")
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    })?;
    Some(Mem {
        rss_kb,
        pss_kb: None,
    })
}

/// The children of every process, from the `ppid` field of `/proc/<pid>/stat`.
pub(crate) fn children_map() -> BTreeMap<i32, Vec<i32>> {
    let mut map: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return map;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; the command name may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            map.entry(ppid).or_default().push(pid);
        }
    }
    map
}

/// `root` and all its descendants, `root` first.
pub(crate) fn subtree(map: &BTreeMap<i32, Vec<i32>>, root: i32) -> Vec<i32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(children) = map.get(&out[i]) {
            out.extend(children);
        }
        i += 1;
    }
    out
}

/// The arguments of a process.
pub(crate) fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn is_sandbox_init(pid: i32) -> bool {
    cmdline(pid).get(1).is_some_and(|a| a == "sandbox-init")
}

/// Bytes charged to the memory cgroup of `pid` (cgroup v1 `memory.usage_in_bytes`, else v2
/// `memory.current`).
fn cgroup_memory(pid: i32) -> Option<u64> {
    let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let read =
        |path: String| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            return read(format!("/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"));
        }
    }
    let path = groups.lines().find_map(|l| l.strip_prefix("0::"))?;
    read(format!("/sys/fs/cgroup{path}/memory.current"))
}

/// One warm instance.
struct Instance {
    total: Mem,
    /// The runtime process (the interpreter, or the `provided` binary).
    runtime: Mem,
    /// The `sandbox-init` processes around it.
    init: Mem,
    init_count: usize,
    cgroup_bytes: Option<u64>,
}

/// The instances and the prepared sandboxes under the server `server_pid`.
fn scan(server_pid: i32) -> (Vec<Instance>, Mem, usize) {
    let map = children_map();
    let mut instances = Vec::new();
    let mut prepared = Vec::new();
    for &child in map.get(&server_pid).map(Vec::as_slice).unwrap_or(&[]) {
        let pids = subtree(&map, child);
        let (inits, others): (Vec<i32>, Vec<i32>) = pids.iter().partition(|&&p| is_sandbox_init(p));
        if others.is_empty() {
            prepared.extend(pids.iter().filter_map(|&p| proc_mem(p)));
            continue;
        }
        let init: Mem = inits.iter().filter_map(|&p| proc_mem(p)).sum();
        let runtime: Mem = others.iter().filter_map(|&p| proc_mem(p)).sum();
        instances.push(Instance {
            total: init + runtime,
            runtime,
            init,
            init_count: inits.len(),
            cgroup_bytes: cgroup_memory(others[0]),
        });
    }
    let n = prepared.len();
    (instances, prepared.into_iter().sum(), n)
}

/// Median of some values.
fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len().checked_sub(1)? / 2).copied()
}

fn median_mem(v: impl Iterator<Item = Mem> + Clone) -> Mem {
    let pss: Option<Vec<u64>> = v.clone().map(|m| m.pss_kb).collect();
    Mem {
        rss_kb: median(v.map(|m| m.rss_kb).collect()).unwrap_or(0),
        pss_kb: pss.and_then(median),
    }
}

/// The bare interpreter idling, killed when dropped.
struct Bare {
    child: Child,
    /// Kept open: the Python baseline waits for its end, the `provided` one for an answer.
    _stdin: Option<std::process::ChildStdin>,
    _listener: Option<TcpListener>,
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Label and process of the bare baseline of `fx`.
fn spawn_bare(fx: &Fixture, noop: &Path) -> anyhow::Result<(&'static str, Bare)> {
    let (_, program, _) = fx.bare;
    let mut listener = None;
    let (label, mut cmd) = if fx.runtime.starts_with("python") {
        let mut cmd = Command::new(program);
        cmd.env_clear().args(["-c", "import sys; sys.stdin.read()"]);
        ("`python3.11 -c \"import sys; sys.stdin.read()\"`", cmd)
    } else if fx.runtime.starts_with("node") {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .args(["-e", "setInterval(() => {}, 1 << 30)"]);
        ("`node -e \"setInterval(…)\"`", cmd)
    } else {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let mut cmd = Command::new(noop);
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", l.local_addr()?.to_string())
            .env("NOOP_MODE", "empty");
        listener = Some(l);
        ("no-op runtime waiting on `next`", cmd)
    };
    let mut child = cmd
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting the bare baseline of {}", fx.label))?;
    let stdin = child.stdin.take();
    Ok((
        label,
        Bare {
            child,
            _stdin: stdin,
            _listener: listener,
        },
    ))
}

/// The memory of one fixture's server and instances.
pub(crate) struct MemoryRow {
    pub(crate) label: &'static str,
    /// Instances asked for (provisioned) and found under the server.
    wanted: usize,
    instances: usize,
    server_start: Mem,
    prepared: Mem,
    prepared_count: usize,
    server_deployed: Mem,
    server_warm: Mem,
    /// Medians over the instances.
    instance: Mem,
    runtime: Mem,
    init: Mem,
    init_count: usize,
    cgroup_bytes: Option<u64>,
    bare_label: &'static str,
    bare: Mem,
}

/// Waits until the server counts `want` idle instances and none busy.
async fn wait_idle(client: &Client, want: u64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = client.platform_status().await?;
        let idle = status.instances.get("idle").copied().unwrap_or(0);
        let busy = status.instances.get("busy").copied().unwrap_or(0);
        if idle == want && busy == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{want} idle instances expected, `GET /api/v1/workers/status` counts {:?} after \
                 {timeout:?}",
                status.instances
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Measures one fixture on a fresh server with `n` provisioned instances.
pub(crate) async fn measure(
    holactl: &Path,
    noop: &Path,
    dir: &Path,
    fx: &Fixture,
    n: usize,
    memory_mb: Option<u32>,
) -> anyhow::Result<MemoryRow> {
    let settle = Duration::from_secs(1);
    let data_dir = dir.join(format!("memory-{}", fx.name));
    let (server, client) = start_server(holactl, &data_dir, &[]).await?;
    let pid = server.pid();
    tokio::time::sleep(settle).await;
    let server_start = proc_mem(pid).context("server memory")?;
    let (_, prepared, prepared_count) = scan(pid);

    let src = dir.join("memory-src");
    std::fs::create_dir_all(&src)?;
    deploy(&client, fx, &src, memory_mb).await?;
    tokio::time::sleep(settle).await;
    let server_deployed = proc_mem(pid).context("server memory")?;

    let wanted = u32::try_from(n).context("instance count")?;
    client
        .set_concurrency(
            fx.name,
            &FunctionConcurrency {
                reserved: None,
                provisioned: Some(wanted),
            },
        )
        .await
        .with_context(|| format!("provisioning {n} instances of {}", fx.name))?;
    wait_idle(&client, u64::from(wanted), Duration::from_secs(180))
        .await
        .with_context(|| format!("{}:\n{}", fx.name, server.log_tail()))?;
    let (bare_label, bare) = spawn_bare(fx, noop)?;
    tokio::time::sleep(settle).await;
    let server_warm = proc_mem(pid).context("server memory")?;
    let (instances, _, _) = scan(pid);
    let bare_mem = proc_mem(i32::try_from(bare.child.id()).unwrap_or(i32::MAX))
        .context("the bare baseline exited")?;
    drop(bare);
    drop(server);
    let cgroups: Option<Vec<u64>> = instances.iter().map(|i| i.cgroup_bytes).collect();
    Ok(MemoryRow {
        label: fx.label,
        wanted: n,
        instances: instances.len(),
        server_start,
        prepared,
        prepared_count,
        server_deployed,
        server_warm,
        instance: median_mem(instances.iter().map(|i| i.total)),
        runtime: median_mem(instances.iter().map(|i| i.runtime)),
        init: median_mem(instances.iter().map(|i| i.init)),
        init_count: median(instances.iter().map(|i| i.init_count as u64).collect()).unwrap_or(0)
            as usize,
        cgroup_bytes: cgroups.and_then(median),
        bare_label,
        bare: bare_mem,
    })
}

/// KiB as MB (10^6 bytes, like `ps`-based tools would round it: one decimal).
pub(crate) fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 * 1024.0 / 1e6)
}

fn mb_signed(kb: f64) -> String {
    format!("{:.2} MB", kb * 1024.0 / 1e6)
}

fn mb_opt(kb: Option<u64>) -> String {
    kb.map_or_else(|| "–".to_owned(), mb)
}

/// Prints the memory tables.
pub(crate) fn report(rows: &[MemoryRow]) {
    println!("### Memory");
    println!();
    let n = rows.first().map_or(0, |r| r.wanted);
    println!(
        "A fresh server per function. RSS counts every resident page a process maps; PSS divides \
         shared pages among the processes sharing them (`/proc/<pid>/smaps_rollup`). \"Warm\": \
         {n} provisioned, idle instances (`PUT …/concurrency {{\"provisioned\": {n}}}`, counted \
         by `GET /api/v1/workers/status` and under the server's processes). MB = 10^6 bytes."
    );
    println!();
    println!(
        "| function | server RSS right after start | prepared sandboxes (RSS / PSS) | server RSS, \
         function deployed | server RSS, {n} warm | server growth per instance (RSS / PSS) |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) if r.instances > 0 => {
                mb_signed((a as f64 - b as f64) / r.instances as f64)
            }
            _ => "–".to_owned(),
        };
        println!(
            "| {} | {} | {} × `sandbox-init`: {} / {} | {} | {} | {} / {} |",
            r.label,
            mb(r.server_start.rss_kb),
            r.prepared_count,
            mb(r.prepared.rss_kb),
            mb_opt(r.prepared.pss_kb),
            mb(r.server_deployed.rss_kb),
            mb(r.server_warm.rss_kb),
            per(Some(r.server_warm.rss_kb), Some(r.server_deployed.rss_kb)),
            per(r.server_warm.pss_kb, r.server_deployed.pss_kb),
        );
    }
    println!();
    println!(
        "Per warm instance (medians over the instances found) against the bare baseline idling, \
         measured while the instances run. Overhead beyond the interpreter = instance PSS + \
         server PSS growth per instance − baseline PSS (RSS likewise)."
    );
    println!();
    println!(
        "| function | instances found | instance RSS (all its processes) | instance PSS | of which \
         runtime process PSS | of which `sandbox-init` processes PSS | memory cgroup usage | \
         baseline | baseline RSS | baseline PSS | overhead beyond the interpreter (PSS) | same \
         with RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let growth = |warm: Option<u64>, deployed: Option<u64>| {
            let (w, d) = (warm? as f64, deployed? as f64);
            (r.instances > 0).then(|| (w - d) / r.instances as f64)
        };
        let beyond = |inst: Option<u64>, growth: Option<f64>, bare: Option<u64>| {
            Some(inst? as f64 + growth? - bare? as f64)
        };
        let pss = beyond(
            r.instance.pss_kb,
            growth(r.server_warm.pss_kb, r.server_deployed.pss_kb),
            r.bare.pss_kb,
        );
        let rss = beyond(
            Some(r.instance.rss_kb),
            growth(Some(r.server_warm.rss_kb), Some(r.server_deployed.rss_kb)),
            Some(r.bare.rss_kb),
        );
        let show = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), mb_signed);
        println!(
            "| {} | {} of {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.instances,
            r.wanted,
            mb(r.instance.rss_kb),
            mb_opt(r.instance.pss_kb),
            mb_opt(r.runtime.pss_kb),
            mb_opt(r.init.pss_kb),
            r.init_count,
            r.cgroup_bytes
                .map_or_else(|| "–".to_owned(), |b| mb(b / 1024)),
            r.bare_label,
            mb(r.bare.rss_kb),
            mb_opt(r.bare.pss_kb),
            show(pss),
            show(rss),
        );
    }
}
