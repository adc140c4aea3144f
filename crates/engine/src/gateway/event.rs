//! API Gateway's HTTP API payload format 2.0, both ways: the event a function gets and the
//! mapping of what it returns to an HTTP answer.

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::HttpResponse;

/// What the event is made of, besides the request itself.
pub(crate) struct EventContext<'a> {
    pub account_id: &'a str,
    pub api_id: &'a str,
    pub route_key: &'a str,
    pub stage: &'a str,
    pub request_id: &'a str,
    pub time_epoch_ms: i64,
    pub path_parameters: &'a [(String, String)],
    /// JWT claims (already as API Gateway renders them) and scopes.
    pub jwt: Option<(&'a Map<String, Value>, &'a [String])>,
}

/// The request as the event describes it.
pub(crate) struct EventRequest<'a> {
    pub method: &'a str,
    /// The raw path (with the stage segment of a named stage, as API Gateway's).
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    /// Lower-case names, in the order received.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub source_ip: &'a str,
    pub protocol: &'a str,
}

/// Whether a content type is text the event can carry as it is (others are base64).
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct == "application/json"
        || ct.ends_with("+json")
        || ct == "application/xml"
        || ct.ends_with("+xml")
        || ct == "application/x-www-form-urlencoded"
        || ct == "application/javascript"
        || ct == "application/graphql"
}

/// Decodes a query component: `%XX` escapes (malformed ones are kept as they are).
fn query_decode(s: &str) -> String {
    super::table::percent_decode(s).unwrap_or_else(|| s.to_owned())
}

