//! Execution policies: what a function (or one of its aliases) may do through the platform's
//! internal API — invoke named functions, send to named queues, read named secrets.
//!
//! The default is nothing: a function without a policy is refused every internal call. Entries
//! are exact names; a wildcard (`*`) is refused on purpose (least privilege: every target is
//! listed). An alias may carry its own policy, which *replaces* the function's for invocations
//! that came through that alias.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::function::{validate_function_name, validate_secret_name};
use crate::queue::validate_queue_name;
use crate::version::{split_qualified, Qualifier, LATEST};

/// Most entries in each list of a policy.
pub const MAX_POLICY_ENTRIES: usize = 100;

/// What a function may do through the platform's internal API. Empty lists allow nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionPolicy {
    /// Functions it may invoke: `name` (unqualified, i.e. `$LATEST`) or `name:qualifier` (one
    /// version or alias).
    #[serde(default)]
    pub invoke: Vec<String>,
    /// Queues it may send messages to.
    #[serde(default)]
    pub send: Vec<String>,
    /// Secrets whose values it may read.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// Rejects the wildcard with a message saying why.
fn refuse_wildcard(field: &str, entry: &str) -> Result<(), ValidationError> {
    if entry.contains('*') {
        return Err(ValidationError::new(
            field,
            format!(
                "{entry:?}: wildcards are not supported; list each target by name (least \
                 privilege)"
            ),
        ));
    }
    Ok(())
}

