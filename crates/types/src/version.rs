//! Versions, aliases and qualifiers: immutable snapshots of a function, names pointing at them
//! with optional weighted routing, and how an invocation names what it wants.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::function::{CodeRef, FunctionConfig};
use crate::EpochMillis;

/// The mutable version every function has.
pub const LATEST: &str = "$LATEST";
/// Longest alias name.
pub const MAX_ALIAS_LEN: usize = 128;

/// What an invocation asks for after the function name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// `$LATEST` (also: no qualifier).
    Latest,
    /// A published version number.
    Version(u32),
    /// An alias name.
    Alias(String),
}

impl Qualifier {
    /// Parses `$LATEST`, a version number or an alias name.
    pub fn parse(s: &str) -> Result<Qualifier, ValidationError> {
        if s == LATEST {
            return Ok(Qualifier::Latest);
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u32>()
                .ok()
                .filter(|v| *v > 0)
                .map(Qualifier::Version)
                .ok_or_else(|| ValidationError::new("qualifier", format!("bad version {s:?}")));
        }
        validate_alias_name(s).map_err(|e| ValidationError::new("qualifier", e.message))?;
        Ok(Qualifier::Alias(s.to_owned()))
    }
}

impl std::fmt::Display for Qualifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Qualifier::Latest => f.write_str(LATEST),
            Qualifier::Version(v) => write!(f, "{v}"),
            Qualifier::Alias(a) => f.write_str(a),
        }
    }
}

/// Splits `name:qualifier` (the qualifier is optional).
pub fn split_qualified(s: &str) -> (&str, Option<&str>) {
    match s.split_once(':') {
        Some((name, q)) => (name, Some(q)),
        None => (s, None),
    }
}

/// Checks an alias name: `[A-Za-z0-9_-]{1,128}`, not all digits, not `$LATEST`.
pub fn validate_alias_name(name: &str) -> Result<(), ValidationError> {
    crate::function::validate_name("alias", name, MAX_ALIAS_LEN)?;
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationError::new(
            "alias",
            "must not be all digits (that names a version)",
        ));
    }
    Ok(())
}

/// A published version: an immutable snapshot of code and configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Function name.
    pub function: String,
    /// Version number (1, 2, …).
    pub version: u32,
    /// Free text given at publish time.
    #[serde(default)]
    pub description: String,
    /// Configuration at publish time.
    pub config: FunctionConfig,
    /// Code at publish time.
    pub code: CodeRef,
    /// Publish time.
    pub created_at: EpochMillis,
}

/// Weighted routing of an alias: `weight` of the traffic goes to `version`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    /// The additional version.
    pub version: u32,
    /// Its share, 0.0–1.0.
    pub weight: f64,
}

/// An alias: a name for a version, optionally sending a share of traffic to another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// Function name.
    pub function: String,
    /// Alias name.
    pub name: String,
    /// The version it points to.
    pub version: u32,
    /// Weighted routing to a second version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Creation time.
    pub created_at: EpochMillis,
    /// Last change.
    pub updated_at: EpochMillis,
}

impl AliasRecord {
    /// The version an invocation goes to, given a uniform random number in [0, 1).
    pub fn pick(&self, uniform: f64) -> u32 {
        match &self.routing {
            Some(r) if uniform < r.weight => r.version,
            _ => self.version,
        }
    }

    /// Every version the alias can send traffic to.
    pub fn targets(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.version).chain(self.routing.as_ref().map(|r| r.version))
    }
}

/// Checks a routing weight given in percent.
pub fn weight_from_percent(percent: f64) -> Result<f64, ValidationError> {
    if !(0.0..=100.0).contains(&percent) || percent.is_nan() {
        return Err(ValidationError::new("weight", "must be between 0 and 100"));
    }
    Ok(percent / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers() {
        assert_eq!(Qualifier::parse("$LATEST").unwrap(), Qualifier::Latest);
        assert_eq!(Qualifier::parse("12").unwrap(), Qualifier::Version(12));
        assert_eq!(
            Qualifier::parse("prod").unwrap(),
            Qualifier::Alias("prod".into())
        );
        for bad in ["0", "", "a b", "x".repeat(129).as_str(), "99999999999"] {
            assert!(Qualifier::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(split_qualified("hello:prod"), ("hello", Some("prod")));
        assert_eq!(split_qualified("hello"), ("hello", None));
    }

    #[test]
    fn aliases() {
        assert!(validate_alias_name("prod").is_ok());
        assert!(validate_alias_name("123").is_err());
        assert!(validate_alias_name("$LATEST").is_err());
        let mut a = AliasRecord {
            function: "f".into(),
            name: "prod".into(),
            version: 1,
            routing: Some(Routing {
                version: 2,
                weight: 0.1,
            }),
            description: String::new(),
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(a.pick(0.05), 2);
        assert_eq!(a.pick(0.5), 1);
        assert_eq!(a.targets().collect::<Vec<_>>(), vec![1, 2]);
        a.routing = None;
        assert_eq!(a.pick(0.0), 1);
        assert_eq!(weight_from_percent(10.0).unwrap(), 0.1);
        assert!(weight_from_percent(101.0).is_err());
    }
}
