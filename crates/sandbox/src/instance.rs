//! A running instance: hand it one invocation at a time, with a deadline; notice when its
//! process dies; stop it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::logs::{CapturedLog, LogCapture};
pub use crate::runtime_api::Invocation;
use crate::runtime_api::{Handoff, InitFailure, RuntimeReply};

/// Longest a runtime may take to initialise (reach its first `next`) when the function's
/// timeout is shorter; Lambda's limit.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the instance's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
    /// The cgroup saw an out-of-memory kill.
    pub oom: bool,
    /// `sandbox-init` failed before exec: (step, message).
    pub setup_failure: Option<(String, String)>,
}

impl ExitInfo {
    /// `exit status 1`, `signal: 9 (SIGKILL)`, or the setup failure.
    pub fn describe(&self) -> String {
        if let Some((step, message)) = &self.setup_failure {
            return format!("sandbox setup failed at {step}: {message}");
        }
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => {
                let name = nix::sys::signal::Signal::try_from(sig)
                    .map(|s| s.as_str())
                    .unwrap_or("?");
                format!("signal: {sig} ({name})")
            }
            (None, None) => "exited".to_owned(),
        }
    }
}

/// The end of one invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum InvokeResult {
    /// The runtime posted a response.
    Response(Bytes),
    /// The runtime posted an error for the invocation.
    FunctionError {
        /// Error type (header or body).
        error_type: String,
        /// Posted body.
        body: Bytes,
    },
    /// The runtime posted an init error before taking the event.
    InitError {
        /// Error type.
        error_type: String,
        /// Posted body.
        body: Bytes,
    },
    /// The response was over the size limit.
    ResponseTooLarge,
    /// The deadline passed; the instance was stopped.
    Timeout {
        /// True when the runtime never reached `next` in time.
        during_init: bool,
    },
    /// The process ended before answering.
    Exited(ExitInfo),
}

/// An invocation's result plus what was measured and captured around it.
#[derive(Clone, Debug)]
pub struct InvokeOutcome {
    /// What happened.
    pub result: InvokeResult,
    /// Output captured for this invocation.
    pub log: CapturedLog,
    /// Whether this invocation started the instance.
    pub cold_start: bool,
    /// Spawn to first `next`, for the first invocation of an instance.
    pub init_duration: Option<Duration>,
    /// Hand-off to answer (zero if never handed off).
    pub duration: Duration,
}

