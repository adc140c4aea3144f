//! `holactl lambda delete NAME`.

use clap::Args;

use super::{GlobalOpts, Outcome};

/// `delete` options.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Function name.
    pub name: String,
}

/// Deletes a function.
pub async fn run(g: &GlobalOpts, args: DeleteArgs) -> anyhow::Result<Outcome> {
    g.client()?.delete_function(&args.name).await?;
    println!("Deleted {}", args.name);
    Ok(Outcome::Success)
}
