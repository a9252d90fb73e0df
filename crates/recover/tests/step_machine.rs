//! The step machine on a temporary node tree, without root, etcd or a kubelet: a stand-in host
//! answers the probes and crashes the run at a chosen action. A run cut off after any action
//! resumes to the node an uncut run leaves, or rolls back to the node as it was; a rollback cut
//! off after any of its own actions, repeated, does too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use lifeboat_core::Cancel;
use lifeboat_core::snapshot_restore::RestoreOptions;
use lifeboat_recover::{
    Error, Host, HostFuture, Journal, Narrator, Node, Outcome, RecoverOptions, RestoreFn, Restoring, Setting,
    Step, abort, check_files_node, discover, earlier_run, lock, resume_or_begin, run,
};
use lifeboat_test_support::kubelet::{StaticMember, write_control_plane_node};
use lifeboat_test_support::{EtcdVersion, Tmpfs};

/// Answers every probe as a healthy machine would, and fails the run (as a crash would stop
/// it) at its `crash_at`-th action.
struct StandIn {
    crash_at: Option<usize>,
    actions: Mutex<Vec<String>>,
}

impl StandIn {
    fn crashing_at(crash_at: Option<usize>) -> Self {
        Self {
            crash_at,
            actions: Mutex::new(Vec::new()),
        }
    }

    fn actions(&self) -> Vec<String> {
        self.actions.lock().unwrap().clone()
    }
}

impl Host for StandIn {
    fn still_running(&self, _root: &Path, _node: &Node) -> Option<String> {
        None
    }

    fn save_snapshot<'a>(
        &'a self,
        _connect: &'a lifeboat_etcd_conn::ConnectOptions,
        path: &'a Path,
        _cancel: &'a Cancel,
    ) -> HostFuture<'a, lifeboat_recover::Result<i64>> {
        Box::pin(async move {
            std::fs::write(path, b"the running member").unwrap();
            Ok(7)
        })
    }

    fn etcd_revision<'a>(
        &'a self,
        _connect: &'a lifeboat_etcd_conn::ConnectOptions,
    ) -> HostFuture<'a, Result<i64, String>> {
        Box::pin(async { Ok(i64::MAX) })
    }

    fn apiserver_ready<'a>(&'a self, _url: &'a str, _ca: &'a Path) -> HostFuture<'a, bool> {
        Box::pin(async { true })
    }

    fn chown_tree(&self, _path: &Path, _user: u32, _group: u32) -> lifeboat_recover::Result<()> {
        Ok(())
    }

    fn reached(&self, step: Step, action: &str) -> lifeboat_recover::Result<()> {
        let mut actions = self.actions.lock().unwrap();
        actions.push(format!("{step}:{action}"));
        match self.crash_at == Some(actions.len()) {
            true => Err(Error::Refused {
                message: format!("crashed at {step}:{action}"),
            }),
            false => Ok(()),
        }
    }
}

struct Quiet;

impl Narrator for Quiet {
    fn step(&self, _number: usize, _of: usize, _text: &str) {}
    fn note(&self, _text: &str) {}
}

/// The restore: a data directory as etcd's restore writes one.
fn restorer() -> RestoreFn<'static> {
    Box::new(|options: RestoreOptions| {
        Box::pin(async move {
            let member = options.data_dir.join("member");
            std::fs::create_dir_all(member.join("snap")).unwrap();
            std::fs::create_dir_all(member.join("wal")).unwrap();
            std::fs::write(member.join("snap/db"), b"restored").unwrap();
            std::fs::write(member.join("wal/0.wal"), options.initial_cluster_token).unwrap();
            Ok(())
        })
    })
}

struct Tree {
    options: RecoverOptions,
    /// A dedicated data disk mounted on the data directory; dropped before `dir`.
    _disk: Option<Tmpfs>,
    dir: tempfile::TempDir,
}

