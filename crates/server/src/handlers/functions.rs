//! `/api/v1/functions`, `/api/v1/code` and the synchronous invoke.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use holactl_engine::{AsyncRequest, Engine, InvokeRequest};
use holactl_types::api::{
    headers as h, CodeUploaded, CreateFunctionRequest, FunctionList, FunctionView,
    UpdateFunctionRequest,
};
use holactl_types::limits::{MAX_CODE_ZIP_BYTES, MAX_SYNC_PAYLOAD_BYTES};
use holactl_types::version::{split_qualified, Qualifier};
use holactl_types::{ErrorCode, Trigger};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{read_limited, Json};
use crate::router::Actor;

pub async fn upload_code(
    State(engine): State<Engine>,
    body: Body,
) -> Result<(StatusCode, axum::Json<CodeUploaded>), ApiError> {
    let zip = read_limited(body, MAX_CODE_ZIP_BYTES, "code package").await?;
    if zip.is_empty() {
        return Err(ApiError::invalid("code", "empty body; send the zip file"));
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.upload_code(zip).await?),
    ))
}

pub async fn get_code(
    State(engine): State<Engine>,
    Path(sha256): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if engine.has_code(&sha256).await? {
        Ok(axum::Json(serde_json::json!({ "sha256": sha256 })))
    } else {
        Err(ApiError::new(ErrorCode::NotFound, "no such code package"))
    }
}

pub async fn create(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Json(req): Json<CreateFunctionRequest>,
) -> Result<(StatusCode, axum::Json<FunctionView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(engine.create_function(&actor, req).await?),
    ))
}

pub async fn list(
    State(engine): State<Engine>,
    Extension(principal): Extension<holactl_engine::identity::Principal>,
) -> Result<axum::Json<FunctionList>, ApiError> {
    Ok(axum::Json(FunctionList {
        functions: crate::tenancy::only_visible(
            &engine,
            &principal,
            holactl_engine::identity::ResourceKind::Function,
            engine.list_functions()?,
            |x| &x.name,
        ),
    }))
}

pub async fn get(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<axum::Json<FunctionView>, ApiError> {
    Ok(axum::Json(engine.get_function(&name)?))
}

pub async fn update(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
    Json(req): Json<UpdateFunctionRequest>,
) -> Result<axum::Json<FunctionView>, ApiError> {
    Ok(axum::Json(
        engine.update_function(&actor, &name, req).await?,
    ))
}

pub async fn delete(
    State(engine): State<Engine>,
    Extension(Actor(actor)): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.delete_function(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct InvokeQuery {
    /// `tail` to get the log's last 4 KB in `X-Hola-Log-Result`.
    #[serde(default)]
    log_type: Option<String>,
    /// `$LATEST`, a version number or an alias (also `name:qualifier` in the path).
    #[serde(default)]
    qualifier: Option<String>,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn invoke(
    State(engine): State<Engine>,
    Path(name): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (name, path_qualifier) = split_qualified(&name);
    let qualifier = match (path_qualifier, query.qualifier.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid(
                "qualifier",
                "the path and ?qualifier= name different qualifiers",
            ))
        }
        (Some(q), _) | (None, Some(q)) => {
            Some(Qualifier::parse(q).map_err(|e| ApiError::invalid("qualifier", e.message))?)
        }
        (None, None) => None,
    };
    let payload = read_limited(body, MAX_SYNC_PAYLOAD_BYTES, "request payload").await?;
    let log_tail = query
        .log_type
        .as_deref()
        .or_else(|| header_str(&headers, h::LOG_TYPE))
        .is_some_and(|v| v.eq_ignore_ascii_case("tail"));
    let mut req = InvokeRequest::new(
        if payload.is_empty() {
            bytes::Bytes::from_static(b"{}")
        } else {
            payload
        },
        Trigger::Invoke,
    );
    req.log_tail = log_tail;
    req.client_context = header_str(&headers, "x-hola-client-context").map(str::to_owned);
    req.qualifier = qualifier;
    req.idempotency_key = header_str(&headers, h::IDEMPOTENCY_KEY).map(str::to_owned);
    let asynchronous = match header_str(&headers, h::INVOCATION_TYPE) {
        None | Some("RequestResponse") => false,
        Some("Event") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "x-invocation-type",
                format!("{other:?} is not RequestResponse or Event"),
            ))
        }
    };
    if asynchronous {
        let record = engine
            .invoke_async(
                name,
                AsyncRequest {
                    payload: req.payload,
                    qualifier: req.qualifier,
                    trigger: Trigger::Async,
                    idempotency_key: req.idempotency_key,
                },
            )
            .await?;
        let mut resp = (StatusCode::ACCEPTED, axum::Json(&record)).into_response();
        if let Ok(v) = HeaderValue::from_str(&record.id) {
            resp.headers_mut().insert(h::EXECUTION_ID, v);
        }
        return Ok(resp);
    }
    let out = engine.invoke(name, req).await?;
    let record = &out.record;

    let error_code = record.error.as_ref().map(|e| e.code);
    let status = match error_code {
        Some(ErrorCode::PayloadTooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::OK,
    };
    let mut resp = Response::new(Body::from(out.body.clone()));
    *resp.status_mut() = status;
    let hm = resp.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            hm.insert(name, v);
        }
    };
    set("content-type", "application/json".into());
    set(h::EXECUTION_ID, record.id.clone());
    set(h::EXECUTED_VERSION, record.version.clone());
    set(
        h::DURATION_MS,
        format!("{:.3}", record.duration_ms.unwrap_or(0.0)),
    );
    set(
        h::BILLED_DURATION_MS,
        record.billed_duration_ms.unwrap_or(0).to_string(),
    );
    set(h::COLD_START, record.cold_start.to_string());
    if let Some(init) = record.init_duration_ms {
        set(h::INIT_DURATION_MS, format!("{init:.3}"));
    }
    if let Some(marker) = out.function_error {
        set(h::FUNCTION_ERROR, marker.to_owned());
    }
    if let Some(code) = error_code {
        set(h::ERROR_CODE, code.as_str().to_owned());
    }
    if record.log_truncated {
        set(h::LOG_TRUNCATED, "true".to_owned());
    }
    if let Some(tail) = out.log_tail {
        set(h::LOG_RESULT, tail);
    }
    Ok(resp.into_response())
}
