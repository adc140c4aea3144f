//! Scoped tokens: one per invocation, proving to the internal API which function, qualifier,
//! execution and instance a call comes from.
//!
//! Format: `hola1.<claims>.<mac>`, both parts base64url without padding; `<claims>` is compact
//! JSON, `<mac>` is HMAC-SHA256 over `hola1.<claims>` under a key of 32 random bytes drawn when
//! the engine starts and kept only in memory. A restart therefore invalidates every token,
//! which costs nothing: a restart also stops every instance that held one. (Deriving the key
//! from the master key would only make tokens outlive the process, which nothing needs, and
//! tie a bearer credential to the key that protects the secrets.)

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Version tag, also the token's prefix.
const TAG: &str = "hola1";

/// Longest token accepted (claims are a few names and ids; anything longer is not ours).
const MAX_TOKEN_LEN: usize = 2048;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What a token says. Short field names keep the header small.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Claims {
    /// The function the invocation ran.
    #[serde(rename = "f")]
    pub function: String,
    /// The qualifier it was invoked with (`None`: unqualified), e.g. an alias name.
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// The execution (Lambda request) id.
    #[serde(rename = "x")]
    pub execution: String,
    /// The instance the invocation was handed to.
    #[serde(rename = "i")]
    pub instance: String,
    /// Expiry, epoch milliseconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// Not a token of ours (shape, encoding, length).
    #[error("the token is malformed")]
    Malformed,
    /// The MAC does not match: forged or altered.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
}

/// The signing key, kept as a keyed HMAC state that is cloned for each use (the key schedule
/// is computed once).
#[derive(Clone)]
pub(crate) struct TokenKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key of 32 random bytes.
    pub(crate) fn generate() -> Result<TokenKey, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(TokenKey::from_bytes(&key))
    }

    /// A key from bytes (tests).
    pub(crate) fn from_bytes(key: &[u8; 32]) -> TokenKey {
        TokenKey {
            // HMAC accepts keys of any length; 32 bytes cannot fail.
            mac: <Hmac<Sha256> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length")),
        }
    }

    /// Signs `claims`.
    pub(crate) fn mint(&self, claims: &Claims) -> String {
        // Serialising a struct of strings and an integer cannot fail.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = String::with_capacity(TAG.len() + 2 + json.len() * 4 / 3 + 48);
        token.push_str(TAG);
        token.push('.');
        B64.encode_string(&json, &mut token);
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        let tag = mac.finalize().into_bytes();
        token.push('.');
        B64.encode_string(tag, &mut token);
        token
    }

    /// Checks the MAC (in constant time) and then the expiry against `now_ms`.
    pub(crate) fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (prefix, claims) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if prefix != TAG {
            return Err(TokenError::Malformed);
        }
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        // Only signed claims are parsed.
        let json = B64.decode(claims).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if now_ms >= claims.expires_at {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            function: "a".into(),
            qualifier: Some("prod".into()),
            execution: "8f5c3d1e-0000-4000-8000-123456789abc".into(),
            instance: "0123456789abcdef0123456789abcdef".into(),
            expires_at: 10_000,
        }
    }

    #[test]
    fn mints_and_verifies() {
        let key = TokenKey::from_bytes(&[7; 32]);
        let token = key.mint(&claims());
        assert!(token.starts_with("hola1."), "{token}");
        assert!(token.len() < 300, "compact: {} bytes", token.len());
        assert_eq!(key.verify(&token, 9_999), Ok(claims()));
        // Tokens are header-safe.
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
    }

    #[test]
    fn expiry_is_exclusive() {
        let key = TokenKey::from_bytes(&[7; 32]);
        let token = key.mint(&claims());
        assert_eq!(key.verify(&token, 10_000), Err(TokenError::Expired));
        assert_eq!(key.verify(&token, i64::MAX), Err(TokenError::Expired));
    }

    #[test]
    fn forgeries_are_refused() {
        let key = TokenKey::from_bytes(&[7; 32]);
        let token = key.mint(&claims());
        // Another key (another server, or a restarted one).
        let other = TokenKey::from_bytes(&[8; 32]);
        assert_eq!(other.verify(&token, 0), Err(TokenError::BadSignature));
        // Claims changed to another function, signature kept.
        let (_, rest) = token.split_once('.').unwrap();
        let (_, tag) = rest.split_once('.').unwrap();
        let forged_claims = Claims {
            function: "b".into(),
            ..claims()
        };
        let forged = format!(
            "hola1.{}.{tag}",
            B64.encode(serde_json::to_vec(&forged_claims).unwrap())
        );
        assert_eq!(key.verify(&forged, 0), Err(TokenError::BadSignature));
        // A later expiry, signature kept.
        let later = Claims {
            expires_at: i64::MAX,
            ..claims()
        };
        let forged = format!(
            "hola1.{}.{tag}",
            B64.encode(serde_json::to_vec(&later).unwrap())
        );
        assert_eq!(key.verify(&forged, 0), Err(TokenError::BadSignature));
        // A truncated or altered tag.
        assert!(key.verify(&token[..token.len() - 4], 0).is_err());
        let mut altered = token.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            key.verify(&String::from_utf8(altered).unwrap(), 0),
            Err(TokenError::BadSignature)
        );
        for junk in [
            "",
            "hola1",
            "hola1..",
            "hola2.e30.AAAA",
            "Bearer x",
            "hola1.!!!.???",
        ] {
            assert!(key.verify(junk, 0).is_err(), "{junk:?}");
        }
        assert_eq!(
            key.verify(&"a".repeat(MAX_TOKEN_LEN + 1), 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = TokenKey::generate().unwrap();
        let b = TokenKey::generate().unwrap();
        let token = a.mint(&claims());
        assert!(a.verify(&token, 0).is_ok());
        assert_eq!(b.verify(&token, 0), Err(TokenError::BadSignature));
    }
}
