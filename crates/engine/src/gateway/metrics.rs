//! Gateway metrics: requests by API, route and status, and refused authentications.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of gateway requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// API name.
    pub api: String,
    /// Route key (`GET /users/{id}`), or `none` when no route matched.
    pub route: String,
    /// HTTP status answered.
    pub status: String,
}

/// Labels of refused authentications.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthFailureLabels {
    /// API name.
    pub api: String,
    /// `api_key_missing`, `api_key_invalid`, `jwt_expired`, …
    pub reason: String,
}

/// The gateway's metric families.
#[derive(Clone, Debug, Default)]
pub struct GatewayMetrics {
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Authentications refused.
    pub auth_failures: Family<AuthFailureLabels, Counter>,
}

impl GatewayMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> GatewayMetrics {
        let m = GatewayMetrics::default();
        registry.register(
            "gateway_requests",
            "Gateway requests by API, route and HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "gateway_auth_failures",
            "Gateway requests refused by an API key or JWT check, by reason",
            m.auth_failures.clone(),
        );
        m
    }
}