/// `DD/Mon/YYYY:HH:MM:SS +0000`, API Gateway's `requestContext.time`.
fn clf_time(epoch_ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    match time::OffsetDateTime::from_unix_timestamp(epoch_ms.div_euclid(1000)) {
        Ok(t) => format!(
            "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
            t.day(),
            MONTHS[usize::from(u8::from(t.month())) - 1],
            t.year(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => String::new(),
    }
}

/// The payload format 2.0 event.
pub(crate) fn build_event(req: &EventRequest<'_>, ctx: &EventContext<'_>) -> Value {
    let mut headers = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for (name, value) in req.headers {
        // Cookies travel in `cookies`, not in `headers`, as API Gateway does.
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| Value::String(c.to_owned())),
            );
            continue;
        }
        // Repeated headers are joined with commas.
        match headers.get_mut(name) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(value);
            }
            _ => {
                headers.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    let mut query = Map::new();
    for pair in req.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (query_decode(k), query_decode(v));
        match query.get_mut(&k) {
            Some(Value::String(prev)) => {
                prev.push(',');
                prev.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let domain = header("host").unwrap_or("");
    let mut http = Map::new();
    http.insert("method".into(), json!(req.method));
    http.insert("path".into(), json!(req.raw_path));
    http.insert("protocol".into(), json!(req.protocol));
    http.insert("sourceIp".into(), json!(req.source_ip));
    http.insert(
        "userAgent".into(),
        json!(header("user-agent").unwrap_or("")),
    );
    let mut request_context = Map::new();
    request_context.insert("accountId".into(), json!(ctx.account_id));
    request_context.insert("apiId".into(), json!(ctx.api_id));
    if let Some((claims, scopes)) = ctx.jwt {
        request_context.insert(
            "authorizer".into(),
            json!({"jwt": {"claims": claims, "scopes": if scopes.is_empty() { Value::Null } else { json!(scopes) }}}),
        );
    }
    request_context.insert("domainName".into(), json!(domain));
    request_context.insert(
        "domainPrefix".into(),
        json!(domain.split('.').next().unwrap_or("")),
    );
    request_context.insert("http".into(), Value::Object(http));
    request_context.insert("requestId".into(), json!(ctx.request_id));
    request_context.insert("routeKey".into(), json!(ctx.route_key));
    request_context.insert("stage".into(), json!(ctx.stage));
    request_context.insert("time".into(), json!(clf_time(ctx.time_epoch_ms)));
    request_context.insert("timeEpoch".into(), json!(ctx.time_epoch_ms));

    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(ctx.route_key));
    event.insert("rawPath".into(), json!(req.raw_path));
    event.insert("rawQueryString".into(), json!(req.raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), Value::Array(cookies));
    }
    event.insert("headers".into(), Value::Object(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !ctx.path_parameters.is_empty() {
        let params: Map<String, Value> = ctx
            .path_parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        event.insert("pathParameters".into(), Value::Object(params));
    }
    event.insert("requestContext".into(), Value::Object(request_context));
    if !req.body.is_empty() {
        match std::str::from_utf8(req.body) {
            Ok(text) if is_text(header("content-type")) => {
                event.insert("body".into(), json!(text));
                event.insert("isBase64Encoded".into(), json!(false));
            }
            _ => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(req.body);
                event.insert("body".into(), json!(b64));
                event.insert("isBase64Encoded".into(), json!(true));
            }
        }
    } else {
        event.insert("isBase64Encoded".into(), json!(false));
    }
    Value::Object(event)
}

/// Why a function's answer cannot be turned into an HTTP response (502 for the caller).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

/// A header value as text: strings as they are, numbers and booleans printed.
fn header_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn valid_header(name: &str, value: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
        && http::HeaderValue::from_str(value).is_ok()
}

/// Maps what the function returned to the HTTP answer, as payload format 2.0 does: an object
/// with `statusCode` is a response description; any other JSON is a 200 `application/json`
/// body as returned.
pub(crate) fn map_response(body: &[u8]) -> Result<HttpResponse, Malformed> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Malformed(format!("the function's answer is not JSON: {e}")))?;
    let Some(obj) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        return Ok(HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::copy_from_slice(body),
        });
    };
    let status = obj
        .get("statusCode")
        .and_then(|s| match s {
            Value::Number(n) => n.as_u64(),
            // Some handlers send "200".
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| Malformed("statusCode must be an integer from 100 to 599".into()))?
        as u16;
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(h) = obj.get("headers").filter(|h| !h.is_null()) {
        let h = h
            .as_object()
            .ok_or_else(|| Malformed("headers must be an object".into()))?;
        for (name, value) in h {
            let value = header_text(value)
                .ok_or_else(|| Malformed(format!("header {name:?} must be a string")))?;
            headers.push((name.to_ascii_lowercase(), value));
        }
    }
    if let Some(h) = obj.get("multiValueHeaders").filter(|h| !h.is_null()) {
        let h = h
            .as_object()
            .ok_or_else(|| Malformed("multiValueHeaders must be an object".into()))?;
        for (name, values) in h {
            let values = values
                .as_array()
                .ok_or_else(|| Malformed(format!("multiValueHeaders.{name} must be a list")))?;
            let texts: Option<Vec<String>> = values.iter().map(header_text).collect();
            let texts = texts
                .ok_or_else(|| Malformed(format!("multiValueHeaders.{name} must hold strings")))?;
            let name = name.to_ascii_lowercase();
            // Joined by commas with any single value of the same name.
            match headers.iter_mut().find(|(k, _)| *k == name) {
                Some((_, v)) => {
                    for t in texts {
                        v.push(',');
                        v.push_str(&t);
                    }
                }
                None => headers.push((name, texts.join(","))),
            }
        }
    }
    if let Some(c) = obj.get("cookies").filter(|c| !c.is_null()) {
        let c = c
            .as_array()
            .ok_or_else(|| Malformed("cookies must be a list".into()))?;
        for cookie in c {
            let cookie = cookie
                .as_str()
                .ok_or_else(|| Malformed("cookies must hold strings".into()))?;
            headers.push(("set-cookie".into(), cookie.to_owned()));
        }
    }
    for (name, value) in &headers {
        if !valid_header(name, value) {
            return Err(Malformed(format!(
                "header {name:?} is not a valid HTTP header"
            )));
        }
    }
    let base64 = match obj.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Malformed("isBase64Encoded must be a boolean".into())),
    };
    let body = match obj.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if base64 => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| Malformed("body is not base64 though isBase64Encoded".into()))?,
        ),
        Some(Value::String(s)) => Bytes::from(s.clone()),
        // Lenient where API Gateway is not: a structured body is sent as its JSON text.
        Some(other) => Bytes::from(other.to_string()),
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// API Gateway's JSON error answers: `{"message":"Not Found"}`.
pub(crate) fn message(status: u16, message: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from(json!({ "message": message }).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn event(headers: &[(&str, &str)], query: &str, body: &[u8]) -> Value {
        let headers = h(headers);
        let params = vec![("id".to_owned(), "42".to_owned())];
        let claims: Map<String, Value> =
            serde_json::from_value(json!({"sub": "ana", "exp": "1700000000"})).unwrap();
        let scopes = vec!["read".to_owned()];
        build_event(
            &EventRequest {
                method: "POST",
                raw_path: "/prod/users/42",
                raw_query: query,
                headers: &headers,
                body,
                source_ip: "127.0.0.1",
                protocol: "HTTP/1.1",
            },
            &EventContext {
                account_id: "000000000000",
                api_id: "abc123",
                route_key: "POST /users/{id}",
                stage: "prod",
                request_id: "req-1",
                time_epoch_ms: 1_710_238_530_000,
                path_parameters: &params,
                jwt: Some((&claims, &scopes)),
            },
        )
    }

    #[test]
    fn builds_the_2_0_event() {
        let e = event(
            &[
                ("host", "api.example.com"),
                ("user-agent", "curl/8"),
                ("x-multi", "a"),
                ("x-multi", "b"),
                ("cookie", "s=1; theme=dark"),
                ("cookie", "c=2"),
                ("content-type", "application/json"),
            ],
            "a=1&b=x%20y&a=2&flag",
            br#"{"name":"Mundo"}"#,
        );
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "POST /users/{id}");
        assert_eq!(e["rawPath"], "/prod/users/42");
        assert_eq!(e["rawQueryString"], "a=1&b=x%20y&a=2&flag");
        assert_eq!(e["headers"]["x-multi"], "a,b");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["cookies"], json!(["s=1", "theme=dark", "c=2"]));
        assert_eq!(
            e["queryStringParameters"],
            json!({"a": "1,2", "b": "x y", "flag": ""})
        );
        assert_eq!(e["pathParameters"], json!({"id": "42"}));
        let rc = &e["requestContext"];
        assert_eq!(rc["http"]["method"], "POST");
        assert_eq!(rc["http"]["path"], "/prod/users/42");
        assert_eq!(rc["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(rc["http"]["userAgent"], "curl/8");
        assert_eq!(rc["requestId"], "req-1");
        assert_eq!(rc["stage"], "prod");
        assert_eq!(rc["apiId"], "abc123");
        assert_eq!(rc["domainName"], "api.example.com");
        assert_eq!(rc["domainPrefix"], "api");
        assert_eq!(rc["timeEpoch"], 1_710_238_530_000i64);
        assert_eq!(rc["time"], "12/Mar/2024:10:15:30 +0000");
        assert_eq!(rc["authorizer"]["jwt"]["claims"]["sub"], "ana");
        assert_eq!(rc["authorizer"]["jwt"]["scopes"], json!(["read"]));
        assert_eq!(e["body"], r#"{"name":"Mundo"}"#);
        assert_eq!(e["isBase64Encoded"], false);
    }

    #[test]
    fn binary_bodies_are_base64() {
        let png = [0x89u8, b'P', b'N', b'G', 0, 0xff];
        let e = event(&[("content-type", "image/png")], "", &png);
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(
            e["body"],
            base64::engine::general_purpose::STANDARD.encode(png)
        );
        // Not UTF-8 without a content type: base64 too.
        let e = event(&[], "", &[0xff, 0xfe]);
        assert_eq!(e["isBase64Encoded"], true);
        // Text of a binary type is still base64, as API Gateway does.
        let e = event(&[("content-type", "application/octet-stream")], "", b"abc");
        assert_eq!(e["isBase64Encoded"], true);
        let e = event(&[], "", b"");
        assert!(e.get("body").is_none());
        assert!(e.get("queryStringParameters").is_none());
        assert!(e.get("cookies").is_none());
    }

    #[test]
    fn structured_responses() {
        let r = map_response(
            br#"{"statusCode":201,"headers":{"Content-Type":"text/plain","X-N":3},
                "multiValueHeaders":{"x-multi":["a","b"],"x-n":["4"]},
                "cookies":["a=1; Path=/","b=2"],"body":"hola"}"#,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(&r.body[..], b"hola");
        let get = |n: &str| {
            r.headers
                .iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("content-type"), ["text/plain"]);
        assert_eq!(get("x-n"), ["3,4"]);
        assert_eq!(get("x-multi"), ["a,b"]);
        assert_eq!(get("set-cookie"), ["a=1; Path=/", "b=2"]);
    }

    #[test]
    fn plain_values_become_200_json() {
        for body in [
            &br#"{"ok":true}"#[..],
            b"\"hola\"",
            b"42",
            b"[1,2]",
            b"null",
        ] {
            let r = map_response(body).unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(&r.body[..], body);
            assert_eq!(r.headers, h(&[("content-type", "application/json")]));
        }
    }

    #[test]
    fn base64_bodies_are_decoded() {
        let r = map_response(br#"{"statusCode":200,"isBase64Encoded":true,"body":"iVBORw=="}"#)
            .unwrap();
        assert_eq!(&r.body[..], &[0x89, b'P', b'N', b'G']);
        let r = map_response(br#"{"statusCode":204}"#).unwrap();
        assert!(r.body.is_empty());
        let r = map_response(br#"{"statusCode":"404","body":{"a":1}}"#).unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &br#"{"a":1}"#[..]));
    }

    #[test]
    fn malformed_responses() {
        for bad in [
            &b"not json"[..],
            br#"{"statusCode":99}"#,
            br#"{"statusCode":"abc"}"#,
            br#"{"statusCode":200.5}"#,
            br#"{"statusCode":200,"headers":[]}"#,
            br#"{"statusCode":200,"headers":{"x":{"a":1}}}"#,
            br#"{"statusCode":200,"headers":{"bad name":"v"}}"#,
            br#"{"statusCode":200,"headers":{"x":"a\nb"}}"#,
            br#"{"statusCode":200,"cookies":"a=1"}"#,
            br#"{"statusCode":200,"isBase64Encoded":true,"body":"***"}"#,
            br#"{"statusCode":200,"isBase64Encoded":"yes"}"#,
        ] {
            assert!(
                map_response(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
