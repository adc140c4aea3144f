//! Metrics, alerts, status and the platform log end to end: a function that sometimes raises
//! is invoked; `metrics` agrees with its execution records, an error-rate alert fires and
//! shows in `status` and `/api/v1/alerts`, `/api/v1/metrics` is valid Prometheus text, and
//! `--log-format json` makes every stderr line a JSON object.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::util::*;

const HANDLER: &str = r#"
def lambda_handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"#;

async fn get(server: &Server, path: &str) -> Value {
    let answer = server.request(Method::GET, path, None).await;
    assert_eq!(answer.status.as_u16(), 200, "{path}: {:?}", answer.body);
    json(&answer)
}

/// Checks every non-comment line is `name{labels} value`; returns (name with labels, value).
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels: {line:?}"
            );
            for pair in labels[1..labels.len() - 1]
                .split(',')
                .filter(|p| !p.is_empty())
            {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label in {line:?}"));
                assert!(!k.is_empty(), "{line:?}");
                assert!(v.starts_with('"') && v.ends_with('"'), "{line:?}");
            }
        }
        out.push((series.to_owned(), value));
    }
    out
}

#[tokio::test]
async fn metrics_alerts_status_and_json_logs() {
    let server = Server::builder().log_format("json").start().await;
    server.deploy(
        "flaky",
        &[("lambda_function.py", HANDLER, false)],
        &["--runtime", "python3.11"],
    );
    // 3 of 24 fail: 12.5 % of at least 20 invocations.
    for i in 0..24 {
        let payload = json!({ "fail": i % 8 == 7 });
        server.invoke("flaky", &payload).await;
    }

    let list = get(&server, "/api/v1/executions?function=flaky&limit=1000").await;
    let records = list["executions"].as_array().unwrap();
    assert_eq!(records.len(), 24);
    let failed = records.iter().filter(|e| e["status"] == "failed").count() as u64;
    let cold = records.iter().filter(|e| e["cold_start"] == true).count() as u64;
    assert_eq!(failed, 3);
    assert!(cold >= 1);

    let m = get(&server, "/api/v1/functions/flaky/metrics?since=1h").await;
    assert_eq!(m["invocations"], 24, "{m}");
    assert_eq!(m["errors"], failed, "{m}");
    assert!((m["error_rate"].as_f64().unwrap() - 3.0 / 24.0).abs() < 1e-9);
    assert_eq!(m["cold_starts"], cold, "{m}");
    assert_eq!(m["duration"]["cold"]["count"], cold, "{m}");
    assert_eq!(m["duration"]["warm"]["count"], 24 - cold, "{m}");
    assert_eq!(m["duration"]["all"]["count"], 24, "{m}");
    assert!(m["duration"]["all"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(m["errors_by_code"]["FUNCTION_ERROR"], 3, "{m}");
    assert_eq!(m["throttles"], 0);

    // The CLI prints the same numbers.
    let out = server.cli(["lambda", "metrics", "flaky", "--since", "1h"]);
    server.assert_success(&out, "metrics");
    let text = stdout(&out);
    assert!(text.contains("Invocations:      24"), "{text}");
    assert!(text.contains("12.50 %"), "{text}");
    let out = server.cli(["lambda", "metrics", "nope"]);
    assert_failure(&out, "metrics of an unknown function");

    // The error-rate alert fires, in the API and in `status`.
    let alerts = get(&server, "/api/v1/alerts").await;
    let alert = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "error_rate")
        .unwrap_or_else(|| panic!("no error_rate alert: {alerts}"))
        .clone();
    assert_eq!(alert["function"], "flaky");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["threshold"], 0.01);
    let status = get(&server, "/api/v1/workers/status").await;
    assert_eq!(status["async_workers"]["autoscaler"]["min_workers"], 2);
    assert!(status["instances"]["idle"].as_u64().is_some(), "{status}");
    assert!(status["queues"].is_object(), "{status}");
    assert!(!status["isolation"].as_str().unwrap().is_empty());
    assert!(status["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "error_rate"));
    let out = server.cli(["lambda", "status"]);
    server.assert_success(&out, "status");
    let text = stdout(&out);
    assert!(
        text.contains("error_rate") && text.contains("flaky"),
        "{text}"
    );
    assert!(text.contains("Async workers"), "{text}");

    // Prometheus text exposition.
    let answer = server.request(Method::GET, "/api/v1/metrics", None).await;
    assert_eq!(answer.status.as_u16(), 200);
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    let samples = parse_prometheus(&text);
    let errors: f64 = samples
        .iter()
        .filter(|(s, _)| s.starts_with("holactl_errors_total{") && s.contains("\"flaky\""))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(errors, 3.0, "{text}");

    // A dead-lettered async event raises `dlq_growth`.
    let out = server.cli(["lambda", "update", "flaky", "--max-retries", "0"]);
    server.assert_success(&out, "update --max-retries 0");
    server
        .client()
        .invoke_async("flaky", Bytes::from_static(br#"{"fail": true}"#), None)
        .await
        .expect("async invoke");
    wait_until("a dead letter", Duration::from_secs(15), || async {
        let dlq = get(&server, "/api/v1/functions/flaky/dlq").await;
        dlq["entries"].as_array().is_some_and(|e| e.len() == 1)
    })
    .await;
    let alerts = get(&server, "/api/v1/alerts").await;
    let dlq = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "dlq_growth")
        .unwrap_or_else(|| panic!("no dlq_growth alert: {alerts}"));
    assert_eq!(dlq["function"], "flaky");
    assert_eq!(dlq["value"], 1.0);

    // The dead letter is counted, and the async queue's depth (refreshed at each autoscaler
    // check) shows it.
    wait_until(
        "the async queue gauges",
        Duration::from_secs(10),
        || async {
            let answer = server.request(Method::GET, "/api/v1/metrics", None).await;
            let samples = parse_prometheus(&String::from_utf8_lossy(&answer.body));
            let value = |series: &str| samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v);
            value(r#"holactl_dead_letters_total{function="flaky"}"#) == Some(1.0)
                && value(r#"holactl_queue_messages{queue="async/flaky",state="dead"}"#) == Some(1.0)
                && value(r#"holactl_queue_messages{queue="async/flaky",state="ready"}"#)
                    == Some(0.0)
                && value(r#"holactl_queue_oldest_message_age_seconds{queue="async/flaky"}"#)
                    .is_some()
        },
    )
    .await;

    // The platform log is JSON lines with structured fields.
    let log = server.server_stderr();
    assert!(!log.trim().is_empty());
    let mut started = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        assert!(v["level"].is_string(), "{line}");
        if v["message"] == "instance started" {
            assert_eq!(v["function"], "flaky", "{line}");
            started = true;
        }
    }
    assert!(started, "no instance started event:\n{log}");
}
