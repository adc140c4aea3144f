//! The parent side of starting an instance: bind its Runtime API endpoint, start
//! `sandbox-init` with the control socket and output pipe, hand over the spec.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::init::{InitMessage, CONTROL_FD};
use crate::instance::{ExitInfo, Instance};
use crate::logs::LogCapture;
use crate::runtime_api::{self, ApiState};
use crate::spec::{InstanceSpec, IsolationLevel};
use crate::SandboxError;

/// How instances are started.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Our own binary, re-executed as `<init_program> sandbox-init`.
    pub init_program: PathBuf,
    /// Isolation level for every instance.
    pub level: IsolationLevel,
    /// Captured output kept per invocation, bytes.
    pub log_cap: usize,
}

/// Starts instances.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
}

impl Sandbox {
    /// Checks that the host can provide `config.level` and returns a sandbox using it.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        if config.level == IsolationLevel::Namespaces {
            return Err(SandboxError::IsolationUnavailable {
                level: config.level,
                reason: "namespace isolation is not implemented in this build".into(),
            });
        }
        if !config.init_program.is_file() {
            return Err(SandboxError::InvalidSpec(format!(
                "init program {} does not exist",
                config.init_program.display()
            )));
        }
        Ok(Sandbox { config })
    }

    /// The strongest level this host supports.
    pub fn strongest_level() -> IsolationLevel {
        IsolationLevel::Process
    }

    /// The level in force.
    pub fn level(&self) -> IsolationLevel {
        self.config.level
    }

    /// Starts an instance. Returns once the process exists; its runtime initialises in the
    /// background and the first [`Instance::invoke`] waits for it.
    pub async fn spawn(&self, mut spec: InstanceSpec) -> Result<Instance, SandboxError> {
        spec.level = self.config.level;
        spec.validate()?;
        let spawned_at = Instant::now();

        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let api_addr = listener.local_addr()?;
        spec.env.retain(|(k, _)| k != "AWS_LAMBDA_RUNTIME_API");
        spec.env
            .push(("AWS_LAMBDA_RUNTIME_API".into(), api_addr.to_string()));

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

        // Hand over the spec, then read the control socket to EOF in the background: EOF
        // alone means exec succeeded, a message names the failed step.
        control.set_nonblocking(true)?;
        let mut control = tokio::net::UnixStream::from_std(control)?;
        let spec_json =
            serde_json::to_vec(&spec).map_err(|e| SandboxError::InvalidSpec(e.to_string()))?;
        control.write_all(&spec_json).await?;
        control.shutdown().await?;
        let control_task = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = control.read_to_end(&mut buf).await;
            match serde_json::from_slice::<InitMessage>(&buf) {
                Ok(InitMessage::Failed { step, message }) => Some((step, message)),
                Err(_) => None,
            }
        });

        let (exit_tx, exit_rx) = tokio::sync::watch::channel(None);
        let wait_task = tokio::spawn(async move {
            let status = child.wait().await;
            let setup_failure = control_task.await.ok().flatten();
            let info = match status {
                Ok(s) => ExitInfo {
                    code: s.code(),
                    signal: s.signal(),
                    oom: false,
                    setup_failure,
                },
                Err(_) => ExitInfo {
                    code: None,
                    signal: None,
                    oom: false,
                    setup_failure,
                },
            };
            let _ = exit_tx.send(Some(info));
        });

        let (state, handoff, init_failure) = ApiState::new();
        let api_task = runtime_api::serve(tokio::net::TcpListener::from_std(listener)?, state);
        let logs = LogCapture::start(out_read, self.config.log_cap)?;
        let killer = Box::new(move || {
            if pid != 0 {
                let pid = Pid::from_raw(pid as i32);
                // The runtime leads its own process group (setsid in sandbox-init); before
                // that step ran, only the process itself exists.
                let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
                let _ = kill(pid, Signal::SIGKILL);
            }
        });
        Ok(Instance {
            id: spec.instance_id,
            pid,
            handoff,
            init_failure,
            exit: exit_rx,
            logs,
            tasks: vec![api_task, wait_task],
            killer,
            spawned_at,
            initialized: false,
            broken: false,
        })
    }
}
