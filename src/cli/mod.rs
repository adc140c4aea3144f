//! `holactl lambda …`: one file per subcommand. Every command but `serve`, `init`, `export`,
//! `import` and `test --local` is a client of the HTTP API.

mod alias;
mod api;
mod api_key;
mod audit;
mod authorizer;
mod concurrency;
pub mod datadir;
mod delete;
mod deploy;
mod dlq;
mod executions;
mod get;
mod identity;
mod init;
mod invoke;
mod list;
pub mod logging;
mod logs;
mod metrics;
pub mod nats;
pub mod output;
mod policy;
mod publish_version;
mod queue;
mod route;
mod schedule;
mod secret;
pub mod serve;
mod status;
mod test_local;
mod transfer;
mod trigger;
mod update;
mod usage;
mod versions;
mod webhook;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::Client;

/// Default API endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";

/// holactl: run AWS Lambda-style functions on your own machines.
#[derive(Debug, Parser)]
#[command(name = "holactl", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: TopCommand,
}

/// Top-level commands.
// Parsed once per process; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// Serverless functions: serve the platform, deploy, invoke, inspect.
    Lambda(LambdaArgs),
    /// Sign in as a user; later commands to the same endpoint act as them.
    Login(LoginCommand),
    /// Forget the saved sign-in for the endpoint.
    Logout(LogoutCommand),
}

/// `holactl login`.
#[derive(Debug, Args)]
pub struct LoginCommand {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(flatten)]
    pub args: identity::LoginArgs,
}

/// `holactl logout`.
#[derive(Debug, Args)]
pub struct LogoutCommand {
    #[command(flatten)]
    pub global: GlobalOpts,
}

/// `holactl lambda`.
#[derive(Debug, Args)]
pub struct LambdaArgs {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: LambdaCommand,
}

/// How to render read commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables.
    #[default]
    Table,
    /// JSON, as the API returns it.
    Json,
}

/// Options every client command takes.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// API endpoint.
    #[arg(long, global = true, env = "HOLACTL_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// API token (default: the session saved by `holactl login` for the endpoint, else the
    /// admin token in the default data dir).
    #[arg(long, global = true, env = "HOLACTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Project new resources are created in (when you belong to several).
    #[arg(long, global = true, env = "HOLACTL_PROJECT")]
    pub project: Option<String>,
    /// Output format of read commands.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value_t
    )]
    pub output: OutputFormat,
}

/// `holactl lambda` subcommands.
// Parsed once per process; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum LambdaCommand {
    /// Run the platform on this machine (embedded store), or as a node of a cluster (--nats).
    Serve(serve::ServeArgs),
    /// Write a whole store (functions, code, queued work, history, users, secrets) to an
    /// archive, to import elsewhere: e.g. an embedded data dir into a NATS cluster.
    Export(transfer::ExportArgs),
    /// Load an archive written by `export` into an empty store (a data dir or a cluster).
    Import(transfer::ImportArgs),
    /// Scaffold a new function directory.
    Init(init::InitArgs),
    /// Create or update a function from a directory or zip.
    Deploy(deploy::DeployArgs),
    /// Invoke a function and print its answer.
    Invoke(invoke::InvokeArgs),
    /// List functions.
    List,
    /// Show a function.
    Get(get::GetArgs),
    /// Delete a function.
    Delete(delete::DeleteArgs),
    /// Show a function's logs.
    Logs(logs::LogsArgs),
    /// List a function's executions, or get/cancel one.
    Executions(executions::ExecutionsArgs),
    /// Run a function from a local directory, without a server.
    Test(test_local::TestArgs),
    /// Publish $LATEST as a new immutable version.
    PublishVersion(publish_version::PublishArgs),
    /// List a function's versions.
    Versions(versions::VersionsArgs),
    /// Show or delete one version.
    #[command(subcommand)]
    Version(versions::VersionCommand),
    /// Manage aliases and weighted traffic (blue/green).
    #[command(subcommand)]
    Alias(alias::AliasCommand),
    /// Reserved and provisioned concurrency of a function.
    #[command(subcommand)]
    Concurrency(concurrency::ConcurrencyCommand),
    /// Execution policies: which functions, queues and secrets a function may use through
    /// the internal API (default: none).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Manage secrets (encrypted at rest, bound with deploy --secret ENV=NAME).
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Show the audit trail of changes.
    Audit(audit::AuditArgs),
    /// Show usage and cost (requests, GB-seconds) per function and day.
    Usage(usage::UsageArgs),
    /// Show a function's metrics: invocations, error rate, p50/p95/p99 cold vs warm.
    Metrics(metrics::MetricsArgs),
    /// Show workers, instances, queue depths, concurrency and firing alerts.
    Status,
    /// Change a function's configuration without new code.
    Update(update::UpdateArgs),
    /// Inspect, replay or purge a function's dead-lettered async events.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Signed webhook URLs (GitHub, Stripe, HMAC) that invoke a function asynchronously.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Invoke functions on a cron expression or a fixed rate.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Named queues: create, send, receive, ack, and their dead-letter queues.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Event-source mappings: deliver a queue's messages to a function in batches.
    #[command(subcommand)]
    Trigger(trigger::TriggerCommand),
    /// Users: register, show yourself, change your password, list and delete (admins).
    #[command(subcommand)]
    User(identity::UserCommand),
    /// Projects (tenants) and their members' roles.
    #[command(subcommand)]
    Project(identity::ProjectCommand),
    /// API tokens for CI: create (shown once), list, revoke.
    #[command(subcommand)]
    Token(identity::TokenCommand),
    /// HTTP routes (API Gateway HTTP API style): METHOD /path → function, with auth and
    /// throttling; `route create` prints the URL.
    #[command(subcommand)]
    Route(route::RouteCommand),
    /// Gateway APIs: CORS, and stages deployed from the current routes.
    #[command(subcommand)]
    Api(api::ApiCommand),
    /// JWT authorizers of the gateway (HS256, RS256, ES256).
    #[command(subcommand)]
    Authorizer(authorizer::AuthorizerCommand),
    /// API keys for --auth api-key routes (shown once, stored hashed).
    #[command(subcommand)]
    ApiKey(api_key::ApiKeyCommand),
}

