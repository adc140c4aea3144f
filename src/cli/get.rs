//! `holactl lambda get NAME`.

use clap::Args;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `get` options.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Function name.
    pub name: String,
}

/// Shows a function, including how its runtime maps onto this host.
pub async fn run(g: &GlobalOpts, args: GetArgs) -> anyhow::Result<Outcome> {
    let f = g.client()?.get_function(&args.name).await?;
    if g.output == OutputFormat::Json {
        output::json(&f)?;
        return Ok(Outcome::Success);
    }
    let r = &f.runtime_resolution;
    println!("Name:         {}", f.name);
    println!("ARN:          {}", f.arn);
    println!("Version:      {}", f.version);
    println!("Runtime:      {}", f.config.runtime);
    match (&r.interpreter, &r.interpreter_version) {
        (Some(path), Some(version)) => println!("Interpreter:  {path} ({version})"),
        _ => println!("Interpreter:  the package's bootstrap"),
    }
    if let Some(note) = &r.note {
        println!("Note:         {note}");
    }
    println!("Handler:      {}", f.config.handler);
    println!("Memory:       {} MB", f.config.memory_mb);
    println!("Timeout:      {} s", f.config.timeout_s);
    println!("/tmp:         {} MB", f.config.ephemeral_storage_mb);
    println!("Network:      {}", f.config.network.as_str());
    if !f.config.description.is_empty() {
        println!("Description:  {}", f.config.description);
    }
    println!(
        "Code:         sha256:{} ({} zipped, {} unpacked)",
        f.code.sha256,
        output::bytes(f.code.size),
        output::bytes(f.code.unpacked_size)
    );
    println!("Created:      {}", output::time(f.created_at));
    println!("Updated:      {}", output::time(f.updated_at));
    if !f.config.environment.is_empty() {
        println!("Environment:");
        for (k, v) in &f.config.environment {
            println!("  {k}={v}");
        }
    }
    Ok(Outcome::Success)
}
