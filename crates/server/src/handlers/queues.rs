//! `/api/v1/queues`: queues, their messages and their dead-letter areas.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use holactl_engine::Engine;
use holactl_types::api::{PurgeResult, ReplayRequest};
use holactl_types::queue::{
    CreateQueueRequest, QueueDeadLetterList, QueueDlqResult, QueueList, QueueView, ReceiveRequest,
    ReceivedMessages, SendMessageRequest, SentMessage, MAX_MESSAGE_BYTES,
};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{parse_json, read_limited, Json};
use crate::router::Actor;

/// The routes of queues (behind the token layer).
pub fn routes() -> Router<Engine> {
    Router::new()
        .route("/api/v1/queues", post(create).get(list))
        .route("/api/v1/queues/{name}", get(show).delete(remove))
        .route("/api/v1/queues/{name}/messages", post(send))
        .route("/api/v1/queues/{name}/messages/receive", post(receive))
        .route("/api/v1/queues/{name}/messages/{id}", delete(ack))
        .route("/api/v1/queues/{name}/dlq", get(dlq_list).delete(dlq_purge))
        .route("/api/v1/queues/{name}/dlq/replay", post(dlq_replay))
}

pub async fn create(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Json(req): Json<CreateQueueRequest>,
) -> Result<(StatusCode, axum::Json<QueueView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_queue(&actor, req).await?),
    ))
}

pub async fn list(
    State(engine): State<Engine>,
    Extension(principal): Extension<holactl_engine::identity::Principal>,
) -> Result<axum::Json<QueueList>, ApiError> {
    Ok(axum::Json(QueueList {
        queues: crate::tenancy::only_visible(
            &engine,
            &principal,
            holactl_engine::identity::ResourceKind::Queue,
            engine.list_queues().await?,
            |x| &x.name,
        ),
    }))
}

pub async fn show(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<axum::Json<QueueView>, ApiError> {
    Ok(axum::Json(engine.get_queue(&name).await?))
}

pub async fn remove(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.delete_queue(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn send(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<axum::Json<SentMessage>, ApiError> {
    // Room for JSON escaping of a body at the limit; the engine checks the exact size.
    let bytes = read_limited(body, 2 * MAX_MESSAGE_BYTES + 64 * 1024, "message").await?;
    let req: SendMessageRequest = parse_json(&bytes)?;
    Ok(axum::Json(engine.send_message(&name, req).await?))
}

pub async fn receive(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    Json(req): Json<ReceiveRequest>,
) -> Result<axum::Json<ReceivedMessages>, ApiError> {
    Ok(axum::Json(engine.receive_messages(&name, req).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckQuery {
    /// The receipt handle of the receive.
    receipt: Option<String>,
}

pub async fn ack(
    State(engine): State<Engine>,
    Path((name, id)): Path<(String, String)>,
    query: Result<Query<AckQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let receipt = q
        .receipt
        .ok_or_else(|| ApiError::invalid("receipt", "give ?receipt=<receipt handle>"))?;
    engine.delete_message(&name, &id, &receipt).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn dlq_list(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<axum::Json<QueueDeadLetterList>, ApiError> {
    Ok(axum::Json(QueueDeadLetterList {
        entries: engine.queue_dead_letters(&name).await?,
    }))
}

pub async fn dlq_replay(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
    Json(req): Json<ReplayRequest>,
) -> Result<axum::Json<QueueDlqResult>, ApiError> {
    let ids = match (req.ids, req.all) {
        (Some(ids), false) if !ids.is_empty() => Some(ids),
        (None, true) => None,
        _ => {
            return Err(ApiError::invalid(
                "ids",
                "give either a non-empty `ids` list or `all: true`",
            ))
        }
    };
    let count = engine.replay_queue_dead_letters(&actor, &name, ids).await?;
    Ok(axum::Json(QueueDlqResult { count }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeQuery {
    /// Only this entry.
    id: Option<String>,
}

pub async fn dlq_purge(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
    query: Result<Query<PurgeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<PurgeResult>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let purged = engine
        .purge_queue_dead_letters(&actor, &name, q.id.map(|id| vec![id]))
        .await?;
    Ok(axum::Json(PurgeResult { purged }))
}
