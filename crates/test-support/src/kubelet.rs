//! A fake kubelet for recovery tests: it watches a node tree's static Pod directory (the kubelet
//! configuration's `staticPodPath` under the root) and runs the static Pods it knows as real
//! processes: etcd, and the Kubernetes components it is given (kube-apiserver,
//! kube-controller-manager), each with its manifest's own command line, every absolute path taken
//! through the Pod's hostPath volumes and placed under the root. When a manifest goes away it
//! stops that process after a random delay of up to 5 s (as the kubelet notices a change only on
//! its next look), and it restarts a process that exits while its manifest is there. Without a
//! real kube-apiserver, its Pod is served by a stand-in: `/readyz` answers 200 over TLS on its
//! `--secure-port`, with its `--tls-cert-file` and `--tls-private-key-file`, while its manifest
//! is there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use lifeboat_kubeadm::static_pod_path;

use crate::{EtcdVersion, free_port};

/// How often the directory is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// `path` (absolute on the node) inside `root`.
pub fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// An etcd member of a kubeadm-like node: its name and its client and peer URLs on loopback.
#[derive(Debug, Clone)]
pub struct StaticMember {
    pub name: String,
    pub client: String,
    pub peer: String,
}

impl StaticMember {
    /// A member on free loopback ports.
    pub fn on_free_ports(name: &str) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.into(),
            client: format!("http://127.0.0.1:{}", free_port()?),
            peer: format!("http://127.0.0.1:{}", free_port()?),
        })
    }

    /// A member on free loopback ports that serves clients over TLS and requires their
    /// certificates, as kubeadm's etcd does.
    pub fn with_mtls(name: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: format!("https://127.0.0.1:{}", free_port()?),
            ..Self::on_free_ports(name)?
        })
    }
}

/// Writes a kubeadm-like control-plane node under `root`: the etcd static Pod of `member` in a
/// cluster of `all` (data in /var/lib/etcd, run as 2000:2001), a kube-scheduler Pod, and with
/// `apiserver` a kube-apiserver Pod that serves `/readyz` with a certificate of the node's CA
/// (`Some(true)`) or never comes up (`Some(false)`).
pub fn write_control_plane_node(
    root: &Path,
    version: EtcdVersion,
    member: &StaticMember,
    all: &[StaticMember],
    apiserver: Option<bool>,
) -> anyhow::Result<()> {
    let pods = root.join("etc/kubernetes/manifests");
    std::fs::create_dir_all(&pods)?;
    let (name, client, peer) = (&member.name, &member.client, &member.peer);
    let initial = all
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer))
        .collect::<Vec<_>>()
        .join(",");
    let tag = version.image_tag();
    // kubeadm's layout and flags: /etc/kubernetes/pki/etcd, client certificates required.
    let tls = match client.starts_with("https:") {
        true => {
            crate::Pki::generate(&root.join("etc/kubernetes/pki"))?;
            "    - --cert-file=/etc/kubernetes/pki/etcd/server.crt\n    - --key-file=/etc/kubernetes/pki/etcd/server.key\n    - --client-cert-auth=true\n    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n"
        }
        false => "",
    };
    std::fs::write(
        pods.join("etcd.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: etcd, namespace: kube-system}}\nspec:\n  containers:\n  - name: etcd\n    image: registry.k8s.io/etcd:{tag}\n    command:\n    - etcd\n    - --name={name}\n    - --data-dir=/var/lib/etcd\n    - --listen-client-urls={client}\n    - --advertise-client-urls={client}\n    - --listen-peer-urls={peer}\n    - --initial-advertise-peer-urls={peer}\n    - --initial-cluster={initial}\n    - --initial-cluster-token=original\n    - --heartbeat-interval=10\n    - --election-timeout=100\n{tls}    securityContext: {{runAsUser: 2000, runAsGroup: 2001}}\n    volumeMounts:\n    - {{mountPath: /var/lib/etcd, name: etcd-data}}\n  volumes:\n  - {{name: etcd-data, hostPath: {{path: /var/lib/etcd}}}}\n"
        ),
    )?;
    std::fs::write(
        pods.join("kube-scheduler.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: kube-scheduler}\nspec:\n  containers:\n  - {name: kube-scheduler, image: registry.k8s.io/kube-scheduler:v1.33.0, command: [kube-scheduler]}\n",
    )?;
    if let Some(serving) = apiserver {
        let tls = match serving {
            true => {
                crate::apiserver_pki(&root.join("etc/kubernetes/pki"))?;
                ", --tls-cert-file=/etc/kubernetes/pki/apiserver.crt, --tls-private-key-file=/etc/kubernetes/pki/apiserver.key"
            }
            false => "",
        };
        std::fs::write(
            pods.join("kube-apiserver.yaml"),
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: kube-apiserver}}\nspec:\n  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.33.0\n    command: [kube-apiserver, --secure-port={}, --etcd-servers={client}{tls}]\n",
                free_port()?
            ),
        )?;
    }
    Ok(())
}

