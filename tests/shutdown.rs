//! Graceful shutdown on SIGTERM.

use std::time::Duration;

use serde_json::json;

use crate::util::{assert_invoke_ok, deploy_python_probe, process_gone, wait_gone, Server};

#[tokio::test]
async fn sigterm_stops_the_server_and_its_instances() {
    let mut server = Server::start().await;
    deploy_python_probe(&server, "bye", &[]);
    let invoked = server.invoke("bye", &json!({})).await;
    assert_invoke_ok(&invoked);
    let procs = server.instance_processes();
    assert!(!procs.is_empty(), "the warm instance has processes");
    let server_pid = server.pid();

    let (status, took) = server.terminate();
    assert!(
        status.success(),
        "the server exits 0 on SIGTERM, got {status}\n{}",
        server.server_log()
    );
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert!(process_gone(server_pid));
    // Instances do not outlive the server.
    wait_gone(&procs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_invocation_finish() {
    let mut server = Server::start().await;
    deploy_python_probe(&server, "slow", &[]);
    // Warm up, so the in-flight call below is just the sleep.
    assert_invoke_ok(&server.invoke("slow", &json!({})).await);
    let client = server.client();
    let call = tokio::spawn(async move {
        client
            .invoke(
                "slow",
                json!({"action": "sleep", "seconds": 1}).to_string().into(),
                false,
            )
            .await
    });
    // Wait until the invocation is running before signalling.
    let probe = server.client();
    crate::util::wait_until("the invocation to start", Duration::from_secs(5), || {
        let probe = probe.clone();
        async move {
            probe
                .health()
                .await
                .map(|h| h.instances.get("busy") == Some(&1))
                .unwrap_or(false)
        }
    })
    .await;
    let (status, took) = tokio::task::block_in_place(|| server.terminate());
    let invoked = call
        .await
        .expect("join")
        .expect("the in-flight invoke got its answer");
    assert_eq!(invoked.error_code(), None, "{:?}", invoked.answer);
    assert!(
        status.success(),
        "exit status {status}\n{}",
        server.server_log()
    );
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}
