//! Spill-over: a synchronous invocation that finds this node at its account concurrency limit
//! (`--max-concurrency`) is handed to another node with capacity instead of being refused with
//! `THROTTLED`.
//!
//! Every node answers requests on the subject `<namespace>.invoke` in the queue group
//! `<namespace>-invoke` (NATS core request/reply: the server hands each request to one member
//! of the group). The connection is opened with `no_echo`, so a node's own requests are never
//! handed to itself. A member without a free slot answers `busy` at once and the caller asks
//! again (another member is picked), at most [`ATTEMPTS`] times; then the caller answers
//! `THROTTLED` as it would have alone. A member with a slot runs the invocation as if it had
//! received it (its own records, logs, metrics) and answers with the record and the function's
//! answer.
//!
//! Only what a NATS message can carry spills: the request and the answer must each fit the
//! server's `max_payload` (1 MB by default; set `max_payload: 8MB` in the server's
//! configuration to spill every size the API accepts). An answer that does not fit comes back
//! as an error naming the execution, which ran and is recorded. Invocations with an
//! idempotency key and async deliveries (which wait for capacity in their queue) never spill.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use holactl_types::version::Qualifier;
use holactl_types::{ExecutionRecord, Trigger};
use serde::{Deserialize, Serialize};

use crate::invoke::{InvokeRequest, InvokeResponse};
use crate::{Engine, EngineError};

/// Requests made before giving up (each `busy` answer is followed by another request).
pub const ATTEMPTS: usize = 3;
/// Time allowed beyond the function's timeout for the other node's answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);

/// The spill-over connection of a node.
pub(crate) struct Spill {
    client: async_nats::Client,
    subject: String,
    group: String,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// What a spilled request carries besides the event (the message's tail).
#[derive(Debug, Serialize, Deserialize)]
struct Asked {
    function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    qualifier: Option<String>,
    trigger: Trigger,
    log_tail: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    execution_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accepted_at: Option<i64>,
}

/// How a node answered (followed by the function's answer when it ran).
///
/// Externally tagged: an execution record holds a raw JSON value, which serde cannot read
/// through the buffering an internally tagged enum needs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answered {
    /// It ran there.
    Ran {
        node: String,
        record: Box<ExecutionRecord>,
        function_error: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_tail: Option<String>,
        /// The function's answer did not fit a NATS message (its size).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_omitted: Option<usize>,
    },
    /// No free slot there.
    Busy,
    /// It could not run it (e.g. the function is unknown there yet).
    Refused { message: String },
}

/// `meta` as JSON behind its length, then `body`.
fn frame(meta: &impl Serialize, body: &[u8]) -> Result<Bytes, EngineError> {
    let meta = serde_json::to_vec(meta).map_err(|e| EngineError::Internal(e.to_string()))?;
    let mut out = BytesMut::with_capacity(4 + meta.len() + body.len());
    out.put_u32(meta.len() as u32);
    out.put_slice(&meta);
    out.put_slice(body);
    Ok(out.freeze())
}

/// The inverse of [`frame`].
fn unframe<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Option<(T, Bytes)> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let meta = serde_json::from_slice(bytes.get(4..4 + len)?).ok()?;
    Some((meta, bytes.slice(4 + len..)))
}

impl Spill {
    /// Opens the spill-over connection (`no_echo`: never handed our own requests).
    pub(crate) async fn connect(
        url: &str,
        namespace: &str,
        auth: &holactl_store::nats::NatsAuth,
    ) -> Result<Spill, EngineError> {
        let client = auth
            .connect_options()
            .await?
            .name("holactl-spill")
            .no_echo()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| {
                EngineError::from(holactl_store::StoreError::Unavailable(format!(
                    "connecting to NATS at {url} (spill-over): {e}"
                )))
            })?;
        Ok(Spill {
            client,
            subject: format!("{namespace}.invoke"),
            group: format!("{namespace}-invoke"),
        })
    }

    /// The largest message the server takes.
    fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}

