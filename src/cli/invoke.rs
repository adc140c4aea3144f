//! `holactl lambda invoke NAME --payload JSON|@file`.

use base64::Engine as _;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use holactl_types::api::headers as h;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `--log-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogType {
    /// No log.
    None,
    /// Print the last 4 KB of the execution's log to stderr.
    Tail,
}

/// `invoke` options.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// Function name, optionally qualified: NAME:VERSION or NAME:ALIAS.
    pub name: String,
    /// Version number, alias or $LATEST (instead of NAME:QUALIFIER).
    #[arg(long)]
    pub qualifier: Option<String>,
    /// The event: JSON text, or @FILE to read it from a file (@- for stdin).
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// Also print the execution's log tail.
    #[arg(long, value_enum, default_value = "none")]
    pub log_type: LogType,
    /// Queue the invocation and return at once with its execution id (202).
    #[arg(long = "async")]
    pub asynchronous: bool,
    /// The same key gives the same execution for 24 hours.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// Reads `--payload`: inline JSON or `@file`.
pub fn read_payload(arg: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = match arg.strip_prefix('@') {
        Some("-") => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
            buf
        }
        Some(path) => std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("INVALID_INPUT: --payload @{path}: {e}"))?,
        None => arg.as_bytes().to_vec(),
    };
    if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
        anyhow::bail!("INVALID_INPUT: --payload is not valid JSON");
    }
    Ok(bytes)
}

/// Invokes and prints the answer; non-zero exit on a function error.
pub async fn run(g: &GlobalOpts, args: InvokeArgs) -> anyhow::Result<Outcome> {
    let payload = read_payload(&args.payload)?;
    let client = g.client()?;
    let name = match &args.qualifier {
        Some(q) => format!("{}:{q}", args.name),
        None => args.name.clone(),
    };
    if args.asynchronous {
        let record = client
            .invoke_async(&name, Bytes::from(payload), args.idempotency_key.as_deref())
            .await?;
        if g.output == OutputFormat::Json {
            output::json(&record)?;
        } else {
            println!("{}", record.id);
            eprintln!(
                "Queued: follow it with `holactl lambda executions get {}`",
                record.id
            );
        }
        return Ok(Outcome::Success);
    }
    let invoked = client
        .invoke_with_key(
            &name,
            Bytes::from(payload),
            args.log_type == LogType::Tail,
            args.idempotency_key.as_deref(),
        )
        .await?;
    let a = &invoked.answer;
    if let Some(tail) = a.header(h::LOG_RESULT) {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(tail) {
            eprint!("{}", String::from_utf8_lossy(&bytes));
        }
    }
    if g.output == OutputFormat::Json {
        let body: serde_json::Value = serde_json::from_slice(&a.body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&a.body).into()));
        output::json(&serde_json::json!({
            "execution_id": invoked.execution_id(),
            "version": a.header(h::EXECUTED_VERSION),
            "duration_ms": a.header(h::DURATION_MS).and_then(|d| d.parse::<f64>().ok()),
            "billed_duration_ms": a.header(h::BILLED_DURATION_MS).and_then(|d| d.parse::<u64>().ok()),
            "init_duration_ms": a.header(h::INIT_DURATION_MS).and_then(|d| d.parse::<f64>().ok()),
            "cold_start": invoked.cold_start(),
            "error_code": invoked.error_code(),
            "result": body,
        }))?;
    } else {
        println!("{}", output::pretty_body(&a.body));
        let mut meta = format!(
            "execution {} · version {} · {} ms (billed {} ms)",
            invoked.execution_id(),
            a.header(h::EXECUTED_VERSION).unwrap_or("?"),
            a.header(h::DURATION_MS).unwrap_or("?"),
            a.header(h::BILLED_DURATION_MS).unwrap_or("?"),
        );
        if invoked.cold_start() {
            meta.push_str(&format!(
                " · cold start, init {} ms",
                a.header(h::INIT_DURATION_MS).unwrap_or("?")
            ));
        }
        eprintln!("{meta}");
    }
    match invoked.error_code() {
        Some(code) => {
            let message = serde_json::from_slice::<serde_json::Value>(&a.body)
                .ok()
                .and_then(|v| {
                    v.get("errorMessage")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            eprintln!("error: {code}: {message}");
            Ok(Outcome::Failed)
        }
        None => Ok(Outcome::Success),
    }
}
