//! Warm instances: reuse between invocations, replacement after an update, idle TTL.

use std::time::Duration;

use serde_json::json;

use crate::util::{assert_invoke_ok, deploy_python_probe, wait_gone, wait_until, Server};

const COLD: &str = "x-hola-cold-start";
const INIT: &str = "x-hola-init-duration-ms";

#[tokio::test]
async fn warm_instance_is_reused_and_replaced_after_update() {
    let server = Server::start().await;
    deploy_python_probe(&server, "warm", &["--env", "COLOR=red"]);
    let event = json!({"env": ["COLOR"]});

    let first = server.invoke("warm", &event).await;
    let body1 = assert_invoke_ok(&first);
    assert_eq!(first.answer.header(COLD), Some("true"));
    let init: f64 = first
        .answer
        .header(INIT)
        .expect("a cold start reports its init duration")
        .parse()
        .expect("init duration is a number");
    assert!(init > 0.0, "init duration {init}");
    assert_eq!(body1["env"]["COLOR"], "red");

    let second = server.invoke("warm", &event).await;
    let body2 = assert_invoke_ok(&second);
    assert_eq!(second.answer.header(COLD), Some("false"));
    assert_eq!(
        second.answer.header(INIT),
        None,
        "no init duration when warm"
    );
    assert!(body1["pid"].as_u64().is_some(), "{body1}");
    assert_eq!(body2["pid"], body1["pid"], "the same process served both");
    assert_eq!(
        body2["instance"], body1["instance"],
        "the same process served both"
    );
    assert_ne!(first.execution_id(), second.execution_id());
    let old = server.instance_processes();
    assert!(!old.is_empty(), "the warm instance has processes");

    // Same code, new environment: the next invocation needs a new instance.
    deploy_python_probe(&server, "warm", &["--env", "COLOR=blue"]);
    let third = server.invoke("warm", &event).await;
    let body3 = assert_invoke_ok(&third);
    assert_eq!(third.answer.header(COLD), Some("true"), "cold after update");
    assert!(third.answer.header(INIT).is_some());
    assert_eq!(
        body3["env"]["COLOR"], "blue",
        "the new instance sees the new env"
    );
    assert_ne!(body3["instance"], body1["instance"], "a new process");
    // The instance of the old configuration was stopped.
    wait_gone(&old).await;

    let fourth = server.invoke("warm", &event).await;
    let body4 = assert_invoke_ok(&fourth);
    assert_eq!(fourth.answer.header(COLD), Some("false"));
    assert_eq!(body4["instance"], body3["instance"]);
}

#[tokio::test]
async fn idle_instances_stop_after_the_idle_ttl() {
    let server = Server::builder().idle_ttl(1).start().await;
    deploy_python_probe(&server, "ttl", &[]);

    let first = server.invoke("ttl", &json!({})).await;
    let body1 = assert_invoke_ok(&first);
    assert!(first.cold_start());
    let idle_since = std::time::Instant::now();
    let procs = server.instance_processes();
    assert!(!procs.is_empty(), "the warm instance has processes");

    let health = server.client().health().await.expect("health");
    assert_eq!(health.instances.get("idle"), Some(&1), "{health:?}");

    let client = server.client();
    wait_until(
        "the idle instance to be stopped",
        Duration::from_secs(10),
        || {
            let client = client.clone();
            async move { client.health().await.expect("health").instances.get("idle") == Some(&0) }
        },
    )
    .await;
    assert!(
        idle_since.elapsed() >= Duration::from_millis(900),
        "stopped after {:?}, before its idle TTL of 1 s",
        idle_since.elapsed()
    );
    wait_gone(&procs).await;

    let next = server.invoke("ttl", &json!({})).await;
    let body = assert_invoke_ok(&next);
    assert!(next.cold_start(), "cold start after the idle TTL");
    assert_ne!(body["instance"], body1["instance"]);
}
