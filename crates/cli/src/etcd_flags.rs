//! etcdctl's connection flags and `ETCDCTL_*` variables, plus `--kubeadm`, `--k3s` and `--rke2`
//! (a distribution's own endpoint and etcd client certificate).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use lifeboat_etcd_conn::{ConnectOptions, Credentials, TlsFiles};

/// Where kubeadm keeps etcd's PKI.
const KUBEADM_PKI_DIR: &str = "/etc/kubernetes/pki";
/// Where a control-plane node's etcd listens for clients (kubeadm, k3s, RKE2).
const LOOPBACK_ENDPOINT: &str = "https://127.0.0.1:2379";
/// Where k3s and RKE2 keep their embedded etcd's certificates.
const K3S_ETCD_TLS: &str = "/var/lib/rancher/k3s/server/tls/etcd";
const RKE2_ETCD_TLS: &str = "/var/lib/rancher/rke2/server/tls/etcd";
/// etcdctl's default endpoint.
const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";

/// How to reach etcd (the flags and variables of etcdctl).
#[derive(Debug, Clone, Args)]
pub struct EtcdFlags {
    /// gRPC endpoints, comma-separated; the first healthy one is used.
    #[arg(long, env = "ETCDCTL_ENDPOINTS", value_delimiter = ',', value_name = "URLS")]
    endpoints: Option<Vec<String>>,
    /// CA bundle that verifies the server's certificate.
    #[arg(long, env = "ETCDCTL_CACERT", value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Client certificate.
    #[arg(long, env = "ETCDCTL_CERT", value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Client private key.
    #[arg(long, env = "ETCDCTL_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// User name, or `name:password`.
    #[arg(
        long,
        env = "ETCDCTL_USER",
        value_name = "NAME[:PASSWORD]",
        hide_env_values = true
    )]
    user: Option<String>,
    /// Password of --user (asked for on a terminal when missing).
    #[arg(long, env = "ETCDCTL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Limit for connecting (TCP and TLS), e.g. 2s.
    #[arg(long, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    dial_timeout: Duration,
    /// Limit for short requests (auth, status), e.g. 5s; the snapshot stream has none.
    #[arg(long, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    command_timeout: Duration,
    /// Accept any server certificate (the connection stays encrypted).
    #[arg(long, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY")]
    insecure_skip_tls_verify: bool,
    /// Use kubeadm's endpoint and etcd client certificate (healthcheck-client) unless given.
    #[arg(long, conflicts_with_all = ["k3s", "rke2"])]
    kubeadm: bool,
    /// Use k3s's embedded etcd: its endpoint and client certificate under
    /// /var/lib/rancher/k3s/server/tls/etcd, unless given.
    #[arg(long, conflicts_with = "rke2")]
    k3s: bool,
    /// Use RKE2's etcd: its endpoint and client certificate under
    /// /var/lib/rancher/rke2/server/tls/etcd, unless given.
    #[arg(long)]
    rke2: bool,
    /// kubeadm's PKI directory, for --kubeadm.
    #[arg(long, value_name = "DIR", default_value = KUBEADM_PKI_DIR, requires = "kubeadm")]
    kubeadm_pki_dir: PathBuf,
}

/// The flags alone, for building them from another source than the command line.
#[derive(Debug, clap::Parser)]
struct FlagsOnly {
    #[command(flatten)]
    etcd: EtcdFlags,
}

impl EtcdFlags {
    /// The flags as if `args` (e.g. `--endpoints`, `URL`) had been given on the command line;
    /// the `ETCDCTL_*` variables fill in the rest, as they do for the CLI.
    pub fn from_args(args: Vec<std::ffi::OsString>) -> anyhow::Result<Self> {
        let argv = std::iter::once(std::ffi::OsString::from("lifeboat")).chain(args);
        let parsed = <FlagsOnly as clap::Parser>::try_parse_from(argv).map_err(|e| {
            let text = e.render().to_string();
            anyhow::anyhow!("etcd settings: {}", text.lines().next().unwrap_or_default())
        })?;
        Ok(parsed.etcd)
    }

    /// Whether an endpoint was asked for (a flag, a variable or a distribution), not just
    /// defaulted.
    pub fn given(&self) -> bool {
        self.endpoints.is_some() || self.kubeadm || self.k3s || self.rke2
    }

