//! Request handlers, one file per resource. Each translates HTTP into one engine call.

pub mod executions;
pub mod functions;
pub mod system;
