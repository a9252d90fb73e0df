//! What a kubeadm control-plane node says about its etcd, read from the files kubeadm and the
//! kubelet keep: the kubelet's `staticPodPath` (`/var/lib/kubelet/config.yaml`) and the etcd
//! static Pod (`etcd.yaml`): the member's name, data directory and the host path behind it, the
//! initial cluster, its URLs and certificates, the image's etcd version and the user it runs as.
//!
//! kubeadm writes every etcd setting as a `--flag=value` entry of the container's `command`;
//! operators also write `--flag value` and use `args`. Both are read, and a flag given twice takes
//! its last value, as etcd's flag parser does. Pure and synchronous: callers read the files.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// Where the kubelet reads static Pods when its configuration does not say.
pub const DEFAULT_STATIC_POD_PATH: &str = "/etc/kubernetes/manifests";
/// etcd's own default data directory (kubeadm's too).
const DEFAULT_DATA_DIR: &str = "/var/lib/etcd";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{origin} is not valid YAML: {message}")]
    Yaml { origin: String, message: String },
    #[error(
        "{origin} is not a Pod with a container named etcd; give the etcd static Pod manifest (kubeadm writes it as etcd.yaml)"
    )]
    NoEtcdContainer { origin: String },
    #[error(
        "{origin}: the etcd container has no {flag}; a kubeadm member always has it, so check the manifest"
    )]
    MissingFlag { origin: String, flag: &'static str },
    #[error("{origin}: {flag}={value:?} is not valid: {reason}")]
    BadFlag {
        origin: String,
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "{origin}: no hostPath volume of the etcd container holds its data directory {data_dir}; the restored data would not reach etcd"
    )]
    DataDirNotOnHost { origin: String, data_dir: String },
    #[error("{origin}: staticPodPath {path:?} is not an absolute path")]
    StaticPodPath { origin: String, path: String },
}

pub type Result<T> = std::result::Result<T, Error>;

fn yaml_error(origin: &str, error: serde_yaml_ng::Error) -> Error {
    // One line: a location in the file, never its content.
    Error::Yaml {
        origin: origin.to_string(),
        message: error.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// The directory the kubelet loads static Pods from, as its configuration (`text`, `None` when
/// the file is absent) says, or kubeadm's default.
pub fn static_pod_path(origin: &str, text: Option<&str>) -> Result<PathBuf> {
    #[derive(Deserialize)]
    struct KubeletConfiguration {
        #[serde(rename = "staticPodPath")]
        static_pod_path: Option<String>,
    }
    let configured = match text {
        None => None,
        Some(text) => serde_yaml_ng::from_str::<Option<KubeletConfiguration>>(text)
            .map_err(|e| yaml_error(origin, e))?
            .and_then(|c| c.static_pod_path),
    };
    match configured.filter(|p| !p.is_empty()) {
        None => Ok(PathBuf::from(DEFAULT_STATIC_POD_PATH)),
        Some(path) if Path::new(&path).is_absolute() => Ok(PathBuf::from(path)),
        Some(path) => Err(Error::StaticPodPath {
            origin: origin.to_string(),
            path,
        }),
    }
}

/// One member of `--initial-cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_url: String,
}

/// The etcd static Pod, as far as a restore needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdManifest {
    /// `--name`.
    pub name: String,
    /// `--data-dir` inside the container.
    pub data_dir: PathBuf,
    /// The same directory on the node: the hostPath volume mounted over it.
    pub host_data_dir: PathBuf,
    pub initial_cluster: Vec<InitialMember>,
    /// `--initial-cluster-state` (`existing` for joined members).
    pub initial_cluster_state: Option<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub listen_client_urls: Vec<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    /// The container image, e.g. `registry.k8s.io/etcd:3.5.15-0`.
    pub image: String,
    /// The etcd version the image tag names (`3.5.15`), when it names one.
    pub image_version: Option<String>,
    /// The user and group etcd runs as (kubeadm's rootless control plane), when set.
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    /// Every flag with its last value.
    pub flags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Pod {
    spec: PodSpec,
}

#[derive(Deserialize)]
struct PodSpec {
    #[serde(default)]
    containers: Vec<Container>,
    #[serde(default)]
    volumes: Vec<Volume>,
    #[serde(default, rename = "securityContext")]
    security_context: Option<SecurityContext>,
}

#[derive(Deserialize)]
struct Container {
    name: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default, rename = "volumeMounts")]
    volume_mounts: Vec<VolumeMount>,
    #[serde(default, rename = "securityContext")]
    security_context: Option<SecurityContext>,
}

