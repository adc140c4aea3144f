//! Tenancy: what a user may see and do, decided in one place for every `/api/v1` route.
//!
//! Each route is classified from its template (axum's `MatchedPath`):
//! - a resource route (`/functions/{name}/…`, `/queues/{name}/…`, `/executions/{id}`, …) looks
//!   up the project owning the resource: no role there → the exact not-found answer the route
//!   gives for a resource that does not exist (no disclosure); a viewer may read, writes need
//!   the developer role (`FORBIDDEN` otherwise);
//! - a create (`POST /functions`, `/queues`, `/schedules`, `/webhooks`, `/triggers`, `/apis`,
//!   `PUT /secrets/{new}`) goes into the project named by `X-Hola-Project` (or the caller's only
//!   project, or `default` for administrators), needs the developer role there, may only
//!   reference functions, queues and secrets of that same project, and records the owner when
//!   it succeeds;
//! - lists are filtered by their handlers with [`visible`];
//! - platform endpoints (metrics, workers status, audit trail, users) are for
//!   administrators.
//!
//! Administrators (the admin token, or a user flagged admin) pass every check; their creates
//! still record the owning project.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use holactl_engine::identity::{Principal, ResourceKind};
use holactl_engine::{Engine, EngineError};
use holactl_types::identity::{Role, DEFAULT_PROJECT, PROJECT_HEADER};
use holactl_types::ErrorCode;
use http::Method;

use crate::error::ApiError;

/// Largest create body read here (a sync `POST /executions` payload and its envelope).
const MAX_BODY: usize = holactl_types::limits::MAX_SYNC_PAYLOAD_BYTES + 64 * 1024;

/// Whether `principal` may see a resource.
pub fn visible(engine: &Engine, principal: &Principal, kind: ResourceKind, name: &str) -> bool {
    principal.is_admin() || principal.role_in(&engine.owner(kind, name)).is_some()
}

/// The items of a list `principal` may see.
pub fn only_visible<T>(
    engine: &Engine,
    principal: &Principal,
    kind: ResourceKind,
    items: Vec<T>,
    name: impl Fn(&T) -> &String,
) -> Vec<T> {
    items
        .into_iter()
        .filter(|item| visible(engine, principal, kind, name(item)))
        .collect()
}

/// What a route is about.
#[derive(Debug, PartialEq, Eq)]
enum Rule {
    /// Any signed-in caller (their own user, projects, tokens; code upload).
    Anyone,
    /// Platform administrators only.
    AdminOnly,
    /// A list its handler filters.
    Filtered,
    /// One resource.
    Resource { kind: ResourceKind, name: String },
    /// One execution (visible with its function).
    Execution { id: String },
    /// A create in a collection.
    Create { kind: ResourceKind },
    /// `POST /executions`: runs the function named in the body.
    StartExecution,
}

fn kind_of(collection: &str) -> Option<ResourceKind> {
    Some(match collection {
        "functions" => ResourceKind::Function,
        "queues" => ResourceKind::Queue,
        "schedules" => ResourceKind::Schedule,
        "webhooks" => ResourceKind::Webhook,
        "secrets" => ResourceKind::Secret,
        "triggers" => ResourceKind::Trigger,
        "apis" => ResourceKind::Api,
        _ => return None,
    })
}

/// Percent-decodes a path segment (invalid escapes are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Classifies a route from its template and the request path.
fn classify(template: &str, path: &str, method: &Method) -> Rule {
    let t: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // ["api", "v1", collection, …]
    let Some(collection) = t.get(2).copied() else {
        return Rule::AdminOnly;
    };
    let id = || p.get(3).map(|s| percent_decode(s)).unwrap_or_default();
    match collection {
        "users" => match (t.get(3).copied(), method) {
            (Some("me"), _) => Rule::Anyone,
            _ => Rule::AdminOnly,
        },
        "projects" | "tokens" => Rule::Anyone,
        // Content-addressed: asking whether a package exists needs its sha256, i.e. its
        // content; the package itself is never served.
        "code" => Rule::Anyone,
        "usage" | "alerts" => Rule::Filtered,
        "metrics" | "workers" | "audit" => Rule::AdminOnly,
        "executions" => match (t.len(), method) {
            (3, &Method::GET) => Rule::Filtered,
            (3, _) => Rule::StartExecution,
            _ => Rule::Execution { id: id() },
        },
        other => match kind_of(other) {
            Some(kind) if t.len() == 3 => {
                if method == Method::GET {
                    Rule::Filtered
                } else {
                    Rule::Create { kind }
                }
            }
            Some(kind) => Rule::Resource { kind, name: id() },
            None => Rule::AdminOnly,
        },
    }
}

/// Whether a request changes a configuration that may name other resources: a function's
/// own settings (secret bindings) or a gateway route (its target function).
fn configures(template: &str, method: &Method) -> bool {
    matches!(*method, Method::PUT | Method::PATCH | Method::POST)
        && (template == "/api/v1/functions/{name}"
            || template.starts_with("/api/v1/apis/{api}/routes"))
}

