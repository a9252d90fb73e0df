//! `lifeboat recover --kubeadm` on a node tree whose static Pods a fake kubelet runs as real
//! etcd 3.5: the plan and its refusals, a full recovery from a backup (data back to the backup,
//! the revision bumped, the old data kept, every manifest back), a run killed with SIGKILL in the
//! middle that a rerun resumes, one that `--abort` rolls back, and an API server that is not
//! confirmed (exit 3).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_test_support::kubelet::{StaticMember as Member, write_control_plane_node};
use lifeboat_test_support::{EtcdVersion, FakeKubelet};

use crate::common::*;
use crate::repository::{Backend, Repo};

/// A kubeadm-like node tree with an etcd static Pod on loopback ports, run by a fake kubelet.
pub(crate) struct NodeTree {
    pub(crate) root: tempfile::TempDir,
    client: String,
    kubelet: Option<FakeKubelet>,
    /// A disk mounted on the data directory, unmounted once the kubelet stopped.
    data_disk: Option<Tmpfs>,
}

impl NodeTree {
    /// A single-member node; `apiserver`: none, or a kube-apiserver Pod that serves `/readyz`
    /// (`Some(true)`) or never comes up (`Some(false)`).
    fn of_version(version: EtcdVersion, apiserver: Option<bool>) -> Self {
        let member = Member::on_free_ports("cp-1").unwrap();
        Self::member(version, &member, std::slice::from_ref(&member), apiserver)
    }

    /// The node of `member` in a cluster of `all`.
    fn member(version: EtcdVersion, member: &Member, all: &[Member], apiserver: Option<bool>) -> Self {
        Self::member_on(version, member, all, apiserver, None)
    }

    /// A single-member node whose data directory is a disk of its own (a tmpfs of `bytes`).
    pub(crate) fn with_data_disk(bytes: u64) -> Self {
        let member = Member::on_free_ports("cp-1").unwrap();
        Self::member_on(
            EtcdVersion::V3_5,
            &member,
            std::slice::from_ref(&member),
            None,
            Some(bytes),
        )
    }

    fn member_on(
        version: EtcdVersion,
        member: &Member,
        all: &[Member],
        apiserver: Option<bool>,
        data_disk: Option<u64>,
    ) -> Self {
        let root = tempfile::tempdir().unwrap();
        write_control_plane_node(root.path(), version, member, all, apiserver).unwrap();
        let data_disk =
            data_disk.map(|bytes| Tmpfs::mount_at(&root.path().join("var/lib/etcd"), bytes).unwrap());
        let kubelet =
            FakeKubelet::start(root.path(), &version.etcd(), &root.path().join("etcd.log")).unwrap();
        Self {
            root,
            client: member.client.clone(),
            kubelet: Some(kubelet),
            data_disk,
        }
    }

    pub(crate) fn path(&self, node_path: &str) -> PathBuf {
        self.root.path().join(node_path.trim_start_matches('/'))
    }

    async fn client(&self) -> etcd_client::Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let options = etcd_client::ConnectOptions::new().with_connect_timeout(Duration::from_millis(300));
            if let Ok(mut client) = etcd_client::Client::connect([self.client.as_str()], Some(options)).await
                && client.status().await.is_ok()
            {
                return client;
            }
            assert!(Instant::now() < deadline, "etcd at {} answers", self.client);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn revision(&self) -> i64 {
        let status = self.client().await.status().await.unwrap();
        status.header().unwrap().revision()
    }

    pub(crate) async fn value(&self, key: &str) -> Option<Vec<u8>> {
        let response = self.client().await.get(key, None).await.unwrap();
        response.kvs().first().map(|kv| kv.value().to_vec())
    }

    pub(crate) fn manifests(&self) -> Vec<String> {
        entries(&self.path("/etc/kubernetes/manifests"))
    }

    pub(crate) fn recover(&self, repo: &Repo) -> Command {
        self.recover_stopping_within(repo, "30s")
    }

    fn recover_stopping_within(&self, repo: &Repo, stop_timeout: &str) -> Command {
        self.recover_command(repo, &["latest"], stop_timeout)
    }

    /// `recover --kubeadm` of `source` (a backup ID or `latest`, or a point: `--to-revision R`).
    pub(crate) fn recover_from(&self, repo: &Repo, source: &[&str]) -> Command {
        self.recover_command(repo, source, "30s")
    }

    fn recover_command(&self, repo: &Repo, source: &[&str], stop_timeout: &str) -> Command {
        let mut command = repo.lifeboat();
        command
            .args(["recover", "--kubeadm"])
            .args(source)
            .arg("--identity-file")
            .arg(repo.identity())
            .arg("--root")
            .arg(self.root.path())
            .args([
                "--stop-timeout",
                stop_timeout,
                "--etcd-timeout",
                "60s",
                "--apiserver-timeout",
                "3s",
            ]);
        command
    }
}

impl Drop for NodeTree {
    fn drop(&mut self) {
        self.kubelet.take();
        self.data_disk.take();
    }
}

/// A node with key `before` in its etcd, backed up, then key `after` written.
pub(crate) async fn backed_up_node(apiserver: Option<bool>) -> (NodeTree, Repo, i64) {
    backed_up_node_of(EtcdVersion::V3_5, apiserver).await
}

