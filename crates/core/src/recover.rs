//! `recover --kubeadm`: the kubeadm restore runbook as one resumable run (docs/recover.md).
//!
//! Everything is read from the node (under `root`): the kubelet's static Pod directory and the
//! etcd static Pod. Every step is recorded in a journal before the next begins, and each step is
//! safe to run again after a crash in its middle, so a rerun resumes and `abort` rolls back to the
//! node as it was: manifests in place, the old data directory back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use lifeboat_etcd_conn::{ConnectOptions, TlsFiles};
use lifeboat_kubeadm::{EtcdManifest, parse_etcd_manifest, static_pod_path};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::{Cancel, Error, Result};

/// What a step did wrong, as the error of the run.
fn failed(step: &'static str, message: impl Into<String>) -> Error {
    Error::Recovery {
        step,
        message: message.into(),
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { action, path, source }
}

/// `path` (absolute on the node) inside `root`.
pub fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(relative_to_root(path))
}

/// A node path as the files backup names it: relative to `/`.
fn relative_to_root(path: &Path) -> PathBuf {
    path.strip_prefix("/").unwrap_or(path).to_path_buf()
}

/// The control-plane node as its files describe it.
#[derive(Debug, Clone)]
pub struct Node {
    /// The kubelet's static Pod directory (a node path).
    pub static_pod_dir: PathBuf,
    /// The files the kubelet runs from it.
    pub manifests: Vec<String>,
    /// The etcd static Pod's file name and what it says.
    pub etcd_file: String,
    pub etcd: EtcdManifest,
    /// The API server's static Pod file and its `/readyz` URL, when the node runs one.
    pub apiserver: Option<(String, String)>,
    /// Read from the files backup: the node has lost its static Pods.
    pub from_files: bool,
}

/// The static Pod files in `dir` with their text (the kubelet skips names that start with a
/// dot); none when the directory is absent.
fn pod_files(dir: &Path) -> Result<Vec<(String, String)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", dir)(e)),
    };
    Ok(entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .filter_map(|name| {
            let text = std::fs::read_to_string(dir.join(&name)).ok()?;
            Some((name, text))
        })
        .collect())
}

const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";

/// Every entry of a files backup, by relative path, in its order (parents first), with the
/// contents of regular files; `None` for a directory.
fn archive_entries(tar: &[u8]) -> Result<Vec<(PathBuf, Option<Vec<u8>>)>> {
    let unreadable = |e: std::io::Error| failed("files", format!("the files backup cannot be read: {e}"));
    let mut archive = tar::Archive::new(tar);
    let mut found = Vec::new();
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let path = entry.path().map_err(unreadable)?.into_owned();
        let kind = entry.header().entry_type();
        let mut contents = Vec::new();
        if kind.is_file() {
            std::io::Read::read_to_end(&mut entry, &mut contents).map_err(unreadable)?;
        }
        found.push((path, (!kind.is_dir()).then_some(contents)));
    }
    Ok(found)
}

/// Reads the node under `root`. A run in progress has taken manifests out to `aside` (a node
/// path): they are read from there. A node without its etcd static Pod (its /etc/kubernetes
/// lost) is read from `files`, the files backup that the run puts in place.
pub fn discover(root: &Path, aside: Option<&Path>, files: Option<&[u8]>) -> Result<Node> {
    let config_text = std::fs::read_to_string(under(root, Path::new(KUBELET_CONFIG))).ok();
    let static_pod_dir = static_pod_path(KUBELET_CONFIG, config_text.as_deref())?;
    let mut found = pod_files(&under(root, &static_pod_dir))?;
    if let Some(aside) = aside {
        found.extend(pod_files(&under(root, aside))?);
    }
    let on_node = node_from(static_pod_dir, found);
    match (on_node, files) {
        (Err(Error::Recovery { step: "discover", .. }), Some(tar)) => {
            let texts: Vec<(PathBuf, String)> = archive_entries(tar)?
                .into_iter()
                .filter_map(|(path, contents)| Some((path, String::from_utf8(contents?).ok()?)))
                .collect();
            let kubelet_config = relative_to_root(Path::new(KUBELET_CONFIG));
            let static_pod_dir = match texts.iter().find(|(path, _)| *path == kubelet_config) {
                Some((_, text)) => {
                    static_pod_path(&format!("{KUBELET_CONFIG} in the files backup"), Some(text))?
                }
                None => static_pod_path(KUBELET_CONFIG, config_text.as_deref())?,
            };
            let pods = relative_to_root(&static_pod_dir);
            let manifests = texts
                .into_iter()
                .filter(|(path, _)| path.parent() == Some(pods.as_path()))
                .filter_map(|(path, text)| Some((path.file_name()?.to_string_lossy().into_owned(), text)))
                .filter(|(name, _)| !name.starts_with('.'))
                .collect();
            let node = node_from(static_pod_dir, manifests).map_err(|error| match error {
                Error::Recovery { step: "discover", message } => failed(
                    "preflight",
                    format!("{message}, on the node or in the files backup; choose a files backup of a control-plane node"),
                ),
                other => other,
            })?;
            Ok(Node {
                from_files: true,
                ..node
            })
        }
        (
            Err(Error::Recovery {
                step: "discover",
                message,
            }),
            None,
        ) => Err(failed(
            "preflight",
            format!(
                "{message}; run this on a control-plane node with a stacked etcd, give --root, or --with-files to put a files backup's manifests in place"
            ),
        )),
        (result, _) => result,
    }
}

