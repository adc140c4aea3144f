//! The typed client's execution-policy methods:
//! `/api/v1/functions/{name}/policy` and `/api/v1/functions/{name}/aliases/{alias}/policy`.

use http::Method;

use holactl_types::policy::{ExecutionPolicy, PolicyView};

use super::{Client, ClientError};

/// The policy path of a function, or of one of its aliases.
fn policy_path(name: &str, alias: Option<&str>) -> String {
    match alias {
        Some(alias) => format!("/api/v1/functions/{name}/aliases/{alias}/policy"),
        None => format!("/api/v1/functions/{name}/policy"),
    }
}

impl Client {
    /// `GET …/policy`: the function's policy, or its alias's own.
    pub async fn get_policy(
        &self,
        name: &str,
        alias: Option<&str>,
    ) -> Result<PolicyView, ClientError> {
        self.json(Method::GET, &policy_path(name, alias), None)
            .await
    }

    /// `PUT …/policy`: replaces the function's (or the alias's) policy.
    pub async fn set_policy(
        &self,
        name: &str,
        alias: Option<&str>,
        policy: &ExecutionPolicy,
    ) -> Result<PolicyView, ClientError> {
        self.json(
            Method::PUT,
            &policy_path(name, alias),
            Some(Self::encode(policy)?),
        )
        .await
    }

    /// `DELETE …/policy`.
    pub async fn delete_policy(&self, name: &str, alias: Option<&str>) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, &policy_path(name, alias))
            .await
    }
}
