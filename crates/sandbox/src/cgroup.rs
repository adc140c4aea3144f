//! Control groups, v1 and v2: one group per instance under the server's own group, with the
//! function's memory as the memory limit (swap off), a pids limit and a CPU weight proportional
//! to memory (a full vCPU's weight at 1769 MB, as Lambda).
//!
//! `sandbox-init` creates the group and moves itself in before it creates anything else, so
//! every process of the instance is inside. The server removes the group after the instance
//! exits, reading first whether the kernel's OOM killer fired in it.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Memory size that gets one full vCPU's weight.
pub const MB_PER_VCPU: u64 = 1769;

/// Which cgroup hierarchy the host has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hierarchy {
    /// One directory per controller (memory, pids, cpu).
    V1 {
        /// `…/memory/<server's group>/holactl`.
        memory: PathBuf,
        /// `…/pids/<server's group>/holactl`.
        pids: PathBuf,
        /// `…/cpu/<server's group>/holactl`.
        cpu: PathBuf,
    },
    /// The unified hierarchy.
    V2 {
        /// `/sys/fs/cgroup/<server's group>/holactl`.
        base: PathBuf,
    },
}

/// The group of one instance, as sent to `sandbox-init` and kept by the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceCgroup {
    /// Directories of the group (one per controller on v1).
    pub dirs: Vec<PathBuf>,
    /// The hierarchy.
    pub v2: bool,
}

/// Limits written into a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory, MB.
    pub memory_mb: u32,
    /// Most tasks.
    pub max_pids: u32,
}

/// The group path of the current process in `controller` (v1) or the unified hierarchy
/// (`controller` empty), from `/proc/self/cgroup` text.
pub fn own_path(proc_self_cgroup: &str, controller: &str) -> Option<String> {
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        if matches {
            return Some(path.to_owned());
        }
    }
    None
}

fn join_rel(root: &Path, rel: &str) -> PathBuf {
    root.join(rel.trim_start_matches('/'))
}

impl Hierarchy {
    /// Finds the hierarchy under `root` (normally `/sys/fs/cgroup`) for the current process;
    /// instance groups go in a directory `parent` under the process's own group.
    pub fn detect(root: &Path, parent: &str) -> io::Result<Hierarchy> {
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        Self::detect_with(root, parent, &own)
    }

    /// [`Hierarchy::detect`] with the content of `/proc/self/cgroup` given.
    pub fn detect_with(root: &Path, parent: &str, proc_self_cgroup: &str) -> io::Result<Hierarchy> {
        let missing = |what: String| io::Error::new(io::ErrorKind::NotFound, what);
        if root.join("cgroup.controllers").is_file() {
            let own = own_path(proc_self_cgroup, "").unwrap_or_else(|| "/".into());
            let base = join_rel(root, &own).join(parent);
            return Ok(Hierarchy::V2 { base });
        }
        let mut dirs = Vec::new();
        for controller in ["memory", "pids", "cpu"] {
            let mount = root.join(controller);
            if !mount.join("cgroup.procs").is_file() {
                return Err(missing(format!(
                    "cgroup v1 controller {controller} is not mounted at {}",
                    mount.display()
                )));
            }
            let own = own_path(proc_self_cgroup, controller).unwrap_or_else(|| "/".into());
            dirs.push(join_rel(&mount, &own).join(parent));
        }
        let [memory, pids, cpu]: [PathBuf; 3] = dirs
            .try_into()
            .map_err(|_| missing("cgroup controllers".into()))?;
        Ok(Hierarchy::V1 { memory, pids, cpu })
    }

    /// Creates the parent directories (and, on v2, enables the controllers for them).
    pub fn prepare(&self) -> io::Result<()> {
        match self {
            Hierarchy::V1 { memory, pids, cpu } => {
                for d in [memory, pids, cpu] {
                    std::fs::create_dir_all(d)?;
                }
                Ok(())
            }
            Hierarchy::V2 { base } => {
                std::fs::create_dir_all(base)?;
                // Controllers must be enabled in every ancestor's subtree_control; the
                // server's own group may refuse while it holds processes, in which case the
                // operator delegates a group to holactl (systemd `Delegate=yes`).
                if let Some(parent) = base.parent() {
                    let _ =
                        std::fs::write(parent.join("cgroup.subtree_control"), "+memory +pids +cpu");
                }
                std::fs::write(base.join("cgroup.subtree_control"), "+memory +pids +cpu")
            }
        }
    }

