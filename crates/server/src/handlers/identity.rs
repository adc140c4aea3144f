//! `/api/v1/users`, `/api/v1/projects`, `/api/v1/tokens`: accounts, tenants and API tokens.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::Extension;
use holactl_engine::identity::Principal;
use holactl_engine::Engine;
use holactl_types::identity::{
    ChangePassword, CreatedToken, Credentials, NewProject, NewToken, ProjectView, Session,
    SetMember, TokenView, UserView,
};
use holactl_types::ErrorCode;
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::Json;

/// `{"users": [...]}`.
#[derive(Serialize)]
pub struct UserList {
    users: Vec<UserView>,
}

/// `{"projects": [...]}`.
#[derive(Serialize)]
pub struct ProjectList {
    projects: Vec<ProjectView>,
}

/// `{"tokens": [...]}`.
#[derive(Serialize)]
pub struct TokenList {
    tokens: Vec<TokenView>,
}

fn user_of(principal: &Principal) -> Result<&str, ApiError> {
    match principal {
        Principal::User { username, .. } => Ok(username),
        Principal::Admin { name } if name != "admin" => Ok(name),
        Principal::Admin { .. } => Err(ApiError::invalid(
            "token",
            "the admin token has no user; sign in as a user (holactl login)",
        )),
    }
}

/// `POST /api/v1/users/register`: open when the server allows self-registration (the user
/// gets a personal project), otherwise administrators only.
pub async fn register(
    State(engine): State<Engine>,
    req: Request,
) -> Result<(StatusCode, axum::Json<UserView>), ApiError> {
    let caller = crate::router::bearer(&req).and_then(|t| engine.principal(t));
    let is_admin = caller.as_ref().is_some_and(Principal::is_admin);
    if !is_admin && !engine.open_registration() {
        return Err(ApiError::new(
            if caller.is_some() {
                ErrorCode::Forbidden
            } else {
                ErrorCode::Unauthorized
            },
            "registration is closed: an administrator registers users (or start the server with --open-registration)",
        ));
    }
    let bytes = crate::extract::read_limited(req.into_body(), 64 * 1024, "body").await?;
    let creds: Credentials = crate::extract::parse_json(&bytes)?;
    let actor = caller
        .as_ref()
        .map_or("self-registration", |p| p.name())
        .to_owned();
    let user = engine
        .register_user(&actor, creds, false, !is_admin)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

/// `POST /api/v1/users/login`.
pub async fn login(
    State(engine): State<Engine>,
    Json(creds): Json<Credentials>,
) -> Result<axum::Json<Session>, ApiError> {
    Ok(axum::Json(engine.login(creds).await.map_err(|_| {
        ApiError::new(ErrorCode::Unauthorized, "wrong user name or password")
    })?))
}

/// `GET /api/v1/users/me`.
pub async fn me(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
) -> Result<axum::Json<UserView>, ApiError> {
    Ok(axum::Json(engine.me(user_of(&principal)?)?))
}

/// `PUT /api/v1/users/me`: a new password.
pub async fn change_password(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
    Json(change): Json<ChangePassword>,
) -> Result<axum::Json<UserView>, ApiError> {
    let username = user_of(&principal)?.to_owned();
    Ok(axum::Json(engine.change_password(&username, change).await?))
}

/// `DELETE /api/v1/users/me`.
pub async fn delete_me(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
) -> Result<StatusCode, ApiError> {
    let username = user_of(&principal)?.to_owned();
    engine.delete_user(&username, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/users` (administrators).
pub async fn list_users(State(engine): State<Engine>) -> axum::Json<UserList> {
    axum::Json(UserList {
        users: engine.list_users(),
    })
}

/// `DELETE /api/v1/users/{username}` (administrators).
pub async fn delete_user(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.delete_user(principal.name(), &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/projects`: the caller's projects.
pub async fn list_projects(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
) -> axum::Json<ProjectList> {
    axum::Json(ProjectList {
        projects: engine.list_projects(&principal),
    })
}

/// `POST /api/v1/projects`: the creator becomes its admin.
pub async fn create_project(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
    Json(req): Json<NewProject>,
) -> Result<(StatusCode, axum::Json<ProjectView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_project(&principal, &req.name).await?),
    ))
}

/// `GET /api/v1/projects/{project}`.
pub async fn get_project(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
    Path(project): Path<String>,
) -> Result<axum::Json<ProjectView>, ApiError> {
    Ok(axum::Json(engine.get_project(&principal, &project)?))
}

/// `PUT /api/v1/projects/{project}/members/{username}`.
pub async fn set_member(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
    Path((project, username)): Path<(String, String)>,
    Json(req): Json<SetMember>,
) -> Result<axum::Json<ProjectView>, ApiError> {
    Ok(axum::Json(
        engine
            .set_member(&principal, &project, &username, req.role)
            .await?,
    ))
}

/// `DELETE /api/v1/projects/{project}/members/{username}`.
pub async fn remove_member(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
    Path((project, username)): Path<(String, String)>,
) -> Result<axum::Json<ProjectView>, ApiError> {
    Ok(axum::Json(
        engine
            .remove_member(&principal, &project, &username)
            .await?,
    ))
}

/// `GET /api/v1/tokens`: the caller's API tokens.
pub async fn list_tokens(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
) -> axum::Json<TokenList> {
    axum::Json(TokenList {
        tokens: engine.list_tokens(&principal),
    })
}

/// `POST /api/v1/tokens`: a token acting as the caller, shown once.
pub async fn create_token(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
    Json(req): Json<NewToken>,
) -> Result<(StatusCode, axum::Json<CreatedToken>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_token(&principal, req).await?),
    ))
}

/// `DELETE /api/v1/tokens/{id}`: revokes it.
pub async fn revoke_token(
    State(engine): State<Engine>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<axum::Json<TokenView>, ApiError> {
    Ok(axum::Json(engine.revoke_token(&principal, &id).await?))
}
