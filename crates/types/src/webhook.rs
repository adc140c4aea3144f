//! Signed webhooks: a public URL `/hooks/{id}` that needs no platform token; each delivery
//! carries an HMAC-SHA256 signature made with a shared secret, checked in constant time, and a
//! good one starts an asynchronous invocation of the webhook's function.
//!
//! The schemes, their headers and the event the function gets are described in the README
//! ("Webhooks").

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::EpochMillis;

/// Longest webhook name.
pub const MAX_WEBHOOK_NAME_LEN: usize = 64;
/// Largest webhook secret, bytes.
pub const MAX_WEBHOOK_SECRET_BYTES: usize = 4096;
/// Timestamp tolerance when none is given (Stripe's default), seconds.
pub const DEFAULT_WEBHOOK_TOLERANCE_S: u32 = 300;
/// Smallest timestamp tolerance, seconds.
pub const MIN_WEBHOOK_TOLERANCE_S: u32 = 1;
/// Largest timestamp tolerance (one hour), seconds.
pub const MAX_WEBHOOK_TOLERANCE_S: u32 = 3600;
/// How long a GitHub delivery id is remembered to refuse its replay (GitHub signs no
/// timestamp), seconds: 24 hours.
pub const GITHUB_DELIVERY_MEMORY_S: u32 = 24 * 3600;
/// Signature header of the `github` scheme.
pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Delivery id header of the `github` scheme.
pub const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";
/// Signature header of the `stripe` scheme.
pub const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";
/// Signature header of the `hmac-sha256` scheme.
pub const HOLA_SIGNATURE_HEADER: &str = "x-hola-signature";
/// Timestamp header of the `hmac-sha256` scheme.
pub const HOLA_TIMESTAMP_HEADER: &str = "x-hola-timestamp";

/// How deliveries are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WebhookScheme {
    /// GitHub: `X-Hub-Signature-256: sha256=<hex hmac(secret, body)>`; replays are recognised
    /// by `X-GitHub-Delivery`.
    #[serde(rename = "github")]
    Github,
    /// Stripe: `Stripe-Signature: t=<unix>,v1=<hex hmac(secret, "<t>.<body>")>[,v1=…]`.
    #[serde(rename = "stripe")]
    Stripe,
    /// holactl's own: `X-Hola-Signature: sha256=<hex hmac(secret, "<timestamp>.<body>")>` and
    /// `X-Hola-Timestamp: <unix>`.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

impl WebhookScheme {
    /// Every scheme.
    pub const ALL: [WebhookScheme; 3] = [
        WebhookScheme::Github,
        WebhookScheme::Stripe,
        WebhookScheme::HmacSha256,
    ];

    /// The scheme's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookScheme::Github => "github",
            WebhookScheme::Stripe => "stripe",
            WebhookScheme::HmacSha256 => "hmac-sha256",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Result<WebhookScheme, ValidationError> {
        WebhookScheme::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "scheme",
                    format!("{s:?} is not github, stripe or hmac-sha256"),
                )
            })
    }

    /// Whether the scheme signs a timestamp (and so uses the tolerance).
    pub fn has_timestamp(self) -> bool {
        !matches!(self, WebhookScheme::Github)
    }
}

impl std::fmt::Display for WebhookScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a webhook name: `[A-Za-z0-9_-]{1,64}`.
pub fn validate_webhook_name(name: &str) -> Result<(), ValidationError> {
    crate::function::validate_name("name", name, MAX_WEBHOOK_NAME_LEN)
}

