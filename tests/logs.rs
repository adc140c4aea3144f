//! Execution logs: what a function prints, through the API and the CLI; the per-execution cap;
//! `--log-type tail`.

use http::Method;
use serde_json::json;

use crate::util::{
    assert_invoke_ok, assert_success, deploy_python_probe, json, stderr, stdout, Server,
};

#[tokio::test]
async fn printed_output_is_in_the_execution_log() {
    let server = Server::start().await;
    deploy_python_probe(&server, "printer", &[]);
    let text = "a line from the function: ñandú 🦩";
    let invoked = server
        .invoke("printer", &json!({"action": "print", "text": text}))
        .await;
    assert_invoke_ok(&invoked);
    let id = invoked.execution_id().to_owned();

    let logs = json(
        &server
            .request(Method::GET, &format!("/api/v1/executions/{id}/logs"), None)
            .await,
    );
    assert_eq!(logs["execution_id"], id.as_str());
    assert_eq!(logs["function"], "printer");
    assert_eq!(logs["truncated"], false);
    let log = logs["log"].as_str().expect("log text");
    assert!(log.contains(text), "{log}");
    assert!(log.starts_with(&format!("START RequestId: {id}")), "{log}");
    assert!(log.contains(&format!("END RequestId: {id}")), "{log}");
    assert!(log.contains(&format!("REPORT RequestId: {id}")), "{log}");

    let out = server.cli(["lambda", "logs", "printer", "--execution", &id]);
    assert_success(&out, "logs --execution");
    assert!(stdout(&out).contains(text), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("END RequestId: {id}")));

    // Another execution's log does not leak into this one.
    let other = server
        .invoke("printer", &json!({"action": "print", "text": "second"}))
        .await;
    let out = server.cli(["lambda", "logs", "printer", "--execution", &id]);
    assert!(!stdout(&out).contains("second"), "{}", stdout(&out));
    let out = server.cli(["lambda", "logs", "printer"]);
    assert!(stdout(&out).contains(text) && stdout(&out).contains("second"));
    assert!(stdout(&out).contains(other.execution_id()));
}

#[tokio::test]
async fn huge_output_is_capped_and_the_invoke_still_succeeds() {
    let server = Server::start().await;
    deploy_python_probe(&server, "spew", &[]);
    // 3 MiB of output.
    let invoked = server
        .invoke("spew", &json!({"action": "spew", "lines": 3 * 1024}))
        .await;
    let body = assert_invoke_ok(&invoked);
    assert_eq!(body["echo"]["action"], "spew");
    assert_eq!(invoked.answer.header("x-hola-log-truncated"), Some("true"));

    let logs = server
        .client()
        .execution_logs(invoked.execution_id())
        .await
        .expect("logs");
    assert!(logs.truncated, "the log is marked truncated");
    let len = logs.log.len();
    const MIB: usize = 1024 * 1024;
    assert!(
        (MIB - 4096..=MIB + 4096).contains(&len),
        "log of {len} bytes, expected about 1 MiB"
    );
    assert!(
        logs.log.contains("END RequestId"),
        "the log still ends properly"
    );
    assert!(logs.log.contains("REPORT RequestId"));

    let record = server
        .client()
        .get_execution(invoked.execution_id())
        .await
        .expect("execution");
    assert!(record.log_truncated);

    // The instance is still fine.
    let next = server.invoke("spew", &json!({})).await;
    assert_invoke_ok(&next);
    assert!(!next.cold_start());
}

#[tokio::test]
async fn log_type_tail_prints_the_log_tail_on_stderr() {
    let server = Server::start().await;
    deploy_python_probe(&server, "tail", &[]);
    let payload = json!({"action": "print", "text": "tail me"}).to_string();
    let out = server.cli([
        "lambda",
        "invoke",
        "tail",
        "--payload",
        &payload,
        "--log-type",
        "tail",
    ]);
    assert_success(&out, "invoke --log-type tail");
    let err = stderr(&out);
    for needle in [
        "START RequestId",
        "tail me",
        "END RequestId",
        "REPORT RequestId",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    assert!(
        !stdout(&out).contains("START RequestId"),
        "the tail goes to stderr only: {}",
        stdout(&out)
    );

    // Without it, no log on stderr.
    let out = server.cli(["lambda", "invoke", "tail", "--payload", &payload]);
    assert_success(&out, "invoke");
    assert!(
        !stderr(&out).contains("START RequestId"),
        "{}",
        stderr(&out)
    );
}
