//! Queues and event-source mappings ("triggers"): named durable queues with a message API, and
//! mappings that poll a queue and invoke a function with SQS-shaped batches.
//!
//! This module holds the limits, the stored records, the API bodies and the event a function
//! receives; the engine's `queues` module does the work.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{EpochMillis, ValidationError};

/// Longest queue name (as SQS).
pub const MAX_QUEUE_NAME_LEN: usize = 80;
/// Largest message body, bytes (as SQS).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Most message attributes per message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// Longest delivery delay of a message, seconds.
pub const MAX_DELAY_S: u32 = 900;
/// Longest visibility timeout of a received message, seconds (12 h, as SQS).
pub const MAX_VISIBILITY_TIMEOUT_S: u32 = 43_200;
/// Default visibility timeout of `receive`, seconds.
pub const DEFAULT_VISIBILITY_TIMEOUT_S: u32 = 30;
/// Most messages one `receive` returns.
pub const MAX_RECEIVE: u32 = 10;

/// Smallest and largest batch of a mapping.
pub const MIN_BATCH_SIZE: u32 = 1;
/// Largest batch of a mapping.
pub const MAX_BATCH_SIZE: u32 = 10_000;
/// Default batch size (as Lambda's SQS mappings).
pub const DEFAULT_BATCH_SIZE: u32 = 10;
/// Longest batching window, seconds.
pub const MAX_BATCH_WINDOW_S: u32 = 300;
/// Most retries of a failed record.
pub const MAX_RETRIES: u32 = 10_000;
/// Default retries of a failed record before it is dead-lettered.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Shortest maximum record age, seconds.
pub const MIN_RECORD_AGE_S: u32 = 60;
/// Longest (and default) maximum record age, seconds: 14 days.
pub const MAX_RECORD_AGE_S: u32 = 1_209_600;
/// Most batches of one mapping in flight at once.
pub const MAX_PARALLELIZATION: u32 = 10;

/// `eventSource` of the records a mapping delivers.
pub const EVENT_SOURCE: &str = "holactl:queue";

/// Checks a queue name: `[A-Za-z0-9_-]{1,80}`, as SQS.
pub fn validate_queue_name(field: &str, name: &str) -> Result<(), ValidationError> {
    crate::function::validate_name(field, name, MAX_QUEUE_NAME_LEN)
}

fn in_range(
    field: &str,
    value: u32,
    min: u32,
    max: u32,
    unit: &str,
) -> Result<(), ValidationError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{value} is outside {min}..={max}{unit}"),
        ))
    }
}

/// A queue as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRecord {
    /// Name.
    pub name: String,
    /// Default visibility timeout of `receive`, seconds.
    pub visibility_timeout_s: u32,
    /// Default delivery delay of sent messages, seconds.
    pub delay_seconds: u32,
    /// Creation time.
    pub created_at: EpochMillis,
}

/// `POST /api/v1/queues`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateQueueRequest {
    /// Queue name.
    pub name: String,
    /// Default visibility timeout of `receive`, seconds (0–43200, default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_s: Option<u32>,
    /// Default delivery delay, seconds (0–900, default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<u32>,
}

impl CreateQueueRequest {
    /// Validates the request into the record to store.
    pub fn into_record(self, now: EpochMillis) -> Result<QueueRecord, ValidationError> {
        validate_queue_name("name", &self.name)?;
        let visibility_timeout_s = self
            .visibility_timeout_s
            .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT_S);
        in_range(
            "visibility_timeout_s",
            visibility_timeout_s,
            0,
            MAX_VISIBILITY_TIMEOUT_S,
            " seconds",
        )?;
        let delay_seconds = self.delay_seconds.unwrap_or(0);
        in_range("delay_seconds", delay_seconds, 0, MAX_DELAY_S, " seconds")?;
        Ok(QueueRecord {
            name: self.name,
            visibility_timeout_s,
            delay_seconds,
            created_at: now,
        })
    }
}

/// Message counts of a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepthView {
    /// Deliverable now.
    pub ready: u64,
    /// Waiting for their delay or retry backoff.
    pub delayed: u64,
    /// Leased to a consumer (a mapping or `receive`).
    pub in_flight: u64,
    /// In the queue's dead-letter area.
    pub dead: u64,
    /// Age of the oldest deliverable message, ms.
    pub oldest_age_ms: u64,
}

