//! Point-in-time recovery against real etcd 3.5 and 3.6: `capture` follows every change
//! (transactions of many keys, a DeleteRange, leases, a lease that expires) into segments;
//! `restore --to-revision R` and `--to-time T` write data whose HashKV at R equals etcd's own
//! answer for R, which boots serving exactly the keys etcd served at R (revisions, versions and
//! leases included); a capture killed and restarted continues without a gap; a start revision
//! compacted away takes a full backup and records the gap, and no target inside it is offered.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use etcd_client::{Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp};
use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion, ExistingMember, free_port};
use serde_json::Value;

use crate::common::*;
use crate::repository::{Backend, Repo};

/// key → (value, create_revision, mod_revision, version, lease)
type Dump = BTreeMap<Vec<u8>, (Vec<u8>, i64, i64, i64, i64)>;

async fn dump_at(client: &mut Client, revision: i64) -> Dump {
    let response = client
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_revision(revision)),
        )
        .await
        .unwrap();
    response
        .kvs()
        .iter()
        .map(|kv| {
            let fields = (
                kv.value().to_vec(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease(),
            );
            (kv.key().to_vec(), fields)
        })
        .collect()
}

async fn revision(client: &mut Client) -> i64 {
    client.status().await.unwrap().header().unwrap().revision()
}

fn capture(repo: &Repo, server: &EtcdServer) -> Spawned {
    Spawned(
        repo.lifeboat()
            .args(["capture", "--segment", "200ms", "--hash-every", "0s"])
            .args(server.etcdctl_args())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

pub(crate) fn ranges(repo: &Repo) -> Vec<Value> {
    let out = run_ok(repo.lifeboat().args(["pitr", "ranges", "-w", "json"]));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Waits (bounded) until the repository can restore `revision`.
pub(crate) fn wait_restorable(repo: &Repo, child: &mut Child, revision: i64) {
    let reached = wait_until(child, Duration::from_secs(30), || {
        ranges(repo)
            .iter()
            .any(|r| r["to_revision"].as_i64().unwrap() >= revision)
    });
    assert!(
        reached,
        "revision {revision} never became restorable: {:?}",
        ranges(repo)
    );
}

/// Stops a capture with SIGTERM; it exits 0 once it stored what it received.
pub(crate) fn stop(mut child: Spawned) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), Some(0));
}

/// Restores `target` (`--to-revision R` or `--to-time T`) and returns the JSON report.
fn restore_point(repo: &Repo, dir: &Path, name: &str, peer_url: &str, target: &[&str]) -> Value {
    let out = run_ok(
        repo.lifeboat()
            .args(["restore", "-w", "json", "--identity-file"])
            .arg(repo.identity())
            .args(target)
            .arg(format!("--data-dir={}", dir.join(name).display()))
            .args(["--name", name])
            .arg(format!("--initial-cluster={name}={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}")),
    );
    serde_json::from_str(&out).unwrap()
}

/// Restores revision `point` into `dir/name` (its peer on a free port): the JSON report and the
/// peer URL.
pub(crate) fn restore_revision(repo: &Repo, dir: &Path, name: &str, point: i64) -> (Value, String) {
    let peer_url = format!("http://127.0.0.1:{}", free_port().unwrap());
    let report = restore_point(repo, dir, name, &peer_url, &["--to-revision", &point.to_string()]);
    (report, peer_url)
}

/// Our HashKV of the restored member at `revision`.
pub(crate) fn restored_hash(db: &Path, revision: i64) -> u64 {
    let out = run_ok(
        lifeboat()
            .args(["snapshot", "hashkv", "-w", "json"])
            .arg(db)
            .arg(format!("--revision={revision}")),
    );
    serde_json::from_str::<Value>(&out).unwrap()["hash"]
        .as_u64()
        .unwrap()
}

