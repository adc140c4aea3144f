//! Request handlers, one file per resource. Each translates HTTP into one engine call.

pub mod audit;
pub mod concurrency;
pub mod dlq;
pub mod executions;
pub mod functions;
pub mod gateway;
pub mod identity;
pub mod observability;
pub mod policy;
pub mod queues;
pub mod schedules;
pub mod secrets;
pub mod system;
pub mod triggers;
pub mod usage;
pub mod versions;
pub mod webhooks;
