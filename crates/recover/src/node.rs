//! The control-plane node as its files describe it: the kubelet's static Pod directory, the etcd
//! static Pod and the API server's, read from the node or from a files backup.

use super::*;

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
pub(super) fn pod_files(dir: &Path) -> Result<Vec<(String, String)>> {
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

pub(super) const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";

/// Every entry of a files backup, by relative path, in its order (parents first), with the
/// contents of regular files; `None` for a directory.
pub(super) fn archive_entries(tar: &[u8]) -> Result<Vec<(PathBuf, Option<Vec<u8>>)>> {
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
        (Err(Error::Recovery { step: "discover", .. }), Some(tar)) => node_in_files(root, tar),
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

/// The node a files backup (`tar`) describes: its kubelet configuration's (or the node's)
/// static Pod directory, and the static Pods in it.
pub fn node_in_files(root: &Path, tar: &[u8]) -> Result<Node> {
    let config_text = std::fs::read_to_string(under(root, Path::new(KUBELET_CONFIG))).ok();
    let texts: Vec<(PathBuf, String)> = archive_entries(tar)?
        .into_iter()
        .filter_map(|(path, contents)| Some((path, String::from_utf8(contents?).ok()?)))
        .collect();
    let kubelet_config = relative_to_root(Path::new(KUBELET_CONFIG));
    let static_pod_dir = match texts.iter().find(|(path, _)| *path == kubelet_config) {
        Some((_, text)) => static_pod_path(&format!("{KUBELET_CONFIG} in the files backup"), Some(text))?,
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
        Error::Recovery {
            step: "discover",
            message,
        } => failed(
            "preflight",
            format!(
                "{message}, on the node or in the files backup; choose a files backup of a control-plane node"
            ),
        ),
        other => other,
    })?;
    Ok(Node {
        from_files: true,
        ..node
    })
}

/// Refuses a files backup whose static Pods describe another node than the run's (another data
/// directory or static Pod directory), before anything of it is placed. A backup without an
/// etcd static Pod leaves the node's own.
pub fn check_files_node(journal: &Journal, root: &Path, tar: &[u8]) -> Result<()> {
    match node_in_files(root, tar) {
        Ok(described) => journal.check_node(&described).map_err(|_| {
            failed(
                "files",
                format!(
                    "files backup {} runs etcd on {} from static Pods in {}, but this run recovers {} with static Pods in {}; choose a files backup of this node",
                    journal.with_files.as_deref().unwrap_or_default(),
                    described.etcd.host_data_dir.display(),
                    described.static_pod_dir.display(),
                    journal.data_dir.display(),
                    journal.static_pod_dir.display()
                ),
            )
        }),
        Err(_) => Ok(()),
    }
}

/// The node its static Pods describe: `found` holds each file's name and text.
pub(super) fn node_from(static_pod_dir: PathBuf, mut found: Vec<(String, String)>) -> Result<Node> {
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
pub(super) fn apiserver_readyz(text: &str) -> Option<String> {
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
