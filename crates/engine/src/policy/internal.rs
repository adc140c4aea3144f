//! The internal API a function calls through its own Runtime API endpoint:
//!
//! | call | does |
//! |---|---|
//! | `POST /hola/v1/functions/{name}[:{qualifier}]/invoke` | invokes (`X-Invocation-Type: Event`: queues it) |
//! | `POST /hola/v1/queues/{name}/messages` | sends a message (body as the public API's) |
//! | `GET /hola/v1/secrets/{name}` | `{"name","value"}` |
//!
//! Every call carries `Authorization: Bearer <token>`, the token of the invocation making it.
//! Order of checks, each failure answering `UNAUTHORIZED` and naming what was refused: the path
//! and names (404/405/400) → the token's signature and expiry (401) → it was minted for an
//! invocation on *this* instance (401: a token taken from another function does not work here)
//! → that invocation is the one running now (401: a token kept from an earlier invocation does
//! not either) → the policy in force lists the target (403) → the target belongs to the
//! caller's project (403). Only then is a body read or a resource looked at, so a refused
//! caller learns nothing about what exists.

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;

use bytes::Bytes;
use holactl_sandbox::platform::{BodyError, PlatformCall, PlatformCalls, PlatformReply};
use holactl_types::api::headers as h;
use holactl_types::function::{validate_function_name, validate_secret_name};
use holactl_types::limits::MAX_SYNC_PAYLOAD_BYTES;
use holactl_types::queue::{validate_queue_name, SendMessageRequest, MAX_MESSAGE_BYTES};
use holactl_types::version::{split_qualified, Qualifier};
use holactl_types::{ErrorBody, ErrorCode, ErrorDetail, Trigger};
use http::Method;
use serde::Serialize;

use super::token::{Claims, TokenKey};
use crate::identity::ResourceKind;
use crate::{now_ms, AsyncRequest, Engine, EngineError, Inner, InvokeRequest};

/// Largest body of a send: room for JSON escaping of a message at the limit, as the public API.
const MAX_SEND_BODY: usize = 2 * MAX_MESSAGE_BYTES + 64 * 1024;

/// The engine's side of [`PlatformCalls`]. Holds the engine weakly: the engine owns the sandbox,
/// which owns this.
pub(crate) struct InternalApi {
    pub(crate) engine: Weak<Inner>,
}

impl PlatformCalls for InternalApi {
    fn call(&self, call: PlatformCall) -> Pin<Box<dyn Future<Output = PlatformReply> + Send>> {
        let inner = self.engine.upgrade();
        Box::pin(async move {
            let Some(inner) = inner else {
                return error(
                    ErrorCode::ServiceUnavailable,
                    "the platform is stopping".into(),
                );
            };
            let engine = Engine { inner };
            // A task of its own: an invocation started here runs to its end and is recorded
            // even if the calling instance is killed (its timeout) while waiting.
            tokio::spawn(async move { engine.internal_call(call).await })
                .await
                .unwrap_or_else(|_| error(ErrorCode::InternalError, "internal error".into()))
        })
    }
}

/// What a call asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Target {
    /// Invoke a function.
    Invoke {
        function: String,
        qualifier: Option<Qualifier>,
    },
    /// Send to a queue.
    Send { queue: String },
    /// Read a secret.
    Secret { name: String },
}

impl Target {
    /// How the target is named in messages and logs.
    fn describe(&self) -> String {
        match self {
            Target::Invoke {
                function,
                qualifier: Some(q),
            } => format!("invoke function {function}:{q}"),
            Target::Invoke { function, .. } => format!("invoke function {function}"),
            Target::Send { queue } => format!("send to queue {queue}"),
            Target::Secret { name } => format!("read secret {name}"),
        }
    }
}

/// An answer other than success.
#[derive(Debug, PartialEq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    fn unauthenticated(message: impl Into<String>) -> Refusal {
        Refusal::new(401, ErrorCode::Unauthorized, message)
    }
}

