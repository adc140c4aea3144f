//! Queues and event-source mappings end to end: SQS-shaped batches reach a Python function,
//! partial batch failures retry only the failed records, bisection isolates a poison record
//! into the queue's DLQ, disable/enable stop and resume delivery, and the message API
//! (send/receive/ack) and its error codes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use holactl::client::Client;
use holactl_types::queue::{
    CreateQueueRequest, CreateTriggerRequest, ReceiveRequest, SendMessageRequest, TriggerView,
};
use http::Method;
use serde_json::{json, Value};

use crate::util::{assert_api_error, assert_failure, assert_success, json, stdout, Server};

/// Reports what it saw; raises on a poison record; reports `flaky` records as failed items on
/// their first delivery.
const CONSUMER: &str = r#"
def lambda_handler(event, context):
    seen = []
    failures = []
    for r in event["Records"]:
        body = r["body"]
        count = int(r["attributes"]["ApproximateReceiveCount"])
        if body.startswith("poison"):
            raise ValueError("poison record " + r["messageId"])
        seen.append({"id": r["messageId"], "body": body, "count": count})
        if body.startswith("flaky") and count == 1:
            failures.append({"itemIdentifier": r["messageId"]})
    return {
        "batchItemFailures": failures,
        "seen": seen,
        "size": len(event["Records"]),
        "first": event["Records"][0],
    }
"#;

/// How long a queue gets to drain.
const DRAIN: Duration = Duration::from_secs(20);

