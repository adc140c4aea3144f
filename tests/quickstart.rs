//! The quick start, driven through the CLI exactly as a user would: `init`, `deploy`, `invoke`,
//! `logs`, for every runtime family and both templates.

use serde_json::Value;

use crate::util::{stderr, stdout, Server};

/// `init hello --runtime R --template T` in a fresh cwd, then deploy, invoke, logs.
async fn quick_start(runtime: &str, template: &str) {
    quick_start_on(&Server::start().await, runtime, template);
}

fn quick_start_on(server: &Server, runtime: &str, template: &str) {
    let cwd = tempfile::tempdir().expect("temp cwd");
    let cwd = cwd.path();

    let out = server.cli_in(
        cwd,
        [
            "lambda",
            "init",
            "hello",
            "--runtime",
            runtime,
            "--template",
            template,
        ],
    );
    server.assert_success(&out, "init");
    assert!(
        cwd.join("hello/hola.toml").is_file(),
        "init wrote hola.toml"
    );

    let out = server.cli_in(cwd, ["lambda", "deploy", "hello", "--source", "./hello"]);
    server.assert_success(&out, "deploy");
    assert!(
        stdout(&out).contains("Deployed hello"),
        "deploy output: {}",
        stdout(&out)
    );

    let out = server.cli_in(
        cwd,
        [
            "lambda",
            "invoke",
            "hello",
            "--payload",
            r#"{"name":"Mundo"}"#,
        ],
    );
    server.assert_success(&out, "invoke");
    let result: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("invoke prints the JSON result ({e}): {}", stdout(&out)));
    let message = match template {
        // API Gateway proxy response: the greeting is the JSON inside `body`.
        "http" => {
            assert_eq!(result["statusCode"], 200, "{result}");
            let body: Value = serde_json::from_str(result["body"].as_str().expect("body string"))
                .expect("body is JSON");
            body["message"].clone()
        }
        _ => result["message"].clone(),
    };
    assert_eq!(message, "Hola, Mundo!", "{result}");
    let meta = stderr(&out);
    assert!(
        meta.contains("execution ") && meta.contains("cold start"),
        "invoke prints execution metadata on stderr: {meta}"
    );

    let out = server.cli_in(cwd, ["lambda", "logs", "hello"]);
    server.assert_success(&out, "logs");
    let log = stdout(&out);
    for needle in [
        "START RequestId: ",
        "greeting Mundo",
        "END RequestId: ",
        "REPORT RequestId: ",
        "Duration: ",
        "Init Duration: ",
    ] {
        assert!(log.contains(needle), "logs lack {needle:?}:\n{log}");
    }
    let start = log.find("START").unwrap();
    let greeting = log.find("greeting Mundo").unwrap();
    let end = log.find("END RequestId").unwrap();
    let report = log.find("REPORT").unwrap();
    assert!(
        start < greeting && greeting < end && end < report,
        "log lines out of order:\n{log}"
    );
}

#[tokio::test]
async fn quick_start_node_http() {
    quick_start("node18", "http").await;
}

#[tokio::test]
async fn quick_start_python_http() {
    quick_start("python3.11", "http").await;
}

#[tokio::test]
async fn quick_start_provided_http() {
    quick_start("provided", "http").await;
}

#[tokio::test]
async fn quick_start_node_blank() {
    quick_start("node18", "blank").await;
}

#[tokio::test]
async fn quick_start_python_blank() {
    quick_start("python3.11", "blank").await;
}

#[tokio::test]
async fn quick_start_provided_blank() {
    quick_start("provided", "blank").await;
}

/// `holactl lambda serve --data-dir data` (relative, as a user types it) works as well as an
/// absolute path.
#[tokio::test]
async fn quick_start_with_a_relative_data_dir() {
    let server = Server::builder().relative_data_dir().start().await;
    quick_start_on(&server, "python3.11", "blank");
}
