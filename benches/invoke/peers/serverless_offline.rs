//! serverless-offline on serverless 3: the Python and Node.js no-op handlers through its Lambda
//! Invoke API, warm, at c=16 (Python) and cold with `--reloadHandler`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use holactl::client::Client;

use super::{peer_memory, post, warm, PeerNumbers, PeerProcess, PeerRow, Settings};
use crate::server::free_port;
use crate::{ms, sorted, throughput};

const SLS_SERVICE: &str = "\
service: holabench
frameworkVersion: \"3\"
provider:
  name: aws
  region: us-east-1
  stage: dev
plugins:
  - serverless-offline
functions:
  pynoop:
    handler: handler.handler
    runtime: python3.11
  nodenoop:
    handler: index.handler
    runtime: nodejs20.x
";

/// Writes the serverless service (the same no-op handlers as the holactl fixtures) and a `bin`
/// dir whose `python3` is the real python3.11.
fn sls_project(dir: &Path, node_modules: &Path, python: &Path) -> anyhow::Result<PathBuf> {
    let project = dir.join("sls-project");
    std::fs::create_dir_all(&project)?;
    std::fs::write(project.join("serverless.yml"), SLS_SERVICE)?;
    std::fs::write(
        project.join("handler.py"),
        "def handler(e, c):\n    return {}\n",
    )?;
    std::fs::write(
        project.join("index.mjs"),
        "export const handler = async () => ({});\n",
    )?;
    let link = |target: &Path, at: PathBuf| -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&at);
        std::os::unix::fs::symlink(target, &at).with_context(|| format!("linking {}", at.display()))
    };
    link(node_modules, project.join("node_modules"))?;
    let bin = dir.join("python-bin");
    std::fs::create_dir_all(&bin)?;
    link(python, bin.join("python3"))?;
    link(python, bin.join("python"))?;
    std::fs::create_dir_all(dir.join("home"))?;
    Ok(project)
}

/// Starts `serverless offline start` in `project`; returns it and its lambda port.
async fn start_sls(
    dir: &Path,
    project: &Path,
    node_modules: &Path,
    extra: &[&str],
) -> anyhow::Result<(PeerProcess, u16)> {
    let lambda_port = free_port()?;
    let mut cmd = Command::new("node");
    cmd.arg(node_modules.join("serverless/bin/serverless.js"))
        .args(["offline", "start", "--host", "127.0.0.1", "--lambdaPort"])
        .arg(lambda_port.to_string());
    for flag in ["--httpPort", "--websocketPort", "--albPort"] {
        cmd.arg(flag).arg(free_port()?.to_string());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.args(extra)
        .current_dir(project)
        .env(
            "PATH",
            format!("{}:{path}", dir.join("python-bin").display()),
        )
        .env("HOME", dir.join("home"))
        .env("SLS_TELEMETRY_DISABLED", "1")
        .env("SLS_NOTIFICATIONS_MODE", "off")
        .env("SLS_DEPRECATION_DISABLE", "*");
    let mut peer = PeerProcess::spawn(cmd, dir.join("serverless-offline.log"))?;
    peer.wait_port(lambda_port, Duration::from_secs(120))
        .await
        .context("serverless offline start")?;
    Ok((peer, lambda_port))
}

const SLS_FUNCTIONS: [(&str, &str); 2] = [
    ("python3.11", "holabench-dev-pynoop"),
    ("nodejs20.x", "holabench-dev-nodenoop"),
];

pub(super) async fn serverless_offline(
    dir: &Path,
    node_modules: &Path,
    python: &Path,
    peer: &str,
    s: &Settings,
) -> Vec<PeerRow> {
    let outcomes: Vec<anyhow::Result<PeerNumbers>> =
        match sls_measure(dir, node_modules, python, s).await {
            Ok(numbers) => numbers.into_iter().map(Ok).collect(),
            Err(e) => {
                let why = format!("{e:#}");
                SLS_FUNCTIONS
                    .iter()
                    .map(|_| Err(anyhow!("{why}")))
                    .collect()
            }
        };
    SLS_FUNCTIONS
        .iter()
        .zip(outcomes)
        .map(|((handler, _), outcome)| PeerRow {
            peer: peer.to_owned(),
            handler,
            outcome,
        })
        .collect()
}

async fn sls_measure(
    dir: &Path,
    node_modules: &Path,
    python: &Path,
    s: &Settings,
) -> anyhow::Result<Vec<PeerNumbers>> {
    let project = sls_project(dir, node_modules, python)?;
    let mut out = Vec::new();
    {
        let (peer, port) = start_sls(dir, &project, node_modules, &[]).await?;
        let client = Client::new(&format!("http://127.0.0.1:{port}"), None)?;
        for (handler, function) in SLS_FUNCTIONS {
            let target = post(
                &format!("/2015-03-31/functions/{function}/invocations"),
                b"{}",
            );
            // The first invoke starts the instance.
            target
                .call(&client)
                .await
                .with_context(|| format!("first invoke of {function}"))?;
            let warm = warm(&client, &target, s).await?;
            let mut n = PeerNumbers {
                warm,
                ..Default::default()
            };
            if handler == "python3.11" {
                // An untimed second at c=16 first: serverless-offline starts an instance per
                // concurrent caller (~0.1 s each), which would otherwise dominate the window.
                throughput(&client, &target, 16, Duration::from_secs(1)).await?;
                n.c16 = Some(throughput(&client, &target, 16, s.throughput).await?);
                n.memory = peer_memory("serverless (node)", peer.pid(), Some("invoke.py"));
                n.how = "Lambda Invoke API; an instance is a `sh -c python3 invoke.py` child \
                         (JSON lines on stdin/stdout); cold: `--reloadHandler`, a new instance \
                         per invoke"
                    .to_owned();
            } else {
                n.how = "Lambda Invoke API; the handler runs in a worker thread of the \
                         serverless process; cold: `--reloadHandler`"
                    .to_owned();
            }
            out.push(n);
        }
    }
    // Cold starts: with `--reloadHandler` every invoke gets a new instance.
    if let Err(e) = sls_cold(dir, &project, node_modules, s, &mut out).await {
        for n in &mut out {
            n.how = format!("{}; cold starts not measured: {e:#}", n.how);
        }
    }
    Ok(out)
}

async fn sls_cold(
    dir: &Path,
    project: &Path,
    node_modules: &Path,
    s: &Settings,
    out: &mut [PeerNumbers],
) -> anyhow::Result<()> {
    let (_peer, port) = start_sls(
        dir,
        project,
        node_modules,
        &["--reloadHandler", "--terminateIdleLambdaTime", "1"],
    )
    .await?;
    let client = Client::new(&format!("http://127.0.0.1:{port}"), None)?;
    for ((_, function), n) in SLS_FUNCTIONS.iter().zip(out.iter_mut()) {
        let target = post(
            &format!("/2015-03-31/functions/{function}/invocations"),
            b"{}",
        );
        let mut samples = Vec::with_capacity(s.cold);
        for _ in 0..s.cold {
            tokio::time::sleep(s.settle).await;
            let t = Instant::now();
            target.call(&client).await?;
            samples.push(ms(t.elapsed()));
        }
        n.cold = Some(("invoke with `--reloadHandler`", sorted(samples)));
    }
    Ok(())
}
