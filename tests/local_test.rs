//! `holactl lambda test --local DIR`: run a function from a directory with no server at all.

use std::path::Path;

use crate::util::{assert_success, run_cli, stderr, stdout};

#[test]
fn test_local_runs_a_template_without_a_server() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let cwd = tmp.path();
    let home = cwd.join("home");
    std::fs::create_dir_all(&home).expect("home");
    // An endpoint where nothing listens: `test --local` must not need one.
    let env = [("HOLACTL_ENDPOINT", "http://127.0.0.1:9")];

    let out = run_cli(
        cwd,
        &home,
        &env,
        [
            "lambda",
            "init",
            "hello",
            "--runtime",
            "python3.11",
            "--template",
            "http",
        ],
    );
    assert_success(&out, "init");

    let out = run_cli(cwd, &home, &env, ["lambda", "test", "--local", "hello"]);
    assert_success(&out, "test --local");
    let result: serde_json::Value =
        serde_json::from_str(&stdout(&out)).expect("the result is printed as JSON on stdout");
    assert_eq!(result["statusCode"], 200, "{result}");
    // event.json of the http template carries {"name":"Mundo"} in its body.
    assert!(
        result["body"]
            .as_str()
            .is_some_and(|b| b.contains("Hola, Mundo!")),
        "{result}"
    );
    let err = stderr(&out);
    assert!(err.contains("greeting Mundo"), "the log is shown: {err}");
    let summary = err
        .lines()
        .find(|l| l.starts_with("status "))
        .unwrap_or_else(|| panic!("no summary line: {err}"));
    assert!(summary.contains("status complete"), "{summary}");
    assert!(
        summary.contains("init ") && summary.contains(" ms") && !summary.contains("init -"),
        "init time: {summary}"
    );
    assert!(summary.contains("duration "), "duration: {summary}");

    // An explicit event, and a failing one.
    std::fs::write(
        cwd.join("event.json"),
        r#"{"queryStringParameters":{"name":"Local"}}"#,
    )
    .expect("event");
    let out = run_cli(
        cwd,
        &home,
        &env,
        [
            "lambda",
            "test",
            "--local",
            "hello",
            "--event",
            "event.json",
        ],
    );
    assert_success(&out, "test --local --event");
    assert!(stdout(&out).contains("Hola, Local!"), "{}", stdout(&out));

    std::fs::write(
        cwd.join("hello/lambda_function.py"),
        "def lambda_handler(event, context):\n    raise KeyError('missing')\n",
    )
    .expect("rewrite");
    let out = run_cli(cwd, &home, &env, ["lambda", "test", "--local", "hello"]);
    assert!(
        !out.status.success(),
        "a failing function fails the command"
    );
    assert!(stderr(&out).contains("FUNCTION_ERROR"), "{}", stderr(&out));
    // Nothing was left in the user's data dir.
    assert!(!Path::new(&home).join(".local/share/holactl").exists());
}