/// Polls `check` every 100 ms until it holds; panics with `what` and the server's log after
/// [`DRAIN`].
async fn wait_for<F, Fut>(server: &Server, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + DRAIN;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            server.server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn deploy_consumer(server: &Server, name: &str) {
    server.deploy(
        name,
        &[("lambda_function.py", CONSUMER, false)],
        &["--runtime", "python3.11"],
    );
}

fn create_queue_cli(server: &Server, name: &str) {
    let out = server.cli(["lambda", "queue", "create", name]);
    assert_success(&out, "queue create");
}

async fn send(client: &Client, queue: &str, body: &str) -> String {
    client
        .send_message(
            queue,
            &SendMessageRequest {
                body: body.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("send to {queue}: {e}"))
        .message_id
}

fn trigger(queue: &str, function: &str) -> CreateTriggerRequest {
    CreateTriggerRequest {
        queue: queue.to_owned(),
        function: function.to_owned(),
        ..Default::default()
    }
}

/// The successful results of `function`'s executions, oldest first.
async fn results(client: &Client, function: &str) -> Vec<Value> {
    let mut list = client
        .list_executions(Some(function), 1000)
        .await
        .expect("list executions")
        .executions;
    list.reverse();
    list.into_iter()
        .filter_map(|e| e.result.and_then(|r| serde_json::from_str(r.get()).ok()))
        .collect()
}

/// body → receive counts it was successfully seen with.
async fn seen(client: &Client, function: &str) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in results(client, function).await {
        for s in r["seen"].as_array().into_iter().flatten() {
            out.entry(s["body"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push(s["count"].as_u64().unwrap_or(0));
        }
    }
    out
}

/// Whether a queue has nothing ready, delayed or in flight.
async fn drained(client: &Client, queue: &str) -> bool {
    let d = client.get_queue(queue).await.expect("get queue").depth;
    d.ready + d.delayed + d.in_flight == 0
}

#[tokio::test]
async fn mapping_delivers_every_message_in_sqs_shaped_batches() {
    let server = Server::start().await;
    let client = server.client();
    deploy_consumer(&server, "consumer");
    create_queue_cli(&server, "orders");
    let out = server.cli([
        "lambda",
        "trigger",
        "create",
        "--queue",
        "orders",
        "--function",
        "consumer",
        "--batch-size",
        "10",
        "--batch-window",
        "1s",
        "--max-retries",
        "3",
        "--max-record-age",
        "21600",
        "--bisect-on-error",
        "--parallelization",
        "4",
    ]);
    assert_success(&out, "trigger create");
    assert!(
        stdout(&out).contains("orders → consumer"),
        "{}",
        stdout(&out)
    );

    let mut md5 = HashMap::new();
    for i in 0..49 {
        let sent = client
            .send_message(
                "orders",
                &SendMessageRequest {
                    body: format!("order-{i}"),
                    attributes: Some(BTreeMap::from([("kind".into(), "order".into())])),
                    ..Default::default()
                },
            )
            .await
            .expect("send");
        md5.insert(sent.message_id, sent.md5_of_body);
    }
    let out = server.cli(["lambda", "queue", "send", "orders", "order-49"]);
    assert_success(&out, "queue send");
    assert_eq!(stdout(&out).trim().len(), 36, "prints the message id");

    wait_for(&server, "50 messages processed", || async {
        seen(&client, "consumer").await.len() == 50 && drained(&client, "orders").await
    })
    .await;
    let seen = seen(&client, "consumer").await;
    for i in 0..50 {
        assert_eq!(seen[&format!("order-{i}")], vec![1], "order-{i} once");
    }
    let results = results(&client, "consumer").await;
    assert!(
        results.len() >= 5,
        "at most 10 per batch: {}",
        results.len()
    );
    for r in &results {
        let size = r["size"].as_u64().unwrap();
        assert!((1..=10).contains(&size), "batch of {size}");
        let first = &r["first"];
        assert_eq!(first["eventSource"], "holactl:queue", "{first}");
        assert!(
            first["eventSourceARN"]
                .as_str()
                .is_some_and(|a| a.starts_with("arn:aws:sqs:") && a.ends_with(":orders")),
            "{first}"
        );
        assert_eq!(first["awsRegion"], "local-1");
        assert!(first["receiptHandle"]
            .as_str()
            .is_some_and(|r| !r.is_empty()));
        assert_eq!(first["attributes"]["ApproximateReceiveCount"], "1");
        assert!(first["attributes"]["SentTimestamp"]
            .as_str()
            .is_some_and(|t| t.parse::<i64>().is_ok()));
        let id = first["messageId"].as_str().unwrap();
        if let Some(expected) = md5.get(id) {
            assert_eq!(first["md5OfBody"], expected.as_str());
            assert_eq!(first["messageAttributes"]["kind"]["stringValue"], "order");
            assert_eq!(first["messageAttributes"]["kind"]["dataType"], "String");
        }
    }
    let executions = client
        .list_executions(Some("consumer"), 10)
        .await
        .unwrap()
        .executions;
    assert!(executions
        .iter()
        .all(|e| e.trigger == holactl_types::Trigger::Queue));

    let out = server.cli(["lambda", "trigger", "list"]);
    assert_success(&out, "trigger list");
    assert!(stdout(&out).contains("Enabled"), "{}", stdout(&out));
    let out = server.cli(["lambda", "queue", "list"]);
    assert_success(&out, "queue list");
    assert!(stdout(&out).contains("orders"), "{}", stdout(&out));
}

#[tokio::test]
async fn partial_batch_failure_retries_only_the_failed_item() {
    let server = Server::start().await;
    let client = server.client();
    deploy_consumer(&server, "partial");
    create_queue_cli(&server, "partial");
    for body in ["a", "b", "flaky", "c"] {
        send(&client, "partial", body).await;
    }
    let mut req = trigger("partial", "partial");
    req.batch_window_s = Some(1);
    client.create_trigger(&req).await.expect("create trigger");
    wait_for(&server, "the flaky record retried", || async {
        seen(&client, "partial")
            .await
            .get("flaky")
            .is_some_and(|c| c.len() == 2)
            && drained(&client, "partial").await
    })
    .await;
    let seen = seen(&client, "partial").await;
    assert_eq!(seen["flaky"], vec![1, 2], "{seen:?}");
    for body in ["a", "b", "c"] {
        assert_eq!(seen[body], vec![1], "{body} is not retried: {seen:?}");
    }
    let depth = client.get_queue("partial").await.unwrap().depth;
    assert_eq!(depth.dead, 0);
}

#[tokio::test]
async fn bisect_sends_the_poison_record_to_the_dlq_and_delivers_the_rest() {
    let server = Server::start().await;
    let client = server.client();
    deploy_consumer(&server, "bisect");
    create_queue_cli(&server, "poisoned");
    let bodies = ["m0", "m1", "m2", "poison", "m3", "m4", "m5"];
    let mut poison_id = String::new();
    for body in bodies {
        let id = send(&client, "poisoned", body).await;
        if body == "poison" {
            poison_id = id;
        }
    }
    let mut req = trigger("poisoned", "bisect");
    req.batch_window_s = Some(1);
    req.bisect_on_error = Some(true);
    req.max_retries = Some(2);
    let t = client.create_trigger(&req).await.expect("create trigger");

    wait_for(&server, "the poison record dead-lettered", || async {
        client.get_queue("poisoned").await.unwrap().depth.dead == 1
            && drained(&client, "poisoned").await
    })
    .await;
    let seen = seen(&client, "bisect").await;
    for body in ["m0", "m1", "m2", "m3", "m4", "m5"] {
        assert_eq!(seen[body], vec![1], "{body} processed once: {seen:?}");
    }
    assert!(!seen.contains_key("poison"));
    let dlq = client.queue_dead_letters("poisoned").await.unwrap().entries;
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].id, poison_id);
    assert_eq!(dlq[0].body, "poison");
    assert_eq!(dlq[0].attempts, 3, "1 delivery + max_retries 2");
    assert!(dlq[0].reason.contains("poison record"), "{}", dlq[0].reason);

    let out = server.cli(["lambda", "queue", "dlq", "poisoned"]);
    assert_success(&out, "queue dlq");
    assert!(stdout(&out).contains(&poison_id), "{}", stdout(&out));

    // Replay into the queue while the trigger is off: a fresh message, readable by receive.
    client
        .set_trigger_enabled(&t.trigger.id, false)
        .await
        .unwrap();
    let out = server.cli(["lambda", "queue", "dlq", "poisoned", "--replay"]);
    assert_success(&out, "queue dlq --replay");
    assert!(stdout(&out).contains("Replayed 1"), "{}", stdout(&out));
    let depth = client.get_queue("poisoned").await.unwrap().depth;
    assert_eq!((depth.ready, depth.dead), (1, 0), "{depth:?}");
    // Back to the DLQ through the trigger, then purge it.
    client
        .set_trigger_enabled(&t.trigger.id, true)
        .await
        .unwrap();
    wait_for(
        &server,
        "the replayed record dead-lettered again",
        || async { client.get_queue("poisoned").await.unwrap().depth.dead == 1 },
    )
    .await;
    let out = server.cli([
        "lambda", "queue", "dlq", "poisoned", "--purge", "--id", &poison_id,
    ]);
    assert_success(&out, "queue dlq --purge");
    assert!(stdout(&out).contains("Purged 1"), "{}", stdout(&out));
    assert!(client
        .queue_dead_letters("poisoned")
        .await
        .unwrap()
        .entries
        .is_empty());
}

#[tokio::test]
async fn disable_stops_delivery_and_enable_resumes_it() {
    let server = Server::start().await;
    let client = server.client();
    deploy_consumer(&server, "toggle");
    create_queue_cli(&server, "toggle");
    let out = server.cli([
        "lambda",
        "trigger",
        "create",
        "--queue",
        "toggle",
        "--function",
        "toggle",
        "-o",
        "json",
    ]);
    assert_success(&out, "trigger create");
    let t: TriggerView = serde_json::from_str(&stdout(&out)).expect("trigger JSON");
    let id = t.trigger.id;
    send(&client, "toggle", "one").await;
    wait_for(&server, "one processed", || async {
        seen(&client, "toggle").await.contains_key("one")
    })
    .await;

    let out = server.cli(["lambda", "trigger", "disable", &id]);
    assert_success(&out, "trigger disable");
    assert!(stdout(&out).contains("Disabled"), "{}", stdout(&out));
    send(&client, "toggle", "two").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!seen(&client, "toggle").await.contains_key("two"));
    let depth = client.get_queue("toggle").await.unwrap().depth;
    assert_eq!(depth.ready, 1, "{depth:?}");
    assert_eq!(client.get_trigger(&id).await.unwrap().state, "Disabled");

    let out = server.cli(["lambda", "trigger", "enable", &id]);
    assert_success(&out, "trigger enable");
    wait_for(&server, "two processed after enable", || async {
        seen(&client, "toggle").await.contains_key("two")
    })
    .await;

    // Audit: every change is recorded.
    let audit = client.audit(Some("toggle"), None, 100).await.unwrap();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    for action in ["trigger.create", "trigger.disable", "trigger.enable"] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }

    let out = server.cli(["lambda", "trigger", "delete", &id]);
    assert_success(&out, "trigger delete");
    let answer = server
        .request(Method::GET, &format!("/api/v1/triggers/{id}"), None)
        .await;
    assert_api_error(&answer, 404, "RESOURCE_NOT_FOUND");
}