/// Whether `method` only reads.
fn reads(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

fn forbidden(project: &str, role: Role) -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        format!("this needs the {role} role in project {project:?}"),
    )
}

/// The project a create goes into.
fn target_project(principal: &Principal, req: &Request) -> Result<String, ApiError> {
    if let Some(value) = req.headers().get(PROJECT_HEADER) {
        return value
            .to_str()
            .map(str::to_owned)
            .map_err(|_| ApiError::invalid("project", "is not text"));
    }
    match principal {
        Principal::Admin { .. } => Ok(DEFAULT_PROJECT.to_owned()),
        Principal::User { projects, .. } => {
            let mut writable = projects
                .iter()
                .filter(|(_, r)| **r >= Role::Developer)
                .map(|(p, _)| p);
            match (writable.next(), writable.next()) {
                (Some(only), None) => Ok(only.clone()),
                (None, _) => Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "you are not a developer in any project",
                )),
                (Some(_), Some(_)) => Err(ApiError::invalid(
                    "project",
                    format!("you belong to several projects: name one with the {PROJECT_HEADER} header (CLI: --project)"),
                )),
            }
        }
    }
}

/// References a create or update body makes to other resources: (kind, name).
fn references(kind: Option<ResourceKind>, body: &serde_json::Value) -> Vec<(ResourceKind, String)> {
    let mut out = Vec::new();
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    // `function` may carry a qualifier (`name:alias`).
    if let Some(f) = body.get("function").and_then(text) {
        let name = f.split(':').next().unwrap_or_default().to_owned();
        out.push((ResourceKind::Function, name));
    }
    if kind != Some(ResourceKind::Function) {
        if let Some(q) = body.get("queue").and_then(text) {
            out.push((ResourceKind::Queue, q));
        }
    }
    if let Some(secrets) = body.get("secrets").and_then(|s| s.as_object()) {
        for name in secrets.values().filter_map(text) {
            out.push((ResourceKind::Secret, name));
        }
    }
    out
}

/// Checks the references of a body against the project the resource is (or goes) in.
fn check_references(
    engine: &Engine,
    principal: &Principal,
    project: &str,
    kind: Option<ResourceKind>,
    body: &serde_json::Value,
) -> Result<(), ApiError> {
    for (ref_kind, name) in references(kind, body) {
        if name.is_empty() || (kind == Some(ref_kind) && ref_kind == ResourceKind::Function) {
            continue;
        }
        if !visible(engine, principal, ref_kind, &name) {
            return Err(ref_kind.not_found(&name).into());
        }
        let owner = engine.owner(ref_kind, &name);
        if owner != project {
            return Err(ApiError::invalid(
                ref_kind.as_str(),
                format!(
                    "{} {name:?} belongs to project {owner:?}, not {project:?}",
                    ref_kind.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// Reads the body (for creates and updates that may reference other resources) and puts it
/// back.
async fn with_body(req: Request) -> Result<(Request, serde_json::Value), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is over {MAX_BODY} bytes"),
        )
    })?;
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((Request::from_parts(parts, Body::from(bytes)), json))
}

/// The name (or id) of what a successful create made, from its answer.
async fn created_name(response: Response) -> (Response, Option<String>) {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return (Response::from_parts(parts, Body::empty()), None);
    };
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let name = ["name", "id"]
        .iter()
        .find_map(|k| json.get(k).and_then(|v| v.as_str()).map(str::to_owned));
    (Response::from_parts(parts, Body::from(bytes)), name)
}

/// The tenancy layer (runs after the token layer).
pub async fn enforce(
    State(engine): State<Engine>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = req
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "not signed in"))?;
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let method = req.method().clone();
    let rule = classify(&template, req.uri().path(), &method);
    let admin = principal.is_admin();
    match rule {
        Rule::Anyone | Rule::Filtered => Ok(next.run(req).await),
        Rule::AdminOnly if admin => Ok(next.run(req).await),
        Rule::AdminOnly => Err(ApiError::new(
            ErrorCode::Forbidden,
            "this endpoint is for platform administrators",
        )),
        Rule::Execution { id } => {
            if !admin {
                let record = engine.get_execution(&id).await?;
                let project = engine.owner(ResourceKind::Function, &record.function);
                let Some(role) = principal.role_in(&project) else {
                    return Err(EngineError::ExecutionNotFound(id).into());
                };
                if !reads(&method) && role < Role::Developer {
                    return Err(forbidden(&project, Role::Developer));
                }
            }
            Ok(next.run(req).await)
        }
        Rule::StartExecution if admin => Ok(next.run(req).await),
        Rule::StartExecution => {
            let (req, body) = with_body(req).await?;
            let function = body
                .get("function")
                .and_then(|f| f.as_str())
                .unwrap_or_default()
                .to_owned();
            if !function.is_empty() {
                let project = engine.owner(ResourceKind::Function, &function);
                match principal.role_in(&project) {
                    None => return Err(ResourceKind::Function.not_found(&function).into()),
                    Some(r) if r < Role::Developer => {
                        return Err(forbidden(&project, Role::Developer))
                    }
                    Some(_) => {}
                }
            }
            Ok(next.run(req).await)
        }
        Rule::Resource { kind, name } => {
            let secret_create = kind == ResourceKind::Secret
                && method == Method::PUT
                && !engine.has_owner(kind, &name)
                && !engine.secret_exists(&name).await?;
            if secret_create {
                return create(&engine, &principal, kind, Some(name), req, next).await;
            }
            let project = engine.owner(kind, &name);
            let Some(role) = principal.role_in(&project) else {
                return Err(kind.not_found(&name).into());
            };
            let needed = if reads(&method) {
                Role::Viewer
            } else {
                Role::Developer
            };
            if role < needed {
                return Err(forbidden(&project, needed));
            }
            // Only configuration bodies name other resources (an invoke's body is the event,
            // whatever keys it has); administrators may reference anything.
            let req = if !admin && configures(&template, &method) {
                let (req, body) = with_body(req).await?;
                check_references(&engine, &principal, &project, Some(kind), &body)?;
                req
            } else {
                req
            };
            let response = next.run(req).await;
            // The resource itself was deleted: forget its owner.
            let whole = template.trim_end_matches('/').matches('/').count() == 4;
            if method == Method::DELETE && whole && response.status().is_success() {
                engine.remove_owner(kind, &name).await?;
            }
            Ok(response)
        }
        Rule::Create { kind } => create(&engine, &principal, kind, None, req, next).await,
    }
}

