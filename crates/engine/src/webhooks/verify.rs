//! Signature verification of each webhook scheme: pure functions of the secret, the headers,
//! the body and the time, so every rule is tested without a server.
//!
//! MACs are compared in constant time (`subtle`); the signature is checked before the
//! timestamp, so a forged request learns nothing about the tolerance.

use hmac::{Hmac, Mac};
use holactl_types::webhook::{
    WebhookScheme, GITHUB_DELIVERY_HEADER, GITHUB_DELIVERY_MEMORY_S, GITHUB_SIGNATURE_HEADER,
    HOLA_SIGNATURE_HEADER, HOLA_TIMESTAMP_HEADER, STRIPE_SIGNATURE_HEADER,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Longest accepted timestamp, in digits (Unix seconds need 10 until the year 2286).
const MAX_TIMESTAMP_DIGITS: usize = 12;

/// Why a delivery's signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header the scheme needs is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A header is present but not in the scheme's format.
    #[error("malformed {header} header: {reason}")]
    Malformed {
        /// The header.
        header: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// No signature matches the body.
    #[error("signature does not match")]
    Mismatch,
    /// The signed timestamp is outside the tolerance.
    #[error("timestamp is {skew_s} s from the server's clock; the tolerance is {tolerance_s} s")]
    Expired {
        /// Seconds between the timestamp and now (negative: in the future).
        skew_s: i64,
        /// The webhook's tolerance.
        tolerance_s: u32,
    },
}

impl SignatureError {
    /// The `reason` label of the failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::Missing(_) => "missing",
            SignatureError::Malformed { .. } => "malformed",
            SignatureError::Mismatch => "mismatch",
            SignatureError::Expired { .. } => "expired",
        }
    }
}

/// A delivery whose signature holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Names the delivery for replay detection (hex sha256 of the GitHub delivery id, else of
    /// the matching signature): a second delivery with the same key is a replay.
    pub replay_key: String,
    /// Until when (epoch ms) a replay must be refused: for timestamped schemes, when the
    /// signature stops being valid anyway.
    pub remember_until_ms: i64,
}

/// The first value of header `name` (lower-case) in `headers` (lower-case names).
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length; this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// `sha256=<64 hex>` → the 32 bytes.
fn parse_prefixed_hex(value: &str, header: &'static str) -> Result<[u8; 32], SignatureError> {
    let hex_part = value
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed {
            header,
            reason: "expected sha256=<hex>",
        })?;
    decode_sig(hex_part).ok_or(SignatureError::Malformed {
        header,
        reason: "the signature is not 64 hex digits",
    })
}

fn decode_sig(hex_part: &str) -> Option<[u8; 32]> {
    hex::decode(hex_part.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
}

fn parse_timestamp(value: &str, header: &'static str) -> Result<i64, SignatureError> {
    let v = value.trim();
    if v.is_empty() || v.len() > MAX_TIMESTAMP_DIGITS || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed {
            header,
            reason: "the timestamp is not Unix seconds",
        });
    }
    v.parse().map_err(|_| SignatureError::Malformed {
        header,
        reason: "the timestamp is not Unix seconds",
    })
}

/// Refuses a timestamp more than `tolerance_s` from now (either way); else when a replay
/// must stop being refused.
fn check_time(t: i64, now_ms: i64, tolerance_s: u32) -> Result<i64, SignatureError> {
    let skew_s = now_ms.div_euclid(1000) - t;
    if skew_s.abs() > i64::from(tolerance_s) {
        return Err(SignatureError::Expired {
            skew_s,
            tolerance_s,
        });
    }
    // One extra second covers the rounding of `now` to whole seconds.
    Ok((t + i64::from(tolerance_s) + 1) * 1000)
}

/// Checks a delivery's signature under `scheme` at time `now_ms`.
pub fn verify(
    scheme: WebhookScheme,
    secret: &[u8],
    headers: &[(String, String)],
    body: &[u8],
    now_ms: i64,
    tolerance_s: u32,
) -> Result<Verified, SignatureError> {
    match scheme {
        WebhookScheme::Github => verify_github(secret, headers, body, now_ms),
        WebhookScheme::Stripe => verify_stripe(secret, headers, body, now_ms, tolerance_s),
        WebhookScheme::HmacSha256 => verify_hola(secret, headers, body, now_ms, tolerance_s),
    }
}

