//! The async autoscaler end to end: workers per function follow the backlog within
//! `MIN_WORKERS`..`MAX_WORKERS`, instances are pre-warmed on scale-up, every decision is a
//! structured log event, and `status`/metrics show it; bad knobs stop `serve` with a clear
//! error.

use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::util::*;

const SLOW: &str = r#"
import time
def lambda_handler(event, context):
    time.sleep(0.3)
    return {"n": event["n"]}
"#;

async fn status(server: &Server) -> Value {
    json(
        &server
            .request(Method::GET, "/api/v1/workers/status", None)
            .await,
    )
}

/// The most executions that overlapped in time.
fn max_overlap(executions: &[Value]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for e in executions {
        let start = e["started_at"].as_i64().expect("started_at");
        let end = e["ended_at"].as_i64().expect("ended_at");
        edges.push((start, 1));
        // Ends sort before starts at the same millisecond.
        edges.push((end, -1));
    }
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test]
async fn async_workers_scale_with_the_backlog_and_back_down() {
    let server = Server::builder()
        .log_format("json")
        .env("MIN_WORKERS", "1")
        .env("MAX_WORKERS", "4")
        .env("SCALE_UP_THRESHOLD", "2")
        .env("SCALE_DOWN_THRESHOLD", "1")
        .env("CHECK_INTERVAL", "200ms")
        .env("COOLDOWN_PERIOD", "1s")
        .start()
        .await;
    server.deploy(
        "slow",
        &[("lambda_function.py", SLOW, false)],
        &["--runtime", "python3.11"],
    );
    let s = status(&server).await;
    assert_eq!(
        s["async_workers"]["autoscaler"],
        json!({
            "min_workers": 1, "max_workers": 4, "scale_up_threshold": 2,
            "scale_down_threshold": 1, "check_interval_ms": 200, "cooldown_ms": 1000
        }),
        "{s}"
    );

    let events = 16;
    for n in 0..events {
        let answer = server
            .client()
            .send(
                Method::POST,
                "/api/v1/functions/slow/invoke",
                &[("x-invocation-type", "Event")],
                Some((
                    "application/json",
                    http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(
                        http_body_util::Full::new(Bytes::from(json!({ "n": n }).to_string())),
                        |never| match never {},
                    )),
                )),
            )
            .await
            .expect("async invoke");
        assert_eq!(answer.status.as_u16(), 202, "{:?}", answer.body);
    }

    // While the backlog drains, status shows the function's workers and backlog.
    let saw_busy = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    wait_until("every event to complete", Duration::from_secs(60), || {
        let server = &server;
        let saw_busy = saw_busy.clone();
        async move {
            let s = status(server).await;
            if let Some(busy) = s["async_workers"]["functions"]["slow"]["busy"].as_u64() {
                saw_busy.fetch_max(busy, std::sync::atomic::Ordering::Relaxed);
            }
            let list = json(
                &server
                    .request(
                        Method::GET,
                        "/api/v1/executions?function=slow&limit=100",
                        None,
                    )
                    .await,
            );
            list["executions"]
                .as_array()
                .is_some_and(|e| e.iter().filter(|e| e["status"] == "complete").count() == 16)
        }
    })
    .await;
    let list = json(
        &server
            .request(
                Method::GET,
                "/api/v1/executions?function=slow&limit=100",
                None,
            )
            .await,
    );
    let executions = list["executions"].as_array().expect("executions").clone();
    assert_eq!(executions.len(), events);
    let overlap = max_overlap(&executions);
    assert_eq!(
        overlap, 4,
        "scaled up to MAX_WORKERS and never beyond it (busy seen in status: {saw_busy:?})"
    );
    // Pre-warmed instances took most events warm: at most the first worker's start and the
    // pre-warmed ones that were still initialising were cold.
    let cold = executions
        .iter()
        .filter(|e| e["cold_start"] == true)
        .count();
    assert!(cold <= 4, "{cold} cold starts for 16 events on 4 workers");

    // With nothing queued, it scales back down to MIN_WORKERS, a step per cooldown.
    wait_until("scale down to MIN_WORKERS", Duration::from_secs(15), || {
        let server = &server;
        async move { status(server).await["async_workers"]["functions"]["slow"]["workers"] == 1 }
    })
    .await;

    // Every decision is a structured event with its reason.
    let log = server.server_stderr();
    let decisions: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("async workers scaled"))
        })
        .collect();
    let up = decisions
        .iter()
        .find(|d| d["message"] == "async workers scaled up")
        .unwrap_or_else(|| panic!("no scale-up event in the log:\n{log}"));
    assert_eq!(up["function"], "slow", "{up}");
    assert_eq!(up["from"], 1, "{up}");
    // Arrivals wake the autoscaler early, so the first decision may see part of the burst;
    // the workers reach MAX_WORKERS either way.
    assert!(
        decisions
            .iter()
            .any(|d| d["message"] == "async workers scaled up" && d["to"] == 4),
        "never scaled up to 4:\n{log}"
    );
    assert!(
        up["reason"]
            .as_str()
            .is_some_and(|r| r.contains("per worker")),
        "{up}"
    );
    assert!(
        decisions
            .iter()
            .any(|d| d["message"] == "async workers scaled down"),
        "no scale-down event in the log:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("pre-warming instances")),
        "no pre-warm event in the log:\n{log}"
    );

    // Metrics count the decisions and show the current workers.
    let metrics = server.request(Method::GET, "/api/v1/metrics", None).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains(r#"holactl_autoscaler_decisions_total{function="slow",direction="up"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"holactl_async_workers{function="slow"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"holactl_instances{state="initialising"}"#));

    // The CLI shows workers per function and instances by state.
    let out = server.cli(["lambda", "status"]);
    server.assert_success(&out, "status");
    let text = stdout(&out);
    assert!(text.contains("WORKERS") && text.contains("slow"), "{text}");
    assert!(text.contains("initialising"), "{text}");
}

#[test]
fn serve_refuses_inconsistent_autoscaler_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (env, mention) in [
        ([("MIN_WORKERS", "5"), ("MAX_WORKERS", "2")], "MAX_WORKERS"),
        (
            [("SCALE_UP_THRESHOLD", "2"), ("SCALE_DOWN_THRESHOLD", "3")],
            "SCALE_UP_THRESHOLD",
        ),
        (
            [("CHECK_INTERVAL", "fast"), ("COOLDOWN_PERIOD", "1s")],
            "fast",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["lambda", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .expect("running serve");
        assert!(!out.status.success(), "serve started with {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(mention), "{env:?}: {err}");
    }
}
