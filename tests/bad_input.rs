//! Bad input: each refusal has its stable code and HTTP status, and leaves nothing
//! half-written behind (no function, no unpacked package).

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::util::{assert_api_error, deploy_python_probe, invoked_json, json, zip, Entry, Server};

const MIB: usize = 1024 * 1024;

/// What is under `<data-dir>/code/` (unpacked packages and leftovers).
fn code_dir_entries(server: &Server) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.data_dir().join("code"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Uploads `package` and expects `400 INVALID_INPUT` with nothing left under `code/`; returns
/// the error message.
async fn assert_package_refused(server: &Server, what: &str, package: Vec<u8>) -> String {
    let before = code_dir_entries(server);
    let answer = server
        .request(
            Method::POST,
            "/api/v1/code",
            Some(("application/zip", Bytes::from(package))),
        )
        .await;
    let error = assert_api_error(&answer, 400, "INVALID_INPUT");
    assert_eq!(error["field"], "code", "{what}: {error}");
    assert_eq!(
        code_dir_entries(server),
        before,
        "{what}: a refused package left files under code/"
    );
    error["message"].as_str().unwrap_or_default().to_owned()
}

/// Uploads a valid Python package and returns its sha256.
async fn upload_python(server: &Server) -> String {
    let package = zip(&[Entry::File(
        "lambda_function.py",
        b"def lambda_handler(event, context):\n    return event\n",
        0o644,
    )]);
    server
        .client()
        .upload_code(Bytes::from(package), |_| {})
        .await
        .expect("upload")
        .code
        .sha256
}

#[tokio::test]
async fn invalid_function_definitions_are_refused_whole() {
    let server = Server::start().await;
    let sha = upload_python(&server).await;
    let ok = json!({"name": "keep", "code_sha256": sha, "runtime": "python3.11"});
    let created = server
        .request_json(Method::POST, "/api/v1/functions", &ok)
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", json(&created));
    let functions_before = server.function_names().await;
    assert_eq!(functions_before, ["keep"]);

    let with = |patch: Value| {
        let mut req = json!({"name": "newfn", "code_sha256": sha, "runtime": "python3.11"});
        for (k, v) in patch.as_object().expect("object") {
            if v.is_null() {
                req.as_object_mut().unwrap().remove(k);
            } else {
                req[k] = v.clone();
            }
        }
        req
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("memory 128", with(json!({"memory_mb": 128})), "memory_mb"),
        (
            "memory 10240",
            with(json!({"memory_mb": 10240})),
            "memory_mb",
        ),
        ("timeout 901", with(json!({"timeout_s": 901})), "timeout_s"),
        ("timeout 0", with(json!({"timeout_s": 0})), "timeout_s"),
        ("name with a space", with(json!({"name": "a b"})), "name"),
        ("empty name", with(json!({"name": ""})), "name"),
        (
            "unknown runtime",
            with(json!({"runtime": "cobol85"})),
            "runtime",
        ),
        ("missing runtime", with(json!({"runtime": null})), "runtime"),
        (
            "reserved environment variable",
            with(json!({"environment": {"AWS_REGION": "x"}})),
            "environment.AWS_REGION",
        ),
        ("bad handler", with(json!({"handler": "nodot"})), "handler"),
        (
            "unknown code",
            with(json!({"code_sha256": "0".repeat(64)})),
            "code_sha256",
        ),
        (
            "memory as text",
            with(json!({"memory_mb": "big"})),
            "memory_mb",
        ),
    ];
    for (what, body, field) in cases {
        let answer = server
            .request_json(Method::POST, "/api/v1/functions", &body)
            .await;
        let error = assert_api_error(&answer, 400, "INVALID_INPUT");
        assert_eq!(error["field"], field, "{what}: {error}");
    }

    for (what, raw) in [
        ("malformed JSON", &b"{not json"[..]),
        ("empty body", b""),
        ("a JSON array", b"[1, 2]"),
    ] {
        let answer = server
            .request(
                Method::POST,
                "/api/v1/functions",
                Some(("application/json", Bytes::from_static(raw))),
            )
            .await;
        let error = assert_api_error(&answer, 400, "INVALID_INPUT");
        assert!(error["field"].is_string(), "{what}: {error}");
    }
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/functions",
            &with(json!({"surprise": true})),
        )
        .await;
    let error = assert_api_error(&answer, 400, "INVALID_INPUT");
    assert!(
        error["message"].as_str().unwrap().contains("surprise"),
        "unknown fields are named: {error}"
    );

    // An existing name.
    let answer = server
        .request_json(Method::POST, "/api/v1/functions", &ok)
        .await;
    assert_api_error(&answer, 409, "CONFLICT");

    // An invalid update changes nothing.
    let answer = server
        .request_json(
            Method::PATCH,
            "/api/v1/functions/keep",
            &json!({"memory_mb": 128, "timeout_s": 60}),
        )
        .await;
    let error = assert_api_error(&answer, 400, "INVALID_INPUT");
    assert_eq!(error["field"], "memory_mb");
    let view = server.client().get_function("keep").await.expect("get");
    assert_eq!(
        (view.config.memory_mb, view.config.timeout_s),
        (512, 30),
        "a refused update was half-applied"
    );
    let answer = server
        .request_json(
            Method::PATCH,
            "/api/v1/functions/nope",
            &json!({"memory_mb": 1024}),
        )
        .await;
    assert_api_error(&answer, 404, "FUNCTION_NOT_FOUND");

    assert_eq!(server.function_names().await, functions_before);
    let health = server.client().health().await.expect("health");
    assert_eq!(health.functions, 1);
}

