//! The `holactl lambda serve` nodes the cluster bench measures against, each stopped when its
//! handle is dropped (also on error or panic), so the bench leaves nothing running. The
//! `nats-server` is `holactl_store::nats::testing::NatsServer`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use holactl::client::Client;

/// How long a node gets to answer its first health check.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node gets to exit after SIGTERM (it stops its instances first).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// SIGTERM, then SIGKILL if `child` has not exited within `grace`.
fn stop(child: &mut Child, grace: Duration) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How a node stores its state.
pub(crate) enum Store<'a> {
    Embedded,
    Nats {
        url: &'a str,
        namespace: &'a str,
        master_key: &'a str,
    },
}

/// A running `holactl lambda serve`, stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Node {
    child: Child,
    log: PathBuf,
    pub(crate) client: Client,
    /// The admin token (the cluster's, for a cluster node).
    pub(crate) token: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        stop(&mut self.child, STOP_TIMEOUT);
    }
}

impl Node {
    /// Starts a node with its own data dir `<dir>/data` on a free port and waits until it is
    /// healthy. `token`: the cluster's admin token when this node did not create it (only the
    /// node that created it has `<data dir>/admin.token`).
    pub(crate) async fn start(
        holactl: &Path,
        dir: &Path,
        store: &Store<'_>,
        isolation: Option<&str>,
        token: Option<&str>,
    ) -> anyhow::Result<Node> {
        std::fs::create_dir_all(dir)?;
        let data_dir = dir.join("data");
        let log = dir.join("serve.log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(holactl);
        // Port 0: the node prints the address it bound on its first line.
        cmd.args(["lambda", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env("HOLACTL_LOG", "warn")
            .env("NO_COLOR", "1")
            // Nothing of the caller's environment may turn the embedded node into a cluster
            // node or give it another key.
            .env_remove("HOLACTL_NATS_URL")
            .env_remove("HOLACTL_NATS_NAMESPACE")
            .env_remove("HOLACTL_MASTER_KEY")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        if let Some(level) = isolation {
            cmd.args(["--isolation", level]);
        }
        if let Store::Nats {
            url,
            namespace,
            master_key,
        } = store
        {
            cmd.args(["--nats", url, "--nats-namespace", namespace])
                .env("HOLACTL_MASTER_KEY", master_key);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", holactl.display()))?;
        let mut node = Node {
            child,
            log,
            // Replaced once the address is known.
            client: Client::new("http://127.0.0.1:1", None)?,
            token: String::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let mut endpoint = None;
        loop {
            if let Some(status) = node.child.try_wait()? {
                bail!("node exited during start ({status}):\n{}", node.log_tail());
            }
            if endpoint.is_none() {
                endpoint = std::fs::read_to_string(&node.log)
                    .unwrap_or_default()
                    .lines()
                    .find_map(|l| {
                        l.split_once("serving on ")
                            .map(|(_, u)| u.trim().to_owned())
                    });
            }
            if let Some(endpoint) = &endpoint {
                let probe = Client::new(endpoint, None)?;
                if probe.health().await.is_ok() {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "node not healthy after {START_TIMEOUT:?}:\n{}",
                    node.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let token = match token {
            Some(t) => t.to_owned(),
            None => std::fs::read_to_string(data_dir.join("admin.token"))
                .context("reading admin.token (the first node of a cluster creates it)")?
                .trim()
                .to_owned(),
        };
        let endpoint = endpoint.context("no endpoint")?;
        node.client = Client::new(&endpoint, Some(token.clone()))?;
        node.token = token;
        Ok(node)
    }

    pub(crate) fn log_tail(&self) -> String {
        tail(&self.log, 30)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `/proc` counts CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time (user + system, all threads) a process has used so far, in seconds; 0 when it
/// cannot be read.
pub(crate) fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: field 3 (state) first; utime and stime are
    // fields 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

/// Every process below `roots` (children, grandchildren, …; not the roots), with its CPU
/// time so far in seconds.
pub(crate) fn descendants_cpu(roots: &[u32]) -> std::collections::BTreeMap<u32, f64> {
    let mut parent = std::collections::BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // Field 4 (ppid) is the second after the command name.
            if let Some(ppid) = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
            {
                parent.insert(pid, ppid);
            }
        }
    }
    let below = |mut pid: u32| {
        while let Some(&p) = parent.get(&pid) {
            if roots.contains(&p) {
                return true;
            }
            pid = p;
        }
        false
    };
    parent
        .keys()
        .filter(|&&pid| below(pid))
        .map(|&pid| (pid, process_cpu(pid)))
        .collect()
}

/// Busy CPU time of the whole machine so far (every CPU, everything but idle and iowait), in
/// seconds.
pub(crate) fn machine_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    busy / TICKS_PER_SECOND
}
