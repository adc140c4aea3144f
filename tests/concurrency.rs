//! Concurrency: the account-wide limit, reserved concurrency (a cap, 0 disables) and
//! provisioned concurrency (instances initialised ahead, replaced when they die).

use std::time::Duration;

use futures_util::future::join_all;
use holactl::client::Answer;
use http::Method;
use serde_json::{json, Value};

use crate::util::{
    assert_api_error, assert_success, deploy_python_probe, json as body_json, stdout, wait_until,
    Server,
};

const SLEEP_1S: &str = r#"{"action":"sleep","seconds":1}"#;

async fn invoke_raw(server: &Server, name: &str, payload: &Value) -> Answer {
    server
        .request_json(
            Method::POST,
            &format!("/api/v1/functions/{name}/invoke"),
            payload,
        )
        .await
}

/// Invokes `name` `n` times at once; returns (succeeded, throttled) and checks nothing else
/// happened.
async fn invoke_concurrently(server: &Server, name: &str, n: usize) -> (usize, usize) {
    let payload: Value = serde_json::from_str(SLEEP_1S).unwrap();
    let answers = join_all((0..n).map(|_| invoke_raw(server, name, &payload))).await;
    let mut ok = 0;
    let mut throttled = 0;
    for answer in &answers {
        if answer.status.as_u16() == 200 && answer.header("x-hola-error-code").is_none() {
            ok += 1;
        } else {
            assert_api_error(answer, 429, "THROTTLED");
            throttled += 1;
        }
    }
    (ok, throttled)
}

