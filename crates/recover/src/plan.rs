//! The plan a run prints: every step with its paths, URLs and flags; and how to reach the member.

use super::*;

/// The numbered steps, with every path, URL and flag they use.
pub fn plan(node: &Node, journal: &Journal, options: &RecoverOptions) -> Vec<String> {
    journal
        .steps()
        .into_iter()
        .map(|step| step.describe(node, journal, options))
        .collect()
}

impl Step {
    /// What the step does on `node`, with every path, URL and flag it uses.
    pub fn describe(self, node: &Node, journal: &Journal, options: &RecoverOptions) -> String {
        let etcd = &node.etcd;
        match self {
            Step::SafetyCopy => format!(
                "safety copy: if etcd answers at {}, save a snapshot of it to {}",
                client_url(etcd),
                journal.run_dir(options).join("pre-recover.db").display()
            ),
            Step::Stop => {
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
                        journal.manifests_aside(options).display()
                    ),
                };
                format!(
                    "stop: {manifests_out}, then wait up to {} s until etcd and the API server are gone (crictl when present, the ports {}, no process on {})",
                    options.stop_timeout.as_secs(),
                    ports(etcd)
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    journal.data_dir.display()
                )
            }
            Step::DataAside => match is_mount_point(&under(&options.root, &journal.data_dir)) {
                true => format!(
                    "move the contents of the data directory {} (a mount point, which stays) into {} (never deleted)",
                    journal.data_dir.display(),
                    journal
                        .data_dir
                        .join(journal.data_aside().file_name().unwrap_or_default())
                        .display()
                ),
                false => format!(
                    "move the data directory {} aside to {} (never deleted)",
                    journal.data_dir.display(),
                    journal.data_aside().display()
                ),
            },
            Step::Files => format!(
                "put the files of backup {} in place under {} (PKI, kubeconfigs, kubelet configuration; its static Pod manifests go where the ones taken out wait), all or nothing: the current ones are saved to {} first",
                journal.with_files.as_deref().unwrap_or_default(),
                options.root.display(),
                journal.run_dir(options).join("before-files.tar").display()
            ),
            Step::Restore => {
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
                format!(
                    "restore {} (revision {}) into {}: member {}, --initial-cluster {}, --initial-advertise-peer-urls {}, --initial-cluster-token {}, {bump}, {owner}, mode 0700",
                    journal.source,
                    journal.snapshot_revision,
                    journal.data_dir.display(),
                    etcd.name,
                    initial.join(","),
                    etcd.initial_advertise_peer_urls.join(","),
                    journal.token,
                )
            }
            Step::StartEtcd => format!(
                "start etcd: put {} back, wait up to {} s for {} to answer at revision {} or later",
                node.etcd_file,
                options.etcd_timeout.as_secs(),
                client_url(etcd),
                expected_revision(journal)
            ),
            Step::StartApiserver => match &node.apiserver {
                Some((file, url)) => format!(
                    "start the API server: put {file} back, wait up to {} s for {url}",
                    options.apiserver_timeout.as_secs()
                ),
                None => "start the API server: this node has no kube-apiserver static Pod".to_string(),
            },
            Step::StartRest => {
                let apiserver = node.apiserver.as_ref().map(|(file, _)| file.as_str());
                let others: Vec<&str> = node
                    .manifests
                    .iter()
                    .map(String::as_str)
                    .filter(|m| *m != node.etcd_file && Some(*m) != apiserver)
                    .collect();
                match others.is_empty() {
                    true => "put the other manifests back: none".to_string(),
                    false => format!("put the other manifests back: {}", others.join(", ")),
                }
            }
        }
    }
}

pub(super) fn expected_revision(journal: &Journal) -> i64 {
    journal
        .snapshot_revision
        .max(1)
        .saturating_add(i64::try_from(journal.bump_revision).unwrap_or(i64::MAX))
}

/// The URL the restored member is asked at: its loopback client URL if it has one.
pub(super) fn client_url(etcd: &EtcdManifest) -> String {
    etcd.listen_client_urls
        .iter()
        .chain(&etcd.advertise_client_urls)
        .find(|u| u.contains("127.0.0.1") || u.contains("[::1]") || u.contains("localhost"))
        .or_else(|| etcd.advertise_client_urls.first())
        .cloned()
        .unwrap_or_else(|| "https://127.0.0.1:2379".into())
}

/// The ports etcd listens on (clients and peers).
pub(super) fn ports(etcd: &EtcdManifest) -> Vec<u16> {
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
