//! Execution policies (least privilege): what each function — and each alias, when it has a
//! policy of its own — may do through the platform's internal API, and the scoped token every
//! invocation receives to prove who is calling.
//!
//! - A policy lists functions it may invoke, queues it may send to and secrets it may read
//!   ([`ExecutionPolicy`]). Default: nothing. An alias's policy replaces the function's for
//!   invocations that came through that alias.
//! - Policies live under their own Kv keys, `policy/{function}` and
//!   `policy-alias/{function}/{alias}`, so setting one never races a function update. They are
//!   read from the store on every internal call (never cached), so a change applies to the next
//!   call, also of invocations already running. Deleting a function or an alias deletes its
//!   policies; a start removes any a crash left behind, so a function re-created under the
//!   same name never inherits an old grant.
//! - Each invocation gets a token ([`token`]) naming its function, qualifier, execution and
//!   instance, delivered in the `Lambda-Runtime-Hola-Token` header of `GET …/invocation/next`.
//!
//! # Layout
//! - this file: policy storage and the management API, the effective policy of a caller,
//!   minting tokens.
//! - [`token`]: the token format, minting and verification.
//! - [`internal`]: the internal API itself (`/hola/v1/…` on each instance's Runtime API
//!   endpoint): authentication, the policy decision, and the calls.

pub(crate) mod internal;
pub(crate) mod token;

use std::time::Duration;

use holactl_store::StoreError;
use holactl_types::policy::{ExecutionPolicy, PolicyView};
use holactl_types::version::{validate_alias_name, Qualifier};

use crate::functions::{decode, encode};
use crate::{now_ms, Engine, EngineError, Runnable};

pub(crate) use internal::InternalApi;
use token::{Claims, TokenKey};

const POLICY_PREFIX: &str = "policy/";
const ALIAS_POLICY_PREFIX: &str = "policy-alias/";

/// Default time a token stays valid after its invocation's deadline: covers a cold start's
/// initialisation (the deadline only starts at hand-off) and clock steps.
pub const DEFAULT_TOKEN_GRACE: Duration = Duration::from_secs(60);

fn policy_key(function: &str) -> String {
    format!("{POLICY_PREFIX}{function}")
}

fn alias_policy_key(function: &str, alias: &str) -> String {
    format!("{ALIAS_POLICY_PREFIX}{function}/{alias}")
}

/// The engine's policy state: the token key and how long tokens outlive their deadline.
#[derive(Debug)]
pub(crate) struct State {
    key: TokenKey,
    grace: Duration,
}

impl State {
    /// A fresh random token key.
    pub(crate) fn new(grace: Duration) -> Result<State, EngineError> {
        Ok(State {
            key: TokenKey::generate()
                .map_err(|e| EngineError::Internal(format!("no randomness for tokens: {e}")))?,
            grace,
        })
    }
}

/// What a caller is allowed, and where it came from (for messages).
#[derive(Debug)]
pub(crate) struct Effective {
    pub policy: ExecutionPolicy,
    /// The alias whose own policy applies, if one does.
    pub alias: Option<String>,
}

impl Engine {
    /// The scoped token of one invocation of `run` (invoked with `qualifier`) on `instance`.
    /// One HMAC: cheap enough for every invocation.
    pub(crate) fn mint_token(
        &self,
        run: &Runnable,
        qualifier: Option<&Qualifier>,
        execution: &str,
        instance: &str,
    ) -> String {
        let state = &self.inner.policy;
        let lifetime = Duration::from_secs(u64::from(run.config.timeout_s)) + state.grace;
        state.key.mint(&Claims {
            function: run.name.clone(),
            qualifier: qualifier.map(ToString::to_string),
            execution: execution.to_owned(),
            instance: instance.to_owned(),
            expires_at: now_ms().saturating_add(lifetime.as_millis() as i64),
        })
    }

    /// Checks that `function` exists and, when given, that it has `alias`.
    fn check_policy_target(&self, function: &str, alias: Option<&str>) -> Result<(), EngineError> {
        let entry = self.function_entry(function)?;
        if let Some(alias) = alias {
            validate_alias_name(alias)?;
            if !entry.aliases.contains_key(alias) {
                return Err(EngineError::ResourceNotFound(format!(
                    "function {function:?} has no alias {alias:?}"
                )));
            }
        }
        Ok(())
    }

    fn policy_store_key(function: &str, alias: Option<&str>) -> String {
        match alias {
            Some(a) => alias_policy_key(function, a),
            None => policy_key(function),
        }
    }

    /// The stored policy of `function` (or of its `alias`), if one is stored.
    async fn stored_policy(
        &self,
        function: &str,
        alias: Option<&str>,
    ) -> Result<Option<ExecutionPolicy>, EngineError> {
        self.inner
            .stores
            .kv
            .get(&Self::policy_store_key(function, alias))
            .await?
            .map(|e| decode::<ExecutionPolicy>(&e.value))
            .transpose()
    }

    fn policy_view(
        function: &str,
        alias: Option<&str>,
        policy: Option<ExecutionPolicy>,
    ) -> PolicyView {
        PolicyView {
            function: function.to_owned(),
            alias: alias.map(str::to_owned),
            set: policy.is_some(),
            policy: policy.unwrap_or_default(),
        }
    }