async fn throttles(server: &Server, name: &str) -> u64 {
    let text = server.client().metrics().await.expect("metrics");
    let prefix = format!("holactl_throttles_total{{function=\"{name}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

async fn set(server: &Server, name: &str, body: Value) -> Answer {
    server
        .request_json(
            Method::PUT,
            &format!("/api/v1/functions/{name}/concurrency"),
            &body,
        )
        .await
}

#[tokio::test]
async fn account_limit_throttles_synchronous_excess() {
    let server = Server::builder().max_concurrency(3).start().await;
    deploy_python_probe(&server, "sleepy", &["--timeout", "5"]);
    let (ok, throttled) = invoke_concurrently(&server, "sleepy", 6).await;
    assert_eq!((ok, throttled), (3, 3), "{}", server.server_log());
    assert_eq!(throttles(&server, "sleepy").await, 3);

    // Reserved concurrency may not exceed the account limit.
    let answer = set(&server, "sleepy", json!({"reserved": 4})).await;
    let error = assert_api_error(&answer, 400, "INVALID_INPUT");
    assert!(error.to_string().contains("reserved"), "{error}");
}

#[tokio::test]
async fn reserved_concurrency_caps_and_disables() {
    let server = Server::start().await;
    deploy_python_probe(&server, "capped", &["--timeout", "5"]);

    // 0 disables the function.
    let out = server.cli(["lambda", "concurrency", "set", "capped", "--reserved", "0"]);
    assert_success(&out, "concurrency set");
    let answer = invoke_raw(&server, "capped", &json!({})).await;
    assert_api_error(&answer, 429, "THROTTLED");

    // 2 of 4 at once.
    let out = server.cli(["lambda", "concurrency", "set", "capped", "--reserved", "2"]);
    assert_success(&out, "concurrency set");
    let (ok, throttled) = invoke_concurrently(&server, "capped", 4).await;
    assert_eq!((ok, throttled), (2, 2), "{}", server.server_log());
    assert_eq!(throttles(&server, "capped").await, 3);

    let out = server.cli(["lambda", "concurrency", "get", "capped", "-o", "json"]);
    assert_success(&out, "concurrency get");
    let got: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(got, json!({"reserved": 2, "provisioned": null}));

    // Cleared: no cap.
    let out = server.cli(["lambda", "concurrency", "delete", "capped"]);
    assert_success(&out, "concurrency delete");
    let got = body_json(
        &server
            .request(Method::GET, "/api/v1/functions/capped/concurrency", None)
            .await,
    );
    assert_eq!(got, json!({"reserved": null, "provisioned": null}));
    let (ok, _) = invoke_concurrently(&server, "capped", 3).await;
    assert_eq!(ok, 3);

    // The change is audited.
    let audit = server.cli(["lambda", "audit", "-o", "json"]);
    assert!(
        stdout(&audit).contains("function.concurrency.set"),
        "{}",
        stdout(&audit)
    );
}

#[tokio::test]
async fn bad_concurrency_settings_are_refused() {
    let server = Server::start().await;
    deploy_python_probe(&server, "f", &[]);
    for (body, field) in [
        (json!({"reserved": 1, "provisioned": 2}), "provisioned"),
        (json!({"provisioned": 101}), "provisioned"),
        (json!({"reserved": 1_000_000}), "reserved"),
    ] {
        let answer = set(&server, "f", body.clone()).await;
        let error = assert_api_error(&answer, 400, "INVALID_INPUT");
        assert!(error.to_string().contains(field), "{body}: {error}");
    }
    let answer = set(&server, "f", json!({"reserved": -1})).await;
    assert_api_error(&answer, 400, "INVALID_INPUT");
    let answer = set(&server, "f", json!({"bogus": 1})).await;
    assert_api_error(&answer, 400, "INVALID_INPUT");
    let answer = set(&server, "missing", json!({"reserved": 1})).await;
    assert_eq!(answer.status.as_u16(), 404, "{}", body_json(&answer));
}

async fn idle_instances(server: &Server) -> u64 {
    let health = server.client().health().await.expect("health");
    health.instances.get("idle").copied().unwrap_or(0)
}

fn python_pids(server: &Server) -> Vec<u32> {
    server
        .instance_processes()
        .into_iter()
        .filter(|p| p.cmdline.contains("python"))
        .map(|p| p.pid)
        .collect()
}

#[tokio::test]
async fn provisioned_instances_are_warm_and_replaced() {
    let server = Server::start().await;
    deploy_python_probe(&server, "ready", &["--timeout", "5"]);
    let out = server.cli([
        "lambda",
        "concurrency",
        "set",
        "ready",
        "--provisioned",
        "2",
    ]);
    assert_success(&out, "concurrency set");
    wait_until(
        "2 provisioned instances",
        Duration::from_secs(10),
        || async { idle_instances(&server).await == 2 },
    )
    .await;

    let event =
        json!({"action": "sleep", "seconds": 0.3, "env": ["AWS_LAMBDA_INITIALIZATION_TYPE"]});
    let check_warm = |answers: Vec<Answer>| {
        let mut pids = Vec::new();
        for answer in &answers {
            assert_eq!(answer.status.as_u16(), 200, "{}", body_json(answer));
            assert_eq!(answer.header("x-hola-cold-start"), Some("false"));
            assert_eq!(answer.header("x-hola-init-duration-ms"), None);
            let body = body_json(answer);
            assert_eq!(
                body["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"], "provisioned-concurrency",
                "{body}"
            );
            pids.push(body["instance"].clone());
        }
        assert_ne!(pids[0], pids[1], "two instances served them");
    };
    let answers = join_all((0..2).map(|_| invoke_raw(&server, "ready", &event))).await;
    check_warm(answers);

    // Kill one: it is replaced.
    let before = python_pids(&server);
    assert_eq!(before.len(), 2, "{:?}", server.instance_processes());
    let victim = before[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    wait_until(
        "a replacement instance",
        Duration::from_secs(10),
        || async {
            let now = python_pids(&server);
            now.len() == 2 && !now.contains(&victim) && idle_instances(&server).await == 2
        },
    )
    .await;
    let answers = join_all((0..2).map(|_| invoke_raw(&server, "ready", &event))).await;
    check_warm(answers);

    // Cleared: nothing is kept beyond the idle TTL any more (and the setting reads empty).
    let out = server.cli(["lambda", "concurrency", "delete", "ready"]);
    assert_success(&out, "concurrency delete");
}
