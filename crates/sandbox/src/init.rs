//! `holactl sandbox-init`: the single-threaded program that turns an [`InstanceSpec`] into a
//! running runtime process.
//!
//! It is started by [`crate::spawn`] with the control socket on fd 3 and the instance's output
//! pipe on stdout/stderr. It reads a [`PrepareSpec`] and runs the function-independent steps
//! (cgroup, namespaces, most of the root), says it is ready, then waits for the function's
//! [`InstanceSpec`], validates it, runs the remaining steps and `exec`s the runtime. On success the control socket (close-on-exec) simply closes;
//! on failure an [`InitMessage::Failed`] names the step before the process exits with 127.

use std::ffi::CString;
use std::io::{BufRead, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::resource::{setrlimit, Resource};
use serde::{Deserialize, Serialize};

use crate::spec::{InstanceSpec, IsolationLevel, PrepareSpec};

/// The control socket's file descriptor number in the child.
pub const CONTROL_FD: i32 = 3;

/// Exit status of `sandbox-init` when a setup step failed.
pub const SETUP_FAILED_EXIT: i32 = 127;

/// Messages from `sandbox-init` to the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InitMessage {
    /// A setup step failed; nothing was executed.
    Failed {
        /// The step.
        step: String,
        /// The error.
        message: String,
    },
}

/// A setup step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct StepError {
    step: &'static str,
    message: String,
}

impl StepError {
    /// A failure of `step`.
    pub fn new(step: &'static str, message: String) -> Self {
        StepError { step, message }
    }
}

/// Names the step a fallible operation belongs to.
pub fn step<T, E: std::fmt::Display>(name: &'static str, r: Result<T, E>) -> Result<T, StepError> {
    r.map_err(|e| StepError {
        step: name,
        message: e.to_string(),
    })
}

/// The entry point of `holactl sandbox-init`. Never returns: it either becomes the runtime or
/// exits with [`SETUP_FAILED_EXIT`].
pub fn main() -> ! {
    // SAFETY: fd 3 is the control socket the parent placed there for this process; nothing else
    // in this single-threaded program owns it.
    let mut control = unsafe { UnixStream::from(OwnedFd::from_raw_fd(CONTROL_FD)) };
    let err = match run(&mut control) {
        Ok(never) => match never {},
        Err(err) => err,
    };
    let msg = InitMessage::Failed {
        step: err.step.to_owned(),
        message: err.message,
    };
    if let Ok(json) = serde_json::to_vec(&msg) {
        let _ = control.write_all(&json);
    }
    std::process::exit(SETUP_FAILED_EXIT);
}

/// The byte `sandbox-init` sends once a sandbox is prepared.
pub const READY_TAG: u8 = b'R';

fn run(control: &mut UnixStream) -> Result<std::convert::Infallible, StepError> {
    // Two newline-terminated JSON messages: the preparation, then (maybe much later, when a
    // function needs the sandbox) the run spec.
    let mut reader = std::io::BufReader::new(step("control", control.try_clone())?);
    let prepare: PrepareSpec = read_message(&mut reader, "read_prepare")?;
    // Die with the server instead of outliving it.
    step(
        "pdeathsig",
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL),
    )?;
    if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
        return Err(StepError {
            step: "pdeathsig",
            message: "the server exited during setup".into(),
        });
    }
    // Mark the control socket close-on-exec so a successful exec closes it: the parent reads
    // EOF and knows setup finished.
    step(
        "control",
        nix::fcntl::fcntl(
            &*control,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        ),
    )?;
    match prepare.level {
        IsolationLevel::Namespaces => crate::jail::prepare(&prepare, control)?,
        // Own session and process group: the server stops the whole tree with one
        // kill(-pgid).
        IsolationLevel::Process => {
            step("setsid", nix::unistd::setsid())?;
        }
    }
    step("ready", control.write_all(&[READY_TAG]))?;
    let spec: InstanceSpec = read_message(&mut reader, "read_spec")?;
    // The reading copy of the control socket must not outlive this process's exec.
    drop(reader);
    step("validate", spec.validate())?;
    step("validate", prepare.check_run(&spec))?;
    if prepare.level == IsolationLevel::Namespaces {
        return crate::jail::run(&prepare, &spec, control);
    }
    set_rlimits(&spec)?;
    step("chdir", std::env::set_current_dir(&spec.cwd))?;
    exec(&spec)
}

/// Replaces the process with the runtime.
pub(crate) fn exec(spec: &InstanceSpec) -> Result<std::convert::Infallible, StepError> {
    let (program, argv, env) = step("exec", exec_args(spec))?;
    let err = nix::unistd::execve(&program, &argv, &env).unwrap_err();
    Err(StepError {
        step: "exec",
        message: format!("{}: {err}", spec.argv[0]),
    })
}

fn read_message<T: serde::de::DeserializeOwned>(
    reader: &mut impl std::io::BufRead,
    what: &'static str,
) -> Result<T, StepError> {
    let mut line = Vec::new();
    step(what, reader.take(1 << 20).read_until(b'\n', &mut line))?;
    if line.is_empty() {
        return Err(StepError::new(
            what,
            "the server closed the control socket".into(),
        ));
    }
    step(what, serde_json::from_slice(&line))
}

pub(crate) fn set_rlimits(spec: &InstanceSpec) -> Result<(), StepError> {
    let files = u64::from(spec.max_open_files);
    step(
        "rlimit_nofile",
        setrlimit(Resource::RLIMIT_NOFILE, files, files),
    )?;
    step("rlimit_core", setrlimit(Resource::RLIMIT_CORE, 0, 0))?;
    Ok(())
}

type ExecArgs = (CString, Vec<CString>, Vec<CString>);

fn exec_args(spec: &InstanceSpec) -> Result<ExecArgs, std::ffi::NulError> {
    let program = CString::new(spec.argv[0].as_str())?;
    let argv = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let env = spec
        .env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((program, argv, env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = InitMessage::Failed {
            step: "exec".into(),
            message: "nope".into(),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"type":"failed","step":"exec","message":"nope"}"#);
        assert_eq!(serde_json::from_str::<InitMessage>(&json).unwrap(), m);
    }

    #[test]
    fn exec_args_reject_nul() {
        let mut spec = crate::spec::tests::spec();
        assert!(exec_args(&spec).is_ok());
        spec.env.push(("X".into(), "a\0b".into()));
        assert!(exec_args(&spec).is_err());
    }
}
