//! Domain types of holactl: what a function is, what an execution records, the limits and
//! defaults every layer agrees on, and the stable error codes users see.
//!
//! This crate does no I/O: it validates and normalizes values, nothing more.
//!
//! # Layout
//! - [`error`]: [`ErrorCode`], the stable UPPER_SNAKE codes and their HTTP statuses, and the
//!   JSON error envelope.
//! - [`limits`]: every limit and default in one place.
//! - [`function`]: the user's manifest, the validated [`FunctionConfig`], the stored
//!   [`FunctionRecord`], runtimes.
//! - [`execution`]: execution records and their states.
//! - [`version`]: versions, aliases with weighted routing, qualifiers.
//! - [`audit`]: audit entries.
//! - [`queue`]: queues, their messages and event-source mappings (triggers).
//! - [`webhook`]: signed webhooks, their schemes and API bodies.
//! - [`api`]: request and response bodies of the HTTP API shared by the server and clients.
//! - [`schedule`]: cron and rate schedules: requests, records, views, rate parsing.
//! - [`observability`]: per-function metrics over a window, alerts, platform status.
//! - [`usage`]: usage metering: per-execution charges, daily aggregates, priced reports.
//! - [`gateway`]: the HTTP gateway: APIs, routes, authorizers, API keys, stages, CORS.
//! - [`policy`]: execution policies: what a function may do through the internal API.

pub mod api;
pub mod audit;
pub mod concurrency;
pub mod error;
pub mod execution;
pub mod function;
pub mod gateway;
pub mod identity;
pub mod limits;
pub mod observability;
pub mod policy;
pub mod queue;
pub mod schedule;
pub mod units;
pub mod usage;
pub mod version;
pub mod webhook;

pub use error::{ErrorBody, ErrorCode, ErrorDetail, ValidationError};
pub use execution::{ExecutionRecord, ExecutionStatus, Trigger};
pub use function::{FunctionConfig, FunctionManifest, FunctionRecord, Runtime, RuntimeFamily};

/// Milliseconds since the Unix epoch, the one time representation stored and sent.
pub type EpochMillis = i64;