#[derive(Deserialize, Clone, Copy)]
struct SecurityContext {
    #[serde(default, rename = "runAsUser")]
    run_as_user: Option<u32>,
    #[serde(default, rename = "runAsGroup")]
    run_as_group: Option<u32>,
}

#[derive(Deserialize)]
struct VolumeMount {
    name: String,
    #[serde(rename = "mountPath")]
    mount_path: String,
}

#[derive(Deserialize)]
struct Volume {
    name: String,
    #[serde(default, rename = "hostPath")]
    host_path: Option<HostPath>,
}

#[derive(Deserialize)]
struct HostPath {
    path: String,
}

/// `--flag=value`, `--flag value` and bare `--flag` (true) from a command line; the program
/// name and anything that is not a flag are skipped. A later value replaces an earlier one.
fn flags(tokens: &[String]) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut at = 0;
    while at < tokens.len() {
        let token = &tokens[at];
        at += 1;
        let Some(flag) = token.strip_prefix("--").or_else(|| token.strip_prefix('-')) else {
            continue;
        };
        if flag.is_empty() {
            continue;
        }
        match flag.split_once('=') {
            Some((name, value)) => {
                found.insert(name.to_string(), value.to_string());
            }
            None => {
                let value = match tokens.get(at) {
                    Some(next) if !next.starts_with('-') => {
                        at += 1;
                        next.clone()
                    }
                    _ => "true".to_string(),
                };
                found.insert(flag.to_string(), value);
            }
        }
    }
    found
}

fn list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The etcd version in an image tag: `3.5.15` of `registry.k8s.io/etcd:3.5.15-0` or of
/// `quay.io/coreos/etcd:v3.5.15`; `None` for a digest or a tag without a version.
fn image_version(image: &str) -> Option<String> {
    let without_digest = image.split('@').next().unwrap_or_default();
    let last = without_digest.rsplit('/').next().unwrap_or_default();
    let (_, tag) = last.split_once(':')?;
    let version = tag.trim_start_matches('v');
    let version = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = version.split('.').collect();
    let numeric = parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    numeric.then(|| version.to_string())
}