impl Engine {
    /// Starts answering other nodes' spilled invocations.
    pub(crate) async fn start_spill_responder(&self) -> Result<(), EngineError> {
        let Some(spill) = self.inner.cluster.as_ref().and_then(|c| c.spill.as_ref()) else {
            return Ok(());
        };
        let mut requests = spill
            .client
            .queue_subscribe(spill.subject.clone(), spill.group.clone())
            .await
            .map_err(|e| EngineError::Internal(format!("spill-over subscription: {e}")))?;
        let engine = self.clone();
        let task = tokio::spawn(async move {
            while let Some(msg) = requests.next().await {
                let Some(reply) = msg.reply.clone() else {
                    continue;
                };
                let engine = engine.clone();
                tokio::spawn(async move {
                    let answer = engine.answer_spilled(&msg.payload).await;
                    if let Some(spill) =
                        engine.inner.cluster.as_ref().and_then(|c| c.spill.as_ref())
                    {
                        if let Err(e) = spill.client.publish(reply, answer).await {
                            tracing::warn!(error = %e, "spill-over: cannot answer");
                        }
                    }
                });
            }
        });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
        Ok(())
    }

    /// Runs a spilled invocation here, when there is a free slot.
    async fn answer_spilled(&self, payload: &Bytes) -> Bytes {
        let node = self.node_id().unwrap_or_default().to_owned();
        let refused =
            |message: String| frame(&Answered::Refused { message }, &[]).unwrap_or_default();
        let Some((asked, event)) = unframe::<Asked>(payload) else {
            return refused("unreadable spill-over request".to_owned());
        };
        // Cheap early answer; `invoke` checks again when it takes the slot.
        if self.inner.concurrency.available_permits() == 0 {
            return frame(&Answered::Busy, &[]).unwrap_or_default();
        }
        let qualifier = match asked.qualifier.as_deref().map(Qualifier::parse).transpose() {
            Ok(q) => q,
            Err(e) => return refused(e.message),
        };
        let mut req = InvokeRequest::new(event, asked.trigger);
        req.qualifier = qualifier;
        req.log_tail = asked.log_tail;
        req.client_context = asked.client_context;
        req.execution_id = asked.execution_id;
        req.accepted_at = asked.accepted_at;
        req.no_spill = true;
        match self.invoke(&asked.function, req).await {
            Ok(resp) => {
                tracing::info!(function = %asked.function, execution = %resp.record.id, "ran an invocation spilled over by another node");
                let max = self
                    .inner
                    .cluster
                    .as_ref()
                    .and_then(|c| c.spill.as_ref())
                    .map_or(0, Spill::max_payload);
                let mut meta = Answered::Ran {
                    node: node.clone(),
                    record: Box::new(resp.record),
                    function_error: resp.function_error.is_some(),
                    log_tail: resp.log_tail,
                    body_omitted: None,
                };
                match frame(&meta, &resp.body) {
                    Ok(bytes) if bytes.len() + 1024 <= max => bytes,
                    _ => {
                        if let Answered::Ran { body_omitted, .. } = &mut meta {
                            *body_omitted = Some(resp.body.len());
                        }
                        frame(&meta, &[]).unwrap_or_default()
                    }
                }
            }
            Err(EngineError::Throttled(_)) => frame(&Answered::Busy, &[]).unwrap_or_default(),
            Err(e) => refused(e.to_string()),
        }
    }

