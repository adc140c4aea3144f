//! The platform's own log: human-readable lines or one JSON object per line on stderr
//! (`serve --log-format json`, `HOLACTL_LOG_FORMAT=json`), filtered by `HOLACTL_LOG`.

use clap::ValueEnum;

use super::{Cli, LambdaCommand, TopCommand};

/// How the platform writes its log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line, with every event field.
    Json,
}

/// Installs the global tracing subscriber for `cli`.
pub fn init(cli: &Cli) {
    let format = match &cli.command {
        TopCommand::Lambda(args) => match &args.command {
            LambdaCommand::Serve(serve) => serve.log_format,
            _ => LogFormat::Human,
        },
        _ => LogFormat::Human,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOLACTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
