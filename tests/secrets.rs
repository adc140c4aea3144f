//! Secrets: set from stdin without echo, bound to functions as environment variables, masked
//! in logs, never returned by the API or the CLI, rotated for new instances, refused when
//! missing or still bound, and never stored in plaintext anywhere in the data dir. A server
//! with another master key is refused at start rather than leaking or mixing anything.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use holactl::client::{Client, Invoked};
use http::Method;
use serde_json::json;
use sha2::Digest;

use crate::util::{
    assert_api_error, assert_failure, assert_invoke_ok, assert_success, json, stderr, stdout,
    Server, BIN,
};

/// The secret's first value. Never printed, returned or stored in plaintext.
const VALUE: &str = "pw-Zq8Lk2vR9tXw-first";
/// The value after rotation.
const ROTATED: &str = "pw-Hn4Yc7Jm3Bq-rotated";

/// Prints the bound secret (the platform masks it in the log) and returns only its hash and
/// length.
const HANDLER: &str = r#"import hashlib
import os

INSTANCE = os.urandom(8).hex()


def lambda_handler(event, context):
    value = os.environ.get("DB_PASSWORD", "")
    print("the password is " + value, flush=True)
    return {
        "sha256": hashlib.sha256(value.encode()).hexdigest(),
        "len": len(value),
        "instance": INSTANCE,
    }
"#;

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// `secret set NAME` with `value` on stdin (plus the newline `echo` adds); asserts success and
/// that the value is not echoed.
fn set_secret(server: &Server, name: &str, value: &str) -> String {
    let out = server.cli_stdin(
        &["lambda", "secret", "set", name],
        format!("{value}\n").as_bytes(),
    );
    assert_success(&out, "secret set");
    assert_absent(&out.stdout, value, "secret set stdout");
    assert_absent(&out.stderr, value, "secret set stderr");
    stdout(&out)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn assert_absent(haystack: &[u8], value: &str, what: &str) {
    assert!(
        !contains(haystack, value),
        "the secret value appears in {what}: {}",
        String::from_utf8_lossy(haystack)
    );
}

/// Runs the CLI, asserts success and that neither secret value is in its output.
fn cli_clean(server: &Server, args: &[&str]) -> Output {
    let out = server.cli(args);
    assert_success(&out, &args.join(" "));
    for value in [VALUE, ROTATED] {
        assert_absent(&out.stdout, value, &format!("`{}` stdout", args.join(" ")));
        assert_absent(&out.stderr, value, &format!("`{}` stderr", args.join(" ")));
    }
    out
}

/// Regular files under `dir` (recursively, symlinks not followed) that contain `needle`, and
/// how many files were read.
fn files_containing(dir: &Path, needle: &str) -> (Vec<PathBuf>, usize) {
    let mut hits = Vec::new();
    let mut read = 0;
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.expect("walking the data dir");
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path())
            .unwrap_or_else(|e| panic!("reading {}: {e}", entry.path().display()));
        read += 1;
        if contains(&bytes, needle) {
            hits.push(entry.path().to_owned());
        }
    }
    (hits, read)
}

/// Invokes and checks the hash of the value the function saw.
async fn assert_sees(server: &Server, target: &str, value: &str) -> Invoked {
    let invoked = server.invoke(target, &json!({})).await;
    let body = assert_invoke_ok(&invoked);
    assert_eq!(body["sha256"], sha256_hex(value), "{target}: {body}");
    assert_eq!(body["len"], value.len(), "{body}");
    assert_absent(&invoked.answer.body, value, "the invoke answer");
    invoked
}

/// The log of an execution, through the API.
async fn execution_log(server: &Server, id: &str) -> String {
    let answer = server
        .request(Method::GET, &format!("/api/v1/executions/{id}/logs"), None)
        .await;
    json(&answer)["log"].as_str().expect("log").to_owned()
}

