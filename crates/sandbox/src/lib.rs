//! Function instances: one isolated process tree each, with its own AWS Lambda Runtime API
//! (2018-06-01) endpoint, its output captured per invocation.
//!
//! The server never forks from its multithreaded runtime to set an instance up: it re-executes
//! its own binary as `holactl sandbox-init` ([`init::main`]), a single-threaded program that
//! reads an [`InstanceSpec`] from its control socket, validates it, applies the isolation steps
//! one by one and finally `exec`s the function's runtime. A failed step is reported back as an
//! [`init::InitMessage`] naming the step.
//!
//! # Layout
//! - [`spec`]: what an instance is made of ([`InstanceSpec`], [`IsolationLevel`]).
//! - [`init`]: the `sandbox-init` side (runs in the child); [`jail`] its `namespaces` steps,
//!   [`cgroup`] the per-instance control group (v1 and v2), [`seccomp`] the syscall filter.
//! - [`spawn`]: the parent side: start `sandbox-init`, hand it the spec, wire up pipes.
//! - [`runtime_api`]: the per-instance Runtime API server and the invocation hand-off.
//! - [`platform`]: the hook through which that server forwards the platform's internal API
//!   (`/hola/v1/…`) to whoever implements it (the engine).
//! - [`logs`]: per-invocation capture of the instance's stdout/stderr, capped.
//! - [`instance`]: a running instance: invoke with a deadline, detect crashes, stop.
//! - [`runtimes`]: which interpreters run `python3.x` / `nodejs*`, and our bootstraps.

pub mod cgroup;
pub mod init;
pub mod instance;
pub mod jail;
pub mod logs;
pub mod platform;
pub mod runtime_api;
pub mod runtimes;
pub mod seccomp;
pub mod spawn;
pub mod spec;

pub use instance::{Instance, Invocation, InvokeOutcome, InvokeResult};
pub use logs::CapturedLog;
pub use runtimes::{ResolvedRuntime, RuntimeCatalog};
pub use spawn::{Sandbox, SandboxConfig};
pub use spec::{InstanceSpec, IsolationLevel, NetworkMode};

/// Failures to create or drive an instance.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec is not acceptable.
    #[error("invalid instance spec: {0}")]
    InvalidSpec(String),
    /// The runtime a function asks for is not installed here.
    #[error("runtime {runtime} is not available on this host: {reason}")]
    RuntimeUnavailable {
        /// The runtime identifier.
        runtime: String,
        /// What is missing.
        reason: String,
    },
    /// The requested isolation level cannot be provided by this host.
    #[error("isolation level {level} is not available: {reason}")]
    IsolationUnavailable {
        /// The level.
        level: IsolationLevel,
        /// What is missing.
        reason: String,
    },
    /// Starting the `sandbox-init` process failed.
    #[error("cannot start the sandbox: {0}")]
    Spawn(#[source] std::io::Error),
    /// A setup step inside `sandbox-init` failed.
    #[error("sandbox setup failed at {step}: {message}")]
    Setup {
        /// The step (e.g. `exec`, `chdir`).
        step: String,
        /// The error.
        message: String,
    },
    /// I/O on the instance's pipes or sockets failed.
    #[error("instance I/O failed: {0}")]
    Io(#[from] std::io::Error),
}