    /// `function`'s policy, or its `alias`'s own policy.
    pub async fn get_policy(
        &self,
        function: &str,
        alias: Option<&str>,
    ) -> Result<PolicyView, EngineError> {
        self.check_policy_target(function, alias)?;
        let policy = self.stored_policy(function, alias).await?;
        Ok(Self::policy_view(function, alias, policy))
    }

    /// Replaces `function`'s policy (or its `alias`'s). Audited.
    pub async fn set_policy(
        &self,
        actor: &str,
        function: &str,
        alias: Option<&str>,
        policy: ExecutionPolicy,
    ) -> Result<PolicyView, EngineError> {
        self.check_policy_target(function, alias)?;
        let policy = policy.normalize()?;
        let key = Self::policy_store_key(function, alias);
        let before = self.stored_policy(function, alias).await?;
        self.inner.stores.kv.put(&key, encode(&policy)?).await?;
        // A delete of the function or alias may have run meanwhile; a policy must not outlive
        // it, or a later namesake would inherit the grant.
        if let Err(e) = self.check_policy_target(function, alias) {
            let _ = self.inner.stores.kv.delete(&key, None).await;
            return Err(e);
        }
        let (action, target) = audit_names(function, alias, "set");
        self.audit(
            actor,
            action,
            Some(function),
            &target,
            before.as_ref(),
            Some(&policy),
        )
        .await;
        tracing::info!(function, alias, "execution policy set");
        Ok(Self::policy_view(function, alias, Some(policy)))
    }

    /// Removes `function`'s policy (it is then allowed nothing) or its `alias`'s (the
    /// function's then applies). Audited.
    pub async fn delete_policy(
        &self,
        actor: &str,
        function: &str,
        alias: Option<&str>,
    ) -> Result<(), EngineError> {
        self.check_policy_target(function, alias)?;
        let before = self.stored_policy(function, alias).await?;
        match self
            .inner
            .stores
            .kv
            .delete(&Self::policy_store_key(function, alias), None)
            .await
        {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let (action, target) = audit_names(function, alias, "delete");
        self.audit::<ExecutionPolicy>(
            actor,
            action,
            Some(function),
            &target,
            before.as_ref(),
            None,
        )
        .await;
        Ok(())
    }

    /// Drops every policy of `function` (when it is deleted).
    pub(crate) async fn forget_policies(&self, function: &str) {
        let kv = &self.inner.stores.kv;
        let _ = kv.delete(&policy_key(function), None).await;
        if let Ok(aliases) = kv.list(&format!("{ALIAS_POLICY_PREFIX}{function}/")).await {
            for (key, _) in aliases {
                let _ = kv.delete(&key, None).await;
            }
        }
    }

    /// Drops `alias`'s policy (when the alias is deleted).
    pub(crate) async fn forget_alias_policy(&self, function: &str, alias: &str) {
        let _ = self
            .inner
            .stores
            .kv
            .delete(&alias_policy_key(function, alias), None)
            .await;
    }

    /// Removes policies whose function or alias no longer exists (a delete interrupted by a
    /// crash). Runs at open, after the functions are loaded.
    pub(crate) async fn sweep_policies(&self) -> Result<(), EngineError> {
        let kv = &self.inner.stores.kv;
        for (key, _) in kv.list(POLICY_PREFIX).await? {
            let function = &key[POLICY_PREFIX.len()..];
            // Checked in the store too: another node may have created the function since
            // this one loaded functions.
            if self.function_entry(function).is_err() && self.function_gone(function).await {
                let _ = kv.delete(&key, None).await;
            }
        }
        for (key, _) in kv.list(ALIAS_POLICY_PREFIX).await? {
            let rest = &key[ALIAS_POLICY_PREFIX.len()..];
            let alive = rest.split_once('/').is_some_and(|(function, alias)| {
                self.function_entry(function)
                    .is_ok_and(|f| f.aliases.contains_key(alias))
            });
            let stored = || async {
                let Some((function, alias)) = rest.split_once('/') else {
                    return false;
                };
                matches!(
                    kv.get(&crate::versions::alias_key(function, alias)).await,
                    Ok(Some(_)) | Err(_)
                )
            };
            if !alive && !stored().await {
                let _ = kv.delete(&key, None).await;
            }
        }
        Ok(())
    }

    /// The policy in force for an invocation of `function` made with `qualifier`: the alias's
    /// own policy when the invocation came through an alias that has one, else the function's,
    /// else nothing.
    pub(crate) async fn effective_policy(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Effective, EngineError> {
        if let Some(Ok(Qualifier::Alias(alias))) = qualifier.map(Qualifier::parse) {
            if let Some(policy) = self.stored_policy(function, Some(&alias)).await? {
                return Ok(Effective {
                    policy,
                    alias: Some(alias),
                });
            }
        }
        Ok(Effective {
            policy: self
                .stored_policy(function, None)
                .await?
                .unwrap_or_default(),
            alias: None,
        })
    }
}

/// The audit action and target of a policy change.
fn audit_names(function: &str, alias: Option<&str>, verb: &str) -> (&'static str, String) {
    match (alias, verb) {
        (Some(a), "set") => ("alias.policy.set", format!("{function}:{a}")),
        (Some(a), _) => ("alias.policy.delete", format!("{function}:{a}")),
        (None, "set") => ("function.policy.set", function.to_owned()),
        (None, _) => ("function.policy.delete", function.to_owned()),
    }
}