/// The node its static Pods describe: `found` holds each file's name and text.
fn node_from(static_pod_dir: PathBuf, mut found: Vec<(String, String)>) -> Result<Node> {
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.dedup_by(|a, b| a.0 == b.0);
    let manifests: Vec<String> = found.iter().map(|(name, _)| name.clone()).collect();
    let mut etcd = None;
    let mut apiserver = None;
    for (name, text) in &found {
        let origin = static_pod_dir.join(name).display().to_string();
        if text.contains("kube-apiserver") && apiserver.is_none() {
            apiserver = apiserver_readyz(text).map(|url| (name.clone(), url));
        }
        if let Ok(found) = parse_etcd_manifest(&origin, text) {
            if let Some((first, _)) = &etcd {
                // A leftover copy (etcd.yaml.bak) is a second etcd Pod to the kubelet, which
                // runs every file there: which one is the member is not for us to guess.
                return Err(failed(
                    "preflight",
                    format!(
                        "{first} and {name} in {} both define an etcd Pod, and the kubelet runs every file there; move the one that is not the member out of the directory",
                        static_pod_dir.display()
                    ),
                ));
            }
            etcd = Some((name.clone(), found));
        }
    }
    let Some((etcd_file, etcd)) = etcd else {
        return Err(failed(
            "discover",
            format!(
                "no etcd static Pod in {} (the kubelet's staticPodPath)",
                static_pod_dir.display()
            ),
        ));
    };
    Ok(Node {
        static_pod_dir,
        manifests,
        etcd_file,
        etcd,
        apiserver,
        from_files: false,
    })
}

/// The API server's `/readyz` on this node: loopback at its `--secure-port` (6443 by default).
fn apiserver_readyz(text: &str) -> Option<String> {
    let pod: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    let container = pod["spec"]["containers"]
        .as_sequence()?
        .iter()
        .find(|c| c["name"].as_str() == Some("kube-apiserver"))?;
    let tokens = container["command"]
        .as_sequence()
        .into_iter()
        .chain(container["args"].as_sequence())
        .flatten()
        .filter_map(|t| t.as_str());
    let mut port = "6443".to_string();
    let mut next_is_port = false;
    for token in tokens {
        if next_is_port {
            port = token.to_string();
            next_is_port = false;
        } else if let Some(value) = token.strip_prefix("--secure-port=") {
            port = value.to_string();
        } else if token == "--secure-port" {
            next_is_port = true;
        }
    }
    port.parse::<u16>()
        .ok()
        .map(|port| format!("https://127.0.0.1:{port}/readyz"))
}

/// How the run goes.
#[derive(Debug, Clone)]
pub struct RecoverOptions {
    /// The node's `/` (another tree for tests or a mounted disk).
    pub root: PathBuf,
    /// Where the journal, the safety copies and the manifests taken out live (a node path).
    pub journal_dir: PathBuf,
    /// How long the control plane may take to stop once its manifests are gone.
    pub stop_timeout: Duration,
    /// How long the restored etcd may take to answer.
    pub etcd_timeout: Duration,
    /// How long the API server may take to be ready.
    pub apiserver_timeout: Duration,
}

/// The revision bump when nothing says how far the cluster went past the backup (OpenShift's
/// choice): far beyond any resourceVersion a client can have seen.
pub const DEFAULT_BUMP: u64 = 1_000_000_000;

/// The steps, in order; the journal records the ones done. `files` runs only with a files
/// backup to put in place.
const ALL_STEPS: [&str; 8] = [
    "safety-copy",
    "stop",
    "data-aside",
    "files",
    "restore",
    "start-etcd",
    "start-apiserver",
    "start-rest",
];

/// The journal of a run: its parameters and the steps done, rewritten after each step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub run: String,
    /// The backup ID, or the snapshot file.
    pub source: String,
    pub token: String,
    pub bump_revision: u64,
    pub mark_compacted: bool,
    /// The snapshot's revision; the restored member serves at least this plus the bump.
    pub snapshot_revision: i64,
    pub static_pod_dir: PathBuf,
    pub etcd_file: String,
    pub apiserver_file: Option<String>,
    /// Where the manifests wait while the control plane is down (a node path).
    pub manifests_aside: PathBuf,
    pub data_dir: PathBuf,
    pub data_aside: PathBuf,
    /// The files backup put in place first (`--with-files`), by ID.
    #[serde(default)]
    pub with_files: Option<String>,
    /// What the files backup adds to the node (relative to `/`; what it replaces is in
    /// `before-files.tar`), recorded before it is placed: `abort` removes it.
    #[serde(default)]
    pub added_files: Option<Vec<PathBuf>>,
    pub done: Vec<String>,
    pub finished: bool,
}

