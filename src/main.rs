//! The `holactl` binary: parse arguments, set up logging, run the command, map errors to an
//! exit code. The hidden `sandbox-init` entry is dispatched before anything else starts, so
//! the process that sets up a function instance stays single-threaded.

use std::process::ExitCode;

use clap::Parser;
use holactl::cli::{self, Cli, Outcome};

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "sandbox-init")
    {
        holactl_sandbox::init::main();
    }
    let cli = Cli::parse();
    cli::logging::init(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