/// A queue as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueView {
    /// Name.
    pub name: String,
    /// `arn:aws:sqs:REGION:ACCOUNT:NAME`, the `eventSourceARN` of its records.
    pub arn: String,
    /// Default visibility timeout of `receive`, seconds.
    pub visibility_timeout_s: u32,
    /// Default delivery delay, seconds.
    pub delay_seconds: u32,
    /// Creation time.
    pub created_at: EpochMillis,
    /// Counts.
    pub depth: QueueDepthView,
}

/// `GET /api/v1/queues`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QueueList {
    /// Every queue, by name.
    pub queues: Vec<QueueView>,
}

/// `POST /api/v1/queues/{name}/messages`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// The message body (at most 256 KB).
    pub body: String,
    /// Delivery delay, seconds (0–900); the queue's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<u32>,
    /// Message attributes (string values), delivered as `messageAttributes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
}

impl SendMessageRequest {
    /// Bytes counted against [`MAX_MESSAGE_BYTES`]: the body and every attribute name and
    /// value, as SQS counts them.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// Checks the delay and attributes (the size is checked by the caller, which answers
    /// `PAYLOAD_TOO_LARGE`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(d) = self.delay_seconds {
            in_range("delay_seconds", d, 0, MAX_DELAY_S, " seconds")?;
        }
        let attributes = self.attributes.iter().flatten();
        if attributes.clone().count() > MAX_MESSAGE_ATTRIBUTES {
            return Err(ValidationError::new(
                "attributes",
                format!("at most {MAX_MESSAGE_ATTRIBUTES} attributes"),
            ));
        }
        for (name, _) in attributes {
            let ok = !name.is_empty()
                && name.len() <= 256
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(ValidationError::new(
                    format!("attributes.{name}"),
                    "attribute names are 1 to 256 letters, digits, '-', '_' or '.'",
                ));
            }
        }
        Ok(())
    }
}

/// The answer to a send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// The message id (the `messageId` of its record).
    pub message_id: String,
    /// Hex MD5 of the body, as SQS.
    pub md5_of_body: String,
}

/// `POST /api/v1/queues/{name}/messages/receive`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    /// Most messages to return (1–10, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// How long the messages stay hidden from other consumers, seconds (0–43200); the queue's
    /// default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_s: Option<u32>,
}

impl ReceiveRequest {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(m) = self.max {
            in_range("max", m, 1, MAX_RECEIVE, "")?;
        }
        if let Some(v) = self.visibility_timeout_s {
            in_range(
                "visibility_timeout_s",
                v,
                0,
                MAX_VISIBILITY_TIMEOUT_S,
                " seconds",
            )?;
        }
        Ok(())
    }
}

/// A received (leased) message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedMessage {
    /// Message id.
    pub message_id: String,
    /// Proof of this receipt: give it back to delete (ack) the message.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// System attributes: `ApproximateReceiveCount`, `SentTimestamp`, `SenderId`.
    pub attributes: BTreeMap<String, String>,
    /// The attributes it was sent with.
    pub message_attributes: BTreeMap<String, String>,
    /// Hex MD5 of the body.
    pub md5_of_body: String,
}

/// The answer to a receive.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReceivedMessages {
    /// Zero or more messages.
    pub messages: Vec<ReceivedMessage>,
}

/// A message in a queue's dead-letter area.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDeadLetter {
    /// Message id.
    pub id: String,
    /// The body.
    pub body: String,
    /// The attributes it was sent with.
    pub message_attributes: BTreeMap<String, String>,
    /// Deliveries made.
    pub attempts: u32,
    /// When it was sent.
    pub sent_at: EpochMillis,
    /// When it was dead-lettered.
    pub died_at: EpochMillis,
    /// The last error.
    pub reason: String,
}

/// `GET /api/v1/queues/{name}/dlq`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QueueDeadLetterList {
    /// Oldest first.
    pub entries: Vec<QueueDeadLetter>,
}

/// The answer to a DLQ replay or purge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDlqResult {
    /// Messages moved back into the queue (replay) or deleted (purge).
    pub count: u64,
}

