//! What `recover --kubeadm` leaves and when it reads: the fetched (decrypted) snapshot never
//! has a name on the node, even after SIGKILL; the safety snapshot is private; the lock comes
//! before anything is read; a journal that cannot be read is an error, never "no run".

use crate::common::*;
use crate::recover::{NodeTree, assert_holds_the_backup, backed_up, backed_up_node, crashed_at};

#[tokio::test]
async fn the_fetched_snapshot_never_has_a_name_on_the_node_and_the_safety_copy_is_private() {
    let (node, repo, revision) = backed_up_node(None).await;
    // Killed once the restore is done, with the fetched snapshot in use.
    crashed_at(&mut node.recover(&repo), "restore", "worked");
    let journal_dir = node.path("/var/lib/lifeboat");
    let left: Vec<String> = files_under(&journal_dir);
    let run_dir = left
        .iter()
        .find_map(|f| f.strip_suffix("/pre-recover.db"))
        .unwrap_or_else(|| panic!("a safety snapshot in {left:?}"))
        .to_string();
    for file in &left {
        let allowed = ["recover.json", "recover.lock"].contains(&file.as_str())
            || file.starts_with(&format!("{run_dir}/manifests/"))
            || *file == format!("{run_dir}/pre-recover.db")
            || *file == format!("{run_dir}/pre-recover.db.sha256");
        assert!(allowed, "{file} is left after SIGKILL: {left:?}");
    }
    assert_eq!(mode(&journal_dir.join(&run_dir)), 0o700);
    assert_eq!(mode(&journal_dir.join(&run_dir).join("pre-recover.db")), 0o600);
    // The rerun fetches again and finishes.
    run_ok(node.recover(&repo).arg("--yes"));
    assert_holds_the_backup(&node, revision).await;
    assert!(
        files_under(&journal_dir)
            .iter()
            .all(|f| !f.contains("snapshot.db")),
        "{:?}",
        files_under(&journal_dir)
    );
}

