//! Helpers of the end-to-end tests: a real `holactl lambda serve` on a free port with its own
//! temporary data dir, a CLI runner with a clean environment, function directories, zips, and
//! small HTTP helpers around the typed client.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use holactl::client::{Answer, Client, Invoked};
use http::Method;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_holactl");

/// How long the server gets to answer its first health check.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The PATH every child process gets: the caller's, so the CLI finds what a user's shell would.
fn path_var() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned())
}

/// Options of a test server.
#[derive(Debug, Default)]
pub struct ServerBuilder {
    idle_ttl: Option<u64>,
    isolation: Option<&'static str>,
    relative_data_dir: bool,
    max_concurrency: Option<u32>,
    log_format: Option<&'static str>,
    env: Vec<(&'static str, String)>,
    extra_args: Vec<String>,
    token: Option<String>,
}

impl ServerBuilder {
    /// Uses this admin token instead of reading `<data-dir>/admin.token`: a cluster node that
    /// did not create the cluster's token has no such file.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// `--idle-ttl SECONDS`.
    pub fn idle_ttl(mut self, seconds: u64) -> Self {
        self.idle_ttl = Some(seconds);
        self
    }

    /// `--max-concurrency N` (the account-wide limit).
    pub fn max_concurrency(mut self, n: u32) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Any other `serve` argument (e.g. `--gateway-listen 127.0.0.1:0`).
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_owned());
        self
    }

    /// `--log-format FORMAT` (`human` or `json`).
    pub fn log_format(mut self, format: &'static str) -> Self {
        self.log_format = Some(format);
        self
    }

    /// An environment variable of the server (`MIN_WORKERS`, `CHECK_INTERVAL`, …).
    pub fn env(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    /// `--isolation LEVEL`.
    pub fn isolation(mut self, level: &'static str) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Passes `--data-dir data` relative to the server's working directory, as a user typing
    /// it would, instead of an absolute path.
    pub fn relative_data_dir(mut self) -> Self {
        self.relative_data_dir = true;
        self
    }

    /// Starts the server and waits until it answers `GET /api/v1/health`.
    pub async fn start(self) -> Server {
        let root = tempfile::Builder::new()
            .prefix("holactl-e2e-")
            .tempdir()
            .expect("creating a temp dir");
        let data_dir = root.path().join("data");
        let home = root.path().join("home");
        let work = root.path().join("work");
        for dir in [&home, &work] {
            std::fs::create_dir_all(dir).expect("creating test dirs");
        }
        let stdout_path = root.path().join("serve.stdout");
        let stderr_path = root.path().join("serve.stderr");
        let mut cmd = Command::new(BIN);
        // Port 0: the kernel picks a free port, and the server announces the address it bound
        // on its first line, so parallel tests never race for a port.
        cmd.args(["lambda", "serve", "--listen", "127.0.0.1:0", "--data-dir"]);
        if self.relative_data_dir {
            cmd.arg("data").current_dir(root.path());
        } else {
            cmd.arg(&data_dir);
        }
        cmd.env_clear()
            .env("PATH", path_var())
            .env("HOME", &home)
            .env("HOLACTL_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).expect("creating serve.stdout"))
            .stderr(std::fs::File::create(&stderr_path).expect("creating serve.stderr"));
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if let Some(ttl) = self.idle_ttl {
            cmd.args(["--idle-ttl", &ttl.to_string()]);
        }
        if let Some(level) = self.isolation {
            cmd.args(["--isolation", level]);
        }
        if let Some(n) = self.max_concurrency {
            cmd.args(["--max-concurrency", &n.to_string()]);
        }
        if let Some(format) = self.log_format {
            cmd.args(["--log-format", format]);
        }
        cmd.args(&self.extra_args);
        // Kept to start the same server again after a kill (`kill` / `start_again`).
        let argv: Vec<std::ffi::OsString> = cmd.get_args().map(ToOwned::to_owned).collect();
        let envs: Vec<(std::ffi::OsString, std::ffi::OsString)> = cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        let child = cmd.spawn().expect("starting holactl lambda serve");
        let mut server = Server {
            child: Some(child),
            endpoint: String::new(),
            token: String::new(),
            client: None,
            data_dir,
            home,
            work,
            stdout_path,
            stderr_path,
            counter: std::sync::atomic::AtomicUsize::new(0),
            given_token: self.token,
            argv,
            envs,
            root,
        };
        server.wait_ready().await;
        server
    }
}

/// A running `holactl lambda serve`, stopped (SIGTERM, then SIGKILL after 5 s) on drop.
pub struct Server {
    child: Option<Child>,
    endpoint: String,
    token: String,
    client: Option<Client>,
    data_dir: PathBuf,
    home: PathBuf,
    work: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    counter: std::sync::atomic::AtomicUsize,
    /// The admin token given to the builder, if any (else read from the data dir).
    given_token: Option<String>,
    /// The command line and environment it was started with.
    argv: Vec<std::ffi::OsString>,
    envs: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    // Last: removed after the server is gone.
    root: tempfile::TempDir,
}

impl Server {
    /// A server with default options.
    pub async fn start() -> Server {
        ServerBuilder::default().start().await
    }

    /// A server with options.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "holactl lambda serve exited during start with {status}\n{}",
                    self.server_log()
                );
            }
            if self.endpoint.is_empty() {
                let out = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
                if let Some(url) = out
                    .lines()
                    .find_map(|l| l.split_once("serving on ").map(|(_, u)| u.trim()))
                {
                    self.endpoint = url.to_owned();
                }
            }
            if !self.endpoint.is_empty() {
                let probe = Client::new(&self.endpoint, None).expect("endpoint");
                if probe.health().await.is_ok() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the server did not answer GET /api/v1/health within {START_TIMEOUT:?}\n{}",
                self.server_log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.token = match &self.given_token {
            Some(token) => token.clone(),
            None => std::fs::read_to_string(self.data_dir.join("admin.token"))
                .expect("reading <data-dir>/admin.token")
                .trim()
                .to_owned(),
        };
        assert!(!self.token.is_empty(), "the admin token file is empty");
        self.client = Some(Client::new(&self.endpoint, Some(self.token.clone())).expect("client"));
    }

    /// A client authenticated with the admin token.
    pub fn client(&self) -> Client {
        self.client.clone().expect("server started")
    }

    /// A client with another token (or none).
    pub fn client_with_token(&self, token: Option<&str>) -> Client {
        Client::new(&self.endpoint, token.map(str::to_owned)).expect("client")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The admin token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A scratch directory for the test (the default cwd of [`Server::cli`]).
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The processes of this server's function instances (everything it started).
    ///
    /// Sandboxes prepared ahead of demand (a `sandbox-init` process with no children, waiting
    /// for a function) are not instances and are left out.
    pub fn instance_processes(&self) -> Vec<Proc> {
        let all = descendants(self.pid());
        all.iter()
            .filter(|p| {
                let waiting = p.cmdline.ends_with("sandbox-init")
                    && !all.iter().any(|c| parent_of(c.pid) == Some(p.pid));
                !waiting
            })
            .cloned()
            .collect()
    }

    /// What the server printed so far, for failure messages.
    pub fn server_log(&self) -> String {
        format!(
            "--- server stdout ---\n{}\n--- server stderr ---\n{}",
            std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        )
    }

    /// What the server wrote to stderr so far (its platform log).
    pub fn server_stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Like [`assert_success`], with the end of the server's log in the message.
    pub fn assert_success(&self, out: &Output, what: &str) {
        if !out.status.success() {
            let log = self.server_log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            assert_success(
                out,
                &format!("{what} (server log tail:\n{})", tail.join("\n")),
            );
        }
    }

    /// Runs `holactl ARGS` as a CLI client of this server, in the work dir.
    pub fn cli<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cli_in(&self.work, args)
    }

    /// Runs `holactl ARGS` as a CLI client of this server, in `cwd`.
    pub fn cli_in<I, S>(&self, cwd: &Path, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cli_with(cwd, &[("HOLACTL_TOKEN", &self.token)], args)
    }

    /// Runs `holactl ARGS` in `cwd` with this server's endpoint and the given extra variables
    /// (e.g. another `HOLACTL_TOKEN`).
    pub fn cli_with<I, S>(&self, cwd: &Path, env: &[(&str, &str)], args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all = vec![("HOLACTL_ENDPOINT", self.endpoint.as_str())];
        all.extend_from_slice(env);
        run_cli(cwd, &self.home, &all, args)
    }

    /// Writes a function directory from (path, content, executable) tuples and returns it.
    pub fn function_dir(&self, name: &str, files: &[(&str, &str, bool)]) -> PathBuf {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = self.root.path().join("src").join(format!("{name}-{n}"));
        write_files(&dir, files);
        dir
    }

    /// Writes a function directory and deploys it with `holactl lambda deploy NAME --source DIR
    /// EXTRA…`; panics unless the CLI succeeds.
    pub fn deploy(&self, name: &str, files: &[(&str, &str, bool)], extra: &[&str]) -> Output {
        let dir = self.function_dir(name, files);
        self.deploy_dir(name, &dir, extra)
    }

    /// Deploys an existing directory; panics unless the CLI succeeds.
    pub fn deploy_dir(&self, name: &str, dir: &Path, extra: &[&str]) -> Output {
        let mut args: Vec<&OsStr> = vec![
            "lambda".as_ref(),
            "deploy".as_ref(),
            name.as_ref(),
            "--source".as_ref(),
            dir.as_os_str(),
        ];
        args.extend(extra.iter().map(|a| OsStr::new(*a)));
        let out = self.cli(args);
        self.assert_success(&out, &format!("deploy {name}"));
        out
    }

    /// Invokes `name` with a JSON payload through the typed client.
    pub async fn invoke(&self, name: &str, payload: &Value) -> Invoked {
        self.client()
            .invoke(name, Bytes::from(payload.to_string()), false)
            .await
            .unwrap_or_else(|e| panic!("invoke {name}: {e}\n{}", self.server_log()))
    }

    /// Sends a request with the admin token and returns the raw answer.
    pub async fn request(&self, method: Method, path: &str, body: Option<(&str, Bytes)>) -> Answer {
        send(&self.client(), method, path, body).await
    }

    /// Sends JSON with the admin token.
    pub async fn request_json(&self, method: Method, path: &str, body: &Value) -> Answer {
        self.request(
            method,
            path,
            Some(("application/json", Bytes::from(body.to_string()))),
        )
        .await
    }

    /// The names of the functions the server has.
    pub async fn function_names(&self) -> Vec<String> {
        self.client()
            .list_functions()
            .await
            .expect("list functions")
            .functions
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    /// Sends SIGTERM and waits (at most 5 s) for the server to exit; returns how it exited and
    /// how long that took.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("server running");
        let started = Instant::now();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the server") {
                return (status, started.elapsed());
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let status = child.wait().expect("waiting for the server");
                return (status, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}

/// Runs `holactl ARGS` in `cwd` with a clean environment: PATH, HOME and `env` only.
pub fn run_cli<I, S>(cwd: &Path, home: &Path, env: &[(&str, &str)], args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", path_var())
        .env("HOME", home)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running holactl")
}

/// The CLI's stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The CLI's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Panics with the CLI's output unless it exited 0.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: expected success, got {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Panics with the CLI's output unless it exited non-zero.
pub fn assert_failure(out: &Output, what: &str) {
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "{what}: expected a non-zero exit, got {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Writes `files` (path, content, executable) under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str, bool)]) {
    use std::os::unix::fs::PermissionsExt;
    for (path, content, executable) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
        std::fs::write(&path, content).expect("writing a function file");
        let mode = if *executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// Sends a request with `client` and returns the raw answer.
pub async fn send(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<(&str, Bytes)>,
) -> Answer {
    let body = body.map(|(ct, b)| (ct, Full::new(b).map_err(|never| match never {}).boxed()));
    client
        .send(method.clone(), path, &[], body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// An answer's body as JSON.
pub fn json(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
        panic!(
            "status {}: body is not JSON ({e}): {:?}",
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(500)])
        )
    })
}

/// Asserts an API error: status, `error.code`, and a request id; returns the `error` object.
pub fn assert_api_error(answer: &Answer, status: u16, code: &str) -> Value {
    let body = json(answer);
    assert_eq!(
        (answer.status.as_u16(), body["error"]["code"].as_str()),
        (status, Some(code)),
        "unexpected error answer: {body}"
    );
    assert!(
        answer
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "errors are JSON: {:?}",
        answer.headers
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without a message: {body}"
    );
    body["error"].clone()
}

/// The invoke answer's body as JSON.
pub fn invoked_json(invoked: &Invoked) -> Value {
    json(&invoked.answer)
}

/// Creates queue `queue` and a trigger delivering its messages to `function` in batches of
/// `batch`.
pub async fn queue_with_trigger(client: &Client, queue: &str, function: &str, batch: u32) {
    client
        .create_queue(&holactl_types::queue::CreateQueueRequest {
            name: queue.into(),
            ..Default::default()
        })
        .await
        .expect("create queue");
    client
        .create_trigger(&holactl_types::queue::CreateTriggerRequest {
            queue: queue.into(),
            function: function.into(),
            batch_size: Some(batch),
            ..Default::default()
        })
        .await
        .expect("create trigger");
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A process of a function instance, as the host sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proc {
    /// Host pid.
    pub pid: u32,
    /// Its pid inside its own (innermost) pid namespace: what `os.getpid()` returns there. The
    /// same as `pid` when instances share the host's pid namespace.
    pub ns_pid: u32,
    /// Its command line, spaces between arguments.
    pub cmdline: String,
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may contain anything, so split at the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn ns_pid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// Every live process descended from `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<Proc> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for &pid in children.get(&parent).into_iter().flatten() {
            queue.push(pid);
            if process_gone(pid) {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            out.push(Proc {
                pid,
                ns_pid: ns_pid_of(pid).unwrap_or(pid),
                cmdline: cmdline.trim().to_owned(),
            });
        }
    }
    out
}

/// Whether a process is gone (no `/proc/PID`, or only an unreaped zombie).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Waits (at most 5 s) until every process in `procs` is gone.
pub async fn wait_gone(procs: &[Proc]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<&Proc> = procs.iter().filter(|p| !process_gone(p.pid)).collect();
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "instance processes still alive after 5 s: {alive:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One zip entry for [`zip`].
pub enum Entry<'a> {
    /// A regular file with a unix mode.
    File(&'a str, &'a [u8], u32),
    /// A symlink and its target.
    Symlink(&'a str, &'a str),
}

/// Builds a zip archive.
pub fn zip(entries: &[Entry<'_>]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for entry in entries {
        match entry {
            Entry::File(name, content, mode) => {
                w.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode))
                    .expect("zip entry");
                w.write_all(content).expect("zip write");
            }
            Entry::Symlink(name, target) => {
                w.add_symlink(*name, *target, SimpleFileOptions::default())
                    .expect("zip symlink");
            }
        }
    }
    w.finish().expect("zip finish").into_inner()
}

