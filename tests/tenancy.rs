//! Users, projects and roles end to end: logins through the CLI, API tokens, and cross-tenant
//! attempts on every kind of endpoint, which must answer exactly as for resources that do not
//! exist.

use std::path::PathBuf;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::util::*;

const HELLO: &str = r#"
def lambda_handler(event, context):
    return {"hi": event.get("name", "?")}
"#;

const PASSWORD: &str = "correct horse battery";

struct User {
    name: &'static str,
    home: PathBuf,
    client: holactl::client::Client,
}

/// Registers `name` (as the administrator), adds them to `project` with `role`, logs them in
/// with the CLI (saving the session in their own HOME) and through the client.
async fn user(server: &Server, name: &'static str, project: &str, role: &str) -> User {
    let out = server.cli_with(
        server.work_dir(),
        &[
            ("HOLACTL_TOKEN", server.token()),
            ("HOLACTL_PASSWORD", PASSWORD),
        ],
        ["lambda", "user", "register", name],
    );
    server.assert_success(&out, "user register");
    let out = server.cli([
        "lambda",
        "project",
        "add-member",
        project,
        name,
        "--role",
        role,
    ]);
    server.assert_success(&out, "project add-member");
    let home = server.work_dir().join(format!("home-{name}"));
    std::fs::create_dir_all(&home).expect("home");
    let out = run_cli(
        server.work_dir(),
        &home,
        &[
            ("HOLACTL_ENDPOINT", server.endpoint()),
            ("HOLACTL_PASSWORD", PASSWORD),
        ],
        ["login", "-u", name],
    );
    assert_success(&out, "login");
    assert!(
        stdout(&out).contains(&format!("as {name}")),
        "{}",
        stdout(&out)
    );
    let session = server
        .client_with_token(None)
        .login(&holactl_types::identity::Credentials {
            username: name.to_owned(),
            password: PASSWORD.to_owned(),
        })
        .await
        .expect("login");
    User {
        name,
        home,
        client: server.client_with_token(Some(&session.token)),
    }
}