impl Journal {
    /// The steps of this run, in order.
    pub fn steps(&self) -> Vec<&'static str> {
        ALL_STEPS
            .into_iter()
            .filter(|step| *step != "files" || self.with_files.is_some())
            .collect()
    }

    /// The run's private directory (a node path): safety copies, the manifests taken out.
    pub fn run_dir(&self, options: &RecoverOptions) -> PathBuf {
        options.journal_dir.join(format!("recover-{}", self.run))
    }

    fn path(options: &RecoverOptions) -> PathBuf {
        under(&options.root, &options.journal_dir).join("recover.json")
    }

    /// The run in progress, if any.
    pub fn load(options: &RecoverOptions) -> Result<Option<Journal>> {
        let path = Self::path(options);
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(None);
        };
        let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
            failed(
                "journal",
                format!(
                    "{} cannot be read ({e}); move it away to start afresh, after checking the node by hand",
                    path.display()
                ),
            )
        })?;
        if journal.finished {
            return Ok(None);
        }
        // What the journal names is renamed and removed: it must be what this run would have
        // written, not whatever the file says.
        let mut aside = journal.data_dir.clone().into_os_string();
        aside.push(format!(".before-recover-{}", journal.run));
        let sound = !journal.run.is_empty()
            && journal.run.bytes().all(|b| b.is_ascii_alphanumeric())
            && journal.manifests_aside == journal.run_dir(options).join("manifests")
            && journal.data_aside.as_os_str() == aside
            && journal.added_files.iter().flatten().all(|path| {
                path.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            });
        if !sound {
            return Err(failed(
                "journal",
                format!(
                    "{} names paths a run does not write; check the node by hand and move the journal away",
                    path.display()
                ),
            ));
        }
        Ok(Some(journal))
    }

    /// Refuses a journal whose data directory or static Pod directory is not this node's.
    pub fn check_node(&self, node: &Node) -> Result<()> {
        if self.data_dir == node.etcd.host_data_dir && self.static_pod_dir == node.static_pod_dir {
            return Ok(());
        }
        Err(failed(
            "journal",
            format!(
                "run {} recorded data directory {} and static Pod directory {}, but this node has {} and {}; check the node by hand",
                self.run,
                self.data_dir.display(),
                self.static_pod_dir.display(),
                node.etcd.host_data_dir.display(),
                node.static_pod_dir.display()
            ),
        ))
    }

    /// Written atomically (temporary name, fsync, rename), 0600.
    fn save(&self, options: &RecoverOptions) -> Result<()> {
        let path = Self::path(options);
        let mut pending = crate::fsio::PendingFile::create(&path)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| failed("journal", e.to_string()))?;
        pending.write_all(&bytes)?;
        pending.commit()?;
        Ok(())
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.done.iter().any(|d| d == step)
    }

    fn mark(&mut self, step: &str, options: &RecoverOptions) -> Result<()> {
        if !self.is_done(step) {
            self.done.push(step.to_string());
        }
        self.save(options)
    }
}

/// The initial cluster token every member of one recovery uses, from what is restored: so each
/// node, running the same command, joins the same new cluster and none an old one.
pub fn token_for(source_identity: &str) -> String {
    let digest = sha2::Sha256::digest(source_identity.as_bytes());
    format!("lifeboat-{}", hex::encode(&digest[..8]))
}

/// What a run restores.
#[derive(Debug, Clone)]
pub struct Restoring {
    /// The backup ID or the snapshot file, as the plan shows it.
    pub source: String,
    /// What names the data for the cluster token (the backup ID, the file's sha256 trailer).
    pub identity: String,
    pub snapshot_revision: i64,
    /// Added to the restored revision, which is then marked compacted (0: neither); see
    /// docs/recover.md for its size.
    pub bump_revision: u64,
}

/// A new journal for a run restoring `restoring` on `node`.
pub fn new_journal(
    node: &Node,
    options: &RecoverOptions,
    restoring: &Restoring,
    with_files: Option<String>,
    now: SystemTime,
) -> Journal {
    let run = time::OffsetDateTime::from(now)
        .format(&time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "run".into());
    let data_dir = node.etcd.host_data_dir.clone();
    let mut aside = data_dir.clone().into_os_string();
    aside.push(format!(".before-recover-{run}"));
    Journal {
        token: token_for(&restoring.identity),
        source: restoring.source.clone(),
        bump_revision: restoring.bump_revision,
        mark_compacted: restoring.bump_revision > 0,
        snapshot_revision: restoring.snapshot_revision,
        static_pod_dir: node.static_pod_dir.clone(),
        etcd_file: node.etcd_file.clone(),
        apiserver_file: node.apiserver.as_ref().map(|(file, _)| file.clone()),
        manifests_aside: options
            .journal_dir
            .join(format!("recover-{run}"))
            .join("manifests"),
        data_dir,
        data_aside: PathBuf::from(aside),
        with_files,
        added_files: None,
        done: Vec::new(),
        finished: false,
        run,
    }
}

