//! HTTP API of holactl: axum routers, auth, JSON shapes, OpenAPI.
