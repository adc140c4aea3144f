//! The audit trail: who changed what, when, with the before and after.

use serde::{Deserialize, Serialize};

use crate::EpochMillis;

/// One change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unique, time-ordered id.
    pub id: String,
    /// When.
    pub at: EpochMillis,
    /// Who (the authenticated principal).
    pub actor: String,
    /// What kind of change (`function.create`, `alias.shift`, `secret.set`, …).
    pub action: String,
    /// The function concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The object changed (`hello`, `hello:prod`, `hello:3`, `secret DB_PASSWORD`).
    pub target: String,
    /// State before (secrets redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// State after (secrets redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}
