//! Stopping and starting the control plane: manifests out of and back into `staticPodPath`, and
//! waiting until the kubelet stopped or started what they describe.

use super::*;

/// What of the stopped control plane still runs: every reason found, `None` when nothing does.
pub(super) fn still_running(root: &Path, node: &Node) -> Option<String> {
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
pub(super) fn crictl_lists(root: &Path, container: &str) -> bool {
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
pub(super) fn process_on(data_dirs: &[PathBuf]) -> Option<u32> {
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
pub(super) fn move_file(from_dir: &Path, to_dir: &Path, name: &str) -> Result<()> {
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
pub(super) fn put_back(root: &Path, journal: &Journal, names: &[String]) -> Result<()> {
    let (aside, pods) = (
        under(root, &journal.manifests_aside),
        under(root, &journal.static_pod_dir),
    );
    for name in names {
        move_file(&aside, &pods, name)?;
    }
    Ok(())
}

pub(super) fn aside_names(root: &Path, journal: &Journal) -> Vec<String> {
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

pub(super) async fn stop(
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

/// How long a member of a cluster of several waits to answer before the run concludes that
/// the other members are not restored yet (a member serves only once a quorum is up).
pub(super) const QUORUM_WAIT: Duration = Duration::from_secs(10);

/// Puts etcd back and waits until it answers at the bumped revision. `false` when a member of a
/// cluster of several does not answer yet: the others still have to be restored.
pub(super) async fn start_etcd(
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
pub(super) async fn start_apiserver(
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
