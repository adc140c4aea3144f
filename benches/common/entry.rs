//! The `main` every bench shares (`#[path]`-included): runs the bench's `run` on a
//! current-thread runtime and turns an error into a message and a failing exit code.
//! `cargo bench` passes `--bench`; any other argument is a filter the benches ignore.

use std::future::Future;
use std::process::ExitCode;

/// Runs `run` to its end.
pub fn main<F: Future<Output = anyhow::Result<()>>>(run: impl FnOnce() -> F) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
