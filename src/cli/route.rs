//! `holactl lambda route create|list|get|delete`: HTTP routes of the gateway. Without `--api`
//! a route belongs to the API named `default`, created on first use.

use clap::{Args, Subcommand, ValueEnum};
use holactl_types::gateway::{CreateRouteRequest, RouteAuth, RouteView, Throttle, DEFAULT_API};

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// `route` subcommands.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Route METHOD /path of an API to a function; prints the route's URL.
    Create(CreateArgs),
    /// List an API's routes.
    List(ApiArg),
    /// Show a route (by id or "METHOD /path").
    Get(RouteArg),
    /// Delete a route (by id or "METHOD /path") from $default; named stages keep it until
    /// their next deployment.
    Delete(RouteArg),
}

/// `--api`.
#[derive(Debug, Args)]
pub struct ApiArg {
    /// The API (default: `default`).
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
}

/// A route of an API.
#[derive(Debug, Args)]
pub struct RouteArg {
    /// Route id, or the route key "METHOD /path".
    pub route: String,
    #[command(flatten)]
    pub api: ApiArg,
}

/// How callers authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthArg {
    /// Anyone.
    None,
    /// An active API key of the API in the x-api-key header.
    ApiKey,
    /// A JWT checked by --authorizer.
    Jwt,
}

/// `route create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY.
    #[arg(long)]
    pub method: String,
    /// Path: /hola, /users/{id}, /files/{proxy+}.
    #[arg(long)]
    pub path: String,
    /// Function to invoke.
    #[arg(long)]
    pub function: String,
    /// Version or alias to invoke (default $LATEST).
    #[arg(long)]
    pub qualifier: Option<String>,
    #[command(flatten)]
    pub api: ApiArg,
    /// How callers authenticate.
    #[arg(long, value_enum, default_value = "none")]
    pub auth: AuthArg,
    /// The JWT authorizer (with --auth jwt).
    #[arg(long)]
    pub authorizer: Option<String>,
    /// With --auth jwt: a scope the token must carry (repeat for "any of").
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Throttling: requests per second (with --burst).
    #[arg(long, requires = "burst")]
    pub rate: Option<f64>,
    /// Throttling: requests allowed at once (with --rate).
    #[arg(long, requires = "rate")]
    pub burst: Option<u32>,
}

/// The route's URL: on the gateway listener when the server has one for its API, else on
/// the API endpoint under /gw/{api}.
pub fn url(g: &GlobalOpts, view: &RouteView) -> String {
    view.url
        .clone()
        .unwrap_or_else(|| format!("{}{}", g.endpoint.trim_end_matches('/'), view.path))
}

fn print_one(g: &GlobalOpts, v: &RouteView) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(v);
    }
    let mut rows = vec![
        ("Route", v.route_key.clone()),
        ("Id", v.id.clone()),
        ("API", v.api.clone()),
        ("URL", url(g, v)),
        ("Function", v.function.clone()),
    ];
    if let Some(q) = &v.qualifier {
        rows.push(("Qualifier", q.clone()));
    }
    rows.push(("Auth", v.auth.to_string()));
    if let Some(a) = &v.authorizer {
        rows.push(("Authorizer", a.clone()));
    }
    if !v.scopes.is_empty() {
        rows.push(("Scopes", v.scopes.join(" ")));
    }
    if let Some(t) = &v.throttle {
        rows.push(("Throttle", format!("{} req/s, burst {}", t.rate, t.burst)));
    }
    rows.push(("Created", output::time(v.created_at)));
    for (key, value) in rows {
        println!("{:<12}{value}", format!("{key}:"));
    }
    Ok(())
}

/// Runs a `route` subcommand.
pub async fn run(g: &GlobalOpts, cmd: RouteCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        RouteCommand::Create(a) => {
            let throttle = match (a.rate, a.burst) {
                (Some(rate), Some(burst)) => Some(Throttle { rate, burst }),
                _ => None,
            };
            let view = client
                .create_route(
                    &a.api.api,
                    &CreateRouteRequest {
                        method: a.method,
                        path: a.path,
                        function: a.function,
                        qualifier: a.qualifier,
                        auth: match a.auth {
                            AuthArg::None => RouteAuth::None,
                            AuthArg::ApiKey => RouteAuth::ApiKey,
                            AuthArg::Jwt => RouteAuth::Jwt,
                        },
                        authorizer: a.authorizer,
                        scopes: a.scopes,
                        throttle,
                    },
                )
                .await?;
            if g.output == OutputFormat::Json {
                output::json(&view)?;
            } else {
                println!(
                    "Route {} → {}{} created",
                    view.route_key,
                    view.function,
                    view.qualifier
                        .as_deref()
                        .map(|q| format!(":{q}"))
                        .unwrap_or_default()
                );
                println!("{}", url(g, &view));
            }
        }
        RouteCommand::List(a) => {
            let list = client.list_routes(&a.api).await?;
            if g.output == OutputFormat::Json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .routes
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            r.route_key.clone(),
                            match &r.qualifier {
                                Some(q) => format!("{}:{q}", r.function),
                                None => r.function.clone(),
                            },
                            match &r.authorizer {
                                Some(a) => format!("jwt ({a})"),
                                None => r.auth.to_string(),
                            },
                            r.throttle
                                .map(|t| format!("{}/s burst {}", t.rate, t.burst))
                                .unwrap_or_else(|| "-".into()),
                            url(g, r),
                        ]
                    })
                    .collect();
                output::table(
                    &["ID", "ROUTE", "FUNCTION", "AUTH", "THROTTLE", "URL"],
                    &rows,
                )?;
            }
        }
        RouteCommand::Get(a) => {
            let view = client.get_route(&a.api.api, &a.route).await?;
            print_one(g, &view)?;
        }
        RouteCommand::Delete(a) => {
            client.delete_route(&a.api.api, &a.route).await?;
            println!("Deleted route {} of API {}", a.route, a.api.api);
        }
    }
    Ok(Outcome::Success)
}