/// `path` without `.` and `..`, or `None` when it is relative or climbs above the root.
fn normal(path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Reads the etcd static Pod manifest `text` (named `origin` in errors).
pub fn parse_etcd_manifest(origin: &str, text: &str) -> Result<EtcdManifest> {
    let pod: Option<Pod> = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(origin, e))?;
    let no_etcd = || Error::NoEtcdContainer {
        origin: origin.to_string(),
    };
    let pod = pod.ok_or_else(no_etcd)?;
    let container = pod
        .spec
        .containers
        .iter()
        .find(|c| c.name == "etcd")
        .ok_or_else(no_etcd)?;
    let tokens: Vec<String> = container.command.iter().chain(&container.args).cloned().collect();
    let flags = flags(&tokens);
    let name = flags
        .get("name")
        .filter(|n| !n.is_empty())
        .cloned()
        .ok_or(Error::MissingFlag {
            origin: origin.to_string(),
            flag: "--name",
        })?;
    let bad = |flag: &'static str, value: &str, reason: &'static str| Error::BadFlag {
        origin: origin.to_string(),
        flag,
        value: value.to_string(),
        reason,
    };
    let data_dir_text = flags.get("data-dir").map_or(DEFAULT_DATA_DIR, String::as_str);
    let data_dir = normal(data_dir_text)
        .ok_or_else(|| bad("--data-dir", data_dir_text, "an absolute path is needed"))?;
    let mut initial_cluster = Vec::new();
    for entry in list(flags.get("initial-cluster")) {
        let Some((member, url)) = entry.split_once('=') else {
            return Err(bad("--initial-cluster", &entry, "each entry is name=peer-url"));
        };
        initial_cluster.push(InitialMember {
            name: member.to_string(),
            peer_url: url.to_string(),
        });
    }
    if !initial_cluster.is_empty() && !initial_cluster.iter().any(|m| m.name == name) {
        return Err(bad(
            "--initial-cluster",
            flags.get("initial-cluster").map_or("", String::as_str),
            "it does not name this member (--name)",
        ));
    }
    // The data directory on the node: the longest hostPath mount that holds it.
    let host_data_dir = container
        .volume_mounts
        .iter()
        .filter_map(|mount| {
            let mount_path = normal(&mount.mount_path)?;
            let rest = data_dir.strip_prefix(&mount_path).ok()?;
            let volume = pod.spec.volumes.iter().find(|v| v.name == mount.name)?;
            let host = normal(&volume.host_path.as_ref()?.path)?;
            // Joining an empty rest would add a trailing slash.
            let on_host = if rest.as_os_str().is_empty() {
                host
            } else {
                host.join(rest)
            };
            Some((mount_path.components().count(), on_host))
        })
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, host)| host)
        .ok_or_else(|| Error::DataDirNotOnHost {
            origin: origin.to_string(),
            data_dir: data_dir.display().to_string(),
        })?;
    let context = container.security_context.or(pod.spec.security_context);
    let path_flag = |flag: &str| flags.get(flag).filter(|v| !v.is_empty()).map(PathBuf::from);
    Ok(EtcdManifest {
        name,
        data_dir,
        host_data_dir,
        initial_cluster,
        initial_cluster_state: flags.get("initial-cluster-state").cloned(),
        initial_advertise_peer_urls: list(flags.get("initial-advertise-peer-urls")),
        advertise_client_urls: list(flags.get("advertise-client-urls")),
        listen_client_urls: list(flags.get("listen-client-urls")),
        cert_file: path_flag("cert-file"),
        key_file: path_flag("key-file"),
        trusted_ca_file: path_flag("trusted-ca-file"),
        image_version: image_version(&container.image),
        image: container.image.clone(),
        run_as_user: context.and_then(|c| c.run_as_user),
        run_as_group: context.and_then(|c| c.run_as_group),
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn both_flag_forms_and_bare_flags_are_read_and_the_last_value_wins() {
        let found = flags(&tokens(
            "etcd --name=a --data-dir /d --client-cert-auth --snapshot-count=1 --snapshot-count 2 -v x",
        ));
        assert_eq!(found["name"], "a");
        assert_eq!(found["data-dir"], "/d");
        assert_eq!(found["client-cert-auth"], "true");
        assert_eq!(found["snapshot-count"], "2");
        assert_eq!(found["v"], "x");
        assert!(!found.contains_key("etcd"));
    }

    #[test]
    fn image_tags_name_the_etcd_version() {
        assert_eq!(
            image_version("registry.k8s.io/etcd:3.5.15-0").as_deref(),
            Some("3.5.15")
        );
        assert_eq!(
            image_version("quay.io/coreos/etcd:v3.4.23").as_deref(),
            Some("3.4.23")
        );
        assert_eq!(
            image_version("registry.local:5000/etcd:3.5.1-0").as_deref(),
            Some("3.5.1")
        );
        assert_eq!(image_version("registry.local:5000/etcd").as_deref(), None);
        assert_eq!(image_version("etcd@sha256:abcd").as_deref(), None);
        assert_eq!(image_version("etcd:latest").as_deref(), None);
    }

    #[test]
    fn paths_are_normalised_and_never_climb_above_the_root() {
        assert_eq!(
            normal("/var/lib/../lib/etcd/."),
            Some(PathBuf::from("/var/lib/etcd"))
        );
        assert_eq!(normal("/.."), None);
        assert_eq!(normal("var/lib/etcd"), None);
    }

    #[test]
    fn the_kubelet_configuration_names_the_static_pod_path_or_kubeadms_default_holds() {
        let default = PathBuf::from(DEFAULT_STATIC_POD_PATH);
        assert_eq!(static_pod_path("c", None).unwrap(), default);
        assert_eq!(static_pod_path("c", Some("")).unwrap(), default);
        assert_eq!(
            static_pod_path(
                "c",
                Some("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n")
            )
            .unwrap(),
            default
        );
        assert_eq!(
            static_pod_path(
                "c",
                Some("kind: KubeletConfiguration\nstaticPodPath: /srv/manifests\n")
            )
            .unwrap(),
            PathBuf::from("/srv/manifests")
        );
        assert!(static_pod_path("c", Some("staticPodPath: manifests\n")).is_err());
        let error = static_pod_path("config.yaml", Some("staticPodPath: ["))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("config.yaml is not valid YAML") && !error.contains('\n'),
            "{error}"
        );
    }
}
