//! lambda-local: the Node.js no-op handler through `--watch`, and its one-shot CLI run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use holactl::client::Client;

use super::{peer_memory, post, warm, PeerNumbers, PeerProcess, Settings};
use crate::server::free_port;
use crate::{ms, sorted};

pub(super) async fn lambda_local(
    dir: &Path,
    node_modules: &Path,
    s: &Settings,
) -> anyhow::Result<PeerNumbers> {
    let project = dir.join("lambda-local-fn");
    std::fs::create_dir_all(&project)?;
    let index = project.join("index.js");
    let event = project.join("event.json");
    std::fs::write(&index, "exports.handler = async () => ({});\n")?;
    std::fs::write(&event, "{}\n")?;
    let cli = node_modules.join("lambda-local/build/cli.js");
    let port = free_port()?;
    let mut cmd = Command::new("node");
    cmd.arg(&cli)
        .arg("-l")
        .arg(&index)
        .args(["-h", "handler", "-v", "0", "-W"])
        .arg(port.to_string())
        .current_dir(&project);
    let mut peer = PeerProcess::spawn(cmd, dir.join("lambda-local.log"))?;
    peer.wait_port(port, Duration::from_secs(60))
        .await
        .context("lambda-local --watch")?;
    let client = Client::new(&format!("http://127.0.0.1:{port}"), None)?;
    let target = post("/", br#"{"event":{}}"#);
    target.call(&client).await.context("first invoke")?;
    let warm = warm(&client, &target, s).await?;
    let memory = peer_memory("lambda-local (node)", peer.pid(), None);
    drop(peer);
    // Its one-shot CLI run: a fresh Node.js process loads lambda-local and the handler.
    let mut one_shot = Vec::new();
    for _ in 0..s.cold.min(10) {
        tokio::time::sleep(s.settle).await;
        let t = Instant::now();
        let status = Command::new("node")
            .arg(&cli)
            .arg("-l")
            .arg(&index)
            .args(["-h", "handler", "-v", "0", "-e"])
            .arg(&event)
            .current_dir(&project)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("lambda-local one-shot run")?;
        one_shot.push(ms(t.elapsed()));
        ensure!(status.success(), "lambda-local one-shot run: {status}");
    }
    Ok(PeerNumbers {
        warm,
        c16: None,
        cold: Some(("one-shot CLI run (`-e event.json`)", sorted(one_shot))),
        memory,
        how: "`--watch`: `POST /` with `{\"event\":{}}`; the handler runs inside the lambda-local \
              process (CommonJS), no instances"
            .to_owned(),
    })
}
