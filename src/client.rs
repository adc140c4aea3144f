//! The typed HTTP client of the `/api/v1` API, shared by the CLI and the end-to-end tests.

// Methods of one resource each, in `src/client/`.
mod gateway;
mod identity;
mod observability;
mod policy;
mod queues;
mod schedules;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use holactl_types::api::{
    headers as h, AliasList, AliasView, AuditList, CodeUploaded, CreateFunctionRequest,
    DeadLetterList, DeadLetterView, ExecutionList, ExecutionLogs, FunctionList, FunctionView,
    Health, PublishVersionRequest, PurgeResult, ReplayRequest, ReplayResult, SecretList,
    SecretView, SetAliasRequest, SetSecretRequest, ShiftAliasRequest, UpdateFunctionRequest,
    VersionList, VersionView,
};
use holactl_types::webhook::{
    CreateWebhookRequest, RotateWebhookSecretRequest, WebhookList, WebhookView,
};
use holactl_types::{ErrorBody, ExecutionRecord};

type Body = BoxBody<Bytes, std::io::Error>;

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Message.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot reach {endpoint}: {reason} (is `holactl lambda serve` running?)")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// A bad endpoint URL.
    #[error("invalid endpoint {0:?}")]
    Endpoint(String),
}

impl ClientError {
    /// The stable error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A raw answer.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Answer {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The result of an invoke.
#[derive(Debug)]
pub struct Invoked {
    /// The raw answer.
    pub answer: Answer,
}

impl Invoked {
    /// The execution id.
    pub fn execution_id(&self) -> &str {
        self.answer.header(h::EXECUTION_ID).unwrap_or("")
    }
    /// The stable error code of a failed execution.
    pub fn error_code(&self) -> Option<&str> {
        self.answer.header(h::ERROR_CODE)
    }
    /// Whether a new instance was started.
    pub fn cold_start(&self) -> bool {
        self.answer.header(h::COLD_START) == Some("true")
    }
}

/// A client for one server.
#[derive(Clone, Debug)]
pub struct Client {
    endpoint: String,
    token: Option<String>,
    /// Sent as `X-Hola-Project`: the project creates go into.
    project: Option<String>,
    http: HyperClient<HttpConnector, Body>,
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

impl Client {
    /// A client for `endpoint` (e.g. `http://127.0.0.1:8080`) using `token`.
    pub fn new(endpoint: &str, token: Option<String>) -> Result<Client, ClientError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !endpoint.starts_with("http://") {
            return Err(ClientError::Endpoint(endpoint));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Client {
            endpoint,
            token,
            project: None,
            http,
        })
    }

