//! Per-invocation capture of an instance's output (stdout and stderr share one pipe, so their
//! order is kept).
//!
//! A background task drains the pipe into the current capture. Output is attributed to an
//! invocation by time, as on Lambda: everything written before the runtime posted its answer
//! belongs to that invocation. Because the runtime writes before it posts, that output is
//! already in the pipe when the answer arrives, and [`LogCapture::finish`] reads the pipe dry
//! before closing the capture. Output produced between invocations (initialisation, timers)
//! goes to the next one. Each capture keeps at most `cap` bytes; the rest is read and dropped,
//! so a function printing gigabytes costs the platform CPU but no memory.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;

/// The captured output of one invocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedLog {
    /// The bytes, up to the cap.
    pub data: Vec<u8>,
    /// Set when output was dropped at the cap.
    pub truncated: bool,
    /// Bytes written in total, kept or not.
    pub total_bytes: u64,
}

struct State {
    current: CapturedLog,
    cap: usize,
}

impl State {
    fn append(&mut self, chunk: &[u8]) {
        self.current.total_bytes += chunk.len() as u64;
        let room = self.cap.saturating_sub(self.current.data.len());
        if chunk.len() > room {
            self.current.truncated = true;
        }
        self.current
            .data
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
}

/// Drains an instance's output pipe into per-invocation captures.
pub struct LogCapture {
    pipe: Arc<AsyncFd<OwnedFd>>,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCapture").finish_non_exhaustive()
    }
}

/// Reads everything currently in the (non-blocking) pipe into `state`. Ends with
/// `Err(WouldBlock)` when the pipe is empty, `Ok(())` at EOF.
fn drain(pipe: &impl AsFd, state: &mut State) -> io::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match nix::unistd::read(pipe, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => state.append(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl LogCapture {
    /// Starts draining the read end of a pipe, keeping at most `cap` bytes per capture.
    pub fn start(pipe: OwnedFd, cap: usize) -> io::Result<LogCapture> {
        let flags = nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        // SAFETY: `OwnedFd` is an open descriptor that stays open, and always returns the same
        // number, for as long as the `AsyncFd` owns it.
        let pipe = unsafe { AsyncFd::register_with_interest(pipe, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        let pipe = Arc::new(pipe);
        let state = Arc::new(Mutex::new(State {
            current: CapturedLog::default(),
            cap,
        }));
        let task = tokio::spawn({
            let pipe = pipe.clone();
            let state = state.clone();
            async move {
                loop {
                    let Ok(mut guard) = pipe.readable().await else {
                        return;
                    };
                    let drained = guard.try_io(|fd| match state.lock() {
                        Ok(mut s) => drain(fd, &mut s),
                        Err(_) => Ok(()),
                    });
                    match drained {
                        // Empty for now: readiness was cleared, wait again.
                        Err(_would_block) => continue,
                        // EOF or a read error: the writer side is gone.
                        Ok(_) => return,
                    }
                }
            }
        });
        Ok(LogCapture { pipe, state, task })
    }

    /// Closes the current capture and returns it; later output goes to the next one.
    pub fn finish(&self) -> CapturedLog {
        let Ok(mut state) = self.state.lock() else {
            return CapturedLog::default();
        };
        let _ = drain(self.pipe.get_ref(), &mut state);
        std::mem::take(&mut state.current)
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pipe_pair() -> (std::fs::File, OwnedFd) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        (std::fs::File::from(w), r)
    }

    #[tokio::test]
    async fn captures_per_invocation_and_caps() {
        let (mut w, rx) = pipe_pair();
        let logs = LogCapture::start(rx, 10).unwrap();
        w.write_all(b"init\n").unwrap();
        w.write_all(b"first\n").unwrap();
        // Without yielding, finish() still sees what was written before it.
        let first = logs.finish();
        assert_eq!(first.data, b"init\nfirst");
        assert!(first.truncated);
        assert_eq!(first.total_bytes, 11);
        w.write_all(b"second\n").unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let second = logs.finish();
        assert_eq!(second.data, b"second\n");
        assert!(!second.truncated);
        assert_eq!(logs.finish(), CapturedLog::default());
    }

    #[tokio::test]
    async fn big_output_is_bounded() {
        let (mut w, rx) = pipe_pair();
        let logs = LogCapture::start(rx, 1024).unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..160 {
                w.write_all(&chunk).unwrap();
            }
        });
        while !writer.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let log = logs.finish();
        assert_eq!(log.data.len(), 1024);
        assert!(log.truncated);
        assert_eq!(log.total_bytes, 160 * 64 * 1024);
    }
}
