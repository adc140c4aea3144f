//! The compiled route table of one stage: exact routes in a hash map, templated ones sorted so
//! that the first match is the most specific, as API Gateway picks.
//!
//! Precedence: the path decides first, segment by segment from the left (a static segment
//! beats `{param}`, which beats `{proxy+}`), then the method (an exact method beats `ANY`).
//! So `GET /pets/dog` beats `GET /pets/{id}`, which beats `ANY /pets/{proxy+}`, which beats
//! `ANY /{proxy+}`.

use std::collections::HashMap;
use std::sync::Arc;

use holactl_types::gateway::{RouteAuth, Segment, Throttle};
use holactl_types::version::Qualifier;

use super::jwt::Authorizer;

/// A route ready to serve.
#[derive(Debug)]
pub(crate) struct CompiledRoute {
    /// Stable id.
    pub id: String,
    /// `GET /users/{id}`.
    pub route_key: String,
    /// Upper-case method or `ANY`.
    pub method: String,
    pub segments: Vec<Segment>,
    pub function: String,
    pub qualifier: Option<Qualifier>,
    pub auth: RouteAuth,
    pub authorizer: Option<String>,
    pub scopes: Vec<String>,
    pub throttle: Option<Throttle>,
}

impl CompiledRoute {
    /// The precedence key: smaller is more specific.
    fn rank(&self) -> (Vec<u8>, bool) {
        let kinds = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Static(_) => 0,
                Segment::Param(_) => 1,
                Segment::Greedy(_) => 2,
            })
            .collect();
        (kinds, self.method == "ANY")
    }

    fn is_static(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Static(_)))
    }

    /// The path parameters when `segments` (decoded request segments) match this route.
    fn matches(&self, method: &str, segments: &[String]) -> Option<Vec<(String, String)>> {
        if self.method != "ANY" && self.method != method {
            return None;
        }
        let mut params = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Static(text) => {
                    if segments.get(i) != Some(text) {
                        return None;
                    }
                }
                Segment::Param(name) => params.push((name.clone(), segments.get(i)?.clone())),
                Segment::Greedy(name) => {
                    // One segment or more, joined back with `/`.
                    if segments.len() <= i {
                        return None;
                    }
                    params.push((name.clone(), segments[i..].join("/")));
                    return Some(params);
                }
            }
        }
        (segments.len() == self.segments.len()).then_some(params)
    }
}

/// A matched route and its path parameters (name, decoded value).
pub(crate) type Match = (Arc<CompiledRoute>, Vec<(String, String)>);

/// The routes and authorizers of one stage.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    routes: Vec<Arc<CompiledRoute>>,
    /// `METHOD /a/b` of every static route → its index.
    exact: HashMap<String, usize>,
    /// Indexes of the other routes, most specific first.
    templated: Vec<usize>,
    /// JWT authorizers by name.
    pub authorizers: HashMap<String, Arc<Authorizer>>,
}

/// The exact-map key of a method and decoded segments.
fn exact_key(method: &str, segments: &[String]) -> String {
    let mut key = String::with_capacity(
        method.len() + 2 + segments.iter().map(|s| s.len() + 1).sum::<usize>(),
    );
    key.push_str(method);
    key.push(' ');
    if segments.is_empty() {
        key.push('/');
    }
    for s in segments {
        key.push('/');
        key.push_str(s);
    }
    key
}

impl RouteTable {
    /// Builds the table.
    pub fn new(
        routes: Vec<CompiledRoute>,
        authorizers: HashMap<String, Arc<Authorizer>>,
    ) -> RouteTable {
        let routes: Vec<Arc<CompiledRoute>> = routes.into_iter().map(Arc::new).collect();
        let mut exact = HashMap::new();
        let mut templated = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            if r.is_static() {
                let segments: Vec<String> = r
                    .segments
                    .iter()
                    .map(|s| match s {
                        Segment::Static(t) => t.clone(),
                        _ => String::new(),
                    })
                    .collect();
                exact.insert(exact_key(&r.method, &segments), i);
            } else {
                templated.push(i);
            }
        }
        templated.sort_by(|a, b| routes[*a].rank().cmp(&routes[*b].rank()));
        RouteTable {
            routes,
            exact,
            templated,
            authorizers,
        }
    }

    /// The most specific route for `method` and the decoded path `segments`, with its path
    /// parameters.
    pub fn find(&self, method: &str, segments: &[String]) -> Option<Match> {
        // A static path beats every template; the exact method beats ANY.
        for m in [method, "ANY"] {
            if let Some(&i) = self.exact.get(&exact_key(m, segments)) {
                return Some((self.routes[i].clone(), Vec::new()));
            }
        }
        self.templated.iter().find_map(|&i| {
            let route = &self.routes[i];
            route.matches(method, segments).map(|p| (route.clone(), p))
        })
    }
}

