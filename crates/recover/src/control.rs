//! Stopping and starting the control plane: manifests out of and back into `staticPodPath`, and
//! waiting until the kubelet stopped or started what they describe.

use super::*;

/// Moves `name` between two directories of the node (rename; a copy when they are on
/// different file systems, then the original removed), and syncs both directories.
pub(super) fn move_file(from_dir: &Path, to_dir: &Path, name: &str, cx: Cx<'_>) -> Result<()> {
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
        cx.reached(&format!("copied-{name}"))?;
        std::fs::remove_file(&from).map_err(io("remove", &from))?;
    }
    lifeboat_core::fsio::sync_dir(to_dir)?;
    lifeboat_core::fsio::sync_dir(from_dir)?;
    cx.reached(&format!("moved-{name}"))
}

/// Every manifest taken out, of `names`, goes back into the static Pod directory.
pub(super) fn put_back(journal: &Journal, names: &[String], cx: Cx<'_>) -> Result<()> {
    let (aside, pods) = (
        under(cx.root(), &journal.manifests_aside(cx.options)),
        under(cx.root(), &journal.static_pod_dir),
    );
    for name in names {
        move_file(&aside, &pods, name, cx)?;
    }
    Ok(())
}

/// The manifests waiting aside (none when the directory is absent).
pub(super) fn aside_names(journal: &Journal, cx: Cx<'_>) -> Result<Vec<String>> {
    let dir = under(cx.root(), &journal.manifests_aside(cx.options));
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io("read", &dir)(error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry.map_err(io("read", &dir))?.file_name();
        // Only names this run wrote: static Pod files, which are UTF-8.
        let name = name.into_string().map_err(|name| {
            failed(
                "journal",
                format!(
                    "{} holds {name:?}, which no run puts there; check the node by hand",
                    dir.display()
                ),
            )
        })?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

pub(super) async fn stop(node: &Node, journal: &Journal, cx: Cx<'_>) -> Result<()> {
    let root = cx.root();
    let (pods, aside) = (
        under(root, &journal.static_pod_dir),
        under(root, &journal.manifests_aside(cx.options)),
    );
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&aside)
        .map_err(io("create", &aside))?;
    for name in &node.manifests {
        move_file(&pods, &aside, name, cx)?;
    }
    let deadline = Instant::now() + cx.options.stop_timeout;
    let mut told = None;
    loop {
        match cx.host.still_running(root, node) {
            None => return Ok(()),
            Some(reason) if Instant::now() >= deadline => {
                // Back as it was: the manifests return, and the run can be retried.
                put_back(journal, &aside_names(journal, cx)?, cx)?;
                return Err(failed(
                    "stop",
                    format!(
                        "the control plane did not stop within {} s ({reason}); its manifests are back in {}; find what keeps it running and retry",
                        cx.options.stop_timeout.as_secs(),
                        journal.static_pod_dir.display()
                    ),
                ));
            }
            Some(reason) => {
                // Each reason once, not every half second.
                if told.as_ref() != Some(&reason) {
                    cx.narrator.note(&format!("waiting: {reason}"));
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
pub(super) async fn start_etcd(node: &Node, journal: &Journal, cx: Cx<'_>) -> Result<bool> {
    put_back(journal, std::slice::from_ref(&node.etcd_file), cx)?;
    let connect = member_connection(cx.root(), &node.etcd);
    let wanted = expected_revision(journal);
    let several = node.etcd.initial_cluster.len() > 1;
    let limit = match several {
        true => cx.options.etcd_timeout.min(QUORUM_WAIT),
        false => cx.options.etcd_timeout,
    };
    let deadline = Instant::now() + limit;
    let mut last = String::from("not asked yet");
    while Instant::now() < deadline {
        match cx.host.etcd_revision(&connect).await {
            Ok(revision) if revision >= wanted => {
                cx.narrator.note(&format!(
                    "etcd answers at revision {revision} (restored {} + bump {})",
                    journal.snapshot_revision, journal.bump_revision
                ));
                return Ok(true);
            }
            Ok(revision) => last = format!("it answers at revision {revision}, below {wanted}"),
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if several {
        cx.narrator.note(&format!(
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
            cx.options.etcd_timeout.as_secs()
        ),
    ))
}

/// Puts the API server back and waits for `/readyz`; `false` when it is not ready in time.
pub(super) async fn start_apiserver(node: &Node, journal: &Journal, cx: Cx<'_>) -> Result<bool> {
    let Some((file, url)) = &node.apiserver else {
        cx.narrator.note("no kube-apiserver static Pod on this node");
        return Ok(true);
    };
    put_back(journal, std::slice::from_ref(file), cx)?;
    let ca = under(cx.root(), Path::new("/etc/kubernetes/pki/ca.crt"));
    let deadline = Instant::now() + cx.options.apiserver_timeout;
    while Instant::now() < deadline {
        if cx.host.apiserver_ready(url, &ca).await {
            cx.narrator.note(&format!("{url} is ready"));
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    cx.narrator.note(&format!(
        "{url} was not ready within {} s: etcd is recovered, the API server is not confirmed",
        cx.options.apiserver_timeout.as_secs()
    ));
    Ok(false)
}