/// The per-user data dir: `$HOLACTL_DATA_DIR`, else `$XDG_DATA_HOME/holactl`, else
/// `~/.local/share/holactl`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOLACTL_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(xdg).join("holactl");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/share/holactl")
}

impl GlobalOpts {
    /// A client for the configured endpoint and token.
    pub fn client(&self) -> anyhow::Result<Client> {
        let token = match &self.token {
            Some(t) => Some(t.clone()),
            None if identity::saved_token(&self.endpoint).is_some() => {
                identity::saved_token(&self.endpoint)
            }
            None => {
                let path = default_data_dir().join(holactl_engine::auth::TOKEN_FILE);
                std::fs::read_to_string(&path)
                    .ok()
                    .map(|t| t.trim().to_owned())
            }
        };
        Ok(Client::new(&self.endpoint, token)?.with_project(self.project.clone()))
    }
}

/// What a command reports back to `main`.
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit non-zero; the message has been printed.
    Failed,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let args = match cli.command {
        TopCommand::Lambda(args) => args,
        TopCommand::Login(c) => return identity::login(&c.global, c.args).await,
        TopCommand::Logout(c) => return identity::logout(&c.global),
    };
    let g = &args.global;
    match args.command {
        LambdaCommand::Serve(a) => serve::run(a).await,
        LambdaCommand::Init(a) => init::run(a),
        LambdaCommand::Export(a) => transfer::export(g, a).await,
        LambdaCommand::Import(a) => transfer::import(g, a).await,
        LambdaCommand::Deploy(a) => deploy::run(g, a).await,
        LambdaCommand::Invoke(a) => invoke::run(g, a).await,
        LambdaCommand::List => list::run(g).await,
        LambdaCommand::Get(a) => get::run(g, a).await,
        LambdaCommand::Delete(a) => delete::run(g, a).await,
        LambdaCommand::Logs(a) => logs::run(g, a).await,
        LambdaCommand::Executions(a) => executions::run(g, a).await,
        LambdaCommand::Test(a) => test_local::run(g, a).await,
        LambdaCommand::PublishVersion(a) => publish_version::run(g, a).await,
        LambdaCommand::Versions(a) => versions::list(g, a).await,
        LambdaCommand::Version(c) => versions::run(g, c).await,
        LambdaCommand::Alias(c) => alias::run(g, c).await,
        LambdaCommand::Concurrency(c) => concurrency::run(g, c).await,
        LambdaCommand::Policy(c) => policy::run(g, c).await,
        LambdaCommand::Secret(c) => secret::run(g, c).await,
        LambdaCommand::Audit(a) => audit::run(g, a).await,
        LambdaCommand::Usage(a) => usage::run(g, a).await,
        LambdaCommand::Metrics(a) => metrics::run(g, a).await,
        LambdaCommand::Status => status::run(g).await,
        LambdaCommand::Update(a) => update::run(g, a).await,
        LambdaCommand::Dlq(c) => dlq::run(g, c).await,
        LambdaCommand::Webhook(c) => webhook::run(g, c).await,
        LambdaCommand::Schedule(c) => schedule::run(g, c).await,
        LambdaCommand::Queue(c) => queue::run(g, c).await,
        LambdaCommand::Trigger(c) => trigger::run(g, c).await,
        LambdaCommand::User(c) => identity::user(g, c).await,
        LambdaCommand::Project(c) => identity::project(g, c).await,
        LambdaCommand::Token(c) => identity::token(g, c).await,
        LambdaCommand::Route(c) => route::run(g, c).await,
        LambdaCommand::Api(c) => api::run(g, c).await,
        LambdaCommand::Authorizer(c) => authorizer::run(g, c).await,
        LambdaCommand::ApiKey(c) => api_key::run(g, c).await,
    }
}
