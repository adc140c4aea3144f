//! The typed client's metrics, alerts and status methods.

use http::Method;

use holactl_types::observability::{AlertList, FunctionMetrics, PlatformStatus};

use super::{Client, ClientError};

impl Client {
    /// `GET /api/v1/functions/{name}/metrics` (`since`: epoch ms, a duration ago or RFC 3339).
    pub async fn function_metrics(
        &self,
        name: &str,
        since: Option<&str>,
    ) -> Result<FunctionMetrics, ClientError> {
        let path = match since {
            Some(s) => format!(
                "/api/v1/functions/{name}/metrics?since={}",
                s.replace('+', "%2B").replace(':', "%3A")
            ),
            None => format!("/api/v1/functions/{name}/metrics"),
        };
        self.json(Method::GET, &path, None).await
    }

    /// `GET /api/v1/alerts`.
    pub async fn alerts(&self) -> Result<AlertList, ClientError> {
        self.json(Method::GET, "/api/v1/alerts", None).await
    }

    /// `GET /api/v1/workers/status`.
    pub async fn platform_status(&self) -> Result<PlatformStatus, ClientError> {
        self.json(Method::GET, "/api/v1/workers/status", None).await
    }
}
