//! JWT authorizers: each is pinned to one algorithm (HS256 with a shared secret, RS256 or ES256
//! with keys from a JWKS file or `http://` URL) and checks the signature, `exp`, `nbf`, the
//! issuer and the audience (`aud`, or `client_id` as API Gateway accepts) before any function
//! runs. `alg: none` is no algorithm at all: such a token does not even parse.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use holactl_types::gateway::JwtAlgorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// A JWKS is fetched again (on an unknown `kid`) at most this often.
const REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// A fetched JWKS is trusted this long.
const URL_TTL: Duration = Duration::from_secs(3600);
/// Largest JWKS accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long a JWKS URL gets to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest token accepted (API Gateway limits the identity source to about 10 KB too).
const MAX_TOKEN_BYTES: usize = 8192;

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// No token in the identity header (401).
    #[error("missing token")]
    Missing,
    /// Malformed, badly signed, wrong algorithm, unknown key (401).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Expired or not yet valid (401).
    #[error("token expired or not yet valid")]
    Expired,
    /// Wrong issuer or audience (401).
    #[error("token issuer or audience not accepted")]
    Claims,
    /// Valid, but without a scope the route requires (403).
    #[error("token lacks a required scope")]
    Scope,
    /// The JWKS could not be read (503).
    #[error("signing keys unavailable: {0}")]
    Keys(String),
}

impl JwtError {
    /// Label of the auth-failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Missing => "jwt_missing",
            JwtError::Invalid(_) => "jwt_invalid",
            JwtError::Expired => "jwt_expired",
            JwtError::Claims => "jwt_claims",
            JwtError::Scope => "jwt_scope",
            JwtError::Keys(_) => "jwt_keys",
        }
    }
}

/// Where an authorizer's keys come from.
#[derive(Debug)]
pub(crate) enum KeySource {
    /// HS256: the shared secret.
    Secret(Vec<u8>),
    /// A JWKS file on this machine, read at compile time and again on an unknown `kid`.
    File(String),
    /// A JWKS URL (`http://`), fetched on first use and cached.
    Url(String),
}

/// Keys read from a JWKS, usable for the pinned algorithm.
#[derive(Default)]
struct KeyCache {
    keys: Vec<(Option<String>, DecodingKey)>,
    fetched: Option<Instant>,
}

/// A compiled authorizer.
pub(crate) struct Authorizer {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithm: JwtAlgorithm,
    /// Lower-case header name.
    pub header: String,
    source: KeySource,
    cache: RwLock<KeyCache>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
    }
}

/// The keys of a JWKS document usable with `alg`: the right key type (RSA, or EC on P-256)
/// and, when the key names an algorithm, that one.
pub(crate) fn parse_jwks(
    bytes: &[u8],
    alg: JwtAlgorithm,
) -> Result<Vec<(Option<String>, DecodingKey)>, String> {
    let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
    let fits = |jwk: &Jwk| {
        let type_ok = match (&jwk.algorithm, alg) {
            (AlgorithmParameters::RSA(_), JwtAlgorithm::RS256) => true,
            (AlgorithmParameters::EllipticCurve(p), JwtAlgorithm::ES256) => {
                p.curve == EllipticCurve::P256
            }
            _ => false,
        };
        let alg_ok = match jwk.common.key_algorithm {
            None => true,
            Some(KeyAlgorithm::RS256) => alg == JwtAlgorithm::RS256,
            Some(KeyAlgorithm::ES256) => alg == JwtAlgorithm::ES256,
            Some(_) => false,
        };
        type_ok && alg_ok
    };
    let mut out = Vec::new();
    for jwk in set.keys.iter().filter(|k| fits(k)) {
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            out.push((jwk.common.key_id.clone(), key));
        }
    }
    Ok(out)
}

/// Fetches a JWKS over plain HTTP.
async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    use http_body_util::{BodyExt, Empty, Limited};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let resp = tokio::time::timeout(FETCH_TIMEOUT, client.get(uri))
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: status {}", resp.status()));
    }
    let body = tokio::time::timeout(
        FETCH_TIMEOUT,
        Limited::new(resp.into_body(), MAX_JWKS_BYTES).collect(),
    )
    .await
    .map_err(|_| format!("{url}: timed out"))?
    .map_err(|e| format!("{url}: {e}"))?;
    Ok(body.to_bytes().to_vec())
}

