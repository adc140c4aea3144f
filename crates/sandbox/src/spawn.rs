//! The parent side of starting an instance: bind its Runtime API endpoint, start
//! `sandbox-init` with the control socket and output pipe, hand over the spec.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;

use crate::cgroup::Hierarchy;
use crate::init::{InitMessage, CONTROL_FD, READY_TAG};
use crate::instance::{ExitInfo, Instance};
use crate::jail::{self, LISTENER_TAG, RUNTIME_API_ADDR};
use crate::logs::LogCapture;
use crate::runtime_api::{self, ApiState};
use crate::spec::{InstanceSpec, IsolationLevel, NetworkMode, PrepareSpec};
use crate::SandboxError;

/// Where cgroups live.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How instances are started.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Our own binary, re-executed as `<init_program> sandbox-init`.
    pub init_program: PathBuf,
    /// Isolation level for every instance.
    pub level: IsolationLevel,
    /// Captured output kept per invocation, bytes.
    pub log_cap: usize,
    /// A private working directory (the namespaced root is built on `work_dir/root`).
    pub work_dir: PathBuf,
    /// Our runtime files (bootstraps), mounted at `/var/runtime`.
    pub runtime_dir: PathBuf,
    /// Most processes per instance.
    pub max_pids: u32,
}

impl SandboxConfig {
    /// The cgroup directory of this server's instances: named after the work dir, so servers
    /// with different data dirs never touch each other's groups, and a restarted server finds
    /// the groups its previous run left.
    pub fn cgroup_name(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.work_dir.as_os_str().as_encoded_bytes());
        format!("holactl-{}", &hex::encode(digest)[..12])
    }
}

/// Starts instances.
pub struct Sandbox {
    config: SandboxConfig,
    cgroups: Option<Hierarchy>,
    /// Sandboxes prepared ahead of demand.
    pool: std::sync::Mutex<Vec<Prepared>>,
    /// Wakes [`Sandbox::keep_prepared`] when one is taken.
    wanted: tokio::sync::Notify,
    /// Answers the internal API (`/hola/v1/…`) of every instance started afterwards.
    platform: std::sync::OnceLock<std::sync::Arc<dyn crate::platform::PlatformCalls>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("level", &self.config.level)
            .finish_non_exhaustive()
    }
}

fn unavailable(level: IsolationLevel, reason: impl Into<String>) -> SandboxError {
    SandboxError::IsolationUnavailable {
        level,
        reason: reason.into(),
    }
}

