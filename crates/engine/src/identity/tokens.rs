//! Personal API tokens for CI: `hola_pat_<id>_<secret>`. Only the secret's sha256 is stored;
//! the token is shown once. A token acts as its user (same projects and roles) until it
//! expires or is revoked.

use holactl_types::function::validate_name;
use holactl_types::identity::{CreatedToken, NewToken, TokenView, API_TOKEN_PREFIX};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{encode, Principal};
use crate::{now_ms, Engine, EngineError};

pub(super) const PREFIX: &str = "tokens/";
/// Longest lifetime a token can be given.
const MAX_DAYS: u32 = 3650;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub id: String,
    pub name: String,
    pub username: String,
    /// Hex sha256 of the secret part.
    pub secret_sha256: String,
    pub created_at: i64,
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

fn key(id: &str) -> String {
    format!("{PREFIX}{id}")
}

fn view(t: &TokenRecord) -> TokenView {
    TokenView {
        id: t.id.clone(),
        name: t.name.clone(),
        username: t.username.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
    }
}

fn token_not_found(id: &str) -> EngineError {
    EngineError::ResourceNotFound(format!("token {id:?} does not exist"))
}

/// Splits `hola_pat_<id>_<secret>`.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(API_TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

impl Engine {
    /// Creates a token acting as the calling user.
    pub async fn create_token(
        &self,
        principal: &Principal,
        req: NewToken,
    ) -> Result<CreatedToken, EngineError> {
        validate_name("name", &req.name, 64).map_err(EngineError::Invalid)?;
        let username = principal.name().to_owned();
        if !self
            .inner
            .identity
            .users
            .read()
            .map(|u| u.contains_key(&username))
            .unwrap_or(false)
        {
            return Err(EngineError::invalid(
                "token",
                "API tokens belong to users; log in as one (the admin token has no user)",
            ));
        }
        if let Some(days) = req.expires_in_days {
            if days == 0 || days > MAX_DAYS {
                return Err(EngineError::invalid(
                    "expires_in_days",
                    format!("must be 1 to {MAX_DAYS}"),
                ));
            }
        }
        let mut id = [0u8; 8];
        let mut secret = [0u8; 24];
        getrandom::fill(&mut id).map_err(|e| EngineError::Internal(e.to_string()))?;
        getrandom::fill(&mut secret).map_err(|e| EngineError::Internal(e.to_string()))?;
        let (id, secret) = (hex::encode(id), hex::encode(secret));
        let now = now_ms();
        let record = TokenRecord {
            id: id.clone(),
            name: req.name,
            username,
            secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
            created_at: now,
            expires_at: req.expires_in_days.map(|d| now + i64::from(d) * 86_400_000),
            revoked_at: None,
        };
        self.inner
            .stores
            .kv
            .create(&key(&id), encode(&record)?)
            .await?;
        if let Ok(mut all) = self.inner.identity.tokens.write() {
            all.insert(id.clone(), record.clone());
        }
        self.audit(
            principal.name(),
            "token.create",
            None,
            &format!("token {id}"),
            None::<&TokenView>,
            Some(&view(&record)),
        )
        .await;
        Ok(CreatedToken {
            token: format!("{API_TOKEN_PREFIX}{id}_{secret}"),
            view: view(&record),
        })
    }

    /// The caller's tokens (every token for administrators).
    pub fn list_tokens(&self, principal: &Principal) -> Vec<TokenView> {
        let mut out: Vec<TokenView> = self
            .inner
            .identity
            .tokens
            .read()
            .map(|all| {
                all.values()
                    .filter(|t| principal.is_admin() || t.username == principal.name())
                    .map(view)
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        out
    }

    /// Revokes a token: it is refused from now on (the record stays, marked).
    pub async fn revoke_token(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<TokenView, EngineError> {
        let record = self
            .inner
            .identity
            .tokens
            .read()
            .ok()
            .and_then(|all| all.get(id).cloned())
            .filter(|t| principal.is_admin() || t.username == principal.name())
            .ok_or_else(|| token_not_found(id))?;
        let revoked = self.mark_revoked(record).await?;
        self.audit(
            principal.name(),
            "token.revoke",
            None,
            &format!("token {id}"),
            None::<&TokenView>,
            Some(&view(&revoked)),
        )
        .await;
        Ok(view(&revoked))
    }

    async fn mark_revoked(&self, mut record: TokenRecord) -> Result<TokenRecord, EngineError> {
        if record.revoked_at.is_none() {
            record.revoked_at = Some(now_ms());
            self.inner
                .stores
                .kv
                .put(&key(&record.id), encode(&record)?)
                .await?;
            if let Ok(mut all) = self.inner.identity.tokens.write() {
                all.insert(record.id.clone(), record.clone());
            }
        }
        Ok(record)
    }

    pub(crate) async fn revoke_tokens_of(&self, username: &str) -> Result<(), EngineError> {
        let mine: Vec<TokenRecord> = self
            .inner
            .identity
            .tokens
            .read()
            .map(|all| {
                all.values()
                    .filter(|t| t.username == username)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for t in mine {
            self.mark_revoked(t).await?;
        }
        Ok(())
    }

    /// The user an API token acts as, if it is known, unexpired and not revoked.
    pub(super) fn token_user(&self, token: &str) -> Option<String> {
        let (id, secret) = parse(token)?;
        let all = self.inner.identity.tokens.read().ok()?;
        let t = all.get(id)?;
        let presented = hex::encode(Sha256::digest(secret.as_bytes()));
        let matches: bool = presented
            .as_bytes()
            .ct_eq(t.secret_sha256.as_bytes())
            .into();
        let live = t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now_ms());
        (matches && live).then(|| t.username.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens() {
        assert_eq!(parse("hola_pat_ab12_cdef"), Some(("ab12", "cdef")));
        assert_eq!(parse("hola_pat__cdef"), None);
        assert_eq!(parse("hola_pat_ab12_"), None);
        assert_eq!(parse("hola_pat_ab12"), None);
        assert_eq!(parse("hola_abc"), None);
    }
}
