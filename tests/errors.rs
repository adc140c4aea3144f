//! Function errors (Python and Node, async and callback style), Node module formats, the
//! context object, and a runtime that crashes mid-invocation.

use holactl::client::Invoked;
use http::Method;
use serde_json::{json, Value};

use crate::util::{
    assert_failure, assert_invoke_ok, deploy_python_probe, fixture, invoked_json, json, stderr,
    stdout, wait_gone, Server,
};

/// Asserts a function error: headers, Lambda's error body, the stored execution. Returns the
/// body.
async fn assert_function_error(server: &Server, invoked: &Invoked, error_type: &str) -> Value {
    let a = &invoked.answer;
    assert_eq!(
        a.status.as_u16(),
        200,
        "function errors are 200s, as on Lambda"
    );
    assert_eq!(a.header("x-hola-function-error"), Some("Unhandled"));
    assert_eq!(invoked.error_code(), Some("FUNCTION_ERROR"));
    let body = invoked_json(invoked);
    assert_eq!(body["errorType"], error_type, "{body}");
    assert!(body["errorMessage"].is_string(), "{body}");
    let id = invoked.execution_id();
    let record = json(
        &server
            .request(Method::GET, &format!("/api/v1/executions/{id}"), None)
            .await,
    );
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["error"]["code"], "FUNCTION_ERROR", "{record}");
    assert_eq!(record["error"]["message"], body["errorMessage"], "{record}");
    body
}

/// Asserts `invoke NAME --payload EVENT` exits non-zero naming FUNCTION_ERROR.
fn assert_cli_function_error(server: &Server, name: &str, event: &Value, message: &str) {
    let out = server.cli(["lambda", "invoke", name, "--payload", &event.to_string()]);
    assert_failure(&out, "invoke of a failing function");
    let err = stderr(&out);
    assert!(err.contains("FUNCTION_ERROR"), "{err}");
    assert!(err.contains(message), "{err}");
    assert!(
        stdout(&out).contains("errorType"),
        "the error body is printed: {}",
        stdout(&out)
    );
}

fn stack_trace_mentions(body: &Value, needle: &str) -> bool {
    body["stackTrace"]
        .as_array()
        .is_some_and(|t| t.iter().any(|l| l.to_string().contains(needle)))
}

#[tokio::test]
async fn python_exception_is_a_function_error() {
    let server = Server::start().await;
    deploy_python_probe(&server, "pyerr", &[]);
    let event = json!({"action": "raise", "message": "boom"});
    let invoked = server.invoke("pyerr", &event).await;
    let body = assert_function_error(&server, &invoked, "ValueError").await;
    assert_eq!(body["errorMessage"], "boom");
    assert!(
        stack_trace_mentions(&body, "lambda_function.py"),
        "stack trace names the handler file: {body}"
    );
    assert_cli_function_error(&server, "pyerr", &event, "boom");

    // The instance survives a handled exception.
    let next = server.invoke("pyerr", &json!({})).await;
    assert_invoke_ok(&next);
}

#[tokio::test]
async fn node_async_throw_is_a_function_error() {
    let server = Server::start().await;
    server.deploy(
        "nodeerr",
        &[("index.mjs", &fixture("node_esm/index.mjs"), false)],
        &["--runtime", "nodejs20.x"],
    );
    let event = json!({"action": "throw", "message": "bad"});
    let invoked = server.invoke("nodeerr", &event).await;
    let body = assert_function_error(&server, &invoked, "TypeError").await;
    assert_eq!(body["errorMessage"], "bad");
    assert!(
        stack_trace_mentions(&body, "index.mjs"),
        "stack trace names the handler file: {body}"
    );
    assert_cli_function_error(&server, "nodeerr", &event, "bad");
}

#[tokio::test]
async fn node_callback_error_is_a_function_error() {
    let server = Server::start().await;
    server.deploy(
        "cberr",
        &[("index.js", &fixture("node_cjs/index.js"), false)],
        &["--runtime", "nodejs20.x"],
    );
    let event = json!({"action": "fail", "message": "callback failed"});
    let invoked = server.invoke("cberr", &event).await;
    let body = assert_function_error(&server, &invoked, "Error").await;
    assert_eq!(body["errorMessage"], "callback failed");
    assert!(body["stackTrace"].is_array(), "{body}");
    assert_cli_function_error(&server, "cberr", &event, "callback failed");
}

/// Checks the context a Node handler reported (camelCase fields).
fn assert_node_context(invoked: &Invoked, name: &str, module: &str) {
    let body = assert_invoke_ok(invoked);
    assert_eq!(body["module"], module, "{body}");
    assert_eq!(body["awsRequestId"], invoked.execution_id(), "{body}");
    assert_eq!(body["functionName"], name, "{body}");
    // Lambda's Node runtime gives the memory size as a string; accept either form.
    assert_eq!(body["memoryLimitInMB"].to_string().trim_matches('"'), "512");
    assert!(
        body["invokedFunctionArn"]
            .as_str()
            .is_some_and(|arn| arn.starts_with("arn:aws:lambda:")
                && arn.ends_with(&format!(":function:{name}"))),
        "{body}"
    );
    let remaining = body["remainingMs"].as_f64().expect("remaining ms");
    assert!(
        remaining > 0.0 && remaining <= 3000.0,
        "getRemainingTimeInMillis() = {remaining} with a 3 s timeout"
    );
}