impl User {
    /// Runs the CLI as this user (their saved login, no token variable).
    fn cli(&self, server: &Server, args: &[&str]) -> std::process::Output {
        run_cli(
            server.work_dir(),
            &self.home,
            &[("HOLACTL_ENDPOINT", server.endpoint())],
            args,
        )
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> holactl::client::Answer {
        send(
            &self.client,
            method,
            path,
            body.map(|b| ("application/json", Bytes::from(b.to_string()))),
        )
        .await
    }
}

/// The error of an answer: (status, code, message).
fn error_of(answer: &holactl::client::Answer) -> (u16, String, String) {
    let v = json(answer);
    (
        answer.status.as_u16(),
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// `answer` must be the not-found a caller gets for `missing` (a name that does not exist),
/// with the name swapped.
fn assert_hidden(
    answer: &holactl::client::Answer,
    missing: &holactl::client::Answer,
    real: &str,
    fake: &str,
    what: &str,
) {
    let got = error_of(answer);
    let want = error_of(missing);
    assert_eq!(got.0, 404, "{what}: {:?}", answer.body);
    assert_eq!(
        (got.0, got.1, got.2.replace(real, fake)),
        want,
        "{what}: must look exactly like a resource that does not exist"
    );
}

#[tokio::test]
async fn tenants_see_and_touch_only_their_projects() {
    let server = Server::start().await;
    for p in ["web", "ops"] {
        let out = server.cli(["lambda", "project", "create", p]);
        server.assert_success(&out, "project create");
    }
    let ana = user(&server, "ana", "web", "developer").await;
    let bob = user(&server, "bob", "ops", "developer").await;
    let vera = user(&server, "vera", "web", "viewer").await;

    // Ana deploys into her only project, with her saved login.
    let dir = server.function_dir("webfn", &[("lambda_function.py", HELLO, false)]);
    let out = ana.cli(
        &server,
        &[
            "lambda",
            "deploy",
            "webfn",
            "--source",
            dir.to_str().unwrap(),
            "--runtime",
            "python3.11",
        ],
    );
    assert_success(&out, "ana deploys");
    let dir = server.function_dir("opsfn", &[("lambda_function.py", HELLO, false)]);
    let out = bob.cli(
        &server,
        &[
            "lambda",
            "deploy",
            "opsfn",
            "--source",
            dir.to_str().unwrap(),
            "--runtime",
            "python3.11",
        ],
    );
    assert_success(&out, "bob deploys");
    let invoked = ana
        .call(
            Method::POST,
            "/api/v1/functions/webfn/invoke",
            Some(json!({"name": "ana"})),
        )
        .await;
    assert_eq!(invoked.status.as_u16(), 200, "{:?}", invoked.body);
    // An event is data: keys like `function` or `secrets` in it name nothing.
    let event = ana
        .call(
            Method::POST,
            "/api/v1/functions/webfn/invoke",
            Some(json!({"function": "opsfn", "queue": "nope", "secrets": {"A": "x"}})),
        )
        .await;
    assert_eq!(event.status.as_u16(), 200, "{:?}", event.body);
    let execution = invoked
        .header("x-hola-execution-id")
        .expect("execution id")
        .to_owned();
    assert_eq!(
        ana.call(
            Method::POST,
            "/api/v1/queues",
            Some(json!({"name": "webq"}))
        )
        .await
        .status
        .as_u16(),
        201
    );
    let secret = ana
        .call(
            Method::PUT,
            "/api/v1/secrets/websecret",
            Some(json!({"value": "s3cr3t"})),
        )
        .await;
    assert_eq!(secret.status.as_u16(), 200, "{:?}", secret.body);

    // More of Ana's resources: a schedule, a webhook, a trigger, an API with a route, an alias.
    let created = [
        (
            "/api/v1/schedules",
            json!({"name": "websched", "function": "webfn", "rate": "1 hour"}),
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "webhook1", "function": "webfn", "scheme": "hmac-sha256", "secret": "0123456789abcdef0123456789abcdef"}),
        ),
        (
            "/api/v1/triggers",
            json!({"queue": "webq", "function": "webfn"}),
        ),
        ("/api/v1/apis", json!({"name": "webapi"})),
        (
            "/api/v1/apis/webapi/routes",
            json!({"method": "GET", "path": "/hi", "function": "webfn"}),
        ),
    ];
    let mut trigger = String::new();
    for (path, body) in created {
        let answer = ana.call(Method::POST, path, Some(body.clone())).await;
        assert!(
            answer.status.is_success(),
            "{path} {body}: {:?}",
            answer.body
        );
        if path.ends_with("triggers") {
            trigger = json(&answer)["id"].as_str().expect("trigger id").to_owned();
        }
    }
    let answer = ana
        .call(
            Method::POST,
            "/api/v1/functions/webfn/versions",
            Some(json!({})),
        )
        .await;
    assert!(answer.status.is_success(), "{:?}", answer.body);
    let answer = ana
        .call(
            Method::PUT,
            "/api/v1/functions/webfn/aliases/live",
            Some(json!({"version": 1})),
        )
        .await;
    assert!(answer.status.is_success(), "{:?}", answer.body);

    // Lists show each user only their project's resources.
    let names = |v: Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|x| x["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let listed = json(&bob.call(Method::GET, "/api/v1/functions", None).await);
    assert_eq!(names(listed, "functions"), vec!["opsfn"]);
    let listed = json(&ana.call(Method::GET, "/api/v1/functions", None).await);
    assert_eq!(names(listed, "functions"), vec!["webfn"]);
    let listed = json(&bob.call(Method::GET, "/api/v1/queues", None).await);
    assert!(names(listed, "queues").is_empty());
    let listed = json(&bob.call(Method::GET, "/api/v1/secrets", None).await);
    assert!(names(listed, "secrets").is_empty());
    for (path, key) in [
        ("/api/v1/schedules", "schedules"),
        ("/api/v1/webhooks", "webhooks"),
        ("/api/v1/apis", "apis"),
    ] {
        let listed = json(&bob.call(Method::GET, path, None).await);
        assert!(names(listed.clone(), key).is_empty(), "{path}: {listed}");
    }
    let listed = json(&bob.call(Method::GET, "/api/v1/triggers", None).await);
    assert!(!listed.to_string().contains(&trigger), "{listed}");
    let listed = json(&bob.call(Method::GET, "/api/v1/executions", None).await);
    assert!(
        listed["executions"]
            .as_array()
            .is_some_and(|e| e.is_empty()),
        "{listed}"
    );
    let usage = json(&bob.call(Method::GET, "/api/v1/usage", None).await);
    assert!(!usage.to_string().contains("webfn"), "{usage}");
    let listed = json(&server.request(Method::GET, "/api/v1/functions", None).await);
    assert_eq!(
        names(listed, "functions").len(),
        2,
        "the administrator sees all"
    );

    // Every kind of endpoint, tried by Bob on Ana's resources, answers as for a resource
    // that does not exist.
    let cases: Vec<(Method, String, Option<Value>, String)> = vec![
        (
            Method::GET,
            "/api/v1/functions/{}/aliases/live".into(),
            None,
            "webfn".into(),
        ),
        (
            Method::GET,
            "/api/v1/functions/{}/versions/1".into(),
            None,
            "webfn".into(),
        ),
        (
            Method::GET,
            "/api/v1/schedules/{}".into(),
            None,
            "websched".into(),
        ),
        (
            Method::POST,
            "/api/v1/schedules/{}/pause".into(),
            None,
            "websched".into(),
        ),
        (
            Method::POST,
            "/api/v1/schedules/{}/run".into(),
            None,
            "websched".into(),
        ),
        (
            Method::DELETE,
            "/api/v1/schedules/{}".into(),
            None,
            "websched".into(),
        ),
        (
            Method::GET,
            "/api/v1/webhooks/{}".into(),
            None,
            "webhook1".into(),
        ),
        (
            Method::DELETE,
            "/api/v1/webhooks/{}".into(),
            None,
            "webhook1".into(),
        ),
        (
            Method::GET,
            "/api/v1/triggers/{}".into(),
            None,
            trigger.clone(),
        ),
        (
            Method::POST,
            "/api/v1/triggers/{}/disable".into(),
            None,
            trigger.clone(),
        ),
        (
            Method::DELETE,
            "/api/v1/triggers/{}".into(),
            None,
            trigger.clone(),
        ),
        (Method::GET, "/api/v1/apis/{}".into(), None, "webapi".into()),
        (
            Method::GET,
            "/api/v1/apis/{}/routes".into(),
            None,
            "webapi".into(),
        ),
        (
            Method::DELETE,
            "/api/v1/apis/{}".into(),
            None,
            "webapi".into(),
        ),
        (
            Method::GET,
            "/api/v1/queues/{}/dlq".into(),
            None,
            "webq".into(),
        ),
        (
            Method::GET,
            "/api/v1/functions/{}".into(),
            None,
            "webfn".into(),
        ),
        (
            Method::PATCH,
            "/api/v1/functions/{}".into(),
            Some(json!({"timeout": 5})),
            "webfn".into(),
        ),
        (
            Method::DELETE,
            "/api/v1/functions/{}".into(),
            None,
            "webfn".into(),
        ),
        (
            Method::POST,
            "/api/v1/functions/{}/invoke".into(),
            Some(json!({})),
            "webfn".into(),
        ),
        (
            Method::GET,
            "/api/v1/functions/{}/versions".into(),
            None,
            "webfn".into(),
        ),
        (
            Method::POST,
            "/api/v1/functions/{}/versions".into(),
            Some(json!({})),
            "webfn".into(),
        ),
        (
            Method::GET,
            "/api/v1/functions/{}/aliases".into(),
            None,
            "webfn".into(),
        ),
        (
            Method::GET,
            "/api/v1/functions/{}/concurrency".into(),
            None,
            "webfn".into(),
        ),
        (
            Method::GET,
            "/api/v1/functions/{}/dlq".into(),
            None,
            "webfn".into(),
        ),
        (
            Method::GET,
            "/api/v1/functions/{}/metrics".into(),
            None,
            "webfn".into(),
        ),
        (Method::GET, "/api/v1/queues/{}".into(), None, "webq".into()),
        (
            Method::POST,
            "/api/v1/queues/{}/messages".into(),
            Some(json!({"body": "x"})),
            "webq".into(),
        ),
        (
            Method::DELETE,
            "/api/v1/queues/{}".into(),
            None,
            "webq".into(),
        ),
        (
            Method::DELETE,
            "/api/v1/secrets/{}".into(),
            None,
            "websecret".into(),
        ),
        (
            Method::GET,
            "/api/v1/executions/{}".into(),
            None,
            execution.clone(),
        ),
        (
            Method::GET,
            "/api/v1/executions/{}/logs".into(),
            None,
            execution.clone(),
        ),
        (
            Method::DELETE,
            "/api/v1/executions/{}".into(),
            None,
            execution.clone(),
        ),
    ];
    for (method, template, body, real) in cases {
        let fake = if real == execution || real == trigger {
            "00000000-0000-4000-8000-000000000000".to_owned()
        } else {
            format!("{real}x")
        };
        let attempt = bob
            .call(method.clone(), &template.replace("{}", &real), body.clone())
            .await;
        let missing = bob
            .call(method.clone(), &template.replace("{}", &fake), body)
            .await;
        assert_hidden(
            &attempt,
            &missing,
            &real,
            &fake,
            &format!("{method} {template}"),
        );
    }
    // Creates cannot reach into another project either.
    let refs = [
        (
            "/api/v1/schedules",
            json!({"name": "s1", "function": "webfn", "expression": "rate(1 minute)"}),
        ),
        (
            "/api/v1/webhooks",
            json!({"name": "h1", "function": "webfn", "scheme": "hmac-sha256"}),
        ),
        (
            "/api/v1/triggers",
            json!({"queue": "webq", "function": "opsfn"}),
        ),
        (
            "/api/v1/executions",
            json!({"function": "webfn", "payload": {}}),
        ),
    ];
    for (path, body) in refs {
        let answer = bob.call(Method::POST, path, Some(body.clone())).await;
        assert_eq!(
            answer.status.as_u16(),
            404,
            "{path} {body}: {:?}",
            answer.body
        );
    }
    let secret_ref = bob
        .call(
            Method::PATCH,
            "/api/v1/functions/opsfn",
            Some(json!({"secrets": {"DB": "websecret"}})),
        )
        .await;
    assert_eq!(secret_ref.status.as_u16(), 404, "{:?}", secret_ref.body);
    // Ana's resources are untouched.
    assert_eq!(
        ana.call(Method::GET, "/api/v1/functions/webfn", None)
            .await
            .status
            .as_u16(),
        200
    );
    assert_eq!(
        ana.call(Method::GET, "/api/v1/queues/webq", None)
            .await
            .status
            .as_u16(),
        200
    );

    for path in [
        "/api/v1/schedules/websched".to_owned(),
        "/api/v1/webhooks/webhook1".to_owned(),
        "/api/v1/apis/webapi".to_owned(),
        format!("/api/v1/triggers/{trigger}"),
    ] {
        assert_eq!(
            ana.call(Method::GET, &path, None).await.status.as_u16(),
            200,
            "{path}"
        );
    }

    // Platform endpoints are for administrators.
    for path in [
        "/api/v1/audit",
        "/api/v1/metrics",
        "/api/v1/workers/status",
        "/api/v1/users",
    ] {
        let answer = bob.call(Method::GET, path, None).await;
        assert_api_error(&answer, 403, "FORBIDDEN");
    }

    // A viewer reads but cannot change or invoke.
    assert_eq!(
        vera.call(Method::GET, "/api/v1/functions/webfn", None)
            .await
            .status
            .as_u16(),
        200
    );
    let answer = vera
        .call(
            Method::POST,
            "/api/v1/functions/webfn/invoke",
            Some(json!({})),
        )
        .await;
    assert_api_error(&answer, 403, "FORBIDDEN");
    let answer = vera
        .call(Method::DELETE, "/api/v1/functions/webfn", None)
        .await;
    assert_api_error(&answer, 403, "FORBIDDEN");
    let answer = vera
        .call(
            Method::POST,
            "/api/v1/queues",
            Some(json!({"name": "veraq"})),
        )
        .await;
    assert_api_error(&answer, 403, "FORBIDDEN");
    // Nor manage members.
    let answer = ana
        .call(
            Method::PUT,
            "/api/v1/projects/web/members/bob",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_api_error(&answer, 403, "FORBIDDEN");
    let answer = bob.call(Method::GET, "/api/v1/projects/web", None).await;
    assert_api_error(&answer, 404, "RESOURCE_NOT_FOUND");

    // API tokens act as their user until revoked.
    let out = ana.cli(&server, &["lambda", "token", "create", "ci"]);
    assert_success(&out, "token create");
    let token = stdout(&out).trim().to_owned();
    assert!(token.starts_with("hola_pat_"), "{token}");
    let ci = server.client_with_token(Some(&token));
    let answer = send(&ci, Method::GET, "/api/v1/functions/webfn", None).await;
    assert_eq!(answer.status.as_u16(), 200);
    let answer = send(&ci, Method::GET, "/api/v1/functions/opsfn", None).await;
    assert_eq!(answer.status.as_u16(), 404);
    let listed = json(&ana.call(Method::GET, "/api/v1/tokens", None).await);
    let id = listed["tokens"][0]["id"]
        .as_str()
        .expect("token id")
        .to_owned();
    assert!(
        !listed.to_string().contains(&token),
        "token secrets are never listed"
    );
    let out = ana.cli(&server, &["lambda", "token", "revoke", &id]);
    assert_success(&out, "token revoke");
    let answer = send(&ci, Method::GET, "/api/v1/functions/webfn", None).await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");
    // Bob cannot revoke (or see) Ana's tokens.
    let answer = bob
        .call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
        .await;
    assert_eq!(answer.status.as_u16(), 404);

    // The audit trail names who did what.
    let audit = json(
        &server
            .request(Method::GET, "/api/v1/audit?limit=1000", None)
            .await,
    );
    assert!(
        audit.to_string().contains("\"actor\":\"ana\""),
        "no entry by ana: {audit}"
    );

    // Changing the password ends earlier sessions.
    let out = run_cli(
        server.work_dir(),
        &ana.home,
        &[("HOLACTL_ENDPOINT", server.endpoint())],
        ["lambda", "user", "me"],
    );
    assert_success(&out, "user me");
    assert!(stdout(&out).contains("web") && stdout(&out).contains("developer"));
    let answer = ana
        .call(
            Method::PUT,
            "/api/v1/users/me",
            Some(json!({"current_password": PASSWORD, "new_password": "another long one"})),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200, "{:?}", answer.body);
    let answer = ana.call(Method::GET, "/api/v1/users/me", None).await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");
    let _ = vera.name;
}

#[tokio::test]
async fn registration_login_and_bad_credentials() {
    let server = Server::builder().arg("--open-registration").start().await;
    // Open registration: anyone, and they get a personal project.
    let anon = server.client_with_token(None);
    let answer = send(
        &anon,
        Method::POST,
        "/api/v1/users/register",
        Some((
            "application/json",
            Bytes::from(json!({"username": "zoe", "password": PASSWORD}).to_string()),
        )),
    )
    .await;
    assert_eq!(answer.status.as_u16(), 201, "{:?}", answer.body);
    assert_eq!(json(&answer)["projects"]["zoe"], "admin");
    // Taken names, bad names and short passwords.
    for (body, status, code) in [
        (
            json!({"username": "zoe", "password": PASSWORD}),
            409,
            "CONFLICT",
        ),
        (
            json!({"username": "Zoe!", "password": PASSWORD}),
            400,
            "INVALID_INPUT",
        ),
        (
            json!({"username": "zed", "password": "short"}),
            400,
            "INVALID_INPUT",
        ),
        (json!({"username": "zed"}), 400, "INVALID_INPUT"),
    ] {
        let answer = send(
            &anon,
            Method::POST,
            "/api/v1/users/register",
            Some(("application/json", Bytes::from(body.to_string()))),
        )
        .await;
        assert_api_error(&answer, status, code);
    }
    // Wrong password and unknown user answer alike.
    let mut seen = Vec::new();
    for body in [
        json!({"username": "zoe", "password": "wrong password"}),
        json!({"username": "nobody", "password": "wrong password"}),
    ] {
        let answer = send(
            &anon,
            Method::POST,
            "/api/v1/users/login",
            Some(("application/json", Bytes::from(body.to_string()))),
        )
        .await;
        let e = assert_api_error(&answer, 401, "UNAUTHORIZED");
        seen.push(e["message"].clone());
    }
    assert_eq!(seen[0], seen[1]);
    // Forged and tampered session tokens are refused.
    let session = anon
        .login(&holactl_types::identity::Credentials {
            username: "zoe".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("login");
    let mut parts: Vec<String> = session.token.split('.').map(str::to_owned).collect();
    assert_eq!(parts.len(), 3);
    let forged_none = format!("{}.{}.", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", parts[1]);
    parts[2] = parts[2].chars().rev().collect();
    for bad in [
        parts.join("."),
        forged_none,
        "hola_pat_0000_ffff".to_owned(),
    ] {
        let answer = send(
            &server.client_with_token(Some(&bad)),
            Method::GET,
            "/api/v1/users/me",
            None,
        )
        .await;
        assert_api_error(&answer, 401, "UNAUTHORIZED");
    }
    let me = send(
        &server.client_with_token(Some(&session.token)),
        Method::GET,
        "/api/v1/users/me",
        None,
    )
    .await;
    assert_eq!(json(&me)["username"], "zoe");

    // Zoe deploys into her personal project.
    let dir = server.function_dir("zfn", &[("lambda_function.py", HELLO, false)]);
    let out = server.cli_with(
        server.work_dir(),
        &[("HOLACTL_TOKEN", session.token.as_str())],
        [
            "lambda",
            "deploy",
            "zfn",
            "--source",
            dir.to_str().unwrap(),
            "--runtime",
            "python3.11",
        ],
    );
    server.assert_success(&out, "zoe deploys");
    let projects = json(
        &send(
            &server.client_with_token(Some(&session.token)),
            Method::GET,
            "/api/v1/projects",
            None,
        )
        .await,
    );
    assert_eq!(projects["projects"][0]["name"], "zoe");
}

#[tokio::test]
async fn closed_registration_needs_an_administrator() {
    let server = Server::start().await;
    let body = Bytes::from(json!({"username": "eve", "password": PASSWORD}).to_string());
    let answer = send(
        &server.client_with_token(None),
        Method::POST,
        "/api/v1/users/register",
        Some(("application/json", body.clone())),
    )
    .await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");
    let answer = server
        .request(
            Method::POST,
            "/api/v1/users/register",
            Some(("application/json", body)),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 201, "{:?}", answer.body);
    // Not a member of anything: she sees nothing and cannot create.
    let eve = server
        .client_with_token(None)
        .login(&holactl_types::identity::Credentials {
            username: "eve".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("login");
    let eve = server.client_with_token(Some(&eve.token));
    let listed = json(&send(&eve, Method::GET, "/api/v1/functions", None).await);
    assert_eq!(listed["functions"], json!([]));
    let answer = send(
        &eve,
        Method::POST,
        "/api/v1/queues",
        Some((
            "application/json",
            Bytes::from(json!({"name": "q"}).to_string()),
        )),
    )
    .await;
    assert_api_error(&answer, 403, "FORBIDDEN");
}
