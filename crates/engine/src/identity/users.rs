//! Users: registration, login (a session JWT), the current user, password changes.
//!
//! Passwords are hashed with argon2id (the crate's defaults: 19 MiB, 2 passes), on a blocking
//! thread. A login for an unknown user still verifies against a fixed hash, so timing does not
//! reveal which user names exist. Sessions carry the user's password version: changing the
//! password ends every earlier session.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use holactl_store::StoreError;
use holactl_types::identity::{
    validate_password, validate_username, ChangePassword, Credentials, Role, Session, UserView,
};
use serde::{Deserialize, Serialize};

use super::{decode, encode};
use crate::{now_ms, Engine, EngineError};

pub(super) const PREFIX: &str = "users/";
/// How long a session token is accepted.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub username: String,
    /// PHC string of the argon2id hash.
    pub password_hash: String,
    #[serde(default)]
    pub admin: bool,
    pub created_at: i64,
    /// Bumped on every password change; sessions name the one they were issued under.
    #[serde(default)]
    pub password_version: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionClaims {
    sub: String,
    iat: i64,
    exp: i64,
    /// The password version the session was issued under.
    pwv: u64,
    iss: String,
}

const ISSUER: &str = "holactl";

fn key(username: &str) -> String {
    format!("{PREFIX}{username}")
}

fn bad_credentials() -> EngineError {
    EngineError::Unauthorized
}

async fn hash_password(password: String) -> Result<String, EngineError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| EngineError::Internal(e.to_string()))?;
        let salt =
            SaltString::encode_b64(&salt).map_err(|e| EngineError::Internal(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| EngineError::Internal(format!("cannot hash the password: {e}")))
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))?
}

/// A valid hash of a password nobody has, verified when the user does not exist.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$Jd7oUu9nHRr9hYM1xWIhVcmV8lC6lpWZ4+xVv1Ji0fU";

async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DECOY_HASH.to_owned());
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && known
    })
    .await
    .unwrap_or(false)
}

impl Engine {
    fn user_record(&self, username: &str) -> Option<UserRecord> {
        self.inner
            .identity
            .users
            .read()
            .ok()?
            .get(username)
            .cloned()
    }

    fn user_view(&self, u: &UserRecord) -> UserView {
        UserView {
            username: u.username.clone(),
            admin: u.admin,
            created_at: u.created_at,
            projects: self.memberships(&u.username),
        }
    }

