//! Users, projects, roles and API tokens: the bodies of `/api/v1/users`, `/api/v1/projects` and
//! `/api/v1/tokens`, and the rules their names and passwords follow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{EpochMillis, ValidationError};

/// The project that owns resources created without one (and everything created before
/// projects existed).
pub const DEFAULT_PROJECT: &str = "default";
/// Header naming the project a create request puts its resource in.
pub const PROJECT_HEADER: &str = "x-hola-project";
/// Shortest password.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password (argon2 hashes any length; this bounds the work).
pub const MAX_PASSWORD_LEN: usize = 256;
/// Prefix of personal API tokens.
pub const API_TOKEN_PREFIX: &str = "hola_pat_";

/// What a member may do in a project.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything of the project.
    #[default]
    Viewer,
    /// Read, create, change, delete and invoke the project's resources.
    Developer,
    /// Also manage the project's members.
    Admin,
}

impl Role {
    /// `viewer`, `developer` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "developer" => Ok(Role::Developer),
            "admin" => Ok(Role::Admin),
            _ => Err(ValidationError::new(
                "role",
                "must be viewer, developer or admin",
            )),
        }
    }
}

/// `POST /api/v1/users/register` and `POST /api/v1/users/login`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// `[a-z0-9_.-]{3,64}`, starting with a letter or digit.
    pub username: String,
    /// 8 to 256 characters.
    pub password: String,
}

/// `PUT /api/v1/users/me`: a new password, proven with the current one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The current password.
    pub current_password: String,
    /// The new one.
    pub new_password: String,
}

/// A user, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// Login name.
    pub username: String,
    /// Platform administrator (every project, users, the platform's own endpoints).
    pub admin: bool,
    /// When registered.
    pub created_at: EpochMillis,
    /// Projects and the role in each.
    pub projects: BTreeMap<String, Role>,
}

/// `POST /api/v1/users/login`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// A bearer token (a signed JWT) for `Authorization: Bearer …`.
    pub token: String,
    /// When it stops being accepted.
    pub expires_at: EpochMillis,
    /// Who it is for.
    pub user: UserView,
}

/// `POST /api/v1/projects`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// `[A-Za-z0-9_-]{1,64}`.
    pub name: String,
}

/// A project, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectView {
    /// Name.
    pub name: String,
    /// When created.
    pub created_at: EpochMillis,
    /// Who created it.
    pub created_by: String,
    /// Members and their roles.
    pub members: BTreeMap<String, Role>,
}

/// `PUT /api/v1/projects/{project}/members/{username}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    /// The member's role.
    pub role: Role,
}

/// `POST /api/v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for (`ci`, `deploy-bot`): `[A-Za-z0-9_-]{1,64}`.
    pub name: String,
    /// Days until it expires (1–3650); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// An API token, as the API shows it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// Id (part of the token, not secret).
    pub id: String,
    /// Name.
    pub name: String,
    /// The user it acts as.
    pub username: String,
    /// When created.
    pub created_at: EpochMillis,
    /// When it expires, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<EpochMillis>,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<EpochMillis>,
}

/// `POST /api/v1/tokens`' answer: the token, shown this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// `hola_pat_<id>_<secret>`.
    pub token: String,
    /// Its record.
    #[serde(flatten)]
    pub view: TokenView,
}

/// Checks a user name: `[a-z0-9_.-]{3,64}`, starting with a letter or digit.
pub fn validate_username(name: &str) -> Result<(), ValidationError> {
    if name.len() < 3 || name.len() > 64 {
        return Err(ValidationError::new(
            "username",
            "must be 3 to 64 characters",
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        || !name.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.' || c == '-'
        })
    {
        return Err(ValidationError::new(
            "username",
            "may only contain lowercase letters, digits, '_', '.' and '-', and must start with a letter or digit",
        ));
    }
    if RESERVED_USERNAMES.contains(&name) {
        return Err(ValidationError::new(
            "username",
            format!(
                "{name:?} is reserved (it names the platform itself in audit trails and tokens)"
            ),
        ));
    }
    Ok(())
}

/// Names the platform uses for itself as an actor (the admin token, internal changes, self
/// registration): no user may take them.
pub const RESERVED_USERNAMES: &[&str] = &["admin", "system", "self-registration"];

/// Checks a password's length.
pub fn validate_password(field: &str, password: &str) -> Result<(), ValidationError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&n) {
        return Err(ValidationError::new(
            field,
            format!("must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_passwords() {
        for ok in ["ana", "dev.ops-1", "0x_robot"] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Ana",
            "-ana",
            "ana smith",
            "ana/..",
            &"a".repeat(65),
            "admin",
            "system",
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        assert!(validate_password("password", "12345678").is_ok());
        assert!(validate_password("password", "1234567").is_err());
        assert!(validate_password("password", &"x".repeat(257)).is_err());
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Viewer < Role::Developer && Role::Developer < Role::Admin);
        assert_eq!("developer".parse::<Role>().unwrap(), Role::Developer);
        assert!("owner".parse::<Role>().is_err());
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
    }
}
