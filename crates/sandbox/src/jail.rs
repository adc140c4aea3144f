//! The `namespaces` isolation level, as straight-line steps run by `sandbox-init`.
//!
//! ```text
//! sandbox-init (host pid X, in the instance's cgroup)
//!   unshare(mnt, uts, ipc, pid, cgroup[, net]) → loopback up → bind 127.0.0.1:9001 → send fd
//!   build the new root on a tmpfs: read-only /usr (+ merged-usr links), selected /etc files,
//!   /var/task and /var/runtime read-only, /tmp tmpfs, minimal /dev
//!   fork ─┐ waits for pid 1 and exits with its status
//!         pid 1 (reaper): /proc, pivot_root, hostname, fork ─┐ reaps; exits with the runtime's status
//!                                                          pid 2: rlimits, no_new_privs, drop
//!                                                          capabilities, unprivileged uid/gid,
//!                                                          seccomp, exec the runtime
//! ```
//!
//! Both `sandbox-init` and pid 1 die with their parent (`PR_SET_PDEATHSIG`), and everything in
//! a pid namespace dies with its pid 1, so killing `sandbox-init` stops the whole instance.

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::init::{step, StepError};
use crate::spec::{InstanceSpec, NetworkMode, PrepareSpec};

/// Where the code appears inside the sandbox.
pub const TASK_DIR: &str = "/var/task";
/// Where our runtime files appear inside the sandbox.
pub const RUNTIME_DIR: &str = "/var/runtime";
/// The Runtime API address inside an instance with its own network namespace.
pub const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";
/// The unprivileged user functions run as (Lambda's `sbx_user1051`).
pub const SANDBOX_UID: u32 = 993;
/// The unprivileged group functions run as.
pub const SANDBOX_GID: u32 = 990;
/// The byte that carries the Runtime API listener over the control socket.
pub const LISTENER_TAG: u8 = b'L';

/// Host paths of `/etc` made visible (read-only) when present.
const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "pki",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
];

