//! Cluster mode end to end: a real `nats-server` with JetStream and three `holactl lambda
//! serve --nats …` nodes on loopback, each with its own data dir. A function deployed through
//! one node runs on every node; settings changed through one node apply on the others within
//! a second; a cron schedule fires once per tick with three schedulers running; a node killed
//! with SIGKILL under async load loses nothing (every accepted invocation completes on the
//! survivors or is dead-lettered, and one run twice shows `attempts` > 1); the restarted node
//! rejoins; a node at its concurrency limit hands synchronous invocations to another node; a
//! queue drained by pollers on two nodes handles each message once. The figures are printed.
//!
//! The test needs `nats-server` (Debian: `apt-get install nats-server`) and fails saying so
//! when it is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use holactl::client::Client;
use holactl_store::nats::testing::NatsServer;
use holactl_types::concurrency::FunctionConcurrency;
use holactl_types::queue::SendMessageRequest;
use http::Method;
use serde_json::{json, Value};

use crate::util::{assert_api_error, json, queue_with_trigger, wait_until, Server, ServerBuilder};

/// Appends the request id to the file named by `RUNS` once the handler has done its work:
/// one line = one run to completion.
const WORKER: &str = r#"
import os, time

def lambda_handler(event, context):
    time.sleep(event.get("sleep", 0))
    with open(os.environ["RUNS"], "a") as f:
        f.write(context.aws_request_id + "\n")
    return {"i": event.get("i")}
"#;

/// Appends the scheduled time of each fire and the request id.
const TICKER: &str = r#"
import os

def lambda_handler(event, context):
    with open(os.environ["RUNS"], "a") as f:
        f.write(event["time"] + " " + context.aws_request_id + "\n")
    return {"time": event["time"]}
"#;

/// Async invocations sent during the node-loss part.
const TOTAL: usize = 300;
/// Lease beyond the function's timeout (`--async-lease-margin`): with the worker's 3 s
/// timeout, a dead node's deliveries are free again 7 s after they started at most.
const LEASE_MARGIN: &str = "4s";

/// A node of the test cluster.
fn node(nats: &NatsServer, namespace: &str, master_key: &str) -> ServerBuilder {
    Server::builder()
        // Functions write their runs to a file the test reads.
        .isolation("process")
        .env("HOLACTL_MASTER_KEY", master_key)
        .arg("--nats")
        .arg(nats.url())
        .arg("--nats-namespace")
        .arg(namespace)
        .arg("--async-lease-margin")
        .arg(LEASE_MARGIN)
}

/// Lines of a file (none when it does not exist yet).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every execution of `function`, by id (all pages).
async fn executions(client: &Client, function: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut before: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/executions?function={function}&limit=1000");
        if let Some(b) = &before {
            path.push_str(&format!("&before={b}"));
        }
        let answer = client
            .send(Method::GET, &path, &[], None)
            .await
            .expect("list executions");
        let page: Value = serde_json::from_slice(&answer.body).expect("json");
        let list = page["executions"].as_array().cloned().unwrap_or_default();
        for e in &list {
            out.insert(e["id"].as_str().unwrap_or_default().to_owned(), e.clone());
        }
        match page["next"].as_str() {
            Some(next) if !list.is_empty() => before = Some(next.to_owned()),
            _ => return out,
        }
    }
}

/// Waits (up to 2 s) until `node` knows function `name`, deployed through another node.
async fn function_visible(node: &Server, name: &str) {
    let client = node.client();
    wait_until(
        &format!("function {name} on node {}", node.endpoint()),
        Duration::from_secs(2),
        || {
            let client = client.clone();
            async move { client.find_function(name).await.is_ok_and(|f| f.is_some()) }
        },
    )
    .await;
}

