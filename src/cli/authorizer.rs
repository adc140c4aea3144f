//! `holactl lambda authorizer create|list|delete`: JWT authorizers of the gateway, each pinned
//! to one algorithm. An HS256 secret is read from stdin or a file, never from the command
//! line, and never shown again.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use holactl_types::gateway::{CreateAuthorizerRequest, JwtAlgorithm};

use super::route::ApiArg;
use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `authorizer` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuthorizerCommand {
    /// Create a JWT authorizer.
    Create(CreateArgs),
    /// List an API's authorizers.
    List(ApiArg),
    /// Delete an authorizer no route uses.
    Delete {
        /// Authorizer name.
        name: String,
        #[command(flatten)]
        api: ApiArg,
    },
}

/// Algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AlgorithmArg {
    /// HMAC-SHA256 with a shared secret (--hs256-secret-from-stdin/--hs256-secret-from-file).
    #[value(name = "HS256")]
    Hs256,
    /// RSA with SHA-256, keys from --jwks-file or --jwks-url.
    #[value(name = "RS256")]
    Rs256,
    /// ECDSA P-256 with SHA-256, keys from --jwks-file or --jwks-url.
    #[value(name = "ES256")]
    Es256,
}

/// `authorizer create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Authorizer name.
    pub name: String,
    #[command(flatten)]
    pub api: ApiArg,
    /// Required `iss` claim.
    #[arg(long)]
    pub issuer: String,
    /// Accepted audience (`aud` or `client_id`); repeat.
    #[arg(long = "audience", required = true)]
    pub audiences: Vec<String>,
    /// The only algorithm accepted.
    #[arg(long, value_enum)]
    pub algorithm: AlgorithmArg,
    /// JWKS file on the server (RS256, ES256).
    #[arg(long)]
    pub jwks_file: Option<PathBuf>,
    /// http:// JWKS URL, fetched and cached (RS256, ES256).
    #[arg(long)]
    pub jwks_url: Option<String>,
    /// Read the HS256 secret from stdin.
    #[arg(long)]
    pub hs256_secret_from_stdin: bool,
    /// Read the HS256 secret from this file.
    #[arg(long)]
    pub hs256_secret_from_file: Option<PathBuf>,
    /// Header holding the token (default Authorization; "Bearer " is optional).
    #[arg(long)]
    pub identity_header: Option<String>,
}

/// Runs an `authorizer` subcommand.
pub async fn run(g: &GlobalOpts, cmd: AuthorizerCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        AuthorizerCommand::Create(a) => {
            let hs256_secret = if a.hs256_secret_from_stdin || a.hs256_secret_from_file.is_some() {
                Some(super::secret::read_value(a.hs256_secret_from_file)?)
            } else {
                None
            };
            let jwks_file = match a.jwks_file {
                // The server reads the file: send an absolute path.
                Some(p) => Some(std::path::absolute(&p)?.display().to_string()),
                None => None,
            };
            let view = client
                .create_authorizer(
                    &a.api.api,
                    &CreateAuthorizerRequest {
                        name: a.name,
                        issuer: a.issuer,
                        audiences: a.audiences,
                        algorithm: match a.algorithm {
                            AlgorithmArg::Hs256 => JwtAlgorithm::HS256,
                            AlgorithmArg::Rs256 => JwtAlgorithm::RS256,
                            AlgorithmArg::Es256 => JwtAlgorithm::ES256,
                        },
                        hs256_secret,
                        jwks_file,
                        jwks_url: a.jwks_url,
                        identity_header: a.identity_header,
                    },
                )
                .await?;
            if g.output == OutputFormat::Json {
                output::json(&view)?;
            } else {
                println!(
                    "Authorizer {} ({}, issuer {}) created in API {}",
                    view.name, view.algorithm, view.issuer, view.api
                );
            }
        }
        AuthorizerCommand::List(a) => {
            let list = client.list_authorizers(&a.api).await?;
            if g.output == OutputFormat::Json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .authorizers
                    .iter()
                    .map(|v| {
                        vec![
                            v.name.clone(),
                            v.algorithm.to_string(),
                            v.issuer.clone(),
                            v.audiences.join(","),
                            v.jwks_file
                                .clone()
                                .or_else(|| v.jwks_url.clone())
                                .unwrap_or_else(|| "secret".into()),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "ALG", "ISSUER", "AUDIENCES", "KEYS"], &rows)?;
            }
        }
        AuthorizerCommand::Delete { name, api } => {
            client.delete_authorizer(&api.api, &name).await?;
            println!("Deleted authorizer {name} of API {}", api.api);
        }
    }
    Ok(Outcome::Success)
}
