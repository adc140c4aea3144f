//! A real `nats-server` for tests and benches (feature `testing`, and the store's own tests).
//!
//! [`NatsServer::start`] runs `nats-server -js` on a free loopback port with its JetStream
//! storage and its log in a temporary directory, waits until it listens, and kills it (and
//! removes the directory) when dropped. The server runs under a small watchdog shell that also
//! kills it when the test process exits without dropping it (a server kept in a `static`, a
//! process ended by a signal), so no test leaves a server behind.
//!
//! This is test code: [`NatsServer::start`] panics with a clear message (how to install
//! `nats-server`, the server's log) when the server cannot be started;
//! [`NatsServer::try_start_with`] returns the same message as an error.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the binary is looked for before `PATH`: Debian's package first.
const KNOWN_PATHS: [&str; 3] = [
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
    "/usr/local/bin/nats-server",
];

/// What to do when `nats-server` is missing.
pub const INSTALL_HINT: &str = "nats-server is not installed, and these tests need a real \
     one: install it (Debian/Ubuntu: `apt-get install nats-server`; or put the `nats-server` \
     binary on PATH) and run them again";

/// How long the server gets to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the server gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The `nats-server` binary: `/usr/sbin`, `/usr/bin`, `/usr/local/bin`, then `PATH`.
pub fn find_nats_server() -> Option<PathBuf> {
    KNOWN_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join("nats-server"))
                .find(|p| p.is_file())
        })
}

/// [`find_nats_server`], or a panic saying how to install it.
pub fn nats_server_binary() -> PathBuf {
    find_nats_server().unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

/// A loopback port nothing listens on (at the time of the call).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts `bin` with the remaining arguments in the background, its output in `$dir/nats.log`,
/// prints its pid, and waits for its stdin to close: then stops the server (SIGTERM) and
/// removes `dir`.
const WATCHDOG: &str = r#"
    bin="$1"; dir="$2"; shift 2
    "$bin" "$@" >"$dir/nats.log" 2>&1 &
    pid=$!
    echo "$pid"
    read _ignored
    kill "$pid" 2>/dev/null
    wait "$pid"
    rm -rf "$dir"
"#;

/// A running `nats-server -js` on loopback, stopped when dropped.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    url: String,
    pid: u32,
    /// The watchdog shell; closing its stdin stops the server.
    watchdog: Child,
    stdin: Option<ChildStdin>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("url", &self.url)
            .field("pid", &self.pid)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl NatsServer {
    /// A server with JetStream; panics (with the install hint or the server's log) when it
    /// cannot be started.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// [`NatsServer::start`] with extra command-line options (authentication, TLS, …).
    pub fn start_with(extra: &[&str]) -> NatsServer {
        NatsServer::try_start_with(extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`NatsServer::start_with`] returning the failure instead of panicking.
    pub fn try_start_with(extra: &[&str]) -> std::io::Result<NatsServer> {
        let binary = find_nats_server()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, INSTALL_HINT))?;
        let dir = tempfile::Builder::new().prefix("holactl-nats-").tempdir()?;
        let port = free_port();
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(&binary)
            .arg(dir.path())
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path().join("js"))
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("starting sh: {e}")))?;
        let stdin = watchdog.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = watchdog.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        let pid = line.trim().parse().unwrap_or(0);
        let server = NatsServer {
            url: format!("nats://127.0.0.1:{port}"),
            binary,
            port,
            pid,
            watchdog,
            stdin,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let failed = if server.exited() {
                "exited"
            } else if Instant::now() > deadline {
                "did not listen in time"
            } else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            return Err(std::io::Error::other(format!(
                "nats-server ({}) on port {port} {failed}; its log:\n{}",
                server.binary.display(),
                server.log()
            )));
        }
        Ok(server)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (for CPU accounting).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The binary that runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// What `nats-server --version` prints (empty if it cannot be run).
    pub fn version(&self) -> String {
        Command::new(&self.binary)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    /// The temporary directory: JetStream storage in `js/`, the log in `nats.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// Whether the server process is gone (or a zombie the watchdog has not reaped yet).
    fn exited(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with(['Z', 'X'])),
            Err(_) => true,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // The watchdog stops the server and removes its directory.
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.watchdog.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.pid != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}
