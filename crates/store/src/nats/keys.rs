//! Our keys as NATS subjects, and back.
//!
//! A NATS KV key is a subject: tokens of `[-_=A-Za-z0-9/]` separated by `.`, none empty. Our
//! keys are any strings whose structure is `/`-separated (`functions/a`,
//! `idempotency/f/<sha>`), so each `/`-segment becomes one token: a server-side subject filter
//! then narrows a prefix listing to the keys under its last `/` (`functions/` →
//! `functions.>`), and only the rest of the prefix is compared here.
//!
//! Encoding of one token: `A-Z a-z 0-9 _ -` stay; every other byte (UTF-8) becomes `=XX`
//! (upper-case hex); an empty segment becomes a lone `=`. The token `==` can therefore never be
//! produced, and separates a queue name from a message id in queue keys.

/// Separates the queue's tokens from the message id's token in queue keys.
const QUEUE_SEPARATOR: &str = "==";

fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// One token for `s`, whatever it holds (`/` included).
pub(super) fn token(s: &str) -> String {
    if s.is_empty() {
        return "=".to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            out.push('=');
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

/// The string a token encodes; `None` for anything [`token`] cannot produce.
pub(super) fn untoken(t: &str) -> Option<String> {
    if t == "=" {
        return Some(String::new());
    }
    if t.is_empty() {
        return None;
    }
    let bytes = t.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'=' {
            let hex = t.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if plain(b) {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// The subject form of a `/`-structured key.
pub(super) fn path(key: &str) -> String {
    key.split('/').map(token).collect::<Vec<_>>().join(".")
}

/// The key a subject form encodes.
pub(super) fn unpath(subject: &str) -> Option<String> {
    let parts: Option<Vec<String>> = subject.split('.').map(untoken).collect();
    Some(parts?.join("/"))
}

/// The subject filter (relative to a bucket) that holds every key starting with `prefix`;
/// callers still compare the whole prefix, as the filter only covers its complete segments.
pub(super) fn prefix_filter(prefix: &str) -> String {
    match prefix.rfind('/') {
        None => ">".to_owned(),
        Some(i) => format!("{}.>", path(&prefix[..i])),
    }
}

/// The key of message `id` of `queue`.
pub(super) fn queue_key(queue: &str, id: &str) -> String {
    format!("{}.{QUEUE_SEPARATOR}.{}", path(queue), token(id))
}

/// The subject filter holding every message of `queue`.
pub(super) fn queue_filter(queue: &str) -> String {
    format!("{}.{QUEUE_SEPARATOR}.*", path(queue))
}

/// The subject filter holding every message of every queue whose name starts with `prefix`
/// (callers compare the whole prefix).
pub(super) fn queue_prefix_filter(prefix: &str) -> String {
    prefix_filter(prefix)
}

/// `(queue, id)` of a queue key.
pub(super) fn split_queue_key(key: &str) -> Option<(String, String)> {
    let (queue, id) = key.rsplit_once(&format!(".{QUEUE_SEPARATOR}."))?;
    Some((unpath(queue)?, untoken(id)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_subject(s: &str) -> bool {
        !s.is_empty()
            && s.split('.').all(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_=/".contains(&b))
            })
    }

    #[test]
    fn round_trips() {
        for key in [
            "functions/a",
            "a//b",
            "/leading",
            "trailing/",
            "",
            "audit/2024-01-01T00:00:00Z-x",
            "versions/f/$LATEST",
            "dots.and spaces/ünï*>",
            "=2F",
        ] {
            let p = path(key);
            assert!(valid_subject(&p), "{key:?} → {p:?}");
            assert_eq!(unpath(&p).as_deref(), Some(key), "{p}");
            let t = token(key);
            assert!(valid_subject(&t) && !t.contains('.'), "{t}");
            assert_eq!(untoken(&t).as_deref(), Some(key));
        }
        assert_eq!(path("functions/a"), "functions.a");
        assert_eq!(untoken("=4"), None);
        assert_eq!(untoken("a*"), None);
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix_filter("functions/"), "functions.>");
        assert_eq!(prefix_filter("functions/ab"), "functions.>");
        assert_eq!(prefix_filter("a/b/c"), "a.b.>");
        assert_eq!(prefix_filter("func"), ">");
        assert_eq!(prefix_filter(""), ">");
        assert_eq!(prefix_filter("/x"), "=.>");
    }

    #[test]
    fn queue_keys() {
        let k = queue_key("async/f", "id/with.dots");
        assert!(valid_subject(&k));
        assert_eq!(
            split_queue_key(&k),
            Some(("async/f".to_owned(), "id/with.dots".to_owned()))
        );
        assert_eq!(queue_filter("async/f"), "async.f.==.*");
        assert!(split_queue_key("async.f").is_none());
    }
}
