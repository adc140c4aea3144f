//! The `namespaces` isolation level against hostile functions (tests/fixtures/hostile): each
//! attack gets the right error code, a neighbour function keeps answering during it, the
//! platform stays up, and a probe inside the sandbox reports what it could see.

use std::time::Duration;

use holactl::client::Invoked;
use serde_json::{json, Value};

use crate::util::*;

fn hostile() -> Vec<(&'static str, String, bool)> {
    vec![(
        "lambda_function.py",
        fixture("hostile/lambda_function.py"),
        false,
    )]
}

const NEIGHBOUR: &str =
    "def lambda_handler(event, context):\n    return {\"n\": event.get(\"n\")}\n";

/// A server at the namespaces level with the hostile function (with `extra` deploy flags) and
/// a well-behaved neighbour; `None` when this host cannot run that level (not root).
async fn setup(extra: &[&str]) -> Option<Server> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: the namespaces isolation level needs root");
        return None;
    }
    let server = Server::start().await;
    let health = server.client().health().await.expect("health");
    assert_eq!(health.isolation, "namespaces", "{health:?}");
    let files = hostile();
    let mut args = vec!["--runtime", "python3.11"];
    args.extend_from_slice(extra);
    server.deploy("hostile", &borrow_files(&files), &args);
    server.deploy(
        "neighbour",
        &[("lambda_function.py", NEIGHBOUR, false)],
        &["--runtime", "python3.11"],
    );
    Some(server)
}

/// Runs the attack while the neighbour is invoked repeatedly; asserts every neighbour call
/// answered correctly and the platform is still healthy afterwards.
async fn attack(server: &Server, payload: Value) -> Invoked {
    let attack = server.invoke("hostile", &payload);
    let neighbour = async {
        let mut answers = Vec::new();
        for n in 0..5 {
            answers.push((n, server.invoke("neighbour", &json!({ "n": n })).await));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        answers
    };
    let (attacked, answers) = tokio::join!(attack, neighbour);
    for (n, answer) in answers {
        let body = assert_invoke_ok(&answer);
        assert_eq!(body, json!({ "n": n }), "neighbour during {payload}");
    }
    let health = server.client().health().await.expect("platform still up");
    assert_ne!(health.status, "stopping");
    attacked
}

fn error_code(invoked: &Invoked) -> Option<&str> {
    invoked.error_code()
}

#[tokio::test]
async fn infinite_loop_times_out_and_the_instance_is_killed() {
    let Some(server) = setup(&["--timeout", "2"]).await else {
        return;
    };
    let started = std::time::Instant::now();
    let invoked = attack(&server, json!({ "action": "loop" })).await;
    assert_eq!(error_code(&invoked), Some("TIMEOUT"));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // The instance is gone: the next invocation starts a fresh one.
    let next = server
        .invoke("hostile", &json!({ "action": "probe" }))
        .await;
    assert!(next.cold_start());
    assert_invoke_ok(&next);
}

#[tokio::test]
async fn allocating_past_memory_is_out_of_memory() {
    let Some(server) = setup(&["--memory", "512"]).await else {
        return;
    };
    let invoked = attack(&server, json!({ "action": "alloc" })).await;
    assert_eq!(
        error_code(&invoked),
        Some("OUT_OF_MEMORY"),
        "{}",
        String::from_utf8_lossy(&invoked.answer.body)
    );
    let body = invoked_json(&invoked);
    assert_eq!(body["errorType"], "Runtime.OutOfMemory");
}

#[tokio::test]
async fn fork_bomb_is_contained_by_the_pids_limit() {
    let Some(server) = setup(&["--timeout", "20"]).await else {
        return;
    };
    let invoked = attack(&server, json!({ "action": "forkbomb" })).await;
    let body = assert_invoke_ok(&invoked);
    let children = body["children"].as_u64().expect("children");
    assert!(children < 1024, "{body}");
    assert_eq!(
        body["errno"],
        json!(11),
        "EAGAIN from the pids limit: {body}"
    );
}

#[tokio::test]
async fn filling_tmp_hits_enospc_inside() {
    // /tmp is memory-backed: give the function more memory than /tmp so the disk limit, not
    // the memory limit, is what the attack meets.
    let Some(server) = setup(&["--memory", "1024", "--ephemeral-storage", "512"]).await else {
        return;
    };
    let before = disk_free(server.data_dir());
    let invoked = attack(&server, json!({ "action": "filltmp" })).await;
    let body = assert_invoke_ok(&invoked);
    assert_eq!(body["errno"], json!(28), "ENOSPC: {body}");
    let written = body["written"].as_u64().expect("written");
    assert!(written <= 512 * 1024 * 1024, "{written}");
    assert!(written >= 400 * 1024 * 1024, "{written}");
    // Nothing of it landed on the host's disk.
    let after = disk_free(server.data_dir());
    assert!(
        after + 100 * 1024 * 1024 > before,
        "host disk shrank: {before} -> {after}"
    );
}

fn disk_free(path: &std::path::Path) -> u64 {
    let stat = nix::sys::statvfs::statvfs(path).expect("statvfs");
    stat.blocks_available() as u64 * stat.fragment_size() as u64
}

fn server_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn printing_100_mb_is_capped_and_memory_stays_bounded() {
    let Some(server) = setup(&["--timeout", "60"]).await else {
        return;
    };
    let rss_before = server_rss_kb(server.pid());
    let invoked = attack(&server, json!({ "action": "print", "mb": 100 })).await;
    assert_invoke_ok(&invoked);
    assert_eq!(invoked.answer.header("x-hola-log-truncated"), Some("true"));
    let logs = server
        .client()
        .execution_logs(invoked.execution_id())
        .await
        .expect("logs");
    assert!(logs.truncated);
    assert!(logs.log.len() < 2 * 1024 * 1024, "{}", logs.log.len());
    let rss_after = server_rss_kb(server.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "server RSS grew from {rss_before} kB to {rss_after} kB"
    );
}

#[tokio::test]
async fn host_files_other_code_and_the_network_are_out_of_reach() {
    let Some(server) = setup(&[]).await else {
        return;
    };
    // Another function's code, somewhere under the data dir.
    let other = server
        .client()
        .get_function("neighbour")
        .await
        .expect("neighbour");
    let other_code = server
        .data_dir()
        .join("code")
        .join(&other.code.sha256)
        .display()
        .to_string();
    let data_dir = server.data_dir().display().to_string();
    let port: u16 = server
        .endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut connects = vec![json!(["127.0.0.1", port])];
    if let Some(ip) = host_ip() {
        connects.push(json!([ip, port]));
    }
    let payload = json!({
        "action": "probe",
        "paths": ["/etc/shadow", data_dir, other_code, "/root", "/var/task/lambda_function.py"],
        "connects": connects,
    });
    let invoked = attack(&server, payload).await;
    let probe = assert_invoke_ok(&invoked);
    let reads = &probe["reads"];
    for hidden in [
        "/etc/shadow",
        data_dir.as_str(),
        other_code.as_str(),
        "/root",
    ] {
        assert_eq!(
            reads[hidden]["ok"],
            json!(false),
            "{hidden} visible: {probe}"
        );
        assert_eq!(reads[hidden]["errno"], json!(2), "{hidden}: {probe}");
    }
    assert_eq!(
        reads["/var/task/lambda_function.py"]["ok"],
        json!(true),
        "{probe}"
    );
    for (target, result) in probe["connects"].as_object().expect("connects") {
        assert_eq!(result["ok"], json!(false), "{target} reachable: {probe}");
    }
    assert_eq!(probe["write_task"]["errno"], json!(30), "EROFS: {probe}");
    assert_eq!(probe["uid"], json!(993));
    assert_eq!(probe["pid"], json!(2));
    assert_eq!(probe["procs"], json!([1, 2]), "{probe}");
    assert_eq!(probe["hostname"], json!("sandbox"));
    let status: Vec<String> = serde_json::from_value(probe["status"].clone()).expect("status");
    for line in [
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(
            status.iter().any(|l| l == line),
            "{line} missing: {status:?}"
        );
    }
}

/// This machine's first non-loopback IPv4 address (traffic to it never leaves the host).
fn host_ip() -> Option<String> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_owned)
}

