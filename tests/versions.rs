//! Versions and aliases: published versions are immutable snapshots that qualified invokes
//! (`NAME:N`, `--qualifier`, `?qualifier=`) keep answering byte for byte; aliases with weighted
//! routing and the blue/green recipe; stable error codes; the per-function version limit; and
//! the audit trail every change leaves.

use std::process::Output;

use bytes::Bytes;
use holactl::client::Answer;
use http::Method;
use serde_json::{json, Value};

use crate::util::{assert_api_error, assert_failure, assert_success, json, stderr, stdout, Server};

const EXECUTED_VERSION: &str = "x-hola-executed-version";

/// A handler returning a constant and the `COLOR` environment variable.
fn constant(answer: &str) -> String {
    format!(
        "import os\n\n\ndef lambda_handler(event, context):\n    \
         return {{\"answer\": \"{answer}\", \"color\": os.environ.get(\"COLOR\")}}\n"
    )
}

/// `deploy NAME` of the [`constant`] handler answering `answer`, with extra flags.
fn deploy_constant(server: &Server, name: &str, answer: &str, extra: &[&str]) {
    let code = constant(answer);
    let mut args = vec!["--runtime", "python3.11"];
    args.extend_from_slice(extra);
    server.deploy(name, &[("lambda_function.py", &code, false)], &args);
}

/// `holactl lambda publish-version NAME`; returns the number it printed.
fn publish(server: &Server, name: &str) -> String {
    let out = server.cli(["lambda", "publish-version", name]);
    assert_success(&out, "publish-version");
    let text = stdout(&out);
    text.split_once(&format!("Published {name}:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no version in {text:?}"))
        .to_owned()
}

/// Runs the CLI and asserts success.
fn cli_ok(server: &Server, args: &[&str]) -> Output {
    let out = server.cli(args);
    assert_success(&out, &args.join(" "));
    out
}

/// Runs the CLI, asserts a non-zero exit and that stderr names `code`.
fn cli_fails_with(server: &Server, args: &[&str], code: &str) -> String {
    let out = server.cli(args);
    assert_failure(&out, &args.join(" "));
    let err = stderr(&out);
    assert!(
        err.contains(code),
        "`holactl {}` should print {code}: {err}",
        args.join(" ")
    );
    err
}

/// `POST /api/v1/functions/{target}/invoke{query}` with an empty event.
async fn invoke_raw(server: &Server, target: &str, query: &str) -> Answer {
    server
        .request(
            Method::POST,
            &format!("/api/v1/functions/{target}/invoke{query}"),
            Some(("application/json", Bytes::from_static(b"{}"))),
        )
        .await
}

/// Asserts a successful invoke that ran `version` (header and execution record); returns the
/// body's bytes.
async fn assert_ran(server: &Server, answer: &Answer, version: &str) -> Bytes {
    assert_eq!(
        answer.status.as_u16(),
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("x-hola-error-code"), None);
    assert_eq!(answer.header(EXECUTED_VERSION), Some(version));
    let id = answer.header("x-hola-execution-id").expect("execution id");
    let record = json(
        &server
            .request(Method::GET, &format!("/api/v1/executions/{id}"), None)
            .await,
    );
    assert_eq!(record["version"], version, "{record}");
    answer.body.clone()
}