/// The numbered steps, with every path, URL and flag they use.
pub fn plan(node: &Node, journal: &Journal, options: &RecoverOptions) -> Vec<String> {
    let etcd = &node.etcd;
    let initial: Vec<String> = etcd
        .initial_cluster
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url))
        .collect();
    let owner = match (etcd.run_as_user, etcd.run_as_group) {
        (Some(user), group) => format!("owner {user}:{}", group.unwrap_or(user)),
        (None, _) => "owner root".to_string(),
    };
    let bump = match journal.bump_revision {
        0 => "no revision bump (--no-bump)".to_string(),
        n => format!(
            "--bump-revision {n}{}",
            if journal.mark_compacted {
                " --mark-compacted"
            } else {
                ""
            }
        ),
    };
    let others: Vec<&str> = node
        .manifests
        .iter()
        .map(String::as_str)
        .filter(|m| *m != journal.etcd_file && Some(*m) != journal.apiserver_file.as_deref())
        .collect();
    let manifests_out = match node.from_files {
        true => format!(
            "no static Pod manifests to move from {} (the node has lost them)",
            journal.static_pod_dir.display()
        ),
        false => format!(
            "move the {} static Pod manifests ({}) from {} to {}",
            node.manifests.len(),
            node.manifests.join(", "),
            journal.static_pod_dir.display(),
            journal.manifests_aside.display()
        ),
    };
    let mut steps = vec![
        format!(
            "safety copy: if etcd answers at {}, save a snapshot of it to {}",
            client_url(etcd),
            journal.run_dir(options).join("pre-recover.db").display()
        ),
        format!(
            "stop: {manifests_out}, then wait up to {} s until etcd and the API server are gone (crictl when present, the ports {}, no process on {})",
            options.stop_timeout.as_secs(),
            ports(etcd)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            journal.data_dir.display()
        ),
        format!(
            "move the data directory {} aside to {} (never deleted)",
            journal.data_dir.display(),
            journal.data_aside.display()
        ),
    ];
    if let Some(files) = &journal.with_files {
        steps.push(format!(
            "put the files of backup {files} in place under {} (PKI, kubeconfigs, kubelet configuration; its static Pod manifests go where the ones taken out wait), all or nothing: the current ones are saved to {} first",
            options.root.display(),
            journal.run_dir(options).join("before-files.tar").display()
        ));
    }
    steps.extend([
        format!(
            "restore {} (revision {}) into {}: member {}, --initial-cluster {}, --initial-advertise-peer-urls {}, --initial-cluster-token {}, {bump}, {owner}, mode 0700",
            journal.source,
            journal.snapshot_revision,
            journal.data_dir.display(),
            etcd.name,
            initial.join(","),
            etcd.initial_advertise_peer_urls.join(","),
            journal.token,
        ),
        format!(
            "start etcd: put {} back, wait up to {} s for {} to answer at revision {} or later",
            journal.etcd_file,
            options.etcd_timeout.as_secs(),
            client_url(etcd),
            expected_revision(journal)
        ),
    ]);
    steps.push(match (&journal.apiserver_file, &node.apiserver) {
        (Some(file), Some((_, url))) => format!(
            "start the API server: put {file} back, wait up to {} s for {url}",
            options.apiserver_timeout.as_secs()
        ),
        _ => "start the API server: this node has no kube-apiserver static Pod".to_string(),
    });
    steps.push(match others.is_empty() {
        true => "put the other manifests back: none".to_string(),
        false => format!("put the other manifests back: {}", others.join(", ")),
    });
    steps
}

fn expected_revision(journal: &Journal) -> i64 {
    journal
        .snapshot_revision
        .max(1)
        .saturating_add(i64::try_from(journal.bump_revision).unwrap_or(i64::MAX))
}

/// The URL the restored member is asked at: its loopback client URL if it has one.
fn client_url(etcd: &EtcdManifest) -> String {
    etcd.listen_client_urls
        .iter()
        .chain(&etcd.advertise_client_urls)
        .find(|u| u.contains("127.0.0.1") || u.contains("[::1]") || u.contains("localhost"))
        .or_else(|| etcd.advertise_client_urls.first())
        .cloned()
        .unwrap_or_else(|| "https://127.0.0.1:2379".into())
}

