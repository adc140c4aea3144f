//! End-to-end tests of holactl: each test starts the real binary (`holactl lambda serve`) on a
//! free port with its own temporary data dir and drives it as a user would, through the CLI and
//! the HTTP API (via the typed client). One test binary; one module per area.

mod util;

mod api;
mod auth;
mod autoscale;
mod awslambdaric;
mod bad_input;
mod cluster;
mod concurrency;
mod crash;
mod errors;
mod events;
mod gateway;
mod isolation;
mod local_test;
mod logs;
mod observability;
mod policy;
mod queues;
mod quickstart;
mod schedules;
mod secrets;
mod shutdown;
mod tenancy;
mod timeout;
mod usage;
mod versions;
mod warm;
mod webhooks;