async fn points_in_time(version: EtcdVersion) {
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(EtcdConfig::new(version)).await.unwrap();
    let mut client = server.member().await.unwrap().client();
    // The namespaces every cluster has: the drill below checks for them.
    for namespace in ["default", "kube-system"] {
        client
            .put(format!("/registry/namespaces/{namespace}"), "{}", None)
            .await
            .unwrap();
    }
    for i in 0..20 {
        client
            .put(format!("/registry/pods/default/p{i}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    let repo = Repo::initialised(Backend::Local);
    run_ok(repo.lifeboat().arg("backup").args(server.etcdctl_args()));
    let mut child = capture(&repo, &server);
    let mut points = Vec::new();

    // Overwrites and a delete.
    for i in 0..10 {
        client
            .put(format!("/registry/pods/default/p{i}"), format!("w{i}"), None)
            .await
            .unwrap();
    }
    client.delete("/registry/pods/default/p19", None).await.unwrap();
    points.push(revision(&mut client).await);
    // One transaction of many keys: one revision, many sub-revisions.
    let puts: Vec<TxnOp> = (0..40)
        .map(|i| {
            TxnOp::put(
                format!("/registry/configmaps/kube-system/c{i:02}"),
                vec![b'x'; 300],
                None,
            )
        })
        .collect();
    let txn = Txn::new()
        .when([Compare::version("/registry/none", CompareOp::Equal, 0)])
        .and_then(puts);
    client.txn(txn).await.unwrap();
    points.push(revision(&mut client).await);
    // A DeleteRange: one revision, a tombstone per key.
    client
        .delete(
            "/registry/configmaps/kube-system/c1",
            Some(DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    points.push(revision(&mut client).await);
    // Leases: a long one kept, a short one that expires during the capture.
    let long = client.lease_grant(600, None).await.unwrap().id();
    let short = client.lease_grant(2, None).await.unwrap().id();
    for i in 0..3 {
        let lease = PutOptions::new().with_lease(long);
        client
            .put(format!("/registry/events/default/e{i}"), "event", Some(lease))
            .await
            .unwrap();
    }
    client
        .put(
            "/registry/masterleases/10.0.0.1",
            "m",
            Some(PutOptions::new().with_lease(short)),
        )
        .await
        .unwrap();
    points.push(revision(&mut client).await);

    // Killed hard mid-way, a new capture continues from the last stored segment.
    wait_restorable(&repo, &mut child, *points.last().unwrap());
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = capture(&repo, &server);
    let deadline = Instant::now() + Duration::from_secs(15);
    while dump_at(&mut client, 0)
        .await
        .contains_key(&b"/registry/masterleases/10.0.0.1"[..])
    {
        assert!(Instant::now() < deadline, "the short lease never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    points.push(revision(&mut client).await);
    // A time target between two writes.
    client
        .put("/registry/pods/default/late", "1", None)
        .await
        .unwrap();
    let before_time = revision(&mut client).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let asked = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    client
        .put("/registry/pods/default/late", "2", None)
        .await
        .unwrap();
    points.push(revision(&mut client).await);
    wait_restorable(&repo, &mut child, *points.last().unwrap());
    stop(child);

    for (n, &point) in points.iter().enumerate() {
        let name = format!("m{n}");
        let (report, peer_url) = restore_revision(&repo, dir.path(), &name, point);
        assert_eq!(report["revision"], point, "{version:?}: {report}");
        assert_eq!(report["restore"]["revision"], point, "{version:?}: {report}");
        assert_eq!(
            report["proof"]["result"], "equal",
            "{version:?} at {point}: {report}"
        );
        let db = dir.path().join(&name).join("member/snap/db");
        let theirs = client.hash_kv(point).await.unwrap().hash();
        assert_eq!(
            restored_hash(&db, point),
            u64::from(theirs),
            "{version:?}: HashKV at {point}"
        );
        let expected = dump_at(&mut client, point).await;
        let member = ExistingMember {
            name: name.clone(),
            data_dir: dir.path().join(&name),
            peer_url,
        };
        let booted = EtcdServer::boot_existing(version, &[member]).await.unwrap();
        let mut restored = booted[0].member().await.unwrap().client();
        assert_eq!(
            revision(&mut restored).await,
            point,
            "{version:?}: served revision"
        );
        assert_eq!(
            dump_at(&mut restored, 0).await,
            expected,
            "{version:?}: keys at {point}"
        );
        if expected.contains_key(&b"/registry/events/default/e0"[..]) {
            let ttl = restored.lease_time_to_live(long, None).await.unwrap();
            assert_eq!(
                ttl.granted_ttl(),
                600,
                "{version:?}: the lease came back with its TTL"
            );
        }
    }

    let report = restore_point(
        &repo,
        dir.path(),
        "by-time",
        &format!("http://127.0.0.1:{}", free_port().unwrap()),
        &["--to-time", &humantime::format_rfc3339_millis(asked).to_string()],
    );
    assert_eq!(report["revision"], before_time, "{version:?}: {report}");
    assert_eq!(report["time"]["next_revision"], before_time + 1, "{report}");

    // A drill of the same point: restored, booted, served at its revision with the live
    // member's HashKV.
    let work = tempfile::tempdir().unwrap();
    let output = run(repo
        .lifeboat()
        .env_remove("LIFEBOAT_ETCD")
        .args(["drill", "-w", "json", "--to-time"])
        .arg(humantime::format_rfc3339_millis(asked).to_string())
        .arg("--etcd")
        .arg(version.etcd())
        .arg("--work-dir")
        .arg(work.path())
        .arg("--identity-file")
        .arg(repo.identity()));
    let drill: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{version:?}: {drill}");
    assert_eq!(drill["result"], "passed", "{drill}");
    assert_eq!(drill["point_revision"], before_time, "{drill}");
    let check = |name: &str| {
        drill["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {drill}"))
            .clone()
    };
    assert_eq!(check("revision")["result"], "passed", "{drill}");
    let hashkv = check("hashkv");
    assert_eq!(hashkv["result"], "passed", "{drill}");
    assert!(
        hashkv["detail"]
            .as_str()
            .unwrap()
            .contains("equal to the member's"),
        "{drill}"
    );
    assert!(
        check("restore")["detail"]
            .as_str()
            .unwrap()
            .contains("captured revisions replayed"),
        "{drill}"
    );
}

#[tokio::test]
async fn points_in_time_on_3_5() {
    points_in_time(EtcdVersion::V3_5).await;
}

#[tokio::test]
async fn points_in_time_on_3_6() {
    points_in_time(EtcdVersion::V3_6).await;
}

/// A capture that cannot resume because etcd compacted its start takes a full backup, records
/// the gap, and no restore is offered inside it.
#[tokio::test]
async fn a_compacted_start_is_a_recorded_gap() {
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_6))
        .await
        .unwrap();
    let mut client = server.member().await.unwrap().client();
    client.put("/registry/a", "1", None).await.unwrap();
    let repo = Repo::initialised(Backend::Local);
    run_ok(repo.lifeboat().arg("backup").args(server.etcdctl_args()));
    let base = revision(&mut client).await;
    for i in 0..5 {
        client.put("/registry/a", format!("{i}"), None).await.unwrap();
    }
    let compacted = revision(&mut client).await;
    client.compact(compacted, None).await.unwrap();
    let mut child = capture(&repo, &server);
    client.put("/registry/b", "after", None).await.unwrap();
    let after = revision(&mut client).await;
    wait_restorable(&repo, &mut child, after);
    stop(child);

    let ranges = ranges(&repo);
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0]["from_revision"], base);
    assert_eq!(ranges[0]["to_revision"], base, "nothing after the first base");
    // The new base is the full backup, taken at or after the compaction (the write of `b` races it).
    let new_base = ranges[1]["from_revision"].as_i64().unwrap();
    assert!((compacted..=after).contains(&new_base), "{ranges:?}");
    assert_eq!(ranges[1]["to_revision"], after);
    let gaps = std::fs::read_dir(Path::new(repo.location()).join("segments"))
        .unwrap()
        .flat_map(|cluster| std::fs::read_dir(cluster.unwrap().path().join("gaps")).unwrap())
        .count();
    assert_eq!(gaps, 1);
    let inside = (base + 1).to_string();
    let dir = tempfile::tempdir().unwrap();
    let error = run_failing(
        repo.lifeboat()
            .args(["restore", "--to-revision", &inside, "--identity-file"])
            .arg(repo.identity())
            .arg(format!("--data-dir={}", dir.path().join("d").display())),
        1,
    );
    assert!(error.contains(&format!("revision {inside}")), "{error}");
    assert!(error.contains("not restorable"), "{error}");
    assert!(!dir.path().join("d").exists(), "nothing written");
}

/// The captured segments of the repository's one cluster (their manifests' keys).
fn segment_count(repo: &Repo) -> usize {
    std::fs::read_dir(Path::new(repo.location()).join("segments"))
        .unwrap()
        .flat_map(|cluster| std::fs::read_dir(cluster.unwrap().path()).unwrap())
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count()
}

/// `pitr compact` merges captured segments into fewer, and `forget` removes those no backup
/// left can reach; every point still within a range restores with etcd's own HashKV.
#[tokio::test]
async fn compaction_and_forget_bound_the_segments_and_every_point_stays_restorable() {
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_6))
        .await
        .unwrap();
    let mut client = server.member().await.unwrap().client();
    client.put("/registry/seed", "1", None).await.unwrap();
    let repo = Repo::initialised(Backend::Local);
    run_ok(repo.lifeboat().arg("backup").args(server.etcdctl_args()));
    let mut child = capture(&repo, &server);
    let mut points = Vec::new();
    let mut second_base = 0;
    for i in 0..40 {
        let key = format!("/registry/leases/kube-node-lease/n{}", i % 7);
        client.put(key, format!("renew {i}"), None).await.unwrap();
        if i % 8 == 7 {
            points.push(revision(&mut client).await);
        }
        if i == 19 {
            // A second base in the middle of the capture.
            run_ok(repo.lifeboat().arg("backup").args(server.etcdctl_args()));
            second_base = revision(&mut client).await;
        }
        tokio::time::sleep(Duration::from_millis(70)).await;
    }
    wait_restorable(&repo, &mut child, *points.last().unwrap());
    stop(child);
    let before = segment_count(&repo);
    let span = |ranges: &[Value]| -> Vec<(i64, i64)> {
        ranges
            .iter()
            .map(|r| {
                (
                    r["from_revision"].as_i64().unwrap(),
                    r["to_revision"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let reachable = span(&ranges(&repo));

    let out = run_ok(
        repo.lifeboat()
            .args([
                "pitr",
                "compact",
                "--per-merge",
                "4",
                "-w",
                "json",
                "--identity-file",
            ])
            .arg(repo.identity()),
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    let after = segment_count(&repo);
    assert!(before >= 10, "{before} segments captured");
    assert_eq!(report["segments_before"], before, "{report}");
    assert_eq!(report["segments_after"], after, "{report}");
    // One unbroken chain: runs of 4 merged, only the newest few (fewer than 4) left to wait.
    let merges = report["merges"].as_array().unwrap().len();
    assert_eq!(merges, before / 4, "{report}");
    assert_eq!(after, before - 3 * merges, "{report}");
    assert_eq!(span(&ranges(&repo)), reachable, "compaction changes no range");
    for (n, &point) in points.iter().enumerate() {
        let (report, _) = restore_revision(&repo, dir.path(), &format!("c{n}"), point);
        assert_eq!(report["proof"]["result"], "equal", "at {point}: {report}");
        let db = dir.path().join(format!("c{n}")).join("member/snap/db");
        let theirs = client.hash_kv(point).await.unwrap().hash();
        assert_eq!(restored_hash(&db, point), u64::from(theirs), "at {point}");
    }

    // A merge cut off between its data and its manifest leaves data no manifest names: `repo
    // check` reports it and `repo prune` removes it, and nothing else.
    run_ok(repo.lifeboat().args(["repo", "check"]));
    let cluster_dir = std::fs::read_dir(Path::new(repo.location()).join("segments"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let orphan = cluster_dir.join(format!("{:020}-{:020}.seg", 1, points[0]));
    let some_data = std::fs::read_dir(&cluster_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    std::fs::copy(&some_data, &orphan).unwrap();
    let output = run(repo.lifeboat().args(["repo", "check", "-w", "json"]));
    assert_eq!(output.status.code(), Some(1));
    let found: Value = serde_json::from_slice(&output.stdout).unwrap();
    let unreferenced = found["unreferenced"].as_array().unwrap();
    assert_eq!(unreferenced.len(), 1, "{found}");
    assert!(
        orphan.ends_with(unreferenced[0]["key"].as_str().unwrap()),
        "{found}"
    );
    run_ok(repo.lifeboat().args(["repo", "prune", "--older-than", "0s"]));
    assert!(!orphan.exists());
    assert_eq!(segment_count(&repo), after);
    run_ok(repo.lifeboat().args(["repo", "check"]));

    // The first base forgotten: the segments only it reached go with it.
    let out = run_ok(repo.lifeboat().args(["forget", "--keep-last", "1"]));
    assert!(
        out.contains("captured segments no backup left can reach"),
        "{out}"
    );
    let ranges = ranges(&repo);
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    assert_eq!(ranges[0]["from_revision"], second_base, "{ranges:?}");
    assert_eq!(ranges[0]["to_revision"], reachable[0].1, "{ranges:?}");
    assert!(segment_count(&repo) < after, "{out}");
    let newest = *points.last().unwrap();
    let (report, _) = restore_revision(&repo, dir.path(), "after-forget", newest);
    assert_eq!(report["proof"]["result"], "equal", "{report}");

    // A segment damaged in storage: the restore, which reads segments as it writes, fails
    // naming it and leaves no data directory behind.
    let newest_data = std::fs::read_dir(&cluster_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "seg"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&newest_data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&newest_data, bytes).unwrap();
    let target = dir.path().join("damaged");
    let error = run_failing(
        repo.lifeboat()
            .args(["restore", "--to-revision", &newest.to_string(), "--identity-file"])
            .arg(repo.identity())
            .arg(format!("--data-dir={}", target.display())),
        1,
    );
    let name = newest_data.file_name().unwrap().to_string_lossy().into_owned();
    assert!(error.contains(&name), "{error}");
    assert!(!target.exists(), "{error}");
}

/// A ConfigMap as the API server stores a JSON object.
fn config_map(name: &str, owner: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "uid": "7f1c"},
        "data": {"owner": owner},
    })
    .to_string()
}

/// `k8s get|ls --time T` and `--revision R` past the backup read the objects as they were at
/// that point, from the base backup and the captured segments; `k8s history` lists every
/// change of one object with the fields changed; `backups list` shows the range.
#[tokio::test]
async fn kubernetes_objects_are_read_at_a_time_or_revision_after_the_backup() {
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_6))
        .await
        .unwrap();
    let mut client = server.member().await.unwrap().client();
    let key = "/registry/configmaps/default/ledger";
    client
        .put(key, config_map("ledger", "finance"), None)
        .await
        .unwrap();
    let repo = Repo::initialised(Backend::Local);
    run_ok(repo.lifeboat().arg("backup").args(server.etcdctl_args()));
    let mut child = capture(&repo, &server);
    client
        .put(key, config_map("ledger", "payments"), None)
        .await
        .unwrap();
    let payments = revision(&mut client).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let asked = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    tokio::time::sleep(Duration::from_millis(700)).await;
    client
        .put(key, config_map("ledger", "audit"), None)
        .await
        .unwrap();
    client
        .put("/registry/configmaps/default/late", config_map("late", "x"), None)
        .await
        .unwrap();
    let late = revision(&mut client).await;
    client.delete(key, None).await.unwrap();
    let gone = revision(&mut client).await;
    wait_restorable(&repo, &mut child, gone);
    stop(child);
    let listed = run_ok(repo.lifeboat().args(["backups", "list"]));
    assert!(
        listed.contains("point in time, cluster") && listed.contains(&format!(" to {gone} (")),
        "{listed}"
    );

    // The history of one object: each change with its revision and the field that changed.
    let history = |args: &[&str]| {
        run_ok(
            repo.lifeboat()
                .args(["k8s", "history"])
                .args(args)
                .arg("--identity-file")
                .arg(repo.identity()),
        )
    };
    let ledger = history(&["configmap", "ledger"]);
    let lines: Vec<&str> = ledger.lines().collect();
    assert!(lines[0].ends_with("in backup"), "{ledger}");
    assert!(
        lines[1].starts_with(&format!("revision {payments} ")) && lines[1].ends_with("updated"),
        "{ledger}"
    );
    assert_eq!(lines[2], "  data.owner: \"finance\" -> \"payments\"", "{ledger}");
    assert!(
        lines[3].ends_with("updated") && lines[4] == "  data.owner: \"payments\" -> \"audit\"",
        "{ledger}"
    );
    assert!(
        lines[5].starts_with(&format!("revision {gone} ")) && lines[5].ends_with("deleted"),
        "{ledger}"
    );
    let since = history(&["cm", "ledger", "--since", &asked, "-w", "json"]);
    let since: Vec<Value> = serde_json::from_str(&since).unwrap();
    assert_eq!(
        since.len(),
        3,
        "the state at --since, then audit and the deletion: {since:?}"
    );
    assert_eq!(since[0]["revision"], payments, "{since:?}");
    let created = history(&["configmaps", "late"]);
    assert!(
        created.lines().next().unwrap().ends_with("absent in backup"),
        "{created}"
    );
    assert!(
        created.contains(&format!("revision {late} ")) && created.contains("created"),
        "{created}"
    );
    let created_since = history(&["configmaps", "late", "--since", &asked]);
    let lines: Vec<&str> = created_since.lines().collect();
    assert!(lines[0].ends_with("absent as of --since"), "{created_since}");
    assert!(
        lines[1].starts_with(&format!("revision {late} ")) && lines[1].ends_with("created"),
        "{created_since}"
    );

    let get = |target: &[&str]| {
        run_ok(
            repo.lifeboat()
                .args(["k8s", "get", "configmap", "ledger", "-n", "default", "-o", "json"])
                .args(target)
                .arg("--identity-file")
                .arg(repo.identity()),
        )
    };
    let owner = |out: &str| serde_json::from_str::<Value>(out).unwrap()["data"]["owner"].clone();
    assert_eq!(owner(&get(&[])), "finance", "the backup itself");
    assert_eq!(owner(&get(&["--time", &asked])), "payments");
    assert_eq!(owner(&get(&["--revision", &payments.to_string()])), "payments");
    assert_eq!(owner(&get(&["--revision", &late.to_string()])), "audit");
    let listed = run_ok(
        repo.lifeboat()
            .args(["k8s", "ls", "configmaps", "--time", &asked, "--identity-file"])
            .arg(repo.identity()),
    );
    assert!(listed.contains("ledger") && !listed.contains("late"), "{listed}");
    let error = run_failing(
        repo.lifeboat()
            .args([
                "k8s",
                "get",
                "configmap",
                "ledger",
                "--revision",
                &(late + 100).to_string(),
            ])
            .arg("--identity-file")
            .arg(repo.identity()),
        1,
    );
    assert!(error.contains("not restorable"), "{error}");
}

/// What the point-in-time commands cannot do, they refuse in one line naming the cause and the
/// fix: no etcd backup to start from, several clusters and no `--cluster`, a merge of one.
#[tokio::test]
async fn point_in_time_commands_refuse_what_they_cannot_do() {
    let repo = Repo::initialised(Backend::Local);
    let history = |extra: &[&str]| {
        let mut command = repo.lifeboat();
        command
            .args(["k8s", "history", "deployments", "web", "--identity-file"])
            .arg(repo.identity())
            .args(extra);
        command
    };
    let error = run_failing(&mut history(&[]), 1);
    assert!(
        error.contains("holds no etcd backup") && error.contains("lifeboat backup"),
        "{error}"
    );

    let mut ids = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_6))
            .await
            .unwrap();
        let mut client = server.member().await.unwrap().client();
        let status = client.status().await.unwrap();
        ids.push(format!("{:x}", status.header().unwrap().cluster_id()));
        run_ok(repo.lifeboat().arg("backup").args(server.etcdctl_args()));
        servers.push(server);
    }
    let error = run_failing(&mut history(&[]), 1);
    assert!(
        error.contains("backups of 2 etcd clusters")
            && ids.iter().all(|id| error.contains(id.as_str()))
            && error.contains("--cluster"),
        "{error}"
    );
    let chosen = run_ok(&mut history(&["--cluster", &ids[1]]));
    assert!(
        chosen.lines().next().unwrap().ends_with("absent in backup"),
        "{chosen}"
    );

    let output = run(repo
        .lifeboat()
        .args(["pitr", "compact", "--per-merge", "1", "--cluster", &ids[0]]));
    let error = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{error}");
    assert!(error.contains("'1' for '--per-merge <N>'"), "{error}");
}