fn verify_github(
    secret: &[u8],
    headers: &[(String, String)],
    body: &[u8],
    now_ms: i64,
) -> Result<Verified, SignatureError> {
    let given = header(headers, GITHUB_SIGNATURE_HEADER)
        .ok_or(SignatureError::Missing(GITHUB_SIGNATURE_HEADER))?;
    let given = parse_prefixed_hex(given, GITHUB_SIGNATURE_HEADER)?;
    let expected = mac(secret, &[body]);
    if !bool::from(expected.ct_eq(&given)) {
        return Err(SignatureError::Mismatch);
    }
    // GitHub signs no timestamp: the delivery id (unique per delivery) names it; without one
    // the signature does, which catches byte-identical replays.
    let replay_key = match header(headers, GITHUB_DELIVERY_HEADER).map(str::trim) {
        Some(id) if !id.is_empty() => sha256_hex(&[b"github-delivery:", id.as_bytes()]),
        _ => sha256_hex(&[b"signature:", &given]),
    };
    Ok(Verified {
        replay_key,
        remember_until_ms: now_ms + i64::from(GITHUB_DELIVERY_MEMORY_S) * 1000,
    })
}

fn verify_stripe(
    secret: &[u8],
    headers: &[(String, String)],
    body: &[u8],
    now_ms: i64,
    tolerance_s: u32,
) -> Result<Verified, SignatureError> {
    const H: &str = STRIPE_SIGNATURE_HEADER;
    let value = header(headers, H).ok_or(SignatureError::Missing(H))?;
    let mut timestamp = None;
    let mut candidates: Vec<Option<[u8; 32]>> = Vec::new();
    for item in value.split(',') {
        let Some((k, v)) = item.split_once('=') else {
            continue;
        };
        match k.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed {
                        header: H,
                        reason: "more than one timestamp",
                    });
                }
                timestamp = Some(parse_timestamp(v, H)?);
            }
            // A malformed entry is kept as a non-match: another v1 may still match.
            "v1" => candidates.push(decode_sig(v)),
            // v0 and future schemes are ignored, as Stripe's own libraries do.
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed {
        header: H,
        reason: "no t=<timestamp>",
    })?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed {
            header: H,
            reason: "no v1=<signature>",
        });
    }
    let expected = mac(secret, &[t.to_string().as_bytes(), b".", body]);
    let matched = candidates
        .iter()
        .flatten()
        .find(|c| bool::from(expected.ct_eq(*c)))
        .ok_or(SignatureError::Mismatch)?;
    let remember_until_ms = check_time(t, now_ms, tolerance_s)?;
    Ok(Verified {
        replay_key: sha256_hex(&[b"signature:", matched]),
        remember_until_ms,
    })
}

