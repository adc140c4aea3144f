//! The NATS options `serve --nats`, `export` and `import` share: where the cluster's store is,
//! its layout, and the credentials and TLS the NATS server's configuration asks for.

use std::path::PathBuf;

use clap::Args;
use holactl_store::nats::{NatsAuth, NatsOptions};

/// A cluster's store on NATS JetStream.
#[derive(Clone, Debug, Args)]
pub struct NatsArgs {
    /// Cluster mode: the store is the one every node shares on this NATS JetStream server or
    /// cluster (`nats://HOST:PORT`, several comma-separated) instead of the embedded store in
    /// the data dir. Every node needs the same master key (HOLACTL_MASTER_KEY).
    #[arg(long, env = "HOLACTL_NATS_URL")]
    pub nats: Option<String>,
    /// Cluster mode: prefix of the JetStream buckets; nodes of one platform share it.
    #[arg(long, env = "HOLACTL_NATS_NAMESPACE", default_value = holactl_store::nats::DEFAULT_NAMESPACE)]
    pub nats_namespace: String,
    /// Cluster mode: replicas of each JetStream bucket when it is created (1 for a single
    /// NATS server, 3 for a production NATS cluster).
    #[arg(long, env = "HOLACTL_NATS_REPLICAS", default_value_t = holactl_store::nats::DEFAULT_REPLICAS)]
    pub nats_replicas: usize,
    #[command(flatten)]
    pub auth: NatsAuthArgs,
}

impl NatsArgs {
    /// The NATS URL and store options, when --nats is given.
    pub fn options(&self) -> anyhow::Result<Option<(String, NatsOptions)>> {
        let Some(url) = &self.nats else {
            return Ok(None);
        };
        Ok(Some((
            url.clone(),
            NatsOptions {
                namespace: self.nats_namespace.clone(),
                replicas: self.nats_replicas,
                auth: self.auth.auth()?,
                ..Default::default()
            },
        )))
    }
}

/// Credentials and TLS of the NATS connection.
#[derive(Clone, Debug, Args)]
pub struct NatsAuthArgs {
    /// NATS credentials file (`.creds`: a user JWT and its NKey seed).
    #[arg(long, env = "HOLACTL_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// NATS user (its password from --nats-password or HOLACTL_NATS_PASSWORD).
    #[arg(long, env = "HOLACTL_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password (prefer the environment variable: arguments show in `ps`).
    #[arg(long, env = "HOLACTL_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS authentication token (prefer the environment variable).
    #[arg(long, env = "HOLACTL_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// Connect over TLS, verifying the server against --nats-tls-ca or the system's roots
    /// (also implied by the other TLS options and by `tls://` URLs).
    #[arg(long, env = "HOLACTL_NATS_TLS")]
    pub nats_tls: bool,
    /// PEM file of the certificate authorities that sign the NATS servers' certificates.
    #[arg(long, env = "HOLACTL_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// PEM file of this node's client certificate (for servers that verify clients).
    #[arg(long, env = "HOLACTL_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[arg(long, env = "HOLACTL_NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
}

impl NatsAuthArgs {
    /// The store's form, after checking the options fit together.
    pub fn auth(&self) -> anyhow::Result<NatsAuth> {
        let user_password = match (&self.nats_user, &self.nats_password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!(
                "invalid_argument: --nats-user needs a password: set HOLACTL_NATS_PASSWORD (or --nats-password)"
            ),
            (None, Some(_)) => anyhow::bail!("invalid_argument: a NATS password needs --nats-user"),
        };
        Ok(NatsAuth {
            creds_file: self.nats_creds.clone(),
            user_password,
            token: self.nats_token.clone(),
            tls: self.nats_tls,
            tls_ca: self.nats_tls_ca.clone(),
            tls_client: self.nats_tls_cert.clone().zip(self.nats_tls_key.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> NatsAuthArgs {
        NatsAuthArgs {
            nats_creds: None,
            nats_user: None,
            nats_password: None,
            nats_token: None,
            nats_tls: false,
            nats_tls_ca: None,
            nats_tls_cert: None,
            nats_tls_key: None,
        }
    }

    #[test]
    fn a_user_needs_a_password_and_a_password_a_user() {
        let user = NatsAuthArgs {
            nats_user: Some("u".into()),
            ..args()
        };
        assert!(user.auth().unwrap_err().to_string().contains("password"));
        let password = NatsAuthArgs {
            nats_password: Some("p".into()),
            ..args()
        };
        assert!(password
            .auth()
            .unwrap_err()
            .to_string()
            .contains("--nats-user"));
        let both = NatsAuthArgs {
            nats_user: Some("u".into()),
            nats_password: Some("p".into()),
            nats_tls_cert: Some("c.pem".into()),
            nats_tls_key: Some("k.pem".into()),
            ..args()
        };
        let auth = both.auth().unwrap();
        assert_eq!(auth.user_password, Some(("u".into(), "p".into())));
        assert_eq!(auth.tls_client, Some(("c.pem".into(), "k.pem".into())));
    }
}
