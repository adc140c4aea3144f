//! Execution policies (least privilege): a function calls the platform's internal API
//! (`/hola/v1/…` on its own Runtime API endpoint) with its invocation's scoped token, and gets
//! exactly what its policy lists — nothing by default. A function trying to exceed its policy,
//! to forge a token, to use another function's token or an old one is refused with
//! `UNAUTHORIZED`; policy changes are audited.

use std::time::Duration;

use bytes::Bytes;
use holactl_types::queue::ReceiveRequest;
use http::Method;
use serde_json::{json, Value};

use crate::util::{assert_api_error, assert_success, invoked_json, stdout, wait_until, Server};

/// The secret `db`'s value, returned only to a function whose policy lists it.
const DB_VALUE: &str = "pw-policy-Yq3Nw8-db";
/// Another secret, never granted.
const OTHER_VALUE: &str = "pw-policy-Kt5Rm2-other";

/// A handler that makes the internal API calls its event lists and reports each answer. A
/// call's `token` is `own` (default: the invocation's token), `none`, `forge` (the own token
/// with its claims rewritten, signature kept) or a literal token. It also returns its own
/// token, the `HOLA_TOKEN` variable as it saw it, and that variable at init (unset).
const CALLER: &str = r#"import base64
import json
import os
import urllib.error
import urllib.request

INIT_TOKEN = os.environ.get("HOLA_TOKEN")


def forge(token):
    tag, claims, mac = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    data["f"] = "c"
    data["e"] = data["e"] + 3600 * 1000
    claims = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return ".".join([tag, claims, mac])


def call(token, method, path, body, headers):
    url = "http://%s/hola/v1/%s" % (os.environ["AWS_LAMBDA_RUNTIME_API"], path)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")
    return {
        "status": status,
        "body": parsed,
        "headers": {k.lower(): v for k, v in hdrs.items()},
    }


def lambda_handler(event, context):
    own = context.hola_token
    results = []
    for c in event.get("calls", []):
        token = c.get("token", "own")
        if token == "own":
            token = own
        elif token == "none":
            token = None
        elif token == "forge":
            token = forge(own)
        results.append(call(token, c["method"], c["path"], c.get("body"), c.get("headers")))
    return {
        "event": event,
        "token": own,
        "env_token": os.environ.get("HOLA_TOKEN"),
        "init_token": INIT_TOKEN,
        "results": results,
    }
"#;

/// A Node.js handler reading the secret its policy allows, with `context.holaToken`.
const NODE_CALLER: &str = r#"const http = require('node:http');

exports.handler = async (event, context) => {
  const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(':');
  const answer = await new Promise((resolve, reject) => {
    const req = http.request(
      { host, port, path: `/hola/v1/secrets/${event.secret}`, method: 'GET',
        headers: { Authorization: `Bearer ${context.holaToken}` } },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
      });
    req.on('error', reject);
    req.end();
  });
  return { ...answer, envMatches: process.env.HOLA_TOKEN === context.holaToken };
};
"#;

fn deploy_caller(server: &Server, name: &str, extra: &[&str]) {
    let mut args = vec!["--runtime", "python3.11"];
    args.extend_from_slice(extra);
    server.deploy(name, &[("lambda_function.py", CALLER, false)], &args);
}

fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    assert_success(&out, &args.join(" "));
    stdout(&out)
}

fn set_secret(server: &Server, name: &str, value: &str) {
    let out = server.cli_stdin(
        &["lambda", "secret", "set", name],
        format!("{value}\n").as_bytes(),
    );
    assert_success(&out, "secret set");
}

/// One internal API call for the caller's event.
fn call(method: &str, path: &str) -> Value {
    json!({ "method": method, "path": path })
}

/// Invokes `function` (optionally qualified) with `calls`; returns the handler's report.
async fn run_calls(server: &Server, function: &str, calls: Vec<Value>) -> Value {
    let invoked = server
        .client()
        .invoke(
            function,
            Bytes::from(json!({ "calls": calls }).to_string()),
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("invoke {function}: {e}\n{}", server.server_log()));
    let report = invoked_json(&invoked);
    assert!(
        invoked.error_code().is_none(),
        "{function} failed: {report}\n{}",
        server.server_log()
    );
    report
}

