//! `holactl login`/`logout`, and `holactl lambda user|project|token`: accounts, projects and
//! API tokens. Passwords are read from standard input (`--password-stdin`) or
//! `HOLACTL_PASSWORD`, never from the command line. A login is saved per endpoint in
//! `~/.config/holactl/credentials.json` (mode 0600) and used by later commands.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use holactl_types::identity::{ChangePassword, Credentials, NewToken, Role};

use super::{output, GlobalOpts, Outcome, OutputFormat};

/// Where logins are saved: `$XDG_CONFIG_HOME/holactl/credentials.json`, else
/// `~/.config/holactl/credentials.json`.
pub fn credentials_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".config")
        });
    base.join("holactl/credentials.json")
}

fn load_saved() -> BTreeMap<String, String> {
    std::fs::read(credentials_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The token saved by `holactl login` for `endpoint`, if any.
pub fn saved_token(endpoint: &str) -> Option<String> {
    load_saved().remove(endpoint.trim_end_matches('/'))
}

fn save(all: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let path = credentials_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(&serde_json::to_vec_pretty(all)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads a password: `HOLACTL_PASSWORD`, or one line of standard input.
fn read_password(stdin: bool) -> anyhow::Result<String> {
    if !stdin {
        if let Ok(p) = std::env::var("HOLACTL_PASSWORD") {
            return Ok(p);
        }
        anyhow::bail!(
            "give the password on standard input with --password-stdin, or in HOLACTL_PASSWORD"
        );
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `holactl login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// User name.
    #[arg(long, short = 'u')]
    pub username: String,
    /// Read the password from standard input (otherwise from HOLACTL_PASSWORD).
    #[arg(long)]
    pub password_stdin: bool,
}

/// Logs in and saves the session for the endpoint.
pub async fn login(g: &GlobalOpts, args: LoginArgs) -> anyhow::Result<Outcome> {
    let password = read_password(args.password_stdin)?;
    let client = crate::client::Client::new(&g.endpoint, None)?;
    let session = client
        .login(&Credentials {
            username: args.username,
            password,
        })
        .await?;
    let mut all = load_saved();
    all.insert(g.endpoint.trim_end_matches('/').to_owned(), session.token);
    save(&all)?;
    println!(
        "Logged in to {} as {} until {} (saved in {}).",
        g.endpoint,
        session.user.username,
        output::time(session.expires_at),
        credentials_path().display()
    );
    Ok(Outcome::Success)
}

/// Forgets the saved session of the endpoint.
pub fn logout(g: &GlobalOpts) -> anyhow::Result<Outcome> {
    let mut all = load_saved();
    if all.remove(g.endpoint.trim_end_matches('/')).is_some() {
        save(&all)?;
        println!("Logged out of {}.", g.endpoint);
    } else {
        println!("Not logged in to {}.", g.endpoint);
    }
    Ok(Outcome::Success)
}

/// `holactl lambda user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Register a user (administrators, or anyone when registration is open).
    Register {
        /// User name: `[a-z0-9_.-]{3,64}`.
        username: String,
        /// Read the password from standard input (otherwise from HOLACTL_PASSWORD).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Show the signed-in user and their projects.
    Me,
    /// Change the signed-in user's password (current, then new, one per line on stdin).
    Passwd,
    /// List users (administrators).
    List,
    /// Delete a user (administrators).
    Delete {
        /// User name.
        username: String,
    },
}

/// `holactl lambda project …`.
#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project; you become its admin.
    Create {
        /// `[A-Za-z0-9_-]{1,64}`.
        name: String,
    },
    /// List your projects.
    List,
    /// Show a project and its members.
    Get {
        /// Project name.
        name: String,
    },
    /// Add a member or change their role (project admins).
    AddMember {
        /// Project name.
        project: String,
        /// User name.
        username: String,
        /// `viewer`, `developer` or `admin`.
        #[arg(long, default_value = "developer")]
        role: String,
    },
    /// Remove a member (project admins).
    RemoveMember {
        /// Project name.
        project: String,
        /// User name.
        username: String,
    },
}

/// `holactl lambda token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token acting as you (for CI); it is shown once.
    Create {
        /// What it is for.
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List your tokens.
    List,
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}

fn print_user(g: &GlobalOpts, u: &holactl_types::identity::UserView) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(u);
    }
    println!(
        "User:     {}{}",
        u.username,
        if u.admin { " (administrator)" } else { "" }
    );
    println!("Created:  {}", output::time(u.created_at));
    if u.projects.is_empty() {
        println!("Projects: none");
    } else {
        let rows: Vec<Vec<String>> = u
            .projects
            .iter()
            .map(|(p, r)| vec![p.clone(), r.to_string()])
            .collect();
        output::table(&["PROJECT", "ROLE"], &rows)?;
    }
    Ok(())
}

fn print_project(g: &GlobalOpts, p: &holactl_types::identity::ProjectView) -> anyhow::Result<()> {
    if g.output == OutputFormat::Json {
        return output::json(p);
    }
    println!(
        "Project: {} (created by {} {})",
        p.name,
        p.created_by,
        output::time(p.created_at)
    );
    let rows: Vec<Vec<String>> = p
        .members
        .iter()
        .map(|(u, r)| vec![u.clone(), r.to_string()])
        .collect();
    output::table(&["MEMBER", "ROLE"], &rows)
}

/// Runs `holactl lambda user …`.
pub async fn user(g: &GlobalOpts, cmd: UserCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        UserCommand::Register {
            username,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let u = client.register(&Credentials { username, password }).await?;
            print_user(g, &u)?;
        }
        UserCommand::Me => print_user(g, &client.me().await?)?,
        UserCommand::Passwd => {
            let mut lines = std::io::stdin().lock().lines();
            let mut next = |what: &str| -> anyhow::Result<String> {
                lines
                    .next()
                    .transpose()?
                    .with_context(|| format!("expected the {what} password on standard input"))
            };
            let change = ChangePassword {
                current_password: next("current")?,
                new_password: next("new")?,
            };
            client.change_password(&change).await?;
            println!("Password changed; earlier sessions have ended. Log in again.");
        }
        UserCommand::List => {
            let users = client.list_users().await?;
            if g.output == OutputFormat::Json {
                output::json(&users)?;
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.username.clone(),
                            if u.admin { "yes" } else { "no" }.to_owned(),
                            u.projects
                                .iter()
                                .map(|(p, r)| format!("{p}:{r}"))
                                .collect::<Vec<_>>()
                                .join(","),
                        ]
                    })
                    .collect();
                output::table(&["USER", "ADMIN", "PROJECTS"], &rows)?;
            }
        }
        UserCommand::Delete { username } => {
            client.delete_user(&username).await?;
            println!("Deleted user {username}.");
        }
    }
    Ok(Outcome::Success)
}

