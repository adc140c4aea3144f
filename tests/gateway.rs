//! The HTTP gateway end to end: routes created with the CLI, called over HTTP with handlers
//! written for AWS (API Gateway HTTP API payload format 2.0), stages, CORS, API keys, JWTs,
//! throttling, and hostile requests.

use base64::Engine as _;
use bytes::Bytes;
use holactl::client::{Answer, Client};
use http::Method;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::util::{assert_failure, json, stderr, stdout, Server};

/// A Python handler written for AWS: `/echo…` answers the event, others exercise the response
/// shapes.
const PY_APP: &str = r#"
import base64, json, time

def lambda_handler(event, context):
    path = event.get("rawPath", "")
    if path.endswith("/plain"):
        return {"ok": True, "request_id": context.aws_request_id}
    if path.endswith("/string"):
        return "hola"
    if path.endswith("/boom"):
        raise RuntimeError("boom")
    if path.endswith("/slow"):
        time.sleep(5)
    if path.endswith("/malformed"):
        return {"statusCode": 200, "headers": {"bad header": "x"}, "body": ""}
    if path.endswith("/binary"):
        return {"statusCode": 200, "headers": {"content-type": "image/png"},
                "isBase64Encoded": True, "body": base64.b64encode(b"\x89PNG\x00\xff").decode()}
    if path.endswith("/cors"):
        return {"statusCode": 200, "headers": {"access-control-allow-origin": "*", "x-request-id": "r1"}, "body": "c"}
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-handler": "python"},
        "multiValueHeaders": {"x-multi": ["a", "b"]},
        "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
        "body": json.dumps({"event": event, "request_id": context.aws_request_id}),
    }
"#;

/// A Node.js handler written for AWS.
const NODE_APP: &str = r#"
export const handler = async (event, context) => ({
  statusCode: 200,
  headers: { 'content-type': 'text/plain' },
  body: `node ${event.requestContext.http.method} ${event.pathParameters?.name ?? '-'} ${context.functionName}`,
});
"#;

/// HS256 secret of the tests' authorizer.
const HS_SECRET: &str = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz";

