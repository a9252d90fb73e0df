//! What a run asks of the machine beyond the node's files: whether the control plane still runs,
//! a snapshot of the running member, whether the restored etcd and the API server answer, file
//! owners, and the failpoints where a test crashes it. [`NodeHost`] is the real machine; tests
//! stand in for it to run the step machine on a temporary tree without root, etcd or a kubelet.

use super::*;

/// A future a [`Host`] returns.
pub type HostFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a run asks of the machine.
pub trait Host: Send + Sync {
    /// What of the stopped control plane (`node` under `root`) still runs: every reason found,
    /// `None` when nothing does.
    fn still_running(&self, root: &Path, node: &Node) -> Option<String>;
    /// Saves a snapshot of the member `connect` reaches into `path`; its revision.
    fn save_snapshot<'a>(
        &'a self,
        connect: &'a ConnectOptions,
        path: &'a Path,
        cancel: &'a Cancel,
    ) -> HostFuture<'a, Result<i64>>;
    /// The revision the member `connect` reaches serves at, or why it does not answer.
    fn etcd_revision<'a>(&'a self, connect: &'a ConnectOptions) -> HostFuture<'a, Result<i64, String>>;
    /// Whether the API server's `/readyz` at `url` answers ready, trusting `ca`.
    fn apiserver_ready<'a>(&'a self, url: &'a str, ca: &'a Path) -> HostFuture<'a, bool>;
    /// Gives `path` and everything under it to `user`:`group`.
    fn chown_tree(&self, path: &Path, user: u32, group: u32) -> Result<()>;
    /// The run reached `action` of `step` (`begin` and `worked` around every step, and every
    /// change to the node between): a crash may fall here, and tests make one.
    fn reached(&self, step: Step, action: &str) -> Result<()>;
}

/// The real machine. `failpoint` (`recover:STEP:ACTION`) makes the process kill itself
/// (SIGKILL) when the run reaches it, as etcd's gofail failpoints do.
#[derive(Debug, Clone, Default)]
pub struct NodeHost {
    pub failpoint: Option<String>,
}

impl Host for NodeHost {
    fn still_running(&self, root: &Path, node: &Node) -> Option<String> {
        still_running(root, node)
    }

    fn save_snapshot<'a>(
        &'a self,
        connect: &'a ConnectOptions,
        path: &'a Path,
        cancel: &'a Cancel,
    ) -> HostFuture<'a, Result<i64>> {
        Box::pin(async move {
            let save = lifeboat_core::snapshot_save::SaveOptions {
                connect: connect.clone(),
                path: path.to_path_buf(),
                force: true,
            };
            let report =
                lifeboat_core::snapshot_save::save(&save, &lifeboat_core::NoProgress, cancel).await?;
            Ok(report.revision)
        })
    }

    fn etcd_revision<'a>(&'a self, connect: &'a ConnectOptions) -> HostFuture<'a, Result<i64, String>> {
        Box::pin(async move {
            match lifeboat_etcd_conn::connect(connect, &connect.endpoints[0]).await {
                Ok(member) => Ok(member.status().revision),
                Err(error) => Err(error.to_string()),
            }
        })
    }

    fn apiserver_ready<'a>(&'a self, url: &'a str, ca: &'a Path) -> HostFuture<'a, bool> {
        Box::pin(lifeboat_core::readyz::ready(url, ca))
    }

    fn chown_tree(&self, path: &Path, user: u32, group: u32) -> Result<()> {
        chown_tree(path, user, group)
    }

    fn reached(&self, step: Step, action: &str) -> Result<()> {
        if self.failpoint.as_deref() == Some(&format!("recover:{}:{action}", step.name())) {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        Ok(())
    }
}

fn chown_tree(path: &Path, user: u32, group: u32) -> Result<()> {
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(user)),
        Some(nix::unistd::Gid::from_raw(group)),
    )
    .map_err(|e| io("chown", path)(std::io::Error::from(e)))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io("read", path))?.flatten() {
            chown_tree(&entry.path(), user, group)?;
        }
    }
    Ok(())
}

/// What of the stopped control plane still runs: every reason found, `None` when nothing does.
fn still_running(root: &Path, node: &Node) -> Option<String> {
    let etcd = &node.etcd;
    let apiserver_port = node
        .apiserver
        .as_ref()
        .and_then(|(_, url)| url.rsplit(':').next()?.split('/').next()?.parse::<u16>().ok());
    let mut reasons = Vec::new();
    for port in ports(etcd).into_iter().chain(apiserver_port) {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            reasons.push(format!("port {port} still accepts connections"));
        }
    }
    let data_dirs = [etcd.data_dir.clone(), under(root, &etcd.host_data_dir)];
    if let Some(pid) = process_on(&data_dirs) {
        reasons.push(format!("process {pid} still uses the data directory"));
    }
    reasons.extend(
        ["etcd", "kube-apiserver"]
            .into_iter()
            .filter(|container| crictl_lists(root, container))
            .map(|container| format!("crictl still lists the {container} container")),
    );
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Whether crictl lists a running `container` (by its Kubernetes container name). Without crictl
/// or a runtime it reaches, the port and `/proc` checks stand alone. Under another root, only
/// that tree's own containerd socket can say what runs there.
fn crictl_lists(root: &Path, container: &str) -> bool {
    let mut crictl = std::process::Command::new("crictl");
    if root != Path::new("/") {
        let socket = under(root, Path::new("/run/containerd/containerd.sock"));
        if !socket.exists() {
            return false;
        }
        crictl
            .arg("--runtime-endpoint")
            .arg(format!("unix://{}", socket.display()));
    }
    crictl
        .args([
            "ps",
            "-q",
            "--label",
            &format!("io.kubernetes.container.name={container}"),
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success() && !output.stdout.trim_ascii().is_empty())
}

/// A process (other than this one) that runs etcd on one of `data_dirs`, or holds a file there.
fn process_on(data_dirs: &[PathBuf]) -> Option<u32> {
    let me = std::process::id();
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_etcd = args
            .first()
            .is_some_and(|a| a.rsplit('/').next().is_some_and(|n| n.starts_with("etcd")));
        let on_dir = |text: &str| data_dirs.iter().any(|d| Path::new(text).starts_with(d));
        if is_etcd
            && args
                .iter()
                .any(|a| a.strip_prefix("--data-dir=").is_some_and(on_dir) || on_dir(a))
        {
            return Some(pid);
        }
        if let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) {
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path())
                    && data_dirs.iter().any(|d| target.starts_with(d))
                {
                    return Some(pid);
                }
            }
        }
    }
    None
}