async fn backed_up_node_of(version: EtcdVersion, apiserver: Option<bool>) -> (NodeTree, Repo, i64) {
    backed_up(NodeTree::of_version(version, apiserver)).await
}

/// `node` with key `before` in its etcd, backed up, then key `after` written.
pub(crate) async fn backed_up(node: NodeTree) -> (NodeTree, Repo, i64) {
    let mut client = node.client().await;
    client
        .put("/registry/namespaces/before", "kept", None)
        .await
        .unwrap();
    let repo = Repo::initialised(Backend::Local);
    run_ok(repo.lifeboat().args(["backup", "--endpoints", &node.client]));
    let revision = client.status().await.unwrap().header().unwrap().revision();
    client
        .put("/registry/namespaces/after", "lost", None)
        .await
        .unwrap();
    (node, repo, revision)
}

/// Every file and directory under `root` with its mode and a hash of its content, but for etcd's
/// data directory (the running member writes it), its log, and the recovery lock (taken, in its
/// directory, before anything is read).
fn tree_hash(root: &std::path::Path) -> Vec<(String, u32, String)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            if ["var/lib/etcd", "etcd.log", "var/lib/lifeboat/recover.lock"].contains(&relative.as_str()) {
                continue;
            }
            if relative == "var/lib/lifeboat" {
                stack.push(path.clone());
                continue;
            }
            let content = match path.is_dir() {
                true => {
                    stack.push(path.clone());
                    String::new()
                }
                false => sha256_hex(&path),
            };
            found.push((relative, mode(&path), content));
        }
    }
    found.sort();
    found
}

/// The node's etcd holds what the backup held, at a revision past anything a client saw.
pub(crate) async fn assert_holds_the_backup(node: &NodeTree, revision: i64) {
    assert_eq!(
        node.value("/registry/namespaces/before").await.as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(node.value("/registry/namespaces/after").await, None);
    let now = node.revision().await;
    assert!(
        now >= revision + 1_000_000_000,
        "revision {now} after a restore of {revision}"
    );
}

fn aside_dirs(node: &NodeTree, suffix: &str) -> Vec<String> {
    entries(&node.path("/var/lib"))
        .into_iter()
        .filter(|e| e.contains(suffix))
        .collect()
}

#[tokio::test]
async fn a_node_recovers_from_a_backup_after_a_plan_that_changes_nothing() {
    let (node, repo, revision) = backed_up_node(None).await;

    // The plan: every step with its paths, and nothing changed (the tree hashed before and
    // after, but for the running member's own data).
    let before = tree_hash(node.root.path());
    let plan = run_ok(node.recover(&repo).arg("--dry-run"));
    assert_eq!(tree_hash(node.root.path()), before, "a dry run changes nothing");
    let versions = format!("etcd {0} data on etcd {0}", EtcdVersion::V3_5.expected());
    for needle in [
        "0. preflight: running as root",
        versions.as_str(),
        "2. stop: move the 2 static Pod manifests (etcd.yaml, kube-scheduler.yaml)",
        "--bump-revision 1000000000 --mark-compacted",
        "member cp-1",
        "--initial-cluster-token lifeboat-",
        "Dry run: nothing was changed.",
    ] {
        assert!(plan.contains(needle), "{needle:?} in\n{plan}");
    }
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);
    assert!(!node.path("/var/lib/lifeboat/recover.json").exists());

    // Another recovery holds the lock: refused, nothing changed.
    let lock_dir = node.path("/var/lib/lifeboat");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let file = std::fs::File::create(lock_dir.join("recover.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let locked = run_failing(node.recover(&repo).arg("--yes"), 1);
    drop(held);
    assert!(locked.contains("another lifeboat recover holds"), "{locked}");
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);

    // Not on a terminal and without --yes: refused, nothing changed.
    let refused = run_failing(&mut node.recover(&repo), 1);
    assert!(refused.contains("--yes"), "{refused}");
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);
    // On a terminal the plan is confirmed: any answer but "yes" changes nothing.
    let answered = on_a_terminal(node.recover(&repo), "no\n");
    assert!(answered.contains("Type yes to carry out this plan"), "{answered}");
    assert!(
        answered.contains("not confirmed; nothing was changed"),
        "{answered}"
    );
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);

    let output = run(node.recover(&repo).arg("--yes"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{stderr}\n{}",
        std::fs::read_to_string(node.path("/etcd.log")).unwrap_or_default()
    );
    for step in [
        "[1/7] safety-copy",
        "[2/7] stop",
        "[4/7] restore",
        "[5/7] start-etcd",
        "no kube-apiserver static Pod",
    ] {
        assert!(stderr.contains(step), "{step:?} in {stderr}");
    }
    assert!(
        stdout.contains("restart the kubelet on every other node"),
        "{stdout}"
    );

    // The data is the backup's, the revision jumped past anything a client saw.
    assert_holds_the_backup(&node, revision).await;
    // Every manifest is back, the old data and the running member's snapshot are kept.
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);
    assert_eq!(aside_dirs(&node, ".before-recover-").len(), 1);
    // Owned as the Pod's security context runs etcd (kubeadm's rootless control plane), 0700.
    let data = node.path("/var/lib/etcd");
    let owner = |path: &std::path::Path| {
        let metadata = std::fs::metadata(path).unwrap();
        (
            std::os::unix::fs::MetadataExt::uid(&metadata),
            std::os::unix::fs::MetadataExt::gid(&metadata),
        )
    };
    assert_eq!(owner(&data), (2000, 2001));
    assert_eq!(owner(&data.join("member/snap/db")), (2000, 2001));
    assert_eq!(mode(&data), 0o700);
    let kept = entries(&node.path("/var/lib/lifeboat"));
    let run_dir = kept
        .iter()
        .find(|e| e.starts_with("recover-"))
        .expect("a run directory");
    assert!(
        node.path(&format!("/var/lib/lifeboat/{run_dir}/pre-recover.db"))
            .exists()
    );
    assert!(
        !node
            .path(&format!("/var/lib/lifeboat/{run_dir}/snapshot.db"))
            .exists(),
        "the fetched plain snapshot is not kept"
    );
    assert_eq!(mode(&node.path(&format!("/var/lib/lifeboat/{run_dir}"))), 0o700);
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.path("/var/lib/lifeboat/recover.json")).unwrap()).unwrap();
    assert_eq!(journal["finished"], true, "{journal}");
}

