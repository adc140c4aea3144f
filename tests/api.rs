//! The executions API, metrics and the OpenAPI document.

use http::Method;
use serde_json::json;

use crate::util::{assert_api_error, deploy_python_probe, json, router_routes, send, Server};

#[tokio::test]
async fn start_execution_returns_the_record_and_lists_it() {
    let server = Server::start().await;
    deploy_python_probe(&server, "x", &[]);
    deploy_python_probe(&server, "y", &[]);

    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/executions",
            &json!({"function": "x", "payload": {"greeting": "hola", "n": [1, 2, 3]}}),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200, "{}", json(&answer));
    let record = json(&answer);
    assert_eq!(record["status"], "complete", "{record}");
    assert_eq!(record["function"], "x");
    assert_eq!(record["trigger"], "api");
    assert_eq!(record["cold_start"], true);
    assert!(record["init_duration_ms"].as_f64().is_some(), "{record}");
    assert!(record["duration_ms"].as_f64().is_some(), "{record}");
    assert_eq!(
        record["result"]["echo"],
        json!({"greeting": "hola", "n": [1, 2, 3]}),
        "{record}"
    );
    let id = record["id"].as_str().expect("id").to_owned();
    assert_eq!(record["result"]["context"]["aws_request_id"], id.as_str());

    // A failing one is recorded as failed, still with a 200 from this endpoint.
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/executions",
            &json!({"function": "x", "payload": {"action": "raise", "message": "nope"}}),
        )
        .await;
    let failed = json(&answer);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "FUNCTION_ERROR", "{failed}");
    assert_eq!(failed["error"]["message"], "nope", "{failed}");
    let failed_id = failed["id"].as_str().expect("id").to_owned();

    // Something for y, which must not show up in x's list.
    server.invoke("y", &json!({})).await;

    let list = json(
        &server
            .request(Method::GET, "/api/v1/executions?function=x", None)
            .await,
    );
    let ids: Vec<&str> = list["executions"]
        .as_array()
        .expect("executions")
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [failed_id.as_str(), id.as_str()],
        "newest first: {list}"
    );
    assert!(list["executions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["function"] == "x"));

    let all = server
        .client()
        .list_executions(None, 10)
        .await
        .expect("all executions");
    assert_eq!(all.executions.len(), 3);
    let page = server
        .client()
        .list_executions(None, 2)
        .await
        .expect("page");
    assert_eq!(page.executions.len(), 2);
    let next = page.next.expect("a next cursor on a full page");
    let rest = json(
        &server
            .request(
                Method::GET,
                &format!("/api/v1/executions?limit=2&before={next}"),
                None,
            )
            .await,
    );
    assert_eq!(rest["executions"].as_array().unwrap().len(), 1, "{rest}");

    let one = json(
        &server
            .request(Method::GET, &format!("/api/v1/executions/{id}"), None)
            .await,
    );
    assert_eq!(one["id"], id.as_str());
    assert_eq!(one["status"], "complete");

    for bad in [
        "/api/v1/executions?limit=0",
        "/api/v1/executions?limit=100000",
        "/api/v1/executions?function=a%20b",
        "/api/v1/executions?bogus=1",
    ] {
        let answer = server.request(Method::GET, bad, None).await;
        assert_api_error(&answer, 400, "INVALID_INPUT");
    }
    for body in [
        json!({"payload": {}}),
        json!({"function": "x", "payload": {}, "extra": 1}),
    ] {
        let answer = server
            .request_json(Method::POST, "/api/v1/executions", &body)
            .await;
        assert_api_error(&answer, 400, "INVALID_INPUT");
    }
}

#[tokio::test]
async fn metrics_count_invocations_and_cold_starts() {
    let server = Server::start().await;
    deploy_python_probe(&server, "x", &["--timeout", "1"]);
    for payload in [
        json!({}),
        json!({}),
        json!({"action": "raise"}),
        json!({"action": "sleep", "seconds": 10}),
        json!({}),
    ] {
        server.invoke("x", &payload).await;
    }
    let text = server.client().metrics().await.expect("metrics");
    for line in [
        r#"holactl_invocations_total{function="x",status="complete"} 3"#,
        r#"holactl_invocations_total{function="x",status="failed"} 1"#,
        r#"holactl_invocations_total{function="x",status="timeout"} 1"#,
        r#"holactl_errors_total{function="x",code="FUNCTION_ERROR"} 1"#,
        r#"holactl_errors_total{function="x",code="TIMEOUT"} 1"#,
        // The first invocation, and the one after the timeout killed its instance.
        r#"holactl_cold_starts_total{function="x"} 2"#,
        r#"holactl_init_duration_seconds_count{function="x"} 2"#,
        r#"holactl_invocation_duration_seconds_count{function="x"} 5"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "metrics lack {line:?}:\n{text}"
        );
    }
    assert!(text.contains("holactl_instances"), "{text}");
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let server = Server::start().await;
    let anonymous = server.client_with_token(None);
    let answer = send(&anonymous, Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(answer.status.as_u16(), 200);
    let doc = json(&answer);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "an OpenAPI 3 document"
    );
    let paths = doc["paths"].as_object().expect("paths");
    let routes = router_routes();
    // The routes of the brief are among those read from the router.
    for must in [
        "/api/v1/health",
        "/api/v1/openapi.json",
        "/api/v1/metrics",
        "/api/v1/code",
        "/api/v1/code/{sha256}",
        "/api/v1/functions",
        "/api/v1/functions/{name}",
        "/api/v1/functions/{name}/invoke",
        "/api/v1/executions",
        "/api/v1/executions/{id}",
        "/api/v1/executions/{id}/logs",
    ] {
        assert!(routes.iter().any(|(p, _)| p == must), "router lacks {must}");
    }
    let mut problems = Vec::new();
    for (path, methods) in &routes {
        for method in methods {
            if paths.get(path).and_then(|item| item.get(*method)).is_none() {
                problems.push(format!("undocumented: {} {path}", method.to_uppercase()));
            }
        }
    }
    for (path, item) in paths {
        let routed = routes.iter().find(|(p, _)| p == path);
        for method in item.as_object().expect("path item").keys() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            if !routed.is_some_and(|(_, m)| m.contains(&method.as_str())) {
                problems.push(format!(
                    "documented but not routed: {} {path}",
                    method.to_uppercase()
                ));
            }
        }
    }
    // Exactly health and the document itself are marked public (`security: []`); every other
    // /api/v1 operation falls under the document's global bearer requirement.
    assert!(
        doc["security"][0].get("bearerAuth").is_some(),
        "a global bearer requirement: {}",
        doc["security"]
    );
    for (path, item) in paths {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, op) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            let public = op["security"].as_array().is_some_and(|s| s.is_empty());
            if public != ["/api/v1/health", "/api/v1/openapi.json"].contains(&path.as_str()) {
                problems.push(format!("wrong security: {} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "openapi.json and the router disagree:\n{}",
        problems.join("\n")
    );
}
