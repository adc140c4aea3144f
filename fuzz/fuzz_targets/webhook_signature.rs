//! Webhook signatures: arbitrary headers and bodies are verified or refused, never a panic.
#![no_main]

use holactl_engine::webhooks::verify::verify;
use holactl_types::webhook::WebhookScheme;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Layout: one header value per line for the scheme's headers, then the body.
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(4, '\n');
    let a = lines.next().unwrap_or_default().to_owned();
    let b = lines.next().unwrap_or_default().to_owned();
    let c = lines.next().unwrap_or_default().to_owned();
    let body = lines.next().unwrap_or_default().as_bytes();
    let headers = vec![
        ("x-hub-signature-256".to_owned(), a.clone()),
        ("x-github-delivery".to_owned(), b.clone()),
        ("stripe-signature".to_owned(), a),
        ("x-hola-signature".to_owned(), b),
        ("x-hola-timestamp".to_owned(), c),
    ];
    for scheme in [
        WebhookScheme::Github,
        WebhookScheme::Stripe,
        WebhookScheme::HmacSha256,
    ] {
        let _ = verify(scheme, b"secret", &headers, body, 1_795_000_000_000, 300);
    }
});