/// Checks a webhook secret's size.
pub fn validate_webhook_secret(secret: &str) -> Result<(), ValidationError> {
    if secret.is_empty() || secret.len() > MAX_WEBHOOK_SECRET_BYTES {
        return Err(ValidationError::new(
            "secret",
            format!("must be 1 to {MAX_WEBHOOK_SECRET_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Checks a timestamp tolerance.
pub fn validate_tolerance(seconds: u32) -> Result<(), ValidationError> {
    if !(MIN_WEBHOOK_TOLERANCE_S..=MAX_WEBHOOK_TOLERANCE_S).contains(&seconds) {
        return Err(ValidationError::new(
            "tolerance_s",
            format!("must be {MIN_WEBHOOK_TOLERANCE_S} to {MAX_WEBHOOK_TOLERANCE_S} seconds"),
        ));
    }
    Ok(())
}

/// `POST /api/v1/webhooks`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Webhook name, unique.
    pub name: String,
    /// Function to invoke.
    pub function: String,
    /// `$LATEST` (default), a version or an alias of the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// How deliveries are signed.
    pub scheme: WebhookScheme,
    /// The shared secret; stored encrypted, never returned.
    pub secret: String,
    /// How far a signed timestamp may be from now, seconds (default 300; not used by
    /// `github`, which signs none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_s: Option<u32>,
}

impl std::fmt::Debug for CreateWebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateWebhookRequest")
            .field("name", &self.name)
            .field("function", &self.function)
            .field("qualifier", &self.qualifier)
            .field("scheme", &self.scheme)
            .field("secret", &"****")
            .field("tolerance_s", &self.tolerance_s)
            .finish()
    }
}

/// `PUT /api/v1/webhooks/{name}/secret`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateWebhookSecretRequest {
    /// The new shared secret.
    pub secret: String,
}

impl std::fmt::Debug for RotateWebhookSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateWebhookSecretRequest")
            .field("secret", &"****")
            .finish()
    }
}

/// A webhook as the API returns it: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookView {
    /// Name, unique.
    pub name: String,
    /// The random id in its URL.
    pub id: String,
    /// `/hooks/{id}`, relative to the server's endpoint.
    pub path: String,
    /// Function it invokes.
    pub function: String,
    /// Qualifier it invokes, when not `$LATEST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// How deliveries are signed.
    pub scheme: WebhookScheme,
    /// Timestamp tolerance, seconds.
    pub tolerance_s: u32,
    /// Incremented by every secret rotation.
    pub secret_version: u32,
    /// Creation time.
    pub created_at: EpochMillis,
    /// Last change.
    pub updated_at: EpochMillis,
}

/// `GET /api/v1/webhooks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookList {
    /// Every webhook, by name.
    pub webhooks: Vec<WebhookView>,
}

/// The `202 Accepted` answer of a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAccepted {
    /// The asynchronous execution started (or, for a retried idempotent delivery, found).
    pub execution_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_round_trip() {
        for s in WebhookScheme::ALL {
            assert_eq!(WebhookScheme::parse(s.as_str()).unwrap(), s);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{s}\""));
        }
        assert!(WebhookScheme::parse("sha1").is_err());
    }

    #[test]
    fn validates_names_and_tolerances() {
        assert!(validate_webhook_name("gh-push_1").is_ok());
        assert!(validate_webhook_name("").is_err());
        assert!(validate_webhook_name("a/b").is_err());
        assert!(validate_webhook_name(&"x".repeat(65)).is_err());
        assert!(validate_tolerance(300).is_ok());
        assert!(validate_tolerance(0).is_err());
        assert!(validate_tolerance(MAX_WEBHOOK_TOLERANCE_S + 1).is_err());
        assert!(validate_webhook_secret("").is_err());
        assert!(validate_webhook_secret("s").is_ok());
    }

    #[test]
    fn create_request_refuses_unknown_fields() {
        let err = serde_json::from_str::<CreateWebhookRequest>(
            r#"{"name":"a","function":"f","scheme":"github","secret":"s","bogus":1}"#,
        );
        assert!(err.is_err());
        let ok: CreateWebhookRequest = serde_json::from_str(
            r#"{"name":"a","function":"f","scheme":"hmac-sha256","secret":"s"}"#,
        )
        .unwrap();
        assert_eq!(ok.scheme, WebhookScheme::HmacSha256);
    }
}