/// The `scope` (space-separated) or `scp` (list or string) claim.
fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split_whitespace().map(str::to_owned)),
            Some(Value::Array(a)) => {
                out.extend(a.iter().filter_map(|v| v.as_str().map(str::to_owned)))
            }
            _ => {}
        }
    }
    out
}

/// Claims as API Gateway hands them to functions: every value a string, lists as `[a b]`.
fn render_claims(claims: Map<String, Value>) -> Map<String, Value> {
    claims
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                Value::Array(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|i| i
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            (k, Value::String(text))
        })
        .collect()
}

/// A verified token: claims as functions see them, and scopes.
#[derive(Debug)]
pub(crate) struct Verified {
    pub claims: Map<String, Value>,
    pub scopes: Vec<String>,
}

impl Authorizer {
    /// A compiled authorizer; a JWKS file is read now (an unreadable one leaves no keys: every
    /// token is refused until it can be read).
    pub fn new(
        name: String,
        issuer: String,
        audiences: Vec<String>,
        algorithm: JwtAlgorithm,
        header: String,
        source: KeySource,
    ) -> Authorizer {
        let auth = Authorizer {
            name,
            issuer,
            audiences,
            algorithm,
            header: header.to_ascii_lowercase(),
            source,
            cache: RwLock::new(KeyCache::default()),
        };
        if let KeySource::File(path) = &auth.source {
            match std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| parse_jwks(&b, algorithm))
            {
                Ok(keys) => {
                    if let Ok(mut c) = auth.cache.write() {
                        *c = KeyCache {
                            keys,
                            fetched: Some(Instant::now()),
                        };
                    }
                }
                Err(e) => {
                    tracing::warn!(authorizer = %auth.name, file = %path, error = %e, "cannot read JWKS")
                }
            }
        }
        auth
    }

    /// The key for a token's `kid` from the cache.
    fn cached_key(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let cache = self.cache.read().ok()?;
        let fresh = match (&self.source, cache.fetched) {
            (KeySource::Url(_), Some(at)) => at.elapsed() < URL_TTL,
            (_, fetched) => fetched.is_some(),
        };
        if !fresh {
            return None;
        }
        match kid {
            Some(kid) => cache
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| key.clone()),
            // No `kid`: only an unambiguous JWKS (one key) answers.
            None if cache.keys.len() == 1 => Some(cache.keys[0].1.clone()),
            None => None,
        }
    }

    /// Reads the JWKS again (at most every 30 s).
    async fn refresh(&self) -> Result<(), JwtError> {
        if let Ok(cache) = self.cache.read() {
            if cache
                .fetched
                .is_some_and(|at| at.elapsed() < REFRESH_MIN_INTERVAL)
                && !matches!(&self.source, KeySource::Url(_) if cache.fetched.is_some_and(|at| at.elapsed() >= URL_TTL))
            {
                return Ok(());
            }
        }
        let bytes = match &self.source {
            KeySource::Secret(_) => return Ok(()),
            KeySource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| JwtError::Keys(format!("{path}: {e}")))?,
            KeySource::Url(url) => fetch(url).await.map_err(JwtError::Keys)?,
        };
        let keys = parse_jwks(&bytes, self.algorithm).map_err(JwtError::Keys)?;
        if let Ok(mut cache) = self.cache.write() {
            *cache = KeyCache {
                keys,
                fetched: Some(Instant::now()),
            };
        }
        Ok(())
    }

    /// The token of a request: the identity header's value without a `Bearer ` prefix.
    pub fn token<'a>(&self, headers: &'a [(String, String)]) -> Option<&'a str> {
        let value = headers
            .iter()
            .find(|(k, _)| *k == self.header)
            .map(|(_, v)| v.trim())?;
        let token = match value.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("bearer ") => value[7..].trim(),
            // `Bearer` with nothing after it (the value is trimmed).
            _ if value.eq_ignore_ascii_case("bearer") => "",
            _ => value,
        };
        (!token.is_empty()).then_some(token)
    }

    /// Verifies a token and that it carries one of `required` scopes (when any).
    pub async fn verify(&self, token: &str, required: &[String]) -> Result<Verified, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Invalid("token too large".into()));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| JwtError::Invalid(format!("malformed header: {e}")))?;
        let alg = algorithm(self.algorithm);
        // Pinned: a token naming another algorithm is refused whatever its key.
        if header.alg != alg {
            return Err(JwtError::Invalid(format!(
                "algorithm {:?} is not {}",
                header.alg, self.algorithm
            )));
        }
        let key = match &self.source {
            KeySource::Secret(secret) => DecodingKey::from_secret(secret),
            _ => match self.cached_key(header.kid.as_deref()) {
                Some(k) => k,
                None => {
                    self.refresh().await?;
                    self.cached_key(header.kid.as_deref())
                        .ok_or_else(|| JwtError::Invalid("no key for this token's kid".into()))?
                }
            },
        };
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&[&self.issuer]);
        // Checked below: `aud` or `client_id`.
        validation.validate_aud = false;
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => JwtError::Expired,
                    ErrorKind::InvalidIssuer => JwtError::Claims,
                    _ => JwtError::Invalid(e.to_string()),
                }
            })?;
        let claims = data.claims;
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => self.audiences.contains(a),
            Some(Value::Array(list)) => list.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| self.audiences.iter().any(|x| x == a))
            }),
            _ => false,
        } || claims
            .get("client_id")
            .and_then(Value::as_str)
            .is_some_and(|c| self.audiences.iter().any(|a| a == c));
        if !audience_ok {
            return Err(JwtError::Claims);
        }
        let scopes = scopes_of(&claims);
        if !required.is_empty() && !required.iter().any(|r| scopes.contains(r)) {
            return Err(JwtError::Scope);
        }
        Ok(Verified {
            claims: render_claims(claims),
            scopes,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine as _;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    /// Test-only keys (generated with openssl for these tests; never used anywhere else).
    pub(crate) const RSA_PRIVATE_DER_B64: &str = include_str!("testdata/rsa_private.der.b64");
    pub(crate) const RSA_JWKS: &str = include_str!("testdata/rsa_jwks.json");
    pub(crate) const EC_PRIVATE_DER_B64: &str = include_str!("testdata/ec_private.der.b64");
    pub(crate) const EC_JWKS: &str = include_str!("testdata/ec_jwks.json");

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hs256";

    fn der(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap()
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn claims(extra: Value) -> Value {
        let mut c = json!({
            "iss": "https://issuer.test",
            "aud": "api",
            "sub": "ana",
            "exp": now() + 300,
            "iat": now(),
        });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        c
    }

    fn hs(c: &Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn hs_authorizer() -> Authorizer {
        Authorizer::new(
            "a".into(),
            "https://issuer.test".into(),
            vec!["api".into(), "other".into()],
            JwtAlgorithm::HS256,
            "Authorization".into(),
            KeySource::Secret(SECRET.to_vec()),
        )
    }

    fn jwks_authorizer(alg: JwtAlgorithm, jwks: &str) -> (Authorizer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks).unwrap();
        let a = Authorizer::new(
            "j".into(),
            "https://issuer.test".into(),
            vec!["api".into()],
            alg,
            "authorization".into(),
            KeySource::File(path.display().to_string()),
        );
        (a, dir)
    }

    fn b64url(v: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    #[tokio::test]
    async fn hs256_accepts_good_tokens_and_renders_claims() {
        let a = hs_authorizer();
        let token = hs(&claims(
            json!({"scope": "read write", "groups": ["x", "y"]}),
        ));
        let v = a.verify(&token, &["write".into()]).await.unwrap();
        assert_eq!(v.claims["sub"], "ana");
        assert_eq!(v.claims["groups"], "[x y]");
        assert!(v.claims["exp"].as_str().is_some(), "numbers become strings");
        assert_eq!(v.scopes, ["read", "write"]);
        assert_eq!(
            a.verify(&token, &["admin".into()]).await.unwrap_err(),
            JwtError::Scope
        );
        // `client_id` stands in for `aud`.
        let t = hs(&claims(json!({"aud": null, "client_id": "other"})));
        assert!(a.verify(&t, &[]).await.is_ok());
        let headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
        assert_eq!(a.token(&headers), Some(token.as_str()));
        let headers = vec![("authorization".to_owned(), "bearer   ".to_owned())];
        assert_eq!(a.token(&headers), None);
    }

    #[tokio::test]
    async fn refuses_bad_tokens() {
        let a = hs_authorizer();
        let expired = hs(&claims(json!({"exp": now() - 10})));
        assert_eq!(
            a.verify(&expired, &[]).await.unwrap_err(),
            JwtError::Expired
        );
        let early = hs(&claims(json!({"nbf": now() + 600})));
        assert_eq!(a.verify(&early, &[]).await.unwrap_err(), JwtError::Expired);
        let no_exp = hs(&claims(json!({"exp": null})));
        assert!(matches!(
            a.verify(&no_exp, &[]).await,
            Err(JwtError::Invalid(_))
        ));
        let wrong_aud = hs(&claims(json!({"aud": "someone-else"})));
        assert_eq!(
            a.verify(&wrong_aud, &[]).await.unwrap_err(),
            JwtError::Claims
        );
        let wrong_iss = hs(&claims(json!({"iss": "https://evil.test"})));
        assert_eq!(
            a.verify(&wrong_iss, &[]).await.unwrap_err(),
            JwtError::Claims
        );
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &claims(json!({})),
            &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        )
        .unwrap();
        assert!(matches!(
            a.verify(&forged, &[]).await,
            Err(JwtError::Invalid(_))
        ));
        // A good token with its payload swapped.
        let good = hs(&claims(json!({})));
        let parts: Vec<&str> = good.split('.').collect();
        let evil_payload = b64url(claims(json!({"sub": "root"})).to_string().as_bytes());
        let tampered = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
        assert!(matches!(
            a.verify(&tampered, &[]).await,
            Err(JwtError::Invalid(_))
        ));
        // alg: none, with and without a signature.
        let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64url(claims(json!({})).to_string().as_bytes());
        for t in [
            format!("{none_header}.{payload}."),
            format!("{none_header}.{payload}.{}", parts[2]),
        ] {
            assert!(
                matches!(a.verify(&t, &[]).await, Err(JwtError::Invalid(_))),
                "{t}"
            );
        }
        // Another algorithm than the pinned one.
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &claims(json!({})),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(
            a.verify(&hs512, &[]).await,
            Err(JwtError::Invalid(_))
        ));
        for junk in ["", "a.b", "a.b.c", "....", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(a.verify(junk, &[]).await.is_err());
        }
    }

    #[tokio::test]
    async fn rs256_and_es256_from_jwks_files() {
        let (rs, _d1) = jwks_authorizer(JwtAlgorithm::RS256, RSA_JWKS);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-test-1".into());
        let token = encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_rsa_der(&der(RSA_PRIVATE_DER_B64)),
        )
        .unwrap();
        assert!(rs.verify(&token, &[]).await.is_ok());
        // Unknown kid.
        header.kid = Some("nope".into());
        let t = encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_rsa_der(&der(RSA_PRIVATE_DER_B64)),
        )
        .unwrap();
        assert!(matches!(
            rs.verify(&t, &[]).await,
            Err(JwtError::Invalid(_))
        ));
        // Algorithm confusion: an HS256 token "signed" with the RSA public key's bytes.
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &claims(json!({})),
            &EncodingKey::from_secret(RSA_JWKS.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            rs.verify(&confused, &[]).await,
            Err(JwtError::Invalid(_))
        ));

        let (es, _d2) = jwks_authorizer(JwtAlgorithm::ES256, EC_JWKS);
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("ec-test-1".into());
        let token = encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_ec_der(&der(EC_PRIVATE_DER_B64)),
        )
        .unwrap();
        assert!(es.verify(&token, &[]).await.is_ok());
        // The RSA JWKS holds no key an ES256 authorizer may use.
        assert!(parse_jwks(RSA_JWKS.as_bytes(), JwtAlgorithm::ES256)
            .unwrap()
            .is_empty());
        assert!(parse_jwks(b"{}", JwtAlgorithm::RS256).is_err());
    }
}
