//! CORS as API Gateway's HTTP APIs answer it: preflights are answered by the gateway (no route,
//! no authorizer runs), and the CORS headers of other answers come from the API's
//! configuration, replacing any the function set.

use holactl_types::gateway::CorsConfig;

/// Whether `origin` is allowed; the value for `Access-Control-Allow-Origin` when it is.
fn allowed_origin<'a>(cors: &CorsConfig, origin: &'a str) -> Option<&'a str> {
    if cors.allow_origins.iter().any(|o| o == "*") {
        // With credentials `*` is refused by configuration; echoing is not needed.
        return Some(if cors.allow_credentials { origin } else { "*" });
    }
    // Scheme and host are case-insensitive; a configured origin never has a path.
    cors.allow_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
        .then_some(origin)
}

/// Whether the preflight's `Access-Control-Request-Method` is allowed.
fn method_allowed(cors: &CorsConfig, method: &str) -> bool {
    cors.allow_methods
        .iter()
        .any(|m| m == "*" || m.eq_ignore_ascii_case(method))
}

/// Whether every header of `Access-Control-Request-Headers` is allowed.
fn headers_allowed(cors: &CorsConfig, requested: &str) -> bool {
    if cors.allow_headers.iter().any(|h| h == "*") {
        return true;
    }
    requested
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .all(|h| cors.allow_headers.iter().any(|a| a.eq_ignore_ascii_case(h)))
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub(crate) fn is_preflight(
    method: &str,
    origin: Option<&str>,
    request_method: Option<&str>,
) -> bool {
    method == "OPTIONS" && origin.is_some() && request_method.is_some()
}

/// The headers of a preflight answer (204). Empty when the origin, method or a requested
/// header is not allowed: the browser then refuses the actual request.
pub(crate) fn preflight(
    cors: &CorsConfig,
    origin: &str,
    request_method: &str,
    request_headers: Option<&str>,
) -> Vec<(String, String)> {
    let Some(allow_origin) = allowed_origin(cors, origin) else {
        return Vec::new();
    };
    if !method_allowed(cors, request_method)
        || !request_headers.is_none_or(|h| headers_allowed(cors, h))
    {
        return Vec::new();
    }
    let mut out = vec![(
        "access-control-allow-origin".to_owned(),
        allow_origin.to_owned(),
    )];
    if allow_origin != "*" {
        out.push(("vary".to_owned(), "Origin".to_owned()));
    }
    let methods = if cors.allow_methods.iter().any(|m| m == "*") {
        // `*` is not a wildcard for credentialed requests: name the method asked for.
        request_method.to_ascii_uppercase()
    } else {
        cors.allow_methods.join(",")
    };
    out.push(("access-control-allow-methods".to_owned(), methods));
    match request_headers {
        Some(h) if !h.trim().is_empty() => {
            let value = if cors.allow_headers.iter().any(|a| a == "*") {
                h.to_ascii_lowercase()
            } else {
                cors.allow_headers.join(",")
            };
            out.push(("access-control-allow-headers".to_owned(), value));
        }
        _ if !cors.allow_headers.is_empty() && !cors.allow_headers.iter().any(|a| a == "*") => {
            out.push((
                "access-control-allow-headers".to_owned(),
                cors.allow_headers.join(","),
            ));
        }
        _ => {}
    }
    if let Some(age) = cors.max_age {
        out.push(("access-control-max-age".to_owned(), age.to_string()));
    }
    if cors.allow_credentials {
        out.push((
            "access-control-allow-credentials".to_owned(),
            "true".to_owned(),
        ));
    }
    out
}

/// The CORS headers of an actual (non-preflight) answer to a request from `origin`.
pub(crate) fn response_headers(cors: &CorsConfig, origin: &str) -> Vec<(String, String)> {
    let Some(allow_origin) = allowed_origin(cors, origin) else {
        return Vec::new();
    };
    let mut out = vec![(
        "access-control-allow-origin".to_owned(),
        allow_origin.to_owned(),
    )];
    if allow_origin != "*" {
        out.push(("vary".to_owned(), "Origin".to_owned()));
    }
    if !cors.expose_headers.is_empty() {
        out.push((
            "access-control-expose-headers".to_owned(),
            cors.expose_headers.join(","),
        ));
    }
    if cors.allow_credentials {
        out.push((
            "access-control-allow-credentials".to_owned(),
            "true".to_owned(),
        ));
    }
    out
}

/// Whether a response header is one the gateway sets from the CORS configuration.
pub(crate) fn is_cors_header(name: &str) -> bool {
    name.starts_with("access-control-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn app() -> CorsConfig {
        CorsConfig {
            allow_origins: vec!["https://app.example.com".into()],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["content-type".into(), "authorization".into()],
            expose_headers: vec!["x-request-id".into()],
            max_age: Some(600),
            allow_credentials: true,
        }
    }

    #[test]
    fn preflight_of_an_allowed_origin() {
        let h = preflight(
            &app(),
            "https://app.example.com",
            "POST",
            Some("Content-Type, Authorization"),
        );
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(header(&h, "access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(
            header(&h, "access-control-allow-headers"),
            Some("content-type,authorization")
        );
        assert_eq!(header(&h, "access-control-max-age"), Some("600"));
        assert_eq!(header(&h, "access-control-allow-credentials"), Some("true"));
        assert_eq!(header(&h, "vary"), Some("Origin"));
    }

    #[test]
    fn preflight_edge_cases_get_no_cors_headers() {
        let cors = app();
        // Another origin, a look-alike, `null`, a prefix match.
        for origin in [
            "https://evil.example.com",
            "https://app.example.com.evil.com",
            "null",
            "https://app.example.co",
            "http://app.example.com",
        ] {
            assert!(preflight(&cors, origin, "GET", None).is_empty(), "{origin}");
        }
        assert!(preflight(&cors, "https://app.example.com", "DELETE", None).is_empty());
        assert!(preflight(&cors, "https://app.example.com", "GET", Some("x-secret")).is_empty());
        // Origins compare case-insensitively.
        assert!(!preflight(&cors, "HTTPS://APP.EXAMPLE.COM", "get", None).is_empty());
    }

    #[test]
    fn wildcards() {
        let cors = CorsConfig {
            allow_origins: vec!["*".into()],
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            ..CorsConfig::default()
        };
        let h = preflight(&cors, "https://x.test", "PATCH", Some("X-Custom"));
        assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&h, "access-control-allow-methods"), Some("PATCH"));
        assert_eq!(header(&h, "access-control-allow-headers"), Some("x-custom"));
        assert_eq!(header(&h, "vary"), None);
        assert_eq!(header(&h, "access-control-allow-credentials"), None);
        let r = response_headers(&cors, "https://x.test");
        assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    }

    #[test]
    fn actual_responses() {
        let r = response_headers(&app(), "https://app.example.com");
        assert_eq!(
            header(&r, "access-control-expose-headers"),
            Some("x-request-id")
        );
        assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
        assert!(response_headers(&app(), "https://evil.example.com").is_empty());
        assert!(is_preflight("OPTIONS", Some("o"), Some("GET")));
        assert!(!is_preflight("OPTIONS", Some("o"), None));
        assert!(!is_preflight("GET", Some("o"), Some("GET")));
    }
}