/// The programs the fake kubelet runs for the static Pods it knows.
#[derive(Debug, Clone)]
struct Programs {
    etcd: PathBuf,
    /// Real Kubernetes components by container name (`kube-apiserver`, ...); without a
    /// kube-apiserver among them, the stand-in answers `/readyz`.
    components: Vec<(String, PathBuf)>,
}

#[derive(Debug)]
pub struct FakeKubelet {
    stop: Arc<AtomicBool>,
    pid: Arc<Mutex<Option<u32>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeKubelet {
    /// Starts watching `root` (a node's `/`); etcd's output goes to `log`, and a kube-apiserver
    /// Pod is served by the stand-in.
    pub fn start(root: &Path, etcd_binary: &Path, log: &Path) -> anyhow::Result<Self> {
        Self::run(
            root,
            Programs {
                etcd: etcd_binary.into(),
                components: Vec::new(),
            },
            log,
        )
    }

    /// Starts watching `root`, running the static Pods of `components` (container name and
    /// binary, such as `kube-apiserver`) as those real programs, each one's output in
    /// `<container>.log` beside `log`.
    pub fn start_with_components(
        root: &Path,
        etcd_binary: &Path,
        components: &[(&str, PathBuf)],
        log: &Path,
    ) -> anyhow::Result<Self> {
        let programs = Programs {
            etcd: etcd_binary.into(),
            components: components
                .iter()
                .map(|(name, binary)| (name.to_string(), binary.clone()))
                .collect(),
        };
        Self::run(root, programs, log)
    }

    fn run(root: &Path, programs: Programs, log: &Path) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let pid = Arc::new(Mutex::new(None));
        let (root, log) = (root.to_path_buf(), log.to_path_buf());
        let (stopping, shown) = (stop.clone(), pid.clone());
        let thread = std::thread::Builder::new()
            .name("fake-kubelet".into())
            .spawn(move || watch(&root, &programs, &log, &stopping, &shown))
            .context("cannot start the fake kubelet")?;
        Ok(Self {
            stop,
            pid,
            thread: Some(thread),
        })
    }