/// Checks a list's length and each entry, naming `field[i]` in the error; returns the entries
/// normalized (by `check`) with duplicates removed, first occurrence kept.
fn normalize_list(
    field: &str,
    entries: Vec<String>,
    check: impl Fn(&str, &str) -> Result<String, ValidationError>,
) -> Result<Vec<String>, ValidationError> {
    if entries.len() > MAX_POLICY_ENTRIES {
        return Err(ValidationError::new(
            field,
            format!("at most {MAX_POLICY_ENTRIES} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("{field}[{i}]");
        refuse_wildcard(&at, entry)?;
        let normalized = check(&at, entry)?;
        if !out.contains(&normalized) {
            out.push(normalized);
        }
    }
    Ok(out)
}

/// Checks one `invoke` entry: `name` or `name:qualifier`; `name:$LATEST` becomes `name`.
fn invoke_entry(field: &str, entry: &str) -> Result<String, ValidationError> {
    let (name, qualifier) = split_qualified(entry);
    validate_function_name(name)
        .map_err(|e| ValidationError::new(field, format!("{entry:?}: {}", e.message)))?;
    match qualifier {
        None => Ok(name.to_owned()),
        Some(q) => match Qualifier::parse(q)
            .map_err(|e| ValidationError::new(field, format!("{entry:?}: {}", e.message)))?
        {
            Qualifier::Latest => Ok(name.to_owned()),
            other => Ok(format!("{name}:{other}")),
        },
    }
}

impl ExecutionPolicy {
    /// Validates every entry (names as the platform accepts them, at most
    /// [`MAX_POLICY_ENTRIES`] per list, no wildcards) and returns the policy with duplicates
    /// removed and `name:$LATEST` written `name`.
    pub fn normalize(self) -> Result<ExecutionPolicy, ValidationError> {
        Ok(ExecutionPolicy {
            invoke: normalize_list("invoke", self.invoke, invoke_entry)?,
            send: normalize_list("send", self.send, |field, q| {
                validate_queue_name(field, q)
                    .map_err(|e| ValidationError::new(field, format!("{q:?}: {}", e.message)))?;
                Ok(q.to_owned())
            })?,
            secrets: normalize_list("secrets", self.secrets, |field, s| {
                validate_secret_name(s)
                    .map_err(|e| ValidationError::new(field, format!("{s:?}: {}", e.message)))?;
                Ok(s.to_owned())
            })?,
        })
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.invoke.is_empty() && self.send.is_empty() && self.secrets.is_empty()
    }

    /// Whether invoking `function` with `qualifier` (`None` or `$LATEST`: unqualified) is
    /// allowed. An unqualified entry allows only unqualified calls; `name:q` only `q`.
    pub fn allows_invoke(&self, function: &str, qualifier: Option<&str>) -> bool {
        let qualifier = qualifier.filter(|q| *q != LATEST);
        self.invoke
            .iter()
            .any(|entry| match (split_qualified(entry), qualifier) {
                ((name, None), None) => name == function,
                ((name, Some(q)), Some(wanted)) => name == function && q == wanted,
                _ => false,
            })
    }

    /// Whether sending to `queue` is allowed.
    pub fn allows_send(&self, queue: &str) -> bool {
        self.send.iter().any(|q| q == queue)
    }

    /// Whether reading secret `name` is allowed.
    pub fn allows_secret(&self, name: &str) -> bool {
        self.secrets.iter().any(|s| s == name)
    }
}

/// `GET/PUT /api/v1/functions/{name}[/aliases/{alias}]/policy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    /// The function.
    pub function: String,
    /// The alias, for an alias's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Whether a policy is stored. When not: a function is allowed nothing; an alias uses the
    /// function's policy.
    pub set: bool,
    /// The policy (empty lists when none is stored).
    #[serde(flatten)]
    pub policy: ExecutionPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(invoke: &[&str], send: &[&str], secrets: &[&str]) -> ExecutionPolicy {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        ExecutionPolicy {
            invoke: v(invoke),
            send: v(send),
            secrets: v(secrets),
        }
    }

    #[test]
    fn normalizes_and_deduplicates() {
        let p = policy(
            &["b", "b:$LATEST", "b:prod", "b:3", "b:prod"],
            &["jobs", "jobs"],
            &["db.pass", "db.pass"],
        )
        .normalize()
        .unwrap();
        assert_eq!(p, policy(&["b", "b:prod", "b:3"], &["jobs"], &["db.pass"]));
        assert!(ExecutionPolicy::default().normalize().unwrap().is_empty());
    }

    #[test]
    fn bad_entries_name_the_field() {
        let field = |p: ExecutionPolicy| p.normalize().unwrap_err().field;
        assert_eq!(field(policy(&["ok", "bad name"], &[], &[])), "invoke[1]");
        assert_eq!(field(policy(&["f:0"], &[], &[])), "invoke[0]");
        assert_eq!(field(policy(&[""], &[], &[])), "invoke[0]");
        assert_eq!(field(policy(&[], &["q/1"], &[])), "send[0]");
        assert_eq!(field(policy(&[], &[], &["a b"])), "secrets[0]");
        let err = policy(&["*"], &[], &[]).normalize().unwrap_err();
        assert_eq!(err.field, "invoke[0]");
        assert!(err.message.contains("wildcards"), "{}", err.message);
        assert_eq!(field(policy(&[], &[], &["*"])), "secrets[0]");
        assert_eq!(field(policy(&["f:*"], &[], &[])), "invoke[0]");
        let many: Vec<String> = (0..=MAX_POLICY_ENTRIES).map(|i| format!("q{i}")).collect();
        let err = ExecutionPolicy {
            send: many,
            ..Default::default()
        }
        .normalize()
        .unwrap_err();
        assert_eq!(err.field, "send");
    }

    #[test]
    fn decisions() {
        let p = policy(&["b", "c:prod", "d:2"], &["jobs"], &["db"])
            .normalize()
            .unwrap();
        assert!(p.allows_invoke("b", None));
        assert!(p.allows_invoke("b", Some(LATEST)));
        assert!(
            !p.allows_invoke("b", Some("prod")),
            "unqualified allows $LATEST only"
        );
        assert!(p.allows_invoke("c", Some("prod")));
        assert!(!p.allows_invoke("c", None));
        assert!(!p.allows_invoke("c", Some("beta")));
        assert!(p.allows_invoke("d", Some("2")));
        assert!(!p.allows_invoke("d", Some("3")));
        assert!(!p.allows_invoke("e", None));
        assert!(p.allows_send("jobs") && !p.allows_send("other"));
        assert!(p.allows_secret("db") && !p.allows_secret("db2"));
        let none = ExecutionPolicy::default();
        assert!(!none.allows_invoke("b", None) && !none.allows_send("jobs"));
        assert!(!none.allows_secret("db"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<ExecutionPolicy>(r#"{"secret":["x"]}"#).is_err());
        let p: ExecutionPolicy = serde_json::from_str(r#"{"send":["q"]}"#).unwrap();
        assert_eq!(p.send, vec!["q".to_owned()]);
    }
}