#[tokio::test]
async fn the_lock_comes_first_and_an_unreadable_journal_is_not_taken_as_no_run() {
    let (node, repo, _) = backed_up_node(None).await;
    let journal_dir = node.path("/var/lib/lifeboat");
    std::fs::create_dir_all(&journal_dir).unwrap();
    // A run holds the lock: even a dry run does not read the node meanwhile.
    let file = std::fs::File::create(journal_dir.join("recover.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let refused = run_failing(node.recover(&repo).arg("--dry-run"), 1);
    assert!(refused.contains("another lifeboat recover holds"), "{refused}");
    drop(held);
    // A journal that cannot be read (here a directory in its place) may hide a run half done.
    std::fs::create_dir(journal_dir.join("recover.json")).unwrap();
    let refused = run_failing(node.recover(&repo).arg("--dry-run"), 1);
    assert!(
        refused.contains("recover.json cannot be read") && refused.contains("check the node by hand"),
        "{refused}"
    );
    let refused = run_failing(node.recover(&repo).arg("--yes"), 1);
    assert!(refused.contains("recover.json cannot be read"), "{refused}");
    assert_eq!(
        node.path("/etc/kubernetes/manifests").read_dir().unwrap().count(),
        2,
        "nothing moved"
    );
}

#[tokio::test]
async fn with_files_latest_is_this_hosts_and_another_hosts_is_refused_unless_named() {
    let (node, repo, _) = backed_up_node(None).await;
    let files_backup = |host: Option<&str>| {
        let mut command = repo.lifeboat();
        command
            .args(["backup", "--files", "-w", "json", "--root"])
            .arg(node.root.path());
        if let Some(host) = host {
            command.args(["--host", host]);
        }
        let manifest: serde_json::Value = serde_json::from_str(&run_ok(&mut command)).unwrap();
        manifest["id"].as_str().unwrap().to_string()
    };
    let mine = files_backup(None);
    // Newer, of another node: `latest` must not take it.
    let other = files_backup(Some("cp-other"));
    let this_host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let plan = run_ok(node.recover(&repo).args(["--with-files", "latest", "--dry-run"]));
    assert!(
        plan.contains(&format!("files backup: {mine} (host {})", this_host.trim())),
        "{plan}"
    );
    let refused = run_failing(node.recover(&repo).args(["--with-files", &other, "--dry-run"]), 1);
    assert!(
        refused.contains("is of host cp-other") && refused.contains("--files-from-host cp-other"),
        "{refused}"
    );
    let plan = run_ok(node.recover(&repo).args([
        "--with-files",
        &other,
        "--files-from-host",
        "cp-other",
        "--dry-run",
    ]));
    assert!(
        plan.contains(&format!("files backup: {other} (host cp-other)")),
        "{plan}"
    );
    // A node of another name has no files backup of its own.
    let refused = run_failing(
        node.recover(&repo)
            .args(["--with-files", "latest", "--host", "cp-9", "--dry-run"]),
        1,
    );
    assert!(
        refused.contains("no files backup of host cp-9") && refused.contains("cp-other"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_files_backup_with_more_than_kubeadms_plain_files_is_refused_before_anything() {
    let (node, repo, _) = backed_up_node(None).await;
    let files_backup = |include: &str| {
        let manifest: serde_json::Value = serde_json::from_str(&run_ok(
            repo.lifeboat()
                .args(["backup", "--files", "-w", "json", "--include", include, "--root"])
                .arg(node.root.path()),
        ))
        .unwrap();
        manifest["id"].as_str().unwrap().to_string()
    };
    std::fs::create_dir_all(node.path("/etc/cron.d")).unwrap();
    std::fs::write(node.path("/etc/cron.d/job"), "* * * * * root /tmp/x\n").unwrap();
    let outside = files_backup("etc/cron.d/job");
    let tool = node.path("/etc/kubernetes/tool");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    let setuid = files_backup("etc/kubernetes/tool");
    for (id, needle) in [
        (&outside, "etc/cron.d/job, outside the kubeadm set"),
        (&setuid, "etc/kubernetes/tool, a setuid or setgid file"),
    ] {
        let refused = run_failing(node.recover(&repo).args(["--with-files", id, "--yes"]), 1);
        assert!(
            refused.contains(needle) && refused.contains(&format!("restore-files {id}")),
            "{refused}"
        );
        assert!(
            !node.path("/var/lib/lifeboat/recover.json").exists(),
            "no run began"
        );
        assert_eq!(
            node.path("/etc/kubernetes/manifests").read_dir().unwrap().count(),
            2,
            "nothing moved"
        );
    }
}

#[tokio::test]
async fn a_finished_run_is_not_repeated_by_accident_and_an_unconfirmed_one_can_be_aborted() {
    // Ended with exit 3 (etcd recovered, the API server never ready): --abort rolls it back.
    let (node, repo, _) = backed_up_node(Some(false)).await;
    assert_eq!(run(node.recover(&repo).arg("--yes")).status.code(), Some(3));
    assert_eq!(node.value("/registry/namespaces/after").await, None);
    let aborted = run_ok(
        repo.lifeboat()
            .args(["recover", "--kubeadm", "--abort", "--root"])
            .arg(node.root.path()),
    );
    assert!(
        aborted.contains("rolled back") && aborted.contains("pin of this recovery is removed"),
        "{aborted}"
    );
    assert_eq!(
        node.value("/registry/namespaces/after").await.as_deref(),
        Some(&b"lost"[..]),
        "the old member is back with what it held"
    );
    assert_eq!(
        node.manifests(),
        ["etcd.yaml", "kube-apiserver.yaml", "kube-scheduler.yaml"]
    );

    // Recovered: the same command again is refused by name, shown in a dry run, and neither
    // rolled back nor repeated without --new-run.
    let (node, repo, revision) = backed_up_node(None).await;
    run_ok(node.recover(&repo).arg("--yes"));
    let refused = run_failing(node.recover(&repo).arg("--yes"), 1);
    assert!(
        refused.contains("already recovered this node") && refused.contains("--new-run"),
        "{refused}"
    );
    let plan = run_ok(node.recover(&repo).arg("--dry-run"));
    assert!(
        plan.contains("Note: run ") && plan.contains("--new-run"),
        "{plan}"
    );
    let not_aborted = run_failing(
        repo.lifeboat()
            .args(["recover", "--kubeadm", "--abort", "--root"])
            .arg(node.root.path()),
        1,
    );
    assert!(not_aborted.contains("nothing to roll back"), "{not_aborted}");
    run_ok(node.recover(&repo).args(["--yes", "--new-run"]));
    assert_holds_the_backup(&node, revision).await;
}

#[tokio::test]
async fn latest_is_this_clusters_and_another_clusters_backup_is_refused_unless_forced() {
    let (node, repo, _) = backed_up_node(None).await;
    let mine = repo.list()[0]["id"].as_str().unwrap().to_string();
    // A newer backup of another cluster in the same repository.
    let other_cluster = lifeboat_test_support::EtcdServer::start(lifeboat_test_support::EtcdConfig::new(
        lifeboat_test_support::EtcdVersion::V3_5,
    ))
    .await
    .unwrap();
    let other = repo.backup(&other_cluster);
    let plan = run_ok(node.recover(&repo).arg("--dry-run"));
    assert!(
        plan.contains(&format!("Recovery plan for backup {mine}"))
            && plan.contains("latest is the newest etcd backup of cluster"),
        "{plan}"
    );
    let by_id = |id: &str| {
        let mut command = repo.lifeboat();
        command
            .args(["recover", "--kubeadm", id, "--dry-run", "--identity-file"])
            .arg(repo.identity())
            .arg("--root")
            .arg(node.root.path());
        command
    };
    let refused = run_failing(&mut by_id(&other), 1);
    assert!(
        refused.contains(&format!("backup {other} is of etcd cluster"))
            && refused.contains("--force-cluster"),
        "{refused}"
    );
    let forced = run_ok(by_id(&other).arg("--force-cluster"));
    assert!(
        forced.contains(&format!("Recovery plan for backup {other}")),
        "{forced}"
    );

    // A node whose data directory is gone knows no cluster. With one recovery pinned it
    // follows that one; with two it cannot tell which is its own, and names both. A pin whose
    // content names another cluster than its object's name is not followed.
    let bare = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(node.root.path().join("etc"))
        .arg(bare.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let recoveries = std::path::Path::new(repo.location()).join("recoveries");
    std::fs::create_dir_all(&recoveries).unwrap();
    let pin = |cluster: &str, backup: &str| {
        format!(
            r#"{{"cluster_id":"{cluster}","new_cluster_id":"","backup":"{backup}","run":"20261205T000000Z","host":"node-a","created":"2026-12-05T00:00:00Z"}}"#
        )
    };
    let bare_plan = || {
        let mut command = repo.lifeboat();
        command
            .args(["recover", "--kubeadm", "latest", "--dry-run", "--identity-file"])
            .arg(repo.identity())
            .arg("--root")
            .arg(bare.path());
        command
    };
    std::fs::write(recoveries.join("aaaa.json"), pin("aaaa", &mine)).unwrap();
    std::fs::write(recoveries.join("cccc.json"), pin("dddd", &other)).unwrap();
    let followed = run_ok(&mut bare_plan());
    assert!(
        followed.contains(&format!("Recovery plan for backup {mine}"))
            && followed.contains("pins this one recovery"),
        "{followed}"
    );
    std::fs::write(recoveries.join("bbbb.json"), pin("bbbb", &other)).unwrap();
    let ambiguous = run_failing(&mut bare_plan(), 1);
    assert!(
        ambiguous.contains("pins recoveries of clusters")
            && ambiguous.contains("aaaa")
            && ambiguous.contains("bbbb")
            && !ambiguous.contains("dddd"),
        "{ambiguous}"
    );
}

#[tokio::test]
async fn a_run_killed_between_placing_the_data_and_owning_it_owns_it_when_resumed() {
    let (node, repo, revision) = backed_up_node(None).await;
    // The restored directory is renamed into place; the kill falls before its owner is set.
    crashed_at(&mut node.recover(&repo), "restore", "placed");
    let data = node.path("/var/lib/etcd");
    let owner = |path: &std::path::Path| {
        let metadata = std::fs::metadata(path).unwrap();
        (
            std::os::unix::fs::MetadataExt::uid(&metadata),
            std::os::unix::fs::MetadataExt::gid(&metadata),
        )
    };
    assert!(data.join("member").exists());
    assert_eq!(owner(&data), (0, 0), "killed before the owner was set");
    run_ok(node.recover(&repo).arg("--yes"));
    assert_eq!(owner(&data), (2000, 2001));
    assert_eq!(owner(&data.join("member/snap/db")), (2000, 2001));
    assert_holds_the_backup(&node, revision).await;
}

/// Whether `dir` is on another device than its parent.
fn on_its_own_disk(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).unwrap().dev() != std::fs::metadata(dir.parent().unwrap()).unwrap().dev()
}

#[tokio::test]
async fn a_data_directory_on_its_own_disk_stays_mounted_and_its_contents_move() {
    let (node, repo, revision) = backed_up(NodeTree::with_data_disk(256 << 20)).await;
    let data = node.path("/var/lib/etcd");
    let plan = run_ok(node.recover(&repo).arg("--dry-run"));
    assert!(plan.contains("(a mount point, which stays)"), "{plan}");
    run_ok(node.recover(&repo).arg("--yes"));
    assert_holds_the_backup(&node, revision).await;
    assert!(on_its_own_disk(&data), "the disk is still mounted there");
    let kept: Vec<String> = entries(&data)
        .into_iter()
        .filter(|name| name.starts_with("etcd.before-recover-"))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", entries(&data));
    assert!(data.join(&kept[0]).join("member/snap/db").exists());

    // Killed in the restore and rolled back: the old data is back on the disk.
    let (node, repo, _) = backed_up(NodeTree::with_data_disk(256 << 20)).await;
    let data = node.path("/var/lib/etcd");
    crashed_at(&mut node.recover(&repo), "restore", "placed");
    let aborted = run_ok(
        repo.lifeboat()
            .args(["recover", "--kubeadm", "--abort", "--root"])
            .arg(node.root.path()),
    );
    assert!(
        aborted.contains("the data directory is a mount point"),
        "{aborted}"
    );
    assert!(on_its_own_disk(&data));
    assert_eq!(
        node.value("/registry/namespaces/after").await.as_deref(),
        Some(&b"lost"[..]),
        "the old member is back with what it held"
    );
}

#[tokio::test]
async fn free_space_is_measured_where_each_file_goes() {
    let (node, repo, _) = backed_up_node(None).await;
    // The run's directory (fetched and safety snapshots) on a disk too small for them.
    let _small = Tmpfs::mount_at(&node.path("/var/lib/lifeboat"), 4096).unwrap();
    let refused = run_failing(node.recover(&repo).arg("--dry-run"), 1);
    assert!(
        refused.contains("/var/lib/lifeboat has")
            && refused.contains("the fetched and the safety snapshot need about"),
        "{refused}"
    );
}