    /// The running etcd's process ID.
    pub fn etcd_pid(&self) -> Option<u32> {
        *self.pid.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The API server static Pod in `manifests`: (port, certificate, key) under the root.
fn apiserver_of(root: &Path, manifests: &Path) -> Option<(u16, PathBuf, PathBuf)> {
    for entry in std::fs::read_dir(manifests).ok()?.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let Ok(pod) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
            continue;
        };
        let containers = pod["spec"]["containers"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        let Some(container) = containers
            .iter()
            .find(|c| c["name"].as_str() == Some("kube-apiserver"))
        else {
            continue;
        };
        let flag = |name: &str| {
            container["command"]
                .as_sequence()?
                .iter()
                .filter_map(|t| t.as_str())
                .find_map(|t| t.strip_prefix(&format!("--{name}=")).map(str::to_string))
        };
        let port = flag("secure-port").and_then(|p| p.parse().ok()).unwrap_or(6443);
        let cert = under(root, Path::new(&flag("tls-cert-file")?));
        let key = under(root, Path::new(&flag("tls-private-key-file")?));
        return Some((port, cert, key));
    }
    None
}

/// A fake API server: `/readyz` (anything, in fact) answers 200 over TLS until `stop`.
fn serve_apiserver(port: u16, cert: &Path, key: &Path, stop: &AtomicBool) -> anyhow::Result<()> {
    use rustls_pki_types::pem::PemObject;
    use std::io::{Read, Write};
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)?;
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((tcp, _)) => {
                tcp.set_nonblocking(false)?;
                tcp.set_read_timeout(Some(Duration::from_secs(2)))?;
                let connection = rustls::ServerConnection::new(config.clone())?;
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                let mut request = [0u8; 1024];
                if tls.read(&mut request).is_ok() {
                    let _ =
                        tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                    let _ = tls.flush();
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(LOOK_EVERY),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// The fake API server's thread and its stop flag.
type Served = (Arc<AtomicBool>, JoinHandle<()>);

fn stop_apiserver(served: &mut Option<Served>) {
    if let Some((stop, thread)) = served.take() {
        stop.store(true, Ordering::SeqCst);
        let _ = thread.join();
    }
}

fn stop_child(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One static Pod run as a process: started while its manifest is there (and restarted when it
/// exits), stopped a random while after its manifest goes, as the kubelet notices only on its
/// next look.
struct PodProcess {
    log: PathBuf,
    child: Option<Child>,
    gone_since: Option<Instant>,
    delay: Duration,
}

impl PodProcess {
    fn new(log: PathBuf) -> Self {
        Self {
            log,
            child: None,
            gone_since: None,
            delay: Duration::ZERO,
        }
    }

    /// One look: `command` is the Pod's command line while its manifest is there.
    fn look(&mut self, command: Option<Command>) {
        if let Some(running) = self.child.as_mut()
            && let Ok(Some(_)) = running.try_wait()
        {
            self.child = None;
        }
        match (command, self.child.as_mut()) {
            (Some(mut command), None) => {
                self.gone_since = None;
                let output = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log);
                if let Ok(output) = output
                    && let Ok(stderr) = output.try_clone()
                    && let Ok(started) = command.stdin(Stdio::null()).stdout(output).stderr(stderr).spawn()
                {
                    self.child = Some(started);
                }
            }
            (None, Some(running)) => {
                let delay = &mut self.delay;
                let since = *self.gone_since.get_or_insert_with(|| {
                    *delay = Duration::from_millis(rand::Rng::gen_range(&mut rand::thread_rng(), 0..5000));
                    Instant::now()
                });
                if since.elapsed() >= self.delay {
                    stop_child(running);
                    self.child = None;
                }
            }
            _ => self.gone_since = None,
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn stop(&mut self) {
        if let Some(mut running) = self.child.take() {
            stop_child(&mut running);
        }
    }
}

/// The command line of the `container` of a static Pod in `manifests`, run with `binary`: the
/// manifest's command and arguments, each absolute path taken through the Pod's hostPath
/// volumes and placed under `root`.
fn pod_command(root: &Path, manifests: &Path, container: &str, binary: &Path) -> Option<Command> {
    for entry in std::fs::read_dir(manifests).ok()?.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') || !entry.path().is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let Ok(pod) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
            continue;
        };
        let spec = &pod["spec"];
        let Some(found) = spec["containers"]
            .as_sequence()
            .and_then(|all| all.iter().find(|c| c["name"].as_str() == Some(container)))
        else {
            continue;
        };
        let strings = |value: &serde_yaml_ng::Value| -> Vec<String> {
            value
                .as_sequence()
                .map(|s| s.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        // mountPath -> hostPath, longest first.
        let mut mounts: Vec<(String, String)> = found["volumeMounts"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|mount| {
                let name = mount["name"].as_str()?;
                let volume = spec["volumes"]
                    .as_sequence()?
                    .iter()
                    .find(|v| v["name"].as_str() == Some(name))?;
                Some((
                    mount["mountPath"].as_str()?.to_string(),
                    volume["hostPath"]["path"].as_str()?.to_string(),
                ))
            })
            .collect();
        mounts.sort_by_key(|(mount, _)| std::cmp::Reverse(mount.len()));
        let host_path = |path: &str| {
            let on_host = mounts
                .iter()
                .find_map(|(mount, host)| {
                    let rest = path.strip_prefix(mount.as_str())?;
                    (rest.is_empty() || rest.starts_with('/')).then(|| format!("{host}{rest}"))
                })
                .unwrap_or_else(|| path.to_string());
            under(root, Path::new(&on_host)).display().to_string()
        };
        let mut words = strings(&found["command"]);
        words.extend(strings(&found["args"]));
        let mut command = Command::new(binary);
        crate::clear_etcd_env(&mut command);
        for word in words.iter().skip(1) {
            match word.split_once('=') {
                Some((flag, value)) if value.starts_with('/') => {
                    command.arg(format!("{flag}={}", host_path(value)));
                }
                _ => {
                    command.arg(word);
                }
            }
        }
        return Some(command);
    }
    None
}

fn watch(root: &Path, programs: &Programs, log: &Path, stop: &AtomicBool, shown: &Mutex<Option<u32>>) {
    let mut etcd = PodProcess::new(log.to_path_buf());
    let mut components: Vec<(&str, &Path, PodProcess)> = programs
        .components
        .iter()
        .map(|(name, binary)| {
            let output = log.with_file_name(format!("{name}.log"));
            (name.as_str(), binary.as_path(), PodProcess::new(output))
        })
        .collect();
    let stand_in = !components.iter().any(|(name, _, _)| *name == "kube-apiserver");
    let mut apiserver: Option<Served> = None;
    let set_pid = |pid: Option<u32>| *shown.lock().unwrap_or_else(|p| p.into_inner()) = pid;
    while !stop.load(Ordering::SeqCst) {
        let kubelet_config = std::fs::read_to_string(root.join("var/lib/kubelet/config.yaml")).ok();
        let manifests = static_pod_path("kubelet config", kubelet_config.as_deref())
            .map(|p| under(root, &p))
            .unwrap_or_else(|_| root.join("etc/kubernetes/manifests"));
        for (name, binary, process) in &mut components {
            process.look(pod_command(root, &manifests, name, binary));
        }
        if stand_in {
            match (apiserver_of(root, &manifests), apiserver.is_some()) {
                (Some((port, cert, key)), false) => {
                    let stop = Arc::new(AtomicBool::new(false));
                    let flag = stop.clone();
                    let thread = std::thread::spawn(move || {
                        let _ = serve_apiserver(port, &cert, &key, &flag);
                    });
                    apiserver = Some((stop, thread));
                }
                (None, true) => stop_apiserver(&mut apiserver),
                _ => {}
            }
        }
        etcd.look(pod_command(root, &manifests, "etcd", &programs.etcd));
        set_pid(etcd.pid());
        std::thread::sleep(LOOK_EVERY);
    }
    for (_, _, process) in &mut components {
        process.stop();
    }
    etcd.stop();
    stop_apiserver(&mut apiserver);
    set_pid(None);
}
