//! The processes the bench measures against: the `holactl` server under test, the no-op Rust
//! runtime it deploys, and the bare loopback HTTP server that is the warm baseline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use holactl::client::Client;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// The server under test, stopped when dropped.
pub(crate) struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    /// SIGTERM first, so that the server stops its instances and removes their cgroups.
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(i32::MAX)
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Builds the no-op Rust runtime and returns its path.
pub(crate) fn build_noop_runtime(holactl: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "holactl-testfn"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .context("running cargo build -p holactl-testfn")?;
    ensure!(status.success(), "cargo build -p holactl-testfn failed");
    let bin = holactl
        .parent()
        .context("holactl binary has no parent dir")?
        .join("holactl-noop-runtime");
    ensure!(bin.is_file(), "{} was not built", bin.display());
    Ok(bin)
}

/// Starts `holactl lambda serve` on a free port with `data_dir`, waits until it is healthy and
/// returns it with a client holding the admin token.
pub(crate) async fn start_server(
    holactl: &Path,
    data_dir: &Path,
    extra: &[&str],
) -> anyhow::Result<(Server, Client)> {
    let port = free_port()?;
    let log = data_dir.with_extension("log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(holactl)
        .args(["lambda", "serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("HOLACTL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {}", holactl.display()))?;
    let mut server = Server { child, log };
    let endpoint = format!("http://127.0.0.1:{port}");
    let probe = Client::new(&endpoint, None)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if probe.health().await.is_ok() {
            break;
        }
        if let Some(status) = server.child.try_wait()? {
            bail!("server exited ({status}):\n{}", server.log_tail());
        }
        if Instant::now() > deadline {
            bail!("server not healthy after 30 s:\n{}", server.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = std::fs::read_to_string(data_dir.join("admin.token"))
        .context("reading admin.token")?
        .trim()
        .to_owned();
    Ok((server, Client::new(&endpoint, Some(token))?))
}

/// A trivial hyper server answering `{}` to everything, on its own threads (as a separate
/// server process would be).
pub(crate) fn start_loopback() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|req: Request<Incoming>| async {
                        // Read the request like a real handler would.
                        let _ = req.into_body().collect().await;
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
                        resp.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(resp)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    Ok(addr)
}