/// Starts a recovery and kills it (SIGKILL) once it has begun step `step`.
fn killed_at(command: Command, step: &str) -> String {
    signalled_at(command, step, nix::sys::signal::Signal::SIGKILL).1
}

/// Runs `command` until its log shows `step`, then sends it `signal`; its exit status and log.
fn signalled_at(
    mut command: Command,
    step: &str,
    signal: nix::sys::signal::Signal,
) -> (std::process::ExitStatus, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child: Child = command
        .arg("--yes")
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let marker = step.to_string();
    assert!(
        wait_until(&mut child, Duration::from_secs(60), || {
            std::fs::read_to_string(log.path())
                .unwrap_or_default()
                .contains(&marker)
        }),
        "the run reached {step}: {}",
        std::fs::read_to_string(log.path()).unwrap_or_default()
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    (status, std::fs::read_to_string(log.path()).unwrap())
}

/// Runs `command` on a pseudo-terminal (util-linux `script`) that types `input`; what the
/// terminal showed.
fn on_a_terminal(command: Command, input: &str) -> String {
    let quote = |arg: &std::ffi::OsStr| format!("'{}'", arg.to_string_lossy().replace('\'', "'\\''"));
    let line = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let mut child = script
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `command` until it kills itself (SIGKILL) at `point` (`begin`, or `worked`: its work
/// done, not yet in the journal) of `step`, through the recover failpoint.
pub(crate) fn crashed_at(command: &mut Command, step: &str, point: &str) {
    let output = command
        .arg("--yes")
        .env("LIFEBOAT_FAILPOINT", format!("recover:{step}:{point}"))
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&output.status),
        Some(9),
        "killed at {step}:{point}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_run_killed_in_the_middle_resumes_and_another_is_rolled_back() {
    // Killed as the data directory goes aside: the rerun goes on from there.
    let (node, repo, _) = backed_up_node(None).await;
    killed_at(node.recover(&repo), "[3/7] data-aside");
    let resumed = run(&mut node.recover(&repo));
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Resuming run"), "{stdout}");
    assert!(stderr.contains("(stop) was done before"), "{stderr}");
    assert_eq!(node.value("/registry/namespaces/after").await, None);
    assert_eq!(
        node.value("/registry/namespaces/before").await.as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);

    // Killed while it restores: --abort puts the node back as it was, data and manifests.
    let (node, repo, _) = backed_up_node(None).await;
    killed_at(node.recover(&repo), "[4/7] restore");
    let other = run_failing(
        repo.lifeboat()
            .args(["recover", "--kubeadm", "--file", "/nonexistent.db", "--root"])
            .arg(node.root.path()),
        1,
    );
    assert!(other.contains("/nonexistent.db"), "{other}");
    let aborted = run_ok(
        repo.lifeboat()
            .args(["recover", "--kubeadm", "--abort", "--root"])
            .arg(node.root.path()),
    );
    assert!(aborted.contains("rolled back"), "{aborted}");
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);
    assert!(aside_dirs(&node, ".before-recover-").is_empty());
    // The old member runs again, with what it held: the key written after the backup too.
    assert_eq!(
        node.value("/registry/namespaces/after").await.as_deref(),
        Some(&b"lost"[..])
    );
    // A journal that names other paths than a run writes is refused, not followed.
    let journal = node.path("/var/lib/lifeboat/recover.json");
    let (node2, repo2, _) = backed_up_node(None).await;
    killed_at(node2.recover(&repo2), "[3/7] data-aside");
    let journal2 = node2.path("/var/lib/lifeboat/recover.json");
    let text = std::fs::read_to_string(&journal2).unwrap();
    // Paths a run writes are derived from the node and the run's ID: a journal that names
    // another data directory is refused, and one whose run ID is not a run's too.
    assert!(!text.contains(".before-recover-"), "{text}");
    std::fs::write(
        &journal2,
        text.replace(
            "\"data_dir\": \"/var/lib/etcd\"",
            "\"data_dir\": \"/var/lib/elsewhere\"",
        ),
    )
    .unwrap();
    let refused_abort = || {
        run_failing(
            repo2
                .lifeboat()
                .args(["recover", "--kubeadm", "--abort", "--root"])
                .arg(node2.root.path()),
            1,
        )
    };
    let forged = refused_abort();
    assert!(
        forged.contains("recorded data directory /var/lib/elsewhere"),
        "{forged}"
    );
    let run_id = text
        .split("\"run\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    std::fs::write(&journal2, text.replace(run_id, "../../etc")).unwrap();
    let forged = refused_abort();
    assert!(forged.contains("names paths a run does not write"), "{forged}");
    // Nor one that would have `abort` remove a file outside the kubeadm set.
    assert!(text.contains("\"added_files\": null"), "{text}");
    std::fs::write(
        &journal2,
        text.replace("\"added_files\": null", "\"added_files\": [\"etc/passwd\"]"),
    )
    .unwrap();
    let forged = refused_abort();
    assert!(forged.contains("names paths a run does not write"), "{forged}");
    std::fs::write(&journal2, text).unwrap();
    run_ok(
        repo2
            .lifeboat()
            .args(["recover", "--kubeadm", "--abort", "--root"])
            .arg(node2.root.path()),
    );
    assert!(journal.exists());
    let again = run_failing(
        repo.lifeboat()
            .args(["recover", "--kubeadm", "--abort", "--root"])
            .arg(node.root.path()),
        1,
    );
    assert!(again.contains("no recovery in progress"), "{again}");
}

#[tokio::test]
async fn an_api_server_that_does_not_come_back_is_exit_3_with_etcd_recovered() {
    let (node, repo, _) = backed_up_node(Some(false)).await;
    let output = run(node.recover(&repo).arg("--yes"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the API server was not ready within 3 s"),
        "{stderr}"
    );
    assert_eq!(
        stderr.trim().lines().last().unwrap().matches("Error:").count(),
        1,
        "{stderr}"
    );
    // etcd is recovered and every manifest is back all the same.
    assert_eq!(node.value("/registry/namespaces/after").await, None);
    assert_eq!(
        node.manifests(),
        ["etcd.yaml", "kube-apiserver.yaml", "kube-scheduler.yaml"]
    );
}

#[test]
fn a_node_without_an_etcd_static_pod_is_refused_before_anything() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/kubernetes/manifests")).unwrap();
    let error = run_failing(
        lifeboat()
            .args(["recover", "--kubeadm", "--file", "/x.db", "--dry-run", "--root"])
            .arg(root.path()),
        1,
    );
    assert!(
        error.contains("no etcd static Pod in /etc/kubernetes/manifests"),
        "{error}"
    );
}

#[tokio::test]
async fn a_damaged_backup_is_refused_before_the_node_is_touched() {
    let (node, repo, _) = backed_up_node(None).await;
    let object = files_under(&repo.root())
        .into_iter()
        .find(|f| f.ends_with("etcd-snapshot.db"))
        .unwrap();
    let path = repo.root().join(object);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let error = run_failing(node.recover(&repo).arg("--yes"), 1);
    assert!(error.contains("damaged"), "{error}");
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);
    assert!(aside_dirs(&node, ".before-recover-").is_empty());
    assert!(
        !node.path("/var/lib/lifeboat/recover.json").exists(),
        "no run was started"
    );
    assert_eq!(
        node.value("/registry/namespaces/after").await.as_deref(),
        Some(&b"lost"[..])
    );
}

#[tokio::test]
async fn every_member_running_the_same_command_makes_one_new_cluster() {
    let members: Vec<Member> = ["cp-1", "cp-2", "cp-3"]
        .iter()
        .map(|n| Member::on_free_ports(n).unwrap())
        .collect();
    let nodes: Vec<NodeTree> = members
        .iter()
        .map(|m| NodeTree::member(EtcdVersion::V3_5, m, &members, None))
        .collect();
    let mut client = nodes[0].client().await;
    client
        .put("/registry/namespaces/before", "kept", None)
        .await
        .unwrap();
    let repo = Repo::initialised(Backend::Local);
    run_ok(repo.lifeboat().args(["backup", "--endpoints", &nodes[0].client]));
    client
        .put("/registry/namespaces/after", "lost", None)
        .await
        .unwrap();
    let old_cluster = client.status().await.unwrap().header().unwrap().cluster_id();

    // One node after the other, as an operator goes round; each takes its flags from its own
    // etcd.yaml and the same token from the backup.
    // The first member waits for a quorum (exit 3, nothing more to do there); with the second, a
    // quorum of the new cluster is up and the rest confirm it.
    let mut tokens = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let output = run(node.recover(&repo).arg("--yes"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected = if index == 0 { 3 } else { 0 };
        assert_eq!(
            output.status.code(),
            Some(expected),
            "node {index}: {stdout}\n{stderr}"
        );
        if index == 0 {
            assert!(
                stderr.contains("run the same command on the other members (cp-2, cp-3)"),
                "{stderr}"
            );
            // The old cluster still has a quorum, and its agent backs it up once more: the
            // other members' `latest` must still be the backup the first one restored.
            run_ok(repo.lifeboat().args(["backup", "--endpoints", &nodes[1].client]));
        } else {
            assert!(stdout.contains("latest is the backup run "), "{stdout}");
        }
        let token = stdout
            .split("--initial-cluster-token ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap()
            .to_string();
        tokens.push(token);
    }
    assert!(
        tokens
            .iter()
            .all(|t| *t == tokens[0] && t.starts_with("lifeboat-")),
        "{tokens:?}"
    );

    // One cluster: three members, one new cluster ID, the backup's data on each (linearizable).
    let mut clusters = Vec::new();
    for node in &nodes {
        let mut client = node.client().await;
        let members = client.member_list().await.unwrap();
        assert_eq!(members.members().len(), 3);
        clusters.push(members.header().unwrap().cluster_id());
        assert_eq!(
            node.value("/registry/namespaces/before").await.as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(node.value("/registry/namespaces/after").await, None);
    }
    assert!(clusters.iter().all(|c| *c == clusters[0]), "{clusters:?}");
    assert_ne!(clusters[0], old_cluster, "a new cluster, not the old one");
    // It takes writes: a leader was elected.
    nodes[2]
        .client()
        .await
        .put("/registry/namespaces/new", "v", None)
        .await
        .unwrap();
    assert_eq!(
        nodes[0].value("/registry/namespaces/new").await.as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn with_files_the_control_plane_files_come_back_first_and_abort_would_have_them() {
    let (node, repo, _) = backed_up_node(None).await;
    // The node's PKI and admin kubeconfig, as kubeadm leaves them.
    back_up_the_files(&node, &repo);
    let admin = node.path("/etc/kubernetes/admin.conf");
    let original = std::fs::read(&admin).unwrap();
    // The node loses its CA and its admin kubeconfig is overwritten.
    std::fs::write(&admin, "broken\n").unwrap();
    std::fs::remove_file(node.path("/etc/kubernetes/pki/ca.crt")).unwrap();

    let plan = run_ok(node.recover(&repo).args(["--with-files", "latest", "--dry-run"]));
    assert!(plan.contains("4. put the files of backup"), "{plan}");
    let output = run(node.recover(&repo).args(["--with-files", "latest", "--yes"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("[4/8] files"), "{stderr}");
    assert_eq!(std::fs::read(&admin).unwrap(), original);
    assert!(node.path("/etc/kubernetes/pki/ca.crt").exists());
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);
    assert_eq!(node.value("/registry/namespaces/after").await, None);
    // What was there before is kept, to put back on --abort.
    let run_dir = entries(&node.path("/var/lib/lifeboat"))
        .into_iter()
        .find(|e| e.starts_with("recover-"))
        .unwrap();
    let before = std::fs::read(node.path(&format!("/var/lib/lifeboat/{run_dir}/before-files.tar"))).unwrap();
    assert!(
        before.windows(7).any(|w| w == b"broken\n"),
        "the overwritten kubeconfig is in the saved set"
    );
}

/// Copies kubeadm's PKI and admin kubeconfig into the node and takes a files backup of it.
fn back_up_the_files(node: &NodeTree, repo: &Repo) {
    let tree = tempfile::tempdir().unwrap();
    lifeboat_test_support::control_plane_tree(tree.path(), true).unwrap();
    for relative in ["etc/kubernetes/pki", "etc/kubernetes/admin.conf"] {
        let status = Command::new("cp")
            .arg("-a")
            .arg(tree.path().join(relative))
            .arg(node.path(&format!("/{relative}")))
            .status()
            .unwrap();
        assert!(status.success());
    }
    run_ok(
        repo.lifeboat()
            .args(["backup", "--files", "--root"])
            .arg(node.root.path()),
    );
}

#[tokio::test]
async fn a_node_that_lost_etc_kubernetes_and_its_data_is_rebuilt_from_the_files_backup() {
    let (node, repo, _) = backed_up_node(None).await;
    back_up_the_files(&node, &repo);
    let admin = std::fs::read(node.path("/etc/kubernetes/admin.conf")).unwrap();
    // A rebuilt node: no /etc/kubernetes, no etcd data (the kubelet config remains or not).
    std::fs::remove_dir_all(node.path("/etc/kubernetes")).unwrap();
    std::fs::remove_dir_all(node.path("/var/lib/etcd")).unwrap();
    let refused = run_failing(node.recover(&repo).arg("--dry-run"), 1);
    assert!(
        refused.contains("no etcd static Pod in /etc/kubernetes/manifests")
            && refused.contains("--with-files"),
        "{refused}"
    );
    let plan = run_ok(node.recover(&repo).args(["--with-files", "latest", "--dry-run"]));
    assert!(
        plan.contains("etcd member cp-1 (from the files backup)"),
        "{plan}"
    );
    assert!(
        !node.path("/etc/kubernetes").exists(),
        "a dry run changes nothing"
    );

    // Crashed before or once the files are in place, then rolled back: the node is empty again.
    for (step, point) in [("stop", "worked"), ("files", "worked")] {
        crashed_at(node.recover(&repo).args(["--with-files", "latest"]), step, point);
        run_ok(
            repo.lifeboat()
                .args(["recover", "--kubeadm", "--abort", "--root"])
                .arg(node.root.path()),
        );
        assert_eq!(
            files_under(&node.path("/etc/kubernetes")),
            Vec::<String>::new(),
            "after {step}:{point}"
        );
        assert!(!node.path("/etc/kubernetes/pki").exists(), "after {step}:{point}");
        assert!(!node.path("/var/lib/etcd").exists(), "after {step}:{point}");
    }

    // Crashed before the files are in place, then resumed.
    crashed_at(
        node.recover(&repo).args(["--with-files", "latest"]),
        "data-aside",
        "begin",
    );
    assert!(!node.path("/etc/kubernetes/admin.conf").exists());
    let output = run(node.recover(&repo).args(["--with-files", "latest", "--yes"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        std::fs::read(node.path("/etc/kubernetes/admin.conf")).unwrap(),
        admin
    );
    assert!(node.path("/etc/kubernetes/pki/ca.crt").exists());
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);
    assert_eq!(node.value("/registry/namespaces/after").await, None);
    assert_eq!(
        node.value("/registry/namespaces/before").await.as_deref(),
        Some(&b"kept"[..])
    );
}

#[tokio::test]
async fn containers_crictl_still_lists_keep_the_run_waiting() {
    let (node, repo, _) = backed_up_node(None).await;
    // crictl comes from no registry here: a script stands in for it and for the tree's
    // containerd, listing an etcd container until told otherwise, and records how it was asked.
    let bin = tempfile::tempdir().unwrap();
    let asked = bin.path().join("asked");
    let listing = bin.path().join("etcd-listed");
    std::fs::write(&listing, "").unwrap();
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {asked}\ncase \"$*\" in *container.name=etcd*) [ -e {listing} ] && echo 4f2a9c;; esac\nexit 0\n",
        asked = asked.display(),
        listing = listing.display()
    );
    let crictl = bin.path().join("crictl");
    std::fs::write(&crictl, script).unwrap();
    std::fs::set_permissions(&crictl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap());
    let recovered_with_crictl = |mut command: Command| {
        let output = command.arg("--yes").env("PATH", &path).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
    };
    // Without the tree's containerd socket, crictl is not asked about this tree.
    recovered_with_crictl(node.recover(&repo));
    assert!(!asked.exists(), "crictl asked without the tree's runtime");

    let (node, repo, _) = backed_up_node(None).await;
    let socket = node.path("/run/containerd/containerd.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    std::fs::write(&socket, "").unwrap();
    let mut command = node.recover_stopping_within(&repo, "8s");
    command.arg("--yes").env("PATH", &path);
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("crictl still lists the etcd container"),
        "{stderr}"
    );
    let asked_with = std::fs::read_to_string(&asked).unwrap();
    assert!(
        asked_with.contains(&format!(
            "--runtime-endpoint unix://{} ps -q --label io.kubernetes.container.name=etcd",
            socket.display()
        )),
        "{asked_with}"
    );
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);
    // Once crictl lists nothing, the same run goes through.
    std::fs::remove_file(&listing).unwrap();
    recovered_with_crictl(node.recover(&repo));
    assert_eq!(node.value("/registry/namespaces/after").await, None);
}

#[tokio::test]
async fn sigterm_stops_a_run_between_steps_and_the_rerun_resumes() {
    let (node, repo, _) = backed_up_node(None).await;
    let (status, log) = signalled_at(
        node.recover(&repo),
        "[2/7] stop",
        nix::sys::signal::Signal::SIGTERM,
    );
    assert_eq!(status.code(), Some(143), "{log}");
    assert!(
        !log.contains("[5/7]"),
        "stopped before etcd was started again: {log}"
    );
    let resumed = run(&mut node.recover(&repo));
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert_eq!(resumed.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Resuming run"), "{stdout}");
    assert_eq!(node.value("/registry/namespaces/after").await, None);
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);
}

#[tokio::test]
async fn the_bump_is_measured_from_the_revision_the_agent_saw() {
    let (node, repo, snapshot_revision) = backed_up_node(None).await;
    let mut client = node.client().await;
    for n in 0..40 {
        client
            .put(format!("/registry/configmaps/default/c{n}"), "v", None)
            .await
            .unwrap();
    }
    let live = client.status().await.unwrap().header().unwrap().revision();
    let cluster = client.status().await.unwrap().header().unwrap().cluster_id();
    // The agent on the node, leading its single-member cluster, records the revision it sees.
    let work = tempfile::tempdir().unwrap();
    let config = format!(
        "repository: {}\nlisten: {}\nleader: etcd\nleader_check: 300ms\netcd: {{endpoints: [{}]}}\njobs:\n  - {{name: pki, kind: files, every: 1h, root: {}}}\n",
        repo.location(),
        crate::agent::listen(),
        node.client,
        work.path().display()
    );
    let mut agent = crate::agent::Agent::start(repo.lifeboat(), work.path(), "agent", &config);
    let mark_file = repo.root().join(format!("revisions/{cluster:x}.json"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !mark_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.terminate();
    let mark: serde_json::Value = serde_json::from_slice(&std::fs::read(&mark_file).unwrap()).unwrap();
    // The agent's own campaign key (etcd's election) is a write of its own.
    let seen = mark["revision"].as_i64().unwrap();
    assert!((live..=live + 2).contains(&seen), "{mark}, live {live}");
    assert_eq!(mark["cluster_id"].as_str(), Some(format!("{cluster:x}").as_str()));

    let plan = run_ok(node.recover(&repo).arg("--dry-run"));
    let line = plan.lines().find(|l| l.contains("revision bump:")).unwrap();
    assert!(
        line.contains(&format!("the agent saw cluster {cluster:x} at revision {seen}")),
        "{line}"
    );
    let recovered = run_ok(node.recover(&repo).arg("--yes"));
    let restored = node.revision().await;
    let bump = restored - snapshot_revision;
    // What the agent saw, plus the margin, plus what may have come since: far below the blind 1e9.
    assert!(bump > live - snapshot_revision + 1_000_000, "bump {bump}");
    assert!(bump < 2_000_000, "bump {bump}");
    assert!(
        recovered.contains(&format!("revision bump: {bump}:")),
        "{recovered}"
    );
}

#[tokio::test]
async fn a_node_whose_etcd_requires_client_certificates_recovers_over_mtls() {
    let member = Member::with_mtls("cp-1").unwrap();
    let node = NodeTree::member(EtcdVersion::V3_5, &member, std::slice::from_ref(&member), None);
    let pki = node.path("/etc/kubernetes/pki/etcd");
    let tls: Vec<String> = [
        ("--cacert", "ca.crt"),
        ("--cert", "healthcheck-client.crt"),
        ("--key", "healthcheck-client.key"),
    ]
    .iter()
    .flat_map(|(flag, file)| [flag.to_string(), pki.join(file).display().to_string()])
    .collect();
    let etcdctl = |args: &[&str]| {
        Command::new(EtcdVersion::V3_5.etcdctl())
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &member.client])
            .args(&tls)
            .args(args)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !etcdctl(&["put", "/registry/namespaces/before", "kept"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "etcd answers over mTLS");
        std::thread::sleep(Duration::from_millis(100));
    }
    let repo = Repo::initialised(Backend::Local);
    run_ok(
        repo.lifeboat()
            .args(["backup", "--endpoints", &member.client])
            .args(&tls),
    );
    assert!(
        etcdctl(&["put", "/registry/namespaces/after", "lost"])
            .status
            .success()
    );

    let output = run(node.recover(&repo).arg("--yes"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // Both talks with the member went over mTLS with kubeadm's healthcheck-client certificate.
    assert!(stderr.contains("the running member's data is saved"), "{stderr}");
    assert!(stderr.contains("etcd answers at revision"), "{stderr}");
    let value = |key: &str| String::from_utf8(etcdctl(&["get", key, "--print-value-only"]).stdout).unwrap();
    assert_eq!(value("/registry/namespaces/before").trim(), "kept");
    assert_eq!(value("/registry/namespaces/after").trim(), "");
}

#[tokio::test]
async fn a_control_plane_that_does_not_stop_is_rolled_back_at_the_stop_timeout() {
    let (node, repo, _) = backed_up_node(None).await;
    // Something else holds a file in the data directory and never lets go (the wait outlasts
    // the kubelet's up to 5 s to stop etcd, so the holder is what remains).
    let held = node.path("/var/lib/etcd/member/snap/db");
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 3<\"$0\"; exec sleep 60")
        .arg(&held)
        .spawn()
        .unwrap();
    let output = run(node.recover_stopping_within(&repo, "9s").arg("--yes"));
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error = stderr.trim().lines().last().unwrap();
    assert!(error.starts_with("Error: recover: stop: "), "{stderr}");
    assert!(error.contains("did not stop within 9 s"), "{error}");
    assert!(error.contains("still uses the data directory"), "{error}");
    // Back as it was: manifests in place, the old member serving, the data directory untouched.
    assert_eq!(node.manifests(), ["etcd.yaml", "kube-scheduler.yaml"]);
    assert!(aside_dirs(&node, ".before-recover-").is_empty());
    assert_eq!(
        node.value("/registry/namespaces/after").await.as_deref(),
        Some(&b"lost"[..])
    );
}

#[tokio::test]
async fn the_api_server_comes_back_after_etcd_and_before_the_rest() {
    let (node, repo, _) = backed_up_node(Some(true)).await;
    let output = run(node.recover(&repo).arg("--yes"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let etcd = stderr.find("etcd answers at revision").expect("etcd confirmed");
    let ready = stderr.find("/readyz is ready").expect("the API server confirmed");
    let rest = stderr.find("[7/7] start-rest").expect("the rest put back");
    assert!(etcd < ready && ready < rest, "{stderr}");
    assert_eq!(
        node.manifests(),
        ["etcd.yaml", "kube-apiserver.yaml", "kube-scheduler.yaml"]
    );
}

#[tokio::test]
async fn a_leftover_copy_of_etcd_yaml_in_the_manifests_directory_is_reported() {
    let (node, repo, _) = backed_up_node(None).await;
    let pods = node.path("/etc/kubernetes/manifests");
    let text = std::fs::read_to_string(pods.join("etcd.yaml")).unwrap();
    // Not runnable (its ports clash), but the kubelet would try: a second etcd Pod.
    std::fs::write(pods.join("etcd.yaml.bak"), &text).unwrap();
    let error = run_failing(node.recover(&repo).arg("--dry-run"), 1);
    assert!(
        error.contains("etcd.yaml and etcd.yaml.bak") && error.contains("both define an etcd Pod"),
        "{error}"
    );
    std::fs::remove_file(pods.join("etcd.yaml.bak")).unwrap();
}

/// A node of each supported etcd (its image tag names the version) recovers the same way, and
/// the plan says which version rule it applied.
#[tokio::test]
async fn a_node_of_every_etcd_version_recovers_the_same_way() {
    for version in [EtcdVersion::V3_4, EtcdVersion::V3_6, EtcdVersion::V3_7] {
        let (node, repo, revision) = backed_up_node_of(version, None).await;
        let output = run(node.recover(&repo).arg("--yes"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{version:?}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let applied = format!("etcd {0} data on etcd {0}", version.expected());
        assert!(stdout.contains(&applied), "{version:?}: {stdout}");
        assert_holds_the_backup(&node, revision).await;
        assert_eq!(aside_dirs(&node, ".before-recover-").len(), 1);
    }
}

/// A backup of a newer minor than the node's etcd image, or two minors older, is refused before
/// anything on the node changes, naming both versions.
#[tokio::test]
async fn recover_follows_etcds_upgrade_policy() {
    let (newer, older) = (
        backed_up_node_of(EtcdVersion::V3_6, None).await,
        backed_up_node_of(EtcdVersion::V3_4, None).await,
    );
    let cases = [
        (
            &newer.1,
            EtcdVersion::V3_6,
            &older.0,
            EtcdVersion::V3_4,
            "etcd cannot downgrade data); use etcd 3.6 or newer",
        ),
        (
            &older.1,
            EtcdVersion::V3_4,
            &newer.0,
            EtcdVersion::V3_6,
            "etcd upgrades one minor at a time; use etcd 3.5",
        ),
    ];
    for (repo, data, node, image, reason) in cases {
        let before = tree_hash(node.root.path());
        // Another node's backup, on purpose: its cluster is not this node's.
        let refused = run_failing(node.recover(repo).args(["--yes", "--force-cluster"]), 1);
        assert!(
            refused.contains(&format!("data written by etcd {}", data.expected()))
                && refused.contains(&format!("on etcd {}", image.expected()))
                && refused.contains(reason),
            "{refused}"
        );
        assert_eq!(tree_hash(node.root.path()), before, "nothing on the node changed");
    }
}

/// `recover --kubeadm --to-revision R`: the node's etcd holds the cluster as it was at R, from
/// its backup and the segments captured after it, with the revision bumped past anything seen.
#[tokio::test]
async fn a_node_recovers_to_a_point_in_time_from_its_captured_segments() {
    let (node, repo, _) = backed_up_node_of(EtcdVersion::V3_6, None).await;
    let mut capture = Spawned(
        repo.lifeboat()
            .args(["capture", "--segment", "200ms", "--hash-every", "0s"])
            .args(["--endpoints", &node.client])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut client = node.client().await;
    client
        .put("/registry/namespaces/point", "as it was", None)
        .await
        .unwrap();
    let point = node.revision().await;
    client
        .put("/registry/namespaces/point", "changed later", None)
        .await
        .unwrap();
    let later = node.revision().await;
    crate::pitr::wait_restorable(&repo, &mut capture, later);
    crate::pitr::stop(capture);

    // A time that moves with the clock would resolve to another point on the next member.
    let moving = run_failing(node.recover_from(&repo, &["--to-time", "1s"]).arg("--yes"), 1);
    assert!(moving.contains("RFC 3339"), "{moving}");
    let abort = run(node.recover_from(&repo, &["--to-revision", "5"]).arg("--abort"));
    assert_eq!(abort.status.code(), Some(2), "--abort takes no point");

    let target = ["--to-revision".to_string(), point.to_string()];
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let plan = run_ok(node.recover_from(&repo, &target).arg("--dry-run"));
    assert!(
        plan.contains(&format!("at revision {point}")) && plan.contains("captured segments replayed"),
        "{plan}"
    );
    let output = run(node.recover_from(&repo, &target).arg("--yes"));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        node.value("/registry/namespaces/point").await.as_deref(),
        Some(&b"as it was"[..])
    );
    // Written after the backup, before the capture began: replayed from etcd's history.
    assert_eq!(
        node.value("/registry/namespaces/after").await.as_deref(),
        Some(&b"lost"[..])
    );
    let now = node.revision().await;
    assert!(
        now >= point + 1_000_000_000,
        "revision {now} after a restore of {point}"
    );
    // The repository pins the point for the other members.
    let pins: Vec<serde_json::Value> = std::fs::read_dir(repo.root().join("recoveries"))
        .unwrap()
        .map(|entry| serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap())
        .collect();
    assert_eq!(pins.len(), 1, "{pins:?}");
    assert_eq!(pins[0]["revision"], point, "{pins:?}");
    // The journal names the point the run restored.
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.path("/var/lib/lifeboat/recover.json")).unwrap()).unwrap();
    assert_eq!(journal["finished"], true, "{journal}");
    assert!(
        journal["source"]
            .as_str()
            .unwrap()
            .ends_with(&format!("at revision {point}")),
        "{journal}"
    );
}
