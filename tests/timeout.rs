//! Timeouts: the invocation ends at the function's deadline, the instance is killed, and the
//! next invocation starts a fresh one.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;

use crate::util::{
    assert_failure, assert_invoke_ok, deploy_python_probe, invoked_json, json, stderr, wait_gone,
    Server,
};

/// The pid the probe logged before sleeping (`sleeping pid N`).
fn logged_pid(log: &str) -> u64 {
    log.lines()
        .find_map(|l| l.trim().strip_prefix("sleeping pid "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 'sleeping pid' line in the log:\n{log}"))
}

#[tokio::test]
async fn timeout_kills_the_instance() {
    let server = Server::start().await;
    deploy_python_probe(&server, "sleepy", &["--timeout", "1"]);
    let sleep = json!({"action": "sleep", "seconds": 30}).to_string();

    // Through the CLI.
    let started = Instant::now();
    let out = server.cli(["lambda", "invoke", "sleepy", "--payload", &sleep]);
    assert_failure(&out, "invoke past the timeout");
    assert!(stderr(&out).contains("TIMEOUT"), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the CLI waited {:?} for a 1 s timeout",
        started.elapsed()
    );

    // Through HTTP, on a warm instance whose processes are known beforehand.
    let warm = server.invoke("sleepy", &json!({})).await;
    let before = assert_invoke_ok(&warm);
    assert!(warm.cold_start(), "the timed-out instance was not reused");
    let procs = server.instance_processes();
    assert!(!procs.is_empty(), "the warm instance has processes");
    let started = Instant::now();
    let invoked = server
        .invoke("sleepy", &json!({"action": "sleep", "seconds": 30}))
        .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(10),
        "a 1 s timeout answered after {elapsed:?}"
    );
    let a = &invoked.answer;
    assert_eq!(a.status.as_u16(), 200);
    assert_eq!(invoked.error_code(), Some("TIMEOUT"));
    assert_eq!(a.header("x-hola-function-error"), Some("Unhandled"));
    let body = invoked_json(&invoked);
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("timed out after 1.00 seconds")),
        "{body}"
    );

    let id = invoked.execution_id().to_owned();
    let record = json(
        &server
            .request(Method::GET, &format!("/api/v1/executions/{id}"), None)
            .await,
    );
    assert_eq!(record["status"], "timeout", "{record}");
    assert_eq!(record["error"]["code"], "TIMEOUT", "{record}");
    assert_eq!(
        record["error"]["error_type"], "Sandbox.Timedout",
        "{record}"
    );

    let logs = server
        .client()
        .execution_logs(&id)
        .await
        .expect("execution logs");
    let pid = logged_pid(&logs.log);
    assert_eq!(before["pid"].as_u64(), Some(pid), "the warm instance slept");
    let sleeper = procs
        .iter()
        .find(|p| u64::from(p.ns_pid) == pid && p.cmdline.contains("python"))
        .unwrap_or_else(|| panic!("no python process with pid {pid} among {procs:?}"));
    assert!(
        logs.log.contains("Task timed out after 1.00 seconds"),
        "{}",
        logs.log
    );
    // The process that overran its deadline is gone, not left sleeping, and so is the rest of
    // its instance.
    wait_gone(std::slice::from_ref(sleeper)).await;
    wait_gone(&procs).await;

    let next = server.invoke("sleepy", &json!({})).await;
    let body = assert_invoke_ok(&next);
    assert!(next.cold_start(), "a new instance after a timeout");
    assert_ne!(body["instance"], before["instance"]);
}
