//! Signed webhooks: `/hooks/{id}` needs no platform token; GitHub, Stripe and hmac-sha256
//! signatures (computed here) start asynchronous invocations whose event carries the original
//! body; bad, missing and expired signatures answer 401 and are counted; replays answer 409;
//! unknown ids 404 like any unknown route; oversized bodies 413; the secret is never returned,
//! printed or stored in plaintext.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use holactl::client::{Answer, Client};
use http::Method;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use crate::util::{assert_api_error, assert_success, json, stdout, Server};

const GITHUB_SECRET: &str = "gh-e2e-Tq7Wm2Xc9Lp4";
const STRIPE_SECRET: &str = "whsec_e2e_Vb3Nk8Rz5Hd1";
const HOLA_SECRET: &str = "hola-e2e-Jy6Fs1Gq0Ke3";
const ROTATED_SECRET: &str = "hola-e2e-rotated-Pw2Dm7Ua4";

/// Returns the event it got (and prints it, as a handler parsing it would start with).
const HANDLER: &str = r#"import json


def lambda_handler(event, context):
    print("EVENT " + json.dumps(event), flush=True)
    return event
"#;

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    for p in parts {
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// `POST path` with headers and a body, without any token.
async fn post(client: &Client, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let body = Full::new(Bytes::copy_from_slice(body))
        .map_err(|never| match never {})
        .boxed();
    client
        .send(
            Method::POST,
            path,
            headers,
            Some(("application/json", body)),
        )
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// `webhook create NAME --function hook --scheme SCHEME --secret-from-stdin EXTRA…`; returns
/// the webhook's path.
fn create(server: &Server, name: &str, scheme: &str, secret: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "lambda",
        "webhook",
        "create",
        name,
        "--function",
        "hook",
        "--scheme",
        scheme,
        "--secret-from-stdin",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = server.cli_stdin(&args, format!("{secret}\n").as_bytes());
    assert_success(&out, &format!("webhook create {name}"));
    assert!(!stdout(&out).contains(secret), "the secret is echoed");
    let view: Value = serde_json::from_str(&stdout(&out)).expect("create prints JSON");
    assert_eq!(view["name"], name);
    assert_eq!(view["scheme"], scheme);
    view["path"].as_str().expect("path").to_owned()
}

/// Asserts a 202 and waits for the execution; returns its record.
async fn accepted_and_run(server: &Server, answer: &Answer) -> Value {
    let body = json(answer);
    assert_eq!(
        answer.status.as_u16(),
        202,
        "{body}\n{}",
        server.server_log()
    );
    let id = body["execution_id"]
        .as_str()
        .expect("execution_id")
        .to_owned();
    assert_eq!(answer.header("x-hola-execution-id"), Some(id.as_str()));
    let client = server.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let record = client.get_execution(&id).await.expect("get execution");
        if record.status.is_final() {
            let record = serde_json::to_value(&record).expect("record");
            assert_eq!(record["status"], "complete", "{record}");
            assert_eq!(record["trigger"], "webhook", "{record}");
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "execution {id} did not finish: {record:?}\n{}",
            server.server_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn failures(metrics: &str, webhook: &str, reason: &str) -> u64 {
    let prefix = format!(
        "holactl_webhook_signature_failures_total{{webhook=\"{webhook}\",reason=\"{reason}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

#[tokio::test]
async fn signed_deliveries_invoke_the_function_and_bad_ones_are_refused() {
    let server = Server::start().await;
    server.deploy(
        "hook",
        &[("lambda_function.py", HANDLER, false)],
        &["--runtime", "python3.11"],
    );
    let anonymous = server.client_with_token(None);

    // GitHub: the signature covers the body; the delivery id names the delivery.
    let gh = create(&server, "gh", "github", GITHUB_SECRET, &[]);
    let body = br#"{"action":"opened","number":7,"text":"h\u00e9 \"quoted\""}"#;
    let sig = format!("sha256={}", hmac_hex(GITHUB_SECRET, &[body]));
    let headers = [
        ("x-hub-signature-256", sig.as_str()),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("x-github-event", "pull_request"),
        ("user-agent", "GitHub-Hookshot/e2e"),
    ];
    let answer = post(&anonymous, &gh, &headers, body).await;
    let record = accepted_and_run(&server, &answer).await;
    let event = &record["result"];
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["rawPath"], gh.as_str());
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(
        event["body"].as_str().map(str::as_bytes),
        Some(&body[..]),
        "the function sees the exact body: {event}"
    );
    assert_eq!(event["headers"]["x-github-event"], "pull_request");
    assert_eq!(event["headers"]["x-hub-signature-256"], sig.as_str());
    assert!(event["headers"].get("authorization").is_none());
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(
        event["requestContext"]["http"]["userAgent"],
        "GitHub-Hookshot/e2e"
    );
    assert!(event["requestContext"]["timeEpoch"].as_i64().is_some());
    assert_eq!(event["webhook"], json!({"name": "gh", "scheme": "github"}));
    let logs = server
        .client()
        .execution_logs(record["id"].as_str().unwrap())
        .await
        .expect("logs");
    assert!(
        serde_json::to_string(&logs).unwrap().contains("EVENT "),
        "the function printed the event: {logs:?}"
    );

    // The same delivery again: a replay, refused without running anything.
    let replay = post(&anonymous, &gh, &headers, body).await;
    assert_api_error(&replay, 409, "CONFLICT");

    // Bad and missing signatures: 401, counted per webhook and reason.
    let forged = format!("sha256={}", hmac_hex("guess", &[body]));
    let answer = post(
        &anonymous,
        &gh,
        &[
            ("x-hub-signature-256", forged.as_str()),
            ("x-github-delivery", "forged-1"),
        ],
        body,
    )
    .await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");
    let tampered = post(&anonymous, &gh, &headers, br#"{"action":"closed"}"#).await;
    assert_api_error(&tampered, 401, "UNAUTHORIZED");
    let answer = post(&anonymous, &gh, &[], body).await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");
    let metrics = server.client().metrics().await.expect("metrics");
    assert_eq!(failures(&metrics, "gh", "mismatch"), 2, "{metrics}");
    assert_eq!(failures(&metrics, "gh", "missing"), 1, "{metrics}");

    // Stripe: t and one or more v1 entries (a rolled secret signs twice).
    let st = create(
        &server,
        "st",
        "stripe",
        STRIPE_SECRET,
        &["--tolerance", "120"],
    );
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    let t = now_s().to_string();
    let v1 = hmac_hex(STRIPE_SECRET, &[t.as_bytes(), b".", body]);
    let old = hmac_hex("whsec_old", &[t.as_bytes(), b".", body]);
    let header = format!("t={t},v1={old},v1={v1},v0=ignored");
    let answer = post(&anonymous, &st, &[("stripe-signature", &header)], body).await;
    let record = accepted_and_run(&server, &answer).await;
    assert_eq!(
        record["result"]["body"].as_str().map(str::as_bytes),
        Some(&body[..])
    );
    assert_eq!(record["result"]["webhook"]["scheme"], "stripe");
    // Replayed inside the tolerance: refused, even with the entries reordered.
    let reordered = format!("v1={v1},t={t}");
    let replay = post(&anonymous, &st, &[("stripe-signature", &reordered)], body).await;
    assert_api_error(&replay, 409, "CONFLICT");
    // Signed too long ago: refused whatever the signature.
    let t_old = (now_s() - 121).to_string();
    let v1_old = hmac_hex(STRIPE_SECRET, &[t_old.as_bytes(), b".", body]);
    let answer = post(
        &anonymous,
        &st,
        &[("stripe-signature", &format!("t={t_old},v1={v1_old}"))],
        body,
    )
    .await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");
    let answer = post(
        &anonymous,
        &st,
        &[("stripe-signature", &format!("t={t},v1={old}"))],
        body,
    )
    .await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");
    let metrics = server.client().metrics().await.expect("metrics");
    assert_eq!(failures(&metrics, "st", "expired"), 1, "{metrics}");
    assert_eq!(failures(&metrics, "st", "mismatch"), 1, "{metrics}");

    // hmac-sha256: X-Hola-Signature over "<timestamp>.<body>" and X-Hola-Timestamp; a body
    // that is not UTF-8 reaches the function base64-encoded.
    let hola = create(&server, "hola", "hmac-sha256", HOLA_SECRET, &[]);
    let body: &[u8] = b"\x89PNG\r\n\x1a\n\x00\xffbinary";
    let t = now_s().to_string();
    let sig = format!(
        "sha256={}",
        hmac_hex(HOLA_SECRET, &[t.as_bytes(), b".", body])
    );
    let headers = [
        ("x-hola-signature", sig.as_str()),
        ("x-hola-timestamp", t.as_str()),
    ];
    let answer = post(&anonymous, &hola, &headers, body).await;
    let record = accepted_and_run(&server, &answer).await;
    assert_eq!(record["result"]["isBase64Encoded"], true);
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(record["result"]["body"].as_str().expect("body"))
        .expect("base64");
    assert_eq!(decoded, body);
    let replay = post(&anonymous, &hola, &headers, body).await;
    assert_api_error(&replay, 409, "CONFLICT");
    let answer = post(&anonymous, &hola, &headers[..1], body).await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");
    let metrics = server.client().metrics().await.expect("metrics");
    assert_eq!(failures(&metrics, "hola", "missing"), 1, "{metrics}");
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn webhooks_are_managed_without_exposing_their_secret() {
    let server = Server::start().await;
    server.deploy(
        "hook",
        &[("lambda_function.py", HANDLER, false)],
        &["--runtime", "python3.11"],
    );
    let anonymous = server.client_with_token(None);
    let path = create(
        &server,
        "hola",
        "hmac-sha256",
        HOLA_SECRET,
        &["--tolerance", "60"],
    );
    assert!(path.starts_with("/hooks/"), "{path}");

    // Management needs the token; the hook itself does not.
    let answer = crate::util::send(&anonymous, Method::GET, "/api/v1/webhooks", None).await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");

    let out = server.cli(["lambda", "webhook", "list"]);
    assert_success(&out, "webhook list");
    assert!(stdout(&out).contains("hola") && stdout(&out).contains(&path));
    let out = server.cli(["lambda", "webhook", "get", "hola"]);
    assert_success(&out, "webhook get");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{}{path}", server.endpoint())),
        "{text}"
    );
    assert!(text.contains("60 s"), "{text}");
    let view = server.client().get_webhook("hola").await.expect("get");
    assert_eq!((view.function.as_str(), view.tolerance_s), ("hook", 60));

    // Duplicate names, unknown functions and bad schemes are refused.
    let out = server.cli_stdin(
        &[
            "lambda",
            "webhook",
            "create",
            "hola",
            "--function",
            "hook",
            "--scheme",
            "github",
            "--secret-from-stdin",
        ],
        b"x\n",
    );
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("CONFLICT"));
    let out = server.cli_stdin(
        &[
            "lambda",
            "webhook",
            "create",
            "x",
            "--function",
            "nope",
            "--scheme",
            "github",
            "--secret-from-stdin",
        ],
        b"x\n",
    );
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("FUNCTION_NOT_FOUND")
    );
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/webhooks",
            &json!({"name": "y", "function": "hook", "scheme": "sha1", "secret": "s"}),
        )
        .await;
    assert_api_error(&answer, 400, "INVALID_INPUT");

    // An unknown id answers exactly like an unknown route.
    let unknown = post(
        &anonymous,
        "/hooks/0123456789abcdef0123456789abcdef",
        &[],
        b"{}",
    )
    .await;
    let route = post(&anonymous, "/no/such/route", &[], b"{}").await;
    let a = assert_api_error(&unknown, 404, "NOT_FOUND");
    let b = assert_api_error(&route, 404, "NOT_FOUND");
    assert_eq!(a["message"], b["message"]);
    let answer = post(&anonymous, "/hooks/not-an-id", &[], b"{}").await;
    assert_api_error(&answer, 404, "NOT_FOUND");

    // Over the async event limit: 413 before any signature check.
    let big = vec![b'a'; 256 * 1024 + 1];
    let answer = post(&anonymous, &path, &[], &big).await;
    assert_api_error(&answer, 413, "PAYLOAD_TOO_LARGE");

    // Rotation: the old secret stops working, the new one works.
    let out = server.cli_stdin(
        &[
            "lambda",
            "webhook",
            "rotate-secret",
            "hola",
            "--secret-from-stdin",
        ],
        format!("{ROTATED_SECRET}\n").as_bytes(),
    );
    assert_success(&out, "webhook rotate-secret");
    assert!(stdout(&out).contains("version 2"), "{}", stdout(&out));
    let body = br#"{"ping":true}"#;
    let t = now_s().to_string();
    let sign = |secret: &str| format!("sha256={}", hmac_hex(secret, &[t.as_bytes(), b".", body]));
    let old_sig = sign(HOLA_SECRET);
    let answer = post(
        &anonymous,
        &path,
        &[("x-hola-signature", &old_sig), ("x-hola-timestamp", &t)],
        body,
    )
    .await;
    assert_api_error(&answer, 401, "UNAUTHORIZED");
    let new_sig = sign(ROTATED_SECRET);
    let answer = post(
        &anonymous,
        &path,
        &[("x-hola-signature", &new_sig), ("x-hola-timestamp", &t)],
        body,
    )
    .await;
    let record = accepted_and_run(&server, &answer).await;
    assert_eq!(record["result"]["body"], r#"{"ping":true}"#);

    // Audited, without the secret.
    let audit = server.client().audit(None, None, 100).await.expect("audit");
    let audit = serde_json::to_string(&audit).unwrap();
    for action in ["webhook.create", "webhook.rotate_secret"] {
        assert!(audit.contains(action), "{action} not audited: {audit}");
    }

    // The secret appears in no answer, no output and no file of the data dir.
    let answers = [
        serde_json::to_string(&server.client().list_webhooks().await.unwrap()).unwrap(),
        serde_json::to_string(&server.client().get_webhook("hola").await.unwrap()).unwrap(),
        audit,
        server.server_log(),
    ];
    for secret in [HOLA_SECRET, ROTATED_SECRET] {
        for text in &answers {
            assert!(!text.contains(secret), "secret leaked: {text}");
        }
        for file in files(server.data_dir()) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "secret in plaintext in {}",
                file.display()
            );
        }
    }

    // Deleted: the URL answers 404 at once.
    let out = server.cli(["lambda", "webhook", "delete", "hola"]);
    assert_success(&out, "webhook delete");
    let answer = post(
        &anonymous,
        &path,
        &[("x-hola-signature", &new_sig), ("x-hola-timestamp", &t)],
        body,
    )
    .await;
    assert_api_error(&answer, 404, "NOT_FOUND");
    let out = server.cli(["lambda", "webhook", "get", "hola"]);
    assert!(!out.status.success());
    let audit = server.client().audit(None, None, 100).await.expect("audit");
    assert!(serde_json::to_string(&audit)
        .unwrap()
        .contains("webhook.delete"));
}
