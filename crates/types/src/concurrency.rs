//! Per-function concurrency settings: reserved (a cap) and provisioned (kept warm).

use serde::{Deserialize, Serialize};

/// The most provisioned instances one function may ask for.
pub const MAX_PROVISIONED_CONCURRENCY: u32 = 100;

/// `PUT /api/v1/functions/{name}/concurrency` body, and what `GET` returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConcurrency {
    /// The most instances of the function running at once; 0 disables it. `None`: only the
    /// account-wide limit applies.
    #[serde(default)]
    pub reserved: Option<u32>,
    /// Instances of `$LATEST` kept initialised ahead of invocations.
    #[serde(default)]
    pub provisioned: Option<u32>,
}
