//! One etcd member process: its flags, its start, its readiness and its end.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_etcd_conn::{ConnectOptions, Member, TlsFiles};

use crate::{Error, EtcdBinary, Result};

/// A port nobody listens on right now on 127.0.0.1 (the caller copes with losing a race for it).
pub fn free_port() -> Result<u16> {
    let io = |source| Error::Io {
        action: "find a free port on",
        path: "127.0.0.1".into(),
        source,
    };
    // The kernel may hand a released port out again at once: a process never gives one port
    // to two callers (two members of one cluster got the same one).
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut last = 0;
    for _ in 0..64 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(io)?;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded for a long-lived agent: ports given long ago are long taken or free again.
        if given.len() >= 4096 {
            given.clear();
        }
        if given.insert(port) {
            return Ok(port);
        }
        last = port;
    }
    Ok(last)
}

/// etcd reads every `ETCD_*` variable as a flag (and 3.5 aborts on a clash), etcdctl every
/// `ETCDCTL_*`: whatever the caller's environment holds must not reach what we start.
pub fn clear_etcd_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("ETCD_") || key_text.starts_with("ETCDCTL_") {
            command.env_remove(&key);
        }
    }
}

/// Server certificate files for client TLS with client-certificate authentication.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub trusted_ca: PathBuf,
    /// What a client presents to reach it (for the readiness check).
    pub client: TlsFiles,
}

/// The flags that bootstrap a new cluster (absent: the data directory has its membership).
#[derive(Debug, Clone)]
pub struct InitialCluster {
    /// `name=url,...`
    pub members: String,
    pub token: String,
}

/// Everything one member needs on its command line.
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: EtcdBinary,
    pub name: String,
    pub data_dir: PathBuf,
    pub client_url: String,
    pub peer_url: String,
    pub initial: Option<InitialCluster>,
    pub tls: Option<ServerTls>,
    /// Where its output goes (kept for errors).
    pub log: PathBuf,
    /// Heartbeat and election timeouts for members that only talk over loopback (10x shorter
    /// than etcd's defaults), so a throwaway cluster elects its leader in tens of milliseconds
    /// instead of up to two seconds.
    pub loopback_timing: bool,
    /// Killed by the kernel when the thread that started it ends (the process dying, even by
    /// SIGKILL or the OOM killer): for members nobody else must find running afterwards.
    pub die_with_parent: bool,
    /// `--quota-backend-bytes` (`None`: etcd's default, 2 GiB): above it etcd refuses writes.
    pub quota_bytes: Option<u64>,
}

/// A running etcd member; killed and reaped when dropped.
#[derive(Debug)]
pub struct EtcdProcess {
    child: Option<Child>,
    launch: Launch,
}

/// How long a member may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl EtcdProcess {
    /// Starts the member; it is not ready until [`EtcdProcess::wait_ready`] says so.
    pub fn spawn(launch: Launch) -> Result<Self> {
        let mut command = Command::new(&launch.binary.path);
        clear_etcd_env(&mut command);
        let (name, client_url, peer_url) = (&launch.name, &launch.client_url, &launch.peer_url);
        command
            .arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", launch.data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-level=warn");
        if launch.loopback_timing {
            command
                .arg("--heartbeat-interval=10")
                .arg("--election-timeout=100");
        }
        if let Some(quota) = launch.quota_bytes {
            command.arg(format!("--quota-backend-bytes={quota}"));
        }
        if let Some(initial) = &launch.initial {
            command
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster={}", initial.members))
                .arg(format!("--initial-cluster-token={}", initial.token))
                .arg("--initial-cluster-state=new");
        }
        if let Some(tls) = &launch.tls {
            command
                .arg(format!("--cert-file={}", tls.cert.display()))
                .arg(format!("--key-file={}", tls.key.display()))
                .arg(format!("--trusted-ca-file={}", tls.trusted_ca.display()))
                .arg("--client-cert-auth");
        }
        let io = |action, source| Error::Io {
            action,
            path: launch.log.clone(),
            source,
        };
        let log = std::fs::File::create(&launch.log).map_err(|e| io("create", e))?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| io("open", e))?)
            .stderr(log);
        if launch.die_with_parent {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches only the child being started.
            #[allow(unsafe_code)]
            unsafe {
                command.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let child = command.spawn().map_err(|source| Error::Spawn {
            path: launch.binary.path.clone(),
            source,
        })?;
        Ok(Self {
            child: Some(child),
            launch,
        })
    }

    /// The client URL, `http(s)://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.launch.client_url
    }

    /// The member's name.
    pub fn name(&self) -> &str {
        &self.launch.name
    }

    /// The data directory it runs on.
    pub fn data_dir(&self) -> &Path {
        &self.launch.data_dir
    }

    /// The OS process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Connection options that reach this member.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            endpoints: vec![self.launch.client_url.clone()],
            tls: self
                .launch
                .tls
                .as_ref()
                .map(|t| t.client.clone())
                .unwrap_or_default(),
            insecure_skip_tls_verify: false,
            credentials: None,
            dial_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
        }
    }

    /// A connection to this member.
    pub async fn connect(&self) -> Result<Member> {
        Ok(lifeboat_etcd_conn::connect(&self.connect_options(), &self.launch.client_url).await?)
    }

    /// Waits until the member lists itself by name and serves a linearizable read (which needs
    /// a leader and an applied read index). A member of a new cluster that lists other members
    /// is someone else's server, answering on our port.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(Error::Exited {
                    name: self.launch.name.clone(),
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            if let Ok(mut member) = self.connect().await {
                match self.serves(&mut member).await {
                    Some(true) => return Ok(()),
                    Some(false) if self.launch.initial.is_some() => {
                        return Err(Error::PortTaken {
                            url: self.launch.client_url.clone(),
                        });
                    }
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    name: self.launch.name.clone(),
                    timeout,
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `Some(true)` when it is ours and reads linearizably, `Some(false)` when it is someone
    /// else's, `None` when it cannot tell yet.
    async fn serves(&self, member: &mut Member) -> Option<bool> {
        let list = member.client().member_list().await.ok()?;
        if !list.members().iter().any(|m| m.name() == self.launch.name) {
            return Some(false);
        }
        member.count_keys(0).await.ok().map(|_| true)
    }

    /// The last lines of its log, for errors.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.launch.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Asks it to stop (SIGTERM) and waits; kills it when it takes longer than a few seconds.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        terminate(&child);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Leaves the process running when this is dropped (`drill --keep`); returns its PID.
    pub fn detach(mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }
}

fn terminate(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