impl Tree {
    /// A control-plane node: etcd, an API server and a scheduler; etcd's old data, on a disk
    /// of its own with `on_disk`.
    /// `ending`: how a run on it ends: recovered, the API server not back (exit 3), or a member
    /// of three whose cluster waits for the others (exit 3).
    fn new(on_disk: bool, ending: Outcome) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let disk = on_disk.then(|| Tmpfs::mount_at(&root.join("var/lib/etcd"), 1 << 20).unwrap());
        // Nothing listens: fixed ports keep every tree alike.
        let member = StaticMember {
            name: "node-1".into(),
            client: "http://127.0.0.1:2379".into(),
            peer: "http://127.0.0.1:2380".into(),
        };
        let peer = |n: u16| StaticMember {
            name: format!("node-{n}"),
            client: format!("http://127.0.0.1:{}", 2379 + 10 * n),
            peer: format!("http://127.0.0.1:{}", 2380 + 10 * n),
        };
        let all = match ending {
            Outcome::QuorumPending => vec![member.clone(), peer(2), peer(3)],
            _ => vec![member.clone()],
        };
        write_control_plane_node(root, EtcdVersion::V3_5, &member, &all, None).unwrap();
        std::fs::write(
            root.join("etc/kubernetes/manifests/kube-apiserver.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: kube-apiserver}\nspec:\n  containers:\n  - {name: kube-apiserver, image: registry.k8s.io/kube-apiserver:v1.33.0, command: [kube-apiserver, --secure-port=6443]}\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("var/lib/etcd/member/snap")).unwrap();
        std::fs::write(root.join("var/lib/etcd/member/snap/db"), b"old").unwrap();
        // Not only `member`: a mount point's entries move one at a time, in any order.
        std::fs::write(root.join("var/lib/etcd/notes"), b"left by an operator").unwrap();
        std::fs::write(root.join("etc/kubernetes/admin.conf"), b"admin of the node").unwrap();
        let options = RecoverOptions {
            root: root.to_path_buf(),
            journal_dir: PathBuf::from("/var/lib/lifeboat"),
            stop_timeout: Duration::from_secs(5),
            etcd_timeout: match ending {
                Outcome::QuorumPending => Duration::ZERO,
                _ => Duration::from_secs(5),
            },
            apiserver_timeout: match ending {
                Outcome::ApiServerNotReady => Duration::ZERO,
                _ => Duration::from_secs(5),
            },
        };
        Self {
            options,
            _disk: disk,
            dir,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Every file and directory of the node with its contents, but the run's own (journal,
    /// safety copies) and, with `but_kept`, the restored data a rollback keeps aside.
    fn contents(&self, but_kept: bool) -> BTreeMap<String, String> {
        fn walk(root: &Path, dir: &Path, found: &mut BTreeMap<String, String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                let name = path.strip_prefix(root).unwrap().display().to_string();
                if path.is_dir() {
                    found.insert(name, "(directory)".into());
                    walk(root, &path, found);
                } else {
                    found.insert(
                        name,
                        String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(),
                    );
                }
            }
        }
        let mut found = BTreeMap::new();
        walk(self.root(), self.root(), &mut found);
        found.retain(|name, _| {
            let kept = but_kept && name.contains(".aborted-recover-");
            !(name.starts_with("var/lib/lifeboat") || kept)
        });
        found
    }

    /// A files backup of the node as it is now.
    fn files_backup(&self) -> Vec<u8> {
        let options = lifeboat_core::files::FilesOptions {
            root: self.root().to_path_buf(),
            include: lifeboat_core::files::KUBEADM_SET
                .iter()
                .map(|p| p.to_string())
                .chain(["etc/kubernetes/audit".to_string()])
                .collect(),
            exclude: Vec::new(),
        };
        lifeboat_core::files::archive(self.root(), &lifeboat_core::files::collect(&options).unwrap()).unwrap()
    }

    /// Starts or resumes the run, as `recover` does: the earlier run read, the node found
    /// (its manifests maybe aside), the same source resumed, a files backup checked.
    async fn run(
        &self,
        host: &StandIn,
        files: Option<&[u8]>,
        with_files: bool,
    ) -> lifeboat_recover::Result<Outcome> {
        let _lock = lock(&self.options, false)?;
        let earlier = earlier_run(&self.options, false, false)?;
        let aside = earlier
            .in_progress
            .as_ref()
            .map(|j| j.manifests_aside(&self.options));
        // A node that lost its static Pods is read from the files backup, as `recover` does.
        let node = match (discover(self.root(), aside.as_deref(), None), files) {
            (Ok(node), _) => node,
            (Err(_), Some(tar)) => discover(self.root(), aside.as_deref(), Some(tar))?,
            (Err(error), None) => return Err(error),
        };
        let restoring = Restoring {
            source: "backup 20261205T000000.000Z-0123456789abcdef".into(),
            identity: "20261205T000000.000Z-0123456789abcdef".into(),
            snapshot_revision: 10,
            bump_revision: 1000,
        };
        let files_id = with_files.then(|| "20261205T000001.000Z-0123456789abcdef".to_string());
        let (mut journal, _) = resume_or_begin(
            earlier.in_progress,
            &node,
            &restoring,
            files_id,
            SystemTime::UNIX_EPOCH,
        )?;
        if let Some(tar) = files {
            check_files_node(&journal, self.root(), tar)?;
        }
        let setting = Setting {
            options: &self.options,
            host,
            narrator: &Quiet,
        };
        run(&node, &mut journal, setting, restorer(), files, &Cancel::new()).await
    }

    /// Rolls the run back, as `recover --abort` does.
    async fn abort(&self, host: &StandIn) -> lifeboat_recover::Result<()> {
        let _lock = lock(&self.options, false)?;
        let mut journal = Journal::load(&self.options)?
            .filter(Journal::abortable)
            .expect("a run to roll back");
        let node = discover(self.root(), Some(&journal.manifests_aside(&self.options)), None).ok();
        if let Some(node) = &node {
            journal.check_node(node)?;
        }
        let setting = Setting {
            options: &self.options,
            host,
            narrator: &Quiet,
        };
        abort(node.as_ref(), &mut journal, setting).await.map(|_| ())
    }
}

/// The node a run leaves, from a node as [`Tree::new`] makes it changed by `prepare`, and
/// the actions it reaches.
async fn uncut(
    on_disk: bool,
    ending: Outcome,
    with_files: bool,
    prepare: &dyn Fn(&Tree) -> Option<Vec<u8>>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let tree = Tree::new(on_disk, ending);
    let files = prepare(&tree);
    let host = StandIn::crashing_at(None);
    assert_eq!(
        tree.run(&host, files.as_deref(), with_files).await.unwrap(),
        ending
    );
    (tree.contents(false), host.actions())
}

/// Cut off after each action in turn: resumed, the node is the one an uncut run leaves;
/// rolled back, the node as it was, also when the rollback itself is cut off and repeated.
async fn every_cut_resumes_or_rolls_back(
    on_disk: bool,
    ending: Outcome,
    with_files: bool,
    prepare: &dyn Fn(&Tree) -> Option<Vec<u8>>,
) -> Vec<String> {
    let (recovered, actions) = uncut(on_disk, ending, with_files, prepare).await;
    assert!(actions.len() > 20, "{actions:?}");
    for (index, action) in actions.iter().enumerate() {
        let crash_at = index + 1;
        // Resumed.
        let tree = Tree::new(on_disk, ending);
        let files = prepare(&tree);
        let (cut_host, resumed_host) = (StandIn::crashing_at(Some(crash_at)), StandIn::crashing_at(None));
        let cut = tree.run(&cut_host, files.as_deref(), with_files).await;
        assert!(cut.is_err(), "cut at {action}");
        let resumed = tree.run(&resumed_host, files.as_deref(), with_files).await;
        assert_eq!(resumed.unwrap(), ending, "resumed after {action}");
        assert_eq!(tree.contents(false), recovered, "resumed after {action}");
        // The restored data's owner is set once it is in place, however late the cut fell.
        let owned = [cut_host.actions(), resumed_host.actions()]
            .concat()
            .iter()
            .filter(|a| *a == "restore:owned")
            .count();
        assert!(owned >= 1, "the owner is never set after a cut at {action}");

        // Rolled back; the rollback cut off at its first action, then its second, and so on.
        let tree = Tree::new(on_disk, ending);
        let files = prepare(&tree);
        let before = tree.contents(true);
        let cut = tree
            .run(
                &StandIn::crashing_at(Some(crash_at)),
                files.as_deref(),
                with_files,
            )
            .await;
        assert!(cut.is_err(), "cut at {action}");
        let mut abort_cut = 1;
        loop {
            assert!(abort_cut < 200, "the rollback after {action} never ends");
            let host = StandIn::crashing_at(Some(abort_cut));
            match tree.abort(&host).await {
                Ok(()) => break,
                Err(_) => abort_cut += 1,
            }
            // A rollback under way is finished, never resumed as a run.
            let journal = Journal::load(&tree.options).unwrap().unwrap();
            if !journal.undone.is_empty() {
                // Nor replaced by a new run, which would lose where the old data waits.
                let replaced = earlier_run(&tree.options, true, false).unwrap_err();
                assert!(
                    replaced.to_string().contains("rollback was cut off"),
                    "{replaced}"
                );
                let resumed = tree
                    .run(&StandIn::crashing_at(None), files.as_deref(), with_files)
                    .await;
                assert!(
                    resumed.is_err_and(|e| e.to_string().contains("rollback was cut off")),
                    "resumed during the rollback after {action}"
                );
            }
        }
        assert_eq!(tree.contents(true), before, "rolled back after {action}");
        let journal = Journal::load(&tree.options).unwrap().unwrap();
        assert!(!journal.abortable(), "a rolled-back run is over");
    }
    actions
}

#[tokio::test]
async fn a_run_cut_off_after_any_action_resumes_or_rolls_back() {
    let actions = every_cut_resumes_or_rolls_back(false, Outcome::Recovered, false, &|_| None).await;
    assert!(actions.contains(&"data-aside:renamed".to_string()), "{actions:?}");
}

#[tokio::test]
async fn with_a_files_backup_a_run_cut_off_after_any_action_resumes_or_rolls_back() {
    // The backup's files differ from the node's: one replaced, one added, one the node lacks.
    let prepare = |tree: &Tree| {
        let root = tree.root();
        std::fs::write(root.join("etc/kubernetes/admin.conf"), b"admin of the backup").unwrap();
        std::fs::create_dir_all(root.join("etc/kubernetes/pki")).unwrap();
        std::fs::write(root.join("etc/kubernetes/pki/ca.crt"), b"the backup's CA").unwrap();
        // Beyond kubeadm's own files (`backup --files --include`): the node's copy comes back
        // on --abort.
        std::fs::create_dir_all(root.join("etc/kubernetes/audit")).unwrap();
        std::fs::write(
            root.join("etc/kubernetes/audit/policy.yaml"),
            b"the backup's policy",
        )
        .unwrap();
        let tar = tree.files_backup();
        std::fs::write(
            root.join("etc/kubernetes/audit/policy.yaml"),
            b"the node's policy",
        )
        .unwrap();
        std::fs::write(root.join("etc/kubernetes/admin.conf"), b"admin of the node").unwrap();
        std::fs::remove_dir_all(root.join("etc/kubernetes/pki")).unwrap();
        Some(tar)
    };
    let (recovered, _) = uncut(false, Outcome::Recovered, true, &prepare).await;
    assert_eq!(recovered["etc/kubernetes/admin.conf"], "admin of the backup");
    assert_eq!(recovered["etc/kubernetes/pki/ca.crt"], "the backup's CA");
    every_cut_resumes_or_rolls_back(false, Outcome::Recovered, true, &prepare).await;
}

#[tokio::test]
async fn on_a_dedicated_data_disk_a_run_cut_off_after_any_action_resumes_or_rolls_back() {
    // The data directory is a mount point: its contents move, one entry at a time, and the
    // restore is written inside it.
    let actions = every_cut_resumes_or_rolls_back(true, Outcome::Recovered, false, &|_| None).await;
    assert!(
        actions.contains(&"data-aside:moved-member".to_string()),
        "{actions:?}"
    );
    assert!(
        !actions.contains(&"data-aside:renamed".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn an_earlier_run_is_resumed_by_the_same_source_and_a_finished_one_only_on_request() {
    let tree = Tree::new(false, Outcome::Recovered);
    assert!(
        tree.run(&StandIn::crashing_at(Some(5)), None, false)
            .await
            .is_err()
    );
    let earlier = earlier_run(&tree.options, false, false).unwrap();
    let in_progress = earlier.in_progress.expect("the cut run is in progress");
    let node = discover(
        tree.root(),
        Some(&in_progress.manifests_aside(&tree.options)),
        None,
    )
    .unwrap();
    let other = Restoring {
        source: "backup 20261205T000002.000Z-0123456789abcdef".into(),
        identity: "20261205T000002.000Z-0123456789abcdef".into(),
        snapshot_revision: 10,
        bump_revision: 0,
    };
    let refused =
        resume_or_begin(Some(in_progress.clone()), &node, &other, None, SystemTime::now()).unwrap_err();
    assert!(refused.to_string().contains("is in progress"), "{refused}");
    let same = Restoring {
        source: in_progress.source.clone(),
        ..other
    };
    let (resumed, resuming) =
        resume_or_begin(Some(in_progress.clone()), &node, &same, None, SystemTime::now()).unwrap();
    assert!(resuming);
    assert_eq!(resumed.run, in_progress.run);

    assert_eq!(
        tree.run(&StandIn::crashing_at(None), None, false).await.unwrap(),
        Outcome::Recovered
    );
    let again = earlier_run(&tree.options, false, false).unwrap_err();
    assert!(again.to_string().contains("pass --new-run"), "{again}");
    let planned = earlier_run(&tree.options, false, true).unwrap();
    assert!(
        planned
            .note
            .is_some_and(|note| note.contains("already recovered"))
    );
    let new_run = earlier_run(&tree.options, true, false).unwrap();
    assert!(new_run.in_progress.is_none() && new_run.note.is_none());
}

#[tokio::test]
async fn a_run_that_ends_with_the_api_server_not_ready_is_resumed_or_rolled_back_from_any_cut() {
    every_cut_resumes_or_rolls_back(false, Outcome::ApiServerNotReady, false, &|_| None).await;
}

#[tokio::test]
async fn a_member_whose_cluster_waits_for_the_others_is_resumed_or_rolled_back_from_any_cut() {
    every_cut_resumes_or_rolls_back(false, Outcome::QuorumPending, false, &|_| None).await;
}

#[tokio::test]
async fn a_files_backup_of_another_node_is_refused_before_anything_is_placed() {
    let tree = Tree::new(false, Outcome::Recovered);
    let pods = tree.root().join("etc/kubernetes/manifests/etcd.yaml");
    let own = std::fs::read_to_string(&pods).unwrap();
    std::fs::write(&pods, own.replace("/var/lib/etcd", "/var/lib/etcd2")).unwrap();
    let tar = tree.files_backup();
    std::fs::write(&pods, own).unwrap();
    let before = tree.contents(true);
    let refused = tree
        .run(&StandIn::crashing_at(None), Some(&tar), true)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("choose a files backup of this node"),
        "{refused}"
    );
    assert_eq!(tree.contents(true), before);
}

#[tokio::test]
async fn a_node_that_lost_etc_kubernetes_and_its_data_is_rebuilt_or_left_as_it_was_from_any_cut() {
    let prepare = |tree: &Tree| {
        let tar = tree.files_backup();
        std::fs::remove_dir_all(tree.root().join("etc/kubernetes")).unwrap();
        std::fs::remove_dir_all(tree.root().join("var/lib/etcd")).unwrap();
        Some(tar)
    };
    let (recovered, _) = uncut(false, Outcome::Recovered, true, &prepare).await;
    assert_eq!(recovered["etc/kubernetes/admin.conf"], "admin of the node");
    assert_eq!(recovered["var/lib/etcd/member/snap/db"], "restored");
    every_cut_resumes_or_rolls_back(false, Outcome::Recovered, true, &prepare).await;
}