/// Every route the server declares, read from the `.route(…)` calls in `crates/server/src/`
/// (the router and the sub-routers it merges), as (path, methods): the tests that must cover
/// every route (auth, OpenAPI) follow the server as it grows instead of a list that goes stale.
pub fn router_routes() -> Vec<(String, Vec<&'static str>)> {
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir)
            .expect("reading crates/server/src")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/server/src"),
        &mut files,
    );
    files.sort();
    let mut routes: Vec<(String, Vec<&'static str>)> = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("reading a server source");
        // Unit tests (at the bottom of a file) build routers of their own.
        let source = source.split("#[cfg(test)]").next().unwrap_or_default();
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            // The call's arguments: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let Some(end) = rest.char_indices().find_map(|(i, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(i)
            }) else {
                break;
            };
            let args = &rest[..end];
            let Some(route) = args.split('"').nth(1).filter(|r| r.starts_with('/')) else {
                continue;
            };
            let methods: Vec<&'static str> = ["get", "post", "put", "patch", "delete"]
                .into_iter()
                .filter(|m| {
                    args.match_indices(&format!("{m}(")).any(|(i, _)| {
                        !args[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    })
                })
                .collect();
            match routes.iter_mut().find(|(p, _)| p == route) {
                Some((_, known)) => known.extend(methods),
                None => routes.push((route.to_owned(), methods)),
            }
        }
    }
    assert!(
        routes.len() >= 11 && routes.iter().all(|(_, m)| !m.is_empty()),
        "could not read the routes of crates/server/src: {routes:?}"
    );
    routes
}