/// One running function instance. Dropping it kills its process tree.
pub struct Instance {
    pub(crate) id: String,
    pub(crate) pid: u32,
    pub(crate) handoff: mpsc::Sender<Handoff>,
    pub(crate) init_failure: watch::Receiver<Option<InitFailure>>,
    /// When the runtime first asked for `next`.
    pub(crate) ready: watch::Receiver<Option<Instant>>,
    pub(crate) exit: watch::Receiver<Option<ExitInfo>>,
    pub(crate) logs: LogCapture,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
    pub(crate) killer: Box<dyn Fn() + Send + Sync>,
    pub(crate) spawned_at: Instant,
    pub(crate) initialized: bool,
    pub(crate) broken: bool,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("pid", &self.pid)
            .field("initialized", &self.initialized)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Instance {
    /// The instance id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The runtime process id (as seen from the host).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When the instance was started.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// True while the instance can take another invocation.
    pub fn is_reusable(&self) -> bool {
        !self.broken && self.exit.borrow().is_none() && self.init_failure.borrow().is_none()
    }

    /// Stops the instance's whole process tree.
    pub fn kill(&mut self) {
        self.broken = true;
        (self.killer)();
    }

    /// Runs one invocation to its end. A timeout or a dead process leaves the instance
    /// unusable (see [`Instance::is_reusable`]); it is killed on timeout.
    pub async fn invoke(&mut self, invocation: Invocation) -> InvokeOutcome {
        let cold_start = !self.initialized;
        let timeout = invocation.timeout;
        let (started_tx, started_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let mut outcome = InvokeOutcome {
            result: InvokeResult::Timeout { during_init: true },
            log: CapturedLog::default(),
            cold_start,
            init_duration: None,
            duration: Duration::ZERO,
        };
        let handoff = Handoff {
            invocation,
            started: started_tx,
            reply: reply_tx,
        };
        if self.handoff.send(handoff).await.is_err() {
            self.broken = true;
            outcome.result = InvokeResult::Exited(self.wait_exit().await);
            outcome.log = self.logs.finish();
            return outcome;
        }

        let mut init_failure = self.init_failure.clone();
        let mut exit = self.exit.clone();
        let started = tokio::select! {
            biased;
            started = started_rx => started.ok(),
            _ = changed_to_some(&mut init_failure) => {
                let failure = self.init_failure.borrow().clone();
                if let Some(f) = failure {
                    outcome.result = InvokeResult::InitError { error_type: f.error_type, body: f.body };
                }
                None
            }
            _ = changed_to_some(&mut exit) => {
                outcome.result = InvokeResult::Exited(self.wait_exit().await);
                None
            }
            _ = tokio::time::sleep(timeout.max(INIT_TIMEOUT)) => None,
        };
        let Some(started) = started else {
            self.kill();
            outcome.log = self.logs.finish();
            return outcome;
        };
        self.initialized = true;
        if cold_start {
            outcome.init_duration = Some(started.saturating_duration_since(self.spawned_at));
        }

        let deadline = tokio::time::Instant::from_std(started + timeout);
        outcome.result = tokio::select! {
            biased;
            reply = reply_rx => match reply {
                Ok(RuntimeReply::Response(body)) => InvokeResult::Response(body),
                Ok(RuntimeReply::Error { error_type, body }) => {
                    InvokeResult::FunctionError { error_type, body }
                }
                Ok(RuntimeReply::TooLarge) => InvokeResult::ResponseTooLarge,
                Err(_) => InvokeResult::Exited(self.wait_exit().await),
            },
            _ = changed_to_some(&mut exit) => InvokeResult::Exited(self.wait_exit().await),
            _ = tokio::time::sleep_until(deadline) => {
                self.kill();
                InvokeResult::Timeout { during_init: false }
            }
        };
        outcome.duration = started.elapsed();
        if matches!(outcome.result, InvokeResult::Exited(_)) {
            self.broken = true;
        }
        outcome.log = self.logs.finish();
        outcome
    }

    /// Waits until the runtime has initialised (asked for its first event) without handing it
    /// one, so its first invocation is warm: no cold start, no init duration. Returns the
    /// init duration, or why the instance never became ready (it is then killed).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, InvokeResult> {
        let mut ready = self.ready.clone();
        let mut init_failure = self.init_failure.clone();
        let mut exit = self.exit.clone();
        let result = tokio::select! {
            biased;
            _ = changed_to_some(&mut ready) => match *self.ready.borrow() {
                Some(at) => Ok(at.saturating_duration_since(self.spawned_at)),
                None => Err(InvokeResult::Timeout { during_init: true }),
            },
            _ = changed_to_some(&mut init_failure) => {
                let failure = self.init_failure.borrow().clone();
                Err(match failure {
                    Some(f) => InvokeResult::InitError { error_type: f.error_type, body: f.body },
                    None => InvokeResult::Timeout { during_init: true },
                })
            }
            _ = changed_to_some(&mut exit) => Err(InvokeResult::Exited(self.wait_exit().await)),
            _ = tokio::time::sleep(timeout) => Err(InvokeResult::Timeout { during_init: true }),
        };
        match result {
            Ok(_) => self.initialized = true,
            Err(_) => self.kill(),
        }
        // What init printed is not any invocation's log.
        let _ = self.logs.finish();
        result
    }

    async fn wait_exit(&self) -> ExitInfo {
        let mut exit = self.exit.clone();
        let info = match exit.wait_for(Option::is_some).await {
            Ok(info) => info.clone(),
            Err(_) => None,
        };
        info.unwrap_or(ExitInfo {
            code: None,
            signal: None,
            oom: false,
            setup_failure: None,
        })
    }
}

/// Resolves once the watched value is `Some` (or the sender is gone), holding no borrow.
async fn changed_to_some<T>(rx: &mut watch::Receiver<Option<T>>) {
    let _ = rx.wait_for(Option::is_some).await;
}

impl Drop for Instance {
    fn drop(&mut self) {
        (self.killer)();
        for task in &self.tasks {
            task.abort();
        }
    }
}