#[tokio::test]
async fn secrets_are_injected_masked_rotated_and_never_stored_in_plaintext() {
    let mut server = Server::start().await;
    let out = set_secret(&server, "db-pass", VALUE);
    assert!(
        out.contains("db-pass") && out.contains("version 1"),
        "{out}"
    );

    let dir = server.function_dir("vault", &[("lambda_function.py", HANDLER, false)]);
    let dir_arg = dir.to_str().expect("utf-8 path");
    cli_clean(
        &server,
        &[
            "lambda",
            "deploy",
            "vault",
            "--source",
            dir_arg,
            "--runtime",
            "python3.11",
            "--secret",
            "DB_PASSWORD=db-pass",
        ],
    );

    // The function gets the value; what it prints of it is masked in the log.
    let invoked = assert_sees(&server, "vault", VALUE).await;
    let id = invoked.execution_id().to_owned();
    let log = execution_log(&server, &id).await;
    assert!(log.contains("the password is ****"), "{log}");
    assert!(!log.contains(VALUE), "{log}");
    let record = server
        .request(Method::GET, &format!("/api/v1/executions/{id}"), None)
        .await;
    assert_absent(&record.body, VALUE, "the execution record");
    let out = cli_clean(&server, &["lambda", "logs", "vault"]);
    assert!(
        stdout(&out).contains("the password is ****"),
        "{}",
        stdout(&out)
    );
    let out = cli_clean(
        &server,
        &["lambda", "invoke", "vault", "--log-type", "tail"],
    );
    assert!(
        stderr(&out).contains("the password is ****"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&sha256_hex(VALUE)),
        "{}",
        stdout(&out)
    );

    // Listing secrets shows names and versions only.
    let listed = server.request(Method::GET, "/api/v1/secrets", None).await;
    assert_eq!(listed.status.as_u16(), 200);
    assert_absent(&listed.body, VALUE, "GET /api/v1/secrets");
    assert_eq!(
        json(&listed)["secrets"]
            .as_array()
            .expect("secrets")
            .iter()
            .map(|s| (s["name"].clone(), s["version"].clone()))
            .collect::<Vec<_>>(),
        [(json!("db-pass"), json!(1))]
    );
    let out = cli_clean(&server, &["lambda", "secret", "list"]);
    assert!(stdout(&out).contains("db-pass"), "{}", stdout(&out));
    let out = cli_clean(&server, &["lambda", "secret", "list", "-o", "json"]);
    assert!(stdout(&out).contains("db-pass"), "{}", stdout(&out));

    // The function's configuration shows the binding, not the value.
    let function = server
        .request(Method::GET, "/api/v1/functions/vault", None)
        .await;
    assert_absent(&function.body, VALUE, "GET /api/v1/functions/vault");
    let view = json(&function);
    assert_eq!(view["secrets"], json!({"DB_PASSWORD": "db-pass"}), "{view}");
    assert!(view["environment"].get("DB_PASSWORD").is_none(), "{view}");
    cli_clean(&server, &["lambda", "get", "vault"]);
    cli_clean(&server, &["lambda", "get", "vault", "-o", "json"]);
    let out = cli_clean(&server, &["lambda", "publish-version", "vault"]);
    assert!(stdout(&out).contains("vault:1"), "{}", stdout(&out));
    let version = server
        .request(Method::GET, "/api/v1/functions/vault/versions/1", None)
        .await;
    assert_absent(&version.body, VALUE, "GET …/versions/1");
    assert_eq!(
        json(&version)["config"]["secrets"],
        json!({"DB_PASSWORD": "db-pass"})
    );

    // Rotation: new instances see the new value, without redeploying the code.
    let out = set_secret(&server, "db-pass", ROTATED);
    assert!(out.contains("version 2"), "{out}");
    let patched = server
        .request_json(
            Method::PATCH,
            "/api/v1/functions/vault",
            &json!({"environment": {"ROTATION": "1"}}),
        )
        .await;
    assert_eq!(patched.status.as_u16(), 200, "{}", json(&patched));
    let rotated = assert_sees(&server, "vault", ROTATED).await;
    assert!(rotated.cold_start(), "a new instance after the update");
    let log = execution_log(&server, rotated.execution_id()).await;
    assert!(log.contains("the password is ****"), "{log}");
    assert!(!log.contains(ROTATED), "{log}");
    // A version snapshots the binding, not the value: version 1's first instance starts now
    // and reads the current value.
    let v1 = assert_sees(&server, "vault:1", ROTATED).await;
    assert!(v1.cold_start());
    assert_eq!(v1.answer.header("x-hola-executed-version"), Some("1"));

    // Binding a secret that does not exist.
    let out = server.cli([
        "lambda",
        "deploy",
        "vault",
        "--source",
        dir_arg,
        "--secret",
        "API_KEY=nope",
    ]);
    assert_failure(&out, "deploy binding a missing secret");
    assert!(
        stderr(&out).contains("INVALID_INPUT") && stderr(&out).contains("secrets.API_KEY"),
        "{}",
        stderr(&out)
    );
    let out = server.cli([
        "lambda",
        "deploy",
        "vault2",
        "--source",
        dir_arg,
        "--runtime",
        "python3.11",
        "--secret",
        "API_KEY=nope",
    ]);
    assert_failure(&out, "creating a function binding a missing secret");
    assert!(stderr(&out).contains("secrets.API_KEY"), "{}", stderr(&out));
    assert_eq!(server.function_names().await, ["vault"]);
    let err = assert_api_error(
        &server
            .request_json(
                Method::PATCH,
                "/api/v1/functions/vault",
                &json!({"secrets": {"X": "nope"}}),
            )
            .await,
        400,
        "INVALID_INPUT",
    );
    assert_eq!(err["field"], "secrets.X", "{err}");
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("nope")),
        "{err}"
    );
    // The failed changes left the binding alone.
    assert_sees(&server, "vault", ROTATED).await;

    // A bound secret cannot be deleted; an unbound one can, once.
    let out = server.cli(["lambda", "secret", "delete", "db-pass"]);
    assert_failure(&out, "deleting a bound secret");
    assert!(stderr(&out).contains("CONFLICT"), "{}", stderr(&out));
    let err = assert_api_error(
        &server
            .request(Method::DELETE, "/api/v1/secrets/db-pass", None)
            .await,
        409,
        "CONFLICT",
    );
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("vault")),
        "{err}"
    );
    set_secret(&server, "spare", "spare-value-1234");
    let out = cli_clean(&server, &["lambda", "secret", "delete", "spare"]);
    assert!(
        stdout(&out).contains("Deleted secret spare"),
        "{}",
        stdout(&out)
    );
    assert_api_error(
        &server
            .request(Method::DELETE, "/api/v1/secrets/spare", None)
            .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    let names: Vec<String> = server
        .client()
        .list_secrets()
        .await
        .expect("list")
        .secrets
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["db-pass"]);

    // The audit trail records the secret changes, never the values.
    let audit = server
        .request(Method::GET, "/api/v1/audit?limit=10000", None)
        .await;
    for value in [VALUE, ROTATED, "spare-value-1234"] {
        assert_absent(&audit.body, value, "the audit trail");
    }

    // Nothing under the data dir holds a value in plaintext: not the SQLite database, its WAL
    // and shared-memory files, nor any log. The binding's variable name is there (so the scan
    // does read the store).
    let data_dir = server.data_dir().to_owned();
    let (control, read) = files_containing(&data_dir, "DB_PASSWORD");
    assert!(
        !control.is_empty(),
        "the scan found no store file ({read} files read)"
    );
    for value in [VALUE, ROTATED, "spare-value-1234"] {
        let (hits, _) = files_containing(&data_dir, value);
        assert!(hits.is_empty(), "plaintext secret in {hits:?}");
    }
    assert!(!server.server_log().contains(VALUE) && !server.server_log().contains(ROTATED));

    // The same data dir after a stop: the store checkpointed, still no plaintext.
    let (status, _) = server.terminate();
    assert!(status.success(), "the server exited with {status}");
    for value in [VALUE, ROTATED] {
        let (hits, _) = files_containing(&data_dir, value);
        assert!(hits.is_empty(), "plaintext secret in {hits:?} after a stop");
    }

    // The key from the key file, given through HOLACTL_MASTER_KEY, decrypts as before.
    let key = std::fs::read_to_string(data_dir.join("master.key")).expect("master.key");
    let key = key.trim().to_owned();
    assert_eq!(key.len(), 64, "a 64-hex-character key file");
    {
        let again = ExtraServer::start(&data_dir, server.work_dir(), &key)
            .await
            .unwrap_or_else(|log| panic!("restart with the right key failed:\n{log}"));
        let invoked = again
            .client
            .invoke("vault", Bytes::from_static(b"{}"), false)
            .await
            .expect("invoke after a restart");
        assert_eq!(
            json(&invoked.answer)["sha256"],
            sha256_hex(ROTATED),
            "{}",
            String::from_utf8_lossy(&invoked.answer.body)
        );
    }

    // Another master key: the server refuses to start on this data dir, naming the problem,
    // rather than starting and failing (or mixing keys) later; nothing of the value comes out.
    let wrong = if key.starts_with('a') { "b" } else { "a" }.repeat(64);
    let refused = ExtraServer::start(&data_dir, server.work_dir(), &wrong).await;
    let log = refused
        .err()
        .expect("another master key must stop the start");
    assert!(log.contains("master key"), "{log}");
    assert!(!log.contains(VALUE) && !log.contains(ROTATED), "{log}");

    // A malformed key is refused at start.
    let refused = ExtraServer::start(&data_dir, server.work_dir(), "not-a-key").await;
    let log = refused
        .err()
        .expect("a malformed master key must stop the start");
    assert!(log.contains("HOLACTL_MASTER_KEY"), "{log}");
}

