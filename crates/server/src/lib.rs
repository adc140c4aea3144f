//! The HTTP API of holactl (`/api/v1`): axum routers that translate requests into calls on the
//! [`Engine`], authentication, and one JSON error format with stable codes.
//!
//! The server never binds sockets or installs signal handlers itself: [`run`] takes a bound
//! listener and a shutdown future, so tests run it on `127.0.0.1:0`.
//!
//! # Layout
//! - [`router`]: every route and the auth layer.
//! - [`tenancy`]: who may see and change what, for every route (projects and roles).
//! - [`error`]: [`ApiError`], mapping engine errors to status + code.
//! - [`extract`]: body extractors that answer in our error format (size limits, JSON).
//! - `handlers/`: one file per resource; `handlers/gateway.rs` also serves the HTTP gateway
//!   (`/gw/{api}/…` here, or every path of a listener of its own via [`run_gateway`]).
//! - `openapi.json`: the API's OpenAPI document, served at `/api/v1/openapi.json`.

pub mod error;
pub mod extract;
mod handlers;
pub mod router;
pub mod tenancy;

use std::future::Future;

use axum::serve::ListenerExt;
use holactl_engine::Engine;

pub use error::ApiError;
pub use router::router;

/// The OpenAPI document of `/api/v1`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn run(
    engine: Engine,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The peer address is kept for webhook events (`requestContext.http.sourceIp`).
    let app = router(engine).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the HTTP gateway for `api` on a listener of its own (`serve --gateway-listen`):
/// every path is a route path of that API (`/{stage}/…` for named stages).
pub async fn run_gateway(
    engine: Engine,
    listener: tokio::net::TcpListener,
    api: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = handlers::gateway::listener_router(engine, api)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
