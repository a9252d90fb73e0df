//! A real Kubernetes control-plane node on 127.0.0.1: the tree written by the real kubeadm
//! (`init phase certs all`, `kubeconfig all`, `etcd local`, `control-plane apiserver`, run with
//! `--rootfs` into a directory), its etcd and the real kube-apiserver run from their static Pod
//! manifests by the fake kubelet, and kubectl on its admin.conf. The binaries are those
//! `scripts/build-peers` built from `tests/peers/kubernetes`.
//!
//! kubeadm's own flags put etcd and the API server on fixed ports of the advertise address; the
//! kubeadm configuration moves them to free loopback ports (`extraArgs`, as an operator would),
//! and advertises 192.0.2.10 (TEST-NET-1), which nothing listens on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lifeboat_etcd_conn::{ConnectOptions, TlsFiles};

use crate::{EtcdVersion, FakeKubelet, free_port};

/// The Kubernetes release `tests/peers/kubernetes` pins (`v1.36.3`).
pub fn kubernetes_version() -> &'static str {
    include_str!("../../../tests/peers/kubernetes/go.mod")
        .lines()
        .find_map(|line| line.trim().strip_prefix("k8s.io/kubernetes "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("unknown")
}

/// The etcd release kubeadm runs for that Kubernetes (its pinned image is 3.6.x).
pub const KUBEADM_ETCD: EtcdVersion = EtcdVersion::V3_6;

/// A Kubernetes binary built by `scripts/build-peers` (`kubeadm`, `kube-apiserver`, `kubectl`).
pub fn kubernetes_binary(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/lifeboat-tools/kubernetes")
        .join(kubernetes_version())
        .join(name)
}

/// What a node is written with beyond kubeadm's defaults.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// An EncryptionConfiguration for the API server (`--encryption-provider-config`), placed
    /// at /etc/kubernetes/encryption/config.yaml.
    pub encryption_config: Option<String>,
    /// Also the real kube-controller-manager (its namespace controller finishes a namespace's
    /// deletion; its other controllers add objects, so judge-of-content nodes go without it).
    pub controller_manager: bool,
}

/// Where the node is found on loopback.
#[derive(Debug, Clone)]
pub struct NodeEndpoints {
    /// etcd's client URL (TLS, client certificates required).
    pub etcd: String,
    /// The API server's URL.
    pub apiserver: String,
}

/// The node's EncryptionConfiguration path on the node.
pub const ENCRYPTION_CONFIG: &str = "/etc/kubernetes/encryption/config.yaml";

