//! Authentication: every route but health and the OpenAPI document needs the admin token.

use std::os::unix::fs::PermissionsExt;

use bytes::Bytes;
use http::Method;
use serde_json::json;

use crate::util::{
    assert_api_error, assert_failure, assert_invoke_ok, deploy_python_probe, router_routes, send,
    stderr, zip, Entry, Server,
};

/// A request to send: method, path, optional (content type, body).
type Call = (Method, String, Option<(&'static str, Bytes)>);

/// The only routes answered without a token.
/// Routes outside the token layer: health, the OpenAPI document, and the two whose body is the
/// credential (registration, closed by default, still refuses anonymous callers: see
/// `tenancy.rs`).
const PUBLIC: [&str; 4] = [
    "/api/v1/health",
    "/api/v1/openapi.json",
    "/api/v1/users/register",
    "/api/v1/users/login",
];

#[tokio::test]
async fn every_route_but_health_needs_the_token() {
    let server = Server::start().await;
    deploy_python_probe(&server, "guarded", &[]);
    let invoked = server.invoke("guarded", &json!({})).await;
    assert_invoke_ok(&invoked);
    let id = invoked.execution_id().to_owned();
    let sha = server
        .client()
        .get_function("guarded")
        .await
        .expect("get")
        .code
        .sha256;
    let package = Bytes::from(zip(&[Entry::File("a.py", b"x = 1\n", 0o644)]));
    let create = Bytes::from(
        json!({"name": "sneaky", "code_sha256": sha, "runtime": "python3.11"}).to_string(),
    );
    let patch = Bytes::from(json!({"memory_mb": 1024}).to_string());

    // Every `/api/v1` route the server declares (but health and the OpenAPI document), with
    // real resources in its parameters and a body the handler would accept, so only the token
    // stands between the request and its effect.
    let mut routes: Vec<Call> = Vec::new();
    for (template, methods) in router_routes() {
        if !template.starts_with("/api/v1/") || PUBLIC.contains(&template.as_str()) {
            continue;
        }
        let path = template
            .replace("{name}", "guarded")
            .replace("{sha256}", &sha)
            .replace("{id}", &id)
            .replace("{version}", "1")
            .replace("{alias}", "live");
        let path = path.replace(['{', '}'], "");
        for method in methods {
            let method: Method = method.to_uppercase().parse().expect("method");
            let body = match (method.as_str(), template.as_str()) {
                ("GET" | "DELETE", _) => None,
                ("POST", "/api/v1/code") => Some(("application/zip", package.clone())),
                ("POST", "/api/v1/functions") => Some(("application/json", create.clone())),
                ("PATCH" | "PUT", "/api/v1/functions/{name}") => {
                    Some(("application/json", patch.clone()))
                }
                ("POST", "/api/v1/executions") => Some((
                    "application/json",
                    Bytes::from(json!({"function": "guarded", "payload": {}}).to_string()),
                )),
                _ => Some(("application/json", Bytes::from_static(b"{}"))),
            };
            routes.push((method, path.clone(), body));
        }
    }
    assert!(
        routes.len() >= 15,
        "too few protected routes found: {routes:?}"
    );
    routes.push((
        Method::GET,
        "/api/v1/executions?function=guarded".into(),
        None,
    ));

    let anonymous = server.client_with_token(None);
    let wrong = server.client_with_token(Some("hola_0000000000000000"));
    // The right token with one character changed.
    let mut almost = server.token().to_owned();
    let last = almost.pop().expect("non-empty token");
    almost.push(if last == '0' { '1' } else { '0' });
    let almost = server.client_with_token(Some(&almost));
    for (method, path, body) in &routes {
        for (who, client) in [
            ("no token", &anonymous),
            ("wrong token", &wrong),
            ("almost the token", &almost),
        ] {
            let answer = send(client, method.clone(), path, body.clone()).await;
            assert_eq!(
                answer.status.as_u16(),
                401,
                "{method} {path} with {who}: {}",
                String::from_utf8_lossy(&answer.body)
            );
            assert_api_error(&answer, 401, "UNAUTHORIZED");
        }
    }
    // A scheme other than Bearer is no token at all.
    let answer = server
        .client_with_token(None)
        .send(
            Method::GET,
            "/api/v1/functions",
            &[("authorization", &format!("Basic {}", server.token()))],
            None,
        )
        .await
        .expect("send");
    assert_api_error(&answer, 401, "UNAUTHORIZED");

    // Nothing the refused requests asked for happened.
    let view = server.client().get_function("guarded").await.expect("get");
    assert_eq!(view.config.memory_mb, 512, "refused PATCH changed nothing");
    assert_eq!(server.function_names().await, ["guarded"]);
    let executions = server
        .client()
        .list_executions(Some("guarded"), 100)
        .await
        .expect("executions");
    assert_eq!(
        executions.executions.len(),
        1,
        "refused invokes ran nothing"
    );

    // Health and the OpenAPI document are public.
    for path in &PUBLIC[..2] {
        let answer = send(&anonymous, Method::GET, path, None).await;
        assert_eq!(answer.status.as_u16(), 200, "{path} without a token");
    }
    // Registration is closed by default: anonymous callers are refused before the body counts.
    let answer = send(
        &anonymous,
        Method::POST,
        "/api/v1/users/register",
        Some((
            "application/json",
            Bytes::from(json!({"username": "mallory", "password": "long enough"}).to_string()),
        )),
    )
    .await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");
}

#[tokio::test]
async fn admin_token_file_is_private() {
    let server = Server::start().await;
    let path = server.data_dir().join("admin.token");
    let mode = std::fs::metadata(&path)
        .expect("admin.token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin.token mode {:o}", mode & 0o777);
    assert!(server.token().starts_with("hola_"), "token format");
}

#[tokio::test]
async fn cli_with_a_wrong_token_fails_with_unauthorized() {
    let server = Server::start().await;
    for args in [
        &["lambda", "list"][..],
        &["lambda", "invoke", "anything"][..],
        &["lambda", "get", "anything"][..],
    ] {
        let out = server.cli_with(server.work_dir(), &[("HOLACTL_TOKEN", "hola_wrong")], args);
        assert_failure(&out, &format!("{args:?} with a wrong token"));
        assert!(stderr(&out).contains("UNAUTHORIZED"), "{}", stderr(&out));
    }
    // The same through flags instead of the environment.
    let home = server.work_dir().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let flags = |token: &str| {
        crate::util::run_cli(
            server.work_dir(),
            &home,
            &[],
            [
                "lambda",
                "list",
                "--endpoint",
                server.endpoint(),
                "--token",
                token,
            ],
        )
    };
    let out = flags("hola_wrong");
    assert_failure(&out, "list --token WRONG");
    assert!(stderr(&out).contains("UNAUTHORIZED"), "{}", stderr(&out));
    crate::util::assert_success(&flags(server.token()), "list --token TOKEN");

    // No token at all (and none in the default data dir under the clean HOME).
    let out = server.cli_with(server.work_dir(), &[], ["lambda", "list"]);
    assert_failure(&out, "list without a token");
    assert!(stderr(&out).contains("UNAUTHORIZED"), "{}", stderr(&out));
}