/// An event-source mapping as stored: a queue, a function and how to batch and retry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerRecord {
    /// Id (a UUID).
    pub id: String,
    /// Source queue.
    pub queue: String,
    /// Target function, `name` or `name:qualifier`.
    pub function: String,
    /// Most records per invocation.
    pub batch_size: u32,
    /// How long to gather records before invoking with a partial batch, seconds.
    pub batch_window_s: u32,
    /// Retries of a failed record before it is dead-lettered.
    pub max_retries: u32,
    /// Records older than this (since sent) are dead-lettered instead of delivered, seconds.
    pub max_record_age_s: u32,
    /// Split a failing batch in halves to isolate the failing record.
    pub bisect_on_error: bool,
    /// Most batches in flight at once.
    pub parallelization: u32,
    /// Whether the mapping polls.
    pub enabled: bool,
    /// Creation time.
    pub created_at: EpochMillis,
    /// Last change.
    pub updated_at: EpochMillis,
}

/// `POST /api/v1/triggers`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTriggerRequest {
    /// Source queue.
    pub queue: String,
    /// Target function, `name` or `name:qualifier`.
    pub function: String,
    /// 1–10000, default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// 0–300 seconds, default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_window_s: Option<u32>,
    /// 0–10000, default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// 60–1209600 seconds, default 1209600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_record_age_s: Option<u32>,
    /// Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bisect_on_error: Option<bool>,
    /// 1–10, default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelization: Option<u32>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl CreateTriggerRequest {
    /// Validates the request into the record to store (the queue and function are checked to
    /// exist by the caller).
    pub fn into_record(
        self,
        id: String,
        now: EpochMillis,
    ) -> Result<TriggerRecord, ValidationError> {
        validate_queue_name("queue", &self.queue)?;
        let (name, qualifier) = crate::version::split_qualified(&self.function);
        crate::function::validate_function_name(name)
            .map_err(|e| ValidationError::new("function", e.message))?;
        if qualifier.is_some_and(str::is_empty) {
            return Err(ValidationError::new(
                "function",
                "the qualifier after ':' is empty",
            ));
        }
        let batch_size = self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        in_range("batch_size", batch_size, MIN_BATCH_SIZE, MAX_BATCH_SIZE, "")?;
        let batch_window_s = self.batch_window_s.unwrap_or(0);
        in_range(
            "batch_window_s",
            batch_window_s,
            0,
            MAX_BATCH_WINDOW_S,
            " seconds",
        )?;
        let max_retries = self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
        in_range("max_retries", max_retries, 0, MAX_RETRIES, "")?;
        let max_record_age_s = self.max_record_age_s.unwrap_or(MAX_RECORD_AGE_S);
        in_range(
            "max_record_age_s",
            max_record_age_s,
            MIN_RECORD_AGE_S,
            MAX_RECORD_AGE_S,
            " seconds",
        )?;
        let parallelization = self.parallelization.unwrap_or(1);
        in_range(
            "parallelization",
            parallelization,
            1,
            MAX_PARALLELIZATION,
            "",
        )?;
        Ok(TriggerRecord {
            id,
            queue: self.queue,
            function: self.function,
            batch_size,
            batch_window_s,
            max_retries,
            max_record_age_s,
            bisect_on_error: self.bisect_on_error.unwrap_or(false),
            parallelization,
            enabled: self.enabled.unwrap_or(true),
            created_at: now,
            updated_at: now,
        })
    }
}

/// A mapping as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerView {
    /// The mapping.
    #[serde(flatten)]
    pub trigger: TriggerRecord,
    /// `Enabled` or `Disabled`, as Lambda's `State`.
    pub state: String,
    /// The queue's ARN.
    pub queue_arn: String,
    /// The function's ARN (qualified when the mapping names a qualifier).
    pub function_arn: String,
}

/// `GET /api/v1/triggers`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TriggerList {
    /// Every mapping, oldest first.
    pub triggers: Vec<TriggerView>,
}

/// The event a mapping invokes its function with: `{"Records":[…]}`, as Lambda's SQS event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEvent {
    /// The batch.
    #[serde(rename = "Records")]
    pub records: Vec<QueueEventRecord>,
}

/// One record of a [`QueueEvent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueEventRecord {
    /// Message id; `itemIdentifier` in `batchItemFailures`.
    pub message_id: String,
    /// The lease token of this delivery.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// `ApproximateReceiveCount`, `SentTimestamp`, `SenderId`.
    pub attributes: BTreeMap<String, String>,
    /// The attributes it was sent with, in SQS's shape.
    pub message_attributes: BTreeMap<String, MessageAttributeValue>,
    /// Hex MD5 of the body.
    pub md5_of_body: String,
    /// Always [`EVENT_SOURCE`].
    pub event_source: String,
    /// The queue's ARN.
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: String,
    /// The region.
    pub aws_region: String,
}