/// Why a request path is refused before any route is looked at.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// `.`/`..` segments (also percent-encoded), encoded `/` or NUL, bad percent-encoding:
    /// 400, never normalized into another route.
    Bad,
    /// Empty segments (`//`, a trailing `/`): no route has them, 404.
    NoRoute,
}

/// Splits a raw path (`/a/b%20c`) into percent-decoded segments, refusing traversal.
pub(crate) fn split_path(raw: &str) -> Result<Vec<String>, PathError> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::Bad);
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in rest.split('/') {
        if part.is_empty() {
            return Err(PathError::NoRoute);
        }
        let decoded = percent_decode(part).ok_or(PathError::Bad)?;
        if decoded == "." || decoded == ".." || decoded.contains(['/', '\\', '\0']) {
            return Err(PathError::Bad);
        }
        out.push(decoded);
    }
    Ok(out)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use holactl_types::gateway::parse_route_path;

    fn route(method: &str, path: &str) -> CompiledRoute {
        CompiledRoute {
            id: format!("{method} {path}"),
            route_key: format!("{method} {path}"),
            method: method.into(),
            segments: parse_route_path(path).unwrap(),
            function: "f".into(),
            qualifier: None,
            auth: RouteAuth::None,
            authorizer: None,
            scopes: Vec::new(),
            throttle: None,
        }
    }

    fn table(routes: &[(&str, &str)]) -> RouteTable {
        RouteTable::new(
            routes.iter().map(|(m, p)| route(m, p)).collect(),
            HashMap::new(),
        )
    }

    fn find(t: &RouteTable, method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
        let segments = split_path(path).ok()?;
        t.find(method, &segments)
            .map(|(r, p)| (r.route_key.clone(), p))
    }

    #[test]
    fn most_specific_route_wins() {
        let t = table(&[
            ("ANY", "/{proxy+}"),
            ("GET", "/pets/{id}"),
            ("GET", "/pets/dog"),
            ("ANY", "/pets/{proxy+}"),
            ("POST", "/pets"),
            ("ANY", "/pets"),
            ("GET", "/pets/{id}/toys/{toy}"),
            ("GET", "/"),
        ]);
        let key = |m: &str, p: &str| find(&t, m, p).map(|(k, _)| k);
        assert_eq!(key("GET", "/pets/dog").as_deref(), Some("GET /pets/dog"));
        assert_eq!(key("GET", "/pets/cat").as_deref(), Some("GET /pets/{id}"));
        assert_eq!(
            key("DELETE", "/pets/cat").as_deref(),
            Some("ANY /pets/{proxy+}")
        );
        assert_eq!(
            key("GET", "/pets/cat/food").as_deref(),
            Some("ANY /pets/{proxy+}")
        );
        assert_eq!(
            key("GET", "/pets/1/toys/ball").as_deref(),
            Some("GET /pets/{id}/toys/{toy}")
        );
        assert_eq!(key("POST", "/pets").as_deref(), Some("POST /pets"));
        assert_eq!(key("PUT", "/pets").as_deref(), Some("ANY /pets"));
        assert_eq!(key("GET", "/other/x").as_deref(), Some("ANY /{proxy+}"));
        assert_eq!(key("GET", "/").as_deref(), Some("GET /"));
        // A greedy variable needs at least one segment.
        assert_eq!(key("POST", "/").as_deref(), None);
    }

    #[test]
    fn parameters_are_decoded_and_greedy_keeps_slashes() {
        let t = table(&[("GET", "/users/{id}"), ("GET", "/files/{path+}")]);
        let (_, p) = find(&t, "GET", "/users/ana%20maria").unwrap();
        assert_eq!(p, vec![("id".to_owned(), "ana maria".to_owned())]);
        let (_, p) = find(&t, "GET", "/files/a/b/c.txt").unwrap();
        assert_eq!(p, vec![("path".to_owned(), "a/b/c.txt".to_owned())]);
        assert!(find(&t, "GET", "/users").is_none());
        assert!(find(&t, "GET", "/users/1/extra").is_none());
        assert!(find(&t, "POST", "/users/1").is_none());
    }

    #[test]
    fn traversal_is_refused_not_normalized() {
        for bad in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2e/b",
            "/a/%2E%2e",
            "/a/.%2e/b",
            "/a/%2fetc",
            "/a/%5c..",
            "/a/%00",
            "/a/%zz",
            "/a/%e9",
            "a/b",
        ] {
            assert_eq!(split_path(bad), Err(PathError::Bad), "{bad}");
        }
        for empty in ["//a", "/a//b", "/a/"] {
            assert_eq!(split_path(empty), Err(PathError::NoRoute), "{empty}");
        }
        assert_eq!(split_path("/").unwrap(), Vec::<String>::new());
        assert_eq!(split_path("/a.b/..c").unwrap(), vec!["a.b", "..c"]);
    }
}
