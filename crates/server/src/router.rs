//! Every route of `/api/v1` and the bearer-token layer in front of all but health.

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use holactl_engine::Engine;
use holactl_types::ErrorCode;

use crate::error::ApiError;
use crate::handlers::schedules;
use crate::handlers::webhooks;
use crate::handlers::{audit, dlq, executions, functions, identity, secrets, system, versions};

/// Who is making a request, as established by the auth layer.
#[derive(Clone, Debug)]
pub struct Actor(pub String);

/// The API router.
pub fn router(engine: Engine) -> Router {
    let protected = Router::new()
        .route("/api/v1/metrics", get(system::metrics))
        .route("/api/v1/code", post(functions::upload_code))
        .route("/api/v1/code/{sha256}", get(functions::get_code))
        .route(
            "/api/v1/functions",
            post(functions::create).get(functions::list),
        )
        .route(
            "/api/v1/functions/{name}",
            get(functions::get)
                .patch(functions::update)
                .put(functions::update)
                .delete(functions::delete),
        )
        .route("/api/v1/functions/{name}/invoke", post(functions::invoke))
        .route(
            "/api/v1/functions/{name}/concurrency",
            get(crate::handlers::concurrency::get)
                .put(crate::handlers::concurrency::put)
                .delete(crate::handlers::concurrency::delete),
        )
        .route(
            "/api/v1/functions/{name}/versions",
            post(versions::publish).get(versions::list),
        )
        .route(
            "/api/v1/functions/{name}/versions/{version}",
            get(versions::get).delete(versions::delete),
        )
        .route(
            "/api/v1/functions/{name}/aliases",
            get(versions::list_aliases),
        )
        .route(
            "/api/v1/functions/{name}/aliases/{alias}",
            get(versions::get_alias)
                .put(versions::set_alias)
                .delete(versions::delete_alias),
        )
        .route(
            "/api/v1/functions/{name}/aliases/{alias}/shift",
            post(versions::shift_alias),
        )
        .route(
            "/api/v1/functions/{name}/dlq",
            get(dlq::list).delete(dlq::purge),
        )
        .route("/api/v1/functions/{name}/dlq/replay", post(dlq::replay))
        .route("/api/v1/functions/{name}/dlq/{id}", get(dlq::get))
        .route("/api/v1/secrets", get(secrets::list))
        .route(
            "/api/v1/secrets/{name}",
            axum::routing::put(secrets::set).delete(secrets::delete),
        )
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/usage", get(crate::handlers::usage::report))
        .route(
            "/api/v1/functions/{name}/metrics",
            get(crate::handlers::observability::function_metrics),
        )
        .route(
            "/api/v1/alerts",
            get(crate::handlers::observability::alerts),
        )
        .route(
            "/api/v1/workers/status",
            get(crate::handlers::observability::status),
        )
        .route(
            "/api/v1/schedules",
            post(schedules::create).get(schedules::list),
        )
        .route(
            "/api/v1/schedules/{name}",
            get(schedules::get).delete(schedules::delete),
        )
        .route("/api/v1/schedules/{name}/pause", post(schedules::pause))
        .route("/api/v1/schedules/{name}/resume", post(schedules::resume))
        .route("/api/v1/schedules/{name}/run", post(schedules::run))
        .route(
            "/api/v1/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/api/v1/webhooks/{name}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route(
            "/api/v1/webhooks/{name}/secret",
            axum::routing::put(webhooks::rotate_secret),
        )
        .route(
            "/api/v1/executions",
            post(executions::start).get(executions::list),
        )
        .route(
            "/api/v1/executions/{id}",
            get(executions::get).delete(executions::cancel),
        )
        .route("/api/v1/executions/{id}/logs", get(executions::logs))
        .merge(crate::handlers::queues::routes())
        .merge(crate::handlers::triggers::routes())
        .merge(crate::handlers::policy::routes())
        .merge(crate::handlers::gateway::routes())
        .route("/api/v1/users", get(identity::list_users))
        .route(
            "/api/v1/users/me",
            get(identity::me)
                .put(identity::change_password)
                .delete(identity::delete_me),
        )
        .route(
            "/api/v1/users/{username}",
            axum::routing::delete(identity::delete_user),
        )
        .route(
            "/api/v1/projects",
            get(identity::list_projects).post(identity::create_project),
        )
        .route("/api/v1/projects/{project}", get(identity::get_project))
        .route(
            "/api/v1/projects/{project}/members/{username}",
            axum::routing::put(identity::set_member).delete(identity::remove_member),
        )
        .route(
            "/api/v1/tokens",
            get(identity::list_tokens).post(identity::create_token),
        )
        .route(
            "/api/v1/tokens/{id}",
            axum::routing::delete(identity::revoke_token),
        )
        // Layers run outside in: the token layer, then tenancy.
        .route_layer(middleware::from_fn_with_state(
            engine.clone(),
            crate::tenancy::enforce,
        ))
        .route_layer(middleware::from_fn_with_state(
            engine.clone(),
            require_token,
        ));
    Router::new()
        .route("/api/v1/health", get(system::health))
        .route("/api/v1/openapi.json", get(system::openapi))
        // Outside the token layer: credentials are the body (or registration is open).
        .route("/api/v1/users/register", post(identity::register))
        .route("/api/v1/users/login", post(identity::login))
        // Outside the token layer: a delivery's signature is its credential.
        .route("/hooks/{id}", post(webhooks::deliver))
        // The HTTP gateway: each route's own auth (none, API key, JWT) decides, not the token.
        .route_service(
            "/gw/{*rest}",
            axum::routing::any(crate::handlers::gateway::serve_prefixed).with_state(engine.clone()),
        )
        .merge(protected)
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(engine)
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(req: &Request) -> Option<&str> {
    holactl_engine::auth::bearer(req.headers())
}

async fn require_token(
    State(engine): State<Engine>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match bearer(&req).map(|token| engine.principal(token)) {
        Some(Some(principal)) => {
            req.extensions_mut()
                .insert(Actor(principal.name().to_owned()));
            req.extensions_mut().insert(principal);
            Ok(next.run(req).await)
        }
        Some(_) => Err(ApiError::new(ErrorCode::Unauthorized, "invalid token")),
        None => Err(ApiError::new(
            ErrorCode::Unauthorized,
            "missing Authorization: Bearer <token> header",
        )),
    }
}
