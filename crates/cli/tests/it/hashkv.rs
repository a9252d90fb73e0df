//! `snapshot hashkv` equals etcd's own HashKV (3.4 to 3.7, and 3.5.1, older than the
//! tombstone-at-compaction rule) at several revisions, before and after compaction (keys
//! overwritten, deleted, deleted at the compact revision, and a key space compacted to nothing),
//! and `etcdutl hashkv` (3.6+); backups record the member's HashKV at the snapshot revision.

use std::path::Path;

use etcd_client::{Client, CompactionOptions};
use lifeboat_test_support::{EtcdConfig, EtcdServer, EtcdVersion};
use serde_json::Value;

use crate::common::*;

fn ours(file: &Path, revision: Option<i64>, compact: Option<i64>) -> Value {
    ours_as(None, file, revision, compact)
}

/// Our hash as a member of `version` computes it (`None`: the current rules).
fn ours_as(version: Option<EtcdVersion>, file: &Path, revision: Option<i64>, compact: Option<i64>) -> Value {
    let mut command = lifeboat();
    command.args(["snapshot", "hashkv", "-w", "json"]).arg(file);
    if let Some(version) = version {
        command.args(["--etcd-version", &version.expected()]);
    }
    if let Some(r) = revision {
        command.arg(format!("--revision={r}"));
    }
    if let Some(c) = compact {
        command.arg(format!("--compact-revision={c}"));
    }
    serde_json::from_str(&run_ok(&mut command)).unwrap()
}

async fn theirs(client: &mut Client, revision: i64) -> (u32, i64) {
    let answer = client.hash_kv(revision).await.unwrap();
    (answer.hash(), answer.compact_version())
}

async fn revision(client: &mut Client) -> i64 {
    client.status().await.unwrap().header().unwrap().revision()
}

/// Our hash of `file` at each of `revisions`, as a member of `version` computes it, equals
/// etcd's, with the same compact revision; and etcdutl's (3.6+) on a copy of the file.
async fn assert_hashes_match(
    version: EtcdVersion,
    client: &mut Client,
    file: &Path,
    revisions: &[i64],
    stage: &str,
) {
    for &r in revisions {
        let (hash, compact) = theirs(client, r).await;
        let mine = ours_as(Some(version), file, Some(r), None);
        assert_eq!(mine["hash"], hash, "{version:?} {stage}: revision {r}");
        assert_eq!(
            mine["compact_revision"], compact,
            "{version:?} {stage}: revision {r}"
        );
        if EtcdVersion::SINCE_3_6.contains(&version) {
            assert_eq!(
                etcdutl_hashkv(version, file, r),
                (mine["hash"].as_u64().unwrap(), r, compact)
            );
        }
    }
    let (hash, _) = theirs(client, 0).await;
    assert_eq!(
        ours_as(Some(version), file, None, None)["hash"],
        hash,
        "{version:?} {stage}: current revision"
    );
}

/// `etcdutl hashkv FILE --rev R` (3.6+): hash, revision and compact revision. etcdutl opens the
/// file read-write (and runs a pending compaction), so it gets a copy.
fn etcdutl_hashkv(version: EtcdVersion, file: &Path, revision: i64) -> (u64, i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::copy(file, &copy).unwrap();
    let copy = copy.display().to_string();
    let out = reference_tool(
        version,
        &["hashkv", &copy, "--rev", &revision.to_string(), "-w", "json"],
    );
    let answer: Value = serde_json::from_str(&out).unwrap();
    (
        answer["hash"].as_u64().unwrap(),
        answer["hashRevision"].as_i64().unwrap(),
        answer["compactRevision"].as_i64().unwrap(),
    )
}

