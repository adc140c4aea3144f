//! The typed client's `/api/v1/queues` and `/api/v1/triggers` methods.

use http::Method;

use holactl_types::api::{PurgeResult, ReplayRequest};
use holactl_types::queue::{
    CreateQueueRequest, CreateTriggerRequest, QueueDeadLetterList, QueueDlqResult, QueueList,
    QueueView, ReceiveRequest, ReceivedMessages, SendMessageRequest, SentMessage, TriggerList,
    TriggerView,
};

use super::{Client, ClientError};

/// Escapes a query value (receipt handles and ids are URL-safe, but be exact anyway).
fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Client {
    /// `POST /api/v1/queues`.
    pub async fn create_queue(&self, req: &CreateQueueRequest) -> Result<QueueView, ClientError> {
        self.json(Method::POST, "/api/v1/queues", Some(Self::encode(req)?))
            .await
    }

    /// `GET /api/v1/queues`.
    pub async fn list_queues(&self) -> Result<QueueList, ClientError> {
        self.json(Method::GET, "/api/v1/queues", None).await
    }

    /// `GET /api/v1/queues/{name}`.
    pub async fn get_queue(&self, name: &str) -> Result<QueueView, ClientError> {
        self.json(Method::GET, &format!("/api/v1/queues/{name}"), None)
            .await
    }

    /// `DELETE /api/v1/queues/{name}`.
    pub async fn delete_queue(&self, name: &str) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, &format!("/api/v1/queues/{name}"))
            .await
    }

    /// `POST /api/v1/queues/{name}/messages`.
    pub async fn send_message(
        &self,
        name: &str,
        req: &SendMessageRequest,
    ) -> Result<SentMessage, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/queues/{name}/messages"),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `POST /api/v1/queues/{name}/messages/receive`.
    pub async fn receive_messages(
        &self,
        name: &str,
        req: &ReceiveRequest,
    ) -> Result<ReceivedMessages, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/queues/{name}/messages/receive"),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `DELETE /api/v1/queues/{name}/messages/{id}?receipt=…`: acknowledges a received message.
    pub async fn delete_message(
        &self,
        name: &str,
        id: &str,
        receipt: &str,
    ) -> Result<(), ClientError> {
        self.no_content(
            Method::DELETE,
            &format!(
                "/api/v1/queues/{name}/messages/{id}?receipt={}",
                query_value(receipt)
            ),
        )
        .await
    }

    /// `GET /api/v1/queues/{name}/dlq`.
    pub async fn queue_dead_letters(&self, name: &str) -> Result<QueueDeadLetterList, ClientError> {
        self.json(Method::GET, &format!("/api/v1/queues/{name}/dlq"), None)
            .await
    }

    /// `POST /api/v1/queues/{name}/dlq/replay`.
    pub async fn replay_queue_dead_letters(
        &self,
        name: &str,
        req: &ReplayRequest,
    ) -> Result<QueueDlqResult, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/queues/{name}/dlq/replay"),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `DELETE /api/v1/queues/{name}/dlq[?id=]`.
    pub async fn purge_queue_dead_letters(
        &self,
        name: &str,
        id: Option<&str>,
    ) -> Result<PurgeResult, ClientError> {
        let path = match id {
            Some(id) => format!("/api/v1/queues/{name}/dlq?id={}", query_value(id)),
            None => format!("/api/v1/queues/{name}/dlq"),
        };
        self.json(Method::DELETE, &path, None).await
    }

    /// `POST /api/v1/triggers`.
    pub async fn create_trigger(
        &self,
        req: &CreateTriggerRequest,
    ) -> Result<TriggerView, ClientError> {
        self.json(Method::POST, "/api/v1/triggers", Some(Self::encode(req)?))
            .await
    }

    /// `GET /api/v1/triggers`.
    pub async fn list_triggers(&self) -> Result<TriggerList, ClientError> {
        self.json(Method::GET, "/api/v1/triggers", None).await
    }

    /// `GET /api/v1/triggers/{id}`.
    pub async fn get_trigger(&self, id: &str) -> Result<TriggerView, ClientError> {
        self.json(Method::GET, &format!("/api/v1/triggers/{id}"), None)
            .await
    }

    /// `POST /api/v1/triggers/{id}/enable` or `/disable`.
    pub async fn set_trigger_enabled(
        &self,
        id: &str,
        enabled: bool,
    ) -> Result<TriggerView, ClientError> {
        let action = if enabled { "enable" } else { "disable" };
        self.json(
            Method::POST,
            &format!("/api/v1/triggers/{id}/{action}"),
            None,
        )
        .await
    }

    /// `DELETE /api/v1/triggers/{id}`.
    pub async fn delete_trigger(&self, id: &str) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, &format!("/api/v1/triggers/{id}"))
            .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_escaped() {
        assert_eq!(super::query_value("ab-1_.~"), "ab-1_.~");
        assert_eq!(super::query_value("a b/+"), "a%20b%2F%2B");
    }
}