async fn call(
    client: &Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Answer {
    let body = body.map(|b| {
        (
            "application/octet-stream",
            Full::new(Bytes::copy_from_slice(b))
                .map_err(|never| match never {})
                .boxed(),
        )
    });
    client
        .send(method.clone(), path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// An answer of the gateway's own: status and `{"message": …}`.
fn assert_message(a: &Answer, status: u16, message: &str) {
    let body: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
    assert_eq!(
        (a.status.as_u16(), body["message"].as_str()),
        (status, Some(message)),
        "{:?} {}",
        a.headers,
        String::from_utf8_lossy(&a.body)
    );
}

fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    server.assert_success(&out, &args.join(" "));
    stdout(&out)
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn hs_token(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .expect("signing")
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"iss": "https://issuer.test", "aud": "orders", "sub": "ana",
        "exp": now() + 300, "scope": "orders.read"});
    for (k, v) in extra.as_object().expect("object") {
        c[k] = v.clone();
    }
    c
}

fn testdata(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/engine/src/gateway/testdata")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn der(name: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(testdata(name).trim())
        .expect("base64")
}

#[tokio::test]
async fn routes_map_aws_events_and_responses() {
    let server = Server::start().await;
    server.deploy(
        "app",
        &[("lambda_function.py", PY_APP, false)],
        &["--runtime", "python3.11", "--timeout", "1"],
    );
    let anon = server.client_with_token(None);

    // `route create` prints the full URL; without --api the `default` API is made on demand.
    let out = cli_ok(
        &server,
        &[
            "lambda",
            "route",
            "create",
            "--method",
            "POST",
            "--path",
            "/hola",
            "--function",
            "app",
        ],
    );
    let url = format!("{}/gw/default/hola", server.endpoint());
    assert!(out.lines().any(|l| l.trim() == url), "{out}");
    for (method, path) in [
        ("ANY", "/echo/{proxy+}"),
        ("GET", "/users/{id}"),
        ("GET", "/users/me"),
        ("GET", "/plain"),
        ("GET", "/string"),
        ("GET", "/boom"),
        ("GET", "/slow"),
        ("GET", "/malformed"),
        ("GET", "/binary"),
    ] {
        cli_ok(
            &server,
            &[
                "lambda",
                "route",
                "create",
                "--method",
                method,
                "--path",
                path,
                "--function",
                "app",
            ],
        );
    }
    // The same shape (parameter names do not count) conflicts; bad input is refused.
    let out = server.cli([
        "lambda",
        "route",
        "create",
        "--method",
        "GET",
        "--path",
        "/users/{name}",
        "--function",
        "app",
    ]);
    assert_failure(&out, "conflicting route");
    assert!(stderr(&out).contains("CONFLICT"), "{}", stderr(&out));
    for (method, path, function) in [
        ("GET", "/a/../b", "app"),
        ("GET", "no-slash", "app"),
        ("TRACE", "/x", "app"),
        ("GET", "/{proxy+}/x", "app"),
        ("GET", "/x", "missing"),
    ] {
        let out = server.cli([
            "lambda",
            "route",
            "create",
            "--method",
            method,
            "--path",
            path,
            "--function",
            function,
        ]);
        assert_failure(&out, &format!("{method} {path} {function}"));
    }
    let routes = server
        .client()
        .list_routes("default")
        .await
        .expect("routes");
    assert_eq!(routes.routes.len(), 10, "nothing half-written: {routes:?}");

    // The event, and a structured answer.
    let a = call(
        &anon,
        Method::POST,
        "/gw/default/echo/a/b%20c?x=1&y=two&x=3",
        &[
            ("cookie", "s=1; t=2"),
            ("x-dup", "one"),
            ("x-dup", "two"),
            ("user-agent", "gateway-test"),
        ],
        Some(br#"{"name":"Mundo"}"#),
    )
    .await;
    assert_eq!(
        a.status.as_u16(),
        201,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.header("x-handler"), Some("python"));
    assert_eq!(a.header("x-multi"), Some("a,b"));
    let cookies: Vec<&str> = a
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(cookies, ["session=abc; Path=/; HttpOnly", "theme=dark"]);
    let out = json(&a);
    let e = &out["event"];
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "ANY /echo/{proxy+}");
    assert_eq!(e["rawPath"], "/echo/a/b%20c");
    assert_eq!(e["rawQueryString"], "x=1&y=two&x=3");
    assert_eq!(e["queryStringParameters"], json!({"x": "1,3", "y": "two"}));
    assert_eq!(e["pathParameters"], json!({"proxy": "a/b c"}));
    assert_eq!(e["cookies"], json!(["s=1", "t=2"]));
    assert_eq!(e["headers"]["x-dup"], "one,two");
    assert!(e["headers"].get("cookie").is_none());
    // Binary content types arrive base64-encoded.
    assert_eq!(e["isBase64Encoded"], true);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(e["body"].as_str().expect("body"))
            .expect("base64"),
        br#"{"name":"Mundo"}"#
    );
    let rc = &e["requestContext"];
    assert_eq!(rc["http"]["method"], "POST");
    assert_eq!(rc["http"]["path"], "/echo/a/b%20c");
    assert_eq!(rc["http"]["userAgent"], "gateway-test");
    assert_eq!(rc["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(rc["stage"], "$default");
    assert!(rc["timeEpoch"]
        .as_i64()
        .is_some_and(|t| t > 1_700_000_000_000));
    // The request id is the execution id and the function's aws_request_id.
    let id = a
        .header("x-hola-execution-id")
        .expect("execution id")
        .to_owned();
    assert_eq!(rc["requestId"], id.as_str());
    assert_eq!(out["request_id"], id.as_str());
    assert_eq!(a.header("apigw-requestid"), Some(id.as_str()));
    let record = server.client().get_execution(&id).await.expect("execution");
    assert_eq!(record.trigger, holactl_types::Trigger::Http);

    // A JSON body arrives as text; precedence: the static route wins over the parameter.
    let a = call(&anon, Method::GET, "/gw/default/users/me", &[], None).await;
    assert_eq!(json(&a)["event"]["routeKey"], "GET /users/me");
    let a = call(&anon, Method::GET, "/gw/default/users/42", &[], None).await;
    assert_eq!(json(&a)["event"]["pathParameters"], json!({"id": "42"}));
    let text = call(
        &anon,
        Method::POST,
        "/gw/default/echo/x",
        &[("content-type", "application/json")],
        None,
    )
    .await;
    assert!(json(&text)["event"].get("body").is_none());

    // Plain values become 200 application/json.
    let a = call(&anon, Method::GET, "/gw/default/plain", &[], None).await;
    assert_eq!(a.status.as_u16(), 200);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(json(&a)["ok"], true);
    let a = call(&anon, Method::GET, "/gw/default/string", &[], None).await;
    assert_eq!(&a.body[..], b"\"hola\"");
    // Binary answers are decoded.
    let a = call(&anon, Method::GET, "/gw/default/binary", &[], None).await;
    assert_eq!(
        (a.status.as_u16(), &a.body[..]),
        (200, &b"\x89PNG\x00\xff"[..])
    );
    assert_eq!(a.header("content-type"), Some("image/png"));
    // Failures, as API Gateway answers them.
    assert_message(
        &call(&anon, Method::GET, "/gw/default/boom", &[], None).await,
        502,
        "Internal Server Error",
    );
    assert_message(
        &call(&anon, Method::GET, "/gw/default/malformed", &[], None).await,
        502,
        "Internal Server Error",
    );
    assert_message(
        &call(&anon, Method::GET, "/gw/default/slow", &[], None).await,
        503,
        "Service Unavailable",
    );
    assert_message(
        &call(&anon, Method::GET, "/gw/default/nope", &[], None).await,
        404,
        "Not Found",
    );
    assert_message(
        &call(&anon, Method::DELETE, "/gw/default/plain", &[], None).await,
        404,
        "Not Found",
    );
    assert_message(
        &call(&anon, Method::GET, "/gw/nope/plain", &[], None).await,
        404,
        "Not Found",
    );

    // Stages: a named stage serves the snapshot of its last deployment.
    let out = cli_ok(&server, &["lambda", "api", "deploy", "--stage", "prod"]);
    assert!(out.contains("/gw/default/prod"), "{out}");
    cli_ok(
        &server,
        &[
            "lambda",
            "route",
            "create",
            "--method",
            "GET",
            "--path",
            "/new",
            "--function",
            "app",
            "--api",
            "default",
        ],
    );
    assert_eq!(
        call(&anon, Method::GET, "/gw/default/new", &[], None)
            .await
            .status
            .as_u16(),
        201
    );
    assert_eq!(
        call(&anon, Method::GET, "/gw/default/prod/new", &[], None)
            .await
            .status
            .as_u16(),
        404
    );
    let a = call(&anon, Method::GET, "/gw/default/prod/users/7", &[], None).await;
    let e = &json(&a)["event"];
    assert_eq!(
        (e["requestContext"]["stage"].as_str(), e["rawPath"].as_str()),
        (Some("prod"), Some("/prod/users/7"))
    );
    cli_ok(
        &server,
        &["lambda", "api", "deploy", "default", "--stage", "prod"],
    );
    assert_eq!(
        call(&anon, Method::GET, "/gw/default/prod/new", &[], None)
            .await
            .status
            .as_u16(),
        201
    );
    // Deleting a route takes it off $default at once, not off the deployed stage.
    cli_ok(&server, &["lambda", "route", "delete", "GET /new"]);
    assert_eq!(
        call(&anon, Method::GET, "/gw/default/new", &[], None)
            .await
            .status
            .as_u16(),
        404
    );
    assert_eq!(
        call(&anon, Method::GET, "/gw/default/prod/new", &[], None)
            .await
            .status
            .as_u16(),
        201
    );
    cli_ok(
        &server,
        &["lambda", "api", "delete-stage", "--stage", "prod"],
    );
    assert_eq!(
        call(&anon, Method::GET, "/gw/default/prod/new", &[], None)
            .await
            .status
            .as_u16(),
        404
    );

    // A Node.js handler written for AWS, on a published version.
    server.deploy(
        "node-app",
        &[("index.mjs", NODE_APP, false)],
        &["--runtime", "nodejs20.x", "--handler", "index.handler"],
    );
    cli_ok(&server, &["lambda", "publish-version", "node-app"]);
    cli_ok(&server, &["lambda", "api", "create", "shop"]);
    let out = cli_ok(
        &server,
        &[
            "lambda",
            "route",
            "create",
            "--api",
            "shop",
            "--method",
            "ANY",
            "--path",
            "/hello/{name}",
            "--function",
            "node-app",
            "--qualifier",
            "1",
        ],
    );
    assert!(out.contains("/gw/shop/hello/{name}"), "{out}");
    let a = call(&anon, Method::PUT, "/gw/shop/hello/ana", &[], None).await;
    assert_eq!(
        (
            a.status.as_u16(),
            String::from_utf8_lossy(&a.body).into_owned()
        ),
        (200, "node PUT ana node-app".to_owned())
    );
    let record = server
        .client()
        .get_execution(a.header("x-hola-execution-id").expect("id"))
        .await
        .expect("execution");
    assert_eq!(record.version, "1");

    // Metrics count gateway requests by route and status.
    let text = server.client().metrics().await.expect("metrics");
    assert!(
        text.lines().any(|l| l.starts_with(
            "holactl_gateway_requests_total{api=\"default\",route=\"GET /boom\",status=\"502\"}"
        )),
        "{text}"
    );
    // Deleting the API answers 404 at once.
    cli_ok(&server, &["lambda", "api", "delete", "shop"]);
    assert_eq!(
        call(&anon, Method::PUT, "/gw/shop/hello/ana", &[], None)
            .await
            .status
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn api_keys_jwts_and_throttling_guard_routes() {
    let server = Server::start().await;
    server.deploy(
        "app",
        &[("lambda_function.py", PY_APP, false)],
        &["--runtime", "python3.11"],
    );
    let anon = server.client_with_token(None);
    let route = |args: &[&str]| {
        let mut all = vec!["lambda", "route", "create", "--function", "app"];
        all.extend_from_slice(args);
        cli_ok(&server, &all);
    };

    // API keys: missing 401, unknown 403, good 2xx, revoked 403.
    route(&["--method", "GET", "--path", "/keyed", "--auth", "api-key"]);
    let key = cli_ok(&server, &["lambda", "api-key", "create", "ci"])
        .trim()
        .to_owned();
    assert!(key.starts_with("hk_"), "{key}");
    assert_message(
        &call(&anon, Method::GET, "/gw/default/keyed", &[], None).await,
        401,
        "Unauthorized",
    );
    assert_message(
        &call(
            &anon,
            Method::GET,
            "/gw/default/keyed",
            &[("x-api-key", "hk_000000")],
            None,
        )
        .await,
        403,
        "Forbidden",
    );
    let a = call(
        &anon,
        Method::GET,
        "/gw/default/keyed",
        &[("x-api-key", &key)],
        None,
    )
    .await;
    assert_eq!(a.status.as_u16(), 201);
    let keys = server
        .client()
        .list_api_keys("default")
        .await
        .expect("keys");
    let listed = serde_json::to_string(&keys).expect("json");
    assert!(!listed.contains(&key), "the key is never listed");
    let id = keys.keys[0].id.clone();
    cli_ok(&server, &["lambda", "api-key", "revoke", &id]);
    assert_message(
        &call(
            &anon,
            Method::GET,
            "/gw/default/keyed",
            &[("x-api-key", &key)],
            None,
        )
        .await,
        403,
        "Forbidden",
    );

    // Per-key throttling: a burst of 2, then 429 with Retry-After.
    let slow_key = cli_ok(
        &server,
        &[
            "lambda", "api-key", "create", "slow", "--rate", "0.01", "--burst", "2",
        ],
    )
    .trim()
    .to_owned();
    for _ in 0..2 {
        let a = call(
            &anon,
            Method::GET,
            "/gw/default/keyed",
            &[("x-api-key", &slow_key)],
            None,
        )
        .await;
        assert_eq!(a.status.as_u16(), 201);
    }
    let a = call(
        &anon,
        Method::GET,
        "/gw/default/keyed",
        &[("x-api-key", &slow_key)],
        None,
    )
    .await;
    assert_message(&a, 429, "Too Many Requests");
    assert!(a
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));
    // Per-route throttling.
    route(&[
        "--method", "GET", "--path", "/limited", "--rate", "0.01", "--burst", "1",
    ]);
    assert_eq!(
        call(&anon, Method::GET, "/gw/default/limited", &[], None)
            .await
            .status
            .as_u16(),
        201
    );
    assert_message(
        &call(&anon, Method::GET, "/gw/default/limited", &[], None).await,
        429,
        "Too Many Requests",
    );

    // JWT, HS256: the secret comes from a file, never the command line.
    let secret_file = server.work_dir().join("hs.secret");
    std::fs::write(&secret_file, format!("{HS_SECRET}\n")).expect("secret file");
    cli_ok(
        &server,
        &[
            "lambda",
            "authorizer",
            "create",
            "hs",
            "--issuer",
            "https://issuer.test",
            "--audience",
            "orders",
            "--algorithm",
            "HS256",
            "--hs256-secret-from-file",
            secret_file.to_str().expect("path"),
        ],
    );
    let listed = cli_ok(&server, &["lambda", "authorizer", "list", "-o", "json"]);
    assert!(!listed.contains(HS_SECRET), "{listed}");
    route(&[
        "--method",
        "GET",
        "--path",
        "/orders",
        "--auth",
        "jwt",
        "--authorizer",
        "hs",
    ]);
    route(&[
        "--method",
        "POST",
        "--path",
        "/orders",
        "--auth",
        "jwt",
        "--authorizer",
        "hs",
        "--scope",
        "orders.write",
    ]);
    let good = hs_token(&claims(json!({})));
    let a = call(
        &anon,
        Method::GET,
        "/gw/default/orders",
        &[("authorization", &format!("Bearer {good}"))],
        None,
    )
    .await;
    assert_eq!(
        a.status.as_u16(),
        201,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let jwt = &json(&a)["event"]["requestContext"]["authorizer"]["jwt"];
    assert_eq!(jwt["claims"]["sub"], "ana");
    assert_eq!(jwt["claims"]["iss"], "https://issuer.test");
    assert_eq!(jwt["scopes"], json!(["orders.read"]));
    // Without "Bearer " too, as API Gateway accepts.
    let a = call(
        &anon,
        Method::GET,
        "/gw/default/orders",
        &[("authorization", &good)],
        None,
    )
    .await;
    assert_eq!(a.status.as_u16(), 201);

    let before = server
        .client()
        .list_executions(Some("app"), 100)
        .await
        .expect("list")
        .executions
        .len();
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(b"not-the-secret-not-the-secret-xx"),
    )
    .expect("forged");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&claims(json!({"sub": "root"}))),
        parts[2]
    );
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(json!({})))
    );
    let none_signed = format!("{}.{}.{}", b64(&json!({"alg": "none"})), parts[1], parts[2]);
    for (what, token) in [
        ("expired", hs_token(&claims(json!({"exp": now() - 60})))),
        (
            "not yet valid",
            hs_token(&claims(json!({"nbf": now() + 600}))),
        ),
        (
            "wrong audience",
            hs_token(&claims(json!({"aud": "billing"}))),
        ),
        (
            "wrong issuer",
            hs_token(&claims(json!({"iss": "https://evil.test"}))),
        ),
        ("forged", forged),
        ("tampered", tampered),
        ("alg none", none),
        ("alg none, signature kept", none_signed),
        ("garbage", "a.b.c".to_owned()),
    ] {
        let a = call(
            &anon,
            Method::GET,
            "/gw/default/orders",
            &[("authorization", &format!("Bearer {token}"))],
            None,
        )
        .await;
        assert_eq!(
            a.status.as_u16(),
            401,
            "{what}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_message(&a, 401, "Unauthorized");
    }
    assert_message(
        &call(&anon, Method::GET, "/gw/default/orders", &[], None).await,
        401,
        "Unauthorized",
    );
    // Valid but without the route's scope: 403.
    let a = call(
        &anon,
        Method::POST,
        "/gw/default/orders",
        &[("authorization", &format!("Bearer {good}"))],
        None,
    )
    .await;
    assert_message(&a, 403, "Forbidden");
    let writer = hs_token(&claims(json!({"scope": "orders.read orders.write"})));
    let a = call(
        &anon,
        Method::POST,
        "/gw/default/orders",
        &[("authorization", &format!("Bearer {writer}"))],
        None,
    )
    .await;
    assert_eq!(a.status.as_u16(), 201);
    // No refused request ran the function.
    let after = server
        .client()
        .list_executions(Some("app"), 100)
        .await
        .expect("list")
        .executions
        .len();
    assert_eq!(after, before + 1, "only the scoped request ran");

    // RS256 and ES256 with JWKS files.
    let jwks_dir = server.work_dir().join("jwks");
    std::fs::create_dir_all(&jwks_dir).expect("dir");
    for (name, alg, file, jwks, kid, key) in [
        (
            "rs",
            "RS256",
            "rsa.json",
            "rsa_jwks.json",
            "rsa-test-1",
            EncodingKey::from_rsa_der(&der("rsa_private.der.b64")),
        ),
        (
            "es",
            "ES256",
            "ec.json",
            "ec_jwks.json",
            "ec-test-1",
            EncodingKey::from_ec_der(&der("ec_private.der.b64")),
        ),
    ] {
        let path = jwks_dir.join(file);
        std::fs::write(&path, testdata(jwks)).expect("jwks");
        cli_ok(
            &server,
            &[
                "lambda",
                "authorizer",
                "create",
                name,
                "--issuer",
                "https://issuer.test",
                "--audience",
                "orders",
                "--algorithm",
                alg,
                "--jwks-file",
                path.to_str().expect("path"),
            ],
        );
        let route_path = format!("/{name}");
        route(&[
            "--method",
            "GET",
            "--path",
            &route_path,
            "--auth",
            "jwt",
            "--authorizer",
            name,
        ]);
        let mut header = Header::new(if alg == "RS256" {
            Algorithm::RS256
        } else {
            Algorithm::ES256
        });
        header.kid = Some(kid.to_owned());
        let token = encode(&header, &claims(json!({})), &key).expect("sign");
        let url = format!("/gw/default{route_path}");
        let a = call(
            &anon,
            Method::GET,
            &url,
            &[("authorization", &format!("Bearer {token}"))],
            None,
        )
        .await;
        assert_eq!(
            a.status.as_u16(),
            201,
            "{alg}: {}",
            String::from_utf8_lossy(&a.body)
        );
        // An HS256 token is refused by an authorizer pinned to an asymmetric algorithm.
        let a = call(
            &anon,
            Method::GET,
            &url,
            &[("authorization", &format!("Bearer {good}"))],
            None,
        )
        .await;
        assert_message(&a, 401, "Unauthorized");
    }
    // An authorizer in use cannot be deleted; a missing JWKS file is refused at creation.
    assert_failure(
        &server.cli(["lambda", "authorizer", "delete", "hs"]),
        "authorizer in use",
    );
    assert_failure(
        &server.cli([
            "lambda",
            "authorizer",
            "create",
            "x",
            "--issuer",
            "i",
            "--audience",
            "a",
            "--algorithm",
            "RS256",
            "--jwks-file",
            "/nonexistent/jwks.json",
        ]),
        "missing jwks",
    );
    let text = server.client().metrics().await.expect("metrics");
    assert!(
        text.contains(
            r#"holactl_gateway_auth_failures_total{api="default",reason="jwt_expired"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"holactl_gateway_auth_failures_total{api="default",reason="api_key_invalid"} 2"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn cors_preflights_and_hostile_requests() {
    let server = Server::builder()
        .arg("--gateway-listen")
        .arg("127.0.0.1:0")
        .start()
        .await;
    server.deploy(
        "app",
        &[("lambda_function.py", PY_APP, false)],
        &["--runtime", "python3.11"],
    );
    let anon = server.client_with_token(None);
    // The separate listener serves the `default` API from `/`; route create prints that URL.
    let log = server.server_log();
    let gw = log
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("gateway:")
                .map(str::trim)
                .filter(|u| u.ends_with("(API default)"))
        })
        .and_then(|u| u.split_whitespace().next())
        .expect("gateway listener in the banner")
        .trim_end_matches('/')
        .to_owned();
    let out = cli_ok(
        &server,
        &[
            "lambda",
            "route",
            "create",
            "--method",
            "GET",
            "--path",
            "/cors",
            "--function",
            "app",
        ],
    );
    assert!(
        out.lines().any(|l| l.trim() == format!("{gw}/cors")),
        "{out}"
    );
    cli_ok(
        &server,
        &[
            "lambda",
            "route",
            "create",
            "--method",
            "ANY",
            "--path",
            "/files/{proxy+}",
            "--function",
            "app",
        ],
    );
    cli_ok(
        &server,
        &[
            "lambda",
            "route",
            "create",
            "--method",
            "GET",
            "--path",
            "/admin",
            "--function",
            "app",
            "--auth",
            "api-key",
        ],
    );
    let direct = Client::new(&gw, None).expect("client");
    let a = call(&direct, Method::GET, "/cors", &[], None).await;
    assert_eq!(a.status.as_u16(), 200);

    // Without CORS configured, an OPTIONS request is routed like any other.
    let pre = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "GET"),
    ];
    assert_message(
        &call(&anon, Method::OPTIONS, "/gw/default/cors", &pre, None).await,
        404,
        "Not Found",
    );
    // Bad configurations are refused whole.
    assert_failure(
        &server.cli([
            "lambda",
            "api",
            "cors",
            "--allow-origin",
            "*",
            "--allow-credentials",
        ]),
        "* with credentials",
    );
    assert_failure(
        &server.cli(["lambda", "api", "cors", "--allow-origin", "app.example.com"]),
        "no scheme",
    );
    assert!(server
        .client()
        .get_api("default")
        .await
        .expect("api")
        .cors
        .is_none());
    cli_ok(
        &server,
        &[
            "lambda",
            "api",
            "cors",
            "--allow-origin",
            "https://app.example.com",
            "--allow-method",
            "GET",
            "--allow-method",
            "POST",
            "--allow-header",
            "content-type",
            "--allow-header",
            "x-api-key",
            "--expose-header",
            "x-request-id",
            "--max-age",
            "600",
            "--allow-credentials",
        ],
    );
    // A preflight is answered by the gateway, even for a route that needs a key.
    let a = call(
        &anon,
        Method::OPTIONS,
        "/gw/default/admin",
        &[
            pre[0],
            pre[1],
            ("access-control-request-headers", "X-Api-Key"),
        ],
        None,
    )
    .await;
    assert_eq!(a.status.as_u16(), 204);
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(a.header("access-control-allow-methods"), Some("GET,POST"));
    assert_eq!(
        a.header("access-control-allow-headers"),
        Some("content-type,x-api-key")
    );
    assert_eq!(a.header("access-control-max-age"), Some("600"));
    assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    // Edge cases: the browser gets no CORS headers, so it refuses the actual request.
    for (what, headers) in [
        (
            "another origin",
            vec![
                ("origin", "https://evil.example.com"),
                ("access-control-request-method", "GET"),
            ],
        ),
        (
            "a look-alike origin",
            vec![
                ("origin", "https://app.example.com.evil.com"),
                ("access-control-request-method", "GET"),
            ],
        ),
        (
            "the null origin",
            vec![("origin", "null"), ("access-control-request-method", "GET")],
        ),
        (
            "a method not allowed",
            vec![pre[0], ("access-control-request-method", "DELETE")],
        ),
        (
            "a header not allowed",
            vec![
                pre[0],
                pre[1],
                ("access-control-request-headers", "x-secret"),
            ],
        ),
    ] {
        let a = call(&anon, Method::OPTIONS, "/gw/default/cors", &headers, None).await;
        assert_eq!(a.status.as_u16(), 204, "{what}");
        assert!(
            a.header("access-control-allow-origin").is_none(),
            "{what}: {:?}",
            a.headers
        );
    }
    // The actual answer carries the API's CORS headers, not the function's `*`.
    let a = call(&anon, Method::GET, "/gw/default/cors", &[pre[0]], None).await;
    assert_eq!(a.status.as_u16(), 200);
    let origins: Vec<_> = a
        .headers
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(origins, ["https://app.example.com"]);
    assert_eq!(
        a.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    let a = call(
        &anon,
        Method::GET,
        "/gw/default/cors",
        &[("origin", "https://evil.example.com")],
        None,
    )
    .await;
    assert!(a.header("access-control-allow-origin").is_none());

    // Path traversal is refused, never normalized into another route.
    for path in [
        "/gw/default/files/../admin",
        "/gw/default/files/%2e%2e/admin",
        "/gw/default/files/%2E%2e/admin",
        "/gw/default/files/.%2e/admin",
        "/gw/default/files/a/%2fadmin",
        "/gw/default/files/%5c..%5cadmin",
        "/gw/default/files/%00",
        "/gw/default/files/%zz",
    ] {
        let a = call(&anon, Method::GET, path, &[], None).await;
        assert_message(&a, 400, "Bad Request");
    }
    for path in [
        "/gw/default//admin",
        "/gw/default/files//x",
        "/gw/default/admin/",
        "/gw//default/admin",
    ] {
        let a = call(&anon, Method::GET, path, &[], None).await;
        assert_message(&a, 404, "Not Found");
    }
    let a = call(&direct, Method::GET, "/files/../admin", &[], None).await;
    assert_message(&a, 400, "Bad Request");
    // Oversized headers.
    let big = "x".repeat(11 * 1024);
    let a = call(
        &anon,
        Method::GET,
        "/gw/default/cors",
        &[("x-big", &big)],
        None,
    )
    .await;
    assert_message(&a, 431, "Request Header Fields Too Large");
    // The platform token is no gateway credential, and gateway keys are no platform token.
    let a = call(
        &server.client(),
        Method::GET,
        "/gw/default/admin",
        &[],
        None,
    )
    .await;
    assert_message(&a, 401, "Unauthorized");
    let key = cli_ok(&server, &["lambda", "api-key", "create", "k"])
        .trim()
        .to_owned();
    let keyed = server.client_with_token(Some(&key));
    let a = call(&keyed, Method::GET, "/api/v1/functions", &[], None).await;
    assert_eq!(a.status.as_u16(), 401);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_cors_and_request_id() {
    let server = Server::start().await;
    server.deploy(
        "app",
        &[("lambda_function.py", PY_APP, false)],
        &["--runtime", "python3.11"],
    );
    let anon = server.client_with_token(None);
    cli_ok(
        &server,
        &[
            "lambda",
            "api",
            "create",
            "uploads",
            "--allow-origin",
            "https://app.example.com",
            "--allow-method",
            "POST",
        ],
    );
    cli_ok(
        &server,
        &[
            "lambda",
            "route",
            "create",
            "--api",
            "uploads",
            "--method",
            "POST",
            "--path",
            "/upload",
            "--function",
            "app",
        ],
    );
    // Over the sync payload limit: refused after routing, before the function runs, and
    // answered like any routed request (CORS headers, request id, counted for the route).
    let big = vec![b'x'; holactl_types::limits::MAX_SYNC_PAYLOAD_BYTES + 1024];
    let a = call(
        &anon,
        Method::POST,
        "/gw/uploads/upload",
        &[("origin", "https://app.example.com")],
        Some(&big),
    )
    .await;
    assert_message(&a, 413, "Request Entity Too Large");
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://app.example.com"),
        "{:?}",
        a.headers
    );
    let request_id = a.header("apigw-requestid").unwrap_or_default();
    assert!(!request_id.is_empty(), "{:?}", a.headers);
    assert_eq!(a.header("x-hola-execution-id"), Some(request_id));
    let executions = server
        .client()
        .list_executions(Some("app"), 10)
        .await
        .expect("executions");
    assert!(executions.executions.is_empty(), "nothing ran");
    let text = server.client().metrics().await.expect("metrics");
    assert!(
        text.contains(
            r#"holactl_gateway_requests_total{api="uploads",route="POST /upload",status="413"} 1"#
        ),
        "{text}"
    );
}