#[tokio::test]
async fn a_secret_bound_by_a_published_version_cannot_be_deleted() {
    let server = Server::start().await;
    set_secret(&server, "legacy-pass", VALUE);
    server.deploy(
        "legacy",
        &[("lambda_function.py", HANDLER, false)],
        &[
            "--runtime",
            "python3.11",
            "--secret",
            "DB_PASSWORD=legacy-pass",
        ],
    );
    let out = cli_clean(&server, &["lambda", "publish-version", "legacy"]);
    assert!(stdout(&out).contains("legacy:1"), "{}", stdout(&out));
    // $LATEST drops the binding; version 1 keeps it.
    let patched = server
        .request_json(
            Method::PATCH,
            "/api/v1/functions/legacy",
            &json!({"secrets": {}}),
        )
        .await;
    assert_eq!(patched.status.as_u16(), 200, "{}", json(&patched));
    let view = json(&patched);
    assert!(
        view["secrets"].as_object().is_none_or(|m| m.is_empty()),
        "{view}"
    );
    let deleted = server
        .request(Method::DELETE, "/api/v1/secrets/legacy-pass", None)
        .await;
    assert_eq!(
        deleted.status.as_u16(),
        409,
        "deleting secret legacy-pass while version legacy:1 binds it must be refused; \
         otherwise legacy:1 can no longer start an instance"
    );
    assert_api_error(&deleted, 409, "CONFLICT");
    assert_sees(&server, "legacy:1", VALUE).await;
}