/// The ports etcd listens on (clients and peers).
fn ports(etcd: &EtcdManifest) -> Vec<u16> {
    let mut found: Vec<u16> = etcd
        .listen_client_urls
        .iter()
        .chain(&etcd.initial_advertise_peer_urls)
        .cloned()
        .chain(etcd.flags.get("listen-peer-urls").cloned())
        .flat_map(|list| list.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter_map(|url| {
            url.rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse().ok())
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// How to reach the restored member: over mTLS with kubeadm's health-check client certificate
/// when its URL is https.
pub fn member_connection(root: &Path, etcd: &EtcdManifest) -> ConnectOptions {
    let url = client_url(etcd);
    let pki = etcd
        .trusted_ca_file
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/etc/kubernetes/pki/etcd"));
    let tls = match url.starts_with("https") {
        true => TlsFiles {
            ca: etcd.trusted_ca_file.as_deref().map(|p| under(root, p)),
            cert: Some(under(root, &pki.join("healthcheck-client.crt"))),
            key: Some(under(root, &pki.join("healthcheck-client.key"))),
        },
        false => TlsFiles::default(),
    };
    ConnectOptions {
        endpoints: vec![url],
        tls,
        insecure_skip_tls_verify: false,
        credentials: None,
        dial_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(5),
    }
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

/// Moves `name` between two directories of the node (rename; a copy when they are on
/// different file systems, then the original removed), and syncs both directories.
fn move_file(from_dir: &Path, to_dir: &Path, name: &str) -> Result<()> {
    let (from, to) = (from_dir.join(name), to_dir.join(name));
    if !from.exists() {
        // Moved before a crash: nothing left to do.
        return Ok(());
    }
    std::fs::create_dir_all(to_dir).map_err(io("create", to_dir))?;
    if std::fs::rename(&from, &to).is_err() {
        std::fs::copy(&from, &to).map_err(io("copy", &from))?;
        std::fs::File::open(&to)
            .and_then(|f| f.sync_all())
            .map_err(io("fsync", &to))?;
        std::fs::remove_file(&from).map_err(io("remove", &from))?;
    }
    crate::fsio::sync_dir(to_dir)?;
    crate::fsio::sync_dir(from_dir)?;
    Ok(())
}

/// Every manifest taken out goes back into the static Pod directory.
fn put_back(root: &Path, journal: &Journal, names: &[String]) -> Result<()> {
    let (aside, pods) = (
        under(root, &journal.manifests_aside),
        under(root, &journal.static_pod_dir),
    );
    for name in names {
        move_file(&aside, &pods, name)?;
    }
    Ok(())
}

fn aside_names(root: &Path, journal: &Journal) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(under(root, &journal.manifests_aside))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What the caller hears as the run goes.
pub trait Narrator: Send + Sync {
    /// Step `number` begins.
    fn step(&self, number: usize, text: &str);
    /// Step `number` did its work; the journal does not record it yet.
    fn step_worked(&self, number: usize, text: &str);
    fn note(&self, text: &str);
}

/// How the run ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// etcd and the API server (when the node runs one) are back.
    Recovered,
    /// etcd is recovered; the API server did not become ready in time.
    ApiServerNotReady,
    /// This member is restored and started; its cluster serves once enough of the other members
    /// are restored the same way.
    QuorumPending,
}

/// What restores the snapshot: called with the data directory to create and the restore
/// settings; returns nothing but success (the caller fetches from a repository or a file).
pub type RestoreFn<'a> = Box<
    dyn FnOnce(
            crate::snapshot_restore::RestoreOptions,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>
        + Send
        + 'a,
>;

/// Restores snapshot `file` with `options`, off the async workers: the restore of a `--file` run.
pub async fn restore_file(file: PathBuf, options: crate::snapshot_restore::RestoreOptions) -> Result<()> {
    let options = crate::snapshot_restore::RestoreOptions {
        snapshot: file,
        ..options
    };
    crate::blocking::blocking(move || crate::snapshot_restore::restore(&options).map(|_| ())).await
}

/// Carries out (or resumes) the run of `journal` on `node`.
pub async fn run(
    node: &Node,
    journal: &mut Journal,
    options: &RecoverOptions,
    restore: RestoreFn<'_>,
    files: Option<&[u8]>,
    narrator: &dyn Narrator,
    cancel: &Cancel,
) -> Result<Outcome> {
    let root = options.root.as_path();
    journal.save(options)?;
    let mut restore = Some(restore);
    let mut node = node.clone();
    let node = &mut node;
    for (index, step) in journal.steps().into_iter().enumerate() {
        if journal.is_done(step) {
            narrator.note(&format!("step {} ({step}) was done before; skipped", index + 1));
            continue;
        }
        // Between steps, never inside one: every step must finish once begun.
        if step != "start-apiserver" {
            cancel.check()?;
        }
        narrator.step(index + 1, step);
        match step {
            "safety-copy" => safety_copy(node, journal, options, narrator, cancel).await?,
            "stop" => stop(node, journal, options, narrator).await?,
            "data-aside" => data_aside(journal, root)?,
            "files" => {
                let tar = files.ok_or_else(|| failed("files", "the files backup was not fetched"))?;
                if journal.added_files.is_none() {
                    // Once, before anything is placed: a rerun would find its own additions.
                    journal.added_files = Some(added_files(journal, options, tar)?);
                    journal.save(options)?;
                }
                put_files(journal, options, tar)?;
                // The restore follows the etcd.yaml that came with the files.
                *node = discover(root, Some(&journal.manifests_aside), None)?;
            }
            "restore" => {
                let restore = restore
                    .take()
                    .ok_or_else(|| failed("restore", "the restore ran once already"))?;
                restore_step(node, journal, root, restore).await?;
            }
            "start-etcd" if !start_etcd(node, journal, options, narrator).await? => {
                // Its cluster needs the other members: the rest goes back, nothing more to wait for.
                put_back(root, journal, &aside_names(root, journal))?;
                for step in ["start-etcd", "start-apiserver", "start-rest"] {
                    journal.mark(step, options)?;
                }
                journal.finished = true;
                journal.save(options)?;
                return Ok(Outcome::QuorumPending);
            }
            "start-apiserver" if !start_apiserver(node, journal, options, narrator).await? => {
                // The rest goes back all the same: the node is left as the kubelet expects.
                put_back(root, journal, &aside_names(root, journal))?;
                journal.mark("start-apiserver", options)?;
                journal.mark("start-rest", options)?;
                journal.finished = true;
                journal.save(options)?;
                return Ok(Outcome::ApiServerNotReady);
            }
            "start-rest" => put_back(root, journal, &aside_names(root, journal))?,
            _ => {}
        }
        narrator.step_worked(index + 1, step);
        journal.mark(step, options)?;
    }
    journal.finished = true;
    journal.save(options)?;
    Ok(Outcome::Recovered)
}

async fn safety_copy(
    node: &Node,
    journal: &Journal,
    options: &RecoverOptions,
    narrator: &dyn Narrator,
    cancel: &Cancel,
) -> Result<()> {
    let run_dir = under(&options.root, &journal.run_dir(options));
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&run_dir)
        .map_err(io("create", &run_dir))?;
    let save = crate::snapshot_save::SaveOptions {
        connect: member_connection(&options.root, &node.etcd),
        path: run_dir.join("pre-recover.db"),
        force: true,
    };
    match crate::snapshot_save::save(&save, &crate::NoProgress, cancel).await {
        Ok(report) => narrator.note(&format!(
            "the running member's data is saved in {} (revision {})",
            report.file.display(),
            report.revision
        )),
        Err(Error::Interrupted { signal }) => return Err(Error::Interrupted { signal }),
        Err(error) => narrator.note(&format!("no safety snapshot: etcd does not answer ({error})")),
    }
    if journal.with_files.is_some() {
        // The files the backup's will replace, kept to put back on --abort.
        let current = crate::files::FilesOptions {
            root: options.root.clone(),
            include: crate::files::KUBEADM_SET.iter().map(|p| p.to_string()).collect(),
            exclude: Vec::new(),
        };
        let tar = crate::files::archive(&options.root, &crate::files::collect(&current)?)?;
        let path = run_dir.join("before-files.tar");
        let mut pending = crate::fsio::PendingFile::create(&path)?;
        pending.write_all(&tar)?;
        pending.commit()?;
        narrator.note(&format!(
            "the node's current files are saved in {}",
            path.display()
        ));
    }
    Ok(())
}

/// Puts the files of `tar` in place under the root, all or nothing: unpacked (and so checked)
/// into a staging directory first, then moved; static Pod manifests go to where the ones taken
/// out wait, so the kubelet sees them only when the run puts them back.
fn put_files(journal: &Journal, options: &RecoverOptions, tar: &[u8]) -> Result<()> {
    let root = options.root.as_path();
    let staging = under(root, &journal.run_dir(options)).join("files-staging");
    if staging.exists() {
        // Left by a crash in the middle of this step: unpacked again from the archive.
        std::fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
    }
    crate::files::unpack(tar, &staging)?;
    place(journal, options, &staging, &staging)?;
    std::fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
    Ok(())
}

/// Where an entry of a files backup goes on the node: static Pod manifests to where the ones
/// taken out wait.
fn placed_at(journal: &Journal, options: &RecoverOptions, entry: &Path) -> PathBuf {
    let pods = relative_to_root(&journal.static_pod_dir);
    match (entry.parent(), entry.file_name()) {
        (Some(parent), Some(name)) if parent == pods => {
            under(&options.root, &journal.manifests_aside).join(name)
        }
        _ => options.root.join(entry),
    }
}

/// The entries of `tar` the node does not have (parents before children).
fn added_files(journal: &Journal, options: &RecoverOptions, tar: &[u8]) -> Result<Vec<PathBuf>> {
    Ok(archive_entries(tar)?
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| std::fs::symlink_metadata(placed_at(journal, options, path)).is_err())
        .collect())
}

/// Removes what the files backup added to the node: a manifest among them would start on the
/// next kubelet sync. A directory it added stays if something else is in it now.
fn remove_added_files(journal: &Journal, options: &RecoverOptions) -> Result<()> {
    for path in journal.added_files.iter().flatten().rev() {
        let target = placed_at(journal, options, path);
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() => {
                let _ = std::fs::remove_dir(&target);
            }
            Ok(_) => std::fs::remove_file(&target).map_err(io("remove", &target))?,
            Err(_) => {}
        }
    }
    Ok(())
}

/// Moves every file under `dir` (relative to `staging`) to where it goes on the node.
fn place(journal: &Journal, options: &RecoverOptions, staging: &Path, dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io("read", dir))?.flatten() {
        let path = entry.path();
        let file_type = entry.file_type().map_err(io("read", &path))?;
        if file_type.is_dir() {
            place(journal, options, staging, &path)?;
            continue;
        }
        let target = placed_at(journal, options, path.strip_prefix(staging).unwrap_or(&path));
        if target.exists() && !target.is_dir() {
            std::fs::remove_file(&target).map_err(io("replace", &target))?;
        }
        let target_dir = target.parent().unwrap_or(&options.root);
        move_file(dir, target_dir, &entry.file_name().to_string_lossy())?;
    }
    Ok(())
}