#[tokio::test]
async fn provided_runtime_needs_a_bootstrap() {
    let server = Server::start().await;
    let sha = upload_python(&server).await;
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/functions",
            &json!({"name": "nobootstrap", "code_sha256": sha, "runtime": "provided"}),
        )
        .await;
    let error = assert_api_error(&answer, 400, "INVALID_INPUT");
    assert!(
        error["message"].as_str().unwrap().contains("bootstrap"),
        "{error}"
    );
    // A bootstrap that is not executable does not count.
    let package = zip(&[Entry::File("bootstrap", b"#!/bin/sh\n", 0o644)]);
    let sha = server
        .client()
        .upload_code(Bytes::from(package), |_| {})
        .await
        .expect("upload")
        .code
        .sha256;
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/functions",
            &json!({"name": "nobootstrap", "code_sha256": sha, "runtime": "provided"}),
        )
        .await;
    assert_api_error(&answer, 400, "INVALID_INPUT");
    assert!(server.function_names().await.is_empty());

    // The CLI says the same.
    let dir = server.function_dir(
        "nobootstrap",
        &[("function.sh", "handler() { :; }\n", false)],
    );
    let out = server.cli([
        "lambda".as_ref(),
        "deploy".as_ref(),
        "nobootstrap".as_ref(),
        "--source".as_ref(),
        dir.as_os_str(),
        "--runtime".as_ref(),
        "provided".as_ref(),
    ]);
    crate::util::assert_failure(&out, "deploy provided without bootstrap");
    assert!(crate::util::stderr(&out).contains("INVALID_INPUT"));
    assert!(server.function_names().await.is_empty());
}