/// Another `holactl lambda serve` on an existing data dir with `HOLACTL_MASTER_KEY` set;
/// stopped on drop.
struct ExtraServer {
    child: Child,
    endpoint: String,
    client: Client,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl ExtraServer {
    /// Starts it; `Err` carries its output when it exits or does not answer within 10 s.
    async fn start(data_dir: &Path, scratch: &Path, key: &str) -> Result<ExtraServer, String> {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let stdout_path = scratch.join(format!("extra-{n}.stdout"));
        let stderr_path = scratch.join(format!("extra-{n}.stderr"));
        let child = Command::new(BIN)
            .args(["lambda", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", scratch)
            .env("HOLACTL_LOG", "info")
            .env("HOLACTL_MASTER_KEY", key)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("starting holactl lambda serve");
        let token = std::fs::read_to_string(data_dir.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_owned();
        let mut server = ExtraServer {
            child,
            endpoint: String::new(),
            client: Client::new("http://127.0.0.1:1", None).expect("client"),
            stdout_path,
            stderr_path,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("exited with {status}\n{}", server.log()));
            }
            if server.endpoint.is_empty() {
                let out = std::fs::read_to_string(&server.stdout_path).unwrap_or_default();
                if let Some(url) = out
                    .lines()
                    .find_map(|l| l.split_once("serving on ").map(|(_, u)| u.trim()))
                {
                    server.endpoint = url.to_owned();
                    server.client =
                        Client::new(url, Some(token.clone())).map_err(|e| e.to_string())?;
                }
            }
            if !server.endpoint.is_empty() && server.client.health().await.is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!("no answer within 10 s\n{}", server.log()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn log(&self) -> String {
        let mut text = String::new();
        for path in [&self.stdout_path, &self.stderr_path] {
            if let Ok(mut f) = std::fs::File::open(path) {
                let _ = f.read_to_string(&mut text);
            }
        }
        text
    }
}

impl Drop for ExtraServer {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