async fn stop(
    node: &Node,
    journal: &Journal,
    options: &RecoverOptions,
    narrator: &dyn Narrator,
) -> Result<()> {
    let root = options.root.as_path();
    let (pods, aside) = (
        under(root, &journal.static_pod_dir),
        under(root, &journal.manifests_aside),
    );
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&aside)
        .map_err(io("create", &aside))?;
    for name in &node.manifests {
        move_file(&pods, &aside, name)?;
    }
    let deadline = Instant::now() + options.stop_timeout;
    let mut told = None;
    loop {
        match still_running(root, node) {
            None => return Ok(()),
            Some(reason) if Instant::now() >= deadline => {
                // Back as it was: the manifests return, and the run can be retried.
                put_back(root, journal, &aside_names(root, journal))?;
                return Err(failed(
                    "stop",
                    format!(
                        "the control plane did not stop within {} s ({reason}); its manifests are back in {}; find what keeps it running and retry",
                        options.stop_timeout.as_secs(),
                        journal.static_pod_dir.display()
                    ),
                ));
            }
            Some(reason) => {
                // Each reason once, not every half second.
                if told.as_ref() != Some(&reason) {
                    narrator.note(&format!("waiting: {reason}"));
                    told = Some(reason);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn data_aside(journal: &Journal, root: &Path) -> Result<()> {
    let (data, aside) = (under(root, &journal.data_dir), under(root, &journal.data_aside));
    if data.exists() && !aside.exists() {
        std::fs::rename(&data, &aside).map_err(io("rename", &data))?;
        if let Some(parent) = data.parent() {
            crate::fsio::sync_dir(parent)?;
        }
    }
    Ok(())
}

async fn restore_step(node: &Node, journal: &Journal, root: &Path, restore: RestoreFn<'_>) -> Result<()> {
    let data = under(root, &journal.data_dir);
    if data.join("member").exists() {
        // Restored and renamed into place before a crash.
        return Ok(());
    }
    if data.exists() {
        // An empty or partial directory left by a crash in the middle: restore refuses a
        // non-empty target, and nothing in it is the old data (that is aside).
        std::fs::remove_dir_all(&data).map_err(io("remove", &data))?;
    }
    let etcd = &node.etcd;
    let options = crate::snapshot_restore::RestoreOptions {
        snapshot: PathBuf::new(),
        data_dir: data.clone(),
        wal_dir: None,
        name: etcd.name.clone(),
        initial_cluster: etcd
            .initial_cluster
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(","),
        initial_cluster_token: journal.token.clone(),
        initial_advertise_peer_urls: etcd.initial_advertise_peer_urls.clone(),
        skip_hash_check: false,
        bump_revision: journal.bump_revision,
        mark_compacted: journal.mark_compacted,
    };
    restore(options).await?;
    if let Some(user) = etcd.run_as_user {
        let group = etcd.run_as_group.unwrap_or(user);
        chown_tree(&data, user, group)?;
    }
    Ok(())
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

/// How long a member of a cluster of several waits to answer before the run concludes that
/// the other members are not restored yet (a member serves only once a quorum is up).
const QUORUM_WAIT: Duration = Duration::from_secs(10);

/// Puts etcd back and waits until it answers at the bumped revision. `false` when a member of a
/// cluster of several does not answer yet: the others still have to be restored.
async fn start_etcd(
    node: &Node,
    journal: &Journal,
    options: &RecoverOptions,
    narrator: &dyn Narrator,
) -> Result<bool> {
    put_back(&options.root, journal, std::slice::from_ref(&journal.etcd_file))?;
    let connect = member_connection(&options.root, &node.etcd);
    let wanted = expected_revision(journal);
    let several = node.etcd.initial_cluster.len() > 1;
    let limit = match several {
        true => options.etcd_timeout.min(QUORUM_WAIT),
        false => options.etcd_timeout,
    };
    let deadline = Instant::now() + limit;
    let mut last = String::from("not asked yet");
    while Instant::now() < deadline {
        match lifeboat_etcd_conn::connect(&connect, &connect.endpoints[0]).await {
            Ok(member) if member.status().revision >= wanted => {
                narrator.note(&format!(
                    "etcd answers at revision {} (restored {} + bump {})",
                    member.status().revision,
                    journal.snapshot_revision,
                    journal.bump_revision
                ));
                return Ok(true);
            }
            Ok(member) => {
                last = format!(
                    "it answers at revision {}, below {wanted}",
                    member.status().revision
                )
            }
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if several {
        narrator.note(&format!(
            "member {} is restored and started; it serves once a quorum of the {} members is restored: run the same command on the others",
            node.etcd.name,
            node.etcd.initial_cluster.len()
        ));
        return Ok(false);
    }
    Err(failed(
        "start-etcd",
        format!(
            "the restored etcd did not answer within {} s ({last}); look at its container log, then rerun to resume or `lifeboat recover --abort` to roll back",
            options.etcd_timeout.as_secs()
        ),
    ))
}

/// Puts the API server back and waits for `/readyz`; `false` when it is not ready in time.
async fn start_apiserver(
    node: &Node,
    journal: &Journal,
    options: &RecoverOptions,
    narrator: &dyn Narrator,
) -> Result<bool> {
    let (Some(file), Some((_, url))) = (&journal.apiserver_file, &node.apiserver) else {
        narrator.note("no kube-apiserver static Pod on this node");
        return Ok(true);
    };
    put_back(&options.root, journal, std::slice::from_ref(file))?;
    let ca = under(&options.root, Path::new("/etc/kubernetes/pki/ca.crt"));
    let deadline = Instant::now() + options.apiserver_timeout;
    while Instant::now() < deadline {
        if crate::readyz::ready(url, &ca).await {
            narrator.note(&format!("{url} is ready"));
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    narrator.note(&format!(
        "{url} was not ready within {} s: etcd is recovered, the API server is not confirmed",
        options.apiserver_timeout.as_secs()
    ));
    Ok(false)
}

/// Rolls the run of `journal` back: the control plane is stopped again (a restored etcd may
/// already run), the restored data directory goes aside, the old one returns, every manifest
/// goes back. Returns what was done, for the caller to show.
pub async fn abort(
    node: Option<&Node>,
    journal: &mut Journal,
    options: &RecoverOptions,
    narrator: &dyn Narrator,
) -> Result<Vec<String>> {
    let root = options.root.as_path();
    let mut done = Vec::new();
    match node {
        Some(node) => stop(node, journal, options, narrator).await?,
        // A node without static Pods: only the files backup's could have started anything.
        None if journal.with_files.is_some() && !journal.is_done("files") => {}
        None => {
            return Err(failed(
                "abort",
                format!(
                    "the node has no etcd static Pod in {} or {}; check the node by hand",
                    journal.static_pod_dir.display(),
                    journal.manifests_aside.display()
                ),
            ));
        }
    }
    let (data, old) = (under(root, &journal.data_dir), under(root, &journal.data_aside));
    if old.exists() {
        if data.exists() {
            let mut restored = data.clone().into_os_string();
            restored.push(format!(".aborted-recover-{}", journal.run));
            let restored = PathBuf::from(restored);
            std::fs::rename(&data, &restored).map_err(io("rename", &data))?;
            done.push(format!(
                "the restored data directory is kept aside as {}",
                restored.display()
            ));
        }
        std::fs::rename(&old, &data).map_err(io("rename", &old))?;
        if let Some(parent) = data.parent() {
            crate::fsio::sync_dir(parent)?;
        }
        done.push(format!("{} is back", journal.data_dir.display()));
    }
    let before = under(root, &journal.run_dir(options)).join("before-files.tar");
    if journal.with_files.is_some()
        && before.exists()
        && (journal.is_done("files") || journal.is_done("data-aside"))
    {
        let tar = std::fs::read(&before).map_err(io("read", &before))?;
        remove_added_files(journal, options)?;
        put_files(journal, options, &tar)?;
        done.push(format!(
            "the node's files are back as they were (from {})",
            before.display()
        ));
    }
    let names = aside_names(root, journal);
    put_back(root, journal, &names)?;
    if !names.is_empty() {
        done.push(format!(
            "{} manifests are back in {}",
            names.len(),
            journal.static_pod_dir.display()
        ));
    }
    journal.finished = true;
    journal.done.push("aborted".into());
    journal.save(options)?;
    Ok(done)
}

/// Only one recovery at a time on a node: an exclusive lock held for the run.
pub fn lock(options: &RecoverOptions) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let dir = under(&options.root, &options.journal_dir);
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .map_err(io("create", &dir))?;
    let path = dir.join("recover.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("open", &path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        failed(
            "preflight",
            format!(
                "another lifeboat recover holds {}; wait for it to end",
                path.display()
            ),
        )
    })
}

/// Free bytes on the file system that holds `path` (or its nearest existing parent).
pub fn free_bytes(path: &Path) -> Result<u64> {
    let mut at = path;
    while !at.exists() {
        at = at.parent().unwrap_or(Path::new("/"));
    }
    let stat = nix::sys::statvfs::statvfs(at).map_err(|e| io("statvfs", at)(std::io::Error::from(e)))?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}