/// The three probes: invoke `b`, send to `jobs`, read `db`.
fn probes() -> Vec<Value> {
    vec![
        json!({ "method": "POST", "path": "functions/b/invoke", "body": { "from": "a" } }),
        json!({ "method": "POST", "path": "queues/jobs/messages", "body": { "body": "hello" } }),
        call("GET", "secrets/db"),
    ]
}

/// Asserts a refusal: `status`, code `UNAUTHORIZED`, a message containing `mentions`, and no
/// secret value anywhere.
fn assert_refused(result: &Value, status: u16, mentions: &str) {
    assert_eq!(result["status"], status, "{result}");
    assert_eq!(result["body"]["error"]["code"], "UNAUTHORIZED", "{result}");
    let message = result["body"]["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(mentions),
        "{mentions:?} not in {message:?}"
    );
    let text = result.to_string();
    assert!(
        !text.contains(DB_VALUE) && !text.contains(OTHER_VALUE),
        "{text}"
    );
}

async fn audit_actions(server: &Server, function: &str) -> Vec<String> {
    server
        .client()
        .audit(Some(function), None, 1000)
        .await
        .expect("audit")
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test]
async fn a_function_gets_exactly_what_its_policy_lists() {
    let server = Server::start().await;
    for name in ["a", "b", "c"] {
        deploy_caller(&server, name, &[]);
    }
    for queue in ["jobs", "other"] {
        cli_ok(&server, &["lambda", "queue", "create", queue]);
    }
    set_secret(&server, "db", DB_VALUE);
    set_secret(&server, "other", OTHER_VALUE);

    // Default: nothing. The token reaches the handler (context and $HOLA_TOKEN, only during
    // the invocation), and every call is refused by the (empty) policy.
    let view = server.client().get_policy("a", None).await.expect("get");
    assert!(!view.set && view.policy.invoke.is_empty(), "{view:?}");
    let report = run_calls(&server, "a", probes()).await;
    let token = report["token"].as_str().expect("a token in the context");
    assert!(token.starts_with("hola1."), "{token}");
    assert_eq!(
        report["env_token"], token,
        "HOLA_TOKEN is the context's token"
    );
    assert_eq!(
        report["init_token"],
        Value::Null,
        "no token outside invocations"
    );
    let results = report["results"].as_array().expect("results");
    assert_refused(&results[0], 403, "may not invoke function b");
    assert_refused(&results[1], 403, "may not send to queue jobs");
    assert_refused(&results[2], 403, "may not read secret db");

    // Grant exactly b, jobs and db.
    let shown = cli_ok(
        &server,
        &[
            "lambda",
            "policy",
            "set",
            "a",
            "--invoke",
            "b",
            "--send",
            "jobs",
            "--read-secret",
            "db",
        ],
    );
    assert!(shown.contains("jobs") && shown.contains("db"), "{shown}");
    let shown = cli_ok(&server, &["lambda", "policy", "get", "a", "-o", "json"]);
    let shown: Value = serde_json::from_str(&shown).expect("policy get -o json");
    assert_eq!(
        (
            &shown["invoke"],
            &shown["send"],
            &shown["secrets"],
            &shown["set"]
        ),
        (
            &json!(["b"]),
            &json!(["jobs"]),
            &json!(["db"]),
            &json!(true)
        )
    );

    let report = run_calls(&server, "a", probes()).await;
    let results = report["results"].as_array().expect("results");
    // b really ran, recorded as started by a function.
    assert_eq!(results[0]["status"], 200, "{}", results[0]);
    assert_eq!(results[0]["body"]["event"], json!({ "from": "a" }));
    let b_execution = results[0]["headers"]["x-hola-execution-id"]
        .as_str()
        .expect("execution id header");
    let record = server
        .client()
        .get_execution(b_execution)
        .await
        .expect("b's execution");
    assert_eq!(record.function, "b");
    assert_eq!(
        serde_json::to_value(record.trigger).expect("trigger"),
        "function"
    );
    // The queue really holds the message.
    assert_eq!(results[1]["status"], 200, "{}", results[1]);
    assert!(
        results[1]["body"]["message_id"].is_string(),
        "{}",
        results[1]
    );
    let received = server
        .client()
        .receive_messages("jobs", &ReceiveRequest::default())
        .await
        .expect("receive");
    assert_eq!(received.messages.len(), 1);
    assert_eq!(received.messages[0].body, "hello");
    // The secret's value comes back.
    assert_eq!(results[2]["status"], 200, "{}", results[2]);
    assert_eq!(
        results[2]["body"],
        json!({ "name": "db", "value": DB_VALUE })
    );

    // Anything else stays refused: another function, a qualified call of the granted one,
    // another queue, another secret; no token, a forged one; unknown paths are 404.
    let report = run_calls(
        &server,
        "a",
        vec![
            call("POST", "functions/c/invoke"),
            call("POST", "functions/b:1/invoke"),
            json!({ "method": "POST", "path": "queues/other/messages", "body": { "body": "x" } }),
            call("GET", "secrets/other"),
            json!({ "method": "GET", "path": "secrets/db", "token": "none" }),
            json!({ "method": "GET", "path": "secrets/db", "token": "forge" }),
            json!({ "method": "GET", "path": "secrets/db", "token": "hola1.e30.AAAA" }),
            call("GET", "nothing/here"),
        ],
    )
    .await;
    let results = report["results"].as_array().expect("results");
    assert_refused(&results[0], 403, "may not invoke function c");
    assert_refused(&results[1], 403, "may not invoke function b:1");
    assert_refused(&results[2], 403, "may not send to queue other");
    assert_refused(&results[3], 403, "may not read secret other");
    assert_refused(&results[4], 401, "missing Authorization");
    assert_refused(&results[5], 401, "signature");
    assert_refused(&results[6], 401, "signature");
    assert_eq!(results[7]["status"], 404, "{}", results[7]);
    let c_runs = server
        .client()
        .list_executions(Some("c"), 10)
        .await
        .expect("executions of c");
    assert!(c_runs.executions.is_empty(), "c never ran: {c_runs:?}");

    // Another function's token does not work on a's endpoint; nor does an earlier token of a.
    let b_report = run_calls(&server, "b", vec![]).await;
    let b_token = b_report["token"].as_str().expect("b's token").to_owned();
    let earlier = token.to_owned();
    let report = run_calls(
        &server,
        "a",
        vec![
            json!({ "method": "GET", "path": "secrets/db", "token": b_token }),
            json!({ "method": "GET", "path": "secrets/db", "token": earlier }),
        ],
    )
    .await;
    let results = report["results"].as_array().expect("results");
    assert_refused(&results[0], 401, "not issued to this instance");
    assert_eq!(results[1]["status"], 401, "{}", results[1]);
    assert_eq!(results[1]["body"]["error"]["code"], "UNAUTHORIZED");

    // Asynchronous invocation of the granted function.
    let report = run_calls(
        &server,
        "a",
        vec![json!({
            "method": "POST", "path": "functions/b/invoke", "body": { "async": true },
            "headers": { "X-Invocation-Type": "Event" },
        })],
    )
    .await;
    let queued = &report["results"][0];
    assert_eq!(queued["status"], 202, "{queued}");
    let id = queued["body"]["id"]
        .as_str()
        .expect("execution id")
        .to_owned();
    let client = server.client();
    wait_until("the async invocation of b", Duration::from_secs(30), || {
        let client = client.clone();
        let id = id.clone();
        async move {
            client
                .get_execution(&id)
                .await
                .is_ok_and(|r| r.status == holactl_types::ExecutionStatus::Complete)
        }
    })
    .await;

    // An alias's policy replaces the function's for invocations through the alias.
    cli_ok(&server, &["lambda", "publish-version", "a"]);
    cli_ok(
        &server,
        &[
            "lambda",
            "alias",
            "set",
            "a",
            "--alias",
            "live",
            "--version",
            "1",
        ],
    );
    let view = server
        .client()
        .get_policy("a", Some("live"))
        .await
        .expect("get");
    assert!(!view.set, "{view:?}");
    cli_ok(
        &server,
        &[
            "lambda", "policy", "set", "a", "--alias", "live", "--send", "other",
        ],
    );
    let alias_probes = || {
        vec![
            json!({ "method": "POST", "path": "queues/other/messages", "body": { "body": "x" } }),
            call("GET", "secrets/db"),
        ]
    };
    let report = run_calls(&server, "a:live", alias_probes()).await;
    assert_eq!(report["results"][0]["status"], 200, "{report}");
    assert_refused(
        &report["results"][1],
        403,
        "function a:live may not read secret db",
    );
    // Version 1 invoked by number is not the alias: the function's policy applies.
    let report = run_calls(&server, "a:1", alias_probes()).await;
    assert_refused(&report["results"][0], 403, "may not send to queue other");
    assert_eq!(report["results"][1]["status"], 200, "{report}");
    // Without its own policy the alias falls back to the function's.
    cli_ok(
        &server,
        &["lambda", "policy", "delete", "a", "--alias", "live"],
    );
    let report = run_calls(&server, "a:live", alias_probes()).await;
    assert_refused(&report["results"][0], 403, "may not send to queue other");
    assert_eq!(report["results"][1]["status"], 200, "{report}");

    // Deleting the function's policy takes everything back.
    cli_ok(&server, &["lambda", "policy", "delete", "a"]);
    let report = run_calls(&server, "a", vec![call("GET", "secrets/db")]).await;
    assert_refused(&report["results"][0], 403, "may not read secret db");

    // Every change is in the audit trail.
    let actions = audit_actions(&server, "a").await;
    for action in [
        "function.policy.set",
        "alias.policy.set",
        "alias.policy.delete",
        "function.policy.delete",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }

    // A function re-created under the same name does not inherit an old grant.
    cli_ok(
        &server,
        &["lambda", "policy", "set", "c", "--read-secret", "db"],
    );
    cli_ok(&server, &["lambda", "delete", "c"]);
    deploy_caller(&server, "c", &[]);
    let view = server.client().get_policy("c", None).await.expect("get");
    assert!(!view.set, "{view:?}");
}

