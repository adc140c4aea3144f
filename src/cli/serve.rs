//! `holactl lambda serve`: the whole platform on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use holactl_engine::config::StoreChoice;
use holactl_engine::{autoscaler, Engine, EngineConfig};
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
    /// Also serve the HTTP gateway on its own address (`HOST:PORT`), paths from `/`, for the
    /// API named by --gateway-api. It is always served at /gw/{api}/… on --listen as well.
    #[arg(long, env = "HOLACTL_GATEWAY_LISTEN")]
    pub gateway_listen: Option<String>,
    /// The API the --gateway-listen address serves.
    #[arg(long, env = "HOLACTL_GATEWAY_API", default_value = holactl_types::gateway::DEFAULT_API)]
    pub gateway_api: String,
    /// Let anyone register a user (each gets a personal project); otherwise only
    /// administrators register users.
    #[arg(long, env = "HOLACTL_OPEN_REGISTRATION")]
    pub open_registration: bool,
    /// Autoscaler: fewest async workers per function.
    #[arg(long, env = "MIN_WORKERS", default_value_t = autoscaler::DEFAULT_MIN_WORKERS)]
    pub min_workers: u32,
    /// Autoscaler: most async workers per function.
    #[arg(long, env = "MAX_WORKERS", default_value_t = autoscaler::DEFAULT_MAX_WORKERS)]
    pub max_workers: u32,
    /// Autoscaler: queued events per worker above which a function scales up.
    #[arg(long, env = "SCALE_UP_THRESHOLD", default_value_t = autoscaler::DEFAULT_SCALE_UP_THRESHOLD)]
    pub scale_up_threshold: u32,
    /// Autoscaler: queued events per worker below which a function scales down.
    #[arg(long, env = "SCALE_DOWN_THRESHOLD", default_value_t = autoscaler::DEFAULT_SCALE_DOWN_THRESHOLD)]
    pub scale_down_threshold: u32,
    /// Autoscaler: how often backlogs are checked (`500ms`, `1s`, `30s`, `2m`).
    #[arg(long, env = "CHECK_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub check_interval: Duration,
    /// Autoscaler: least time between a scaling decision and the next scale-down.
    #[arg(long, env = "COOLDOWN_PERIOD", default_value = "30s", value_parser = parse_duration)]
    pub cooldown_period: Duration,
    /// How long an invocation's scoped token for the internal API stays valid beyond the
    /// function's timeout (covers the cold start before the handler's clock starts).
    #[arg(long, env = "HOLACTL_TOKEN_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub token_grace: Duration,
    #[command(flatten)]
    pub cluster: super::nats::NatsArgs,
    /// Cluster mode: the address other nodes and operators see for this node
    /// (`http://HOST:PORT`; default: the address --listen bound).
    #[arg(long, env = "HOLACTL_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,
    /// Lease time of an async delivery beyond its function's timeout: after a node dies, its
    /// deliveries go to another node once this has passed (tests shorten it).
    #[arg(long, env = "HOLACTL_ASYNC_LEASE_MARGIN", default_value = "30s", value_parser = parse_duration, hide = true)]
    pub async_lease_margin: Duration,
}

