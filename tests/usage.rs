//! Usage metering end to end: requests and GB-seconds per function and day equal the sum over
//! the execution records (sync and async), survive a SIGKILL restart, filter by function and
//! `since`, and reject bad input.

use std::time::Duration;

use http::Method;
use serde_json::{json, Value};

use crate::util::*;

const HANDLER: &str = r#"
def lambda_handler(event, context):
    return {"ok": True}
"#;

fn deploy(server: &Server, name: &str, memory: &str) {
    server.deploy(
        name,
        &[("lambda_function.py", HANDLER, false)],
        &["--runtime", "python3.11", "--memory", memory],
    );
}

async fn get(server: &Server, path: &str) -> Value {
    let answer = server.request(Method::GET, path, None).await;
    assert_eq!(answer.status.as_u16(), 200, "{path}: {:?}", answer.body);
    json(&answer)
}

/// (count, GB-seconds) over a function's final, billed execution records.
async fn from_records(server: &Server, function: &str) -> (u64, f64) {
    let list = get(
        server,
        &format!("/api/v1/executions?function={function}&limit=1000"),
    )
    .await;
    let mut n = 0;
    let mut gb = 0.0;
    for e in list["executions"].as_array().unwrap() {
        let Some(billed) = e["billed_duration_ms"].as_u64() else {
            continue;
        };
        assert!(
            !["pending", "running"].contains(&e["status"].as_str().unwrap()),
            "{e}"
        );
        n += 1;
        gb += billed as f64 / 1000.0 * e["memory_mb"].as_f64().unwrap() / 1024.0;
    }
    (n, gb)
}

fn totals(report: &Value) -> (u64, f64, f64) {
    let t = &report["total"];
    (
        t["requests"].as_u64().unwrap(),
        t["gb_seconds"].as_f64().unwrap(),
        t["cost"].as_f64().unwrap(),
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test]
async fn usage_matches_execution_records_and_survives_restart() {
    let mut server = Server::start().await;
    deploy(&server, "metered", "1024");
    deploy(&server, "other", "512");

    for _ in 0..3 {
        assert_invoke_ok(&server.invoke("metered", &json!({})).await);
    }
    assert_invoke_ok(&server.invoke("other", &json!({})).await);
    let client = server.client();
    let mut pending = Vec::new();
    for _ in 0..2 {
        let accepted = client
            .invoke_async("metered", bytes::Bytes::from_static(b"{}"), None)
            .await
            .expect("async invoke");
        pending.push(accepted.id);
    }
    for id in &pending {
        let path = format!("/api/v1/executions/{id}");
        wait_until("async execution completes", Duration::from_secs(30), || {
            let server = &server;
            let path = path.clone();
            async move { get(server, &path).await["status"] == "complete" }
        })
        .await;
    }

    let metered = get(&server, "/api/v1/usage?function=metered").await;
    let (requests, gb, cost) = totals(&metered);
    let (n, want_gb) = from_records(&server, "metered").await;
    assert_eq!((requests, n), (5, 5), "{metered}");
    assert!(close(gb, want_gb), "usage {gb} GB-s, records {want_gb}");
    assert_eq!(
        metered["prices"]["source"],
        "AWS Lambda public list prices (x86)"
    );
    let want_cost = 5.0 * 0.20 / 1_000_000.0 + want_gb * 0.000_016_666_7;
    assert!(close(cost, want_cost), "{cost} vs {want_cost}");
    assert!(metered["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["function"] == "metered"));

    let all = get(&server, "/api/v1/usage").await;
    let (other_n, other_gb) = from_records(&server, "other").await;
    assert_eq!(totals(&all).0, 6, "{all}");
    assert!(close(totals(&all).1, want_gb + other_gb));

    // The CLI shows the same numbers.
    let out = server.cli(["lambda", "-o", "json", "usage", "--function", "metered"]);
    server.assert_success(&out, "usage -o json");
    let cli: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(cli["total"], metered["total"]);
    let out = server.cli(["lambda", "usage", "--since", "7d"]);
    server.assert_success(&out, "usage");
    let table = stdout(&out);
    for word in [
        "FUNCTION", "GB-S", "COST", "metered", "other", "TOTAL", "AWS",
    ] {
        assert!(table.contains(word), "{word} missing from:\n{table}");
    }

    // Totals survive a crash and restart.
    server.kill_and_restart().await;
    let after = get(&server, "/api/v1/usage").await;
    assert_eq!(after["total"], all["total"]);
    assert_eq!(after["rows"], all["rows"]);
    assert_eq!(from_records(&server, "other").await.0, other_n);

    // Filters: since 7 days ago includes today; a future day includes nothing.
    let week = get(&server, "/api/v1/usage?since=7d").await;
    assert_eq!(week["total"], all["total"]);
    let future = get(&server, "/api/v1/usage?since=2999-01-01T00:00:00Z").await;
    assert_eq!(totals(&future).0, 0, "{future}");
    assert!(future["rows"].as_array().unwrap().is_empty());
    let none = get(&server, "/api/v1/usage?function=missing").await;
    assert_eq!(totals(&none).0, 0);
}

#[tokio::test]
async fn usage_rejects_bad_input() {
    let server = Server::start().await;
    let answer = server
        .request(Method::GET, "/api/v1/usage?since=garbage", None)
        .await;
    assert_api_error(&answer, 400, "INVALID_INPUT");
    let answer = server
        .request(Method::GET, "/api/v1/usage?bogus=1", None)
        .await;
    assert_api_error(&answer, 400, "INVALID_INPUT");
    let out = server.cli(["lambda", "usage", "--since", "garbage"]);
    assert_failure(&out, "usage --since garbage");
    assert!(stderr(&out).contains("INVALID_INPUT"), "{}", stderr(&out));
    // An empty store reports zero, priced.
    let empty = get(&server, "/api/v1/usage").await;
    assert_eq!(totals(&empty), (0, 0.0, 0.0));
}
