//! AWS's own Python runtime interface client (awslambdaric) as a `provided` bootstrap: the
//! Runtime API is close enough to Lambda's that the official client runs unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::util::{assert_invoke_ok, fixture, invoked_json, write_files, Server};

/// Installs awslambdaric for Python 3.11 once into a cache under the target dir, reused across
/// runs. Panics (the test fails) when no pip can install it.
fn awslambdaric_dir() -> PathBuf {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("awslambdaric-py311");
    let done = cache.join(".installed");
    if done.is_file() {
        return cache;
    }
    // Install into a private staging dir and rename it into place, so an interrupted or
    // concurrent run never leaves a half-installed cache behind.
    let staging = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("awslambdaric-py311.staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let attempts: &[&[&str]] = &[
        &["pip3.11"],
        &["python3.11", "-m", "pip"],
        &["/usr/bin/python3.11", "-m", "pip"],
    ];
    let mut failures = Vec::new();
    for base in attempts {
        let out = Command::new(base[0])
            .args(&base[1..])
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-warn-script-location",
                "--target",
            ])
            .arg(&staging)
            .arg("awslambdaric")
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .output();
        match out {
            Ok(out) if out.status.success() && staging.join("awslambdaric").is_dir() => {
                std::fs::write(staging.join(".installed"), base.join(" ")).expect("marker");
                let _ = std::fs::remove_dir_all(&cache);
                if std::fs::rename(&staging, &cache).is_err() && !done.is_file() {
                    panic!("cannot move {} to {}", staging.display(), cache.display());
                }
                let _ = std::fs::remove_dir_all(&staging);
                return cache;
            }
            Ok(out) => failures.push(format!(
                "{}: {}\n{}",
                base.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => failures.push(format!("{}: {e}", base.join(" "))),
        }
        let _ = std::fs::remove_dir_all(&staging);
    }
    panic!(
        "could not install awslambdaric with pip for Python 3.11 (PyPI must be reachable):\n{}",
        failures.join("\n")
    );
}

/// Copies a directory tree (files, dirs, symlinks), keeping modes.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            copy_tree(&src, &dst);
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).expect("readlink");
            std::os::unix::fs::symlink(target, &dst).expect("symlink");
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

#[tokio::test]
async fn awslambdaric_runs_as_a_provided_bootstrap() {
    assert!(
        Path::new("/usr/bin/python3.11").is_file(),
        "this test needs /usr/bin/python3.11"
    );
    let ric = awslambdaric_dir();
    let server = Server::start().await;
    let dir = server.work_dir().join("ric-function");
    copy_tree(&ric, &dir);
    let _ = std::fs::remove_file(dir.join(".installed"));
    write_files(
        &dir,
        &[
            (
                "lambda_function.py",
                &fixture("awslambdaric/lambda_function.py"),
                false,
            ),
            ("bootstrap", &fixture("awslambdaric/bootstrap"), true),
        ],
    );
    server.deploy_dir("ric", &dir, &["--runtime", "provided"]);

    let first = server.invoke("ric", &json!({"name": "Mundo"})).await;
    let body1 = assert_invoke_ok(&first);
    assert!(first.cold_start());
    assert_eq!(body1["greeting"], "Hola, Mundo!", "{body1}");
    assert_eq!(body1["request_id"], first.execution_id());
    assert_eq!(body1["function_name"], "ric");

    let second = server.invoke("ric", &json!({"name": "Tierra"})).await;
    let body2 = assert_invoke_ok(&second);
    assert!(!second.cold_start(), "the awslambdaric instance is reused");
    assert_eq!(body2["greeting"], "Hola, Tierra!");
    assert_eq!(body2["pid"], body1["pid"]);
    assert_eq!(body2["request_id"], second.execution_id());

    let log = server
        .client()
        .execution_logs(second.execution_id())
        .await
        .expect("logs")
        .log;
    assert!(log.contains("awslambdaric greeting Tierra"), "{log}");

    let failed = server.invoke("ric", &json!({"fail": true})).await;
    assert_eq!(failed.error_code(), Some("FUNCTION_ERROR"));
    assert_eq!(
        failed.answer.header("x-hola-function-error"),
        Some("Unhandled")
    );
    let body = invoked_json(&failed);
    assert_eq!(body["errorType"], "RuntimeError", "{body}");
    assert_eq!(body["errorMessage"], "kaboom from awslambdaric", "{body}");
    assert!(
        body["stackTrace"].as_array().is_some_and(|t| !t.is_empty()),
        "awslambdaric sends its stack trace: {body}"
    );
    let record = server
        .client()
        .get_execution(failed.execution_id())
        .await
        .expect("execution");
    assert_eq!(record.status.as_str(), "failed");

    // Still serving after the error.
    let again = server.invoke("ric", &json!({"name": "otra vez"})).await;
    assert_eq!(assert_invoke_ok(&again)["greeting"], "Hola, otra vez!");
}
