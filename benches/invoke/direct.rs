//! The "direct handler call" baseline: the same no-op handlers called in-process by their own
//! interpreter, with no platform, no HTTP and no Runtime API — the floor of what a warm invoke
//! can cost. Each interpreter runs batches of calls and reports the time per call of each
//! batch; the table shows the median batch.

use std::process::Command;
use std::time::Instant;

use anyhow::Context;

/// Calls per batch and batches per runtime.
pub const CALLS: u32 = 2_000;
pub const BATCHES: u32 = 50;

const PYTHON: &str = r#"
import time, sys
def handler(e, c):
    return {}
calls, batches = int(sys.argv[1]), int(sys.argv[2])
for _ in range(batches):
    t = time.perf_counter_ns()
    for _ in range(calls):
        handler({}, None)
    print((time.perf_counter_ns() - t) / calls)
"#;

// An async handler, awaited, as our bootstrap calls it.
const NODE: &str = r#"
const handler = async () => ({});
const [calls, batches] = process.argv.slice(1).map(Number);
(async () => {
  for (let b = 0; b < batches; b++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) await handler({}, {});
    console.log(Number(process.hrtime.bigint() - t) / calls);
  }
})();
"#;

/// One row: (handler, median ns per call).
pub struct DirectCall {
    pub label: &'static str,
    pub ns_per_call: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn interpreted(program: &str, flag: &str, script: &str) -> anyhow::Result<f64> {
    let out = Command::new(program)
        .args([flag, script, &CALLS.to_string(), &BATCHES.to_string()])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .with_context(|| format!("running {program}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let batches: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    anyhow::ensure!(!batches.is_empty(), "{program} printed no timings");
    Ok(median(batches))
}

/// The Rust no-op handler's call, measured the same way in this process.
fn rust() -> f64 {
    fn handler(event: &[u8]) -> &'static [u8] {
        std::hint::black_box(event);
        b"{}"
    }
    let batches = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..CALLS {
                std::hint::black_box(handler(std::hint::black_box(b"{}")));
            }
            t.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .collect();
    median(batches)
}

/// Measures every runtime's direct call.
pub fn measure() -> anyhow::Result<Vec<DirectCall>> {
    Ok(vec![
        DirectCall {
            label: "python3.11",
            ns_per_call: interpreted("/usr/bin/python3.11", "-c", PYTHON)?,
        },
        DirectCall {
            label: "nodejs20.x",
            ns_per_call: interpreted("/usr/bin/node", "-e", NODE)?,
        },
        DirectCall {
            label: "provided (Rust noop)",
            ns_per_call: rust(),
        },
    ])
}