#[tokio::test]
async fn policy_api_validates_its_input() {
    let server = Server::start().await;
    deploy_caller(&server, "a", &[]);
    let put = |body: Value, path: &'static str| {
        let server = &server;
        async move { server.request_json(Method::PUT, path, &body).await }
    };
    let answer = put(json!({ "invoke": ["*"] }), "/api/v1/functions/a/policy").await;
    let error = assert_api_error(&answer, 400, "INVALID_INPUT");
    assert_eq!(error["field"], "invoke[0]");
    assert!(error["message"].as_str().unwrap_or("").contains("wildcard"));
    let answer = put(
        json!({ "send": ["ok", "no/slash"] }),
        "/api/v1/functions/a/policy",
    )
    .await;
    assert_eq!(
        assert_api_error(&answer, 400, "INVALID_INPUT")["field"],
        "send[1]"
    );
    let answer = put(json!({ "secrets": ["a b"] }), "/api/v1/functions/a/policy").await;
    assert_eq!(
        assert_api_error(&answer, 400, "INVALID_INPUT")["field"],
        "secrets[0]"
    );
    let answer = put(json!({ "secret": ["db"] }), "/api/v1/functions/a/policy").await;
    assert_api_error(&answer, 400, "INVALID_INPUT");
    let many: Vec<String> = (0..101).map(|i| format!("q{i}")).collect();
    let answer = put(json!({ "send": many }), "/api/v1/functions/a/policy").await;
    assert_eq!(
        assert_api_error(&answer, 400, "INVALID_INPUT")["field"],
        "send"
    );

    let answer = put(json!({}), "/api/v1/functions/nope/policy").await;
    assert_api_error(&answer, 404, "FUNCTION_NOT_FOUND");
    let answer = put(json!({}), "/api/v1/functions/a/aliases/nope/policy").await;
    assert_api_error(&answer, 404, "RESOURCE_NOT_FOUND");
    let answer = server
        .request(Method::GET, "/api/v1/functions/nope/policy", None)
        .await;
    assert_api_error(&answer, 404, "FUNCTION_NOT_FOUND");

    // Stored normalized: duplicates removed, `name:$LATEST` written `name`.
    let answer = put(
        json!({ "invoke": ["b", "b:$LATEST", "b:prod"], "send": ["q", "q"] }),
        "/api/v1/functions/a/policy",
    )
    .await;
    assert_eq!(answer.status, 200);
    let view: Value = serde_json::from_slice(&answer.body).expect("json");
    assert_eq!(view["invoke"], json!(["b", "b:prod"]));
    assert_eq!(view["send"], json!(["q"]));
    assert_eq!(view["secrets"], json!([]));

    // The CLI reports the API's error.
    let out = server.cli(["lambda", "policy", "set", "a", "--invoke", "*"]);
    assert!(!out.status.success());
    assert!(
        crate::util::stderr(&out).contains("INVALID_INPUT"),
        "{}",
        crate::util::stderr(&out)
    );
}

