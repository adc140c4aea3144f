//! What an instance is made of: sent from the server to `sandbox-init` as JSON.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// How strongly instances are isolated from the host and each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolationLevel {
    /// Own process group and session, resource limits, clean environment. No filesystem or
    /// network isolation: for development hosts that cannot do better.
    Process,
    /// Linux namespaces, a cgroup, seccomp and an unprivileged user.
    Namespaces,
}

impl IsolationLevel {
    /// The level's name.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationLevel::Process => "process",
            IsolationLevel::Namespaces => "namespaces",
        }
    }
}

impl std::fmt::Display for IsolationLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for IsolationLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "process" => Ok(IsolationLevel::Process),
            "namespaces" => Ok(IsolationLevel::Namespaces),
            other => Err(format!(
                "unknown isolation level {other:?}; expected namespaces or process"
            )),
        }
    }
}

/// What an instance may reach on the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Only its own loopback (where its Runtime API lives).
    #[default]
    Isolated,
    /// The host's network.
    Host,
}

/// The function-independent half of an instance, set up ahead of demand: its cgroup, its
/// namespaces (with the Runtime API listener) and most of its root filesystem. Joining a cgroup
/// can cost tens of milliseconds (the kernel waits for an RCU grace period), so prepared
/// sandboxes take that cost off the cold start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrepareSpec {
    /// Unique id (cgroup name).
    pub instance_id: String,
    /// Isolation level.
    pub level: IsolationLevel,
    /// Network reach.
    pub network: NetworkMode,
    /// The instance's control group (`namespaces` level).
    pub cgroup: Option<crate::cgroup::InstanceCgroup>,
    /// An empty directory the new root is built on (`namespaces` level).
    pub root_mount: PathBuf,
    /// The runtime files directory (mounted at `/var/runtime`).
    pub runtime_dir: PathBuf,
    /// Initial size of `/tmp`, MB (resized when the function wants another).
    pub tmp_mb: u32,
    /// Initial memory limit, MB (set to the function's when it runs).
    pub memory_mb: u32,
    /// Most processes/threads in the instance.
    pub max_pids: u32,
    /// User id the runtime runs as.
    pub uid: u32,
    /// Group id the runtime runs as.
    pub gid: u32,
}

impl PrepareSpec {
    /// Rejects a run spec that does not fit this prepared sandbox.
    pub fn check_run(&self, run: &InstanceSpec) -> Result<(), SandboxError> {
        let same = self.level == run.level
            && self.network == run.network
            && self.root_mount == run.root_mount
            && self.runtime_dir == run.runtime_dir
            && self.cgroup == run.cgroup
            && self.uid == run.uid
            && self.gid == run.gid;
        if same {
            Ok(())
        } else {
            Err(SandboxError::InvalidSpec(
                "the run spec does not match the prepared sandbox".into(),
            ))
        }
    }
}

/// Everything `sandbox-init` needs to set an instance up and exec its runtime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Unique id (used for cgroup names and logs).
    pub instance_id: String,
    /// Program (absolute path) and arguments.
    pub argv: Vec<String>,
    /// The complete environment of the runtime process.
    pub env: Vec<(String, String)>,
    /// The function's code directory (becomes `/var/task` when the filesystem is isolated).
    pub task_root: PathBuf,
    /// The runtime files directory (our bootstraps).
    pub runtime_dir: PathBuf,
    /// Working directory of the runtime process.
    pub cwd: PathBuf,
    /// Memory size, MB.
    pub memory_mb: u32,
    /// Size of `/tmp`, MB.
    pub tmp_mb: u32,
    /// Most processes/threads in the instance.
    pub max_pids: u32,
    /// Most open files per process.
    pub max_open_files: u32,
    /// Isolation level.
    pub level: IsolationLevel,
    /// Network reach.
    pub network: NetworkMode,
    /// An empty directory the new root is built on (`namespaces` level).
    pub root_mount: PathBuf,
    /// The instance's control group (`namespaces` level).
    pub cgroup: Option<crate::cgroup::InstanceCgroup>,
    /// User id the runtime runs as (`namespaces` level).
    pub uid: u32,
    /// Group id the runtime runs as (`namespaces` level).
    pub gid: u32,
}

impl InstanceSpec {
    /// Rejects specs `sandbox-init` must not try to apply.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let bad = |m: String| Err(SandboxError::InvalidSpec(m));
        match self.argv.first() {
            None => return bad("argv is empty".into()),
            Some(p) if !p.starts_with('/') => {
                return bad(format!("program {p:?} is not an absolute path"))
            }
            _ => {}
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return bad("argv contains NUL".into());
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return bad(format!("bad environment variable {k:?}"));
            }
        }
        for (what, p) in [
            ("root_mount", &self.root_mount),
            ("task_root", &self.task_root),
            ("runtime_dir", &self.runtime_dir),
            ("cwd", &self.cwd),
        ] {
            if !p.is_absolute() {
                return bad(format!("{what} {} is not absolute", p.display()));
            }
        }
        if self.level == IsolationLevel::Namespaces && (self.uid == 0 || self.gid == 0) {
            return bad("instances may not run as root".into());
        }
        if self.memory_mb == 0 || self.max_pids == 0 || self.max_open_files == 0 {
            return bad("limits must be positive".into());
        }
        if self.instance_id.is_empty()
            || !self
                .instance_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(format!("bad instance id {:?}", self.instance_id));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec() -> InstanceSpec {
        InstanceSpec {
            instance_id: "i-1".into(),
            argv: vec!["/bin/true".into()],
            env: vec![("A".into(), "b".into())],
            task_root: "/tmp".into(),
            runtime_dir: "/tmp".into(),
            cwd: "/tmp".into(),
            memory_mb: 512,
            tmp_mb: 512,
            max_pids: 64,
            max_open_files: 1024,
            level: IsolationLevel::Process,
            network: NetworkMode::Isolated,
            root_mount: "/tmp".into(),
            cgroup: None,
            uid: 993,
            gid: 990,
        }
    }

    #[test]
    fn validates() {
        assert!(spec().validate().is_ok());
        type Edit = Box<dyn Fn(&mut InstanceSpec)>;
        let cases: Vec<Edit> = vec![
            Box::new(|s| s.argv.clear()),
            Box::new(|s| s.argv[0] = "true".into()),
            Box::new(|s| s.env.push(("A=B".into(), "c".into()))),
            Box::new(|s| s.env.push(("A".into(), "c\0".into()))),
            Box::new(|s| s.task_root = "rel".into()),
            Box::new(|s| s.max_pids = 0),
            Box::new(|s| s.instance_id = "../x".into()),
        ];
        for f in cases {
            let mut s = spec();
            f(&mut s);
            assert!(s.validate().is_err(), "{s:?}");
        }
    }

    #[test]
    fn levels_parse() {
        assert_eq!("process".parse(), Ok(IsolationLevel::Process));
        assert_eq!("namespaces".parse(), Ok(IsolationLevel::Namespaces));
        assert!("docker".parse::<IsolationLevel>().is_err());
    }
}