/// `invoke ARGS -o json` through the CLI: (version, result).
fn cli_invoke(server: &Server, args: &[&str]) -> (String, Value) {
    let mut all = vec!["lambda", "invoke"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = cli_ok(server, &all);
    let v: Value = serde_json::from_str(&stdout(&out)).expect("invoke -o json prints JSON");
    (
        v["version"].as_str().unwrap_or_default().to_owned(),
        v["result"].clone(),
    )
}

#[tokio::test]
async fn published_versions_are_immutable() {
    let server = Server::start().await;
    deploy_constant(&server, "imm", "one", &["--env", "COLOR=red"]);
    let out = cli_ok(
        &server,
        &["lambda", "publish-version", "imm", "--description", "first"],
    );
    assert!(
        stdout(&out).contains("Published imm:1 ") && stdout(&out).contains("first"),
        "{}",
        stdout(&out)
    );

    // Publishing an unchanged $LATEST creates nothing: 200 (not 201) with version 1.
    let again = server
        .request_json(Method::POST, "/api/v1/functions/imm/versions", &json!({}))
        .await;
    assert_eq!(again.status.as_u16(), 200, "{}", json(&again));
    assert_eq!(json(&again)["version"], "1");
    assert_eq!(publish(&server, "imm"), "1");

    let old = assert_ran(&server, &invoke_raw(&server, "imm:1", "").await, "1").await;
    assert_eq!(
        serde_json::from_slice::<Value>(&old).expect("JSON"),
        json!({"answer": "one", "color": "red"})
    );

    // New code and environment go to $LATEST only.
    deploy_constant(&server, "imm", "two", &["--env", "COLOR=blue"]);
    let new = json!({"answer": "two", "color": "blue"});
    for target in ["imm", "imm:$LATEST"] {
        let body = assert_ran(&server, &invoke_raw(&server, target, "").await, "$LATEST").await;
        assert_eq!(serde_json::from_slice::<Value>(&body).expect("JSON"), new);
    }
    let body = assert_ran(
        &server,
        &invoke_raw(&server, "imm", "?qualifier=$LATEST").await,
        "$LATEST",
    )
    .await;
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("JSON"), new);

    // Version 1 still answers exactly what it did, however it is named.
    for (target, query) in [
        ("imm:1", ""),
        ("imm", "?qualifier=1"),
        ("imm:1", "?qualifier=1"),
    ] {
        let body = assert_ran(&server, &invoke_raw(&server, target, query).await, "1").await;
        assert_eq!(body, old, "{target}{query} is not byte-identical");
    }
    let (version, result) = cli_invoke(&server, &["imm:1"]);
    assert_eq!(
        (version.as_str(), &result),
        ("1", &json!({"answer": "one", "color": "red"}))
    );
    let (version, result) = cli_invoke(&server, &["imm"]);
    assert_eq!((version.as_str(), &result), ("$LATEST", &new));
    let out = cli_ok(&server, &["lambda", "invoke", "imm:1"]);
    assert!(stderr(&out).contains("version 1 "), "{}", stderr(&out));

    // The path and the query naming different qualifiers is an error, not a guess.
    let conflicting = invoke_raw(&server, "imm:1", "?qualifier=2").await;
    let err = assert_api_error(&conflicting, 400, "INVALID_INPUT");
    assert_eq!(err["field"], "qualifier");

    // Publishing the changed $LATEST creates version 2 (201); version 1's snapshot is intact.
    let created = server
        .request_json(
            Method::POST,
            "/api/v1/functions/imm/versions",
            &json!({"description": "second"}),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", json(&created));
    let v2 = json(&created);
    assert_eq!(v2["version"], "2");
    assert_eq!(v2["config"]["environment"]["COLOR"], "blue");
    assert!(
        v2["arn"].as_str().is_some_and(|a| a.ends_with(":imm:2")),
        "{v2}"
    );
    let out = cli_ok(
        &server,
        &["lambda", "version", "get", "imm", "1", "-o", "json"],
    );
    let v1: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v1["config"]["environment"]["COLOR"], "red", "{v1}");
    assert_eq!(v1["description"], "first");
    assert_ne!(v1["code"]["sha256"], v2["code"]["sha256"]);
    let body = assert_ran(&server, &invoke_raw(&server, "imm:2", "").await, "2").await;
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("JSON"), new);
    let body = assert_ran(&server, &invoke_raw(&server, "imm:1", "").await, "1").await;
    assert_eq!(body, old);

    let listed = json(
        &server
            .request(Method::GET, "/api/v1/functions/imm/versions", None)
            .await,
    );
    let names: Vec<&str> = listed["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(names, ["$LATEST", "1", "2"]);
    let out = cli_ok(&server, &["lambda", "versions", "imm"]);
    let table = stdout(&out);
    assert!(
        table.contains("$LATEST") && table.contains("first") && table.contains("second"),
        "{table}"
    );
}

#[tokio::test]
async fn cli_qualifier_flag_selects_the_version() {
    let server = Server::start().await;
    deploy_constant(&server, "qual", "one", &["--env", "COLOR=red"]);
    assert_eq!(publish(&server, "qual"), "1");
    deploy_constant(&server, "qual", "two", &["--env", "COLOR=blue"]);
    let (version, result) = cli_invoke(&server, &["qual", "--qualifier", "1"]);
    assert_eq!(
        (version.as_str(), &result),
        ("1", &json!({"answer": "one", "color": "red"})),
        "`invoke qual --qualifier 1` must run version 1, like `invoke qual:1`"
    );
    let (version, _) = cli_invoke(&server, &["qual", "--qualifier", "$LATEST"]);
    assert_eq!(version, "$LATEST");
}

