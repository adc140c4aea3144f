//! Gateway overhead benchmark: `cargo bench --bench gateway`.
//!
//! Starts the real `holactl lambda serve` on a free loopback port with a fresh data dir,
//! deploys one no-op Python function (`def handler(e, c): return {}`) and measures, with the
//! typed client (one keep-alive connection, requests one at a time), in the same run:
//!
//! - the direct path: `POST /api/v1/functions/noop/invoke` with `{}`;
//! - the gateway: `GET /gw/default/…` through a static route without auth, a templated route
//!   (`/users/{id}`), an API-key route and a JWT (HS256) route.
//!
//! The difference of medians is what the gateway adds per request: route match, auth, the
//! payload format 2.0 event (larger than `{}`), response mapping. Samples: `HOLA_BENCH_GATEWAY`
//! (default 1000) after `HOLA_BENCH_WARMUP` (100) warm-up requests per row.

#[path = "common/entry.rs"]
mod entry;
#[path = "common/stats.rs"]
#[allow(dead_code)]
mod stats;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use holactl::client::Client;
use http::Method;
use http_body_util::{BodyExt, Full};

use stats::pct;

const BIN: &str = env!("CARGO_BIN_EXE_holactl");

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn cli(endpoint: &str, token: &str, home: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(BIN)
        .args(args)
        .env("HOLACTL_ENDPOINT", endpoint)
        .env("HOLACTL_TOKEN", token)
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        out.status.success(),
        "holactl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A signed HS256 JWT (the same construction as any JWT library's), valid for an hour.
fn hs256_token(secret: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 3600)
        .unwrap_or(0);
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64(format!(
        r#"{{"iss":"https://issuer.bench","aud":"bench","sub":"ana","exp":{exp},"scope":"read"}}"#
    )
    .as_bytes());
    let signing = format!("{header}.{claims}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key size");
    mac.update(signing.as_bytes());
    format!("{signing}.{}", b64(&mac.finalize().into_bytes()))
}

/// One measured request; fails unless it answers 200.
async fn once(
    client: &Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&'static [u8]>,
) -> anyhow::Result<f64> {
    let body = body.map(|b| {
        (
            "application/json",
            Full::new(Bytes::from_static(b))
                .map_err(|never| match never {})
                .boxed(),
        )
    });
    let started = Instant::now();
    let answer = client.send(method, path, headers, body).await?;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    ensure!(
        answer.status.as_u16() == 200,
        "{path}: {} {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    Ok(elapsed)
}

struct Row {
    label: String,
    p50: f64,
    p99: f64,
}

async fn run() -> anyhow::Result<()> {
    let samples = env_count("HOLA_BENCH_GATEWAY", 1000);
    let warmup = env_count("HOLA_BENCH_WARMUP", 100);
    let root = tempfile::tempdir()?;
    let data = root.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let log = std::fs::File::create(root.path().join("serve.log"))?;
    let mut child = Command::new(BIN)
        .args([
            "lambda",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env("HOLACTL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting holactl lambda serve")?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let result = async {
        let probe = Client::new(&endpoint, None)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while probe.health().await.is_err() {
            if Instant::now() > deadline {
                bail!("the server did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let token = std::fs::read_to_string(data.join("admin.token"))?.trim().to_owned();
        let src = root.path().join("noop");
        std::fs::create_dir_all(&src)?;
        std::fs::write(src.join("lambda_function.py"), "def handler(e, c):\n    return {}\n")?;
        let home = root.path();
        let src = src.to_str().context("path")?;
        let c = |args: &[&str]| cli(&endpoint, &token, home, args);
        c(&["lambda", "deploy", "noop", "--source", src, "--runtime", "python3.11", "--handler", "lambda_function.handler"])?;
        for (path, extra) in [
            ("/plain", vec![]),
            ("/users/{id}", vec![]),
            ("/keyed", vec!["--auth", "api-key"]),
        ] {
            let mut args = vec!["lambda", "route", "create", "--method", "GET", "--path", path, "--function", "noop"];
            args.extend(extra);
            c(&args)?;
        }
        let key = c(&["lambda", "api-key", "create", "bench"])?.trim().to_owned();
        let secret = b"bench-secret-0123456789abcdefghijklmnop";
        let secret_file = root.path().join("hs.secret");
        std::fs::write(&secret_file, secret)?;
        c(&["lambda", "authorizer", "create", "hs", "--issuer", "https://issuer.bench", "--audience", "bench",
            "--algorithm", "HS256", "--hs256-secret-from-file", secret_file.to_str().context("path")?])?;
        c(&["lambda", "route", "create", "--method", "GET", "--path", "/jwt", "--function", "noop",
            "--auth", "jwt", "--authorizer", "hs"])?;
        let bearer = format!("Bearer {}", hs256_token(secret));

        let admin = Client::new(&endpoint, Some(token.clone()))?;
        let anon = Client::new(&endpoint, None)?;
        type Case<'a> = (&'a str, &'a Client, Method, &'a str, Vec<(&'a str, &'a str)>, Option<&'static [u8]>);
        let cases: Vec<Case> = vec![
            ("direct invoke (POST /api/v1/functions/noop/invoke)", &admin, Method::POST, "/api/v1/functions/noop/invoke", vec![], Some(b"{}")),
            ("gateway, static route, no auth", &anon, Method::GET, "/gw/default/plain", vec![], None),
            ("gateway, /users/{id}, no auth", &anon, Method::GET, "/gw/default/users/42", vec![], None),
            ("gateway, static route, API key", &anon, Method::GET, "/gw/default/keyed", vec![("x-api-key", key.as_str())], None),
            ("gateway, static route, JWT HS256", &anon, Method::GET, "/gw/default/jwt", vec![("authorization", bearer.as_str())], None),
        ];
        let mut rows = Vec::new();
        for (label, client, method, path, headers, body) in &cases {
            for _ in 0..warmup {
                once(client, method.clone(), path, headers, *body).await?;
            }
            rows.push((label, Vec::with_capacity(samples)));
        }
        // Rounds over every case, so drift (other load, thermal) spreads over all rows alike.
        for _ in 0..samples {
            for (i, (_, client, method, path, headers, body)) in cases.iter().enumerate() {
                let ms = once(client, method.clone(), path, headers, *body).await?;
                rows[i].1.push(ms);
            }
        }
        let rows: Vec<Row> = rows
            .into_iter()
            .map(|(label, mut v)| {
                v.sort_by(f64::total_cmp);
                Row { label: (*label).to_owned(), p50: pct(&v, 50.0), p99: pct(&v, 99.0) }
            })
            .collect();
        let direct = rows[0].p50;
        println!("Gateway overhead, {samples} samples per row (medians, one keep-alive connection, no-op Python 3.11 function)\n");
        println!("| path | p50 ms | p99 ms | p50 / direct | p50 − direct |");
        println!("|---|---:|---:|---:|---:|");
        for r in &rows {
            println!(
                "| {} | {:.3} | {:.3} | {:.2}× | {:+.3} ms |",
                r.label, r.p50, r.p99, r.p50 / direct, r.p50 - direct
            );
        }
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn main() -> std::process::ExitCode {
    entry::main(run)
}