/// Runs `holactl lambda project …`.
pub async fn project(g: &GlobalOpts, cmd: ProjectCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        ProjectCommand::Create { name } => print_project(g, &client.create_project(&name).await?)?,
        ProjectCommand::List => {
            let projects = client.list_projects().await?;
            if g.output == OutputFormat::Json {
                output::json(&projects)?;
            } else {
                let rows: Vec<Vec<String>> = projects
                    .iter()
                    .map(|p| vec![p.name.clone(), p.members.len().to_string()])
                    .collect();
                output::table(&["PROJECT", "MEMBERS"], &rows)?;
            }
        }
        ProjectCommand::Get { name } => print_project(g, &client.get_project(&name).await?)?,
        ProjectCommand::AddMember {
            project,
            username,
            role,
        } => {
            let role: Role = role.parse()?;
            print_project(g, &client.set_member(&project, &username, role).await?)?;
        }
        ProjectCommand::RemoveMember { project, username } => {
            print_project(g, &client.remove_member(&project, &username).await?)?
        }
    }
    Ok(Outcome::Success)
}

/// Runs `holactl lambda token …`.
pub async fn token(g: &GlobalOpts, cmd: TokenCommand) -> anyhow::Result<Outcome> {
    let client = g.client()?;
    match cmd {
        TokenCommand::Create {
            name,
            expires_in_days,
        } => {
            let t = client
                .create_token(&NewToken {
                    name,
                    expires_in_days,
                })
                .await?;
            if g.output == OutputFormat::Json {
                output::json(&t)?;
            } else {
                println!("{}", t.token);
                eprintln!(
                    "Token {} ({}) created; it is shown only this once. Use it as HOLACTL_TOKEN.",
                    t.view.id, t.view.name
                );
            }
        }
        TokenCommand::List => {
            let tokens = client.list_tokens().await?;
            if g.output == OutputFormat::Json {
                output::json(&tokens)?;
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.name.clone(),
                            t.username.clone(),
                            output::time(t.created_at),
                            t.expires_at.map_or("never".to_owned(), output::time),
                            t.revoked_at.map_or("-".to_owned(), output::time),
                        ]
                    })
                    .collect();
                output::table(
                    &["ID", "NAME", "USER", "CREATED", "EXPIRES", "REVOKED"],
                    &rows,
                )?;
            }
        }
        TokenCommand::Revoke { id } => {
            let t = client.revoke_token(&id).await?;
            println!("Revoked token {} ({}).", t.id, t.name);
        }
    }
    Ok(Outcome::Success)
}
