//! The typed client's `/api/v1/users`, `/api/v1/projects` and `/api/v1/tokens` methods.

use http::Method;
use serde::Deserialize;

use holactl_types::identity::{
    ChangePassword, CreatedToken, Credentials, NewProject, NewToken, ProjectView, Role, Session,
    SetMember, TokenView, UserView,
};

use super::{Client, ClientError};

#[derive(Deserialize)]
struct Users {
    users: Vec<UserView>,
}

#[derive(Deserialize)]
struct Projects {
    projects: Vec<ProjectView>,
}

#[derive(Deserialize)]
struct Tokens {
    tokens: Vec<TokenView>,
}

impl Client {
    /// `POST /api/v1/users/register`.
    pub async fn register(&self, creds: &Credentials) -> Result<UserView, ClientError> {
        self.json(
            Method::POST,
            "/api/v1/users/register",
            Some(Self::encode(creds)?),
        )
        .await
    }

    /// `POST /api/v1/users/login`.
    pub async fn login(&self, creds: &Credentials) -> Result<Session, ClientError> {
        self.json(
            Method::POST,
            "/api/v1/users/login",
            Some(Self::encode(creds)?),
        )
        .await
    }

    /// `GET /api/v1/users/me`.
    pub async fn me(&self) -> Result<UserView, ClientError> {
        self.json(Method::GET, "/api/v1/users/me", None).await
    }

    /// `PUT /api/v1/users/me`.
    pub async fn change_password(&self, change: &ChangePassword) -> Result<UserView, ClientError> {
        self.json(Method::PUT, "/api/v1/users/me", Some(Self::encode(change)?))
            .await
    }

    /// `GET /api/v1/users`.
    pub async fn list_users(&self) -> Result<Vec<UserView>, ClientError> {
        Ok(self
            .json::<Users>(Method::GET, "/api/v1/users", None)
            .await?
            .users)
    }

    /// `DELETE /api/v1/users/{username}`.
    pub async fn delete_user(&self, username: &str) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, &format!("/api/v1/users/{username}"))
            .await
    }

    /// `GET /api/v1/projects`.
    pub async fn list_projects(&self) -> Result<Vec<ProjectView>, ClientError> {
        Ok(self
            .json::<Projects>(Method::GET, "/api/v1/projects", None)
            .await?
            .projects)
    }

    /// `POST /api/v1/projects`.
    pub async fn create_project(&self, name: &str) -> Result<ProjectView, ClientError> {
        let body = NewProject {
            name: name.to_owned(),
        };
        self.json(Method::POST, "/api/v1/projects", Some(Self::encode(&body)?))
            .await
    }

    /// `GET /api/v1/projects/{project}`.
    pub async fn get_project(&self, name: &str) -> Result<ProjectView, ClientError> {
        self.json(Method::GET, &format!("/api/v1/projects/{name}"), None)
            .await
    }

    /// `PUT /api/v1/projects/{project}/members/{username}`.
    pub async fn set_member(
        &self,
        project: &str,
        username: &str,
        role: Role,
    ) -> Result<ProjectView, ClientError> {
        self.json(
            Method::PUT,
            &format!("/api/v1/projects/{project}/members/{username}"),
            Some(Self::encode(&SetMember { role })?),
        )
        .await
    }

    /// `DELETE /api/v1/projects/{project}/members/{username}`.
    pub async fn remove_member(
        &self,
        project: &str,
        username: &str,
    ) -> Result<ProjectView, ClientError> {
        self.json(
            Method::DELETE,
            &format!("/api/v1/projects/{project}/members/{username}"),
            None,
        )
        .await
    }

    /// `POST /api/v1/tokens`.
    pub async fn create_token(&self, req: &NewToken) -> Result<CreatedToken, ClientError> {
        self.json(Method::POST, "/api/v1/tokens", Some(Self::encode(req)?))
            .await
    }

    /// `GET /api/v1/tokens`.
    pub async fn list_tokens(&self) -> Result<Vec<TokenView>, ClientError> {
        Ok(self
            .json::<Tokens>(Method::GET, "/api/v1/tokens", None)
            .await?
            .tokens)
    }

    /// `DELETE /api/v1/tokens/{id}`.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenView, ClientError> {
        self.json(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
            .await
    }
}