/// A message attribute in SQS's event shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttributeValue {
    /// The value.
    pub string_value: String,
    /// Always empty (no binary attributes).
    pub string_list_values: Vec<String>,
    /// Always empty.
    pub binary_list_values: Vec<String>,
    /// Always `String`.
    pub data_type: String,
}

impl MessageAttributeValue {
    /// A `String` attribute.
    pub fn string(value: &str) -> Self {
        MessageAttributeValue {
            string_value: value.to_owned(),
            string_list_values: Vec::new(),
            binary_list_values: Vec::new(),
            data_type: "String".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(
        f: impl FnOnce(&mut CreateTriggerRequest),
    ) -> Result<TriggerRecord, ValidationError> {
        let mut req = CreateTriggerRequest {
            queue: "orders".into(),
            function: "hello".into(),
            ..Default::default()
        };
        f(&mut req);
        req.into_record("id".into(), 1)
    }

    #[test]
    fn trigger_defaults_and_bounds() {
        let t = trigger(|_| {}).unwrap();
        assert_eq!(
            (
                t.batch_size,
                t.batch_window_s,
                t.max_retries,
                t.parallelization
            ),
            (10, 0, 3, 1)
        );
        assert!(t.enabled && !t.bisect_on_error);
        let field = |f: fn(&mut CreateTriggerRequest)| trigger(f).unwrap_err().field;
        assert_eq!(field(|r| r.batch_size = Some(0)), "batch_size");
        assert_eq!(field(|r| r.batch_size = Some(10_001)), "batch_size");
        assert_eq!(field(|r| r.batch_window_s = Some(301)), "batch_window_s");
        assert_eq!(field(|r| r.max_retries = Some(10_001)), "max_retries");
        assert_eq!(field(|r| r.max_record_age_s = Some(59)), "max_record_age_s");
        assert_eq!(field(|r| r.parallelization = Some(11)), "parallelization");
        assert_eq!(field(|r| r.parallelization = Some(0)), "parallelization");
        assert_eq!(field(|r| r.queue = "a/b".into()), "queue");
        assert_eq!(field(|r| r.function = "x:".into()), "function");
        assert!(trigger(|r| r.function = "hello:prod".into()).is_ok());
    }

    #[test]
    fn event_has_the_sqs_shape() {
        let event = QueueEvent {
            records: vec![QueueEventRecord {
                message_id: "m".into(),
                receipt_handle: "r".into(),
                body: "b".into(),
                attributes: BTreeMap::new(),
                message_attributes: BTreeMap::from([(
                    "k".to_owned(),
                    MessageAttributeValue::string("v"),
                )]),
                md5_of_body: "x".into(),
                event_source: EVENT_SOURCE.into(),
                event_source_arn: "arn".into(),
                aws_region: "local-1".into(),
            }],
        };
        let v = serde_json::to_value(&event).unwrap();
        let r = &v["Records"][0];
        for key in [
            "messageId",
            "receiptHandle",
            "body",
            "attributes",
            "messageAttributes",
            "md5OfBody",
            "eventSource",
            "eventSourceARN",
            "awsRegion",
        ] {
            assert!(r.get(key).is_some(), "{key} missing: {r}");
        }
        assert_eq!(r["messageAttributes"]["k"]["stringValue"], "v");
        assert_eq!(r["messageAttributes"]["k"]["dataType"], "String");
    }

    #[test]
    fn send_validation() {
        let mut req = SendMessageRequest {
            body: "x".repeat(10),
            delay_seconds: Some(901),
            attributes: None,
        };
        assert_eq!(req.validate().unwrap_err().field, "delay_seconds");
        req.delay_seconds = None;
        req.attributes = Some(BTreeMap::from([("a b".to_owned(), "v".to_owned())]));
        assert_eq!(req.validate().unwrap_err().field, "attributes.a b");
        req.attributes = Some(BTreeMap::from([("ab".to_owned(), "v".to_owned())]));
        assert!(req.validate().is_ok());
        assert_eq!(req.size(), 13);
    }
}