fn verify_hola(
    secret: &[u8],
    headers: &[(String, String)],
    body: &[u8],
    now_ms: i64,
    tolerance_s: u32,
) -> Result<Verified, SignatureError> {
    let given = header(headers, HOLA_SIGNATURE_HEADER)
        .ok_or(SignatureError::Missing(HOLA_SIGNATURE_HEADER))?;
    let t = header(headers, HOLA_TIMESTAMP_HEADER)
        .ok_or(SignatureError::Missing(HOLA_TIMESTAMP_HEADER))?;
    let given = parse_prefixed_hex(given, HOLA_SIGNATURE_HEADER)?;
    let t = parse_timestamp(t, HOLA_TIMESTAMP_HEADER)?;
    let expected = mac(secret, &[t.to_string().as_bytes(), b".", body]);
    if !bool::from(expected.ct_eq(&given)) {
        return Err(SignatureError::Mismatch);
    }
    let remember_until_ms = check_time(t, now_ms, tolerance_s)?;
    Ok(Verified {
        replay_key: sha256_hex(&[b"signature:", &given]),
        remember_until_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const NOW_MS: i64 = 1_700_000_000_500;
    const NOW_S: i64 = 1_700_000_000;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn hex_mac(parts: &[&[u8]]) -> String {
        hex::encode(mac(SECRET, parts))
    }

    #[test]
    fn github_matches_its_published_example() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let headers = h(&[
            ("x-hub-signature-256", sig),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ]);
        let v = verify(
            WebhookScheme::Github,
            SECRET,
            &headers,
            b"Hello, World!",
            NOW_MS,
            300,
        )
        .unwrap();
        assert_eq!(
            v.remember_until_ms,
            NOW_MS + i64::from(GITHUB_DELIVERY_MEMORY_S) * 1000
        );
        // Bad: another body, another secret, a flipped digit.
        assert_eq!(
            verify(
                WebhookScheme::Github,
                SECRET,
                &headers,
                b"Hello, World?",
                NOW_MS,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                WebhookScheme::Github,
                b"other",
                &headers,
                b"Hello, World!",
                NOW_MS,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        let flipped = h(&[(
            "x-hub-signature-256",
            "sha256=857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(
            verify(
                WebhookScheme::Github,
                SECRET,
                &flipped,
                b"Hello, World!",
                NOW_MS,
                300
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn github_missing_and_malformed() {
        let body = b"{}";
        assert_eq!(
            verify(WebhookScheme::Github, SECRET, &[], body, NOW_MS, 300),
            Err(SignatureError::Missing("x-hub-signature-256"))
        );
        // The SHA-1 header alone is not enough.
        let sha1 = h(&[("x-hub-signature", "sha1=0000")]);
        assert!(matches!(
            verify(WebhookScheme::Github, SECRET, &sha1, body, NOW_MS, 300),
            Err(SignatureError::Missing(_))
        ));
        for bad in ["757107ea", "sha256=xyz", "sha256=", "sha1=757107ea"] {
            let headers = h(&[("x-hub-signature-256", bad)]);
            let err =
                verify(WebhookScheme::Github, SECRET, &headers, body, NOW_MS, 300).unwrap_err();
            assert_eq!(err.reason(), "malformed", "{bad}: {err}");
        }
    }

    #[test]
    fn github_replay_key_is_the_delivery_id() {
        let body = b"{\"zen\":\"hi\"}";
        let sig = format!("sha256={}", hex_mac(&[body]));
        let a = h(&[("x-hub-signature-256", &sig), ("x-github-delivery", "d-1")]);
        let b = h(&[("x-hub-signature-256", &sig), ("x-github-delivery", "d-2")]);
        let none = h(&[("x-hub-signature-256", &sig)]);
        let key = |hs: &[(String, String)]| {
            verify(WebhookScheme::Github, SECRET, hs, body, NOW_MS, 300)
                .unwrap()
                .replay_key
        };
        assert_eq!(key(&a), key(&a), "the same delivery replayed");
        assert_ne!(key(&a), key(&b), "a redelivery under a new id");
        assert_eq!(key(&none), key(&none));
        assert_ne!(key(&none), key(&a));
        assert_eq!(key(&a).len(), 64);
    }

    fn stripe_header(t: i64, body: &[u8], secret: &[u8]) -> String {
        let sig = hex::encode(mac(secret, &[t.to_string().as_bytes(), b".", body]));
        format!("t={t},v1={sig}")
    }

    #[test]
    fn stripe_good_bad_and_missing() {
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let good = h(&[("stripe-signature", &stripe_header(NOW_S, body, SECRET))]);
        let v = verify(WebhookScheme::Stripe, SECRET, &good, body, NOW_MS, 300).unwrap();
        assert_eq!(v.remember_until_ms, (NOW_S + 301) * 1000);
        assert_eq!(
            verify(WebhookScheme::Stripe, SECRET, &good, b"{}", NOW_MS, 300),
            Err(SignatureError::Mismatch)
        );
        let other = h(&[("stripe-signature", &stripe_header(NOW_S, body, b"whsec_x"))]);
        assert_eq!(
            verify(WebhookScheme::Stripe, SECRET, &other, body, NOW_MS, 300),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: changing it breaks the signature.
        let moved = stripe_header(NOW_S, body, SECRET)
            .replace(&format!("t={NOW_S}"), &format!("t={}", NOW_S + 1));
        assert_eq!(
            verify(
                WebhookScheme::Stripe,
                SECRET,
                &h(&[("stripe-signature", &moved)]),
                body,
                NOW_MS,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(WebhookScheme::Stripe, SECRET, &[], body, NOW_MS, 300),
            Err(SignatureError::Missing("stripe-signature"))
        );
        for bad in [
            "v1=abcd",
            &format!("t={NOW_S}"),
            &format!("t={NOW_S},v0=abcd"),
            "t=soon,v1=abcd",
            &format!("t={NOW_S},t={NOW_S},v1=abcd"),
            "",
        ] {
            let err = verify(
                WebhookScheme::Stripe,
                SECRET,
                &h(&[("stripe-signature", bad)]),
                body,
                NOW_MS,
                300,
            )
            .unwrap_err();
            assert_eq!(err.reason(), "malformed", "{bad:?}: {err}");
        }
    }

    #[test]
    fn stripe_accepts_any_matching_v1_entry() {
        let body = b"{}";
        let good = stripe_header(NOW_S, body, SECRET);
        let good_sig = good.split_once(",v1=").unwrap().1.to_owned();
        let old_secret_sig = stripe_header(NOW_S, body, b"whsec_old")
            .split_once(",v1=")
            .unwrap()
            .1
            .to_owned();
        // Rolled secrets: several v1 entries, garbage and v0 among them, in any order.
        for value in [
            format!("t={NOW_S},v1={old_secret_sig},v1={good_sig}"),
            format!("t={NOW_S},v1=zz,v0={old_secret_sig},v1={good_sig}"),
            format!("v1={good_sig}, t={NOW_S}, v1={old_secret_sig}"),
        ] {
            let v = verify(
                WebhookScheme::Stripe,
                SECRET,
                &h(&[("stripe-signature", &value)]),
                body,
                NOW_MS,
                300,
            )
            .unwrap_or_else(|e| panic!("{value}: {e}"));
            // The key names the matching signature, not the header: reordering or adding
            // entries does not make a replay look new.
            let single = verify(
                WebhookScheme::Stripe,
                SECRET,
                &h(&[("stripe-signature", &good)]),
                body,
                NOW_MS,
                300,
            )
            .unwrap();
            assert_eq!(v.replay_key, single.replay_key);
        }
        let none = format!("t={NOW_S},v1={old_secret_sig},v1={old_secret_sig}");
        assert_eq!(
            verify(
                WebhookScheme::Stripe,
                SECRET,
                &h(&[("stripe-signature", &none)]),
                body,
                NOW_MS,
                300
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stripe_timestamp_tolerance() {
        let body = b"{}";
        let at = |t: i64, tolerance: u32| {
            verify(
                WebhookScheme::Stripe,
                SECRET,
                &h(&[("stripe-signature", &stripe_header(t, body, SECRET))]),
                body,
                NOW_MS,
                tolerance,
            )
        };
        assert!(at(NOW_S - 300, 300).is_ok());
        assert!(at(NOW_S + 300, 300).is_ok());
        assert_eq!(
            at(NOW_S - 301, 300),
            Err(SignatureError::Expired {
                skew_s: 301,
                tolerance_s: 300
            })
        );
        assert_eq!(at(NOW_S + 301, 300).unwrap_err().reason(), "expired");
        assert!(at(NOW_S - 3000, 3600).is_ok());
        assert!(at(NOW_S - 10, 5).is_err());
    }

    fn hola_headers(t: i64, body: &[u8], secret: &[u8]) -> Vec<(String, String)> {
        let sig = hex::encode(mac(secret, &[t.to_string().as_bytes(), b".", body]));
        h(&[
            ("x-hola-signature", &format!("sha256={sig}")),
            ("x-hola-timestamp", &t.to_string()),
        ])
    }

    #[test]
    fn hmac_sha256_good_bad_missing_expired() {
        let body = b"\x00\x01binary\xff";
        let good = hola_headers(NOW_S, body, SECRET);
        let v = verify(WebhookScheme::HmacSha256, SECRET, &good, body, NOW_MS, 300).unwrap();
        assert_eq!(v.remember_until_ms, (NOW_S + 301) * 1000);
        assert_eq!(
            verify(WebhookScheme::HmacSha256, SECRET, &good, b"x", NOW_MS, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                WebhookScheme::HmacSha256,
                b"wrong",
                &good,
                body,
                NOW_MS,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        // The timestamp header is covered by the signature.
        let mut moved = good.clone();
        moved[1].1 = (NOW_S - 1).to_string();
        assert_eq!(
            verify(WebhookScheme::HmacSha256, SECRET, &moved, body, NOW_MS, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                WebhookScheme::HmacSha256,
                SECRET,
                &good[..1],
                body,
                NOW_MS,
                300
            ),
            Err(SignatureError::Missing("x-hola-timestamp"))
        );
        assert_eq!(
            verify(
                WebhookScheme::HmacSha256,
                SECRET,
                &good[1..],
                body,
                NOW_MS,
                300
            ),
            Err(SignatureError::Missing("x-hola-signature"))
        );
        let mut bad_time = good.clone();
        bad_time[1].1 = "-5".into();
        assert_eq!(
            verify(
                WebhookScheme::HmacSha256,
                SECRET,
                &bad_time,
                body,
                NOW_MS,
                300
            )
            .unwrap_err()
            .reason(),
            "malformed"
        );
        let old = hola_headers(NOW_S - 301, body, SECRET);
        assert_eq!(
            verify(WebhookScheme::HmacSha256, SECRET, &old, body, NOW_MS, 300)
                .unwrap_err()
                .reason(),
            "expired"
        );
        // Signature before time: a forgery with an old timestamp is a mismatch.
        assert_eq!(
            verify(WebhookScheme::HmacSha256, b"wrong", &old, body, NOW_MS, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn hmac_sha256_replays_share_a_key() {
        let body = b"{}";
        let a = hola_headers(NOW_S, body, SECRET);
        let b = hola_headers(NOW_S + 1, body, SECRET);
        let key = |hs: &[(String, String)]| {
            verify(WebhookScheme::HmacSha256, SECRET, hs, body, NOW_MS, 300)
                .unwrap()
                .replay_key
        };
        assert_eq!(key(&a), key(&a));
        assert_ne!(key(&a), key(&b), "a new timestamp is a new delivery");
    }
}