/// The nodes' live count as `node` sees it in its health document.
async fn live_nodes(node: &Server) -> (u64, usize) {
    let health = node.client().health().await.expect("health");
    let cluster = health.cluster.expect("a cluster section in health");
    (cluster.live, cluster.nodes.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_work_and_survive_losing_one() {
    let test_started = Instant::now();
    let nats = NatsServer::start();
    let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
    let master_key = hex::encode(rand_bytes());
    let n1 = node(&nats, &namespace, &master_key).start().await;
    let token = n1.token().to_owned();
    let n2 = node(&nats, &namespace, &master_key)
        .token(&token)
        .start()
        .await;
    let n3 = node(&nats, &namespace, &master_key)
        .token(&token)
        .start()
        .await;
    let mut nodes = [n1, n2, n3];
    // Only the node that created the cluster's admin token has the file.
    assert!(nodes[0].data_dir().join("admin.token").is_file());
    for n in &nodes[1..] {
        assert!(!n.data_dir().join("admin.token").exists());
    }
    wait_until("three live nodes", Duration::from_secs(10), || async {
        live_nodes(&nodes[0]).await == (3, 3)
    })
    .await;

    // A node with another master key refuses to join.
    refuse_wrong_master_key(&nats, &namespace).await;

    // Deploy through node 1; the others see it within a second and run it.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let runs = scratch.path().join("runs.log");
    let ticks = scratch.path().join("ticks.log");
    let runs_env = format!("RUNS={}", runs.display());
    let ticks_env = format!("RUNS={}", ticks.display());
    let deployed = Instant::now();
    nodes[0].deploy(
        "worker",
        &[("lambda_function.py", WORKER, false)],
        &[
            "--runtime",
            "python3.11",
            "--timeout",
            "3",
            "--env",
            &runs_env,
        ],
    );
    let mut seen_after = Vec::new();
    for n in &nodes[1..] {
        function_visible(n, "worker").await;
        seen_after.push(deployed.elapsed());
    }
    for (i, n) in nodes.iter().enumerate() {
        let invoked = n.invoke("worker", &json!({"i": i})).await;
        assert_eq!(
            crate::util::assert_invoke_ok(&invoked),
            json!({"i": i}),
            "sync invoke through node {}",
            i + 1
        );
    }

    // A setting changed through node 2 applies on node 3 within a second.
    let c2 = nodes[1].client();
    c2.set_concurrency(
        "worker",
        &FunctionConcurrency {
            reserved: Some(0),
            provisioned: None,
        },
    )
    .await
    .expect("set concurrency");
    let throttled_at = Instant::now();
    let c3 = nodes[2].client();
    wait_until(
        "reserved concurrency 0 throttling on node 3",
        Duration::from_secs(1),
        || {
            let c3 = c3.clone();
            async move {
                let answer = crate::util::send(
                    &c3,
                    Method::POST,
                    "/api/v1/functions/worker/invoke",
                    Some(("application/json", Bytes::from_static(b"{}"))),
                )
                .await;
                answer.status.as_u16() == 429
            }
        },
    )
    .await;
    let setting_after = throttled_at.elapsed();
    let answer = crate::util::send(
        &c3,
        Method::POST,
        "/api/v1/functions/worker/invoke",
        Some(("application/json", Bytes::from_static(b"{}"))),
    )
    .await;
    assert_api_error(&answer, 429, "THROTTLED");
    c2.delete_concurrency("worker")
        .await
        .expect("delete concurrency");
    wait_until("the limit gone on node 3", Duration::from_secs(1), || {
        let c3 = c3.clone();
        async move {
            c3.invoke("worker", Bytes::from_static(b"{}"), false)
                .await
                .is_ok()
        }
    })
    .await;

    // A schedule firing every minute, with three schedulers running.
    nodes[0].deploy(
        "ticker",
        &[("lambda_function.py", TICKER, false)],
        &["--runtime", "python3.11", "--env", &ticks_env],
    );
    let schedule_created = Instant::now();
    let answer = nodes[0]
        .request_json(
            Method::POST,
            "/api/v1/schedules",
            &json!({"name": "every-minute", "function": "ticker", "cron": "* * * * *"}),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 201, "{:?}", json(&answer));

    // Async load spread over the nodes; node 2 is killed mid-load.
    let before_load = lines(&runs).len();
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let n2_up = Arc::new(AtomicBool::new(true));
    let clients: Vec<Client> = nodes.iter().map(Server::client).collect();
    let sender = {
        let accepted = accepted.clone();
        let refused = refused.clone();
        let n2_up = n2_up.clone();
        tokio::spawn(async move {
            futures_util::stream::iter(0..TOTAL)
                .for_each_concurrent(24, |i| {
                    let accepted = accepted.clone();
                    let refused = refused.clone();
                    let mut pick = i % 3;
                    if pick == 1 && !n2_up.load(Ordering::SeqCst) {
                        pick = 2;
                    }
                    let client = clients[pick].clone();
                    async move {
                        let payload = json!({"i": i, "sleep": 0.2}).to_string();
                        match client
                            .invoke_async("worker", Bytes::from(payload), None)
                            .await
                        {
                            Ok(record) => accepted.lock().expect("lock").push(record.id),
                            // Refused by (or lost with) the killed node: not accepted.
                            Err(_) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                })
                .await;
        })
    };
    wait_until(
        "a third of the load run",
        Duration::from_secs(60),
        || async { lines(&runs).len() >= before_load + TOTAL / 3 },
    )
    .await;
    n2_up.store(false, Ordering::SeqCst);
    let n2_instances = nodes[1].instance_processes();
    nodes[1].kill();
    let killed_at = Instant::now();
    let killed_ms = epoch_ms();
    let done_at_kill = lines(&runs).len() - before_load;
    // The dead node's instances die with it (they would otherwise finish their invocations
    // unseen).
    crate::util::wait_gone(&n2_instances).await;
    sender.await.expect("sender");
    let accepted: Vec<String> = accepted.lock().expect("lock").clone();
    let refused = refused.load(Ordering::SeqCst);

    // Every accepted invocation completes on the survivors, or is dead-lettered.
    let client = nodes[0].client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (records, dead) = loop {
        let records = executions(&client, "worker").await;
        let dead: BTreeSet<String> = client
            .dead_letters("worker")
            .await
            .expect("dlq")
            .entries
            .into_iter()
            .map(|d| d.id)
            .collect();
        let open: Vec<&String> = accepted
            .iter()
            .filter(|id| {
                !dead.contains(*id) && records.get(*id).is_none_or(|r| r["status"] != "complete")
            })
            .collect();
        if open.is_empty() {
            break (records, dead);
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted invocations never completed after the kill, e.g. {:?}: {:?}\n{}",
            open.len(),
            open.first(),
            open.first().and_then(|id| records.get(*id)),
            nodes[0].server_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let recovered_after = killed_at.elapsed();

    // Runs to completion (lines of the runs file) against the records' attempts.
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    for id in lines(&runs) {
        *ran.entry(id).or_default() += 1;
    }
    let mut twice = 0;
    for id in &accepted {
        let n = ran.get(id).copied().unwrap_or(0);
        if dead.contains(id) {
            continue;
        }
        assert!(n >= 1, "execution {id} is complete but never ran");
        let attempts = records[id]["attempts"].as_u64().unwrap_or(0);
        if n > 1 {
            twice += 1;
            assert!(
                attempts > 1,
                "execution {id} ran {n} times to completion but its record says attempts = \
                 {attempts}: {}",
                records[id]
            );
        }
    }
    // When the last delivery taken over from the dead node started (its lease had run out).
    let last_takeover = accepted
        .iter()
        .filter_map(|id| records.get(id))
        .filter(|r| r["attempts"].as_u64() > Some(1))
        .filter_map(|r| r["started_at"].as_i64())
        .max()
        .map(|t| (t - killed_ms) as f64 / 1000.0);
    let redelivered = accepted
        .iter()
        .filter(|id| {
            records
                .get(*id)
                .is_some_and(|r| r["attempts"].as_u64() > Some(1))
        })
        .count();

    // The survivors see node 2 down once its heartbeat is older than the live window.
    wait_until(
        "node 2 seen down",
        Duration::from_secs(25).saturating_sub(killed_at.elapsed()),
        || async { live_nodes(&nodes[0]).await == (2, 3) },
    )
    .await;
    let down_after = killed_at.elapsed();

    // The killed node comes back with the same id (no fourth record): three live nodes again,
    // node 2's record being its new heartbeat.
    let n2_id = std::fs::read_to_string(nodes[1].data_dir().join("node.id"))
        .expect("node 2's id")
        .trim()
        .to_owned();
    let restarted = Instant::now();
    let restarted_ms = epoch_ms();
    nodes[1].start_again().await;
    wait_until(
        "three live nodes again",
        Duration::from_secs(15),
        || async {
            let mut all = true;
            for n in &nodes {
                let cluster = n.client().health().await.expect("health").cluster;
                all &= cluster.is_some_and(|c| {
                    c.live == 3
                        && c.nodes.len() == 3
                        && c.nodes
                            .iter()
                            .any(|x| x.id == n2_id && x.started_at >= restarted_ms)
                });
            }
            all
        },
    )
    .await;
    let rejoined_after = restarted.elapsed();
    let status = nodes[1].client().platform_status().await.expect("status");
    let cluster = status.cluster.expect("a cluster section in status");
    assert_eq!(cluster.nodes.len(), 3);
    assert!(cluster
        .nodes
        .iter()
        .all(|n| n.live && !n.address.is_empty()));
    let out = nodes[1].cli(["lambda", "status"]);
    nodes[1].assert_success(&out, "lambda status");
    let text = crate::util::stdout(&out);
    assert!(text.contains("3 of 3 nodes live"), "{text}");
    // The restarted node runs what was deployed while it was down... and before.
    crate::util::assert_invoke_ok(&nodes[1].invoke("worker", &json!({"i": -1})).await);

    // Each minute tick fired exactly once with three schedulers.
    let ticks_by = schedule_created + Duration::from_secs(65);
    wait_until(
        "the schedule's first tick",
        ticks_by.saturating_duration_since(Instant::now()) + Duration::from_secs(1),
        || async { !lines(&ticks).is_empty() },
    )
    .await;
    let answer = nodes[2]
        .request(Method::DELETE, "/api/v1/schedules/every-minute", None)
        .await;
    assert!(answer.status.is_success(), "{:?}", json(&answer));
    // Let a fire claimed just before the delete finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tick_lines = lines(&ticks);
    let times: Vec<&str> = tick_lines
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let distinct: BTreeSet<&str> = times.iter().copied().collect();
    assert_eq!(
        times.len(),
        distinct.len(),
        "a tick fired more than once: {tick_lines:?}"
    );
    let fires = executions(&client, "ticker").await;
    assert_eq!(
        fires
            .values()
            .filter(|r| r["trigger"] == "schedule" && r["status"] == "complete")
            .count(),
        distinct.len(),
        "one execution per tick: {fires:?}"
    );

    println!(
        "cluster: function visible on nodes 2 and 3 after {:?}; a concurrency change applied on \
         another node after {setting_after:?}",
        seen_after
    );
    println!(
        "cluster: {TOTAL} async invocations sent, {} accepted, {refused} refused (sent to the \
         killed node), {done_at_kill} done when node 2 was killed; all accepted complete {:.1} s \
         after the kill, {} dead-lettered, {redelivered} delivered again after the kill \
         (attempts > 1; the last of them started {} s after the kill), {twice} of them had run \
         to completion twice",
        accepted.len(),
        recovered_after.as_secs_f64(),
        dead.len(),
        last_takeover.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"))
    );
    println!(
        "cluster: node 2 seen down {:.1} s after the kill; restarted, it was live on all nodes \
         {:.1} s after the restart began; {} schedule tick(s), each fired once by one of three \
         schedulers; whole test {:.0} s",
        down_after.as_secs_f64(),
        rejoined_after.as_secs_f64(),
        distinct.len(),
        test_started.elapsed().as_secs_f64()
    );
}

/// A node started with another master key exits with a message naming the cause.
async fn refuse_wrong_master_key(nats: &NatsServer, namespace: &str) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = tokio::task::spawn_blocking({
        let url = nats.url().to_owned();
        let namespace = namespace.to_owned();
        let data = dir.path().join("data");
        move || {
            Command::new(crate::util::BIN)
                .args(["lambda", "serve", "--listen", "127.0.0.1:0", "--nats", &url])
                .args(["--nats-namespace", &namespace, "--isolation", "process"])
                .arg("--data-dir")
                .arg(&data)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOLACTL_MASTER_KEY", hex::encode(rand_bytes()))
                .stdin(Stdio::null())
                .output()
                .expect("running holactl lambda serve")
        }
    })
    .await
    .expect("join");
    assert!(!out.status.success(), "a node with another key started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not the cluster's") && stderr.contains("same key"),
        "{stderr}"
    );
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn rand_bytes() -> [u8; 32] {
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(16) {
        chunk.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    key
}

/// Answers the pid of the process that started the instance: the node that ran it.
const WHO: &str = r#"
import os, time

def lambda_handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"node_pid": os.getppid()}
"#;

/// Two nodes: a node at its concurrency limit hands synchronous invocations to a node with
/// free slots instead of answering `THROTTLED`; an execution running on one node is cancelled
/// through the other; a queue polled by both nodes handles each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_spill_over_and_share_a_queue() {
    let nats = NatsServer::start();
    let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
    let master_key = hex::encode(rand_bytes());
    let small = node(&nats, &namespace, &master_key)
        .max_concurrency(1)
        .start()
        .await;
    let big = node(&nats, &namespace, &master_key)
        .token(small.token())
        .start()
        .await;
    wait_until("two live nodes", Duration::from_secs(10), || async {
        live_nodes(&small).await == (2, 2)
    })
    .await;
    small.deploy(
        "who",
        &[("lambda_function.py", WHO, false)],
        &["--runtime", "python3.11"],
    );
    function_visible(&big, "who").await;
    // Three at once through the node that has one slot.
    let client = small.client();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .invoke("who", Bytes::from(json!({"sleep": 1.5}).to_string()), false)
                    .await
            })
        })
        .collect();
    let mut ran_on = Vec::new();
    for call in calls {
        let invoked = call.await.expect("join").expect("invoke: none throttled");
        let body = crate::util::assert_invoke_ok(&invoked);
        ran_on.push(body["node_pid"].as_u64().unwrap_or(0) as u32);
    }
    let on_small = ran_on.iter().filter(|p| **p == small.pid()).count();
    let on_big = ran_on.iter().filter(|p| **p == big.pid()).count();
    assert_eq!(
        (on_small, on_big),
        (1, 2),
        "one ran on the saturated node, two on the other: {ran_on:?}"
    );
    let metrics = small.client().metrics().await.expect("metrics");
    assert!(
        metrics.contains("holactl_spilled_invocations_total 2"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("spill"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("cluster: 3 concurrent sync invocations on a node with 1 slot: 1 ran there, 2 spilled over to the other node");

    // An async execution running on one node is cancelled through the other.
    let accepted = big
        .client()
        .invoke_async("who", Bytes::from(json!({"sleep": 30}).to_string()), None)
        .await
        .expect("invoke async");
    let busy = |n: &Server| {
        let client = n.client();
        async move {
            client
                .platform_status()
                .await
                .ok()
                .and_then(|s| s.instances.get("busy").copied())
                .unwrap_or(0)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let runner = loop {
        match (busy(&small).await, busy(&big).await) {
            (1, _) => break 0,
            (_, 1) => break 1,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the async execution never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let nodes = [&small, &big];
    let other = nodes[1 - runner];
    let cancelled_at = Instant::now();
    let record = other
        .client()
        .cancel_execution(&accepted.id)
        .await
        .expect("cancel through the other node");
    assert_eq!(record.status.as_str(), "cancelled", "{record:?}");
    wait_until(
        "the instance stopped on the running node",
        Duration::from_secs(5),
        || busy(nodes[runner]).map(|b| b == 0),
    )
    .await;
    let stopped_after = cancelled_at.elapsed();
    let record = small
        .client()
        .get_execution(&accepted.id)
        .await
        .expect("execution");
    assert_eq!(record.status.as_str(), "cancelled", "{record:?}");
    println!(
        "cluster: an async execution running on node {} cancelled through node {}: stopped after \
         {stopped_after:?}",
        runner + 1,
        2 - runner
    );

    // A queue drained by a trigger: both nodes poll it, each message is handled once.
    queue_messages_are_handled_once(&small, &big).await;

    reserved_concurrency_holds_across_nodes(&small, &big).await;
    provisioned_concurrency_is_the_clusters(&small, &big).await;
    gateway_limits_are_shared(&small, &big).await;
}

/// A route throttled to a burst of 4 over two nodes: each node admits its share, 2.
async fn gateway_limits_are_shared(a: &Server, b: &Server) {
    let out = b.cli([
        "lambda",
        "route",
        "create",
        "--function",
        "who",
        "--method",
        "GET",
        "--path",
        "/limited",
        "--rate",
        "0.01",
        "--burst",
        "4",
    ]);
    crate::util::assert_success(&out, "route create");
    let client = a.client();
    let status = |client: Client| async move {
        client
            .send(Method::GET, "/gw/default/limited", &[], None)
            .await
            .map(|answer| answer.status.as_u16())
            .unwrap_or(0)
    };
    // The route reaches the other node's tables; its first answer there takes a token.
    wait_until(
        "the route on the other node",
        Duration::from_secs(3),
        || status(client.clone()).map(|s| s == 200),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(status(client.clone()).await);
    }
    assert_eq!(
        statuses,
        [200, 429, 429],
        "burst 4 over two nodes: 2 per node"
    );
    println!("cluster: a route with burst 4 over two nodes admitted 2 on one node, then 429");
}

/// Appends the pid of the node that started it when an instance initialises.
const INIT_PROBE: &str = r#"
import os

with open(os.environ["RUNS"], "a") as f:
    f.write(f"{os.getppid()}\n")

def lambda_handler(event, context):
    return {}
"#;

/// Provisioned concurrency 3 over two nodes: three instances initialise in all, spread over
/// both nodes, and no more start while the setting stays.
async fn provisioned_concurrency_is_the_clusters(a: &Server, b: &Server) {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let inits = scratch.path().join("inits.log");
    b.deploy(
        "provisioned",
        &[("lambda_function.py", INIT_PROBE, false)],
        &[
            "--runtime",
            "python3.11",
            "--env",
            &format!("RUNS={}", inits.display()),
        ],
    );
    function_visible(a, "provisioned").await;
    b.client()
        .set_concurrency(
            "provisioned",
            &FunctionConcurrency {
                reserved: None,
                provisioned: Some(3),
            },
        )
        .await
        .expect("set provisioned concurrency");
    wait_until(
        "three provisioned instances",
        Duration::from_secs(20),
        || async { lines(&inits).len() >= 3 },
    )
    .await;
    // The provisioners check twice a second: give them time to overshoot if they would.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pids = lines(&inits);
    assert_eq!(pids.len(), 3, "instances initialised: {pids:?}");
    let on_a = pids.iter().filter(|p| **p == a.pid().to_string()).count();
    let on_b = pids.iter().filter(|p| **p == b.pid().to_string()).count();
    assert_eq!(
        (on_a + on_b, on_a.min(on_b)),
        (3, 1),
        "spread over both nodes: {pids:?} (nodes {} and {})",
        a.pid(),
        b.pid()
    );
    println!(
        "cluster: provisioned concurrency 3 over two nodes: {on_a} + {on_b} instances, 3 in all"
    );
}

/// Appends its start and end time (epoch seconds) to the file named by `RUNS`.
const SPAN: &str = r#"
import os, time

def lambda_handler(event, context):
    start = time.time()
    time.sleep(event.get("sleep", 0))
    with open(os.environ["RUNS"], "a") as f:
        f.write(f"{start} {time.time()}\n")
    return {"ok": True}
"#;

/// Most runs at the same time among `(start end)` lines.
fn max_overlap(lines: &[String]) -> usize {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for line in lines {
        let mut parts = line.split(' ').map(|p| p.parse::<f64>().expect("a time"));
        let (Some(start), Some(end)) = (parts.next(), parts.next()) else {
            continue;
        };
        edges.push((start, 1));
        edges.push((end, -1));
    }
    // Ends before starts at the same instant.
    edges.sort_by(|a, b| a.partial_cmp(b).expect("times"));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// Reserved concurrency 2 holds for the cluster: of six synchronous calls at once through both
/// nodes at most two run (the others are throttled), and eight async events through both
/// nodes all run, never more than two at a time.
async fn reserved_concurrency_holds_across_nodes(a: &Server, b: &Server) {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let runs = scratch.path().join("spans.log");
    b.deploy(
        "capped",
        &[("lambda_function.py", SPAN, false)],
        &[
            "--runtime",
            "python3.11",
            "--env",
            &format!("RUNS={}", runs.display()),
        ],
    );
    b.client()
        .set_concurrency(
            "capped",
            &FunctionConcurrency {
                reserved: Some(2),
                provisioned: None,
            },
        )
        .await
        .expect("set concurrency");
    let ca = a.client();
    wait_until(
        "the limit on the other node",
        Duration::from_secs(2),
        || {
            let cb = ca.clone();
            async move {
                cb.get_concurrency("capped")
                    .await
                    .is_ok_and(|c| c.reserved == Some(2))
            }
        },
    )
    .await;
    // Warm an instance on each node, so the calls below start together.
    for n in [a, b] {
        crate::util::assert_invoke_ok(&n.invoke("capped", &json!({})).await);
    }
    std::fs::remove_file(&runs).expect("reset the runs file");

    let clients = [
        a.client(),
        b.client(),
        a.client(),
        b.client(),
        b.client(),
        b.client(),
    ];
    let calls: Vec<_> = clients
        .into_iter()
        .map(|client| {
            tokio::spawn(async move {
                client
                    .invoke(
                        "capped",
                        Bytes::from(json!({"sleep": 1.5}).to_string()),
                        false,
                    )
                    .await
            })
        })
        .collect();
    let (mut ran, mut throttled) = (0, 0);
    for call in calls {
        match call.await.expect("join") {
            Ok(invoked) => {
                crate::util::assert_invoke_ok(&invoked);
                ran += 1;
            }
            Err(e) => {
                assert!(e.to_string().contains("THROTTLED"), "{e}");
                throttled += 1;
            }
        }
    }
    assert!(
        (1..=2).contains(&ran) && ran + throttled == 6,
        "reserved 2 over two nodes: {ran} ran, {throttled} throttled"
    );
    assert!(max_overlap(&lines(&runs)) <= 2, "{:?}", lines(&runs));

    std::fs::remove_file(&runs).expect("reset the runs file");
    for i in 0..8 {
        let client = if i % 2 == 0 { a.client() } else { b.client() };
        client
            .invoke_async(
                "capped",
                Bytes::from(json!({"sleep": 0.5}).to_string()),
                None,
            )
            .await
            .expect("async invoke");
    }
    wait_until("eight async runs", Duration::from_secs(30), || async {
        lines(&runs).len() == 8
    })
    .await;
    let overlap = max_overlap(&lines(&runs));
    assert!(overlap <= 2, "{overlap} ran at once: {:?}", lines(&runs));
    println!(
        "cluster: reserved concurrency 2 over two nodes: {ran} of 6 simultaneous sync calls ran, \
         {throttled} throttled; 8 async events ran at most {overlap} at a time"
    );
}

/// Records the bodies of each batch and the node that ran it.
const CONSUMER: &str = r#"
import os

def lambda_handler(event, context):
    return {"node_pid": os.getppid(), "bodies": [r["body"] for r in event["Records"]]}
"#;

/// Messages sent through both nodes to a queue with a trigger are each handled once, by
/// whichever node's poller leased them.
async fn queue_messages_are_handled_once(a: &Server, b: &Server) {
    const MESSAGES: usize = 120;
    a.deploy(
        "consumer",
        &[("lambda_function.py", CONSUMER, false)],
        &["--runtime", "python3.11"],
    );
    let client = a.client();
    queue_with_trigger(&client, "orders", "consumer", 5).await;
    let clients = [a.client(), b.client()];
    for i in 0..MESSAGES {
        let req = SendMessageRequest {
            body: format!("order-{i}"),
            ..Default::default()
        };
        clients[i % 2]
            .send_message("orders", &req)
            .await
            .expect("send");
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_node: BTreeMap<u64, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        seen.clear();
        by_node.clear();
        for r in executions(&client, "consumer").await.values() {
            if r["status"] != "complete" {
                continue;
            }
            let bodies = r["result"]["bodies"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            *by_node
                .entry(r["result"]["node_pid"].as_u64().unwrap_or(0))
                .or_default() += bodies.len();
            for body in bodies {
                *seen
                    .entry(body.as_str().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
        }
        if seen.len() == MESSAGES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {MESSAGES} messages handled",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    let (pa, pb) = (u64::from(a.pid()), u64::from(b.pid()));
    println!(
        "cluster: {MESSAGES} queue messages sent through two nodes, each handled once ({} by \
         node 1's poller, {} by node 2's)",
        by_node.get(&pa).copied().unwrap_or(0),
        by_node.get(&pb).copied().unwrap_or(0)
    );
}

/// Answers with the secret bound as `GREETING` and the event's `i`.
const MOVER: &str = r#"
import os

def lambda_handler(event, context):
    return {"greeting": os.environ["GREETING"], "i": event.get("i")}
"#;

/// The migration path: an embedded data dir exported (refused while it is served), imported
/// into a fresh NATS namespace (a second import refused), and a node started on it with the
/// data dir's master key and admin token: the function, its secret, its history and its
/// queued async events are all there, and the queued events run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_data_dir_moves_into_a_cluster() {
    use crate::util::{assert_failure, assert_success, stderr, stdout};

    let mut single = Server::builder().isolation("process").start().await;
    let out = single.cli_stdin(&["lambda", "secret", "set", "greeting"], b"hola\n");
    assert_success(&out, "secret set");
    single.deploy(
        "mover",
        &[("lambda_function.py", MOVER, false)],
        &["--runtime", "python3.11", "--secret", "GREETING=greeting"],
    );
    for i in 0..3 {
        let invoked = single.invoke("mover", &json!({"i": i})).await;
        assert_eq!(
            crate::util::assert_invoke_ok(&invoked),
            json!({"greeting": "hola", "i": i})
        );
    }
    // Held back by reserved concurrency 0: these stay queued.
    let client = single.client();
    client
        .set_concurrency(
            "mover",
            &FunctionConcurrency {
                reserved: Some(0),
                provisioned: None,
            },
        )
        .await
        .expect("set concurrency");
    // Once no worker is left to try them (a try now would be throttled and retried later).
    wait_until(
        "no async workers for mover",
        Duration::from_secs(10),
        || async {
            let status = json(
                &single
                    .request(Method::GET, "/api/v1/workers/status", None)
                    .await,
            );
            status["async_workers"]["functions"]["mover"]["workers"]
                .as_u64()
                .is_none_or(|w| w == 0)
        },
    )
    .await;
    let mut queued = BTreeSet::new();
    for i in 10..15 {
        let payload = Bytes::from(json!({"i": i}).to_string());
        let record = client
            .invoke_async("mover", payload, None)
            .await
            .expect("async invoke");
        queued.insert(record.id);
    }
    let history = executions(&client, "mover").await;
    assert_eq!(history.len(), 8);

    let archive = single.work_dir().join("platform.tar.gz");
    let archive_arg = archive.to_str().expect("utf-8 path").to_owned();
    let data_dir = single.data_dir().to_str().expect("utf-8 path").to_owned();
    let export = ["lambda", "export", &archive_arg, "--data-dir", &data_dir];
    let out = single.cli(export);
    assert_failure(&out, "export while served");
    assert!(stderr(&out).contains("data_dir_in_use"), "{}", stderr(&out));
    assert!(!archive.exists());

    single.kill();
    let out = single.cli(export.iter().chain(&["-o", "json"]));
    assert_success(&out, "export");
    let report: Value = serde_json::from_str(&stdout(&out)).expect("export report");
    assert_eq!(report["counts"]["messages"], 5, "{report}");
    assert_eq!(report["counts"]["executions"], 8, "{report}");
    assert_eq!(report["counts"]["blobs"], 1, "{report}");
    assert!(stderr(&out).contains("export keys:"), "{}", stderr(&out));
    let out = single.cli(export);
    assert_failure(&out, "export over an existing file");
    assert!(stderr(&out).contains("file_exists"), "{}", stderr(&out));

    let nats = NatsServer::start();
    let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
    let import = [
        "lambda",
        "import",
        &archive_arg,
        "--nats",
        nats.url(),
        "--nats-namespace",
        &namespace,
    ];
    let out = single.cli(import);
    assert_success(&out, "import");
    assert!(
        stdout(&out).contains("exported from the embedded store"),
        "{}",
        stdout(&out)
    );
    let out = single.cli(import);
    assert_failure(&out, "a second import");
    assert!(
        stderr(&out).contains("target_not_empty"),
        "{}",
        stderr(&out)
    );

    let master_key = std::fs::read_to_string(single.data_dir().join("master.key"))
        .expect("the data dir's master key");
    let n = node(&nats, &namespace, master_key.trim())
        .token(single.token())
        .start()
        .await;
    let c = n.client();
    let moved = executions(&c, "mover").await;
    for id in history.keys() {
        assert!(
            moved.contains_key(id),
            "execution {id} was not carried over"
        );
    }
    c.delete_concurrency("mover")
        .await
        .expect("delete concurrency");
    let invoked = n.invoke("mover", &json!({"i": 99})).await;
    assert_eq!(
        crate::util::assert_invoke_ok(&invoked),
        json!({"greeting": "hola", "i": 99}),
        "the function and its secret in the cluster"
    );
    wait_until(
        "the queued events run in the cluster",
        Duration::from_secs(20),
        || {
            let c = c.clone();
            let queued = queued.clone();
            async move {
                let all = executions(&c, "mover").await;
                queued
                    .iter()
                    .all(|id| all.get(id).is_some_and(|e| e["status"] == "complete"))
            }
        },
    )
    .await;
}