/// Top-level host directories (or merged-usr links) made visible read-only.
const SYSTEM_ENTRIES: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Device nodes bound into `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

fn err(step_name: &'static str, message: impl std::fmt::Display) -> StepError {
    StepError::new(step_name, message.to_string())
}

/// The function-independent steps: cgroup, namespaces, the Runtime API listener, and the root
/// filesystem except the function's code.
pub fn prepare(p: &PrepareSpec, control: &UnixStream) -> Result<(), StepError> {
    if let Some(cgroup) = &p.cgroup {
        step(
            "cgroup",
            cgroup.create(crate::cgroup::Limits {
                memory_mb: p.memory_mb,
                max_pids: p.max_pids,
            }),
        )?;
        step("cgroup", cgroup.join(std::process::id()))?;
    }
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWCGROUP;
    if p.network == NetworkMode::Isolated {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    step("unshare", unshare(flags))?;
    if p.network == NetworkMode::Isolated {
        step("loopback", loopback_up())?;
        let listener = step("listener", std::net::TcpListener::bind(RUNTIME_API_ADDR))?;
        step("listener", send_fd(control, listener.as_raw_fd()))?;
    }
    build_root(p)
}

/// The function's own steps, then the runtime (in the innermost process).
pub fn run(
    p: &PrepareSpec,
    spec: &InstanceSpec,
    control: &UnixStream,
) -> Result<std::convert::Infallible, StepError> {
    if let Some(cgroup) = &p.cgroup {
        step(
            "cgroup",
            cgroup.set_limits(crate::cgroup::Limits {
                memory_mb: spec.memory_mb,
                max_pids: spec.max_pids,
            }),
        )?;
    }
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    bind_mount(
        &spec.task_root,
        &p.root_mount.join(TASK_DIR.trim_start_matches('/')),
        ro,
    )?;
    if spec.tmp_mb != p.tmp_mb {
        let tmp = p.root_mount.join("tmp");
        mount(
            None::<&str>,
            &tmp,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={}m,mode=1777", spec.tmp_mb).as_str()),
        )
        .map_err(|e| err("mount", format!("resize /tmp: {e}")))?;
    }
    // SAFETY: sandbox-init is single-threaded, so the child may run arbitrary code.
    match step("fork", unsafe { fork() })? {
        ForkResult::Parent { child } => exit_like(wait_for(child)),
        ForkResult::Child => pid_one(spec, control),
    }
}

/// pid 1 of the instance: finish the filesystem, start the runtime, reap.
fn pid_one(
    spec: &InstanceSpec,
    control: &UnixStream,
) -> Result<std::convert::Infallible, StepError> {
    step(
        "pdeathsig",
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL),
    )?;
    let root = &spec.root_mount;
    step(
        "proc",
        mount(
            Some("proc"),
            &root.join("proc"),
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        ),
    )?;
    step(
        "pivot_root",
        nix::unistd::pivot_root(root, &root.join("old_root")),
    )?;
    step("pivot_root", std::env::set_current_dir("/"))?;
    step("pivot_root", umount2("/old_root", MntFlags::MNT_DETACH))?;
    step("pivot_root", std::fs::remove_dir("/old_root"))?;
    step(
        "readonly_root",
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            None::<&str>,
        ),
    )?;
    step("hostname", nix::unistd::sethostname("sandbox"))?;
    // SAFETY: still single-threaded.
    match step("fork", unsafe { fork() })? {
        ForkResult::Parent { child } => {
            // The control socket must close when the runtime execs; this copy would keep it open.
            let _ = nix::unistd::close(control.as_raw_fd());
            exit_like(reap_until(child))
        }
        ForkResult::Child => runtime(spec),
    }
}

/// pid 2: drop everything and become the runtime.
fn runtime(spec: &InstanceSpec) -> Result<std::convert::Infallible, StepError> {
    crate::init::set_rlimits(spec)?;
    step("chdir", std::env::set_current_dir(&spec.cwd))?;
    step("no_new_privs", nix::sys::prctl::set_no_new_privs())?;
    drop_bounding_set()?;
    step("setgroups", nix::unistd::setgroups(&[]))?;
    let gid = nix::unistd::Gid::from_raw(spec.gid);
    let uid = nix::unistd::Uid::from_raw(spec.uid);
    step("setgid", nix::unistd::setresgid(gid, gid, gid))?;
    step("setuid", nix::unistd::setresuid(uid, uid, uid))?;
    step("seccomp", crate::seccomp::apply())?;
    crate::init::exec(spec)
}

fn drop_bounding_set() -> Result<(), StepError> {
    for cap in 0..64 {
        // SAFETY: prctl with PR_CAPBSET_DROP takes an integer argument and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break; // past the last capability this kernel knows
            }
            return Err(err("capabilities", e));
        }
    }
    Ok(())
}

fn wait_for(child: Pid) -> WaitStatus {
    loop {
        match waitpid(child, None) {
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return status,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return WaitStatus::Exited(child, 1),
        }
    }
}

/// Reaps every child (pid 1's duty) until `main` ends.
fn reap_until(main: Pid) -> WaitStatus {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)))
                if pid == main =>
            {
                return status
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return WaitStatus::Exited(main, 1),
        }
    }
}

/// Exits with the status of a child: its code, or 128 + signal.
fn exit_like(status: WaitStatus) -> ! {
    let code = match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 1,
    };
    std::process::exit(code)
}

fn loopback_up() -> std::io::Result<()> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| {
        // No interface is up yet; a raw AF_INET datagram socket works without binding.
        nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map(std::net::UdpSocket::from)
        .map_err(std::io::Error::from)
    })?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the flags of the interface named in `ifr` into `ifr`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the union member written by SIOCGIFFLAGS is `ifru_flags`.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads `ifr`, which is fully initialised.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn send_fd(control: &UnixStream, fd: i32) -> nix::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let tag = [LISTENER_TAG];
    let fds = [fd];
    sendmsg::<UnixAddr>(
        control.as_raw_fd(),
        &[IoSlice::new(&tag)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
}

fn bind_mount(src: &Path, dst: &Path, flags: MsFlags) -> Result<(), StepError> {
    let what = || format!("{} -> {}", src.display(), dst.display());
    mount(
        Some(src),
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| err("mount", format!("bind {}: {e}", what())))?;
    mount(
        None::<&str>,
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        None::<&str>,
    )
    .map_err(|e| err("mount", format!("remount {}: {e}", what())))
}

fn mountpoint_like(src: &Path, dst: &Path) -> Result<(), StepError> {
    let r = if src.is_dir() {
        std::fs::create_dir_all(dst)
    } else {
        std::fs::write(dst, b"")
    };
    r.map_err(|e| err("mount", format!("{}: {e}", dst.display())))
}

fn tmpfs(dst: &Path, options: &str, flags: MsFlags) -> Result<(), StepError> {
    step("mount", std::fs::create_dir_all(dst))?;
    mount(Some("tmpfs"), dst, Some("tmpfs"), flags, Some(options))
        .map_err(|e| err("mount", format!("tmpfs {}: {e}", dst.display())))
}

fn build_root(spec: &PrepareSpec) -> Result<(), StepError> {
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let root = &spec.root_mount;
    // Nothing mounted from here on propagates back to the host.
    step(
        "mount",
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
    )?;
    tmpfs(
        root,
        "size=1m,mode=755",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )?;
    for entry in SYSTEM_ENTRIES {
        let host = Path::new("/").join(entry);
        let inside = root.join(entry);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = step("mount", std::fs::read_link(&host))?;
                step("mount", std::os::unix::fs::symlink(target, &inside))?;
            }
            Ok(m) if m.is_dir() => {
                step("mount", std::fs::create_dir_all(&inside))?;
                bind_mount(&host, &inside, ro)?;
            }
            _ => {}
        }
    }
    let etc = root.join("etc");
    step("mount", std::fs::create_dir_all(&etc))?;
    for entry in ETC_ENTRIES {
        let host = Path::new("/etc").join(entry);
        if std::fs::metadata(&host).is_ok() {
            let inside = etc.join(entry);
            mountpoint_like(&host, &inside)?;
            bind_mount(&host, &inside, ro)?;
        }
    }
    let passwd = format!(
        "root:x:0:0:root:/root:/usr/sbin/nologin\nsbx_user1051:x:{}:{}::/tmp:/usr/sbin/nologin\n",
        spec.uid, spec.gid
    );
    step("mount", std::fs::write(etc.join("passwd"), passwd))?;
    step(
        "mount",
        std::fs::write(
            etc.join("group"),
            format!("root:x:0:\nsbx_user1051:x:{}:\n", spec.gid),
        ),
    )?;
    step(
        "mount",
        std::fs::write(
            etc.join("hosts"),
            "127.0.0.1 localhost sandbox\n::1 localhost\n",
        ),
    )?;
    step(
        "mount",
        std::fs::create_dir_all(root.join(TASK_DIR.trim_start_matches('/'))),
    )?;
    let runtime = root.join(RUNTIME_DIR.trim_start_matches('/'));
    step("mount", std::fs::create_dir_all(&runtime))?;
    bind_mount(&spec.runtime_dir, &runtime, ro)?;
    tmpfs(
        &root.join("tmp"),
        &format!("size={}m,mode=1777", spec.tmp_mb),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )?;
    let dev = root.join("dev");
    tmpfs(
        &dev,
        "size=64k,mode=755",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
    )?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        let inside = dev.join(name);
        step("mount", std::fs::write(&inside, b""))?;
        bind_mount(&host, &inside, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC)?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        step("mount", std::os::unix::fs::symlink(target, dev.join(link)))?;
    }
    for dir in ["proc", "old_root", "var/runtime"] {
        step("mount", std::fs::create_dir_all(root.join(dir)))?;
    }
    Ok(())
}

/// Whether this host can run the `namespaces` level; the reason when it cannot.
pub fn check_host() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "the namespaces level needs root (rootless user namespaces are not supported yet)"
                .into(),
        );
    }
    for ns in ["mnt", "pid", "net", "ipc", "uts", "cgroup"] {
        if !Path::new("/proc/self/ns").join(ns).exists() {
            return Err(format!("the kernel has no {ns} namespace"));
        }
    }
    Ok(())
}
