//! `holactl lambda status`: async workers, instances, prepared sandboxes, queue depths,
//! concurrency, isolation, firing alerts and, in cluster mode, the nodes and their load.

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// Prints the platform's status.
pub async fn run(g: &GlobalOpts) -> anyhow::Result<Outcome> {
    let s = g.client()?.platform_status().await?;
    if g.output == OutputFormat::Json {
        output::json(&s)?;
        return Ok(Outcome::Success);
    }
    let count = |state: &str| s.instances.get(state).copied().unwrap_or(0);
    println!("Isolation:          {}", s.isolation);
    if let Some(c) = &s.cluster {
        println!(
            "Cluster:            {} of {} nodes live (namespace {}, answered by {})",
            c.live,
            c.nodes.len(),
            c.namespace,
            c.node
        );
    }
    let a = &s.async_workers.autoscaler;
    println!(
        "Async workers:      {} busy of {} (autoscaler: {}–{} per function, up above {} and down below {} events per worker, every {} ms, cooldown {} ms)",
        s.async_workers.busy,
        s.async_workers.workers,
        a.min_workers,
        a.max_workers,
        a.scale_up_threshold,
        a.scale_down_threshold,
        a.check_interval_ms,
        a.cooldown_ms
    );
    println!(
        "Instances:          {} idle (warm), {} busy, {} initialising",
        count("idle"),
        count("busy"),
        count("initialising")
    );
    println!("Prepared sandboxes: {}", s.prepared_sandboxes);
    println!(
        "Concurrency:        {} of {}",
        s.concurrent_executions, s.max_concurrency
    );
    println!();
    let rows: Vec<Vec<String>> = s
        .queues
        .iter()
        .map(|(name, d)| {
            vec![
                name.clone(),
                d.ready.to_string(),
                d.delayed.to_string(),
                d.in_flight.to_string(),
                d.dead.to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("Queues: all empty");
    } else {
        output::table(&["QUEUE", "READY", "DELAYED", "IN FLIGHT", "DEAD"], &rows)?;
    }
    println!();
    if !s.async_workers.functions.is_empty() {
        let rows: Vec<Vec<String>> = s
            .async_workers
            .functions
            .iter()
            .map(|(name, w)| {
                vec![
                    name.clone(),
                    w.workers.to_string(),
                    w.busy.to_string(),
                    w.backlog.to_string(),
                ]
            })
            .collect();
        output::table(&["FUNCTION", "WORKERS", "BUSY", "BACKLOG"], &rows)?;
        println!();
    }
    if let Some(c) = &s.cluster {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let rows: Vec<Vec<String>> = c
            .nodes
            .iter()
            .map(|n| {
                let count = |state: &str| n.instances.get(state).copied().unwrap_or(0);
                vec![
                    n.id.clone(),
                    n.address.clone(),
                    if n.live { "live" } else { "down" }.to_owned(),
                    format!("{:.1}s ago", (now - n.last_seen).max(0) as f64 / 1000.0),
                    n.running.to_string(),
                    count("idle").to_string(),
                    count("busy").to_string(),
                ]
            })
            .collect();
        output::table(
            &[
                "NODE",
                "ADDRESS",
                "STATE",
                "LAST SEEN",
                "RUNNING",
                "IDLE",
                "BUSY",
            ],
            &rows,
        )?;
        println!();
    }
    if s.alerts.is_empty() {
        println!("Alerts: none");
    } else {
        let rows: Vec<Vec<String>> = s
            .alerts
            .iter()
            .map(|a| {
                vec![
                    format!("{:?}", a.severity).to_uppercase(),
                    a.name.clone(),
                    a.function.clone().unwrap_or_else(|| "-".to_owned()),
                    a.message.clone(),
                ]
            })
            .collect();
        output::table(&["SEVERITY", "ALERT", "FUNCTION", "MESSAGE"], &rows)?;
    }
    Ok(Outcome::Success)
}