    /// Removes the (empty) parent directories again.
    pub fn remove_parent(&self) {
        let dirs: Vec<&PathBuf> = match self {
            Hierarchy::V1 { memory, pids, cpu } => vec![memory, pids, cpu],
            Hierarchy::V2 { base } => vec![base],
        };
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }

    /// The group of instance `id`.
    pub fn instance(&self, id: &str) -> InstanceCgroup {
        match self {
            Hierarchy::V1 { memory, pids, cpu } => InstanceCgroup {
                dirs: vec![memory.join(id), pids.join(id), cpu.join(id)],
                v2: false,
            },
            Hierarchy::V2 { base } => InstanceCgroup {
                dirs: vec![base.join(id)],
                v2: true,
            },
        }
    }

    /// Groups left behind by a previous run (a crash): their processes are killed and the
    /// groups removed.
    pub fn sweep(&self) -> usize {
        let parents: Vec<&PathBuf> = match self {
            Hierarchy::V1 { memory, pids, cpu } => vec![memory, pids, cpu],
            Hierarchy::V2 { base } => vec![base],
        };
        let mut removed = 0;
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.path().join("cgroup.procs").is_file() {
                    let group = InstanceCgroup {
                        dirs: vec![entry.path()],
                        v2: matches!(self, Hierarchy::V2 { .. }),
                    };
                    group.kill_all();
                    if group.remove().is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        removed
    }
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    std::fs::write(dir.join(file), value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(file).display())))
}

/// The CPU weight for a memory size: v1 `cpu.shares` (1024 = one CPU) or v2 `cpu.weight`
/// (100 = default).
pub fn cpu_weight(memory_mb: u32, v2: bool) -> u64 {
    let full = if v2 { 100 } else { 1024 };
    (full * u64::from(memory_mb) / MB_PER_VCPU).clamp(2, if v2 { 10_000 } else { 262_144 })
}