#[tokio::test]
async fn not_found_errors() {
    let server = Server::start().await;
    let answer = server
        .request_json(Method::POST, "/api/v1/functions/ghost/invoke", &json!({}))
        .await;
    assert_api_error(&answer, 404, "FUNCTION_NOT_FOUND");
    let err = server
        .client()
        .invoke("ghost", Bytes::from_static(b"{}"), false)
        .await
        .expect_err("unknown function");
    assert_eq!(err.code(), Some("FUNCTION_NOT_FOUND"));
    for path in ["/api/v1/functions/ghost"] {
        let answer = server.request(Method::GET, path, None).await;
        assert_api_error(&answer, 404, "FUNCTION_NOT_FOUND");
        let answer = server.request(Method::DELETE, path, None).await;
        assert_api_error(&answer, 404, "FUNCTION_NOT_FOUND");
    }
    let answer = server
        .request_json(
            Method::POST,
            "/api/v1/executions",
            &json!({"function": "ghost", "payload": {}}),
        )
        .await;
    assert_api_error(&answer, 404, "FUNCTION_NOT_FOUND");

    for path in [
        "/api/v1/executions/00000000-0000-4000-8000-000000000000",
        "/api/v1/executions/00000000-0000-4000-8000-000000000000/logs",
        "/api/v1/executions/not-an-id",
    ] {
        let answer = server.request(Method::GET, path, None).await;
        assert_api_error(&answer, 404, "EXECUTION_NOT_FOUND");
    }

    for path in ["/api/v1/nope", "/nope", "/api/v2/functions", "/"] {
        let answer = server.request(Method::GET, path, None).await;
        assert_api_error(&answer, 404, "NOT_FOUND");
    }
    let answer = server
        .request(Method::DELETE, "/api/v1/executions", None)
        .await;
    assert_api_error(&answer, 405, "METHOD_NOT_ALLOWED");

    // The CLI names the codes too.
    let out = server.cli(["lambda", "invoke", "ghost"]);
    crate::util::assert_failure(&out, "invoke ghost");
    assert!(crate::util::stderr(&out).contains("FUNCTION_NOT_FOUND"));
}

#[tokio::test]
async fn oversized_payloads() {
    let server = Server::start().await;
    deploy_python_probe(&server, "sizes", &[]);

    // Request over 6 MB: refused before anything runs.
    let mut big = b"{\"pad\":\"".to_vec();
    big.resize(6 * MIB + 1024, b'p');
    big.extend_from_slice(b"\"}");
    let answer = server
        .request(
            Method::POST,
            "/api/v1/functions/sizes/invoke",
            Some(("application/json", Bytes::from(big))),
        )
        .await;
    assert_api_error(&answer, 413, "PAYLOAD_TOO_LARGE");
    let executions = server
        .client()
        .list_executions(Some("sizes"), 10)
        .await
        .expect("executions");
    assert!(executions.executions.is_empty(), "nothing ran");

    // Just under the limit is fine.
    let mut ok = b"{\"pad\":\"".to_vec();
    ok.resize(5 * MIB, b'p');
    ok.extend_from_slice(b"\"}");
    let invoked = server
        .client()
        .invoke("sizes", Bytes::from(ok), false)
        .await
        .expect("invoke");
    assert_eq!(invoked.error_code(), None);

    // Response over 6 MB.
    let invoked = server
        .invoke("sizes", &json!({"action": "big", "bytes": 7 * MIB}))
        .await;
    let a = &invoked.answer;
    assert_eq!(a.status.as_u16(), 413);
    assert_eq!(invoked.error_code(), Some("PAYLOAD_TOO_LARGE"));
    let body = invoked_json(&invoked);
    assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge", "{body}");
    let record = server
        .client()
        .get_execution(invoked.execution_id())
        .await
        .expect("execution");
    assert_eq!(
        record.error.map(|e| e.code.as_str()),
        Some("PAYLOAD_TOO_LARGE")
    );
    let out = server.cli([
        "lambda",
        "invoke",
        "sizes",
        "--payload",
        &json!({"action": "big", "bytes": 7 * MIB}).to_string(),
    ]);
    crate::util::assert_failure(&out, "invoke with a too-large response");
    assert!(crate::util::stderr(&out).contains("PAYLOAD_TOO_LARGE"));
}

/// A zip whose single entry is `size` zeros, streamed in (it compresses ~1000:1).
fn zeros_zip(size: usize) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file("zeros.bin", opts).expect("zip entry");
    let chunk = vec![0u8; MIB];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        w.write_all(&chunk[..n]).expect("zip write");
        left -= n;
    }
    w.finish().expect("zip finish").into_inner()
}

