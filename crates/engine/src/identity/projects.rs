//! Projects: the tenant boundary. Functions, queues, schedules, webhooks, secrets, triggers
//! and APIs belong to one; members hold a role in it.

use std::collections::BTreeMap;

use holactl_store::StoreError;
use holactl_types::function::validate_name;
use holactl_types::identity::{ProjectView, Role, DEFAULT_PROJECT};
use serde::{Deserialize, Serialize};

use super::{decode, encode, Principal};
use crate::{now_ms, Engine, EngineError};

pub(super) const PREFIX: &str = "projects/";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ProjectRecord {
    pub name: String,
    pub created_at: i64,
    pub created_by: String,
    pub members: BTreeMap<String, Role>,
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn view(p: &ProjectRecord) -> ProjectView {
    ProjectView {
        name: p.name.clone(),
        created_at: p.created_at,
        created_by: p.created_by.clone(),
        members: p.members.clone(),
    }
}

/// The answer for a project the caller may not see: the same as for one that does not exist.
pub(crate) fn project_not_found(name: &str) -> EngineError {
    EngineError::ResourceNotFound(format!("project {name:?} does not exist"))
}

impl Engine {
    fn project_record(&self, name: &str) -> Option<ProjectRecord> {
        self.inner.identity.projects.read().ok()?.get(name).cloned()
    }

    /// Creates a project with `creator` as a member holding `role` (administrators create
    /// projects without joining them).
    pub(crate) async fn create_project_as(
        &self,
        creator: &str,
        name: &str,
        role: Role,
    ) -> Result<ProjectView, EngineError> {
        validate_name("name", name, 64).map_err(EngineError::Invalid)?;
        let record = ProjectRecord {
            name: name.to_owned(),
            created_at: now_ms(),
            created_by: creator.to_owned(),
            members: if self.user_exists(creator) {
                BTreeMap::from([(creator.to_owned(), role)])
            } else {
                BTreeMap::new()
            },
        };
        match self
            .inner
            .stores
            .kv
            .create(&key(name), encode(&record)?)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(EngineError::Conflict(format!(
                    "project {name:?} already exists"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        if let Ok(mut all) = self.inner.identity.projects.write() {
            all.insert(name.to_owned(), record.clone());
        }
        if creator == "system" {
            // The `default` project made at first start is not anyone's change.
            return Ok(view(&record));
        }
        self.audit(
            creator,
            "project.create",
            None,
            &format!("project {name}"),
            None::<&ProjectView>,
            Some(&view(&record)),
        )
        .await;
        Ok(view(&record))
    }

    /// Creates the `default` project (no members: administrators only, until some are added)
    /// if it does not exist.
    pub(crate) async fn ensure_default_project(&self) -> Result<(), EngineError> {
        if self.project_record(DEFAULT_PROJECT).is_some() {
            return Ok(());
        }
        match self
            .create_project_as("system", DEFAULT_PROJECT, Role::Admin)
            .await
        {
            Ok(_) | Err(EngineError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn user_exists(&self, username: &str) -> bool {
        self.inner
            .identity
            .users
            .read()
            .map(|u| u.contains_key(username))
            .unwrap_or(false)
    }

    /// Creates a project; a user creating it becomes its admin.
    pub async fn create_project(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<ProjectView, EngineError> {
        self.create_project_as(principal.name(), name, Role::Admin)
            .await
    }

    /// The projects `principal` belongs to (all for administrators).
    pub fn list_projects(&self, principal: &Principal) -> Vec<ProjectView> {
        let mut out: Vec<ProjectView> = self
            .inner
            .identity
            .projects
            .read()
            .map(|all| {
                all.values()
                    .filter(|p| principal.role_in(&p.name).is_some())
                    .map(view)
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One project, if `principal` may see it.
    pub fn get_project(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<ProjectView, EngineError> {
        match self.project_record(name) {
            Some(p) if principal.role_in(name).is_some() => Ok(view(&p)),
            _ => Err(project_not_found(name)),
        }
    }

    /// Adds a member or changes their role (project admins and administrators).
    pub async fn set_member(
        &self,
        principal: &Principal,
        project: &str,
        username: &str,
        role: Role,
    ) -> Result<ProjectView, EngineError> {
        self.check_project_admin(principal, project)?;
        if !self.user_exists(username) {
            return Err(EngineError::ResourceNotFound(format!(
                "user {username:?} does not exist"
            )));
        }
        self.change_members(principal.name(), project, |m| {
            m.insert(username.to_owned(), role);
        })
        .await
    }

    /// Removes a member (project admins and administrators).
    pub async fn remove_member(
        &self,
        principal: &Principal,
        project: &str,
        username: &str,
    ) -> Result<ProjectView, EngineError> {
        self.check_project_admin(principal, project)?;
        self.remove_member_unchecked(project, username).await
    }

    pub(crate) async fn remove_member_unchecked(
        &self,
        project: &str,
        username: &str,
    ) -> Result<ProjectView, EngineError> {
        self.change_members("system", project, |m| {
            m.remove(username);
        })
        .await
    }

    fn check_project_admin(&self, principal: &Principal, project: &str) -> Result<(), EngineError> {
        if self.project_record(project).is_none() || principal.role_in(project).is_none() {
            return Err(project_not_found(project));
        }
        if !principal.can(project, Role::Admin) {
            return Err(EngineError::Forbidden(format!(
                "managing the members of project {project:?} needs its admin role"
            )));
        }
        Ok(())
    }

    async fn change_members(
        &self,
        actor: &str,
        project: &str,
        change: impl Fn(&mut BTreeMap<String, Role>),
    ) -> Result<ProjectView, EngineError> {
        let kv = &self.inner.stores.kv;
        loop {
            let entry = kv
                .get(&key(project))
                .await?
                .ok_or_else(|| project_not_found(project))?;
            let before: ProjectRecord = decode(&key(project), &entry.value)?;
            let mut after = before.clone();
            change(&mut after.members);
            match kv
                .update(&key(project), encode(&after)?, entry.revision)
                .await
            {
                Ok(_) => {
                    if let Ok(mut all) = self.inner.identity.projects.write() {
                        all.insert(project.to_owned(), after.clone());
                    }
                    self.audit(
                        actor,
                        "project.members",
                        None,
                        &format!("project {project}"),
                        Some(&view(&before)),
                        Some(&view(&after)),
                    )
                    .await;
                    return Ok(view(&after));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