    /// Registers a user. Open registration (or an administrator) only: the server layer
    /// decides. With `personal_project`, the user also gets a project named after them (when
    /// that name is free), as its admin. The first user ever registered by an administrator
    /// can be made a platform administrator with `admin`.
    pub async fn register_user(
        &self,
        actor: &str,
        creds: Credentials,
        admin: bool,
        personal_project: bool,
    ) -> Result<UserView, EngineError> {
        validate_username(&creds.username).map_err(EngineError::Invalid)?;
        validate_password("password", &creds.password).map_err(EngineError::Invalid)?;
        let record = UserRecord {
            username: creds.username.clone(),
            password_hash: hash_password(creds.password).await?,
            admin,
            created_at: now_ms(),
            password_version: 0,
        };
        match self
            .inner
            .stores
            .kv
            .create(&key(&record.username), encode(&record)?)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(EngineError::Conflict(format!(
                    "user {:?} already exists",
                    record.username
                )))
            }
            Err(e) => return Err(e.into()),
        }
        if let Ok(mut users) = self.inner.identity.users.write() {
            users.insert(record.username.clone(), record.clone());
        }
        self.audit(
            actor,
            "user.register",
            None,
            &format!("user {}", record.username),
            None::<&UserView>,
            Some(&self.user_view(&record)),
        )
        .await;
        if personal_project {
            // Taken names are fine: the user simply has no personal project.
            let _ = self
                .create_project_as(&record.username, &record.username, Role::Admin)
                .await;
        }
        Ok(self.user_view(&record))
    }

    /// Checks a password and issues a session token.
    pub async fn login(&self, creds: Credentials) -> Result<Session, EngineError> {
        let user = self.user_record(&creds.username);
        let ok = verify_password(
            creds.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await;
        let (true, Some(user)) = (ok, user) else {
            tracing::warn!(username = %creds.username, "login refused");
            return Err(bad_credentials());
        };
        let now = now_ms();
        let claims = SessionClaims {
            sub: user.username.clone(),
            iat: now / 1000,
            exp: (now + SESSION_TTL_MS) / 1000,
            pwv: user.password_version,
            iss: ISSUER.to_owned(),
        };
        let key = self
            .inner
            .identity
            .session_key
            .read()
            .map(|k| k.clone())
            .map_err(|_| EngineError::Internal("session key lock".into()))?;
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&key),
        )
        .map_err(|e| EngineError::Internal(format!("cannot sign a session: {e}")))?;
        tracing::info!(username = %user.username, "login");
        Ok(Session {
            token,
            expires_at: claims.exp * 1000,
            user: self.user_view(&user),
        })
    }

    /// The user a session token belongs to, if it is valid, unexpired and issued under the
    /// user's current password.
    pub(super) fn session_user(&self, token: &str) -> Option<String> {
        let key = self.inner.identity.session_key.read().ok()?.clone();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        let data = jsonwebtoken::decode::<SessionClaims>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(&key),
            &validation,
        )
        .ok()?;
        let user = self.user_record(&data.claims.sub)?;
        (user.password_version == data.claims.pwv).then_some(user.username)
    }

    /// The current user.
    pub fn me(&self, username: &str) -> Result<UserView, EngineError> {
        self.user_record(username)
            .map(|u| self.user_view(&u))
            .ok_or(EngineError::Unauthorized)
    }

    /// Every user (administrators).
    pub fn list_users(&self) -> Vec<UserView> {
        let mut users: Vec<UserRecord> = self
            .inner
            .identity
            .users
            .read()
            .map(|u| u.values().cloned().collect())
            .unwrap_or_default();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        users.iter().map(|u| self.user_view(u)).collect()
    }

    /// Changes a user's password (proven with the current one); earlier sessions end.
    pub async fn change_password(
        &self,
        username: &str,
        change: ChangePassword,
    ) -> Result<UserView, EngineError> {
        validate_password("new_password", &change.new_password).map_err(EngineError::Invalid)?;
        let kv = &self.inner.stores.kv;
        let entry = kv
            .get(&key(username))
            .await?
            .ok_or(EngineError::Unauthorized)?;
        let mut user: UserRecord = decode(&key(username), &entry.value)?;
        if !verify_password(change.current_password, Some(user.password_hash.clone())).await {
            return Err(EngineError::invalid(
                "current_password",
                "does not match the current password",
            ));
        }
        user.password_hash = hash_password(change.new_password).await?;
        user.password_version += 1;
        kv.update(&key(username), encode(&user)?, entry.revision)
            .await?;
        if let Ok(mut users) = self.inner.identity.users.write() {
            users.insert(user.username.clone(), user.clone());
        }
        self.audit(
            username,
            "user.password",
            None,
            &format!("user {username}"),
            None::<&UserView>,
            None::<&UserView>,
        )
        .await;
        Ok(self.user_view(&user))
    }

    /// Deletes a user: their tokens are revoked and they leave every project.
    pub async fn delete_user(&self, actor: &str, username: &str) -> Result<(), EngineError> {
        let before = self.user_record(username).ok_or_else(|| {
            EngineError::ResourceNotFound(format!("user {username:?} does not exist"))
        })?;
        for project in self.memberships(username).into_keys() {
            self.remove_member_unchecked(&project, username).await?;
        }
        self.revoke_tokens_of(username).await?;
        self.inner.stores.kv.delete(&key(username), None).await?;
        if let Ok(mut users) = self.inner.identity.users.write() {
            users.remove(username);
        }
        self.audit(
            actor,
            "user.delete",
            None,
            &format!("user {username}"),
            Some(&self.user_view(&before)),
            None::<&UserView>,
        )
        .await;
        Ok(())
    }

    /// Whether any user exists.
    pub fn has_users(&self) -> bool {
        self.inner
            .identity
            .users
            .read()
            .map(|u| !u.is_empty())
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_the_decoy_never_matches() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(h.clone())).await);
        assert!(!verify_password("wrong horse".into(), Some(h)).await);
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
        assert!(!verify_password("anything".into(), None).await);
    }
}
