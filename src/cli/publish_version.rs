//! `holactl lambda publish-version NAME [--description TEXT]`.

use clap::Args;

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `publish-version` options.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Function name.
    pub name: String,
    /// What this release is.
    #[arg(long)]
    pub description: Option<String>,
}

/// Snapshots `$LATEST` into a new immutable version.
pub async fn run(g: &GlobalOpts, args: PublishArgs) -> anyhow::Result<Outcome> {
    let v = g
        .client()?
        .publish_version(&args.name, args.description)
        .await?;
    if g.output == OutputFormat::Json {
        output::json(&v)?;
    } else {
        println!(
            "Published {}:{} (code {}){}",
            v.function,
            v.version,
            &v.code.sha256[..12],
            if v.description.is_empty() {
                String::new()
            } else {
                format!(" — {}", v.description)
            }
        );
    }
    Ok(Outcome::Success)
}