async fn hashkv_through_compactions(version: EtcdVersion) {
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(EtcdConfig::new(version)).await.unwrap();
    let mut client = server.member().await.unwrap().client();
    for i in 0..40 {
        client
            .put(format!("/registry/pods/p{}", i % 13), format!("v{i}"), None)
            .await
            .unwrap();
    }
    client.delete("/registry/pods/p3", None).await.unwrap();
    client.put("/registry/pods/p3", "again", None).await.unwrap();
    client.delete("/registry/pods/p4", None).await.unwrap();
    let early = revision(&mut client).await;
    let file = dir.path().join("plain.db");
    run_ok(&mut save_command(&server, &file));
    assert_hashes_match(
        version,
        &mut client,
        &file,
        &[2, 10, early - 1, early],
        "uncompacted",
    )
    .await;

    // Compact where p5 was just deleted (its tombstone is at the compact revision).
    client.delete("/registry/pods/p5", None).await.unwrap();
    let compact_at = revision(&mut client).await;
    for i in 0..10 {
        client
            .put(format!("/registry/pods/p{}", i % 4), format!("w{i}"), None)
            .await
            .unwrap();
    }
    client.delete("/registry/pods/p0", None).await.unwrap();
    let before = dir.path().join("before-compaction.db");
    run_ok(&mut save_command(&server, &before));
    let before_revision = revision(&mut client).await;
    client
        .compact(compact_at, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    let file = dir.path().join("compacted.db");
    run_ok(&mut save_command(&server, &file));
    let now = revision(&mut client).await;
    assert_hashes_match(
        version,
        &mut client,
        &file,
        &[compact_at + 1, compact_at + 5, now],
        "compacted",
    )
    .await;
    // At or below the compact revision etcd refuses, and so do we (exit 1, one line).
    let refused = run_failing(
        lifeboat()
            .args(["snapshot", "hashkv", "--revision", &compact_at.to_string()])
            .arg(&file),
        1,
    );
    assert!(refused.contains("compacted"), "{refused}");
    // Beyond the data, and a compact revision below the file's own: refused, each named.
    let beyond = run_failing(
        lifeboat()
            .args(["snapshot", "hashkv", "--revision", &(now + 1).to_string()])
            .arg(&file),
        1,
    );
    assert!(
        beyond.contains(&format!("beyond the data (current revision {now})")),
        "{beyond}"
    );
    let below = run_failing(
        lifeboat()
            .args(["snapshot", "hashkv", "--compact-revision", "1"])
            .arg(&file),
        1,
    );
    assert!(
        below.contains(&format!("below the file's own ({compact_at})")),
        "{below}"
    );

    // A member that compacted after the snapshot: the earlier file, hashed as compacted there,
    // equals what the member answers now (and differs when hashed uncompacted).
    let (hash, compact) = theirs(&mut client, before_revision).await;
    assert_eq!(compact, compact_at);
    assert_eq!(ours(&before, Some(before_revision), Some(compact))["hash"], hash);
    assert_ne!(ours(&before, Some(before_revision), None)["hash"], hash);

    // Everything deleted and compacted: etcd keeps nothing, and hashes what is left.
    client
        .delete("", Some(etcd_client::DeleteOptions::new().with_all_keys()))
        .await
        .unwrap();
    let emptied = revision(&mut client).await;
    client.put("/after", "x", None).await.unwrap();
    client.delete("/after", None).await.unwrap();
    client
        .compact(emptied, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    let file = dir.path().join("emptied.db");
    run_ok(&mut save_command(&server, &file));
    let now = revision(&mut client).await;
    assert_hashes_match(version, &mut client, &file, &[emptied + 1, now], "emptied").await;
    // Releases with the tombstone rule keep the emptying deletions on disk and leave them out
    // of the hash; a member of an older release (which deleted them) would hash them.
    let kept_tombstones = version != EtcdVersion::V3_4 && version != EtcdVersion::V3_5_1;
    let old_rules = ours_as(Some(EtcdVersion::V3_5_1), &file, Some(now), None);
    assert_eq!(
        old_rules["hash"] != ours_as(Some(version), &file, Some(now), None)["hash"],
        kept_tombstones,
        "{version:?}: the old rules differ exactly when the file keeps the tombstones"
    );
}

#[tokio::test]
async fn hashkv_equals_etcd_3_4_through_compactions() {
    hashkv_through_compactions(EtcdVersion::V3_4).await;
}

#[tokio::test]
async fn hashkv_equals_etcd_3_5_1_through_compactions() {
    hashkv_through_compactions(EtcdVersion::V3_5_1).await;
}

#[tokio::test]
async fn hashkv_equals_etcd_3_5_through_compactions() {
    hashkv_through_compactions(EtcdVersion::V3_5).await;
}

#[tokio::test]
async fn hashkv_equals_etcd_3_6_through_compactions() {
    hashkv_through_compactions(EtcdVersion::V3_6).await;
}

#[tokio::test]
async fn hashkv_equals_etcd_3_7_through_compactions() {
    hashkv_through_compactions(EtcdVersion::V3_7).await;
}

/// A file written by a release that keeps the tombstone at the compact revision, booted on
/// 3.5.1 (a patch downgrade etcd allows): 3.5.1 hashes the tombstone, and so do we when told
/// the member's version.
#[tokio::test]
async fn hashkv_follows_the_version_the_member_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_5))
        .await
        .unwrap();
    let mut client = server.member().await.unwrap().client();
    client.put("/registry/a", "1", None).await.unwrap();
    client.delete("/registry/a", None).await.unwrap();
    let compact_at = revision(&mut client).await;
    client
        .compact(compact_at, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    let file = dir.path().join("newer.db");
    run_ok(&mut save_command(&server, &file));
    drop(server);
    let (_, servers) = crate::restore::restore_and_boot(EtcdVersion::V3_5_1, dir.path(), &["old"], |plan| {
        crate::restore::restore(&file, plan, &[])
    })
    .await;
    let mut old = servers[0].member().await.unwrap().client();
    let (hash, compact) = theirs(&mut old, 0).await;
    assert_eq!(compact, compact_at, "the restore keeps the compaction");
    assert_eq!(
        ours_as(Some(EtcdVersion::V3_5_1), &file, None, None)["hash"],
        hash
    );
    assert_ne!(
        ours_as(Some(EtcdVersion::V3_5), &file, None, None)["hash"],
        hash,
        "3.5.36 leaves the tombstone out"
    );
}

