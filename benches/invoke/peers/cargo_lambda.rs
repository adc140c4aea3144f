//! cargo-lambda: `cargo lambda watch --only-lambda-apis` with the no-op runtime rebuilt for its
//! `/.rt` Runtime API prefix.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context};
use holactl::client::Client;

use super::install::{install_cargo_lambda, run_logged};
use super::{peer_memory, post, warm, KillOnDrop, PeerNumbers, PeerProcess, Settings};
use crate::server::free_port;
use crate::throughput;

/// The no-op runtime's source with cargo-lambda's `/.rt` prefix in its Runtime API paths.
fn prefixed_noop_source() -> anyhow::Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/testfn/src/main.rs");
    let src =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = src.clone();
    for old in [
        "\"/2018-06-01/runtime/invocation/next\"",
        "\"/2018-06-01/runtime/invocation/{id}/response\"",
    ] {
        ensure!(
            out.matches(old).count() == 1,
            "cannot adapt {} to cargo-lambda's `/.rt` prefix: {old} not found once",
            path.display()
        );
        out = out.replace(old, &old.replacen('/', "/.rt/", 1));
    }
    Ok(out)
}

/// Builds the `/.rt` copy of the no-op runtime; returns the crate dir and the binary.
fn build_prefixed_noop(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let krate = dir.join("cargo-lambda-fn");
    std::fs::create_dir_all(krate.join("src"))?;
    // `[workspace]`: a workspace of its own, not a member of the repository's.
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"noop-rt\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [workspace]\n\n[profile.release]\ncodegen-units = 1\n",
    )?;
    let main = krate.join("src/main.rs");
    let src = prefixed_noop_source()?;
    if std::fs::read_to_string(&main).ok().as_deref() != Some(src.as_str()) {
        std::fs::write(&main, src)?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target_dir = krate.join("target");
    run_logged(
        Command::new(cargo)
            .args([
                "build",
                "--release",
                "--offline",
                "--quiet",
                "--manifest-path",
            ])
            .arg(krate.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir),
        &dir.join("cargo-lambda-fn-build.log"),
        Duration::from_secs(600),
    )?;
    Ok((krate, target_dir.join("release/noop-rt")))
}

pub(super) async fn cargo_lambda(
    dir: &Path,
    python: &Path,
    s: &Settings,
) -> anyhow::Result<PeerNumbers> {
    let bin = install_cargo_lambda(dir, python).context("pip install cargo-lambda")?;
    let (krate, runtime) = build_prefixed_noop(dir)?;
    let port = free_port()?;
    let mut cmd = Command::new(&bin);
    cmd.args([
        "lambda",
        "watch",
        "--only-lambda-apis",
        "-A",
        "127.0.0.1",
        "-P",
    ])
    .arg(port.to_string())
    .current_dir(&krate);
    let mut peer = PeerProcess::spawn(cmd, dir.join("cargo-lambda.log"))?;
    peer.wait_port(port, Duration::from_secs(60))
        .await
        .context("cargo lambda watch")?;
    let spawn_runtime = || -> anyhow::Result<KillOnDrop> {
        Command::new(&runtime)
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
            .env("NOOP_MODE", "empty")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .context("starting the no-op runtime")
    };
    let mut runtimes = vec![spawn_runtime()?];
    let client = Client::new(&format!("http://127.0.0.1:{port}"), None)?;
    let target = post("/2015-03-31/functions/_/invocations", b"{}");
    target.call(&client).await.context("first invoke")?;
    let warm = warm(&client, &target, s).await?;
    for _ in 1..16 {
        runtimes.push(spawn_runtime()?);
    }
    throughput(&client, &target, 16, Duration::from_secs(1)).await?;
    let c16 = throughput(&client, &target, 16, s.throughput).await?;
    let memory = peer_memory("cargo-lambda", peer.pid(), None);
    drop(runtimes);
    Ok(PeerNumbers {
        warm,
        c16: Some(c16),
        cold: None,
        memory,
        how: "`cargo lambda watch --only-lambda-apis`; the no-op runtime rebuilt with `/.rt` \
              paths, 1 process (16 for c=16); no cold start of its own"
            .to_owned(),
    })
}