impl Sandbox {
    /// Checks that the host can provide `config.level` and returns a sandbox using it.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        if !config.init_program.is_file() {
            return Err(SandboxError::InvalidSpec(format!(
                "init program {} does not exist",
                config.init_program.display()
            )));
        }
        let mut cgroups = None;
        if config.level == IsolationLevel::Namespaces {
            let level = config.level;
            jail::check_host().map_err(|r| unavailable(level, r))?;
            let hierarchy =
                Hierarchy::detect(std::path::Path::new(CGROUP_ROOT), &config.cgroup_name())
                    .map_err(|e| unavailable(level, format!("no usable cgroups: {e}")))?;
            hierarchy
                .prepare()
                .map_err(|e| unavailable(level, format!("cannot create cgroups: {e}")))?;
            let swept = hierarchy.sweep();
            if swept > 0 {
                tracing::info!(swept, "removed instance cgroups left by a previous run");
            }
            std::fs::create_dir_all(config.work_dir.join("root"))?;
            cgroups = Some(hierarchy);
        }
        Ok(Sandbox {
            config,
            cgroups,
            pool: std::sync::Mutex::new(Vec::new()),
            wanted: tokio::sync::Notify::new(),
            platform: std::sync::OnceLock::new(),
        })
    }

    /// Sets the hook that answers the internal API (`/hola/v1/…`) on every instance's Runtime
    /// API endpoint. Once only; later calls are ignored. Without it those paths answer 404.
    pub fn set_platform(&self, hook: std::sync::Arc<dyn crate::platform::PlatformCalls>) {
        let _ = self.platform.set(hook);
    }

    /// The strongest level this host supports.
    pub fn strongest_level() -> IsolationLevel {
        let cgroups_ok = Hierarchy::detect(std::path::Path::new(CGROUP_ROOT), "holactl-probe")
            .is_ok_and(|h| {
                let ok = h.prepare().is_ok();
                h.remove_parent();
                ok
            });
        if jail::check_host().is_ok() && cgroups_ok {
            IsolationLevel::Namespaces
        } else {
            IsolationLevel::Process
        }
    }

    /// The level in force.
    pub fn level(&self) -> IsolationLevel {
        self.config.level
    }

    /// Stops whatever instance is still running and removes this server's cgroups. Call once
    /// the instances are dropped, at shutdown.
    pub fn shutdown(&self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.clear();
        }
        if let Some(h) = &self.cgroups {
            h.sweep();
            h.remove_parent();
        }
    }

    /// Starts an instance. Returns once the process exists; its runtime initialises in the
    /// background and the first [`Instance::invoke`] waits for it. Takes a prepared sandbox
    /// when one is waiting.
    pub async fn spawn(&self, spec: InstanceSpec) -> Result<Instance, SandboxError> {
        let prepared = loop {
            let taken = self.take_prepared(spec.network);
            match taken {
                // A prepared sandbox that died while waiting is dropped (its cleanup runs).
                Some(p) if p.exit.borrow().is_some() => continue,
                Some(p) => break p,
                None => break self.prepare(&spec.instance_id, spec.network).await?,
            }
        };
        self.wanted.notify_one();
        self.launch(prepared, spec).await
    }

    fn take_prepared(&self, network: NetworkMode) -> Option<Prepared> {
        let mut pool = self.pool.lock().ok()?;
        let i = pool.iter().position(|p| p.prepare.network == network)?;
        Some(pool.swap_remove(i))
    }

    /// Keeps `count` sandboxes prepared ahead of demand (isolated network only, the common
    /// case), refilling as they are taken. Runs until the sandbox is dropped.
    pub async fn keep_prepared(&self, count: usize) {
        if count == 0 || self.config.level != IsolationLevel::Namespaces {
            return;
        }
        loop {
            let have = self.pool.lock().map(|p| p.len()).unwrap_or(count);
            if have < count {
                let id = format!("p{}", uuid_like());
                match self.prepare(&id, NetworkMode::Isolated).await {
                    Ok(p) => {
                        if let Ok(mut pool) = self.pool.lock() {
                            pool.push(p);
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot prepare a sandbox ahead of demand");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
            self.wanted.notified().await;
        }
    }

    /// Starts `sandbox-init` and runs the function-independent steps.
    async fn prepare(&self, id: &str, network: NetworkMode) -> Result<Prepared, SandboxError> {
        let level = self.config.level;
        let namespaced = level == IsolationLevel::Namespaces;
        let cgroup = self.cgroups.as_ref().map(|h| h.instance(id));
        let prepare = PrepareSpec {
            instance_id: id.to_owned(),
            level,
            network,
            cgroup: if namespaced { cgroup.clone() } else { None },
            root_mount: self.config.work_dir.join("root"),
            runtime_dir: self.config.runtime_dir.clone(),
            tmp_mb: DEFAULT_TMP_MB,
            memory_mb: PREPARED_MEMORY_MB,
            max_pids: self.config.max_pids,
            uid: jail::SANDBOX_UID,
            gid: jail::SANDBOX_GID,
        };
        // The Runtime API listener: bound here when the instance shares the host's network,
        // created inside the instance's own network namespace otherwise.
        let (host_listener, api_addr) = if namespaced && network == NetworkMode::Isolated {
            (None, RUNTIME_API_ADDR.to_owned())
        } else {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?.to_string();
            (Some(listener), addr)
        };

        let (control, child_control) = std::os::unix::net::UnixStream::pair()?;
        let (out_read, out_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let out_write2: OwnedFd = out_write.try_clone()?;

        let mut cmd = tokio::process::Command::new(&self.config.init_program);
        cmd.arg("sandbox-init")
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_write))
            .stderr(Stdio::from(out_write2));
        let child_fd = child_control.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only calls the
        // async-signal-safe dup2/fcntl on a descriptor this process owns.
        unsafe {
            cmd.pre_exec(move || {
                if child_fd == CONTROL_FD {
                    // dup2 onto itself keeps close-on-exec set; clear it instead.
                    if libc::fcntl(child_fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(child_fd, CONTROL_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(SandboxError::Spawn)?;
        drop(cmd);
        drop(child_control);
        let pid = child.id().unwrap_or(0);

        // Hand over the preparation; read the control socket to EOF in the background: EOF
        // alone means exec succeeded, a message names the failed step.
        control.set_nonblocking(true)?;
        let control = tokio::net::UnixStream::from_std(control)?;
        let (reader, mut writer) = control.into_split();
        let mut line =
            serde_json::to_vec(&prepare).map_err(|e| SandboxError::InvalidSpec(e.to_string()))?;
        line.push(b'\n');
        writer.write_all(&line).await?;
        let (listener_tx, listener_rx) = tokio::sync::oneshot::channel();
        let control_task = tokio::spawn(read_control(reader, listener_tx));

        let (exit_tx, exit_rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await;
            let setup_failure = control_task.await.ok().flatten();
            let mut info = ExitInfo {
                code: status.as_ref().ok().and_then(|s| s.code()),
                signal: status.as_ref().ok().and_then(|s| s.signal()),
                oom: false,
                setup_failure,
            };
            if let Some(cgroup) = cgroup.filter(|_| namespaced) {
                // The runtime is pid 2 under a reaper; its death by signal arrives as 128+n.
                if info.signal.is_none() {
                    if let Some(code) = info.code.filter(|c| *c > 128 && *c < 128 + 65) {
                        info.signal = Some(code - 128);
                        info.code = None;
                    }
                }
                info.oom = tokio::task::spawn_blocking(move || {
                    let oom = cgroup.oom_killed();
                    cgroup.kill_all();
                    if let Err(e) = cgroup.remove() {
                        tracing::warn!(error = %e, "cannot remove an instance cgroup");
                    }
                    oom
                })
                .await
                .unwrap_or(false);
            }
            let _ = exit_tx.send(Some(info));
        });
        Ok(Prepared {
            prepare,
            pid,
            writer: Some(writer),
            host_listener,
            listener_rx: Some(listener_rx),
            api_addr,
            out_read: Some(out_read),
            exit: exit_rx,
        })
    }

    /// Hands the function's spec to a prepared sandbox and wires up its Runtime API and logs.
    async fn launch(
        &self,
        mut p: Prepared,
        mut spec: InstanceSpec,
    ) -> Result<Instance, SandboxError> {
        let spawned_at = Instant::now();
        spec.level = p.prepare.level;
        spec.network = p.prepare.network;
        spec.root_mount = p.prepare.root_mount.clone();
        spec.runtime_dir = p.prepare.runtime_dir.clone();
        spec.cgroup = p.prepare.cgroup.clone();
        spec.uid = p.prepare.uid;
        spec.gid = p.prepare.gid;
        spec.env.retain(|(k, _)| k != "AWS_LAMBDA_RUNTIME_API");
        spec.env
            .push(("AWS_LAMBDA_RUNTIME_API".into(), p.api_addr.clone()));
        spec.validate()?;
        let mut writer = p
            .writer
            .take()
            .ok_or_else(|| SandboxError::InvalidSpec("sandbox already launched".into()))?;
        let mut line =
            serde_json::to_vec(&spec).map_err(|e| SandboxError::InvalidSpec(e.to_string()))?;
        line.push(b'\n');
        writer.write_all(&line).await?;
        writer.shutdown().await?;

        let platform = self
            .platform
            .get()
            .map(|hook| crate::platform::PlatformLink {
                hook: hook.clone(),
                instance_id: spec.instance_id.clone(),
            });
        let (state, (handoff, init_failure, ready)) = ApiState::new(platform);
        let api_task = match (p.host_listener.take(), p.listener_rx.take()) {
            (Some(listener), _) => runtime_api::serve(async move { Some(listener) }, state),
            (None, Some(rx)) => runtime_api::serve(async move { rx.await.ok() }, state),
            (None, None) => runtime_api::serve(async { None }, state),
        };
        let out_read = p
            .out_read
            .take()
            .ok_or_else(|| SandboxError::InvalidSpec("sandbox already launched".into()))?;
        let logs = LogCapture::start(out_read, self.config.log_cap)?;
        let pid = p.pid;
        // The instance now owns the process: the prepared handle must not kill it.
        p.pid = 0;
        Ok(Instance {
            id: spec.instance_id,
            pid,
            handoff,
            init_failure,
            ready,
            exit: p.exit.clone(),
            logs,
            // The wait task is left to finish after a kill: it reaps the process and removes its
            // cgroup.
            tasks: vec![api_task],
            killer: Box::new(move || kill_tree(pid)),
            spawned_at,
            initialized: false,
            broken: false,
        })
    }
}

/// Memory limit of a prepared sandbox until a function claims it, MB.
const PREPARED_MEMORY_MB: u32 = holactl_types::limits::MAX_MEMORY_MB;
/// `/tmp` size of a prepared sandbox until a function claims it, MB.
const DEFAULT_TMP_MB: u32 = holactl_types::limits::DEFAULT_EPHEMERAL_STORAGE_MB;

fn uuid_like() -> String {
    let mut b = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut b)
    });
    hex::encode(b)
}

/// Kills a sandbox: its process group (process level) and the process itself, whose death
/// takes the namespaced tree with it.
fn kill_tree(pid: u32) {
    if pid != 0 {
        let pid = Pid::from_raw(pid as i32);
        let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
        let _ = kill(pid, Signal::SIGKILL);
    }
}

/// A sandbox set up ahead of demand, waiting for a function.
struct Prepared {
    prepare: PrepareSpec,
    /// 0 once launched.
    pid: u32,
    writer: Option<tokio::net::unix::OwnedWriteHalf>,
    host_listener: Option<std::net::TcpListener>,
    listener_rx: Option<tokio::sync::oneshot::Receiver<std::net::TcpListener>>,
    api_addr: String,
    out_read: Option<OwnedFd>,
    exit: tokio::sync::watch::Receiver<Option<ExitInfo>>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        kill_tree(self.pid);
    }
}

/// Reads the control socket to EOF: a listener handed over by the instance goes to
/// `listener_tx`; a failure message is returned; EOF alone means the runtime was exec'd.
async fn read_control(
    control: tokio::net::unix::OwnedReadHalf,
    listener_tx: tokio::sync::oneshot::Sender<std::net::TcpListener>,
) -> Option<(String, String)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let control: &tokio::net::UnixStream = control.as_ref();
    let mut listener_tx = Some(listener_tx);
    let mut data = Vec::new();
    loop {
        if control.readable().await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let received = control.try_io(tokio::io::Interest::READABLE, || {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                control.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(std::io::Error::from)?;
            let mut fds = Vec::new();
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(received) = c {
                        fds.extend(received);
                    }
                }
            }
            Ok((msg.bytes, fds))
        });
        let (n, fds) = match received {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        };
        for fd in fds {
            // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
            let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            let _ = listener.set_nonblocking(true);
            if let Some(tx) = listener_tx.take() {
                let _ = tx.send(listener);
            }
        }
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    // Tags (listener handed over, prepared) come before any failure message.
    let start = data
        .iter()
        .position(|b| *b != LISTENER_TAG && *b != READY_TAG)
        .unwrap_or(data.len());
    let json = &data[start..];
    match serde_json::from_slice::<InitMessage>(json) {
        Ok(InitMessage::Failed { step, message }) => Some((step, message)),
        Err(_) => None,
    }
}
