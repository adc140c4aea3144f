//! Crash safety beyond async invokes: queue messages and webhook deliveries accepted before a
//! SIGKILL of the server are all processed after a restart (or dead-lettered); none is lost.
//! Each test prints how many were delivered more than once (at-least-once is allowed; the count
//! is the figure).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use holactl_types::queue::SendMessageRequest;
use http::Method;
use serde_json::Value;

use crate::util::{assert_success, queue_with_trigger, wait_until, Server};

/// Records every body of every batch it gets.
const CONSUMER: &str = r#"
def lambda_handler(event, context):
    return {"bodies": [r["body"] for r in event["Records"]]}
"#;

const ECHO: &str = r#"
def lambda_handler(event, context):
    return {"body": event.get("body")}
"#;

#[tokio::test]
async fn queue_messages_survive_a_sigkill() {
    const TOTAL: usize = 400;
    let mut server = Server::start().await;
    server.deploy(
        "consumer",
        &[("lambda_function.py", CONSUMER, false)],
        &["--runtime", "python3.11"],
    );
    let client = server.client();
    queue_with_trigger(&client, "orders", "consumer", 10).await;
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let sender = {
        let accepted = accepted.clone();
        let client = client.clone();
        tokio::spawn(async move {
            futures_util::stream::iter(0..TOTAL)
                .for_each_concurrent(16, |i| {
                    let client = client.clone();
                    let accepted = accepted.clone();
                    async move {
                        let body = format!("order-{i}");
                        let req = SendMessageRequest {
                            body: body.clone(),
                            ..Default::default()
                        };
                        if client.send_message("orders", &req).await.is_ok() {
                            accepted.lock().expect("lock").push(body);
                        }
                    }
                })
                .await;
        })
    };
    wait_until("half the messages sent", Duration::from_secs(60), || {
        let accepted = accepted.clone();
        async move { accepted.lock().expect("lock").len() >= TOTAL / 2 }
    })
    .await;
    server.kill_and_restart().await;
    sender.await.expect("sender");
    let bodies: Vec<String> = accepted.lock().expect("lock").clone();

    // Everything accepted is eventually seen by the function (or dead-lettered).
    let client = server.client();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = seen(&client).await;
        let dead: HashSet<String> = client
            .queue_dead_letters("orders")
            .await
            .expect("dlq")
            .entries
            .into_iter()
            .map(|d| d.body)
            .collect();
        let missing: Vec<&String> = bodies
            .iter()
            .filter(|b| !seen.contains_key(*b) && !dead.contains(*b))
            .collect();
        if missing.is_empty() {
            let twice = seen.values().filter(|n| **n > 1).count();
            println!(
                "queue crash safety: {} of {TOTAL} accepted, 0 lost, {} dead-lettered, {twice} delivered more than once",
                bodies.len(),
                dead.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted messages never processed, e.g. {:?}\n{}",
            missing.len(),
            missing.first(),
            server.server_log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// body → times the consumer saw it in a completed execution.
async fn seen(client: &holactl::client::Client) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut before: Option<String> = None;
    loop {
        let mut path = "/api/v1/executions?function=consumer&limit=1000".to_owned();
        if let Some(b) = &before {
            path.push_str(&format!("&before={b}"));
        }
        let answer = client
            .send(Method::GET, &path, &[], None)
            .await
            .expect("list");
        let page: Value = serde_json::from_slice(&answer.body).expect("json");
        let executions = page["executions"].as_array().cloned().unwrap_or_default();
        for e in &executions {
            if e["status"] == "complete" {
                for b in e["result"]["bodies"].as_array().into_iter().flatten() {
                    *out.entry(b.as_str().unwrap_or_default().to_owned())
                        .or_default() += 1;
                }
            }
        }
        match page["next"].as_str() {
            Some(next) if !executions.is_empty() => before = Some(next.to_owned()),
            _ => return out,
        }
    }
}

fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    m.update(ts.as_bytes());
    m.update(b".");
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

#[tokio::test]
async fn webhook_deliveries_survive_a_sigkill() {
    const TOTAL: usize = 300;
    const SECRET: &str = "crash-test-secret";
    let mut server = Server::start().await;
    server.deploy(
        "hook",
        &[("lambda_function.py", ECHO, false)],
        &["--runtime", "python3.11"],
    );
    let out = server.cli_stdin(
        &[
            "lambda",
            "webhook",
            "create",
            "orders",
            "--function",
            "hook",
            "--scheme",
            "hmac-sha256",
            "--secret-from-stdin",
            "-o",
            "json",
        ],
        SECRET.as_bytes(),
    );
    assert_success(&out, "webhook create");
    let view: Value = serde_json::from_slice(&out.stdout).expect("json");
    let path = view["path"].as_str().expect("path").to_owned();

    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let anonymous = server.client_with_token(None);
    let sender = {
        let accepted = accepted.clone();
        let path = path.clone();
        tokio::spawn(async move {
            futures_util::stream::iter(0..TOTAL)
                .for_each_concurrent(16, |i| {
                    let client = anonymous.clone();
                    let accepted = accepted.clone();
                    let path = path.clone();
                    async move {
                        let body = format!("{{\"delivery\":{i}}}");
                        let ts = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or_default()
                            .to_string();
                        let sig = sign(SECRET, &ts, body.as_bytes());
                        let headers = [
                            ("x-hola-signature", sig.as_str()),
                            ("x-hola-timestamp", ts.as_str()),
                        ];
                        let sent = client
                            .send(
                                Method::POST,
                                &path,
                                &headers,
                                Some((
                                    "application/json",
                                    http_body_util::BodyExt::boxed(
                                        http_body_util::BodyExt::map_err(
                                            http_body_util::Full::new(Bytes::from(body)),
                                            |never| match never {},
                                        ),
                                    ),
                                )),
                            )
                            .await;
                        if let Ok(answer) = sent {
                            if answer.status.as_u16() == 202 {
                                let v: Value =
                                    serde_json::from_slice(&answer.body).unwrap_or_default();
                                if let Some(id) = v["execution_id"].as_str() {
                                    accepted.lock().expect("lock").push(id.to_owned());
                                }
                            }
                        }
                    }
                })
                .await;
        })
    };
    wait_until(
        "half the deliveries accepted",
        Duration::from_secs(60),
        || {
            let accepted = accepted.clone();
            async move { accepted.lock().expect("lock").len() >= TOTAL / 2 }
        },
    )
    .await;
    server.kill_and_restart().await;
    sender.await.expect("sender");
    let ids: Vec<String> = accepted.lock().expect("lock").clone();

    let client = server.client();
    let mut pending: HashSet<String> = ids.iter().cloned().collect();
    let mut redelivered = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} accepted deliveries never ran, e.g. {:?}",
            pending.len(),
            pending.iter().next()
        );
        let mut done = Vec::new();
        for id in pending.iter().take(100) {
            let record = client.get_execution(id).await.expect("execution");
            if record.status.is_final() {
                assert_eq!(
                    record.status,
                    holactl_types::ExecutionStatus::Complete,
                    "{id}: {record:?}"
                );
                if record.attempts > 1 {
                    redelivered += 1;
                }
                done.push(id.clone());
            }
        }
        for id in done {
            pending.remove(&id);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "webhook crash safety: {} of {TOTAL} accepted, 0 lost, {redelivered} delivered more than once",
        ids.len()
    );
}
