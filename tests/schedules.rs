//! Schedules: create (cron in a time zone, rate), list, get, pause, resume, delete through the
//! CLI and the API; stable errors naming the field; the audit trail; and real fires: `schedule
//! run` end to end (the function's own output shows the scheduled event it got), and one fire
//! on the clock at the next minute boundary.
//!
//! The time arithmetic (next tick, time zones, daylight saving, the missed-fire policy, the
//! compare-and-set claim) is unit-tested with fixed instants in
//! `crates/engine/src/schedules/`.

use std::time::Duration;

use holactl_types::schedule::ScheduleView;
use holactl_types::{ExecutionRecord, ExecutionStatus};
use http::Method;
use serde_json::{json, Value};

use crate::util::{
    assert_api_error, assert_failure, assert_success, deploy_python_probe, stderr, stdout, Server,
};

/// Epoch milliseconds now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Runs `holactl lambda schedule ARGS… -o json` and parses what it printed.
fn cli_json(server: &Server, args: &[&str]) -> Value {
    let mut all = vec!["lambda", "schedule"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = server.cli(&all);
    assert_success(&out, &all.join(" "));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
        panic!(
            "`{}` printed no JSON ({e}): {}",
            all.join(" "),
            stdout(&out)
        )
    })
}

fn view(server: &Server, args: &[&str]) -> ScheduleView {
    serde_json::from_value(cli_json(server, args)).expect("a schedule view")
}