#[tokio::test]
async fn kill_minus_one_and_killing_the_parent_hurt_only_the_function() {
    let Some(server) = setup(&[]).await else {
        return;
    };
    let invoked = attack(&server, json!({ "action": "killall" })).await;
    let body = assert_invoke_ok(&invoked);
    assert_eq!(body["alive"], json!(true));
    assert_eq!(body["kill_parent"]["ok"], json!(false), "{body}");
    // The instance survived its own attack and is reused.
    let next = server
        .invoke("hostile", &json!({ "action": "probe" }))
        .await;
    assert_invoke_ok(&next);
    assert!(!next.cold_start());
}

#[tokio::test]
async fn exiting_mid_invocation_is_a_function_error_and_the_next_is_fresh() {
    let Some(server) = setup(&[]).await else {
        return;
    };
    let invoked = attack(&server, json!({ "action": "exit" })).await;
    assert_eq!(error_code(&invoked), Some("FUNCTION_ERROR"));
    let body = invoked_json(&invoked);
    assert_eq!(body["errorType"], "Runtime.ExitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("exit status 7"),
        "{body}"
    );
    let next = server
        .invoke("hostile", &json!({ "action": "probe" }))
        .await;
    assert_invoke_ok(&next);
    assert!(next.cold_start());
}

#[tokio::test]
async fn host_network_functions_can_reach_out() {
    let Some(server) = setup(&["--network", "host"]).await else {
        return;
    };
    let view = server.client().get_function("hostile").await.expect("get");
    assert_eq!(view.config.network.as_str(), "host");
    let port: u16 = server
        .endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let invoked = server
        .invoke(
            "hostile",
            &json!({ "action": "probe", "connects": [["127.0.0.1", port]] }),
        )
        .await;
    let probe = assert_invoke_ok(&invoked);
    let result = &probe["connects"][format!("127.0.0.1:{port}")];
    assert_eq!(result["ok"], json!(true), "{probe}");
}

#[tokio::test]
async fn the_process_level_runs_functions_and_says_it_is_weaker() {
    let server = Server::builder().isolation("process").start().await;
    let health = server.client().health().await.expect("health");
    assert_eq!(health.isolation, "process");
    assert_eq!(health.status, "degraded");
    assert!(
        health.warnings.iter().any(|w| w.contains("process")),
        "{:?}",
        health.warnings
    );
    server.deploy(
        "neighbour",
        &[("lambda_function.py", NEIGHBOUR, false)],
        &["--runtime", "python3.11"],
    );
    let first = server.invoke("neighbour", &json!({ "n": 1 })).await;
    assert_eq!(assert_invoke_ok(&first), json!({ "n": 1 }));
    assert!(first.cold_start());
    let second = server.invoke("neighbour", &json!({ "n": 2 })).await;
    assert_eq!(assert_invoke_ok(&second), json!({ "n": 2 }));
    assert!(!second.cold_start());
}