#[tokio::test]
async fn node_esm_and_commonjs_handlers_get_the_context() {
    let server = Server::start().await;
    server.deploy(
        "esm",
        &[("index.mjs", &fixture("node_esm/index.mjs"), false)],
        &["--runtime", "nodejs20.x", "--timeout", "3"],
    );
    server.deploy(
        "cjs",
        &[("index.js", &fixture("node_cjs/index.js"), false)],
        &["--runtime", "node20", "--timeout", "3"],
    );
    for (name, module) in [("esm", "esm"), ("cjs", "cjs")] {
        let invoked = server.invoke(name, &json!({})).await;
        assert_node_context(&invoked, name, module);
        // Console output carries the request id into this execution's log.
        let log = server
            .client()
            .execution_logs(invoked.execution_id())
            .await
            .expect("logs")
            .log;
        assert!(
            log.contains(&format!("{module} handler {}", invoked.execution_id())),
            "{log}"
        );
        let warm = server.invoke(name, &json!({})).await;
        assert_node_context(&warm, name, module);
        assert!(!warm.cold_start());
    }
}

#[tokio::test]
async fn python_handler_gets_the_context() {
    let server = Server::start().await;
    deploy_python_probe(&server, "pyctx", &["--timeout", "3", "--memory", "1024"]);
    let invoked = server.invoke("pyctx", &json!({"hello": "world"})).await;
    let body = assert_invoke_ok(&invoked);
    let ctx = &body["context"];
    assert_eq!(ctx["aws_request_id"], invoked.execution_id(), "{body}");
    assert_eq!(ctx["function_name"], "pyctx", "{body}");
    assert_eq!(
        ctx["memory_limit_in_mb"].to_string().trim_matches('"'),
        "1024"
    );
    let arn = ctx["invoked_function_arn"].as_str().expect("arn");
    assert!(
        arn.starts_with("arn:aws:lambda:") && arn.ends_with(":function:pyctx"),
        "{arn}"
    );
    let view = server.client().get_function("pyctx").await.expect("get");
    assert_eq!(arn, view.arn, "the context's ARN is the function's");
    let remaining = ctx["remaining_ms"].as_i64().expect("remaining ms");
    assert!(
        remaining > 0 && remaining <= 3000,
        "get_remaining_time_in_millis() = {remaining} with a 3 s timeout"
    );
    assert_eq!(
        body["echo"],
        json!({"hello": "world"}),
        "the event arrives intact"
    );
}

#[tokio::test]
async fn crash_mid_invocation_is_a_function_error_and_the_next_invoke_recovers() {
    let server = Server::start().await;
    deploy_python_probe(&server, "crashy", &[]);
    let warm = server.invoke("crashy", &json!({})).await;
    let before = assert_invoke_ok(&warm);
    let procs = server.instance_processes();
    assert!(!procs.is_empty(), "the warm instance has processes");

    let invoked = server
        .invoke("crashy", &json!({"action": "exit", "code": 3}))
        .await;
    assert!(
        !invoked.cold_start(),
        "the crash happened on the warm instance"
    );
    let body = assert_function_error(&server, &invoked, "Runtime.ExitError").await;
    let message = body["errorMessage"].as_str().expect("message");
    assert!(message.contains("exit status 3"), "{message}");
    wait_gone(&procs).await;

    let next = server.invoke("crashy", &json!({})).await;
    let body = assert_invoke_ok(&next);
    assert!(next.cold_start(), "a new instance after the crash");
    assert_ne!(body["instance"], before["instance"]);
}

/// The stored execution names the error the function raised (`ExecutionError::error_type`:
/// "the exception class"), not the transport marker `Unhandled`.
#[tokio::test]
async fn execution_record_names_the_error_type() {
    let server = Server::start().await;
    deploy_python_probe(&server, "py", &[]);
    server.deploy(
        "esm",
        &[("index.mjs", &fixture("node_esm/index.mjs"), false)],
        &["--runtime", "nodejs20.x"],
    );
    server.deploy(
        "cjs",
        &[("index.js", &fixture("node_cjs/index.js"), false)],
        &["--runtime", "nodejs20.x"],
    );
    let mut wrong = Vec::new();
    for (name, event, error_type) in [
        ("py", json!({"action": "raise"}), "ValueError"),
        ("esm", json!({"action": "throw"}), "TypeError"),
        ("cjs", json!({"action": "fail"}), "Error"),
    ] {
        let invoked = server.invoke(name, &event).await;
        assert_eq!(invoked_json(&invoked)["errorType"], error_type);
        let record = server
            .client()
            .get_execution(invoked.execution_id())
            .await
            .expect("execution");
        let recorded = record.error.expect("an error").error_type;
        if recorded != error_type {
            wrong.push(format!(
                "{name}: recorded {recorded:?}, raised {error_type:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "execution records do not name the raised error type:\n{}",
        wrong.join("\n")
    );
}