    /// The CA, client certificate and key of the distribution asked for, if any.
    fn distribution_files(&self) -> Option<[PathBuf; 3]> {
        let under = |dir: &Path, names: [&str; 3]| names.map(|name| dir.join(name));
        let rancher = ["server-ca.crt", "client.crt", "client.key"];
        if self.kubeadm {
            let etcd_pki = self.kubeadm_pki_dir.join("etcd");
            Some(under(
                &etcd_pki,
                ["ca.crt", "healthcheck-client.crt", "healthcheck-client.key"],
            ))
        } else if self.k3s {
            Some(under(Path::new(K3S_ETCD_TLS), rancher))
        } else if self.rke2 {
            Some(under(Path::new(RKE2_ETCD_TLS), rancher))
        } else {
            None
        }
    }

    /// Resolves flags, variables and the distribution's defaults into connection options.
    pub fn resolve(self) -> anyhow::Result<ConnectOptions> {
        let [ca, cert, key] = self
            .distribution_files()
            .map_or([None, None, None], |files| files.map(Some));
        let distribution = self.kubeadm || self.k3s || self.rke2;
        let endpoints = match self.endpoints {
            Some(list) => list
                .into_iter()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect(),
            // All three serve clients on the node's loopback.
            None if distribution => vec![LOOPBACK_ENDPOINT.to_string()],
            None => vec![DEFAULT_ENDPOINT.to_string()],
        };
        if endpoints.is_empty() {
            bail!("--endpoints is empty; give at least one host:port");
        }
        let tls = TlsFiles {
            ca: self.cacert.or(ca),
            cert: self.cert.or(cert),
            key: self.key.or(key),
        };
        let credentials = match self.user {
            None => None,
            Some(user) => Some(credentials(user, self.password)?),
        };
        Ok(ConnectOptions {
            endpoints,
            tls,
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            credentials,
            dial_timeout: self.dial_timeout,
            command_timeout: self.command_timeout,
        })
    }
}

fn credentials(user: String, password: Option<String>) -> anyhow::Result<Credentials> {
    if let Some((name, inline)) = user.split_once(':') {
        return Ok(Credentials {
            user: name.to_string(),
            password: inline.to_string(),
        });
    }
    let password = match password {
        Some(password) => password,
        None if std::io::stdin().is_terminal() => {
            rpassword::prompt_password(format!("Password for {user}: "))
                .context("cannot read the password")?
        }
        None => bail!(
            "no password for user {user:?}: give --password, ETCDCTL_PASSWORD or --user {user}:PASSWORD"
        ),
    };
    Ok(Credentials { user, password })
}

/// Fails early, naming the file, when a TLS file the user pointed at is missing.
pub fn check_files_exist(options: &ConnectOptions) -> anyhow::Result<()> {
    let files = [
        ("--cacert", &options.tls.ca),
        ("--cert", &options.tls.cert),
        ("--key", &options.tls.key),
    ];
    for (flag, path) in files {
        if let Some(path) = path.as_deref().filter(|p| !Path::exists(p)) {
            bail!(
                "{flag} {} does not exist; check the path (kubeadm keeps etcd's under /etc/kubernetes/pki/etcd, k3s and RKE2 under /var/lib/rancher/<k3s|rke2>/server/tls/etcd)",
                path.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(args: &[&str]) -> ConnectOptions {
        EtcdFlags::from_args(args.iter().map(Into::into).collect())
            .unwrap()
            .resolve()
            .unwrap()
    }

    #[test]
    fn distributions_give_their_endpoint_and_client_certificate() {
        for (flag, dir) in [("--k3s", K3S_ETCD_TLS), ("--rke2", RKE2_ETCD_TLS)] {
            let options = resolved(&[flag]);
            assert_eq!(options.endpoints, [LOOPBACK_ENDPOINT]);
            assert_eq!(options.tls.ca, Some(Path::new(dir).join("server-ca.crt")));
            assert_eq!(options.tls.cert, Some(Path::new(dir).join("client.crt")));
            assert_eq!(options.tls.key, Some(Path::new(dir).join("client.key")));
        }
        let options = resolved(&["--kubeadm", "--cert", "/mine.crt"]);
        assert_eq!(options.tls.cert, Some(PathBuf::from("/mine.crt")));
        assert_eq!(
            options.tls.key,
            Some(PathBuf::from("/etc/kubernetes/pki/etcd/healthcheck-client.key"))
        );
        assert!(EtcdFlags::from_args(vec!["--k3s".into(), "--kubeadm".into()]).is_err());
    }
}