/// Writes a kubeadm control-plane node under `root` with the real kubeadm.
pub fn write_kubeadm_node(root: &Path, options: &NodeOptions) -> anyhow::Result<NodeEndpoints> {
    let (etcd_port, peer_port, metrics_port, api_port) =
        (free_port()?, free_port()?, free_port()?, free_port()?);
    let etcd = format!("https://127.0.0.1:{etcd_port}");
    let peer = format!("https://127.0.0.1:{peer_port}");
    let version = kubernetes_version();
    let arg = |name: &str, value: &str| format!("    - {{name: {name}, value: \"{value}\"}}\n");
    let mut apiserver_args = arg("bind-address", "127.0.0.1") + &arg("etcd-servers", &etcd);
    let mut volumes = String::new();
    if let Some(config) = &options.encryption_config {
        let host = crate::kubelet::under(root, Path::new(ENCRYPTION_CONFIG));
        // The API server's own file holds every key: private, as kubeadm's PKI is.
        std::fs::create_dir_all(host.parent().context("the encryption config has a directory")?)?;
        std::fs::write(&host, config)?;
        std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        apiserver_args += &arg("encryption-provider-config", ENCRYPTION_CONFIG);
        volumes = "  extraVolumes:\n  - {name: encryption, hostPath: /etc/kubernetes/encryption, mountPath: /etc/kubernetes/encryption, readOnly: true, pathType: DirectoryOrCreate}\n".into();
    }
    let etcd_args = [
        arg("listen-client-urls", &etcd),
        arg("advertise-client-urls", &etcd),
        arg("listen-peer-urls", &peer),
        arg("initial-advertise-peer-urls", &peer),
        arg("initial-cluster", &format!("cp-1={peer}")),
        arg("listen-metrics-urls", &format!("http://127.0.0.1:{metrics_port}")),
    ]
    .concat();
    // Its kubeconfig names the advertise address: --master points it at loopback instead.
    let controller_manager_args = [
        arg("secure-port", &free_port()?.to_string()),
        arg("master", &format!("https://127.0.0.1:{api_port}")),
    ]
    .concat();
    let config = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {{advertiseAddress: 192.0.2.10, bindPort: {api_port}}}\nnodeRegistration: {{name: cp-1, criSocket: unix:///var/run/containerd/containerd.sock}}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: {version}\nclusterName: lifeboat-test\ncontrolPlaneEndpoint: 127.0.0.1:{api_port}\napiServer:\n  certSANs: [127.0.0.1]\n  extraArgs:\n{apiserver_args}{volumes}controllerManager:\n  extraArgs:\n{controller_manager_args}etcd:\n  local:\n    extraArgs:\n{etcd_args}"
    );
    // kubeadm reads its config inside the root it chroots into; it is removed afterwards.
    std::fs::create_dir_all(root)?;
    std::fs::write(root.join(KUBEADM_CONFIG), config)?;
    let mut phases = vec![
        &["certs", "all"][..],
        &["kubeconfig", "all"],
        &["etcd", "local"],
        &["control-plane", "apiserver"],
    ];
    if options.controller_manager {
        phases.push(&["control-plane", "controller-manager"]);
    }
    for phase in phases {
        kubeadm_phase(root, phase)?;
    }
    Ok(NodeEndpoints {
        etcd,
        apiserver: format!("https://127.0.0.1:{api_port}"),
    })
}

/// kubeadm's configuration of the node, at the top of its root (kubeadm reads it inside the
/// root it chroots into).
const KUBEADM_CONFIG: &str = "kubeadm-config.yaml";

/// Runs `kubeadm init phase PHASE` on the node under `root`.
fn kubeadm_phase(root: &Path, phase: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(kubernetes_binary("kubeadm"))
        .args(["init", "phase"])
        .args(phase)
        .arg("--rootfs")
        .arg(root)
        .args(["--config", &format!("/{KUBEADM_CONFIG}")])
        .output()
        .context("cannot run kubeadm: run scripts/setup (it builds the Kubernetes peers)")?;
    if !output.status.success() {
        bail!(
            "kubeadm init phase {}: {}",
            phase.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A running kubeadm node: its etcd and real API server under the fake kubelet.
#[derive(Debug)]
pub struct KubeadmNode {
    pub root: PathBuf,
    pub endpoints: NodeEndpoints,
    kubelet: Option<FakeKubelet>,
}

impl KubeadmNode {
    /// Writes the node under `root`, starts its static Pods, waits (up to 120 s) until the API
    /// server is ready, and finishes as `kubeadm init` does: admin.conf's group bound to
    /// cluster-admin (kubeadm does it with super-admin.conf, which names the advertise address,
    /// so here kubectl does it on loopback).
    pub fn start(root: &Path, options: &NodeOptions) -> anyhow::Result<Self> {
        let endpoints = write_kubeadm_node(root, options)?;
        let mut node = Self {
            root: root.to_path_buf(),
            endpoints,
            kubelet: None,
        };
        node.start_pods()?;
        node.wait_ready(Duration::from_secs(120))?;
        let output = Command::new(kubernetes_binary("kubectl"))
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(root.join("etc/kubernetes/super-admin.conf"))
            .args(["--server", &node.endpoints.apiserver])
            .args(["create", "clusterrolebinding", "kubeadm:cluster-admins"])
            .args(["--clusterrole=cluster-admin", "--group=kubeadm:cluster-admins"])
            .output()?;
        if !output.status.success() {
            bail!(
                "binding kubeadm:cluster-admins: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(node)
    }

    /// Waits until `kubectl get --raw /readyz` says ok.
    pub fn wait_ready(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let output = self.kubectl().args(["get", "--raw", "/readyz"]).output()?;
            if output.status.success() && output.stdout.starts_with(b"ok") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.root.join("kube-apiserver.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                bail!(
                    "the API server of {} was not ready within {limit:?}: {}\n{}",
                    self.root.display(),
                    String::from_utf8_lossy(&output.stderr),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The node's admin kubeconfig.
    pub fn admin_conf(&self) -> PathBuf {
        self.root.join("etc/kubernetes/admin.conf")
    }

    /// kubectl on the node's admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(kubernetes_binary("kubectl"));
        command
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(self.admin_conf());
        command
    }

    /// Runs kubectl with `args` (and `stdin` when given); its standard output, or an error with
    /// its standard error.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<String> {
        use std::io::Write;
        let mut command = self.kubectl();
        command
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn()?;
        let mut input = child.stdin.take().context("kubectl's stdin")?;
        if let Some(bytes) = stdin {
            input.write_all(bytes)?;
        }
        drop(input);
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// The etcd client files kubeadm made for health checks (any client of its etcd CA).
    pub fn etcd_tls(&self) -> TlsFiles {
        let pki = self.root.join("etc/kubernetes/pki/etcd");
        TlsFiles {
            ca: Some(pki.join("ca.crt")),
            cert: Some(pki.join("healthcheck-client.crt")),
            key: Some(pki.join("healthcheck-client.key")),
        }
    }

    /// Connection options for the node's etcd.
    pub fn etcd_options(&self) -> ConnectOptions {
        ConnectOptions {
            tls: self.etcd_tls(),
            ..crate::client_options(&self.endpoints.etcd, None, None)
        }
    }

    /// Stops the static Pods and starts them again (the API server reads its files anew), then
    /// waits (up to 120 s) until the API server is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kubelet.take();
        self.start_pods()?;
        self.wait_ready(Duration::from_secs(120))
    }

    /// The fake kubelet, running each static Pod of the node that it finds.
    fn start_pods(&mut self) -> anyhow::Result<()> {
        let components: Vec<(&str, PathBuf)> = ["kube-apiserver", "kube-controller-manager"]
            .into_iter()
            .map(|name| (name, kubernetes_binary(name)))
            .collect();
        self.kubelet = Some(FakeKubelet::start_with_components(
            &self.root,
            &KUBEADM_ETCD.etcd(),
            &components,
            &self.root.join("etcd.log"),
        )?);
        Ok(())
    }

    /// The node's EncryptionConfiguration file (present when the node was written with one).
    pub fn encryption_config(&self) -> PathBuf {
        crate::kubelet::under(&self.root, Path::new(ENCRYPTION_CONFIG))
    }

    /// Stops the static Pods (the node's files stay).
    pub fn stop(&mut self) {
        self.kubelet.take();
    }
}

impl Drop for KubeadmNode {
    fn drop(&mut self) {
        self.stop();
    }
}