/// `250ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 30s, 2m or 1h"))?;
    let per = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m or h)")),
    };
    n.checked_mul(per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too long"))
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
    // Held until the process ends: one server per data dir, and no import under it.
    let _lock = super::datadir::prepare(&data_dir)?;
    let init_program = std::env::current_exe().context("cannot find the holactl binary")?;
    let mut config = EngineConfig::new(data_dir.clone(), init_program);
    config.isolation = args.isolation;
    config.idle_ttl = Duration::from_secs(args.idle_ttl.max(1));
    config.max_concurrency = args.max_concurrency;
    config.open_registration = args.open_registration;
    config.autoscaler = autoscaler::AutoscalerConfig {
        min_workers: args.min_workers,
        max_workers: args.max_workers,
        scale_up_threshold: args.scale_up_threshold,
        scale_down_threshold: args.scale_down_threshold,
        check_interval: args.check_interval,
        cooldown: args.cooldown_period,
    };
    config
        .autoscaler
        .validate()
        .context("invalid autoscaler settings")?;
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
    config.token_grace = args.token_grace;
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
    config.lease_margin = args.async_lease_margin;
    if let Some((url, options)) = args.cluster.options()? {
        config.store = StoreChoice::Nats {
            url,
            options: Box::new(options),
        };
        config.node_address = Some(
            args.advertise_address
                .clone()
                .unwrap_or_else(|| format!("http://{local}")),
        );
    }
    let engine = Engine::open(config)
        .await
        .with_context(|| match &args.cluster.nats {
            Some(url) => format!(
                "cannot join the cluster at {url} (namespace {}) with data dir {}",
                args.cluster.nats_namespace,
                data_dir.display()
            ),
            None => format!("cannot open data dir {}", data_dir.display()),
        })?;

    let health = engine.health();
    println!(
        "holactl {} serving on http://{local}",
        env!("CARGO_PKG_VERSION")
    );
    println!("  data dir:    {}", data_dir.display());
    match (&args.cluster.nats, engine.node_id()) {
        (Some(url), Some(node)) => println!(
            "  store:       {} ({url}, namespace {}, node {node})",
            health.store, args.cluster.nats_namespace
        ),
        _ => println!("  store:       {}", health.store),
    }
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
    let local_token = data_dir.join(holactl_engine::auth::TOKEN_FILE);
    match engine.admin_token_origin() {
        _ if local_token.is_file() => println!("  admin token: {}", local_token.display()),
        // Cluster mode: only the node that created the token has the file.
        Some(origin) => println!(
            "  admin token: {} on node {}{} (created there; this node has no copy)",
            origin.path,
            origin.node,
            origin
                .address
                .as_deref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default()
        ),
        None => println!(
            "  admin token: the cluster's (on the node that created it, or in the data dir it \
             was imported from)"
        ),
    }
    for warning in engine.warnings() {
        println!("  WARNING: {warning}");
        tracing::warn!("{warning}");
    }

    println!(
        "  gateway:     http://{local}{}/{{api}}/…",
        holactl_types::gateway::GATEWAY_PREFIX
    );
    // One signal stops both listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let gateway = match &args.gateway_listen {
        Some(addr) => {
            holactl_types::gateway::validate_gateway_name("--gateway-api", &args.gateway_api)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let addr = parse_listen(addr)?;
            let gw_listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--gateway-listen)"))?;
            let gw_local = gw_listener.local_addr()?;
            engine.set_gateway_listener(&format!("http://{gw_local}"), &args.gateway_api);
            println!(
                "  gateway:     http://{gw_local}/ (API {})",
                args.gateway_api
            );
            let mut rx = stop_rx.clone();
            Some(tokio::spawn(holactl_server::run_gateway(
                engine.clone(),
                gw_listener,
                args.gateway_api.clone(),
                async move {
                    let _ = rx.changed().await;
                },
            )))
        }
        None => None,
    };
    holactl_server::run(engine.clone(), listener, async move {
        shutdown_signal().await;
        let _ = stop_tx.send(());
    })
    .await
    .context("server failed")?;
    if let Some(task) = gateway {
        let _ = task.await;
    }
    engine.shutdown();
    // After the heartbeat task is stopped, so no heartbeat follows the removal.
    engine.leave_cluster().await;
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

    #[test]
    fn duration_forms() {
        use std::time::Duration;
        let p = super::parse_duration;
        assert_eq!(p("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(p("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(p("30"), Ok(Duration::from_secs(30)));
        assert_eq!(p("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(p("1h"), Ok(Duration::from_secs(3600)));
        assert!(p("1.5s").is_err());
        assert!(p("s").is_err());
        assert!(p("10d").is_err());
        assert!(p("99999999999999999h").is_err());
    }
}