#[tokio::test]
async fn tokens_expire() {
    // No grace: a token dies with its invocation's timeout.
    let server = Server::builder()
        .env("HOLACTL_TOKEN_GRACE", "0s")
        .start()
        .await;
    deploy_caller(&server, "a", &["--timeout", "3"]);
    cli_ok(
        &server,
        &["lambda", "policy", "set", "a", "--read-secret", "db"],
    );
    set_secret(&server, "db", DB_VALUE);
    let report = run_calls(&server, "a", vec![call("GET", "secrets/db")]).await;
    assert_eq!(report["results"][0]["status"], 200, "{report}");
    let old = report["token"].as_str().expect("token").to_owned();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let report = run_calls(
        &server,
        "a",
        vec![json!({ "method": "GET", "path": "secrets/db", "token": old })],
    )
    .await;
    assert_refused(&report["results"][0], 401, "expired");
}

#[tokio::test]
async fn a_node_handler_uses_its_token() {
    let server = Server::start().await;
    server.deploy(
        "n",
        &[("index.js", NODE_CALLER, false)],
        &["--runtime", "nodejs20.x"],
    );
    set_secret(&server, "db", DB_VALUE);
    cli_ok(
        &server,
        &["lambda", "policy", "set", "n", "--read-secret", "db"],
    );
    let invoked = server.invoke("n", &json!({ "secret": "db" })).await;
    let report = invoked_json(&invoked);
    assert_eq!(report["status"], 200, "{report}");
    assert_eq!(report["body"]["value"], DB_VALUE, "{report}");
    assert_eq!(report["envMatches"], true, "{report}");
    let invoked = server.invoke("n", &json!({ "secret": "other" })).await;
    let report = invoked_json(&invoked);
    assert_eq!(report["status"], 403, "{report}");
    assert_eq!(report["body"]["error"]["code"], "UNAUTHORIZED", "{report}");
}

#[tokio::test]
async fn grants_never_cross_projects() {
    let server = Server::start().await;
    deploy_caller(&server, "a", &[]);
    set_secret(&server, "db", DB_VALUE);
    // A secret of another project, listed in a's policy all the same (an administrator may
    // write any name; the grant stays inert).
    server
        .client()
        .create_project("other")
        .await
        .expect("create project");
    server
        .client()
        .with_project(Some("other".to_owned()))
        .set_secret("theirs", OTHER_VALUE.to_owned())
        .await
        .expect("secret in project other");
    cli_ok(
        &server,
        &[
            "lambda",
            "policy",
            "set",
            "a",
            "--read-secret",
            "db",
            "--read-secret",
            "theirs",
        ],
    );
    let report = run_calls(
        &server,
        "a",
        vec![call("GET", "secrets/db"), call("GET", "secrets/theirs")],
    )
    .await;
    assert_eq!(report["results"][0]["status"], 200, "{report}");
    assert_refused(&report["results"][1], 403, "outside project default");
}