/// The text of a fixture under `tests/fixtures/`.
pub fn fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The Python probe (`tests/fixtures/python/lambda_function.py`) as function files.
pub fn python_probe() -> Vec<(&'static str, String, bool)> {
    vec![(
        "lambda_function.py",
        fixture("python/lambda_function.py"),
        false,
    )]
}

/// Borrows owned file tuples as the `&[(&str, &str, bool)]` the helpers take.
pub fn borrow_files<'a>(files: &'a [(&'a str, String, bool)]) -> Vec<(&'a str, &'a str, bool)> {
    files.iter().map(|(p, c, x)| (*p, c.as_str(), *x)).collect()
}

/// Deploys the Python probe as `name` (python3.11) with extra deploy flags.
pub fn deploy_python_probe(server: &Server, name: &str, extra: &[&str]) {
    let files = python_probe();
    let mut args = vec!["--runtime", "python3.11"];
    args.extend_from_slice(extra);
    server.deploy(name, &borrow_files(&files), &args);
}

/// Asserts the invoke succeeded (no error code, HTTP 200) and returns its body.
pub fn assert_invoke_ok(invoked: &Invoked) -> Value {
    let a = &invoked.answer;
    assert_eq!(
        (a.status.as_u16(), invoked.error_code()),
        (200, None),
        "invoke failed: {}",
        String::from_utf8_lossy(&a.body)
    );
    assert!(
        a.header("x-hola-function-error").is_none(),
        "function error header on a success"
    );
    invoked_json(invoked)
}

impl Server {
    /// Runs `holactl ARGS` as a client of this server (clean environment, in the work dir)
    /// with `input` on stdin.
    pub fn cli_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(&self.work)
            .env_clear()
            .env("PATH", path_var())
            .env("HOME", &self.home)
            .env("HOLACTL_ENDPOINT", &self.endpoint)
            .env("HOLACTL_TOKEN", &self.token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running holactl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("writing stdin");
        child.wait_with_output().expect("waiting for holactl")
    }

    /// Kills the server with SIGKILL (no graceful shutdown) and leaves it down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed server again with the same command line, environment and data dir;
    /// the endpoint may change (unless `--listen` named a port).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        let mut cmd = Command::new(BIN);
        cmd.args(&self.argv)
            .current_dir(self.root.path())
            .env_clear()
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&self.stdout_path).expect("creating serve.stdout"))
            .stderr(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.stderr_path)
                    .expect("opening serve.stderr"),
            );
        self.child = Some(cmd.spawn().expect("restarting holactl lambda serve"));
        self.endpoint.clear();
        self.client = None;
        self.wait_ready().await;
    }

    /// Kills the server with SIGKILL (no graceful shutdown), then starts it again on the same
    /// data dir; the endpoint may change.
    pub async fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut cmd = Command::new(BIN);
        cmd.args(["lambda", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&self.data_dir)
            .env_clear()
            .env("PATH", path_var())
            .env("HOME", &self.home)
            .env("HOLACTL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&self.stdout_path).expect("creating serve.stdout"))
            .stderr(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.stderr_path)
                    .expect("opening serve.stderr"),
            );
        self.child = Some(cmd.spawn().expect("restarting holactl lambda serve"));
        self.endpoint.clear();
        self.client = None;
        self.wait_ready().await;
    }
}
