//! `holactl lambda api create|list|get|delete|cors|deploy|stages|delete-stage`: the gateway's
//! APIs, their CORS configuration and their stages. `$default` always serves the current
//! routes; a named stage serves the snapshot its last `deploy` took, at /gw/{api}/{stage}/….

use clap::{Args, Subcommand};
use holactl_types::gateway::{
    ApiView, CorsConfig, CreateApiRequest, DeployStageRequest, DEFAULT_API,
};

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `api` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Create an API.
    Create {
        /// API name (part of its URL: /gw/NAME/…).
        name: String,
        #[command(flatten)]
        cors: CorsArgs,
    },
    /// List APIs.
    List,
    /// Show an API.
    Get {
        /// API name.
        name: String,
    },
    /// Delete an API with its routes, authorizers, keys and stages.
    Delete {
        /// API name.
        name: String,
    },
    /// Set (or with --clear remove) an API's CORS configuration; preflights are then answered
    /// by the gateway.
    Cors {
        /// API name.
        #[arg(default_value = DEFAULT_API)]
        name: String,
        #[command(flatten)]
        cors: CorsArgs,
        /// Turn CORS off.
        #[arg(long, conflicts_with_all = ["allow_origins", "allow_methods", "allow_headers", "expose_headers", "max_age", "allow_credentials"])]
        clear: bool,
    },
    /// Deploy the current routes and authorizers to a named stage (a snapshot).
    Deploy {
        /// API name.
        #[arg(default_value = DEFAULT_API)]
        name: String,
        /// Stage name (created or replaced).
        #[arg(long)]
        stage: String,
        /// What this deployment is.
        #[arg(long)]
        description: Option<String>,
    },
    /// List an API's named stages.
    Stages {
        /// API name.
        #[arg(default_value = DEFAULT_API)]
        name: String,
    },
    /// Delete a named stage.
    DeleteStage {
        /// API name.
        #[arg(default_value = DEFAULT_API)]
        name: String,
        /// Stage name.
        #[arg(long)]
        stage: String,
    },
}

/// CORS flags (the seed's `cors_configuration`).
#[derive(Debug, Args)]
pub struct CorsArgs {
    /// Allowed origin (https://app.example.com) or *; repeat.
    #[arg(long = "allow-origin")]
    pub allow_origins: Vec<String>,
    /// Allowed method or *; repeat.
    #[arg(long = "allow-method")]
    pub allow_methods: Vec<String>,
    /// Allowed request header or *; repeat.
    #[arg(long = "allow-header")]
    pub allow_headers: Vec<String>,
    /// Response header browsers may read; repeat.
    #[arg(long = "expose-header")]
    pub expose_headers: Vec<String>,
    /// Seconds a preflight answer may be cached.
    #[arg(long)]
    pub max_age: Option<u32>,
    /// Allow credentials (cookies, Authorization); needs explicit origins.
    #[arg(long)]
    pub allow_credentials: bool,
}

impl CorsArgs {
    fn config(self) -> Option<CorsConfig> {
        let c = CorsConfig {
            allow_origins: self.allow_origins,
            allow_methods: self.allow_methods,
            allow_headers: self.allow_headers,
            expose_headers: self.expose_headers,
            max_age: self.max_age,
            allow_credentials: self.allow_credentials,
        };
        (c != CorsConfig::default()).then_some(c)
    }
}

fn base_url(g: &GlobalOpts, v: &ApiView) -> String {
    v.url
        .clone()
        .unwrap_or_else(|| format!("{}{}", g.endpoint.trim_end_matches('/'), v.path))
}

fn print_api(g: &GlobalOpts, v: &ApiView) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(v);
    }
    println!("{:<10}{}", "Name:", v.name);
    println!("{:<10}{}", "Id:", v.id);
    println!("{:<10}{}", "URL:", base_url(g, v));
    println!("{:<10}{}", "Routes:", v.routes);
    let mut stages = vec!["$default".to_owned()];
    stages.extend(v.stages.iter().cloned());
    println!("{:<10}{}", "Stages:", stages.join(", "));
    match &v.cors {
        Some(c) => println!("{:<10}{}", "CORS:", serde_json::to_string(c)?),
        None => println!("{:<10}off", "CORS:"),
    }
    println!("{:<10}{}", "Created:", output::time(v.created_at));
    Ok(())
}

/// Runs an `api` subcommand.
pub async fn run(g: &GlobalOpts, cmd: ApiCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        ApiCommand::Create { name, cors } => {
            let view = client
                .create_api(&CreateApiRequest {
                    name,
                    cors: cors.config(),
                })
                .await?;
            if g.output == OutputFormat::Json {
                output::json(&view)?;
            } else {
                println!("API {} created: {}", view.name, base_url(g, &view));
            }
        }
        ApiCommand::List => {
            let list = client.list_apis().await?;
            if g.output == OutputFormat::Json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .apis
                    .iter()
                    .map(|a| {
                        vec![
                            a.name.clone(),
                            a.routes.to_string(),
                            a.stages.join(","),
                            if a.cors.is_some() { "on" } else { "off" }.to_owned(),
                            base_url(g, a),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "ROUTES", "STAGES", "CORS", "URL"], &rows)?;
            }
        }
        ApiCommand::Get { name } => print_api(g, &client.get_api(&name).await?)?,
        ApiCommand::Delete { name } => {
            client.delete_api(&name).await?;
            println!("Deleted API {name}");
        }
        ApiCommand::Cors { name, cors, clear } => {
            let config = if clear { None } else { cors.config() };
            if config.is_none() && !clear {
                anyhow::bail!("INVALID_INPUT: give CORS flags (--allow-origin …) or --clear");
            }
            let view = client.set_api_cors(&name, config).await?;
            print_api(g, &view)?;
        }
        ApiCommand::Deploy {
            name,
            stage,
            description,
        } => {
            let view = client
                .deploy_stage(&name, &DeployStageRequest { stage, description })
                .await?;
            if g.output == OutputFormat::Json {
                output::json(&view)?;
            } else {
                println!(
                    "Deployed {} route(s) of API {} to stage {}: {}{}",
                    view.routes.len(),
                    view.api,
                    view.name,
                    g.endpoint.trim_end_matches('/'),
                    view.path
                );
            }
        }
        ApiCommand::Stages { name } => {
            let list = client.list_stages(&name).await?;
            if g.output == OutputFormat::Json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .stages
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.routes.len().to_string(),
                            output::time(s.deployed_at),
                            s.description.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["STAGE", "ROUTES", "DEPLOYED", "DESCRIPTION"], &rows)?;
            }
        }
        ApiCommand::DeleteStage { name, stage } => {
            client.delete_stage(&name, &stage).await?;
            println!("Deleted stage {stage} of API {name}");
        }
    }
    Ok(Outcome::Success)
}
