//! The typed client's `/api/v1/schedules` methods.

use http::{Method, StatusCode};

use holactl_types::schedule::{CreateScheduleRequest, ScheduleList, ScheduleView};
use holactl_types::ExecutionRecord;

use super::{Client, ClientError};

impl Client {
    /// `POST /api/v1/schedules`.
    pub async fn create_schedule(
        &self,
        req: &CreateScheduleRequest,
    ) -> Result<ScheduleView, ClientError> {
        self.json(Method::POST, "/api/v1/schedules", Some(Self::encode(req)?))
            .await
    }

    /// `GET /api/v1/schedules`.
    pub async fn list_schedules(&self) -> Result<ScheduleList, ClientError> {
        self.json(Method::GET, "/api/v1/schedules", None).await
    }

    /// `GET /api/v1/schedules/{name}`.
    pub async fn get_schedule(&self, name: &str) -> Result<ScheduleView, ClientError> {
        self.json(Method::GET, &format!("/api/v1/schedules/{name}"), None)
            .await
    }

    /// `POST /api/v1/schedules/{name}/pause`.
    pub async fn pause_schedule(&self, name: &str) -> Result<ScheduleView, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/schedules/{name}/pause"),
            None,
        )
        .await
    }

    /// `POST /api/v1/schedules/{name}/resume`.
    pub async fn resume_schedule(&self, name: &str) -> Result<ScheduleView, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/schedules/{name}/resume"),
            None,
        )
        .await
    }

    /// `POST /api/v1/schedules/{name}/run`: fires it now; answers the pending execution.
    pub async fn run_schedule(&self, name: &str) -> Result<ExecutionRecord, ClientError> {
        let answer = self
            .send(
                Method::POST,
                &format!("/api/v1/schedules/{name}/run"),
                &[],
                None,
            )
            .await?;
        if answer.status != StatusCode::ACCEPTED {
            return Err(Self::api_error(&answer));
        }
        serde_json::from_slice(&answer.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `DELETE /api/v1/schedules/{name}`.
    pub async fn delete_schedule(&self, name: &str) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, &format!("/api/v1/schedules/{name}"))
            .await
    }
}
