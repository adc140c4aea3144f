//! Where the peers live and how they get there: `npm install --prefix` and `pip install
//! --target` into the cache dir, each once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use super::{CARGO_LAMBDA, LAMBDA_LOCAL, SERVERLESS, SERVERLESS_OFFLINE};

pub(super) fn peers_dir(holactl: &Path) -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("HOLA_BENCH_PEERS_DIR") {
        Some(d) => PathBuf::from(d),
        None => holactl
            .parent()
            .and_then(Path::parent)
            .context("no target dir above the holactl binary")?
            .join("bench-peers"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The real `python3.11` binary (not a pyenv shim script).
pub(super) fn real_python311() -> anyhow::Result<PathBuf> {
    let mut candidates = vec![
        PathBuf::from("/usr/bin/python3.11"),
        PathBuf::from("/usr/local/bin/python3.11"),
    ];
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    if let Some(versions) = pyenv.map(|p| p.join("versions")) {
        if let Ok(entries) = std::fs::read_dir(versions) {
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("3.11"))
                .map(|e| e.path().join("bin/python3.11"))
                .collect();
            found.sort();
            candidates.extend(found);
        }
    }
    candidates
        .into_iter()
        .find(|p| is_elf(p))
        .context("no python3.11 binary in /usr/bin, /usr/local/bin or pyenv's versions")
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The last lines of a log, on one line.
pub(super) fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

/// Runs an installer to completion, its output in `log`.
pub(super) fn run_logged(cmd: &mut Command, log: &Path, timeout: Duration) -> anyhow::Result<()> {
    let out = std::fs::File::create(log)?;
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            ensure!(status.success(), "{what}: {status}: {}", tail(log, 3));
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what}: no answer after {timeout:?}: {}", tail(log, 3));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The version in an installed npm package's `package.json`.
fn npm_version(node_modules: &Path, package: &str) -> Option<String> {
    let raw = std::fs::read(node_modules.join(package).join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    json.get("version")?.as_str().map(str::to_owned)
}

/// `npm install --prefix <dir>/npm` of the pinned npm peers, unless they are there.
pub(super) fn install_npm(dir: &Path) -> anyhow::Result<PathBuf> {
    let prefix = dir.join("npm");
    let node_modules = prefix.join("node_modules");
    let wanted = [
        ("serverless", SERVERLESS),
        ("serverless-offline", SERVERLESS_OFFLINE),
        ("lambda-local", LAMBDA_LOCAL),
    ];
    let installed = |nm: &Path| {
        wanted
            .iter()
            .all(|(p, v)| npm_version(nm, p).as_deref() == Some(*v))
    };
    if installed(&node_modules) {
        return Ok(node_modules);
    }
    std::fs::create_dir_all(&prefix)?;
    eprintln!("bench: installing the npm peers into {}", prefix.display());
    run_logged(
        Command::new("npm")
            .arg("install")
            .arg("--prefix")
            .arg(&prefix)
            .args(["--no-audit", "--no-fund", "--loglevel=error"])
            .args(wanted.iter().map(|(p, v)| format!("{p}@{v}"))),
        &dir.join("npm-install.log"),
        Duration::from_secs(600),
    )?;
    ensure!(
        installed(&node_modules),
        "npm install ended but {:?} are not all in {}",
        wanted,
        node_modules.display()
    );
    Ok(node_modules)
}

/// `pip install --target <dir>/pypi cargo-lambda==…`, unless it is there; returns the binary.
pub(super) fn install_cargo_lambda(dir: &Path, python: &Path) -> anyhow::Result<PathBuf> {
    let target = dir.join("pypi");
    let bin = target.join("bin/cargo-lambda");
    let marker = target.join(format!("cargo_lambda-{CARGO_LAMBDA}.dist-info"));
    if bin.is_file() && marker.is_dir() {
        return Ok(bin);
    }
    eprintln!("bench: installing cargo-lambda into {}", target.display());
    run_logged(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--upgrade",
                "--no-deps",
                "--no-input",
            ])
            .args(["--disable-pip-version-check", "--target"])
            .arg(&target)
            .arg(format!("cargo-lambda=={CARGO_LAMBDA}")),
        &dir.join("pip-install.log"),
        Duration::from_secs(600),
    )?;
    ensure!(bin.is_file(), "pip install ended without {}", bin.display());
    Ok(bin)
}
