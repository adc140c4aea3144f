//! `/api/v1/functions/{name}/versions` and `/aliases`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Extension;
use holactl_engine::Engine;
use holactl_types::api::{
    AliasList, AliasView, PublishVersionRequest, SetAliasRequest, ShiftAliasRequest, VersionList,
    VersionView,
};

use crate::error::ApiError;
use crate::extract::Json;
use crate::router::Actor;

pub async fn publish(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
    Json(req): Json<PublishVersionRequest>,
) -> Result<(StatusCode, axum::Json<VersionView>), ApiError> {
    let (view, created) = engine
        .publish_version(&actor, &name, req.description)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(view)))
}

pub async fn list(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<axum::Json<VersionList>, ApiError> {
    Ok(axum::Json(VersionList {
        versions: engine.list_versions(&name)?,
    }))
}

pub async fn get(
    State(engine): State<Engine>,
    Path((name, version)): Path<(String, String)>,
) -> Result<axum::Json<VersionView>, ApiError> {
    Ok(axum::Json(engine.get_version(&name, &version)?))
}

pub async fn delete(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    engine.delete_version(&actor, &name, &version).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_aliases(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<axum::Json<AliasList>, ApiError> {
    Ok(axum::Json(AliasList {
        aliases: engine.list_aliases(&name)?,
    }))
}

pub async fn get_alias(
    State(engine): State<Engine>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<axum::Json<AliasView>, ApiError> {
    Ok(axum::Json(engine.get_alias(&name, &alias)?))
}

pub async fn set_alias(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path((name, alias)): Path<(String, String)>,
    Json(req): Json<SetAliasRequest>,
) -> Result<axum::Json<AliasView>, ApiError> {
    Ok(axum::Json(
        engine.set_alias(&actor, &name, &alias, req).await?,
    ))
}

pub async fn shift_alias(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path((name, alias)): Path<(String, String)>,
    Json(req): Json<ShiftAliasRequest>,
) -> Result<axum::Json<AliasView>, ApiError> {
    Ok(axum::Json(
        engine.shift_alias(&actor, &name, &alias, req).await?,
    ))
}

pub async fn delete_alias(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    engine.delete_alias(&actor, &name, &alias).await?;
    Ok(StatusCode::NO_CONTENT)
}
