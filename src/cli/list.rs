//! `holactl lambda list`.

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// Lists functions.
pub async fn run(g: &GlobalOpts) -> anyhow::Result<Outcome> {
    let list = g.client()?.list_functions().await?;
    if g.output == OutputFormat::Json {
        output::json(&list)?;
        return Ok(Outcome::Success);
    }
    let rows: Vec<Vec<String>> = list
        .functions
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.config.runtime.to_string(),
                f.config.handler.clone(),
                format!("{} MB", f.config.memory_mb),
                format!("{} s", f.config.timeout_s),
                output::bytes(f.code.size),
                output::time(f.updated_at),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME", "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT", "CODE", "UPDATED",
        ],
        &rows,
    )?;
    Ok(Outcome::Success)
}