impl InstanceCgroup {
    /// Creates the group and writes the limits (called by `sandbox-init`).
    pub fn create(&self, limits: Limits) -> io::Result<()> {
        for dir in &self.dirs {
            std::fs::create_dir(dir).or_else(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Ok(())
                } else {
                    Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
                }
            })?;
        }
        self.set_limits(limits)
    }

    /// Writes the limits of an existing group (a cheap write, unlike joining one).
    pub fn set_limits(&self, limits: Limits) -> io::Result<()> {
        let bytes = u64::from(limits.memory_mb) * 1024 * 1024;
        if self.v2 {
            let dir = &self.dirs[0];
            write(dir, "memory.max", &bytes.to_string())?;
            write(dir, "memory.swap.max", "0")?;
            write(dir, "pids.max", &limits.max_pids.to_string())?;
            write(
                dir,
                "cpu.weight",
                &cpu_weight(limits.memory_mb, true).to_string(),
            )?;
        } else {
            let (memory, pids, cpu) = (&self.dirs[0], &self.dirs[1], &self.dirs[2]);
            write(memory, "memory.limit_in_bytes", &bytes.to_string())?;
            // Only present with swap accounting; without it there is no swap to limit.
            if memory.join("memory.memsw.limit_in_bytes").exists() {
                write(memory, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
            }
            let _ = write(memory, "memory.swappiness", "0");
            write(pids, "pids.max", &limits.max_pids.to_string())?;
            write(
                cpu,
                "cpu.shares",
                &cpu_weight(limits.memory_mb, false).to_string(),
            )?;
        }
        Ok(())
    }

    /// Moves process `pid` into the group.
    pub fn join(&self, pid: u32) -> io::Result<()> {
        for dir in &self.dirs {
            write(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    fn memory_dir(&self) -> &Path {
        &self.dirs[0]
    }

    /// Whether the OOM killer fired inside the group.
    pub fn oom_killed(&self) -> bool {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.memory_dir().join(file))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .is_some_and(|n| n > 0)
    }

    /// Peak memory use, bytes.
    pub fn peak_memory(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.memory_dir().join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Kills every process in the group.
    pub fn kill_all(&self) {
        if self.v2 && write(&self.dirs[0], "cgroup.kill", "1").is_ok() {
            return;
        }
        // v1 (or a v2 kernel without cgroup.kill): signal the members until none is left;
        // a fork racing the loop is caught by the next round.
        for _ in 0..100 {
            let mut any = false;
            for dir in &self.dirs {
                let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
                    continue;
                };
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    any = true;
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if !any {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Removes the group (its processes must be gone); retries briefly while the kernel
    /// finishes tearing them down.
    pub fn remove(&self) -> io::Result<()> {
        let mut last = Ok(());
        for dir in &self.dirs {
            last = Ok(());
            for _ in 0..200 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) => {
                        last = Err(e);
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            }
            last.as_ref()
                .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "12:pids:/a/b\n4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/\n";

    #[test]
    fn own_paths() {
        assert_eq!(own_path(V1, "memory").as_deref(), Some("/process_api/x"));
        assert_eq!(own_path(V1, "cpu").as_deref(), Some("/"));
        assert_eq!(own_path(V1, "").as_deref(), Some("/"));
        assert_eq!(own_path(V1, "freezer"), None);
    }

    #[test]
    fn detects_v1_and_v2() {
        let root = tempfile::tempdir().unwrap();
        for c in ["memory", "pids", "cpu"] {
            std::fs::create_dir_all(root.path().join(c)).unwrap();
            std::fs::write(root.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let h = Hierarchy::detect_with(root.path(), "holactl", V1).unwrap();
        let Hierarchy::V1 { memory, pids, cpu } = &h else {
            panic!("{h:?}")
        };
        assert_eq!(*memory, root.path().join("memory/process_api/x/holactl"));
        assert_eq!(*pids, root.path().join("pids/a/b/holactl"));
        assert_eq!(*cpu, root.path().join("cpu/holactl"));
        assert_eq!(h.instance("i1").dirs.len(), 3);

        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(v2.path().join("cgroup.controllers"), "memory pids cpu").unwrap();
        let h = Hierarchy::detect_with(v2.path(), "holactl", "0::/system.slice/holactl.service\n")
            .unwrap();
        assert_eq!(
            h,
            Hierarchy::V2 {
                base: v2.path().join("system.slice/holactl.service/holactl")
            }
        );
    }

    #[test]
    fn writes_limits_v1_and_v2() {
        let root = tempfile::tempdir().unwrap();
        let v1 = InstanceCgroup {
            dirs: vec![
                root.path().join("m"),
                root.path().join("p"),
                root.path().join("c"),
            ],
            v2: false,
        };
        v1.create(Limits {
            memory_mb: 1769,
            max_pids: 64,
        })
        .unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("m/memory.limit_in_bytes"), (1769u64 << 20).to_string());
        assert_eq!(read("p/pids.max"), "64");
        assert_eq!(read("c/cpu.shares"), "1024");
        std::fs::write(
            root.path().join("m/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        assert!(v1.oom_killed());

        let v2 = InstanceCgroup {
            dirs: vec![root.path().join("u")],
            v2: true,
        };
        v2.create(Limits {
            memory_mb: 512,
            max_pids: 10,
        })
        .unwrap();
        assert_eq!(read("u/memory.swap.max"), "0");
        assert_eq!(read("u/cpu.weight"), cpu_weight(512, true).to_string());
        assert!(!v2.oom_killed());
    }

    #[test]
    fn weights_are_proportional() {
        assert_eq!(cpu_weight(1769, false), 1024);
        assert_eq!(cpu_weight(3538, true), 200);
        assert!(cpu_weight(512, false) < cpu_weight(1024, false));
    }
}