#[tokio::test]
async fn message_api_sends_receives_and_acks() {
    let server = Server::start().await;
    let client = server.client();
    let answer = server
        .request_json(Method::POST, "/api/v1/queues", &json!({"name": "api"}))
        .await;
    assert_eq!(
        answer.status.as_u16(),
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(json(&answer)["name"], "api");
    let again = server
        .request_json(Method::POST, "/api/v1/queues", &json!({"name": "api"}))
        .await;
    assert_api_error(&again, 409, "CONFLICT");

    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/queues/api/messages",
            &json!({"body": "hello", "attributes": {"k": "v"}}),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200);
    let sent = json(&answer);
    let id = sent["message_id"].as_str().expect("message_id").to_owned();
    // MD5 of "hello".
    assert_eq!(sent["md5_of_body"], "5d41402abc4b2a76b9719d911017c592");

    let got = client
        .receive_messages(
            "api",
            &ReceiveRequest {
                max: Some(10),
                visibility_timeout_s: Some(30),
            },
        )
        .await
        .unwrap()
        .messages;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(
        (m.message_id.as_str(), m.body.as_str()),
        (id.as_str(), "hello")
    );
    assert_eq!(m.attributes["ApproximateReceiveCount"], "1");
    assert_eq!(m.message_attributes["k"], "v");
    let depth = client.get_queue("api").await.unwrap().depth;
    assert_eq!((depth.ready, depth.in_flight), (0, 1), "{depth:?}");
    // Hidden while received.
    let none = client
        .receive_messages("api", &ReceiveRequest::default())
        .await
        .unwrap();
    assert!(none.messages.is_empty());
    let stale = server
        .request(
            Method::DELETE,
            &format!("/api/v1/queues/api/messages/{id}?receipt=wrong"),
            None,
        )
        .await;
    assert_api_error(&stale, 409, "CONFLICT");
    let no_receipt = server
        .request(
            Method::DELETE,
            &format!("/api/v1/queues/api/messages/{id}"),
            None,
        )
        .await;
    assert_eq!(
        assert_api_error(&no_receipt, 400, "INVALID_INPUT")["field"],
        "receipt"
    );
    client
        .delete_message("api", &id, &m.receipt_handle)
        .await
        .expect("ack");
    let depth = client.get_queue("api").await.unwrap().depth;
    assert_eq!(
        depth.ready + depth.in_flight + depth.delayed,
        0,
        "{depth:?}"
    );

    // Visibility timeout 0: received again at once, with a higher receive count.
    send(&client, "api", "again").await;
    let vt0 = ReceiveRequest {
        max: Some(1),
        visibility_timeout_s: Some(0),
    };
    client.receive_messages("api", &vt0).await.unwrap();
    let second = client.receive_messages("api", &vt0).await.unwrap().messages;
    assert_eq!(second[0].attributes["ApproximateReceiveCount"], "2");
    // Through the CLI, with --ack.
    let out = server.cli(["lambda", "queue", "receive", "api", "--max", "5", "--ack"]);
    assert_success(&out, "queue receive --ack");
    assert!(stdout(&out).contains("again"), "{}", stdout(&out));
    assert!(drained(&client, "api").await);

    // A delayed message.
    client
        .send_message(
            "api",
            &SendMessageRequest {
                body: "later".into(),
                delay_seconds: Some(60),
                attributes: None,
            },
        )
        .await
        .unwrap();
    let depth = client.get_queue("api").await.unwrap().depth;
    assert_eq!((depth.ready, depth.delayed), (0, 1), "{depth:?}");

    // 256 KB limit.
    let big = "x".repeat(256 * 1024 + 1);
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/queues/api/messages",
            &json!({"body": big}),
        )
        .await;
    assert_api_error(&answer, 413, "PAYLOAD_TOO_LARGE");
    let fits = "x".repeat(256 * 1024);
    send(&client, "api", &fits).await;

    let metrics = client.metrics().await.unwrap();
    assert!(
        metrics.contains(r#"holactl_queue_messages{queue="api",state="delayed"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"holactl_queue_oldest_message_age_seconds{queue="api"}"#));

    let out = server.cli(["lambda", "queue", "delete", "api"]);
    assert_success(&out, "queue delete");
    let gone = server
        .request(Method::GET, "/api/v1/queues/api", None)
        .await;
    assert_api_error(&gone, 404, "RESOURCE_NOT_FOUND");
    // A new queue of the same name starts empty.
    client
        .create_queue(&CreateQueueRequest {
            name: "api".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(drained(&client, "api").await);
    assert_eq!(client.get_queue("api").await.unwrap().depth.dead, 0);
    let audit = client.audit(None, None, 100).await.unwrap();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"queue.create") && actions.contains(&"queue.delete"));
}

#[tokio::test]
async fn bad_input_gets_stable_codes() {
    let server = Server::start().await;
    deploy_consumer(&server, "target");
    create_queue_cli(&server, "inputs");
    let post = |body: Value| {
        let server = &server;
        async move {
            server
                .request_json(Method::POST, "/api/v1/triggers", &body)
                .await
        }
    };
    let answer = post(json!({"queue": "nope", "function": "target"})).await;
    assert_api_error(&answer, 404, "RESOURCE_NOT_FOUND");
    let answer = post(json!({"queue": "inputs", "function": "nope"})).await;
    assert_api_error(&answer, 404, "FUNCTION_NOT_FOUND");
    let answer = post(json!({"queue": "inputs", "function": "target:nope"})).await;
    assert_api_error(&answer, 404, "RESOURCE_NOT_FOUND");
    for (field, value) in [
        ("batch_size", json!(0)),
        ("batch_size", json!(10_001)),
        ("batch_window_s", json!(301)),
        ("max_retries", json!(10_001)),
        ("max_record_age_s", json!(59)),
        ("max_record_age_s", json!(1_209_601)),
        ("parallelization", json!(0)),
        ("parallelization", json!(11)),
    ] {
        let mut body = json!({"queue": "inputs", "function": "target"});
        body[field] = value.clone();
        let answer = post(body).await;
        let err = assert_api_error(&answer, 400, "INVALID_INPUT");
        assert_eq!(err["field"], field, "{field}={value}: {err}");
    }
    let answer = post(json!({"queue": "a/b", "function": "target"})).await;
    assert_eq!(
        assert_api_error(&answer, 400, "INVALID_INPUT")["field"],
        "queue"
    );
    let answer = post(json!({"queue": "inputs", "function": "target", "bogus": 1})).await;
    assert_api_error(&answer, 400, "INVALID_INPUT");

    for path in [
        "/api/v1/triggers/0b7c1e8e-7a0e-4a57-9a53-2f0d8c1e2b3a",
        "/api/v1/triggers/not-an-id",
    ] {
        let answer = server.request(Method::GET, path, None).await;
        assert_api_error(&answer, 404, "RESOURCE_NOT_FOUND");
    }
    let answer = server
        .request(Method::POST, "/api/v1/triggers/deadbeef/enable", None)
        .await;
    assert_api_error(&answer, 404, "RESOURCE_NOT_FOUND");

    let answer = server
        .request_json(Method::POST, "/api/v1/queues", &json!({"name": "bad name"}))
        .await;
    assert_eq!(
        assert_api_error(&answer, 400, "INVALID_INPUT")["field"],
        "name"
    );
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/queues",
            &json!({"name": "q2", "visibility_timeout_s": 43_201}),
        )
        .await;
    assert_eq!(
        assert_api_error(&answer, 400, "INVALID_INPUT")["field"],
        "visibility_timeout_s"
    );
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/queues/nope/messages",
            &json!({"body": "x"}),
        )
        .await;
    assert_api_error(&answer, 404, "RESOURCE_NOT_FOUND");
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/queues/inputs/messages",
            &json!({"body": "x", "delay_seconds": 901}),
        )
        .await;
    assert_eq!(
        assert_api_error(&answer, 400, "INVALID_INPUT")["field"],
        "delay_seconds"
    );
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/queues/inputs/messages/receive",
            &json!({"max": 11}),
        )
        .await;
    assert_eq!(
        assert_api_error(&answer, 400, "INVALID_INPUT")["field"],
        "max"
    );
    let answer = server
        .request(
            Method::POST,
            "/api/v1/queues/inputs/messages",
            Some(("application/json", Bytes::from_static(b"{not json"))),
        )
        .await;
    assert_api_error(&answer, 400, "INVALID_INPUT");

    // A queue read by a trigger cannot be deleted.
    let t = server
        .client()
        .create_trigger(&trigger("inputs", "target"))
        .await
        .unwrap();
    let answer = server
        .request(Method::DELETE, "/api/v1/queues/inputs", None)
        .await;
    assert_api_error(&answer, 409, "CONFLICT");
    server.client().delete_trigger(&t.trigger.id).await.unwrap();
    let answer = server
        .request(Method::DELETE, "/api/v1/queues/inputs", None)
        .await;
    assert_eq!(answer.status.as_u16(), 204);

    // The CLI refuses a malformed duration before calling the server.
    let out = server.cli([
        "lambda",
        "trigger",
        "create",
        "--queue",
        "x",
        "--function",
        "y",
        "--batch-window",
        "5x",
    ]);
    assert_failure(&out, "bad --batch-window");
    let out = server.cli(["lambda", "queue", "get", "nope"]);
    assert_failure(&out, "get unknown queue");
}
