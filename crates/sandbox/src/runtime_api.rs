//! The AWS Lambda Runtime API (2018-06-01), served per instance.
//!
//! The engine hands an event to the instance by answering the runtime's pending
//! `GET /runtime/invocation/next`; the runtime answers with `POST …/{id}/response` or
//! `…/{id}/error`. `POST /runtime/init/error` fails the instance before its first event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot, watch};

/// Largest response or error body a runtime may post (6 MiB + 100 bytes, as Lambda).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;

const PREFIX: &str = "/2018-06-01/runtime/";

/// Ids of recently finished invocations kept to tell a repeated post from an unknown id.
const REMEMBERED_IDS: usize = 16;

/// An event on its way to a runtime.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The request id the function sees (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// The raw event.
    pub payload: Bytes,
    /// Time the handler gets, from hand-off.
    pub timeout: Duration,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub function_arn: String,
    /// `Lambda-Runtime-Trace-Id`.
    pub trace_id: String,
    /// `Lambda-Runtime-Client-Context` (JSON), if any.
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity` (JSON), if any.
    pub cognito_identity: Option<String>,
    /// `Lambda-Runtime-Hola-Token`: the invocation's scoped token for the internal API.
    pub hola_token: Option<String>,
}

/// What a runtime answered for an invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum RuntimeReply {
    /// `POST …/response`.
    Response(Bytes),
    /// `POST …/error`: the body as posted and the error type from the header or the body.
    Error {
        /// `Lambda-Runtime-Function-Error-Type`, else the body's `errorType`, else
        /// `Runtime.Unknown`.
        error_type: String,
        /// The posted body.
        body: Bytes,
    },
    /// A response over [`MAX_RESPONSE_BYTES`].
    TooLarge,
}

/// `POST /runtime/init/error`.
#[derive(Clone, Debug, PartialEq)]
pub struct InitFailure {
    /// The error type.
    pub error_type: String,
    /// The posted body.
    pub body: Bytes,
}

/// An invocation queued for `next`, with the channels its outcome travels on.
pub(crate) struct Handoff {
    pub invocation: Invocation,
    /// Fired when `next` hands the event over.
    pub started: oneshot::Sender<Instant>,
    /// The runtime's answer.
    pub reply: oneshot::Sender<RuntimeReply>,
}

#[derive(Default)]
struct Current {
    active: Option<(String, oneshot::Sender<RuntimeReply>)>,
    done: VecDeque<String>,
}

/// State shared by the instance and its Runtime API server.
pub(crate) struct ApiState {
    queue: tokio::sync::Mutex<mpsc::Receiver<Handoff>>,
    current: Mutex<Current>,
    init_failure: watch::Sender<Option<InitFailure>>,
    /// When the runtime first asked for `next` (its initialisation is over).
    ready: watch::Sender<Option<Instant>>,
    /// Where `/hola/v1/…` requests go (the internal API), if anywhere.
    platform: Option<crate::platform::PlatformLink>,
}

/// What the instance keeps of its Runtime API: the hand-off queue, init failures, readiness.
pub(crate) type ApiHandles = (
    mpsc::Sender<Handoff>,
    watch::Receiver<Option<InitFailure>>,
    watch::Receiver<Option<Instant>>,
);

impl ApiState {
    pub(crate) fn new(
        platform: Option<crate::platform::PlatformLink>,
    ) -> (Arc<ApiState>, ApiHandles) {
        let (tx, rx) = mpsc::channel(1);
        let (init_tx, init_rx) = watch::channel(None);
        let (ready_tx, ready_rx) = watch::channel(None);
        let state = Arc::new(ApiState {
            queue: tokio::sync::Mutex::new(rx),
            current: Mutex::new(Current::default()),
            init_failure: init_tx,
            ready: ready_tx,
            platform,
        });
        (state, (tx, init_rx, ready_rx))
    }
}

/// Serves the Runtime API on the listener `listener` resolves to, until the returned task is
/// aborted; aborting it also ends every connection.
pub(crate) fn serve(
    listener: impl std::future::Future<Output = Option<std::net::TcpListener>> + Send + 'static,
    state: Arc<ApiState>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(listener) = listener.await else {
            return;
        };
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(&state, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

type Resp = Response<Full<Bytes>>;

fn json(status: StatusCode, body: String) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Resp {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
    json(status, body.to_string())
}

fn accepted() -> Resp {
    json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#.to_owned())
}

async fn handle(state: &ApiState, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let Some(route) = path.strip_prefix(PREFIX) else {
        // The internal API: checked only once the Runtime API's own paths did not match.
        if let Some(rest) = path.strip_prefix(crate::platform::PREFIX) {
            let active = state.current.lock().ok().and_then(|c| {
                let (id, _) = c.active.as_ref()?;
                Some(id.clone())
            });
            return crate::platform::serve(state.platform.as_ref(), active, rest, req).await;
        }
        return api_error(StatusCode::NOT_FOUND, "NotFound", "unknown path");
    };
    match (req.method(), route) {
        (&Method::GET, "invocation/next") => next(state).await,
        (&Method::POST, "init/error") => {
            let error_type = error_type_header(&req);
            let Ok(body) = read_body(req).await else {
                return api_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    "init error body too large",
                );
            };
            let error_type = error_type.unwrap_or_else(|| error_type_of(&body));
            state
                .init_failure
                .send_replace(Some(InitFailure { error_type, body }));
            accepted()
        }
        (&Method::POST, rest) => {
            let Some(rest) = rest.strip_prefix("invocation/") else {
                return api_error(StatusCode::NOT_FOUND, "NotFound", "unknown path");
            };
            match rest.rsplit_once('/') {
                Some((id, "response")) => post_result(state, id.to_owned(), req, false).await,
                Some((id, "error")) => post_result(state, id.to_owned(), req, true).await,
                _ => api_error(StatusCode::NOT_FOUND, "NotFound", "unknown path"),
            }
        }
        _ => api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "method not allowed",
        ),
    }
}

async fn next(state: &ApiState) -> Resp {
    state.ready.send_if_modified(|ready| {
        if ready.is_none() {
            *ready = Some(Instant::now());
            true
        } else {
            false
        }
    });
    let handoff = {
        let mut queue = state.queue.lock().await;
        queue.recv().await
    };
    let Some(handoff) = handoff else {
        // The instance is stopping; it will be killed before this matters.
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceUnavailable",
            "instance stopping",
        );
    };
    let inv = handoff.invocation;
    let now = Instant::now();
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(inv.timeout)
        .as_millis();
    if let Ok(mut current) = state.current.lock() {
        current.active = Some((inv.request_id.clone(), handoff.reply));
    }
    let _ = handoff.started.send(now);

    let mut resp = Response::new(Full::new(inv.payload));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            if !value.is_empty() {
                h.insert(name, v);
            }
        }
    };
    set("lambda-runtime-aws-request-id", &inv.request_id);
    set("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &inv.function_arn);
    set("lambda-runtime-trace-id", &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        set("lambda-runtime-client-context", cc);
    }
    if let Some(ci) = &inv.cognito_identity {
        set("lambda-runtime-cognito-identity", ci);
    }
    if let Some(token) = &inv.hola_token {
        set("lambda-runtime-hola-token", token);
    }
    resp
}

async fn post_result(state: &ApiState, id: String, req: Request<Incoming>, is_error: bool) -> Resp {
    // Check the id before reading a possibly large body.
    {
        let Ok(current) = state.current.lock() else {
            return api_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal", "poisoned");
        };
        let is_active = current.active.as_ref().is_some_and(|(a, _)| *a == id);
        if !is_active {
            return if current.done.contains(&id) {
                api_error(
                    StatusCode::FORBIDDEN,
                    "InvalidStateTransition",
                    "a result was already posted for this request id",
                )
            } else {
                api_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestID",
                    "unknown request id",
                )
            };
        }
    }
    let error_type = error_type_header(&req);
    let body = read_body(req).await;
    let reply = match take_active(state, id) {
        Ok(reply) => reply,
        Err(resp) => return resp,
    };
    let (outcome, resp) = match body {
        Err(()) => (
            RuntimeReply::TooLarge,
            api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("response body exceeds {MAX_RESPONSE_BYTES} bytes"),
            ),
        ),
        Ok(body) if is_error => {
            // The body's errorType names the exception; the header only says Unhandled.
            let from_body = error_type_of(&body);
            let error_type = if from_body != "Runtime.Unknown" {
                from_body
            } else {
                error_type.unwrap_or(from_body)
            };
            (RuntimeReply::Error { error_type, body }, accepted())
        }
        Ok(body) => (RuntimeReply::Response(body), accepted()),
    };
    if reply.send(outcome).is_ok() {
        // The invoker was just woken on this worker thread. Yielding lets it answer its
        // caller first; the runtime's 202 (and its next `GET …/next`, which waits for the
        // next event anyway) comes right after, off the invocation's critical path.
        tokio::task::yield_now().await;
    }
    resp
}

/// Takes the reply channel of the active invocation `id`, remembering `id` as finished.
// The error is the finished response itself, built on a rare path; boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn take_active(state: &ApiState, id: String) -> Result<oneshot::Sender<RuntimeReply>, Resp> {
    let Ok(mut current) = state.current.lock() else {
        return Err(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal",
            "poisoned",
        ));
    };
    let Some((active_id, reply)) = current.active.take() else {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "a result was already posted for this request id",
        ));
    };
    if active_id != id {
        current.active = Some((active_id, reply));
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "unknown request id",
        ));
    }
    if current.done.len() == REMEMBERED_IDS {
        current.done.pop_front();
    }
    current.done.push_back(id);
    Ok(reply)
}

fn error_type_header(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The `errorType` of an error body, or `Runtime.Unknown`.
fn error_type_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errorType")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "Runtime.Unknown".to_owned())
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ()> {
    Limited::new(req.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types() {
        assert_eq!(
            error_type_of(br#"{"errorType":"ValueError"}"#),
            "ValueError"
        );
        assert_eq!(error_type_of(b"not json"), "Runtime.Unknown");
    }
}
