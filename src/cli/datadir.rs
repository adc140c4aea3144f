//! The data dir's lock: one process at a time serves, exports or imports a data dir. The
//! embedded store's watches rely on its single writer, and a second node on the same data
//! dir would share its node id, code cache and sandbox dirs.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// The lock file inside the data dir.
pub const LOCK_FILE: &str = "holactl.lock";

/// Held while the data dir is in use; released when dropped or when the process ends
/// (however it ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: Flock<std::fs::File>,
}

/// Creates `dir` if needed, readable by its owner only (it holds the store: users, tokens,
/// sealed secrets), and takes its lock.
pub fn prepare(dir: &Path) -> anyhow::Result<DataDirLock> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!(
            "io_error: cannot create the data dir {}: {e}",
            dir.display()
        )
    })?;
    // As the engine does: a dir someone else owns keeps its mode (the lock still applies).
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    lock(dir)
}

/// Takes the lock of `dir` (which must exist), or fails naming the process that holds it.
pub fn lock(dir: &Path) -> anyhow::Result<DataDirLock> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("io_error: {}: {e}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut file) => {
            // Who holds it, for the message another process shows.
            let _ = file.set_len(0);
            let _ = writeln!(*file, "{}", std::process::id());
            Ok(DataDirLock { _file: file })
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map_or_else(String::new, |pid| format!(" (pid {pid})"));
            anyhow::bail!(
                "data_dir_in_use: {} is in use by another holactl process{holder}: stop it \
                 first, or give this one its own --data-dir",
                dir.display()
            )
        }
        Err((_, errno)) => anyhow::bail!("io_error: locking {}: {errno}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_data_dir_is_private_and_locked() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("new").join("data");
        let held = prepare(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let err = prepare(&dir).unwrap_err().to_string();
        assert!(err.starts_with("data_dir_in_use:"), "{err}");
        drop(held);
        std::fs::write(parent.path().join("file"), "").unwrap();
        let err = prepare(&parent.path().join("file").join("data"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("io_error:"), "{err}");
    }

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err().to_string();
        assert!(err.starts_with("data_dir_in_use:"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        lock(dir.path()).unwrap();
    }
}
