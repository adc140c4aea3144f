//! `holactl lambda serve`: the whole platform on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use holactl_engine::{Engine, EngineConfig};
use holactl_sandbox::IsolationLevel;

use super::Outcome;

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (`HOST:PORT`, or `:PORT` for every interface).
    #[arg(long, env = "SERVER_ADDRESS", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Where functions, code, executions, logs and the admin token live.
    #[arg(long, env = "HOLACTL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Isolation level (default: the strongest this host supports).
    #[arg(long, env = "HOLACTL_ISOLATION")]
    pub isolation: Option<IsolationLevel>,
    /// Seconds an idle warm instance is kept before it is stopped.
    #[arg(long, env = "HOLACTL_IDLE_TTL", default_value_t = holactl_types::limits::DEFAULT_IDLE_TTL_S)]
    pub idle_ttl: u64,
    /// Account-wide limit of concurrent executions.
    #[arg(long, env = "MAX_CONCURRENT_EXECUTIONS", default_value_t = holactl_types::limits::DEFAULT_ACCOUNT_CONCURRENCY)]
    pub max_concurrency: u32,
    /// Usage reports' price per request, USD (default: AWS Lambda's x86 list price,
    /// $0.20 per 1M requests).
    #[arg(long, env = "HOLACTL_PRICE_PER_REQUEST", default_value_t = holactl_types::usage::AWS_PRICE_PER_REQUEST)]
    pub price_per_request: f64,
    /// Usage reports' price per GB-second, USD (default: AWS Lambda's x86 list price).
    #[arg(long, env = "HOLACTL_PRICE_PER_GB_SECOND", default_value_t = holactl_types::usage::AWS_PRICE_PER_GB_SECOND)]
    pub price_per_gb_second: f64,
    /// Platform log format on stderr: `human` lines or one JSON object per line.
    #[arg(long, env = "HOLACTL_LOG_FORMAT", value_enum, default_value_t = super::logging::LogFormat::Human)]
    pub log_format: super::logging::LogFormat,
    /// Alert when a function's error rate over 5 minutes is above this fraction.
    #[arg(long, env = "HOLACTL_ALERT_ERROR_RATE", default_value_t = holactl_engine::alerts::DEFAULT_ERROR_RATE)]
    pub alert_error_rate: f64,
    /// Alert when a function's cold-start rate over 5 minutes is above this fraction.
    #[arg(long, env = "HOLACTL_ALERT_COLD_START_RATE", default_value_t = holactl_engine::alerts::DEFAULT_COLD_START_RATE)]
    pub alert_cold_start_rate: f64,
    /// Rate alerts need at least this many invocations in the window.
    #[arg(long, env = "HOLACTL_ALERT_MIN_INVOCATIONS", default_value_t = holactl_engine::alerts::DEFAULT_MIN_INVOCATIONS)]
    pub alert_min_invocations: u64,
    /// Alert when concurrent executions reach this fraction of --max-concurrency.
    #[arg(long, env = "HOLACTL_ALERT_CONCURRENCY", default_value_t = holactl_engine::alerts::DEFAULT_CONCURRENCY_SATURATION)]
    pub alert_concurrency: f64,
}

fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_owned()
    };
    full.parse()
        .with_context(|| format!("--listen {s:?} is not HOST:PORT"))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<Outcome> {
    let addr = parse_listen(&args.listen)?;
    if args.max_concurrency == 0 {
        anyhow::bail!("--max-concurrency must be at least 1");
    }
    let data_dir = args.data_dir.unwrap_or_else(super::default_data_dir);
    let init_program = std::env::current_exe().context("cannot find the holactl binary")?;
    let mut config = EngineConfig::new(data_dir.clone(), init_program);
    config.isolation = args.isolation;
    config.idle_ttl = Duration::from_secs(args.idle_ttl.max(1));
    config.max_concurrency = args.max_concurrency;
    for (flag, price) in [
        ("--price-per-request", args.price_per_request),
        ("--price-per-gb-second", args.price_per_gb_second),
    ] {
        if !price.is_finite() || price < 0.0 {
            anyhow::bail!("{flag} must be a price of 0 or more, got {price}");
        }
    }
    config.price_per_request = args.price_per_request;
    config.price_per_gb_second = args.price_per_gb_second;
    for (flag, fraction) in [
        ("--alert-error-rate", args.alert_error_rate),
        ("--alert-cold-start-rate", args.alert_cold_start_rate),
        ("--alert-concurrency", args.alert_concurrency),
    ] {
        if !(0.0..=1.0).contains(&fraction) {
            anyhow::bail!("{flag} must be a fraction from 0 to 1, got {fraction}");
        }
    }
    config.alerts = holactl_engine::alerts::AlertThresholds {
        error_rate: args.alert_error_rate,
        cold_start_rate: args.alert_cold_start_rate,
        min_invocations: args.alert_min_invocations,
        concurrency_saturation: args.alert_concurrency,
        ..holactl_engine::alerts::AlertThresholds::default()
    };

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let engine = Engine::open(config)
        .await
        .with_context(|| format!("cannot open data dir {}", data_dir.display()))?;

    let health = engine.health();
    println!(
        "holactl {} serving on http://{local}",
        env!("CARGO_PKG_VERSION")
    );
    println!("  data dir:    {}", data_dir.display());
    println!("  store:       {}", health.store);
    println!("  isolation:   {}", health.isolation);
    let runtimes: Vec<String> = health
        .runtimes
        .iter()
        .map(|(id, r)| match (&r.interpreter, &r.interpreter_version) {
            (Some(path), Some(version)) => format!("{id} ({path}, {version})"),
            _ => id.clone(),
        })
        .collect();
    println!("  runtimes:    {}", runtimes.join(", "));
    println!(
        "  admin token: {}",
        data_dir.join(holactl_engine::auth::TOKEN_FILE).display()
    );
    for warning in engine.warnings() {
        println!("  WARNING: {warning}");
        tracing::warn!("{warning}");
    }

    holactl_server::run(engine.clone(), listener, shutdown_signal())
        .await
        .context("server failed")?;
    engine.shutdown();
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    #[test]
    fn listen_forms() {
        assert_eq!(super::parse_listen(":8080").unwrap().port(), 8080);
        assert!(super::parse_listen("127.0.0.1:0").is_ok());
        assert!(super::parse_listen("nope").is_err());
    }
}
