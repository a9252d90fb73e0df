//! etcdctl's connection flags and `ETCDCTL_*` variables, plus `--kubeadm`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use lifeboat_etcd_conn::{ConnectOptions, Credentials, TlsFiles};

/// Where kubeadm keeps etcd's PKI.
const KUBEADM_PKI_DIR: &str = "/etc/kubernetes/pki";
/// Where a kubeadm control-plane node's etcd listens for clients.
const KUBEADM_ENDPOINT: &str = "https://127.0.0.1:2379";
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
    #[arg(long)]
    kubeadm: bool,
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

    /// Whether an endpoint was asked for (a flag, a variable or `--kubeadm`), not just defaulted.
    pub fn given(&self) -> bool {
        self.endpoints.is_some() || self.kubeadm
    }

    /// Resolves flags, variables and kubeadm defaults into connection options.
    pub fn resolve(self) -> anyhow::Result<ConnectOptions> {
        let etcd_pki = self.kubeadm_pki_dir.join("etcd");
        let kubeadm_file = |name: &str| self.kubeadm.then(|| etcd_pki.join(name));
        let endpoints = match self.endpoints {
            Some(list) => list
                .into_iter()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect(),
            None if self.kubeadm => vec![KUBEADM_ENDPOINT.to_string()],
            None => vec![DEFAULT_ENDPOINT.to_string()],
        };
        if endpoints.is_empty() {
            bail!("--endpoints is empty; give at least one host:port");
        }
        let tls = TlsFiles {
            ca: self.cacert.or_else(|| kubeadm_file("ca.crt")),
            cert: self.cert.or_else(|| kubeadm_file("healthcheck-client.crt")),
            key: self.key.or_else(|| kubeadm_file("healthcheck-client.key")),
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
                "{flag} {} does not exist; check the path (kubeadm keeps etcd's under /etc/kubernetes/pki/etcd)",
                path.display()
            );
        }
    }
    Ok(())
}