    /// The same client, creating resources in `project`.
    pub fn with_project(mut self, project: Option<String>) -> Client {
        self.project = project;
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A client for the same server and token with a connection pool of its own (clones share
    /// one pool).
    pub fn clone_fresh(&self) -> Result<Client, ClientError> {
        Ok(Client::new(&self.endpoint, self.token.clone())?.with_project(self.project.clone()))
    }

    /// Sends a request and returns the raw answer, whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Body)>,
    ) -> Result<Answer, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint));
        if let Some(token) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(project) = &self.project {
            req = req.header(holactl_types::identity::PROJECT_HEADER, project);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some((content_type, body)) => {
                req = req.header(http::header::CONTENT_TYPE, content_type);
                body
            }
            None => full(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|_| ClientError::Endpoint(self.endpoint.clone()))?;
        let resp = self.http.request(req).await.map_err(|e| {
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = format!("{reason}: {s}");
                source = s.source();
            }
            ClientError::Connect {
                endpoint: self.endpoint.clone(),
                reason,
            }
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?
            .to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn api_error(answer: &Answer) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(&answer.body) {
            Ok(e) => ClientError::Api {
                status: answer.status.as_u16(),
                code: e.error.code.as_str().to_owned(),
                message: match e.error.field {
                    Some(field) if !e.error.message.contains(&field) => {
                        format!("{} (field: {field})", e.error.message)
                    }
                    _ => e.error.message,
                },
            },
            Err(_) => ClientError::Decode(format!(
                "status {} with body {:?}",
                answer.status,
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
            )),
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| ("application/json", full(b)));
        let answer = self.send(method, path, &[], body).await?;
        if !answer.status.is_success() {
            return Err(Self::api_error(&answer));
        }
        serde_json::from_slice(&answer.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    fn encode<T: Serialize>(value: &T) -> Result<Bytes, ClientError> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET /api/v1/health`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.json(Method::GET, "/api/v1/health", None).await
    }

    /// `GET /api/v1/metrics`.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let answer = self.send(Method::GET, "/api/v1/metrics", &[], None).await?;
        if !answer.status.is_success() {
            return Err(Self::api_error(&answer));
        }
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

    /// Whether the server has a package with this sha256.
    pub async fn has_code(&self, sha256: &str) -> Result<bool, ClientError> {
        let answer = self
            .send(Method::GET, &format!("/api/v1/code/{sha256}"), &[], None)
            .await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Self::api_error(&answer)),
        }
    }

    /// `POST /api/v1/code`, calling `progress(sent_bytes)` as the upload goes.
    pub async fn upload_code(
        &self,
        zip: Bytes,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<CodeUploaded, ClientError> {
        const CHUNK: usize = 64 * 1024;
        let chunks: Vec<Bytes> = (0..zip.len())
            .step_by(CHUNK)
            .map(|i| zip.slice(i..(i + CHUNK).min(zip.len())))
            .collect();
        let mut sent = 0u64;
        let stream = futures_util::stream::iter(chunks).map(move |chunk| {
            sent += chunk.len() as u64;
            progress(sent);
            Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk))
        });
        let body = BodyExt::boxed(StreamBody::new(stream));
        let answer = self
            .send(
                Method::POST,
                "/api/v1/code",
                &[("content-length", &zip.len().to_string())],
                Some(("application/zip", body)),
            )
            .await?;
        if !answer.status.is_success() {
            return Err(Self::api_error(&answer));
        }
        serde_json::from_slice(&answer.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST /api/v1/functions`.
    pub async fn create_function(
        &self,
        req: &CreateFunctionRequest,
    ) -> Result<FunctionView, ClientError> {
        self.json(Method::POST, "/api/v1/functions", Some(Self::encode(req)?))
            .await
    }

    /// `PATCH /api/v1/functions/{name}`.
    pub async fn update_function(
        &self,
        name: &str,
        req: &UpdateFunctionRequest,
    ) -> Result<FunctionView, ClientError> {
        self.json(
            Method::PATCH,
            &format!("/api/v1/functions/{name}"),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `GET /api/v1/functions/{name}`; `None` when it does not exist.
    pub async fn find_function(&self, name: &str) -> Result<Option<FunctionView>, ClientError> {
        match self.get_function(name).await {
            Ok(f) => Ok(Some(f)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v1/functions/{name}`.
    pub async fn get_function(&self, name: &str) -> Result<FunctionView, ClientError> {
        self.json(Method::GET, &format!("/api/v1/functions/{name}"), None)
            .await
    }

    /// `GET /api/v1/functions`.
    pub async fn list_functions(&self) -> Result<FunctionList, ClientError> {
        self.json(Method::GET, "/api/v1/functions", None).await
    }

    /// `DELETE /api/v1/functions/{name}`.
    pub async fn delete_function(&self, name: &str) -> Result<(), ClientError> {
        let answer = self
            .send(
                Method::DELETE,
                &format!("/api/v1/functions/{name}"),
                &[],
                None,
            )
            .await?;
        if !answer.status.is_success() {
            return Err(Self::api_error(&answer));
        }
        Ok(())
    }

    /// `POST /api/v1/functions/{name}/invoke`. Function errors are an `Ok` answer with an
    /// error code; platform errors (unknown function, throttling, …) are `Err`.
    pub async fn invoke(
        &self,
        name: &str,
        payload: Bytes,
        log_tail: bool,
    ) -> Result<Invoked, ClientError> {
        self.invoke_with_key(name, payload, log_tail, None).await
    }

    /// [`Client::invoke`] with an idempotency key.
    pub async fn invoke_with_key(
        &self,
        name: &str,
        payload: Bytes,
        log_tail: bool,
        idempotency_key: Option<&str>,
    ) -> Result<Invoked, ClientError> {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if log_tail {
            headers.push((h::LOG_TYPE, "Tail"));
        }
        if let Some(k) = idempotency_key {
            headers.push((h::IDEMPOTENCY_KEY, k));
        }
        let answer = self
            .send(
                Method::POST,
                &format!("/api/v1/functions/{name}/invoke"),
                &headers,
                Some(("application/json", full(payload))),
            )
            .await?;
        if !answer.status.is_success() && answer.header(h::EXECUTION_ID).is_none() {
            return Err(Self::api_error(&answer));
        }
        Ok(Invoked { answer })
    }

    /// `POST /api/v1/functions/{name}/invoke?qualifier=Q`.
    pub async fn invoke_qualified(
        &self,
        name: &str,
        qualifier: Option<&str>,
        payload: Bytes,
        log_tail: bool,
    ) -> Result<Invoked, ClientError> {
        match qualifier {
            Some(q) => self.invoke(&format!("{name}:{q}"), payload, log_tail).await,
            None => self.invoke(name, payload, log_tail).await,
        }
    }

    async fn no_content(&self, method: Method, path: &str) -> Result<(), ClientError> {
        let answer = self.send(method, path, &[], None).await?;
        if !answer.status.is_success() {
            return Err(Self::api_error(&answer));
        }
        Ok(())
    }

    /// `POST /api/v1/functions/{name}/versions`.
    pub async fn publish_version(
        &self,
        name: &str,
        description: Option<String>,
    ) -> Result<VersionView, ClientError> {
        let body = Self::encode(&PublishVersionRequest { description })?;
        self.json(
            Method::POST,
            &format!("/api/v1/functions/{name}/versions"),
            Some(body),
        )
        .await
    }

    /// `GET /api/v1/functions/{name}/versions`.
    pub async fn list_versions(&self, name: &str) -> Result<VersionList, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/functions/{name}/versions"),
            None,
        )
        .await
    }

    /// `GET /api/v1/functions/{name}/versions/{version}`.
    pub async fn get_version(&self, name: &str, version: &str) -> Result<VersionView, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/functions/{name}/versions/{version}"),
            None,
        )
        .await
    }

    /// `DELETE /api/v1/functions/{name}/versions/{version}`.
    pub async fn delete_version(&self, name: &str, version: &str) -> Result<(), ClientError> {
        self.no_content(
            Method::DELETE,
            &format!("/api/v1/functions/{name}/versions/{version}"),
        )
        .await
    }

    /// `PUT /api/v1/functions/{name}/concurrency`.
    pub async fn set_concurrency(
        &self,
        name: &str,
        req: &holactl_types::concurrency::FunctionConcurrency,
    ) -> Result<holactl_types::concurrency::FunctionConcurrency, ClientError> {
        self.json(
            Method::PUT,
            &format!("/api/v1/functions/{name}/concurrency"),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `GET /api/v1/functions/{name}/concurrency`.
    pub async fn get_concurrency(
        &self,
        name: &str,
    ) -> Result<holactl_types::concurrency::FunctionConcurrency, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/functions/{name}/concurrency"),
            None,
        )
        .await
    }

    /// `DELETE /api/v1/functions/{name}/concurrency`.
    pub async fn delete_concurrency(&self, name: &str) -> Result<(), ClientError> {
        self.no_content(
            Method::DELETE,
            &format!("/api/v1/functions/{name}/concurrency"),
        )
        .await
    }

    /// `PUT /api/v1/functions/{name}/aliases/{alias}`.
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        req: &SetAliasRequest,
    ) -> Result<AliasView, ClientError> {
        self.json(
            Method::PUT,
            &format!("/api/v1/functions/{name}/aliases/{alias}"),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `POST /api/v1/functions/{name}/aliases/{alias}/shift`.
    pub async fn shift_alias(
        &self,
        name: &str,
        alias: &str,
        req: &ShiftAliasRequest,
    ) -> Result<AliasView, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/functions/{name}/aliases/{alias}/shift"),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `GET /api/v1/functions/{name}/aliases/{alias}`.
    pub async fn get_alias(&self, name: &str, alias: &str) -> Result<AliasView, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/functions/{name}/aliases/{alias}"),
            None,
        )
        .await
    }

    /// `GET /api/v1/functions/{name}/aliases`.
    pub async fn list_aliases(&self, name: &str) -> Result<AliasList, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/functions/{name}/aliases"),
            None,
        )
        .await
    }

    /// `DELETE /api/v1/functions/{name}/aliases/{alias}`.
    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), ClientError> {
        self.no_content(
            Method::DELETE,
            &format!("/api/v1/functions/{name}/aliases/{alias}"),
        )
        .await
    }

    /// `PUT /api/v1/secrets/{name}`.
    pub async fn set_secret(&self, name: &str, value: String) -> Result<SecretView, ClientError> {
        let body = Self::encode(&SetSecretRequest { value })?;
        self.json(Method::PUT, &format!("/api/v1/secrets/{name}"), Some(body))
            .await
    }

    /// `GET /api/v1/secrets`.
    pub async fn list_secrets(&self) -> Result<SecretList, ClientError> {
        self.json(Method::GET, "/api/v1/secrets", None).await
    }

    /// `DELETE /api/v1/secrets/{name}`.
    pub async fn delete_secret(&self, name: &str) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, &format!("/api/v1/secrets/{name}"))
            .await
    }

    /// `POST /api/v1/webhooks`.
    pub async fn create_webhook(
        &self,
        req: &CreateWebhookRequest,
    ) -> Result<WebhookView, ClientError> {
        self.json(Method::POST, "/api/v1/webhooks", Some(Self::encode(req)?))
            .await
    }

    /// `GET /api/v1/webhooks`.
    pub async fn list_webhooks(&self) -> Result<WebhookList, ClientError> {
        self.json(Method::GET, "/api/v1/webhooks", None).await
    }

    /// `GET /api/v1/webhooks/{name}`.
    pub async fn get_webhook(&self, name: &str) -> Result<WebhookView, ClientError> {
        self.json(Method::GET, &format!("/api/v1/webhooks/{name}"), None)
            .await
    }

    /// `DELETE /api/v1/webhooks/{name}`.
    pub async fn delete_webhook(&self, name: &str) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, &format!("/api/v1/webhooks/{name}"))
            .await
    }

    /// `PUT /api/v1/webhooks/{name}/secret`.
    pub async fn rotate_webhook_secret(
        &self,
        name: &str,
        secret: String,
    ) -> Result<WebhookView, ClientError> {
        let body = Self::encode(&RotateWebhookSecretRequest { secret })?;
        self.json(
            Method::PUT,
            &format!("/api/v1/webhooks/{name}/secret"),
            Some(body),
        )
        .await
    }

    /// `GET /api/v1/audit`.
    pub async fn audit(
        &self,
        function: Option<&str>,
        since: Option<i64>,
        limit: usize,
    ) -> Result<AuditList, ClientError> {
        let mut path = format!("/api/v1/audit?limit={limit}");
        if let Some(f) = function {
            path.push_str(&format!("&function={f}"));
        }
        if let Some(s) = since {
            path.push_str(&format!("&since={s}"));
        }
        self.json(Method::GET, &path, None).await
    }

    /// `GET /api/v1/usage` (`since` in epoch milliseconds).
    pub async fn usage(
        &self,
        since: Option<i64>,
        function: Option<&str>,
    ) -> Result<holactl_types::usage::UsageReport, ClientError> {
        let mut query = Vec::new();
        if let Some(s) = since {
            query.push(format!("since={s}"));
        }
        if let Some(f) = function {
            query.push(format!("function={f}"));
        }
        let path = if query.is_empty() {
            "/api/v1/usage".to_owned()
        } else {
            format!("/api/v1/usage?{}", query.join("&"))
        };
        self.json(Method::GET, &path, None).await
    }

    /// Queues an asynchronous invocation (`X-Invocation-Type: Event`); answers the pending
    /// execution.
    pub async fn invoke_async(
        &self,
        name: &str,
        payload: Bytes,
        idempotency_key: Option<&str>,
    ) -> Result<ExecutionRecord, ClientError> {
        let mut headers = vec![(h::INVOCATION_TYPE, "Event")];
        if let Some(k) = idempotency_key {
            headers.push((h::IDEMPOTENCY_KEY, k));
        }
        let answer = self
            .send(
                Method::POST,
                &format!("/api/v1/functions/{name}/invoke"),
                &headers,
                Some(("application/json", full(payload))),
            )
            .await?;
        if answer.status != StatusCode::ACCEPTED {
            return Err(Self::api_error(&answer));
        }
        serde_json::from_slice(&answer.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `DELETE /api/v1/executions/{id}`.
    pub async fn cancel_execution(&self, id: &str) -> Result<ExecutionRecord, ClientError> {
        self.json(Method::DELETE, &format!("/api/v1/executions/{id}"), None)
            .await
    }

    /// `GET /api/v1/functions/{name}/dlq`.
    pub async fn dead_letters(&self, name: &str) -> Result<DeadLetterList, ClientError> {
        self.json(Method::GET, &format!("/api/v1/functions/{name}/dlq"), None)
            .await
    }

    /// `GET /api/v1/functions/{name}/dlq/{id}`.
    pub async fn dead_letter(&self, name: &str, id: &str) -> Result<DeadLetterView, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/functions/{name}/dlq/{id}"),
            None,
        )
        .await
    }

    /// `POST /api/v1/functions/{name}/dlq/replay`.
    pub async fn replay_dead_letters(
        &self,
        name: &str,
        req: &ReplayRequest,
    ) -> Result<ReplayResult, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/functions/{name}/dlq/replay"),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `DELETE /api/v1/functions/{name}/dlq[?id=]`.
    pub async fn purge_dead_letters(
        &self,
        name: &str,
        id: Option<&str>,
    ) -> Result<PurgeResult, ClientError> {
        let path = match id {
            Some(id) => format!("/api/v1/functions/{name}/dlq?id={id}"),
            None => format!("/api/v1/functions/{name}/dlq"),
        };
        self.json(Method::DELETE, &path, None).await
    }

    /// `GET /api/v1/executions`.
    pub async fn list_executions(
        &self,
        function: Option<&str>,
        limit: usize,
    ) -> Result<ExecutionList, ClientError> {
        let mut path = format!("/api/v1/executions?limit={limit}");
        if let Some(f) = function {
            path.push_str(&format!("&function={f}"));
        }
        self.json(Method::GET, &path, None).await
    }

    /// `GET /api/v1/executions/{id}`.
    pub async fn get_execution(&self, id: &str) -> Result<ExecutionRecord, ClientError> {
        self.json(Method::GET, &format!("/api/v1/executions/{id}"), None)
            .await
    }

    /// `GET /api/v1/executions/{id}/logs`.
    pub async fn execution_logs(&self, id: &str) -> Result<ExecutionLogs, ClientError> {
        self.json(Method::GET, &format!("/api/v1/executions/{id}/logs"), None)
            .await
    }
}