#[tokio::test]
async fn aliases_route_weighted_traffic_and_blue_green() {
    let server = Server::start().await;
    deploy_constant(&server, "canary", "one", &[]);
    assert_eq!(publish(&server, "canary"), "1");
    deploy_constant(&server, "canary", "two", &[]);
    assert_eq!(publish(&server, "canary"), "2");

    let out = cli_ok(
        &server,
        &[
            "lambda",
            "alias",
            "set",
            "canary",
            "--alias",
            "prod",
            "--version",
            "1",
        ],
    );
    assert!(stdout(&out).contains("100% → 1"), "{}", stdout(&out));
    let a = invoke_raw(&server, "canary:prod", "").await;
    let body = assert_ran(&server, &a, "1").await;
    assert_eq!(json(&a)["answer"], "one", "{body:?}");
    let (version, result) = cli_invoke(&server, &["canary:prod"]);
    assert_eq!((version.as_str(), &result["answer"]), ("1", &json!("one")));

    let out = cli_ok(
        &server,
        &[
            "lambda", "alias", "shift", "canary", "--alias", "prod", "--to", "2", "--weight", "10",
        ],
    );
    assert!(
        stdout(&out).contains("90.0% → 1") && stdout(&out).contains("10.0% → 2"),
        "{}",
        stdout(&out)
    );
    let alias = server
        .client()
        .get_alias("canary", "prod")
        .await
        .expect("alias");
    assert_eq!(alias.alias.version, 1);
    let routing = alias.alias.routing.expect("weighted routing");
    assert_eq!((routing.version, routing.weight), (2, 0.1));

    // 1,000 invocations, 16 at a time. Each goes to version 2 with p = 0.1 independently, so
    // the count is Binomial(1000, 0.1): mean 100, sd = sqrt(1000 * 0.1 * 0.9) ≈ 9.5. The
    // bounds 60..=140 are more than 4 sd from the mean (a false failure has p < 1e-4).
    let client = server.client();
    let mut to_two = 0;
    let mut total = 0;
    while total < 1000 {
        let batch = (1000 - total).min(16);
        let calls = (0..batch).map(|_| {
            let client = client.clone();
            async move {
                client
                    .invoke("canary:prod", Bytes::from_static(b"{}"), false)
                    .await
                    .expect("invoke canary:prod")
            }
        });
        for invoked in futures_util::future::join_all(calls).await {
            let a = &invoked.answer;
            assert_eq!(a.status.as_u16(), 200);
            let answer = json(a)["answer"].clone();
            match a.header(EXECUTED_VERSION) {
                Some("1") => assert_eq!(answer, "one"),
                Some("2") => {
                    assert_eq!(answer, "two");
                    to_two += 1;
                }
                other => panic!("canary:prod ran {other:?}"),
            }
        }
        total += batch;
    }
    assert!(
        (60..=140).contains(&to_two),
        "{to_two} of 1000 invocations ran version 2 with a 10% weight"
    );

    // 0% cancels the canary: every invocation goes to version 1 again.
    let out = cli_ok(
        &server,
        &[
            "lambda", "alias", "shift", "canary", "--alias", "prod", "--to", "2", "--weight", "0",
        ],
    );
    assert!(stdout(&out).contains("100% → 1"), "{}", stdout(&out));
    for _ in 0..10 {
        let a = invoke_raw(&server, "canary:prod", "").await;
        assert_ran(&server, &a, "1").await;
    }

    // 100% completes the shift: the alias now names version 2, without routing.
    let out = cli_ok(
        &server,
        &[
            "lambda", "alias", "shift", "canary", "--alias", "prod", "--to", "2", "--weight", "100",
        ],
    );
    assert!(stdout(&out).contains("100% → 2"), "{}", stdout(&out));
    let alias = json(
        &server
            .request(Method::GET, "/api/v1/functions/canary/aliases/prod", None)
            .await,
    );
    assert_eq!(alias["version"], 2, "{alias}");
    assert!(alias["routing"].is_null(), "{alias}");
    for _ in 0..10 {
        let a = invoke_raw(&server, "canary:prod", "").await;
        assert_ran(&server, &a, "2").await;
    }

    // Blue/green: `blue` and `green` name the two releases, `live` takes the traffic and is
    // moved between them; rolling back is moving it again.
    for (alias, version) in [("blue", "1"), ("green", "2"), ("live", "1")] {
        cli_ok(
            &server,
            &[
                "lambda",
                "alias",
                "set",
                "canary",
                "--alias",
                alias,
                "--version",
                version,
            ],
        );
    }
    let answer_of = |target: &'static str| {
        let server = &server;
        async move {
            let a = invoke_raw(server, target, "").await;
            assert_eq!(a.status.as_u16(), 200);
            (
                a.header(EXECUTED_VERSION).unwrap_or_default().to_owned(),
                json(&a)["answer"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    assert_eq!(answer_of("canary:live").await, ("1".into(), "one".into()));
    // Cut over to green.
    cli_ok(
        &server,
        &[
            "lambda", "alias", "shift", "canary", "--alias", "live", "--to", "2", "--weight", "100",
        ],
    );
    assert_eq!(answer_of("canary:live").await, ("2".into(), "two".into()));
    // Roll back to blue.
    cli_ok(
        &server,
        &[
            "lambda",
            "alias",
            "set",
            "canary",
            "--alias",
            "live",
            "--version",
            "1",
        ],
    );
    assert_eq!(answer_of("canary:live").await, ("1".into(), "one".into()));
    assert_eq!(answer_of("canary:blue").await, ("1".into(), "one".into()));
    assert_eq!(answer_of("canary:green").await, ("2".into(), "two".into()));
    let out = cli_ok(
        &server,
        &["lambda", "alias", "list", "canary", "-o", "json"],
    );
    let list: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let mut names: Vec<(String, u64)> = list
        .as_array()
        .expect("aliases")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or_default().to_owned(),
                a["version"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("blue".to_owned(), 1),
            ("green".to_owned(), 2),
            ("live".to_owned(), 1),
            ("prod".to_owned(), 2)
        ]
    );
}

#[tokio::test]
async fn version_and_alias_errors_have_stable_codes() {
    let server = Server::start().await;
    deploy_constant(&server, "errs", "one", &[]);
    assert_eq!(publish(&server, "errs"), "1");
    deploy_constant(&server, "errs", "two", &[]);
    assert_eq!(publish(&server, "errs"), "2");
    cli_ok(
        &server,
        &[
            "lambda",
            "alias",
            "set",
            "errs",
            "--alias",
            "prod",
            "--version",
            "1",
        ],
    );

    // Unknown version or alias: 404 RESOURCE_NOT_FOUND; unknown function: FUNCTION_NOT_FOUND.
    for target in ["errs:9", "errs:nope"] {
        assert_api_error(
            &invoke_raw(&server, target, "").await,
            404,
            "RESOURCE_NOT_FOUND",
        );
        cli_fails_with(&server, &["lambda", "invoke", target], "RESOURCE_NOT_FOUND");
    }
    assert_api_error(
        &invoke_raw(&server, "errs", "?qualifier=9").await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    let err = assert_api_error(
        &invoke_raw(&server, "errs:0", "").await,
        400,
        "INVALID_INPUT",
    );
    assert_eq!(err["field"], "qualifier");
    assert_api_error(
        &invoke_raw(&server, "ghost:1", "").await,
        404,
        "FUNCTION_NOT_FOUND",
    );

    // An alias to a missing version.
    cli_fails_with(
        &server,
        &[
            "lambda",
            "alias",
            "set",
            "errs",
            "--alias",
            "beta",
            "--version",
            "9",
        ],
        "RESOURCE_NOT_FOUND",
    );
    let path = "/api/v1/functions/errs/aliases/beta";
    assert_api_error(
        &server
            .request_json(Method::PUT, path, &json!({"version": 9}))
            .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_api_error(
        &server
            .request_json(
                Method::PUT,
                path,
                &json!({"version": 1, "routing": {"version": 9, "weight": 10}}),
            )
            .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    cli_fails_with(
        &server,
        &[
            "lambda", "alias", "shift", "errs", "--alias", "prod", "--to", "9", "--weight", "10",
        ],
        "RESOURCE_NOT_FOUND",
    );
    cli_fails_with(
        &server,
        &[
            "lambda", "alias", "shift", "errs", "--alias", "nope", "--to", "2", "--weight", "10",
        ],
        "RESOURCE_NOT_FOUND",
    );
    cli_fails_with(
        &server,
        &["lambda", "alias", "get", "errs", "--alias", "nope"],
        "RESOURCE_NOT_FOUND",
    );

    // Alias names that would read as a version (or $LATEST).
    for bad in ["123", "$LATEST"] {
        let err = assert_api_error(
            &server
                .request_json(
                    Method::PUT,
                    &format!("/api/v1/functions/errs/aliases/{bad}"),
                    &json!({"version": 1}),
                )
                .await,
            400,
            "INVALID_INPUT",
        );
        assert_eq!(err["field"], "alias", "{err}");
    }
    cli_fails_with(
        &server,
        &[
            "lambda",
            "alias",
            "set",
            "errs",
            "--alias",
            "123",
            "--version",
            "1",
        ],
        "INVALID_INPUT",
    );

    // Weights outside 0..=100.
    cli_fails_with(
        &server,
        &[
            "lambda", "alias", "shift", "errs", "--alias", "prod", "--to", "2", "--weight", "150",
        ],
        "INVALID_INPUT",
    );
    let shift = "/api/v1/functions/errs/aliases/prod/shift";
    for weight in [150.0, -1.0] {
        let err = assert_api_error(
            &server
                .request_json(Method::POST, shift, &json!({"to": 2, "weight": weight}))
                .await,
            400,
            "INVALID_INPUT",
        );
        assert_eq!(err["field"], "weight", "{err}");
    }
    assert_api_error(
        &server
            .request_json(
                Method::PUT,
                path,
                &json!({"version": 1, "routing": {"version": 2, "weight": 150}}),
            )
            .await,
        400,
        "INVALID_INPUT",
    );

    // Versions an alias uses (as its version or as its routing target) cannot be deleted.
    cli_fails_with(
        &server,
        &["lambda", "version", "delete", "errs", "1"],
        "CONFLICT",
    );
    assert_api_error(
        &server
            .request(Method::DELETE, "/api/v1/functions/errs/versions/1", None)
            .await,
        409,
        "CONFLICT",
    );
    cli_ok(
        &server,
        &[
            "lambda", "alias", "shift", "errs", "--alias", "prod", "--to", "2", "--weight", "10",
        ],
    );
    assert_api_error(
        &server
            .request(Method::DELETE, "/api/v1/functions/errs/versions/2", None)
            .await,
        409,
        "CONFLICT",
    );

    // $LATEST is not a version to delete; neither is a non-number.
    cli_fails_with(
        &server,
        &["lambda", "version", "delete", "errs", "$LATEST"],
        "INVALID_INPUT",
    );
    let err = assert_api_error(
        &server
            .request(
                Method::DELETE,
                "/api/v1/functions/errs/versions/$LATEST",
                None,
            )
            .await,
        400,
        "INVALID_INPUT",
    );
    assert_eq!(err["field"], "version");
    assert_api_error(
        &server
            .request(Method::DELETE, "/api/v1/functions/errs/versions/abc", None)
            .await,
        400,
        "INVALID_INPUT",
    );

    // A deleted version is gone for good.
    deploy_constant(&server, "errs", "three", &[]);
    assert_eq!(publish(&server, "errs"), "3");
    assert_ran(&server, &invoke_raw(&server, "errs:3", "").await, "3").await;
    let out = cli_ok(&server, &["lambda", "version", "delete", "errs", "3"]);
    assert!(stdout(&out).contains("Deleted errs:3"), "{}", stdout(&out));
    assert_api_error(
        &invoke_raw(&server, "errs:3", "").await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    cli_fails_with(
        &server,
        &["lambda", "invoke", "errs:3"],
        "RESOURCE_NOT_FOUND",
    );
    let v3 = "/api/v1/functions/errs/versions/3";
    assert_api_error(
        &server.request(Method::GET, v3, None).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    assert_api_error(
        &server.request(Method::DELETE, v3, None).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    cli_fails_with(
        &server,
        &["lambda", "version", "get", "errs", "3"],
        "RESOURCE_NOT_FOUND",
    );

    // Unknown functions.
    for (method, path) in [
        (Method::GET, "/api/v1/functions/ghost/versions"),
        (Method::GET, "/api/v1/functions/ghost/versions/1"),
        (Method::GET, "/api/v1/functions/ghost/aliases"),
    ] {
        assert_api_error(
            &server.request(method, path, None).await,
            404,
            "FUNCTION_NOT_FOUND",
        );
    }
    assert_api_error(
        &server
            .request_json(Method::POST, "/api/v1/functions/ghost/versions", &json!({}))
            .await,
        404,
        "FUNCTION_NOT_FOUND",
    );
    assert_api_error(
        &server
            .request_json(
                Method::PUT,
                "/api/v1/functions/ghost/aliases/prod",
                &json!({"version": 1}),
            )
            .await,
        404,
        "FUNCTION_NOT_FOUND",
    );
    cli_fails_with(
        &server,
        &["lambda", "versions", "ghost"],
        "FUNCTION_NOT_FOUND",
    );
    cli_fails_with(
        &server,
        &["lambda", "publish-version", "ghost"],
        "FUNCTION_NOT_FOUND",
    );

    // Malformed bodies: 400 INVALID_INPUT, naming the field where there is one.
    let cases: [(Method, &str, &str, Option<&str>); 8] = [
        (Method::PUT, path, "not json", Some("body")),
        (Method::PUT, path, r#"{"version":"one"}"#, Some("version")),
        (Method::PUT, path, r#"{"version":1,"bogus":true}"#, None),
        (Method::PUT, path, "{}", None),
        (Method::POST, shift, r#"{"to":2}"#, None),
        (
            Method::POST,
            shift,
            r#"{"to":2,"weight":"ten"}"#,
            Some("weight"),
        ),
        (Method::POST, shift, "[", Some("body")),
        (
            Method::POST,
            "/api/v1/functions/errs/versions",
            r#"{"description":7}"#,
            Some("description"),
        ),
    ];
    for (method, path, body, field) in cases {
        let answer = server
            .request(
                method.clone(),
                path,
                Some(("application/json", Bytes::from(body))),
            )
            .await;
        let err = assert_api_error(&answer, 400, "INVALID_INPUT");
        if let Some(field) = field {
            assert_eq!(err["field"], field, "{method} {path} {body}: {err}");
        }
    }

    // None of the failures changed anything.
    let alias = server
        .client()
        .get_alias("errs", "prod")
        .await
        .expect("alias");
    assert_eq!(alias.alias.version, 1);
    assert_eq!(
        alias.alias.routing.map(|r| (r.version, r.weight)),
        Some((2, 0.1))
    );
    assert_api_error(
        &server
            .request(Method::GET, "/api/v1/functions/errs/aliases/beta", None)
            .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    let versions = server
        .client()
        .list_versions("errs")
        .await
        .expect("versions");
    let names: Vec<&str> = versions
        .versions
        .iter()
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(names, ["$LATEST", "1", "2"]);
}

#[tokio::test]
async fn versions_per_function_are_capped_at_100() {
    let server = Server::start().await;
    deploy_constant(&server, "many", "one", &[]);
    let function = "/api/v1/functions/many";
    let versions = "/api/v1/functions/many/versions";
    for i in 1..=100 {
        let patched = server
            .request_json(
                Method::PATCH,
                function,
                &json!({"environment": {"N": i.to_string()}}),
            )
            .await;
        assert_eq!(patched.status.as_u16(), 200, "{}", json(&patched));
        let published = server
            .request_json(Method::POST, versions, &json!({}))
            .await;
        assert_eq!(published.status.as_u16(), 201, "{}", json(&published));
        assert_eq!(json(&published)["version"], i.to_string());
    }
    server
        .request_json(
            Method::PATCH,
            function,
            &json!({"environment": {"N": "101"}}),
        )
        .await;
    let refused = server
        .request_json(Method::POST, versions, &json!({}))
        .await;
    let err = assert_api_error(&refused, 400, "LIMIT_EXCEEDED");
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("100")),
        "{err}"
    );
    cli_fails_with(
        &server,
        &["lambda", "publish-version", "many"],
        "LIMIT_EXCEEDED",
    );
    let listed = server
        .client()
        .list_versions("many")
        .await
        .expect("versions");
    assert_eq!(listed.versions.len(), 101, "$LATEST and 100 versions");

    // Deleting one makes room; numbers are never reused.
    cli_ok(&server, &["lambda", "version", "delete", "many", "1"]);
    assert_eq!(publish(&server, "many"), "101");
    let v = server
        .client()
        .get_version("many", "101")
        .await
        .expect("101");
    assert_eq!(
        v.config.environment.get("N").map(String::as_str),
        Some("101")
    );
    let a = invoke_raw(&server, "many:101", "").await;
    assert_ran(&server, &a, "101").await;
}

/// The audit entries with `action`.
fn entries<'a>(all: &'a [Value], action: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["action"] == action).collect()
}

#[tokio::test]
async fn every_change_is_audited_and_the_trail_is_read_only() {
    let server = Server::start().await;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let secret_value = "audit-secret-Wv3Qp8Zr";

    deploy_constant(&server, "aud", "one", &["--env", "COLOR=red"]);
    deploy_constant(&server, "aud", "one", &["--env", "COLOR=blue"]);
    assert_eq!(publish(&server, "aud"), "1");
    deploy_constant(&server, "aud", "two", &[]);
    assert_eq!(publish(&server, "aud"), "2");
    deploy_constant(&server, "other", "x", &[]);
    cli_ok(
        &server,
        &[
            "lambda",
            "alias",
            "set",
            "aud",
            "--alias",
            "live",
            "--version",
            "1",
        ],
    );
    cli_ok(
        &server,
        &[
            "lambda", "alias", "shift", "aud", "--alias", "live", "--to", "2", "--weight", "10",
        ],
    );
    cli_ok(
        &server,
        &["lambda", "alias", "delete", "aud", "--alias", "live"],
    );
    cli_ok(&server, &["lambda", "version", "delete", "aud", "1"]);
    for value in [secret_value, "audit-secret-rotated-Jk5"] {
        server
            .client()
            .set_secret("audit-pass", value.to_owned())
            .await
            .expect("set secret");
    }
    cli_ok(&server, &["lambda", "secret", "delete", "audit-pass"]);
    cli_ok(&server, &["lambda", "delete", "aud"]);

    let answer = server
        .request(Method::GET, "/api/v1/audit?limit=10000", None)
        .await;
    assert_eq!(answer.status.as_u16(), 200);
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    assert!(
        !text.contains("audit-secret"),
        "a secret value in the audit trail: {text}"
    );
    let all: Vec<Value> = json(&answer)["entries"]
        .as_array()
        .expect("entries")
        .clone();
    let now = started + 120_000;
    let mut last = 0;
    for e in &all {
        assert_eq!(e["actor"], "admin", "{e}");
        let at = e["at"].as_i64().expect("at");
        assert!((started - 1000..=now).contains(&at), "{e}");
        assert!(at >= last, "entries are oldest first");
        last = at;
        assert!(e["id"].as_str().is_some_and(|id| !id.is_empty()), "{e}");
    }

    // (action, target, has before, has after, how many)
    let expected = [
        ("function.create", "aud", false, true, 1),
        ("function.update", "aud", true, true, 2),
        ("version.publish", "aud:1", false, true, 1),
        ("version.delete", "aud:1", true, false, 1),
        ("alias.set", "aud:live", false, true, 1),
        ("alias.shift", "aud:live", true, true, 1),
        ("alias.delete", "aud:live", true, false, 1),
        ("function.delete", "aud", true, false, 1),
        ("secret.set", "secret audit-pass", false, true, 2),
        ("secret.delete", "secret audit-pass", true, false, 1),
    ];
    for (action, target, before, after, count) in expected {
        let found: Vec<&Value> = entries(&all, action)
            .into_iter()
            .filter(|e| e["target"] == target)
            .collect();
        assert_eq!(found.len(), count, "{action} on {target}: {found:?}");
        let e = found[0];
        assert_eq!(e["target"], target, "{e}");
        assert_eq!(!e["before"].is_null(), before, "{action} before: {e}");
        assert_eq!(!e["after"].is_null(), after, "{action} after: {e}");
        if action.starts_with("secret.") {
            assert!(e["function"].is_null(), "{e}");
        } else {
            assert_eq!(e["function"], "aud", "{e}");
        }
    }
    // The before/after say what changed.
    let updates = entries(&all, "function.update");
    let first_update = updates
        .iter()
        .find(|e| e["function"] == "aud")
        .expect("update of aud");
    assert_eq!(
        first_update["before"]["environment"]["COLOR"], "red",
        "{first_update}"
    );
    assert_eq!(first_update["after"]["environment"]["COLOR"], "blue");
    let shift = entries(&all, "alias.shift")[0];
    assert_eq!(shift["before"]["version"], 1, "{shift}");
    assert!(shift["before"]["routing"].is_null(), "{shift}");
    assert_eq!(shift["after"]["routing"]["version"], 2, "{shift}");
    assert_eq!(shift["after"]["routing"]["weight"], 0.1, "{shift}");
    let publish_entry = entries(&all, "version.publish")
        .into_iter()
        .find(|e| e["target"] == "aud:1")
        .expect("publish of aud:1");
    assert_eq!(
        publish_entry["after"]["config"]["environment"]["COLOR"],
        "blue"
    );
    let sets = entries(&all, "secret.set");
    assert_eq!(sets[0]["after"]["version"], 1);
    assert_eq!(sets[1]["before"]["version"], 1);
    assert_eq!(sets[1]["after"]["version"], 2);

    // --function filters, --since bounds.
    let out = cli_ok(
        &server,
        &["lambda", "audit", "--function", "aud", "-o", "json"],
    );
    let filtered: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let filtered = filtered["entries"].as_array().expect("entries");
    assert!(
        filtered.iter().all(|e| e["function"] == "aud"),
        "{filtered:?}"
    );
    assert_eq!(
        filtered.len(),
        all.iter().filter(|e| e["function"] == "aud").count()
    );
    let out = cli_ok(&server, &["lambda", "audit", "--function", "aud"]);
    let table = stdout(&out);
    assert!(
        table.contains("alias.shift") && table.contains("function.delete"),
        "{table}"
    );
    assert!(
        !table.contains("secret.set") && !table.contains("other"),
        "{table}"
    );
    let out = cli_ok(&server, &["lambda", "audit", "--since", "1h", "-o", "json"]);
    let recent: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(recent["entries"].as_array().map(Vec::len), Some(all.len()));
    let out = cli_ok(
        &server,
        &[
            "lambda",
            "audit",
            "--since",
            "2999-01-01T00:00:00Z",
            "-o",
            "json",
        ],
    );
    let future: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(future["entries"].as_array().map(Vec::len), Some(0));
    cli_fails_with(
        &server,
        &["lambda", "audit", "--since", "garbage"],
        "INVALID_INPUT",
    );
    assert_api_error(
        &server
            .request(Method::GET, "/api/v1/audit?since=garbage", None)
            .await,
        400,
        "INVALID_INPUT",
    );
    let limited = json(
        &server
            .request(Method::GET, "/api/v1/audit?limit=2", None)
            .await,
    );
    assert_eq!(
        limited["entries"].as_array().expect("entries")[..],
        all[all.len() - 2..],
        "limit keeps the newest"
    );

    // No way to change or remove entries.
    for method in [Method::DELETE, Method::POST, Method::PUT, Method::PATCH] {
        let answer = server
            .request(
                method.clone(),
                "/api/v1/audit",
                Some(("application/json", Bytes::from_static(b"{}"))),
            )
            .await;
        assert_api_error(&answer, 405, "METHOD_NOT_ALLOWED");
    }
    let id = all[0]["id"].as_str().expect("id");
    let answer = server
        .request(Method::DELETE, &format!("/api/v1/audit/{id}"), None)
        .await;
    assert!(
        matches!(answer.status.as_u16(), 404 | 405),
        "DELETE /api/v1/audit/{{id}}: {}",
        answer.status
    );
    let after = json(
        &server
            .request(Method::GET, "/api/v1/audit?limit=10000", None)
            .await,
    );
    assert_eq!(after["entries"].as_array().expect("entries")[..], all[..]);
}

#[tokio::test]
async fn functions_per_project_are_capped_at_1000() {
    let server = Server::start().await;
    let client = server.client();
    let zip = crate::util::zip(&[crate::util::Entry::File(
        "lambda_function.py",
        b"def lambda_handler(e, c):\n    return {}\n",
        0o644,
    )]);
    let code = client
        .upload_code(Bytes::from(zip), |_| {})
        .await
        .expect("upload");
    let create = |name: String| {
        json!({
            "name": name,
            "code_sha256": code.code.sha256,
            "runtime": "python3.11",
        })
    };
    for i in 0..1000 {
        let answer = server
            .request_json(Method::POST, "/api/v1/functions", &create(format!("f{i}")))
            .await;
        assert_eq!(
            answer.status.as_u16(),
            201,
            "function {i}: {}",
            json(&answer)
        );
    }
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/functions",
            &create("one-too-many".into()),
        )
        .await;
    assert_api_error(&answer, 400, "LIMIT_EXCEEDED");
    let names = server.function_names().await;
    assert_eq!(names.len(), 1000);
    assert!(!names.iter().any(|n| n == "one-too-many"));
    // Deleting one makes room again.
    let answer = server
        .request(Method::DELETE, "/api/v1/functions/f0", None)
        .await;
    assert_eq!(answer.status.as_u16(), 204);
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/functions",
            &create("one-too-many".into()),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 201, "{}", json(&answer));
}