/// Parses the method and path (after `/hola/v1/`) into a target, validating names.
pub(crate) fn route(method: &Method, path: &str) -> Result<Target, Refusal> {
    let not_found = || {
        Refusal::new(
            404,
            ErrorCode::NotFound,
            format!("no route /hola/v1/{path}"),
        )
    };
    let segments: Vec<&str> = path.split('/').collect();
    let (expected, target) = match segments.as_slice() {
        ["functions", name, "invoke"] => (Method::POST, Some(name)),
        ["queues", name, "messages"] => (Method::POST, Some(name)),
        ["secrets", name] => (Method::GET, Some(name)),
        _ => (Method::GET, None),
    };
    let Some(raw) = target else {
        return Err(not_found());
    };
    if *method != expected {
        return Err(Refusal::new(
            405,
            ErrorCode::MethodNotAllowed,
            format!("use {expected} on /hola/v1/{path}"),
        ));
    }
    let invalid = |field: &str, message: String| {
        Refusal::new(
            400,
            ErrorCode::InvalidInput,
            format!("invalid {field}: {message}"),
        )
    };
    let name = crate::gateway::table::percent_decode(raw)
        .ok_or_else(|| invalid("path", "bad percent-encoding".into()))?;
    match segments[0] {
        "functions" => {
            let (function, qualifier) = split_qualified(&name);
            validate_function_name(function).map_err(|e| invalid("function", e.message))?;
            let qualifier = qualifier
                .map(Qualifier::parse)
                .transpose()
                .map_err(|e| invalid("qualifier", e.message))?;
            Ok(Target::Invoke {
                function: function.to_owned(),
                qualifier,
            })
        }
        "queues" => {
            validate_queue_name("queue", &name).map_err(|e| invalid("queue", e.message))?;
            Ok(Target::Send { queue: name })
        }
        _ => {
            validate_secret_name(&name).map_err(|e| invalid("secret", e.message))?;
            Ok(Target::Secret { name })
        }
    }
}

/// Whether `policy` allows `target`.
pub(crate) fn allows(policy: &holactl_types::policy::ExecutionPolicy, target: &Target) -> bool {
    match target {
        Target::Invoke {
            function,
            qualifier,
        } => {
            let q = qualifier.as_ref().map(ToString::to_string);
            policy.allows_invoke(function, q.as_deref())
        }
        Target::Send { queue } => policy.allows_send(queue),
        Target::Secret { name } => policy.allows_secret(name),
    }
}

fn json_reply(status: u16, value: &impl Serialize, extra: Vec<(String, String)>) -> PlatformReply {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    headers.extend(extra);
    PlatformReply {
        status,
        headers,
        body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    }
}

/// An error in the public API's envelope, with the status of its code.
fn error(code: ErrorCode, message: String) -> PlatformReply {
    refusal(Refusal::new(code.http_status(), code, message))
}

fn refusal(r: Refusal) -> PlatformReply {
    json_reply(
        r.status,
        &ErrorBody {
            error: ErrorDetail {
                code: r.code,
                message: r.message,
                request_id: None,
                field: None,
            },
        },
        Vec::new(),
    )
}

fn engine_error(e: EngineError) -> PlatformReply {
    let mut body = ErrorBody {
        error: ErrorDetail {
            code: e.code(),
            message: e.public_message(),
            request_id: None,
            field: e.field().map(str::to_owned),
        },
    };
    if let EngineError::Internal(detail) = &e {
        tracing::error!(error = %detail, "internal API call failed");
        body.error.message = "internal error".to_owned();
    }
    json_reply(e.code().http_status(), &body, Vec::new())
}

fn body_error(e: BodyError) -> PlatformReply {
    match e {
        BodyError::TooLarge(limit) => error(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        ),
        BodyError::Read(m) => error(ErrorCode::InvalidInput, m),
    }
}

