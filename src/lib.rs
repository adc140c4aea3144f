//! `holactl`: the command-line interface and the typed HTTP client of the holactl serverless
//! platform. The binary's `main` is thin; each `holactl lambda …` subcommand lives in its own
//! file under [`cli`].

pub mod cli;
pub mod client;
pub mod package;