async fn create(
    engine: &Engine,
    principal: &Principal,
    kind: ResourceKind,
    name: Option<String>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let project = target_project(principal, &req)?;
    if !engine.project_exists(&project) || principal.role_in(&project).is_none() {
        return Err(
            EngineError::ResourceNotFound(format!("project {project:?} does not exist")).into(),
        );
    }
    if !principal.can(&project, Role::Developer) {
        return Err(forbidden(&project, Role::Developer));
    }
    let req = if principal.is_admin() {
        req
    } else {
        let (req, body) = with_body(req).await?;
        check_references(engine, principal, &project, Some(kind), &body)?;
        req
    };
    let response = next.run(req).await;
    if !response.status().is_success() {
        return Ok(response);
    }
    let (response, created) = match name {
        Some(n) => (response, Some(n)),
        None => created_name(response).await,
    };
    if let Some(created) = created {
        engine.set_owner(kind, &created, &project).await?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            classify(
                "/api/v1/functions/{name}/invoke",
                "/api/v1/functions/hello/invoke",
                &post
            ),
            Rule::Resource {
                kind: ResourceKind::Function,
                name: "hello".into()
            }
        );
        assert_eq!(
            classify("/api/v1/functions", "/api/v1/functions", &get),
            Rule::Filtered
        );
        assert_eq!(
            classify("/api/v1/queues", "/api/v1/queues", &post),
            Rule::Create {
                kind: ResourceKind::Queue
            }
        );
        assert_eq!(
            classify("/api/v1/executions/{id}", "/api/v1/executions/abc", &get),
            Rule::Execution { id: "abc".into() }
        );
        assert_eq!(
            classify("/api/v1/executions", "/api/v1/executions", &post),
            Rule::StartExecution
        );
        assert_eq!(
            classify("/api/v1/audit", "/api/v1/audit", &get),
            Rule::AdminOnly
        );
        assert_eq!(
            classify("/api/v1/users/me", "/api/v1/users/me", &get),
            Rule::Anyone
        );
        assert_eq!(
            classify("/api/v1/users", "/api/v1/users", &get),
            Rule::AdminOnly
        );
        assert_eq!(
            classify("/api/v1/code/{sha256}", "/api/v1/code/ab", &get),
            Rule::Anyone
        );
        assert_eq!(
            classify("/api/v1/code", "/api/v1/code", &post),
            Rule::Anyone
        );
        assert_eq!(
            classify(
                "/api/v1/secrets/{name}",
                "/api/v1/secrets/db%2Epass",
                &Method::PUT
            ),
            Rule::Resource {
                kind: ResourceKind::Secret,
                name: "db.pass".into()
            }
        );
        assert_eq!(
            classify("/api/v1/somethingnew", "/api/v1/somethingnew", &get),
            Rule::AdminOnly
        );
    }

    #[test]
    fn only_configuration_bodies_are_read() {
        assert!(configures("/api/v1/functions/{name}", &Method::PATCH));
        assert!(configures("/api/v1/apis/{api}/routes", &Method::POST));
        assert!(!configures(
            "/api/v1/functions/{name}/invoke",
            &Method::POST
        ));
        assert!(!configures("/api/v1/queues/{name}/messages", &Method::POST));
        assert!(!configures("/api/v1/functions/{name}", &Method::GET));
    }

    #[test]
    fn references_are_found() {
        let body = serde_json::json!({
            "function": "hello:prod", "queue": "jobs", "secrets": {"DB": "db_pass"}
        });
        assert_eq!(
            references(Some(ResourceKind::Trigger), &body),
            vec![
                (ResourceKind::Function, "hello".to_owned()),
                (ResourceKind::Queue, "jobs".to_owned()),
                (ResourceKind::Secret, "db_pass".to_owned()),
            ]
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Eb"), "a.b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