/// Authenticates a call's bearer `token` for the instance it arrived at (`instance_id`) and
/// the invocation running there (`active`).
pub(crate) fn authenticate(
    key: &TokenKey,
    token: Option<&str>,
    instance_id: &str,
    active: Option<&str>,
    now: i64,
) -> Result<Claims, Refusal> {
    let token = token.ok_or_else(|| {
        Refusal::unauthenticated(
            "missing Authorization: Bearer <token>; use the invocation's token \
             (context.hola_token, context.holaToken or $HOLA_TOKEN)",
        )
    })?;
    let claims = key
        .verify(token, now)
        .map_err(|e| Refusal::unauthenticated(e.to_string()))?;
    if claims.instance != instance_id {
        return Err(Refusal::unauthenticated(
            "the token was not issued to this instance (it belongs to an invocation of another \
             function or instance)",
        ));
    }
    if active != Some(claims.execution.as_str()) {
        return Err(Refusal::unauthenticated(
            "the token's invocation is over; use the current invocation's token",
        ));
    }
    Ok(claims)
}

impl Engine {
    /// Handles one internal API call end to end.
    pub(crate) async fn internal_call(&self, call: PlatformCall) -> PlatformReply {
        let target = match route(&call.method, &call.path) {
            Ok(t) => t,
            Err(r) => return refusal(r),
        };
        let claims = match authenticate(
            &self.inner.policy.key,
            crate::auth::bearer(&call.headers),
            &call.instance_id,
            call.active_request_id.as_deref(),
            now_ms(),
        ) {
            Ok(c) => c,
            Err(r) => {
                tracing::warn!(
                    instance = %call.instance_id,
                    action = %target.describe(),
                    reason = %r.message,
                    "internal API call refused"
                );
                return refusal(r);
            }
        };
        let effective = match self
            .effective_policy(&claims.function, claims.qualifier.as_deref())
            .await
        {
            Ok(e) => e,
            Err(e) => return engine_error(e),
        };
        let caller = match &effective.alias {
            Some(a) => format!("function {}:{a}", claims.function),
            None => format!("function {}", claims.function),
        };
        if !allows(&effective.policy, &target) {
            let message = format!(
                "{caller} may not {}: not in its execution policy",
                target.describe()
            );
            tracing::warn!(
                function = %claims.function,
                execution = %claims.execution,
                action = %target.describe(),
                "internal API call refused by policy"
            );
            return refusal(Refusal::new(403, ErrorCode::Unauthorized, message));
        }
        // Projects are tenants: a grant never reaches into another project, whoever wrote it
        // and whatever changed owner since.
        let (kind, name) = match &target {
            Target::Invoke { function, .. } => (ResourceKind::Function, function),
            Target::Send { queue } => (ResourceKind::Queue, queue),
            Target::Secret { name } => (ResourceKind::Secret, name),
        };
        let project = self.owner(ResourceKind::Function, &claims.function);
        if self.owner(kind, name) != project {
            let message = format!(
                "{caller} may not {}: it is outside project {project}",
                target.describe()
            );
            tracing::warn!(
                function = %claims.function,
                execution = %claims.execution,
                action = %target.describe(),
                "internal API call refused: another project"
            );
            return refusal(Refusal::new(403, ErrorCode::Unauthorized, message));
        }
        tracing::info!(
            function = %claims.function,
            execution = %claims.execution,
            action = %target.describe(),
            "internal API call"
        );
        match target {
            Target::Invoke {
                function,
                qualifier,
            } => self.internal_invoke(call, function, qualifier).await,
            Target::Send { queue } => {
                let bytes = match call.body.read(MAX_SEND_BODY).await {
                    Ok(b) => b,
                    Err(e) => return body_error(e),
                };
                let req: SendMessageRequest = match serde_json::from_slice(&bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        return engine_error(EngineError::invalid(
                            "body",
                            format!("not a message ({{\"body\": …}}): {e}"),
                        ))
                    }
                };
                match self.send_message(&queue, req).await {
                    Ok(sent) => json_reply(200, &sent, Vec::new()),
                    Err(e) => engine_error(e),
                }
            }
            Target::Secret { name } => match self.secret_value(&name).await {
                Ok(Some(value)) => json_reply(
                    200,
                    &serde_json::json!({ "name": name, "value": value }),
                    Vec::new(),
                ),
                Ok(None) => engine_error(EngineError::ResourceNotFound(format!(
                    "secret {name:?} does not exist"
                ))),
                Err(e) => engine_error(e),
            },
        }
    }

    /// `POST …/functions/{name}/invoke`, answered as the public invoke.
    async fn internal_invoke(
        &self,
        call: PlatformCall,
        function: String,
        qualifier: Option<Qualifier>,
    ) -> PlatformReply {
        let header = |name: &str| {
            call.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let asynchronous = match header(h::INVOCATION_TYPE).as_deref() {
            None | Some("RequestResponse") => false,
            Some("Event") => true,
            Some(other) => {
                return engine_error(EngineError::invalid(
                    "x-invocation-type",
                    format!("{other:?} is not RequestResponse or Event"),
                ))
            }
        };
        let idempotency_key = header(h::IDEMPOTENCY_KEY);
        let payload = match call.body.read(MAX_SYNC_PAYLOAD_BYTES).await {
            Ok(b) if b.is_empty() => Bytes::from_static(b"{}"),
            Ok(b) => b,
            Err(e) => return body_error(e),
        };
        if asynchronous {
            return match self
                .invoke_async(
                    &function,
                    AsyncRequest {
                        payload,
                        qualifier,
                        trigger: Trigger::Function,
                        idempotency_key,
                    },
                )
                .await
            {
                Ok(record) => {
                    let id = record.id.clone();
                    json_reply(202, &record, vec![(h::EXECUTION_ID.to_owned(), id)])
                }
                Err(e) => engine_error(e),
            };
        }
        let mut req = InvokeRequest::new(payload, Trigger::Function);
        req.qualifier = qualifier;
        req.idempotency_key = idempotency_key;
        let out = match self.invoke(&function, req).await {
            Ok(out) => out,
            Err(e) => return engine_error(e),
        };
        let record = &out.record;
        let error_code = record.error.as_ref().map(|e| e.code);
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (h::EXECUTION_ID.to_owned(), record.id.clone()),
            (h::EXECUTED_VERSION.to_owned(), record.version.clone()),
        ];
        if let Some(marker) = out.function_error {
            headers.push((h::FUNCTION_ERROR.to_owned(), marker.to_owned()));
        }
        if let Some(code) = error_code {
            headers.push((h::ERROR_CODE.to_owned(), code.as_str().to_owned()));
        }
        PlatformReply {
            status: if error_code == Some(ErrorCode::PayloadTooLarge) {
                413
            } else {
                200
            },
            headers,
            body: out.body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holactl_types::policy::ExecutionPolicy;

    #[test]
    fn routes() {
        assert_eq!(
            route(&Method::POST, "functions/b/invoke"),
            Ok(Target::Invoke {
                function: "b".into(),
                qualifier: None
            })
        );
        assert_eq!(
            route(&Method::POST, "functions/b%3Aprod/invoke"),
            Ok(Target::Invoke {
                function: "b".into(),
                qualifier: Some(Qualifier::Alias("prod".into()))
            })
        );
        assert_eq!(
            route(&Method::POST, "queues/jobs/messages"),
            Ok(Target::Send {
                queue: "jobs".into()
            })
        );
        assert_eq!(
            route(&Method::GET, "secrets/db.pass"),
            Ok(Target::Secret {
                name: "db.pass".into()
            })
        );
        assert_eq!(route(&Method::GET, "secrets/db/x").unwrap_err().status, 404);
        assert_eq!(route(&Method::GET, "").unwrap_err().status, 404);
        assert_eq!(
            route(&Method::GET, "functions/b/invoke")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(route(&Method::POST, "secrets/db").unwrap_err().status, 405);
        let bad = route(&Method::POST, "functions/b%2Fc/invoke").unwrap_err();
        assert_eq!((bad.status, bad.code), (400, ErrorCode::InvalidInput));
        assert_eq!(
            route(&Method::POST, "functions/b:0/invoke")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(route(&Method::GET, "secrets/%zz").unwrap_err().status, 400);
        assert_eq!(route(&Method::GET, "secrets/%").unwrap_err().status, 400);
    }

    #[test]
    fn authentication() {
        let key = TokenKey::from_bytes(&[1; 32]);
        let claims = Claims {
            function: "a".into(),
            qualifier: None,
            execution: "x1".into(),
            instance: "i1".into(),
            expires_at: 1_000,
        };
        let token = key.mint(&claims);
        let auth = |token: Option<&str>, instance: &str, active: Option<&str>, now: i64| {
            authenticate(&key, token, instance, active, now)
        };
        assert_eq!(
            auth(Some(&token), "i1", Some("x1"), 999),
            Ok(claims.clone())
        );
        let refused = |r: Result<Claims, Refusal>| {
            let r = r.unwrap_err();
            assert_eq!((r.status, r.code), (401, ErrorCode::Unauthorized));
            r.message
        };
        assert!(refused(auth(None, "i1", Some("x1"), 0)).contains("missing"));
        assert!(refused(auth(Some(&token), "i1", Some("x1"), 1_000)).contains("expired"));
        assert!(refused(auth(Some("hola1.e30.AAAA"), "i1", Some("x1"), 0)).contains("signature"));
        // A token of another instance (another function's, or another instance's of the same).
        assert!(refused(auth(Some(&token), "i2", Some("x1"), 0)).contains("instance"));
        // A token kept from an earlier invocation, or used between invocations.
        assert!(refused(auth(Some(&token), "i1", Some("x2"), 0)).contains("over"));
        assert!(refused(auth(Some(&token), "i1", None, 0)).contains("over"));
        // Another key: a token of another (or a restarted) server.
        let other = TokenKey::from_bytes(&[2; 32]).mint(&claims);
        assert!(refused(auth(Some(&other), "i1", Some("x1"), 0)).contains("signature"));
    }

    #[test]
    fn decisions_follow_the_policy() {
        let policy = ExecutionPolicy {
            invoke: vec!["b".into(), "c:prod".into()],
            send: vec!["jobs".into()],
            secrets: vec!["db".into()],
        };
        let t = |m: Method, p: &str| route(&m, p).unwrap();
        assert!(allows(&policy, &t(Method::POST, "functions/b/invoke")));
        assert!(allows(
            &policy,
            &t(Method::POST, "functions/b:$LATEST/invoke")
        ));
        assert!(!allows(&policy, &t(Method::POST, "functions/b:1/invoke")));
        assert!(allows(&policy, &t(Method::POST, "functions/c:prod/invoke")));
        assert!(!allows(&policy, &t(Method::POST, "functions/c/invoke")));
        assert!(!allows(&policy, &t(Method::POST, "functions/d/invoke")));
        assert!(allows(&policy, &t(Method::POST, "queues/jobs/messages")));
        assert!(!allows(&policy, &t(Method::POST, "queues/other/messages")));
        assert!(allows(&policy, &t(Method::GET, "secrets/db")));
        assert!(!allows(&policy, &t(Method::GET, "secrets/other")));
        let nothing = ExecutionPolicy::default();
        for (m, p) in [
            (Method::POST, "functions/b/invoke"),
            (Method::POST, "queues/jobs/messages"),
            (Method::GET, "secrets/db"),
        ] {
            assert!(!allows(&nothing, &t(m, p)), "{p}");
        }
    }
}
