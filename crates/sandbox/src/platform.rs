//! The platform's internal API, reached by a function through its own Runtime API endpoint
//! (`http://$AWS_LAMBDA_RUNTIME_API/hola/v1/…`), so it works for instances without any
//! network but their loopback.
//!
//! The sandbox knows nothing of functions, policies or tokens: the Runtime API server hands
//! every request under [`PREFIX`] to the [`PlatformCalls`] hook its [`crate::Sandbox`] was
//! given, together with the identity of the instance the request arrived at and the request id
//! of the invocation running there. Without a hook such requests get 404. The check of the
//! prefix happens only after the Runtime API's own paths failed to match, so the hot path
//! (`next`, `response`) does not see this module at all.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// Paths served by the hook.
pub const PREFIX: &str = "/hola/v1/";

/// A request to the internal API, as the hook sees it.
#[derive(Debug)]
pub struct PlatformCall {
    /// The instance whose endpoint the request arrived at.
    pub instance_id: String,
    /// The request id of the invocation running on that instance, if one is.
    pub active_request_id: Option<String>,
    /// The method.
    pub method: Method,
    /// The path after [`PREFIX`] (e.g. `functions/b/invoke`), still percent-encoded.
    pub path: String,
    /// The request's headers.
    pub headers: HeaderMap,
    /// The body, not read yet: the hook decides first whether and how much of it to read.
    pub body: PlatformBody,
}

/// A request body the hook reads with a limit of its choice.
#[derive(Debug)]
pub struct PlatformBody(Incoming);

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More bytes than the limit.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed mid-body.
    #[error("cannot read the body: {0}")]
    Read(String),
}

impl PlatformBody {
    /// Reads the whole body, failing beyond `limit` bytes.
    pub async fn read(self, limit: usize) -> Result<Bytes, BodyError> {
        match Limited::new(self.0, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(BodyError::TooLarge(limit))
            }
            Err(e) => Err(BodyError::Read(e.to_string())),
        }
    }
}

/// The hook's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct PlatformReply {
    /// HTTP status.
    pub status: u16,
    /// Headers (`content-type` included).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
}

/// Answers the internal API. Implemented by the engine.
pub trait PlatformCalls: Send + Sync + 'static {
    /// Handles one request. The future should finish what it started even if the caller
    /// goes away (the instance may be killed while it waits).
    fn call(&self, call: PlatformCall) -> Pin<Box<dyn Future<Output = PlatformReply> + Send>>;
}

/// What an instance's Runtime API server keeps of the hook: the hook and its instance's id.
#[derive(Clone)]
pub(crate) struct PlatformLink {
    pub hook: Arc<dyn PlatformCalls>,
    pub instance_id: String,
}

/// Serves a request under [`PREFIX`] (`rest` is the path after it).
pub(crate) async fn serve(
    link: Option<&PlatformLink>,
    active_request_id: Option<String>,
    rest: &str,
    req: http::Request<Incoming>,
) -> http::Response<http_body_util::Full<Bytes>> {
    let reply = match link {
        Some(link) => {
            let (parts, body) = req.into_parts();
            link.hook
                .call(PlatformCall {
                    instance_id: link.instance_id.clone(),
                    active_request_id,
                    method: parts.method,
                    path: rest.to_owned(),
                    headers: parts.headers,
                    body: PlatformBody(body),
                })
                .await
        }
        None => PlatformReply {
            status: 404,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from_static(
                br#"{"error":{"code":"NOT_FOUND","message":"the internal API is not available"}}"#,
            ),
        },
    };
    let mut resp = http::Response::new(http_body_util::Full::new(reply.body));
    *resp.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            resp.headers_mut().append(name, value);
        }
    }
    resp
}
