//! Identity and tenancy: users (argon2id password hashes), sessions (HS256 JWTs with an
//! expiry), personal API tokens (only their hash stored, revocable), projects with members and
//! roles, and which project owns each resource.
//!
//! Everything is kept in the Kv store and mirrored in memory, so authenticating a request
//! reads no store: `users/<name>`, `projects/<name>`, `tokens/<id>`,
//! `owners/<kind>/<name>`, and `auth/session-key` (the JWT signing key).
//!
//! The admin token ([`crate::auth`]) stays: it is the platform administrator's credential.

mod ownership;
mod projects;
mod tokens;
mod users;

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use bytes::Bytes;
use holactl_store::{Kv, StoreError};
use holactl_types::identity::Role;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use ownership::ResourceKind;

use crate::{Engine, EngineError};

const SESSION_KEY: &str = "auth/session-key";
/// The store prefixes the in-memory identity state mirrors (followed across nodes).
pub(crate) const MIRRORED_PREFIXES: [&str; 4] = [
    users::PREFIX,
    projects::PREFIX,
    tokens::PREFIX,
    ownership::PREFIX,
];

/// Who is making a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The platform administrator: the admin token, or a user flagged admin.
    Admin {
        /// For the audit trail: `admin` or the user's name.
        name: String,
    },
    /// A user, through a session or one of their API tokens.
    User {
        /// Login name.
        username: String,
        /// Projects and the role in each.
        projects: BTreeMap<String, Role>,
    },
}

impl Principal {
    /// The name written in the audit trail.
    pub fn name(&self) -> &str {
        match self {
            Principal::Admin { name } => name,
            Principal::User { username, .. } => username,
        }
    }

    /// Platform administrator.
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin { .. })
    }

    /// The role in `project` (administrators are admins everywhere).
    pub fn role_in(&self, project: &str) -> Option<Role> {
        match self {
            Principal::Admin { .. } => Some(Role::Admin),
            Principal::User { projects, .. } => projects.get(project).copied(),
        }
    }

    /// Whether the principal holds at least `role` in `project`.
    pub fn can(&self, project: &str, role: Role) -> bool {
        self.role_in(project).is_some_and(|r| r >= role)
    }
}

/// Users, projects, tokens and owners, mirrored from the store.
#[derive(Default)]
pub(crate) struct State {
    session_key: RwLock<Vec<u8>>,
    users: RwLock<HashMap<String, users::UserRecord>>,
    projects: RwLock<HashMap<String, projects::ProjectRecord>>,
    tokens: RwLock<HashMap<String, tokens::TokenRecord>>,
    owners: RwLock<HashMap<(ResourceKind, String), String>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("identity::State").finish_non_exhaustive()
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, EngineError> {
    serde_json::from_slice(bytes)
        .map_err(|e| EngineError::Internal(format!("stored {key} is unreadable: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes, EngineError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| EngineError::Internal(e.to_string()))
}

async fn load_all<T: DeserializeOwned>(
    kv: &dyn Kv,
    prefix: &str,
) -> Result<HashMap<String, T>, EngineError> {
    let mut out = HashMap::new();
    for (key, entry) in kv.list(prefix).await? {
        let name = key.strip_prefix(prefix).unwrap_or(&key).to_owned();
        out.insert(name, decode(&key, &entry.value)?);
    }
    Ok(out)
}

impl Engine {
    /// Loads users, projects, tokens and owners, creating the session key on first start.
    pub(crate) async fn load_identity(&self) -> Result<(), EngineError> {
        let kv = self.inner.stores.kv.as_ref();
        let state = &self.inner.identity;
        let key = match kv.get(SESSION_KEY).await? {
            Some(e) => e.value.to_vec(),
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| EngineError::Internal(e.to_string()))?;
                match kv.create(SESSION_KEY, Bytes::copy_from_slice(&bytes)).await {
                    Ok(_) => bytes.to_vec(),
                    // Another start won the race: use its key.
                    Err(StoreError::Conflict { .. }) => kv
                        .get(SESSION_KEY)
                        .await?
                        .map(|e| e.value.to_vec())
                        .ok_or_else(|| EngineError::Internal("session key vanished".into()))?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if let Ok(mut k) = state.session_key.write() {
            *k = key;
        }
        let users = load_all(kv, users::PREFIX).await?;
        let projects = load_all(kv, projects::PREFIX).await?;
        let tokens = load_all(kv, tokens::PREFIX).await?;
        let owners = ownership::load(kv).await?;
        if let Ok(mut u) = state.users.write() {
            *u = users;
        }
        if let Ok(mut p) = state.projects.write() {
            *p = projects;
        }
        if let Ok(mut t) = state.tokens.write() {
            *t = tokens;
        }
        if let Ok(mut o) = state.owners.write() {
            *o = owners;
        }
        Ok(())
    }

    /// The principal a bearer token stands for, if any: the admin token, a personal API
    /// token, or a session JWT.
    pub fn principal(&self, bearer: &str) -> Option<Principal> {
        if self.authenticate(bearer) {
            return Some(Principal::Admin {
                name: "admin".to_owned(),
            });
        }
        let username = if bearer.starts_with(holactl_types::identity::API_TOKEN_PREFIX) {
            self.token_user(bearer)?
        } else {
            self.session_user(bearer)?
        };
        self.principal_of(&username)
    }

    /// The principal of a (known, enabled) user.
    pub(crate) fn principal_of(&self, username: &str) -> Option<Principal> {
        let admin = self
            .inner
            .identity
            .users
            .read()
            .ok()?
            .get(username)
            .map(|u| u.admin)?;
        if admin {
            return Some(Principal::Admin {
                name: username.to_owned(),
            });
        }
        Some(Principal::User {
            username: username.to_owned(),
            projects: self.memberships(username),
        })
    }

    /// The projects `username` belongs to, with the role in each.
    pub(crate) fn memberships(&self, username: &str) -> BTreeMap<String, Role> {
        self.inner
            .identity
            .projects
            .read()
            .map(|all| {
                all.values()
                    .filter_map(|p| p.members.get(username).map(|r| (p.name.clone(), *r)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_decide_what_a_principal_can_do() {
        let admin = Principal::Admin {
            name: "admin".into(),
        };
        assert!(admin.can("anything", Role::Admin));
        let dev = Principal::User {
            username: "ana".into(),
            projects: BTreeMap::from([
                ("web".to_owned(), Role::Developer),
                ("ops".to_owned(), Role::Viewer),
            ]),
        };
        assert!(dev.can("web", Role::Viewer));
        assert!(dev.can("web", Role::Developer));
        assert!(!dev.can("web", Role::Admin));
        assert!(dev.can("ops", Role::Viewer));
        assert!(!dev.can("ops", Role::Developer));
        assert!(!dev.can("default", Role::Viewer));
        assert_eq!(dev.name(), "ana");
        assert!(!dev.is_admin());
    }
}