#[tokio::test]
async fn a_bbolt_file_that_is_not_etcd_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("other.db");
    {
        let out = std::fs::File::create(&file).unwrap();
        let mut writer = lifeboat_etcd_data::bbolt::BulkWriter::new(&out, 4096);
        let mut bucket = writer.bucket();
        writer.put(&mut bucket, b"k", b"v", false).unwrap();
        let root = writer.finish_bucket(bucket).unwrap();
        writer.finish(vec![(b"settings".to_vec(), root)]).unwrap();
    }
    for command in [
        vec!["snapshot", "hashkv"],
        vec!["snapshot", "status"],
        vec![
            "snapshot",
            "restore",
            "--skip-hash-check",
            "--data-dir",
            "/tmp/lifeboat-never-written",
        ],
        vec!["k8s", "ls", "--file"],
    ] {
        let error = run_failing(lifeboat().args(&command).arg(&file), 1);
        assert!(
            error.contains("other.db") && error.contains("not an etcd database: it has no \"key\" bucket"),
            "{command:?}: {error}"
        );
    }
    assert!(!Path::new("/tmp/lifeboat-never-written").exists());
    let verify = run(lifeboat().args(["snapshot", "verify"]).arg(&file));
    assert_eq!(verify.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("bucket \"key\" is missing"));
}

/// Writes go on while the backup streams: the manifest records the snapshot's own revision (not
/// the one the member had when the stream began), its key count, and the member's HashKV there,
/// all of which the stored image reproduces.
#[tokio::test]
async fn a_backup_taken_under_writes_records_the_snapshots_revision_and_hash() {
    use crate::repository::{Backend, Repo};
    let server = filled(EtcdConfig::new(EtcdVersion::V3_5), &big()).await;
    let repo = Repo::initialised(Backend::Local);
    let client = server.member().await.unwrap().client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (mut client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut written = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && written < 100_000 {
                client
                    .put(format!("/registry/leases/l{}", written % 50), "renewed", None)
                    .await
                    .unwrap();
                written += 1;
            }
            written
        })
    };
    let before = revision(&mut client.clone()).await;
    let id = tokio::task::spawn_blocking({
        let command = repo.backup_command(&server);
        move || {
            let mut command = command;
            let out = run_ok(command.args(["-w", "json"]));
            serde_json::from_str::<Value>(&out).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0);
    let manifest: Value = serde_json::from_str(&run_ok(
        repo.lifeboat().args(["backups", "show", &id, "-w", "json"]),
    ))
    .unwrap();
    let facts = &manifest["etcd"];
    let recorded = facts["revision"].as_i64().unwrap();
    assert!(
        recorded > before,
        "writes landed while the backup streamed ({before} → {recorded})"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dumped.db");
    let output = repo
        .lifeboat()
        .args(["dump", &id, "--identity-file"])
        .arg(repo.identity())
        .output()
        .unwrap();
    assert!(output.status.success());
    std::fs::write(&file, output.stdout).unwrap();
    let status: Value = serde_json::from_str(&run_ok(
        lifeboat().args(["snapshot", "status", "-w", "json"]).arg(&file),
    ))
    .unwrap();
    assert_eq!(
        status["revision"], recorded,
        "the recorded revision is the image's"
    );
    assert_eq!(facts["hash_kv"]["revision"], recorded);
    let ours = ours(
        &file,
        Some(recorded),
        facts["hash_kv"]["compact_revision"].as_i64(),
    );
    assert_eq!(
        ours["hash"], facts["hash_kv"]["hash"],
        "the image hashes as the member did"
    );
    let (hash, _) = theirs(&mut client.clone(), recorded).await;
    assert_eq!(
        facts["hash_kv"]["hash"], hash,
        "the record is the member's answer"
    );
}

/// An etcd that was never written to is served at revision 1: HashKV of its snapshot equals
/// etcd's, at revision 1 and at the current one, and a drill of it passes.
#[tokio::test]
async fn an_empty_key_space_hashes_and_drills_at_revision_1() {
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(EtcdConfig::new(EtcdVersion::V3_5))
        .await
        .unwrap();
    let mut client = server.member().await.unwrap().client();
    assert_eq!(revision(&mut client).await, 1);
    let file = dir.path().join("empty.db");
    run_ok(&mut save_command(&server, &file));
    assert_hashes_match(EtcdVersion::V3_5, &mut client, &file, &[1], "empty").await;
    let refused = run_failing(
        lifeboat().args(["snapshot", "hashkv", "--revision=2"]).arg(&file),
        1,
    );
    assert!(
        refused.contains("current revision 1") || refused.contains("beyond"),
        "{refused}"
    );
    let report = run(lifeboat()
        .args(["drill", "--file"])
        .arg(&file)
        .arg("--etcd")
        .arg(EtcdVersion::V3_5.etcd())
        .arg("--work-dir")
        .arg(dir.path())
        .args(["-w", "json"]));
    let stderr = String::from_utf8_lossy(&report.stderr);
    assert_eq!(report.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["result"], "passed", "{report}");
}