/// Waits (at most 30 s) until an execution has ended and returns it.
async fn ended(server: &Server, id: &str) -> ExecutionRecord {
    let client = server.client();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(record) = client.get_execution(id).await {
            if record.status.is_final() {
                return record;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "execution {id} did not end within 30 s\n{}",
            server.server_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The event the Python probe received, from its own answer (`echo`).
fn echoed_event(record: &ExecutionRecord) -> Value {
    assert_eq!(
        record.status,
        ExecutionStatus::Complete,
        "the scheduled execution failed: {record:?}"
    );
    let result: Value =
        serde_json::from_str(record.result.as_ref().expect("a result").get()).expect("JSON");
    result["echo"].clone()
}

#[tokio::test]
async fn schedules_are_created_listed_paused_resumed_and_deleted() {
    let server = Server::start().await;
    deploy_python_probe(&server, "hello", &[]);

    // Every minute: the first fire is the next minute boundary.
    let before = now_ms();
    let every = view(
        &server,
        &[
            "create",
            "every-minute",
            "--function",
            "hello",
            "--cron",
            "* * * * *",
        ],
    );
    let after = now_ms();
    assert_eq!(every.expression, "cron(* * * * *)");
    assert_eq!(every.timezone, "UTC");
    assert!(!every.paused);
    let next = every.next_fire_at.expect("a next fire");
    assert_eq!(next % 60_000, 0, "a minute boundary: {next}");
    assert!(
        next > before && next <= after + 60_000 && next - 60_000 <= after,
        "the first minute boundary after creation: {before}..{after} → {next}"
    );
    assert_eq!(every.last_fire_at, None);
    assert_eq!(every.last_execution_id, None);
    assert!(
        every.arn.starts_with("arn:aws:scheduler:")
            && every.arn.ends_with(":schedule/default/every-minute"),
        "{}",
        every.arn
    );

    // A nightly backup in Madrid: 02:00 local is 00:00 or 01:00 UTC.
    let nightly = view(
        &server,
        &[
            "create",
            "nightly-backup",
            "--function",
            "hello",
            "--cron",
            "0 2 * * *",
            "--timezone",
            "Europe/Madrid",
            "--payload",
            r#"{"action":"backup"}"#,
        ],
    );
    assert_eq!(nightly.timezone, "Europe/Madrid");
    assert_eq!(nightly.payload, Some(json!({"action": "backup"})));
    let next = nightly.next_fire_at.expect("a next fire");
    let at = time::OffsetDateTime::from_unix_timestamp(next / 1000).expect("a time");
    assert!(
        matches!(at.hour(), 0 | 1) && at.minute() == 0 && at.second() == 0,
        "02:00 in Madrid, got {at} UTC"
    );
    assert!(next > now_ms() && next <= now_ms() + 25 * 3_600_000);

    // A rate: every period from creation; also accepted in --cron.
    let before = now_ms();
    let rate = view(
        &server,
        &[
            "create",
            "five",
            "--function",
            "hello",
            "--rate",
            "5 minutes",
        ],
    );
    assert_eq!(rate.expression, "rate(5 minutes)");
    assert_eq!(rate.next_fire_at, Some(rate.created_at + 300_000));
    assert!(rate.created_at >= before);
    let hourly = view(
        &server,
        &[
            "create",
            "hourly",
            "--function",
            "hello:$LATEST",
            "--cron",
            "rate(1 hour)",
        ],
    );
    assert_eq!(hourly.expression, "rate(1 hour)");
    assert_eq!(hourly.qualifier.as_deref(), Some("$LATEST"));

    // list (table and JSON) and get.
    let out = server.cli(["lambda", "schedule", "list"]);
    assert_success(&out, "schedule list");
    let table = stdout(&out);
    for name in ["every-minute", "nightly-backup", "five", "hourly"] {
        assert!(table.contains(name), "{name} in\n{table}");
    }
    assert!(table.contains("Europe/Madrid") && table.contains("rate(5 minutes)"));
    let listed = cli_json(&server, &["list"]);
    let names: Vec<&str> = listed
        .as_array()
        .expect("a JSON list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["every-minute", "five", "hourly", "nightly-backup"]);
    let got = server
        .client()
        .get_schedule("nightly-backup")
        .await
        .expect("get");
    assert_eq!(got, nightly);
    let out = server.cli(["lambda", "schedule", "get", "nightly-backup"]);
    assert_success(&out, "schedule get");
    assert!(stdout(&out).contains("Europe/Madrid"), "{}", stdout(&out));

    // Pause: no next fire; pausing again changes nothing. Resume: the next tick after now.
    let paused = view(&server, &["pause", "every-minute"]);
    assert!(paused.paused);
    assert_eq!(paused.next_fire_at, None);
    assert_eq!(view(&server, &["pause", "every-minute"]), paused);
    let resumed = view(&server, &["resume", "every-minute"]);
    assert!(!resumed.paused);
    let next = resumed.next_fire_at.expect("a next fire");
    assert!(next % 60_000 == 0 && next > now_ms() - 1000 && next <= now_ms() + 60_000);

    // Delete: 204, then 404.
    let out = server.cli(["lambda", "schedule", "delete", "five"]);
    assert_success(&out, "schedule delete");
    let answer = server
        .request(Method::GET, "/api/v1/schedules/five", None)
        .await;
    assert_api_error(&answer, 404, "RESOURCE_NOT_FOUND");
    let answer = server
        .request(Method::DELETE, "/api/v1/schedules/hourly", None)
        .await;
    assert_eq!(answer.status.as_u16(), 204);

    // Every change is in the audit trail, under the function.
    let audit = server
        .client()
        .audit(Some("hello"), None, 1000)
        .await
        .expect("audit");
    let actions: Vec<(&str, &str)> = audit
        .entries
        .iter()
        .filter(|e| e.action.starts_with("schedule."))
        .map(|e| (e.action.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("schedule.create", "schedule/every-minute"),
            ("schedule.create", "schedule/nightly-backup"),
            ("schedule.create", "schedule/five"),
            ("schedule.create", "schedule/hourly"),
            ("schedule.pause", "schedule/every-minute"),
            ("schedule.resume", "schedule/every-minute"),
            ("schedule.delete", "schedule/five"),
            ("schedule.delete", "schedule/hourly"),
        ]
    );
    let created = audit
        .entries
        .iter()
        .find(|e| e.action == "schedule.create")
        .expect("a create entry");
    assert_eq!(created.actor, "admin");
    assert_eq!(created.before, None);
    assert_eq!(
        created.after.as_ref().map(|a| a["expression"].clone()),
        Some(json!("cron(* * * * *)"))
    );
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_the_field() {
    let server = Server::start().await;
    deploy_python_probe(&server, "hello", &[]);
    let create = |body: Value| {
        let server = &server;
        async move {
            server
                .request_json(Method::POST, "/api/v1/schedules", &body)
                .await
        }
    };
    let base = json!({"name": "s", "function": "hello", "cron": "* * * * *"});
    let with = |patch: Value| {
        let mut body = base.clone();
        for (k, v) in patch.as_object().expect("object") {
            if v.is_null() {
                body.as_object_mut().expect("object").remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    for (patch, field) in [
        (json!({"cron": "61 * * * *"}), "cron"),
        (json!({"cron": "* * * *"}), "cron"),
        (json!({"cron": "0 0 0 * * *"}), "cron"),
        (json!({"cron": "0 0 30 2 *"}), "cron"),
        (json!({"cron": null}), "cron"),
        (json!({"rate": "rate(1 hour)"}), "cron"),
        (json!({"cron": null, "rate": "rate(0 minutes)"}), "rate"),
        (json!({"cron": null, "rate": "rate(5 fortnights)"}), "rate"),
        (json!({"cron": "rate(1.5 hours)"}), "rate"),
        (json!({"timezone": "Mars/Olympus_Mons"}), "timezone"),
        (
            json!({"cron": null, "rate": "rate(1 hour)", "timezone": "Europe/Madrid"}),
            "timezone",
        ),
        (json!({"function": "nope"}), "function"),
        (json!({"qualifier": "7"}), "qualifier"),
        (json!({"qualifier": "no-such-alias"}), "qualifier"),
        (json!({"name": "has space"}), "name"),
        (json!({"name": ""}), "name"),
    ] {
        let body = with(patch.clone());
        let answer = create(body.clone()).await;
        let error = assert_api_error(&answer, 400, "INVALID_INPUT");
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    let answer = create(with(json!({"surprise": 1}))).await;
    assert_api_error(&answer, 400, "INVALID_INPUT");

    // The CLI prints the code and the field, and exits non-zero.
    for (args, field) in [
        (vec!["--cron", "99 * * * *"], "cron"),
        (vec!["--rate", "rate(0 days)"], "rate"),
        (
            vec!["--cron", "0 2 * * *", "--timezone", "Nowhere/Town"],
            "timezone",
        ),
    ] {
        let mut all = vec!["lambda", "schedule", "create", "bad", "--function", "hello"];
        all.extend(args);
        let out = server.cli(&all);
        assert_failure(&out, &all.join(" "));
        let err = stderr(&out);
        assert!(
            err.contains("INVALID_INPUT") && err.contains(field),
            "{}: {err}",
            all.join(" ")
        );
    }
    let out = server.cli([
        "lambda",
        "schedule",
        "create",
        "bad",
        "--function",
        "ghost",
        "--cron",
        "* * * * *",
    ]);
    assert_failure(&out, "create for an unknown function");
    assert!(stderr(&out).contains("function"), "{}", stderr(&out));

    // A duplicate name: 409.
    assert_eq!(create(base.clone()).await.status.as_u16(), 201);
    assert_api_error(&create(base.clone()).await, 409, "CONFLICT");
    let out = server.cli([
        "lambda",
        "schedule",
        "create",
        "s",
        "--function",
        "hello",
        "--rate",
        "1 minute",
    ]);
    assert_failure(&out, "duplicate create");
    assert!(stderr(&out).contains("CONFLICT"), "{}", stderr(&out));

    // Unknown schedules: 404 everywhere.
    for (method, path) in [
        (Method::GET, "/api/v1/schedules/ghost"),
        (Method::DELETE, "/api/v1/schedules/ghost"),
        (Method::POST, "/api/v1/schedules/ghost/pause"),
        (Method::POST, "/api/v1/schedules/ghost/resume"),
        (Method::POST, "/api/v1/schedules/ghost/run"),
    ] {
        let answer = server.request(method.clone(), path, None).await;
        assert_api_error(&answer, 404, "RESOURCE_NOT_FOUND");
    }
    let out = server.cli(["lambda", "schedule", "pause", "ghost"]);
    assert_failure(&out, "pause an unknown schedule");
    assert!(
        stderr(&out).contains("RESOURCE_NOT_FOUND"),
        "{}",
        stderr(&out)
    );

    // Nothing but the one good schedule was created.
    let list = server.client().list_schedules().await.expect("list");
    assert_eq!(list.schedules.len(), 1, "{list:?}");
}

#[tokio::test]
async fn run_fires_a_scheduled_event_end_to_end() {
    let server = Server::start().await;
    deploy_python_probe(&server, "hello", &[]);
    let created = view(
        &server,
        &[
            "create",
            "nightly-backup",
            "--function",
            "hello",
            "--cron",
            "0 2 * * *",
        ],
    );

    let started = now_ms();
    let pending = cli_json(&server, &["run", "nightly-backup"]);
    assert_eq!(pending["trigger"], "schedule", "{pending}");
    assert_eq!(pending["function"], "hello");
    let id = pending["id"].as_str().expect("an execution id").to_owned();
    let record = ended(&server, &id).await;
    assert_eq!(record.trigger, holactl_types::Trigger::Schedule);
    let event = echoed_event(&record);
    assert_eq!(event["version"], "0", "{event}");
    assert_eq!(event["detail-type"], "Scheduled Event", "{event}");
    assert_eq!(event["source"], "holactl.scheduler", "{event}");
    assert_eq!(event["resources"], json!([created.arn]), "{event}");
    assert_eq!(event["detail"]["schedule"], "nightly-backup", "{event}");
    assert_eq!(event["detail"]["expression"], "cron(0 2 * * *)", "{event}");
    assert_eq!(event["detail"]["manual"], true, "{event}");
    assert!(
        event["id"].as_str().is_some_and(|i| i.len() == 36),
        "{event}"
    );
    let time = event["time"].as_str().expect("time");
    let fired = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("time {time:?} is not RFC 3339: {e}"));
    let fired_ms = fired.unix_timestamp() * 1000;
    assert!(
        fired_ms >= started - 1000 && fired_ms <= now_ms(),
        "the event's time is when it was run: {time}"
    );
    assert!(time.ends_with('Z'), "{time}");

    // The schedule remembers the fire; its next tick did not move.
    let after = server
        .client()
        .get_schedule("nightly-backup")
        .await
        .expect("get");
    assert_eq!(after.last_execution_id.as_deref(), Some(id.as_str()));
    assert_eq!(after.next_fire_at, created.next_fire_at);

    // `executions NAME` lists it with the schedule trigger.
    let out = server.cli(["lambda", "executions", "hello", "-o", "json"]);
    assert_success(&out, "executions hello");
    let listed: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let listed = listed["executions"].as_array().expect("executions");
    assert!(
        listed
            .iter()
            .any(|e| e["id"] == id.as_str() && e["trigger"] == "schedule"),
        "{listed:?}"
    );

    // A paused schedule with a payload: run still fires, and the payload replaces the envelope.
    view(
        &server,
        &[
            "create",
            "with-payload",
            "--function",
            "hello",
            "--rate",
            "rate(2 days)",
            "--payload",
            r#"{"job":"report","n":[1,2]}"#,
        ],
    );
    view(&server, &["pause", "with-payload"]);
    let out = server.cli(["lambda", "schedule", "run", "with-payload"]);
    assert_success(&out, "schedule run");
    let text = stdout(&out);
    let id = text
        .split_whitespace()
        .skip_while(|w| *w != "execution")
        .nth(1)
        .unwrap_or_else(|| panic!("no execution id in {text:?}"))
        .to_owned();
    let record = ended(&server, &id).await;
    assert_eq!(echoed_event(&record), json!({"job": "report", "n": [1, 2]}));

    // Running is recorded too.
    let audit = server
        .client()
        .audit(Some("hello"), None, 1000)
        .await
        .expect("audit");
    assert_eq!(
        audit
            .entries
            .iter()
            .filter(|e| e.action == "schedule.run")
            .count(),
        2
    );
}

/// A fire on the clock: a `* * * * *` schedule fires at the next minute boundary, so this test
/// waits up to ~62 s (it runs in parallel with the others). The result is the scheduled event
/// for that minute, queued once, and the schedule moves to the following minute.
#[tokio::test]
async fn a_cron_schedule_fires_on_the_clock_once_per_tick() {
    let server = Server::start().await;
    deploy_python_probe(&server, "hello", &[]);
    let created = view(
        &server,
        &[
            "create",
            "tick",
            "--function",
            "hello",
            "--cron",
            "* * * * *",
        ],
    );
    let due = created.next_fire_at.expect("a next fire");
    let client = server.client();
    // Up to the minute boundary, plus time to claim and record the fire.
    let deadline =
        std::time::Instant::now() + Duration::from_millis((due - now_ms()).max(0) as u64 + 8_000);
    let fired = loop {
        let s = client.get_schedule("tick").await.expect("get");
        if let Some(id) = s.last_execution_id.clone() {
            break (id, s);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule did not fire at its minute boundary: {s:?}\n{}",
            server.server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (id, schedule) = fired;
    assert_eq!(schedule.last_fire_at, Some(due));
    assert!(
        schedule.next_fire_at.is_some_and(|n| n >= due + 60_000),
        "{schedule:?}"
    );
    let record = ended(&server, &id).await;
    assert_eq!(record.trigger, holactl_types::Trigger::Schedule);
    let event = echoed_event(&record);
    assert_eq!(event["detail"]["schedule"], "tick", "{event}");
    assert_eq!(event["detail"]["manual"], false, "{event}");
    let time = event["time"].as_str().expect("time");
    let at = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    assert_eq!(
        at.unix_timestamp() * 1000,
        due,
        "the scheduled time: {time}"
    );
    // Once per tick: one schedule execution so far.
    let executions = client
        .list_executions(Some("hello"), 100)
        .await
        .expect("executions");
    let scheduled = executions
        .executions
        .iter()
        .filter(|e| e.trigger == holactl_types::Trigger::Schedule)
        .count();
    assert_eq!(scheduled, 1, "{:?}", executions.executions);
}