/// [`zeros_zip`] of 260 MiB, cached under the target dir: streaming it through an unoptimized
/// deflate takes ~20 s, so it is built once and reused.
fn zip_bomb() -> Vec<u8> {
    const SIZE: usize = 260 * MIB;
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zip-bomb-260MiB.zip");
    let is_bomb = |zip: &[u8]| {
        zip::ZipArchive::new(std::io::Cursor::new(zip))
            .ok()
            .and_then(|mut a| a.by_index_raw(0).ok().map(|e| e.size()))
            == Some(SIZE as u64)
    };
    if let Ok(cached) = std::fs::read(&path) {
        if is_bomb(&cached) {
            return cached;
        }
    }
    let bomb = zeros_zip(SIZE);
    assert!(is_bomb(&bomb));
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, &bomb).expect("caching the zip bomb");
    std::fs::rename(&tmp, &path).expect("caching the zip bomb");
    bomb
}

/// Rewrites every uncompressed-size field of a one-entry zip to `size` (a lying header).
fn lie_about_size(mut zip: Vec<u8>, size: u32) -> Vec<u8> {
    let patch = |zip: &mut Vec<u8>, sig: &[u8; 4], offset: usize| {
        let at = zip
            .windows(4)
            .position(|w| w == sig)
            .expect("zip header signature");
        zip[at + offset..at + offset + 4].copy_from_slice(&size.to_le_bytes());
    };
    patch(&mut zip, b"PK\x03\x04", 22); // local file header
    patch(&mut zip, b"PK\x01\x02", 24); // central directory
    zip
}

#[tokio::test]
async fn hostile_packages_are_refused() {
    let server = Server::start().await;
    // A valid upload first, so code/ is not empty and "unchanged" means something.
    upload_python(&server).await;
    assert_eq!(code_dir_entries(&server).len(), 1);

    let ok: &[u8] = b"def lambda_handler(e, c):\n    return 1\n";
    assert_package_refused(
        &server,
        "zip-slip",
        zip(&[
            Entry::File("lambda_function.py", ok, 0o644),
            Entry::File("../evil.py", b"x", 0o644),
        ]),
    )
    .await;
    assert_package_refused(
        &server,
        "nested zip-slip",
        zip(&[Entry::File("lib/../../evil.py", b"x", 0o644)]),
    )
    .await;
    assert_package_refused(
        &server,
        "absolute path",
        zip(&[
            Entry::File("lambda_function.py", ok, 0o644),
            Entry::File("/tmp/holactl-e2e-evil", b"x", 0o644),
        ]),
    )
    .await;
    assert!(!Path::new("/tmp/holactl-e2e-evil").exists());
    assert_package_refused(
        &server,
        "symlink to /etc/passwd",
        zip(&[
            Entry::File("lambda_function.py", ok, 0o644),
            Entry::Symlink("passwd", "/etc/passwd"),
        ]),
    )
    .await;
    assert_package_refused(
        &server,
        "relative symlink out of the package",
        zip(&[Entry::Symlink("lib/passwd", "../../../../../etc/passwd")]),
    )
    .await;
    assert_package_refused(
        &server,
        "duplicate entries",
        zip(&[
            Entry::File("a.py", b"1", 0o644),
            Entry::File("./a.py", b"2", 0o644),
        ]),
    )
    .await;

    let bomb = zip_bomb();
    assert!(
        bomb.len() < MIB,
        "the bomb compresses well: {} bytes",
        bomb.len()
    );
    let message =
        assert_package_refused(&server, "zip bomb (>250 MB unpacked)", bomb.clone()).await;
    assert!(
        message.contains("more than"),
        "refused for its size: {message}"
    );
    // The header claims 1000 bytes: caught while unpacking, not by trusting the header.
    assert_package_refused(
        &server,
        "zip bomb with a lying header",
        lie_about_size(bomb, 1000),
    )
    .await;

    assert_package_refused(&server, "not a zip", b"this is not a zip file".to_vec()).await;
    let mut truncated = zip(&[Entry::File("lambda_function.py", ok, 0o644)]);
    truncated.truncate(truncated.len() / 2);
    assert_package_refused(&server, "truncated zip", truncated).await;

    let answer = server
        .request(
            Method::POST,
            "/api/v1/code",
            Some(("application/zip", Bytes::new())),
        )
        .await;
    assert_api_error(&answer, 400, "INVALID_INPUT");
    assert_eq!(code_dir_entries(&server).len(), 1);
}