    /// Hands a synchronous invocation this node has no slot for to another node. `None` when
    /// no node took it (the caller answers `THROTTLED`).
    pub(crate) async fn spill(
        &self,
        name: &str,
        req: &InvokeRequest,
        timeout_s: u32,
    ) -> Option<InvokeResponse> {
        let cluster = self.inner.cluster.as_ref()?;
        let spill = cluster.spill.as_ref()?;
        // Alone in the cluster (as far as heartbeats tell): nobody to ask.
        let others = self
            .cluster_status_cached()
            .map(|c| c.nodes.iter().filter(|n| n.live && n.id != c.node).count())
            .unwrap_or(0);
        if others == 0 || req.idempotency_key.is_some() {
            return None;
        }
        let asked = Asked {
            function: name.to_owned(),
            qualifier: req.qualifier.as_ref().map(ToString::to_string),
            trigger: req.trigger,
            log_tail: req.log_tail,
            client_context: req.client_context.clone(),
            execution_id: req.execution_id.clone(),
            accepted_at: req.accepted_at,
        };
        let message = frame(&asked, &req.payload).ok()?;
        if message.len() + 1024 > spill.max_payload() {
            return None;
        }
        let wait = Duration::from_secs(u64::from(timeout_s)) + ANSWER_MARGIN;
        for _ in 0..ATTEMPTS.min(others + 1) {
            let request = async_nats::Request::new()
                .payload(message.clone())
                .timeout(Some(wait));
            let answer = match spill
                .client
                .send_request(spill.subject.clone(), request)
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "spill-over request failed");
                    return None;
                }
            };
            match unframe::<Answered>(&answer.payload) {
                Some((
                    Answered::Ran {
                        node,
                        record,
                        function_error,
                        log_tail,
                        body_omitted,
                    },
                    body,
                )) => {
                    tracing::info!(function = %name, execution = %record.id, node = %node, "invocation spilled over to another node");
                    self.inner.metrics.spilled.inc();
                    let (body, function_error) = match body_omitted {
                        None => (body, function_error),
                        Some(size) => (
                            Bytes::from(
                                serde_json::json!({
                                    "errorType": "Hola.SpillAnswerTooLarge",
                                    "errorMessage": format!(
                                        "execution {} ran on node {node}, but its answer ({size} \
                                         bytes) is larger than a NATS message may be",
                                        record.id
                                    ),
                                })
                                .to_string(),
                            ),
                            true,
                        ),
                    };
                    return Some(InvokeResponse {
                        record: *record,
                        body,
                        function_error: function_error.then_some("Unhandled"),
                        log_tail,
                    });
                }
                Some((Answered::Busy, _)) => continue,
                Some((Answered::Refused { message }, _)) => {
                    tracing::debug!(message, "spill-over refused");
                    continue;
                }
                None => {
                    tracing::warn!("spill-over: unreadable answer");
                    return None;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let asked = Asked {
            function: "hello".into(),
            qualifier: Some("live".into()),
            trigger: Trigger::Invoke,
            log_tail: true,
            client_context: None,
            execution_id: None,
            accepted_at: Some(5),
        };
        let bytes = frame(&asked, b"{\"a\":1}").unwrap();
        let (back, event): (Asked, Bytes) = unframe(&bytes).unwrap();
        assert_eq!(back.function, "hello");
        assert_eq!(back.qualifier.as_deref(), Some("live"));
        assert_eq!(&event[..], b"{\"a\":1}");
        assert!(unframe::<Asked>(&Bytes::from_static(b"\x00\x00\x00\x09{}")).is_none());
        assert!(unframe::<Asked>(&Bytes::from_static(b"\x00")).is_none());
        let record: ExecutionRecord = serde_json::from_str(
            r#"{"id": "e1", "function": "hello", "version": "$LATEST", "status": "complete",
                "trigger": "invoke", "created_at": 1, "memory_mb": 512, "attempts": 1,
                "cold_start": false, "log_bytes": 0, "result": {"ok": true}}"#,
        )
        .unwrap();
        let ran = Answered::Ran {
            node: "n".into(),
            record: Box::new(record),
            function_error: false,
            log_tail: None,
            body_omitted: None,
        };
        let bytes = frame(&ran, b"{}").unwrap();
        assert!(matches!(
            unframe::<Answered>(&bytes),
            Some((Answered::Ran { .. }, _))
        ));
        let busy = frame(&Answered::Busy, &[]).unwrap();
        assert!(matches!(
            unframe::<Answered>(&busy),
            Some((Answered::Busy, _))
        ));
    }
}
